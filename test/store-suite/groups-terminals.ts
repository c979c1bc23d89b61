// The store suite: groups, terminals, liveness and limits.
import { cfg, observe, releases, sleep, until, type SuiteContext } from './helpers.js'

export function groupAndTerminalTests ({ test }: SuiteContext): void {
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
    t.strictSame(res.timing, { wakeAt: null }, 'nothing to wake for')
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

    t.equal(await store.deleteGroup('g'), 0, 'answers the last round')
    t.equal(await store.deleteGroup('g'), null)
    t.equal(await store.getGroup('g'), null)
    t.strictSame(await store.listGroups(), ['h'])
    await t.rejects(store.heartbeat('g', 'a', {}), { code: 'unknown_group' }, 'a deleted group is gone')
    const again = await store.putGroup('g', cfg())
    t.equal(again.state.online, 0, 'a re-created group starts empty')
  })

  test('a group deleted and created again goes on from its last round', async (t, store) => {
    await store.putGroup('g', cfg({ need: 1, resetMs: 0 }))
    for (let i = 1; i <= 3; i++) {
      await store.ready('g', 'a', {})
      await store.done('g', 'a', { round: i })
    }
    await store.ready('g', 'a', {}) // round 4 executing
    t.equal(await store.deleteGroup('g'), 4, 'the last round, even mid-round')
    const again = await store.heartbeat('g', 'a', {}, { createWith: cfg({ need: 1, resetMs: 0 }) })
    t.equal(again.state.round, 4, 'created again at round 4, not 0')
    t.strictSame(await store.rounds('g', { limit: 10 }), [], 'with no history')
    const rel = releases(await store.ready('g', 'a', {}))
    t.equal(rel[0]?.round, 5, 'the next release is round 5: no number is handed out twice')
    t.equal(await store.deleteGroup('g'), 5)
    await store.putGroup('g', cfg({ need: 1 }))
    t.equal((await store.getGroup('g'))?.state.round, 5, 'again, by putGroup')
    t.equal(await store.deleteGroup('other'), null, 'an unknown group: null')
    await store.ensureGroup('other', cfg())
    t.equal((await store.getGroup('other'))?.state.round, 0, 'another name starts at 0')
  })

  test('every transition answers with the store clock it ran at', async (t, store) => {
    const a = await store.putGroup('g', cfg({ need: 1, resetMs: 500 }))
    t.type(a.now, 'number')
    t.ok(Math.abs(a.now - Date.now()) < 60000, 'an epoch millisecond reading')
    const r = await store.ready('g', 'x', {})
    t.ok(r.now >= a.now, 'not going backwards')
    t.equal(releases(r)[0]?.releasedAt, r.now, 'the release happened at that instant')
    const d = await store.done('g', 'x', { round: 1 })
    t.equal(d.timing.wakeAt, d.now + 500, 'timing is on the same clock')
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

}
