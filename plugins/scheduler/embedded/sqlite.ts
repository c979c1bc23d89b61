// The embedded store's file, as the store uses it: opened (db.ts), the old JSON state imported
// once (import-json.ts), every group loaded (load.ts), each transition committed (persist.ts),
// history read and trimmed (history.ts). And its faults: a write the disk refuses (full, read-only,
// I/O error) is logged once, reported by `healthy` (so /readyz answers 503) until a write works
// again, which is logged once too; meanwhile the store refuses transitions and serves reads.
import type { Logger } from 'pino'
import type { ModelLimits } from '../engine/model/group.js'
import type { GroupModel } from '../engine/model/group.js'
import { openDatabase, type Db, type Durability } from './db.js'
import { SqlHistory } from './history.js'
import { importStateFile } from './import-json.js'
import { loadGroups, type LoadedState } from './load.js'
import { Persister } from './persist.js'

export interface SqliteOptions {
  dir: string
  durability: Durability
  historyLimit: number
  /** rounds that ended longer ago than this go (beyond each group's newest 1000); null: kept */
  historyMaxAgeDays: number | null
  logger?: Logger
}

const AGE_TRIM_EVERY_MS = 3600 * 1000

export class SqliteState {
  readonly db: Db
  readonly path: string
  readonly history: SqlHistory
  private readonly persister: Persister
  private readonly log: Logger | undefined
  private readonly opts: SqliteOptions
  private readonly probe
  private failing: string | null = null
  private trimmer: NodeJS.Timeout | null = null

  constructor (opts: SqliteOptions, now: number) {
    this.opts = opts
    this.log = opts.logger
    const opened = openDatabase(opts.dir, { durability: opts.durability })
    this.db = opened.db
    this.path = opened.path
    try {
      if (opened.from > 0 && opened.from < opened.version) this.log?.info({ path: this.path, from: opened.from, to: opened.version }, 'database schema migrated')
      const imported = importStateFile(this.db, opts.dir, opts.historyLimit, now)
      if (imported.groups > 0) this.log?.info({ path: this.path, groups: imported.groups, movedTo: imported.movedTo }, 'imported the old JSON state file')
      this.history = new SqlHistory(this.db, opts.historyLimit)
      this.persister = new Persister(this.db, this.history)
      this.probe = this.db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)")
    } catch (err) {
      this.db.close()
      throw err
    }
  }

  /** Every group as the file holds it (refuses the whole file on the first bad row). */
  load (limits: ModelLimits, now: number): LoadedState {
    const state = loadGroups(this.db, limits, now)
    this.trimByAge()
    this.trimmer = setInterval(() => this.trimByAge(), AGE_TRIM_EVERY_MS)
    this.trimmer.unref()
    return state
  }

  /** One group again, as committed (after a write that failed), its terminals heard from when memory says. */
  reload (group: string, limits: ModelLimits, now: number, lastSeen: (id: string) => number | undefined): GroupModel | null {
    return loadGroups(this.db, limits, now, group, (_g, id) => lastSeen(id)).groups.get(group) ?? null
  }

  /** Commit what the transition of `m` changed; throws after logging the fault (once) when the disk refuses. */
  commit (m: GroupModel, created: boolean): void {
    this.guard(() => this.persister.commit(m, created), `saving group ${m.name}`)
  }

  deleteGroup (group: string, round: number): void {
    this.guard(() => this.persister.deleteGroup(group, round), `deleting group ${group}`)
  }

  /** Writes work (for /readyz). While they fail, each call tries one small write to notice the recovery. */
  healthy (): boolean {
    if (this.failing === null) return true
    try {
      this.guard(() => this.probe.run(String(Date.now())), 'probing the database')
      return true
    } catch {
      return false
    }
  }

  close (): void {
    if (this.trimmer !== null) clearInterval(this.trimmer)
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)')
    } catch (err) {
      this.log?.warn({ path: this.path, err: (err as Error).message }, 'the last checkpoint failed; the write-ahead log keeps every commit')
    }
    this.db.close()
  }

  private guard (write: () => void, what: string): void {
    try {
      write()
    } catch (err) {
      const msg = (err as Error).message
      if (this.failing === null) this.log?.error({ path: this.path, err: msg, code: (err as { code?: string }).code }, `the database refuses writes (${what}): transitions are refused as unavailable until it takes them again`)
      this.failing = msg
      throw err
    }
    if (this.failing !== null) this.log?.info({ path: this.path }, 'the database takes writes again')
    this.failing = null
  }

  private trimByAge (): void {
    const days = this.opts.historyMaxAgeDays
    if (days === null) return
    try {
      const n = this.history.trimByAge(Date.now() - days * 24 * 3600 * 1000)
      if (n > 0) this.log?.info({ rounds: n, days }, 'history trimmed by age')
    } catch (err) {
      this.log?.warn({ err: (err as Error).message }, 'trimming the history by age failed; tried again in an hour')
    }
  }
}
