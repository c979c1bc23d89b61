// overhead: plain MQTT pub/sub outside the roundgate prefix, QoS 0 and QoS 1, through roundgate
// (scheduler, guards and metrics loaded, one group configured) and through vanilla aedes 1.2 (the
// same version, bench/rivals/aedes-server.ts), in the same run, alternating A B A B so drift hits both.
// C/2 publishers each publish on their own topic to one subscriber (closed loop: a window of 32
// in flight per publisher; bench/gen/flood.ts). Throughput = messages received by the subscribers / (last receipt −
// start of publishing).
import { Fleet } from '../lib/fleet.js'
import { cpuSeconds, sleep, startAedes, startRoundgate, type Broker } from '../lib/procs.js'
import { dist, median, table, verdict, verdictTable, type ScenarioResult, type Verdict } from '../lib/report.js'
import { ids } from '../lib/rounds.js'
import type { Options } from './common.js'

const REPS = 5

interface Run { broker: string, qos: number, received: number, sent: number, seconds: number, rate: number, cpu: number, perCpu: number }

async function once (fleet: Fleet, b: Broker, pairs: number, qos: 0 | 1, seconds: number, bytes: number): Promise<Run> {
  const pubs = ids('p', pairs)
  const subs = ids('s', pairs)
  const [pg, sg] = fleet.gens
  try {
    await sg.call('mqtt.connect', { port: b.mqttPort, ids: subs, sub: { topic: 'bench/o/{id}', qos } })
    await pg.call('mqtt.connect', { port: b.mqttPort, ids: pubs })
    await sg.call('arm', { topic: '-' })
    const topicOf = Object.fromEntries(pubs.map((p, i) => [p, `bench/o/${subs[i]}`]))
    const cpu0 = cpuSeconds(b.pid)
    const w0 = Date.now()
    const r = await pg.call<{ sent: number, t0: number, t1: number }>('flood', { topicOf, qos, seconds, window: 32, bytes })
    let last = -1
    let c = await sg.call<{ received: number, lastReceivedAt: number }>('count.read')
    for (let i = 0; i < 100 && c.received !== last && c.received < r.sent; i++) {
      last = c.received
      await sleep(100)
      c = await sg.call('count.read')
    }
    const used = cpuSeconds(b.pid) - cpu0
    const cpu = used / ((Date.now() - w0) / 1000)
    const secs = (c.lastReceivedAt - r.t0) / 1e9
    return { broker: b.kind, qos, received: c.received, sent: r.sent, seconds: secs, rate: c.received / secs, cpu: cpu * 100, perCpu: c.received / Math.max(used, 0.01) }
  } finally {
    await pg.call('close')
    await sg.call('close')
  }
}

export async function overhead (o: Options): Promise<ScenarioResult> {
  const pairs = Math.max(1, Math.floor(o.clients / 2))
  const bytes = o.bytes ?? 64
  const fleet = new Fleet(2)
  const runs: Run[] = []
  const started: Broker[] = []
  try {
    const rg = await startRoundgate({ groups: { bench: { need: 10 } } })
    started.push(rg)
    const ae = await startAedes()
    started.push(ae)
    for (const qos of [0, 1] as const) {
      for (let rep = 0; rep < REPS; rep++) {
        for (const b of rep % 2 === 0 ? [rg, ae] : [ae, rg]) {
          process.stderr.write(`  ${b.kind} QoS ${qos} run ${rep + 1}...\n`)
          runs.push(await once(fleet, b, pairs, qos, o.seconds, bytes))
        }
      }
    }
    const rows: Array<Array<string | number | null>> = []
    const verdicts: Verdict[] = []
    const ratios: Record<string, number> = {}
    for (const qos of [0, 1]) {
      const r = runs.filter((x) => x.qos === qos && x.broker === 'roundgate')
      const a = runs.filter((x) => x.qos === qos && x.broker === 'aedes')
      const med = (xs: Run[], k: 'rate' | 'perCpu'): number => median(xs.map((x) => x[k]))
      for (const x of [...r, ...a]) rows.push([`${x.broker === 'roundgate' ? 'roundgate (scheduler loaded)' : 'vanilla aedes 1.2'}, QoS ${qos}`, x.received, x.seconds, x.rate, x.cpu, x.perCpu])
      ratios[`qos${qos}`] = med(r, 'rate') / med(a, 'rate')
      ratios[`qos${qos}PerCpu`] = med(r, 'perCpu') / med(a, 'perCpu')
      rows.push([`QoS ${qos} medians: roundgate / aedes, msg/s (target >= 0.95) | msg per CPU-s`, null, null, med(r, 'rate') / med(a, 'rate'), null, med(r, 'perCpu') / med(a, 'perCpu')])
      verdicts.push(verdict(`plain pub/sub QoS ${qos}, msg/s (median of ${REPS} alternated runs)`, med(r, 'rate'), 'vanilla aedes 1.2', med(a, 'rate'), { op: '>=', value: 0.95 }))
    }
    const text = table(`overhead: plain pub/sub, ${pairs} publishers -> ${pairs} subscribers, ${bytes} B, ${o.seconds} s per run, runs alternated (2 cores shared by the broker under test and 2 generators; the idle broker sleeps)`,
      ['', 'received', 'seconds', 'msg/s', 'broker CPU %', 'msg per broker CPU-s'], rows) +
      '\n\n' + verdictTable('targets (issue 11): ratio = roundgate / vanilla aedes', verdicts)
    return { scenario: 'overhead', text, data: { pairs, bytes, seconds: o.seconds, runs, ratios, spread: dist(runs.map((x) => x.rate)) } }
  } finally {
    for (const b of started) await b.stop()
    await fleet.close()
  }
}
