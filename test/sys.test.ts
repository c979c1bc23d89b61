// $SYS/roundgate topics (plugins/sys): published retained at start and every sysIntervalS seconds,
// counting clients, messages and bytes of the process and each group's counts; off with 0; never
// writable by clients; not matched by '#'; and, with a canRead hook (the auth plugin's), readable
// only by those it allows, retained values included.
import { Aedes } from 'aedes'
import { readFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { pino } from 'pino'
import t from 'tap'
import { connect, freePort, Inbox, send, sleep, startBroker, waitFor } from './helpers/broker.js'
import { call } from './helpers/http.js'
import { Engine, MemoryStore } from '../plugins/scheduler/index.js'
import { installSys, isSysFilter } from '../plugins/sys/index.js'

const PKG = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

/** The last value received on each topic. */
function latest (inbox: Inbox): Map<string, string> {
  const m = new Map<string, string>()
  for (const msg of inbox.messages) m.set(msg.topic, msg.raw.toString())
  return m
}

void t.test('the figures of the process and the counts of each group, every interval', async (t) => {
  const b = await startBroker({ sysIntervalS: 1, httpPort: await freePort() })
  t.teardown(b.close)
  const viewer = await connect(b.url, 'sys-viewer')
  t.teardown(async () => { await viewer.endAsync(true) })
  const inbox = new Inbox(viewer)
  await viewer.subscribeAsync('$SYS/roundgate/#', { qos: 0 })
  const version = await inbox.next('$SYS/roundgate/version')
  t.equal(version.raw.toString(), `roundgate ${PKG.version}`)
  t.equal(version.retain, true, 'retained: a new subscriber has the values at once')
  for (const k of ['uptime', 'clients/connected', 'messages/received', 'messages/sent', 'bytes/received', 'bytes/sent', 'groups']) {
    t.match((await inbox.next(`$SYS/roundgate/${k}`)).raw.toString(), /^\d+$/, `${k} is a number`)
  }

  // a terminal's round: 3 PUBLISH in (ready, done, and one plain message), the release and the
  // plain message out
  const term = await connect(b.url, 'sys-term')
  t.teardown(async () => { await term.endAsync(true) })
  const tin = new Inbox(term)
  await term.subscribeAsync(['rg/sg/release', 'plain/topic'], { qos: 1 })
  const before = latest(inbox)
  await send(term, 'rg/sg/ready/sys-term', {})
  const round = (await tin.next('rg/sg/release')).json.round
  await send(term, 'plain/topic', 'hello')
  await tin.next('plain/topic')
  await send(term, 'rg/sg/done/sys-term', { round })

  const mark = inbox.messages.length
  await inbox.next((m) => m.topic === '$SYS/roundgate/uptime', 3000, mark) // the next publication
  await inbox.next((m) => m.topic === '$SYS/roundgate/bytes/sent', 3000, mark)
  const now = latest(inbox)
  const n = (m: Map<string, string>, k: string): number => Number(m.get(`$SYS/roundgate/${k}`))
  t.equal(n(now, 'clients/connected'), 2, 'two clients connected')
  t.ok(n(now, 'messages/received') - n(before, 'messages/received') >= 3, `messages received counted (${n(before, 'messages/received')} → ${n(now, 'messages/received')})`)
  t.ok(n(now, 'messages/sent') - n(before, 'messages/sent') >= 2, `messages sent counted, the release included (${n(before, 'messages/sent')} → ${n(now, 'messages/sent')})`)
  t.ok(n(now, 'bytes/received') > n(before, 'bytes/received'), 'bytes received grow')
  t.ok(n(now, 'bytes/sent') > n(before, 'bytes/sent'), 'bytes sent grow')
  t.ok(n(now, 'uptime') >= 1, 'uptime in seconds')
  t.equal(n(now, 'groups'), 1, 'one group')
  const g = await waitFor(() => {
    const v = latest(inbox).get('$SYS/roundgate/groups/sg')
    return v !== undefined && JSON.parse(v).round === round ? JSON.parse(v) : null
  }, 3000, 'the group counts')
  t.match(g, { round, online: 1, paused: false, participants: Number, done: Number, dropped: 0 })

  // a deleted group's counts are cleared
  const base = `http://127.0.0.1:${b.server.ports.http}`
  await waitFor(async () => (await call(base, 'GET', '/v1/groups/sg')).json.state.phase === 'WAITING', 3000, 'the round to end')
  t.equal((await call(base, 'DELETE', '/v1/groups/sg')).status, 200)
  const cleared = await inbox.next((m) => m.topic === '$SYS/roundgate/groups/sg' && m.raw.length === 0, 3000)
  t.ok(cleared, 'an empty message clears groups/sg')
})

void t.test('clients cannot write under $SYS/, and # does not match it', async (t) => {
  const b = await startBroker({ sysIntervalS: 1 })
  t.teardown(b.close)
  const all = await connect(b.url, 'sys-hash')
  t.teardown(async () => { await all.endAsync(true) })
  const hash = new Inbox(all)
  await all.subscribeAsync('#', { qos: 0 })
  const viewer = await connect(b.url, 'sys-v2')
  t.teardown(async () => { await viewer.endAsync(true) })
  const inbox = new Inbox(viewer)
  await viewer.subscribeAsync('$SYS/roundgate/clients/connected', { qos: 0 })
  await inbox.next('$SYS/roundgate/clients/connected')

  const spoof = await connect(b.url, 'sys-spoof')
  t.teardown(async () => { await spoof.endAsync(true) })
  const closed = new Promise<void>((resolve) => spoof.once('close', () => resolve()))
  spoof.publish('$SYS/roundgate/clients/connected', '999', { qos: 1, retain: true })
  await closed
  t.pass('aedes refuses a client PUBLISH under $SYS/ and closes that connection')
  await sleep(1200) // one more publication
  t.notOk(inbox.on('$SYS/roundgate/clients/connected').some((m) => m.raw.toString() === '999'), 'the spoofed value never arrives')
  const late = await connect(b.url, 'sys-late')
  t.teardown(async () => { await late.endAsync(true) })
  const lateIn = new Inbox(late)
  await late.subscribeAsync('$SYS/roundgate/clients/connected', { qos: 0 })
  t.not((await lateIn.next('$SYS/roundgate/clients/connected')).raw.toString(), '999', 'nor is it retained')
  t.equal(hash.messages.filter((m) => m.topic.startsWith('$SYS')).length, 0, "'#' matches no $SYS topic [MQTT-4.7.2-1]")
})

void t.test('sysIntervalS 0 publishes nothing', async (t) => {
  const b = await startBroker({ sysIntervalS: 0 })
  t.teardown(b.close)
  const c = await connect(b.url, 'sys-off')
  t.teardown(async () => { await c.endAsync(true) })
  const inbox = new Inbox(c)
  await c.subscribeAsync('$SYS/roundgate/#', { qos: 0 })
  await sleep(1500)
  t.same(inbox.messages.map((m) => m.topic), [], 'no $SYS/roundgate message, retained or live')
  t.ok(b.server.sys.stats().messagesReceived >= 0, 'the figures are still counted')
})

void t.test('with canRead (the auth plugin\'s hook): only allowed clients subscribe; cluster figures under nodes/{id}', async (t) => {
  t.ok(isSysFilter('$SYS/#') && isSysFilter('$SYS/+/uptime') && isSysFilter('$SYS/roundgate/groups/g'))
  t.notOk(isSysFilter('#') || isSysFilter('$SYS/other/x') || isSysFilter('rg/$SYS/x') || isSysFilter('$SYS'))

  const logger = pino({ level: 'silent' })
  const engine = new Engine({ store: new MemoryStore(), logger, autoCreateGroups: true })
  await engine.start()
  const broker = await Aedes.createBroker()
  const sys = installSys(broker, { engine, intervalS: 1, version: '9.9.9', logger, node: 'n1', canRead: (c) => c.id.startsWith('viewer-') })
  const server = createServer((s) => { sys.track(s); broker.handle(s) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    sys.close()
    server.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
    await engine.stop()
  })
  await sys.publishNow()
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`

  const viewer = await connect(url, 'viewer-1')
  t.teardown(async () => { await viewer.endAsync(true) })
  const vin = new Inbox(viewer)
  t.same((await viewer.subscribeAsync('$SYS/roundgate/#', { qos: 0 })).map((g) => g.qos), [0], 'a viewer may subscribe')
  t.equal((await vin.next('$SYS/roundgate/nodes/n1/version')).raw.toString(), 'roundgate 9.9.9', 'per-process figures under nodes/{id}')
  t.equal((await vin.next('$SYS/roundgate/groups')).raw.toString(), '0', 'group counts at the root')

  const term = await connect(url, 'term-1')
  t.teardown(async () => { await term.endAsync(true) })
  const tin = new Inbox(term)
  // mqtt.js turns any 0x80 in a SUBACK into an error carrying the packet
  const err: any = await term.subscribeAsync(['$SYS/#', '$SYS/roundgate/#', '$SYS/+/nodes/n1/uptime', 'other/topic', '#'], { qos: 0 }).then(() => null, (e) => e)
  t.same(err?.packet?.granted, [128, 128, 128, 0, 0], 'the $SYS/roundgate filters refused (SUBACK 0x80), the others granted')
  await sleep(1200)
  t.same(tin.messages.filter((m) => m.topic.startsWith('$SYS')).map((m) => m.topic), [], 'no $SYS value reached it, retained or live, not even through #')
  t.ok(term.connected, 'and it stays connected')
})

void t.test('with authentication on: viewers and admins read $SYS/roundgate, terminals may not (whatever the ACL)', async (t) => {
  const { SignJWT } = await import('jose')
  const secret = 'a-secret-of-at-least-thirty-two-characters!'
  const token = async (sub: string, role: string): Promise<string> =>
    await new SignJWT({ role }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('1h').sign(new TextEncoder().encode(secret))
  const b = await startBroker({ sysIntervalS: 1, jwtSecret: secret })
  t.teardown(b.close)
  const viewer = await connect(b.url, 'ops-1', { username: 'ops', password: await token('ops', 'viewer') })
  const term = await connect(b.url, 'dev1', { username: 'dev1', password: await token('dev1', 'terminal') })
  t.teardown(async () => { await viewer.endAsync(true); await term.endAsync(true) })
  const seen = new Inbox(viewer)
  const denied = new Inbox(term)
  const v = await viewer.subscribeAsync('$SYS/roundgate/#', { qos: 0 })
  t.equal(v[0].qos, 0, 'the viewer\'s subscription is granted')
  await t.rejects(term.subscribeAsync('$SYS/roundgate/#', { qos: 0 }), 'the terminal\'s is refused (SUBACK 0x80)')
  await waitFor(() => seen.messages.some((m) => m.topic === '$SYS/roundgate/uptime'), 3000, 'the viewer reads the figures')
  t.equal(denied.messages.length, 0, 'nothing reaches the terminal')
})
