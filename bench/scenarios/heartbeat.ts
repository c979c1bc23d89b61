// heartbeat: C MQTT terminals of one group flood QoS 0 heartbeats (rg/bench/hb/{id}) for S
// seconds, each as fast as its socket takes them; then a PINGREQ on every connection, answered
// only after everything before it was handled. Absorbed rate = heartbeats sent / (last PINGRESP −
// start). Broker CPU from /proc/<pid>/stat over the same interval. The rate is then checked
// against the engine: the group must show every terminal online.
import { Fleet } from '../lib/fleet.js'
import { cpuSeconds, httpJson, startRoundgate, type Broker } from '../lib/procs.js'
import { table, type ScenarioResult } from '../lib/report.js'
import { connectMqtt, gensFor, ids, type Options } from './common.js'

export async function heartbeat (o: Options): Promise<ScenarioResult> {
  const c = o.clients
  const fleet = new Fleet(gensFor(c, o.gens))
  let rg: Broker | null = null
  try {
    rg = await startRoundgate({ groups: { bench: { need: 100000, minOnlineRatio: 1, offlineAfterMs: 600000, heartbeatMs: 60000 } } })
    const terminals = ids('t', c)
    await connectMqtt(fleet, rg.mqttPort, terminals, undefined, `connecting ${c} MQTT terminals`)
    const payload = '{"load":0.5}'
    const cpu0 = cpuSeconds(rg.pid)
    const wall0 = process.hrtime.bigint()
    process.stderr.write(`  flooding heartbeats for ${o.seconds} s...\n`)
    const res = await fleet.each<{ sent: number, t0: number, t1: number }>('hb', () => ({ group: 'bench', seconds: o.seconds, batch: 8, payload }), 'hb.flood')
    const wall1 = process.hrtime.bigint()
    const cpu1 = cpuSeconds(rg.pid)
    const sent = res.reduce((n, r) => n + r.sent, 0)
    const t0 = Math.min(...res.map((r) => r.t0))
    const t1 = Math.max(...res.map((r) => r.t1))
    const seconds = (t1 - t0) / 1e9
    const rate = sent / seconds
    const cpu = (cpu1 - cpu0) / (Number(wall1 - wall0) / 1e9)
    const state = (await httpJson(rg.httpPort, '/v1/groups/bench')).state
    const rows = [
      ['roundgate, memory store', sent, seconds, rate, cpu * 100, rate / Math.max(cpu, 1e-9), state.online]
    ]
    const text = table(`heartbeats: ${c} MQTT terminals flooding QoS 0 heartbeats for ${o.seconds} s (2 cores shared by the broker and ${fleet.gens.length} generators; target >= 50,000/s)`,
      ['', 'sent', 'seconds', 'hb/s absorbed', 'broker CPU %', 'hb per CPU-second', 'online after'], rows)
    return { scenario: 'heartbeat', text, data: { clients: c, sent, seconds, rate, brokerCpuPercent: cpu * 100, perCpuSecond: rate / cpu, online: state.online, generators: fleet.gens.length } }
  } finally {
    await rg?.stop()
    await fleet.close()
  }
}
