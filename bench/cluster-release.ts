// Release time of one round of N MQTT terminals (default 10,000) on 1 roundgate process (memory
// store), on 1 process in cluster mode (Redis), and spread evenly over 3 processes on one Redis.
// Prints numbers, not pass/fail. Time runs from the moment the deciding terminal's ready is
// written (CLOCK_MONOTONIC in its generator) to each participant's receipt of its release
// (CLOCK_MONOTONIC in the generator holding it): the same clock on one machine.
//
//   npx tsc -p . && node dist/bench/cluster-release.js [--n 10000] [--gens 2] [--runs 3]
//
// Terminals are raw sockets speaking MQTT 3.1.1 through mqtt-packet, in child processes.
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect as tcp } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import mqttPacket from 'mqtt-packet'
import { freePort, startRedis } from '../test/helpers/redis-server.js'

const GROUP = 'bench'
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

// --- generator (child process) ------------------------------------------------------------------

type Cmd = { cmd: 'connect', ids: string[], ports: number[], offset: number } | { cmd: 'ready', skip: string } | { cmd: 'decide', id: string } | { cmd: 'times' }

function generator (): void {
  const socks = new Map<string, ReturnType<typeof tcp>>()
  const got = new Map<string, number>()
  const send = (id: string, packet: mqttPacket.Packet): void => { socks.get(id)?.write(mqttPacket.generate(packet)) }
  const open = async (id: string, port: number): Promise<void> => await new Promise((resolve, reject) => {
    const s = tcp(port, '127.0.0.1')
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    socks.set(id, s)
    s.on('error', reject)
    parser.on('packet', (p) => {
      if (p.cmd === 'connack') send(id, { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `rg/${GROUP}/release`, qos: 1 }] })
      else if (p.cmd === 'suback') resolve()
      else if (p.cmd === 'publish') {
        if (p.qos === 1 && p.messageId !== undefined) send(id, { cmd: 'puback', messageId: p.messageId })
        if (p.payload.length > 0 && !got.has(id)) got.set(id, Number(process.hrtime.bigint()) / 1e6)
      }
    })
    s.on('data', (d) => parser.parse(d))
    s.on('connect', () => s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: true, keepalive: 0 })))
  })
  const ready = (id: string): void => send(id, { cmd: 'publish', topic: `rg/${GROUP}/ready/${id}`, payload: Buffer.from('{}'), qos: 0, retain: false, dup: false })
  process.on('message', (m: Cmd) => {
    void (async () => {
      if (m.cmd === 'connect') {
        for (let i = 0; i < m.ids.length; i += 200) {
          await Promise.all(m.ids.slice(i, i + 200).map(async (id, j) => await open(id, m.ports[(m.offset + i + j) % m.ports.length])))
        }
        process.send?.({ ok: true })
      } else if (m.cmd === 'ready') {
        let k = 0
        for (const id of socks.keys()) {
          if (id !== m.skip) ready(id)
          if (++k % 500 === 0) await sleep(5)
        }
        process.send?.({ ok: true })
      } else if (m.cmd === 'decide') {
        const t0 = Number(process.hrtime.bigint()) / 1e6
        ready(m.id)
        process.send?.({ t0 })
      } else {
        process.send?.({ times: [...got.values()], count: got.size })
        for (const s of socks.values()) s.destroy()
      }
    })()
  })
}

// --- orchestration ------------------------------------------------------------------------------

async function ask (child: ChildProcess, msg: Cmd): Promise<any> {
  return await new Promise((resolve) => { child.once('message', resolve); child.send(msg) })
}

async function http (port: number, path: string, method = 'GET', body?: unknown): Promise<any> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  return text === '' ? null : JSON.parse(text)
}

interface Proc { child: ChildProcess, mqtt: number, http: number }

async function roundgate (redisUrl: string | null, dataDir: string): Promise<Proc> {
  const [mqtt, httpPort] = [await freePort(), await freePort()]
  const args = ['bin/roundgate.js', 'start', '--mqtt-port', String(mqtt), '--http-port', String(httpPort), '--ws-port', '0', '--log-level', 'warn']
  if (redisUrl !== null) args.push('--redis', redisUrl)
  else args.push('--data-dir', dataDir)
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
  for (let i = 0; i < 300; i++) {
    try { if ((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200) return { child, mqtt, http: httpPort } } catch {}
    await sleep(50)
  }
  throw new Error('roundgate did not start')
}

function pct (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

async function run (label: string, procs: number, redisUrl: string | null, n: number, gens: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'rg-bench-'))
  const ps: Proc[] = []
  const kids: ChildProcess[] = []
  try {
    for (let i = 0; i < procs; i++) ps.push(await roundgate(redisUrl, dir))
    await http(ps[0].http, `/v1/groups/${GROUP}`, 'PUT', { need: n, minOnlineRatio: 1, offlineAfterMs: 600000, heartbeatMs: 60000, execTimeoutMs: 600000 })
    const ids = Array.from({ length: n }, (_, i) => `t${i}`)
    const per = Math.ceil(n / gens)
    for (let g = 0; g < gens; g++) kids.push(fork(fileURLToPath(import.meta.url), ['--generator'], { stdio: 'inherit' }))
    const shares = kids.map((_, g) => ids.slice(g * per, (g + 1) * per))
    await Promise.all(kids.map(async (k, g) => await ask(k, { cmd: 'connect', ids: shares[g], ports: ps.map((p) => p.mqtt), offset: g * per })))
    const decider = ids[n - 1]
    await Promise.all(kids.map(async (k) => await ask(k, { cmd: 'ready', skip: decider })))
    for (let i = 0; i < 1200; i++) {
      const s = (await http(ps[0].http, `/v1/groups/${GROUP}`)).state
      if (s.ready === n - 1) break
      await sleep(50)
    }
    await sleep(300) // let every process settle
    const { t0 } = await ask(kids[kids.length - 1], { cmd: 'decide', id: decider }) as { t0: number }
    for (let i = 0; i < 600; i++) {
      const s = (await http(ps[0].http, `/v1/groups/${GROUP}`)).state
      if (s.round === 1) break
      await sleep(50)
    }
    await sleep(3000) // receipts keep arriving; the slowest is what matters
    const all = (await Promise.all(kids.map(async (k) => await ask(k, { cmd: 'times' })))) as Array<{ times: number[], count: number }>
    const times = all.flatMap((a) => a.times).map((x) => x - t0).sort((a, b) => a - b)
    const f = (x: number | undefined): string => x === undefined ? '-' : x.toFixed(1)
    return `${label.padEnd(28)} ${String(times.length).padStart(6)}/${n}  first ${f(times[0])}  p50 ${f(pct(times, 0.5))}  p99 ${f(pct(times, 0.99))}  last ${f(times[times.length - 1])} ms`
  } finally {
    for (const k of kids) k.kill()
    for (const p of ps) p.child.kill('SIGTERM')
    await sleep(500)
    rmSync(dir, { recursive: true, force: true })
  }
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { n: { type: 'string', default: '10000' }, gens: { type: 'string', default: '2' }, runs: { type: 'string', default: '3' } } })
  const n = Number(values.n)
  const gens = Number(values.gens)
  const redis = await startRedis()
  try {
    console.log(`release of one round of ${n} MQTT terminals (${gens} generator processes), times from the deciding ready`)
    for (let r = 0; r < Number(values.runs); r++) {
      await redis.restart()
      console.log(await run('1 process, memory store', 1, null, n, gens))
      await redis.restart()
      console.log(await run('1 process, redis', 1, redis.url, n, gens))
      await redis.restart()
      console.log(await run('3 processes, redis', 3, redis.url, n, gens))
    }
  } finally {
    await redis.stop()
  }
}

if (process.argv.includes('--generator')) generator()
else main().catch((err) => { console.error(err); process.exitCode = 1 })
