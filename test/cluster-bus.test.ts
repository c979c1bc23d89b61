// The Redis bus: the publisher sees its own events at once (local), every other process gets them
// over Redis pub/sub (not local), nobody gets them twice.
import t from 'tap'
import { type BusEvent, RedisBus } from '../plugins/scheduler/index.js'
import { startRedis } from './helpers/redis-server.js'
import { sleep, waitFor } from './helpers/wait.js'

const server = await startRedis()
t.teardown(async () => await server.stop())

const release: BusEvent = {
  type: 'released',
  release: { group: 'g', round: 7, releasedAt: 1, deadline: 2, participants: ['a', 'b'], bosses: [], payload: { x: [] } }
}

void t.test('local first and synchronously, remote once, own messages ignored', async (t) => {
  const buses = [new RedisBus({ url: server.url }), new RedisBus({ url: server.url }), new RedisBus({ url: server.url, prefix: 'other' })]
  const got: Array<Array<[BusEvent, boolean]>> = [[], [], []]
  buses.forEach((b, i) => b.subscribe((ev, local) => got[i].push([ev, local])))
  for (const b of buses) await b.open()
  t.teardown(async () => { for (const b of buses) await b.close() })

  buses[0].publish(release)
  t.strictSame(got[0], [[release, true]], 'the publisher saw it before publish() returned')
  await waitFor(() => got[1].length > 0, 3000, 'the event over Redis').catch(() => {})
  t.strictSame(got[1], [[release, false]], 'another process gets it, not local')
  buses[1].publish({ type: 'kicked', group: 'g', clientId: 'a' })
  buses[1].publish({ type: 'deleted', group: 'g' })
  await waitFor(() => got[0].length >= 3, 3000, 'three events').catch(() => {})
  await sleep(100) // room for a wrong echo to show
  t.strictSame(got[0].map(([e, l]) => `${e.type}:${String(l)}`), ['released:true', 'kicked:false', 'deleted:false'], 'in order, own message not echoed')
  t.strictSame(got[1].map(([e, l]) => `${e.type}:${String(l)}`), ['released:false', 'kicked:true', 'deleted:true'])
  t.strictSame(got[2], [], 'another prefix is another channel')
})

void t.test('publish with Redis gone: local handlers still run, nothing throws', async (t) => {
  const own = await startRedis()
  t.teardown(async () => await own.stop())
  const bus = new RedisBus({ url: own.url, onError: () => {} }) // connection errors are expected here
  const got: boolean[] = []
  bus.subscribe((_ev, local) => got.push(local))
  await bus.open()
  await own.kill()
  bus.publish(release)
  t.strictSame(got, [true])
  await bus.close()
  t.pass('closed while Redis is gone')
})
