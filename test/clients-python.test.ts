// The Python terminal (clients/python) on Debian's python3-paho-mqtt, run by /usr/bin/python3
// against the real broker: it comes back by itself after the broker drops its connection (a kick)
// and takes the next round; its MQTT will is a leave, so a terminal killed mid-round is dropped.
import t from 'tap'
import { freePort, startBroker } from './helpers/broker.js'
import { python } from './helpers/clients.js'
import { call, get } from './helpers/http.js'
import { waitFor } from './helpers/wait.js'

async function lastRound (base: string, group: string): Promise<any> {
  return (await get(base, `/v1/groups/${group}/rounds?limit=1`)).json[0]
}

void t.test('reconnects after the broker drops it and takes the next round', async (t) => {
  const b = await startBroker({ httpPort: await freePort() })
  t.teardown(b.close)
  const base = `http://127.0.0.1:${b.server.ports.http}`
  t.equal((await call(base, 'PUT', '/v1/groups/pg', { need: 1, resetMs: 100, paused: true })).status, 200)
  const p = python(t, b.server.ports.mqtt, 'pg', 'py-1', ['--rounds', '2', '--job-ms', '50', '--timeout', '30'])
  await waitFor(async () => (await get(base, '/v1/groups/pg')).json.state.ready === 1, 10000, 'py-1 ready')
  t.equal((await call(base, 'POST', '/v1/groups/pg/ctl', { op: 'resume' })).status, 200)
  await waitFor(async () => (await lastRound(base, 'pg'))?.round === 1, 10000, 'round 1 done')
  t.same((await lastRound(base, 'pg')).done, ['py-1'], 'round 1 done by py-1')

  // pause, so round 2 waits; drop the connection; the terminal must come back and say ready
  t.equal((await call(base, 'POST', '/v1/groups/pg/ctl', { op: 'pause' })).status, 200)
  await waitFor(async () => (await get(base, '/v1/groups/pg')).json.state.ready === 1, 5000, 'py-1 ready again')
  t.equal((await call(base, 'POST', '/v1/groups/pg/ctl', { op: 'kick', clientId: 'py-1' })).status, 200)
  t.equal((await get(base, '/v1/groups/pg')).json.state.online, 0, 'the kick made it offline')
  await waitFor(async () => (await get(base, '/v1/groups/pg')).json.state.ready === 1, 10000, 'py-1 back and ready')
  t.equal((await call(base, 'POST', '/v1/groups/pg/ctl', { op: 'resume' })).status, 200)

  t.equal(await p.status(20000), 0, 'exits 0 after its two rounds', { stderr: p.stderr() })
  const r2 = await lastRound(base, 'pg')
  t.equal(r2.round, 2)
  t.equal(r2.outcome, 'completed')
  t.same(r2.results['py-1'].lang, 'python')
  t.match(p.stderr(), /disconnected .*reconnecting/, 'it saw the drop')
  t.equal(p.stderr().match(/connected to 127\.0\.0\.1/g)?.length, 2, 'and connected twice')
  t.equal((await get(base, '/v1/groups/pg')).json.state.online, 0, 'it said leave when it finished')
})

void t.test('the will is a leave: a terminal killed during its round is dropped', async (t) => {
  const b = await startBroker({ httpPort: await freePort() })
  t.teardown(b.close)
  const base = `http://127.0.0.1:${b.server.ports.http}`
  t.equal((await call(base, 'PUT', '/v1/groups/pw', { need: 1, dropTolerance: 0 })).status, 200)
  const p = python(t, b.server.ports.mqtt, 'pw', 'py-w', ['--rounds', '1', '--job-ms', '60000'])
  await waitFor(async () => (await get(base, '/v1/groups/pw')).json.state.phase === 'EXECUTING', 10000, 'the round to start')
  p.child.kill('SIGKILL') // no DISCONNECT: the broker publishes the will
  await p.exited
  const summary = await waitFor(async () => await lastRound(base, 'pw'), 5000, 'the round to end')
  t.equal(summary.outcome, 'aborted', 'one dropout over a tolerance of 0 aborts the round')
  t.same(summary.dropped, ['py-w'], 'py-w was dropped')
  t.equal((await get(base, '/v1/groups/pw')).json.state.online, 0, 'and is offline')
})
