// GET /metrics: Prometheus text exposition (format 0.0.4) that parses, with the series roundgate
// promises: MQTT clients, pending long-polls, per-group gauges, rounds by outcome, fan-out time,
// refusals by code and door, HTTP requests by route and status.
import t from 'tap'
import { pino } from 'pino'
import { createMetrics } from '../plugins/metrics/index.js'
import { Engine, MemoryStore } from '../plugins/scheduler/index.js'
import { freePort, send, startBroker, terminal } from './helpers/broker.js'
import { call, get, post, startTestGateway, until } from './helpers/http.js'
import { find, parseProm } from './helpers/prom.js'

void t.test('the parser itself refuses what is not Prometheus text', async (t) => {
  t.throws(() => parseProm('# TYPE a gauge\na 1 2 3\n'))
  t.throws(() => parseProm('# TYPE a gauge\na{b=1} 1\n'))
  t.throws(() => parseProm('# TYPE a gauge\na one\n'))
  t.throws(() => parseProm('b 1\n'), /no TYPE/)
  t.throws(() => parseProm('# nonsense\n'))
  t.same(parseProm('# HELP a x\n# TYPE a gauge\na{b="c",d="e\\"f"} +Inf\n').samples[0], { name: 'a', labels: { b: 'c', d: 'e\\"f' }, value: Infinity })
})

void t.test('/metrics parses and carries every roundgate series', async (t) => {
  const g = await startTestGateway()
  t.teardown(g.close)
  await call(g.base, 'PUT', '/v1/groups/m', { need: 1, resetMs: 0 })
  const pending = get(g.base, '/v1/groups/m/release?clientId=a&wait=5')
  const idle = get(g.base, '/v1/groups/m/release?clientId=z&wait=5')
  t.ok(await until(() => g.gateway.waiters() === 2))

  const mid = parseProm((await get(g.base, '/metrics')).text).samples
  t.equal(find(mid, 'roundgate_http_longpolls_pending')?.value, 2, 'two long-polls pending')

  await post(g.base, '/v1/groups/m/ready', { clientId: 'a' })
  t.equal((await pending).status, 200)
  await post(g.base, '/v1/groups/m/done', { clientId: 'a', round: 1 })
  await post(g.base, '/v1/groups/m/ready', { clientId: 'a' })
  await post(g.base, '/v1/groups/m/ctl', { op: 'abort' })
  await post(g.base, '/v1/groups/m/done', { clientId: 'a', round: 99 }) // stale_round
  await get(g.base, '/nope')

  const res = await get(g.base, '/metrics')
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const { samples, types } = parseProm(res.text)
  t.ok(samples.length > 50, `${samples.length} samples`)
  t.equal(types.get('roundgate_release_fanout_seconds'), 'histogram')
  t.equal(types.get('roundgate_rounds_total'), 'counter')
  t.equal(find(samples, 'roundgate_http_longpolls_pending')?.value, 1, 'z still waits')
  t.equal(find(samples, 'roundgate_mqtt_connected_clients')?.value, 0, 'no broker given: 0')
  t.equal(find(samples, 'roundgate_group_round', { group: 'm' })?.value, 2)
  t.equal(find(samples, 'roundgate_group_phase', { group: 'm', phase: 'WAITING' })?.value, 1)
  t.equal(find(samples, 'roundgate_group_phase', { group: 'm', phase: 'EXECUTING' })?.value, 0)
  t.equal(find(samples, 'roundgate_group_online', { group: 'm', role: 'small' })?.value, 2)
  t.equal(find(samples, 'roundgate_group_ready', { group: 'm', role: 'small' })?.value, 0)
  for (const n of ['participants', 'done', 'dropped', 'paused']) t.equal(find(samples, `roundgate_group_${n}`, { group: 'm' })?.value, 0, n)
  t.equal(find(samples, 'roundgate_rounds_total', { group: 'm', outcome: 'completed' })?.value, 1)
  t.equal(find(samples, 'roundgate_rounds_total', { group: 'm', outcome: 'aborted' })?.value, 1)
  t.equal(find(samples, 'roundgate_release_fanout_seconds_count', { door: 'http' })?.value, 1, 'one HTTP fan-out (round 2 had no waiter)')
  t.ok((find(samples, 'roundgate_release_fanout_seconds_bucket', { door: 'http', le: '+Inf' })?.value ?? 0) >= 1)
  t.equal(find(samples, 'roundgate_refused_total', { code: 'stale_round', door: 'http' })?.value, 1)
  const fan = await get(g.base, '/v1/groups/m/fanout')
  t.equal(fan.status, 200)
  t.match(fan.json, [{ round: 1, door: 'http', delivered: 1, ms: Number }], 'the one HTTP fan-out, for the dashboard')
  t.equal((await get(g.base, '/v1/groups/nope/fanout')).status, 404, 'unknown group')
  t.equal(find(samples, 'roundgate_refused_total', { code: 'not_found', door: 'http' })?.value, 1)
  t.equal(find(samples, 'roundgate_http_requests_total', { route: '/v1/groups/:g/release', method: 'GET', status: '200' })?.value, 1)
  t.equal(find(samples, 'roundgate_http_requests_total', { route: '/v1/groups/:g/done', method: 'POST', status: '409' })?.value, 1)
  t.equal(find(samples, 'roundgate_http_requests_total', { route: 'unmatched', method: 'GET', status: '404' })?.value, 1)
  t.ok(find(samples, 'process_cpu_user_seconds_total') !== undefined, 'default process metrics')

  await call(g.base, 'DELETE', '/v1/groups/m')
  t.equal((await idle).status, 404, 'the deleted group ends its poll')
  const after = parseProm((await get(g.base, '/metrics')).text).samples
  t.equal(find(after, 'roundgate_group_round', { group: 'm' }), undefined, 'a deleted group leaves the gauges')
})

void t.test('createMetrics: connected MQTT clients from the broker, refusals from any door', async (t) => {
  const engine = new Engine({ store: new MemoryStore(), logger: pino({ level: 'silent' }), autoCreateGroups: true })
  await engine.start()
  t.teardown(async () => await engine.stop())
  const broker = { connectedClients: 7 }
  const m = createMetrics({ engine, broker, defaultMetrics: false })
  const drop = m.addPendingSource(() => 3)
  m.addPendingSource(() => 2)
  m.refused('forbidden', 'mqtt')
  m.fanout('mqtt', 'g', 1, 0.002, 10)
  m.fanout('http', 'g', 2, 0.0031, 4)
  t.strictSame(m.fanouts('g'), [{ round: 2, door: 'http', ms: 3.1, delivered: 4 }, { round: 1, door: 'mqtt', ms: 2, delivered: 10 }], 'newest first')
  let s = parseProm((await m.render()).body).samples
  t.equal(find(s, 'roundgate_mqtt_connected_clients')?.value, 7)
  t.equal(find(s, 'roundgate_http_longpolls_pending')?.value, 5, 'summed over sources')
  t.equal(find(s, 'roundgate_refused_total', { code: 'forbidden', door: 'mqtt' })?.value, 1)
  t.equal(find(s, 'roundgate_release_fanout_seconds_bucket', { door: 'mqtt', le: '0.0025' })?.value, 1)
  t.equal(find(s, 'roundgate_release_fanout_seconds_bucket', { door: 'mqtt', le: '0.001' })?.value, 0)
  t.equal(find(s, 'process_cpu_user_seconds_total'), undefined, 'default metrics off')
  broker.connectedClients = 2
  drop()
  s = parseProm((await m.render()).body).samples
  t.equal(find(s, 'roundgate_mqtt_connected_clients')?.value, 2, 'read at scrape time')
  t.equal(find(s, 'roundgate_http_longpolls_pending')?.value, 2)
  t.equal(find(s, 'roundgate_refused_total', { code: 'forbidden', door: 'mqtt' })?.value, 1)
  m.close()
})

void t.test('the whole server: the MQTT door reports its fan-outs and refusals to /metrics', async (t) => {
  const b = await startBroker({ groups: { q: { need: 1, resetMs: 0 } }, httpPort: await freePort() })
  t.teardown(async () => await b.close())
  const { c, inbox } = await terminal(b.url, 'q', 'm1')
  t.teardown(async () => { await c.endAsync(true) })
  await send(c, 'rg/q/ready/m1', {})
  await inbox.next('rg/q/release')
  await send(c, 'rg/q/done/m1', { round: 7 }) // stale_round
  await inbox.next('rg/q/error/m1')
  const base = `http://127.0.0.1:${b.server.ports.http}`
  const s = parseProm((await get(base, '/metrics')).text).samples
  t.equal(find(s, 'roundgate_release_fanout_seconds_count', { door: 'mqtt' })?.value, 1, 'one MQTT fan-out')
  t.equal(find(s, 'roundgate_refused_total', { code: 'stale_round', door: 'mqtt' })?.value, 1)
  t.match((await get(base, '/v1/groups/q/fanout')).json, [{ round: 1, door: 'mqtt', delivered: 1 }])
})

void t.test('timeline histograms: round duration from startAt and each done report, per group', async (t) => {
  const g = await startTestGateway()
  t.teardown(g.close)
  await call(g.base, 'PUT', '/v1/groups/tl', { need: 2, resetMs: 0, startDelayMs: 150, execTimeoutMs: 600 })
  await post(g.base, '/v1/groups/tl/ready', { clientId: 'a' })
  await post(g.base, '/v1/groups/tl/ready', { clientId: 'b' })
  await post(g.base, '/v1/groups/tl/done', { clientId: 'a', round: 1 }) // before startAt: counted as 0
  await new Promise((resolve) => setTimeout(resolve, 400))
  await post(g.base, '/v1/groups/tl/done', { clientId: 'b', round: 1 })
  await post(g.base, '/v1/groups/tl/ready', { clientId: 'a' })
  await post(g.base, '/v1/groups/tl/ready', { clientId: 'b' })
  await post(g.base, '/v1/groups/tl/done', { clientId: 'b', round: 2 })
  t.ok(await until(() => g.engine.releaseOf('tl') === null, 3000), 'round 2 times out (a never reports)')
  const [r2, r1] = (await get(g.base, '/v1/groups/tl/rounds')).json
  t.match([r1.outcome, r2.outcome], ['completed', 'timeout'])
  t.ok(r1.doneMs.a < 0, `a reported ${r1.doneMs.a} ms before startAt`)

  const s = parseProm((await get(g.base, '/metrics')).text)
  t.equal(s.types.get('roundgate_round_duration_seconds'), 'histogram')
  t.equal(s.types.get('roundgate_release_to_done_seconds'), 'histogram')
  const dur = (n: string, l: Record<string, string> = {}): number | undefined => find(s.samples, `roundgate_round_duration_seconds${n}`, { group: 'tl', ...l })?.value
  const del = (n: string, l: Record<string, string> = {}): number | undefined => find(s.samples, `roundgate_release_to_done_seconds${n}`, { group: 'tl', ...l })?.value
  t.equal(dur('_count'), 2, 'two rounds ended')
  t.ok(Math.abs((dur('_sum') ?? 0) - ((r1.endedAt - r1.startAt) + (r2.endedAt - r2.startAt)) / 1000) < 1e-9, 'the sum is endedAt − startAt of both')
  t.equal(dur('_bucket', { le: '0.05' }), 0)
  t.equal(dur('_bucket', { le: '1' }), 2, 'both well under a second (timeout 600 ms from startAt)')
  t.equal(del('_count'), 3, 'three done reports: a and b in round 1, b in round 2')
  t.ok(Math.abs((del('_sum') ?? 0) - (Math.max(0, r1.doneMs.b) + Math.max(0, r2.doneMs.b)) / 1000) < 1e-9, 'the sum of the delays from startAt (an early report: 0)')
  t.equal(del('_bucket', { le: '0.01' }), 1 + (r2.doneMs.b <= 10 ? 1 : 0), 'a report before startAt counts as 0')
  t.equal(del('_bucket', { le: '+Inf' }), 3)

  await call(g.base, 'DELETE', '/v1/groups/tl')
  const after = parseProm((await get(g.base, '/metrics')).text).samples
  t.equal(find(after, 'roundgate_round_duration_seconds_count', { group: 'tl' }), undefined, 'a deleted group leaves the histograms')
})

void t.test('timeline histograms count only rounds this process ended (a cluster counts each once)', async (t) => {
  const engine = new Engine({ store: new MemoryStore(), logger: pino({ level: 'silent' }), autoCreateGroups: true })
  await engine.start()
  t.teardown(async () => await engine.stop())
  const m = createMetrics({ engine, defaultMetrics: false })
  t.teardown(() => m.close())
  const summary = {
    group: 'x', round: 1, attempt: 1, job: null, outcome: 'completed' as const, releasedAt: 1000, startAt: 1500, endedAt: 4000,
    participants: ['a', 'b'], done: ['a', 'b'], dropped: [], stragglers: [], results: {}, failed: [],
    timing: { doneP50Ms: 100, doneP99Ms: 2500, lastDoneMs: 2500 }, doneMs: { a: 100, b: 2500 }
  }
  engine.emit('roundEnd', summary, false)
  let s = parseProm((await m.render()).body).samples
  t.equal(find(s, 'roundgate_round_duration_seconds_count', { group: 'x' }), undefined, 'ended elsewhere: not observed here')
  engine.emit('roundEnd', summary, true)
  s = parseProm((await m.render()).body).samples
  t.equal(find(s, 'roundgate_round_duration_seconds_sum', { group: 'x' })?.value, 2.5)
  t.equal(find(s, 'roundgate_round_duration_seconds_bucket', { group: 'x', le: '2.5' })?.value, 1)
  t.equal(find(s, 'roundgate_round_duration_seconds_bucket', { group: 'x', le: '1' })?.value, 0)
  t.equal(find(s, 'roundgate_release_to_done_seconds_sum', { group: 'x' })?.value, 2.6)
  t.equal(find(s, 'roundgate_release_to_done_seconds_bucket', { group: 'x', le: '0.1' })?.value, 1)
  t.equal(find(s, 'roundgate_release_to_done_seconds_bucket', { group: 'x', le: '2.5' })?.value, 2)
  t.equal(find(s, 'roundgate_rounds_total', { group: 'x', outcome: 'completed' })?.value, 1)
  for (const outcome of ['delivered', 'retried', 'failed', 'dropped']) {
    t.equal(find(s, 'roundgate_alert_deliveries_total', { outcome })?.value, 0, `alert deliveries ${outcome} shown from the start`)
  }
  m.alertDelivery('retried')
  s = parseProm((await m.render()).body).samples
  t.equal(find(s, 'roundgate_alert_deliveries_total', { outcome: 'retried' })?.value, 1)
})
