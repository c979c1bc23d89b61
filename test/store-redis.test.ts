// The abstract store suite against the Redis store on a private redis-server, plus what only a
// shared store can show: several store instances (as in several processes) deciding together.
import { createHash } from 'node:crypto'
import t from 'tap'
import { OP_SOURCES, RedisStore } from '../plugins/scheduler/index.js'
import { cfg, endings, releases, storeSuite } from './store-suite/index.js'
import { sleep } from './helpers/wait.js'
import { startRedis } from './helpers/redis-server.js'

const server = await startRedis()
t.teardown(async () => await server.stop())

let n = 0
const prefix = (): string => `t${++n}`

storeSuite(t, 'redis', async (opts) => {
  const store = new RedisStore({ url: server.url, prefix: prefix(), ...opts })
  await store.open()
  return { store, cleanup: async () => await store.close() }
}, { pending11: 'the Lua scripts do not implement PROTOCOL 1.1 rules yet' })

async function stores (count: number, p: string, extra: Partial<ConstructorParameters<typeof RedisStore>[0]> = {}): Promise<RedisStore[]> {
  const out: RedisStore[] = []
  for (let i = 0; i < count; i++) {
    const s = new RedisStore({ url: server.url, prefix: p, ...extra })
    await s.open()
    out.push(s)
  }
  return out
}

void t.test('redis: three stores (as three processes) in a ready storm release once, never above need', async (t) => {
  const all = await stores(3, prefix())
  t.teardown(async () => { for (const s of all) await s.close() })
  for (let k = 1; k <= 3; k++) {
    const g = `storm${k}`
    await all[k - 1].putGroup(g, cfg({ need: 10, minOnlineRatio: 1, resetMs: 0 }))
    const ids = Array.from({ length: 90 }, (_, i) => `r${k}-${i}`)
    const res = await Promise.all(ids.map(async (id, i) => await all[i % 3].ready(g, id, {})))
    const rel = releases(res)
    t.equal(rel.length, 1, `${g}: one release among 90 concurrent readies on 3 stores`)
    t.equal(rel[0]?.participants.length, 10)
    t.equal(rel[0]?.round, 1)
    const s = (await all[2].getGroup(g))?.state
    t.equal(s?.participants, 10)
    t.equal(s?.ready, 80)
    const done = await Promise.all((rel[0]?.participants ?? []).map(async (id, i) => await all[(i + 1) % 3].done(g, id, { round: 1 })))
    t.equal(endings(done).length, 1, 'one end')
    const next = releases(done)
    t.equal(next.length, 1, 'and one next release, from the 80 still ready')
    t.equal(next[0]?.round, 2)
    t.equal(next[0]?.participants.filter((id) => rel[0]?.participants.includes(id)).length, 0, 'none of round 1')
  }
})

void t.test('redis: concurrent ticks from every process end RESET and release exactly once', async (t) => {
  const all = await stores(3, prefix())
  t.teardown(async () => { for (const s of all) await s.close() })
  await all[0].putGroup('g', cfg({ need: 2, resetMs: 100, execTimeoutMs: 150 }))
  await all[0].ready('g', 'a', {})
  await all[1].ready('g', 'b', {})
  await all[2].ready('g', 'c', {})
  await all[2].ready('g', 'd', {})
  // round 1 (a, b) times out: many ticks at once, one timeout; then one release of round 2
  const evs: string[] = []
  const end = Date.now() + 3000
  while (Date.now() < end && !evs.includes('released:2')) {
    const res = await Promise.all([0, 1, 2, 0, 1, 2].map(async (i) => await all[i].tick('g')))
    for (const s of endings(res)) evs.push(`ended:${s.round}:${s.outcome}`)
    for (const r of releases(res)) evs.push(`released:${r.round}`)
    await sleep(5)
  }
  t.strictSame(evs, ['ended:1:timeout', 'released:2'], 'one timeout, one release, whoever ticked')
})

void t.test('redis: NOSCRIPT fallback after SCRIPT FLUSH', async (t) => {
  const [s] = await stores(1, prefix())
  t.teardown(async () => await s.close())
  await s.putGroup('g', cfg({ need: 1 }))
  const sha = createHash('sha1').update(OP_SOURCES.ready).digest('hex')
  await s.redis.script('FLUSH')
  t.strictSame(await s.redis.script('EXISTS', sha), [0], 'Redis forgot the script')
  const res = await s.ready('g', 'a', {})
  t.equal(releases(res).length, 1, 'the script ran again from its source')
  t.strictSame(await s.redis.script('EXISTS', sha), [1], 'and knows it again')
})

void t.test('redis: every group key carries the group hash tag', async (t) => {
  const p = prefix()
  const [s] = await stores(1, p)
  t.teardown(async () => await s.close())
  await s.putGroup('grp.1', cfg({ need: 2, bossNeed: 1, resetMs: 10000 }))
  await s.ready('grp.1', 'a', { load: 1, meta: { x: 1 } })
  await s.ready('grp.1', 'b', {})
  await s.ready('grp.1', 'boss', { role: 'boss' })
  await s.done('grp.1', 'a', { round: 1, result: 1 })
  await s.leave('grp.1', 'b')
  const keys = await s.redis.keys(`${p}:*`)
  t.ok(keys.length > 5)
  for (const k of keys) t.ok(k === `${p}:groups` || k.startsWith(`${p}:{grp.1}:`), k)
  t.equal(await s.deleteGroup('grp.1'), 1)
  t.strictSame(await s.redis.keys(`${p}:*`), [`${p}:{grp.1}:tomb`], 'deleteGroup leaves only the tombstone behind')
  t.equal(await s.redis.get(`${p}:{grp.1}:tomb`), '1', 'holding the last round')
  await s.ensureGroup('grp.1', cfg())
  t.equal(await s.redis.exists(`${p}:{grp.1}:tomb`), 0, 'created again: the round lives in the group again')
})

void t.test('redis: maxGroups refuses auto-created groups beyond the limit', async (t) => {
  const [s] = await stores(1, prefix(), { maxGroups: 2 })
  t.teardown(async () => await s.close())
  await s.heartbeat('a', 'x', {}, { createWith: cfg() })
  await s.heartbeat('b', 'x', {}, { createWith: cfg() })
  await t.rejects(s.heartbeat('c', 'x', {}, { createWith: cfg() }), { code: 'unavailable' })
  t.strictSame((await s.listGroups()).sort(), ['a', 'b'])
  t.equal(await s.getGroup('c'), null)
})

void t.test('redis: maxGroups is checked inside the create script: concurrent creates never exceed it', async (t) => {
  const all = await stores(3, prefix(), { maxGroups: 3 })
  t.teardown(async () => { for (const s of all) await s.close() })
  const names = Array.from({ length: 12 }, (_, i) => `c${i}`)
  const res = await Promise.allSettled(names.map(async (g, i) => await all[i % 3].heartbeat(g, 'x', {}, { createWith: cfg() })))
  const ok = names.filter((_, i) => res[i].status === 'fulfilled')
  t.equal(ok.length, 3, 'exactly maxGroups creates succeed, however many processes race')
  for (const r of res) if (r.status === 'rejected') t.match(r.reason, { code: 'unavailable' })
  t.strictSame((await all[0].listGroups()).sort(), ok.sort(), 'and every created group is registered, nothing else')
  for (const g of ok) t.not(await all[1].getGroup(g), null)
  await all[2].deleteGroup(ok[0])
  await all[1].heartbeat('late', 'x', {}, { createWith: cfg() })
  t.ok((await all[0].listGroups()).includes('late'), 'a deletion frees a place at once')
})

void t.test('redis: the create script registers the group in the same step (no window to lose it)', async (t) => {
  const p = prefix()
  const [s] = await stores(1, p)
  t.teardown(async () => await s.close())
  // the script alone, as if the process died the moment it returned
  const cfgArgs = ['1', '0', '0.9', '10000', '30000', '600000', '0', '', '1000', 'fifo', 'null', '0']
  await s.redis.eval(OP_SOURCES.heartbeat, s.keys('solo').length, ...s.keys('solo'), 'solo', '100', '1000', '10', ...cfgArgs, 'x', '', '', '')
  t.strictSame(await s.listGroups(), ['solo'], 'listed: swept, shown and counted like any group')
  t.equal((await s.getGroup('solo'))?.state.online, 1)
})

void t.test('redis: every answer carries the Redis clock', async (t) => {
  const [s] = await stores(1, prefix())
  t.teardown(async () => await s.close())
  const time = async (): Promise<number> => {
    const [sec, usec] = await s.redis.time()
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000)
  }
  const before = await time()
  const res = await s.putGroup('g', cfg())
  const after = await time()
  t.ok(res.now >= before && res.now <= after, 'now lies between two Redis TIME readings')
})

void t.test('redis: round time comes from the Redis clock', async (t) => {
  const [s] = await stores(1, prefix())
  t.teardown(async () => await s.close())
  await s.putGroup('g', cfg({ need: 1 }))
  const [sec, usec] = await s.redis.time()
  const before = Number(sec) * 1000 + Math.floor(Number(usec) / 1000)
  // this process's clock is stopped at 0 meanwhile: a time taken from Node would show it
  const realNow = Date.now
  Date.now = () => 0
  let rel
  try {
    rel = releases(await s.ready('g', 'a', {}))[0]
  } finally {
    Date.now = realNow
  }
  const [sec2, usec2] = await s.redis.time()
  const after = Number(sec2) * 1000 + Math.floor(Number(usec2) / 1000)
  t.ok(rel.releasedAt >= before && rel.releasedAt <= after, 'releasedAt lies between two Redis TIME readings')
})

void t.test('redis: redis-server gone and back: unavailable at once, then the state it kept', async (t) => {
  const own = await startRedis({ persist: true })
  t.teardown(async () => await own.stop())
  const s = new RedisStore({ url: own.url, prefix: 'p' })
  await s.open()
  t.teardown(async () => await s.close())
  await s.putGroup('g', cfg({ need: 1, resetMs: 0 }))
  for (let i = 1; i <= 3; i++) {
    await s.ready('g', 'a', {})
    await s.done('g', 'a', { round: i })
  }
  await s.ready('g', 'a', {}) // round 4 executing
  await own.kill()
  const t0 = Date.now()
  await t.rejects(s.heartbeat('g', 'a', {}), { code: 'unavailable' })
  await t.rejects(s.getGroup('g'), { code: 'unavailable' })
  await t.rejects(s.listGroups(), { code: 'unavailable' })
  t.equal(await s.ping(), false)
  t.ok(Date.now() - t0 < 3000, 'refused at once, not after a hang')
  await own.start()
  const deadline = Date.now() + 10000
  while (!await s.ping() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(await s.ping(), true, 'reconnected by itself')
  const snap = await s.getGroup('g')
  t.equal(snap?.state.round, 4, 'the round Redis kept')
  t.equal(snap?.state.phase, 'EXECUTING')
  const end = await s.done('g', 'a', { round: 4 })
  t.equal(endings(end)[0]?.round, 4, 'the kept round completes')
  const next = releases(await s.ready('g', 'a', {}))
  t.equal(next[0]?.round, 5, 'rounds go on from there, never backwards')
})
