// The release long-poll (PROTOCOL section 5) over real HTTP: at once, woken, 204 + X-Round,
// `after`, superseded, aborted mid-wait, liveness while held, kick, delete, shutdown, bounds.
import t, { type Test } from 'tap'
import { get, post, call, startTestGateway, until, type TestGateway } from './helpers/http.js'
import { sleep, waitFor } from './helpers/wait.js'

async function gw (t: Test, opts: Parameters<typeof startTestGateway>[0] = {}): Promise<TestGateway> {
  const g = await startTestGateway(opts)
  t.teardown(g.close)
  return g
}


function poll (g: TestGateway, group: string, clientId: string, q = '', init: RequestInit = {}): ReturnType<typeof get> {
  return get(g.base, `/v1/groups/${group}/release?clientId=${clientId}${q}`, init)
}

void t.test('a participant of the executing round gets the release at once', async (t) => {
  const g = await gw(t)
  await call(g.base, 'PUT', '/v1/groups/g', { need: 1, payload: { job: 42 } })
  await post(g.base, '/v1/groups/g/ready', { clientId: 'a' })
  const t0 = Date.now()
  const a = await poll(g, 'g', 'a', '&wait=5')
  t.ok(Date.now() - t0 < 1000, 'not after wait')
  t.equal(a.status, 200)
  t.match(a.headers.get('content-type'), /application\/json/)
  t.match(a.json, { group: 'g', round: 1, attempt: 1, job: null, participants: 1, bosses: [], payload: { job: 42 }, role: 'small', shard: { index: 0, count: 1 } })
  for (const k of ['releasedAt', 'startAt', 'deadline', 'serverTime']) t.type(a.json[k], 'number', k)
  t.equal(a.json.startAt, a.json.releasedAt, 'startDelayMs 0: start at once')
  t.ok(a.json.serverTime >= a.json.releasedAt && a.json.serverTime <= Date.now() + 5, 'serverTime: when the answer was written')
  const mqtt = JSON.parse(g.engine.releaseOf('g')?.encode('a') ?? 'null')
  t.same({ ...a.json, serverTime: 0 }, { ...mqtt, serverTime: 0 }, 'the same JSON as the MQTT release, but for its serverTime')
  t.equal(g.gateway.waiters(), 0)
  const stale = await poll(g, 'g', 'a', '&after=1&wait=0.1')
  t.equal(stale.status, 204, 'after=1: round 1 is not news')
  t.equal(stale.headers.get('x-round'), '1')
  t.equal(stale.text, '')
})

void t.test('a pending poll is woken by the release, and only participants are', async (t) => {
  const g = await gw(t)
  await call(g.base, 'PUT', '/v1/groups/g', { need: 1, minOnlineRatio: 0 })
  const pa = poll(g, 'g', 'a', '&wait=10')
  const pb = poll(g, 'g', 'b', '&wait=0.6')
  t.ok(await until(() => g.gateway.waiters() === 2), 'two waiters')
  const t0 = Date.now()
  await post(g.base, '/v1/groups/g/ready', { clientId: 'a' })
  const a = await pa
  t.ok(Date.now() - t0 < 1000, 'woken, not timed out')
  t.same([a.status, a.json.round, a.json.participants], [200, 1, 1])
  t.equal(g.gateway.waiters(), 1, 'b still waits')
  const b = await pb
  t.same([b.status, b.headers.get('x-round')], [204, '1'], 'b was no participant: 204 with the current round')
  t.equal(g.gateway.waiters(), 0)
})

void t.test('204 with X-Round after wait seconds; wait=0 answers at once', async (t) => {
  const g = await gw(t)
  await post(g.base, '/v1/groups/w/heartbeat', { clientId: 'a' })
  const t0 = Date.now()
  const a = await poll(g, 'w', 'a', '&wait=0.5')
  const took = Date.now() - t0
  t.equal(a.status, 204)
  t.equal(a.headers.get('x-round'), '0')
  t.equal(a.headers.get('content-length'), null, 'a 204 carries no Content-Length')
  t.ok(took >= 490, `not before wait (${took} ms)`)
  t.ok(took < 5000, `after wait, not after the default 30 s (${took} ms)`)
  const t1 = Date.now()
  t.equal((await poll(g, 'w', 'a', '&wait=0')).status, 204)
  t.ok(Date.now() - t1 < 5000, 'wait=0 answers at once, not after the default 30 s')
  t.equal(g.gateway.waiters(), 0)
})

void t.test('after: a terminal that finished round r polls with after=r and gets round r+1', async (t) => {
  const g = await gw(t)
  await call(g.base, 'PUT', '/v1/groups/g', { need: 1, resetMs: 50 })
  await post(g.base, '/v1/groups/g/ready', { clientId: 'a' })
  const r1 = await poll(g, 'g', 'a', '&after=0&wait=5')
  t.equal(r1.json.round, 1)
  const p2 = poll(g, 'g', 'a', '&after=1&wait=5')
  t.ok(await until(() => g.gateway.waiters() === 1), 'round 1 still executing: after=1 waits')
  await post(g.base, '/v1/groups/g/done', { clientId: 'a', round: 1 })
  await post(g.base, '/v1/groups/g/ready', { clientId: 'a' })
  const r2 = await p2
  t.same([r2.status, r2.json.round], [200, 2], 'woken by round 2 once RESET ended')
  const again = await poll(g, 'g', 'a', '&after=0&wait=5')
  t.same([again.status, again.json.round], [200, 2], 'after=0 during round 2: round 2 at once')
  t.equal((await poll(g, 'g', 'a', '&after=2&wait=0.05')).headers.get('x-round'), '2')
})

void t.test('a newer poll from the same clientId supersedes the older (409 superseded)', async (t) => {
  const g = await gw(t)
  await post(g.base, '/v1/groups/s/heartbeat', { clientId: 'a' })
  const first = poll(g, 's', 'a', '&wait=10')
  t.ok(await until(() => g.gateway.waiters() === 1))
  const second = poll(g, 's', 'a', '&wait=10')
  const old = await first
  t.same([old.status, old.json.error.code], [409, 'superseded'])
  t.ok(await until(() => g.gateway.waiters() === 1), 'the newer one waits')
  const other = poll(g, 's2', 'a', '&wait=0.2')
  t.ok(await until(() => g.gateway.waiters() === 2), 'the same clientId in another group is another poll')
  t.equal((await other).status, 204)
  await call(g.base, 'PATCH', '/v1/groups/s', { need: 1 })
  await post(g.base, '/v1/groups/s/ready', { clientId: 'a' })
  t.equal((await second).json.round, 1, 'the newer one gets the release')
})

void t.test('a client that disconnects mid-wait leaves nothing behind', async (t) => {
  const g = await gw(t)
  await call(g.base, 'PUT', '/v1/groups/x', { need: 500, offlineAfterMs: 300 })
  const ctrls: AbortController[] = []
  const pending: Array<Promise<unknown>> = []
  for (let i = 0; i < 200; i++) {
    const c = new AbortController()
    ctrls.push(c)
    pending.push(poll(g, 'x', `t${i}`, '&wait=60', { signal: c.signal }).catch((err: Error) => err.name))
  }
  t.ok(await until(() => g.gateway.waiters() === 200, 5000), '200 waiting')
  await waitFor(async () => (await get(g.base, '/v1/groups/x')).json.state.online === 200, 3000).catch(() => {}) // every hold registered
  t.equal((await get(g.base, '/v1/groups/x')).json.state.online, 200, 'held polls are online')
  for (const c of ctrls) c.abort()
  const outcomes = await Promise.all(pending)
  t.ok(outcomes.every((o) => o === 'AbortError'))
  t.ok(await until(() => g.gateway.waiters() === 0, 2000), 'every aborted waiter removed')
  const text = await (await fetch(g.base + '/metrics')).text()
  t.match(text, /^roundgate_http_longpolls_pending 0$/m, 'metrics show none pending')
  t.match(text, /roundgate_http_requests_total\{route="\/v1\/groups\/:g\/release",method="GET",status="aborted"\} 200/)
  // the holds went with them: with nothing heard, everyone goes offline after offlineAfterMs
  await sleep(700)
  t.equal((await get(g.base, '/v1/groups/x')).json.state.online, 0, 'no hold left keeps anyone online')
})

void t.test('a pending poll holds its terminal online; it goes offline after the poll ends', async (t) => {
  const g = await gw(t)
  await call(g.base, 'PUT', '/v1/groups/h', { need: 5, offlineAfterMs: 300 })
  const p = poll(g, 'h', 'a', '&wait=1')
  await sleep(800)
  const during = (await get(g.base, '/v1/groups/h/terminals')).json
  t.same(during.map((x: any) => [x.clientId, x.online]), [['a', true]], 'online 800 ms into a poll, offlineAfterMs 300')
  t.equal((await p).status, 204)
  await sleep(600)
  const after = (await get(g.base, '/v1/groups/h')).json.state
  t.equal(after.online, 0, 'silent after the poll: offline')
})

void t.test('kick ends the poll; deleting the group ends its polls', async (t) => {
  const g = await gw(t)
  await post(g.base, '/v1/groups/k/heartbeat', { clientId: 'a' })
  const pa = poll(g, 'k', 'a', '&wait=10')
  const pb = poll(g, 'k', 'b', '&wait=10')
  t.ok(await until(() => g.gateway.waiters() === 2))
  await post(g.base, '/v1/groups/k/ctl', { op: 'kick', clientId: 'a' })
  const a = await pa
  t.same([a.status, a.headers.get('x-round')], [204, '0'], 'kicked: the poll ends without a release')
  t.equal(g.gateway.waiters(), 1)
  await call(g.base, 'DELETE', '/v1/groups/k')
  const b = await pb
  t.same([b.status, b.json.error.code], [404, 'unknown_group'])
  t.equal(g.gateway.waiters(), 0)
})

void t.test('leave answers the terminal\'s own pending poll 204 at once, and it stays offline', async (t) => {
  const g = await gw(t)
  await call(g.base, 'PUT', '/v1/groups/l', { need: 5, offlineAfterMs: 60000 })
  await post(g.base, '/v1/groups/l/ready', { clientId: 'a' })
  const pa = poll(g, 'l', 'a', '&wait=20')
  t.ok(await until(() => g.gateway.waiters() === 1))
  const t0 = Date.now()
  const left = await post(g.base, '/v1/groups/l/leave', { clientId: 'a' })
  t.equal(left.status, 200)
  const a = await pa
  t.ok(Date.now() - t0 < 2000, 'at once, not after wait')
  t.same([a.status, a.headers.get('x-round')], [204, '0'], 'the poll ends without a release')
  t.equal(g.gateway.waiters(), 0)
  await sleep(300) // several sweeps: nothing holds the terminal online again
  const s = (await get(g.base, '/v1/groups/l')).json.state
  t.same([s.online, s.ready], [0, 0], 'the leave stands')
})

void t.test('bad polls are 400; unknown groups 404; nothing stays pending', async (t) => {
  const g = await gw(t, { autoCreateGroups: false, groups: { g: {} } })
  const cases: Array<[string, RegExp]> = [
    ['&wait=121', /wait/],
    ['&wait=-1', /wait/],
    ['&wait=soon', /wait/],
    ['&after=-1', /after/],
    ['&after=1.5', /after/],
    ['&after=x', /after/]
  ]
  for (const [q, msg] of cases) {
    const a = await poll(g, 'g', 'a', q)
    t.same([a.status, a.json.error.code], [400, 'bad_request'], q)
    t.match(a.json.error.message, msg, q)
  }
  const noId = await get(g.base, '/v1/groups/g/release?wait=1')
  t.same([noId.status, noId.json.error.message], [400, 'clientId is required'])
  const badId = await get(g.base, '/v1/groups/g/release?clientId=a%20b')
  t.equal(badId.status, 400)
  const unknown = await poll(g, 'nope', 'a', '&wait=1')
  t.same([unknown.status, unknown.json.error.code], [404, 'unknown_group'])
  const max = poll(g, 'g', 'a', '&wait=120')
  t.ok(await until(() => g.gateway.waiters() === 1), 'wait=120 is allowed')
  await g.close() // teardown's second close is a no-op
  t.equal((await max).status, 503)
})

void t.test('closing the gateway answers pending polls 503', async (t) => {
  const g = await startTestGateway()
  await post(g.base, '/v1/groups/c/heartbeat', { clientId: 'a' })
  const p = poll(g, 'c', 'a', '&wait=30')
  t.ok(await until(() => g.gateway.waiters() === 1))
  await g.close()
  const a = await p
  t.same([a.status, a.json.error.code], [503, 'unavailable'])
  t.equal(g.gateway.waiters(), 0)
})

void t.test('many waiters are all woken by one release, each with its own shard', async (t) => {
  const g = await gw(t)
  const n = 300
  await call(g.base, 'PUT', '/v1/groups/m', { need: n, minOnlineRatio: 1 })
  const polls = []
  for (let i = 0; i < n; i++) polls.push(poll(g, 'm', `c${i}`, '&wait=20'))
  t.ok(await until(() => g.gateway.waiters() === n, 5000))
  await Promise.all(Array.from({ length: n }, async (_, i) => await post(g.base, '/v1/groups/m/ready', { clientId: `c${i}` })))
  const got = await Promise.all(polls)
  t.ok(got.every((a) => a.status === 200 && a.json.round === 1), 'every one got round 1')
  t.same(got.map((a) => a.json.shard.index).sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i), 'shards 0..n-1, once each')
  t.equal(g.gateway.waiters(), 0)
})

void t.test('a poll may name the terminal role, like a heartbeat; a bad role is 400 before it parks', async (t) => {
  const g = await gw(t)
  await call(g.base, 'PUT', '/v1/groups/g', { need: 1, bossNeed: 1 })
  const pending = poll(g, 'g', 'chief', '&role=boss&wait=5')
  t.ok(await until(() => g.gateway.waiters() === 1), 'parked')
  const views = (await get(g.base, '/v1/groups/g/terminals')).json as Array<{ clientId: string, role: string }>
  t.equal(views.find((v) => v.clientId === 'chief')?.role, 'boss', 'the first call of a boss can be its poll')
  await post(g.base, '/v1/groups/g/ready', { clientId: 'chief' })
  await post(g.base, '/v1/groups/g/ready', { clientId: 's' })
  const rel = await pending
  t.equal(rel.status, 200)
  t.equal(rel.json.role, 'boss')
  const bad = await poll(g, 'g', 'x', '&role=king&wait=5')
  t.equal(bad.status, 400)
  t.equal(bad.json.error.code, 'bad_request')
  t.equal(g.gateway.waiters(), 0)
})
