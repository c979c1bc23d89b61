// The embedded store on its SQLite file: what memory holds after any sequence of transitions is
// exactly what a fresh process reads back from the file (heartbeat data aside: lastSeen, load and
// meta live in memory only). A seeded run of random transitions over several groups — readies,
// dones with results, leaves, kicks, configuration, pause, aborts, forced releases, timeouts with
// retries, jobs submitted and cancelled, deletions — is compared with a reopened store after
// every few steps. ROUNDTRIP_STEPS (default 400) and ROUNDTRIP_SEED (default 7) vary it.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DEFAULT_GROUP_CONFIG, mergeConfig, MemoryStore, type Store } from '../plugins/scheduler/index.js'
import { rng } from './helpers/crash.js'

const STEPS = Number(process.env.ROUNDTRIP_STEPS ?? 400)
const SEED = Number(process.env.ROUNDTRIP_SEED ?? 7)
const GROUPS = ['a', 'b', 'c']
const IDS = ['t1', 't2', 't3', 't4', 't5']

/** What a reader can see of every group, heartbeat data aside. */
async function everything (store: Store): Promise<unknown> {
  const out: Record<string, unknown> = {}
  for (const g of (await store.listGroups()).sort()) {
    const snap = await store.getGroup(g)
    const terms = (await store.terminals(g)).map((v) => ({ ...v, lastSeen: 0, load: null, meta: null })).sort((x, y) => x.clientId.localeCompare(y.clientId))
    out[g] = {
      snap,
      terms,
      rounds: await store.rounds(g, { limit: 1000 }),
      jobs: await store.jobs(g, { limit: 1000 }),
      t1: await store.terminalRounds(g, 't1', 50)
    }
  }
  return out
}

void t.test(`sqlite: memory equals the file after ${STEPS} random transitions (seed ${SEED})`, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-roundtrip-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  let clock = 1_800_000_000_000
  const now = (): number => clock
  const open = async (): Promise<MemoryStore> => {
    const s = new MemoryStore({ dataDir: dir, now, maxQueuedJobs: 5 })
    await s.open()
    return s
  }
  let store = await open()
  const random = rng(SEED)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]
  const create = mergeConfig(DEFAULT_GROUP_CONFIG, { need: 2, minOnlineRatio: 0.5, resetMs: 20, execTimeoutMs: 500, retry: { max: 1, backoffMs: 50 } })
  const tally: Record<string, number> = {}
  let compared = 0
  let refused = 0
  for (let step = 0; step < STEPS; step++) {
    clock += Math.floor(random() * 120)
    const g = pick(GROUPS)
    const id = pick(IDS)
    const op = pick(['ready', 'ready', 'ready', 'done', 'done', 'done', 'heartbeat', 'leave', 'tick', 'tick', 'kick', 'configure', 'pause', 'resume',
      'abort', 'release', 'submit', 'cancel', 'delete', 'role'] as const)
    tally[op] = (tally[op] ?? 0) + 1
    try {
      const state = (await store.getGroup(g))?.state
      switch (op) {
        case 'ready': await store.ready(g, id, {}, { createWith: create }); break
        case 'heartbeat': await store.heartbeat(g, id, { load: random(), meta: { step } }, { createWith: create }); break
        case 'role': await store.heartbeat(g, id, { role: random() < 0.3 ? 'boss' : 'small' }, { createWith: create }); break
        case 'done': await store.done(g, id, { round: state?.round ?? 0, ok: random() < 0.8, result: random() < 0.5 ? { step, id } : undefined }); break
        case 'leave': await store.leave(g, id); break
        case 'tick': await store.tick(g); break
        case 'kick': await store.ctl(g, { op: 'kick', clientId: id }); break
        case 'configure': await store.ctl(g, { op: 'configure', config: { need: 1 + Math.floor(random() * 3), payload: { v: step }, selection: pick(['fifo', 'fair', 'load'] as const) } }); break
        case 'pause': await store.ctl(g, { op: 'pause' }); break
        case 'resume': await store.ctl(g, { op: 'resume' }); break
        case 'abort': await store.ctl(g, { op: 'abort' }); break
        case 'release': await store.ctl(g, { op: 'release' }); break
        case 'submit': await store.ctl(g, { op: 'submit', job: { id: `j${Math.floor(random() * 12)}`, payload: { n: 1 }, priority: Math.floor(random() * 3) } }); break
        case 'cancel': await store.ctl(g, { op: 'cancel', id: `j${Math.floor(random() * 12)}` }); break
        case 'delete': if (random() < 0.3) await store.deleteGroup(g); break
      }
    } catch (err) {
      // refusals (unknown group, stale round, nobody ready, ...) are part of the run: they change nothing
      if ((err as { code?: string }).code === undefined) throw err
      refused++
    }
    if (step % 7 === 6 || step === STEPS - 1) {
      const inMemory = await everything(store)
      await store.close()
      store = await open()
      const fromFile = await everything(store)
      compared++
      if (!t.strictSame(fromFile, inMemory, `step ${step} (${op}): the file holds what memory held`)) break
    }
  }
  const seen = { rounds: 0, retries: 0, timeouts: 0, jobRounds: 0 }
  for (const g of await store.listGroups()) {
    for (const s of await store.rounds(g, { limit: 1000 })) {
      seen.rounds++
      if (s.attempt > 1) seen.retries++
      if (s.outcome === 'timeout') seen.timeouts++
      if (s.job !== null) seen.jobRounds++
    }
  }
  await store.close()
  t.comment(`operations: ${JSON.stringify(tally)}; refused: ${refused}; compared: ${compared}; in the history at the end: ${JSON.stringify(seen)}`)
  t.ok(seen.rounds >= 5 && seen.timeouts + seen.retries + seen.jobRounds > 0, 'rounds ran, some timed out, retried or ran a job')
  t.ok(compared >= STEPS / 7, 'compared all along')
})
