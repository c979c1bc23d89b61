// A private redis-server for tests: its own process on an ephemeral loopback port, in its own
// temporary directory, stopped (and the directory removed) by stop(). Tests never touch a Redis
// they did not start. `restart()` stops it and starts it again on the same port and directory
// (with `persist`, from what it wrote: the append-only file).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort, sleep } from './wait.js'

export { freePort }

export interface RedisServerOptions {
  /** keep data across restart() (appendonly yes, fsync always); off by default */
  persist?: boolean
}

export interface TestRedis {
  port: number
  url: string
  dir: string
  /** kill -9 and start again on the same port and directory */
  restart: () => Promise<void>
  /** stop it (SIGKILL) without removing anything; start() brings it back */
  kill: () => Promise<void>
  start: () => Promise<void>
  stop: () => Promise<void>
}

async function waitUp (port: number, child: ChildProcess, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`)
    const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
    c.on('error', () => {})
    try {
      await c.connect()
      if (await c.ping() === 'PONG') { c.disconnect(); return }
    } catch { /* not up yet */ }
    c.disconnect()
    await sleep(25)
  }
  throw new Error(`redis-server on port ${port} did not come up in ${ms} ms`)
}

export async function startRedis (opts: RedisServerOptions = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'rg-redis-'))
  let port = 0
  let child: ChildProcess | null = null
  let stderr = ''

  const launch = async (): Promise<void> => {
    const args = [
      '--bind', '127.0.0.1', '--port', String(port), '--dir', dir,
      '--save', '', '--daemonize', 'no', '--protected-mode', 'yes', '--loglevel', 'warning',
      '--logfile', ''
    ]
    if (opts.persist === true) args.push('--appendonly', 'yes', '--appendfsync', 'always')
    else args.push('--appendonly', 'no')
    const c = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    c.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    child = c
    try {
      await waitUp(port, c, 10000)
    } catch (err) {
      c.kill('SIGKILL')
      throw new Error(`${(err as Error).message}\n${stderr}`, { cause: err })
    }
  }

  const kill = async (): Promise<void> => {
    const c = child
    child = null
    if (c === null || c.exitCode !== null) return
    await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill('SIGKILL') })
  }

  for (let attempt = 0; ; attempt++) {
    port = await freePort()
    try {
      await launch()
      break
    } catch (err) {
      if (attempt >= 3) throw err
    }
  }

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    kill,
    start: launch,
    restart: async () => { await kill(); await launch() },
    stop: async () => {
      await kill()
      await rm(dir, { recursive: true, force: true })
    }
  }
}
