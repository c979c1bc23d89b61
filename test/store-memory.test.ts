// The abstract store suite against the in-memory store, plus its durability with a data directory.
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

void t.test('memory with a dataDir: config, round and history survive close and open', async (t) => {
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

void t.test('memory with a dataDir: after an unclean stop rounds never go backwards', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-mem-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const here = fileURLToPath(new URL('.', import.meta.url))
  const modUrl = pathToFileURL(join(here, '..', 'plugins', 'scheduler', 'index.js')).href
  const cfgUrl = modUrl
  // A child process runs 5 rounds and is killed with SIGKILL: no close(), no final save.
  const code = `
    const { MemoryStore } = await import(${JSON.stringify(modUrl)})
    const { DEFAULT_GROUP_CONFIG } = await import(${JSON.stringify(cfgUrl)})
    const s = new MemoryStore({ dataDir: ${JSON.stringify(dir)} })
    await s.open()
    await s.putGroup('g', { ...DEFAULT_GROUP_CONFIG, need: 1, resetMs: 0 })
    for (let i = 1; i <= 5; i++) { await s.ready('g', 'x', {}); await s.done('g', 'x', { round: i }) }
    await s.ready('g', 'x', {})
    process.stdout.write(String((await s.getGroup('g')).state.round) + '\\n', () => process.kill(process.pid, 'SIGKILL'))
  `
  const out = await new Promise<string>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', code], { timeout: 20000 }, (_err, stdout) => resolve(stdout))
  })
  const crashedAt = Number(out.trim())
  t.equal(crashedAt, 6, 'the child reached round 6 before it was killed')
  const b = new MemoryStore({ dataDir: dir })
  await b.open()
  const snap = await b.getGroup('g')
  t.ok(snap !== null, 'the group survived')
  t.equal(snap?.config.need, 1, 'its configuration too')
  t.ok((snap?.state.round ?? 0) >= crashedAt, `round ${snap?.state.round} is not below ${crashedAt}`)
  const res = await b.ready('g', 'x', {})
  const rel = releases(res)
  t.equal(rel.length, 1)
  t.ok(rel[0].round > crashedAt, `the next release (${rel[0].round}) is above every round used before the crash`)
  await b.close()
})
