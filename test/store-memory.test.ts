// The abstract store suite against the embedded store, in memory and on its SQLite file, plus its
// durability across a clean close and a SIGKILL.
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t from 'tap'
import { MemoryStore } from '../plugins/scheduler/index.js'
import { cfg, endings, releases, storeSuite } from './store-suite/index.js'

storeSuite(t, 'memory', async (opts) => {
  const store = new MemoryStore({ ...opts })
  await store.open()
  return { store, cleanup: async () => await store.close() }
})

storeSuite(t, 'sqlite', async (opts) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-suite-'))
  const store = new MemoryStore({ ...opts, dataDir: dir })
  await store.open()
  return { store, cleanup: async () => { await store.close(); await rm(dir, { recursive: true, force: true }) } }
})

void t.test('sqlite: config, round and history survive close and open', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-mem-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const a = new MemoryStore({ dataDir: dir })
  await a.open()
  await a.putGroup('g', cfg({ need: 1, resetMs: 0, payload: { job: 1 } }))
  for (let i = 1; i <= 3; i++) {
    await a.ready('g', 'x', {})
    await a.done('g', 'x', { round: i, result: i })
  }
  await a.ready('g', 'x', {})
  await a.close()

  const b = new MemoryStore({ dataDir: dir })
  await b.open()
  const snap = await b.getGroup('g')
  t.strictSame(snap?.config, cfg({ need: 1, resetMs: 0, payload: { job: 1 } }))
  t.equal(snap?.state.round, 4)
  t.equal(snap?.state.phase, 'EXECUTING', 'a clean stop keeps the running round')
  t.strictSame(snap?.release?.participants, ['x'])
  t.strictSame((await b.rounds('g', { limit: 10 })).map((s) => s.round), [3, 2, 1])
  const end = await b.done('g', 'x', { round: 4 })
  t.equal(endings(end)[0]?.round, 4, 'the restored round completes')
  await b.close()
})

void t.test('sqlite: a process killed with SIGKILL loses nothing it acknowledged, and hands no round out twice', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-mem-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const here = fileURLToPath(new URL('.', import.meta.url))
  const modUrl = pathToFileURL(join(here, '..', 'plugins', 'scheduler', 'index.js')).href
  // A child process runs 5 rounds, starts a sixth with one done of two, and is killed with SIGKILL
  const code = `
    const { MemoryStore, DEFAULT_GROUP_CONFIG } = await import(${JSON.stringify(modUrl)})
    const s = new MemoryStore({ dataDir: ${JSON.stringify(dir)} })
    await s.open()
    await s.putGroup('g', { ...DEFAULT_GROUP_CONFIG, need: 2, resetMs: 0 })
    for (let i = 1; i <= 5; i++) {
      await s.ready('g', 'x', {}); await s.ready('g', 'y', {})
      await s.done('g', 'x', { round: i, result: i }); await s.done('g', 'y', { round: i })
    }
    await s.ready('g', 'x', {}); await s.ready('g', 'y', {}); await s.done('g', 'x', { round: 6, result: 'six' })
    await s.ready('g', 'z', {})
    process.stdout.write(String((await s.getGroup('g')).state.round) + '\\n', () => process.kill(process.pid, 'SIGKILL'))
  `
  const out = await new Promise<string>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', code], { timeout: 20000 }, (_err, stdout) => resolve(stdout))
  })
  t.equal(Number(out.trim()), 6, 'the child reached round 6 before it was killed')
  const b = new MemoryStore({ dataDir: dir })
  await b.open()
  t.teardown(async () => await b.close())
  const snap = await b.getGroup('g')
  t.equal(snap?.config.need, 2, 'the configuration survived')
  t.equal(snap?.state.round, 6, 'exactly round 6: no reserved ceiling, no jump')
  t.equal(snap?.state.phase, 'EXECUTING', 'still executing')
  t.equal(snap?.state.done, 1, "x's acknowledged done is there")
  t.equal(snap?.state.ready, 1, "z's acknowledged ready is there")
  t.strictSame((await b.rounds('g', { limit: 10 })).map((s) => s.round), [5, 4, 3, 2, 1])
  t.equal((await b.done('g', 'x', { round: 6 })).duplicate, true, 'a repeated done is a duplicate')
  const end = await b.done('g', 'y', { round: 6 })
  t.strictSame(endings(end)[0]?.results, { x: 'six' }, 'the round completes with the result reported before the crash')
  t.strictSame(releases(end), [], 'z alone is not enough for need 2')
  await b.ready('g', 'x', {})
  t.equal((await b.getGroup('g'))?.state.round, 7, 'and the next release is round 7')
})
