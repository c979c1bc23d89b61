// What several scenarios share: terminal ids, generator counts, connecting MQTT terminals, and
// one "plain message to N subscribers" fan-out run against any broker.
import type { Fleet } from '../lib/fleet.js'
import { httpJson, sleep, type Broker } from '../lib/procs.js'
import { dist, type Dist } from '../lib/report.js'

export interface Options {
  n: number
  door: 'mqtt' | 'http' | 'mix'
  rounds: number
  gens: number
  seconds: number
  qos: 0 | 1
  clients: number
  json: boolean
  bytes: number | null
  compare: boolean
}

/** Poll GET /v1/groups/{group} until `ok` holds; throws (with the last state) after `ms`. */
export async function waitState (b: Broker, group: string, ok: (s: any) => boolean, what: string, ms = 60000): Promise<any> {
  const until = Date.now() + ms
  let s: any = null
  while (Date.now() < until) {
    s = (await httpJson(b.httpPort, `/v1/groups/${group}`)).state
    if (ok(s)) return s
    await sleep(20)
  }
  throw new Error(`${what}: state stayed ${JSON.stringify(s)}`)
}

/** Long-polls pending in a roundgate, from its /metrics (-1 when the gauge is missing). */
export async function pendingPolls (b: Broker): Promise<number> {
  const text = await httpJson(b.httpPort, '/metrics') as string
  const m = /^roundgate_http_longpolls_pending (\d+)/m.exec(text)
  return m === null ? -1 : Number(m[1])
}

export function ids (prefix: string, n: number, from = 0): string[] {
  const w = String(from + n).length
  return Array.from({ length: n }, (_v, i) => `${prefix}${String(from + i + 1).padStart(w, '0')}`)
}

/** Generators for n terminals: at most ~3,000 sockets each (20,000 fds per process), at least 2. */
export function gensFor (n: number, asked: number): number {
  return asked > 0 ? asked : Math.max(2, Math.ceil(n / 3000))
}

export async function connectMqtt (fleet: Fleet, port: number, all: string[], sub: { topic: string, qos: 0 | 1 } | undefined, label: string): Promise<string[][]> {
  const shares = fleet.deal(all)
  await fleet.each(label, (_g, i) => shares[i].length > 0 ? { port, ids: shares[i], sub } : null, 'mqtt.connect', all.length)
  return shares
}

export async function receipts (fleet: Fleet, shares: string[][], t0: number, timeoutMs: number): Promise<{ d: Dist, missing: number, bytes: number, ms: number[] }> {
  const got = await fleet.each<{ times: number[], bytes: number }>('receipts', (_g, i) => ({ count: shares[i].length, timeoutMs }), 'receipts')
  const ms: number[] = []
  let bytes = 0
  for (const r of got) {
    for (const t of r.times) ms.push((t - t0) / 1e6)
    bytes = Math.max(bytes, r.bytes)
  }
  const expected = shares.reduce((n, s) => n + s.length, 0)
  return { d: dist(ms), missing: expected - ms.length, bytes, ms }
}

/**
 * One plain QoS `qos` message of `bytes` bytes to n subscribers of `topic` on `broker`, published
 * by one more client, `times` times over the same connections; times from the publisher's write
 * to each subscriber's receipt. Answers every repetition.
 */
export async function plainFanout (fleet: Fleet, broker: Broker, n: number, bytes: number, qos: 0 | 1, label: string, times = 1): Promise<Array<{ d: Dist, missing: number }>> {
  const topic = 'bench/fan'
  const subs = ids('s', n)
  const shares = await connectMqtt(fleet, broker.mqttPort, subs, { topic, qos }, `${label}: connecting ${n} subscribers`)
  try {
    await fleet.gens[0].call('mqtt.connect', { port: broker.mqttPort, ids: ['publisher'] })
    const out: Array<{ d: Dist, missing: number }> = []
    for (let i = 0; i < times; i++) {
      await fleet.each('arm', () => ({ topic }), 'arm')
      const { t0 } = await fleet.gens[0].call<{ t0: number }>('mqtt.publishOne', { id: 'publisher', topic, payload: 'x'.repeat(bytes), qos })
      const r = await receipts(fleet, shares, t0, 60000)
      out.push({ d: r.d, missing: r.missing })
      await new Promise((resolve) => setTimeout(resolve, 200)) // PUBACKs settle
    }
    return out
  } finally {
    await fleet.each('close', () => ({}), 'close')
  }
}
