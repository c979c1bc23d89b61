// Limits on what a stranger can send (docs/security.md): each refused with the right code, and
// what was refused changes nothing.
import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { Inbox, connect, freePort, send, sleep, startBroker, terminal, waitFor } from './helpers/broker.js'
import { connackCode } from './helpers/auth.js'
import { call } from './helpers/http.js'
import { within } from './helpers/wait.js'

function rawSocket (port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1', () => resolve(s))
    s.once('error', reject)
  })
}

const closedWithin = async (s: Socket, ms: number): Promise<boolean> => await new Promise((resolve) => {
  if (s.destroyed) { resolve(true); return }
  const timer = setTimeout(() => resolve(false), ms)
  s.once('close', () => { clearTimeout(timer); resolve(true) })
})

void t.test('MQTT connections per address and per process', async (t) => {
  const b = await startBroker({ maxConnectionsPerIp: 2, exemptLoopback: false })
  t.teardown(b.close)
  const a = await connect(b.url, 'c1')
  const c = await connect(b.url, 'c2')
  t.teardown(() => { a.end(true); c.end(true) })
  t.equal(await connackCode(b.url, 'c3'), -1, 'a third connection from the same address is closed')
  t.equal(b.server.connections.refused, 1)
  a.end(true)
  await waitFor(() => b.server.connections.size === 1, 2000, 'released')
  t.equal(await connackCode(b.url, 'c3'), 0, 'one closed: room again')

  const p = await startBroker({ maxConnections: 1 })
  t.teardown(p.close)
  const only = await connect(p.url, 'only')
  t.teardown(() => { only.end(true) })
  t.equal(await connackCode(p.url, 'second'), -1, 'beyond the process limit (loopback counts there too)')
})

void t.test('a CONNECT that never comes: the connection is closed after connectTimeoutMs', async (t) => {
  const b = await startBroker({ connectTimeoutMs: 1000 })
  t.teardown(b.close)
  const s = await rawSocket(b.server.ports.mqtt)
  t.teardown(() => s.destroy())
  s.write(Buffer.from([0x10])) // the first byte of a CONNECT, and nothing more
  t.ok(await closedWithin(s, 3000), 'closed')
})

void t.test('topic levels and inbound QoS 2 in flight', async (t) => {
  const b = await startBroker({ maxTopicLevels: 8, maxInflightInbound: 5 })
  t.teardown(b.close)
  const deep = await connect(b.url, 'deep')
  const gone = new Promise<void>((resolve) => deep.once('close', () => resolve()))
  deep.publish('a/b/c/d/e/f/g/h/i', 'x', { qos: 0 })
  await within(gone, 3000, 'the connection to close')
  t.pass('a topic of 9 levels closes the connection (GHSA-xxqp-5qx8-gj5q)')

  const s = await rawSocket(b.server.ports.mqtt)
  t.teardown(() => s.destroy())
  const connack = new Promise<void>((resolve) => {
    const parser = mqttPacket.parser()
    parser.on('packet', (p) => { if (p.cmd === 'connack') resolve() })
    s.on('data', (d) => parser.parse(d))
  })
  mqttPacket.writeToStream({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'qos2', keepalive: 0 }, s)
  await connack
  for (let id = 1; id <= 6; id++) {
    mqttPacket.writeToStream({ cmd: 'publish', topic: 'q2/x', payload: Buffer.from('x'), qos: 2, messageId: id, retain: false, dup: false }, s)
  }
  t.ok(await closedWithin(s, 3000), 'a sixth QoS 2 PUBLISH awaiting PUBREL closes the connection (GHSA-5jvp-3p2v-5qgf)')
})

void t.test('the offline queue of a persistent session is bounded', async (t) => {
  const b = await startBroker({ maxOfflineMessages: 5 })
  t.teardown(b.close)
  const sub = await connect(b.url, 'persistent', { clean: false })
  await sub.subscribeAsync('q/#', { qos: 1 })
  await sub.endAsync()
  const pub = await connect(b.url, 'pub')
  t.teardown(() => { pub.end(true) })
  for (let i = 0; i < 20; i++) await pub.publishAsync('q/x', String(i), { qos: 1 })
  const back = await connect(b.url, 'persistent', { clean: false })
  t.teardown(() => { back.end(true) })
  const inbox = new Inbox(back)
  await sleep(500)
  t.same(inbox.on('q/x').map((m) => m.raw.toString()), ['0', '1', '2', '3', '4'], 'the first five were kept, the newer dropped')
  t.equal(b.server.offlineQueue.dropped, 15)
  await pub.publishAsync('q/x', 'live', { qos: 1 })
  await inbox.next((m) => m.raw.toString() === 'live')
  t.pass('once connected again, messages flow')
})

void t.test('groups, terminals in all groups and meta bytes in total', async (t) => {
  const b = await startBroker({ maxGroups: 2, maxTerminals: 3, maxMetaBytes: 2048 })
  t.teardown(b.close)
  const e = b.server.engine
  await e.heartbeat('g1', 'a', {})
  await e.heartbeat('g2', 'b', {})
  await t.rejects(e.heartbeat('g3', 'c', {}), { code: 'unavailable' }, 'a third group is refused')
  t.same((await e.listGroups()).map((s) => s.group), ['g1', 'g2'])
  await e.heartbeat('g1', 'c', {})
  await t.rejects(e.heartbeat('g2', 'd', {}), { code: 'unavailable' }, 'a fourth terminal in all groups is refused')
  await t.resolves(e.heartbeat('g2', 'b', { load: 1 }), 'a known terminal still heartbeats')
  const meta = { blob: 'x'.repeat(900) }
  await e.heartbeat('g1', 'a', { meta })
  await e.heartbeat('g2', 'b', { meta })
  await t.rejects(e.heartbeat('g1', 'c', { meta }), { code: 'unavailable' }, 'meta beyond the total is refused')
  t.equal((await e.terminals('g1')).find((x) => x.clientId === 'c')?.meta, null, 'and not kept')
  await e.leave('g1', 'a')
  await t.resolves(e.heartbeat('g1', 'c', { meta }), 'a terminal that left frees its meta bytes')
})

void t.test('pending long-polls per clientId and per address, request rates', async (t) => {
  const b = await startBroker({ httpPort: await freePort(), maxPollsPerClient: 2, maxPollsPerIp: 3, exemptLoopback: false, rateIpPerS: 1000, rateClientPerS: 1000 })
  t.teardown(b.close)
  const base = `http://127.0.0.1:${b.server.ports.http}`
  const polls: Array<Promise<unknown>> = []
  const ac = new AbortController()
  t.teardown(() => ac.abort())
  const poll = (g: string, id: string): Promise<Response> => fetch(`${base}/v1/groups/${g}/release?clientId=${id}&wait=5`, { signal: ac.signal })
  polls.push(poll('p1', 'x').catch(() => null), poll('p2', 'x').catch(() => null))
  await waitFor(() => b.server.gateway?.waiters() === 2, 2000, 'two polls pending')
  const third = await poll('p3', 'x')
  t.equal(third.status, 429, 'a third pending poll of one clientId across groups: 429')
  polls.push(poll('p1', 'y').catch(() => null))
  await waitFor(() => b.server.gateway?.waiters() === 3, 2000, 'three polls pending')
  t.equal((await poll('p1', 'z')).status, 429, 'a fourth from one address: 429')
  ac.abort()
  await Promise.all(polls)

  const r = await startBroker({ httpPort: await freePort(), rateClientPerS: 5 })
  t.teardown(r.close)
  const rbase = `http://127.0.0.1:${r.server.ports.http}`
  const codes: number[] = []
  for (let i = 0; i < 12; i++) codes.push((await call(rbase, 'POST', '/v1/groups/r1/heartbeat', { clientId: 'fast' })).status)
  t.ok(codes.includes(429), `HTTP beyond 5 per second per clientId: 429 (${codes.join(' ')})`)
  t.ok(codes.filter((c) => c === 200).length >= 5, 'at least the five of a second were served')
  const { c, inbox } = await terminal(r.url, 'r2', 'mfast')
  t.teardown(() => { c.end(true) })
  for (let i = 0; i < 12; i++) await send(c, 'rg/r2/hb/mfast', {})
  const limited = await inbox.next((m) => m.json?.code === 'rate_limited')
  t.equal(limited.topic, 'rg/r2/error/mfast', 'MQTT beyond the rate: rate_limited on the error topic')
  t.ok(c.connected, 'and the client stays connected')
  // an admin's ctl beyond the rate is answered where the admin waits for every ctl answer
  const admin = await terminal(r.url, 'r3', 'mctl')
  t.teardown(() => { admin.c.end(true) })
  await admin.c.subscribeAsync('rg/r3/ctl/result/mctl', { qos: 1 })
  await r.server.engine.heartbeat('r3', 'someone', {}) // the group exists
  for (let i = 0; i < 12; i++) await send(admin.c, 'rg/r3/ctl', { op: i % 2 === 0 ? 'pause' : 'resume' })
  const refused = await admin.inbox.next((m) => m.topic === 'rg/r3/ctl/result/mctl' && m.json?.error?.code === 'rate_limited')
  t.equal(refused.json.ok, false, 'a ctl beyond the rate: ok false, rate_limited, on ctl/result')
})

void t.test('idle auto-created groups are removed; declared and configured ones stay', async (t) => {
  const b = await startBroker({ httpPort: await freePort(), idleGroupMs: 1000, groups: { kept: {} } })
  t.teardown(b.close)
  const e = b.server.engine
  await e.heartbeat('stranger', 's1', {})
  await e.leave('stranger', 's1')
  await e.heartbeat('configured', 's2', {})
  await e.patchGroup('configured', { need: 3 })
  await e.leave('configured', 's2')
  await waitFor(async () => !(await e.listGroups()).some((s) => s.group === 'stranger'), 6000, 'the idle group to go')
  const left = (await e.listGroups()).map((s) => s.group).sort()
  t.same(left, ['configured', 'kept'], 'the stranger\'s group went; the declared and the configured stayed')
})

void t.test('with authentication on, unknown groups are not created', async (t) => {
  const b = await startBroker({ jwtSecret: 'x'.repeat(40) })
  t.teardown(b.close)
  await t.rejects(b.server.engine.heartbeat('nope', 'a', {}), { code: 'unknown_group' })
  const explicit = await startBroker({ jwtSecret: 'x'.repeat(40), autoCreateGroups: true })
  t.teardown(explicit.close)
  await explicit.server.engine.heartbeat('yes', 'a', {})
  t.ok((await explicit.server.engine.listGroups()).some((s) => s.group === 'yes'), 'unless the operator turns it on')
})
