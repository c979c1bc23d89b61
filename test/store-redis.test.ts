// The abstract store suite against the Redis store on a private redis-server, plus what only a
// shared store can show: several store instances (as in several processes) deciding together.
import { createHash } from 'node:crypto'
import t from 'tap'
import { OP_SOURCES, type OpResult, RedisStore, type ReleaseRecord } from '../plugins/scheduler/index.js'
import { cfg, endings, releases, storeSuite } from './store-suite/index.js'
import { sleep, waitFor } from './helpers/wait.js'
import { startRedis } from './helpers/redis-server.js'

const server = await startRedis()
t.teardown(async () => await server.stop())

let n = 0
const prefix = (): string => `t${++n}`

storeSuite(t, 'redis', async (opts) => {
  const store = new RedisStore({ url: server.url, prefix: prefix(), ...opts })
  await store.open()
  return { store, cleanup: async () => await store.close() }
})

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

void t.test('redis: three stores racing on every scheduled tick release each tick once and miss each missed tick once', async (t) => {
  const all = await stores(3, prefix())
  t.teardown(async () => { for (const s of all) await s.close() })
  // every second; a terminal ready for each tick; the three stores tick (and make ready) at once, again and again
  await all[0].putGroup('g', cfg({ need: 1, schedule: '* * * * * *', startDelayMs: 100, resetMs: 0, execTimeoutMs: 60000 }))
  // two of two never hold in h: each of its ticks is missed, by whichever store comes first
  await all[1].putGroup('h', cfg({ need: 2, minOnlineRatio: 1, schedule: '* * * * * *', resetMs: 0 }))
  await all[2].ready('h', 'lonely', {})
  const rel: ReleaseRecord[] = []
  const missed: number[] = []
  const end = Date.now() + 3300
  let k = 0
  while (Date.now() < end) {
    const res = await Promise.all([0, 1, 2, 0, 1, 2].map(async (i) => i % 2 === 0 ? await all[i].tick('g') : await all[i].ready('g', `t${k}`, {})))
    res.push(...await Promise.all([0, 1, 2].map(async (i) => await all[i].tick('h'))))
    for (const r of releases(res)) {
      rel.push(r)
      await all[rel.length % 3].done('g', r.participants[0], { round: r.round })
    }
    for (const r of res) for (const e of r.events) if (e.type === 'missed') missed.push(e.missed.tick)
    k++
    await sleep(5)
  }
  // the tick each release consumed: startAt is the tick itself, or a little after it when this
  // busy machine ran the first evaluation later than the timer's grace (startAt = the decision + 100 ms)
  const ticks = rel.map((r) => Math.floor(r.startAt / 1000) * 1000)
  const onTick = rel.filter((r) => r.startAt % 1000 === 0).length
  t.ok(rel.length >= 2, `${rel.length} ticks released in 3.3 s (${onTick} with startAt exactly on the tick)`)
  t.strictSame(ticks, [...new Set(ticks)], 'no tick released twice')
  t.strictSame(rel.map((r) => r.round), rel.map((_r, i) => i + 1), 'one round per tick, none lost')
  for (let i = 1; i < ticks.length; i++) t.equal(ticks[i], ticks[i - 1] + 1000, 'and no tick skipped')
  t.ok(missed.length >= 2, `${missed.length} ticks of h missed`)
  t.strictSame(missed, [...new Set(missed)].sort((a, b) => a - b), 'each missed tick reported once, in order')
  t.equal((await all[0].getGroup('h'))?.state.missed, missed.length, 'and counted once')
})

void t.test('redis: a process that knows nothing of a schedule still releases a due tick on it; a group far behind counts every missed tick', async (t) => {
  const [a, b] = await stores(2, prefix())
  t.teardown(async () => { await a.close(); await b.close() })
  // created by a; b has never seen g, so its first script is given no ticks and follows up with them
  await waitFor(() => { const ms = Date.now() % 1000; return ms >= 100 && ms <= 300 }, 3000, '100-300 ms past a second')
  await a.putGroup('g', cfg({ need: 1, schedule: '* * * * * *', startDelayMs: 500, resetMs: 0, execTimeoutMs: 60000 }))
  t.strictSame(releases(await a.ready('g', 'x', {})), [], 'not due yet')
  await waitFor(() => Date.now() % 1000 >= 505, 3000, 'the due instant')
  const res = await b.tick('g')
  const rel = releases(res)
  t.equal(rel.length, 1, 'released by the process that knew nothing of it')
  const tick = Math.ceil(res.now / 1000) * 1000 // the coming second: its due instant (500 ms before it) has passed
  t.ok(rel[0] !== undefined && rel[0].startAt >= tick, `released for the coming tick (startAt ${(rel[0]?.startAt ?? 0) - tick} ms after it)`)
  t.equal(res.state.nextTick, tick + 1000, 'that tick consumed: the next one is a second later')

  // h misses every tick (nobody is ready); as if no process had run a transition for 150 s, its
  // last tick is moved back where Redis keeps it
  await a.putGroup('h', cfg({ need: 1, schedule: '* * * * * *', resetMs: 0 }))
  const g = a.keys('h')[0]
  const last = Number(await a.redis.hget(g, 'lastTick'))
  await a.redis.hset(g, 'lastTick', String(last - 150000), 'evalTick', String(last - 150000))
  const behind = await a.tick('h')
  const expected = Math.floor(behind.now / 1000) - Math.floor((last - 150000) / 1000)
  t.equal(behind.state.missed, expected, `every tick since counted: ${expected}`)
  t.equal(behind.events.filter((e) => e.type === 'missed').length, 10, 'at most 10 missed events in one transition')
  t.ok(behind.state.nextTick !== null && behind.state.nextTick > behind.now, 'the next tick is ahead')
  t.strictSame((await b.tick('h')).events.filter((e) => e.type === 'missed'), [], 'and none of them again from the other process')
})

void t.test('redis: three stores submitting the same job ids at once create each job once', async (t) => {
  const all = await stores(3, prefix())
  t.teardown(async () => { for (const s of all) await s.close() })
  await all[0].putGroup('g', cfg({ need: 1, paused: true }))
  const ids = Array.from({ length: 40 }, (_, i) => `job-${i}`)
  // every id from every store, three times, with the payload's keys in either order
  const calls = ids.flatMap((id, i) => [0, 1, 2, 0, 1, 2].map((k) => ({ id, k, payload: k % 2 === 0 ? { n: i, tag: 'x' } : { tag: 'x', n: i } })))
  const res = await Promise.all(calls.map(async (c) => await all[c.k].ctl('g', { op: 'submit', job: { id: c.id, payload: c.payload } })))
  for (const id of ids) {
    const mine = res.filter((r) => r.job?.id === id)
    t.equal(mine.filter((r) => r.created === true).length, 1, `${id}: created once of ${mine.length} submits`)
    t.equal(new Set(mine.map((r) => r.job?.submittedAt)).size, 1, `${id}: every submit answers the same job`)
  }
  t.equal((await all[1].getGroup('g'))?.state.queued, ids.length, 'queued once each')
  t.equal((await all[2].jobs('g', { limit: 1000 })).length, ids.length)
  const dup = await Promise.allSettled([0, 1, 2].map(async (k) => await all[k].ctl('g', { op: 'submit', job: { id: 'job-0', payload: { n: -1 } } })))
  t.ok(dup.every((r) => r.status === 'rejected' && (r.reason as { code: string }).code === 'duplicate'), 'another payload under a taken id: duplicate, from every store')
})

void t.test('redis: 300 jobs released by three stores in a ready storm run once each, by priority then age', async (t) => {
  const all = await stores(3, prefix())
  t.teardown(async () => { for (const s of all) await s.close() })
  await all[0].putGroup('g', cfg({ need: 1, resetMs: 0, jobsOnly: true }))
  const jobs = Array.from({ length: 300 }, (_, i) => ({ id: `j${i}`, payload: { i }, priority: (i * 7) % 5 }))
  // submitted from the three stores at once: their queue order is the order Redis took them in
  const subs = await Promise.all(jobs.map(async (j, i) => await all[i % 3].ctl('g', { op: 'submit', job: j })))
  t.equal(subs.filter((r) => r.created === true).length, 300)
  const submitted = (await all[0].jobs('g', { limit: 1000 })).reverse() // oldest first
  const expected = [...submitted].sort((a, b) => b.priority - a.priority).map((j) => j.id) // stable: oldest first within a priority
  const terminals = Array.from({ length: 30 }, (_, i) => `w${i}`)
  const rel: ReleaseRecord[] = []
  const note = (res: OpResult[]): void => { rel.push(...releases(res)) }
  note(await Promise.all(terminals.map(async (id, i) => await all[i % 3].ready('g', id, {}))))
  const end = Date.now() + 60000
  let done = 0
  while (done < rel.length && Date.now() < end) {
    // the executing round's participant reports from one store while the previous ones declare ready again on the others
    const r = rel[done++]
    const again = rel.slice(Math.max(0, done - 3), done - 1).map((x) => x.participants[0])
    note(await Promise.all([
      all[r.round % 3].done('g', r.participants[0], { round: r.round, result: r.job }),
      ...again.map(async (id, i) => await all[(r.round + i + 1) % 3].ready('g', id, {}))
    ]))
  }
  t.equal(rel.length, 300, 'one release per job, none more')
  t.strictSame(rel.map((r) => r.round), rel.map((_r, i) => i + 1), 'rounds 1..300')
  t.strictSame(rel.map((r) => r.job), expected, 'highest priority first, then the oldest')
  t.ok(rel.every((r) => (r.payload as { i: number }).i === Number(r.job?.slice(1))), 'each release carries its job\'s payload')
  const finished = await all[2].jobs('g', { limit: 1000, state: 'completed' })
  t.equal(finished.length, 300, 'every job completed')
  t.ok(finished.every((j) => j.rounds.length === 1 && j.attempts === 1), 'each ran once')
  t.equal((await all[1].getGroup('g'))?.state.queued, 0)
})

void t.test('redis: finished jobs are kept with the round history (historyLimit) and trimmed oldest first, record and all', async (t) => {
  const p = prefix()
  const [s] = await stores(1, p)
  t.teardown(async () => await s.close())
  await s.putGroup('g', cfg({ need: 1, paused: true }))
  const n = 1003
  for (let i = 0; i < n; i++) await s.ctl('g', { op: 'submit', job: { id: `j${i}`, payload: { i } } })
  for (let i = 0; i < n; i++) await s.ctl('g', { op: 'cancel', id: `j${i}` })
  t.equal(await s.job('g', 'j2'), null, 'the three that finished first are gone')
  t.match(await s.job('g', 'j3'), { id: 'j3', state: 'cancelled', payload: { i: 3 } }, 'the next one is kept')
  const kept = await s.jobs('g', { limit: 1000, state: 'cancelled' })
  t.equal(kept.length, 1000)
  t.equal(kept[0].id, `j${n - 1}`, 'newest first')
  const jobs = s.keys('g')[16]
  t.equal(await s.redis.hlen(jobs), 2000, 'a record and a payload for each of the 1000 kept, nothing of the others')
  await t.rejects(s.ctl('g', { op: 'submit', job: { id: 'j3', payload: { i: 4 } } }), { code: 'duplicate' }, 'a kept id is still taken')
  t.equal((await s.ctl('g', { op: 'submit', job: { id: 'j0', payload: { i: 0 } } })).created, true, 'a trimmed id is free again')
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

void t.test('redis: a terminal op recreates a group another process deleted, from its tombstone', async (t) => {
  // a process that has seen the group sends no creation config with its heartbeats; when the
  // group is gone it must still create it again (autoCreateGroups), going on from the last round
  const [a, b] = await stores(2, prefix())
  t.teardown(async () => { await a.close(); await b.close() })
  const create = { createWith: cfg({ need: 1, resetMs: 0 }) }
  t.equal((await a.ready('g', 'x', {}, create)).state.round, 1, 'created by a, released round 1')
  await a.done('g', 'x', { round: 1 })
  await a.heartbeat('g', 'x', {}, create)
  t.equal(await b.deleteGroup('g'), 1, 'b deletes it at round 1')
  const again = await a.ready('g', 'x', {}, create)
  t.equal(again.state.round, 2, 'a\'s next ready creates it again and releases round 2, not round 1 again')
  t.strictSame(await a.listGroups(), ['g'], 'listed again')
  await t.rejects(b.heartbeat('h', 'x', {}), { code: 'unknown_group' }, 'without a creation config an unknown group is refused')
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
  // group, maxTerminals, historyLimit, maxGroups (create), maxQueuedJobs, no ticks, the configuration and its payload
  const config = JSON.stringify(['1', '0', '0.9', '10000', '30000', '600000', '0', '', '1000', 'fifo', '0', '0', '', 'UTC', '0', '0', '0', '1000', 'null'])
  await s.redis.eval(OP_SOURCES.heartbeat, s.keys('solo').length, ...s.keys('solo'), 'solo', '100', '1000', '10', '100', '', config, 'x', '', '', '')
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
