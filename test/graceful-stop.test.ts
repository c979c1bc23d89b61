// SIGTERM during a round, on real processes (node bin/roundgate.js start):
//  - one process waits (stopGraceMs) for the executing round to end, releases nothing new
//    meanwhile (ready is refused `unavailable`), then exits 0;
//  - past the grace it exits 0 anyway, and the round goes on after the next start;
//  - in cluster mode it exits at once and the other process carries the round: the terminal that
//    was connected to it comes back elsewhere and its done completes the round; it is not dropped.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { connect, freePort, Inbox, send, terminal, within } from './helpers/broker.js'
import { ROOT, run, type Proc } from './helpers/clients.js'
import { call, post } from './helpers/http.js'
import { startRedis } from './helpers/redis-server.js'
import { waitFor } from './helpers/wait.js'

interface Node { p: Proc, mqtt: string, base: string, mqttPort: number, httpPort: number, lines: () => Array<Record<string, any>> }

async function start (t: Test, args: string[], ports?: { mqttPort: number, httpPort: number }): Promise<Node> {
  const mqttPort = ports?.mqttPort ?? await freePort()
  const httpPort = ports?.httpPort ?? await freePort()
  const env: Record<string, undefined> = {}
  for (const k of Object.keys(process.env)) if (k.startsWith('ROUNDGATE_')) env[k] = undefined
  const p = run(t, process.execPath, [join(ROOT, 'bin', 'roundgate.js'), 'start', '--mqtt-port', String(mqttPort), '--http-port', String(httpPort),
    '--ws-port', '0', '--sys-interval', '0', ...args], env)
  const lines = (): Array<Record<string, any>> => p.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
  await waitFor(() => lines().some((l) => l.msg === 'roundgate ready') || p.child.exitCode !== null, 20000, 'roundgate ready')
  if (p.child.exitCode !== null) throw new Error(`exited: ${p.stderr()}`)
  return { p, mqtt: `mqtt://127.0.0.1:${mqttPort}`, base: `http://127.0.0.1:${httpPort}`, mqttPort, httpPort, lines }
}

async function dataDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rg-stop-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return dir
}

void t.test('one process: SIGTERM waits for the executing round, releases nothing new, then exits 0', async (t) => {
  const n = await start(t, ['--data-dir', await dataDir(t), '--stop-grace-ms', '20000'])
  t.equal((await call(n.base, 'PUT', '/v1/groups/g', { need: 1 })).status, 200)
  t.equal((await call(n.base, 'PUT', '/v1/groups/h', { need: 1 })).status, 200)
  const t1 = await terminal(n.mqtt, 'g', 't1')
  t.teardown(async () => { await t1.c.endAsync(true) })
  const watch = await connect(n.mqtt, 'watch')
  t.teardown(async () => { await watch.endAsync(true) })
  const rounds = new Inbox(watch)
  await watch.subscribeAsync('rg/g/rounds', { qos: 1 })
  await send(t1.c, 'rg/g/ready/t1', {})
  const round = (await t1.inbox.next('rg/g/release')).json.round

  const sent = Date.now()
  n.p.child.kill('SIGTERM')
  await waitFor(() => n.lines().some((l) => l.msg === 'stopping: no new rounds; waiting for the executing rounds to end'), 5000, 'the waiting line')
  t.same(n.lines().find((l) => l.msg?.startsWith('stopping:'))?.groups, ['g'], 'it names the executing group')

  // meanwhile: no new round anywhere; the round in progress still takes its reports
  const refused = await post(n.base, '/v1/groups/h/ready', { clientId: 'x1' })
  t.equal(refused.status, 503, 'ready on another group is refused')
  t.equal(refused.json?.error?.code, 'unavailable')
  const t2 = await terminal(n.mqtt, 'h', 't2')
  t.teardown(async () => { await t2.c.endAsync(true) })
  await send(t2.c, 'rg/h/ready/t2', {})
  t.equal((await t2.inbox.next('rg/h/error/t2')).json.code, 'unavailable', 'over MQTT too, on the error topic')
  t.equal((await call(n.base, 'GET', '/v1/groups/h')).json.state.phase, 'WAITING', 'group h released nothing')
  t.equal(n.p.child.exitCode, null, 'the process is still running')

  await send(t1.c, 'rg/g/done/t1', { round })
  t.equal((await rounds.next('rg/g/rounds', 5000)).json.outcome, 'completed', 'the round completes during the stop')
  t.equal(await n.p.status(10000), 0, 'then it exits 0', { stderr: n.p.stderr() })
  t.ok(Date.now() - sent < 15000, 'well before the grace is over')
  t.ok(n.lines().some((l) => l.msg === 'the executing rounds ended'))
  t.equal(t2.inbox.on('rg/h/release').length, 0, 'no release of group h')
})

void t.test('one process: past stopGraceMs it exits 0 anyway; the round goes on after the restart', async (t) => {
  const dir = await dataDir(t)
  const n = await start(t, ['--data-dir', dir, '--stop-grace-ms', '1000'])
  t.equal((await call(n.base, 'PUT', '/v1/groups/g', { need: 1 })).status, 200)
  const t1 = await terminal(n.mqtt, 'g', 't1', { reconnectPeriod: 0 })
  await send(t1.c, 'rg/g/ready/t1', {})
  const round = (await t1.inbox.next('rg/g/release')).json.round
  n.p.child.kill('SIGTERM')
  t.equal(await n.p.status(10000), 0, 'exit 0 after the grace', { stderr: n.p.stderr() })
  t.match(n.lines().find((l) => l.level === 40), { msg: 'stopping with rounds still executing: they go on after the next start', groups: ['g'] })
  await t1.c.endAsync(true)

  const again = await start(t, ['--data-dir', dir], { mqttPort: n.mqttPort, httpPort: n.httpPort })
  const state = (await call(again.base, 'GET', '/v1/groups/g')).json.state
  t.match(state, { phase: 'EXECUTING', round }, 'the round is still executing after the restart')
  const back = await terminal(again.mqtt, 'g', 't1')
  t.teardown(async () => { await back.c.endAsync(true) })
  t.equal((await back.inbox.next('rg/g/release')).json.round, round, 'its release comes back (retained)')
  await send(back.c, 'rg/g/done/t1', { round })
  await waitFor(async () => (await call(again.base, 'GET', '/v1/groups/g/rounds?limit=1')).json[0]?.outcome === 'completed', 5000, 'completed')
  again.p.child.kill('SIGTERM')
  t.equal(await again.p.status(10000), 0)
})

void t.test('cluster: SIGTERM leaves the round to the other process, at once; its terminal is not dropped', async (t) => {
  const redis = await startRedis()
  t.teardown(async () => await redis.stop())
  const a = await start(t, ['--redis', redis.url, '--stop-grace-ms', '30000'])
  const b = await start(t, ['--redis', redis.url])
  t.equal((await call(b.base, 'PUT', '/v1/groups/c', { need: 2, minOnlineRatio: 1 })).status, 200)
  const will = { topic: 'rg/c/leave/ta', payload: Buffer.from('{}'), qos: 1 as const, retain: false }
  const ta = await terminal(a.mqtt, 'c', 'ta', { will })
  t.teardown(async () => { await ta.c.endAsync(true) })
  const tb = await terminal(b.mqtt, 'c', 'tb')
  t.teardown(async () => { await tb.c.endAsync(true) })
  const watch = await connect(b.mqtt, 'watch-c')
  t.teardown(async () => { await watch.endAsync(true) })
  const rounds = new Inbox(watch)
  await watch.subscribeAsync('rg/c/rounds', { qos: 1 })
  await send(ta.c, 'rg/c/ready/ta', {})
  await send(tb.c, 'rg/c/ready/tb', {})
  const round = (await ta.inbox.next('rg/c/release', 5000)).json.round
  t.equal((await tb.inbox.next('rg/c/release', 5000)).json.round, round, 'one round over both processes')

  const sent = Date.now()
  a.p.child.kill('SIGTERM')
  t.equal(await a.p.status(10000), 0, 'the stopped process exits 0', { stderr: a.p.stderr() })
  t.ok(Date.now() - sent < 8000, `at once, not after the 30 s grace (${Date.now() - sent} ms)`)
  t.ok(a.lines().some((l) => l.msg === 'stopping: the other processes of the cluster carry the executing rounds'))
  await within(new Promise<void>((resolve) => { if (!ta.c.connected) resolve(); else ta.c.once('close', () => resolve()) }), 5000, 'ta disconnected')

  t.match((await call(b.base, 'GET', '/v1/groups/c')).json.state, { phase: 'EXECUTING', round, dropped: 0 }, 'the round goes on; ta is not dropped (its will was no leave)')
  const back = await terminal(b.mqtt, 'c', 'ta', { will })
  t.teardown(async () => { await back.c.endAsync(true) })
  t.equal((await back.inbox.next('rg/c/release', 5000)).json.round, round, 'ta, connected to the other process, gets its release again')
  await send(back.c, 'rg/c/done/ta', { round })
  await send(tb.c, 'rg/c/done/tb', { round })
  const summary = (await rounds.next('rg/c/rounds', 5000)).json
  t.equal(summary.outcome, 'completed')
  t.same([...summary.done].sort(), ['ta', 'tb'])
  t.same(summary.dropped, [])
})
