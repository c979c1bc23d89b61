// The round engine: the one entry point both doors (MQTT hooks, HTTP gateway) call. It validates
// input, applies it to the store in one atomic transition, and turns what the transition caused
// into events. It runs the clocks (eviction sweep, execution deadline, end of RESET) and keeps
// this process's copy of every executing round's release for instant, I/O-free look-ups.
// It knows nothing of MQTT or HTTP.
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { RgError } from '../../errors.js'
import { LocalBus, type Bus, type BusEvent } from './bus.js'
import { DEFAULT_GROUP_CONFIG, mergeConfig, parsePartialConfig, publicConfig } from './group-config.js'
import { ClockOffset } from './clock.js'
import { ActiveRelease } from './release.js'
import type { GroupSnapshot, Store } from './store.js'
import type { GroupConfig, GroupState, OpResult, Phase, RoundSummary, TerminalView } from './types.js'
import { asBody, checkClientId, checkGroupName, parseCtl, parseDone, parseHeartbeat } from './validate.js'

export interface EngineOptions {
  store: Store
  bus?: Bus
  logger: Logger
  /** create unknown groups on first use, with `groupDefaults` */
  autoCreateGroups: boolean
  groupDefaults?: Partial<GroupConfig>
  /** groups declared in the configuration file, created at start if missing */
  groups?: Record<string, Partial<GroupConfig>>
  /** how often silent terminals are looked for (PROTOCOL: at least once a second) */
  sweepMs?: number
}

export interface EngineEvents {
  /** a round was released (in any process of the cluster) */
  release: [release: ActiveRelease]
  /** a round ended; `local` is true in the process that ended it (it publishes the summary) */
  roundEnd: [summary: RoundSummary, local: boolean]
  /** what `state` shows changed, through this process */
  changed: [state: GroupState, phaseChanged: boolean]
  kick: [group: string, clientId: string]
  /** a terminal left (in any process): its pending long-poll is answered at once */
  leave: [group: string, clientId: string]
  deleted: [group: string]
}

export class Engine extends EventEmitter<EngineEvents> {
  readonly store: Store
  readonly bus: Bus
  readonly defaults: GroupConfig
  private readonly log: Logger
  private readonly opts: EngineOptions
  private readonly active = new Map<string, ActiveRelease>()
  private readonly phases = new Map<string, Phase>()
  private readonly timers = new Map<string, { at: number, timer: NodeJS.Timeout }>()
  private readonly holds = new Map<string, Map<string, number>>()
  private readonly ticking = new Set<string>()
  /** groups whose pending long-polls could not be held (logged once until it works again) */
  private readonly holdFailing = new Set<string>()
  /** deleted groups → their last round, and when: a late release of such a round is stale */
  private readonly deletedRounds = new Map<string, { round: number, at: number }>()
  /** the store's clock minus this process's (Redis TIME in cluster mode), for the timers */
  private readonly clock = new ClockOffset()
  private sweeper: NodeJS.Timeout | null = null
  /** the sweep is failing (store unreachable): logged once when it starts and once when it ends */
  private sweepFailing = false
  private closed = false

  constructor (opts: EngineOptions) {
    super()
    this.opts = opts
    this.store = opts.store
    this.bus = opts.bus ?? new LocalBus()
    this.log = opts.logger
    this.defaults = mergeConfig(DEFAULT_GROUP_CONFIG, parsePartialConfig(opts.groupDefaults ?? {}))
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
      if (snap.release !== null && snap.state.phase === 'EXECUTING') this.active.set(g, new ActiveRelease(snap.release))
      this.schedule(g, snap.timing.resetUntil ?? snap.timing.deadline)
    }
    const sweepMs = Math.min(this.opts.sweepMs ?? 500, 1000)
    this.sweeper = setInterval(() => {
      this.sweep().then(() => {
        if (this.sweepFailing) this.log.info('sweep works again')
        this.sweepFailing = false
      }, (err) => {
        if (!this.sweepFailing) this.log.error({ err }, 'sweep failed; retrying every sweep, logged again when it works')
        this.sweepFailing = true
      })
    }, sweepMs)
    this.sweeper.unref()
  }

  async stop (): Promise<void> {
    this.closed = true
    if (this.sweeper !== null) clearInterval(this.sweeper)
    for (const t of this.timers.values()) clearTimeout(t.timer)
    this.timers.clear()
    await this.bus.close()
    await this.store.close()
  }

  // --- terminals ------------------------------------------------------------------------------

  async heartbeat (group: string, clientId: string, body: unknown): Promise<{ phase: Phase, round: number, heartbeatMs: number }> {
    const input = parseHeartbeat(body)
    const res = this.apply(await this.store.heartbeat(this.group(group), checkClientId(clientId), input, this.createOpts()))
    return { phase: res.state.phase, round: res.state.round, heartbeatMs: res.heartbeatMs }
  }

  async ready (group: string, clientId: string, body: unknown): Promise<{ phase: Phase, round: number }> {
    const input = parseHeartbeat(body)
    const res = this.apply(await this.store.ready(this.group(group), checkClientId(clientId), input, this.createOpts()))
    return { phase: res.state.phase, round: res.state.round }
  }

  async done (group: string, clientId: string, body: unknown): Promise<{ duplicate: boolean }> {
    const input = parseDone(body)
    const res = this.apply(await this.store.done(this.group(group), checkClientId(clientId), input))
    return { duplicate: res.duplicate === true }
  }

  async leave (group: string, clientId: string): Promise<Record<string, never>> {
    const g = this.group(group)
    const id = checkClientId(clientId)
    this.apply(await this.store.leave(g, id))
    // the terminal's own pending long-poll (in any process) must not hold it online again
    const ev: BusEvent = { type: 'left', group: g, clientId: id }
    this.onEvent(ev, true)
    this.bus.publish(ev)
    return {}
  }

  /**
   * A terminal's HTTP long-poll is pending: it counts as heard from until the returned function
   * is called (PROTOCOL section 3, liveness). The first hold is a heartbeat.
   */
  async hold (group: string, clientId: string, body: unknown = {}): Promise<() => void> {
    const g = this.group(group)
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

  /** The participant's release if `clientId` takes part in the round executing now. */
  releaseOf (group: string): ActiveRelease | null {
    return this.active.get(group) ?? null
  }

  activeReleases (): IterableIterator<ActiveRelease> {
    return this.active.values()
  }

  // --- operators and viewers ------------------------------------------------------------------

  async ctl (group: string, body: unknown): Promise<{ ok: true }> {
    const op = parseCtl(body)
    this.apply(await this.store.ctl(this.group(group), op))
    return { ok: true }
  }

  /** PUT: the whole configuration; keys not given take the server's group defaults. */
  async putGroup (group: string, body: unknown): Promise<{ config: GroupConfig, state: GroupState }> {
    const cfg = mergeConfig(this.defaults, parsePartialConfig(asBody(body)))
    const res = this.apply(await this.store.putGroup(this.group(group), cfg))
    return { config: publicConfig(cfg), state: res.state }
  }

  /** PATCH: only the keys given change. */
  async patchGroup (group: string, body: unknown): Promise<{ config: GroupConfig, state: GroupState }> {
    const patch = parsePartialConfig(asBody(body))
    this.apply(await this.store.ctl(this.group(group), { op: 'configure', config: patch }))
    return await this.getGroup(group)
  }

  async deleteGroup (group: string): Promise<void> {
    const round = await this.store.deleteGroup(this.group(group))
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
    return await this.store.terminals(this.group(group))
  }

  async rounds (group: string, limit = 50, before?: number): Promise<RoundSummary[]> {
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RgError('bad_request', 'limit must be a whole number from 1 to 1000')
    if (before !== undefined && (!Number.isInteger(before) || before < 0)) throw new RgError('bad_request', 'before must be a round number')
    return await this.store.rounds(this.group(group), { limit, before })
  }

  async state (group: string): Promise<GroupState> {
    return (await this.snapshot(group)).state
  }

  // --- internals ------------------------------------------------------------------------------

  private group (group: string): string {
    return checkGroupName(group)
  }

  /**
   * A group declared in the configuration file (PROTOCOL section 8): created when missing, and
   * when it exists, every key the file names is put back to the file's value (one log line each).
   */
  private async declare (name: string, patch: Partial<GroupConfig>): Promise<void> {
    const res = this.apply(await this.store.ensureGroup(name, mergeConfig(this.defaults, patch)))
    if (res.changed) return // just created, from the file
    const stored = (await this.snapshot(name)).config
    const back: Partial<GroupConfig> = {}
    for (const [key, value] of Object.entries(patch) as Array<[keyof GroupConfig, unknown]>) {
      if (JSON.stringify(stored[key]) === JSON.stringify(value)) continue
      Object.assign(back, { [key]: value })
      this.log.info({ group: name, key, old: stored[key], new: value }, 'configuration file puts a group key back')
    }
    if (Object.keys(back).length > 0) this.apply(await this.store.ctl(name, { op: 'configure', config: back }))
  }

  private createOpts (): { createWith?: GroupConfig } {
    return this.opts.autoCreateGroups ? { createWith: this.defaults } : {}
  }

  private async snapshot (group: string): Promise<GroupSnapshot> {
    const snap = await this.store.getGroup(this.group(group))
    if (snap === null) throw new RgError('unknown_group', `no group named ${group}`)
    return snap
  }

  /** Everything a transition caused: events out on the bus, state changes, the next timer. */
  private apply (res: OpResult): OpResult {
    this.clock.sample(res.now)
    const s = res.state
    for (const ev of res.events) {
      this.onEvent(ev, true)
      this.bus.publish(ev)
    }
    const before = this.phases.get(s.group)
    const phaseChanged = before !== s.phase
    this.phases.set(s.group, s.phase)
    if (res.changed || phaseChanged) this.notify('changed', s, phaseChanged)
    this.schedule(s.group, res.timing.resetUntil ?? res.timing.deadline)
    return res
  }

  /**
   * Tell the listeners (the doors, metrics). The one place listener faults are isolated: a listener
   * that throws is logged and the others still run; the transition that caused the event stands.
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
        const rel = new ActiveRelease(ev.release)
        const cur = this.active.get(rel.group)
        if (cur !== undefined && cur.round >= rel.round) return
        const gone = this.deletedRounds.get(rel.group)
        if (gone !== undefined && rel.round <= gone.round) return // the group was deleted since
        this.active.set(rel.group, rel)
        this.log.info({ group: rel.group, round: rel.round, participants: rel.size }, 'round released')
        this.notify('release', rel)
        break
      }
      case 'ended': {
        const s = ev.summary
        const cur = this.active.get(s.group)
        if (cur !== undefined && cur.round <= s.round) this.active.delete(s.group)
        if (local) {
          this.log.info({ group: s.group, round: s.round, outcome: s.outcome, done: s.done.length, dropped: s.dropped.length }, 'round ended')
        }
        this.notify('roundEnd', s, local)
        break
      }
      case 'kicked':
        this.notify('kick', ev.group, ev.clientId)
        break
      case 'left':
        this.notify('leave', ev.group, ev.clientId)
        break
      case 'deleted':
        this.forgetDeleted(ev.group, ev.round)
        if ((this.active.get(ev.group)?.round ?? 0) <= ev.round) this.active.delete(ev.group)
        this.phases.delete(ev.group)
        this.holds.delete(ev.group)
        this.clearTimer(ev.group)
        this.notify('deleted', ev.group)
        break
    }
  }

  private forgetDeleted (group: string, round: number): void {
    const now = Date.now()
    // bus events arrive within moments: a mark older than a minute has done its work
    for (const [g, m] of this.deletedRounds) if (now - m.at > 60000) this.deletedRounds.delete(g)
    const prev = this.deletedRounds.get(group)
    this.deletedRounds.set(group, { round: Math.max(round, prev?.round ?? 0), at: now })
  }

  /** One precise timer per group, for the earliest time-driven transition (`at` on the store's clock). */
  private schedule (group: string, at: number | null): void {
    const cur = this.timers.get(group)
    if (at === null) { this.clearTimer(group); return }
    if (cur !== undefined && cur.at === at) return
    if (cur !== undefined) clearTimeout(cur.timer)
    if (this.closed) return
    const timer = setTimeout(() => {
      this.timers.delete(group)
      this.tick(group).catch((err) => this.log.error({ err, group }, 'timer tick failed'))
    }, Math.max(0, at - this.clock.now()) + 1)
    timer.unref()
    this.timers.set(group, { at, timer })
  }

  private clearTimer (group: string): void {
    const cur = this.timers.get(group)
    if (cur !== undefined) { clearTimeout(cur.timer); this.timers.delete(group) }
  }

  private async tick (group: string): Promise<void> {
    if (this.closed || this.ticking.has(group)) return
    this.ticking.add(group)
    try {
      const held = this.holds.get(group)
      if (held !== undefined && held.size > 0) await this.refreshHolds(group, [...held.keys()])
      this.apply(await this.store.tick(group))
    } catch (err) {
      if (!(err instanceof RgError && err.code === 'unknown_group')) throw err
    } finally {
      this.ticking.delete(group)
    }
  }

  /**
   * Count the terminals whose long-polls are pending as heard from. A refusal (a full group) is
   * logged once and never stops the tick that follows: eviction, timeouts and RESET go on.
   */
  private async refreshHolds (group: string, ids: string[]): Promise<void> {
    try {
      this.apply(await this.store.hold(group, ids))
      if (this.holdFailing.delete(group)) this.log.info({ group }, 'pending long-polls are held again')
    } catch (err) {
      if (!(err instanceof RgError) || err.code === 'unknown_group') throw err
      if (!this.holdFailing.has(group)) this.log.warn({ group, err: err.message }, 'pending long-polls cannot be held; the group is swept anyway')
      this.holdFailing.add(group)
    }
  }

  private async sweep (): Promise<void> {
    if (this.closed) return
    const groups = await this.store.listGroups()
    await Promise.all(groups.map(async (g) => await this.tick(g)))
  }
}

