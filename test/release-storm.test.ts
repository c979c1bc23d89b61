// 1,000 terminals declaring ready in the same instant: exactly one release, to exactly the frozen
// participants; nobody else receives it; whoever was ready after the freeze is not in that round.
import t from 'tap'
import type { MqttClient } from 'mqtt'
import { connect, sleep, startBroker, waitFor } from './helpers/broker.js'

const N = 1000
const NEED = 400

void t.test('1,000 simultaneous readies give one release to exactly the chosen participants', async (t) => {
  const broker = await startBroker({ groups: { storm: { need: NEED, minOnlineRatio: 0, resetMs: 60000 } } })
  const clients: MqttClient[] = []
  t.teardown(async () => {
    await Promise.all(clients.map(async (c) => await c.endAsync(true).catch(() => {})))
    await broker.close()
  })
  const got = new Map<string, any[]>()
  for (let i = 0; i < N; i += 100) {
    const batch = await Promise.all(Array.from({ length: 100 }, async (_, j) => {
      const id = `t${i + j}`
      const c = await connect(broker.url, id)
      got.set(id, [])
      c.on('message', (topic, payload) => { if (topic === 'rg/storm/release') got.get(id)?.push(JSON.parse(payload.toString())) })
      await c.subscribeAsync('rg/storm/release', { qos: 1 })
      await c.publishAsync(`rg/storm/hb/${id}`, '{}', { qos: 1 })
      return c
    }))
    clients.push(...batch)
  }
  const engine = broker.server.engine
  t.equal((await engine.state('storm')).online, N, 'all online, none ready')

  // the same instant: every ready written before any acknowledgement is awaited
  await Promise.all(clients.map(async (c, i) => await c.publishAsync(`rg/storm/ready/t${i}`, '{}', { qos: 1 })))
  await waitFor(async () => [...got.values()].filter((m) => m.length > 0).length >= NEED, 10000, 'releases delivered')
  await sleep(300) // room for any wrong extra delivery to show

  const state = await engine.state('storm')
  t.equal(state.round, 1, 'exactly one release')
  t.equal(state.participants, NEED)
  t.equal(state.ready, N - NEED, 'the rest stay ready for the next round')
  const rel = engine.releaseOf('storm')
  t.ok(rel !== null)
  const chosen = new Set(rel!.record.participants)
  t.equal(chosen.size, NEED, 'no participant twice')
  let wrong = 0
  let twice = 0
  const shards = new Set<number>()
  for (const [id, msgs] of got) {
    if (chosen.has(id) !== (msgs.length > 0)) wrong++
    if (msgs.length > 1) twice++
    for (const m of msgs) {
      if (m.round !== 1) wrong++
      shards.add(m.shard.index)
    }
  }
  t.equal(wrong, 0, 'participants got the release, nobody else did')
  t.equal(twice, 0, 'each participant got it once')
  t.equal(shards.size, NEED, 'every shard index handed out once')
  t.same([...shards].sort((a, b) => a - b), Array.from({ length: NEED }, (_, i) => i))

  // the readies that came after the freeze are not in round 1 whatever happens next
  const terminals = await engine.terminals('storm')
  const readyNow = terminals.filter((x) => x.ready).map((x) => x.clientId)
  t.equal(readyNow.filter((id) => chosen.has(id)).length, 0, 'participants left ready')
  t.equal(readyNow.length, N - NEED)
})
