// Security in cluster mode (two brokers, one real redis-server): a login token issued by one
// broker is accepted by the other (the login key is shared through Redis), rate limits are counted
// across brokers (rate-limiter-flexible on Redis), and offline queues are bounded by their real
// length in Redis.
import t from 'tap'
import { freePort, startBroker } from './helpers/broker.js'
import { call } from './helpers/http.js'
import { passwdFile } from './helpers/auth.js'
import { startRedis } from './helpers/redis-server.js'

const redis = await startRedis()
t.teardown(redis.stop)
const pw = await passwdFile([{ user: 'v1', role: 'viewer', password: 'pw-v1-secret' }, { user: 'a1', role: 'admin', password: 'pw-a1-secret' }])
t.teardown(pw.remove)
const opts = { redis: redis.url, passwdFile: pw.path, rateClientPerS: 6, maxOfflineMessages: 3, groups: { c1: { need: 1 } } }
const A = await startBroker({ ...opts, httpPort: await freePort() })
t.teardown(A.close)
const B = await startBroker({ ...opts, httpPort: await freePort() })
t.teardown(B.close)
const baseA = `http://127.0.0.1:${A.server.ports.http}`
const baseB = `http://127.0.0.1:${B.server.ports.http}`

void t.test('a login token from one broker works on the other', async (t) => {
  const r = await call(baseA, 'POST', '/v1/login', { username: 'v1', password: 'pw-v1-secret' })
  t.equal(r.status, 200)
  const got = await call(baseB, 'GET', '/v1/groups/c1', undefined, { authorization: `Bearer ${r.json.token}` })
  t.equal(got.status, 200, 'broker B accepts broker A\'s login token')
})

void t.test('rate limits are shared by the brokers', async (t) => {
  const r = await call(baseA, 'POST', '/v1/login', { username: 'a1', password: 'pw-a1-secret' })
  const auth = { authorization: `Bearer ${r.json.token}` }
  const codes: number[] = []
  for (let i = 0; i < 4; i++) {
    codes.push((await call(baseA, 'POST', '/v1/groups/c1/heartbeat', { clientId: 'shared' }, auth)).status)
    codes.push((await call(baseB, 'POST', '/v1/groups/c1/heartbeat', { clientId: 'shared' }, auth)).status)
  }
  // per broker each would take only four: a 429 means they counted together
  t.ok(codes.includes(429), `six per second for one clientId across both brokers (${codes.join(' ')})`)
  t.ok(codes.filter((c) => c === 200).length >= 6)
})

void t.test('an offline session queues at most maxOfflineMessages, counted in Redis', async (t) => {
  const { login } = await import('./helpers/auth.js')
  const sub = await login(A.url, 'a1-offline', 'a1', 'pw-a1-secret', { clean: false })
  await sub.subscribeAsync('oq/#', { qos: 1 })
  await sub.endAsync()
  const pub = await login(B.url, 'a1-pub', 'a1', 'pw-a1-secret')
  t.teardown(() => { pub.end(true) })
  for (let i = 0; i < 10; i++) await pub.publishAsync('oq/x', String(i), { qos: 1 })
  const { Redis } = await import('ioredis')
  const r = new Redis(redis.url)
  t.teardown(() => { r.disconnect() })
  const queued = await r.llen('outgoing:a1-offline')
  t.equal(queued, 3, `three queued in Redis, the rest dropped (dropped: A ${A.server.offlineQueue.dropped}, B ${B.server.offlineQueue.dropped})`)
})
