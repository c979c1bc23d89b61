// The shell terminal (clients/sh/roundgate.sh) run by /bin/sh (dash on Debian) with curl against
// the real broker: the command's output becomes the round's result and its exit status `ok`, the
// next round is polled with after = the last one, and SIGTERM says leave before it exits.
import t from 'tap'
import { freePort, startBroker } from './helpers/broker.js'
import { shell } from './helpers/clients.js'
import { call, get } from './helpers/http.js'
import { waitFor } from './helpers/wait.js'

void t.test('two rounds: the command sees its round and shard, its output is the result', async (t) => {
  const b = await startBroker({ httpPort: await freePort() })
  t.teardown(b.close)
  const base = `http://127.0.0.1:${b.server.ports.http}`
  t.equal((await call(base, 'PUT', '/v1/groups/sg', { need: 1, resetMs: 100, payload: { n: 1 } })).status, 200)
  const p = shell(t, base, 'sg', 'sh-1', 2, ['sh', '-c', 'echo "round $RG_ROUND shard $RG_SHARD_INDEX/$RG_SHARD_COUNT $RG_ROLE"; head -c 300 "$RG_RELEASE" | grep -c "\\"payload\\":{\\"n\\":1}"'])
  t.equal(await p.status(20000), 0, 'exits 0 after two rounds', { stderr: p.stderr() })
  const rounds: any[] = (await get(base, '/v1/groups/sg/rounds?limit=5')).json
  t.same(rounds.map((r) => [r.round, r.outcome]), [[2, 'completed'], [1, 'completed']])
  t.equal(rounds[1].results['sh-1'], 'round 1 shard 0/1 small\n1\n', 'round 1: the command saw RG_* and the release file')
  t.equal(rounds[0].results['sh-1'], 'round 2 shard 0/1 small\n1\n', 'round 2 likewise')
})

void t.test('a failing command reports ok=false; a silent one reports no result', async (t) => {
  const b = await startBroker({ httpPort: await freePort() })
  t.teardown(b.close)
  const base = `http://127.0.0.1:${b.server.ports.http}`
  t.equal((await call(base, 'PUT', '/v1/groups/sf', { need: 1 })).status, 200)
  // what reached the engine's done (whatever the summary shows of it)
  const reports: any[] = []
  const engine = b.server.engine
  const done = engine.done.bind(engine)
  engine.done = async (group, id, body) => { reports.push(body); return await done(group, id, body) }
  const p = shell(t, base, 'sf', 'sh-f', 1, ['false'])
  t.equal(await p.status(20000), 0, 'the terminal itself exits 0', { stderr: p.stderr() })
  const summary = (await get(base, '/v1/groups/sf/rounds?limit=1')).json[0]
  t.equal(summary.outcome, 'completed', 'a failed job still completes the round (the terminal reported)')
  t.same(summary.results, {}, 'no output, no result')
  t.match(reports, [{ round: '1', ok: 'false' }], 'the report said ok=false (a form field)')
})

void t.test('SIGTERM while polling: it says leave, so the broker sees it offline at once', async (t) => {
  const b = await startBroker({ httpPort: await freePort() })
  t.teardown(b.close)
  const base = `http://127.0.0.1:${b.server.ports.http}`
  t.equal((await call(base, 'PUT', '/v1/groups/st', { need: 2, offlineAfterMs: 60000 })).status, 200)
  const p = shell(t, base, 'st', 'sh-t', 0, ['true'], 30)
  await waitFor(() => b.server.gateway?.waiters() === 1, 10000, 'its long-poll')
  t.equal((await get(base, '/v1/groups/st')).json.state.online, 1, 'online while it polls')
  p.child.kill('SIGTERM')
  t.equal(await p.status(5000), 130, 'exits 130 (terminated) at once, not at the end of the 30 s poll')
  t.equal((await get(base, '/v1/groups/st')).json.state.online, 0, 'offline at once: it said leave')
  t.match(p.stderr(), /left/)
})
