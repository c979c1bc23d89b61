// The retained rg/{g}/state: there on subscribe, republished on change at most every 100 ms, at
// once on every phase change (so no phase is ever skipped), always ending on the newest state.
import t from 'tap'
import { connect, Inbox, send, sleep, waitFor } from './helpers/broker.js'
import { fleet } from './helpers/rounds.js'

void t.test('state is retained from start-up and follows every phase', async (t) => {
  const f = await fleet(t, { need: 1, resetMs: 30 })
  const w = await f.watch()
  const first = await w.next('rg/g/state')
  t.equal(first.retain, true, 'a declared group has a retained state from the start')
  t.equal(first.json.phase, 'WAITING')
  t.equal(first.json.need, 1)
  const a = await f.term('a')
  await a.ready()
  await a.release()
  await a.done(1)
  await waitFor(() => w.on('rg/g/state').some((m) => m.json.phase === 'WAITING' && m.json.round === 1), 2000, 'back to WAITING')
  const phases = w.on('rg/g/state').map((m) => m.json.phase).filter((p, i, all) => i === 0 || p !== all[i - 1])
  t.same(phases, ['WAITING', 'EXECUTING', 'RESET', 'WAITING'], 'every phase shown, in order, even the 30 ms RESET')
  const keys = Object.keys(first.json).sort()
  t.same(keys, ['attempt', 'bossNeed', 'done', 'dropped', 'group', 'missed', 'need', 'nextTick', 'online', 'onlineBoss', 'participants', 'paused', 'phase', 'queued', 'ready', 'readyBoss', 'releasedAt', 'round', 'startAt', 'updatedAt'], 'the fields of PROTOCOL 1.1 section 6')
})

void t.test('a burst of changes is published at most every 100 ms and ends on the newest state', async (t) => {
  const f = await fleet(t, { need: 1000, minOnlineRatio: 1 })
  const w = await f.watch()
  await w.next('rg/g/state')
  const clients = await Promise.all(Array.from({ length: 60 }, async (_, i) => await connect(f.broker.url, `b${i}`)))
  t.teardown(async () => { for (const c of clients) await c.endAsync(true) })
  const start = w.messages.length
  const began = Date.now()
  for (const [i, c] of clients.entries()) await send(c, `rg/g/hb/b${i}`, {}, 0) // 60 changes of `online`
  await sleep(250)
  const elapsed = Date.now() - began
  const states = w.messages.slice(start).filter((m) => m.topic === 'rg/g/state')
  t.ok(states.length <= Math.ceil(elapsed / 100) + 1, `${states.length} state messages in ${elapsed} ms`)
  t.equal(states[states.length - 1].json.online, 60, 'the last one shows the newest count')
})

void t.test('a deleted group loses its retained state', async (t) => {
  const f = await fleet(t, { need: 1 })
  await f.broker.server.engine.deleteGroup('g')
  const c = await connect(f.broker.url, 'late')
  t.teardown(async () => await c.endAsync(true))
  const inbox = new Inbox(c)
  await c.subscribeAsync('rg/g/state')
  await sleep(200)
  t.equal(inbox.on('rg/g/state').length, 0)
})
