// The store suite, PROTOCOL 1.1: scheduled ticks (section 3), the round's timeline in its summary
// (section 6), a terminal's own history, leave events, and round numbers across re-creation.
import type { OpResult, StoreEvent } from '../../plugins/scheduler/index.js'
import { cfg, endings, releases, sleep, until, type SuiteContext } from './helpers.js'

/** Wait until the wall clock is between `from` and `to` ms past a whole second. */
async function atMillis (from: number, to: number): Promise<void> {
  await until(() => { const ms = Date.now() % 1000; return ms >= from && ms <= to }, 3000, `${from}-${to} ms past a second`)
}

type Missed = Extract<StoreEvent, { type: 'missed' }>

function missedOf (res: OpResult): Missed[] {
  return res.events.filter((e): e is Missed => e.type === 'missed')
}

export function scheduleAndTimelineTests ({ test, ready }: SuiteContext): void {
  test('schedule: the release goes out startDelayMs before the tick, startAt is the tick', async (t, store) => {
    // every second, released 400 ms before it; at most one release per tick
    await atMillis(100, 400) // before the next tick's due instant (400 ms before it)
    const put = await store.putGroup('g', cfg({ need: 2, schedule: '* * * * * *', startDelayMs: 400, resetMs: 0, execTimeoutMs: 60000 }))
    t.equal(put.state.nextTick !== null && put.state.nextTick % 1000 === 0, true, 'nextTick is a whole second')
    t.equal(put.timing.wakeAt, (put.state.nextTick ?? 0) - 400, 'the engine is woken 400 ms before the tick')
    t.strictSame(releases(await ready(store, 'g', ['a', 'b'])), [], 'the rule holds, but between ticks: no release')
    let res: OpResult | null = null
    await until(async () => releases(res = await store.tick('g')).length > 0, 3000, 'the tick releases')
    const rel = releases(res as unknown as OpResult)[0]
    t.equal(rel.startAt % 1000, 0, 'startAt is exactly the tick')
    t.ok(rel.startAt - rel.releasedAt <= 400 && rel.startAt - rel.releasedAt >= 300, `released ${rel.startAt - rel.releasedAt} ms before its tick`)
    t.equal(rel.deadline, rel.startAt + 60000)
    const st = (await store.getGroup('g'))?.state
    t.equal(st?.nextTick, rel.startAt + 1000, 'the next tick')
    await store.done('g', 'a', { round: 1 })
    await store.done('g', 'b', { round: 1 })
    const between = await ready(store, 'g', ['a', 'b'])
    t.strictSame(releases(between), [], 'the same tick never releases twice')
    await until(async () => releases(res = await store.tick('g')).length > 0, 3000, 'the next tick releases again')
    t.equal(releases(res as unknown as OpResult)[0].startAt, rel.startAt + 1000, 'one release per tick, the next one for the next tick')
  })

  test('schedule: a tick that cannot release within misfireMs is missed, counted and explained', async (t, store) => {
    await store.putGroup('g', cfg({ need: 2, schedule: '* * * * * *', misfireMs: 200, resetMs: 0 }))
    await store.ready('g', 'a', {}) // one of two: the rule cannot hold
    const got: Missed[] = []
    let res: OpResult | null = null
    await until(async () => { res = await store.tick('g'); got.push(...missedOf(res)); return got.length > 0 }, 3000, 'a missed tick')
    t.equal(got[0].group, 'g')
    t.equal(got[0].missed.tick % 1000, 0)
    t.match(got[0].missed.reason, /1 small terminals? online, 2 needed|ready/, `says which rule did not hold: ${got[0].missed.reason}`)
    t.ok((res as unknown as OpResult).state.missed >= 1, 'state.missed counts it')
    t.strictSame(releases(res as unknown as OpResult), [])
    // a tick inside its misfire window releases as soon as the rule holds, starting startDelayMs later
    await atMillis(50, 100)
    await store.putGroup('h', cfg({ need: 1, schedule: '* * * * * *', misfireMs: 800, startDelayMs: 0, resetMs: 0 }))
    await sleep(1150) // 200-250 ms after the tick, with nobody online at it
    const late = releases(await store.ready('h', 'x', {}))
    t.equal(late.length, 1, 'still inside misfireMs: released at once')
    t.equal(late[0].startAt, late[0].releasedAt, 'startAt = the release instant + startDelayMs (0), not the past tick')
    t.ok(late[0].releasedAt % 1000 >= 150, 'released well after its tick')
  })

  test('schedule: a tick first evaluated after its misfire window is missed, never fired late', async (t, store) => {
    await atMillis(20, 300)
    await store.putGroup('g', cfg({ need: 1, schedule: '* * * * * *', misfireMs: 100, resetMs: 0 }))
    t.strictSame(releases(await store.ready('g', 'a', {})), [], 'between ticks: nothing yet')
    await sleep(1000) // no transition at the next tick nor in its 100 ms window (the broker was down or busy)
    await atMillis(300, 700)
    const res = await store.tick('g')
    t.strictSame(releases(res), [], 'the rule holds now, but the tick\'s window has passed: no late release')
    t.ok(res.state.missed >= 1, 'it is missed')
    t.match(missedOf(res)[0]?.missed.reason, /did not evaluate the tick/)
    t.equal(res.state.nextTick, (missedOf(res).at(-1)?.missed.tick ?? 0) + 1000, 'the next tick is the coming one')
  })

  test('schedule: ticks while paused are missed; ctl release still works', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, schedule: '* * * * * *', paused: true, resetMs: 0 }))
    await store.ready('g', 'a', {})
    const got: Missed[] = []
    await until(async () => { got.push(...missedOf(await store.tick('g'))); return got.length > 0 }, 3000, 'missed while paused')
    t.match(got[0].missed.reason, /paused/)
    await store.ctl('g', { op: 'resume' })
    await store.ctl('g', { op: 'pause' })
    await store.putGroup('r', cfg({ need: 1, schedule: '0 0 0 1 1 *', resetMs: 0 })) // once a year
    await store.ready('r', 'b', {})
    const forced = releases(await store.ctl('r', { op: 'release' }))
    t.equal(forced.length, 1, 'ctl release does not wait for a tick')
    t.equal(forced[0].startAt, forced[0].releasedAt)
  })

  test('summary: stragglers, done timing from startAt, each done delay; a terminal\'s own history', async (t, store) => {
    await store.putGroup('g', cfg({ need: 4, minOnlineRatio: 1, execTimeoutMs: 400, dropTolerance: 1, resetMs: 0 }))
    await ready(store, 'g', ['a', 'b', 'c', 'd'])
    const rel = (await store.getGroup('g'))?.release
    await sleep(30)
    await store.done('g', 'a', { round: 1, ok: true })
    await sleep(30)
    await store.done('g', 'b', { round: 1, ok: false })
    await store.leave('g', 'c')
    let end: OpResult | null = null
    await until(async () => endings(end = await store.tick('g')).length > 0, 3000, 'timeout')
    const s = endings(end as unknown as OpResult)[0]
    t.equal(s.outcome, 'timeout')
    t.strictSame(s.stragglers, ['d'], 'neither done nor dropped')
    t.strictSame(s.dropped, ['c'])
    t.equal(s.startAt, rel?.startAt)
    t.equal(s.attempt, 1)
    t.equal(s.job, null)
    const da = s.doneMs.a
    const db = s.doneMs.b
    t.ok(da >= 25 && db >= da + 25, `done delays from startAt: a ${da} ms, b ${db} ms`)
    t.strictSame(Object.keys(s.doneMs).sort(), ['a', 'b'])
    t.strictSame(s.timing, { doneP50Ms: da, doneP99Ms: db, lastDoneMs: db }, 'p50 and p99 by nearest rank')
    const none = await store.putGroup('n', cfg({ need: 1, execTimeoutMs: 100, resetMs: 0 }))
    t.equal(none.state.round, 0)
    await store.ready('n', 'z', {})
    let e2: OpResult | null = null
    await until(async () => endings(e2 = await store.tick('n')).length > 0, 3000, 'timeout')
    t.strictSame(endings(e2 as unknown as OpResult)[0].timing, { doneP50Ms: null, doneP99Ms: null, lastDoneMs: null }, 'nobody reported')

    const hist = await store.terminalRounds('g', 'b', 10)
    t.match(hist, [{ round: 1, attempt: 1, outcome: 'timeout', doneMs: db, ok: false, dropped: false }])
    t.match(await store.terminalRounds('g', 'c', 10), [{ round: 1, doneMs: null, ok: null, dropped: true }])
    t.strictSame(await store.terminalRounds('g', 'nobody', 10), [])
  })

  test('leave tells whoever holds the terminal\'s long-poll; a kick is its own event', async (t, store) => {
    await store.putGroup('g', cfg({ need: 5 }))
    await store.heartbeat('g', 'a', {})
    const res = await store.leave('g', 'a')
    t.match(res.events, [{ type: 'left', group: 'g', clientId: 'a' }])
    await store.heartbeat('g', 'b', {})
    const k = await store.ctl('g', { op: 'kick', clientId: 'b' })
    t.match(k.events, [{ type: 'kicked', group: 'g', clientId: 'b' }])
  })

  test('a group deleted and created again never reuses a round number', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0 }))
    for (let r = 1; r <= 3; r++) {
      await store.ready('g', 'a', {})
      await store.done('g', 'a', { round: r })
    }
    t.equal(await store.deleteGroup('g'), 3, 'answers its last round')
    const again = await store.putGroup('g', cfg({ need: 1, resetMs: 0 }))
    t.equal(again.state.round, 3, 'created again at the round it had reached')
    const r = releases(await store.ready('g', 'a', {}))
    t.equal(r[0].round, 4, 'the next round is 4, never 1 again')
    const auto = await store.heartbeat('g2', 'x', {}, { createWith: cfg({ need: 1 }) })
    t.equal(auto.state.round, 0, 'another name starts at 0')
  })
}
