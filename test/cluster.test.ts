// Cluster mode on real processes: 3 roundgate processes (`node bin/roundgate.js start --redis ...`)
// on a private redis-server, terminals over MQTT and HTTP spread across them (issue 4).
import { createConnection } from 'node:net'
import mqttPacket from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { connect, Inbox, send, sleep, terminal, waitFor, type Received } from './helpers/broker.js'
import { http, startProcess, type RgProcess } from './helpers/cluster-node.js'
import { startRedis, type TestRedis } from './helpers/redis-server.js'

/** A cluster: redis-server + n processes, all stopped at teardown. */
async function cluster (t: Test, n: number, persist = false): Promise<{ redis: TestRedis, nodes: RgProcess[] }> {
  const redis = await startRedis({ persist })
  const nodes: RgProcess[] = []
  t.teardown(async () => {
    for (const c of clients) c.end(true)
    clients.length = 0
    for (const node of nodes) await node.stop()
    await redis.stop()
  })
  for (let i = 0; i < n; i++) nodes.push(await startProcess({ redis: redis.url }))
  return { redis, nodes }
}

const clients: MqttClient[] = []
/** The CONNACK return code a fresh clean-session CONNECT gets (rejects after 3 s: no hanging). */
async function rawConnack (url: string): Promise<number> {
  const { port } = new URL(url)
  return await new Promise((resolve, reject) => {
    const sock = createConnection(Number(port), '127.0.0.1')
    const parser = mqttPacket.parser()
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('no CONNACK within 3 s')) }, 3000)
    parser.on('packet', (p) => {
      if (p.cmd !== 'connack') return
      clearTimeout(timer)
      sock.destroy()
      resolve(p.returnCode ?? -1)
    })
    sock.on('data', (b) => parser.parse(b))
    sock.on('error', () => {})
    sock.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'probe', keepalive: 30 }))
  })
}

async function mqttTerminal (url: string, group: string, id: string): Promise<{ c: MqttClient, inbox: Inbox }> {
  const term = await terminal(url, group, id)
  clients.push(term.c)
  return term
}

const releasesOf = (inbox: Inbox, group: string): Received[] => inbox.on(`rg/${group}/release`).filter((m) => m.json !== null)

void t.test('3 processes: each round released once, to exactly its participants, over MQTT and HTTP', async (t) => {
  const { nodes } = await cluster(t, 3)
  const g = 'mix'
  t.equal((await http('PUT', `${nodes[0].base}/v1/groups/${g}`, { need: 6, minOnlineRatio: 1, resetMs: 200 })).status, 200)
  const m = await Promise.all([0, 1, 2, 3, 4, 5].map(async (i) => await mqttTerminal(nodes[i % 3].mqtt, g, `m${i}`)))
  const polls = [0, 1].map((i) => http('GET', `${nodes[i].base}/v1/groups/${g}/release?clientId=h${i}&after=0&wait=10`))
  await sleep(100)
  // six ready at once on three processes: m0..m3 over MQTT, h0 and h1 over HTTP
  await Promise.all([
    ...[0, 1, 2, 3].map(async (i) => await send(m[i].c, `rg/${g}/ready/m${i}`, {})),
    ...[0, 1].map(async (i) => await http('POST', `${nodes[(i + 2) % 3].base}/v1/groups/${g}/ready`, { clientId: `h${i}` }))
  ])
  const first = ['h0', 'h1', 'm0', 'm1', 'm2', 'm3']
  for (const i of [0, 1, 2, 3]) {
    const r = await m[i].inbox.next(`rg/${g}/release`, 5000)
    t.equal(r.json.round, 1, `m${i} (on process ${i % 3}) got round 1`)
    t.equal(r.json.participants, first.length)
  }
  for (const p of polls) {
    const r = await p
    t.equal(r.status, 200, 'the HTTP participant got the release by long-poll')
    t.equal(r.json.round, 1)
    t.equal(r.json.participants, first.length)
  }
  // m4, m5 and h2 declare ready after the snapshot: not part of round 1
  await send(m[4].c, `rg/${g}/ready/m4`, {})
  await send(m[5].c, `rg/${g}/ready/m5`, {})
  await http('POST', `${nodes[2].base}/v1/groups/${g}/ready`, { clientId: 'h2' })
  const late = await http('GET', `${nodes[2].base}/v1/groups/${g}/release?clientId=h2&after=0&wait=1`)
  t.equal(late.status, 204, 'a non-participant polls in vain')
  t.equal(late.headers.get('x-round'), '1')
  t.equal(releasesOf(m[4].inbox, g).length, 0, 'nobody else receives the release')

  // done through other processes than the one each terminal is connected to
  for (const i of [0, 1, 2, 3]) await send(m[i].c, `rg/${g}/done/m${i}`, { round: 1, result: i })
  for (const i of [0, 1]) t.equal((await http('POST', `${nodes[(i + 1) % 3].base}/v1/groups/${g}/done`, { clientId: `h${i}`, round: 1 })).status, 200)
  const hist = await waitFor(async () => {
    const r = await http('GET', `${nodes[1].base}/v1/groups/${g}/rounds`)
    return r.json.length > 0 ? r.json : null
  }, 5000, 'round 1 in history')
  t.equal(hist[0].outcome, 'completed')
  t.strictSame([...hist[0].done].sort(), first)

  // round 2: the three left ready go first, then three of round 1 that declared ready again
  const poll2 = http('GET', `${nodes[0].base}/v1/groups/${g}/release?clientId=h2&after=1&wait=10`)
  await sleep(300)
  for (const i of [0, 1, 2]) await send(m[i].c, `rg/${g}/ready/m${i}`, {})
  const r2 = await m[4].inbox.next((x) => x.topic === `rg/${g}/release` && x.json?.round === 2, 5000)
  t.equal(r2.json.participants, 6)
  const who = (await http('GET', `${nodes[2].base}/v1/groups/${g}/terminals`)).json.filter((v: { participating: boolean }) => v.participating).map((v: { clientId: string }) => v.clientId).sort()
  t.strictSame(who, ['h2', 'm0', 'm1', 'm2', 'm4', 'm5'], 'the terminals view names round 2\'s participants')
  t.equal((await poll2).json.round, 2, 'h2 gets round 2 from another process than it declared ready on')
  await sleep(300)
  for (let i = 0; i < 6; i++) {
    const got = releasesOf(m[i].inbox, g).map((x) => x.json.round as number)
    const expected = [i < 4 ? [1] : [], i < 3 || i > 3 ? [2] : []].flat()
    t.strictSame(got, expected, `m${i} received exactly its releases`)
  }
})

void t.test('ready storm on 3 processes at once: one release, never more than need', async (t) => {
  const { nodes } = await cluster(t, 3)
  const g = 'storm'
  await http('PUT', `${nodes[1].base}/v1/groups/${g}`, { need: 20, minOnlineRatio: 1 })
  const ms = await Promise.all(Array.from({ length: 90 }, async (_, i) => await mqttTerminal(nodes[i % 3].mqtt, g, `s${i}`)))
  const hs = Array.from({ length: 30 }, (_, i) => `w${i}`)
  await Promise.all(ms.map(async (x, i) => await send(x.c, `rg/${g}/hb/s${i}`, {})))
  await Promise.all(hs.map(async (id, i) => await http('POST', `${nodes[i % 3].base}/v1/groups/${g}/heartbeat`, { clientId: id })))
  const polls = hs.map((id, i) => http('GET', `${nodes[(i + 1) % 3].base}/v1/groups/${g}/release?clientId=${id}&after=0&wait=3`))
  await sleep(100)
  await Promise.all([
    ...ms.map(async (x, i) => await send(x.c, `rg/${g}/ready/s${i}`, {})),
    ...hs.map(async (id, i) => await http('POST', `${nodes[(i + 2) % 3].base}/v1/groups/${g}/ready`, { clientId: id }))
  ])
  const state = await waitFor(async () => {
    const s = (await http('GET', `${nodes[2].base}/v1/groups/${g}`)).json.state
    return s.ready + s.participants === 120 ? s : null
  }, 5000, 'every ready counted')
  t.equal(state.round, 1, 'one release')
  t.equal(state.participants, 20)
  const polled = (await Promise.all(polls)).filter((r) => r.status === 200).map((r) => r.json)
  await sleep(200)
  const got = [...ms.flatMap((x) => releasesOf(x.inbox, g).map((r) => r.json)), ...polled]
  t.equal(got.length, 20, 'exactly 20 terminals received a release')
  t.ok(got.every((r) => r.round === 1), 'all of round 1')
  t.ok(got.every((r) => r.participants === 20), 'every release counts the 20 participants')
  t.strictSame(got.map((r) => r.shard.index).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i), 'one frozen set: shards 0..19 once each')
})

void t.test('kill -9 one process mid-round: terminals move, the round completes, nothing acknowledged is lost', async (t) => {
  const { nodes } = await cluster(t, 3)
  const g = 'kill'
  await http('PUT', `${nodes[0].base}/v1/groups/${g}`, { need: 4, minOnlineRatio: 1, resetMs: 100 })
  const victim = nodes[2]
  const where = [victim, victim, nodes[0], nodes[1]]
  const ts = await Promise.all(where.map(async (n, i) => await mqttTerminal(n.mqtt, g, `t${i}`)))
  await Promise.all(ts.map(async (x, i) => await send(x.c, `rg/${g}/ready/t${i}`, {})))
  await ts[0].inbox.next(`rg/${g}/release`, 5000)
  // acknowledged by the victim just before it dies: over HTTP (200) and over MQTT (PUBACK)
  t.equal((await http('POST', `${victim.base}/v1/groups/${g}/ready`, { clientId: 'x' })).status, 200)
  t.equal((await http('POST', `${victim.base}/v1/groups/${g}/done`, { clientId: 't0', round: 1, result: 'before' })).status, 200)
  const y = await mqttTerminal(victim.mqtt, g, 'y')
  await send(y.c, `rg/${g}/ready/y`, {})
  await victim.kill()
  // t1 reconnects elsewhere and finds its release retained for it
  const t1 = await connect(nodes[0].mqtt, 't1')
  clients.push(t1)
  const inbox1 = new Inbox(t1)
  await t1.subscribeAsync(`rg/${g}/release`, { qos: 1 })
  const rel = await inbox1.next(`rg/${g}/release`, 5000)
  t.equal(rel.json.round, 1, 'the participant finds its round on another process')
  t.equal(rel.retain, true)
  await send(t1, `rg/${g}/done/t1`, { round: 1 })
  await send(ts[2].c, `rg/${g}/done/t2`, { round: 1 })
  await send(ts[3].c, `rg/${g}/done/t3`, { round: 1 })
  const hist = await waitFor(async () => {
    const r = await http('GET', `${nodes[1].base}/v1/groups/${g}/rounds`)
    return r.json.length > 0 ? r.json : null
  }, 5000, 'round 1 ended')
  t.equal(hist[0].outcome, 'completed')
  t.strictSame([...hist[0].done].sort(), ['t0', 't1', 't2', 't3'], 'the done acknowledged by the dead process counts')
  t.strictSame(hist[0].results, { t0: 'before' })
  const views = (await http('GET', `${nodes[0].base}/v1/groups/${g}/terminals`)).json as Array<{ clientId: string, ready: boolean }>
  t.ok(views.find((v) => v.clientId === 'x')?.ready, 'the ready acknowledged over HTTP by the dead process is kept')
  t.ok(views.find((v) => v.clientId === 'y')?.ready === true, 'the ready acknowledged over MQTT by the dead process is kept')
  await sleep(150)
  for (const i of [1, 2, 3]) await http('POST', `${nodes[i % 2].base}/v1/groups/${g}/ready`, { clientId: `t${i}` })
  const s2 = await waitFor(async () => {
    const st = (await http('GET', `${nodes[1].base}/v1/groups/${g}`)).json.state
    return st.round === 2 ? st : null
  }, 5000, 'round 2')
  t.equal(s2.participants, 4, 'rounds go on from 1 to 2')
  t.equal(nodes[0].proc.exitCode, null)
  t.equal(nodes[1].proc.exitCode, null)
})

void t.test('redis-server stopped and restarted mid-round: unavailable, then the state Redis kept', async (t) => {
  const { redis, nodes } = await cluster(t, 2, true)
  const g = 'outage'
  await http('PUT', `${nodes[0].base}/v1/groups/${g}`, { need: 2, minOnlineRatio: 1, resetMs: 100 })
  const a = await mqttTerminal(nodes[0].mqtt, g, 'a')
  await send(a.c, `rg/${g}/ready/a`, {})
  await http('POST', `${nodes[1].base}/v1/groups/${g}/ready`, { clientId: 'b' })
  await a.inbox.next(`rg/${g}/release`, 5000)
  await send(a.c, `rg/${g}/done/a`, { round: 1, result: 'kept' })
  await waitFor(async () => (await http('GET', `${nodes[1].base}/v1/groups/${g}`)).json.state.done === 1, 3000, 'done stored')

  await redis.kill()
  for (const n of nodes) {
    await waitFor(async () => (await http('GET', `${n.base}/readyz`)).status === 503, 5000, '/readyz 503')
  }
  t.pass('/readyz answers 503 on every process while Redis is gone')
  const t0 = Date.now()
  const refused = await http('POST', `${nodes[1].base}/v1/groups/${g}/done`, { clientId: 'b', round: 1 })
  t.equal(refused.status, 503)
  t.equal(refused.json.error.code, 'unavailable')
  const hb = await http('POST', `${nodes[0].base}/v1/groups/${g}/heartbeat`, { clientId: 'c' })
  t.equal(hb.json.error.code, 'unavailable')
  t.ok(Date.now() - t0 < 5000, 'answered, not left hanging')
  await send(a.c, `rg/${g}/hb/a`, {}, 0)
  const err = await a.inbox.next(`rg/${g}/error/a`, 3000).catch(() => null)
  t.equal(err?.json?.code, 'unavailable', 'an MQTT terminal is answered unavailable')
  const refusedConnect = await rawConnack(nodes[1].mqtt)
  t.equal(refusedConnect, 3, 'a new MQTT connection is refused at once with CONNACK 0x03 (server unavailable)')
  if (nodes[0].proc.exitCode !== null) t.comment(nodes[0].log.slice(-8).join('\n'))
  t.equal(nodes[0].proc.exitCode, null, 'the processes survive')
  t.equal(nodes[1].proc.exitCode, null)

  await redis.start()
  for (const n of nodes) {
    await waitFor(async () => (await http('GET', `${n.base}/readyz`)).status === 200, 15000, '/readyz 200')
  }
  t.pass('/readyz answers 200 again')
  const s = (await http('GET', `${nodes[0].base}/v1/groups/${g}`)).json.state
  t.equal(s.round, 1, 'the round Redis kept')
  t.equal(s.phase, 'EXECUTING')
  t.equal(s.done, 1, 'with its done')
  t.equal((await http('POST', `${nodes[1].base}/v1/groups/${g}/done`, { clientId: 'b', round: 1 })).status, 200)
  const hist = await waitFor(async () => {
    const r = await http('GET', `${nodes[0].base}/v1/groups/${g}/rounds`)
    return r.json.length > 0 ? r.json : null
  }, 5000, 'round 1 ended')
  t.equal(hist[0].outcome, 'completed')
  t.strictSame(hist[0].results, { a: 'kept' })
  // MQTT works again through the restarted Redis
  await send(a.c, `rg/${g}/ready/a`, {})
  await http('POST', `${nodes[1].base}/v1/groups/${g}/ready`, { clientId: 'b' })
  const r2 = await a.inbox.next((m) => m.topic === `rg/${g}/release` && m.json?.round === 2, 10000)
  t.equal(r2.json.round, 2)
  t.strictSame(nodes.map((n) => n.proc.exitCode), [null, null], 'both processes lived through it')
})

void t.test('timers (exec timeout, reset, eviction) fire once cluster-wide', async (t) => {
  const { nodes } = await cluster(t, 3)
  const g = 'timers'
  await http('PUT', `${nodes[0].base}/v1/groups/${g}`, { need: 2, minOnlineRatio: 1, execTimeoutMs: 600, resetMs: 300, offlineAfterMs: 1500 })
  const obs = await connect(nodes[0].mqtt, 'observer')
  clients.push(obs)
  const inbox = new Inbox(obs)
  await obs.subscribeAsync(`rg/${g}/rounds`, { qos: 1 })
  await http('POST', `${nodes[0].base}/v1/groups/${g}/ready`, { clientId: 'a' })
  await http('POST', `${nodes[1].base}/v1/groups/${g}/ready`, { clientId: 'b' })
  const c = await mqttTerminal(nodes[1].mqtt, g, 'c')
  const d = await mqttTerminal(nodes[2].mqtt, g, 'd')
  await send(c.c, `rg/${g}/ready/c`, {})
  await send(d.c, `rg/${g}/ready/d`, {})
  // round 1 (a, b) times out; after RESET, round 2 (c, d) is released; both by timers
  const sum1 = await inbox.next(`rg/${g}/rounds`, 5000)
  t.equal(sum1.json.round, 1)
  t.equal(sum1.json.outcome, 'timeout')
  const rc = await c.inbox.next(`rg/${g}/release`, 5000)
  t.equal(rc.json.round, 2)
  t.ok(rc.json.releasedAt - sum1.json.endedAt >= 300, 'released after resetMs')
  await d.inbox.next(`rg/${g}/release`, 5000)
  // c and d stay silent: round 2 times out too, then everyone is evicted after offlineAfterMs
  const sum2 = await inbox.next((m) => m.json?.round === 2, 5000)
  t.equal(sum2.json.outcome, 'timeout', 'round 2 times out first (600 ms < 1500 ms)')
  await waitFor(async () => (await http('GET', `${nodes[2].base}/v1/groups/${g}`)).json.state.online === 0, 5000, 'eviction')
  await sleep(600)
  t.strictSame(inbox.on(`rg/${g}/rounds`).map((m) => `${m.json.round}:${m.json.outcome}`), ['1:timeout', '2:timeout'], 'each round ended once, by one process')
  t.strictSame(releasesOf(c.inbox, g).map((m) => m.json.round), [2], 'one release for c')
  t.strictSame(releasesOf(d.inbox, g).map((m) => m.json.round), [2], 'one release for d')
  const hist = (await http('GET', `${nodes[1].base}/v1/groups/${g}/rounds`)).json
  t.strictSame(hist.map((s: { round: number }) => s.round), [2, 1])
  t.equal(await nodes[2].stop(), 0, 'SIGTERM ends a cluster process with status 0')
})
