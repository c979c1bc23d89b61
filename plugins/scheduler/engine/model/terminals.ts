// The terminals of one group (PROTOCOL sections 1 and 3): who is online, in order of lastSeen so
// that eviction stops at the first terminal heard from recently, and who is ready, by role, in
// the order they declared it. Durable changes (a terminal added, removed, its role, readiness or
// last round changed) are noted in `dirty` for the embedded store; heartbeats are not durable.
import { RgError } from '../../../errors.js'
import type { HeartbeatInput, Role, TerminalView } from '../types.js'

export interface Terminal {
  id: string
  role: Role
  lastSeen: number
  /** ready order ticket; 0 when not ready */
  readySeq: number
  load: number | null
  meta: Record<string, unknown> | null
  /** round this terminal last took part in; 0 if never */
  lastRound: number
}

export class Terminals {
  /** online terminals, kept in order of lastSeen (oldest first) so eviction stops early */
  readonly online = new Map<string, Terminal>()
  /** ready terminals by role, in the order they declared ready */
  readonly readySmall = new Map<string, Terminal>()
  readonly readyBoss = new Map<string, Terminal>()
  onlineSmall = 0
  onlineBoss = 0
  /** last ready ticket handed out */
  seq = 0
  /** ids whose durable fields changed in this transition (added, removed, role, readySeq, lastRound) */
  readonly dirty = new Set<string>()
  private readonly group: string
  private readonly max: number

  constructor (group: string, maxTerminals: number) {
    this.group = group
    this.max = maxTerminals
  }

  get size (): number { return this.online.size }

  get (id: string): Terminal | undefined {
    return this.online.get(id)
  }

  /** Hear from a terminal: create it (room permitting), refresh lastSeen, take role/load/meta. */
  touch (id: string, input: HeartbeatInput, now: number): Terminal {
    let t = this.online.get(id)
    if (t === undefined) {
      if (this.online.size >= this.max) {
        throw new RgError('unavailable', `group ${this.group} already holds ${this.max} terminals`)
      }
      t = { id, role: input.role ?? 'small', lastSeen: now, readySeq: 0, load: null, meta: null, lastRound: 0 }
      if (t.role === 'boss') this.onlineBoss++
      else this.onlineSmall++
      this.dirty.add(id)
    } else {
      this.online.delete(id) // re-inserted below: the map stays ordered by lastSeen
      if (input.role !== undefined && input.role !== t.role) this.changeRole(t, input.role)
    }
    t.lastSeen = now
    if (input.load !== undefined) t.load = input.load
    if (input.meta !== undefined) t.meta = input.meta
    this.online.set(id, t)
    return t
  }

  /** Refuse, before touching anyone, when these ids would not all fit. */
  checkRoom (ids: Iterable<string>): void {
    let fresh = 0
    for (const id of new Set(ids)) if (!this.online.has(id)) fresh++
    if (this.online.size + fresh > this.max) {
      throw new RgError('unavailable', `group ${this.group} already holds ${this.max} terminals`)
    }
  }

  markReady (t: Terminal): void {
    if (t.readySeq !== 0) return
    t.readySeq = ++this.seq
    this.readyMap(t.role).set(t.id, t)
    this.dirty.add(t.id)
  }

  /** Take a terminal offline; returns it, or undefined when it was not online. */
  remove (id: string): Terminal | undefined {
    const t = this.online.get(id)
    if (t === undefined) return undefined
    this.online.delete(id)
    if (t.role === 'boss') this.onlineBoss--
    else this.onlineSmall--
    if (t.readySeq !== 0) this.readyMap(t.role).delete(id)
    this.dirty.add(id)
    return t
  }

  /** The terminals silent since `cutoff` (oldest first), to evict. */
  silentSince (cutoff: number): string[] {
    const out: string[] = []
    for (const t of this.online.values()) {
      if (t.lastSeen > cutoff) break
      out.push(t.id)
    }
    return out
  }

  /**
   * The released terminals leave `ready` and remember the round; answers their ids in shard order
   * (smalls, then bosses), built in the same pass. Not marked dirty one by one: the release record
   * says who they are (the embedded store derives these changes from it).
   */
  take (smalls: Terminal[], bosses: Terminal[], round: number): { participants: string[], bossIds: string[] } {
    leaveReady(this.readySmall, smalls)
    leaveReady(this.readyBoss, bosses)
    const participants = new Array<string>(smalls.length + bosses.length)
    const bossIds = new Array<string>(bosses.length)
    let i = 0
    for (const t of smalls) { t.readySeq = 0; t.lastRound = round; participants[i++] = t.id }
    for (let b = 0; b < bosses.length; b++) {
      const t = bosses[b]
      t.readySeq = 0
      t.lastRound = round
      participants[i++] = bossIds[b] = t.id
    }
    return { participants, bossIds }
  }

  /** Put a terminal back as it was stored (embedded store start-up); it counts as just heard from. */
  restore (t: Terminal): void {
    this.online.set(t.id, t)
    if (t.role === 'boss') this.onlineBoss++
    else this.onlineSmall++
  }

  /** After restore(): rebuild the ready maps in ticket order. */
  restoreReady (): void {
    const ready = [...this.online.values()].filter((t) => t.readySeq !== 0).sort((a, b) => a.readySeq - b.readySeq)
    for (const t of ready) this.readyMap(t.role).set(t.id, t)
    for (const t of this.online.values()) this.seq = Math.max(this.seq, t.readySeq)
  }

  views (participating: (id: string) => boolean): TerminalView[] {
    return [...this.online.values()].map((t) => this.view(t, participating(t.id)))
  }

  view (t: Terminal, participating: boolean): TerminalView {
    return {
      clientId: t.id,
      role: t.role,
      lastSeen: t.lastSeen,
      online: true,
      ready: t.readySeq !== 0,
      participating,
      load: t.load,
      meta: t.meta
    }
  }

  private readyMap (role: Role): Map<string, Terminal> {
    return role === 'boss' ? this.readyBoss : this.readySmall
  }

  private changeRole (t: Terminal, role: Role): void {
    if (t.role === 'boss') { this.onlineBoss--; this.onlineSmall++ } else { this.onlineSmall--; this.onlineBoss++ }
    if (t.readySeq !== 0) {
      this.readyMap(t.role).delete(t.id)
      t.readySeq = ++this.seq
      this.readyMap(role).set(t.id, t)
    }
    t.role = role
    this.dirty.add(t.id)
  }
}

/** Take released terminals out of a ready map: all at once when the round took every one of them. */
function leaveReady (ready: Map<string, Terminal>, taken: Terminal[]): void {
  if (taken.length === ready.size) ready.clear()
  else for (const t of taken) ready.delete(t.id)
}
