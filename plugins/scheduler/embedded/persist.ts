// Making one transition durable: what the model says changed (engine/model/durable.ts: the
// configuration, the scalars, terminals and jobs marked dirty, a release with its participants,
// done reports, drops, the ended round) written to SQLite in ONE transaction, before the store
// answers. The model decides; this file only writes down what it decided. Heartbeats and lastSeen
// are not durable: a transition that changed nothing durable writes nothing.
import type { GroupModel } from '../engine/model/group.js'
import type { Db } from './db.js'
import type { SqlHistory } from './history.js'
import { Rows } from './rows.js'

export class Persister {
  private readonly db: Db
  private readonly rows: Rows
  private readonly history: SqlHistory
  private readonly commitOne: (m: GroupModel, created: boolean) => void
  private readonly deleteOne: (group: string, round: number) => void

  constructor (db: Db, history: SqlHistory) {
    this.db = db
    this.rows = new Rows(db)
    this.history = history
    this.commitOne = db.transaction((m: GroupModel, created: boolean) => this.write(m, created))
    this.deleteOne = db.transaction((group: string, round: number) => {
      this.rows.dropGroup(group)
      this.rows.putTombstone.run(group, round)
    })
  }

  /** Did the last transition of `m` change a terminal, a job or the round? (the caller compares the scalars) */
  static dirty (m: GroupModel): boolean {
    const c = m.changes
    return c.config || c.release !== null || c.ended !== null || c.done.length > 0 || c.dropped.length > 0 ||
      m.terminals.dirty.size > 0 || m.jobs.dirty.size > 0
  }

  /** Write the transition `m` just made, in one transaction; throws (and writes nothing) when the disk refuses. */
  commit (m: GroupModel, created: boolean): void {
    this.commitOne(m, created)
  }

  /** A group deleted: everything of it goes but its last round (its tombstone). */
  deleteGroup (group: string, round: number): void {
    this.deleteOne(group, round)
  }

  private write (m: GroupModel, created: boolean): void {
    const rows = this.rows
    const name = m.name
    const c = m.changes
    let endedText: string | undefined
    if (created) rows.dropTombstone.run(name)
    if (created || c.config) rows.putConfig.run(name, JSON.stringify(m.config))
    rows.scalars(name, m.scalars())
    for (const id of m.terminals.dirty) {
      const t = m.terminals.get(id)
      if (t === undefined) rows.dropTerminal.run(name, id)
      else rows.putTerminal.run(name, id, t.role, t.readySeq, t.lastRound)
    }
    if (c.ended !== null) {
      // the round's summary holds its done reports and drops: the rows of the round go, once the
      // rows of the terminals it took are brought up to date from its release
      endedText = JSON.stringify(c.ended)
      this.history.append(c.ended, endedText)
      rows.settleTaken.run({ g: name })
      rows.clearRound.run(name)
    } else if (m.current !== null) {
      const r = m.current
      writeInOrder(c.done, r.done.size, (id, seq) => {
        const d = r.done.get(id)
        if (d !== undefined) rows.putDone.run(name, r.round, id, seq, d.ok ? 1 : 0, d.result === undefined ? null : JSON.stringify(d.result), d.at)
      })
      writeInOrder(c.dropped, r.dropped.size, (id, seq) => rows.putDropped.run(name, r.round, id, seq))
    }
    if (c.release !== null) {
      const rec = c.release
      // The released terminals left ready and took part, but their rows are not rewritten here
      // (10,000 updates would hold the first release back): the release row says who they are and
      // which tickets it took; the load (repairTaken) and the round's end (settleTaken) apply it.
      rows.putRelease.run(name, rec.round, JSON.stringify(rec), m.terminals.seq)
    }
    for (const id of m.jobs.dirty) {
      const j = m.jobs.get(id)
      if (j === undefined) rows.dropJob.run(name, id)
      else {
        // a job whose round just ended holds that round's summary as its result: its JSON once
        rows.job(name, j, j.result === c.ended ? endedText : undefined)
      }
    }
  }
}

/** The last `ids.length` of `total` entries (in arrival order) get the places total-n+1 .. total. */
function writeInOrder (ids: readonly string[], total: number, put: (id: string, seq: number) => void): void {
  ids.forEach((id, i) => put(id, total - ids.length + i + 1))
}
