// roundgate processes for cluster tests: `node bin/roundgate.js start` with a configuration file,
// on free loopback ports, optionally on a shared Redis (--redis). Each is stopped (SIGTERM, then
// SIGKILL after 10 s) by stop(), or killed (-9) by kill().
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, waitFor } from './wait.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url)) // from dist/test/helpers/

export interface RgProcess {
  proc: ChildProcess
  mqtt: string
  base: string
  log: string[]
  kill: () => Promise<void>
  stop: () => Promise<number | null>
}

export interface RgProcessOptions {
  /** redis://… for cluster mode; without it the process runs the embedded store */
  redis?: string
  /** written to a file (in a temporary directory, removed when the process ends) and given with --config */
  config?: Record<string, unknown>
}

export async function startProcess (opts: RgProcessOptions = {}): Promise<RgProcess> {
  const [mqttPort, httpPort] = [await freePort(), await freePort()]
  const args = ['bin/roundgate.js', 'start', '--host', '127.0.0.1', '--mqtt-port', String(mqttPort), '--http-port', String(httpPort),
    '--ws-port', '0', '--data-dir', '', '--log-level', 'info']
  if (opts.redis !== undefined) args.push('--redis', opts.redis)
  const dir = await mkdtemp(join(tmpdir(), 'rg-node-'))
  if (opts.config !== undefined) {
    const path = join(dir, 'roundgate.json')
    await writeFile(path, JSON.stringify(opts.config))
    args.push('--config', path)
  }
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  const log: string[] = []
  let readyLine = false
  proc.stdout?.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n')) {
      if (line === '') continue
      log.push(line)
      if (line.includes('"roundgate ready"')) readyLine = true
    }
  })
  proc.stderr?.on('data', (d: Buffer) => log.push(d.toString()))
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
    .then(async (code) => { await rm(dir, { recursive: true, force: true }); return code })
  await waitFor(() => readyLine || proc.exitCode !== null, 15000, 'roundgate ready')
  if (proc.exitCode !== null) throw new Error(`roundgate exited: ${log.join('\n')}`)
  return {
    proc,
    mqtt: `mqtt://127.0.0.1:${mqttPort}`,
    base: `http://127.0.0.1:${httpPort}`,
    log,
    kill: async () => { if (proc.exitCode === null) { proc.kill('SIGKILL'); await exited } },
    stop: async () => {
      if (proc.exitCode !== null) return proc.exitCode
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10000)
      const code = await exited
      clearTimeout(timer)
      return code
    }
  }
}

/** An HTTP call with a JSON body and answer, never hanging (20 s limit). */
export async function http (method: string, url: string, body?: unknown): Promise<{ status: number, json: any, headers: Headers }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20000)
  })
  const text = await res.text()
  return { status: res.status, json: text === '' ? null : JSON.parse(text), headers: res.headers }
}
