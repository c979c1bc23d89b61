// fanout-peers: one plain message (--bytes, default 64; --qos, default 1) from one publisher to N
// subscribers of one topic, on roundgate, vanilla aedes 1.2 and Mosquitto (when installed), in the
// same run, --rounds times each over the same connections. Times from the publisher's write to
// each subscriber's receipt, on the machine's monotonic clock.
import { Fleet } from '../lib/fleet.js'
import { startAedes, startMosquitto, startRoundgate, type Broker } from '../lib/procs.js'
import { dist, table, type ScenarioResult } from '../lib/report.js'
import { gensFor, NOT_INSTALLED, plainFanout, type Options } from './common.js'

export async function fanoutPeers (o: Options): Promise<ScenarioResult> {
  const n = o.n
  const bytes = o.bytes ?? 64
  const reps = Math.max(1, o.rounds)
  const fleet = new Fleet(gensFor(n, o.gens))
  const rows: Array<Array<string | number | null>> = []
  const data: Record<string, unknown> = { n, bytes, qos: o.qos, reps }
  try {
    const starters: Array<[string, () => Promise<Broker | null>]> = [
      ['roundgate', async () => await startRoundgate({ groups: { bench: { need: 10 } } })],
      ['vanilla aedes 1.2', startAedes],
      ['mosquitto', startMosquitto]
    ]
    for (const [name, start] of starters) {
      const b = await start()
      if (b === null) {
        rows.push([`${name}: ${NOT_INSTALLED}`, null, null, null, null, null])
        continue
      }
      try {
        const runs = await plainFanout(fleet, b, n, bytes, o.qos, name, reps)
        const pick = runs.map((r) => r.d).sort((a, c) => a.last - c.last)[Math.floor((runs.length - 1) / 2)]
        rows.push([`${name}${reps > 1 ? ` (median of ${reps} by last)` : ''}`, pick.first, pick.p50, pick.p99, pick.last, String(runs.reduce((m, r) => m + r.missing, 0))])
        data[name] = { runs, last: dist(runs.map((r) => r.d.last)) }
      } finally {
        await b.stop()
      }
    }
    const text = table(`fan-out: one plain QoS ${o.qos} message of ${bytes} B to ${n} subscribers, ms from the publisher's write to each receipt (2 cores shared by the broker and ${fleet.gens.length} generators)`,
      ['', 'first', 'p50', 'p99', 'last', 'missing'], rows)
    return { scenario: 'fanout-peers', text, data }
  } finally {
    await fleet.close()
  }
}
