// The retained `rg/{g}/state` (PROTOCOL sections 4 and 6): republished whenever it changes, at
// most every 100 ms per group, and at once on a phase change, always with the newest state.
import type { GroupState } from '../engine/types.js'

export const STATE_INTERVAL_MS = 100

export class StatePublisher {
  private readonly last = new Map<string, number>()
  private readonly pending = new Map<string, { state: GroupState, timer: NodeJS.Timeout | null }>()
  private readonly send: (state: GroupState) => void

  constructor (send: (state: GroupState) => void) {
    this.send = send
  }

  changed (state: GroupState, phaseChanged: boolean): void {
    const g = state.group
    const now = Date.now()
    const since = now - (this.last.get(g) ?? 0)
    const p = this.pending.get(g)
    if (phaseChanged || since >= STATE_INTERVAL_MS) {
      if (p?.timer != null) clearTimeout(p.timer)
      this.pending.delete(g)
      this.flush(state, now)
      return
    }
    if (p !== undefined) { p.state = state; return }
    const entry: { state: GroupState, timer: NodeJS.Timeout | null } = { state, timer: null }
    entry.timer = setTimeout(() => {
      this.pending.delete(g)
      this.flush(entry.state, Date.now())
    }, STATE_INTERVAL_MS - since)
    entry.timer.unref()
    this.pending.set(g, entry)
  }

  forget (group: string): void {
    const p = this.pending.get(group)
    if (p?.timer != null) clearTimeout(p.timer)
    this.pending.delete(group)
    this.last.delete(group)
  }

  close (): void {
    for (const g of [...this.pending.keys()]) this.forget(g)
  }

  private flush (state: GroupState, now: number): void {
    this.last.set(state.group, now)
    this.send(state)
  }
}
