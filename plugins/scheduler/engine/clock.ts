// How far the store's clock (Redis TIME in cluster mode) is from this process's, for the engine's
// timers: a deadline or the end of RESET is on the store's clock.
/**
 * The store's clock as seen from here: the largest (store time - local time) of recent samples.
 * A sample is taken when an answer arrives, after the store read its clock, so each sample is at
 * most the true offset and the largest recent one is the best estimate; samples older than 10 s
 * age out so a clock step is followed.
 */
export class ClockOffset {
  private current = -Infinity
  private previous = -Infinity
  private since = 0

  sample (storeNow: number): void {
    const local = Date.now()
    if (local - this.since > 5000) { this.previous = this.current; this.current = -Infinity; this.since = local }
    const d = storeNow - local
    if (d > this.current) this.current = d
  }

  /** The store's clock now (this process's clock until a first sample). */
  now (): number {
    const off = Math.max(this.current, this.previous)
    return Date.now() + (Number.isFinite(off) ? off : 0)
  }
}
