// cluster: issue 11's "3 processes on one Redis: N terminals spread over them released <= 1.5 x
// one process". The same release rounds (bench/lib/rounds.ts) three ways, one after the other, by
// the same generator processes:
//   1. 3 roundgate processes with --redis on one redis-server (ephemeral loopback port, no
//      persistence), MQTT terminals round-robin over the 3; the deciding ready goes to whichever
//      broker holds the last terminal;
//   2. one roundgate process, embedded memory store (--data-dir ""): the target's reference;
//   3. one roundgate process with --redis: shows how much of the difference is Redis itself and
//      how much is the bus hop between processes.
// Printed as "not available" when this build has no cluster mode or no redis-server.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Fleet } from '../lib/fleet.js'
import { startRedis, startRoundgate, type Broker } from '../lib/procs.js'
import { dist, table, verdict, verdictTable, type ScenarioResult } from '../lib/report.js'
import { medianLast, roundgateTarget, runRounds, type RoundResult } from '../lib/rounds.js'
import { gensFor, type Options } from './common.js'

const GROUP = 'bench'

export async function cluster (o: Options): Promise<ScenarioResult> {
  const clusterJs = fileURLToPath(new URL('../../broker/cluster.js', import.meta.url))
  if (!existsSync(clusterJs)) return { scenario: 'cluster', text: 'cluster: not available (this build has no broker/cluster.ts)', data: { available: false } }
  const n = o.n
  const fleet = new Fleet(gensFor(n, o.gens))
  const groups = { [GROUP]: { need: n, minOnlineRatio: 1, offlineAfterMs: 600000, heartbeatMs: 60000, execTimeoutMs: 600000, resetMs: 0 } }
  const measured: Array<{ what: string, rounds: RoundResult[] }> = []
  try {
    const setups: Array<{ what: string, brokers: number, redis: boolean }> = [
      { what: `3 roundgate processes on one redis-server, ${n} terminals round-robin`, brokers: 3, redis: true },
      { what: 'one roundgate process, memory store', brokers: 1, redis: false },
      { what: 'one roundgate process on redis-server', brokers: 1, redis: true }
    ]
    for (const s of setups) {
      let redis: Broker | null = null
      const brokers: Broker[] = []
      try {
        if (s.redis) {
          redis = await startRedis()
          if (redis === null) return { scenario: 'cluster', text: 'cluster: not available (no redis-server on PATH; apt-get install -y redis-server)', data: { available: false } }
        }
        for (let i = 0; i < s.brokers; i++) brokers.push(await startRoundgate({ groups, redis: redis === null ? undefined : `redis://127.0.0.1:${redis.mqttPort}` }))
        const rs = await runRounds(fleet, { target: roundgateTarget(brokers, GROUP, s.what), mqtt: n, http: 0, rounds: o.rounds })
        measured.push({ what: s.what, rounds: rs })
      } finally {
        for (const b of brokers) await b.stop()
        await redis?.stop()
      }
    }
    const rows = measured.flatMap((m) => {
      const all = dist(m.rounds.flatMap((r) => r.ms))
      const l = dist(m.rounds.map((r) => r.d.last))
      return [
        [`${m.what}${m.rounds.length > 1 ? `, ${m.rounds.length} rounds pooled` : ''}`, all.first, all.p50, all.p99, all.last, String(m.rounds.reduce((a, r) => a + r.missing, 0)), String(m.rounds.reduce((a, r) => a + r.bad, 0))],
        ...(m.rounds.length > 1 ? [['  per-round last: min/p50/p99/max', l.first, l.p50, l.p99, l.last, null, null]] : [])
      ] as Array<Array<string | number | null>>
    })
    const med = o.rounds > 1 ? `median of ${o.rounds} rounds` : 'one round'
    const [three, one, oneRedis] = measured.map((m) => medianLast(m.rounds))
    const note = n !== 10000 ? 'target set at 10,000' : undefined
    const verdicts = [
      verdict(`3 processes on one Redis, last (ms, ${med})`, three, 'one process, memory store', one, { op: '<=', value: 1.5 }, note),
      verdict(`3 processes on one Redis, last (ms, ${med})`, three, 'one process on Redis (for reference)', oneRedis, null)
    ]
    const text = [
      table(`cluster: release to ${n} MQTT terminals, ms from the deciding message's write (2 cores shared by the brokers, redis and ${fleet.gens.length} generators)`,
        ['', 'first', 'p50', 'p99', 'last', 'missing', 'bad'], rows),
      '',
      verdictTable('targets (issue 11): ratio = 3 processes / one process', verdicts)
    ].join('\n')
    return { scenario: 'cluster', text, data: { available: true, n, measured: measured.map((m) => ({ what: m.what, rounds: m.rounds.map(({ ms: _ms, ...r }) => r), last: dist(m.rounds.map((r) => r.d.last)) })), verdicts } }
  } finally {
    await fleet.close()
  }
}
