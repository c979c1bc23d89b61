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
import { ActiveRelease } from './release.js'
import { MetaBudget, TerminalBudget } from './budget.js'
import type { GroupSnapshot, Store, TerminalOpOptions } from './store.js'
import type { GroupConfig, GroupState, HeartbeatInput, OpResult, Phase, RoundSummary, TerminalView } from './types.js'

/** how often the offlineAfterMs of a group holding meta is read again */
const META_PRUNE_MS = 10000
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
  /** terminals in all groups (default: no bound beyond the store's per group) */
  maxTerminals?: number
  /** bytes of terminal `meta` kept in all (default: no bound beyond 1 KiB a terminal) */
  maxMetaBytes?: number
}

export interface EngineEvents {
  /** a round was released (in any process of the cluster) */
  release: [release: ActiveRelease]
  /** a round ended; `local` is true in the process that ended it (it publishes the summary) */
  roundEnd: [summary: RoundSummary, local: boolean]
  /** what `state` shows changed, through this process */
  changed: [state: GroupState, phaseChanged: boolean]
  kick: [group: string, clientId: string]
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
  private readonly terminalBudget: TerminalBudget | null
  private readonly metaBudget: MetaBudget | null
  /** offlineAfterMs of the groups holding meta, read again every META_PRUNE_MS */
  private readonly offlineMs = new Map<string, { ms: number, at: number }>()
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
    this.terminalBudget = opts.maxTerminals !== undefined ? new TerminalBudget(opts.maxTerminals) : null
    this.metaBudget = opts.maxMetaBytes !== undefined ? new MetaBudget(opts.maxMetaBytes) : null
  }

  async start (): Promise<void> {
    this.bus.subscribe((ev) => this.onEvent(ev, false))
    await this.bus.open()
    await this.store.open()
    for (const [name, cfg] of Object.entries(this.opts.groups ?? {})) {
      checkGroupName(name)
      this.apply(await this.store.ensureGroup(name, mergeConfig(this.defaults, parsePartialConfig(cfg))))
    }
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
    const g = this.group(group)
    const id = checkClientId(clientId)
    const meta = this.metaBytes(g, id, input)
    const res = this.apply(await this.store.heartbeat(g, id, input, this.createOpts(g)))
    this.heard(g, id, meta)
    return { phase: res.state.phase, round: res.state.round, heartbeatMs: res.heartbeatMs }
  }

  async ready (group: string, clientId: string, body: unknown): Promise<{ phase: Phase, round: number }> {
    const input = parseHeartbeat(body)
    const g = this.group(group)
    const id = checkClientId(clientId)
    const meta = this.metaBytes(g, id, input)
    const res = this.apply(await this.store.ready(g, id, input, this.createOpts(g)))
    this.heard(g, id, meta)
    return { phase: res.state.phase, round: res.state.round }
  }

  async done (group: string, clientId: string, body: unknown): Promise<{ duplicate: boolean }> {
    const input = parseDone(body)
    const res = this.apply(await this.store.done(this.group(group), checkClientId(clientId), input))
    this.metaBudget?.seen(group, clientId, Date.now())
    return { duplicate: res.duplicate === true }
  }

  async leave (group: string, clientId: string): Promise<Record<string, never>> {
    this.apply(await this.store.leave(this.group(group), checkClientId(clientId)))
    this.metaBudget?.drop(group, clientId)
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
    const meta = this.metaBytes(g, id, input)
    this.apply(await this.store.heartbeat(g, id, input, this.createOpts(g)))
    this.heard(g, id, meta)
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
    if (!await this.store.deleteGroup(this.group(group))) throw new RgError('unknown_group', `no group named ${group}`)
    this.onEvent({ type: 'deleted', group }, true)
    this.bus.publish({ type: 'deleted', group })
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

  private createOpts (group: string): TerminalOpOptions {
    const opts: TerminalOpOptions = this.opts.autoCreateGroups ? { createWith: this.defaults } : {}
    if (this.terminalBudget !== null) opts.maxTerminals = this.terminalBudget.roomFor(group)
    return opts
  }

  /** The meta bytes a heartbeat or ready would keep (checked against the budget), or null. */
  private metaBytes (group: string, id: string, input: HeartbeatInput): number | null {
    if (this.metaBudget === null || input.meta === undefined) return null
    const bytes = Buffer.byteLength(JSON.stringify(input.meta))
    this.metaBudget.check(group, id, bytes)
    return bytes
  }

  private heard (group: string, id: string, meta: number | null): void {
    if (this.metaBudget === null) return
    if (meta !== null) this.metaBudget.set(group, id, meta, Date.now())
    else this.metaBudget.seen(group, id, Date.now())
  }

  /** Meta of terminals silent past their group's offlineAfterMs is no longer kept by the store. */
  private async pruneMeta (group: string): Promise<void> {
    const budget = this.metaBudget
    if (budget === null) return
    const now = Date.now()
    let o = this.offlineMs.get(group)
    if (o === undefined || now - o.at > META_PRUNE_MS) {
      const snap = await this.store.getGroup(group)
      if (snap === null) { budget.forget(group); this.offlineMs.delete(group); return }
      this.offlineMs.set(group, o = { ms: snap.config.offlineAfterMs, at: now })
    }
    budget.prune(group, now - o.ms - 1000)
  }

  private async snapshot (group: string): Promise<GroupSnapshot> {
    const snap = await this.store.getGroup(this.group(group))
    if (snap === null) throw new RgError('unknown_group', `no group named ${group}`)
    return snap
  }

  /** Everything a transition caused: events out on the bus, state changes, the next timer. */
  private apply (res: OpResult): OpResult {
    const s = res.state
    for (const ev of res.events) {
      this.onEvent(ev, true)
      this.bus.publish(ev)
    }
    this.terminalBudget?.observe(s.group, s.online)
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
        this.metaBudget?.drop(ev.group, ev.clientId)
        this.notify('kick', ev.group, ev.clientId)
        break
      case 'deleted':
        this.active.delete(ev.group)
        this.phases.delete(ev.group)
        this.holds.delete(ev.group)
        this.terminalBudget?.forget(ev.group)
        this.metaBudget?.forget(ev.group)
        this.offlineMs.delete(ev.group)
        this.clearTimer(ev.group)
        this.notify('deleted', ev.group)
        break
    }
  }

  /** One precise timer per group, for the earliest time-driven transition. */
  private schedule (group: string, at: number | null): void {
    const cur = this.timers.get(group)
    if (at === null) { this.clearTimer(group); return }
    if (cur !== undefined && cur.at === at) return
    if (cur !== undefined) clearTimeout(cur.timer)
    if (this.closed) return
    const timer = setTimeout(() => {
      this.timers.delete(group)
      this.tick(group).catch((err) => this.log.error({ err, group }, 'timer tick failed'))
    }, Math.max(0, at - Date.now()) + 1)
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
      if (held !== undefined && held.size > 0) this.apply(await this.store.hold(group, [...held.keys()]))
      this.apply(await this.store.tick(group))
    } catch (err) {
      if (!(err instanceof RgError && err.code === 'unknown_group')) throw err
    } finally {
      this.ticking.delete(group)
    }
  }

  private async sweep (): Promise<void> {
    if (this.closed) return
    const groups = await this.store.listGroups()
    await Promise.all(groups.map(async (g) => await this.tick(g)))
    if (this.metaBudget !== null) await Promise.all(this.metaBudget.holders().map(async (g) => await this.pruneMeta(g)))
  }
}
