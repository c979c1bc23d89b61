// The embedded store's SQLite file (plugins/scheduler/embedded/db.ts, schema.ts, rows.ts,
// history.ts, import-json.ts) on real files: WAL and the durability level, forward migrations,
// refusals of damaged, foreign, newer or hand-edited files (one line each), history by count, age,
// `before`, `limit` and `outcome` through indexes, and the one-time import of the old JSON state.
import Database from 'better-sqlite3'
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DB_FILE, importStateFile, MIGRATIONS, openDatabase, Rows, scalarsFrom, SqlHistory, StoreFileError, configFrom, Where } from '../plugins/scheduler/embedded/index.js'
import type { RoundSummary } from '../plugins/scheduler/index.js'

const FIXTURE = new URL('../../test/fixtures/state-v1.json', import.meta.url)

async function dir (t: Test): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'rg-sqlite-'))
  t.teardown(async () => await rm(d, { recursive: true, force: true }))
  return d
}

function summary (group: string, round: number, outcome: RoundSummary['outcome'] = 'completed', endedAt = 1000 + round, participants = ['a', 'b']): RoundSummary {
  return {
    group, round, attempt: 1, job: null, outcome, releasedAt: endedAt - 1, startAt: endedAt - 1, endedAt, participants, done: participants,
    dropped: [], stragglers: [], results: {}, timing: { doneP50Ms: null, doneP99Ms: null, lastDoneMs: null }, failed: [], doneMs: {}
  }
}

void t.test('open: a new file in WAL mode at the current schema version; the durability level is applied', async (t) => {
  const d = await dir(t)
  const a = openDatabase(d)
  t.equal(a.path, join(d, DB_FILE))
  t.equal(a.from, 0, 'a new file')
  t.equal(a.version, MIGRATIONS.length)
  t.equal(a.db.pragma('journal_mode', { simple: true }), 'wal')
  t.equal(a.db.pragma('synchronous', { simple: true }), 1, 'normal by default')
  a.db.close()
  const b = openDatabase(d, { durability: 'full' })
  t.equal(b.from, MIGRATIONS.length, 'opened again: already current')
  t.equal(b.db.pragma('synchronous', { simple: true }), 2, 'full')
  b.db.close()
})

void t.test('migrations run forward once, in order, keeping the data', async (t) => {
  const d = await dir(t)
  const one = openDatabase(d, { migrations: MIGRATIONS.slice(0, 1) })
  one.db.prepare("INSERT INTO meta VALUES ('k', 'v')").run()
  one.db.close()
  const next = [...MIGRATIONS.slice(0, 1), "ALTER TABLE meta ADD COLUMN note TEXT NOT NULL DEFAULT 'n'; INSERT INTO meta (key, value) VALUES ('m2', 'yes')"]
  const two = openDatabase(d, { migrations: next })
  t.strictSame([two.from, two.version], [1, 2])
  t.strictSame(two.db.prepare('SELECT key, value, note FROM meta ORDER BY key').all(), [{ key: 'k', value: 'v', note: 'n' }, { key: 'm2', value: 'yes', note: 'n' }])
  two.db.close()
  const again = openDatabase(d, { migrations: next })
  t.strictSame([again.from, again.version], [2, 2], 'nothing to do the second time')
  again.db.close()
  t.throws(() => openDatabase(d, { migrations: MIGRATIONS.slice(0, 1) }), /schema version 2, written by a newer roundgate; this one knows versions up to 1/, 'a newer file is refused')
  const broken = [...MIGRATIONS.slice(0, 1), 'CREATE TABLE x (a INTEGER) STRICT', 'THIS IS NOT SQL']
  t.throws(() => openDatabase(d, { migrations: broken }), StoreFileError)
  const after = new Database(join(d, DB_FILE))
  t.equal(after.prepare('SELECT version FROM schema_version').pluck().get(), 2, 'a failed migration leaves the version as it was')
  t.equal(after.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'x'").pluck().get(), 0, 'and none of its changes')
  after.close()
})

void t.test('open refuses a file that is not a database, damaged or not ours, in one line', async (t) => {
  const garbage = await dir(t)
  writeFileSync(join(garbage, DB_FILE), 'this is not an SQLite file at all, just some text '.repeat(100))
  const e1 = t.throws(() => openDatabase(garbage)) as Error
  t.type(e1, StoreFileError)
  t.match(e1.message, /is damaged or not a database/)
  t.notMatch(e1.message, /\n/, 'one line')

  const foreign = await dir(t)
  const f = new Database(join(foreign, DB_FILE))
  f.exec('CREATE TABLE users (name TEXT)')
  f.close()
  t.throws(() => openDatabase(foreign), /is not a roundgate database \(it has tables users but no schema_version\)/)

  const damaged = await dir(t)
  const ok = openDatabase(damaged)
  const rows = new Rows(ok.db)
  ok.db.transaction(() => {
    for (let i = 0; i < 3000; i++) rows.putTerminal.run('g', `t${i}`, 'small', i, 0)
  })()
  ok.db.pragma('wal_checkpoint(TRUNCATE)')
  ok.db.close()
  const path = join(damaged, DB_FILE)
  const size = statSync(path).size
  t.ok(size > 16 * 4096, `a file of several pages (${size} bytes)`)
  const fd = openSync(path, 'r+')
  writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 8 * 4096) // one page of an index/table overwritten
  closeSync(fd)
  const e3 = t.throws(() => openDatabase(damaged)) as Error
  t.type(e3, StoreFileError)
  t.match(e3.message, /is damaged/)
  t.notMatch(e3.message, /\n/, 'one line')
})

void t.test('rows are checked when read: a hand-edited value is refused naming table, row and field', async (t) => {
  t.throws(() => scalarsFrom('g', { phase: 'WAITING', round: '5', released_at: null, reset_until: null, last_tick: 0, eval_tick: 0, missed: 0, retry: null, updated_at: 1 }),
    /table groups, row "g": round: expected a whole number ≥ 0, found "5"/)
  t.throws(() => scalarsFrom('g', { phase: 'DANCING', round: 5, released_at: null, reset_until: null, last_tick: 0, eval_tick: 0, missed: 0, retry: null, updated_at: 1 }),
    /phase: expected one of WAITING, EXECUTING, RESET, found "DANCING"/)
  t.throws(() => scalarsFrom('g', { phase: 'WAITING', round: 5, released_at: null, reset_until: null, last_tick: 0, eval_tick: 0, missed: 0, retry: '{"attempt":"2","at":1,"job":null}', updated_at: 1 }),
    /retry.attempt: Expected number, received string/)
  t.throws(() => configFrom(new Where('configs', '"g"'), '{"need":"5"}'), /table configs, row "g": config: invalid group config: need: Expected number, received string/)
  t.throws(() => configFrom(new Where('configs', '"g"'), '{"need":5'), /config: not JSON/)
  t.strictSame(scalarsFrom('g', { phase: 'RESET', round: 5, released_at: 3, reset_until: 4, last_tick: 0, eval_tick: 0, missed: 2, retry: '{"attempt":2,"at":9,"job":null}', updated_at: 1 }),
    { phase: 'RESET', round: 5, releasedAt: 3, resetUntil: 4, lastTick: 0, evalTick: 0, missed: 2, retry: { attempt: 2, at: 9, job: null }, updatedAt: 1 })
  const d = await dir(t)
  const { db } = openDatabase(d)
  t.teardown(() => db.close())
  t.throws(() => db.prepare("INSERT INTO groups VALUES ('g', 'WAITING', 'five', null, null, 0, 0, 0, null, 0)").run(), /cannot store TEXT value in INTEGER column/, 'STRICT tables refuse wrong types at the door')
})

void t.test('history: trimmed by count, queried by before, limit and outcome through the indexes', async (t) => {
  const d = await dir(t)
  const { db } = openDatabase(d)
  t.teardown(() => db.close())
  const h = new SqlHistory(db, 1000)
  db.transaction(() => {
    for (let r = 1; r <= 1200; r++) h.append(summary('g', r, r % 10 === 0 ? 'timeout' : r % 7 === 0 ? 'aborted' : 'completed'))
    for (let r = 1; r <= 5; r++) h.append(summary('other', r))
  })()
  t.equal(db.prepare("SELECT count(*) FROM history WHERE grp = 'g'").pluck().get(), 1000, 'the newest 1000 kept')
  t.equal(db.prepare("SELECT min(round) FROM history WHERE grp = 'g'").pluck().get(), 201)
  t.strictSame(h.rounds('g', { limit: 3 }).map((s) => s.round), [1200, 1199, 1198], 'newest first')
  t.strictSame(h.rounds('g', { limit: 3, before: 1000 }).map((s) => s.round), [999, 998, 997])
  t.strictSame(h.rounds('g', { limit: 3, outcome: 'timeout' }).map((s) => s.round), [1200, 1190, 1180])
  t.strictSame(h.rounds('g', { limit: 2, outcome: 'aborted', before: 1197 }).map((s) => s.round), [1183, 1176])
  t.strictSame(h.rounds('g', { limit: 10, before: 201 }), [], 'nothing below what was trimmed')
  t.strictSame(h.rounds('other', { limit: 10 }).map((s) => s.round), [5, 4, 3, 2, 1], 'groups apart')
  t.strictSame(h.rounds('g', { limit: 1 })[0], summary('g', 1200, 'timeout'), 'the summary comes back whole')
  for (const [q, params] of [
    ["SELECT summary FROM history WHERE grp = 'g' AND round < 1000 ORDER BY round DESC LIMIT 3", {}],
    ["SELECT summary FROM history WHERE grp = 'g' AND outcome = 'timeout' AND round < 1000 ORDER BY round DESC LIMIT 3", {}]
  ] as const) {
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${q}`).all(params) as Array<{ detail: string }>).map((r) => r.detail).join('; ')
    t.match(plan, /SEARCH history USING/, `an index search, not a scan: ${plan}`)
    t.notMatch(plan, /TEMP B-TREE/, 'and no sort of the whole group')
  }
})

void t.test('history: trimmed by age, never below the newest 1000 of a group; a terminal\'s rounds', async (t) => {
  const d = await dir(t)
  const { db } = openDatabase(d)
  t.teardown(() => db.close())
  const h = new SqlHistory(db, 5000)
  db.transaction(() => {
    for (let r = 1; r <= 1500; r++) h.append(summary('g', r, 'completed', r, r % 3 === 0 ? ['x', 'y'] : ['y', 'x1']))
    for (let r = 1; r <= 50; r++) h.append(summary('small', r, 'completed', r))
  })()
  t.equal(h.trimByAge(1400), 500, 'only rounds beyond the newest 1000 of g went')
  t.equal(db.prepare("SELECT min(round) FROM history WHERE grp = 'g'").pluck().get(), 501)
  t.equal(db.prepare("SELECT count(*) FROM history WHERE grp = 'small'").pluck().get(), 50, 'a small group keeps all, old or not')
  t.strictSame(h.participations('g', 'x', 3).map((s) => s.round), [1500, 1497, 1494], 'x took part in every third round')
  t.strictSame(h.participations('g', 'x1', 2).map((s) => s.round), [1499, 1498], '"x" does not match "x1"')
  t.strictSame(h.participations('g', 'nobody', 5), [])
})

void t.test('import: a clean JSON state file comes in whole, once, and is renamed aside', async (t) => {
  const d = await dir(t)
  writeFileSync(join(d, 'roundgate-state.json'), readFileSync(FIXTURE))
  const { db } = openDatabase(d)
  t.teardown(() => db.close())
  const res = importStateFile(db, d, 1000, 5)
  t.equal(res.groups, 2)
  t.equal(res.movedTo, join(d, 'roundgate-state.json.imported'))
  t.notOk(existsSync(join(d, 'roundgate-state.json')), 'the old file is gone from its place')
  t.ok(existsSync(join(d, 'roundgate-state.json.imported')), 'and kept aside')
  const g = db.prepare("SELECT * FROM groups WHERE name = 'g'").get() as Record<string, unknown>
  t.match(scalarsFrom('g', g), { phase: 'EXECUTING', round: 2, missed: 0, retry: null })
  t.match(JSON.parse(db.prepare("SELECT config FROM configs WHERE name = 'g'").pluck().get() as string), { need: 2, resetMs: 0, payload: { job: 1 }, startDelayMs: 0 }, 'the configuration, with keys added since at their defaults')
  t.strictSame(db.prepare("SELECT id, role, ready_seq, last_round FROM terminals WHERE grp = 'g' ORDER BY id").all(),
    [{ id: 'a', role: 'small', ready_seq: 0, last_round: 2 }, { id: 'b', role: 'small', ready_seq: 0, last_round: 2 }, { id: 'c', role: 'boss', ready_seq: 5, last_round: 0 }])
  t.match(JSON.parse(db.prepare("SELECT record FROM releases WHERE grp = 'g'").pluck().get() as string), { round: 2, participants: ['a', 'b'], attempt: 1, job: null })
  t.strictSame(db.prepare("SELECT id, seq, ok, result FROM done WHERE grp = 'g'").all(), [{ id: 'a', seq: 1, ok: 1, result: '7' }])
  t.strictSame(new SqlHistory(db, 1000).rounds('g', { limit: 5 }).map((s) => [s.round, s.outcome, s.failed]), [[1, 'completed', ['b']]])
  t.equal(scalarsFrom('h', db.prepare("SELECT * FROM groups WHERE name = 'h'").get() as Record<string, unknown>).round, 0)
  t.strictSame(importStateFile(db, d, 1000, 5), { groups: 0, movedTo: null }, 'nothing more to import')

  // the rename did not happen (a crash right after the commit): the next start only renames
  writeFileSync(join(d, 'roundgate-state.json'), readFileSync(join(d, 'roundgate-state.json.imported')))
  t.strictSame(importStateFile(db, d, 1000, 5), { groups: 0, movedTo: join(d, 'roundgate-state.json.imported') })
  t.equal(db.prepare('SELECT count(*) FROM history').pluck().get(), 1, 'nothing imported twice')
  // another state file beside a database that holds state: refused, nothing changed
  writeFileSync(join(d, 'roundgate-state.json'), JSON.stringify({ ...JSON.parse(readFileSync(FIXTURE, 'utf8')), savedAt: 77 }))
  t.throws(() => importStateFile(db, d, 1000, 5), /both .*roundgate-state.json and the database hold state/)
})

void t.test('import: a file from a process that died resumes above its round ceiling, in WAITING', async (t) => {
  const d = await dir(t)
  const file = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { clean: boolean }
  file.clean = false
  writeFileSync(join(d, 'roundgate-state.json'), JSON.stringify(file))
  const { db } = openDatabase(d)
  t.teardown(() => db.close())
  importStateFile(db, d, 1000, 5)
  t.match(scalarsFrom('g', db.prepare("SELECT * FROM groups WHERE name = 'g'").get() as Record<string, unknown>), { phase: 'WAITING', round: 1000 })
  t.equal(db.prepare('SELECT count(*) FROM releases').pluck().get(), 0, 'no round in progress')
})

void t.test('import: a hand-edited file is refused whole, naming the place; the database stays empty', async (t) => {
  const d = await dir(t)
  const file = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { groups: Array<Record<string, unknown>> }
  file.groups[1].round = '5'
  writeFileSync(join(d, 'roundgate-state.json'), JSON.stringify(file))
  const { db } = openDatabase(d)
  t.teardown(() => db.close())
  const err = t.throws(() => importStateFile(db, d, 1000, 5)) as Error
  t.type(err, StoreFileError)
  t.match(err.message, /roundgate-state.json cannot be imported: groups.1.round: Expected number, received string/)
  t.equal(db.prepare('SELECT count(*) FROM groups').pluck().get(), 0, 'nothing half-imported')
  t.ok(existsSync(join(d, 'roundgate-state.json')), 'the file stays where it was')
  writeFileSync(join(d, 'roundgate-state.json'), '{"version": 1, "clean": true, "savedAt": 1, "groups": [')
  t.throws(() => importStateFile(db, d, 1000, 5), /is not JSON/)
})
