// The abstract store suite (like aedes-persistence's abstract tests): every rule of PROTOCOL
// section 3 through the Store interface alone. Every implementation runs it:
// test/store-memory.test.ts and test/store-redis.test.ts. Real time, small millisecond configs,
// polling with a bounded helper; no assertion is about speed.
import type { Test } from 'tap'
import { DEFAULT_GROUP_CONFIG, mergeConfig } from '../plugins/scheduler/group-config.js'
import type { Store } from '../plugins/scheduler/store.js'
import type { GroupConfig, OpResult, ReleaseRecord, RoundSummary, StoreEvent } from '../plugins/scheduler/types.js'

export interface SuiteStoreOptions {
  maxTerminalsPerGroup?: number
  historyLimit?: number
}

export type MakeStore = (opts: SuiteStoreOptions) => Promise<{ store: Store, cleanup: () => Promise<void> }>

export function cfg (patch: Partial<GroupConfig> = {}): GroupConfig {
  return mergeConfig(DEFAULT_GROUP_CONFIG, patch)
}

export const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** Poll `fn` until it answers true; throws after `ms`. */
export async function until (fn: () => Promise<boolean>, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    if (await fn()) return
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(10)
  }
}

export function releases (res: OpResult | OpResult[]): ReleaseRecord[] {
  const all = Array.isArray(res) ? res : [res]
  return all.flatMap((r) => r.events.filter((e): e is Extract<StoreEvent, { type: 'released' }> => e.type === 'released').map((e) => e.release))
}

export function endings (res: OpResult | OpResult[]): RoundSummary[] {
  const all = Array.isArray(res) ? res : [res]
  return all.flatMap((r) => r.events.filter((e): e is Extract<StoreEvent, { type: 'ended' }> => e.type === 'ended').map((e) => e.summary))
}

/** Everything a caller can observe about a group (minus times), to prove a refusal changed nothing. */
async function observe (store: Store, g: string): Promise<unknown> {
  const snap = await store.getGroup(g)
  if (snap === null) return null
  const terms = (await store.terminals(g)).map((v) => ({ ...v, lastSeen: 0 })).sort((a, b) => a.clientId.localeCompare(b.clientId))
  return { snap: { ...snap, state: { ...snap.state, updatedAt: 0 } }, terms, rounds: await store.rounds(g, { limit: 10 }) }
}

export function storeSuite (tap: Test, name: string, makeStore: MakeStore): void {
  /** One fresh store per test, cleaned up afterwards. */
  function test (title: string, fn: (t: Test, store: Store) => Promise<void>, opts: SuiteStoreOptions = {}): void {
    tap.test(`${name}: ${title}`, async (t) => {
      const { store, cleanup } = await makeStore(opts)
      try {
        await fn(t, store)
      } finally {
        await cleanup()
      }
    })
  }

  async function ready (store: Store, g: string, ids: string[], role: 'small' | 'boss' = 'small'): Promise<OpResult[]> {
    const out: OpResult[] = []
    for (const id of ids) out.push(await store.ready(g, id, { role }))
    return out
  }

  /** A group with config `c`, already paused while terminals declare ready, then resumed. */
  async function pausedReady (store: Store, c: Partial<GroupConfig>, ids: string[]): Promise<OpResult> {
    await store.putGroup('g', cfg({ ...c, paused: true }))
    await ready(store, 'g', ids)
    return await store.ctl('g', { op: 'resume' })
  }

  // --- groups ---------------------------------------------------------------------------------

  test('putGroup, getGroup, listGroups, ensureGroup, deleteGroup', async (t, store) => {
    t.strictSame(await store.listGroups(), [])
    t.equal(await store.getGroup('g'), null)
    const c = cfg({ need: 3, payload: { job: [1, 2, { x: 'y' }], empty: [] } })
    const res = await store.putGroup('g', c)
    t.equal(res.changed, true, 'creating is a change')
    t.equal(res.state.group, 'g')
    t.equal(res.state.phase, 'WAITING')
    t.equal(res.state.round, 0)
    t.equal(res.state.need, 3)
    t.equal(res.heartbeatMs, c.heartbeatMs)
    t.strictSame(res.events, [])
    t.strictSame(res.timing, { resetUntil: null, deadline: null })
    const snap = await store.getGroup('g')
    t.strictSame(snap?.config, c, 'the configuration comes back exactly, payload included')
    t.equal(snap?.release, null)
    t.strictSame(await store.listGroups(), ['g'])

    const ens = await store.ensureGroup('g', cfg({ need: 7 }))
    t.equal(ens.state.need, 3, 'ensureGroup leaves an existing group alone')
    t.equal(ens.changed, false)
    await store.ensureGroup('h', cfg({ need: 7 }))
    t.equal((await store.getGroup('h'))?.config.need, 7, 'ensureGroup creates a missing group')
    t.strictSame((await store.listGroups()).sort(), ['g', 'h'])

    await store.heartbeat('g', 'a', {})
    const put = await store.putGroup('g', cfg({ need: 5, completeOn: 'all', selection: 'load', dropTolerance: 0.25, minOnlineRatio: 0.7 }))
    t.equal(put.state.need, 5)
    t.equal(put.state.online, 1, 'putGroup keeps the terminals')
    t.strictSame((await store.getGroup('g'))?.config, cfg({ need: 5, completeOn: 'all', selection: 'load', dropTolerance: 0.25, minOnlineRatio: 0.7 }))

    t.equal(await store.deleteGroup('g'), true)
    t.equal(await store.deleteGroup('g'), false)
    t.equal(await store.getGroup('g'), null)
    t.strictSame(await store.listGroups(), ['h'])
    await t.rejects(store.heartbeat('g', 'a', {}), { code: 'unknown_group' }, 'a deleted group is gone')
    const again = await store.putGroup('g', cfg())
    t.equal(again.state.online, 0, 'a re-created group starts empty')
  })

  test('unknown groups: refused without createWith, created with it', async (t, store) => {
    const ops: Array<() => Promise<unknown>> = [
      async () => await store.heartbeat('x', 'a', {}),
      async () => await store.ready('x', 'a', {}),
      async () => await store.done('x', 'a', { round: 1 }),
      async () => await store.leave('x', 'a'),
      async () => await store.hold('x', ['a']),
      async () => await store.ctl('x', { op: 'pause' }),
      async () => await store.tick('x'),
      async () => await store.terminals('x'),
      async () => await store.rounds('x', { limit: 5 })
    ]
    for (const op of ops) await t.rejects(op(), { code: 'unknown_group' })
    t.strictSame(await store.listGroups(), [], 'refusals create nothing')
    const hb = await store.heartbeat('x', 'a', { role: 'boss' }, { createWith: cfg({ need: 4, heartbeatMs: 1234 }) })
    t.equal(hb.changed, true)
    t.equal(hb.heartbeatMs, 1234)
    t.equal(hb.state.need, 4)
    t.equal(hb.state.onlineBoss, 1)
    t.strictSame(await store.listGroups(), ['x'])
    const r = await store.ready('y', 'b', {}, { createWith: cfg({ need: 2 }) })
    t.equal(r.state.ready, 1)
    t.equal((await store.getGroup('y'))?.config.need, 2)
    const again = await store.heartbeat('x', 'c', {}, { createWith: cfg({ need: 9 }) })
    t.equal(again.state.need, 4, 'createWith never touches an existing group')
  })

  // --- terminals, liveness ---------------------------------------------------------------------

  test('heartbeat: online by role, role changes, load and meta, the changed flag', async (t, store) => {
    await store.putGroup('g', cfg({ need: 5, heartbeatMs: 777 }))
    const a = await store.heartbeat('g', 'a', {})
    t.equal(a.changed, true)
    t.equal(a.heartbeatMs, 777)
    t.equal(a.state.online, 1)
    t.equal(a.state.onlineBoss, 0)
    const again = await store.heartbeat('g', 'a', {})
    t.equal(again.changed, false, 'a repeat heartbeat changes nothing shown in state')
    const load = await store.heartbeat('g', 'a', { load: 0.5, meta: { v: '1.2', tags: [] } })
    t.equal(load.changed, false, 'load and meta are not in state')
    await store.heartbeat('g', 'b', { role: 'boss' })
    let s = (await store.heartbeat('g', 'b', {})).state
    t.equal(s.online, 2)
    t.equal(s.onlineBoss, 1, 'a heartbeat without role keeps the role')
    const views = await store.terminals('g')
    const va = views.find((v) => v.clientId === 'a')
    t.equal(va?.role, 'small')
    t.equal(va?.load, 0.5)
    t.strictSame(va?.meta, { v: '1.2', tags: [] })
    t.equal(va?.online, true)
    t.equal(va?.ready, false)
    t.equal(va?.participating, false)
    t.equal(typeof va?.lastSeen, 'number')
    const vb = views.find((v) => v.clientId === 'b')
    t.equal(vb?.role, 'boss')
    t.equal(vb?.load, null)
    t.equal(vb?.meta, null)

    await store.ready('g', 'b', {})
    s = (await store.heartbeat('g', 'b', { role: 'small' })).state
    t.equal(s.onlineBoss, 0, 'role change moves the terminal')
    t.equal(s.online, 2)
    t.equal(s.ready, 1, 'and keeps it ready')
    t.equal(s.readyBoss, 0)
    t.equal((await store.terminals('g')).find((v) => v.clientId === 'b')?.role, 'small')
  })

  test('leave: goes offline at once, unknown terminals are no change', async (t, store) => {
    await store.putGroup('g', cfg({ need: 5 }))
    await store.ready('g', 'a', {})
    await store.ready('g', 'b', { role: 'boss' })
    let res = await store.leave('g', 'a')
    t.equal(res.changed, true)
    t.equal(res.state.online, 1)
    t.equal(res.state.ready, 1)
    res = await store.leave('g', 'b')
    t.equal(res.state.onlineBoss, 0)
    t.equal(res.state.readyBoss, 0)
    res = await store.leave('g', 'nobody')
    t.equal(res.changed, false)
    t.strictSame(await store.terminals('g'), [])
  })

  test('eviction: silence for offlineAfterMs leaves online and ready', async (t, store) => {
    await store.putGroup('g', cfg({ need: 5, offlineAfterMs: 200 }))
    await store.ready('g', 'a', {})
    await store.ready('g', 'b', { role: 'boss' })
    const early = await store.tick('g')
    t.equal(early.state.online, 2, 'not evicted before offlineAfterMs')
    t.equal(early.changed, false)
    await sleep(100)
    await store.heartbeat('g', 'b', {})
    await until(async () => (await store.tick('g')).state.online === 1, 3000, 'a evicted')
    let s = (await store.getGroup('g'))?.state
    t.equal(s?.ready, 1, 'a left ready with online')
    t.equal(s?.onlineBoss, 1, 'b, heard from later, stays')
    await until(async () => (await store.tick('g')).state.online === 0, 3000, 'b evicted')
    s = (await store.getGroup('g'))?.state
    t.equal(s?.ready, 0)
    t.equal(s?.readyBoss, 0)
    t.strictSame(await store.terminals('g'), [])
  })

  test('hold: counts known and new terminals as heard from', async (t, store) => {
    await store.putGroup('g', cfg({ need: 5, offlineAfterMs: 200 }))
    await store.ready('g', 'a', {})
    const h = await store.hold('g', ['a', 'n'])
    t.equal(h.state.online, 2, 'a new terminal held is online')
    t.equal(h.changed, true)
    await store.ready('g', 'c', {})
    const end = Date.now() + 450
    while (Date.now() < end) {
      await store.hold('g', ['a', 'n'])
      await store.tick('g')
      await sleep(50)
    }
    const s = (await store.tick('g')).state
    t.equal(s.online, 2, 'held terminals are never evicted, the silent one is')
    t.equal(s.ready, 1, 'a stays ready')
    t.strictSame((await store.terminals('g')).map((v) => v.clientId).sort(), ['a', 'n'])
    t.equal((await store.hold('g', [])).changed, false)
  })

  test('maxTerminalsPerGroup: a full group refuses new terminals and changes nothing', async (t, store) => {
    await store.putGroup('g', cfg({ need: 5 }))
    await store.heartbeat('g', 'a', {})
    await store.heartbeat('g', 'b', {})
    const before = await observe(store, 'g')
    await t.rejects(store.heartbeat('g', 'c', {}), { code: 'unavailable' })
    await t.rejects(store.ready('g', 'c', {}), { code: 'unavailable' })
    const lastSeen = (await store.terminals('g')).find((v) => v.clientId === 'a')?.lastSeen
    await sleep(5)
    await t.rejects(store.hold('g', ['a', 'c']), { code: 'unavailable' })
    t.equal((await store.terminals('g')).find((v) => v.clientId === 'a')?.lastSeen, lastSeen, 'a refused hold touches no one')
    t.strictSame(await observe(store, 'g'), before)
    const ok = await store.heartbeat('g', 'a', {})
    t.equal(ok.state.online, 2, 'known terminals still get through')
  }, { maxTerminalsPerGroup: 2 })

  // --- release -------------------------------------------------------------------------------

  test('release threshold: ceil(need x minOnlineRatio) online smalls, effNeed = min(need, online)', async (t, store) => {
    await store.putGroup('g', cfg({ need: 10, minOnlineRatio: 0.9 }))
    const ids = Array.from({ length: 8 }, (_, i) => `s${i}`)
    t.strictSame(releases(await ready(store, 'g', ids)), [], '8 online < 9: no release')
    let res = await store.heartbeat('g', 's8', {})
    t.strictSame(releases(res), [], '9 online, effNeed 9, only 8 ready: no release')
    t.equal(res.state.phase, 'WAITING')
    res = await store.ready('g', 's8', {})
    const rel = releases(res)
    t.equal(rel.length, 1, '9 online and ready: released')
    t.equal(rel[0].participants.length, 9, 'effNeed = min(10, 9)')
    t.equal(res.state.round, 1)
    t.equal(res.state.phase, 'EXECUTING')
    t.equal(res.state.participants, 9)
    t.equal(res.state.ready, 0)
    t.equal(res.changed, true)
  })

  test('release threshold: ratio rounding (0.5 of 3 is 2, 0.07 of 100 is 7)', async (t, store) => {
    await store.putGroup('g', cfg({ need: 3, minOnlineRatio: 0.5 }))
    t.strictSame(releases(await store.ready('g', 'a', {})), [], '1 online < ceil(1.5)')
    t.strictSame(releases(await store.heartbeat('g', 'b', {})), [], '2 online, effNeed 2, 1 ready')
    const r = releases(await store.ready('g', 'b', {}))
    t.equal(r.length, 1)
    t.strictSame(r[0].participants, ['a', 'b'])

    await store.putGroup('h', cfg({ need: 100, minOnlineRatio: 0.07 }))
    const ids = Array.from({ length: 7 }, (_, i) => `t${i}`)
    const rel = releases(await ready(store, 'h', ids))
    t.equal(rel.length, 1, '100 x 0.07 (7.000000000000001 in floating point) needs 7, not 8')
    t.equal(rel[0].participants.length, 7)
  })

  test('release needs at least one small unless need is 0', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, minOnlineRatio: 0, bossNeed: 1 }))
    const r = await store.ready('g', 'boss1', { role: 'boss' })
    t.strictSame(releases(r), [], 'need 1, no small online: effNeed 0, no release')
    const rel = releases(await store.ready('g', 's', {}))
    t.equal(rel.length, 1)

    await store.putGroup('b', cfg({ need: 0, bossNeed: 1 }))
    const only = releases(await store.ready('b', 'boss1', { role: 'boss' }))
    t.equal(only.length, 1, 'need 0: a boss alone is released')
    t.strictSame(only[0].participants, ['boss1'])
    t.strictSame(only[0].bosses, ['boss1'])

    await store.putGroup('z', cfg({ need: 0, bossNeed: 0 }))
    const none = await ready(store, 'z', ['a', 'b'])
    t.strictSame(releases(none), [], 'need 0 and bossNeed 0: never released by the rule')
    const forced = releases(await store.ctl('z', { op: 'release' }))
    t.equal(forced.length, 1, 'only by ctl release')
    t.strictSame(forced[0].participants, ['a', 'b'], 'need 0: everyone ready')
  })


  test('bossNeed: bosses must be online and ready; the release record', async (t, store) => {
    const c = cfg({ need: 2, bossNeed: 1, payload: { job: 'x', list: [] }, execTimeoutMs: 60000 })
    await store.putGroup('g', c)
    await ready(store, 'g', ['s1', 's2', 's3'])
    t.strictSame(releases(await store.heartbeat('g', 'b1', { role: 'boss' })), [], 'boss online, not ready: no release')
    const res = await store.ready('g', 'b1', {})
    const rel = releases(res)
    t.equal(rel.length, 1, 'boss ready: released')
    const r = rel[0]
    t.equal(r.group, 'g')
    t.equal(r.round, 1)
    t.strictSame(r.participants, ['s1', 's2', 'b1'], 'smalls first (fifo), then bosses')
    t.strictSame(r.bosses, ['b1'])
    t.strictSame(r.payload, { job: 'x', list: [] })
    t.equal(typeof r.releasedAt, 'number')
    t.equal(r.deadline, r.releasedAt + 60000)
    t.equal(res.state.releasedAt, r.releasedAt)
    t.equal(res.state.ready, 1, 's3 was not chosen and stays ready')
    t.strictSame(res.timing, { resetUntil: null, deadline: r.deadline })
    const snap = await store.getGroup('g')
    t.strictSame(snap?.release, r, 'getGroup shows the release while EXECUTING')
    t.strictSame(snap?.timing, { resetUntil: null, deadline: r.deadline })
    const views = await store.terminals('g')
    t.strictSame(views.filter((v) => v.participating).map((v) => v.clientId).sort(), ['b1', 's1', 's2'])
    t.strictSame(views.filter((v) => v.ready).map((v) => v.clientId), ['s3'])
    await store.ctl('g', { op: 'configure', config: { payload: { job: 'y' } } })
    t.strictSame((await store.getGroup('g'))?.release?.payload, { job: 'x', list: [] }, 'a running release keeps its payload')
  })

  test('exactly one release per round; round +1; ready after the freeze waits for the next round', async (t, store) => {
    await store.putGroup('g', cfg({ need: 2, resetMs: 0 }))
    const all = await ready(store, 'g', ['a', 'b', 'c', 'd', 'e'])
    const rel = releases(all)
    t.equal(rel.length, 1, 'one release for five ready terminals')
    t.strictSame(rel[0].participants, ['a', 'b'])
    const s = (await store.getGroup('g'))?.state
    t.equal(s?.ready, 3, 'c, d, e stay ready')
    t.equal(s?.round, 1)
    const late = await store.ready('g', 'a', {})
    t.strictSame(releases(late), [], 'no release while EXECUTING')
    t.equal(late.state.participants, 2, 'a declaring ready again does not change the frozen set')
    await store.done('g', 'a', { round: 1 })
    const end = await store.done('g', 'b', { round: 1 })
    t.equal(endings(end).length, 1)
    const next = releases(end)
    t.equal(next.length, 1, 'resetMs 0: the next round is released in the same transition')
    t.equal(next[0].round, 2)
    t.strictSame(next[0].participants, ['c', 'd'], 'non-chosen ready terminals go first next round')
    t.equal(end.state.round, 2)
    t.equal(end.state.ready, 2, 'e and a remain ready')
    t.same(end.events.map((e) => e.type), ['ended', 'released'], 'ended before released')
  })

  test('concurrent ready storm: one release, never more participants than need', async (t, store) => {
    await store.putGroup('g', cfg({ need: 5, minOnlineRatio: 1 }))
    const ids = Array.from({ length: 60 }, (_, i) => `c${i}`)
    const res = await Promise.all(ids.map(async (id) => await store.ready('g', id, {})))
    const rel = releases(res)
    t.equal(rel.length, 1, 'exactly one release')
    t.equal(rel[0].participants.length, 5)
    t.equal(new Set(rel[0].participants).size, 5)
    const s = (await store.getGroup('g'))?.state
    t.equal(s?.round, 1)
    t.equal(s?.participants, 5)
    t.equal(s?.ready, 55)
    const storm2 = await Promise.all(ids.map(async (id) => await store.ready('g', id, {})))
    t.strictSame(releases(storm2), [], 'no second release while the round runs')
  })

  test('selection fifo: earliest ready first', async (t, store) => {
    const res = await pausedReady(store, { need: 2, selection: 'fifo' }, ['c', 'a', 'b'])
    t.strictSame(releases(res)[0]?.participants, ['c', 'a'])
  })

  test('selection fair: longest since last participation first', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, selection: 'fair', resetMs: 0 }))
    t.equal(releases(await store.ready('g', 'x', {}))[0]?.round, 1)
    await store.done('g', 'x', { round: 1 })
    await store.ctl('g', { op: 'pause' })
    await ready(store, 'g', ['x', 'y', 'z', 'w'])
    await store.ctl('g', { op: 'configure', config: { need: 2 } })
    const r2 = releases(await store.ctl('g', { op: 'resume' }))
    t.strictSame(r2[0]?.participants, ['y', 'z'], 'x took part in round 1; y and z never did (ready order breaks ties)')
    await store.ctl('g', { op: 'pause' })
    await store.done('g', 'y', { round: 2 })
    await store.done('g', 'z', { round: 2 })
    await ready(store, 'g', ['y', 'z'])
    const r3 = releases(await store.ctl('g', { op: 'resume' }))
    t.strictSame(r3[0]?.participants, ['w', 'x'], 'w never took part, x last in round 1')
  })

  test('selection load: lowest reported load first, unreported last', async (t, store) => {
    await store.putGroup('g', cfg({ need: 4, selection: 'load', paused: true }))
    await store.ready('g', 'a', { load: 5 })
    await store.ready('g', 'b', { load: 1 })
    await store.ready('g', 'c', {})
    await store.ready('g', 'd', { load: 3 })
    await store.ready('g', 'e', { load: 1 })
    await store.ctl('g', { op: 'configure', config: { need: 4 } })
    const r = releases(await store.ctl('g', { op: 'resume' }))
    t.strictSame(r[0]?.participants, ['b', 'e', 'd', 'a'], 'ties in ready order; c has no load')
    const again = await store.ready('g', 'c', { load: 0.5 })
    t.equal(again.state.ready, 1)
  })

  test('done: only participants, only the current round, duplicates answered', async (t, store) => {
    await store.putGroup('g', cfg({ need: 2, resetMs: 50 }))
    await t.rejects(store.done('g', 'a', { round: 0 }), { code: 'stale_round' }, 'nothing executing')
    await ready(store, 'g', ['a', 'b', 'c'])
    const before = await observe(store, 'g')
    await t.rejects(store.done('g', 'a', { round: 2 }), { code: 'stale_round' })
    await t.rejects(store.done('g', 'a', { round: 0 }), { code: 'stale_round' })
    await t.rejects(store.done('g', 'c', { round: 1 }), { code: 'not_participant' })
    await t.rejects(store.done('g', 'stranger', { round: 1 }), { code: 'not_participant' })
    t.strictSame(await observe(store, 'g'), before, 'refused reports change nothing')
    const d1 = await store.done('g', 'a', { round: 1, result: { answer: 42, list: [] } })
    t.equal(d1.duplicate, false)
    t.equal(d1.changed, true)
    t.equal(d1.state.done, 1)
    t.equal(d1.state.phase, 'EXECUTING')
    const dup = await store.done('g', 'a', { round: 1, result: 'other' })
    t.equal(dup.duplicate, true, 'a second done is a duplicate')
    t.equal(dup.changed, false)
    t.equal(dup.state.done, 1)
    const last = await store.done('g', 'b', { round: 1, ok: false, result: [1, 'two', null] })
    t.equal(last.duplicate, false)
    const ends = endings(last)
    t.equal(ends.length, 1, 'completeOn all: everyone done completes the round')
    const s = ends[0] as RoundSummary & { failed?: string[] }
    t.equal(s.outcome, 'completed')
    t.equal(s.group, 'g')
    t.equal(s.round, 1)
    t.strictSame(s.participants, ['a', 'b'])
    t.strictSame(s.done, ['a', 'b'], 'in the order they reported')
    t.strictSame(s.dropped, [])
    t.strictSame(s.results, { a: { answer: 42, list: [] }, b: [1, 'two', null] }, 'the first result is kept')
    t.strictSame(s.failed, ['b'])
    t.ok(s.endedAt >= s.releasedAt)
    t.equal(last.state.phase, 'RESET')
    t.equal(last.state.participants, 0, 'participants, done, dropped cleared')
    t.equal(last.state.done, 0)
    t.equal(last.state.releasedAt, s.releasedAt, 'releasedAt stays in state after the round')
    t.strictSame(last.timing, { resetUntil: s.endedAt + 50, deadline: null })
    await t.rejects(store.done('g', 'a', { round: 1 }), { code: 'stale_round' }, 'after the round: stale')
    t.equal((await store.getGroup('g'))?.release, null, 'no release once ended')
    const noResult = await store.rounds('g', { limit: 1 })
    t.strictSame(noResult[0], s, 'history holds the same summary')
  })

  test('drops: participants leaving or evicted join dropped; count tolerance', async (t, store) => {
    await store.putGroup('g', cfg({ need: 3, dropTolerance: 1, offlineAfterMs: 200, resetMs: 10000 }))
    await ready(store, 'g', ['a', 'b', 'c', 'x'])
    let res = await store.leave('g', 'x')
    t.equal(res.state.dropped, 0, 'a non-participant leaving is no drop')
    await store.done('g', 'c', { round: 1 })
    res = await store.leave('g', 'c')
    t.equal(res.state.dropped, 0, 'a participant that is done does not drop')
    res = await store.leave('g', 'a')
    t.equal(res.state.dropped, 1)
    t.equal(res.state.phase, 'EXECUTING', 'one drop is within tolerance 1')
    // b falls silent: evicted by tick, the second drop aborts
    await until(async () => (await store.getGroup('g'))?.state.phase === 'RESET' || endings(await store.tick('g')).length > 0, 3000, 'b evicted')
    const h = await store.rounds('g', { limit: 5 })
    t.equal(h.length, 1)
    t.equal(h[0].outcome, 'aborted')
    t.strictSame(h[0].dropped, ['a', 'b'])
    t.strictSame(h[0].done, ['c'])
  })

  test('drops: zero tolerance aborts at the first drop; a kick is a drop', async (t, store) => {
    await store.putGroup('g', cfg({ need: 2, resetMs: 10000 }))
    await ready(store, 'g', ['a', 'b'])
    const res = await store.ctl('g', { op: 'kick', clientId: 'b' })
    t.same(res.events.map((e) => e.type), ['ended', 'kicked'])
    const k = res.events.find((e) => e.type === 'kicked')
    t.strictSame(k, { type: 'kicked', group: 'g', clientId: 'b' })
    t.equal(endings(res)[0]?.outcome, 'aborted')
    t.strictSame(endings(res)[0]?.dropped, ['b'])
    t.equal(res.state.online, 1)
    const unknown = await store.ctl('g', { op: 'kick', clientId: 'ghost' })
    t.strictSame(unknown.events, [{ type: 'kicked', group: 'g', clientId: 'ghost' }], 'kicking an unknown id still reports it')
  })

  test('drops: tolerance as a ratio of participants (rounded down)', async (t, store) => {
    await store.putGroup('g', cfg({ need: 5, dropTolerance: 0.5, resetMs: 10000 }))
    await ready(store, 'g', ['a', 'b', 'c', 'd', 'e'])
    await store.leave('g', 'a')
    let res = await store.leave('g', 'b')
    t.equal(res.state.phase, 'EXECUTING', '2 drops of 5 at 0.5: floor(2.5) = 2 allowed')
    res = await store.leave('g', 'c')
    t.equal(endings(res)[0]?.outcome, 'aborted', 'the third drop aborts')
  })

  test('completeOn all: done or dropped; a dropped participant may still report', async (t, store) => {
    await store.putGroup('g', cfg({ need: 3, dropTolerance: 2, resetMs: 10000 }))
    await ready(store, 'g', ['a', 'b', 'c'])
    await store.leave('g', 'a')
    const late = await store.done('g', 'a', { round: 1, result: 'late' })
    t.equal(late.state.done, 1, 'a dropped participant may still report done')
    t.equal(late.state.online, 3, 'and is heard from again')
    await store.leave('g', 'b')
    const res = await store.done('g', 'c', { round: 1 })
    const s = endings(res)[0]
    t.equal(s?.outcome, 'completed')
    t.strictSame(s?.dropped, ['a', 'b'])
    t.strictSame(s?.done, ['a', 'c'])
    t.strictSame(s?.results, { a: 'late' })
  })

  test('completeOn boss: the round completes when every boss is done', async (t, store) => {
    await store.putGroup('g', cfg({ need: 2, bossNeed: 2, resetMs: 10000 }))
    await ready(store, 'g', ['s1', 's2'])
    await ready(store, 'g', ['b1', 'b2'], 'boss')
    let res = await store.done('g', 'b1', { round: 1 })
    t.equal(res.state.phase, 'EXECUTING')
    res = await store.done('g', 's1', { round: 1 })
    t.equal(res.state.phase, 'EXECUTING', 'smalls do not complete a boss round')
    res = await store.done('g', 'b2', { round: 1 })
    const s = endings(res)[0]
    t.equal(s?.outcome, 'completed')
    t.strictSame(s?.done, ['b1', 's1', 'b2'])
    t.strictSame(s?.participants, ['s1', 's2', 'b1', 'b2'])

    await store.putGroup('h', cfg({ need: 1, bossNeed: 1, completeOn: 'all', resetMs: 10000 }))
    await store.ready('h', 's', {})
    await store.ready('h', 'b', { role: 'boss' })
    res = await store.done('h', 'b', { round: 1 })
    t.equal(res.state.phase, 'EXECUTING', 'completeOn all overrides the boss default')
    t.equal(endings(await store.done('h', 's', { round: 1 }))[0]?.outcome, 'completed')

    await store.putGroup('k', cfg({ need: 2, completeOn: 'boss', resetMs: 10000 }))
    await ready(store, 'k', ['x', 'y'])
    res = await store.done('k', 'x', { round: 1 })
    t.equal(res.state.phase, 'EXECUTING', 'completeOn boss without bosses waits for all')
    t.equal(endings(await store.done('k', 'y', { round: 1 }))[0]?.outcome, 'completed')
  })

  test('execTimeoutMs: a round still executing ends as timeout', async (t, store) => {
    await store.putGroup('g', cfg({ need: 2, execTimeoutMs: 200, resetMs: 10000 }))
    const rel = releases(await ready(store, 'g', ['a', 'b']))[0]
    await store.done('g', 'a', { round: 1, result: 1 })
    t.equal((await store.tick('g')).state.phase, 'EXECUTING', 'not before the deadline')
    let ended: RoundSummary[] = []
    await until(async () => (ended = endings(await store.tick('g'))).length > 0, 3000, 'timeout')
    t.equal(ended.length, 1)
    t.equal(ended[0].outcome, 'timeout')
    t.strictSame(ended[0].done, ['a'])
    t.strictSame(ended[0].results, { a: 1 })
    t.ok(ended[0].endedAt >= rel.deadline, 'not before the deadline')
    t.equal((await store.tick('g')).events.length, 0, 'a timeout fires once')
  })

  test('resetMs: RESET, then WAITING and the release rule checked at once', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 150 }))
    await store.ready('g', 'a', {})
    const end = await store.done('g', 'a', { round: 1 })
    const s = endings(end)[0]
    t.equal(end.state.phase, 'RESET')
    t.equal(end.timing.resetUntil, s.endedAt + 150)
    const r = await store.ready('g', 'b', {})
    t.strictSame(releases(r), [], 'no release during RESET')
    t.equal(r.state.phase, 'RESET')
    let res: OpResult | null = null
    await until(async () => (res = await store.tick('g')).state.phase !== 'RESET', 3000, 'end of RESET')
    const got = res as unknown as OpResult
    t.equal(got.state.phase, 'EXECUTING', 'straight from RESET to a release')
    t.strictSame(releases(got)[0]?.participants, ['b'])
    t.equal(got.state.round, 2)
    t.equal(got.changed, true)
  })

  test('resetMs: RESET ends in WAITING when nobody is ready', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 50 }))
    await store.ready('g', 'a', {})
    await store.done('g', 'a', { round: 1 })
    await until(async () => (await store.tick('g')).state.phase === 'WAITING', 3000, 'WAITING')
    const snap = await store.getGroup('g')
    t.strictSame(snap?.timing, { resetUntil: null, deadline: null })
    t.equal(snap?.state.round, 1)
  })

  test('paused: never releases; resume releases at once; a running round goes on', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0, paused: true }))
    const r = await store.ready('g', 'a', {})
    t.strictSame(releases(r), [])
    t.equal(r.state.paused, true)
    const res = await store.ctl('g', { op: 'resume' })
    t.equal(releases(res).length, 1, 'resume checks the rule at once')
    t.equal(res.state.paused, false)
    const p = await store.ctl('g', { op: 'pause' })
    t.equal(p.state.phase, 'EXECUTING', 'pausing does not stop a round')
    t.equal(p.state.paused, true)
    t.equal(p.changed, true)
    t.equal((await store.getGroup('g'))?.config.paused, true)
    await store.ready('g', 'b', {})
    const d = await store.done('g', 'a', { round: 1 })
    t.equal(endings(d).length, 1)
    t.strictSame(releases(d), [], 'paused: b stays ready, no next round')
    t.equal(d.state.phase, 'WAITING')
    await t.rejects(store.ctl('g', { op: 'release' }), { code: 'bad_request' }, 'no forced release while paused')
  })

  test('ctl configure: partial, validated config applies and is checked at once', async (t, store) => {
    await store.putGroup('g', cfg({ need: 3, payload: { a: 1 } }))
    await ready(store, 'g', ['a', 'b'])
    const res = await store.ctl('g', { op: 'configure', config: { need: 2, execTimeoutMs: 5000 } })
    t.equal(releases(res).length, 1, 'lowering need releases at once')
    t.equal(res.state.need, 2)
    const c = (await store.getGroup('g'))?.config
    t.equal(c?.execTimeoutMs, 5000)
    t.strictSame(c?.payload, { a: 1 }, 'keys not given stay')
    t.equal(releases(res)[0].deadline - releases(res)[0].releasedAt, 5000)
    const same = await store.ctl('g', { op: 'configure', config: { heartbeatMs: 5000 } })
    t.equal(same.changed, false, 'heartbeatMs is not shown in state')
    t.equal(same.heartbeatMs, 5000)
  })

  test('ctl abort: only while executing', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0 }))
    const before = await observe(store, 'g')
    await t.rejects(store.ctl('g', { op: 'abort' }), { code: 'bad_request' })
    t.strictSame(await observe(store, 'g'), before)
    await store.ready('g', 'a', {})
    t.equal(endings(await store.ctl('g', { op: 'abort' }))[0]?.round, 1)
    await store.ready('g', 'b', {})
    const res = await store.ctl('g', { op: 'abort' })
    const s = endings(res)[0]
    t.equal(s?.outcome, 'aborted')
    t.equal(s?.round, 2)
    t.strictSame(s?.participants, ['b'])
    t.strictSame(s?.dropped, [])
    t.equal(res.state.phase, 'WAITING', 'resetMs 0')
    await t.rejects(store.ctl('g', { op: 'abort' }), { code: 'bad_request' })
  })

  test('ctl release: forced with whoever is ready, at least one', async (t, store) => {
    await store.putGroup('g', cfg({ need: 5, bossNeed: 2, resetMs: 10000 }))
    const before = await observe(store, 'g')
    await t.rejects(store.ctl('g', { op: 'release' }), { code: 'bad_request' }, 'nobody ready')
    t.strictSame(await observe(store, 'g'), before)
    await ready(store, 'g', ['a', 'b'])
    await store.ready('g', 'boss', { role: 'boss' })
    const res = await store.ctl('g', { op: 'release' })
    const r = releases(res)
    t.equal(r.length, 1)
    t.strictSame(r[0].participants, ['a', 'b', 'boss'])
    t.strictSame(r[0].bosses, ['boss'])
    t.equal(res.state.round, 1)
    await t.rejects(store.ctl('g', { op: 'release' }), { code: 'bad_request' }, 'not while executing')
    await store.ctl('g', { op: 'abort' })
    await t.rejects(store.ctl('g', { op: 'release' }), { code: 'bad_request' }, 'not while in RESET')

    await store.putGroup('h', cfg({ need: 2, paused: true }))
    await ready(store, 'h', ['x', 'y', 'z'])
    t.strictSame(releases(await store.ctl('h', { op: 'resume' }))[0]?.participants, ['x', 'y'])
  })

  test('history: newest first, limit, before', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0 }))
    for (let i = 1; i <= 6; i++) {
      await store.ready('g', 'a', {})
      await store.done('g', 'a', { round: i, result: i })
    }
    const all = await store.rounds('g', { limit: 100 })
    t.strictSame(all.map((s) => s.round), [6, 5, 4, 3, 2, 1])
    t.strictSame(all.map((s) => s.results.a), [6, 5, 4, 3, 2, 1])
    t.strictSame((await store.rounds('g', { limit: 2 })).map((s) => s.round), [6, 5])
    t.strictSame((await store.rounds('g', { limit: 2, before: 4 })).map((s) => s.round), [3, 2])
    t.strictSame((await store.rounds('g', { limit: 10, before: 1 })), [])
    t.strictSame((await store.rounds('g', { limit: 10, before: 100 })).length, 6)
    await store.putGroup('g', cfg({ need: 2 }))
    t.equal((await store.rounds('g', { limit: 100 })).length, 6, 'putGroup keeps history')
    t.equal((await store.getGroup('g'))?.state.round, 6, 'and the round')
  })

  test('history keeps the last historyLimit rounds', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0 }))
    for (let i = 1; i <= 1003; i++) {
      await store.ready('g', 'a', {})
      await store.done('g', 'a', { round: i })
    }
    const h = await store.rounds('g', { limit: 1000 })
    t.equal(h.length, 1000)
    t.equal(h[0].round, 1003)
    t.equal(h[999].round, 4)
    t.strictSame(await store.rounds('g', { limit: 5, before: 4 }), [], 'older rounds are gone')
  }, { historyLimit: 1000 })

  test('rounds never go backwards across configuration changes', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0 }))
    let last = 0
    for (let i = 0; i < 5; i++) {
      await store.ready('g', 'a', {})
      const s = (await store.getGroup('g'))?.state
      t.ok((s?.round ?? 0) > last)
      last = s?.round ?? 0
      await store.putGroup('g', cfg({ need: 1, resetMs: 0, payload: i }))
      await store.ctl('g', { op: 'abort' })
    }
    t.equal(last, 5)
  })
}
