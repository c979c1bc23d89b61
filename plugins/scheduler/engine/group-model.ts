// The round state machine of one group, in memory (PROTOCOL section 3). Every public method is
// one synchronous transition: it either throws an RgError having changed nothing, or applies the
// whole change and returns what it caused. The Redis store's Lua scripts implement the same rules;
// test/store-suite/ holds both to them.
import { RgError } from '../../errors.js'
import { completeOnOf, dropLimit, onlineThreshold } from './group-config.js'
import { select } from './selection.js'
import type {
  CtlOp, DoneInput, GroupConfig, GroupState, GroupTiming, HeartbeatInput, Outcome, Phase,
  ReleaseRecord, Role, RoundSummary, StoreEvent, TerminalView
} from './types.js'

export interface Terminal {
  id: string
  role: Role
  lastSeen: number
  /** ready order ticket; 0 when not ready */
  readySeq: number
  load: number | null
  meta: Record<string, unknown> | null
  lastRound: number
}

export interface ModelLimits {
  maxTerminals: number
  historyLimit: number
}

export class GroupModel {
  readonly name: string
  config: GroupConfig
  phase: Phase = 'WAITING'
  round = 0
  releasedAt: number | null = null
  resetUntil: number | null = null
  updatedAt: number
  release: ReleaseRecord | null = null
  /** online terminals, kept in order of lastSeen (oldest first) so eviction stops early */
  readonly terminals = new Map<string, Terminal>()
  /** ready terminals by role, in the order they declared ready */
  readonly readySmall = new Map<string, Terminal>()
  readonly readyBoss = new Map<string, Terminal>()
  onlineSmall = 0
  onlineBoss = 0
  /** the frozen snapshot: clientId → role, in shard order */
  participants = new Map<string, Role>()
  done = new Map<string, { ok: boolean, result: unknown }>()
  dropped = new Set<string>()
  history: RoundSummary[] = []
  events: StoreEvent[] = []
  /** last ready ticket handed out */
  seq = 0
  private readonly limits: ModelLimits

  constructor (name: string, config: GroupConfig, now: number, limits: ModelLimits) {
    this.name = name
    this.config = config
    this.updatedAt = now
    this.limits = limits
  }

  // --- terminal messages ----------------------------------------------------------------------

  heartbeat (id: string, input: HeartbeatInput, now: number): void {
    this.touch(id, input, now)
  }

  ready (id: string, input: HeartbeatInput, now: number): void {
    const t = this.touch(id, input, now)
    if (t.readySeq === 0) {
      t.readySeq = ++this.seq
      this.readyMap(t.role).set(id, t)
    }
  }

  /** Returns true when the report was a repeat. */
  reportDone (id: string, input: DoneInput, now: number): boolean {
    if (this.phase !== 'EXECUTING' || input.round !== this.round) {
      throw new RgError('stale_round', `round ${input.round} is not executing (current round ${this.round}, ${this.phase})`)
    }
    if (!this.participants.has(id)) throw new RgError('not_participant', `${id} is not a participant of round ${this.round}`)
    this.touch(id, {}, now)
    if (this.done.has(id)) return true
    this.done.set(id, { ok: input.ok !== false, result: input.result })
    this.checkEnd(now)
    return false
  }

  leave (id: string, now: number): void {
    this.goOffline(id, now)
  }

  /** Refresh lastSeen of terminals whose HTTP long-poll is pending (they count as heard from). */
  hold (ids: Iterable<string>, now: number): void {
    const list = [...ids]
    let fresh = 0
    for (const id of new Set(list)) if (!this.terminals.has(id)) fresh++
    if (this.terminals.size + fresh > this.limits.maxTerminals) {
      // refuse before touching anyone: a refused transition changes nothing
      throw new RgError('unavailable', `group ${this.name} already holds ${this.limits.maxTerminals} terminals`)
    }
    for (const id of list) this.touch(id, {}, now)
  }

  // --- operators ------------------------------------------------------------------------------

  ctl (op: CtlOp, now: number): void {
    switch (op.op) {
      case 'configure':
        this.config = { ...this.config, ...op.config }
        break
      case 'pause':
        this.config = { ...this.config, paused: true }
        break
      case 'resume':
        this.config = { ...this.config, paused: false }
        break
      case 'abort':
        if (this.phase !== 'EXECUTING') throw new RgError('bad_request', `no round is executing (phase ${this.phase})`)
        this.endRound('aborted', now)
        break
      case 'release':
        this.forceRelease(now)
        break
      case 'kick':
        this.goOffline(op.clientId, now)
        this.events.push({ type: 'kicked', group: this.name, clientId: op.clientId })
        break
    }
  }

  setConfig (config: GroupConfig): void {
    this.config = config
  }

  // --- time -----------------------------------------------------------------------------------

  tick (now: number): void {
    const cutoff = now - this.config.offlineAfterMs
    for (const t of this.terminals.values()) {
      if (t.lastSeen > cutoff) break
      this.goOffline(t.id, now)
    }
    if (this.phase === 'EXECUTING' && this.release !== null && now >= this.release.deadline) {
      this.endRound('timeout', now)
    }
    if (this.phase === 'RESET' && this.resetUntil !== null && now >= this.resetUntil) {
      this.toWaiting()
    }
  }

  /** After every transition: release at once if the rule of PROTOCOL section 3 now holds. */
  settle (now: number): void {
    this.tryRelease(now)
  }

  // --- views ----------------------------------------------------------------------------------

  state (): GroupState {
    return {
      group: this.name,
      phase: this.phase,
      round: this.round,
      paused: this.config.paused,
      need: this.config.need,
      bossNeed: this.config.bossNeed,
      online: this.onlineSmall + this.onlineBoss,
      onlineBoss: this.onlineBoss,
      ready: this.readySmall.size + this.readyBoss.size,
      readyBoss: this.readyBoss.size,
      participants: this.participants.size,
      done: this.done.size,
      dropped: this.dropped.size,
      releasedAt: this.releasedAt,
      updatedAt: this.updatedAt
    }
  }

  timing (): GroupTiming {
    return {
      resetUntil: this.phase === 'RESET' ? this.resetUntil : null,
      deadline: this.phase === 'EXECUTING' && this.release !== null ? this.release.deadline : null
    }
  }

  terminalViews (): TerminalView[] {
    return [...this.terminals.values()].map((t) => ({
      clientId: t.id,
      role: t.role,
      lastSeen: t.lastSeen,
      online: true,
      ready: t.readySeq !== 0,
      participating: this.participants.has(t.id),
      load: t.load,
      meta: t.meta
    }))
  }

  /** A fingerprint of everything `state` shows except updatedAt: equal means nothing changed. */
  fingerprint (): string {
    const s = this.state()
    return `${s.phase}|${s.round}|${s.paused ? 1 : 0}|${s.need}|${s.bossNeed}|${s.online}|${s.onlineBoss}|${s.ready}|${s.readyBoss}|${s.participants}|${s.done}|${s.dropped}`
  }

  // --- the rules ------------------------------------------------------------------------------

  private readyMap (role: Role): Map<string, Terminal> {
    return role === 'boss' ? this.readyBoss : this.readySmall
  }

  private touch (id: string, input: HeartbeatInput, now: number): Terminal {
    let t = this.terminals.get(id)
    if (t === undefined) {
      if (this.terminals.size >= this.limits.maxTerminals) {
        throw new RgError('unavailable', `group ${this.name} already holds ${this.limits.maxTerminals} terminals`)
      }
      t = { id, role: input.role ?? 'small', lastSeen: now, readySeq: 0, load: null, meta: null, lastRound: 0 }
      if (t.role === 'boss') this.onlineBoss++
      else this.onlineSmall++
    } else {
      this.terminals.delete(id) // re-inserted below: the map stays ordered by lastSeen
      if (input.role !== undefined && input.role !== t.role) this.changeRole(t, input.role)
    }
    t.lastSeen = now
    if (input.load !== undefined) t.load = input.load
    if (input.meta !== undefined) t.meta = input.meta
    this.terminals.set(id, t)
    return t
  }

  private changeRole (t: Terminal, role: Role): void {
    if (t.role === 'boss') { this.onlineBoss--; this.onlineSmall++ } else { this.onlineSmall--; this.onlineBoss++ }
    if (t.readySeq !== 0) {
      this.readyMap(t.role).delete(t.id)
      t.readySeq = ++this.seq
      this.readyMap(role).set(t.id, t)
    }
    t.role = role
  }

  private goOffline (id: string, now: number): void {
    const t = this.terminals.get(id)
    if (t === undefined) return
    this.terminals.delete(id)
    if (t.role === 'boss') this.onlineBoss--
    else this.onlineSmall--
    if (t.readySeq !== 0) this.readyMap(t.role).delete(id)
    if (this.phase === 'EXECUTING' && this.participants.has(id) && !this.done.has(id)) {
      this.dropped.add(id)
      this.checkEnd(now)
    }
  }

  private checkEnd (now: number): void {
    if (this.phase !== 'EXECUTING') return
    if (this.dropped.size > dropLimit(this.config, this.participants.size)) {
      this.endRound('aborted', now)
      return
    }
    const bosses = this.release?.bosses ?? []
    let complete: boolean
    if (completeOnOf(this.config) === 'boss' && bosses.length > 0) {
      complete = bosses.every((b) => this.done.has(b))
    } else {
      // done and dropped may overlap (a dropped participant can still report), so their sizes only
      // bound the union: below the participant count the round cannot be complete, and the scan
      // (which made N reports cost N² at 10,000 participants) runs only near the end
      complete = this.done.size + this.dropped.size >= this.participants.size
      if (complete) {
        for (const id of this.participants.keys()) {
          if (!this.done.has(id) && !this.dropped.has(id)) { complete = false; break }
        }
      }
    }
    if (complete) this.endRound('completed', now)
  }

  private endRound (outcome: Outcome, now: number): void {
    const rec = this.release
    if (rec === null) return
    const failed: string[] = []
    for (const [id, d] of this.done) if (!d.ok) failed.push(id)
    // fromEntries defines each key: a clientId "__proto__" is kept like any other, never a setter
    const results = Object.fromEntries([...this.done].filter(([, d]) => d.result !== undefined).map(([id, d]) => [id, d.result])) as Record<string, unknown>
    const summary: RoundSummary = {
      group: this.name,
      round: rec.round,
      outcome,
      releasedAt: rec.releasedAt,
      endedAt: now,
      participants: rec.participants,
      done: [...this.done.keys()],
      dropped: [...this.dropped],
      results,
      failed
    }
    this.history.push(summary)
    if (this.history.length > this.limits.historyLimit) this.history.splice(0, this.history.length - this.limits.historyLimit)
    this.events.push({ type: 'ended', summary })
    this.participants = new Map()
    this.done = new Map()
    this.dropped = new Set()
    this.release = null
    this.phase = 'RESET'
    this.resetUntil = now + this.config.resetMs
    if (this.config.resetMs === 0) this.toWaiting()
  }

  private toWaiting (): void {
    this.phase = 'WAITING'
    this.resetUntil = null
  }

  private tryRelease (now: number): void {
    if (this.phase !== 'WAITING' || this.config.paused) return
    const { need, bossNeed } = this.config
    if (need === 0 && bossNeed === 0) return // a round needs someone: such a group releases only by ctl
    const effNeed = Math.min(need, this.onlineSmall)
    if (this.onlineSmall < onlineThreshold(this.config)) return
    if (need > 0 && effNeed < 1) return
    if (this.readySmall.size < effNeed || this.readyBoss.size < bossNeed) return
    this.freeze(effNeed, bossNeed, now)
  }

  private forceRelease (now: number): void {
    if (this.config.paused) throw new RgError('bad_request', 'the group is paused')
    if (this.phase !== 'WAITING') throw new RgError('bad_request', `the group is not waiting (phase ${this.phase})`)
    const { need, bossNeed } = this.config
    const smalls = need > 0 ? Math.min(need, this.readySmall.size) : this.readySmall.size
    const bosses = bossNeed > 0 ? Math.min(bossNeed, this.readyBoss.size) : this.readyBoss.size
    if (smalls + bosses < 1) throw new RgError('bad_request', 'nobody is ready')
    this.freeze(smalls, bosses, now)
  }

  private freeze (smallCount: number, bossCount: number, now: number): void {
    const smalls = select(this.config.selection, this.readySmall.values(), smallCount)
    const bosses = select('fifo', this.readyBoss.values(), bossCount) // bosses: earliest ready first
    this.round += 1
    this.phase = 'EXECUTING'
    this.releasedAt = now
    this.participants = new Map()
    for (const t of smalls) this.participants.set(t.id, 'small')
    for (const t of bosses) this.participants.set(t.id, 'boss')
    leaveReady(this.readySmall, smalls)
    leaveReady(this.readyBoss, bosses)
    for (const t of smalls) { t.readySeq = 0; t.lastRound = this.round }
    for (const t of bosses) { t.readySeq = 0; t.lastRound = this.round }
    const bossIds = bosses.map((t) => t.id)
    this.release = {
      group: this.name,
      round: this.round,
      releasedAt: now,
      deadline: now + this.config.execTimeoutMs,
      participants: [...smalls.map((t) => t.id), ...bossIds],
      bosses: bossIds,
      payload: this.config.payload
    }
    this.events.push({ type: 'released', release: this.release })
  }
}

/** Take released terminals out of a ready map: all at once when the round took every one of them. */
function leaveReady (ready: Map<string, Terminal>, taken: Terminal[]): void {
  if (taken.length === ready.size) ready.clear()
  else for (const t of taken) ready.delete(t.id)
}
