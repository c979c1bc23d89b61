// Fuzz (fast-check): random and mutated MQTT packets and HTTP requests thrown at a running broker
// for a bounded time, prototype-named topics, client ids, groups and keys among them
// (GHSA-52qw-whmv-87c5); then the broker must still run a full round correctly, with participants
// named after Object.prototype's members. The seed is printed: ROUNDGATE_FUZZ_SEED=<seed> replays
// a run; ROUNDGATE_FUZZ_MS sets its length (default 15000 ms).
import { connect as netConnect, type Socket } from 'node:net'
import fc from 'fast-check'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { freePort, send, sleep, startBroker, terminal } from './helpers/broker.js'
import { call } from './helpers/http.js'

const seed = Number(process.env.ROUNDGATE_FUZZ_SEED ?? Date.now() % 2147483647)
const budgetMs = Number(process.env.ROUNDGATE_FUZZ_MS ?? 15000)
t.comment(`fuzz seed ${seed} (replay: ROUNDGATE_FUZZ_SEED=${seed}), ${budgetMs} ms`)

const b = await startBroker({ httpPort: await freePort(), maxPacketBytes: 64 * 1024 })
t.teardown(b.close)
const port = b.server.ports.mqtt
const base = `http://127.0.0.1:${b.server.ports.http}`

const PROTO = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']
const word = fc.oneof(fc.constantFrom(...PROTO, 'rg', 'g', 'hb', 'ready', 'done', 'leave', 'ctl', 'release', 'state', '+', '#', '', '$SYS'), fc.string({ maxLength: 12 }))
const topic = fc.array(word, { minLength: 1, maxLength: 6 }).map((ls) => ls.join('/'))
const json = fc.oneof(
  fc.json({ maxDepth: 3 }),
  fc.constantFrom('{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}', '{"round":"__proto__"}',
    '{"meta":{"__proto__":{"x":1}}}', '{"op":"configure","config":{"__proto__":{"need":0}}}', '{"op":"kick","clientId":"__proto__"}')
)
const clientId = fc.oneof(fc.constantFrom(...PROTO, 'ok-id'), fc.string({ maxLength: 30 }))

function packetOf (kind: number, id: string, tp: string, payload: string): Buffer | null {
  try {
    switch (kind) {
      case 0: return mqttPacket.generate({ cmd: 'publish', topic: tp, payload, qos: 1, messageId: 7, retain: false, dup: false })
      case 1: return mqttPacket.generate({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: tp, qos: 1 }] })
      case 2: return mqttPacket.generate({ cmd: 'publish', topic: `rg/${id}/ready/${id}`, payload, qos: 0, retain: false, dup: false })
      default: return mqttPacket.generate({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: [tp] })
    }
  } catch {
    return null // mqtt-packet refuses to write some of what the fuzzer makes up
  }
}

const mqttCase = fc.record({
  id: clientId,
  packets: fc.array(fc.record({ kind: fc.integer({ min: 0, max: 3 }), topic, payload: json.map((j) => typeof j === 'string' ? j : JSON.stringify(j)) }), { maxLength: 6 }),
  mutations: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
  junk: fc.uint8Array({ maxLength: 64 })
})

const httpCase = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'),
  path: fc.array(fc.oneof(word, fc.constantFrom('v1', 'groups', 'heartbeat', 'ready', 'done', 'release', 'ctl', 'login', 'terminals', 'rounds')), { maxLength: 5 })
    .map((ls) => '/' + ls.map((l) => encodeURIComponent(l)).join('/')),
  query: fc.constantFrom('', '?clientId=__proto__&wait=0', '?clientId=constructor&after=__proto__', '?limit=-1&before=x', '?wait=0'),
  body: fc.option(json.map((j) => typeof j === 'string' ? j : JSON.stringify(j)), { nil: undefined }),
  form: fc.boolean()
})

async function throwMqtt (c: { id: string, packets: Array<{ kind: number, topic: string, payload: string }>, mutations: Array<[number, number]>, junk: Uint8Array }): Promise<void> {
  const parts: Buffer[] = []
  try {
    parts.push(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: c.id, keepalive: 30 }))
  } catch {
    parts.push(Buffer.from([0x10, 0x00]))
  }
  for (const p of c.packets) {
    const buf = packetOf(p.kind, c.id, p.topic, p.payload)
    if (buf !== null) parts.push(buf)
  }
  parts.push(Buffer.from(c.junk))
  const bytes = Buffer.concat(parts)
  for (const [at, v] of c.mutations) if (bytes.length > 0) bytes[at % bytes.length] = v
  await new Promise<void>((resolve) => {
    const s: Socket = netConnect(port, '127.0.0.1', () => { s.write(bytes) })
    s.on('data', () => { /* answers are not checked: the broker staying up is */ })
    s.on('error', () => resolve())
    s.on('close', () => resolve())
    setTimeout(() => { s.destroy(); resolve() }, 30)
  })
}

async function throwHttp (c: { method: string, path: string, query: string, body?: string, form: boolean }): Promise<void> {
  const headers: Record<string, string> = { 'content-type': c.form ? 'application/x-www-form-urlencoded' : 'application/json' }
  const body = c.method === 'GET' || c.method === 'OPTIONS' ? undefined : c.body
  const r = await call(base, c.method, c.path + c.query, body, headers)
  if (r.status >= 500 && r.status !== 503) throw new Error(`${c.method} ${c.path}${c.query} answered ${r.status}: ${r.text}`)
}

void t.test('random and mutated MQTT packets and HTTP requests', async (t) => {
  let runs = 0
  await fc.assert(fc.asyncProperty(fc.oneof(mqttCase.map((m) => ({ mqtt: m })), httpCase.map((h) => ({ http: h }))), async (c) => {
    runs++
    if ('mqtt' in c) await throwMqtt(c.mqtt)
    else await throwHttp(c.http)
    if (runs % 100 === 0 && (await call(base, 'GET', '/healthz')).status !== 200) throw new Error('the broker stopped answering')
  }), { seed, numRuns: 1_000_000, interruptAfterTimeLimit: budgetMs, markInterruptAsFailure: false })
  t.ok(runs > 50, `${runs} cases thrown`)
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')
})

void t.test('afterwards the broker still runs a full round, with prototype-named participants', async (t) => {
  await sleep(200)
  const g = 'constructor' // a prototype-named group, too
  // the fuzz may have left it mid-round with made-up participants: start it afresh
  await b.server.engine.deleteGroup(g).catch(() => { /* it did not exist */ })
  await b.server.engine.putGroup(g, { need: 3, resetMs: 0 })
  const ids = ['__proto__', 'constructor', 'toString']
  const terms = await Promise.all(ids.map(async (id) => await terminal(b.url, g, id)))
  t.teardown(() => { for (const x of terms) x.c.end(true) })
  for (const [i, x] of terms.entries()) await send(x.c, `rg/${g}/ready/${ids[i]}`, {})
  const rels = await Promise.all(terms.map(async (x) => await x.inbox.next(`rg/${g}/release`, 5000)))
  const round = rels[0].json.round
  t.same(rels.map((r) => r.json.round), [round, round, round], 'all three released together')
  for (const [i, x] of terms.entries()) await send(x.c, `rg/${g}/done/${ids[i]}`, { round, result: { who: ids[i] } })
  const [summary] = await b.server.engine.rounds(g, 1)
  t.equal(summary.outcome, 'completed')
  t.same(Object.keys(summary.results).sort(), [...ids].sort(), 'every participant\'s result kept, __proto__ included')
  t.same(JSON.parse(JSON.stringify(summary)).results.__proto__, { who: '__proto__' })
})
