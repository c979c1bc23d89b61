// The release reaches participants only: live, on a late subscription (as retained), through
// wildcards, on a resumed persistent session; never anyone else; gone after the round.
import t from 'tap'
import { Inbox, connect, send, sleep, waitFor } from './helpers/broker.js'
import { fleet, silent } from './helpers/rounds.js'

void t.test('a participant subscribing late gets its release at once, retained; others never', async (t) => {
  const f = await fleet(t, { need: 2, minOnlineRatio: 0, resetMs: 50 })
  const a = await connect(f.broker.url, 'a')
  const b = await connect(f.broker.url, 'b')
  const spy = await connect(f.broker.url, 'spy')
  t.teardown(async () => { for (const c of [a, b, spy]) await c.endAsync(true) })
  const [ia, ib, is] = [new Inbox(a), new Inbox(b), new Inbox(spy)]
  await spy.subscribeAsync(['rg/g/release', 'rg/#', 'rg/+/release', '#'], { qos: 1 })
  await send(b, 'rg/g/hb/b', {}) // both online before either is ready, so the round takes both
  await send(a, 'rg/g/ready/a', {})
  await send(b, 'rg/g/ready/b', {})
  await f.waitPhase('EXECUTING')

  await a.subscribeAsync('rg/g/release', { qos: 1 })
  const late = await ia.next('rg/g/release')
  t.equal(late.retain, true, 'delivered as a retained message')
  t.equal(late.qos, 1)
  t.equal(late.json.round, 1)
  t.equal(late.json.shard.index, 0)

  await b.subscribeAsync('rg/+/release', { qos: 0 })
  const viaWildcard = await ib.next('rg/g/release')
  t.equal(viaWildcard.json.shard.index, 1, 'wildcard subscriptions receive it too')
  t.equal(viaWildcard.qos, 0, 'at the subscription QoS')

  const spy2 = await connect(f.broker.url, 'spy2')
  t.teardown(async () => await spy2.endAsync(true))
  const is2 = new Inbox(spy2)
  await spy2.subscribeAsync('rg/g/release', { qos: 1 })
  t.ok(await silent(is2, 'rg/g/release', 200), 'a non-participant subscribing late gets nothing')
  t.equal(is.on('rg/g/release').length, 0, 'a non-participant on # and rg/# never sees it')

  // after the round nobody gets it, participants included
  await send(a, 'rg/g/done/a', { round: 1 })
  await send(b, 'rg/g/done/b', { round: 1 })
  await f.waitPhase('RESET')
  const again = await connect(f.broker.url, 'a', { clean: true })
  t.teardown(async () => await again.endAsync(true))
  const ia2 = new Inbox(again)
  await again.subscribeAsync('rg/g/release', { qos: 1 })
  t.ok(await silent(ia2, 'rg/g/release', 200), 'the retained release is cleared after the round')
})

void t.test('a participant subscribed through rg/# receives the live release', async (t) => {
  const f = await fleet(t, { need: 1, resetMs: 50 })
  const a = await connect(f.broker.url, 'a')
  t.teardown(async () => await a.endAsync(true))
  const ia = new Inbox(a)
  await a.subscribeAsync('rg/#', { qos: 1 })
  await send(a, 'rg/g/ready/a', {})
  const rel = await ia.next('rg/g/release')
  t.equal(rel.retain, false, 'a live release is not flagged retained')
  t.equal(rel.json.role, 'small')
})

void t.test('a participant back on its persistent session gets the release of its round', async (t) => {
  const f = await fleet(t, { need: 1, resetMs: 50 })
  const p1 = await connect(f.broker.url, 'p', { clean: false })
  await p1.subscribeAsync('rg/g/release', { qos: 1 })
  await p1.endAsync()
  const p2 = await connect(f.broker.url, 'p', { clean: false })
  await send(p2, 'rg/g/ready/p', {})
  await waitFor(async () => (await f.state()).phase === 'EXECUTING', 2000, 'release')
  await p2.endAsync(true)
  const p3 = await connect(f.broker.url, 'p', { clean: false })
  t.teardown(async () => await p3.endAsync(true))
  const i3 = new Inbox(p3)
  const rel = await i3.next('rg/g/release')
  t.equal(rel.json.round, 1, 'delivered on reconnect without subscribing again')
})

void t.test('nobody but the broker publishes on release, state, rounds, error or ctl/result', async (t) => {
  const f = await fleet(t, { need: 1, resetMs: 50 })
  const watcher = await connect(f.broker.url, 'watcher')
  const evil = await connect(f.broker.url, 'evil')
  t.teardown(async () => { await watcher.endAsync(true); await evil.endAsync(true) })
  const iw = new Inbox(watcher)
  const ie = new Inbox(evil)
  await watcher.subscribeAsync('rg/#', { qos: 1 })
  await evil.subscribeAsync('rg/g/error/evil', { qos: 1 })
  const forged = ['rg/g/release', 'rg/g/state', 'rg/g/rounds', 'rg/g/error/someone', 'rg/g/ctl/result/admin']
  for (const topic of forged) {
    await evil.publishAsync(topic, JSON.stringify({ forged: true }), { qos: 1, retain: true })
    const e = await ie.next((m) => m.topic === 'rg/g/error/evil' && m.json.topic === topic)
    t.equal(e.json.code, 'forbidden', topic)
  }
  t.equal(iw.messages.filter((m) => m.json?.forged === true).length, 0, 'no subscriber saw a forged message')
  const late = await connect(f.broker.url, 'late')
  t.teardown(async () => await late.endAsync(true))
  const il = new Inbox(late)
  await late.subscribeAsync('rg/g/#', { qos: 1 })
  await sleep(200)
  t.equal(il.messages.filter((m) => m.json?.forged === true).length, 0, 'nothing forged was retained')
  t.ok(evil.connected, 'the client stays connected')
})
