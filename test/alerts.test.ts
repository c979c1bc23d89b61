// Alerts (PROTOCOL section 9) end to end on one process: a real server, terminals over MQTT and
// HTTP, and webhook receivers that are real HTTP servers. Each event arrives once, signed; a
// receiver that fails is retried; delivery never holds a round up; the queue is bounded.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { ConfigError, loadSettings } from '../broker/config.js'
import { installAlerts, globMatcher, type AlertOutcome } from '../plugins/alerts/index.js'
import { Engine, MemoryStore } from '../plugins/scheduler/index.js'
import { freePort, sleep, waitFor } from './helpers/broker.js'
import { fleet } from './helpers/rounds.js'
import { get, post } from './helpers/http.js'
import { find, parseProm } from './helpers/prom.js'
import { startReceiver, validSignature, type Hook } from './helpers/webhook.js'

const dir = await mkdtemp(join(tmpdir(), 'rg-alerts-'))
t.teardown(async () => await rm(dir, { recursive: true, force: true }))

async function refusal (config: unknown): Promise<string> {
  const path = join(dir, `c-${Math.random().toString(36).slice(2)}.json`)
  await writeFile(path, JSON.stringify(config))
  try {
    loadSettings(['--config', path], {})
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return err.message
  }
  return 'accepted'
}

void t.test('the alerts setting is validated with messages naming the entry and the key', async (t) => {
  const hook = { url: 'https://chat.example/hooks/abc', events: ['timeout'] }
  t.match(await refusal({ alerts: [{ ...hook, url: 'ftp://x/y' }] }), /alerts\.0\.url: must be an http:\/\/ or https:\/\/ URL/)
  t.match(await refusal({ alerts: [{ ...hook, url: 'not a url' }] }), /alerts\.0\.url: must be an http/)
  t.match(await refusal({ alerts: [hook, { ...hook, events: ['finished'] }] }), /alerts\.1\.events\.0: must be one of aborted, timeout, missed, retry, exhausted/)
  t.match(await refusal({ alerts: [{ ...hook, events: [] }] }), /alerts\.0\.events: must name at least one event/)
  t.match(await refusal({ alerts: [{ ...hook, secret: '' }] }), /alerts\.0\.secret: must not be empty/)
  t.match(await refusal({ alerts: [{ ...hook, groups: 'a/b' }] }), /alerts\.0\.groups: must be a group name glob/)
  t.match(await refusal({ alerts: [{ ...hook, header: 'x' }] }), /alerts\.0: unknown key\(s\) header/)
  t.match(await refusal({ alerts: { url: hook.url } }), /alerts: Expected array/)
  t.match(await refusal({ maxQueuedJobs: 0 }), /maxQueuedJobs/)
  t.equal(await refusal({ alerts: [{ ...hook, events: ['aborted', 'missed'], groups: 'render-*', secret: 's' }], maxQueuedJobs: 5 }), 'accepted')
  t.strictSame(loadSettings([], {}).alerts, [], 'no alerts by default')
  t.equal(loadSettings([], {}).maxQueuedJobs, 10000)
  t.ok(globMatcher('render-*')('render-eu'))
  t.notOk(globMatcher('render-*')('prerender-eu'), 'a glob matches the whole name')
  t.ok(globMatcher('g?')('g1'))
  t.notOk(globMatcher('g.x')('gax'), 'a dot is a dot')
})

/** The alerts a receiver took, as "event group round" lines, in order. */
function lines (hooks: Hook[]): string[] {
  return hooks.map((h) => `${h.json.event} ${h.json.group} ${h.json.round ?? '-'}`)
}

void t.test('each event reaches its webhooks once, signed, in order; groups and events filter', async (t) => {
  const all = await startReceiver()
  const exhaustedOnly = await startReceiver()
  const others = await startReceiver()
  t.teardown(async () => { await all.close(); await exhaustedOnly.close(); await others.close() })
  const secret = 'chat-hook-secret'
  const f = await fleet(t, { need: 1, execTimeoutMs: 300, resetMs: 0, payload: { job: 'render' }, retry: { max: 1, backoffMs: 200 } }, {
    alerts: [
      { url: all.url, events: ['aborted', 'timeout', 'missed', 'retry', 'exhausted'], secret },
      { url: exhaustedOnly.url, events: ['exhausted'], groups: 'g' },
      { url: others.url, events: ['timeout', 'aborted'], groups: 'other-*' }
    ]
  })
  const a = await f.term('a')
  await a.ready()
  t.match((await a.release()).json, { round: 1, attempt: 1 })
  await all.waitDelivered(2) // timeout of round 1, its retry
  await a.ready()
  t.match((await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === 2)).json, { attempt: 2, payload: { job: 'render' } })
  await all.waitDelivered(4) // timeout of round 2, retries exhausted
  await a.ready()
  await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === 3)
  t.match((await f.ctl({ op: 'abort' })).json, { ok: true })
  const got = await all.waitDelivered(5)
  t.strictSame(lines(got), ['timeout g 1', 'retry g 1', 'timeout g 2', 'exhausted g 2', 'aborted g 3'], 'each event once, in the order it happened')
  for (const h of got) {
    t.ok(validSignature(h, secret), `${h.json.event}: X-Roundgate-Signature is the HMAC-SHA256 of the body`)
    t.equal(h.headers['content-type'], 'application/json')
    t.type(h.json.at, 'number')
    t.ok(Math.abs(h.json.at - h.at) < 2000, 'at is the broker clock when it happened')
    t.strictSame(Object.keys(h.json).sort(), ['at', 'detail', 'event', 'group', 'round'])
  }
  t.match(got[0].json.detail, { group: 'g', round: 1, attempt: 1, outcome: 'timeout', participants: ['a'], stragglers: ['a'] }, 'timeout: the round summary')
  t.match(got[1].json.detail, { round: 1, attempt: 2, job: null, notBefore: got[0].json.detail.endedAt + 200 }, 'retry: which attempt, not before when')
  t.match(got[3].json.detail, { round: 2, attempt: 2, job: null }, 'exhausted: the last attempt')
  t.match(got[4].json.detail, { round: 3, outcome: 'aborted' })
  await exhaustedOnly.waitDelivered(1)
  await sleep(300)
  t.strictSame(lines(exhaustedOnly.hits), ['exhausted g 2'], 'only the events it asked for')
  t.equal(exhaustedOnly.hits[0].headers['x-roundgate-signature'], undefined, 'no secret: no signature')
  t.equal(others.hits.length, 0, 'a webhook for other groups hears nothing of g')
  t.equal(all.hits.length, 5, 'nothing twice')
})

void t.test('a missed tick is alerted with the rule that did not hold', async (t) => {
  const rx = await startReceiver()
  t.teardown(rx.close)
  const f = await fleet(t, { need: 2, schedule: '* * * * * *', misfireMs: 0, resetMs: 0 }, {
    alerts: [{ url: rx.url, events: ['missed'] }]
  })
  const a = await f.term('a')
  await a.ready() // one of two: no tick can release
  const [first] = await rx.waitDelivered(1, 4000)
  t.match(first.json, { event: 'missed', group: 'g', detail: { tick: Number, reason: String } })
  t.equal(first.json.round, undefined, 'a missed tick has no round')
  t.equal(first.json.detail.tick % 1000, 0, 'the tick is a whole second')
  t.match(first.json.detail.reason, /1 small terminals? online, 2 needed/)
  t.ok((await f.state()).missed >= 1, 'state.missed counts it')
  await f.broker.server.engine.patchGroup('g', { schedule: null })
  const n = rx.hits.length
  await sleep(1300)
  t.equal(rx.hits.length, n, 'no schedule, no missed ticks')
  const ticks = rx.hits.map((h) => h.json.detail.tick)
  t.equal(new Set(ticks).size, ticks.length, 'each tick alerted once')
})

void t.test('a receiver that answers 500 twice still gets the alert; /metrics counts the outcomes', async (t) => {
  const rx = await startReceiver((n) => n < 2 ? 500 : 204)
  t.teardown(rx.close)
  const f = await fleet(t, { need: 1, resetMs: 0 }, { httpPort: await freePort(), alerts: [{ url: rx.url, events: ['aborted'], secret: 'k' }] })
  const base = `http://127.0.0.1:${f.broker.server.ports.http}`
  await post(base, '/v1/groups/g/ready', { clientId: 'h1' }) // an HTTP terminal
  t.equal((await post(base, '/v1/groups/g/ctl', { op: 'abort' })).status, 200)
  const [hook] = await rx.waitDelivered(1, 8000)
  t.equal(rx.hits.length, 3, 'two failures, then delivered')
  t.ok(rx.hits.every((h) => h.raw === hook.raw), 'the same body each time')
  t.ok(validSignature(hook, 'k'))
  t.ok(rx.hits[1].at - rx.hits[0].at >= 900, `the first retry after about 1 s (${rx.hits[1].at - rx.hits[0].at} ms)`)
  t.ok(rx.hits[2].at - rx.hits[1].at >= 1900, `the second after about 2 s more (${rx.hits[2].at - rx.hits[1].at} ms)`)
  const s = parseProm((await get(base, '/metrics')).text).samples
  const count = (outcome: string): number | undefined => find(s, 'roundgate_alert_deliveries_total', { outcome })?.value
  t.strictSame([count('delivered'), count('retried'), count('failed'), count('dropped')], [1, 2, 0, 0])
})

void t.test('delivery never holds a round up: rounds go on while a receiver hangs', async (t) => {
  let answer: (status: number) => void = () => {}
  const held = new Promise<number>((resolve) => { answer = resolve })
  const rx = await startReceiver(async () => await held)
  t.teardown(async () => { answer(200); await rx.close() })
  const f = await fleet(t, { need: 1, resetMs: 0, execTimeoutMs: 200 }, { alerts: [{ url: rx.url, events: ['timeout'] }] })
  const a = await f.term('a')
  await a.ready()
  await a.release()
  await waitFor(() => rx.hits.length === 1, 3000, 'the timeout alert is being delivered')
  await a.ready()
  const r2 = (await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === 2)).json
  await a.done(2)
  await f.waitPhase('WAITING')
  t.equal((await f.state()).round, 2, 'round 2 released and completed while the alert of round 1 was unanswered')
  t.equal(r2.attempt, 1)
  t.equal(rx.delivered().length, 0, 'still unanswered')
  answer(200)
  await rx.waitDelivered(1)
  t.equal(f.broker.server.alerts.pending(), 0)
})

/** pino lines written by the plugin, parsed. */
function logSink (): { log: pino.Logger, lines: Array<{ msg: string, [k: string]: unknown }> } {
  const lines: Array<{ msg: string }> = []
  const stream = new Writable({ write (chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString())); cb() } })
  return { log: pino({ level: 'info' }, stream), lines }
}

async function engineOnly (t: Test): Promise<Engine> {
  const engine = new Engine({ store: new MemoryStore(), logger: pino({ level: 'silent' }), autoCreateGroups: true })
  await engine.start()
  t.teardown(async () => await engine.stop())
  return engine
}

void t.test('a destination that keeps failing: retried on the schedule, given up, one log line per streak', async (t) => {
  const rx = await startReceiver(() => 503)
  t.teardown(rx.close)
  const engine = await engineOnly(t)
  const { log, lines: logged } = logSink()
  const outcomes: AlertOutcome[] = []
  const alerts = installAlerts({ engine, rules: [{ url: rx.url, events: ['missed', 'exhausted'] }], logger: log, observer: { alertDelivery: (o) => outcomes.push(o) }, retryDelaysMs: [30, 60] })
  t.teardown(async () => await alerts.close(0))
  engine.emit('notice', { type: 'missed', group: 'g', missed: { tick: 1000, reason: 'paused' } })
  engine.emit('notice', { type: 'exhausted', group: 'g', round: 7, attempt: 3, job: 'j' })
  engine.emit('notice', { type: 'retry', group: 'g', round: 7, attempt: 2, at: 0, job: null }) // not asked for
  await waitFor(() => outcomes.filter((o) => o === 'failed').length === 2, 3000, 'both given up')
  t.equal(rx.hits.length, 6, 'three attempts each (the schedule has two waits)')
  t.strictSame(lines(rx.hits), ['missed g -', 'missed g -', 'missed g -', 'exhausted g 7', 'exhausted g 7', 'exhausted g 7'], 'in order, one alert at a time')
  t.strictSame(outcomes, ['retried', 'retried', 'failed', 'retried', 'retried', 'failed'])
  const failing = logged.filter((l) => l.msg.startsWith('alert delivery failing'))
  t.equal(failing.length, 1, 'one line for the failure streak')
  t.match(failing[0], { url: new URL(rx.url).origin, problem: 'HTTP 503' })
  t.notOk(JSON.stringify(logged).includes('/hook'), 'log lines name the origin, never the path (webhook paths hold tokens)')
  t.match(logged.filter((l) => l.msg === 'alert given up'), [{ event: 'missed', attempts: 3 }, { event: 'exhausted', round: 7, attempts: 3 }], 'one line per give-up')
  rx.answer = () => 200
  engine.emit('notice', { type: 'missed', group: 'g', missed: { tick: 2000, reason: 'paused' } })
  await rx.waitDelivered(1)
  await waitFor(() => logged.some((l) => l.msg === 'alert deliveries work again'), 2000, 'the streak ends')
  t.equal(outcomes.at(-1), 'delivered')
})

void t.test('the queue is bounded per destination: the oldest alerts are dropped, with a log line', async (t) => {
  let open: (s: number) => void = () => {}
  const gate = new Promise<number>((resolve) => { open = resolve })
  const slow = await startReceiver(async () => await gate)
  const fast = await startReceiver()
  t.teardown(async () => { open(200); await slow.close(); await fast.close() })
  const engine = await engineOnly(t)
  const { log, lines: logged } = logSink()
  const outcomes: AlertOutcome[] = []
  const alerts = installAlerts({
    engine,
    rules: [{ url: slow.url, events: ['missed'] }, { url: fast.url, events: ['missed'] }],
    logger: log,
    observer: { alertDelivery: (o) => outcomes.push(o) },
    queueLimit: 3
  })
  for (let i = 1; i <= 8; i++) {
    engine.emit('notice', { type: 'missed', group: 'g', missed: { tick: i * 1000, reason: 'r' } })
    await fast.waitDelivered(i)
  }
  t.strictSame(fast.delivered().map((h) => h.json.detail.tick), [1, 2, 3, 4, 5, 6, 7, 8].map((i) => i * 1000), 'a healthy destination is not held up by a slow one')
  await waitFor(() => slow.hits.length === 1, 2000, 'the first alert in flight')
  t.equal(outcomes.filter((o) => o === 'dropped').length, 4, '1 in flight + 3 queued: the 4 oldest of the rest dropped')
  t.equal(logged.filter((l) => l.msg.startsWith('alert queue full')).length, 1, 'one line when dropping starts')
  open(200)
  await slow.waitDelivered(4)
  t.strictSame(slow.delivered().map((h) => h.json.detail.tick), [1000, 6000, 7000, 8000], 'the newest kept')
  t.match(logged.filter((l) => l.msg === 'alert queue has room again'), [{ dropped: 4 }], 'and one line with the count when it has room')
  await alerts.close()
  t.equal(alerts.pending(), 0)
})

void t.test('shutdown: queued alerts get a grace period, then what is left is dropped and logged', async (t) => {
  const rx = await startReceiver(() => 500)
  t.teardown(rx.close)
  const engine = await engineOnly(t)
  const { log, lines: logged } = logSink()
  const outcomes: AlertOutcome[] = []
  const alerts = installAlerts({ engine, rules: [{ url: rx.url, events: ['missed'] }], logger: log, observer: { alertDelivery: (o) => outcomes.push(o) } })
  engine.emit('notice', { type: 'missed', group: 'g', missed: { tick: 1, reason: 'r' } })
  engine.emit('notice', { type: 'missed', group: 'g', missed: { tick: 2, reason: 'r' } })
  await waitFor(() => rx.hits.length === 1, 2000, 'first attempt')
  const t0 = Date.now()
  await alerts.close(200)
  t.ok(Date.now() - t0 < 1500, 'close does not wait out the retry schedule')
  t.strictSame(outcomes, ['retried', 'dropped', 'dropped'], 'the one backing off and the one queued are dropped')
  t.match(logged.find((l) => l.msg === 'alerts not delivered at shutdown'), { alerts: 2 })
  engine.emit('notice', { type: 'missed', group: 'g', missed: { tick: 3, reason: 'r' } })
  await sleep(100)
  t.equal(rx.hits.length, 1, 'nothing sent after close')
})
