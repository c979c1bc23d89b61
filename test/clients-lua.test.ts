// The Lua terminal (clients/lua) run by Debian's lua5.4: rounds one after another on the real
// broker (polling again with after = the round it finished), and the start instant: it waits for
// the release's startAt on the broker's clock, estimated from serverTime, and starts at once on a
// protocol 1.0 release that names none. The clock cases are played by a scripted HTTP peer whose
// clock runs an hour ahead of ours, so only a terminal that uses serverTime starts on time.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { freePort, startBroker } from './helpers/broker.js'
import { lua } from './helpers/clients.js'
import { call, get } from './helpers/http.js'
import { waitFor, within } from './helpers/wait.js'

void t.test('two rounds in a row on the real broker', async (t) => {
  const b = await startBroker({ httpPort: await freePort() })
  t.teardown(b.close)
  const base = `http://127.0.0.1:${b.server.ports.http}`
  t.equal((await call(base, 'PUT', '/v1/groups/lg', { need: 1, resetMs: 100 })).status, 200)
  const p = lua(t, base, 'lg', 'lua-1', 2)
  t.equal(await p.status(20000), 0, 'exits 0', { stderr: p.stderr() })
  t.match(p.stdout(), /^round 1 shard 0\/1\nround 2 shard 0\/1\n$/, 'one line per round, in order')
  const rounds: any[] = await waitFor(async () => {
    const r = (await get(base, '/v1/groups/lg/rounds?limit=5')).json
    return r.length === 2 ? r : null
  }, 3000, 'two summaries')
  t.same(rounds.map((r) => [r.round, r.outcome, r.done]), [[2, 'completed', ['lua-1']], [1, 'completed', ['lua-1']]])
  t.same(rounds.map((r) => r.results['lua-1'].lang), ['lua', 'lua'], 'the job result is reported')
})

interface Peer { base: string, answeredAt: number, done: Promise<{ at: number, body: any }>, close: () => Promise<void> }

/** A scripted broker for one round: its clock is `skewMs` ahead; the release names startAt when `startInMs` is given. */
async function scriptedPeer (skewMs: number, startInMs: number | null): Promise<Peer> {
  const serverNow = (): number => Date.now() + skewMs
  let resolveDone: (v: { at: number, body: any }) => void = () => {}
  const peer: Peer = { base: '', answeredAt: 0, done: new Promise((resolve) => { resolveDone = resolve }), close: async () => {} }
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  }
  const readBody = async (req: IncomingMessage): Promise<any> => {
    let text = ''
    for await (const chunk of req) text += String(chunk)
    return text === '' ? {} : JSON.parse(text)
  }
  let released = false
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    readBody(req).then((body) => {
      if (url.pathname === '/v1/time') {
        if (startInMs === null) json(res, 404, { error: { code: 'not_found', message: 'no route GET /v1/time' } })
        else json(res, 200, { serverTime: serverNow() })
      } else if (url.pathname === '/v1/groups/g/heartbeat') {
        json(res, 200, { phase: 'WAITING', round: 0, heartbeatMs: 10000 })
      } else if (url.pathname === '/v1/groups/g/ready') {
        json(res, 200, { phase: 'WAITING', round: 0 })
      } else if (url.pathname === '/v1/groups/g/release' && !released) {
        released = true
        setTimeout(() => {
          const now = serverNow()
          const release: Record<string, unknown> = { group: 'g', round: 1, releasedAt: now, deadline: now + 60000, participants: ['lua-1'], bosses: [], payload: null, role: 'small', shard: { index: 0, count: 1 } }
          if (startInMs !== null) Object.assign(release, { attempt: 1, job: null, startAt: now + startInMs, serverTime: now, participants: 1 })
          peer.answeredAt = Date.now()
          json(res, 200, release)
        }, 100)
      } else if (url.pathname === '/v1/groups/g/done') {
        json(res, 200, { duplicate: false })
        resolveDone({ at: Date.now(), body })
      } else {
        json(res, 404, { error: { code: 'not_found', message: url.pathname } })
      }
    }, (err) => { json(res, 400, { error: { code: 'bad_request', message: String(err) } }) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  peer.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  peer.close = async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())) }
  return peer
}

void t.test('a 1.1 release: the job starts at startAt on the broker clock, an hour ahead of ours', async (t) => {
  const skew = 3600_000
  const peer = await scriptedPeer(skew, 1500)
  t.teardown(peer.close)
  const p = lua(t, peer.base, 'g', 'lua-1', 1, 50)
  const done = await within(peer.done, 20000, 'the done report')
  t.equal(await p.status(10000), 0, 'exits 0', { stderr: p.stderr() })
  const estimate = Number(/clock offset to the broker: (-?[\d.]+) ms/.exec(p.stderr())?.[1])
  t.ok(Math.abs(estimate - skew) < 200, `the /v1/time estimate sees the hour (${estimate} ms)`)
  const waited = done.at - peer.answeredAt
  t.ok(waited >= 1450, `the job waited for startAt: done ${waited} ms after the release (start 1500 ms after it)`)
  t.ok(waited < 3000, `and not much longer (${waited} ms)`)
  t.equal(done.body.round, 1)
  t.equal(done.body.ok, true)
  const startAt = peer.answeredAt + skew + 1500 - 5 // the release's startAt, give or take the 5 ms before answeredAt was read
  const off = done.body.result.startedAt - startAt
  t.ok(off > -100 && off < 500, `started at startAt on the broker's clock (${off} ms off)`)
})

void t.test('a 1.0 release (no startAt, no /v1/time): the job starts at once', async (t) => {
  const peer = await scriptedPeer(3600_000, null)
  t.teardown(peer.close)
  const p = lua(t, peer.base, 'g', 'lua-1', 1, 50)
  const done = await within(peer.done, 20000, 'the done report')
  t.equal(await p.status(10000), 0, 'exits 0', { stderr: p.stderr() })
  t.match(p.stderr(), /no clock offset estimate/, 'it says it has no offset')
  const waited = done.at - peer.answeredAt
  t.ok(waited < 1000, `done ${waited} ms after the release: the 50 ms job began at once`)
  t.equal(done.body.round, 1)
})

void t.test('on the real broker with startDelayMs (protocol 1.1)', async (t) => {
  const b = await startBroker({ httpPort: await freePort() })
  t.teardown(b.close)
  const base = `http://127.0.0.1:${b.server.ports.http}`
  const put = await call(base, 'PUT', '/v1/groups/sd', { need: 1, startDelayMs: 1000 })
  const skip = put.status === 200 ? false : `this broker does not take startDelayMs yet (${put.status}): the scripted peer above covers the client`
  await t.test('the job starts at the release\'s startAt', { skip }, async (t) => {
    const p = lua(t, base, 'sd', 'lua-1', 1, 50)
    t.equal(await p.status(20000), 0, 'exits 0', { stderr: p.stderr() })
    const summary: any = (await get(base, '/v1/groups/sd/rounds?limit=1')).json[0]
    const off = summary.results['lua-1'].startedAt - summary.startAt
    t.ok(off > -50 && off < 500, `started ${off} ms from startAt`)
  })
})
