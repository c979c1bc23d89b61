// The Redis store's Lua scripts against the TypeScript model they port (engine/model/, run by the
// embedded store): the same seeded operations on both, each answered the same — state, timing,
// events with their summaries and jobs, refusals with their codes and messages — and the same
// reads after each step. The embedded store runs on the clock each Redis script answered, so both
// decide at the same instant. Readies, dones with results, leaves, kicks, holds, configuration
// (need, bosses, tolerance, completeOn, selection, payload, retries, jobsOnly, startDelayMs),
// pause, aborts, forced releases, timeouts and retries on real time, jobs submitted (again, with
// the keys reordered, or with another payload), cancelled and listed, deletions and re-creation.
// Schedules are held to the model by the store suite instead (a Redis follow-up settle runs at a
// later instant than the model's). MODEL_STEPS (default 400) and MODEL_SEED (default 11) vary it.
import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import {
  DEFAULT_GROUP_CONFIG, type GroupConfig, mergeConfig, MemoryStore, type OpResult, RedisStore, type Store
} from '../plugins/scheduler/index.js'
import { rng } from './helpers/crash.js'
import { startRedis } from './helpers/redis-server.js'
import { sleep } from './helpers/wait.js'

const STEPS = Number(process.env.MODEL_STEPS ?? 400)
const SEED = Number(process.env.MODEL_SEED ?? 11)
const IDS = ['a', 'b', 'c', 'd', 'e', 'B1', 'B2']
const JOBS = ['j0', 'j1', 'j2', 'j3', 'j4', 'j5', 'j6']
const LIMITS = { maxQueuedJobs: 4, maxTerminalsPerGroup: 6 }

const server = await startRedis()
t.teardown(async () => await server.stop())

/** JSON as both stores answer it over the wire: undefined fields gone. */
const wire = (v: unknown): unknown => v === undefined ? undefined : JSON.parse(JSON.stringify(v))

type Outcome = { ok: true, value: unknown } | { ok: false, code: string, message: string }

async function attempt (fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: wire(await fn()) }
  } catch (err) {
    const e = err as { code?: string, message: string }
    return { ok: false, code: e.code ?? 'thrown', message: e.message }
  }
}

void t.test(`redis scripts = the TypeScript model over ${STEPS} random operations (seed ${SEED})`, async (t) => {
  const redis = new RedisStore({ url: server.url, prefix: `m${SEED}`, ...LIMITS })
  await redis.open()
  let clock = 0
  const model = new MemoryStore({ now: () => clock, ...LIMITS })
  await model.open()
  t.teardown(async () => { await redis.close(); await model.close() })

  const random = rng(SEED)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]
  const chance = (p: number): boolean => random() < p
  const payload = (): unknown => pick([null, 1, 'text', [1, 2], { x: 1, y: [true, null] }, { y: [true, null], x: 1 }, { n: { b: 2, a: 1 } }, { n: { a: 1, b: 2 } }])
  const config = (): Partial<GroupConfig> => {
    const c: Partial<GroupConfig> = {}
    if (chance(0.5)) c.need = pick([0, 1, 1, 2, 2, 3])
    if (chance(0.3)) c.bossNeed = pick([0, 0, 1, 2])
    if (chance(0.3)) c.dropTolerance = pick([0, 1, 2, 0.5])
    if (chance(0.2)) c.completeOn = pick([null, 'all', 'boss'] as const)
    if (chance(0.3)) c.selection = pick(['fifo', 'fair', 'load'] as const)
    if (chance(0.3)) c.payload = payload()
    if (chance(0.3)) c.retry = { max: Math.floor(random() * 3), backoffMs: pick([0, 10, 40]) }
    if (chance(0.2)) c.jobsOnly = chance(0.5)
    if (chance(0.2)) c.execTimeoutMs = pick([60, 150, 5000])
    if (chance(0.2)) c.resetMs = pick([0, 0, 30])
    if (chance(0.2)) c.minOnlineRatio = pick([0.5, 0.9, 1])
    if (chance(0.2)) c.startDelayMs = pick([0, 25])
    return c
  }
  const create = (): GroupConfig => mergeConfig(DEFAULT_GROUP_CONFIG, { need: 2, minOnlineRatio: 0.5, resetMs: 0, execTimeoutMs: 150, offlineAfterMs: 600000, retry: { max: 1, backoffMs: 20 }, ...config() })

  let round = 0
  /** the executing round's participants: most dones come from them */
  let participants: string[] = []
  const tally: Record<string, number> = {}
  let refused = 0
  const seen: Record<string, number> = {}
  let mismatches = 0

  /** One transition on both: Redis first, then the model at the instant Redis answered. */
  async function both (what: string, fn: (s: Store) => Promise<OpResult | number | null>): Promise<void> {
    const r = await attempt(async () => await fn(redis))
    const now = r.ok && r.value !== null && typeof r.value === 'object' ? (r.value as OpResult).now : undefined
    clock = now ?? clock + 1 // a refusal changes nothing whatever the clock
    const m = await attempt(async () => await fn(model))
    if (!r.ok) refused++
    else if (typeof r.value === 'object' && r.value !== null) {
      for (const e of (r.value as OpResult).events) {
        seen[e.type] = (seen[e.type] ?? 0) + 1
        if (e.type === 'released') participants = e.release.participants
        if (e.type === 'ended') participants = []
      }
    }
    if (r.ok && typeof r.value === 'object' && r.value !== null) round = (r.value as OpResult).state.round
    t.strictSame(r, m, what)
    if (!isDeepStrictEqual(r, m) && ++mismatches > 3) throw new Error('too many differences: stopping')
  }

  /** Every read on both, at the same instant (retry backoffs end on their own: the timing of a WAITING group is compared at its instant only). */
  async function reads (step: number): Promise<void> {
    const r = await attempt(async () => await redis.getGroup('g'))
    const snap = r.ok ? r.value as { state: OpResult['state'], timing: unknown } | null : null
    clock = snap === null ? clock : Date.now()
    const m = await attempt(async () => await model.getGroup('g'))
    if (snap !== null && m.ok && m.value !== null) {
      // the snapshot's clock is not part of it: a pending retry's wake-up is compared by the transitions
      if (snap.state.phase === 'WAITING' && snap.state.attempt > 1) (m.value as { timing: unknown }).timing = snap.timing
    }
    t.strictSame(r, m, `step ${step}: getGroup`)
    const sorted = (v: unknown): unknown => Array.isArray(v) ? [...v].sort((x, y) => String(x.clientId).localeCompare(String(y.clientId))) : v
    const tr = await attempt(async () => await redis.terminals('g'))
    const tm = await attempt(async () => await model.terminals('g'))
    t.strictSame(tr.ok ? { ...tr, value: sorted(tr.value) } : tr, tm.ok ? { ...tm, value: sorted(tm.value) } : tm, `step ${step}: terminals`)
    t.strictSame(await attempt(async () => await redis.rounds('g', { limit: 5 })), await attempt(async () => await model.rounds('g', { limit: 5 })), `step ${step}: rounds`)
    const outcome = pick(['completed', 'aborted', 'timeout'] as const)
    t.strictSame(await attempt(async () => await redis.rounds('g', { limit: 3, outcome, before: round })),
      await attempt(async () => await model.rounds('g', { limit: 3, outcome, before: round })), `step ${step}: rounds ${outcome} before ${round}`)
    const id = pick(IDS)
    t.strictSame(await attempt(async () => await redis.terminalRounds('g', id, 4)), await attempt(async () => await model.terminalRounds('g', id, 4)), `step ${step}: terminalRounds ${id}`)
    const q = { limit: 1 + Math.floor(random() * 5), state: chance(0.5) ? pick(['queued', 'running', 'completed', 'failed', 'cancelled'] as const) : undefined, before: chance(0.3) ? pick(JOBS) : undefined }
    t.strictSame(await attempt(async () => await redis.jobs('g', q)), await attempt(async () => await model.jobs('g', q)), `step ${step}: jobs ${JSON.stringify(q)}`)
    const j = pick(JOBS)
    t.strictSame(await attempt(async () => await redis.job('g', j)), await attempt(async () => await model.job('g', j)), `step ${step}: job ${j}`)
  }

  const first = create()
  await both('putGroup', async (s) => await s.putGroup('g', first))
  for (let step = 0; step < STEPS; step++) {
    if (chance(0.2)) await sleep(Math.floor(random() * 80))
    const id = pick(IDS)
    const role = id.startsWith('B') ? 'boss' as const : 'small' as const
    const op = pick(['ready', 'ready', 'ready', 'ready', 'ready', 'ready', 'done', 'done', 'done', 'done', 'done', 'done', 'heartbeat',
      'leave', 'tick', 'tick', 'tick', 'tick', 'kick', 'hold', 'configure', 'put', 'pause', 'resume', 'resume', 'abort', 'release',
      'submit', 'submit', 'submit', 'cancel', 'delete'] as const)
    tally[op] = (tally[op] ?? 0) + 1
    const what = `step ${step}: ${op} ${id}`
    switch (op) {
      case 'ready': { const input = chance(0.8) ? { role } : {}; await both(what, async (s) => await s.ready('g', id, input)); break }
      case 'heartbeat': { const load = Math.floor(random() * 5); await both(what, async (s) => await s.heartbeat('g', id, { role, load })); break }
      case 'done': {
        const who = participants.length > 0 && chance(0.85) ? pick(participants) : id
        const r = chance(0.9) ? round : round - 1
        const ok = chance(0.8)
        const result = chance(0.5) ? { id, r } : undefined
        await both(`step ${step}: done ${who}`, async (s) => await s.done('g', who, { round: r, ok, result }))
        break
      }
      case 'leave': await both(what, async (s) => await s.leave('g', id)); break
      case 'tick': await both(what, async (s) => await s.tick('g')); break
      case 'kick': await both(what, async (s) => await s.ctl('g', { op: 'kick', clientId: id })); break
      case 'hold': { const ids = [id, pick(IDS)]; await both(what, async (s) => await s.hold('g', ids)); break }
      case 'configure': { const c = config(); await both(`${what} ${JSON.stringify(c)}`, async (s) => await s.ctl('g', { op: 'configure', config: c })); break }
      case 'put': { const c = create(); await both(`${what} ${JSON.stringify(c)}`, async (s) => await s.putGroup('g', c)); break }
      case 'pause': await both(what, async (s) => await s.ctl('g', { op: 'pause' })); break
      case 'resume': await both(what, async (s) => await s.ctl('g', { op: 'resume' })); break
      case 'abort': await both(what, async (s) => await s.ctl('g', { op: 'abort' })); break
      case 'release': await both(what, async (s) => await s.ctl('g', { op: 'release' })); break
      case 'submit': {
        const job = { id: pick(JOBS), payload: payload(), priority: pick([0, 0, 1, -1, 5]) }
        await both(`${what} ${JSON.stringify(job)}`, async (s) => await s.ctl('g', { op: 'submit', job }))
        break
      }
      case 'cancel': { const j = pick(JOBS); await both(`${what} ${j}`, async (s) => await s.ctl('g', { op: 'cancel', id: j })); break }
      case 'delete':
        if (chance(0.2)) {
          await both(what, async (s) => await s.deleteGroup('g'))
          const c = create()
          await both('re-create', async (s) => await s.heartbeat('g', id, { role }, { createWith: c }))
        }
        break
    }
    if (step % 5 === 4) await reads(step)
  }
  t.ok(refused > 0, `a run with refusals (${refused}): ${JSON.stringify(tally)}`)
  for (const type of ['released', 'ended', 'retry', 'exhausted', 'job', 'left', 'kicked']) t.ok((seen[type] ?? 0) > 0, `and ${type} events: ${JSON.stringify(seen)}`)
})
