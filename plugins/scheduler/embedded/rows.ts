// The rows of the embedded store's tables (schema.ts): the prepared statements that write them and
// the checks that read them back. Every value read is checked before it is used: a hand-edited
// or damaged row refuses the whole open (StoreFileError naming table, row and field), never a
// half-loaded store. JSON columns are parsed and checked as strictly as the scalar ones.
import { z } from 'zod'
import { DEFAULT_GROUP_CONFIG, mergeConfig, parsePartialConfig } from '../engine/group-config.js'
import type { GroupConfig, Phase, ReleaseRecord, Role, RoundSummary } from '../engine/types.js'
import type { Scalars } from '../engine/model/durable.js'
import type { StoredJob } from '../engine/model/jobs.js'
import { StoreFileError, type Db } from './db.js'

const PHASES: readonly string[] = ['WAITING', 'EXECUTING', 'RESET']

/** A group's durable scalars, as the groups table holds them. */
export type ScalarsRow = Scalars

export interface TerminalRow {
  id: string
  role: Role
  readySeq: number
  lastRound: number
}

export interface DoneRow {
  id: string
  ok: boolean
  result: unknown
  at: number
}

/** A job as the jobs table holds it (the group is the row's key). */
export type JobRow = Omit<StoredJob, 'group'>

// --- checks ---------------------------------------------------------------------------------------

/** Where a value came from, for the one line that refuses it. */
export class Where {
  constructor (readonly table: string, readonly row: string) {}

  fail (field: string, problem: string): never {
    throw this.problem(field, problem)
  }

  problem (field: string, problem: string): StoreFileError {
    return new StoreFileError(`table ${this.table}, row ${this.row}: ${field}: ${problem}`)
  }

  int (field: string, v: unknown, min = 0): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) this.fail(field, `expected a whole number ≥ ${min}, found ${show(v)}`)
    return v
  }

  optInt (field: string, v: unknown): number | null {
    return v === null ? null : this.int(field, v)
  }

  text (field: string, v: unknown, pattern?: RegExp): string {
    if (typeof v !== 'string' || (pattern !== undefined && !pattern.test(v))) this.fail(field, `expected ${pattern === undefined ? 'text' : `text matching ${String(pattern)}`}, found ${show(v)}`)
    return v
  }

  oneOf<T extends string> (field: string, v: unknown, values: readonly T[]): T {
    if (typeof v !== 'string' || !values.includes(v as T)) this.fail(field, `expected one of ${values.join(', ')}, found ${show(v)}`)
    return v as T
  }

  json (field: string, v: unknown): unknown {
    if (typeof v !== 'string') this.fail(field, `expected JSON text, found ${show(v)}`)
    try {
      return JSON.parse(v)
    } catch (err) {
      this.fail(field, `not JSON (${(err as Error).message})`)
    }
  }

  /** JSON text checked against a schema. */
  shaped<T> (field: string, v: unknown, schema: z.ZodType<T, z.ZodTypeDef, unknown>): T {
    const res = schema.safeParse(this.json(field, v))
    if (!res.success) {
      const i = res.error.issues[0]
      this.fail(i.path.length > 0 ? `${field}.${i.path.join('.')}` : field, i.message)
    }
    return res.data
  }
}

function show (v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : typeof v === 'bigint' ? `${v}n` : JSON.stringify(v) ?? String(v)
  return s.length > 60 ? `${s.slice(0, 57)}...` : s
}

const count = z.number().int().nonnegative()
const epoch = z.number().int()
const id = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'not a clientId')

/** A release record (types.ts ReleaseRecord); PROTOCOL 1.1 fields default for older rows. */
export const releaseSchema = z.object({
  group: z.string(),
  round: count.min(1),
  attempt: count.min(1).default(1),
  job: z.string().nullable().default(null),
  releasedAt: epoch,
  startAt: epoch.optional(),
  deadline: epoch,
  participants: z.array(id),
  bosses: z.array(id),
  payload: z.unknown()
}).strict().transform((r): ReleaseRecord => ({ ...r, startAt: r.startAt ?? r.releasedAt, payload: r.payload ?? null }))

/** A round summary (types.ts RoundSummary); fields added by PROTOCOL 1.1 default for older rows. */
const ms = z.number().nullable()
export const summarySchema = z.object({
  group: z.string(),
  round: count.min(1),
  attempt: count.min(1).default(1),
  job: z.string().nullable().default(null),
  outcome: z.enum(['completed', 'aborted', 'timeout']),
  releasedAt: epoch,
  startAt: epoch.optional(),
  endedAt: epoch,
  participants: z.array(id),
  done: z.array(id),
  dropped: z.array(id),
  stragglers: z.array(id).optional(),
  results: z.record(z.unknown()),
  timing: z.object({ doneP50Ms: ms, doneP99Ms: ms, lastDoneMs: ms }).strict().default({ doneP50Ms: null, doneP99Ms: null, lastDoneMs: null }),
  failed: z.array(id).default([]),
  doneMs: z.record(z.number()).default({})
}).strict().transform((s): RoundSummary => {
  const settled = new Set([...s.done, ...s.dropped])
  return { ...s, startAt: s.startAt ?? s.releasedAt, stragglers: s.stragglers ?? s.participants.filter((p) => !settled.has(p)) }
})

export const retrySchema = z.object({ attempt: count.min(1), at: epoch, job: z.string().nullable() }).strict().nullable()

/** A stored configuration: every key checked as PROTOCOL section 2 says; keys added since default. */
export function configFrom (where: Where, v: unknown): GroupConfig {
  const raw = where.json('config', v)
  try {
    return mergeConfig(DEFAULT_GROUP_CONFIG, parsePartialConfig(raw))
  } catch (err) {
    where.fail('config', (err as Error).message)
  }
}

// --- reading --------------------------------------------------------------------------------------

export function scalarsFrom (name: string, r: Record<string, unknown>): ScalarsRow {
  const w = new Where('groups', JSON.stringify(name))
  const retry = r.retry === null ? null : w.shaped('retry', r.retry, retrySchema)
  return {
    phase: w.oneOf('phase', r.phase, PHASES) as Phase,
    round: w.int('round', r.round),
    releasedAt: w.optInt('released_at', r.released_at),
    resetUntil: w.optInt('reset_until', r.reset_until),
    lastTick: w.int('last_tick', r.last_tick),
    evalTick: w.int('eval_tick', r.eval_tick),
    missed: w.int('missed', r.missed),
    retry,
    updatedAt: w.int('updated_at', r.updated_at)
  }
}

export function terminalFrom (group: string, r: Record<string, unknown>): TerminalRow {
  const w = new Where('terminals', `${JSON.stringify(group)}/${show(r.id)}`)
  return {
    id: w.text('id', r.id, /^[A-Za-z0-9_.:-]{1,128}$/),
    role: w.oneOf('role', r.role, ['small', 'boss']),
    readySeq: w.int('ready_seq', r.ready_seq),
    lastRound: w.int('last_round', r.last_round)
  }
}

export function doneFrom (group: string, r: Record<string, unknown>): DoneRow {
  const w = new Where('done', `${JSON.stringify(group)}/${show(r.id)}`)
  return {
    id: w.text('id', r.id, /^[A-Za-z0-9_.:-]{1,128}$/),
    ok: w.int('ok', r.ok) === 1,
    result: r.result === null ? undefined : w.json('result', r.result),
    at: w.int('at', r.at)
  }
}

const JOB_STATES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const

export function jobFrom (group: string, r: Record<string, unknown>): JobRow {
  const w = new Where('jobs', `${JSON.stringify(group)}/${show(r.id)}`)
  return {
    id: w.text('id', r.id, /^[A-Za-z0-9_.:-]{1,128}$/),
    seq: w.int('seq', r.seq, 1),
    payload: w.json('payload', r.payload),
    priority: w.int('priority', r.priority, -1e6),
    state: w.oneOf('state', r.state, JOB_STATES),
    submittedAt: w.int('submitted_at', r.submitted_at),
    startedAt: w.optInt('started_at', r.started_at),
    endedAt: w.optInt('ended_at', r.ended_at),
    attempts: w.int('attempts', r.attempts),
    rounds: w.shaped('rounds', r.rounds, z.array(count.min(1))),
    result: r.result === null ? null : w.shaped('result', r.result, summarySchema)
  }
}

// --- writing --------------------------------------------------------------------------------------

/** Every write the embedded store makes, prepared once per database. */
export class Rows {
  readonly putScalars
  readonly putConfig
  readonly putTombstone
  readonly dropTombstone
  readonly putTerminal
  readonly dropTerminal
  readonly settleTaken
  readonly putRelease
  readonly putDone
  readonly putDropped
  readonly putJob
  readonly dropJob
  readonly clearRound
  private readonly dropGroupStatements

  constructor (db: Db) {
    this.putScalars = db.prepare(`INSERT INTO groups (name, phase, round, released_at, reset_until, last_tick, eval_tick, missed, retry, updated_at)
      VALUES (@name, @phase, @round, @releasedAt, @resetUntil, @lastTick, @evalTick, @missed, @retry, @updatedAt)
      ON CONFLICT (name) DO UPDATE SET phase = excluded.phase, round = excluded.round, released_at = excluded.released_at,
        reset_until = excluded.reset_until, last_tick = excluded.last_tick, eval_tick = excluded.eval_tick, missed = excluded.missed,
        retry = excluded.retry, updated_at = excluded.updated_at`)
    this.putConfig = db.prepare('INSERT INTO configs (name, config) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET config = excluded.config')
    this.putTombstone = db.prepare('INSERT INTO tombstones (name, round) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET round = max(round, excluded.round)')
    this.dropTombstone = db.prepare('DELETE FROM tombstones WHERE name = ?')
    this.putTerminal = db.prepare(`INSERT INTO terminals (grp, id, role, ready_seq, last_round) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (grp, id) DO UPDATE SET role = excluded.role, ready_seq = excluded.ready_seq, last_round = excluded.last_round`)
    this.dropTerminal = db.prepare('DELETE FROM terminals WHERE grp = ? AND id = ?')
    // At a round's end, before its release row goes: the participants' rows that still hold the
    // ticket the release took (written by nobody since) leave ready and record the round. A row
    // written since the release holds the model's own values (ticket 0, or a newer one than
    // taken_seq) and is left alone. One statement; see `repairTaken` in load.ts for the same rule.
    this.settleTaken = db.prepare(`UPDATE terminals SET ready_seq = 0, last_round = (SELECT round FROM releases WHERE grp = @g)
      WHERE grp = @g AND ready_seq > 0 AND ready_seq <= (SELECT taken_seq FROM releases WHERE grp = @g)
        AND id IN (SELECT value FROM json_each((SELECT record FROM releases WHERE grp = @g), '$.participants'))`)
    this.putRelease = db.prepare(`INSERT INTO releases (grp, round, record, taken_seq) VALUES (?, ?, ?, ?)
      ON CONFLICT (grp) DO UPDATE SET round = excluded.round, record = excluded.record, taken_seq = excluded.taken_seq`)
    // seq: the report's place in arrival order (the caller counts; a count(*) here would be O(n) each)
    this.putDone = db.prepare('INSERT OR REPLACE INTO done (grp, round, id, seq, ok, result, at) VALUES (?, ?, ?, ?, ?, ?, ?)')
    this.putDropped = db.prepare('INSERT OR IGNORE INTO dropped (grp, round, id, seq) VALUES (?, ?, ?, ?)')
    this.putJob = db.prepare(`INSERT INTO jobs (grp, id, seq, payload, priority, state, submitted_at, started_at, ended_at, attempts, rounds, result)
      VALUES (@grp, @id, @seq, @payload, @priority, @state, @submittedAt, @startedAt, @endedAt, @attempts, @rounds, @result)
      ON CONFLICT (grp, id) DO UPDATE SET state = excluded.state, started_at = excluded.started_at, ended_at = excluded.ended_at,
        attempts = excluded.attempts, rounds = excluded.rounds, result = excluded.result`)
    this.dropJob = db.prepare('DELETE FROM jobs WHERE grp = ? AND id = ?')
    const clear = ['releases', 'done', 'dropped'].map((t) => db.prepare(`DELETE FROM ${t} WHERE grp = ?`))
    this.clearRound = { run: (group: string) => { for (const s of clear) s.run(group) } }
    this.dropGroupStatements = ['groups', 'configs'].map((t) => db.prepare(`DELETE FROM ${t} WHERE name = ?`))
      .concat(['terminals', 'releases', 'done', 'dropped', 'history', 'jobs'].map((t) => db.prepare(`DELETE FROM ${t} WHERE grp = ?`)))
  }

  /** Everything of a group but its tombstone. */
  dropGroup (group: string): void {
    for (const s of this.dropGroupStatements) s.run(group)
  }

  scalars (name: string, s: ScalarsRow): void {
    this.putScalars.run({ name, ...s, retry: s.retry === null ? null : JSON.stringify(s.retry) })
  }

  /** `resultText`: the JSON of `j.result` when the caller already made it (the round's summary). */
  job (group: string, j: JobRow, resultText?: string): void {
    this.putJob.run({
      grp: group,
      id: j.id, seq: j.seq, priority: j.priority, state: j.state, submittedAt: j.submittedAt, startedAt: j.startedAt, endedAt: j.endedAt, attempts: j.attempts,
      payload: JSON.stringify(j.payload ?? null),
      rounds: JSON.stringify(j.rounds),
      result: j.result === null || j.result === undefined ? null : resultText ?? JSON.stringify(j.result)
    })
  }
}
