// The bus suite against RedisBus (one real redis-server), plus what only Redis can do: go away.
import t from 'tap'
import { type BusEvent, RedisBus } from '../plugins/scheduler/index.js'
import { busSuite } from './bus-suite.js'
import { startRedis } from './helpers/redis-server.js'

const server = await startRedis()
t.teardown(async () => await server.stop())

busSuite(t, 'redis', {
  join: (n) => Array.from({ length: n }, () => new RedisBus({ url: server.url })),
  stranger: () => new RedisBus({ url: server.url, prefix: 'other' })
})

void t.test('publish with Redis gone: nothing throws, close works', async (t) => {
  const own = await startRedis()
  t.teardown(async () => await own.stop())
  const bus = new RedisBus({ url: own.url, onError: (err) => t.comment(`expected while Redis is gone: ${err.message}`) })
  const release: BusEvent = { type: 'kicked', group: 'g', clientId: 'a' }
  await bus.open()
  await own.kill()
  t.doesNotThrow(() => bus.publish(release))
  await bus.close()
  t.pass('closed while Redis is gone')
})
