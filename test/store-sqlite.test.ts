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

void t.test('a release leaves its participants\' rows to the round\'s end: restarts mid-round and after read them as memory holds them', async (t) => {
  // The deciding transition writes the release record only (not 10,000 terminal rows): the rows
  // of the terminals it took keep their ready ticket until the round ends. This run goes through
  // what could make those rows lie — a participant ready again during its round, one that left
  // and came back ready, a restart mid-round and one after — on the SQLite store reopened at each
  // step, and on a memory-only store beside it: the same releases, the same terminals.
  const dir = await mkdtemp(join(tmpdir(), 'rg-taken-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const clock = 1_800_000_000_000
  const cfg = mergeConfig(DEFAULT_GROUP_CONFIG, { need: 3, minOnlineRatio: 0, resetMs: 0, dropTolerance: 1, selection: 'fair', offlineAfterMs: 3600000 })
  const memory = new MemoryStore({ dataDir: null, now: () => clock })
  let file = new MemoryStore({ dataDir: dir, now: () => clock })
  await memory.open()
  await file.open()
  const both = async (op: (s: Store) => Promise<unknown>): Promise<Array<{ participants: string[] } | null>> => {
    const out: Array<{ participants: string[] } | null> = []
    for (const s of [memory, file]) {
      const res = await op(s) as { events?: Array<{ type: string, release?: { participants: string[] } }> }
      out.push(res?.events?.find((e) => e.type === 'released')?.release ?? null)
    }
    return out
  }
  const view = async (s: Store): Promise<unknown> => ({
    state: { ...(await s.getGroup('g'))?.state, updatedAt: 0 },
    terminals: (await s.terminals('g')).map((v) => ({ id: v.clientId, ready: v.ready, participating: v.participating })).sort((a, b) => a.id.localeCompare(b.id))
  })
  const restart = async (when: string): Promise<void> => {
    await file.close()
    file = new MemoryStore({ dataDir: dir, now: () => clock })
    await file.open()
    t.strictSame(await view(file), await view(memory), `after a restart ${when}, the file holds what memory holds`)
  }
  await both(async (s) => await s.putGroup('g', cfg))
  for (const id of ['t1', 't2', 't3', 't4']) await both(async (s) => await s.heartbeat('g', id, {}))
  for (const id of ['t1', 't2']) await both(async (s) => await s.ready('g', id, {}))
  const [r1] = await both(async (s) => await s.ready('g', 't3', {}))
  t.strictSame(r1?.participants, ['t1', 't2', 't3'], 'round 1 takes t1, t2, t3')
  await both(async (s) => await s.done('g', 't1', { round: 1 }))
  await both(async (s) => await s.ready('g', 't1', {})) // ready again during its round
  await both(async (s) => await s.leave('g', 't2')) // dropped (tolerated), then back and ready
  await both(async (s) => await s.ready('g', 't2', {}))
  await restart('mid-round')
  const terms = (await view(file) as { terminals: Array<{ id: string, ready: boolean }> }).terminals
  t.strictSame(terms.filter((x) => x.ready).map((x) => x.id), ['t1', 't2'], 'ready: t1 (again after its done) and t2 (back after leaving); t3, taken by the release, is not')
  await restart('mid-round, twice') // tickets handed out after the first restart stay above the release's
  await both(async (s) => await s.ctl('g', { op: 'pause' })) // four ready before the next release
  await both(async (s) => await s.done('g', 't3', { round: 1 }))
  await restart('after the round ended')
  await both(async (s) => await s.ready('g', 't3', {}))
  await both(async (s) => await s.ready('g', 't4', {}))
  await restart('with four ready')
  const [r2m, r2f] = await both(async (s) => await s.ctl('g', { op: 'resume' }))
  // fair: the fewest rounds taken part in first: t4 and the t2 that came back (new: round 0), then
  // of t1 and t3 (both round 1) the one ready first
  t.strictSame(r2m?.participants, ['t2', 't4', 't1'], 'round 2 by fair selection, in memory')
  t.strictSame(r2f?.participants, r2m?.participants, 'the same round 2 from the file reopened')
  await restart('in round 2')
  await memory.close()
  await file.close()
})
