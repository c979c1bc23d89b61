// MQTT over WebSocket: full publish/subscribe through the WebSocket listener, across to TCP clients,
// and the ws package the listener really runs on (ws 8's createWebSocketStream; websocket-stream,
// which pinned ws 3 and its known DoS, is gone).
import type { MqttClient } from 'mqtt'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { WebSocket } from 'ws'
import { connect, freePort, Inbox, startBroker, within } from './helpers/broker.js'

void t.test('the WebSocket listener runs on ws 8, and websocket-stream (ws 3, known DoS) is not installed', async (t) => {
  // resolved from broker/server.js's own folder: the very module its `import 'ws'` loads
  const require = createRequire(new URL('../broker/server.js', import.meta.url))
  const wsPkgPath = require.resolve('ws/package.json')
  const { version } = JSON.parse(readFileSync(wsPkgPath, 'utf8')) as { version: string }
  t.equal(Number(version.split('.')[0]), 8, `broker/server loads ws ${version} from ${wsPkgPath}`)
  t.throws(() => require.resolve('websocket-stream'), 'websocket-stream is not a dependency any more')
})

async function wsClient (url: string, clientId: string): Promise<MqttClient> {
  return await connect(url, clientId)
}

void t.test('MQTT over WebSocket: publish/subscribe at QoS 0/1/2, retained, and across to TCP', async (t) => {
  const b = await startBroker({ wsPort: await freePort() })
  t.teardown(async () => await b.close())
  t.ok(b.server.ports.ws > 0, 'the WebSocket listener is up')
  const wsUrl = `ws://127.0.0.1:${b.server.ports.ws}`

  const sub = await wsClient(wsUrl, 'ws-sub')
  t.teardown(async () => { await sub.endAsync(true) })
  const pub = await wsClient(wsUrl, 'ws-pub')
  t.teardown(async () => { await pub.endAsync(true) })
  const tcp = await connect(b.url, 'tcp-peer')
  t.teardown(async () => { await tcp.endAsync(true) })

  const inbox = new Inbox(sub)
  const tcpInbox = new Inbox(tcp)
  await sub.subscribeAsync({ 'ws/+': { qos: 2 } })
  await tcp.subscribeAsync({ 'ws/#': { qos: 1 } })

  for (const qos of [0, 1, 2] as const) {
    await pub.publishAsync(`ws/q${qos}`, `over ws ${qos}`, { qos })
    const m = await inbox.next(`ws/q${qos}`)
    t.equal(m.raw.toString(), `over ws ${qos}`)
    t.equal(m.qos, qos, `WebSocket to WebSocket at QoS ${qos}`)
    t.equal((await tcpInbox.next(`ws/q${qos}`)).raw.toString(), `over ws ${qos}`, 'WebSocket to TCP')
  }

  await tcp.publishAsync('ws/fromtcp', 'hello ws', { qos: 1 })
  t.equal((await inbox.next('ws/fromtcp')).raw.toString(), 'hello ws', 'TCP to WebSocket')

  // A payload bigger than one WebSocket frame's worth of small writes, still under the packet limit.
  const big = Buffer.alloc(200 * 1024, 7)
  await pub.publishAsync('ws/big', big, { qos: 1 })
  t.ok((await inbox.next('ws/big')).raw.equals(big), 'a 200 KiB payload arrives intact')

  await pub.publishAsync('ws/kept', 'retained', { qos: 1, retain: true })
  const late = await wsClient(wsUrl, 'ws-late')
  t.teardown(async () => { await late.endAsync(true) })
  const lateInbox = new Inbox(late)
  await late.subscribeAsync('ws/kept', { qos: 1 })
  const r = await lateInbox.next('ws/kept')
  t.equal(r.retain, true, 'retained message over WebSocket')
})

void t.test('over WebSocket too, a packet larger than maxPacketBytes closes that connection only', async (t) => {
  const b = await startBroker({ wsPort: await freePort(), maxPacketBytes: 2048 })
  t.teardown(async () => await b.close())
  const wsUrl = `ws://127.0.0.1:${b.server.ports.ws}`
  const watcher = await wsClient(wsUrl, 'ws-watch')
  t.teardown(async () => { await watcher.endAsync(true) })
  const inbox = new Inbox(watcher)
  await watcher.subscribeAsync('lim/#', { qos: 1 })
  const big = await wsClient(wsUrl, 'ws-big')
  t.teardown(async () => { await big.endAsync(true) })
  const closed = new Promise<void>((resolve) => big.once('close', () => resolve()))
  big.publish('lim/huge', Buffer.alloc(4096, 1), { qos: 0 })
  await within(closed, 3000, 'the oversized WebSocket client to be closed')
  t.pass('closed')

  // One MQTT packet may span several WebSocket messages, each under ws's maxPayload: the MQTT
  // packet limit still applies.
  const raw = new WebSocket(wsUrl, 'mqtt')
  t.teardown(() => raw.terminate())
  await within(new Promise<void>((resolve, reject) => { raw.once('open', () => resolve()); raw.once('error', reject) }), 5000, 'WebSocket open')
  const rawClosed = new Promise<void>((resolve) => raw.once('close', () => resolve()))
  const connack = new Promise<Buffer>((resolve) => raw.once('message', (d: Buffer) => resolve(d)))
  raw.send(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'ws-split', keepalive: 30 }))
  t.equal((await within(connack, 5000, 'CONNACK'))[0], 0x20, 'CONNACK')
  const huge = mqttPacket.generate({ cmd: 'publish', topic: 'lim/split', payload: Buffer.alloc(8192, 3), qos: 0, retain: false, dup: false })
  for (let i = 0; i < huge.length; i += 1024) raw.send(huge.subarray(i, i + 1024))
  await within(rawClosed, 3000, 'the split oversized packet to close the connection')
  t.pass('closed by the MQTT packet limit')

  await watcher.publishAsync('lim/ok', Buffer.alloc(1500, 2), { qos: 1 })
  t.equal((await inbox.next('lim/ok')).raw.length, 1500, 'the others are still served, under the limit')
  t.equal(inbox.on('lim/huge').length, 0)
  t.equal(inbox.on('lim/split').length, 0)
})

void t.test('a plain HTTP request to the WebSocket port is answered, not hung', async (t) => {
  const b = await startBroker({ wsPort: await freePort() })
  t.teardown(async () => await b.close())
  const res = await fetch(`http://127.0.0.1:${b.server.ports.ws}/`, { signal: AbortSignal.timeout(3000) })
  t.equal(res.status, 426)
  await res.text()
})
