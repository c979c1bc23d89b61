// A hashed timer wheel: entries fall into buckets of `tickMs`, one interval timer walks the
// buckets. Adding and removing is O(1) and costs no timer, so 10,000 long-polls cost one
// setInterval (running only while something is scheduled) instead of 10,000 setTimeouts.
// Entries expire at most one tick late, never early.

export interface WheelEntry {
  /** the bucket the entry sits in, or null when it is not scheduled */
  bucket: Set<WheelEntry> | null
}

export class TimerWheel<T extends WheelEntry> {
  private readonly buckets = new Map<number, Set<WheelEntry>>()
  private readonly tickMs: number
  private readonly onExpire: (expired: T[]) => void
  private readonly now: () => number
  private timer: NodeJS.Timeout | null = null
  /** the last tick whose bucket was emptied */
  private done: number
  private count = 0

  constructor (opts: { tickMs: number, onExpire: (expired: T[]) => void, now?: () => number }) {
    this.tickMs = opts.tickMs
    this.onExpire = opts.onExpire
    this.now = opts.now ?? Date.now
    this.done = Math.floor(this.now() / this.tickMs)
  }

  get size (): number {
    return this.count
  }

  /** Schedule `entry` to expire at `at` (epoch ms). */
  add (entry: T, at: number): void {
    this.remove(entry)
    if (this.timer === null) this.start()
    // never into a bucket already walked: such an entry expires on the next tick
    const tick = Math.max(Math.ceil(at / this.tickMs), this.done + 1)
    let b = this.buckets.get(tick)
    if (b === undefined) this.buckets.set(tick, b = new Set())
    b.add(entry)
    entry.bucket = b
    this.count++
  }

  remove (entry: T): void {
    const b = entry.bucket
    if (b === null) return
    b.delete(entry)
    entry.bucket = null
    this.count--
    if (this.count === 0) this.stop()
  }

  /** Everything still scheduled, unscheduled (for shutdown). */
  drain (): T[] {
    const out: T[] = []
    for (const b of this.buckets.values()) {
      for (const e of b) { e.bucket = null; out.push(e as T) }
    }
    this.buckets.clear()
    this.count = 0
    this.stop()
    return out
  }

  private start (): void {
    this.done = Math.max(this.done, Math.floor(this.now() / this.tickMs) - 1)
    this.timer = setInterval(() => this.turn(), this.tickMs)
    this.timer.unref()
  }

  private stop (): void {
    if (this.timer !== null) { clearInterval(this.timer); this.timer = null }
  }

  private turn (): void {
    const upTo = Math.floor(this.now() / this.tickMs)
    const expired: T[] = []
    for (let tick = this.done + 1; tick <= upTo; tick++) {
      const b = this.buckets.get(tick)
      if (b === undefined) continue
      this.buckets.delete(tick)
      for (const e of b) { e.bucket = null; expired.push(e as T) }
    }
    this.done = upTo
    this.count -= expired.length
    if (this.count === 0) this.stop()
    if (expired.length > 0) this.onExpire(expired)
  }
}
