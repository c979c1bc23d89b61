// Scheduled groups (PROTOCOL sections 2 and 3) end to end on one process, over real MQTT and HTTP:
// a group scheduled every 2 seconds releases startDelayMs before each even second, with startAt
// on the tick, and every participant holds its release before startAt; state.nextTick; a tick
// that cannot release within misfireMs is missed, counted and alerted. Also the round's timeline
// as a terminal's history (GET /v1/groups/{g}/terminals/{id}) and the broker's clock (GET /v1/time).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DEFAULT_GROUP_CONFIG, MemoryStore, mergeConfig } from '../plugins/scheduler/index.js'
import { freePort, send, sleep, startBroker, terminal, waitFor } from './helpers/broker.js'
import { call, get, post } from './helpers/http.js'
import { fleet } from './helpers/rounds.js'
import { startReceiver } from './helpers/webhook.js'

async function withHttp (): Promise<{ httpPort: number }> {
  return { httpPort: await freePort() }
}

void t.test('every 2 seconds: released startDelayMs before each even second, startAt on the tick, held by all before it', async (t) => {
  const f = await fleet(t, { need: 2, schedule: '*/2 * * * * *', startDelayMs: 300, resetMs: 0, execTimeoutMs: 5000 }, await withHttp())
  const base = `http://127.0.0.1:${f.broker.server.ports.http}`
  const a = await f.term('a') // MQTT
  const before = await f.state()
  t.ok(before.nextTick !== null && before.nextTick % 2000 === 0 && before.nextTick > Date.now(), `state.nextTick is the next even second (${before.nextTick})`)

  /** One round: both ready, the MQTT and HTTP copies of the release, when each arrived. */
  const round = async (after: number): Promise<{ mqtt: any, http: any, mqttAt: number, httpAt: number }> => {
    const from = a.inbox.messages.length
    const poll = (async () => {
      const r = await get(base, `/v1/groups/g/release?clientId=h&after=${after}&wait=10`)
      return { at: Date.now(), r }
    })()
    await waitFor(async () => (await f.broker.server.engine.terminals('g')).some((v) => v.clientId === 'h'), 3000, 'h polling (a pending poll is a heartbeat)')
    await a.ready()
    t.equal((await post(base, '/v1/groups/g/ready', { clientId: 'h' })).status, 200)
    const s = await f.state()
    t.equal(s.phase, 'WAITING', 'both ready between ticks: no release yet')
    t.equal(s.ready, 2)
    const m = await a.inbox.next((x) => x.topic === 'rg/g/release', 3500, from)
    const mqttAt = Date.now()
    const { at: httpAt, r } = await poll
    t.equal(r.status, 200, 'the HTTP long-poll answers the release')
    return { mqtt: m.json, http: r.json, mqttAt, httpAt }
  }

  const r1 = await round(0)
  const tick = r1.mqtt.startAt as number
  t.equal(tick % 2000, 0, `startAt is an even second exactly (${tick})`)
  t.equal(r1.http.startAt, tick, 'the HTTP copy names the same instant')
  t.equal(r1.mqtt.releasedAt, r1.http.releasedAt)
  t.ok(tick - r1.mqtt.releasedAt >= 200 && tick - r1.mqtt.releasedAt <= 300, `released ${tick - r1.mqtt.releasedAt} ms before the tick (startDelayMs 300)`)
  t.ok(r1.mqttAt < tick, `the MQTT participant held it ${tick - r1.mqttAt} ms before startAt`)
  t.ok(r1.httpAt < tick, `the HTTP participant held it ${tick - r1.httpAt} ms before startAt`)
  t.ok(r1.mqtt.serverTime < tick && r1.http.serverTime < tick, 'serverTime: written before startAt')
  t.equal(r1.mqtt.deadline, tick + 5000, 'the deadline counts from startAt')
  t.equal(r1.mqtt.participants, 2)
  t.equal((await f.state()).nextTick, tick + 2000, 'state.nextTick moves on to the next tick')
  t.equal((await f.state()).startAt, tick)

  const missedAfterR1 = (await f.state()).missed
  await a.done(r1.mqtt.round)
  t.equal((await post(base, '/v1/groups/g/done', { clientId: 'h', round: r1.mqtt.round })).status, 200)
  await f.waitPhase('WAITING')
  const r2 = await round(r1.mqtt.round)
  t.equal(r2.mqtt.startAt, tick + 2000, 'the next round starts on the next even second: one release per tick')
  t.equal(r2.mqtt.round, r1.mqtt.round + 1)
  t.ok(r2.mqttAt < r2.mqtt.startAt && r2.httpAt < r2.mqtt.startAt, 'held before startAt again')
  t.equal((await f.state()).missed, missedAfterR1, 'no tick missed between the two rounds')
})

void t.test('a tick that cannot release within misfireMs is missed, counted in state.missed and alerted', async (t) => {
  const rx = await startReceiver()
  t.teardown(rx.close)
  const f = await fleet(t, { need: 2, schedule: '* * * * * *', misfireMs: 400, resetMs: 0 }, { alerts: [{ url: rx.url, events: ['missed'] }] })
  const a = await f.term('a')
  await a.ready() // 1 of 2
  const [hook] = await rx.waitDelivered(1, 4000)
  t.match(hook.json, { event: 'missed', group: 'g', detail: { reason: /1 small terminals? online, 2 needed/ } })
  const st = await f.state()
  t.ok(st.missed >= 1, `state.missed = ${st.missed}`)
  t.ok(st.nextTick !== null && st.nextTick > hook.json.detail.tick, 'nextTick is past the missed one')
  t.ok(hook.json.at >= hook.json.detail.tick + 400, 'missed only once its misfire window had passed')
  t.equal(st.round, 0, 'nothing released')

  // within the window: the rule comes to hold after the tick but before tick + misfireMs
  await waitFor(() => Date.now() % 1000 >= 100 && Date.now() % 1000 <= 200, 3000, '100-200 ms past a second')
  const b = await f.term('b')
  await b.ready()
  const rel = (await a.release()).json
  t.ok(rel.releasedAt % 1000 >= 100, `released late in its window (${rel.releasedAt % 1000} ms after the tick)`)
  t.equal(rel.startAt, rel.releasedAt, 'a late release starts startDelayMs (0) after it is decided, not at the past tick')
  const missedBefore = rx.hits.length
  await sleep(200)
  t.equal(rx.hits.length, missedBefore, 'that tick was not missed')
})

void t.test('ticks that pass while EXECUTING are missed; PATCH schedule null stops the ticks', async (t) => {
  const f = await fleet(t, { need: 1, schedule: '* * * * * *', resetMs: 0, execTimeoutMs: 60000 }, await withHttp())
  const base = `http://127.0.0.1:${f.broker.server.ports.http}`
  const a = await f.term('a')
  await a.ready()
  const rel = (await a.release(2500)).json
  await waitFor(async () => (await f.state()).missed >= 1, 3000, 'a tick missed while the round executes')
  await a.done(rel.round)
  await f.waitPhase('WAITING')
  const patched = await call(base, 'PATCH', '/v1/groups/g', { schedule: null })
  t.equal(patched.json.state.nextTick, null, 'no schedule: nextTick null')
  const missed = (await f.state()).missed
  await a.ready()
  const r2 = (await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === rel.round + 1)).json
  t.equal(r2.startAt, r2.releasedAt, 'unscheduled: released at once')
  await sleep(1100)
  t.equal((await f.state()).missed, missed, 'missed counts no more')
})

void t.test('GET /v1/time and a terminal\'s round history (GET /v1/groups/{g}/terminals/{id})', async (t) => {
  const f = await fleet(t, { need: 2, resetMs: 0, execTimeoutMs: 500, dropTolerance: 1 }, await withHttp())
  const base = `http://127.0.0.1:${f.broker.server.ports.http}`
  const t0 = Date.now()
  const time = await get(base, '/v1/time')
  t.equal(time.status, 200)
  t.ok(Number.isInteger(time.json.serverTime), 'epoch milliseconds')
  t.ok(time.json.serverTime >= t0 - 5 && time.json.serverTime <= Date.now() + 5, 'the broker clock (one process: this machine\'s)')
  t.strictSame(Object.keys(time.json), ['serverTime'])

  const a = await f.term('a')
  const b = await f.term('b')
  await a.ready(); await b.ready()
  await a.release()
  await sleep(40)
  await a.done(1, { ok: true })
  await b.done(1, { ok: false })
  await f.waitPhase('WAITING')
  await a.ready(); await b.ready()
  await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === 2)
  await b.leave() // dropped in round 2; a never reports: timeout
  await waitFor(async () => (await get(base, '/v1/groups/g/rounds')).json.length === 2, 3000, 'round 2 ends')
  const [s2, s1] = (await get(base, '/v1/groups/g/rounds')).json

  const ha = await get(base, '/v1/groups/g/terminals/a')
  t.equal(ha.status, 200)
  t.match(ha.json.terminal, { clientId: 'a', role: 'small', online: true })
  t.strictSame(ha.json.rounds, [
    { round: 2, attempt: 1, outcome: 'timeout', startAt: s2.startAt, doneMs: null, ok: null, dropped: false },
    { round: 1, attempt: 1, outcome: 'completed', startAt: s1.startAt, doneMs: s1.doneMs.a, ok: true, dropped: false }
  ], 'newest first, with its done delay from startAt')
  t.ok(s1.doneMs.a >= 30, `a reported ${s1.doneMs.a} ms after startAt`)
  const hb = await get(base, '/v1/groups/g/terminals/b')
  t.equal(hb.json.terminal, null, 'b left: no longer a terminal of the group…')
  t.match(hb.json.rounds, [{ round: 2, dropped: true, doneMs: null }, { round: 1, ok: false }], '…but its history stays')
  t.equal((await get(base, '/v1/groups/g/terminals/a?limit=1')).json.rounds.length, 1, 'limit')
  t.equal((await get(base, '/v1/groups/g/terminals/a?limit=0')).status, 400)
  const none = await get(base, '/v1/groups/g/terminals/nobody')
  t.equal(none.status, 404)
  t.equal((await get(base, '/v1/groups/nope/terminals/a')).json.error.code, 'unknown_group')
  t.equal((await get(base, '/v1/groups/g/terminals/a%2Fb')).status, 400, 'a malformed clientId')
})

void t.test('ticks that passed while the broker was down are missed (counted, at most 10 alerts), not fired late', async (t) => {
  let clock = Date.UTC(2030, 0, 1, 8, 59, 0, 0)
  const store = new MemoryStore({ now: () => clock })
  await store.open()
  await store.putGroup('g', mergeConfig(DEFAULT_GROUP_CONFIG, { need: 1, schedule: '* * * * * *', misfireMs: 500, resetMs: 0, offlineAfterMs: 120_000 }))
  await store.ready('g', 'a', {})
  clock += 30_000 + 200 // the broker was away for 30 s: 30 ticks passed, the last one 200 ms ago
  const res = await store.tick('g')
  const missed = res.events.filter((e) => e.type === 'missed')
  const released = res.events.filter((e) => e.type === 'released')
  t.equal(res.state.missed, 29, 'the 29 ticks whose window had passed are counted')
  t.equal(missed.length, 10, 'but alerted at most 10 times per transition')
  t.equal(released.length, 1, 'the last tick, still inside misfireMs, releases')
  t.match(released[0], { release: { releasedAt: clock, startAt: clock } }, 'late: it starts when it is released, not at its past tick')
  t.equal(res.state.nextTick, Date.UTC(2030, 0, 1, 8, 59, 31, 0), 'the next tick is the coming one')

  const late = new MemoryStore({ now: () => clock })
  await late.open()
  await late.putGroup('h', mergeConfig(DEFAULT_GROUP_CONFIG, { need: 1, schedule: '* * * * * *', misfireMs: 100, resetMs: 0 }))
  await late.ready('h', 'a', {})
  clock += 1_500 // one tick 500 ms ago, past its 100 ms window; the next not yet due
  const r2 = await late.tick('h')
  t.strictSame(r2.events.filter((e) => e.type === 'released'), [], 'a tick past its misfire window never releases, even though the rule holds now')
  t.equal(r2.state.missed, 1)
})

void t.test('across a restart: the ticks that passed while the broker was down are missed, the next releases on time', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'rg-schedule-'))
  t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))
  const groups = { s: { need: 1, schedule: '* * * * * *', resetMs: 0, offlineAfterMs: 60000, execTimeoutMs: 60000 } }
  const first = await startBroker({ dataDir, groups })
  const a = await terminal(first.url, 's', 'a')
  await send(a.c, 'rg/s/ready/a', {})
  const r1 = (await a.inbox.next('rg/s/release', 2500)).json
  t.equal(r1.startAt % 1000, 0, 'released on a tick')
  await send(a.c, 'rg/s/done/a', { round: r1.round })
  await send(a.c, 'rg/s/ready/a', {}) // ready for the next tick, which comes while the broker is down
  await a.c.endAsync(true)
  await first.close()
  const downAt = Date.now()
  await sleep(2300)

  const second = await startBroker({ dataDir, groups })
  t.teardown(async () => await second.close())
  const b = await terminal(second.url, 's', 'a')
  t.teardown(async () => { await b.c.endAsync(true) })
  const st = await second.server.engine.state('s')
  t.ok(st.missed >= 2, `the ${st.missed} ticks of the outage are counted missed`)
  t.equal(st.round, r1.round, 'none of them fired late')
  const r2 = (await b.inbox.next((m) => m.topic === 'rg/s/release' && m.json.round === r1.round + 1, 2500)).json
  t.equal(r2.startAt % 1000, 0, 'the next tick releases on time, with the terminal still ready from before')
  t.ok(r2.startAt > downAt + 2000, 'a tick after the restart')
})
