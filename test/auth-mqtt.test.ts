// Authentication and roles over MQTT (PROTOCOL section 7): every hostile CONNECT and message is
// refused with the right code and changes no state.
import t from 'tap'
import type { PublishPacket } from 'aedes'
import { Inbox, send, sleep, startBroker, waitFor } from './helpers/broker.js'
import { SECRET, connackCode, granted, login, passwdFile } from './helpers/auth.js'

const users = [
  { user: 't1', role: 'terminal' as const, password: 'pw-t1-secret', groups: 'g*' },
  { user: 't2', role: 'terminal' as const, password: 'pw-t2-secret', clients: 't2,t2b', groups: 'g1' },
  { user: 'v1', role: 'viewer' as const, password: 'pw-v1-secret' },
  { user: 'a1', role: 'admin' as const, password: 'pw-a1-secret' }
]
const pw = await passwdFile(users)
t.teardown(pw.remove)
const b = await startBroker({ passwdFile: pw.path, jwtSecret: SECRET, groups: { g1: { need: 1, resetMs: 0 }, h1: { need: 1 } } })
t.teardown(b.close)
const url = b.url

const state = async (g: string): Promise<any> => await b.server.engine.state(g)
const online = async (g: string): Promise<string[]> => (await b.server.engine.terminals(g)).map((x) => x.clientId).sort()

void t.test('no or wrong credentials: CONNACK 5 / 4', async (t) => {
  t.equal(await connackCode(url, 't1'), 5, 'no credentials: not authorized')
  t.equal(await connackCode(url, 't1', { username: 't1', password: 'wrong-password' }), 4, 'wrong password')
  t.equal(await connackCode(url, 'nobody', { username: 'nobody', password: 'pw-t1-secret' }), 4, 'unknown user')
  t.equal(await connackCode(url, 't1', { username: 't1', password: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0MSJ9.forged' }), 4, 'forged token')
  t.equal(await connackCode(url, 't1', { username: 't1', password: 'pw-t1-secret' }), 0, 'the right password')
})

void t.test('a terminal acting as another clientId, wildcard ids and names', async (t) => {
  t.equal(await connackCode(url, 't2', { username: 't1', password: 'pw-t1-secret' }), 5, 't1 may not connect as t2')
  t.equal(await connackCode(url, 't2b', { username: 't2', password: 'pw-t2-secret' }), 0, 't2 may connect as t2b (its --clients)')
  t.equal(await connackCode(url, 't1/x', { username: 't1', password: 'pw-t1-secret' }), 2, 'clientId with / refused (CVE-2017-7650)')
  t.equal(await connackCode(url, 't1+', { username: 'a1', password: 'pw-a1-secret' }), 2, 'clientId with + refused even for an admin')
  t.equal(await connackCode(url, 'x#', {}), 2, 'clientId with # refused')
  t.equal(await connackCode(url, 'a1', { username: 'a1/#', password: 'pw-a1-secret' }), 4, 'user name with / # refused')
  t.equal(await connackCode(url, 'v1-dash', { username: 'v1', password: 'pw-v1-secret' }), 0, 'a viewer may use <user>-anything')
  t.equal(await connackCode(url, 't1', { username: 'v1', password: 'pw-v1-secret' }), 5, 'a viewer may not take over a terminal\'s clientId')
})

void t.test('a terminal runs a full round; refused messages change nothing', async (t) => {
  const admin = await login(url, 'a1', 'a1', 'pw-a1-secret')
  t.teardown(() => { admin.end(true) })
  const ain = new Inbox(admin)
  await admin.subscribeAsync(['rg/g1/rounds', 'rg/g1/ctl/result/a1'], { qos: 1 })

  const c = await login(url, 't1', 't1', 'pw-t1-secret')
  t.teardown(() => { c.end(true) })
  const inbox = new Inbox(c)
  t.same(await granted(c, ['rg/g1/release', 'rg/g1/error/t1', 'rg/h1/state', 'rg/g1/error/t2', 'rg/g1/hb/+']), [1, 1, 128, 128, 128],
    'own release and errors granted; another group, another id and terminal topics refused')

  await send(c, 'rg/g1/hb/t2', {})
  t.equal((await inbox.next('rg/g1/error/t1')).json.code, 'forbidden', 'hb as t2: forbidden')
  await send(c, 'rg/g1/ctl', { op: 'pause' })
  t.equal((await inbox.next((m) => m.topic === 'rg/g1/error/t1' && m.json.topic === 'rg/g1/ctl')).json.code, 'forbidden', 'ctl from a terminal: forbidden')
  await send(c, 'rg/h1/ready/t1', {}) // refused: h1 is not among t1's groups (its error topic is not t1's to read either)
  t.equal((await state('g1')).paused, false, 'g1 not paused')
  t.same(await online('g1'), [], 'nobody online in g1')
  t.same(await online('h1'), [], 'nobody online in h1')
  t.ok(c.connected, 'refusals never disconnect')

  await send(c, 'rg/g1/ready/t1', {})
  const rel = await inbox.next('rg/g1/release')
  t.equal(rel.json.round, 1, 't1 released in round 1')
  await send(c, 'rg/g1/done/t1', { round: 1 })
  const sum = await ain.next('rg/g1/rounds')
  t.equal(sum.json.outcome, 'completed', 'the admin sees the round complete')

  await send(admin, 'rg/g1/ctl', { op: 'pause' })
  t.equal((await ain.next('rg/g1/ctl/result/a1')).json.ok, true, 'an admin may pause')
  t.equal((await state('g1')).paused, true)
  await send(admin, 'rg/g1/ctl', { op: 'resume' })
  await ain.next((m) => m.topic === 'rg/g1/ctl/result/a1' && m.json.op === 'resume')
})

void t.test('a viewer reads but cannot steer', async (t) => {
  const v = await login(url, 'v1-x', 'v1', 'pw-v1-secret')
  t.teardown(() => { v.end(true) })
  const inbox = new Inbox(v)
  t.same(await granted(v, ['rg/g1/state', 'rg/+/rounds', 'rg/g1/error/v1-x', 'rg/g1/release']), [1, 1, 1, 128], 'state, rounds and its errors granted; release refused')
  t.equal((await inbox.next('rg/g1/state')).json.group, 'g1', 'the retained state arrives')
  await send(v, 'rg/g1/ctl', { op: 'pause' })
  t.equal((await inbox.next('rg/g1/error/v1-x')).json.code, 'forbidden', 'ctl from a viewer: forbidden')
  await send(v, 'rg/g1/ready/v1-x', {})
  t.equal((await inbox.next((m) => m.topic === 'rg/g1/error/v1-x' && m.json.topic === 'rg/g1/ready/v1-x')).json.code, 'forbidden', 'ready from a viewer: forbidden')
  t.equal((await state('g1')).paused, false)
  t.notOk((await online('g1')).includes('v1-x'), 'the viewer did not become a terminal')
})

void t.test('forged wills: a live client\'s, and a dead broker\'s fired with no client', async (t) => {
  const victim = await login(url, 't2', 't2', 'pw-t2-secret')
  t.teardown(() => { victim.end(true) })
  await send(victim, 'rg/g1/hb/t2', {})
  const t2Online = async (): Promise<boolean> => (await online('g1')).includes('t2')
  t.ok(await t2Online())

  // t1 sets a will on t2's leave topic and dies
  const evil = await login(url, 't1', 't1', 'pw-t1-secret', { will: { topic: 'rg/g1/leave/t2', payload: Buffer.from('{}'), qos: 1, retain: false } })
  evil.stream.destroy()
  await sleep(300)
  t.ok(await t2Online(), 't1\'s will on t2\'s leave changed nothing')

  // what aedes does with the wills of a dead broker of the cluster: authorizePublish(null, will)
  const broker = b.server.broker
  const authorize = async (c: null, p: PublishPacket): Promise<void> => await new Promise((resolve, reject) => {
    broker.authorizePublish(c, p, (err) => { if (err != null) reject(err); else resolve() })
  })
  const publish = async (p: PublishPacket): Promise<void> => await new Promise((resolve, reject) => {
    broker.publish(p, (err) => { if (err != null) reject(err); else resolve() })
  })
  const will = (owner: string, mark: unknown): PublishPacket => ({
    cmd: 'publish', topic: 'rg/g1/leave/t2', payload: Buffer.from('{}'), qos: 1, retain: false, dup: false,
    ...({ clientId: owner, brokerId: 'dead-broker', roundgateOwner: mark } as object)
  })
  const t1Mark = { user: 't1', role: 'terminal', clients: 't1', groups: 'g*', via: 'passwd', exp: null }
  await authorize(null, will('t1', t1Mark)); await publish(will('t1', t1Mark))
  await authorize(null, will('t2', undefined)); await publish(will('t2', undefined))
  await authorize(null, will('t2', t1Mark)); await publish(will('t2', t1Mark))
  await sleep(100)
  t.ok(await t2Online(), 'a dead broker\'s will: another owner, no owner mark, or a mark of someone else: all refused')

  const t2Mark = { user: 't2', role: 'terminal', clients: 't2,t2b', groups: 'g1', via: 'passwd', exp: null }
  await authorize(null, will('t2', t2Mark)); await publish(will('t2', t2Mark))
  await waitFor(async () => !await t2Online(), 2000, 't2 offline')
  t.pass('t2\'s own will from a dead broker takes it offline')
})

void t.test('ACL outside the prefix is default deny for non-admins', async (t) => {
  const admin = await login(url, 'a1', 'a1', 'pw-a1-secret')
  t.teardown(() => { admin.end(true) })
  const ain = new Inbox(admin)
  await admin.subscribeAsync('free/#', { qos: 0 })
  const c = await login(url, 't1', 't1', 'pw-t1-secret')
  t.teardown(() => { c.end(true) })
  t.same(await granted(c, ['free/#']), [128], 'no rule: subscription refused')
  await c.publishAsync('free/x', 'hello', { qos: 1 })
  await admin.publishAsync('free/y', 'from admin', { qos: 1 })
  await ain.next('free/y')
  t.equal(ain.on('free/x').length, 0, 'the terminal\'s publish was dropped')
  t.ok(c.connected, 'and it stays connected')
})

void t.test('tokens from the JWT secret; expiry closes the session', async (t) => {
  const { signToken, secretKey } = await import('../plugins/auth/index.js')
  const key = secretKey(SECRET)
  const tok = await signToken(key, { sub: 'jt1', role: 'terminal', groups: 'g1', ttlS: 60 })
  t.equal(await connackCode(url, 'jt1', { username: 'anything', password: tok }), 0, 'a token as the password, any user name')
  t.equal(await connackCode(url, 'jt2', { username: 'jt1', password: tok }), 5, 'another clientId than sub: refused')
  const other = await signToken(secretKey('another-secret-0123456789-0123456789'), { sub: 'jt1', role: 'terminal', ttlS: 60 })
  t.equal(await connackCode(url, 'jt1', { username: 'x', password: other }), 4, 'signed with another secret: refused')

  const short = await signToken(key, { sub: 'jt3', role: 'terminal', groups: 'g1', ttlS: 2 })
  const exp = JSON.parse(Buffer.from(short.split('.')[1], 'base64url').toString()).exp * 1000
  const c = await login(url, 'jt3', 'jt3', short)
  const closedAt = await new Promise<number>((resolve) => c.once('close', () => resolve(Date.now())))
  c.end(true)
  t.ok(closedAt >= exp - 50 && closedAt <= exp + 1000, `disconnected ${closedAt - exp} ms after exp (within a second)`)
  t.equal(await connackCode(url, 'jt3', { username: 'x', password: short }), 4, 'the expired token is refused')
})

void t.test('SIGHUP reload: new users in, removed users out, a malformed file refused', async (t) => {
  const c = await login(url, 't2', 't2', 'pw-t2-secret')
  const closed = new Promise<void>((resolve) => c.once('close', () => resolve()))
  const keep = await login(url, 't1', 't1', 'pw-t1-secret')
  t.teardown(() => { keep.end(true); c.end(true) })
  await pw.write([...users.filter((u) => u.user !== 't2'), { user: 't3', role: 'terminal', password: 'pw-t3-secret' }])
  await b.server.reload()
  await closed
  t.pass('t2, removed from the file, was disconnected')
  t.ok(keep.connected, 't1 stays connected')
  t.equal(await connackCode(url, 't3', { username: 't3', password: 'pw-t3-secret' }), 0, 't3 may connect now')

  const { writeFile } = await import('node:fs/promises')
  await writeFile(pw.path, 't4 terminal - * not-a-hash\n')
  await b.server.reload()
  t.equal(await connackCode(url, 't3', { username: 't3', password: 'pw-t3-secret' }), 0, 'a malformed file is refused: the users in force stay')
  await writeFile(pw.path, '')
  await b.server.reload()
  t.equal(await connackCode(url, 't3', { username: 't3', password: 'pw-t3-secret' }), 4, 'an empty file means nobody')
  await pw.write(users)
  await b.server.reload()
})
