// The store suite, PROTOCOL 1.1: startDelayMs, retries (section 3) and jobs (section 10).
import type { OpResult, StoreEvent } from '../../plugins/scheduler/index.js'
import { cfg, endings, observe, releases, sleep, until, type SuiteContext } from './helpers.js'

type Ev<T extends StoreEvent['type']> = Extract<StoreEvent, { type: T }>

function events<T extends StoreEvent['type']> (res: OpResult | OpResult[], type: T): Array<Ev<T>> {
  const all = Array.isArray(res) ? res : [res]
  return all.flatMap((r) => r.events.filter((e): e is Ev<T> => e.type === type))
}

export function retryAndJobTests ({ test, ready }: SuiteContext): void {
  test('startDelayMs: startAt is releasedAt + startDelayMs, the deadline counts from startAt', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, startDelayMs: 250, execTimeoutMs: 1000 }))
    const res = await store.ready('g', 'a', {})
    const r = releases(res)[0]
    t.equal(r.startAt, r.releasedAt + 250)
    t.equal(r.deadline, r.startAt + 1000)
    t.equal(r.attempt, 1, 'a first run is attempt 1')
    t.equal(r.job, null, 'no job: the group payload')
    t.equal(res.state.startAt, r.startAt, 'state shows startAt while executing')
    t.equal(res.state.attempt, 1)
  })

  test('retry: a timed-out round runs again with the same payload after the backoff, doubling, until max', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, execTimeoutMs: 100, resetMs: 0, payload: { p: 1 }, retry: { max: 2, backoffMs: 150 } }))
    await store.ready('g', 'a', {})
    let end: OpResult | null = null
    await until(async () => endings(end = await store.tick('g')).length > 0, 3000, 'round 1 times out')
    const e1 = end as unknown as OpResult
    t.equal(endings(e1)[0].outcome, 'timeout')
    const retry = events(e1, 'retry')
    t.equal(retry.length, 1, 'a retry is scheduled')
    t.match(retry[0], { group: 'g', round: 1, attempt: 2, job: null })
    t.equal(retry[0].at, endings(e1)[0].endedAt + 150, 'the first retry backoffMs after the end')
    t.equal(e1.state.attempt, 2, 'state shows the attempt the next release carries')
    t.equal(e1.timing.wakeAt, retry[0].at, 'the engine is woken when the backoff ends')
    const early = await store.ready('g', 'a', {})
    t.strictSame(releases(early), [], 'not released before the backoff has passed')
    let rel: OpResult | null = null
    await until(async () => releases(rel = await store.tick('g')).length > 0, 3000, 'the retry is released')
    const r2 = releases(rel as unknown as OpResult)[0]
    t.ok(r2.releasedAt >= retry[0].at, 'released after the backoff')
    t.equal(r2.attempt, 2)
    t.strictSame(r2.payload, { p: 1 }, 'the same payload')
    await until(async () => endings(end = await store.tick('g')).length > 0, 3000, 'attempt 2 times out')
    const e2 = end as unknown as OpResult
    t.equal(endings(e2)[0].attempt, 2, 'the summary carries the attempt')
    t.equal(events(e2, 'retry')[0]?.at, endings(e2)[0].endedAt + 300, 'each next retry twice as long')
    await store.ready('g', 'a', {})
    await until(async () => releases(await store.tick('g')).length > 0, 3000, 'attempt 3 released')
    await until(async () => endings(end = await store.tick('g')).length > 0, 3000, 'attempt 3 times out')
    const e3 = end as unknown as OpResult
    t.strictSame(events(e3, 'retry'), [], 'max 2 retries: no third')
    t.match(events(e3, 'exhausted'), [{ group: 'g', round: 3, attempt: 3 }], 'the last retry failed too')
    t.equal(e3.state.attempt, 1)
    const next = releases(await store.ready('g', 'a', {}))
    t.equal(next[0]?.attempt, 1, 'the chain is over: attempt 1 again')
  })

  test('retry: in a scheduled group the retry does not wait for another tick', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, schedule: '0 0 0 1 1 *', execTimeoutMs: 100, resetMs: 0, startDelayMs: 50, retry: { max: 1, backoffMs: 100 } }))
    await store.ready('g', 'a', {})
    t.equal(releases(await store.ctl('g', { op: 'release' })).length, 1, 'a once-a-year group released by ctl')
    let end: OpResult | null = null
    await until(async () => endings(end = await store.tick('g')).length > 0, 3000, 'it times out')
    await store.ready('g', 'a', {})
    let rel: OpResult | null = null
    await until(async () => releases(rel = await store.tick('g')).length > 0, 3000, 'the retry is released within a year')
    const r2 = releases(rel as unknown as OpResult)[0]
    t.equal(r2.attempt, 2)
    t.ok(r2.releasedAt >= endings(end as unknown as OpResult)[0].endedAt + 100, 'after its backoff')
    t.equal(r2.startAt, r2.releasedAt + 50, 'starting startDelayMs after it is released')
    t.equal((rel as unknown as OpResult).state.missed, 0, 'no tick involved')
  })

  test('retry: the chain ends on completion, an operator abort, or a payload change', async (t, store) => {
    await store.putGroup('g', cfg({ need: 2, resetMs: 0, dropTolerance: 0, retry: { max: 5, backoffMs: 0 } }))
    await ready(store, 'g', ['a', 'b'])
    const drop = await store.leave('g', 'b')
    t.equal(endings(drop)[0].outcome, 'aborted')
    t.equal(events(drop, 'retry')[0]?.attempt, 2, 'aborted by dropouts: retried')
    const r2 = releases(await ready(store, 'g', ['a', 'b']))
    t.equal(r2[0].attempt, 2)
    const abort = await store.ctl('g', { op: 'abort' })
    t.strictSame(events(abort, 'retry'), [], 'an operator abort is not retried')
    t.strictSame(events(abort, 'exhausted'), [])
    t.equal(releases(await ready(store, 'g', ['a', 'b']))[0].attempt, 1)
    await store.leave('g', 'b')
    t.equal((await store.getGroup('g'))?.state.attempt, 2, 'a retry pending')
    const changed = await store.ctl('g', { op: 'configure', config: { payload: { v: 2 } } })
    t.equal(changed.state.attempt, 1, 'a new payload ends the chain')
    t.equal(releases(await ready(store, 'g', ['a', 'b']))[0].attempt, 1)
    await store.done('g', 'a', { round: 4 })
    const ok = await store.done('g', 'b', { round: 4 })
    t.equal(endings(ok)[0].outcome, 'completed')
    t.strictSame(events(ok, 'retry'), [])
    t.equal(ok.state.attempt, 1)
  })

  test('jobs: submit is idempotent by id, a different payload is a duplicate, the queue has a limit', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, paused: true }))
    const a = await store.ctl('g', { op: 'submit', job: { id: 'j1', payload: { frame: 1, opts: { a: 1, b: 2 } } } })
    t.equal(a.created, true)
    t.match(a.job, { id: 'j1', group: 'g', payload: { frame: 1 }, priority: 0, state: 'queued', attempts: 0, rounds: [], result: null, startedAt: null, endedAt: null })
    t.type(a.job?.submittedAt, 'number')
    t.equal(a.state.queued, 1)
    t.match(events(a, 'job'), [{ job: { id: 'j1', state: 'queued' } }], 'a job event')
    const again = await store.ctl('g', { op: 'submit', job: { id: 'j1', payload: { opts: { b: 2, a: 1 }, frame: 1 } } })
    t.equal(again.created, false, 'the same id and payload: the existing job, nothing changed')
    t.strictSame(again.job, a.job)
    t.equal(again.state.queued, 1)
    const before = await observe(store, 'g')
    await t.rejects(store.ctl('g', { op: 'submit', job: { id: 'j1', payload: { frame: 2 } } }), { code: 'duplicate' })
    t.strictSame(await observe(store, 'g'), before, 'refused: nothing changed')
    await store.ctl('g', { op: 'submit', job: { id: 'j2', payload: 2 } })
    await store.ctl('g', { op: 'submit', job: { id: 'j3', payload: 3 } })
    const full = await observe(store, 'g')
    await t.rejects(store.ctl('g', { op: 'submit', job: { id: 'j4', payload: 4 } }), { code: 'unavailable' }, 'maxQueuedJobs 3')
    t.strictSame(await observe(store, 'g'), full, 'refused at the limit: nothing changed')
    t.equal(await store.job('g', 'j4'), null)
    t.strictSame((await store.jobs('g', { limit: 10 })).map((j) => j.id), ['j3', 'j2', 'j1'], 'newest first')
    t.strictSame((await store.jobs('g', { limit: 10, before: 'j3' })).map((j) => j.id), ['j2', 'j1'])
    t.strictSame((await store.jobs('g', { limit: 1, state: 'queued' })).map((j) => j.id), ['j3'])
  }, { maxQueuedJobs: 3 })

  test('jobs: each release runs the next job by priority then age; its result is its round', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0, payload: 'group payload' }))
    await store.ctl('g', { op: 'submit', job: { id: 'low', payload: 'L', priority: -1 } })
    await store.ctl('g', { op: 'submit', job: { id: 'old', payload: 'O' } })
    await store.ctl('g', { op: 'submit', job: { id: 'new', payload: 'N' } })
    await store.ctl('g', { op: 'submit', job: { id: 'urgent', payload: 'U', priority: 5 } })
    const order: string[] = []
    for (let round = 1; round <= 5; round++) {
      const res = await store.ready('g', 'a', {})
      const r = releases(res)[0]
      order.push(String(r.job))
      t.equal(r.payload, r.job === null ? 'group payload' : ({ low: 'L', old: 'O', new: 'N', urgent: 'U' } as Record<string, string>)[r.job])
      if (r.job !== null) t.match(events(res, 'job').at(-1), { job: { id: r.job, state: 'running', attempts: 1, rounds: [round] } })
      const end = await store.done('g', 'a', { round, result: { r: round } })
      if (r.job !== null) {
        const j = await store.job('g', r.job)
        t.match(j, { state: 'completed', attempts: 1, rounds: [round] })
        t.match(j?.result, { round, outcome: 'completed', results: { a: { r: round } }, job: r.job })
        t.match(events(end, 'job').at(-1), { job: { id: r.job, state: 'completed' } })
      }
    }
    t.strictSame(order, ['urgent', 'old', 'new', 'low', 'null'], 'priority first, then the oldest; then the group payload')
  })

  test('jobs: jobsOnly holds the group until a job arrives; cancel a queued and a running job', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0, jobsOnly: true }))
    t.strictSame(releases(await store.ready('g', 'a', {})), [], 'no job queued: no release')
    const sub = await store.ctl('g', { op: 'submit', job: { id: 'j1', payload: 1 } })
    t.equal(releases(sub)[0]?.job, 'j1', 'the job arrives: released at once')
    t.equal(sub.job?.state, 'running', 'the submit answers the job as the transition left it')
    await store.ctl('g', { op: 'submit', job: { id: 'j2', payload: 2 } })
    const cq = await store.ctl('g', { op: 'cancel', id: 'j2' })
    t.equal(cq.job?.state, 'cancelled')
    t.equal(cq.state.queued, 0)
    const cr = await store.ctl('g', { op: 'cancel', id: 'j1' })
    t.equal(endings(cr)[0]?.outcome, 'aborted', 'cancelling a running job aborts its round')
    t.equal(cr.job?.state, 'cancelled')
    t.strictSame(events(cr, 'retry'), [], 'not retried')
    await t.rejects(store.ctl('g', { op: 'cancel', id: 'j1' }), { code: 'bad_request' }, 'already cancelled')
    await t.rejects(store.ctl('g', { op: 'cancel', id: 'nope' }), { code: 'unknown_job' })
    t.strictSame(releases(await store.ready('g', 'a', {})), [], 'jobsOnly: nothing queued, nothing released')
  })

  test('jobs: a timed-out job is retried under the group policy, then failed', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0, execTimeoutMs: 100, retry: { max: 1, backoffMs: 0 } }))
    await store.ctl('g', { op: 'submit', job: { id: 'slow', payload: 's' } })
    await store.ctl('g', { op: 'submit', job: { id: 'next', payload: 'n' } })
    t.equal(releases(await store.ready('g', 'a', {}))[0].job, 'slow')
    await until(async () => endings(await store.tick('g')).length > 0, 3000, 'timeout')
    t.match(await store.job('g', 'slow'), { state: 'running', attempts: 1 }, 'still its job: a retry is pending')
    const r2 = releases(await store.ready('g', 'a', {}))[0]
    t.match(r2, { job: 'slow', attempt: 2, payload: 's' }, 'the retry runs the same job before the next one')
    let end: OpResult | null = null
    await until(async () => endings(end = await store.tick('g')).length > 0, 3000, 'timeout again')
    t.match(events(end as unknown as OpResult, 'exhausted'), [{ attempt: 2, job: 'slow' }])
    t.match(await store.job('g', 'slow'), { state: 'failed', attempts: 2, rounds: [1, 2], result: { round: 2, outcome: 'timeout' } })
    await sleep(5)
    t.match(releases(await store.ready('g', 'a', {}))[0], { job: 'next', attempt: 1 })
  })
}
