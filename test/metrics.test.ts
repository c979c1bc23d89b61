// GET /metrics: Prometheus text exposition (format 0.0.4) that parses, with the series roundgate
// promises: MQTT clients, pending long-polls, per-group gauges, rounds by outcome, fan-out time,
// refusals by code and door, HTTP requests by route and status.
import t from 'tap'
import { pino } from 'pino'
import { createMetrics } from '../plugins/metrics/index.js'
import { Engine, MemoryStore } from '../plugins/scheduler/index.js'
import { freePort, send, startBroker, terminal } from './helpers/broker.js'
import { call, get, post, startTestGateway, until } from './helpers/http.js'

interface Sample { name: string, labels: Record<string, string>, value: number }

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?,?\\})? (\\S+)(?: (-?\\d+))?$`)
const VALUE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]Inf|NaN)$/

/** A strict reader of the text format: throws on any line that is not a comment or a sample. */
function parseProm (text: string): { samples: Sample[], types: Map<string, string> } {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  const lines = text.split('\n')
  if (lines.at(-1) === '') lines.pop()
  for (const [i, line] of lines.entries()) {
    if (line === '') continue
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
      if (m === null) throw new Error(`line ${i + 1}: bad comment: ${line}`)
      if (!new RegExp(`^${NAME}$`).test(m[2])) throw new Error(`line ${i + 1}: bad metric name ${m[2]}`)
      if (m[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3])) throw new Error(`line ${i + 1}: bad type ${m[3]}`)
        types.set(m[2], m[3])
      }
      continue
    }
    const m = SAMPLE.exec(line)
    if (m === null) throw new Error(`line ${i + 1}: not "name{labels} value": ${line}`)
    if (!VALUE.test(m[3])) throw new Error(`line ${i + 1}: bad value ${m[3]}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]
    const base = m[1].replace(/_(bucket|sum|count|total|created)$/, '')
    if (!types.has(m[1]) && !types.has(base)) throw new Error(`line ${i + 1}: ${m[1]} has no TYPE`)
    samples.push({ name: m[1], labels, value: Number(m[3].replace('Inf', 'Infinity')) })
  }
  return { samples, types }
}

function find (samples: Sample[], name: string, labels: Record<string, string> = {}): Sample | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
}

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
  await engine.deleteGroup('g').catch((err: Error) => t.match(err.message, /no group/))
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
