// The round executing now (PROTOCOL section 3): the frozen participants, their done reports and
// who dropped out, and the summary it leaves behind (section 6) with its timeline.
import { completeOnOf, dropLimit } from '../group-config.js'
import type { GroupConfig, Outcome, ReleaseRecord, Role, RoundSummary, RoundTiming } from '../types.js'

export interface DoneReport {
  ok: boolean
  result: unknown
  /** when it arrived (epoch ms, the store's clock) */
  at: number
}

export class Round {
  readonly record: ReleaseRecord
  readonly done = new Map<string, DoneReport>()
  readonly dropped = new Set<string>()
  /** built at the first look-up by id, not at the release: nothing delays the first release write */
  private byId: Map<string, Role> | null = null

  constructor (record: ReleaseRecord) {
    this.record = record
  }

  get round (): number { return this.record.round }

  /** how many take part (smalls and bosses) */
  get size (): number { return this.record.participants.length }

  /** clientId → role, in shard order (smalls, then bosses) */
  get participants (): Map<string, Role> {
    if (this.byId === null) {
      const bosses = new Set(this.record.bosses)
      const m = new Map<string, Role>()
      for (const id of this.record.participants) m.set(id, bosses.has(id) ? 'boss' : 'small')
      this.byId = m
    }
    return this.byId
  }

  /** The round as its config says: may it end now? Aborted beats completed. */
  verdict (config: GroupConfig): Outcome | null {
    if (this.dropped.size > dropLimit(config, this.size)) return 'aborted'
    const bosses = this.record.bosses
    if (completeOnOf(config) === 'boss' && bosses.length > 0) {
      return bosses.every((b) => this.done.has(b)) ? 'completed' : null
    }
    // done and dropped may overlap (a dropped participant can still report), so their sizes only
    // bound the union: below the participant count the round cannot be complete, and the scan
    // (which made N reports cost N² at 10,000 participants) runs only near the end
    if (this.done.size + this.dropped.size < this.size) return null
    for (const id of this.participants.keys()) {
      if (!this.done.has(id) && !this.dropped.has(id)) return null
    }
    return 'completed'
  }

  summary (outcome: Outcome, now: number): RoundSummary {
    const rec = this.record
    const results: Record<string, unknown> = {}
    const failed: string[] = []
    const doneMs: Record<string, number> = {}
    const delays: number[] = []
    for (const [id, d] of this.done) {
      if (d.result !== undefined) results[id] = d.result
      if (!d.ok) failed.push(id)
      const ms = d.at - rec.startAt
      doneMs[id] = ms
      delays.push(ms)
    }
    const stragglers: string[] = []
    for (const id of this.participants.keys()) {
      if (!this.done.has(id) && !this.dropped.has(id)) stragglers.push(id)
    }
    return {
      group: rec.group,
      round: rec.round,
      attempt: rec.attempt,
      job: rec.job,
      outcome,
      releasedAt: rec.releasedAt,
      startAt: rec.startAt,
      endedAt: now,
      participants: rec.participants,
      done: [...this.done.keys()],
      dropped: [...this.dropped],
      stragglers,
      results,
      timing: timingOf(delays),
      failed,
      doneMs
    }
  }
}

/** Done delays from startAt: p50, p99 (nearest rank) and the last; null without any report. */
export function timingOf (delays: number[]): RoundTiming {
  if (delays.length === 0) return { doneP50Ms: null, doneP99Ms: null, lastDoneMs: null }
  const sorted = [...delays].sort((a, b) => a - b)
  const rank = (p: number): number => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]
  return { doneP50Ms: rank(0.5), doneP99Ms: rank(0.99), lastDoneMs: sorted[sorted.length - 1] }
}
