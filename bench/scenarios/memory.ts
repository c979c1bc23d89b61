// memory: resident memory (/proc/<pid>/status VmRSS) a broker holds per idle terminal.
//   MQTT: N clean-session terminals connect, subscribe to rg/bench/release (QoS 1) and heartbeat
//         once (so the engine knows them), then sit idle; RSS after 3 s of quiet minus RSS before.
//   HTTP: N terminals each park one release long-poll (wait=120, not ready); same measure.
// Vanilla aedes with N idle subscribers is measured beside it. RSS includes whatever heap V8 has
// not given back yet, so these are upper bounds of what the terminals cost.
import { Fleet } from '../lib/fleet.js'
import { httpJson, rssBytes, sleep, startAedes, startRoundgate, type Broker } from '../lib/procs.js'
import { table, type ScenarioResult } from '../lib/report.js'
import { ids, pendingPolls } from '../lib/rounds.js'
import { connectMqtt, gensFor, type Options } from './common.js'

async function settledRss (pid: number): Promise<number> {
  await sleep(3000)
  return rssBytes(pid)
}

export async function memory (o: Options): Promise<ScenarioResult> {
  const n = o.n
  const fleet = new Fleet(gensFor(n, o.gens))
  const rows: Array<Array<string | number | null>> = []
  const data: Record<string, unknown> = { n }
  const group = { bench: { need: 100000, minOnlineRatio: 1, offlineAfterMs: 600000, heartbeatMs: 60000 } }
  let b: Broker | null = null
  try {
    b = await startRoundgate({ groups: group })
    let before = await settledRss(b.pid)
    const mqttIds = ids('m', n)
    const shares = await connectMqtt(fleet, b.mqttPort, mqttIds, { topic: 'rg/bench/release', qos: 1 }, `connecting ${n} idle MQTT terminals`)
    await fleet.each('heartbeat', (_g, i) => ({ ids: shares[i], topic: 'rg/bench/hb/{id}', payload: '{}', qos: 1 }), 'mqtt.publishEach')
    let after = await settledRss(b.pid)
    const online = (await httpJson(b.httpPort, '/v1/groups/bench')).state.online
    rows.push(['roundgate, idle MQTT terminal (connected, subscribed, online)', before / 1048576, after / 1048576, (after - before) / n / 1024, String(online)])
    data.mqtt = { before, after, perTerminal: (after - before) / n, online }
    await fleet.each('close', () => ({}), 'close')
    await b.stop()

    b = await startRoundgate({ groups: group })
    before = await settledRss(b.pid)
    const httpIds = ids('h', n)
    const hs = fleet.deal(httpIds)
    const port = b.httpPort
    await fleet.each(`opening ${n} HTTP connections`, (_g, i) => ({ port, ids: hs[i] }), 'http.open', n)
    await fleet.each(`parking ${n} long-polls`, (_g, i) => ({ group: 'bench', ids: hs[i], ready: false, after: 0, wait: 120 }), 'http.park', n)
    after = await settledRss(b.pid)
    const pending = await pendingPolls(b)
    rows.push(['roundgate, pending HTTP long-poll (one socket each)', before / 1048576, after / 1048576, (after - before) / n / 1024, String(pending)])
    data.http = { before, after, perWaiter: (after - before) / n, pending }
    await fleet.each('close', () => ({}), 'close')
    await b.stop()

    b = await startAedes()
    before = await settledRss(b.pid)
    await connectMqtt(fleet, b.mqttPort, ids('s', n), { topic: 'bench/idle', qos: 1 }, `vanilla aedes: connecting ${n} idle subscribers`)
    after = await settledRss(b.pid)
    rows.push(['vanilla aedes 1.2, idle subscriber', before / 1048576, after / 1048576, (after - before) / n / 1024, String(n)])
    data.aedes = { before, after, perClient: (after - before) / n }
    await fleet.each('close', () => ({}), 'close')
    await b.stop()
    b = null
    const text = table(`memory: RSS per idle terminal at ${n} (target <= 20 KB per idle MQTT terminal)`,
      ['', 'RSS before MB', 'RSS after MB', 'KB each', 'counted'], rows)
    return { scenario: 'memory', text, data }
  } finally {
    await b?.stop()
    await fleet.close()
  }
}
