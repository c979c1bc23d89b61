// The round state machine of one group, in memory (PROTOCOL sections 3, 9 and 10). Every public
// method is one synchronous transition: it either throws an RgError having changed nothing, or
// applies the whole change and returns. `settle` ends every transition: it runs the clock-driven
// rules (scheduled ticks, retries) and the release rule. The Redis store's Lua scripts implement
// the same rules; test/store-suite/ holds both to them.
//
// What a transition changed durably is noted for the embedded store: `terminals.dirty`,
// `jobs.dirty`, and `changes` (configuration, release, done reports, drops, the ended round).
import { RgError } from '../../../errors.js'
import { retryBackoff } from '../group-config.js'
import { select } from '../selection.js'
import type {
  CtlOp, DoneInput, GroupConfig, GroupState, GroupTiming, HeartbeatInput, Job, Outcome, Phase, ReleaseRecord,
  StoreEvent
} from '../types.js'
import { Jobs, publicJob } from './jobs.js'
import { Round } from './round.js'
import { blocker, nextTickOf, settleTicks } from './rule.js'
import { noChanges, type Changes, type PendingRetry, type Scalars } from './durable.js'
import { Terminals } from './terminals.js'

export interface ModelLimits {
  maxTerminals: number
  historyLimit: number
  maxQueuedJobs: number
}

export class GroupModel {
  readonly name: string
  config: GroupConfig
  phase: Phase = 'WAITING'
  round = 0
  releasedAt: number | null = null
  resetUntil: number | null = null
  updatedAt: number
  lastTick = 0
  evalTick = 0
  missed = 0
  retry: PendingRetry | null = null
  current: Round | null = null
  readonly terminals: Terminals
  readonly jobs: Jobs
  events: StoreEvent[] = []
  changes: Changes = noChanges()
  private readonly limits: ModelLimits

  constructor (name: string, config: GroupConfig, now: number, limits: ModelLimits) {
    this.name = name
    this.config = config
    this.updatedAt = now
    this.limits = limits
    this.terminals = new Terminals(name, limits.maxTerminals)
    this.jobs = new Jobs(name)
    // a new schedule starts from now: ticks before the group existed are not missed
    this.lastTick = now
    this.evalTick = now
  }

  /** The current round's release record while EXECUTING. */
  get release (): ReleaseRecord | null {
    return this.current?.record ?? null
  }

  // --- terminal messages ----------------------------------------------------------------------

  heartbeat (id: string, input: HeartbeatInput, now: number): void {
    this.terminals.touch(id, input, now)
  }

  ready (id: string, input: HeartbeatInput, now: number): void {
    this.terminals.markReady(this.terminals.touch(id, input, now))
  }

  /** Returns true when the report was a repeat. */
  reportDone (id: string, input: DoneInput, now: number): boolean {
    const r = this.current
    if (this.phase !== 'EXECUTING' || r === null || input.round !== this.round) {
      throw new RgError('stale_round', `round ${input.round} is not executing (current round ${this.round}, ${this.phase})`)
    }
    if (!r.participants.has(id)) throw new RgError('not_participant', `${id} is not a participant of round ${this.round}`)
    this.terminals.touch(id, {}, now)
    if (r.done.has(id)) return true
    r.done.set(id, { ok: input.ok !== false, result: input.result, at: now })
    this.changes.done.push(id)
    this.checkEnd(now)
    return false
  }

  /** A terminal leaves now (its leave message or will): a pending long-poll of it ends too. */
  leave (id: string, now: number): void {
    this.goOffline(id, now)
    this.events.push({ type: 'left', group: this.name, clientId: id })
  }

  /** A terminal goes offline (leave, kick, silence): a participant not done yet drops. */
  private goOffline (id: string, now: number): void {
    const t = this.terminals.remove(id)
    const r = this.current
    if (t === undefined || r === null || this.phase !== 'EXECUTING') return
    if (r.participants.has(id) && !r.done.has(id) && !r.dropped.has(id)) {
      r.dropped.add(id)
      this.changes.dropped.push(id)
      this.checkEnd(now)
    }
  }

  /** Refresh lastSeen of terminals whose HTTP long-poll is pending (they count as heard from). */
  hold (ids: readonly string[], now: number): void {
    this.terminals.checkRoom(ids) // refuse before touching anyone
    for (const id of ids) this.terminals.touch(id, {}, now)
  }

  // --- operators ------------------------------------------------------------------------------

  ctl (op: CtlOp, now: number): void {
    switch (op.op) {
      case 'configure': this.configure(op.config, now); break
      case 'pause': this.configure({ paused: true }, now); break
      case 'resume': this.configure({ paused: false }, now); break
      case 'abort':
        if (this.phase !== 'EXECUTING') throw new RgError('bad_request', `no round is executing (phase ${this.phase})`)
        this.endRound('aborted', now, true)
        break
      case 'release': this.forceRelease(now); break
      case 'kick':
        this.goOffline(op.clientId, now)
        this.events.push({ type: 'kicked', group: this.name, clientId: op.clientId })
        break
      case 'submit': case 'cancel':
        throw new RgError('bad_request', `${op.op} goes through the job methods`)
    }
  }

  /** A whole configuration (PUT) or a validated partial one (PATCH, ctl configure, the config file). */
  configure (patch: Partial<GroupConfig>, now: number): void {
    const next = { ...this.config, ...patch }
    // a change of the group's payload ends a retry chain of the group's own payload
    if ('payload' in patch && this.retry !== null && this.retry.job === null &&
        JSON.stringify(patch.payload) !== JSON.stringify(this.config.payload)) this.retry = null
    // a new schedule starts now: its earlier ticks are not missed
    if (next.schedule !== this.config.schedule || next.scheduleTz !== this.config.scheduleTz) {
      this.lastTick = Math.max(this.lastTick, now)
      this.evalTick = Math.max(this.evalTick, now)
    }
    this.config = next
    this.changes.config = true
  }

  // --- jobs -----------------------------------------------------------------------------------

  submitJob (id: string, payload: unknown, priority: number, now: number): { job: Job, created: boolean } {
    const res = this.jobs.submit(id, payload, priority, now, this.limits.maxQueuedJobs)
    if (res.created) this.events.push({ type: 'job', job: publicJob(res.job) })
    return res
  }

  /** Cancel a queued job, or abort the round of a running one (or drop its pending retry). */
  cancelJob (id: string, now: number): Job {
    const job = this.jobs.get(id)
    if (job === undefined) throw new RgError('unknown_job', `no job ${id} in group ${this.name}`)
    if (job.state === 'queued') {
      this.jobs.cancelQueued(job, now, this.limits.historyLimit)
    } else if (job.state === 'running') {
      if (this.phase === 'EXECUTING' && this.current?.record.job === id) {
        this.endRound('aborted', now, true, 'cancelled')
        return publicJob(job)
      }
      if (this.retry?.job === id) this.retry = null
      this.jobs.finish(job, 'cancelled', now, this.limits.historyLimit)
    } else {
      throw new RgError('bad_request', `job ${id} is already ${job.state}`)
    }
    const pub = publicJob(job)
    this.events.push({ type: 'job', job: pub })
    return pub
  }

  // --- time -----------------------------------------------------------------------------------

  tick (now: number): void {
    for (const id of this.terminals.silentSince(now - this.config.offlineAfterMs)) this.goOffline(id, now)
    if (this.phase === 'EXECUTING' && this.current !== null && now >= this.current.record.deadline) {
      this.endRound('timeout', now, false)
    }
    if (this.phase === 'RESET' && this.resetUntil !== null && now >= this.resetUntil) this.toWaiting()
  }

  /**
   * After every transition: scheduled ticks, then release at once if the rule now holds. A retry
   * in a scheduled group does not wait for another tick (a daily job would retry the next day):
   * it reruns the tick's round once its backoff has passed and the rule holds.
   */
  settle (now: number): void {
    const scheduled = this.config.schedule !== null
    if (scheduled && this.retry === null) { settleTicks(this, now); return }
    if (blocker(this, now) === null) { this.freeze(now, now + this.config.startDelayMs); return }
    if (scheduled) settleTicks(this, now)
  }

  // --- views ----------------------------------------------------------------------------------

  state (): GroupState {
    const t = this.terminals
    const r = this.current
    return {
      group: this.name,
      phase: this.phase,
      round: this.round,
      attempt: this.phase === 'EXECUTING' && r !== null ? r.record.attempt : (this.retry?.attempt ?? 1),
      paused: this.config.paused,
      need: this.config.need,
      bossNeed: this.config.bossNeed,
      online: t.onlineSmall + t.onlineBoss,
      onlineBoss: t.onlineBoss,
      ready: t.readySmall.size + t.readyBoss.size,
      readyBoss: t.readyBoss.size,
      participants: r?.size ?? 0,
      done: r?.done.size ?? 0,
      dropped: r?.dropped.size ?? 0,
      releasedAt: this.releasedAt,
      startAt: r?.record.startAt ?? null,
      nextTick: nextTickOf(this),
      missed: this.missed,
      queued: this.jobs.queued,
      updatedAt: this.updatedAt
    }
  }

  /** The earliest instant a clock-driven rule may change this group. */
  timing (now: number): GroupTiming {
    const at: number[] = []
    if (this.phase === 'RESET' && this.resetUntil !== null) at.push(this.resetUntil)
    if (this.phase === 'EXECUTING' && this.current !== null) at.push(this.current.record.deadline)
    if (this.phase === 'WAITING' && this.retry !== null && this.retry.at > now) at.push(this.retry.at)
    const tick = nextTickOf(this)
    if (tick !== null) {
      const due = tick - this.config.startDelayMs
      at.push(due > now ? due : Math.max(due, tick + this.config.misfireMs - this.config.startDelayMs))
    }
    return { wakeAt: at.length > 0 ? Math.min(...at) : null }
  }

  /** A fingerprint of everything `state` shows except updatedAt: equal means nothing changed. */
  fingerprint (): string {
    const t = this.terminals
    const r = this.current
    return `${this.phase}|${this.round}|${this.config.paused ? 1 : 0}|${this.config.need}|${this.config.bossNeed}|${t.onlineSmall}|${t.onlineBoss}|${t.readySmall.size}|${t.readyBoss.size}|${r?.size ?? 0}|${r?.done.size ?? 0}|${r?.dropped.size ?? 0}|${this.missed}|${this.jobs.queued}|${this.lastTick}|${this.retry?.attempt ?? 1}`
  }

  scalars (): Scalars {
    return {
      phase: this.phase, round: this.round, releasedAt: this.releasedAt, resetUntil: this.resetUntil,
      lastTick: this.lastTick, evalTick: this.evalTick, missed: this.missed, retry: this.retry, updatedAt: this.updatedAt
    }
  }

  /** Put the scalars back as they were stored (embedded store start-up). */
  restoreScalars (s: Scalars): void {
    this.phase = s.phase
    this.round = s.round
    this.releasedAt = s.releasedAt
    this.resetUntil = s.resetUntil
    this.lastTick = s.lastTick
    this.evalTick = s.evalTick
    this.missed = s.missed
    this.retry = s.retry
    this.updatedAt = s.updatedAt
  }

  /** Start a new transition's bookkeeping. */
  begin (): void {
    this.events = []
    this.changes = noChanges()
    this.terminals.dirty.clear()
    this.jobs.dirty.clear()
  }

  // --- the rules ------------------------------------------------------------------------------

  private forceRelease (now: number): void {
    if (this.config.paused) throw new RgError('bad_request', 'the group is paused')
    if (this.phase !== 'WAITING') throw new RgError('bad_request', `the group is not waiting (phase ${this.phase})`)
    const t = this.terminals
    const { need, bossNeed } = this.config
    const smalls = need > 0 ? Math.min(need, t.readySmall.size) : t.readySmall.size
    const bosses = bossNeed > 0 ? Math.min(bossNeed, t.readyBoss.size) : t.readyBoss.size
    if (smalls + bosses < 1) throw new RgError('bad_request', 'nobody is ready')
    this.freeze(now, now + this.config.startDelayMs, smalls, bosses)
  }

  /** Release: freeze the participants, take the job (or the retry), start the round. */
  freeze (now: number, startAt: number, smallCount?: number, bossCount?: number): void {
    const t = this.terminals
    const nSmall = smallCount ?? Math.min(this.config.need, t.onlineSmall)
    const nBoss = bossCount ?? this.config.bossNeed
    const smalls = select(this.config.selection, t.readySmall.values(), nSmall)
    const bosses = select('fifo', t.readyBoss.values(), nBoss) // bosses: earliest ready first
    this.round += 1
    const { attempt, job, payload } = this.takeWork(now)
    const { participants, bossIds } = t.take(smalls, bosses, this.round)
    const record: ReleaseRecord = {
      group: this.name,
      round: this.round,
      attempt,
      job,
      releasedAt: now,
      startAt,
      deadline: startAt + this.config.execTimeoutMs,
      participants,
      bosses: bossIds,
      payload
    }
    this.phase = 'EXECUTING'
    this.releasedAt = now
    this.current = new Round(record)
    this.changes.release = record
    this.events.push({ type: 'released', release: record })
  }

  /** What the next round runs: the pending retry, else the next queued job, else the group's payload. */
  private takeWork (now: number): { attempt: number, job: string | null, payload: unknown } {
    const retry = this.retry
    this.retry = null
    const queued = retry === null ? this.jobs.peek() : undefined
    const job = retry !== null ? (retry.job === null ? undefined : this.jobs.get(retry.job)) : queued
    const attempt = retry?.attempt ?? 1
    if (job === undefined) return { attempt, job: null, payload: this.config.payload }
    this.jobs.start(job, this.round, attempt, now)
    this.events.push({ type: 'job', job: publicJob(job) })
    return { attempt, job: job.id, payload: job.payload }
  }

  private checkEnd (now: number): void {
    if (this.phase !== 'EXECUTING' || this.current === null) return
    const outcome = this.current.verdict(this.config)
    if (outcome !== null) this.endRound(outcome, now, false)
  }

  /**
   * End the round: its summary into the history, retries and jobs decided (PROTOCOL sections 3
   * and 10), RESET. `byOperator`: an abort or a job cancel, which ends any retry chain.
   */
  private endRound (outcome: Outcome, now: number, byOperator: boolean, jobState: 'cancelled' | 'failed' = 'failed'): void {
    const r = this.current
    if (r === null) return
    const rec = r.record
    const summary = r.summary(outcome, now)
    this.changes.ended = summary
    this.events.push({ type: 'ended', summary })

    const failedByRule = outcome === 'timeout' || (outcome === 'aborted' && !byOperator)
    this.retry = null
    if (failedByRule && rec.attempt <= this.config.retry.max) {
      const attempt = rec.attempt + 1
      this.retry = { attempt, at: now + retryBackoff(this.config.retry, attempt), job: rec.job }
      this.events.push({ type: 'retry', group: this.name, round: rec.round, attempt, at: this.retry.at, job: rec.job })
    } else if (failedByRule && this.config.retry.max > 0) {
      this.events.push({ type: 'exhausted', group: this.name, round: rec.round, attempt: rec.attempt, job: rec.job })
    }
    const job = rec.job === null ? undefined : this.jobs.get(rec.job)
    if (job !== undefined) {
      const state = outcome === 'completed' ? 'completed' : this.retry !== null ? null : byOperator ? jobState : 'failed'
      this.jobs.roundEnded(job, summary, state, now, this.limits.historyLimit)
      this.events.push({ type: 'job', job: publicJob(job) })
    }

    this.current = null
    this.phase = 'RESET'
    this.resetUntil = now + this.config.resetMs
    if (this.config.resetMs === 0) this.toWaiting()
  }

  private toWaiting (): void {
    this.phase = 'WAITING'
    this.resetUntil = null
  }
}
