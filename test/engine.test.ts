// The round engine over a store and a bus, where the two meet: timers on the store's clock, a
// sweep that a refused long-poll hold cannot stop, events from other processes arriving late
// (a release after its group was deleted), a leave reaching every process, and the configuration
// file winning at every start (PROTOCOL section 8).
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import t from 'tap'
import { Engine, LocalHub, MemoryStore, type ReleaseRecord, type Store } from '../plugins/scheduler/index.js'
import { sleep, waitFor } from './helpers/wait.js'

const silent = pino({ level: 'silent' })

/** A logger whose JSON lines are kept. */
function captured (): { log: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    }
  })
  return { log: pino({ level: 'info' }, sink), lines }
}

/** Count the store's tick calls. */
function countTicks (store: Store): { n: number } {
  const counter = { n: 0 }
  const tick = store.tick.bind(store)
  store.tick = async (g) => { counter.n++; return await tick(g) }
  return counter
}

void t.test('timers run on the store clock: a store 2.5 s behind costs a few ticks per RESET, not a busy loop', async (t) => {
  const store = new MemoryStore({ now: () => Date.now() - 2500 })
  const engine = new Engine({ store, logger: silent, autoCreateGroups: true, sweepMs: 1000 })
  await engine.start()
  t.teardown(async () => await engine.stop())
  await engine.putGroup('g', { need: 1, resetMs: 3000 })
  await engine.ready('g', 'a', {})
  const ticks = countTicks(store)
  await engine.done('g', 'a', { round: 1 })
  t.equal((await engine.state('g')).phase, 'RESET')
  await waitFor(async () => (await engine.state('g')).phase === 'WAITING', 6000, 'the end of RESET')
  t.ok(ticks.n <= 12, `${ticks.n} ticks for one 3 s RESET (sweeps once a second and one timer)`)
})

void t.test('timers run on the store clock: a store 2.5 s ahead ends RESET on time, not 2.5 s late', async (t) => {
  const store = new MemoryStore({ now: () => Date.now() + 2500 })
  const engine = new Engine({ store, logger: silent, autoCreateGroups: true, sweepMs: 1000 })
  await engine.start()
  store.listGroups = async () => [] // the sweep finds nothing: only the group's precise timer can end RESET
  t.teardown(async () => await engine.stop())
  await engine.putGroup('g', { need: 1, resetMs: 3500 })
  await engine.ready('g', 'a', {})
  await engine.done('g', 'a', { round: 1 })
  const t0 = Date.now()
  await waitFor(async () => (await engine.state('g')).phase === 'WAITING', 8000, 'the end of RESET')
  const took = Date.now() - t0
  t.ok(took < 3500 + 1000, `RESET ended ${took} ms after the round (resetMs 3500)`)
})

void t.test('a hold refused for a full group does not stop the sweep: eviction goes on', async (t) => {
  const store = new MemoryStore({ maxTerminalsPerGroup: 1 })
  const { log, lines } = captured()
  const engine = new Engine({ store, logger: log, autoCreateGroups: false, sweepMs: 50 })
  await engine.start()
  t.teardown(async () => await engine.stop())
  await engine.putGroup('g', { need: 5, offlineAfterMs: 300 })
  // x's long-poll is pending (held); x leaves and y takes the only place: holding x is refused
  const unhold = await engine.hold('g', 'x')
  t.teardown(unhold)
  await engine.leave('g', 'x')
  await engine.heartbeat('g', 'y', {})
  t.equal((await engine.state('g')).online, 1)
  await waitFor(async () => !(await engine.terminals('g')).some((v) => v.clientId === 'y'), 3000, 'y evicted')
  t.pass('the silent terminal was evicted while the hold was refused')
  const refused = lines.filter((l) => l.msg === 'pending long-polls cannot be held; the group is swept anyway')
  t.equal(refused.length, 1, 'the refusal is logged once, not once per sweep')
  await waitFor(() => lines.some((l) => l.msg === 'pending long-polls are held again'), 3000, 'recovery logged')
})

void t.test('bus: a release arriving after its group was deleted leaves no stale release', async (t) => {
  const hub = new LocalHub()
  const other = hub.bus()
  const engine = new Engine({ store: new MemoryStore(), bus: hub.bus(), logger: silent, autoCreateGroups: true })
  await other.open()
  await engine.start()
  t.teardown(async () => { await engine.stop(); await other.close() })
  const rel = (round: number): ReleaseRecord =>
    ({ group: 'g', round, attempt: 1, job: null, releasedAt: 1, startAt: 1, deadline: Date.now() + 60000, participants: ['a'], bosses: [], payload: null })
  const seen: number[] = []
  engine.on('release', (r) => seen.push(r.round))
  other.publish({ type: 'deleted', group: 'g', round: 5 })
  other.publish({ type: 'released', release: rel(5) })
  t.equal(engine.releaseOf('g'), null, 'round 5 of the deleted group is not taken as executing')
  t.strictSame(seen, [], 'nor delivered')
  other.publish({ type: 'released', release: rel(6) })
  t.equal(engine.releaseOf('g')?.round, 6, 'the group created again releases round 6: taken')
  other.publish({ type: 'deleted', group: 'g', round: 5 })
  t.equal(engine.releaseOf('g')?.round, 6, 'a late deletion of the old group does not end the new round')
  other.publish({ type: 'deleted', group: 'g', round: 6 })
  t.equal(engine.releaseOf('g'), null, 'its own deletion does')
})

void t.test('bus: a leave in one process reaches every other process', async (t) => {
  const hub = new LocalHub()
  const store = new MemoryStore()
  const a = new Engine({ store, bus: hub.bus(), logger: silent, autoCreateGroups: true })
  const b = new Engine({ store, bus: hub.bus(), logger: silent, autoCreateGroups: true })
  await a.start()
  await b.start()
  t.teardown(async () => { await a.stop(); await b.stop() })
  const heard: string[] = []
  b.on('left', (g, id) => heard.push(`b:${g}/${id}`))
  a.on('left', (g, id) => heard.push(`a:${g}/${id}`))
  await a.heartbeat('g', 'x', {})
  await a.leave('g', 'x')
  t.strictSame(heard, ['a:g/x', 'b:g/x'], 'both processes hear the leave, once each')
})

void t.test('the configuration file wins at every start for the keys it names, each logged', async (t) => {
  const store = new MemoryStore()
  const first = new Engine({ store, logger: silent, autoCreateGroups: false, groups: { g: { need: 3, payload: { job: 1 } } } })
  await first.start()
  t.equal((await first.getGroup('g')).config.need, 3, 'created from the file')
  await first.patchGroup('g', { need: 7, selection: 'fair', payload: { job: 2 } })
  await first.ready('g', 'a', {})
  await first.stop()

  const { log, lines } = captured()
  const second = new Engine({ store, logger: log, autoCreateGroups: false, groups: { g: { need: 3, paused: false, payload: { job: 1 } } } })
  await second.start()
  t.teardown(async () => await second.stop())
  const { config, state } = await second.getGroup('g')
  t.equal(config.need, 3, 'need: back to the file')
  t.strictSame(config.payload, { job: 1 }, 'payload: back to the file')
  t.equal(config.selection, 'fair', 'a key the file does not name keeps its run-time value')
  t.equal(state.ready, 1, 'state survives: a is still ready')
  const back = lines.filter((l) => l.msg === 'the configuration file puts a group key back')
  t.strictSame(back.map((l) => [l.group, l.key, l.was, l.now]), [['g', 'need', 7, 3], ['g', 'payload', { job: 2 }, { job: 1 }]],
    'one line per key put back, with old and new; none for a key already equal')
  await sleep(0)
})
