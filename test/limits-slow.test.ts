// A client that stops reading (a frozen subscriber) and slowloris clients (MQTT and HTTP, a byte
// now and then) delay nobody else's release: with them hanging on, every other participant still
// gets its release promptly (a generous bound: this is no benchmark).
import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { connect, freePort, send, sleep, startBroker, terminal } from './helpers/broker.js'

const BOUND_MS = 3000

function raw (port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1', () => resolve(s))
    s.once('error', reject)
  })
}

void t.test('a frozen subscriber and slowloris clients delay nobody\'s release', async (t) => {
  const b = await startBroker({ httpPort: await freePort(), groups: { slow: { need: 6, resetMs: 0 } } })
  t.teardown(b.close)
  const sockets: Socket[] = []
  t.teardown(() => { for (const s of sockets) s.destroy() })

  // the frozen subscriber: subscribes to everything, then never reads again
  const frozen = await raw(b.server.ports.mqtt)
  sockets.push(frozen)
  frozen.on('error', () => { /* destroyed by the broker's drain timeout, eventually */ })
  frozen.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'frozen', keepalive: 0 }))
  frozen.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }, { topic: 'rg/#', qos: 1 }] }))
  await sleep(100)
  frozen.pause()

  // slowloris: MQTT CONNECTs and HTTP requests dribbled a byte at a time
  const connectBytes = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'slow', keepalive: 0 })
  const httpBytes = Buffer.from('POST /v1/groups/slow/ready HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{"clientId":"slow"}')
  const dribblers: NodeJS.Timeout[] = []
  t.teardown(() => { for (const d of dribblers) clearInterval(d) })
  for (let i = 0; i < 20; i++) {
    for (const [port, bytes] of [[b.server.ports.mqtt, connectBytes], [b.server.ports.http, httpBytes]] as const) {
      const s = await raw(port)
      s.on('error', () => { /* the broker may close it */ })
      sockets.push(s)
      let at = 0
      dribblers.push(setInterval(() => { if (at < bytes.length - 1 && !s.destroyed) s.write(bytes.subarray(at, ++at)) }, 400))
    }
  }

  // fill the frozen subscriber's socket: 24 MiB of messages it will never read
  const flooder = await connect(b.url, 'flooder')
  t.teardown(() => { flooder.end(true) })
  const chunk = Buffer.alloc(32 * 1024, 1)
  for (let i = 0; i < 768; i++) flooder.publish('flood/x', chunk, { qos: 0 })
  await sleep(500)

  // four MQTT and two HTTP participants
  const terms = await Promise.all(['m1', 'm2', 'm3', 'm4'].map(async (id) => await terminal(b.url, 'slow', id)))
  t.teardown(() => { for (const x of terms) x.c.end(true) })
  const base = `http://127.0.0.1:${b.server.ports.http}`
  for (const id of ['h1', 'h2']) await fetch(`${base}/v1/groups/slow/ready`, { method: 'POST', body: `clientId=${id}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  const polls = ['h1', 'h2'].map(async (id) => {
    const r = await fetch(`${base}/v1/groups/slow/release?clientId=${id}&wait=20`)
    return { status: r.status, at: Date.now() }
  })
  await sleep(100)
  const start = Date.now()
  for (const [i, x] of terms.entries()) await send(x.c, `rg/slow/ready/m${i + 1}`, {})
  const mqttAt = await Promise.all(terms.map(async (x) => { await x.inbox.next('rg/slow/release', 10000); return Date.now() }))
  const httpRes = await Promise.all(polls)
  t.same(httpRes.map((r) => r.status), [200, 200], 'HTTP participants released')
  const worst = Math.max(...mqttAt, ...httpRes.map((r) => r.at)) - start
  t.ok(worst < BOUND_MS, `every release arrived within ${worst} ms (bound ${BOUND_MS} ms) with a frozen subscriber and 40 slowloris clients around`)
  t.equal((await b.server.engine.state('slow')).participants, 6)
})
