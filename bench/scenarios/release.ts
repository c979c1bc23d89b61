// release: N terminals (MQTT, HTTP long-poll or half and half) ready up; the last one's ready is
// the deciding message. Times run from the moment the generator holding that terminal writes the
// deciding message (CLOCK_MONOTONIC, taken just before the write) to each participant's receipt
// of its whole release (CLOCK_MONOTONIC in whichever generator holds it). With --rounds R the
// round repeats (participants report done, resetMs 0), and "first" is summarised over rounds.
// For the MQTT door the same run then fans one plain QoS 1 message out to N subscribers of
// vanilla aedes, of the release's size and of 64 bytes: the comparison of issue 5.
import { Fleet } from '../lib/fleet.js'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { sleep, startAedes, startRoundgate, tempDir, type Broker } from '../lib/procs.js'
import { dist, fmt, table, type Dist, type ScenarioResult } from '../lib/report.js'
import { connectMqtt, gensFor, ids, pendingPolls, plainFanout, receipts, waitState, type Options } from './common.js'

const GROUP = 'bench'

export async function release (o: Options): Promise<ScenarioResult> {
  const n = o.n
  const nHttp = o.door === 'http' ? n : o.door === 'mix' ? Math.floor(n / 2) : 0
  const nMqtt = n - nHttp
  const rounds = o.door === 'mqtt' ? o.rounds : 1
  const mqttIds = ids('m', nMqtt)
  const httpIds = ids('h', nHttp)
  const fleet = new Fleet(gensFor(n, o.gens))
  const rows: Array<Array<string | number | null>> = []
  const data: Record<string, unknown> = { n, door: o.door, mqtt: nMqtt, http: nHttp, rounds, generators: fleet.gens.length }
  let rg: Broker | null = null
  const probeFile = join(tempDir(), 'probe.txt')
  // the deciding terminal: the last MQTT one (or the last HTTP one when all are HTTP)
  const decider = nMqtt > 0 ? mqttIds[nMqtt - 1] : httpIds[nHttp - 1]
  const readProbe = (): Array<[number, number]> => existsSync(probeFile)
    ? readFileSync(probeFile, 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => l.split(' ').map(Number) as [number, number])
    : []
  try {
    rg = await startRoundgate({
      probe: { match: nMqtt > 0 ? `rg/${GROUP}/ready/${decider}` : `"clientId":"${decider}"`, topic: `rg/${GROUP}/release`, file: probeFile },
      groups: { [GROUP]: { need: n, minOnlineRatio: 1, offlineAfterMs: 600000, heartbeatMs: 60000, execTimeoutMs: 600000, resetMs: 0 } }
    })
    const topic = `rg/${GROUP}/release`
    const mqttShares = await connectMqtt(fleet, rg.mqttPort, mqttIds, { topic, qos: 1 }, `connecting ${nMqtt} MQTT terminals`)
    const httpShares = fleet.deal(httpIds)
    const deciderGen = nMqtt > 0 ? fleet.genOf(mqttIds, decider) : fleet.genOf(httpIds, decider)
    const perRound: Array<{ round: number, d: Dist, missing: number, bytes: number, sendToRecv: number | null, recvToWrite: number | null }> = []
    const all: number[] = []
    for (let r = 1; r <= rounds; r++) {
      await fleet.each('arm', () => ({ topic }), 'arm')
      await fleet.each(`round ${r}: MQTT readies`, (_g, i) => mqttShares[i].length > 0
        ? { ids: mqttShares[i].filter((id) => id !== decider), topic: `rg/${GROUP}/ready/{id}`, payload: '{}', qos: 1 }
        : null, 'mqtt.publishEach')
      if (nHttp > 0) {
        await fleet.each(`parking ${nHttp} HTTP long-polls`, (_g, i) => httpShares[i].length > 0
          ? { port: rg?.httpPort, group: GROUP, ids: httpShares[i].filter((id) => id !== decider), ready: true }
          : null, 'http.terminals', nHttp)
        if (decider.startsWith('h')) await deciderGen.call('http.terminals', { port: rg.httpPort, group: GROUP, ids: [decider], ready: false })
        const until = Date.now() + 30000
        while (await pendingPolls(rg) < nHttp && Date.now() < until) await sleep(20)
      }
      const probesBefore = readProbe().length
      const before = await waitState(rg, GROUP, (s) => s.ready === n - 1 && s.phase === 'WAITING', 'readies')
      const { t0 } = decider.startsWith('m')
        ? await deciderGen.call<{ t0: number }>('mqtt.publishOne', { id: decider, topic: `rg/${GROUP}/ready/{id}`, payload: '{}', qos: 1 })
        : await deciderGen.call<{ t0: number }>('http.readyOne', { port: rg.httpPort, group: GROUP, id: decider })
      const shares = fleet.gens.map((_g, i) => [...(mqttShares[i] ?? []), ...(httpShares[i] ?? [])])
      const got = await receipts(fleet, shares, t0, 60000)
      // the probe appends from a setImmediate, after the broker's fan-out loop: give it time
      for (let i = 0; nMqtt > 0 && i < 250 && readProbe().length <= probesBefore; i++) await sleep(20)
      const probes = readProbe()
      if (process.env.BENCH_DEBUG_PROBE === "1") process.stderr.write(`probe lines: ${JSON.stringify(probes)} t0 ${t0}\n`)
      const probe = probes.length > probesBefore ? probes[probes.length - 1] : undefined
      const sendToRecv = probe !== undefined ? (probe[0] - t0) / 1e6 : null
      const recvToWrite = probe !== undefined ? (probe[1] - probe[0]) / 1e6 : null
      perRound.push({ round: before.round + 1, d: got.d, missing: got.missing, bytes: got.bytes, sendToRecv, recvToWrite })
      all.push(...got.ms)
      process.stderr.write(`  round ${before.round + 1}: first ${fmt(got.d.first)} ms, p50 ${fmt(got.d.p50)}, p99 ${fmt(got.d.p99)}, last ${fmt(got.d.last)} ms${got.missing > 0 ? `, ${got.missing} MISSING` : ''}; deciding message write -> broker read ${fmt(sendToRecv, 3)} ms, broker read -> first release write ${fmt(recvToWrite, 3)} ms\n`)
      if (r < rounds) {
        const round = before.round + 1
        await fleet.each('done', (_g, i) => ({ ids: mqttShares[i], topic: `rg/${GROUP}/done/{id}`, payload: JSON.stringify({ round }), qos: 1 }), 'mqtt.publishEach')
        await waitState(rg, GROUP, (s) => s.phase === 'WAITING' && s.round === round, 'round end')
      }
    }
    await rg.stop()
    rg = null
    await fleet.each('close', () => ({}), 'close')

    const firsts = dist(perRound.map((p) => p.d.first))
    const inBroker = dist(perRound.flatMap((p) => p.recvToWrite === null ? [] : [p.recvToWrite]))
    const lasts = dist(perRound.map((p) => p.d.last))
    const one = perRound[perRound.length - 1]
    const kb = one.bytes / 1024
    const label = `roundgate release, ${o.door}${o.door === 'mix' ? ` (${nMqtt} MQTT + ${nHttp} HTTP)` : ''}, ${fmt(kb, 1)} KB each`
    if (rounds === 1) rows.push([label, one.d.first, one.d.p50, one.d.p99, one.d.last, String(one.missing)])
    else {
      const d = dist(all)
      rows.push([`${label}, ${rounds} rounds pooled`, d.first, d.p50, d.p99, d.last, String(perRound.reduce((m, p) => m + p.missing, 0))])
      rows.push([`  per-round first: min/p50/p99/max`, firsts.first, firsts.p50, firsts.p99, firsts.last, null])
      rows.push([`  per-round last: min/p50/p99/max`, lasts.first, lasts.p50, lasts.p99, lasts.last, null])
    }
    if (inBroker.n > 0 && nMqtt > 0) {
      rows.push([`in the broker: deciding read -> first release write, min/p50/p99/max over ${inBroker.n} round(s) (target p99 <= 1)`, inBroker.first, inBroker.p50, inBroker.p99, inBroker.last, null])
    }
    data.release = { perRound, bytes: one.bytes, firstOverRounds: firsts, lastOverRounds: lasts, recvToFirstWrite: inBroker }

    if (o.door === 'mqtt' && o.compare) {
      const payloadBytes = Math.max(64, one.bytes - topic.length - 6)
      const cmp: Record<string, unknown> = {}
      for (const bytes of [payloadBytes, 64]) {
        const aedes = await startAedes()
        try {
          const runs = await plainFanout(fleet, aedes, n, bytes, 1, `vanilla aedes, ${bytes} B`, rounds)
          const what = `vanilla aedes 1.2, one plain QoS 1 message, ${bytes >= 1024 ? `${fmt(bytes / 1024, 1)} KB` : `${bytes} B`}`
          if (rounds === 1) rows.push([what, runs[0].d.first, runs[0].d.p50, runs[0].d.p99, runs[0].d.last, String(runs[0].missing)])
          else {
            const l = dist(runs.map((x) => x.d.last))
            rows.push([`${what}: last min/p50/p99/max over ${rounds}`, l.first, l.p50, l.p99, l.last, String(runs.reduce((m, x) => m + x.missing, 0))])
          }
          cmp[bytes === 64 ? 'aedesSmall' : 'aedesSameSize'] = { bytes, runs, last: dist(runs.map((x) => x.d.last)) }
        } finally {
          await aedes.stop()
        }
      }
      data.comparison = cmp
      const same = (cmp.aedesSameSize as { last: Dist }).last.p50
      const small = (cmp.aedesSmall as { last: Dist }).last.p50
      const mine = lasts.p50
      data.ratioLastSameSize = mine / same
      data.ratioLastSmall = mine / small
      const med = rounds > 1 ? ' (medians of last)' : ''
      rows.push([`ratio last: release / aedes same size${med} (target <= 0.7)`, null, null, null, mine / same, null])
      rows.push([`ratio last: release / aedes 64 B${med}`, null, null, null, mine / small, null])
    }
    const text = table(`release fan-out: ${n} terminals, door ${o.door}, ms from the deciding message's write to each receipt (2 cores shared by broker and ${fleet.gens.length} generators)`,
      ['', 'first', 'p50', 'p99', 'last', 'missing'], rows)
    return { scenario: 'release', text, data }
  } finally {
    await rg?.stop()
    await fleet.close()
  }
}
