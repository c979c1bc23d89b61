// Round history without a data directory (`--data-dir ""`): each group's summaries in an array,
// oldest first, trimmed to `historyLimit`. The SQLite store keeps them in its history table
// (history.ts) instead; both answer the same questions.
import type { RoundSummary } from '../engine/types.js'
import type { HistoryQuery } from './history.js'

export class MemoryHistory {
  private readonly byGroup = new Map<string, RoundSummary[]>()
  private readonly limit: number

  constructor (historyLimit: number) {
    this.limit = historyLimit
  }

  append (s: RoundSummary): void {
    let h = this.byGroup.get(s.group)
    if (h === undefined) this.byGroup.set(s.group, h = [])
    h.push(s)
    if (h.length > this.limit) h.splice(0, h.length - this.limit)
  }

  drop (group: string): void {
    this.byGroup.delete(group)
  }

  rounds (group: string, q: HistoryQuery): RoundSummary[] {
    const h = this.byGroup.get(group) ?? []
    const out: RoundSummary[] = []
    for (let i = h.length - 1; i >= 0 && out.length < q.limit; i--) {
      const s = h[i]
      if ((q.before === undefined || s.round < q.before) && (q.outcome === undefined || s.outcome === q.outcome)) out.push(s)
    }
    return out
  }

  participations (group: string, clientId: string, limit: number): RoundSummary[] {
    const h = this.byGroup.get(group) ?? []
    const out: RoundSummary[] = []
    for (let i = h.length - 1; i >= 0 && out.length < limit; i--) if (h[i].participants.includes(clientId)) out.push(h[i])
    return out
  }
}
