// The engine's core: what a transition caused, handled in one place. It keeps this process's copy
// of every executing round's release, runs the clocks (clock.ts), the broker-wide budgets
// (budget.ts) and the graceful stop, and tells the listeners (doors, metrics, alerts). The public
// entry points both doors call are in engine.ts, which extends this class.
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { RgError } from '../../errors.js'
import { Budgets } from './budget.js'
import { LocalBus, type Bus, type BusEvent } from './bus.js'
import { GroupClock } from './clock.js'
import { DEFAULT_GROUP_CONFIG, mergeConfig, parsePartialConfig } from './group-config.js'
import { ActiveRelease } from './release.js'
import type { Store, TerminalOpOptions } from './store.js'
import type { GroupConfig, GroupState, Job, OpResult, Phase, RoundSummary, StoreEvent } from './types.js'
import { checkGroupName } from './validate.js'

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
  /** terminals in all groups (default: no bound beyond the store's per group) */
  maxTerminals?: number
  /** bytes of terminal `meta` kept in all (default: no bound beyond 1 KiB a terminal) */
  maxMetaBytes?: number
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

export class EngineCore extends EventEmitter<EngineEvents> {
  readonly store: Store
  readonly bus: Bus
  readonly defaults: GroupConfig
  protected readonly log: Logger
  protected readonly opts: EngineOptions
  protected readonly budgets: Budgets
  protected readonly active = new Map<string, ActiveRelease>()
  protected readonly phases = new Map<string, Phase>()
  protected readonly holds = new Map<string, Map<string, number>>()
  private readonly clock: GroupClock
  /** the last round of each group deleted while this process ran: older releases are stale */
  private readonly deletedAt = new Map<string, number>()
  private readonly ticking = new Set<string>()
  /** groups whose pending long-polls could not be held (logged once until it works again) */
  private readonly holdFailing = new Set<string>()
  private closed = false
  /** quiesce(): no new rounds from this process (it is stopping) */
  private quiescing = false

  constructor (opts: EngineOptions) {
    super()
    this.opts = opts
    this.store = opts.store
    this.bus = opts.bus ?? new LocalBus()
    this.log = opts.logger
    this.defaults = mergeConfig(DEFAULT_GROUP_CONFIG, parsePartialConfig(opts.groupDefaults ?? {}))
    this.budgets = new Budgets(opts.maxTerminals, opts.maxMetaBytes)
    this.clock = new GroupClock({
      logger: opts.logger,
      sweepMs: opts.sweepMs ?? 500,
      tick: async (g) => await this.tick(g),
      groups: async () => {
        await this.budgets.prune(async (g) => (await this.store.getGroup(g))?.config.offlineAfterMs ?? null)
        return await this.store.listGroups()
      }
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
      this.budgets.observe(g, snap.state.online)
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

  // --- stopping -------------------------------------------------------------------------------

  /**
   * Release no new round (a process about to stop, waiting for its executing rounds to end): from
   * now on `ready` is refused `unavailable`, and so is every call on a group that is not
   * EXECUTING; such groups are no longer ticked (no sweep, no end of RESET). Executing rounds go
   * on: done, leave, dropouts and timeouts end them as usual. A group whose resetMs is 0 may still
   * release in the very transition that ends its round (the store decides both at once).
   */
  quiesce (): void {
    this.quiescing = true
  }

  /** Groups with a round executing (released and not ended, in any process of a cluster). */
  activeGroups (): string[] {
    return [...this.active.keys()]
  }

  protected checkQuiet (group: string, what: string): void {
    if (this.quiescing && (what === 'ready' || this.phases.get(group) !== 'EXECUTING')) {
      throw new RgError('unavailable', `the broker is stopping: ${what} is refused until it is back (no new rounds)`)
    }
  }

  /** What a terminal call may create: the group (autoCreateGroups), and up to the budget's room. */
  protected createOpts (group: string): TerminalOpOptions {
    const opts: TerminalOpOptions = this.opts.autoCreateGroups ? { createWith: this.defaults } : {}
    const room = this.budgets.roomFor(group)
    if (room !== undefined) opts.maxTerminals = room
    return opts
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
  protected apply (res: OpResult): OpResult {
    this.clock.observe(res.now)
    const s = res.state
    for (const ev of res.events) {
      if (SHARED.has(ev.type)) {
        this.share(ev)
      } else if (ev.type === 'job') {
        this.notify('job', ev.job)
      } else {
        this.notify('notice', ev as Notice)
      }
    }
    this.budgets.observe(s.group, s.online)
    const before = this.phases.get(s.group)
    const phaseChanged = before !== s.phase
    this.phases.set(s.group, s.phase)
    if (res.changed || phaseChanged) this.notify('changed', s, phaseChanged)
    this.clock.wake(s.group, res.timing.wakeAt)
    return res
  }

  /** An event every process must hear: here first, then the others through the bus. */
  protected share (ev: BusEvent): void {
    this.onEvent(ev, true)
    this.bus.publish(ev)
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
  protected onEvent (ev: BusEvent, local: boolean): void {
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
        this.budgets.drop(ev.group, ev.clientId)
        this.notify('kick', ev.group, ev.clientId)
        break
      case 'left':
        this.budgets.drop(ev.group, ev.clientId)
        this.notify('left', ev.group, ev.clientId)
        break
      case 'deleted':
        this.deletedAt.set(ev.group, Math.max(ev.round, this.deletedAt.get(ev.group) ?? 0))
        // a deletion arriving after the group was created again and released must not end that round
        if ((this.active.get(ev.group)?.round ?? 0) <= ev.round) this.active.delete(ev.group)
        this.phases.delete(ev.group)
        this.holds.delete(ev.group)
        this.holdFailing.delete(ev.group)
        this.budgets.forget(ev.group)
        this.clock.forget(ev.group)
        this.notify('deleted', ev.group)
        break
    }
  }

  /** One group's time-driven transition: its pending long-polls count as heard from, then the clocks. */
  private async tick (group: string): Promise<void> {
    if (this.closed || this.ticking.has(group)) return
    if (this.quiescing && this.phases.get(group) !== 'EXECUTING') return
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
