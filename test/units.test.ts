// Unit tests of the small parts every door relies on: MQTT topic parsing and matching, the
// long-poll timer wheel, the HTTP router's matching, and participant selection.
import { pino } from 'pino'
import t from 'tap'
import { Router } from '../gateway/router.js'
import { TimerWheel, type WheelEntry } from '../gateway/wheel.js'
import { select, Topics, topicMatches } from '../plugins/scheduler/index.js'
import { sleep } from './helpers/wait.js'

void t.test('topics: every roundgate topic parsed, everything else refused with a reason', async (t) => {
  const tp = new Topics('rg')
  t.strictSame(tp.parse('rg/g1/ready/t-1'), { kind: 'ready', group: 'g1', id: 't-1' })
  t.strictSame(tp.parse('rg/g1/hb/a:b'), { kind: 'hb', group: 'g1', id: 'a:b' })
  t.strictSame(tp.parse('rg/g1/ctl'), { kind: 'ctl', group: 'g1' })
  for (const broker of ['rg/g/release', 'rg/g/state', 'rg/g/rounds', 'rg/g/jobs', 'rg/g/error/x', 'rg/g/ctl/result/x']) {
    t.equal(tp.parse(broker).kind, 'broker-only', broker)
  }
  for (const bad of ['rg/bad group/hb/x', 'rg/g/hb', 'rg/g/hb/a/b', 'rg/g/nonsense', 'rg//hb/x', 'rg/g/hb/a+b', 'rg/g/ready/__proto__x#']) {
    const p = tp.parse(bad)
    t.equal(p.kind, 'bad', bad)
    if (p.kind === 'bad') t.ok(p.reason.length > 0, 'with a reason')
  }
  const deep = new Topics('site/a')
  t.strictSame(deep.parse('site/a/g/leave/x'), { kind: 'leave', group: 'g', id: 'x' })
  t.ok(deep.owns('site/a/g/hb/x'))
  t.notOk(deep.owns('site/ab/g/hb/x'), 'the prefix is whole levels')
  t.equal(deep.release('g'), 'site/a/g/release')
  t.equal(deep.jobs('g'), 'site/a/g/jobs')
  t.ok(tp.plausibleFilter('rg/+/state'))
  t.ok(tp.plausibleFilter('rg/#'))
  t.ok(tp.plausibleFilter('other/#'), 'outside the prefix: not the scheduler\'s business')
  t.notOk(tp.plausibleFilter('rg/g/nonsense'))
  t.notOk(tp.plausibleFilter('rg/bad name/state'))
  t.notOk(tp.plausibleFilter('rg/'))
})

void t.test('topicMatches: MQTT 3.1.1 wildcards [MQTT-4.7]', async (t) => {
  t.ok(topicMatches('a/+/c', 'a/b/c'))
  t.notOk(topicMatches('a/+/c', 'a/b/d'))
  t.ok(topicMatches('a/#', 'a'), '# matches the parent too')
  t.ok(topicMatches('a/#', 'a/b/c'))
  t.notOk(topicMatches('a/+', 'a/b/c'))
  t.ok(topicMatches('+/+', '/x'), 'an empty level is a level')
  t.notOk(topicMatches('#', '$SYS/x'), '[MQTT-4.7.2-1] no wildcard match of $ topics at the first level')
  t.notOk(topicMatches('+/x', '$SYS/x'))
  t.ok(topicMatches('$SYS/#', '$SYS/x'))
})

void t.test('timer wheel: entries expire on time (never early, at most a tick late), removal cancels', async (t) => {
  interface E extends WheelEntry { id: string }
  const expired: Array<[string, number]> = []
  const wheel = new TimerWheel<E>({ tickMs: 20, onExpire: (es) => { for (const e of es) expired.push([e.id, Date.now()]) } })
  const start = Date.now()
  const a: E = { id: 'a', bucket: null }
  const b: E = { id: 'b', bucket: null }
  const c: E = { id: 'c', bucket: null }
  wheel.add(a, start + 60)
  wheel.add(b, start + 120)
  wheel.add(c, start + 60)
  t.equal(wheel.size, 3)
  wheel.remove(c)
  t.equal(wheel.size, 2)
  wheel.add(b, start + 30) // re-adding moves it
  t.equal(wheel.size, 2)
  await sleep(200)
  t.strictSame(expired.map(([id]) => id).sort(), ['a', 'b'], 'c was removed')
  const at = Object.fromEntries(expired)
  t.ok(at.b >= start + 30 && at.a >= start + 60, 'never early')
  t.ok(at.a <= start + 60 + 20 + 50, 'at most a tick late (plus a loaded machine\'s slack)')
  t.equal(wheel.size, 0)
  wheel.drain()
})

void t.test('router: params, one trailing slash, a wrong method names the right ones', async (t) => {
  const r = new Router({ logger: pino({ level: 'silent' }), maxBodyBytes: 1024 })
  const handle = async (): Promise<undefined> => undefined
  r.add([
    { method: 'GET', path: '/v1/groups/:g', who: 'viewer', handle },
    { method: 'PUT', path: '/v1/groups/:g', who: 'admin', handle },
    { method: 'GET', path: '/v1/groups/:g/jobs/:id', who: 'viewer', handle }
  ])
  const m = r.match('GET', '/v1/groups/a%20b')
  t.ok(m.kind === 'route' && m.params.g === 'a b', 'params are URL-decoded')
  t.equal(r.match('GET', '/v1/groups/x/').kind, 'route', 'one trailing slash is fine')
  const j = r.match('GET', '/v1/groups/x/jobs/frame-1')
  t.ok(j.kind === 'route' && j.params.g === 'x' && j.params.id === 'frame-1')
  const wrong = r.match('DELETE', '/v1/groups/x')
  t.strictSame(wrong, { kind: 'method', allowed: ['GET', 'PUT'] })
  t.equal(r.match('GET', '/v1/groups//jobs/x').kind, 'none', 'an empty param does not match')
  t.equal(r.match('GET', '/v2/groups/x').kind, 'none')
})

void t.test('selection: fifo takes the ready order, fair the longest idle, load the lowest; ties keep ready order', async (t) => {
  const ready = [
    { id: 'a', lastRound: 3, load: 0.5 },
    { id: 'b', lastRound: 0, load: null },
    { id: 'c', lastRound: 1, load: 0.1 },
    { id: 'd', lastRound: 0, load: 0.1 }
  ]
  const ids = (xs: typeof ready): string[] => xs.map((x) => x.id)
  t.strictSame(ids(select('fifo', ready, 2)), ['a', 'b'])
  t.strictSame(ids(select('fair', ready, 3)), ['b', 'd', 'c'], 'never taken part first, ready order between them')
  t.strictSame(ids(select('load', ready, 3)), ['c', 'd', 'a'], 'no load reported sorts last')
  t.strictSame(select('fifo', ready, 0), [])
  t.strictSame(ids(select('load', ready, 10)), ['c', 'd', 'a', 'b'], 'asking for more than are ready gives them all')
})
