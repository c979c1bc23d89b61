// What several scenarios share: the options, generator counts, connecting MQTT terminals, the
// store under test, and one "plain message to N subscribers" fan-out run against any broker
// (the MQTT rivals' measure).
import { readdirSync } from 'node:fs'
import type { Fleet } from '../lib/fleet.js'
import { tempDir, type Broker } from '../lib/procs.js'
import { dist, type Dist } from '../lib/report.js'
import { ids } from '../lib/rounds.js'

export interface Options {
  n: number
  /** --n was given (else a scenario may use its own sizes) */
  nGiven: boolean
  door: 'mqtt' | 'http' | 'mixed'
  store: 'memory' | 'sqlite' | 'redis'
  rounds: number
  gens: number
  seconds: number
  qos: 0 | 1
  clients: number
  json: boolean
  bytes: number | null
  compare: boolean
  /** startskew: startDelayMs values */
  delays: number[]
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

/**
 * The stores a run measures: memory always; with `--store sqlite` also the data-directory store,
 * so "SQLite within 1.2x of memory" is one command printing both.
 */
export function storesOf (o: Options): Array<'memory' | 'sqlite' | 'redis'> {
  return o.store === 'memory' ? ['memory'] : ['memory', o.store]
}

/** --data-dir for a broker: "" (memory) or a fresh temp dir of its own (every broker starts empty). */
export function dataDirFor (store: 'memory' | 'sqlite' | 'redis'): string {
  return store === 'sqlite' ? tempDir() : ''
}

/**
 * What a data directory turned out to hold after a run: 'sqlite' when the broker wrote a SQLite
 * database there, else a label saying the build has another embedded store (today's JSON snapshot).
 */
export function storeLabel (store: 'memory' | 'sqlite' | 'redis', dataDir: string): string {
  if (store === 'memory') return 'memory store (--data-dir "")'
  if (store === 'redis') return 'redis store (--redis, one process)'
  const files = readdirSync(dataDir).filter((f) => !f.endsWith('.tmp'))
  return files.some((f) => /\.(db|sqlite3?)$/.test(f))
    ? 'SQLite store (--data-dir <temp dir>)'
    : `data-dir store, NOT SQLite (this build wrote ${files.length > 0 ? files.join(', ') : 'nothing'})`
}

export interface FanoutRun { d: Dist, missing: number, bad: number, problems: string[] }

/**
 * One plain QoS `qos` message of `bytes` bytes to n subscribers of `topic` on `broker`, published
 * by one more client, `times` times over the same connections; times from the publisher's write
 * to each subscriber's receipt; every message received is checked to be the bytes published.
 */
export async function plainFanout (fleet: Fleet, broker: Broker, n: number, bytes: number, qos: 0 | 1, label: string, times = 1): Promise<FanoutRun[]> {
  const topic = 'bench/fan'
  const subs = ids('s', n)
  const shares = await connectMqtt(fleet, broker.mqttPort, subs, { topic, qos }, `${label}: connecting ${n} subscribers`)
  try {
    await fleet.gens[0].call('mqtt.connect', { port: broker.mqttPort, ids: ['publisher'] })
    const out: FanoutRun[] = []
    for (let i = 0; i < times; i++) {
      await fleet.each('arm', () => ({ topic }), 'arm')
      const { t0 } = await fleet.gens[0].call<{ t0: number }>('mqtt.publishOne', { id: 'publisher', topic, payload: 'x'.repeat(bytes), qos })
      const got = await fleet.each<any>('receipts', (_g, gi) => ({ count: shares[gi].length, timeoutMs: 60000, expect: { kind: 'plain', bytes } }), 'receipts')
      const ms: number[] = got.flatMap((x: { times: number[] }) => x.times.map((t) => (t - t0) / 1e6))
      const run: FanoutRun = { d: dist(ms), missing: n - ms.length, bad: got.reduce((a: number, x: any) => a + x.bad, 0), problems: [...new Set<string>(got.flatMap((x: any) => x.problems))] }
      out.push(run)
      process.stderr.write(`  ${label}, run ${i + 1}: first ${run.d.first.toFixed(2)} ms, p50 ${run.d.p50.toFixed(2)}, last ${run.d.last.toFixed(2)} ms${run.missing > 0 ? `, ${run.missing} MISSING` : ''}${run.bad > 0 ? `, ${run.bad} BAD` : ''}\n`)
      await new Promise((resolve) => setTimeout(resolve, 200)) // PUBACKs settle
    }
    return out
  } finally {
    await fleet.each('close', () => ({}), 'close')
  }
}

/** The MQTT rivals of a fan-out, in the order measured. */
export const NOT_INSTALLED = 'not installed (apt-get install -y mosquitto; see bench/README.md)'
