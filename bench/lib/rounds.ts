// The one round driver of the release, cluster and startskew scenarios, for roundgate and for the
// node:http rival alike: N terminals (MQTT, HTTP long-poll or both) ready up; the last one's ready
// is the deciding message. Times run from the moment the generator holding that terminal writes
// it (CLOCK_MONOTONIC, taken just before the write) to each participant's receipt of its whole
// release (CLOCK_MONOTONIC in whichever generator holds it). Every release received is checked
// after the round (bench/gen/check.ts). With R rounds everybody reports done and readies again.
import { existsSync, readFileSync } from 'node:fs'
import type { Expect } from '../gen/check.js'
import type { Fleet } from './fleet.js'
import { httpJson, sleep, type Broker } from './procs.js'
import { dist, fmt, median, type Dist } from './report.js'

/** What the driver needs to know of the server under test. */
export interface RoundTarget {
  label: string
  group: string
  /** MQTT listeners; MQTT terminals are dealt round-robin over them (3 in the cluster scenario) */
  mqttPorts: number[]
  /** the HTTP listener every HTTP terminal uses */
  httpPort: number
  state: () => Promise<{ round: number, ready: number, phase: string }>
  /** long-polls the server holds */
  pending: () => Promise<number>
  /** in-server fan-out time per door of `round` (ms), when the server reports it */
  fanouts?: (round: number) => Promise<Record<string, number>>
}

export function roundgateTarget (brokers: Broker[], group: string, label = 'roundgate'): RoundTarget {
  const b = brokers[0]
  return {
    label,
    group,
    mqttPorts: brokers.map((x) => x.mqttPort),
    httpPort: b.httpPort,
    state: async () => (await httpJson(b.httpPort, `/v1/groups/${group}`)).state,
    pending: async () => await pendingPolls(b),
    fanouts: async (round) => {
      const r = await fetch(`http://127.0.0.1:${b.httpPort}/v1/groups/${group}/fanout`)
      if (r.status !== 200) return {} // a build without the route
      const list = await r.json() as Array<{ round: number, door: string, ms: number }>
      return Object.fromEntries(list.filter((f) => f.round === round).map((f) => [f.door, f.ms]))
    }
  }
}

export function httpRivalTarget (b: Broker, group: string): RoundTarget {
  const status = async (): Promise<{ round: number, ready: number, pending: number }> => await httpJson(b.httpPort, '/status')
  return {
    label: 'node:http long-poll',
    group,
    mqttPorts: [],
    httpPort: b.httpPort,
    state: async () => ({ ...(await status()), phase: 'WAITING' }),
    pending: async () => (await status()).pending
  }
}

/** Long-polls pending in a roundgate, from its /metrics (-1 when the gauge is missing). */
export async function pendingPolls (b: Broker): Promise<number> {
  const text = await httpJson(b.httpPort, '/metrics') as string
  const m = /^roundgate_http_longpolls_pending (\d+)/m.exec(text)
  return m === null ? -1 : Number(m[1])
}

/** Poll `state()` until `ok` holds; throws (with the last state) after `ms`. */
export async function waitFor<S> (state: () => Promise<S>, ok: (s: S) => boolean, what: string, ms = 60000): Promise<S> {
  const until = Date.now() + ms
  let s: S | null = null
  while (Date.now() < until) {
    s = await state()
    if (ok(s)) return s
    await sleep(20)
  }
  throw new Error(`${what}: state stayed ${JSON.stringify(s)}`)
}

export function ids (prefix: string, n: number, from = 0): string[] {
  const w = String(from + n).length
  return Array.from({ length: n }, (_v, i) => `${prefix}${String(from + i + 1).padStart(w, '0')}`)
}

/**
 * Epoch milliseconds minus CLOCK_MONOTONIC, in ns, read at the edge of a Date.now() millisecond
 * (so within a few µs). Every process of the machine shares both clocks: an epoch instant T of
 * the broker's clock is the monotonic instant T × 1e6 − this.
 */
export function epochMinusMonoNs (): number {
  const d0 = Date.now()
  let d1 = d0
  let h = 0
  while (d1 === d0) { d1 = Date.now(); h = Number(process.hrtime.bigint()) }
  return d1 * 1e6 - h
}

export interface RoundResult {
  /** the round number the server gave */
  round: number
  d: Dist
  missing: number
  /** latencies, ms from the deciding write */
  ms: number[]
  bytesMin: number
  bytesMax: number
  bad: number
  problems: string[]
  formats: Record<string, number>
  pollFailures: number
  /** ms: deciding write → broker read, broker read → first release write (bench/tools/probe.ts; MQTT only) */
  sendToRecv: number | null
  recvToWrite: number | null
  /** in-server fan-out ms per door, when reported */
  fanout: Record<string, number>
  t0: number
  /** [receipt ns, startAt, serverTime] per participant, when asked */
  skew?: Array<[number, number, number]>
  epochMinusMonoNs: number
}

export interface RunSpec {
  target: RoundTarget
  mqtt: number
  http: number
  rounds: number
  /** bench/tools/probe.ts output file of the broker, if it was started with the probe */
  probeFile?: string
  /** collect [receipt, startAt, serverTime] per participant */
  skew?: boolean
  /** runs before each round's readies (e.g. a configuration change) */
  beforeRound?: (r: number) => Promise<void>
  /** how long a round may take to reach every participant (default 60 s) */
  receiptTimeoutMs?: number
}

function readProbe (file: string | undefined): Array<[number, number]> {
  if (file === undefined || !existsSync(file)) return []
  return readFileSync(file, 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => l.split(' ').map(Number) as [number, number])
}

/** Connect the terminals, run the rounds, close the terminals. */
export async function runRounds (fleet: Fleet, spec: RunSpec): Promise<RoundResult[]> {
  const { target: t, rounds } = spec
  const g = t.group
  const G = fleet.gens.length
  const n = spec.mqtt + spec.http
  const mqttIds = ids('m', spec.mqtt)
  const httpIds = ids('h', spec.http)
  const decider = spec.mqtt > 0 ? mqttIds[spec.mqtt - 1] : httpIds[spec.http - 1]
  const deciderIsMqtt = spec.mqtt > 0
  // terminal i of a door lives in generator i % G; MQTT terminal i connects to listener i % B
  const B = t.mqttPorts.length
  const mqttShares: string[][] = fleet.gens.map(() => [])
  const httpShares: string[][] = fleet.gens.map(() => [])
  const onListener: string[][][] = t.mqttPorts.map(() => fleet.gens.map(() => []))
  mqttIds.forEach((id, i) => { mqttShares[i % G].push(id); onListener[i % B][i % G].push(id) })
  httpIds.forEach((id, i) => httpShares[i % G].push(id))
  const deciderGen = fleet.gens[((deciderIsMqtt ? spec.mqtt : spec.http) - 1) % G]
  const topic = `rg/${g}/release`
  try {
    for (let k = 0; k < B && spec.mqtt > 0; k++) {
      const on = onListener[k].reduce((a, x) => a + x.length, 0)
      await fleet.each(`${t.label}: connecting ${on} MQTT terminals${B > 1 ? ` to broker ${k + 1}` : ''}`, (_g, gi) =>
        onListener[k][gi].length > 0 ? { port: t.mqttPorts[k], ids: onListener[k][gi], sub: { topic, qos: 1 } } : null, 'mqtt.connect', on)
    }
    if (spec.http > 0) {
      await fleet.each(`${t.label}: opening ${spec.http} HTTP connections`, (_g, gi) => httpShares[gi].length > 0 ? { port: t.httpPort, ids: httpShares[gi] } : null, 'http.open', spec.http)
    }
    const out: RoundResult[] = []
    for (let r = 1; r <= rounds; r++) {
      const s0 = await t.state()
      await spec.beforeRound?.(r)
      await fleet.each('arm', () => ({ topic }), 'arm')
      await fleet.each(`round ${r}: MQTT readies`, (_g, gi) => {
        const mine = mqttShares[gi].filter((id) => id !== decider)
        return mine.length > 0 ? { ids: mine, topic: `rg/${g}/ready/{id}`, payload: '{}', qos: 1 } : null
      }, 'mqtt.publishEach')
      if (spec.http > 0) {
        await fleet.each(`round ${r}: HTTP readies and long-polls`, (_g, gi) => {
          const mine = httpShares[gi].filter((id) => id !== decider)
          return mine.length > 0 ? { group: g, ids: mine, ready: true, after: s0.round } : null
        }, 'http.park', spec.http)
        if (!deciderIsMqtt) await deciderGen.call('http.park', { group: g, ids: [decider], ready: false, after: s0.round })
        await waitFor(t.pending, (p) => p >= spec.http, `${t.label}: ${spec.http} long-polls pending`, 30000)
      }
      await waitFor(t.state, (s) => s.ready === n - 1 && s.phase === 'WAITING', `${t.label}: ${n - 1} readies`)
      const probesBefore = readProbe(spec.probeFile).length
      const { t0 } = deciderIsMqtt
        ? await deciderGen.call<{ t0: number }>('mqtt.publishOne', { id: decider, topic: `rg/${g}/ready/{id}`, payload: '{}', qos: 1 })
        : await deciderGen.call<{ t0: number }>('http.readyOne', { port: t.httpPort, group: g, id: decider })
      const expect: Expect = { kind: 'release', group: g, n, round: s0.round + 1 }
      const shares = fleet.gens.map((_g, gi) => mqttShares[gi].length + httpShares[gi].length)
      const got = await fleet.each<any>('receipts', (_g, gi) => ({ count: shares[gi], timeoutMs: spec.receiptTimeoutMs ?? 60000, expect, skew: spec.skew === true }), 'receipts')
      const offset = epochMinusMonoNs()
      // the probe appends from a setImmediate, after the broker's fan-out loop: give it time
      for (let i = 0; spec.probeFile !== undefined && spec.mqtt > 0 && i < 100 && readProbe(spec.probeFile).length <= probesBefore; i++) await sleep(20)
      const probes = readProbe(spec.probeFile)
      const probe = probes.length > probesBefore ? probes[probes.length - 1] : undefined
      const ms: number[] = got.flatMap((x: { times: number[] }) => x.times.map((tt) => (tt - t0) / 1e6))
      const formats: Record<string, number> = {}
      for (const x of got) for (const [k, v] of Object.entries(x.formats as Record<string, number>)) formats[k] = (formats[k] ?? 0) + v
      const res: RoundResult = {
        round: s0.round + 1,
        d: dist(ms),
        missing: n - ms.length,
        ms,
        bytesMin: Math.min(...got.map((x: any) => x.times.length > 0 ? x.bytesMin : Infinity)),
        bytesMax: Math.max(...got.map((x: any) => x.bytesMax)),
        bad: got.reduce((a: number, x: any) => a + x.bad, 0),
        problems: [...new Set<string>(got.flatMap((x: any) => x.problems))].slice(0, 3),
        formats,
        pollFailures: got.reduce((a: number, x: any) => a + x.pollFailures, 0),
        sendToRecv: probe !== undefined ? (probe[0] - t0) / 1e6 : null,
        recvToWrite: probe !== undefined ? (probe[1] - probe[0]) / 1e6 : null,
        fanout: t.fanouts !== undefined ? await t.fanouts(s0.round + 1) : {},
        t0,
        skew: spec.skew === true ? got.flatMap((x: any) => x.skew ?? []) : undefined,
        epochMinusMonoNs: offset
      }
      out.push(res)
      process.stderr.write(`  ${t.label}, round ${res.round}: first ${fmt(res.d.first)} ms, p50 ${fmt(res.d.p50)}, last ${fmt(res.d.last)} ms, ` +
        `${fmt(res.bytesMax, 0)} B each${res.missing > 0 ? `, ${res.missing} MISSING` : ''}${res.bad > 0 ? `, ${res.bad} BAD (${res.problems.join('; ')})` : ''}` +
        `${res.recvToWrite !== null ? `; broker read -> first release write ${fmt(res.recvToWrite, 3)} ms` : ''}\n`)
      if (r < rounds) {
        const round = s0.round + 1
        await fleet.each('done', (_g, gi) => mqttShares[gi].length > 0 ? { ids: mqttShares[gi], topic: `rg/${g}/done/{id}`, payload: JSON.stringify({ round }), qos: 1 } : null, 'mqtt.publishEach')
        if (spec.http > 0) await fleet.each('done', (_g, gi) => httpShares[gi].length > 0 ? { group: g, ids: httpShares[gi], round } : null, 'http.done')
        await waitFor(t.state, (s) => s.phase === 'WAITING' && s.round === round, `${t.label}: end of round ${round}`)
      }
    }
    return out
  } finally {
    await fleet.each('close', () => ({}), 'close').catch((err: Error) => { process.stderr.write(`  closing the terminals failed: ${err.message}\n`) })
  }
}

/** The median over rounds of each round's last receipt (ms). */
export function medianLast (rs: Array<{ d: Dist }>): number {
  return median(rs.map((r) => r.d.last))
}
