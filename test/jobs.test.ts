// Jobs (PROTOCOL section 10) end to end on one process, over real MQTT and HTTP: 1,000 jobs from
// several clients at once run one per round in priority/FIFO order, none lost or run twice;
// idempotent submission; cancel; retries then failure; jobsOnly; the payload and queue limits;
// job events on rg/{g}/jobs; ctl submit answered on ctl/result; the list, get and cancel routes.
import type { MqttClient } from 'mqtt'
import t from 'tap'
import { connect, freePort, Inbox, send, sleep, waitFor } from './helpers/broker.js'
import { call, get, post } from './helpers/http.js'
import { rng } from './helpers/crash.js'
import { fleet, type Fleet } from './helpers/rounds.js'
import type { Test } from 'tap'

async function jobsFleet (t: Test, config: Record<string, unknown>, settings: Record<string, unknown> = {}): Promise<{ f: Fleet, base: string }> {
  const f = await fleet(t, config, { httpPort: await freePort(), ...settings })
  return { f, base: `http://127.0.0.1:${f.broker.server.ports.http}` }
}

/** An MQTT admin that submits over rg/{g}/ctl and waits for its ctl/result. */
async function mqttAdmin (t: Test, url: string, id: string): Promise<{ c: MqttClient, ctl: (body: unknown) => Promise<any> }> {
  const c = await connect(url, id)
  t.teardown(async () => { await c.endAsync(true) })
  const inbox = new Inbox(c)
  await c.subscribeAsync(`rg/g/ctl/result/${id}`, { qos: 1 })
  const topic = `rg/g/ctl/result/${id}`
  return {
    c,
    ctl: async (body) => {
      // one at a time on one connection: the next answer after those already received is this one's
      const from = inbox.messages.length
      await send(c, 'rg/g/ctl', body)
      return (await inbox.next(topic, 5000, from)).json
    }
  }
}

void t.test('1,000 jobs from several clients at once run one per round, by priority then age, none lost or run twice', async (t) => {
  const seed = Number(process.env.JOBS_SEED ?? 1)
  t.comment(`seed ${seed} (JOBS_SEED=${seed} replays it)`)
  const random = rng(seed)
  const { f, base } = await jobsFleet(t, { need: 1, resetMs: 0, jobsOnly: true, paused: true, execTimeoutMs: 30000 }, { rateClientPerS: 100000 }) // a burst of 1,000 submissions: over the default 50/s per client
  const watcher = await connect(f.broker.url, 'job-watcher')
  t.teardown(async () => { await watcher.endAsync(true) })
  const events = new Map<string, string[]>()
  watcher.on('message', (topic, payload) => {
    if (topic !== 'rg/g/jobs') return
    const j = JSON.parse(payload.toString())
    events.set(j.id, [...(events.get(j.id) ?? []), j.state])
  })
  await watcher.subscribeAsync('rg/g/jobs', { qos: 1 })

  // 2 HTTP clients × 50 and 4 MQTT clients × 225, all at once, each in its own order
  const plan: Array<{ id: string, priority: number, client: string, index: number }> = []
  const clients = [...['h0', 'h1'].map((c) => ({ c, n: 50 })), ...['m0', 'm1', 'm2', 'm3'].map((c) => ({ c, n: 225 }))]
  for (const { c, n } of clients) {
    for (let i = 0; i < n; i++) plan.push({ id: `${c}-${i}`, priority: Math.floor(random() * 4) - 1, client: c, index: i })
  }
  const byClient = (c: string): typeof plan => plan.filter((p) => p.client === c)
  const admins = await Promise.all(['m0', 'm1', 'm2', 'm3'].map(async (c) => await mqttAdmin(t, f.broker.url, `admin-${c}`)))
  const t0 = Date.now()
  const answers = await Promise.all([
    ...['h0', 'h1'].map(async (c) => {
      const out: number[] = []
      for (const p of byClient(c)) out.push((await post(base, '/v1/groups/g/jobs', { id: p.id, payload: { n: p.id }, priority: p.priority })).status)
      return out
    }),
    ...admins.map(async (adm, k) => {
      const out: number[] = []
      for (const p of byClient(`m${k}`)) {
        const res = await adm.ctl({ op: 'submit', job: { id: p.id, payload: { n: p.id }, priority: p.priority } })
        out.push(res.ok === true && res.job.id === p.id && res.job.state === 'queued' ? 201 : 500)
      }
      return out
    })
  ])
  t.ok(answers.flat().every((s) => s === 201), 'every submission accepted (HTTP 201, MQTT ctl/result ok with the queued job)')
  t.comment(`1000 jobs submitted in ${Date.now() - t0} ms`)
  t.equal((await f.state()).queued, 1000, 'state.queued')
  t.equal((await get(base, '/v1/groups/g/jobs?state=queued&limit=1000')).json.length, 1000)

  // a few fast terminals: two over MQTT and one over HTTP, each done at once and ready again (the
  // HTTP one, four requests a round, for its first 20 rounds only: rounds run one at a time)
  const runs: Array<{ round: number, job: string, payload: any, by: string }> = []
  for (const id of ['t1', 't2']) {
    const term = await f.term(id)
    term.c.on('message', (topic, payload) => {
      if (topic !== 'rg/g/release') return
      const r = JSON.parse(payload.toString())
      runs.push({ round: r.round, job: r.job, payload: r.payload, by: id })
      void term.done(r.round, { result: { ran: r.job } }).then(async () => await term.ready())
    })
    await term.ready()
  }
  let stop = false
  const httpTerminal = (async () => {
    let after = 0
    await post(base, '/v1/groups/g/ready', { clientId: 'h' })
    while (!stop) {
      const r = await get(base, `/v1/groups/g/release?clientId=h&after=${after}&wait=1`)
      if (r.status !== 200) continue
      after = r.json.round
      runs.push({ round: r.json.round, job: r.json.job, payload: r.json.payload, by: 'h' })
      await post(base, '/v1/groups/g/done', { clientId: 'h', round: r.json.round, result: { ran: r.json.job } })
      if (runs.filter((x) => x.by === 'h').length >= 20) break
      await post(base, '/v1/groups/g/ready', { clientId: 'h' })
    }
  })()
  const t1 = Date.now()
  t.equal((await call(base, 'PATCH', '/v1/groups/g', { paused: false })).status, 200)
  await waitFor(async () => { const s = await f.state(); return s.queued === 0 && s.phase === 'WAITING' && runs.length >= 1000 }, 60000, 'the queue runs dry')
  stop = true
  await httpTerminal
  t.comment(`1000 rounds in ${Date.now() - t1} ms`)
  await sleep(100)

  t.equal(runs.length, 1000, 'one release per job')
  t.equal(new Set(runs.map((r) => r.job)).size, 1000, 'no job ran twice')
  t.strictSame(new Set(runs.map((r) => r.job)), new Set(plan.map((p) => p.id)), 'none lost')
  t.ok(runs.every((r) => r.payload.n === r.job), 'each release carries its job\'s payload')
  t.equal((await f.state()).round, 1000, 'one round per job, and none with the group payload (jobsOnly)')
  t.ok(new Set(runs.map((r) => r.by)).size === 3, 'all three terminals took rounds')

  const order = [...runs].sort((a, b) => a.round - b.round).map((r) => plan.find((p) => p.id === r.job) as typeof plan[number])
  let inversions = 0
  const lastIndex = new Map<string, number>()
  for (let i = 0; i < order.length; i++) {
    if (i > 0 && order[i].priority > order[i - 1].priority) inversions++
    if (i > 0 && order[i].priority < order[i - 1].priority) lastIndex.clear()
    const prev = lastIndex.get(order[i].client)
    if (prev !== undefined && prev > order[i].index) inversions++
    lastIndex.set(order[i].client, order[i].index)
  }
  t.equal(inversions, 0, 'highest priority first; within a priority, each client\'s jobs in the order it sent them')
  const jobs = (await get(base, '/v1/groups/g/jobs?limit=1000')).json
  t.equal(jobs.length, 1000)
  t.ok(jobs.every((j: any) => j.state === 'completed' && j.attempts === 1 && j.rounds.length === 1), 'every job completed once')
  const sub = new Map<string, number>(jobs.map((j: any) => [j.id, j.submittedAt]))
  for (let i = 1; i < order.length; i++) {
    if (order[i].priority === order[i - 1].priority && (sub.get(order[i].id) ?? 0) < (sub.get(order[i - 1].id) ?? 0)) inversions++
  }
  t.equal(inversions, 0, 'within a priority, by submission time')
  const one = jobs.find((j: any) => j.id === 'm2-7')
  const ran = runs.find((r) => r.job === 'm2-7')
  t.match(one, { rounds: [ran?.round], result: { round: ran?.round, outcome: 'completed', job: 'm2-7', results: { [ran?.by ?? '?']: { ran: 'm2-7' } } } }, 'a job\'s result is its round')
  const seen = [...events.values()]
  t.equal(events.size, 1000, 'a job event for every job on rg/g/jobs')
  t.ok(seen.every((s) => s.join() === 'queued,running,completed'), 'each: queued, running, completed, once each')
})

void t.test('submit: 201 then 200 for the same job, 409 duplicate for another payload; the broker names a job without an id', async (t) => {
  const { f, base } = await jobsFleet(t, { need: 1, paused: true })
  const a = await post(base, '/v1/groups/g/jobs', { id: 'frame-1', payload: { frame: 1, size: [1920, 1080] }, priority: 3 })
  t.equal(a.status, 201)
  t.match(a.json, { id: 'frame-1', group: 'g', payload: { frame: 1 }, priority: 3, state: 'queued', attempts: 0, rounds: [], result: null, startedAt: null, endedAt: null })
  const again = await post(base, '/v1/groups/g/jobs', { id: 'frame-1', payload: { size: [1920, 1080], frame: 1 }, priority: 3 })
  t.equal(again.status, 200, 'the same id and payload (keys in another order): the existing job')
  t.strictSame(again.json, a.json, 'unchanged')
  const dup = await post(base, '/v1/groups/g/jobs', { id: 'frame-1', payload: { frame: 2 } })
  t.equal(dup.status, 409)
  t.equal(dup.json.error.code, 'duplicate')
  t.strictSame((await get(base, '/v1/groups/g/jobs/frame-1')).json, a.json, 'the refused submit changed nothing')
  const anon = await post(base, '/v1/groups/g/jobs', { payload: 'x' })
  t.equal(anon.status, 201)
  t.match(anon.json.id, /^[A-Za-z0-9_.:-]{1,128}$/, `the broker's id: ${anon.json.id}`)
  const adm = await mqttAdmin(t, f.broker.url, 'admin')
  t.match(await adm.ctl({ op: 'submit', job: { id: 'frame-1', payload: { frame: 1, size: [1920, 1080] }, priority: 3 } }), { op: 'submit', ok: true, job: a.json }, 'over MQTT: answered with the existing job')
  t.match(await adm.ctl({ op: 'submit', job: { id: 'frame-1', payload: 0 } }), { op: 'submit', ok: false, error: { code: 'duplicate' } })
  t.match(await adm.ctl({ op: 'submit', job: { id: 'bad id', payload: 0 } }), { ok: false, error: { code: 'bad_request' } })
  t.match(await adm.ctl({ op: 'submit', job: { id: 'x' } }), { ok: false, error: { code: 'bad_request', message: /payload/ } })
  for (const body of [{ id: 'p', payload: 1, priority: 1.5 }, { id: 'p', payload: 1, extra: 1 }, { id: 'p' }, 'not json']) {
    t.equal((await post(base, '/v1/groups/g/jobs', body)).status, 400, `refused: ${JSON.stringify(body)}`)
  }
  t.equal((await post(base, '/v1/groups/nope/jobs', { payload: 1 })).status, 404, 'an unknown group')
  t.equal((await f.state()).queued, 2, 'frame-1 and the anonymous job')
})

void t.test('payload limit: 16 KiB is taken, 16 KiB + 1 is refused 413 (and payload_too_large over MQTT)', async (t) => {
  const { f, base } = await jobsFleet(t, { need: 1, paused: true })
  const exact = 'x'.repeat(16 * 1024 - 2) // as JSON: 16384 bytes with its quotes
  t.equal((await post(base, '/v1/groups/g/jobs', { id: 'exact', payload: exact })).status, 201)
  const over = await post(base, '/v1/groups/g/jobs', { id: 'over', payload: exact + 'y' })
  t.equal(over.status, 413)
  t.equal(over.json.error.code, 'payload_too_large')
  t.equal((await get(base, '/v1/groups/g/jobs/over')).status, 404, 'nothing queued')
  const adm = await mqttAdmin(t, f.broker.url, 'admin')
  t.match(await adm.ctl({ op: 'submit', job: { id: 'over', payload: exact + 'y' } }), { ok: false, error: { code: 'payload_too_large' } })
  t.equal((await f.state()).queued, 1)
})

void t.test('maxQueuedJobs: beyond it 503 unavailable and nothing changes', async (t) => {
  const { f, base } = await jobsFleet(t, { need: 1, paused: true }, { maxQueuedJobs: 3 })
  for (const id of ['j1', 'j2', 'j3']) t.equal((await post(base, '/v1/groups/g/jobs', { id, payload: id })).status, 201)
  const before = [(await get(base, '/v1/groups/g/jobs')).json, (await f.state()).queued]
  const full = await post(base, '/v1/groups/g/jobs', { id: 'j4', payload: 'j4' })
  t.equal(full.status, 503)
  t.equal(full.json.error.code, 'unavailable')
  t.match(full.json.error.message, /3 jobs/)
  t.strictSame([(await get(base, '/v1/groups/g/jobs')).json, (await f.state()).queued], before, 'nothing changed')
  t.equal((await get(base, '/v1/groups/g/jobs/j4')).json.error.code, 'unknown_job')
  t.equal((await post(base, '/v1/groups/g/jobs', { id: 'j2', payload: 'j2' })).status, 200, 'a resubmit of a queued job is still answered')
  const adm = await mqttAdmin(t, f.broker.url, 'admin')
  t.match(await adm.ctl({ op: 'submit', job: { id: 'j5', payload: 5 } }), { ok: false, error: { code: 'unavailable' } }, 'over MQTT too')
  t.equal((await call(base, 'DELETE', '/v1/groups/g/jobs/j1')).status, 200)
  t.equal((await post(base, '/v1/groups/g/jobs', { id: 'j4', payload: 'j4' })).status, 201, 'room again after a cancel')
})

void t.test('jobsOnly holds the group until a job arrives; the release carries the job; events on rg/g/jobs', async (t) => {
  const { f, base } = await jobsFleet(t, { need: 1, resetMs: 0, jobsOnly: true, payload: 'the group payload' })
  const w = await connect(f.broker.url, 'w')
  t.teardown(async () => { await w.endAsync(true) })
  const inbox = new Inbox(w)
  await w.subscribeAsync('rg/g/jobs', { qos: 1 })
  const a = await f.term('a')
  await a.ready()
  await sleep(300)
  t.equal((await f.state()).phase, 'WAITING', 'ready, but no job: held')
  t.equal(a.inbox.on('rg/g/release').length, 0)
  const sub = await post(base, '/v1/groups/g/jobs', { id: 'render-1', payload: { scene: 'city' } })
  t.equal(sub.status, 201)
  const rel = (await a.release()).json
  t.match(rel, { round: 1, attempt: 1, job: 'render-1', payload: { scene: 'city' } }, 'released at once with the job')
  t.match((await get(base, '/v1/groups/g/jobs/render-1')).json, { state: 'running', attempts: 1, rounds: [1], startedAt: Number })
  await a.done(1, { result: { frames: 240 } })
  await waitFor(async () => (await get(base, '/v1/groups/g/jobs/render-1')).json.state === 'completed', 2000, 'completed')
  const job = (await get(base, '/v1/groups/g/jobs/render-1')).json
  t.match(job, { state: 'completed', endedAt: Number, result: { round: 1, outcome: 'completed', results: { a: { frames: 240 } }, participants: ['a'], stragglers: [] } })
  await waitFor(() => inbox.on('rg/g/jobs').length >= 3, 2000, 'three job events')
  const evs = inbox.on('rg/g/jobs')
  t.strictSame(evs.map((e) => e.json.state), ['queued', 'running', 'completed'])
  t.strictSame(evs[2].json, job, 'each event is the whole job')
  t.ok(evs.every((e) => !e.retain), 'not retained')
  await a.ready()
  await sleep(300)
  t.equal((await f.state()).round, 1, 'the queue is empty again: held again')
})

void t.test('cancel: a queued job is cancelled, a running one aborts its round (not retried)', async (t) => {
  const { f, base } = await jobsFleet(t, { need: 1, resetMs: 0, retry: { max: 3, backoffMs: 0 } })
  await post(base, '/v1/groups/g/jobs', { id: 'run', payload: 1 })
  await post(base, '/v1/groups/g/jobs', { id: 'wait', payload: 2 })
  await post(base, '/v1/groups/g/jobs', { id: 'later', payload: 3 })
  const watch = await f.watch()
  const a = await f.term('a')
  await a.ready()
  t.equal((await a.release()).json.job, 'run')
  const cq = await call(base, 'DELETE', '/v1/groups/g/jobs/wait')
  t.equal(cq.status, 200)
  t.match(cq.json, { id: 'wait', state: 'cancelled', endedAt: Number, rounds: [] })
  t.equal((await f.state()).queued, 1)
  const adm = await mqttAdmin(t, f.broker.url, 'admin')
  const cr = await adm.ctl({ op: 'cancel', id: 'run' })
  t.match(cr, { op: 'cancel', ok: true, job: { id: 'run', state: 'cancelled', attempts: 1, result: { outcome: 'aborted' } } }, 'over MQTT: answered with the job')
  t.match((await watch.next('rg/g/rounds')).json, { round: 1, job: 'run', outcome: 'aborted' }, 'its round aborted')
  await a.ready()
  const r2 = (await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === 2)).json
  t.match(r2, { job: 'later', attempt: 1 }, 'not retried: the next job runs')
  t.equal((await call(base, 'DELETE', '/v1/groups/g/jobs/run')).json.error.code, 'bad_request', 'already cancelled')
  t.equal((await call(base, 'DELETE', '/v1/groups/g/jobs/nope')).status, 404)
  t.equal((await call(base, 'DELETE', '/v1/groups/g/jobs/nope')).json.error.code, 'unknown_job')
})

void t.test('a job whose round times out is retried under the group policy, then failed', async (t) => {
  const { f, base } = await jobsFleet(t, { need: 1, resetMs: 0, execTimeoutMs: 200, retry: { max: 1, backoffMs: 100 } })
  await post(base, '/v1/groups/g/jobs', { id: 'slow', payload: 's' })
  await post(base, '/v1/groups/g/jobs', { id: 'next', payload: 'n' })
  const a = await f.term('a')
  await a.ready()
  t.match((await a.release()).json, { round: 1, job: 'slow', attempt: 1 })
  await waitFor(async () => (await f.state()).phase === 'WAITING', 2000, 'timeout')
  t.match((await get(base, '/v1/groups/g/jobs/slow')).json, { state: 'running', attempts: 1, result: { outcome: 'timeout' } }, 'still running while its retry backs off')
  await a.ready()
  t.match((await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === 2)).json, { job: 'slow', attempt: 2, payload: 's' }, 'the retry runs the same job before the next one')
  await waitFor(async () => (await get(base, '/v1/groups/g/jobs/slow')).json.state === 'failed', 2000, 'failed')
  t.match((await get(base, '/v1/groups/g/jobs/slow')).json, { state: 'failed', attempts: 2, rounds: [1, 2], result: { round: 2, outcome: 'timeout', stragglers: ['a'] } })
  await a.ready()
  const r3 = (await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === 3)).json
  t.match(r3, { job: 'next', attempt: 1 })
  await a.done(3)
})

void t.test('a job\'s retry chain: not ended by a change of the group payload; a cancel while it backs off ends it; an abort fails the job', async (t) => {
  const { f, base } = await jobsFleet(t, { need: 1, resetMs: 0, execTimeoutMs: 200, payload: 'group', retry: { max: 2, backoffMs: 500 } })
  await post(base, '/v1/groups/g/jobs', { id: 'j1', payload: 'one' })
  await post(base, '/v1/groups/g/jobs', { id: 'j2', payload: 'two' })
  await post(base, '/v1/groups/g/jobs', { id: 'j3', payload: 'three' })
  const a = await f.term('a')
  const next = async (round: number): Promise<any> => (await a.inbox.next((m) => m.topic === 'rg/g/release' && m.json.round === round, 4000)).json
  await a.ready()
  t.match(await next(1), { job: 'j1', attempt: 1 })
  await f.waitPhase('WAITING') // timed out: its retry backs off
  t.equal((await call(base, 'PATCH', '/v1/groups/g', { payload: 'changed' })).status, 200)
  t.equal((await f.state()).attempt, 2, 'a new group payload does not end the chain of a job')
  await a.ready()
  t.match(await next(2), { job: 'j1', attempt: 2, payload: 'one' }, 'the job runs again, with its own payload')
  await f.waitPhase('WAITING')
  const cancelled = await call(base, 'DELETE', '/v1/groups/g/jobs/j1')
  t.match(cancelled.json, { id: 'j1', state: 'cancelled', attempts: 2, rounds: [1, 2] }, 'cancelled while its retry backs off')
  t.equal((await f.state()).attempt, 1, 'the chain is over')
  await a.ready()
  t.match(await next(3), { job: 'j2', attempt: 1 }, 'the next job runs at once')
  t.match((await post(base, '/v1/groups/g/ctl', { op: 'abort' })).json, { ok: true })
  t.match((await get(base, '/v1/groups/g/jobs/j2')).json, { state: 'failed', attempts: 1, result: { outcome: 'aborted' } }, 'an operator abort fails the running job, without a retry')
  await a.ready()
  t.match(await next(4), { job: 'j3', attempt: 1 })
  await a.done(4)
})

void t.test('GET /v1/groups/{g}/jobs: newest first, by state, limit, before; bad queries refused', async (t) => {
  const { base } = await jobsFleet(t, { need: 1, paused: true })
  for (let i = 1; i <= 5; i++) await post(base, '/v1/groups/g/jobs', { id: `j${i}`, payload: i })
  await call(base, 'DELETE', '/v1/groups/g/jobs/j2')
  const ids = async (q: string): Promise<string[]> => (await get(base, `/v1/groups/g/jobs${q}`)).json.map((j: any) => j.id)
  t.strictSame(await ids(''), ['j5', 'j4', 'j3', 'j2', 'j1'])
  t.strictSame(await ids('?state=queued'), ['j5', 'j4', 'j3', 'j1'])
  t.strictSame(await ids('?state=cancelled'), ['j2'])
  t.strictSame(await ids('?limit=2'), ['j5', 'j4'])
  t.strictSame(await ids('?limit=2&before=j4'), ['j3', 'j2'], 'the next page')
  t.strictSame(await ids('?state=queued&before=j3'), ['j1'])
  t.strictSame(await ids('?state=completed'), [])
  for (const q of ['?state=done', '?limit=0', '?limit=1001', '?before=nope', '?before=bad%20id']) {
    const r = await get(base, `/v1/groups/g/jobs${q}`)
    t.equal(r.status, 400, `${q}: ${r.json?.error?.message}`)
  }
  t.equal((await get(base, '/v1/groups/nope/jobs')).json.error.code, 'unknown_group')
  t.equal((await get(base, '/v1/groups/g/jobs/j3')).json.id, 'j3')
})
