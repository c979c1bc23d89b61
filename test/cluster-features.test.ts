// PROTOCOL 1.1 on three processes sharing one Redis (issues 12 and 15): scheduled ticks released
// once cluster-wide with startAt on the tick, retries exactly once, each alert POSTed once though
// every process has the webhook, each round's timeline observed once, and 300 jobs submitted
// through every process run once each in order, with a kill -9 among them.
//
// RG_CLUSTER_FEATURES_DRY=1 runs the same tests on one process with the embedded store standing in
// for the three (no kill -9), to check the tests themselves.
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { connect, Inbox, send, sleep, terminal, waitFor } from './helpers/broker.js'
import { http, startProcess, type RgProcess } from './helpers/cluster-node.js'
import { find, parseProm } from './helpers/prom.js'
import { startRedis, type TestRedis } from './helpers/redis-server.js'
import { startReceiver, validSignature, type Receiver } from './helpers/webhook.js'

const DRY = process.env.RG_CLUSTER_FEATURES_DRY === '1'

function clusterTest (title: string, fn: (t: Test) => Promise<void>): void {
  void t.test(`${DRY ? 'dry run, 1 process' : '3 processes'}: ${title}`, fn)
}

interface Cluster { nodes: RgProcess[], distinct: RgProcess[], redis: TestRedis | null, clients: MqttClient[] }

/** Three processes on a private Redis (one embedded-store process thrice in a dry run), all with `config`. */
async function cluster (t: Test, config: Record<string, unknown>): Promise<Cluster> {
  const clients: MqttClient[] = []
  const redis = DRY ? null : await startRedis()
  const distinct: RgProcess[] = []
  t.teardown(async () => {
    for (const c of clients) c.end(true)
    for (const n of distinct) await n.stop()
    await redis?.stop()
  })
  for (let i = 0; i < (DRY ? 1 : 3); i++) distinct.push(await startProcess({ redis: redis?.url, config }))
  return { nodes: [0, 1, 2].map((i) => distinct[i % distinct.length]), distinct, redis, clients }
}

async function mqttTerminal (c: Cluster, node: number, group: string, id: string): Promise<Awaited<ReturnType<typeof terminal>>> {
  const term = await terminal(c.nodes[node].mqtt, group, id)
  c.clients.push(term.c)
  return term
}

clusterTest('every 2 s with startDelayMs 300: each tick released once, startAt on it, held by MQTT and HTTP participants before it', async (t) => {
  const c = await cluster(t, { groups: { tick: { need: 3, minOnlineRatio: 1, schedule: '*/2 * * * * *', startDelayMs: 300, resetMs: 0, execTimeoutMs: 5000 } } })
  const m0 = await mqttTerminal(c, 0, 'tick', 'm0')
  const m1 = await mqttTerminal(c, 1, 'tick', 'm1')
  let after = 0
  for (let round = 1; round <= 2; round++) {
    const poll = (async () => { const r = await http('GET', `${c.nodes[2].base}/v1/groups/tick/release?clientId=h2&after=${after}&wait=10`); return { r, at: Date.now() } })()
    await sleep(100)
    await send(m0.c, 'rg/tick/ready/m0', {})
    await send(m1.c, 'rg/tick/ready/m1', {})
    t.equal((await http('POST', `${c.nodes[2].base}/v1/groups/tick/ready`, { clientId: 'h2' })).status, 200)
    const got = await Promise.all([m0, m1].map(async (m) => {
      const msg = await m.inbox.next((x) => x.topic === 'rg/tick/release' && x.json?.round > after, 3500)
      return { json: msg.json, at: Date.now() }
    }))
    const { r, at } = await poll
    t.equal(r.status, 200)
    const startAt = got[0].json.startAt as number
    t.equal(startAt % 2000, 0, `round ${got[0].json.round}: startAt on an even second`)
    t.strictSame([got[1].json.round, r.json.round, got[1].json.startAt, r.json.startAt], [got[0].json.round, got[0].json.round, startAt, startAt], 'one release, seen alike on every process')
    t.ok(got.every((g) => g.at < startAt) && at < startAt, 'every participant held it before startAt')
    after = got[0].json.round
    await send(m0.c, 'rg/tick/done/m0', { round: after })
    await send(m1.c, 'rg/tick/done/m1', { round: after })
    await http('POST', `${c.nodes[2].base}/v1/groups/tick/done`, { clientId: 'h2', round: after })
    await waitFor(async () => (await http('GET', `${c.nodes[1].base}/v1/groups/tick`)).json.state.phase === 'WAITING', 3000, 'WAITING')
  }
  t.equal(m0.inbox.on('rg/tick/release').filter((m) => m.json !== null).length, 2, 'one release per tick, never twice')
  const st = (await http('GET', `${c.nodes[0].base}/v1/groups/tick`)).json.state
  t.ok(st.nextTick % 2000 === 0 && st.nextTick > Date.now() - 100, 'state.nextTick, from any process')
})

clusterTest('a timed-out round is retried once cluster-wide; each alert reaches the webhook once; each round observed once in /metrics', async (t) => {
  const rx: Receiver = await startReceiver()
  t.teardown(rx.close)
  const c = await cluster(t, {
    alerts: [{ url: rx.url, events: ['timeout', 'retry', 'exhausted'], secret: 'cluster-secret' }],
    groups: { rt: { need: 1, execTimeoutMs: 300, resetMs: 0, payload: { p: 1 }, retry: { max: 1, backoffMs: 300 } } }
  })
  const a = await mqttTerminal(c, 1, 'rt', 'a')
  await send(a.c, 'rg/rt/ready/a', {})
  t.match((await a.inbox.next('rg/rt/release', 3000)).json, { round: 1, attempt: 1 })
  await rx.waitDelivered(2, 5000)
  await send(a.c, 'rg/rt/ready/a', {})
  const r2 = (await a.inbox.next((m) => m.topic === 'rg/rt/release' && m.json?.round === 2, 3000)).json
  t.match(r2, { attempt: 2, payload: { p: 1 } }, 'the retry: same payload, attempt 2')
  await rx.waitDelivered(4, 5000)
  await sleep(500)
  t.strictSame(rx.hits.map((h) => `${h.json.event} ${h.json.round}`), ['timeout 1', 'retry 1', 'timeout 2', 'exhausted 2'], 'each event once, though three processes have the webhook')
  t.ok(rx.hits.every((h) => validSignature(h, 'cluster-secret')))
  let rounds = 0
  for (const n of c.distinct) {
    const s = parseProm(await (await fetch(`${n.base}/metrics`)).text()).samples
    rounds += find(s, 'roundgate_round_duration_seconds_count', { group: 'rt' })?.value ?? 0
  }
  t.equal(rounds, 2, 'each round\'s duration observed by one process only')
})

clusterTest('missed ticks: each alerted once, counted once in state.missed', async (t) => {
  const rx = await startReceiver()
  t.teardown(rx.close)
  const c = await cluster(t, { alerts: [{ url: rx.url, events: ['missed'] }], groups: { miss: { need: 2, schedule: '* * * * * *', resetMs: 0 } } })
  const a = await mqttTerminal(c, 0, 'miss', 'a')
  await send(a.c, 'rg/miss/ready/a', {})
  await rx.waitDelivered(2, 5000)
  await http('PATCH', `${c.nodes[2].base}/v1/groups/miss`, { schedule: null })
  await sleep(1500)
  // an alert leaves after its tick is counted: under load the last one may still be on its way
  const missed = (await http('GET', `${c.nodes[1].base}/v1/groups/miss`)).json.state.missed as number
  await waitFor(() => rx.hits.length >= missed, 10000, `${missed} missed alerts`)
  await sleep(500)
  const ticks = rx.hits.map((h) => h.json.detail.tick)
  t.equal(new Set(ticks).size, ticks.length, `each tick alerted once (${ticks.length} ticks)`)
  t.equal(missed, ticks.length, 'state.missed counts each once')
})

clusterTest('300 jobs submitted through every process run once each, in priority/FIFO order, with a kill -9 among them', async (t) => {
  // four submitters send as fast as they are answered: above the default 50 scheduler messages a second per clientId
  const c = await cluster(t, { rateClientPerS: 100000, groups: { jobs: { need: 1, resetMs: 0, jobsOnly: true, paused: true, execTimeoutMs: 30000 } } })
  const plan: Array<{ id: string, priority: number, client: string, index: number }> = []
  for (const client of ['http0', 'http2', 'mqtt1', 'mqtt2']) {
    for (let i = 0; i < 75; i++) plan.push({ id: `${client}-${i}`, priority: (i * 7 + client.length) % 3, client, index: i })
  }
  const submitHttp = async (node: number, client: string): Promise<void> => {
    for (const p of plan.filter((x) => x.client === client)) {
      const r = await http('POST', `${c.nodes[node].base}/v1/groups/jobs/jobs`, { id: p.id, payload: { id: p.id }, priority: p.priority })
      if (r.status !== 201) throw new Error(`${p.id}: ${r.status} ${JSON.stringify(r.json)}`)
    }
  }
  const submitMqtt = async (node: number, client: string): Promise<void> => {
    const adm = await connect(c.nodes[node].mqtt, `admin-${client}`)
    c.clients.push(adm)
    const inbox = new Inbox(adm)
    await adm.subscribeAsync(`rg/jobs/ctl/result/admin-${client}`, { qos: 1 })
    for (const p of plan.filter((x) => x.client === client)) {
      const from = inbox.messages.length
      await send(adm, 'rg/jobs/ctl', { op: 'submit', job: { id: p.id, payload: { id: p.id }, priority: p.priority } })
      const res = (await inbox.next(`rg/jobs/ctl/result/admin-${client}`, 5000, from)).json
      if (res.ok !== true) throw new Error(`${p.id}: ${JSON.stringify(res)}`)
    }
  }
  await Promise.all([submitHttp(0, 'http0'), submitHttp(2, 'http2'), submitMqtt(1, 'mqtt1'), submitMqtt(2, 'mqtt2')])
  t.equal((await http('GET', `${c.nodes[1].base}/v1/groups/jobs`)).json.state.queued, 300)

  const runs: Array<{ round: number, job: string }> = []
  for (const [node, id] of [[0, 't0'], [1, 't1']] as const) {
    const term = await mqttTerminal(c, node, 'jobs', id)
    term.c.on('message', (topic, payload) => {
      if (topic !== 'rg/jobs/release' || payload.length === 0) return
      const r = JSON.parse(payload.toString())
      runs.push({ round: r.round, job: r.job })
      void send(term.c, `rg/jobs/done/${id}`, { round: r.round }).then(async () => await send(term.c, `rg/jobs/ready/${id}`, {}))
    })
    await send(term.c, `rg/jobs/ready/${id}`, {})
  }
  await http('PATCH', `${c.nodes[0].base}/v1/groups/jobs`, { paused: false })
  await waitFor(() => runs.length >= 100, 20000, '100 jobs run')
  if (DRY) t.comment('dry run: no kill -9 (one process)')
  else await c.nodes[2].kill() // it took submissions; no terminal is connected to it
  await waitFor(async () => (await http('GET', `${c.nodes[0].base}/v1/groups/jobs`)).json.state.queued === 0 && runs.length >= 300, 60000, 'every job run')
  await sleep(200)
  t.equal(runs.length, 300, 'one release per job')
  t.equal(new Set(runs.map((r) => r.job)).size, 300, 'none run twice, none lost')
  const order = [...runs].sort((a, b) => a.round - b.round).map((r) => plan.find((p) => p.id === r.job) as typeof plan[number])
  let inversions = 0
  const last = new Map<string, number>()
  for (let i = 1; i < order.length; i++) {
    if (order[i].priority > order[i - 1].priority) inversions++
    if (order[i].priority < order[i - 1].priority) last.clear()
    const prev = last.get(order[i].client)
    if (prev !== undefined && prev > order[i].index) inversions++
    last.set(order[i].client, order[i].index)
  }
  t.equal(inversions, 0, 'priority first, then each submitter\'s order')
  const done = (await http('GET', `${c.nodes[1].base}/v1/groups/jobs/jobs?state=completed&limit=1000`)).json
  t.equal(done.length, 300, 'every job completed')
  t.ok(done.every((j: any) => j.attempts === 1 && j.rounds.length === 1), 'each once')
})
