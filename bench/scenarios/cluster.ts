// cluster: the release scenario over 3 roundgate processes sharing one redis-server (started here
// on an ephemeral loopback port, no persistence). N MQTT terminals are spread round-robin over
// the 3 brokers; the deciding ready goes to broker 1's last terminal; times run from its write to
// every participant's receipt wherever it is connected (one monotonic clock, as in `release`).
// Printed as "not available" when this build has no cluster mode or no redis-server.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Fleet } from '../lib/fleet.js'
import { startRedis, startRoundgate, type Broker } from '../lib/procs.js'
import { dist, table, type Dist, type ScenarioResult } from '../lib/report.js'
import { gensFor, ids, receipts, waitState, type Options } from './common.js'

const GROUP = 'bench'

export async function cluster (o: Options): Promise<ScenarioResult> {
  const clusterJs = fileURLToPath(new URL('../../broker/cluster.js', import.meta.url))
  if (!existsSync(clusterJs)) return { scenario: 'cluster', text: 'cluster: not available (this build has no broker/cluster.ts)', data: { available: false } }
  const redis = await startRedis()
  if (redis === null) return { scenario: 'cluster', text: 'cluster: not available (no redis-server on PATH)', data: { available: false } }
  const n = o.n
  const fleet = new Fleet(gensFor(n, o.gens))
  const brokers: Broker[] = []
  try {
    const url = `redis://127.0.0.1:${redis.mqttPort}`
    const groups = { [GROUP]: { need: n, minOnlineRatio: 1, offlineAfterMs: 600000, heartbeatMs: 60000, execTimeoutMs: 600000, resetMs: 0 } }
    for (let i = 0; i < 3; i++) brokers.push(await startRoundgate({ groups, redis: url }))
    const all = ids('m', n)
    const onBroker = brokers.map((_b, k) => all.filter((_id, i) => i % 3 === k))
    const shares: string[][] = fleet.gens.map(() => [])
    for (let k = 0; k < 3; k++) {
      const dealt = fleet.deal(onBroker[k])
      await fleet.each(`connecting ${onBroker[k].length} terminals to broker ${k + 1}`, (_g, i) => dealt[i].length > 0
        ? { port: brokers[k].mqttPort, ids: dealt[i], sub: { topic: `rg/${GROUP}/release`, qos: 1 } }
        : null, 'mqtt.connect', onBroker[k].length)
      dealt.forEach((d, i) => shares[i].push(...d))
    }
    const decider = onBroker[0][onBroker[0].length - 1]
    const deciderGen = fleet.gens[shares.findIndex((s) => s.includes(decider))]
    const per: Dist[] = []
    for (let r = 1; r <= o.rounds; r++) {
      await fleet.each('arm', () => ({ topic: `rg/${GROUP}/release` }), 'arm')
      await fleet.each(`round ${r}: readies`, (_g, i) => ({ ids: shares[i].filter((id) => id !== decider), topic: `rg/${GROUP}/ready/{id}`, payload: '{}', qos: 1 }), 'mqtt.publishEach')
      const s = await waitState(brokers[0], GROUP, (st) => st.ready === n - 1 && st.phase === 'WAITING', 'readies')
      const { t0 } = await deciderGen.call<{ t0: number }>('mqtt.publishOne', { id: decider, topic: `rg/${GROUP}/ready/{id}`, payload: '{}', qos: 1 })
      const got = await receipts(fleet, shares, t0, 60000)
      per.push(got.d)
      process.stderr.write(`  round ${s.round + 1}: first ${got.d.first.toFixed(2)} ms, p50 ${got.d.p50.toFixed(2)}, p99 ${got.d.p99.toFixed(2)}, last ${got.d.last.toFixed(2)} ms${got.missing > 0 ? `, ${got.missing} MISSING` : ''}\n`)
      if (r < o.rounds) {
        const round = s.round + 1
        await fleet.each('done', (_g, i) => ({ ids: shares[i], topic: `rg/${GROUP}/done/{id}`, payload: JSON.stringify({ round }), qos: 1 }), 'mqtt.publishEach')
        await waitState(brokers[0], GROUP, (st) => st.phase === 'WAITING' && st.round === round, 'round end')
      }
    }
    const rows = per.map((d, i) => [`round ${i + 1}`, d.first, d.p50, d.p99, d.last] as Array<string | number | null>)
    const lasts = dist(per.map((d) => d.last))
    const text = table(`cluster: release to ${n} MQTT terminals over 3 roundgate processes + 1 redis-server, ms from the deciding message's write (2 cores shared by 3 brokers, redis and ${fleet.gens.length} generators)`,
      ['', 'first', 'p50', 'p99', 'last'], rows)
    return { scenario: 'cluster', text, data: { available: true, n, brokers: 3, rounds: per, last: lasts } }
  } finally {
    for (const b of brokers) await b.stop()
    await redis.stop()
    await fleet.close()
  }
}
