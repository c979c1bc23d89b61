// The terminals outside Node (clients/lua, clients/python, clients/sh) run as real processes of
// their real interpreters: Debian's lua5.4, /usr/bin/python3 (the one that sees
// python3-paho-mqtt, whatever python3 comes first on PATH) and /bin/sh with curl.
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { within } from './wait.js'

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
export const CLIENTS = join(ROOT, 'clients')
export const LUA = '/usr/bin/lua5.4'
export const PYTHON = '/usr/bin/python3'
export const SH = '/bin/sh'

/** Fails loudly (test/run.sh installs these with apt-get) rather than skipping. */
export function need (path: string): void {
  accessSync(path, constants.X_OK)
}

export interface Proc {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** the exit status, or a rejection naming `what` after `ms` */
  status: (ms: number, what?: string) => Promise<number | null>
}

/** Start a process (`env` overlays this one's); it is killed at the end of the test if it is still running. */
export function run (t: Test, cmd: string, args: string[], env: Record<string, string | undefined> = {}): Proc {
  const merged: NodeJS.ProcessEnv = { ...process.env, ...env }
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k] // undefined removes a variable
  const child = spawn(cmd, args, { cwd: ROOT, env: merged, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const status = async (ms: number, what = `${cmd} to exit`): Promise<number | null> => {
    try {
      return (await within(exited, ms, what)).code
    } catch (e) {
      throw new Error(`${(e as Error).message}\nstdout: ${out}\nstderr: ${err}`, { cause: e })
    }
  }
  return { child, stdout: () => out, stderr: () => err, exited, status }
}

/** The Lua example terminal: `rounds` rounds, each job `jobMs` long. */
export function lua (t: Test, url: string, group: string, id: string, rounds: number, jobMs = 50): Proc {
  need(LUA)
  return run(t, LUA, [join(CLIENTS, 'lua', 'example.lua'), url, group, id, String(rounds), String(jobMs)])
}

/** The Python MQTT terminal. */
export function python (t: Test, port: number, group: string, id: string, extra: string[] = []): Proc {
  need(PYTHON)
  return run(t, PYTHON, [join(CLIENTS, 'python', 'roundgate_terminal.py'), '--port', String(port), '--group', group, '--id', id, ...extra])
}

/** The shell terminal running `command` each round. */
export function shell (t: Test, url: string, group: string, id: string, rounds: number, command: string[], wait = 10): Proc {
  need(SH)
  return run(t, SH, [join(CLIENTS, 'sh', 'roundgate.sh'), '-u', url, '-g', group, '-i', id, '-n', String(rounds), '-w', String(wait), '--', ...command])
}
