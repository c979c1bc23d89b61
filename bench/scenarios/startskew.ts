// startskew: how well a fleet can start together (issue 11 point 3). For each size (1,000 and
// 10,000, or --n) and each startDelayMs (--delays, default 0,20,50,100), --rounds rounds of N MQTT
// participants, after one warm-up round of the fresh broker that is not reported. Per round:
//   - how many received their release before `startAt`: the receipt instant (CLOCK_MONOTONIC in
//     the generator, when the release's last byte arrived) against startAt mapped to the same
//     clock, and how many saw time left by their own reckoning (startAt > serverTime);
//   - the spread of the participants' estimated start instants. A participant estimates
//     start = its receive time + (startAt − serverTime): serverTime is the broker's clock when it
//     wrote this copy, so startAt − serverTime is "how long from now". The generators take the
//     receive time on CLOCK_MONOTONIC, which every process of the machine shares, so each
//     estimate is one instant on one clock: est = receive ns + (startAt − serverTime) × 1e6, and
//     the spread is p50/p99/max of est − min(est) over the round's participants;
//   - the participants' actual start, max(receipt, est) (one that got its release late starts at
//     once), and how far the estimates lie from the true startAt: startAt is an epoch instant of the
//     broker's clock, the machine's real-time clock; the parent reads epoch − monotonic at the edge
//     of a Date.now() millisecond after each round (lib/rounds.ts epochMinusMonoNs) and maps
//     startAt to startAt × 1e6 − that.
// startAt and serverTime are whole milliseconds, so each estimate carries up to 1 ms of rounding.
// A build without PROTOCOL 1.1's start fields is said to be so, and nothing is measured (exit 0).
import { Fleet } from '../lib/fleet.js'
import { startRoundgate, type Broker } from '../lib/procs.js'
import { table, type ScenarioResult } from '../lib/report.js'
import { roundgateTarget, runRounds, type RoundResult } from '../lib/rounds.js'
import { skewOf, type Skew } from '../lib/skew.js'
import { gensFor, type Options } from './common.js'

const GROUP = 'bench'

/** Why this build cannot be measured, or null when it speaks PROTOCOL 1.1's start fields. */
async function missing11 (b: Broker): Promise<string | null> {
  const t = await fetch(`http://127.0.0.1:${b.httpPort}/v1/time`)
  const body = t.status === 200 ? await t.json() as { serverTime?: unknown } : null
  if (typeof body?.serverTime !== 'number') return `GET /v1/time answers ${t.status}${body !== null ? ` ${JSON.stringify(body)}` : ''}, not {"serverTime"}`
  const p = await fetch(`http://127.0.0.1:${b.httpPort}/v1/groups/${GROUP}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ startDelayMs: 0 }) })
  if (p.status !== 200) return `the group key startDelayMs is refused (PATCH: HTTP ${p.status} ${(await p.text()).slice(0, 200)})`
  return null
}

export async function startskew (o: Options): Promise<ScenarioResult> {
  const sizes = o.nGiven ? [o.n] : [1000, 10000]
  const delays = o.delays
  const fleet = new Fleet(gensFor(Math.max(...sizes), o.gens))
  const rows: Array<Array<string | number | null>> = []
  const results: Array<{ n: number, delay: number, round: number, missing: number, skew: Skew }> = []
  try {
    for (const n of sizes) {
      const rg = await startRoundgate({ groups: { [GROUP]: { need: n, minOnlineRatio: 1, offlineAfterMs: 600000, heartbeatMs: 60000, execTimeoutMs: 600000, resetMs: 0 } } })
      try {
        const why = await missing11(rg)
        if (why !== null) {
          const text = `startskew: not measured. This build does not speak PROTOCOL 1.1's synchronised start: ${why}.\n` +
            'The scenario needs the group key startDelayMs and startAt/serverTime in every release; it measures nothing until they exist.'
          return { scenario: 'startskew', text, data: { available: false, reason: why } }
        }
        // round 1 warms the fresh broker up (its first round is its slowest) and is not reported
        const delayOf = (r: number): number => r === 1 ? delays[0] : delays[Math.floor((r - 2) / o.rounds)]
        const rs: RoundResult[] = await runRounds(fleet, {
          target: roundgateTarget([rg], GROUP, `roundgate, ${n}`),
          mqtt: n,
          http: 0,
          rounds: 1 + delays.length * o.rounds,
          skew: true,
          beforeRound: async (r) => {
            const res = await fetch(`http://127.0.0.1:${rg.httpPort}/v1/groups/${GROUP}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ startDelayMs: delayOf(r) }) })
            if (res.status !== 200) throw new Error(`PATCH startDelayMs ${delayOf(r)}: HTTP ${res.status} ${await res.text()}`)
          }
        })
        rs.forEach((r, i) => {
          if (i === 0) return // the warm-up
          const triples = r.skew ?? []
          if (triples.length < r.ms.length) throw new Error(`round ${r.round}: ${r.ms.length - triples.length} of ${r.ms.length} releases lack startAt or serverTime`)
          const s = skewOf(triples, r.epochMinusMonoNs, n)
          if (s.startAts > 1) throw new Error(`round ${r.round}: the participants' releases name ${s.startAts} different startAt instants`)
          const delay = delayOf(i + 1)
          results.push({ n, delay, round: r.round, missing: r.missing, skew: s })
          rows.push([String(n), String(delay), String(r.round), `${s.beforeStart}/${n}`, `${s.ownViewBefore}/${n}`, s.est.p50, s.est.p99, s.est.max,
            s.started.p50, s.started.p99, s.started.max, s.estMinusStartAt, s.lastMinusStartAt, String(r.missing)])
        })
      } finally {
        await rg.stop()
      }
    }
    const text = table('startskew: MQTT participants, startDelayMs per round; "est" = receipt + (startAt - serverTime) on the shared monotonic clock, spreads are ms above the earliest; ' +
      '"started" = max(receipt, est); last - startAt < 0: everybody had the release in time',
    ['N', 'delay ms', 'round', 'before startAt', 'own view', 'est p50', 'est p99', 'est max', 'started p50', 'started p99', 'started max', 'est - startAt p50', 'last - startAt', 'missing'], rows)
    return { scenario: 'startskew', text, data: { available: true, sizes, delays, rounds: o.rounds, results } }
  } finally {
    await fleet.close()
  }
}
