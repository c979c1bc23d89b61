// PROTOCOL section 5 over real HTTP to the real uWS listener: every route, every error.
import { request as httpRequest } from 'node:http'
import t, { type Test } from 'tap'
import { RgError } from '../plugins/errors.js'
import type { AuthRequest } from '../gateway/index.js'
import { call, get, post, startTestGateway, type TestGateway } from './helpers/http.js'

async function gw (t: Test, opts: Parameters<typeof startTestGateway>[0] = {}): Promise<TestGateway> {
  const g = await startTestGateway(opts)
  t.teardown(g.close)
  return g
}

/** A raw request through node:http (for bodies fetch cannot send: chunked, bad bytes). */
async function raw (base: string, method: string, path: string, headers: Record<string, string>, chunks: Buffer[]): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest(base + path, { method, headers, agent: false }, (res) => {
      let b = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { b += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(b) }))
    })
    req.on('error', reject)
    for (const c of chunks) req.write(c)
    req.end()
  })
}

void t.test('healthz and readyz', async (t) => {
  let ready = true
  let fail = false
  const g = await gw(t, { isReady: async () => { if (fail) throw new Error('store down'); return ready } })
  t.same((await get(g.base, '/healthz')).json, { status: 'ok' })
  t.same(await get(g.base, '/readyz').then((a) => [a.status, a.json]), [200, { status: 'ready' }])
  ready = false
  const a = await get(g.base, '/readyz')
  t.equal(a.status, 503)
  t.equal(a.json.error.code, 'unavailable')
  fail = true
  const b = await get(g.base, '/readyz')
  t.equal(b.status, 503)
  t.match(b.json.error.message, /store down/)
  t.equal((await get(g.base, '/healthz')).status, 200, 'alive even when not ready')
})

void t.test('readyz defaults to the store ping', async (t) => {
  const g = await gw(t)
  t.equal((await get(g.base, '/readyz')).status, 200)
})

void t.test('heartbeat from JSON, form body and query parameters', async (t) => {
  const g = await gw(t)
  const a = await post(g.base, '/v1/groups/hb/heartbeat', { clientId: 'json', role: 'small', load: 0.5, meta: { v: 1 } })
  t.equal(a.status, 200)
  t.same(a.json, { phase: 'WAITING', round: 0, heartbeatMs: 10000 })
  t.match(a.headers.get('content-type'), /application\/json/)
  const f = await fetch(g.base + '/v1/groups/hb/heartbeat', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'clientId=form&role=boss&load=3&meta=%7B%22os%22%3A%22lua%22%7D'
  })
  t.equal(f.status, 200)
  t.same(await f.json(), { phase: 'WAITING', round: 0, heartbeatMs: 10000 })
  const q = await post(g.base, '/v1/groups/hb/heartbeat?clientId=query&load=7')
  t.equal(q.status, 200)
  const terms = (await get(g.base, '/v1/groups/hb/terminals')).json as any[]
  const by = Object.fromEntries(terms.map((x) => [x.clientId, x]))
  t.same(Object.keys(by).sort(), ['form', 'json', 'query'])
  t.equal(by.form.role, 'boss')
  t.equal(by.form.load, 3, 'form text is read as a number')
  t.same(by.form.meta, { os: 'lua' }, 'form meta is read as JSON')
  t.equal(by.query.load, 7)
  t.same(by.json.meta, { v: 1 })
  t.equal(by.json.online, true)
  t.ok(by.json.lastSeen > 0)
  t.equal(by.json.ready, false)
  t.equal(by.json.participating, false)
})

void t.test('terminal input errors are 400 bad_request and change nothing', async (t) => {
  const g = await gw(t)
  const cases: Array<[string, unknown, RegExp]> = [
    ['missing clientId', { role: 'small' }, /clientId is required/],
    ['bad clientId', { clientId: 'a b' }, /clientId/],
    ['bad role', { clientId: 'x', role: 'king' }, /role/],
    ['bad load', { clientId: 'x', load: 'lots' }, /load/],
    ['array body', '[1,2]', /JSON object/],
    ['bad JSON', '{"clientId":', /not valid JSON/],
    ['meta not an object', { clientId: 'x', meta: [1] }, /meta/]
  ]
  for (const [name, body, msg] of cases) {
    const a = await call(g.base, 'POST', '/v1/groups/e/heartbeat', body, typeof body === 'string' ? { 'content-type': 'application/json' } : {})
    t.equal(a.status, 400, name)
    t.equal(a.json.error.code, 'bad_request', name)
    t.match(a.json.error.message, msg, name)
  }
  const badGroup = await post(g.base, '/v1/groups/no%20pe/heartbeat', { clientId: 'x' })
  t.equal(badGroup.status, 400)
  t.match(badGroup.json.error.message, /"no pe" is not a group name/)
  const utf = await raw(g.base, 'POST', '/v1/groups/e/heartbeat', { 'content-type': 'application/json' }, [Buffer.from([0x7b, 0xff, 0x7d])])
  t.same([utf.status, utf.body.error.code], [400, 'bad_request'])
  t.match(utf.body.error.message, /UTF-8/)
  const e = await get(g.base, '/v1/groups/e')
  t.equal(e.status, 404, 'nothing refused went in: not even the auto-created group')
})

void t.test('ready, done (duplicate, stale_round, not_participant) and leave', async (t) => {
  const g = await gw(t)
  t.equal((await call(g.base, 'PUT', '/v1/groups/r', { need: 1, resetMs: 0 })).status, 200)
  await post(g.base, '/v1/groups/r/heartbeat', { clientId: 'other' })
  const ready = await post(g.base, '/v1/groups/r/ready', { clientId: 'a' })
  t.same([ready.status, ready.json], [200, { phase: 'EXECUTING', round: 1 }])
  const notP = await post(g.base, '/v1/groups/r/done', { clientId: 'other', round: 1 })
  t.same([notP.status, notP.json.error.code], [403, 'not_participant'])
  const stale = await post(g.base, '/v1/groups/r/done', { clientId: 'a', round: 7 })
  t.same([stale.status, stale.json.error.code], [409, 'stale_round'])
  const noRound = await post(g.base, '/v1/groups/r/done', { clientId: 'a' })
  t.same([noRound.status, noRound.json.error.code], [400, 'bad_request'])
  const big = await post(g.base, '/v1/groups/r/done', { clientId: 'a', round: 1, result: 'x'.repeat(9000) })
  t.same([big.status, big.json.error.code], [413, 'payload_too_large'], 'result over 8 KiB')
  t.same(await post(g.base, '/v1/groups/r/done', { clientId: 'a', round: 1, ok: true, result: { n: 1 } }).then((a) => [a.status, a.json]), [200, { duplicate: false }])
  const hist = (await get(g.base, '/v1/groups/r/rounds')).json
  t.equal(hist[0].outcome, 'completed')
  t.same(hist[0].results, { a: { n: 1 } })
  const after = await post(g.base, '/v1/groups/r/done', { clientId: 'a', round: 1 })
  t.same([after.status, after.json.error.code], [409, 'stale_round'], 'the round is over: a repeat is stale now')
  const text = await call(g.base, 'POST', '/v1/groups/r/ready', 'clientId=a', { 'content-type': 'text/plain' })
  t.same([text.status, text.json.error.code], [400, 'bad_request'], 'neither JSON nor a declared form')
  t.match(text.json.error.message, /x-www-form-urlencoded/)
})

void t.test('done twice in one round answers duplicate', async (t) => {
  const g = await gw(t)
  await call(g.base, 'PUT', '/v1/groups/d', { need: 2, resetMs: 0 })
  await post(g.base, '/v1/groups/d/ready', { clientId: 'a' })
  await post(g.base, '/v1/groups/d/ready', { clientId: 'b' })
  t.same((await post(g.base, '/v1/groups/d/done', { clientId: 'a', round: 1 })).json, { duplicate: false })
  t.same((await post(g.base, '/v1/groups/d/done', { clientId: 'a', round: '1' })).json, { duplicate: true }, 'round as text too')
  const leave = await post(g.base, '/v1/groups/d/leave', { clientId: 'b' })
  t.same([leave.status, leave.json], [200, {}])
  const s = (await get(g.base, '/v1/groups/d')).json.state
  t.equal(s.phase === 'RESET' || s.phase === 'WAITING', true, 'b left: the round ended (all done or dropped, tolerance 0 → aborted)')
  t.equal((await get(g.base, '/v1/groups/d/rounds')).json[0].outcome, 'aborted')
})

void t.test('unknown groups are 404 unknown_group when groups are not auto-created', async (t) => {
  const g = await gw(t, { autoCreateGroups: false, groups: { known: { need: 1 } } })
  for (const [method, path, body] of [
    ['POST', '/v1/groups/nope/heartbeat', { clientId: 'x' }],
    ['POST', '/v1/groups/nope/ready', { clientId: 'x' }],
    ['POST', '/v1/groups/nope/done', { clientId: 'x', round: 1 }],
    ['POST', '/v1/groups/nope/leave', { clientId: 'x' }],
    ['GET', '/v1/groups/nope/release?clientId=x&wait=1', undefined],
    ['GET', '/v1/groups/nope', undefined],
    ['GET', '/v1/groups/nope/terminals', undefined],
    ['GET', '/v1/groups/nope/rounds', undefined],
    ['PATCH', '/v1/groups/nope', { need: 2 }],
    ['DELETE', '/v1/groups/nope', undefined],
    ['POST', '/v1/groups/nope/ctl', { op: 'pause' }]
  ] as Array<[string, string, unknown]>) {
    const a = await call(g.base, method, path, body)
    t.same([a.status, a.json?.error?.code], [404, 'unknown_group'], `${method} ${path}`)
  }
  t.equal(g.gateway.waiters(), 0)
  t.equal((await post(g.base, '/v1/groups/known/heartbeat', { clientId: 'x' })).status, 200)
})

void t.test('viewer routes: groups, one group, terminals, rounds with limit and before', async (t) => {
  const g = await gw(t)
  await call(g.base, 'PUT', '/v1/groups/v', { need: 1, resetMs: 0, payload: { job: 'j' } })
  await post(g.base, '/v1/groups/w/heartbeat', { clientId: 'x' })
  for (let r = 1; r <= 5; r++) {
    await post(g.base, '/v1/groups/v/ready', { clientId: 'a' })
    await post(g.base, '/v1/groups/v/done', { clientId: 'a', round: r, result: r })
  }
  const list = await get(g.base, '/v1/groups')
  t.equal(list.status, 200)
  t.same((list.json as any[]).map((s) => s.group), ['v', 'w'])
  t.equal(list.json[0].round, 5)
  const one = (await get(g.base, '/v1/groups/v')).json
  t.same(Object.keys(one).sort(), ['config', 'state'])
  t.same(one.config.payload, { job: 'j' })
  t.equal(one.config.completeOn, 'all')
  t.same(Object.keys(one.state).sort(), ['attempt', 'bossNeed', 'done', 'dropped', 'group', 'missed', 'need', 'nextTick', 'online', 'onlineBoss', 'participants', 'paused', 'phase', 'queued', 'ready', 'readyBoss', 'releasedAt', 'round', 'startAt', 'updatedAt'], 'the state fields of PROTOCOL 1.1 section 6')
  const terms = (await get(g.base, '/v1/groups/v/terminals')).json
  t.equal(terms.length, 1)
  t.same(Object.keys(terms[0]).sort(), ['clientId', 'lastSeen', 'load', 'meta', 'online', 'participating', 'ready', 'role'])
  t.same(((await get(g.base, '/v1/groups/v/rounds')).json as any[]).map((s) => s.round), [5, 4, 3, 2, 1], 'newest first')
  t.same(((await get(g.base, '/v1/groups/v/rounds?limit=2')).json as any[]).map((s) => s.round), [5, 4])
  t.same(((await get(g.base, '/v1/groups/v/rounds?limit=2&before=4')).json as any[]).map((s) => s.round), [3, 2])
  for (const q of ['limit=0', 'limit=abc', 'limit=1001', 'before=-1', 'limit=1.5']) {
    const a = await get(g.base, `/v1/groups/v/rounds?${q}`)
    t.same([a.status, a.json.error.code], [400, 'bad_request'], q)
  }
})

void t.test('admin routes: PUT, PATCH, DELETE and ctl', async (t) => {
  const g = await gw(t)
  const put = await call(g.base, 'PUT', '/v1/groups/adm', { need: 3, payload: { a: 1 } })
  t.equal(put.status, 200)
  t.equal(put.json.config.need, 3)
  t.equal(put.json.config.resetMs, 1000, 'keys not given take the defaults')
  t.equal(put.json.state.group, 'adm')
  const patch = await call(g.base, 'PATCH', '/v1/groups/adm', { resetMs: 5 })
  t.same([patch.json.config.need, patch.json.config.resetMs], [3, 5], 'PATCH changes only what it names')
  const put2 = await call(g.base, 'PUT', '/v1/groups/adm', { need: 2 })
  t.same([put2.json.config.need, put2.json.config.resetMs, put2.json.config.payload], [2, 1000, null], 'PUT replaces the whole config')
  for (const [m, body] of [['PUT', { need: -1 }], ['PATCH', { nope: 1 }], ['PATCH', '[]'], ['PUT', 'not json']] as Array<[string, unknown]>) {
    const a = await call(g.base, m, '/v1/groups/adm', body, typeof body === 'string' ? { 'content-type': 'application/json' } : {})
    t.same([a.status, a.json.error.code], [400, 'bad_request'], `${m} ${JSON.stringify(body)}`)
  }
  const big = await call(g.base, 'PUT', '/v1/groups/adm', { payload: 'p'.repeat(17000) })
  t.equal(big.status, 400, 'payload over 16 KiB is refused by the config rules')

  t.same((await post(g.base, '/v1/groups/adm/ctl', { op: 'pause' })).json, { ok: true })
  t.equal((await get(g.base, '/v1/groups/adm')).json.state.paused, true)
  t.same((await post(g.base, '/v1/groups/adm/ctl', { op: 'resume' })).json, { ok: true })
  const abort = await post(g.base, '/v1/groups/adm/ctl', { op: 'abort' })
  t.same([abort.status, abort.json.error.code], [400, 'bad_request'], 'abort with no round executing')
  await post(g.base, '/v1/groups/adm/ready', { clientId: 'a' })
  t.same((await post(g.base, '/v1/groups/adm/ctl', { op: 'release' })).json, { ok: true }, 'forced release with one ready')
  t.equal((await get(g.base, '/v1/groups/adm')).json.state.phase, 'EXECUTING')
  t.same((await post(g.base, '/v1/groups/adm/ctl', { op: 'kick', clientId: 'a' })).json, { ok: true })
  t.same((await post(g.base, '/v1/groups/adm/ctl', { op: 'configure', config: { need: 1 } })).json, { ok: true })
  t.equal((await get(g.base, '/v1/groups/adm')).json.config.need, 1)
  const bad = await post(g.base, '/v1/groups/adm/ctl', { op: 'explode' })
  t.same([bad.status, bad.json.error.code], [400, 'bad_request'])

  const del = await call(g.base, 'DELETE', '/v1/groups/adm')
  t.equal(del.status, 200)
  t.equal(del.json.state.group, 'adm', 'DELETE answers the group as it was')
  t.equal((await get(g.base, '/v1/groups/adm')).status, 404)
  t.equal((await call(g.base, 'DELETE', '/v1/groups/adm')).status, 404)
})

void t.test('unknown routes, wrong methods, trailing slash', async (t) => {
  const g = await gw(t)
  // (`/` is the dashboard: test/dashboard-static.test.ts)
  for (const path of ['/nope.html', '/v2/groups', '/v1/groups/g/nope', '/v1/groups/g/ready/extra', '/v1']) {
    const a = await get(g.base, path)
    t.same([a.status, a.json.error.code], [404, 'not_found'], path)
  }
  const wrong = await call(g.base, 'DELETE', '/v1/groups/g/ready')
  t.same([wrong.status, wrong.json.error.code], [404, 'not_found'])
  t.equal(wrong.headers.get('allow'), 'POST')
  t.match(wrong.json.error.message, /POST/)
  const wrong2 = await call(g.base, 'POST', '/v1/groups/g')
  t.equal(wrong2.headers.get('allow'), 'GET, PUT, PATCH, DELETE')
  t.equal((await call(g.base, 'POST', '/healthz')).status, 404)
  t.equal((await get(g.base, '/v1/groups/')).status, 200, 'one trailing slash is the same route')
})

void t.test('body cap: declared and streamed bodies over the cap are 413 payload_too_large', async (t) => {
  const g = await gw(t, { maxBodyBytes: 1024 })
  const declared = await call(g.base, 'POST', '/v1/groups/g/ready', JSON.stringify({ clientId: 'x', pad: 'x'.repeat(2000) }), { 'content-type': 'application/json' })
  t.same([declared.status, declared.json.error.code], [413, 'payload_too_large'])
  const chunk = Buffer.from('{"clientId":"x","pad":"' + 'y'.repeat(600))
  const streamed = await raw(g.base, 'POST', '/v1/groups/g/ready', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, [chunk, chunk, Buffer.from('"}')])
  t.same([streamed.status, streamed.body.error.code], [413, 'payload_too_large'], 'chunked, no Content-Length')
  const fits = await raw(g.base, 'POST', '/v1/groups/g/ready', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    [Buffer.from('{"clientId":'), Buffer.from('"x"}')])
  t.equal(fits.status, 200, 'a chunked body under the cap is read whole')
  t.equal((await get(g.base, '/healthz')).status, 200, 'the server is fine afterwards')
})

void t.test('the authorization hook sees who, route, group and clientId, and can refuse', async (t) => {
  const seen: AuthRequest[] = []
  const g = await gw(t, {
    authorize: async (req) => {
      seen.push(req)
      if (req.authorization !== 'Bearer ok') throw new RgError('unauthorized')
      if (req.who === 'admin') throw new RgError('forbidden', 'admins only')
    }
  })
  const no = await post(g.base, '/v1/groups/z/ready', { clientId: 'c1' })
  t.same([no.status, no.json.error.code], [401, 'unauthorized'])
  const ok = await call(g.base, 'POST', '/v1/groups/z/heartbeat', { clientId: 'c1' }, { authorization: 'Bearer ok' })
  t.equal(ok.status, 200)
  const adm = await call(g.base, 'PUT', '/v1/groups/z', { need: 2 }, { authorization: 'Bearer ok' })
  t.same([adm.status, adm.json.error.code], [403, 'forbidden'])
  const poll = await call(g.base, 'GET', '/v1/groups/z/release?clientId=c2&wait=0', undefined, { authorization: 'Bearer x' })
  t.equal(poll.status, 401)
  t.equal(g.gateway.waiters(), 0)
  t.match(seen[0], { who: 'terminal', method: 'POST', route: '/v1/groups/:g/ready', group: 'z', clientId: 'c1', remoteAddress: '127.0.0.1' })
  t.match(seen[2], { who: 'admin', method: 'PUT', route: '/v1/groups/:g' })
  t.match(seen[3], { who: 'terminal', clientId: 'c2' })
  t.equal((await get(g.base, '/v1/groups/z')).status, 401, 'viewer routes pass the hook too')
  t.equal((await get(g.base, '/healthz')).status, 401, 'the hook decides for anyone-routes as well')
  t.equal(seen.at(-1)?.who, 'anyone')
  t.equal((await get(g.base, '/v1/groups/z/terminals', { headers: { authorization: 'Bearer ok' } })).json[0].clientId, 'c1', 'refused calls changed nothing')
})
