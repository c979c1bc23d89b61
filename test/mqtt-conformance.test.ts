// roundgate is still a correct MQTT 3.1.1 broker outside its topic prefix: QoS 0/1/2, retained
// messages, wills, wildcards, persistent sessions, and the guards aedes 1.2 leaves to its users
// (empty clientId with CleanSession=0, refused subscriptions, packet size limit).
import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { once } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { chainPreConnect } from '../plugins/hooks.js'
import { connect, Inbox, startBroker, waitFor, within, type TestBroker } from './helpers/broker.js'

async function broker (t: Test, overrides: Parameters<typeof startBroker>[0] = {}): Promise<TestBroker> {
  const b = await startBroker(overrides)
  t.teardown(async () => await b.close())
  return b
}

/** A connected client, closed at teardown. */
async function client (t: Test, b: TestBroker, id: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = await connect(b.url, id, opts) // bounded: rejects on a close before CONNACK
  t.teardown(async () => { await c.endAsync(true) })
  return c
}

/**
 * A client whose inbox listens from before CONNACK, so messages that follow the CONNACK in the
 * same read (a restored session's queue) are not missed; resolves with the CONNACK.
 */
async function clientWithInbox (t: Test, b: TestBroker, id: string, opts: IClientOptions = {}): Promise<{ c: MqttClient, inbox: Inbox, connack: IConnackPacket }> {
  const c = mqtt.connect(b.url, { clientId: id, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  t.teardown(async () => { await c.endAsync(true) })
  const inbox = new Inbox(c)
  const connack = await within(new Promise<IConnackPacket>((resolve, reject) => {
    c.once('connect', resolve)
    c.once('error', reject)
    c.once('close', () => reject(new Error(`${id}: closed before CONNACK`)))
  }), 5000, `CONNACK for ${id}`)
  return { c, inbox, connack }
}

/** A raw TCP connection speaking mqtt-packet: write packets, read parsed packets, see it close. */
class RawClient {
  readonly socket: Socket
  readonly packets: Packet[] = []
  readonly closed: Promise<void>
  private waiters: Array<() => void> = []

  constructor (port: number) {
    this.socket = netConnect(port, '127.0.0.1')
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', (p: Packet) => { this.packets.push(p); for (const w of this.waiters.splice(0)) w() })
    this.socket.on('data', (d: Buffer) => parser.parse(d))
    this.socket.on('error', () => {})
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()))
  }

  write (p: Packet | Buffer): void {
    this.socket.write(Buffer.isBuffer(p) ? p : mqttPacket.generate(p))
  }

  async next (cmd: Packet['cmd'], ms = 3000): Promise<Packet> {
    const end = Date.now() + ms
    for (;;) {
      const p = this.packets.find((x) => x.cmd === cmd)
      if (p !== undefined) return p
      const left = end - Date.now()
      if (left <= 0) throw new Error(`no ${cmd} within ${ms} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  destroy (): void { this.socket.destroy() }
}

async function rawClient (t: Test, port: number): Promise<RawClient> {
  const r = new RawClient(port)
  t.teardown(() => r.destroy())
  await once(r.socket, 'connect')
  return r
}


function connectPacket (clientId: string, clean: boolean): Packet {
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive: 30 }
}

/**
 * CONNECT, MQTT 3.1.1, zero-byte ClientId, CleanSession=0, keep-alive 30 s, written byte by byte:
 * mqtt-packet refuses to generate it, which is exactly why a broker must handle it.
 */
const EMPTY_ID_PERSISTENT_CONNECT = Buffer.from([
  0x10, 12, // CONNECT, remaining length
  0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, // "MQTT"
  0x04, // protocol level 4 (3.1.1)
  0x00, // connect flags: CleanSession=0, no will, no credentials
  0x00, 0x1e, // keep-alive
  0x00, 0x00 // ClientId: zero bytes
])

void t.test('QoS 0, 1 and 2 publish/subscribe end to end, each delivered once at the granted QoS', async (t) => {
  const b = await broker(t)
  const sub = await client(t, b, 'q-sub')
  const pub = await client(t, b, 'q-pub')
  const inbox = new Inbox(sub)
  const granted = await sub.subscribeAsync({ 'q/0': { qos: 0 }, 'q/1': { qos: 1 }, 'q/2': { qos: 2 } })
  t.strictSame(granted.map((g) => [g.topic, g.qos]).sort(), [['q/0', 0], ['q/1', 1], ['q/2', 2]])

  for (const qos of [0, 1, 2] as const) {
    await pub.publishAsync(`q/${qos}`, `hello ${qos}`, { qos })
    const m = await inbox.next(`q/${qos}`)
    t.equal(m.raw.toString(), `hello ${qos}`, `QoS ${qos} payload`)
    t.equal(m.qos, qos, `delivered at QoS ${qos}`)
    t.equal(m.retain, false)
  }
  // Exactly once: after a later message on the same connection, each topic was seen once.
  await pub.publishAsync('q/1', 'marker', { qos: 1 })
  await inbox.next((m) => m.topic === 'q/1' && m.raw.toString() === 'marker')
  t.equal(inbox.on('q/0').length, 1)
  t.equal(inbox.on('q/2').length, 1, 'QoS 2 is delivered exactly once')

  // A subscription at QoS 0 downgrades a QoS 2 publication [MQTT-3.8.4-6].
  await pub.publishAsync('q/0', 'downgraded', { qos: 2 })
  const d = await inbox.next((m) => m.raw.toString() === 'downgraded')
  t.equal(d.qos, 0)
})

void t.test('retained messages: set, delivered on subscribe with the retain flag, cleared by an empty payload', async (t) => {
  const b = await broker(t)
  const pub = await client(t, b, 'r-pub')
  const live = await client(t, b, 'r-live')
  const liveInbox = new Inbox(live)
  await live.subscribeAsync('ret/a', { qos: 1 })

  await pub.publishAsync('ret/a', 'kept', { qos: 1, retain: true })
  const l = await liveInbox.next('ret/a')
  t.equal(l.retain, false, 'a live subscriber gets it without the retain flag [MQTT-3.3.1-9]')

  const late = await client(t, b, 'r-late')
  const lateInbox = new Inbox(late)
  await late.subscribeAsync('ret/+', { qos: 1 })
  const r = await lateInbox.next('ret/a')
  t.equal(r.raw.toString(), 'kept')
  t.equal(r.retain, true, 'a new subscriber gets it with the retain flag [MQTT-3.3.1-8]')

  // A new retained message replaces the old one.
  await pub.publishAsync('ret/a', 'replaced', { qos: 1, retain: true })
  const late2 = await client(t, b, 'r-late2')
  const late2Inbox = new Inbox(late2)
  await late2.subscribeAsync('ret/a', { qos: 1 })
  t.equal((await late2Inbox.next('ret/a')).raw.toString(), 'replaced')

  // Cleared by a zero-byte retained message [MQTT-3.3.1-10].
  await pub.publishAsync('ret/a', '', { qos: 1, retain: true })
  await liveInbox.next((m) => m.topic === 'ret/a' && m.raw.length === 0)
  const after = await client(t, b, 'r-after')
  const afterInbox = new Inbox(after)
  await after.subscribeAsync('ret/a', { qos: 1 })
  await pub.publishAsync('ret/a', 'live only', { qos: 1 })
  const first = await afterInbox.next('ret/a')
  t.equal(first.raw.toString(), 'live only', 'nothing retained is left on the topic')
  t.equal(first.retain, false)
  t.equal(afterInbox.messages.filter((m) => m.retain).length, 0, 'no retained message at all')
})

void t.test('will: published on an abrupt disconnect, not on a clean DISCONNECT', async (t) => {
  const b = await broker(t)
  const watcher = await client(t, b, 'w-watch')
  const inbox = new Inbox(watcher)
  await watcher.subscribeAsync('wills/#', { qos: 1 })

  const abrupt = await client(t, b, 'w-abrupt', { will: { topic: 'wills/abrupt', payload: Buffer.from('gone'), qos: 1, retain: false } })
  abrupt.stream.destroy() // no DISCONNECT: the broker sees the socket die
  const will = await inbox.next('wills/abrupt')
  t.equal(will.raw.toString(), 'gone')
  t.equal(will.qos, 1)

  const clean = await client(t, b, 'w-clean', { will: { topic: 'wills/clean', payload: Buffer.from('gone'), qos: 1, retain: false } })
  await clean.endAsync() // sends DISCONNECT: the will is discarded [MQTT-3.14.4-3]
  await waitFor(() => (b.server.broker as unknown as { clients: Record<string, unknown> }).clients['w-clean'] === undefined, 3000, 'the broker to drop w-clean')
  const pub = await client(t, b, 'w-pub')
  await pub.publishAsync('wills/marker', 'after', { qos: 1 })
  await inbox.next('wills/marker')
  t.equal(inbox.on('wills/clean').length, 0, 'no will after a clean DISCONNECT')
})

void t.test('wildcards: + one level, # the rest including the parent, neither at the first level matches $SYS', async (t) => {
  const b = await broker(t)
  const plus = await client(t, b, 'wc-plus')
  const hash = await client(t, b, 'wc-hash')
  const all = await client(t, b, 'wc-all')
  const firstPlus = await client(t, b, 'wc-first-plus')
  const sys = await client(t, b, 'wc-sys')
  const inboxes = { plus: new Inbox(plus), hash: new Inbox(hash), all: new Inbox(all), firstPlus: new Inbox(firstPlus), sys: new Inbox(sys) }
  await plus.subscribeAsync('w/+/x', { qos: 1 })
  await hash.subscribeAsync('w/#', { qos: 1 })
  await all.subscribeAsync('#', { qos: 1 })
  await firstPlus.subscribeAsync('+/a/x', { qos: 1 })
  await sys.subscribeAsync('$SYS/#', { qos: 1 })

  // $SYS topics come from the broker itself (clients may not publish there).
  await new Promise<void>((resolve, reject) => b.server.broker.publish({ cmd: 'publish', topic: '$SYS/a/x', payload: Buffer.from('sys'), qos: 1, retain: false, dup: false }, (err) => err != null ? reject(err) : resolve()))
  await inboxes.sys.next('$SYS/a/x')

  const pub = await client(t, b, 'wc-pub')
  for (const topic of ['w/a/x', 'w/a/b/x', 'w', 'w/a', 'v/a/x', 'w/end/x']) await pub.publishAsync(topic, topic, { qos: 1 })
  // Delivery to each subscriber is in publication order, so the last one closes each list.
  await inboxes.plus.next('w/end/x')
  await inboxes.hash.next('w/end/x')
  await inboxes.all.next('w/end/x')
  await pub.publishAsync('end/a/x', 'end', { qos: 1 })
  await inboxes.firstPlus.next('end/a/x')
  await inboxes.all.next('end/a/x')

  const topics = (i: Inbox): string[] => i.messages.map((m) => m.topic)
  t.strictSame(topics(inboxes.plus), ['w/a/x', 'w/end/x'], 'w/+/x matches exactly one level')
  t.strictSame(topics(inboxes.hash), ['w/a/x', 'w/a/b/x', 'w', 'w/a', 'w/end/x'], 'w/# matches every level below and w itself')
  t.strictSame(topics(inboxes.firstPlus), ['w/a/x', 'v/a/x', 'end/a/x'], '+/a/x')
  t.strictSame(topics(inboxes.all).filter((x) => !x.startsWith('$')), ['w/a/x', 'w/a/b/x', 'w', 'w/a', 'v/a/x', 'w/end/x', 'end/a/x'])
  t.strictSame(topics(inboxes.all).filter((x) => x.startsWith('$')), [], '# does not match $SYS topics [MQTT-4.7.2-1]')
  t.strictSame(topics(inboxes.firstPlus).filter((x) => x.startsWith('$')), [], '+ does not match $SYS topics [MQTT-4.7.2-1]')
})

void t.test('persistent session: subscriptions survive, QoS 1 messages queued while offline, sessionPresent', async (t) => {
  const b = await broker(t)
  const first = await clientWithInbox(t, b, 'p-1', { clean: false })
  t.equal(first.connack.sessionPresent, false, 'no session yet')
  await first.c.subscribeAsync('ps/+', { qos: 1 })
  await first.c.endAsync()

  const pub = await client(t, b, 'p-pub')
  await pub.publishAsync('ps/a', 'offline 1', { qos: 1 })
  await pub.publishAsync('ps/b', 'offline 2', { qos: 1 })
  await pub.publishAsync('ps/c', 'offline qos0', { qos: 0 })

  const again = await clientWithInbox(t, b, 'p-1', { clean: false })
  t.equal(again.connack.sessionPresent, true, 'CONNACK says the session is there [MQTT-3.2.2-2]')
  const a = await again.inbox.next('ps/a')
  const bb = await again.inbox.next('ps/b')
  t.equal(a.raw.toString(), 'offline 1')
  t.equal(bb.raw.toString(), 'offline 2')
  t.equal(a.qos, 1)
  // The subscription itself survived: a new publication arrives without subscribing again.
  await pub.publishAsync('ps/live', 'live', { qos: 1 })
  t.equal((await again.inbox.next('ps/live')).raw.toString(), 'live')
  await again.c.endAsync()

  // A clean session discards it all [MQTT-3.1.2-6].
  const cleanStart = await clientWithInbox(t, b, 'p-1', { clean: true })
  t.equal(cleanStart.connack.sessionPresent, false)
  await cleanStart.c.endAsync()
  const afterClean = await clientWithInbox(t, b, 'p-1', { clean: false })
  t.equal(afterClean.connack.sessionPresent, false, 'a clean connection ended the old session')
})

void t.test('empty clientId with CleanSession=0 gets CONNACK 0x02 and is closed [MQTT-3.1.3-8]', async (t) => {
  const b = await broker(t)
  const raw = await rawClient(t, b.server.ports.mqtt)
  raw.write(EMPTY_ID_PERSISTENT_CONNECT)
  const connack = await raw.next('connack')
  t.equal((connack as { returnCode?: number }).returnCode, 2, 'identifier rejected')
  t.equal((connack as { sessionPresent?: boolean }).sessionPresent, false)
  await within(raw.closed, 3000, 'the broker to close the refused connection')
  t.pass('connection closed')
  t.equal(raw.packets.length, 1, 'nothing but the CONNACK')
})

void t.test('empty clientId with CleanSession=1 is accepted with an id the broker assigns', async (t) => {
  const b = await broker(t)
  const raw = await rawClient(t, b.server.ports.mqtt)
  raw.write(connectPacket('', true))
  const connack = await raw.next('connack')
  t.equal((connack as { returnCode?: number }).returnCode, 0)
  // It works as a client: subscribe, get a SUBACK.
  raw.write({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'e/x', qos: 1 }] })
  const suback = await raw.next('suback')
  t.strictSame((suback as { granted?: number[] }).granted, [1])
  raw.write({ cmd: 'disconnect' })
  await within(raw.closed, 3000, 'close after DISCONNECT')

  // And with mqtt.js too.
  const c = await client(t, b, '', { clean: true })
  t.same((await c.subscribeAsync('probe/served', { qos: 1 })).map((g) => g.qos), [1], 'served: a SUBSCRIBE is answered')
})

void t.test('refused subscriptions answer SUBACK 0x80, the others in the same SUBSCRIBE are granted', async (t) => {
  const b = await broker(t)
  const c = await client(t, b, 's-1')
  const inbox = new Inbox(c)
  // mqtt.js turns any 0x80 in a SUBACK into an error carrying the packet.
  const err = await c.subscribeAsync(['rg/bad group!/release', 'plain/topic', 'rg/g/nonsense', 'rg/g/state'], { qos: 1 })
    .then(() => null, (e: { packet?: { granted?: number[] } }) => e)
  t.ok(err !== null, 'the SUBACK carries a refusal')
  t.strictSame(err?.packet?.granted, [128, 1, 128, 1], 'refused, granted, refused, granted')
  t.equal(c.connected, true, 'the client stays connected')
  // The granted one works on the same connection.
  const pub = await client(t, b, 's-pub')
  await pub.publishAsync('plain/topic', 'ok', { qos: 1 })
  t.equal((await inbox.next('plain/topic')).raw.toString(), 'ok')

  // The exact SUBACK on the wire, in the order of the request [MQTT-3.9.3-1].
  const raw = await rawClient(t, b.server.ports.mqtt)
  raw.write(connectPacket('s-raw', true))
  await raw.next('connack')
  raw.write({ cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: 'a/b', qos: 2 }, { topic: 'rg/bad group!/release', qos: 1 }, { topic: 'c/#', qos: 0 }] })
  const suback = await raw.next('suback')
  t.equal((suback as { messageId?: number }).messageId, 9)
  t.strictSame((suback as { granted?: number[] }).granted, [2, 128, 0])
  raw.write({ cmd: 'pingreq' })
  await raw.next('pingresp')
  t.pass('still connected after the refusal')
})

void t.test('a packet larger than maxPacketBytes closes that connection; the broker serves the others', async (t) => {
  const b = await broker(t, { maxPacketBytes: 2048 })
  const watcher = await client(t, b, 'big-watch')
  const inbox = new Inbox(watcher)
  await watcher.subscribeAsync('big/#', { qos: 1 })

  const small = await client(t, b, 'big-small')
  await small.publishAsync('big/ok', Buffer.alloc(1500, 1), { qos: 1 })
  t.equal((await inbox.next('big/ok')).raw.length, 1500, 'a packet under the limit passes')

  const big = await client(t, b, 'big-big')
  const closed = new Promise<void>((resolve) => big.once('close', () => resolve()))
  big.publish('big/huge', Buffer.alloc(4096, 2), { qos: 0 })
  await within(closed, 3000, 'the oversized publisher to be disconnected')
  t.pass('oversized packet closed the connection')

  // Announced size alone is enough: a header claiming 1 MiB is refused before the body arrives.
  const raw = await rawClient(t, b.server.ports.mqtt)
  raw.write(connectPacket('big-raw', true))
  await raw.next('connack')
  raw.socket.write(Buffer.from([0x30, 0x80, 0x80, 0x40, 0x00, 0x03, 0x61])) // PUBLISH, remaining length 1048576
  await within(raw.closed, 3000, 'the announced-oversize connection to be closed')
  t.pass('closed on the remaining-length header')

  t.equal(watcher.connected, true)
  t.equal(small.connected, true)
  await small.publishAsync('big/after', 'still here', { qos: 1 })
  t.equal((await inbox.next('big/after')).raw.toString(), 'still here', 'others are still served')
  t.equal(inbox.on('big/huge').length, 0, 'the oversized message was not delivered')
  const fresh = await client(t, b, 'big-fresh')
  t.same((await fresh.subscribeAsync('probe/served', { qos: 1 })).map((g) => g.qos), [1], 'new connections are accepted and served')
})

void t.test('the guards compose with callback-style hooks installed around them', async (t) => {
  const b = await broker(t)
  const aedes = b.server.broker
  // A plugin written the aedes way, answering `cb(undefined, true)`, wrapped in turn by a chained one.
  const inner = aedes.preConnect.bind(aedes)
  aedes.preConnect = (client, packet, cb) => inner(client, packet, (err, ok) => cb(err ?? (undefined as unknown as null), ok))
  let seen = 0
  chainPreConnect(aedes, async (_client, _packet, next) => { seen++; return await next() })
  const c = await client(t, b, 'compose-1')
  t.same((await c.subscribeAsync('probe/served', { qos: 1 })).map((g) => g.qos), [1], 'a CONNECT passes every hook and the client is served')
  t.equal(seen, 1)
  const raw = await rawClient(t, b.server.ports.mqtt)
  raw.write(EMPTY_ID_PERSISTENT_CONNECT)
  t.equal((await raw.next('connack') as { returnCode?: number }).returnCode, 2, 'the empty-clientId guard still answers 0x02')
})
