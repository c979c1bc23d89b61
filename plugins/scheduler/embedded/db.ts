// Opening the embedded store's SQLite file: `<dataDir>/roundgate.db`, WAL, the chosen `synchronous`
// level, an integrity check, and the schema brought forward (schema.ts). A file that is damaged,
// not a roundgate database, or written by a newer roundgate is refused with one line naming the
// problem (StoreFileError), before anything is loaded from it.
import Database from 'better-sqlite3'
import { sqliteNativeBinding } from '../../native.js'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { MIGRATIONS } from './schema.js'

export type Db = Database.Database

export const DB_FILE = 'roundgate.db'

/**
 * How hard each commit is pushed to the disk (README "Restarts", docs/storage.md):
 * 'normal' (WAL + synchronous=NORMAL): a commit survives the process being killed (kill -9, a
 * crash), the last commits may be lost to a power cut or kernel crash; 'full' (synchronous=FULL):
 * every commit is on the disk before the answer, surviving a power cut too, at an fsync each.
 */
export type Durability = 'normal' | 'full'

/** The database refuses to open: one line for the operator, naming the file and the problem. */
export class StoreFileError extends Error {
  override name = 'StoreFileError'
}

export interface OpenOptions {
  durability?: Durability
  /** the schema's migrations (tests pass their own to exercise the mechanism) */
  migrations?: readonly string[]
}

export interface Opened {
  db: Db
  path: string
  /** the schema version the file was at before this open (0: a new file) */
  from: number
  /** the schema version it is at now */
  version: number
}

/** One line: the first line of an error message, without SQLite's prefixes. */
function firstLine (err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  return msg.split('\n')[0]
}

export function openDatabase (dir: string, opts: OpenOptions = {}): Opened {
  const path = join(dir, DB_FILE)
  try {
    mkdirSync(dir, { recursive: true })
  } catch (err) {
    throw new StoreFileError(`cannot create the data directory ${dir}: ${firstLine(err)}`)
  }
  let db: Db
  try {
    // inside the single binary the SQLite addon is carried as an asset (plugins/native.ts)
    db = new Database(path, { nativeBinding: sqliteNativeBinding() })
  } catch (err) {
    throw new StoreFileError(`cannot open the database ${path}: ${firstLine(err)}`)
  }
  try {
    return { db, path, ...prepare(db, path, opts) }
  } catch (err) {
    db.close()
    if (err instanceof StoreFileError) throw err
    const code = (err as { code?: string }).code ?? ''
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') throw new StoreFileError(`the database ${path} is damaged: ${firstLine(err)}`)
    throw new StoreFileError(`the database ${path} cannot be used: ${firstLine(err)}`)
  }
}

function prepare (db: Db, path: string, opts: OpenOptions): { from: number, version: number } {
  try {
    // the first statement reads the header: a file that is not SQLite fails here
    db.pragma('schema_version', { simple: true })
  } catch (err) {
    throw new StoreFileError(`the database ${path} is damaged or not a database: ${firstLine(err)}`)
  }
  let check: Array<{ quick_check: string }>
  try {
    check = db.pragma('quick_check', { simple: false }) as Array<{ quick_check: string }>
  } catch (err) {
    throw new StoreFileError(`the database ${path} is damaged (quick_check: ${firstLine(err)})`)
  }
  const problems = check.map((r) => r.quick_check).filter((s) => s !== 'ok')
  if (problems.length > 0) {
    throw new StoreFileError(`the database ${path} is damaged (quick_check: ${problems[0]}${problems.length > 1 ? ` and ${problems.length - 1} more` : ''})`)
  }
  const mode = db.pragma('journal_mode = WAL', { simple: true })
  if (mode !== 'wal') throw new StoreFileError(`the database ${path} cannot use write-ahead logging (journal_mode is ${String(mode)})`)
  db.pragma(`synchronous = ${opts.durability === 'full' ? 'FULL' : 'NORMAL'}`)
  db.pragma('foreign_keys = OFF')
  // one process owns the file; a second one waits at most this long, then is refused
  db.pragma('busy_timeout = 2000')
  return migrate(db, path, opts.migrations ?? MIGRATIONS)
}

/** Bring the schema forward, one migration per transaction. */
export function migrate (db: Db, path: string, migrations: readonly string[]): { from: number, version: number } {
  const tables = (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as Array<{ name: string }>).map((r) => r.name)
  let from = 0
  if (tables.includes('schema_version')) {
    const rows = db.prepare('SELECT version FROM schema_version').all() as Array<{ version: unknown }>
    const v = rows[0]?.version
    if (rows.length !== 1 || typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new StoreFileError(`the database ${path} has a damaged schema_version table (expected one whole number ≥ 1, found ${JSON.stringify(rows.map((r) => r.version))})`)
    }
    from = v
  } else if (tables.length > 0) {
    throw new StoreFileError(`the database ${path} is not a roundgate database (it has tables ${tables.slice(0, 5).join(', ')} but no schema_version)`)
  }
  if (from > migrations.length) {
    throw new StoreFileError(`the database ${path} is at schema version ${from}, written by a newer roundgate; this one knows versions up to ${migrations.length}`)
  }
  for (let v = from; v < migrations.length; v++) {
    db.transaction(() => {
      if (v === 0) db.exec('CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT; INSERT INTO schema_version VALUES (0)')
      db.exec(migrations[v])
      db.prepare('UPDATE schema_version SET version = ?').run(v + 1)
    })()
  }
  return { from, version: migrations.length }
}
