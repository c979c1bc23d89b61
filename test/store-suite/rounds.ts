// The store suite: done, drops, completion, timeout, reset, pause, ctl and history.
import type { OpResult, RoundSummary } from '../../plugins/scheduler/index.js'
import { cfg, endings, observe, releases, until, type SuiteContext } from './helpers.js'

export function roundTests ({ test, ready }: SuiteContext): void {
  test('done: only participants, only the current round, duplicates answered', async (t, store) => {
    await store.putGroup('g', cfg({ need: 2, resetMs: 50 }))
    await t.rejects(store.done('g', 'a', { round: 0 }), { code: 'stale_round' }, 'nothing executing')
    await ready(store, 'g', ['a', 'b', 'c'])
    const before = await observe(store, 'g')
    await t.rejects(store.done('g', 'a', { round: 2 }), { code: 'stale_round' })
    await t.rejects(store.done('g', 'a', { round: 0 }), { code: 'stale_round' })
    await t.rejects(store.done('g', 'c', { round: 1 }), { code: 'not_participant' })
    await t.rejects(store.done('g', 'stranger', { round: 1 }), { code: 'not_participant' })
    t.strictSame(await observe(store, 'g'), before, 'refused reports change nothing')
    const d1 = await store.done('g', 'a', { round: 1, result: { answer: 42, list: [] } })
    t.equal(d1.duplicate, false)
    t.equal(d1.changed, true)
    t.equal(d1.state.done, 1)
    t.equal(d1.state.phase, 'EXECUTING')
    const dup = await store.done('g', 'a', { round: 1, result: 'other' })
    t.equal(dup.duplicate, true, 'a second done is a duplicate')
    t.equal(dup.changed, false)
    t.equal(dup.state.done, 1)
    const last = await store.done('g', 'b', { round: 1, ok: false, result: [1, 'two', null] })
    t.equal(last.duplicate, false)
    const ends = endings(last)
    t.equal(ends.length, 1, 'completeOn all: everyone done completes the round')
    const s = ends[0]
    t.equal(s.outcome, 'completed')
    t.equal(s.group, 'g')
    t.equal(s.round, 1)
    t.strictSame(s.participants, ['a', 'b'])
    t.strictSame(s.done, ['a', 'b'], 'in the order they reported')
    t.strictSame(s.dropped, [])
    t.strictSame(s.results, { a: { answer: 42, list: [] }, b: [1, 'two', null] }, 'the first result is kept')
    t.strictSame(s.failed, ['b'])
    t.ok(s.endedAt >= s.releasedAt)
    t.equal(last.state.phase, 'RESET')
    t.equal(last.state.participants, 0, 'participants, done, dropped cleared')
    t.equal(last.state.done, 0)
    t.equal(last.state.releasedAt, s.releasedAt, 'releasedAt stays in state after the round')
    t.strictSame(last.timing, { wakeAt: s.endedAt + 50 }, 'woken at the end of RESET')
    await t.rejects(store.done('g', 'a', { round: 1 }), { code: 'stale_round' }, 'after the round: stale')
    t.equal((await store.getGroup('g'))?.release, null, 'no release once ended')
    const noResult = await store.rounds('g', { limit: 1 })
    t.strictSame(noResult[0], s, 'history holds the same summary')
  })

  test('drops: participants leaving or evicted join dropped; count tolerance', async (t, store) => {
    await store.putGroup('g', cfg({ need: 3, dropTolerance: 1, offlineAfterMs: 200, resetMs: 10000 }))
    await ready(store, 'g', ['a', 'b', 'c', 'x'])
    let res = await store.leave('g', 'x')
    t.equal(res.state.dropped, 0, 'a non-participant leaving is no drop')
    await store.done('g', 'c', { round: 1 })
    res = await store.leave('g', 'c')
    t.equal(res.state.dropped, 0, 'a participant that is done does not drop')
    res = await store.leave('g', 'a')
    t.equal(res.state.dropped, 1)
    t.equal(res.state.phase, 'EXECUTING', 'one drop is within tolerance 1')
    // b falls silent: evicted by tick, the second drop aborts
    await until(async () => (await store.getGroup('g'))?.state.phase === 'RESET' || endings(await store.tick('g')).length > 0, 3000, 'b evicted')
    const h = await store.rounds('g', { limit: 5 })
    t.equal(h.length, 1)
    t.equal(h[0].outcome, 'aborted')
    t.strictSame(h[0].dropped, ['a', 'b'])
    t.strictSame(h[0].done, ['c'])
  })

  test('drops: zero tolerance aborts at the first drop; a kick is a drop', async (t, store) => {
    await store.putGroup('g', cfg({ need: 2, resetMs: 10000 }))
    await ready(store, 'g', ['a', 'b'])
    const res = await store.ctl('g', { op: 'kick', clientId: 'b' })
    t.same(res.events.map((e) => e.type), ['ended', 'kicked'])
    const k = res.events.find((e) => e.type === 'kicked')
    t.strictSame(k, { type: 'kicked', group: 'g', clientId: 'b' })
    t.equal(endings(res)[0]?.outcome, 'aborted')
    t.strictSame(endings(res)[0]?.dropped, ['b'])
    t.equal(res.state.online, 1)
    const unknown = await store.ctl('g', { op: 'kick', clientId: 'ghost' })
    t.strictSame(unknown.events, [{ type: 'kicked', group: 'g', clientId: 'ghost' }], 'kicking an unknown id still reports it')
  })

  test('drops: tolerance as a ratio of participants (rounded down)', async (t, store) => {
    await store.putGroup('g', cfg({ need: 5, dropTolerance: 0.5, resetMs: 10000 }))
    await ready(store, 'g', ['a', 'b', 'c', 'd', 'e'])
    await store.leave('g', 'a')
    let res = await store.leave('g', 'b')
    t.equal(res.state.phase, 'EXECUTING', '2 drops of 5 at 0.5: floor(2.5) = 2 allowed')
    res = await store.leave('g', 'c')
    t.equal(endings(res)[0]?.outcome, 'aborted', 'the third drop aborts')
  })

  test('completeOn all: done or dropped; a dropped participant may still report', async (t, store) => {
    await store.putGroup('g', cfg({ need: 3, dropTolerance: 2, resetMs: 10000 }))
    await ready(store, 'g', ['a', 'b', 'c'])
    await store.leave('g', 'a')
    const late = await store.done('g', 'a', { round: 1, result: 'late' })
    t.equal(late.state.done, 1, 'a dropped participant may still report done')
    t.equal(late.state.online, 3, 'and is heard from again')
    await store.leave('g', 'b')
    const res = await store.done('g', 'c', { round: 1 })
    const s = endings(res)[0]
    t.equal(s?.outcome, 'completed')
    t.strictSame(s?.dropped, ['a', 'b'])
    t.strictSame(s?.done, ['a', 'c'])
    t.strictSame(s?.results, { a: 'late' })
  })

  test('completeOn boss: the round completes when every boss is done', async (t, store) => {
    await store.putGroup('g', cfg({ need: 2, bossNeed: 2, resetMs: 10000 }))
    await ready(store, 'g', ['s1', 's2'])
    await ready(store, 'g', ['b1', 'b2'], 'boss')
    let res = await store.done('g', 'b1', { round: 1 })
    t.equal(res.state.phase, 'EXECUTING')
    res = await store.done('g', 's1', { round: 1 })
    t.equal(res.state.phase, 'EXECUTING', 'smalls do not complete a boss round')
    res = await store.done('g', 'b2', { round: 1 })
    const s = endings(res)[0]
    t.equal(s?.outcome, 'completed')
    t.strictSame(s?.done, ['b1', 's1', 'b2'])
    t.strictSame(s?.participants, ['s1', 's2', 'b1', 'b2'])

    await store.putGroup('h', cfg({ need: 1, bossNeed: 1, completeOn: 'all', resetMs: 10000 }))
    await store.ready('h', 's', {})
    await store.ready('h', 'b', { role: 'boss' })
    res = await store.done('h', 'b', { round: 1 })
    t.equal(res.state.phase, 'EXECUTING', 'completeOn all overrides the boss default')
    t.equal(endings(await store.done('h', 's', { round: 1 }))[0]?.outcome, 'completed')

    await store.putGroup('k', cfg({ need: 2, completeOn: 'boss', resetMs: 10000 }))
    await ready(store, 'k', ['x', 'y'])
    res = await store.done('k', 'x', { round: 1 })
    t.equal(res.state.phase, 'EXECUTING', 'completeOn boss without bosses waits for all')
    t.equal(endings(await store.done('k', 'y', { round: 1 }))[0]?.outcome, 'completed')
  })

  test('execTimeoutMs: a round still executing ends as timeout', async (t, store) => {
    await store.putGroup('g', cfg({ need: 2, execTimeoutMs: 200, resetMs: 10000 }))
    const rel = releases(await ready(store, 'g', ['a', 'b']))[0]
    await store.done('g', 'a', { round: 1, result: 1 })
    t.equal((await store.tick('g')).state.phase, 'EXECUTING', 'not before the deadline')
    let ended: RoundSummary[] = []
    await until(async () => (ended = endings(await store.tick('g'))).length > 0, 3000, 'timeout')
    t.equal(ended.length, 1)
    t.equal(ended[0].outcome, 'timeout')
    t.strictSame(ended[0].done, ['a'])
    t.strictSame(ended[0].results, { a: 1 })
    t.ok(ended[0].endedAt >= rel.deadline, 'not before the deadline')
    t.equal((await store.tick('g')).events.length, 0, 'a timeout fires once')
  })

  test('resetMs: RESET, then WAITING and the release rule checked at once', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 150 }))
    await store.ready('g', 'a', {})
    const end = await store.done('g', 'a', { round: 1 })
    const s = endings(end)[0]
    t.equal(end.state.phase, 'RESET')
    t.equal(end.timing.wakeAt, s.endedAt + 150, 'the engine is woken at the end of RESET')
    const r = await store.ready('g', 'b', {})
    t.strictSame(releases(r), [], 'no release during RESET')
    t.equal(r.state.phase, 'RESET')
    let res: OpResult | null = null
    await until(async () => (res = await store.tick('g')).state.phase !== 'RESET', 3000, 'end of RESET')
    const got = res as unknown as OpResult
    t.equal(got.state.phase, 'EXECUTING', 'straight from RESET to a release')
    t.strictSame(releases(got)[0]?.participants, ['b'])
    t.equal(got.state.round, 2)
    t.equal(got.changed, true)
  })

  test('resetMs: RESET ends in WAITING when nobody is ready', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 50 }))
    await store.ready('g', 'a', {})
    await store.done('g', 'a', { round: 1 })
    await until(async () => (await store.tick('g')).state.phase === 'WAITING', 3000, 'WAITING')
    const snap = await store.getGroup('g')
    t.strictSame(snap?.timing, { wakeAt: null })
    t.equal(snap?.state.round, 1)
  })

  test('paused: never releases; resume releases at once; a running round goes on', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0, paused: true }))
    const r = await store.ready('g', 'a', {})
    t.strictSame(releases(r), [])
    t.equal(r.state.paused, true)
    const res = await store.ctl('g', { op: 'resume' })
    t.equal(releases(res).length, 1, 'resume checks the rule at once')
    t.equal(res.state.paused, false)
    const p = await store.ctl('g', { op: 'pause' })
    t.equal(p.state.phase, 'EXECUTING', 'pausing does not stop a round')
    t.equal(p.state.paused, true)
    t.equal(p.changed, true)
    t.equal((await store.getGroup('g'))?.config.paused, true)
    await store.ready('g', 'b', {})
    const d = await store.done('g', 'a', { round: 1 })
    t.equal(endings(d).length, 1)
    t.strictSame(releases(d), [], 'paused: b stays ready, no next round')
    t.equal(d.state.phase, 'WAITING')
    await t.rejects(store.ctl('g', { op: 'release' }), { code: 'bad_request' }, 'no forced release while paused')
  })

  test('ctl configure: partial, validated config applies and is checked at once', async (t, store) => {
    await store.putGroup('g', cfg({ need: 3, payload: { a: 1 } }))
    await ready(store, 'g', ['a', 'b'])
    const res = await store.ctl('g', { op: 'configure', config: { need: 2, execTimeoutMs: 5000 } })
    t.equal(releases(res).length, 1, 'lowering need releases at once')
    t.equal(res.state.need, 2)
    const c = (await store.getGroup('g'))?.config
    t.equal(c?.execTimeoutMs, 5000)
    t.strictSame(c?.payload, { a: 1 }, 'keys not given stay')
    t.equal(releases(res)[0].deadline - releases(res)[0].releasedAt, 5000)
    const same = await store.ctl('g', { op: 'configure', config: { heartbeatMs: 5000 } })
    t.equal(same.changed, false, 'heartbeatMs is not shown in state')
    t.equal(same.heartbeatMs, 5000)
  })

  test('ctl abort: only while executing', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0 }))
    const before = await observe(store, 'g')
    await t.rejects(store.ctl('g', { op: 'abort' }), { code: 'bad_request' })
    t.strictSame(await observe(store, 'g'), before)
    await store.ready('g', 'a', {})
    t.equal(endings(await store.ctl('g', { op: 'abort' }))[0]?.round, 1)
    await store.ready('g', 'b', {})
    const res = await store.ctl('g', { op: 'abort' })
    const s = endings(res)[0]
    t.equal(s?.outcome, 'aborted')
    t.equal(s?.round, 2)
    t.strictSame(s?.participants, ['b'])
    t.strictSame(s?.dropped, [])
    t.equal(res.state.phase, 'WAITING', 'resetMs 0')
    await t.rejects(store.ctl('g', { op: 'abort' }), { code: 'bad_request' })
  })

  test('ctl release: forced with whoever is ready, at least one', async (t, store) => {
    await store.putGroup('g', cfg({ need: 5, bossNeed: 2, resetMs: 10000 }))
    const before = await observe(store, 'g')
    await t.rejects(store.ctl('g', { op: 'release' }), { code: 'bad_request' }, 'nobody ready')
    t.strictSame(await observe(store, 'g'), before)
    await ready(store, 'g', ['a', 'b'])
    await store.ready('g', 'boss', { role: 'boss' })
    const res = await store.ctl('g', { op: 'release' })
    const r = releases(res)
    t.equal(r.length, 1)
    t.strictSame(r[0].participants, ['a', 'b', 'boss'])
    t.strictSame(r[0].bosses, ['boss'])
    t.equal(res.state.round, 1)
    await t.rejects(store.ctl('g', { op: 'release' }), { code: 'bad_request' }, 'not while executing')
    await store.ctl('g', { op: 'abort' })
    await t.rejects(store.ctl('g', { op: 'release' }), { code: 'bad_request' }, 'not while in RESET')

    await store.putGroup('h', cfg({ need: 2, paused: true }))
    await ready(store, 'h', ['x', 'y', 'z'])
    t.strictSame(releases(await store.ctl('h', { op: 'resume' }))[0]?.participants, ['x', 'y'])
  })

  test('history: newest first, limit, before', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0 }))
    for (let i = 1; i <= 6; i++) {
      await store.ready('g', 'a', {})
      await store.done('g', 'a', { round: i, result: i })
    }
    const all = await store.rounds('g', { limit: 100 })
    t.strictSame(all.map((s) => s.round), [6, 5, 4, 3, 2, 1])
    t.strictSame(all.map((s) => s.results.a), [6, 5, 4, 3, 2, 1])
    t.strictSame((await store.rounds('g', { limit: 2 })).map((s) => s.round), [6, 5])
    t.strictSame((await store.rounds('g', { limit: 2, before: 4 })).map((s) => s.round), [3, 2])
    t.strictSame((await store.rounds('g', { limit: 10, before: 1 })), [])
    t.strictSame((await store.rounds('g', { limit: 10, before: 100 })).length, 6)
    await store.putGroup('g', cfg({ need: 2 }))
    t.equal((await store.rounds('g', { limit: 100 })).length, 6, 'putGroup keeps history')
    t.equal((await store.getGroup('g'))?.state.round, 6, 'and the round')
  })

  test('history keeps the last historyLimit rounds', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0 }))
    for (let i = 1; i <= 1003; i++) {
      await store.ready('g', 'a', {})
      await store.done('g', 'a', { round: i })
    }
    const h = await store.rounds('g', { limit: 1000 })
    t.equal(h.length, 1000)
    t.equal(h[0].round, 1003)
    t.equal(h[999].round, 4)
    t.strictSame(await store.rounds('g', { limit: 5, before: 4 }), [], 'older rounds are gone')
  }, { historyLimit: 1000 })

  test('rounds never go backwards across configuration changes', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0 }))
    let last = 0
    for (let i = 0; i < 5; i++) {
      await store.ready('g', 'a', {})
      const s = (await store.getGroup('g'))?.state
      t.ok((s?.round ?? 0) > last)
      last = s?.round ?? 0
      await store.putGroup('g', cfg({ need: 1, resetMs: 0, payload: i }))
      await store.ctl('g', { op: 'abort' })
    }
    t.equal(last, 5)
  })
}
