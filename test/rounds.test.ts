// PROTOCOL section 3 over MQTT, end to end: release thresholds, the frozen set, done, drops,
// completion rules, timeout, reset, liveness. Each test fails if its rule is broken.
import t from 'tap'
import { connect, terminal, waitFor } from './helpers/broker.js'
import { fleet, readyAll, silent } from './helpers/rounds.js'

void t.test('release waits for need × minOnlineRatio online smalls, then uses effNeed', async (t) => {
  const f = await fleet(t, { need: 4, minOnlineRatio: 0.5, resetMs: 50 })
  const a = await f.term('a')
  await a.ready()
  t.ok(await silent(a.inbox, 'rg/g/release'), 'one online small of ceil(4×0.5)=2: no release')
  t.equal((await f.state()).phase, 'WAITING')
  const b = await f.term('b')
  await b.hb()
  t.ok(await silent(a.inbox, 'rg/g/release', 150), 'two online but only one ready of effNeed=2: no release')
  await b.ready()
  const rel = (await a.release()).json
  t.equal(rel.round, 1)
  t.equal(rel.participants, 2, 'effNeed = min(need, online smalls) = 2: the release counts them')
  t.same(await f.participating(), ['a', 'b'], 'and the terminals view names them')
  t.equal(rel.shard.count, 2)
})

void t.test('exactly need participants; those not chosen stay ready for the next round', async (t) => {
  const f = await fleet(t, { need: 2, resetMs: 20 })
  const [a, b, c] = [await f.term('a'), await f.term('b'), await f.term('c')]
  await c.hb(); await b.hb() // all online first, so the release waits for two ready
  await readyAll([a, b, c])
  const r1 = (await a.release()).json
  t.equal(r1.participants, 2)
  t.same(await f.participating(), ['a', 'b'], 'fifo: the earliest two ready')
  t.same(r1.shard, { index: 0, count: 2 })
  t.same((await b.release()).json.shard, { index: 1, count: 2 })
  t.ok(await silent(c.inbox, 'rg/g/release', 200), 'c is not a participant and never receives the release')
  const s = await f.state()
  t.equal(s.ready, 1, 'c stays ready')
  t.equal(s.participants, 2)
  await a.done(1); await b.done(1)
  await a.ready()
  const r2 = (await c.release()).json
  t.equal(r2.round, 2, 'rounds count up by one')
  t.same([r2.participants, r2.shard], [2, { index: 0, count: 2 }], 'c, still ready from before, goes first')
  t.same((await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === 2)).json.shard, { index: 1, count: 2 }, 'then a')
})

void t.test('a terminal ready after the freeze is never part of that round', async (t) => {
  const f = await fleet(t, { need: 1, resetMs: 50, execTimeoutMs: 60000 })
  const a = await f.term('a')
  const late = await f.term('late')
  await a.ready()
  t.equal((await a.release()).json.round, 1)
  await late.ready()
  t.ok(await silent(late.inbox, 'rg/g/release', 200))
  const s = await f.state()
  t.equal(s.participants, 1)
  t.equal(s.ready, 1, 'late waits, ready, for the next round')
  await a.done(1)
  const r = (await late.release()).json
  t.equal(r.round, 2, 'late takes part in the next round')
})

void t.test('bossNeed: bosses are needed and get role boss with their own shard', async (t) => {
  const f = await fleet(t, { need: 2, bossNeed: 1, resetMs: 50 })
  const [s1, s2, boss] = [await f.term('s1'), await f.term('s2'), await f.term('boss')]
  await boss.hb({ role: 'boss' })
  await readyAll([s1, s2])
  t.ok(await silent(s1.inbox, 'rg/g/release', 200), 'no release without a ready boss')
  await boss.ready({ role: 'boss' })
  const rb = (await boss.release()).json
  t.equal(rb.role, 'boss')
  t.same(rb.shard, { index: 0, count: 1 })
  t.same(rb.bosses, ['boss'])
  t.equal(rb.participants, 3, 'smalls and bosses together')
  t.same(await f.participating(), ['boss', 's1', 's2'])
  const r1 = (await s1.release()).json
  t.equal(r1.role, 'small')
  t.same(r1.shard, { index: 0, count: 2 })
  const st = await f.state()
  t.equal(st.onlineBoss, 1)
  t.equal(st.participants, 3)
})

void t.test('completeOn boss (default with bossNeed): the boss done completes the round', async (t) => {
  const f = await fleet(t, { need: 1, bossNeed: 1, resetMs: 50 })
  const w = await f.watch()
  const [s, b] = [await f.term('s'), await f.term('b')]
  await s.ready(); await b.ready({ role: 'boss' })
  await b.release()
  await b.done(1, { result: { sum: 42 } })
  const sum = (await w.next('rg/g/rounds')).json
  t.equal(sum.outcome, 'completed')
  t.same(sum.done, ['b'])
  t.same(sum.results, { b: { sum: 42 } })
  t.same(sum.participants, ['s', 'b'])
})

void t.test('completeOn all: done or dropped for every participant', async (t) => {
  const f = await fleet(t, { need: 2, bossNeed: 1, completeOn: 'all', dropTolerance: 1, resetMs: 50 })
  const w = await f.watch()
  const [s1, s2, b] = [await f.term('s1'), await f.term('s2'), await f.term('b')]
  await s1.hb(); await s2.hb()
  await s1.ready(); await s2.ready(); await b.ready({ role: 'boss' })
  await b.release()
  await b.done(1)
  await s1.done(1)
  t.ok(await silent(w, 'rg/g/rounds', 200), 'the boss alone does not complete an "all" round')
  await s2.leave()
  const sum = (await w.next('rg/g/rounds')).json
  t.equal(sum.outcome, 'completed')
  t.same(sum.dropped, ['s2'])
  t.same(sum.done.sort(), ['b', 's1'])
})

void t.test('dropTolerance as a count: one drop more than allowed aborts', async (t) => {
  const f = await fleet(t, { need: 3, dropTolerance: 1, resetMs: 50 })
  const w = await f.watch()
  const ts = [await f.term('a'), await f.term('b'), await f.term('c')]
  for (const x of ts) await x.hb()
  await readyAll(ts)
  await ts[0].release()
  await ts[0].leave()
  await waitFor(async () => (await f.state()).dropped === 1, 2000, 'one dropped')
  t.equal((await f.state()).phase, 'EXECUTING', 'one drop is tolerated')
  await ts[1].leave()
  const sum = (await w.next('rg/g/rounds')).json
  t.equal(sum.outcome, 'aborted')
  t.same(sum.dropped, ['a', 'b'])
})

void t.test('dropTolerance as a ratio of participants', async (t) => {
  // 0.5 of 4 participants: 2 drops tolerated, the third aborts
  const f = await fleet(t, { need: 4, dropTolerance: 0.5, resetMs: 50 })
  const w = await f.watch()
  const ts = [await f.term('a'), await f.term('b'), await f.term('c'), await f.term('d')]
  for (const x of ts) await x.hb()
  await readyAll(ts)
  await ts[0].release()
  await ts[0].leave(); await ts[1].leave()
  await waitFor(async () => (await f.state()).dropped === 2, 2000, 'two dropped')
  t.equal((await f.state()).phase, 'EXECUTING')
  await ts[2].leave()
  t.equal((await w.next('rg/g/rounds')).json.outcome, 'aborted')
})

void t.test('the MQTT will counts as leave: a participant whose connection dies is dropped', async (t) => {
  const f = await fleet(t, { need: 1, resetMs: 50 })
  const w = await f.watch()
  const dying = await connect(f.broker.url, 'dying', { will: { topic: 'rg/g/leave/dying', payload: Buffer.from('{}'), qos: 1, retain: false } })
  await dying.subscribeAsync('rg/g/release', { qos: 1 })
  await dying.publishAsync('rg/g/ready/dying', '{}', { qos: 1 })
  await waitFor(async () => (await f.state()).phase === 'EXECUTING', 2000, 'release')
  dying.stream.destroy() // no DISCONNECT: the broker publishes the will
  const sum = (await w.next('rg/g/rounds')).json
  t.equal(sum.outcome, 'aborted')
  t.same(sum.dropped, ['dying'])
})

void t.test('silence for offlineAfterMs evicts from online and ready, and drops participants', async (t) => {
  const f = await fleet(t, { need: 2, minOnlineRatio: 1, offlineAfterMs: 400, heartbeatMs: 100, resetMs: 50 }, { sweepMs: 100 })
  const w = await f.watch()
  const [a, b] = [await f.term('a'), await f.term('b')]
  await a.ready()
  t.equal((await f.state()).online, 1)
  await waitFor(async () => (await f.state()).online === 0, 2000, 'a evicted')
  t.equal((await f.state()).ready, 0, 'eviction also clears ready')
  // now a round, and b falls silent while a keeps heart-beating
  await a.ready(); await b.ready()
  await a.release()
  const beat = setInterval(() => { a.hb().catch(() => {}) }, 100)
  t.teardown(() => clearInterval(beat))
  const sum = (await w.next('rg/g/rounds', 3000)).json
  clearInterval(beat)
  t.equal(sum.outcome, 'aborted')
  t.same(sum.dropped, ['b'])
})

void t.test('execTimeoutMs ends the round as timeout', async (t) => {
  const f = await fleet(t, { need: 1, execTimeoutMs: 300, resetMs: 50 })
  const w = await f.watch()
  const a = await f.term('a')
  await a.ready()
  const rel = (await a.release()).json
  t.equal(rel.deadline - rel.releasedAt, 300, 'the release carries the deadline')
  const sum = (await w.next('rg/g/rounds', 3000)).json
  t.equal(sum.outcome, 'timeout')
  t.ok(sum.endedAt - sum.releasedAt >= 300)
})

void t.test('RESET lasts resetMs, then WAITING releases at once if it can', async (t) => {
  const f = await fleet(t, { need: 1, resetMs: 400 })
  const [a, b] = [await f.term('a'), await f.term('b')]
  await a.ready()
  await a.release()
  await b.ready() // waits, ready
  const ended = Date.now()
  await a.done(1)
  await f.waitPhase('RESET')
  const rel = (await b.release(3000)).json
  const waited = Date.now() - ended
  t.equal(rel.round, 2)
  t.ok(waited >= 380, `the next release waited out RESET (${waited} ms)`)
  t.ok(waited < 1500, `and came at once after it (${waited} ms)`)
})

void t.test('done: only participants, only the current round, duplicates answered', async (t) => {
  const f = await fleet(t, { need: 1, resetMs: 50 })
  const [a, x] = [await f.term('a'), await f.term('x')]
  await x.hb()
  await a.ready()
  await a.release()
  await x.done(1)
  t.equal((await x.error()).json.code, 'not_participant')
  await a.done(7)
  t.equal((await a.error()).json.code, 'stale_round')
  t.equal((await f.state()).done, 0, 'refused reports change nothing')
  await a.done(1, { ok: true })
  await waitFor(async () => (await f.state()).phase !== 'EXECUTING', 2000, 'round end')
  const from = a.inbox.messages.length
  await a.done(1)
  const e = await a.inbox.next('rg/g/error/a', 2000, from)
  t.equal(e.json.code, 'stale_round', 'a report for an ended round is stale')
  t.equal(e.json.topic, 'rg/g/done/a', 'the error names the refused topic')
})

void t.test('a second done in the same round is a duplicate and changes nothing', async (t) => {
  const f = await fleet(t, { need: 2, resetMs: 50 })
  const [a, b] = [await f.term('a'), await f.term('b')]
  await a.hb(); await b.hb()
  await a.ready(); await b.ready()
  await a.release()
  await a.done(1, { result: 'first' })
  await a.done(1, { result: 'second' })
  const e = (await a.error()).json
  t.equal(e.code, 'duplicate')
  t.equal((await f.state()).done, 1)
  const w = await f.watch()
  await b.done(1)
  t.same((await w.next('rg/g/rounds')).json.results, { a: 'first' }, 'the first report stands')
})

void t.test('selection fair prefers who waited longest since taking part', async (t) => {
  const f = await fleet(t, { need: 1, selection: 'fair', resetMs: 30 })
  const [a, b] = [await f.term('a'), await f.term('b')]
  await a.hb(); await b.hb()
  await a.ready()
  await a.release()
  await a.done(1)
  await f.waitPhase('WAITING')
  await f.ctl({ op: 'pause' })
  await a.ready(); await b.ready() // a is earlier, but b never took part
  await f.ctl({ op: 'resume' })
  const r = (await b.release()).json
  t.equal(r.participants, 1)
  t.same(await f.participating(), ['b'], 'b, who never took part, over a')
})

void t.test('selection load prefers the lowest reported load', async (t) => {
  const f = await fleet(t, { need: 2, selection: 'load', paused: true })
  const ts = [await f.term('a'), await f.term('b'), await f.term('c')]
  await ts[0].hb({ load: 0.9 }); await ts[1].hb({ load: 0.1 }); await ts[2].hb({ load: 0.5 })
  await readyAll(ts)
  t.equal((await f.ctl({ op: 'resume' })).json.ok, true)
  const r = (await ts[1].release()).json
  t.equal(r.participants, 2)
  t.same(await f.participating(), ['b', 'c'], 'the two lowest loads')
  t.same(r.shard, { index: 0, count: 2 }, 'the lowest load first')
})

void t.test('payload is attached to every release', async (t) => {
  const f = await fleet(t, { need: 1, payload: { job: 'render', frames: [1, 2, 3] } })
  const a = await f.term('a')
  await a.ready()
  t.same((await a.release()).json.payload, { job: 'render', frames: [1, 2, 3] })
})

void t.test('a paused group never releases; resume releases at once', async (t) => {
  const f = await fleet(t, { need: 1, paused: true })
  const a = await f.term('a')
  await a.ready()
  t.ok(await silent(a.inbox, 'rg/g/release', 300))
  t.equal((await f.ctl({ op: 'release' })).json.ok, false, 'even a forced release waits for resume')
  t.equal((await f.state()).paused, true)
  await f.ctl({ op: 'resume' })
  t.equal((await a.release()).json.round, 1)
})

void t.test('rounds never reuse a number and history keeps summaries, newest first', async (t) => {
  const f = await fleet(t, { need: 1, resetMs: 0 })
  const a = await f.term('a')
  for (let r = 1; r <= 5; r++) {
    await a.ready()
    const rel = await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === r)
    t.equal(rel.json.round, r)
    await a.done(r)
    await waitFor(async () => { const s = await f.state(); return s.phase === 'WAITING' && s.round === r }, 2000, `round ${r} over`)
  }
  const engine = f.broker.server.engine
  const h = await engine.rounds('g', 3)
  t.same(h.map((s) => s.round), [5, 4, 3])
  t.same((await engine.rounds('g', 10, 3)).map((s) => s.round), [2, 1])
})

void t.test('an unknown group is created on first use with the group defaults', async (t) => {
  const f = await fleet(t, { need: 1 }, { groupDefaults: { need: 2, resetMs: 50, payload: 'default job' } })
  const a = await terminal(f.broker.url, 'fresh', 'a')
  const b = await terminal(f.broker.url, 'fresh', 'b')
  t.teardown(async () => { await a.c.endAsync(true); await b.c.endAsync(true) })
  await a.c.publishAsync('rg/fresh/hb/a', '{}', { qos: 1 })
  await b.c.publishAsync('rg/fresh/ready/b', '{}', { qos: 1 })
  t.ok(await silent(b.inbox, 'rg/fresh/release', 200), 'need 2 from groupDefaults: one ready is not enough')
  await a.c.publishAsync('rg/fresh/ready/a', '{}', { qos: 1 })
  const rel = (await b.inbox.next('rg/fresh/release')).json
  t.equal(rel.payload, 'default job')
  t.equal(rel.participants, 2)
  const g = await f.broker.server.engine.getGroup('fresh')
  t.equal(g.config.need, 2)
})
