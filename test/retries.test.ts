// Retries (PROTOCOL section 3) end to end on one process, over real MQTT and HTTP: a round that
// times out (or is aborted by dropouts) runs again with the same payload and attempt + 1 after a
// doubling backoff, until retry.max; the chain ends on success, an operator's abort or a payload
// change. Alerts say `retry` and `exhausted` once each.
import t from 'tap'
import { freePort, sleep, waitFor } from './helpers/broker.js'
import { call, get, post } from './helpers/http.js'
import { fleet } from './helpers/rounds.js'
import { startReceiver } from './helpers/webhook.js'

void t.test('a timed-out round is retried with the same payload and attempt 2 after the backoff; the chain ends after max', async (t) => {
  const rx = await startReceiver()
  t.teardown(rx.close)
  const f = await fleet(t, { need: 1, execTimeoutMs: 250, resetMs: 0, payload: { scene: 'city' }, retry: { max: 2, backoffMs: 300 } }, {
    alerts: [{ url: rx.url, events: ['retry', 'exhausted', 'timeout'] }]
  })
  const watch = await f.watch()
  const a = await f.term('a')
  const releaseOf = async (round: number): Promise<any> => (await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === round, 4000)).json
  const summaryOf = async (round: number): Promise<any> => (await watch.next((m) => m.topic === 'rg/g/rounds' && m.json.round === round, 4000)).json

  await a.ready()
  const r1 = await releaseOf(1)
  t.match(r1, { attempt: 1, job: null, payload: { scene: 'city' } })
  const s1 = await summaryOf(1)
  t.match(s1, { outcome: 'timeout', attempt: 1, stragglers: ['a'] })
  const waiting = await f.state()
  t.equal(waiting.attempt, 2, 'state.attempt in WAITING: the attempt the next release carries')
  await a.ready() // at once: the backoff holds the release
  const r2 = await releaseOf(2)
  t.ok(r2.releasedAt >= s1.endedAt + 300, `attempt 2 released ${r2.releasedAt - s1.endedAt} ms after the end (backoffMs 300)`)
  t.match(r2, { attempt: 2, payload: { scene: 'city' } }, 'the same payload, attempt 2')
  t.equal((await f.state()).attempt, 2, 'state.attempt while EXECUTING')
  const s2 = await summaryOf(2)
  t.match(s2, { outcome: 'timeout', attempt: 2 })
  await a.ready()
  const r3 = await releaseOf(3)
  t.ok(r3.releasedAt >= s2.endedAt + 600, `attempt 3 released ${r3.releasedAt - s2.endedAt} ms after the end: the backoff doubles`)
  t.equal(r3.attempt, 3)
  const s3 = await summaryOf(3)
  t.equal(s3.attempt, 3)
  t.equal((await f.state()).attempt, 1, 'max 2 retries: the chain is over')
  await a.ready()
  const r4 = await releaseOf(4)
  t.equal(r4.attempt, 1, 'the next round is a first run again')
  t.ok(r4.releasedAt - s3.endedAt < 250, 'without a backoff')
  await a.done(4)

  await rx.waitDelivered(6)
  await sleep(200)
  t.strictSame(rx.hits.map((h) => `${h.json.event} ${h.json.round} ${h.json.detail.attempt}`),
    ['timeout 1 1', 'retry 1 2', 'timeout 2 2', 'retry 2 3', 'timeout 3 3', 'exhausted 3 3'], 'each retry and the exhaustion alerted once')
})

void t.test('aborted by dropouts is retried; the chain ends on completion, an operator abort, a payload change', async (t) => {
  const f = await fleet(t, { need: 2, resetMs: 0, dropTolerance: 0, retry: { max: 5, backoffMs: 100 } }, { httpPort: await freePort() })
  const base = `http://127.0.0.1:${f.broker.server.ports.http}`
  const a = await f.term('a')
  const next = async (round: number): Promise<any> => (await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === round, 4000)).json
  const hReady = async (): Promise<void> => { t.equal((await post(base, '/v1/groups/g/ready', { clientId: 'h' })).status, 200) }

  await a.ready(); await hReady()
  t.equal((await next(1)).attempt, 1)
  await post(base, '/v1/groups/g/leave', { clientId: 'h' }) // a dropout: aborted
  await f.waitPhase('WAITING')
  t.equal((await f.state()).attempt, 2, 'aborted by a dropout: a retry is pending')
  await a.ready(); await hReady()
  const r2 = await next(2)
  t.equal(r2.attempt, 2)
  await a.done(2)
  await post(base, '/v1/groups/g/done', { clientId: 'h', round: 2 })
  await f.waitPhase('WAITING')
  t.equal((await f.state()).attempt, 1, 'completed: the chain ends')
  t.equal((await get(base, '/v1/groups/g/rounds?limit=1')).json[0].outcome, 'completed')

  await a.ready(); await hReady()
  t.equal((await next(3)).attempt, 1)
  const abort = await post(base, '/v1/groups/g/ctl', { op: 'abort' })
  t.equal(abort.status, 200)
  t.equal((await f.state()).attempt, 1, 'an operator abort is not retried')
  await a.ready(); await hReady()
  t.equal((await next(4)).attempt, 1)
  await a.leave() // dropout: retry pending
  await waitFor(async () => (await f.state()).attempt === 2, 2000, 'retry pending')
  const patched = await call(base, 'PATCH', '/v1/groups/g', { payload: { v: 2 } })
  t.equal(patched.status, 200)
  t.equal(patched.json.state.attempt, 1, 'a new payload ends the chain')
  const a2 = await f.term('a2')
  await a2.ready(); await hReady()
  const r5 = (await a2.release()).json
  t.match(r5, { round: 5, attempt: 1, payload: { v: 2 } })
  const same = await call(base, 'PATCH', '/v1/groups/g', { need: 2 })
  t.equal(same.status, 200, 'a change of other keys…')
  await post(base, '/v1/groups/g/leave', { clientId: 'h' })
  await waitFor(async () => (await f.state()).attempt === 2, 2000, 'retry pending')
  await call(base, 'PATCH', '/v1/groups/g', { payload: { v: 2 } })
  t.equal((await f.state()).attempt, 2, '…or the same payload again does not end the chain')
})

void t.test('without a retry policy a failed round is alerted, but nothing is retried or exhausted', async (t) => {
  const rx = await startReceiver()
  t.teardown(rx.close)
  const f = await fleet(t, { need: 1, execTimeoutMs: 150, resetMs: 0 }, { alerts: [{ url: rx.url, events: ['timeout', 'retry', 'exhausted'] }] })
  const a = await f.term('a')
  await a.ready()
  await a.release()
  await rx.waitDelivered(1)
  await a.ready()
  const r2 = (await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === 2)).json
  t.equal(r2.attempt, 1, 'retry.max 0: the next round is a first run')
  await a.done(2)
  await sleep(300)
  t.strictSame(rx.hits.map((h) => h.json.event), ['timeout'], 'exhausted only when there were retries to exhaust')
})

void t.test('a scheduled group retries after the backoff, not at its next tick', async (t) => {
  const f = await fleet(t, { need: 1, schedule: '0 0 9 * * *', startDelayMs: 100, execTimeoutMs: 200, resetMs: 0, retry: { max: 1, backoffMs: 300 } })
  const a = await f.term('a')
  await a.ready()
  t.match((await f.ctl({ op: 'release' })).json, { ok: true }, 'the daily group released now by ctl')
  const r1 = (await a.release()).json
  t.equal(r1.attempt, 1)
  await f.waitPhase('WAITING')
  await a.ready()
  const r2 = (await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === 2, 3000)).json
  t.equal(r2.attempt, 2, 'attempt 2 within seconds, not tomorrow at 09:00')
  t.equal(r2.startAt, r2.releasedAt + 100, 'starting startDelayMs after its release')
  t.ok(r2.releasedAt - r1.startAt >= 200 + 300, 'after the timeout and the backoff')
  await a.done(2)
})
