// The round engine: the one entry point both doors (MQTT hooks, HTTP gateway) call. It validates
// input, applies it to the store in one atomic transition, and turns what the transition caused
// into events. It runs the clocks (clock.ts) and keeps this process's copy of every executing
// round's release for instant, I/O-free look-ups. It knows nothing of MQTT or HTTP.
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { RgError } from '../../errors.js'
import { LocalBus, type Bus, type BusEvent } from './bus.js'
import { GroupClock } from './clock.js'
import { DEFAULT_GROUP_CONFIG, mergeConfig, parsePartialConfig, publicConfig } from './group-config.js'
import { ActiveRelease } from './release.js'
import type { GroupSnapshot, Store } from './store.js'
import type {
  GroupConfig, GroupState, Job, JobState, OpResult, Phase, RoundSummary, StoreEvent, TerminalRound, TerminalView
} from './types.js'
import {
  asBody, checkClientId, checkGroupName, checkJobId, parseCtl, parseDone, parseHeartbeat, parseJob, parseQueryInt
} from './validate.js'

export interface EngineOptions {
  store: Store
  bus?: Bus
  logger: Logger
  /** create unknown groups on first use, with `groupDefaults` */
  autoCreateGroups: boolean
  groupDefaults?: Partial<GroupConfig>
  /** groups declared in the configuration file: created at start, and the keys they name put back */
  groups?: Record<string, Partial<GroupConfig>>
  /** how often silent terminals are looked for (PROTOCOL: at least once a second) */
  sweepMs?: number
}

/** What a transition caused that only the process which made it reports (alerts, job topics). */
export type Notice = Extract<StoreEvent, { type: 'missed' | 'retry' | 'exhausted' }>

export interface EngineEvents {
  /** a round was released (in any process of the cluster) */
  release: [release: ActiveRelease]
  /** a round ended; `local` is true in the process that ended it (it publishes the summary) */
  roundEnd: [summary: RoundSummary, local: boolean]
  /** what `state` shows changed, through this process */
  changed: [state: GroupState, phaseChanged: boolean]
  kick: [group: string, clientId: string]
  /** a terminal left (its leave or will): its pending long-poll ends */
  left: [group: string, clientId: string]
  deleted: [group: string]
  /** a job changed state, through this process */
  job: [job: Job]
  /** a scheduled tick was missed, a retry scheduled, retries exhausted: through this process */
  notice: [notice: Notice]
}

/** Events every process of a cluster must see; the rest are told only where they happened. */
const SHARED = new Set(['released', 'ended', 'kicked', 'left', 'deleted'])

export class Engine extends EventEmitter<EngineEvents> {
  readonly store: Store
  readonly bus: Bus
  readonly defaults: GroupConfig
  private readonly log: Logger
  private readonly opts: EngineOptions
  private readonly clock: GroupClock
  private readonly active = new Map<string, ActiveRelease>()
  private readonly phases = new Map<string, Phase>()
  /** the last round of each group deleted while this process ran: older releases are stale */
  private readonly deletedAt = new Map<string, number>()
  private readonly holds = new Map<string, Map<string, number>>()
  private readonly ticking = new Set<string>()
  /** groups whose pending long-polls could not be held (logged once until it works again) */
  private readonly holdFailing = new Set<string>()
  private closed = false

  constructor (opts: EngineOptions) {
    super()
    this.opts = opts
    this.store = opts.store
    this.bus = opts.bus ?? new LocalBus()
    this.log = opts.logger
    this.defaults = mergeConfig(DEFAULT_GROUP_CONFIG, parsePartialConfig(opts.groupDefaults ?? {}))
    this.clock = new GroupClock({
      logger: opts.logger,
      sweepMs: opts.sweepMs ?? 500,
      tick: async (g) => await this.tick(g),
      groups: async () => await this.store.listGroups()
    })
  }

  async start (): Promise<void> {
    this.bus.subscribe((ev) => this.onEvent(ev, false))
    await this.bus.open()
    await this.store.open()
    for (const [name, cfg] of Object.entries(this.opts.groups ?? {})) await this.declare(checkGroupName(name), parsePartialConfig(cfg))
    for (const g of await this.store.listGroups()) {
      const snap = await this.store.getGroup(g)
      if (snap === null) continue
      this.phases.set(g, snap.state.phase)
      if (snap.release !== null && snap.state.phase === 'EXECUTING') this.active.set(g, new ActiveRelease(snap.release, () => this.now()))
      this.clock.wake(g, snap.timing.wakeAt)
    }
    this.clock.start()
  }

  async stop (): Promise<void> {
    this.closed = true
    this.clock.stop()
    await this.bus.close()
    await this.store.close()
  }

  /** The broker's clock (the store's: Redis TIME in cluster mode), epoch ms. */
  now (): number {
    return this.clock.now()
  }

  // --- terminals ------------------------------------------------------------------------------

  async heartbeat (group: string, clientId: string, body: unknown): Promise<{ phase: Phase, round: number, heartbeatMs: number }> {
    const input = parseHeartbeat(body)
    const res = this.apply(await this.store.heartbeat(checkGroupName(group), checkClientId(clientId), input, this.createOpts()))
    return { phase: res.state.phase, round: res.state.round, heartbeatMs: res.heartbeatMs }
  }

  async ready (group: string, clientId: string, body: unknown): Promise<{ phase: Phase, round: number }> {
    const input = parseHeartbeat(body)
    const res = this.apply(await this.store.ready(checkGroupName(group), checkClientId(clientId), input, this.createOpts()))
    return { phase: res.state.phase, round: res.state.round }
  }

  async done (group: string, clientId: string, body: unknown): Promise<{ duplicate: boolean }> {
    const input = parseDone(body)
    const res = this.apply(await this.store.done(checkGroupName(group), checkClientId(clientId), input))
    return { duplicate: res.duplicate === true }
  }

  async leave (group: string, clientId: string): Promise<Record<string, never>> {
    this.apply(await this.store.leave(checkGroupName(group), checkClientId(clientId)))
    return {}
  }

  /**
   * A terminal's HTTP long-poll is pending: it counts as heard from until the returned function
   * is called (PROTOCOL section 3, liveness). The first hold is a heartbeat.
   */
  async hold (group: string, clientId: string, body: unknown = {}): Promise<() => void> {
    const g = checkGroupName(group)
    const id = checkClientId(clientId)
    const input = parseHeartbeat(body)
    this.apply(await this.store.heartbeat(g, id, input, this.createOpts()))
    let ids = this.holds.get(g)
    if (ids === undefined) this.holds.set(g, ids = new Map<string, number>())
    ids.set(id, (ids.get(id) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (ids.get(id) ?? 1) - 1
      if (n > 0) ids.set(id, n)
      else ids.delete(id)
    }
  }

  /** The release of the round `group` executes now, as this process knows it. */
  releaseOf (group: string): ActiveRelease | null {
    return this.active.get(group) ?? null
  }

  activeReleases (): IterableIterator<ActiveRelease> {
    return this.active.values()
  }

  // --- operators and viewers ------------------------------------------------------------------

  /** A ctl message (PROTOCOL sections 4 and 10): `job` is answered for submit and cancel. */
  async ctl (group: string, body: unknown): Promise<{ ok: true, job?: Job }> {
    const op = parseCtl(body)
    if (op.op === 'submit') return { ok: true, job: (await this.submitJob(group, op.job)).job }
    const res = this.apply(await this.store.ctl(checkGroupName(group), op))
    return res.job === undefined ? { ok: true } : { ok: true, job: res.job }
  }

  /** PUT: the whole configuration; keys not given take the server's group defaults. */
  async putGroup (group: string, body: unknown): Promise<{ config: GroupConfig, state: GroupState }> {
    const cfg = mergeConfig(this.defaults, parsePartialConfig(asBody(body)))
    const res = this.apply(await this.store.putGroup(checkGroupName(group), cfg))
    return { config: publicConfig(cfg), state: res.state }
  }

  /** PATCH: only the keys given change. */
  async patchGroup (group: string, body: unknown): Promise<{ config: GroupConfig, state: GroupState }> {
    const patch = parsePartialConfig(asBody(body))
    this.apply(await this.store.ctl(checkGroupName(group), { op: 'configure', config: patch }))
    return await this.getGroup(group)
  }

  async deleteGroup (group: string): Promise<void> {
    // the store answers the group's last round: every process then knows which releases are stale
    const round = await this.store.deleteGroup(checkGroupName(group))
    if (round === null) throw new RgError('unknown_group', `no group named ${group}`)
    const ev: BusEvent = { type: 'deleted', group, round }
    this.onEvent(ev, true)
    this.bus.publish(ev)
  }

  async getGroup (group: string): Promise<{ config: GroupConfig, state: GroupState }> {
    const snap = await this.snapshot(group)
    return { config: publicConfig(snap.config), state: snap.state }
  }

  async listGroups (): Promise<GroupState[]> {
    const out: GroupState[] = []
    for (const g of (await this.store.listGroups()).sort()) {
      const snap = await this.store.getGroup(g)
      if (snap !== null) out.push(snap.state)
    }
    return out
  }

  async terminals (group: string): Promise<TerminalView[]> {
    return await this.store.terminals(checkGroupName(group))
  }

  /** One terminal and the last rounds it took part in (the dashboard's terminal history). */
  async terminal (group: string, clientId: string, limit?: unknown): Promise<{ terminal: TerminalView | null, rounds: TerminalRound[] }> {
    const g = checkGroupName(group)
    const id = checkClientId(clientId)
    const n = parseQueryInt(limit, 'limit', 1, 1000) ?? 50
    const terminal = (await this.store.terminals(g)).find((t) => t.clientId === id) ?? null
    const rounds = await this.store.terminalRounds(g, id, n)
    if (terminal === null && rounds.length === 0) throw new RgError('unknown_group', `no terminal ${id} in group ${g}, now or in its history`)
    return { terminal, rounds }
  }

  async rounds (group: string, limit?: unknown, before?: unknown, outcome?: unknown): Promise<RoundSummary[]> {
    const n = parseQueryInt(limit, 'limit', 1, 1000) ?? 50
    const b = parseQueryInt(before, 'before', 0, Number.MAX_SAFE_INTEGER)
    if (outcome !== undefined && outcome !== 'completed' && outcome !== 'aborted' && outcome !== 'timeout') {
      throw new RgError('bad_request', 'outcome must be completed, aborted or timeout')
    }
    return await this.store.rounds(checkGroupName(group), { limit: n, before: b, outcome: outcome })
  }

  async state (group: string): Promise<GroupState> {
    return (await this.snapshot(group)).state
  }

  // --- jobs (PROTOCOL section 10) ---------------------------------------------------------------

  /** Submit a job: 201 when created, 200 with the existing job when its id was known. */
  async submitJob (group: string, body: unknown): Promise<{ job: Job, created: boolean }> {
    const input = parseJob(body)
    const res = this.apply(await this.store.ctl(checkGroupName(group), { op: 'submit', job: { ...input, id: input.id ?? randomUUID() } }))
    if (res.job === undefined) throw new RgError('unavailable', 'the store did not answer the job')
    return { job: res.job, created: res.created === true }
  }

  /** Cancel a queued job, or abort the round of a running one. */
  async cancelJob (group: string, id: string): Promise<Job> {
    const res = this.apply(await this.store.ctl(checkGroupName(group), { op: 'cancel', id: checkJobId(id) }))
    if (res.job === undefined) throw new RgError('unknown_job', `no job ${id} in group ${group}`)
    return res.job
  }

  async jobs (group: string, state?: unknown, limit?: unknown, before?: unknown): Promise<Job[]> {
    const states: JobState[] = ['queued', 'running', 'completed', 'failed', 'cancelled']
    if (state !== undefined && !states.includes(state as JobState)) throw new RgError('bad_request', `state must be one of ${states.join(', ')}`)
    const n = parseQueryInt(limit, 'limit', 1, 1000) ?? 50
    const b = before === undefined ? undefined : checkJobId(before)
    return await this.store.jobs(checkGroupName(group), { limit: n, state: state as JobState | undefined, before: b })
  }

  async job (group: string, id: string): Promise<Job> {
    const j = await this.store.job(checkGroupName(group), checkJobId(id))
    if (j === null) throw new RgError('unknown_job', `no job ${id} in group ${group}`)
    return j
  }

  // --- internals ------------------------------------------------------------------------------

  private createOpts (): { createWith?: GroupConfig } {
    return this.opts.autoCreateGroups ? { createWith: this.defaults } : {}
  }

  private async snapshot (group: string): Promise<GroupSnapshot> {
    const snap = await this.store.getGroup(checkGroupName(group))
    if (snap === null) throw new RgError('unknown_group', `no group named ${group}`)
    return snap
  }

  /** A group of the configuration file: created if missing, else the keys the file names put back. */
  private async declare (name: string, patch: Partial<GroupConfig>): Promise<void> {
    const snap = await this.store.getGroup(name)
    if (snap === null) {
      this.apply(await this.store.ensureGroup(name, mergeConfig(this.defaults, patch)))
      return
    }
    const back: Partial<GroupConfig> = {}
    for (const [key, value] of Object.entries(patch) as Array<[keyof GroupConfig, unknown]>) {
      const was = snap.config[key]
      if (JSON.stringify(was) === JSON.stringify(value)) continue
      ;(back as Record<string, unknown>)[key] = value
      this.log.info({ group: name, key, was, now: value }, 'the configuration file puts a group key back')
    }
    if (Object.keys(back).length > 0) this.apply(await this.store.ctl(name, { op: 'configure', config: back }))
  }

  /** Everything a transition caused: events, state changes, the next timer. */
  private apply (res: OpResult): OpResult {
    this.clock.observe(res.now)
    const s = res.state
    for (const ev of res.events) {
      if (SHARED.has(ev.type)) {
        this.onEvent(ev, true)
        this.bus.publish(ev)
      } else if (ev.type === 'job') {
        this.notify('job', ev.job)
      } else {
        this.notify('notice', ev as Notice)
      }
    }
    const before = this.phases.get(s.group)
    const phaseChanged = before !== s.phase
    this.phases.set(s.group, s.phase)
    if (res.changed || phaseChanged) this.notify('changed', s, phaseChanged)
    this.clock.wake(s.group, res.timing.wakeAt)
    return res
  }

  /**
   * Tell the listeners (the doors, metrics, alerts). The one place listener faults are isolated: a
   * listener that throws is logged and the others still run; the transition that caused it stands.
   */
  private notify<K extends keyof EngineEvents> (event: K, ...args: EngineEvents[K]): void {
    for (const fn of this.rawListeners(event) as Array<(...a: EngineEvents[K]) => void>) {
      try {
        fn(...args)
      } catch (err) {
        this.log.error({ err, event }, 'an engine listener failed; the transition stands')
      }
    }
  }

  /** What a transition caused, here (`local`) or in another process of the cluster (from the bus). */
  private onEvent (ev: BusEvent, local: boolean): void {
    switch (ev.type) {
      case 'released': {
        const cur = this.active.get(ev.release.group)
        const gone = this.deletedAt.get(ev.release.group)
        // a release that is not newer than what this process holds, or older than the group's deletion
        if ((cur !== undefined && cur.round >= ev.release.round) || (gone !== undefined && ev.release.round <= gone)) return
        const rel = new ActiveRelease(ev.release, () => this.now())
        this.active.set(rel.group, rel)
        this.log.info({ group: rel.group, round: rel.round, attempt: rel.record.attempt, job: rel.record.job, participants: rel.size }, 'round released')
        this.notify('release', rel)
        break
      }
      case 'ended': {
        const s = ev.summary
        const cur = this.active.get(s.group)
        if (cur !== undefined && cur.round <= s.round) this.active.delete(s.group)
        if (local) {
          this.log.info({ group: s.group, round: s.round, attempt: s.attempt, outcome: s.outcome, done: s.done.length, dropped: s.dropped.length, stragglers: s.stragglers.length }, 'round ended')
        }
        this.notify('roundEnd', s, local)
        break
      }
      case 'kicked':
        this.notify('kick', ev.group, ev.clientId)
        break
      case 'left':
        this.notify('left', ev.group, ev.clientId)
        break
      case 'deleted':
        this.deletedAt.set(ev.group, Math.max(ev.round, this.deletedAt.get(ev.group) ?? 0))
        // a deletion arriving after the group was created again and released must not end that round
        if ((this.active.get(ev.group)?.round ?? 0) <= ev.round) this.active.delete(ev.group)
        this.phases.delete(ev.group)
        this.holds.delete(ev.group)
        this.holdFailing.delete(ev.group)
        this.clock.forget(ev.group)
        this.notify('deleted', ev.group)
        break
    }
  }

  /** One group's time-driven transition: its pending long-polls count as heard from, then the clocks. */
  private async tick (group: string): Promise<void> {
    if (this.closed || this.ticking.has(group)) return
    this.ticking.add(group)
    try {
      const held = this.holds.get(group)
      if (held !== undefined && held.size > 0) {
        // a hold refused (a full group) must not stop the group's clocks: eviction, timeouts, RESET
        try {
          this.apply(await this.store.hold(group, [...held.keys()]))
          if (this.holdFailing.delete(group)) this.log.info({ group }, 'pending long-polls are held again')
        } catch (err) {
          if (!(err instanceof RgError) || err.code === 'unknown_group') throw err
          // logged once, not once a sweep, until a hold works again
          if (!this.holdFailing.has(group)) this.log.warn({ group, code: err.code, err: err.message }, 'pending long-polls cannot be held; the group is swept anyway')
          this.holdFailing.add(group)
        }
      }
      this.apply(await this.store.tick(group))
    } catch (err) {
      if (!(err instanceof RgError && err.code === 'unknown_group')) throw err
    } finally {
      this.ticking.delete(group)
    }
  }
}
