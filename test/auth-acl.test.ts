// ACL rules for topics outside the prefix (PROTOCOL section 7): %c / %u as whole levels, first
// match wins, default deny, checked on publish, on subscribe and per delivered message, so a
// retained message never reaches a reader the ACL refuses (aedes issue 200, EMQX 10192).
import t from 'tap'
import { Inbox, sleep, startBroker } from './helpers/broker.js'
import { granted, login, passwdFile } from './helpers/auth.js'
import { Acl, GlobList, type Identity } from '../plugins/auth/index.js'
import { covers, intersects } from '../plugins/auth/acl.js'

void t.test('filter arithmetic', async (t) => {
  const L = (s: string): string[] => s.split('/')
  t.ok(intersects(L('a/#'), L('a')), 'a/# and a share the topic a')
  t.ok(intersects(L('a/+/c'), L('a/b/#')))
  t.notOk(intersects(L('a/b'), L('a/c')))
  t.notOk(intersects(L('#'), L('$SYS/#')), 'a leading wildcard never reaches $ topics')
  t.ok(covers(L('a/#'), L('a/+/c')))
  t.notOk(covers(L('a/+'), L('a/#')))
  t.notOk(covers(L('+/x'), L('$SYS/x')))
  const id = (user: string, role: Identity['role']): Identity => ({ user, role, clients: new GlobList(user), groups: new GlobList('*'), via: 'passwd', exp: null })
  const acl = new Acl([
    { effect: 'deny', access: 'read', topic: 'pub/secret' },
    { effect: 'allow', access: 'read', topic: 'pub/#' },
    { effect: 'allow', access: 'readwrite', topic: 'dev/%c/#', roles: ['terminal'] },
    { effect: 'allow', access: 'write', topic: 'users/%u', users: ['u1'] }
  ])
  const u1 = id('u1', 'terminal')
  t.ok(acl.mayPublish(u1, 'c1', 'dev/c1/x'), '%c is the clientId')
  t.notOk(acl.mayPublish(u1, 'c1', 'dev/c2/x'))
  t.ok(acl.mayPublish(u1, 'c1', 'users/u1'), '%u is the user name')
  t.notOk(acl.mayPublish(id('u2', 'terminal'), 'c1', 'users/u2'), 'a rule naming users applies to them only')
  t.notOk(acl.mayRead(u1, 'c1', 'pub/secret'), 'first match wins: the deny')
  t.ok(acl.mayRead(u1, 'c1', 'pub/open'))
  t.ok(acl.maySubscribe(u1, 'c1', 'pub/#'), 'a filter wider than a deny is granted (messages are checked one by one)')
  t.notOk(acl.maySubscribe(u1, 'c1', 'pub/secret'), 'a filter the deny covers is refused')
  t.notOk(acl.mayPublish(id('v', 'viewer'), 'v', 'pub/open'), 'no write rule: denied')
  t.ok(acl.mayPublish(id('a', 'admin'), 'a', 'anything/at/all'), 'admins are not bound by the ACL')
})

void t.test('retained and live messages reach only readers the ACL lets read them', async (t) => {
  const pw = await passwdFile([
    { user: 't1', role: 'terminal', password: 'pw-t1-secret' },
    { user: 'a1', role: 'admin', password: 'pw-a1-secret' }
  ])
  t.teardown(pw.remove)
  const b = await startBroker({
    passwdFile: pw.path,
    acl: [
      { effect: 'deny', access: 'read', topic: 'pub/secret' },
      { effect: 'allow', access: 'read', topic: 'pub/#' },
      { effect: 'allow', access: 'readwrite', topic: 'dev/%c/#', roles: ['terminal'] }
    ]
  })
  t.teardown(b.close)
  const admin = await login(b.url, 'a1', 'a1', 'pw-a1-secret')
  t.teardown(() => { admin.end(true) })
  for (const [topic, body] of [['pub/secret', 's'], ['pub/open', 'o'], ['dev/t1/cfg', 'mine'], ['dev/t2/cfg', 'theirs']]) {
    await admin.publishAsync(topic, body, { qos: 1, retain: true })
  }
  const ain = new Inbox(admin)
  await admin.subscribeAsync('dev/#', { qos: 1 })

  const c = await login(b.url, 't1', 't1', 'pw-t1-secret')
  t.teardown(() => { c.end(true) })
  const inbox = new Inbox(c)
  t.same(await granted(c, ['pub/#', 'dev/t1/#', 'dev/t2/#', '#']), [1, 1, 128, 1], 'pub/# and its own dev/ granted, another\'s refused; # granted (checked per message)')
  await inbox.next('pub/open')
  await inbox.next('dev/t1/cfg')
  await admin.publishAsync('pub/secret', 'live secret', { qos: 1 })
  await admin.publishAsync('pub/open', 'live open', { qos: 1 })
  await inbox.next((m) => m.raw.toString() === 'live open')
  await sleep(200)
  t.equal(inbox.on('pub/secret').length, 0, 'neither the retained nor the live secret reached t1')
  t.equal(inbox.on('dev/t2/cfg').length, 0, 'nor another terminal\'s retained message (through #)')

  await c.publishAsync('dev/t1/out', 'ok', { qos: 1 })
  await c.publishAsync('dev/t2/out', 'spoof', { qos: 1 })
  await ain.next('dev/t1/out')
  await sleep(200)
  t.equal(ain.on('dev/t2/out').length, 0, 't1 may not publish under t2\'s topics')
  t.ok(c.connected)
})
