// One round, five terminals, four languages: the Lua terminal (HTTP long-poll), the Python one
// (paho-mqtt), the shell one (curl) and two Node MQTT terminals (mqtt.js) are released together by
// the real server, each runs its job and reports done, and the round completes with all five.
import t from 'tap'
import { freePort, send, startBroker, terminal } from './helpers/broker.js'
import { lua, python, shell } from './helpers/clients.js'
import { call, get } from './helpers/http.js'
import { waitFor } from './helpers/wait.js'

/** The participant count of a release: an integer (protocol 1.1) or the list (1.0). */
function count (participants: unknown): number {
  return Array.isArray(participants) ? participants.length : Number(participants)
}

void t.test('Lua, Python, shell and Node terminals take part in the same round', async (t) => {
  const b = await startBroker({ httpPort: await freePort() })
  t.teardown(b.close)
  const base = `http://127.0.0.1:${b.server.ports.http}`
  const mqttPort = b.server.ports.mqtt
  t.equal((await call(base, 'PUT', '/v1/groups/mix', { need: 5, minOnlineRatio: 1, payload: { scene: 'city' } })).status, 200)

  const nodes = await Promise.all(['node-1', 'node-2'].map(async (id) => ({ id, ...await terminal(b.url, 'mix', id) })))
  t.teardown(async () => { await Promise.all(nodes.map(async (n) => await n.c.endAsync(true))) })
  for (const n of nodes) await send(n.c, `rg/mix/ready/${n.id}`, {})

  const l = lua(t, base, 'mix', 'lua-1', 1)
  const p = python(t, mqttPort, 'mix', 'py-1', ['--rounds', '1', '--job-ms', '50', '--timeout', '30'])
  const s = shell(t, base, 'mix', 'sh-1', 1, ['sh', '-c', 'echo "sh shard $RG_SHARD_INDEX/$RG_SHARD_COUNT"'])

  const releases = await Promise.all(nodes.map(async (n) => (await n.inbox.next('rg/mix/release', 20000)).json))
  const round = releases[0].round as number
  t.ok(releases.every((r) => r.round === round), `one round (${round}) for the Node terminals`)
  t.equal(count(releases[0].participants), 5, 'five participants')
  t.same(releases[0].payload, { scene: 'city' }, 'the group payload travels with the release')
  for (const n of nodes) await send(n.c, `rg/mix/done/${n.id}`, { round, ok: true, result: { lang: 'node' } })

  t.equal(await l.status(20000, 'the Lua terminal'), 0, 'lua exits 0', { stderr: l.stderr() })
  t.equal(await p.status(20000, 'the Python terminal'), 0, 'python exits 0', { stderr: p.stderr() })
  t.equal(await s.status(20000, 'the shell terminal'), 0, 'sh exits 0', { stderr: s.stderr() })

  const summary: any = await waitFor(async () => (await get(base, '/v1/groups/mix/rounds?limit=1')).json[0], 5000, 'the summary')
  t.equal(summary.round, round)
  t.equal(summary.outcome, 'completed')
  t.same([...summary.participants].sort(), ['lua-1', 'node-1', 'node-2', 'py-1', 'sh-1'], 'every terminal took part')
  t.same([...summary.done].sort(), ['lua-1', 'node-1', 'node-2', 'py-1', 'sh-1'], 'and reported done')
  t.equal(summary.results['lua-1'].lang, 'lua')
  t.equal(summary.results['py-1'].lang, 'python')
  t.match(summary.results['sh-1'], /^sh shard [0-4]\/5\n$/, 'the shell job output is its result')
  const shards = [summary.results['lua-1'].shard, summary.results['py-1'].shard, Number(/shard (\d)/.exec(summary.results['sh-1'])?.[1]),
    ...releases.map((r) => r.shard.index)]
  t.same(shards.sort(), [0, 1, 2, 3, 4], 'five distinct shards across the four languages')
  t.match(l.stdout(), new RegExp(`^round ${round} shard \\d/5$`, 'm'))
  t.match(p.stdout(), new RegExp(`^round ${round} shard \\d/5$`, 'm'))
})
