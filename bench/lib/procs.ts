// Processes a benchmark starts (brokers, generators, redis) and what it reads about them from
// /proc. Everything started is tracked and killed when the run ends, also on error or signal.
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url)) // dist/bench/lib → repo
const tracked = new Set<ChildProcess>()
const tmpDirs: string[] = []

export function track (child: ChildProcess): void {
  tracked.add(child)
  child.once('exit', () => tracked.delete(child))
}

export function killAll (): void {
  for (const c of tracked) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  tracked.clear()
  for (const d of tmpDirs.splice(0)) rmSync(d, { recursive: true, force: true })
}
process.once('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { killAll(); process.exit(130) })

export function tempDir (): string {
  const d = mkdtempSync(join(tmpdir(), 'rg-bench-'))
  tmpDirs.push(d)
  return d
}

export async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

async function sleep (ms: number): Promise<void> { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function tcpOpen (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' })
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

async function waitPort (port: number, child: ChildProcess, what: string, ms = 20000): Promise<void> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`)
    if (await tcpOpen(port)) return
    await sleep(50)
  }
  throw new Error(`${what} did not open port ${port} within ${ms} ms`)
}

export interface Broker {
  kind: 'roundgate' | 'aedes' | 'mosquitto' | 'redis' | 'http-longpoll'
  pid: number
  mqttPort: number
  httpPort: number
  child: ChildProcess
  stop: () => Promise<void>
}

async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const t = setTimeout(() => child.kill('SIGKILL'), 8000)
  await exited
  clearTimeout(t)
}

function started (kind: Broker['kind'], child: ChildProcess, mqttPort: number, httpPort: number): Broker {
  track(child)
  let err = ''
  child.stderr?.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000) })
  child.once('exit', (code, sig) => { if (code !== 0 && code !== null && sig === null) process.stderr.write(`\n${kind} exited ${code}: ${err}\n`) })
  return { kind, pid: child.pid as number, mqttPort, httpPort, child, stop: async () => await stopChild(child) }
}

/** Node flags for the broker processes (e.g. BENCH_BROKER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"). */
function nodeArgs (): string[] {
  return (process.env.BENCH_BROKER_NODE_ARGS ?? '').split(' ').filter((s) => s !== '')
}

export interface RoundgateOptions {
  groups?: Record<string, Record<string, unknown>>
  redis?: string
  http?: boolean
  /** --data-dir: '' (the default) keeps everything in memory; a directory makes the embedded store durable there */
  dataDir?: string
  /** load bench/tools/probe.ts into the broker: times the deciding read and the first release write */
  probe?: { match: string, topic: string, file: string }
  /** load bench/tools/heap.ts (and --expose-gc): SIGUSR2 appends the heap after GC to this file */
  heapFile?: string
  env?: Record<string, string>
  /** more server settings for the configuration file */
  settings?: Record<string, unknown>
}

/** roundgate as an operator starts it: bin/roundgate.js start, in-memory store unless a data dir is given. */
export async function startRoundgate (o: RoundgateOptions = {}): Promise<Broker> {
  const dir = tempDir()
  const cfg = join(dir, 'roundgate.json')
  // rateClientPerS: the generators send as fast as they are answered (a heartbeat flood is 60+ a
  // second per terminal, a real one sends one per heartbeatMs): the default 50/s per clientId would
  // refuse part of the load, and the bench would measure refusals. The limiter still runs.
  writeFileSync(cfg, JSON.stringify({ groups: o.groups ?? {}, maxMessageBytes: 65536, rateClientPerS: 1000000, ...o.settings }))
  const mqttPort = await freePort()
  const httpPort = o.http === false ? 0 : await freePort()
  const tools: string[] = []
  if (o.probe !== undefined) tools.push('--import', join(ROOT, 'dist/bench/tools/probe.js'))
  if (o.heapFile !== undefined) tools.push('--expose-gc', '--import', join(ROOT, 'dist/bench/tools/heap.js'))
  const args = [...nodeArgs(), ...tools, join(ROOT, 'bin/roundgate.js'), 'start', '--host', '127.0.0.1', '--mqtt-port', String(mqttPort),
    '--http-port', String(httpPort), '--ws-port', '0', '--data-dir', o.dataDir ?? '', '--log-level', 'warn', '--config', cfg,
    '--stop-grace-ms', '0'] // the bench ends mid-round: stop at once (and let --cpu-prof write its profile)
  if (o.redis !== undefined) args.push('--redis', o.redis)
  const env: Record<string, string | undefined> = { ...process.env, ...o.env }
  if (o.probe !== undefined) Object.assign(env, { BENCH_PROBE_MATCH: o.probe.match, BENCH_PROBE_TOPIC: o.probe.topic, BENCH_PROBE_FILE: o.probe.file })
  if (o.heapFile !== undefined) env.BENCH_HEAP_FILE = o.heapFile
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: ROOT, env })
  const b = started('roundgate', child, mqttPort, httpPort)
  await waitPort(mqttPort, child, 'roundgate')
  if (httpPort !== 0) await waitPort(httpPort, child, 'roundgate http')
  return b
}

/** Vanilla aedes of the same version, the same TCP listener, nothing else (bench/rivals/aedes-server.ts). */
export async function startAedes (): Promise<Broker> {
  const mqttPort = await freePort()
  const child = spawn(process.execPath, [...nodeArgs(), join(ROOT, 'dist/bench/rivals/aedes-server.js'), String(mqttPort)], { stdio: ['ignore', 'ignore', 'pipe'], cwd: ROOT })
  const b = started('aedes', child, mqttPort, 0)
  await waitPort(mqttPort, child, 'aedes')
  return b
}

/** The minimal node:http long-poll server (bench/rivals/http-longpoll.ts), releasing at `need` readies. */
export async function startHttpRival (need: number): Promise<Broker> {
  const httpPort = await freePort()
  const child = spawn(process.execPath, [...nodeArgs(), join(ROOT, 'dist/bench/rivals/http-longpoll.js'), String(httpPort), String(need)], { stdio: ['ignore', 'ignore', 'pipe'], cwd: ROOT })
  const b = started('http-longpoll', child, 0, httpPort)
  await waitPort(httpPort, child, 'node:http long-poll rival')
  return b
}

export function which (cmd: string): string | null {
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    try { accessSync(join(d, cmd), constants.X_OK); return join(d, cmd) } catch { /* not here: try the next directory */ }
  }
  return null
}

/** A native server from the machine's packages on a free loopback port; null when not installed. */
async function startNative (name: Broker['kind'], bin: string, argsFor: (port: number, dir: string) => string[]): Promise<Broker | null> {
  const path = which(bin)
  if (path === null) return null
  const dir = tempDir()
  const port = await freePort()
  const child = spawn(path, argsFor(port, dir), { stdio: ['ignore', 'ignore', 'pipe'] })
  const b = started(name, child, port, 0)
  await waitPort(port, child, bin)
  return b
}

/** Mosquitto on loopback with a config written to a temp dir (no persistence, no auth). */
export async function startMosquitto (): Promise<Broker | null> {
  return await startNative('mosquitto', 'mosquitto', (port, dir) => {
    const conf = join(dir, 'mosquitto.conf')
    writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest none',
      'max_queued_messages 100000', 'max_inflight_messages 0', ''].join('\n'))
    return ['-c', conf]
  })
}

export async function startRedis (): Promise<Broker | null> {
  return await startNative('redis', 'redis-server', (port, dir) =>
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir])
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
export function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100 // utime, stime in clock ticks (CLK_TCK 100)
}

/** Resident set size in bytes, from /proc/<pid>/status. */
export function rssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? 0 : Number(m[1]) * 1024
}

export async function httpJson (port: number, path: string, init?: RequestInit): Promise<any> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, init)
  const text = await r.text()
  return text === '' ? null : (r.headers.get('content-type')?.includes('json') === true ? JSON.parse(text) : text)
}

export { sleep }
