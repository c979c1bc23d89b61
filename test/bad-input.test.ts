// Bad scheduler messages over MQTT: each refused with the right code on rg/{g}/error/{id}, no
// state changed, the client still connected and still served.
import t from 'tap'
import { connect, Inbox } from './helpers/broker.js'
import { fleet } from './helpers/rounds.js'

void t.test('each bad message is answered with its code and changes nothing', async (t) => {
  const f = await fleet(t, { need: 2, resetMs: 50 }, { autoCreateGroups: false, maxMessageBytes: 4096 })
  const a = await f.term('a')
  const b = await f.term('b')
  await b.hb()
  await a.ready()
  await b.ready()
  await a.release()
  await a.c.subscribeAsync('rg/+/error/a', { qos: 1 }) // errors come on the group of the refused topic
  const before = await f.state()

  const cases: Array<[string, string | Buffer, string]> = [
    ['rg/g/hb/a', '{not json', 'bad_request'],
    ['rg/g/ready/a', '[1,2,3]', 'bad_request'],
    ['rg/g/hb/a', JSON.stringify({ role: 'king' }), 'bad_request'],
    ['rg/g/hb/a', JSON.stringify({ load: 'heavy' }), 'bad_request'],
    ['rg/g/hb/a', JSON.stringify({ meta: { blob: 'x'.repeat(2000) } }), 'payload_too_large'],
    ['rg/g/hb/b', '{}', 'forbidden'], // a speaking as b
    ['rg/g/hb/a', 'x'.repeat(5000), 'payload_too_large'],
    ['rg/g/done/a', JSON.stringify({ round: 1, result: 'y'.repeat(9000) }), 'payload_too_large'],
    ['rg/g/done/a', JSON.stringify({ ok: true }), 'bad_request'], // no round
    ['rg/g/done/a', JSON.stringify({ round: 0 }), 'stale_round'],
    ['rg/nosuchgroup/hb/a', '{}', 'unknown_group'],
    ['rg/g/dance/a', '{}', 'bad_topic'],
    ['rg/bad group!/hb/a', '{}', 'bad_topic'],
    ['rg/g/hb/a/extra', '{}', 'bad_topic']
  ]
  for (const [topic, payload, code] of cases) {
    const from = a.inbox.messages.length
    await a.c.publishAsync(topic, payload, { qos: 1 })
    const e = await a.inbox.next((m) => m.topic.endsWith('/error/a') && m.json.topic === topic, 2000, from)
    t.equal(e.json.code, code, `${topic} ${String(payload).slice(0, 30)} → ${code}`)
    t.type(e.json.message, 'string')
  }
  // a duplicate done, after a real one
  await a.done(1, { result: 1 })
  const from = a.inbox.messages.length
  await a.done(1, { result: 2 })
  t.equal((await a.inbox.next('rg/g/error/a', 2000, from)).json.code, 'duplicate')

  const after = await f.state()
  t.same({ ...after, updatedAt: 0, done: 0 }, { ...before, updatedAt: 0, done: 0 }, 'nothing but the one real done changed')
  t.equal(after.done, 1)
  t.ok(a.c.connected, 'the client was never disconnected')
  await b.done(1)
  await f.waitPhase('RESET')
  t.equal((await f.broker.server.engine.listGroups()).length, 1, 'no group was created by a stranger')
})

void t.test('ctl answers on ctl/result: ok, or the refusal with its code', async (t) => {
  const f = await fleet(t, { need: 1, resetMs: 50 })
  const bad = (await f.ctl({ op: 'explode' })).json
  t.equal(bad.ok, false)
  t.equal(bad.error.code, 'bad_request')
  const badCfg = (await f.ctl({ op: 'configure', config: { need: -3 } })).json
  t.equal(badCfg.ok, false)
  t.match(badCfg.error.message, /need/)
  const unknownKey = (await f.ctl({ op: 'configure', config: { nede: 3 } })).json
  t.match(unknownKey.error.message, /nede/)
  t.equal((await f.ctl({ op: 'abort' })).json.ok, false, 'nothing to abort while WAITING')
  t.equal((await f.ctl({ op: 'release' })).json.error.code, 'bad_request', 'nobody is ready')
  const ok = (await f.ctl({ op: 'configure', config: { need: 3, payload: { v: 2 } } })).json
  t.same(ok, { op: 'configure', ok: true })
  const s = await f.state()
  t.equal(s.need, 3)
})

void t.test('forced release, abort and kick', async (t) => {
  const f = await fleet(t, { need: 5, resetMs: 50 })
  const w = await f.watch()
  const [a, b] = [await f.term('a'), await f.term('b')]
  await a.ready(); await b.ready()
  t.equal((await f.ctl({ op: 'release' })).json.ok, true, 'release now with whoever is ready')
  const rel = (await a.release()).json
  t.equal(rel.participants, 2)
  t.same(await f.participating(), ['a', 'b'], 'whoever was ready')
  t.equal((await f.ctl({ op: 'abort' })).json.ok, true)
  t.equal((await w.next('rg/g/rounds')).json.outcome, 'aborted')
  await f.waitPhase('WAITING')
  // kick: the terminal goes offline now and its MQTT connection is closed
  const closed = new Promise<void>((resolve) => b.c.once('close', () => resolve()))
  t.equal((await f.ctl({ op: 'kick', clientId: 'b' })).json.ok, true)
  await closed
  const s = await f.state()
  t.equal(s.online, 1)
  t.equal(s.ready, 0)
})

void t.test('an oversized packet outside the scheduler is cut off without harming others', async (t) => {
  const f = await fleet(t, { need: 1 }, { maxPacketBytes: 4096 })
  const big = await connect(f.broker.url, 'big')
  const fine = await connect(f.broker.url, 'fine')
  t.teardown(async () => { await big.endAsync(true); await fine.endAsync(true) })
  const closed = new Promise<void>((resolve) => big.once('close', () => resolve()))
  big.publish('other/topic', Buffer.alloc(10000))
  await closed
  const inbox = new Inbox(fine)
  await fine.subscribeAsync('other/ok')
  await fine.publishAsync('other/ok', 'still here')
  t.equal((await inbox.next('other/ok')).raw.toString(), 'still here')
})
