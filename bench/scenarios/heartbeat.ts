// heartbeat: C MQTT terminals of one group send QoS 0 heartbeats (rg/bench/hb/{id}) closed-loop
// for S seconds (bench/gen/flood.ts: 8 heartbeats and a PINGREQ per write, the next batch after
// the PINGRESP). Absorbed rate = heartbeats sent / (last PINGRESP − start). Broker CPU from
// /proc/<pid>/stat over the same interval. The rate is then checked against the engine: the group
// must show every terminal online. With --store sqlite the run repeats on a data directory
// (issue 9: heartbeats stay in memory, so the rate must hold there too). With --store redis it
// repeats in cluster mode on a redis-server started here, and adds Redis's own time per heartbeat
// script (INFO commandstats: EVALSHA calls and usec_per_call).
import { Redis } from 'ioredis'
import { Fleet } from '../lib/fleet.js'
import { cpuSeconds, httpJson, startRedis, startRoundgate, type Broker } from '../lib/procs.js'
import { table, verdict, verdictTable, type ScenarioResult, type Verdict } from '../lib/report.js'
import { ids } from '../lib/rounds.js'
import { connectMqtt, dataDirFor, gensFor, storeLabel, storesOf, type Options } from './common.js'

export async function heartbeat (o: Options): Promise<ScenarioResult> {
  const c = o.clients
  const fleet = new Fleet(gensFor(c, o.gens))
  const rows: Array<Array<string | number | null>> = []
  const verdicts: Verdict[] = []
  const runs: Array<Record<string, unknown>> = []
  try {
    for (const store of storesOf(o)) {
      const dataDir = dataDirFor(store)
      let rg: Broker | null = null
      let redis: Broker | null = null
      let link: Redis | null = null
      try {
        let url: string | undefined
        if (store === 'redis') {
          redis = await startRedis()
          if (redis === null) throw new Error('--store redis: no redis-server on PATH')
          url = `redis://127.0.0.1:${redis.mqttPort}`
          link = new Redis(url, { lazyConnect: true })
          await link.connect()
        }
        rg = await startRoundgate({ dataDir, redis: url, groups: { bench: { need: 100000, minOnlineRatio: 1, offlineAfterMs: 600000, heartbeatMs: 60000 } } })
        const terminals = ids('t', c)
        const shares = await connectMqtt(fleet, rg.mqttPort, terminals, undefined, `connecting ${c} MQTT terminals (${store})`)
        await link?.config('RESETSTAT')
        const cpu0 = cpuSeconds(rg.pid)
        const wall0 = process.hrtime.bigint()
        process.stderr.write(`  flooding heartbeats for ${o.seconds} s...\n`)
        const res = await fleet.each<{ sent: number, t0: number, t1: number }>('hb', (_g, i) => ({
          topicOf: Object.fromEntries(shares[i].map((id) => [id, `rg/bench/hb/${id}`])), payload: '{"load":0.5}', qos: 0, seconds: o.seconds, window: 8
        }), 'flood')
        const wall1 = process.hrtime.bigint()
        const cpu1 = cpuSeconds(rg.pid)
        const sent = res.reduce((n, r) => n + r.sent, 0)
        const seconds = (Math.max(...res.map((r) => r.t1)) - Math.min(...res.map((r) => r.t0))) / 1e9
        const rate = sent / seconds
        const cpu = (cpu1 - cpu0) / (Number(wall1 - wall0) / 1e9)
        const script = link === null ? null : evalshaStats(await link.info('commandstats'))
        const state = (await httpJson(rg.httpPort, '/v1/groups/bench')).state
        await fleet.each('close', () => ({}), 'close')
        const label = `roundgate, ${storeLabel(store, dataDir)}`
        rows.push([label, sent, seconds, rate, cpu * 100, rate / Math.max(cpu, 1e-9), String(state.online), script === null ? '-' : script.usecPerCall])
        verdicts.push(verdict(`heartbeats absorbed per second, ${label.replace(/^roundgate, /, '')}`, rate, '-', null, { op: '>=', value: 50000 }))
        runs.push({ store, label, sent, seconds, rate, brokerCpuPercent: cpu * 100, perCpuSecond: rate / Math.max(cpu, 1e-9), online: state.online, script })
      } finally {
        await rg?.stop()
        link?.disconnect()
        await redis?.stop()
      }
    }
    const text = [
      table(`heartbeats: ${c} MQTT terminals sending QoS 0 heartbeats closed-loop for ${o.seconds} s (2 cores shared by the broker and ${fleet.gens.length} generators)`,
        ['', 'sent', 'seconds', 'hb/s absorbed', 'broker CPU %', 'hb per CPU-second', 'online after', 'Redis µs per script'], rows),
      '',
      verdictTable(`targets (issue 9${o.store === 'sqlite' ? '' : '; add --store sqlite for the data-dir store'})`, verdicts)
    ].join('\n')
    return { scenario: 'heartbeat', text, data: { clients: c, generators: fleet.gens.length, runs } }
  } finally {
    await fleet.close()
  }
}

/** EVALSHA's line of INFO commandstats: `cmdstat_evalsha:calls=N,usec=N,usec_per_call=F,...`. */
function evalshaStats (info: string): { calls: number, usecPerCall: number } | null {
  const m = /^cmdstat_evalsha:calls=(\d+),usec=\d+,usec_per_call=([\d.]+)/m.exec(info)
  return m === null ? null : { calls: Number(m[1]), usecPerCall: Number(m[2]) }
}
