// Round history in SQLite (PROTOCOL section 6): one summary per ended round, read newest first by
// `before`, `limit` and `outcome` through the table's indexes, never loaded whole. Trimmed by count
// (`historyLimit` per group, at least 1000) when a round ends, and by age (`historyMaxAgeDays`)
// from time to time; the age never takes a group below the newest 1000 rounds PROTOCOL promises.
import type { Statement } from 'better-sqlite3'
import type { Outcome, RoundSummary } from '../engine/types.js'
import type { Db } from './db.js'
import { summarySchema, Where } from './rows.js'

/** PROTOCOL section 3: at least the last 1000 rounds per group are kept. */
export const MIN_HISTORY = 1000

export interface HistoryQuery {
  limit: number
  before?: number
  outcome?: Outcome
}

export class SqlHistory {
  private readonly db: Db
  private readonly limit: number
  private readonly insert: Statement
  private readonly cutoff: Statement
  private readonly trimBelow: Statement
  private readonly trimAge: Statement
  private readonly queries = new Map<string, Statement>()
  private readonly containing: Statement

  constructor (db: Db, historyLimit: number) {
    this.db = db
    this.limit = Math.max(MIN_HISTORY, historyLimit)
    this.insert = db.prepare('INSERT OR REPLACE INTO history (grp, round, outcome, ended_at, summary) VALUES (?, ?, ?, ?, ?)')
    this.cutoff = db.prepare('SELECT round FROM history WHERE grp = ? ORDER BY round DESC LIMIT 1 OFFSET ?').pluck()
    this.trimBelow = db.prepare('DELETE FROM history WHERE grp = ? AND round <= ?')
    this.trimAge = db.prepare(`DELETE FROM history AS h WHERE ended_at < ? AND round <= coalesce(
      (SELECT round FROM history WHERE grp = h.grp ORDER BY round DESC LIMIT 1 OFFSET ${MIN_HISTORY}), -1)`)
    // a cheap text test first (ids are plain [A-Za-z0-9_.:-]), then the parsed summary decides
    this.containing = db.prepare('SELECT round, summary FROM history WHERE grp = ? AND instr(summary, ?) > 0 ORDER BY round DESC')
  }

  /**
   * A round ended: keep its summary, and trim the group to its count (inside the caller's
   * transaction). `text`: the summary's JSON when the caller already made it.
   */
  append (s: RoundSummary, text = JSON.stringify(s)): void {
    this.insert.run(s.group, s.round, s.outcome, s.endedAt, text)
    const last = this.cutoff.get(s.group, this.limit) as number | undefined
    if (last !== undefined) this.trimBelow.run(s.group, last)
  }

  /** Rounds that ended before `olderThan` (epoch ms), beyond each group's newest 1000. Returns how many went. */
  trimByAge (olderThan: number): number {
    return this.trimAge.run(olderThan).changes
  }

  rounds (group: string, q: HistoryQuery): RoundSummary[] {
    const key = `${q.before !== undefined ? 'b' : ''}${q.outcome !== undefined ? 'o' : ''}`
    let stmt = this.queries.get(key)
    if (stmt === undefined) {
      const where = ['grp = @group']
      if (q.before !== undefined) where.push('round < @before')
      if (q.outcome !== undefined) where.push('outcome = @outcome')
      stmt = this.db.prepare(`SELECT round, summary FROM history WHERE ${where.join(' AND ')} ORDER BY round DESC LIMIT @limit`)
      this.queries.set(key, stmt)
    }
    const rows = stmt.all({ group, limit: q.limit, before: q.before, outcome: q.outcome }) as Array<{ round: number, summary: string }>
    return rows.map((r) => parseSummary(group, r.round, r.summary))
  }

  /** The newest `limit` rounds `clientId` took part in, newest first. */
  participations (group: string, clientId: string, limit: number): RoundSummary[] {
    const out: RoundSummary[] = []
    for (const r of this.containing.iterate(group, `"${clientId}"`) as IterableIterator<{ round: number, summary: string }>) {
      const s = parseSummary(group, r.round, r.summary)
      if (s.participants.includes(clientId)) out.push(s)
      if (out.length >= limit) break
    }
    return out
  }
}

/** A history row, checked: a damaged one is reported, never answered half-read. */
export function parseSummary (group: string, round: number, text: string): RoundSummary {
  const w = new Where('history', `${JSON.stringify(group)}/${round}`)
  const s = w.shaped('summary', text, summarySchema)
  if (s.round !== round || s.group !== group) w.fail('summary', `holds round ${s.round} of group ${JSON.stringify(s.group)}`)
  return s
}
