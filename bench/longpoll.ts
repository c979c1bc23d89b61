// Benchmark: HTTP release long-poll fan-out and abort hygiene. Prints numbers; asserts nothing.
//
//   npx tsc -p . && node --expose-gc dist/bench/longpoll.js [--runs R] [sizes...]
//   (default: 3 runs each of 1000 and 10000 waiters)
//
// The gateway (engine + memory store + uWS) runs in this process; the long-poll clients run in a
// child process (raw `net` sockets speaking HTTP/1.1, loopback only), so the client's work does
// not share the gateway's event loop.
//
// 1. Fan-out: N clients park `GET /v1/groups/{g}/release?clientId=ci&wait=120` on a paused group
//    with need=N; all N are made ready; `resume` releases the round. Measured: from the engine's
//    `release` event to the last client holding its complete 200 (clocks: performance.timeOrigin
//    + performance.now() in both processes), plus the gateway's own fan-out time (all responses
//    handed to uWS) and the bytes delivered.
// 2. Aborts: 100,000 polls opened in batches of 2,000 and torn down by the client (TCP RST) once
//    the gateway holds them; then waiters must be 0 and the heap (after GC) close to where it was.
//
// Limits: 20,000 open files per process and 2 cores on the reference machine; at most 10,000
// client sockets are open at once, spread over source addresses 127.0.0.2-127.0.0.9.
import { fork, type ChildProcess } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { pino } from 'pino'
import { startGateway } from '../gateway/index.js'
import { createMetrics } from '../plugins/metrics/index.js'
import { type ActiveRelease, Engine, MemoryStore } from '../plugins/scheduler/index.js'

const ABORT_TOTAL = 100_000
const ABORT_BATCH = 2_000
const CONNECT_BATCH = 500

type ToChild =
  | { op: 'open', port: number, group: string, n: number, wait: number, source: number, idPrefix: string }
  | { op: 'collect' }
  | { op: 'reset' }
  | { op: 'exit' }

type FromChild =
  | { op: 'opened', n: number }
  | { op: 'received', times: number[], bytes: number, statuses: Record<string, number> }
  | { op: 'reset', n: number }

const now = (): number => performance.timeOrigin + performance.now()

// --- the client process ---------------------------------------------------------------------

interface Conn { sock: Socket, buf: Buffer, doneAt: number, status: number, bytes: number }

function childMain (): void {
  let conns: Conn[] = []
  let want = 0
  let finished = 0
  let collector: (() => void) | null = null

  const send = (m: FromChild): void => { process.send?.(m) }

  function onData (c: Conn, chunk: Buffer): void {
    if (c.doneAt !== 0) return
    c.buf = c.buf.length === 0 ? chunk : Buffer.concat([c.buf, chunk])
    const head = c.buf.indexOf('\r\n\r\n')
    if (head < 0) return
    const headers = c.buf.subarray(0, head).toString('latin1')
    const len = Number(/\r\ncontent-length: *(\d+)/i.exec(headers)?.[1] ?? '0')
    if (c.buf.length < head + 4 + len) return
    c.status = Number(headers.slice(9, 12))
    c.bytes = c.buf.length
    c.doneAt = now()
    c.buf = Buffer.alloc(0)
    finished++
    if (finished === want && collector !== null) collector()
  }

  async function open (m: Extract<ToChild, { op: 'open' }>): Promise<void> {
    conns = []
    want = m.n
    finished = 0
    for (let start = 0; start < m.n; start += CONNECT_BATCH) {
      const batch: Array<Promise<void>> = []
      for (let i = start; i < Math.min(m.n, start + CONNECT_BATCH); i++) {
        batch.push(new Promise<void>((resolve, reject) => {
          const localAddress = `127.0.0.${2 + ((m.source + i) % 8)}`
          const sock = connect({ port: m.port, host: '127.0.0.1', localAddress, noDelay: true })
          const c: Conn = { sock, buf: Buffer.alloc(0), doneAt: 0, status: 0, bytes: 0 }
          conns.push(c)
          sock.on('data', (d: Buffer) => onData(c, d))
          sock.on('error', () => {}) // resets at teardown are expected
          sock.once('connect', () => {
            sock.write(`GET /v1/groups/${m.group}/release?clientId=${m.idPrefix}${i}&after=0&wait=${m.wait} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
            resolve()
          })
          sock.once('error', reject)
        }))
      }
      await Promise.all(batch)
    }
    send({ op: 'opened', n: conns.length })
  }

  function collect (): void {
    const report = (): void => {
      collector = null
      const statuses: Record<string, number> = {}
      let bytes = 0
      for (const c of conns) {
        statuses[c.status] = (statuses[c.status] ?? 0) + 1
        bytes += c.bytes
      }
      send({ op: 'received', times: conns.map((c) => c.doneAt), bytes, statuses })
      for (const c of conns) c.sock.destroy()
      conns = []
    }
    if (finished === want) report()
    else collector = report
  }

  function reset (): void {
    const n = conns.length
    for (const c of conns) c.sock.resetAndDestroy()
    conns = []
    send({ op: 'reset', n })
  }

  process.on('message', (m: ToChild) => {
    if (m.op === 'open') open(m).catch((err) => { console.error('child: open failed', err); process.exit(1) })
    else if (m.op === 'collect') collect()
    else if (m.op === 'reset') reset()
    else process.exit(0)
  })
  process.on('disconnect', () => process.exit(0))
}

// --- the gateway process --------------------------------------------------------------------

function ask<T extends FromChild['op']> (child: ChildProcess, m: ToChild, reply: T, ms: number): Promise<Extract<FromChild, { op: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.off('message', on); reject(new Error(`child did not answer ${m.op} within ${ms} ms`)) }, ms)
    const on = (r: FromChild): void => {
      if (r.op !== reply) return
      clearTimeout(timer)
      child.off('message', on)
      resolve(r as Extract<FromChild, { op: T }>)
    }
    child.on('message', on)
    child.send(m)
  })
}

async function until (cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

function pct (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

function heap (): { heapMB: number, rssMB: number } {
  (globalThis as { gc?: () => void }).gc?.()
  const m = process.memoryUsage()
  return { heapMB: m.heapUsed / 2 ** 20, rssMB: m.rss / 2 ** 20 }
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  const runsAt = args.indexOf('--runs')
  const runs = runsAt >= 0 ? Math.max(1, Math.min(20, Number(args.splice(runsAt, 2)[1]) || 1)) : 3
  const sizes = args.map(Number).filter((n) => Number.isInteger(n) && n > 0)
  if (sizes.length === 0) sizes.push(1000, 10000)
  if (Math.max(...sizes) > 15000) throw new Error('at most 15,000 waiters (20,000 open files per process)')
  if ((globalThis as { gc?: () => void }).gc === undefined) console.log('(run with --expose-gc for exact heap figures)')

  const logger = pino({ level: 'warn' })
  const engine = new Engine({ store: new MemoryStore(), logger, autoCreateGroups: true })
  await engine.start()
  const metrics = createMetrics({ engine, defaultMetrics: false })
  const gw = await startGateway({ engine, host: '127.0.0.1', port: 0, logger, waitTickMs: 100, metrics })
  console.log(`node ${process.version}, uws: ${gw.uws}, gateway on 127.0.0.1:${gw.port}`)
  const child = fork(fileURLToPath(import.meta.url), ['--child'], { stdio: 'inherit' })
  let releasedAt = 0
  let fanoutS = 0
  // stamped before the gateway's own listener runs (it was added first, at startGateway)
  engine.prependListener('release', (rel: ActiveRelease) => { if (rel.size > 0) releasedAt = now() })
  const observeFanout = metrics.fanout.bind(metrics)
  metrics.fanout = (door, group, round, seconds, delivered) => {
    if (door === 'http') fanoutS = seconds
    observeFanout(door, group, round, seconds, delivered)
  }

  try {
    let source = 0
    const summary: string[] = []
    for (const n of sizes) {
      const lasts: number[] = []
      for (let run = 1; run <= runs; run++) {
        const group = `lp${n}r${run}`
        await engine.putGroup(group, { need: n, minOnlineRatio: 1, paused: true, offlineAfterMs: 600000, execTimeoutMs: 600000 })
        await ask(child, { op: 'open', port: gw.port, group, n, wait: 120, source, idPrefix: 'c' }, 'opened', 120000)
        source += n
        await until(() => gw.waiters() === n, 60000, `${n} waiters`)
        for (let i = 0; i < n; i++) await engine.ready(group, `c${i}`, {})
        const got = ask(child, { op: 'collect' }, 'received', 120000)
        await engine.ctl(group, { op: 'resume' })
        const r = await got
        const lat = r.times.map((x) => x - releasedAt).sort((a, b) => a - b)
        lasts.push(lat[lat.length - 1])
        console.log(`fan-out ${n} waiters, run ${run}: all ${n} received their release ${lat[lat.length - 1].toFixed(1)} ms after the release event` +
          ` (first ${lat[0].toFixed(1)} ms, p50 ${pct(lat, 0.5).toFixed(1)} ms, p99 ${pct(lat, 0.99).toFixed(1)} ms);` +
          ` gateway fan-out (all handed to uWS) ${(fanoutS * 1000).toFixed(1)} ms;` +
          ` statuses ${JSON.stringify(r.statuses)}; ${(r.bytes / 2 ** 20).toFixed(1)} MiB delivered (${Math.round(r.bytes / n)} B each); waiters left ${gw.waiters()}`)
        await engine.deleteGroup(group)
      }
      lasts.sort((a, b) => a - b)
      summary.push(`${n} waiters: last release received after ${pct(lasts, 0.5).toFixed(1)} ms (median of ${runs}; min ${lasts[0].toFixed(1)}, max ${lasts[lasts.length - 1].toFixed(1)})`)
    }
    for (const line of summary) console.log(line)

    // aborted polls: warm up once, then measure
    await engine.putGroup('ab', { need: 1, paused: true, offlineAfterMs: 600000 })
    const abortBatch = async (): Promise<void> => {
      await ask(child, { op: 'open', port: gw.port, group: 'ab', n: ABORT_BATCH, wait: 120, source, idPrefix: 'a' }, 'opened', 60000)
      source += ABORT_BATCH
      await until(() => gw.waiters() === ABORT_BATCH, 30000, 'abort batch registered')
      await ask(child, { op: 'reset' }, 'reset', 30000)
      await until(() => gw.waiters() === 0, 30000, 'aborted waiters removed')
    }
    await abortBatch()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const before = heap()
    const t0 = Date.now()
    for (let done = 0; done < ABORT_TOTAL; done += ABORT_BATCH) await abortBatch()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const after = heap()
    console.log(`aborted polls: ${ABORT_TOTAL} in ${((Date.now() - t0) / 1000).toFixed(1)} s (batches of ${ABORT_BATCH}); waiters left ${gw.waiters()};` +
      ` heap ${before.heapMB.toFixed(1)} MiB -> ${after.heapMB.toFixed(1)} MiB (${(after.heapMB - before.heapMB).toFixed(1)} MiB);` +
      ` rss ${before.rssMB.toFixed(0)} MiB -> ${after.rssMB.toFixed(0)} MiB`)
  } finally {
    child.send({ op: 'exit' })
    await gw.close()
    await engine.stop()
  }
}

if (process.argv.includes('--child')) {
  childMain()
} else {
  main().catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
}
