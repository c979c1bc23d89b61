// The engine's clocks: one precise timer per group for its next time-driven transition (end of
// RESET, the execution deadline, a retry's backoff, a scheduled tick), and a sweep over every group
// at least once a second (PROTOCOL section 3: silent terminals are evicted). Times come from the
// store (Redis TIME in cluster mode): the offset between the store's clock and this process's is
// learnt from every transition, so timers fire when the store's clock says, not this machine's.
import type { Logger } from 'pino'

export interface ClockOptions {
  logger: Logger
  /** how often every group is ticked (at most 1000 ms) */
  sweepMs: number
  /** run one group's time-driven transition */
  tick: (group: string) => Promise<void>
  /** every group there is (for the sweep) */
  groups: () => Promise<string[]>
}

export class GroupClock {
  private readonly opts: ClockOptions
  private readonly timers = new Map<string, { at: number, timer: NodeJS.Timeout }>()
  private sweeper: NodeJS.Timeout | null = null
  /** the store's clock minus this process's (ms) */
  private offset = 0
  /** the sweep is failing (store unreachable): logged once when it starts and once when it ends */
  private failing = false
  private stopped = false

  constructor (opts: ClockOptions) {
    this.opts = opts
  }

  /** The broker's clock: the store's, read from this process's clock and the learnt offset. */
  now (): number {
    return Date.now() + this.offset
  }

  /** A transition ran at `storeNow` on the store's clock: learn the offset from it. */
  observe (storeNow: number): void {
    this.offset = storeNow - Date.now()
  }

  start (): void {
    const sweepMs = Math.min(this.opts.sweepMs, 1000)
    this.sweeper = setInterval(() => {
      this.sweep().then(() => {
        if (this.failing) this.opts.logger.info('sweep works again')
        this.failing = false
      }, (err: unknown) => {
        if (!this.failing) this.opts.logger.error({ err }, 'sweep failed; retrying every sweep, logged again when it works')
        this.failing = true
      })
    }, sweepMs)
    this.sweeper.unref()
  }

  stop (): void {
    this.stopped = true
    if (this.sweeper !== null) clearInterval(this.sweeper)
    for (const t of this.timers.values()) clearTimeout(t.timer)
    this.timers.clear()
  }

  /** Wake `group` at `at` (the store's clock), or never (null). One timer per group. */
  wake (group: string, at: number | null): void {
    const cur = this.timers.get(group)
    if (at === null) { this.forget(group); return }
    if (cur !== undefined && cur.at === at) return
    if (cur !== undefined) clearTimeout(cur.timer)
    if (this.stopped) return
    const timer = setTimeout(() => {
      this.timers.delete(group)
      this.opts.tick(group).catch((err: unknown) => this.opts.logger.error({ err, group }, 'timer tick failed'))
    }, Math.max(0, at - this.now()) + 1)
    timer.unref()
    this.timers.set(group, { at, timer })
  }

  forget (group: string): void {
    const cur = this.timers.get(group)
    if (cur !== undefined) { clearTimeout(cur.timer); this.timers.delete(group) }
  }

  private async sweep (): Promise<void> {
    if (this.stopped) return
    const groups = await this.opts.groups()
    await Promise.all(groups.map(async (g) => await this.opts.tick(g)))
  }
}
