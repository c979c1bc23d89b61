// The state file of earlier versions (`<dataDir>/roundgate-state.json`, written by the JSON
// snapshot this SQLite store replaces) is imported once: checked whole (a hand-edited
// `"round": "5"` is refused, naming the place), written in one transaction, the file's hash noted
// in `meta`, then the file renamed aside (`roundgate-state.json.imported`). A crash between the
// commit and the rename is harmless: the next start finds the hash and only renames.
//
// A file saved cleanly comes back exactly (the round in progress included). One saved by a running
// process that then died (`"clean": false`) comes back as that format always did: each group in
// WAITING at its reserved round ceiling, which no round handed out before the crash exceeded.
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { z } from 'zod'
import type { Db } from './db.js'
import { StoreFileError } from './db.js'
import { SqlHistory } from './history.js'
import { releaseSchema, retrySchema, Rows, summarySchema, type JobRow, type ScalarsRow } from './rows.js'
import type { GroupConfig } from '../engine/types.js'
import { DEFAULT_GROUP_CONFIG, mergeConfig, parsePartialConfig } from '../engine/group-config.js'

export const STATE_FILE = 'roundgate-state.json'
const IMPORTED_KEY = 'imported-state-file'

const count = z.number().int().nonnegative()
const epoch = z.number().int()
const nullEpoch = epoch.nullable()
const cid = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'not a clientId')
const phase = z.enum(['WAITING', 'EXECUTING', 'RESET'])

const terminal = z.object({
  id: cid,
  role: z.enum(['small', 'boss']),
  lastSeen: epoch.optional(),
  readySeq: count,
  load: z.number().nullable().optional(),
  meta: z.unknown().optional(),
  lastRound: count
}).strict()

const doneReport = z.object({ ok: z.boolean(), result: z.unknown().optional(), at: epoch.optional() }).strict()

const job = z.object({
  id: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/),
  group: z.string(),
  payload: z.unknown(),
  priority: z.number().int(),
  state: z.enum(['queued', 'running', 'completed', 'failed', 'cancelled']),
  submittedAt: epoch,
  startedAt: nullEpoch,
  endedAt: nullEpoch,
  attempts: count,
  rounds: z.array(count),
  result: summarySchema.nullable(),
  seq: count.min(1)
}).strict()

const scalars = z.object({
  phase,
  round: count,
  releasedAt: nullEpoch,
  resetUntil: nullEpoch,
  lastTick: epoch,
  evalTick: epoch,
  missed: count,
  retry: retrySchema,
  updatedAt: epoch
}).strict()

/** Version 1: the format of the released JSON snapshot. */
const groupV1 = z.object({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'not a group name'),
  config: z.record(z.unknown()),
  phase,
  round: count,
  reserved: count,
  releasedAt: nullEpoch,
  resetUntil: nullEpoch,
  release: releaseSchema.nullable(),
  terminals: z.array(terminal),
  participants: z.array(z.tuple([cid, z.enum(['small', 'boss'])])),
  done: z.array(z.tuple([cid, doneReport])),
  dropped: z.array(cid),
  history: z.array(summarySchema)
}).strict()

/** Version 2: the snapshot as PROTOCOL 1.1's model wrote it, before SQLite replaced it. */
const groupV2 = z.object({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'not a group name'),
  config: z.record(z.unknown()),
  scalars,
  reserved: count,
  terminals: z.array(terminal),
  release: releaseSchema.nullable(),
  done: z.array(z.tuple([cid, doneReport])),
  dropped: z.array(cid),
  jobs: z.array(job),
  history: z.array(summarySchema)
}).strict()

const fileSchema = z.discriminatedUnion('version', [
  z.object({ version: z.literal(1), clean: z.boolean(), savedAt: epoch, groups: z.array(groupV1) }).strict(),
  z.object({ version: z.literal(2), clean: z.boolean(), savedAt: epoch, groups: z.array(groupV2), tombstones: z.array(z.tuple([z.string(), count])) }).strict()
])

type StateFile = z.infer<typeof fileSchema>

export interface ImportResult {
  /** groups imported (0 when there was nothing to import) */
  groups: number
  /** where the file went */
  movedTo: string | null
}

/**
 * Import `<dir>/roundgate-state.json` into a database that holds no group yet, then rename it.
 * `now` is the clock the imported state is stamped with where the old format had no field.
 */
export function importStateFile (db: Db, dir: string, historyLimit: number, now: number): ImportResult {
  const path = join(dir, STATE_FILE)
  if (!existsSync(path)) return { groups: 0, movedTo: null }
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new StoreFileError(`cannot read the old state file ${path}: ${(err as Error).message}`)
  }
  const hash = createHash('sha256').update(text).digest('hex')
  const movedTo = `${path}.imported`
  const done = db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(IMPORTED_KEY) as string | undefined
  if (done === hash) {
    moveAside(path, movedTo) // imported before; the rename did not happen
    return { groups: 0, movedTo }
  }
  if (done !== undefined || (db.prepare('SELECT count(*) FROM groups').pluck().get() as number) > 0) {
    throw new StoreFileError(`both ${path} and the database hold state; move ${STATE_FILE} aside to keep the database, or the database aside to import the file`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new StoreFileError(`the old state file ${path} is not JSON: ${(err as Error).message}`)
  }
  const parsed = fileSchema.safeParse(raw)
  if (!parsed.success) {
    const i = parsed.error.issues[0]
    throw new StoreFileError(`the old state file ${path} cannot be imported: ${i.path.join('.')}: ${i.message}`)
  }
  const file = parsed.data
  const rows = new Rows(db)
  const history = new SqlHistory(db, historyLimit)
  db.transaction(() => {
    for (const g of file.groups) writeGroup(rows, history, file, g, path, now)
    if (file.version === 2) for (const [name, round] of file.tombstones) rows.putTombstone.run(name, round)
    db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(IMPORTED_KEY, hash)
  })()
  moveAside(path, movedTo)
  return { groups: file.groups.length, movedTo }
}

function moveAside (path: string, to: string): void {
  try {
    renameSync(path, to)
  } catch (err) {
    throw new StoreFileError(`imported ${path}, but cannot rename it to ${to}: ${(err as Error).message}`)
  }
}

type AnyGroup = StateFile['groups'][number]

function writeGroup (rows: Rows, history: SqlHistory, file: StateFile, g: AnyGroup, path: string, now: number): void {
  let config: GroupConfig
  try {
    config = mergeConfig(DEFAULT_GROUP_CONFIG, parsePartialConfig(g.config))
  } catch (err) {
    throw new StoreFileError(`the old state file ${path} cannot be imported: group ${g.name}: ${(err as Error).message}`)
  }
  const s: ScalarsRow = 'scalars' in g
    ? g.scalars
    : { phase: g.phase, round: g.round, releasedAt: g.releasedAt, resetUntil: g.resetUntil, lastTick: now, evalTick: now, missed: 0, retry: null, updatedAt: file.savedAt }
  const release = g.release
  if (!file.clean) {
    // the last writes may be lost: go on above every round that could have been handed out
    s.round = Math.max(s.round, g.reserved)
    s.phase = 'WAITING'
    s.resetUntil = null
    s.retry = null
  }
  rows.putConfig.run(g.name, JSON.stringify(config))
  rows.scalars(g.name, s)
  for (const t of g.terminals) rows.putTerminal.run(g.name, t.id, t.role, t.readySeq, t.lastRound)
  if (file.clean && s.phase === 'EXECUTING' && release !== null) {
    rows.putRelease.run(g.name, release.round, JSON.stringify(release), 0) // the imported terminal rows are up to date
    g.done.forEach(([id, d], i) => rows.putDone.run(g.name, release.round, id, i + 1, d.ok ? 1 : 0,
      d.result === undefined ? null : JSON.stringify(d.result), d.at ?? now))
    g.dropped.forEach((id, i) => rows.putDropped.run(g.name, release.round, id, i + 1))
  }
  // oldest first: the count trim keeps the newest `historyLimit`
  for (const sum of g.history) history.append({ ...sum, group: g.name })
  if ('jobs' in g) {
    for (const j of g.jobs) {
      const row: JobRow = { ...j, payload: j.payload ?? null, result: j.result }
      // a job running in a round the crash lost runs again
      if (!file.clean && row.state === 'running') row.state = 'queued'
      rows.job(g.name, row)
    }
  }
}
