// One engine, two doors: 50 MQTT terminals and 50 HTTP long-poll terminals released together in
// one round of the real server (startServer), every one of them getting the same round, the same
// participant set and its own shard; then all report done (MQTT and HTTP) and the round completes.
import t from 'tap'
import { freePort, send, startBroker, terminal } from './helpers/broker.js'
import { call, get, post } from './helpers/http.js'
import { waitFor } from './helpers/wait.js'

const N = 50

void t.test(`${N} MQTT + ${N} HTTP terminals share one round`, async (t) => {
  const b = await startBroker({ httpPort: await freePort() })
  t.teardown(b.close)
  const base = `http://127.0.0.1:${b.server.ports.http}`
  t.equal((await call(base, 'PUT', '/v1/groups/mix', { need: 2 * N, minOnlineRatio: 1, resetMs: 0 })).status, 200)

  const mqtt = await Promise.all(Array.from({ length: N }, async (_, i) => ({ id: `m${i}`, ...await terminal(b.url, 'mix', `m${i}`) })))
  t.teardown(async () => { await Promise.all(mqtt.map(async (m) => await m.c.endAsync())) })
  const httpIds = Array.from({ length: N }, (_, i) => `h${i}`)

  // everyone online first, so the release waits for the last ready
  await Promise.all(mqtt.map(async (m) => await send(m.c, `rg/mix/hb/${m.id}`, {})))
  await Promise.all(httpIds.map(async (id) => await post(base, '/v1/groups/mix/heartbeat', { clientId: id })))
  t.equal((await get(base, '/v1/groups/mix')).json.state.online, 2 * N)

  // HTTP terminals park their long-polls, then everyone declares ready, interleaved
  const polls = httpIds.map(async (id) => await get(base, `/v1/groups/mix/release?clientId=${id}&after=0&wait=20`))
  const gw = b.server.gateway
  t.ok(gw !== null)
  await waitFor(() => gw?.waiters() === N, 2000, 'long-polls parked').catch(() => {})
  t.equal(gw?.waiters(), N, `${N} long-polls pending`)
  await Promise.all([
    ...mqtt.map(async (m) => await send(m.c, `rg/mix/ready/${m.id}`, {})),
    ...httpIds.map(async (id) => await post(base, '/v1/groups/mix/ready', { clientId: id }))
  ])

  const viaHttp = await Promise.all(polls)
  t.ok(viaHttp.every((a) => a.status === 200), 'every HTTP terminal got a 200')
  const viaMqtt = await Promise.all(mqtt.map(async (m) => (await m.inbox.next('rg/mix/release', 5000)).json))
  const all = [...viaHttp.map((a) => a.json), ...viaMqtt]
  t.same([...new Set(all.map((r) => r.round))], [1], 'the same round for all 100')
  t.same([...new Set(all.map((r) => r.releasedAt))].length, 1, 'one release')
  t.ok(all.every((r) => r.participants === 2 * N), `every release counts the ${2 * N} participants`)
  const participating = (await b.server.engine.terminals('mix')).filter((v) => v.participating).map((v) => v.clientId).sort()
  t.same(participating, [...httpIds, ...mqtt.map((m) => m.id)].sort(), 'every terminal of both doors is a participant')
  t.same(all.map((r) => r.shard.index).sort((x, y) => x - y), Array.from({ length: 2 * N }, (_, i) => i), 'shards 0..99, once each, across doors')
  t.ok(all.every((r) => r.shard.count === 2 * N && r.role === 'small'))
  t.equal(gw?.waiters(), 0)

  await Promise.all([
    ...mqtt.map(async (m) => await send(m.c, `rg/mix/done/${m.id}`, { round: 1, result: 'mqtt' })),
    ...httpIds.map(async (id) => await post(base, '/v1/groups/mix/done', { clientId: id, round: 1, result: 'http' }))
  ])
  const summary: any = await waitFor(async () => (await get(base, '/v1/groups/mix/rounds?limit=1')).json[0], 2000, 'the summary').catch(() => undefined)
  t.equal(summary?.outcome, 'completed')
  t.equal(summary?.done.length, 2 * N)
  t.equal(Object.values(summary?.results ?? {}).filter((r) => r === 'mqtt').length, N)
  t.equal(Object.values(summary?.results ?? {}).filter((r) => r === 'http').length, N)

  const metrics = (await get(base, '/metrics')).text
  t.match(metrics, new RegExp(`^roundgate_mqtt_connected_clients ${N}$`, 'm'))
  t.match(metrics, /^roundgate_release_fanout_seconds_count\{door="http"\} 1$/m)
  t.match(metrics, /^roundgate_rounds_total\{group="mix",outcome="completed"\} 1$/m)
})
