// The benchmark harness's own arithmetic and its HTTP rival, so a benchmark figure can be trusted:
// what a participant accepts as a release (1.1 and 1.0), the start-skew figures, the medians and
// verdicts, and the node:http long-poll rival answering parked polls on the deciding ready.
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { checkMessage } from '../bench/gen/check.js'
import { median, met, verdict } from '../bench/lib/report.js'
import { skewOf } from '../bench/lib/skew.js'
import { createLongPollRival } from '../bench/rivals/http-longpoll.js'

const v11 = {
  group: 'g', round: 3, attempt: 1, job: null, releasedAt: 1000, startAt: 1050, deadline: 61000, serverTime: 1002,
  participants: 4, bosses: [], payload: null, role: 'small', shard: { index: 2, count: 4 }
}
const buf = (x: unknown): Buffer => Buffer.from(JSON.stringify(x))
const expect = { kind: 'release' as const, group: 'g', n: 4, round: 3 }

void t.test('a participant accepts a 1.1 release and a 1.0 one that lists it, and says what is wrong otherwise', async (t) => {
  const ok = checkMessage(buf(v11), 'c2', expect)
  t.same([ok.problem, ok.format, ok.startAt, ok.serverTime, ok.round], [null, 'count', 1050, 1002, 3])
  const v10 = { ...v11, participants: ['c0', 'c1', 'c2', 'c3'], attempt: undefined, startAt: undefined, serverTime: undefined, job: undefined }
  t.same([checkMessage(buf(v10), 'c2', expect).problem, checkMessage(buf(v10), 'c2', expect).format], [null, 'list'])
  t.match(checkMessage(buf(v10), 'c9', expect).problem, /c9 not among/)
  t.match(checkMessage(buf({ ...v11, participants: 5 }), 'c2', expect).problem, /participants 5, expected 4/)
  t.match(checkMessage(buf({ ...v11, serverTime: undefined }), 'c2', expect).problem, /serverTime/)
  t.match(checkMessage(buf({ ...v11, round: 2 }), 'c2', expect).problem, /round 2, expected 3/)
  t.match(checkMessage(buf({ ...v11, shard: { index: 4, count: 4 } }), 'c2', expect).problem, /shard/)
  t.equal(checkMessage(Buffer.from('{"group":'), 'c2', expect).problem, 'not JSON')
  t.equal(checkMessage(Buffer.alloc(64, 'x'), 'c2', { kind: 'plain', bytes: 64 }).problem, null)
  t.match(checkMessage(Buffer.alloc(63, 'x'), 'c2', { kind: 'plain', bytes: 64 }).problem, /63 bytes/)
})

void t.test('start skew: estimates, spreads and "before startAt" on one clock', async (t) => {
  // epoch ms E maps to monotonic ns E * 1e6 - offset; pick offset so startAt 1050 is 50 ms mono
  const offset = 1000 * 1e6
  const ms = 1e6
  // three participants: serverTime 1002 for all, received at 10, 20 and 70 ms (mono)
  const s = skewOf([[10 * ms, 1050, 1002], [20 * ms, 1050, 1002], [70 * ms, 1050, 1002]], offset, 3)
  t.equal(s.beforeStart, 2, 'received at 10 and 20 ms, before startAt at 50 ms')
  t.equal(s.ownViewBefore, 3, 'each saw 48 ms left by its own reckoning')
  // estimates: 10+48, 20+48, 70+48 = 58, 68, 118 ms; spread above the earliest 0, 10, 60
  t.same(s.est, { p50: 10, p99: 60, max: 60 })
  t.same(s.started, { p50: 10, p99: 60, max: 60 })
  t.equal(s.estMinusStartAt, 18, 'median estimate 68 ms against the true 50 ms')
  t.equal(s.lastMinusStartAt, 20)
  t.equal(s.startAts, 1)
  // a release received after its start instant by its own reckoning starts at once
  const late = skewOf([[10 * ms, 1050, 1002], [90 * ms, 1050, 1060]], offset, 2)
  t.same(late.started, { p50: 0, p99: 32, max: 32 }, 'started at 58 and 90 ms')
  t.equal(skewOf([], offset, 5).received, 0)
})

void t.test('medians and verdicts', async (t) => {
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.ok(Number.isNaN(median([])))
  t.equal(met(0.4, { op: '<=', value: 0.5 }), 'yes')
  t.equal(met(0.6, { op: '<=', value: 0.5 }), 'no')
  t.equal(met(60000, { op: '>=', value: 50000 }), 'yes')
  t.equal(met(null, { op: '<=', value: 1 }), '-')
  const v = verdict('last', 100, 'aedes', 250, { op: '<=', value: 0.5 })
  t.equal(v.ratio, 0.4)
  t.equal(verdict('last', 100, 'mosquitto', null, { op: '<=', value: 1 }).ratio, null, 'a rival not installed gives no ratio')
})

void t.test('the node:http rival answers every parked poll when the need-th ready arrives', async (t) => {
  t.plan(7)
  const rival = createLongPollRival(3)
  await new Promise<void>((resolve) => rival.server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { rival.server.closeAllConnections(); rival.server.close() })
  const base = `http://127.0.0.1:${(rival.server.address() as AddressInfo).port}/v1/groups/g`
  const ready = async (id: string): Promise<number> => (await fetch(`${base}/ready`, { method: 'POST', body: JSON.stringify({ clientId: id }) })).status
  const polls = ['c0', 'c1'].map(async (id) => await fetch(`${base}/release?clientId=${id}&after=0&wait=10`))
  for (let i = 0; i < 100 && rival.status().pending < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(rival.status().pending, 2, 'both polls parked')
  t.equal(await ready('c0'), 200)
  t.equal(await ready('c1'), 200)
  t.equal(await ready('c2'), 200, 'the deciding ready')
  const answers = await Promise.all(polls)
  for (const [i, r] of answers.entries()) {
    const body = Buffer.from(await r.arrayBuffer())
    t.same([r.status, checkMessage(body, `c${i}`, { kind: 'release', group: 'g', n: 3, round: 1 }).problem], [200, null], `c${i} got a release of 1`)
  }
  const quick = await fetch(`${base}/release?clientId=c0&after=1&wait=0`)
  t.same([quick.status, quick.headers.get('x-round')], [204, '1'], 'nothing newer: 204 with the round')
})
