// Redraws are throttled: many MQTT messages in a burst cause one redraw, on an animation frame,
// never more often than `minIntervalMs`. A redraw requested while one is pending changes nothing.

export class Redraw {
  private pending = false
  private last = 0
  constructor (private readonly minIntervalMs: number, private readonly draw: () => void) {}

  request (): void {
    if (this.pending) return
    this.pending = true
    const wait = Math.max(0, this.last + this.minIntervalMs - performance.now())
    const frame = (): void => { requestAnimationFrame(() => this.run()) }
    if (wait > 0) window.setTimeout(frame, wait)
    else frame()
  }

  private run (): void {
    this.pending = false
    this.last = performance.now()
    try {
      this.draw()
    } catch (err) {
      console.error('roundgate dashboard: redraw failed', err)
    }
  }
}

/** Run `fn` now and then `ms` after each run ends (no pile-up); the returned function stops it. */
export function every (ms: number | (() => number), fn: () => Promise<void>): () => void {
  let stopped = false
  let timer = 0
  const loop = async (): Promise<void> => {
    if (stopped) return
    try { await fn() } catch (err) { console.error('roundgate dashboard: refresh failed', err) }
    if (!stopped) timer = window.setTimeout(() => { void loop() }, typeof ms === 'number' ? ms : ms())
  }
  void loop()
  return () => { stopped = true; window.clearTimeout(timer) }
}
