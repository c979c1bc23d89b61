// The real process, started the way an operator does (PROTOCOL section 8): `node bin/roundgate.js
// start ...` logs one "roundgate ready" line, serves MQTT, ends with status 0 on SIGTERM/SIGINT,
// refuses bad flags with status 2, and keeps its rounds across a restart with the same data dir.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, open, readdir, rm } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import t, { type Test } from 'tap'
import { connect, freePort, Inbox, within } from './helpers/broker.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'bin', 'roundgate.js')
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }

/** The environment without any ROUNDGATE_* the test runner may carry. */
function cleanEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ROUNDGATE_')) env[k] = v
  return { ...env, ...extra }
}

interface Proc {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** JSON log lines parsed so far (non-JSON lines are kept as { raw }) */
  lines: () => Array<Record<string, unknown>>
  /** resolves with the "roundgate ready" line; rejects if the process exits first or after `ms` */
  ready: (ms?: number) => Promise<Record<string, unknown>>
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

function run (t: Test, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  const onLine: Array<() => void> = []
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; for (const f of onLine) f() })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => { for (const f of onLine) f(); resolve({ code, signal }) })
  })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const lines = (): Array<Record<string, unknown>> => out.split('\n').filter((l) => l.trim() !== '').map((l) => {
    try { return JSON.parse(l) as Record<string, unknown> } catch { return { raw: l } }
  })
  const ready = async (ms = 15000): Promise<Record<string, unknown>> => await new Promise((resolve, reject) => {
    const check = (): void => {
      const line = lines().find((l) => l.msg === 'roundgate ready')
      if (line !== undefined) { done(); resolve(line); return }
      if (child.exitCode !== null || child.signalCode !== null) {
        done(); reject(new Error(`exited (${child.exitCode ?? child.signalCode}) before ready; stderr: ${err}`))
      }
    }
    const timer = setTimeout(() => { done(); reject(new Error(`not ready within ${ms} ms; stdout: ${out} stderr: ${err}`)) }, ms)
    const done = (): void => { clearTimeout(timer); onLine.splice(onLine.indexOf(check), 1) }
    onLine.push(check)
    check()
  })
  return { child, stdout: () => out, stderr: () => err, lines, ready, exited }
}


/** SIGTERM the process; the exit status it gives (bounded: a hang fails the test). */
async function stop (p: Proc, what: string): Promise<number | null> {
  p.child.kill('SIGTERM')
  return (await within(p.exited, 15000, what)).code
}

async function dataDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rg-cli-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return dir
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  void t.test(`start: one "roundgate ready" line, MQTT served, ${signal} ends it with status 0`, async (t) => {
    const port = await freePort()
    const wsPort = await freePort()
    const p = run(t, ['start', '--mqtt-port', String(port), '--http-port', '0', '--ws-port', String(wsPort), '--data-dir', await dataDir(t)])
    const ready = await p.ready()
    t.equal(ready.mqtt, port, 'the ready line gives the MQTT port')
    t.equal(ready.ws, wsPort, 'and the WebSocket port')
    t.equal(ready.level, 30, 'at level info')
    // A WebSocket client stays connected through the shutdown too.
    const ws = await connect(`ws://127.0.0.1:${wsPort}`, `cli-ws-${signal}`)
    t.teardown(async () => { await ws.endAsync(true) })

    const c = await connect(`mqtt://127.0.0.1:${port}`, `cli-${signal}`)
    t.teardown(async () => { await c.endAsync(true) })
    const inbox = new Inbox(c)
    await c.subscribeAsync('cli/echo', { qos: 1 })
    await c.publishAsync('cli/echo', 'hi', { qos: 1 })
    t.equal((await inbox.next('cli/echo')).raw.toString(), 'hi', 'pub/sub through the process')

    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()))
    p.child.kill(signal) // with a client still connected
    const { code, signal: killedBy } = await within(p.exited, 15000, `exit after ${signal}`)
    t.equal(code, 0, `exit status 0 after ${signal}`)
    t.equal(killedBy, null, 'it exits by itself, not by the signal')
    await within(closed, 5000, 'the client to be disconnected')
    t.equal(p.lines().filter((l) => l.msg === 'roundgate ready').length, 1, 'exactly one ready line')
    t.strictSame(p.lines().filter((l) => 'raw' in l), [], 'every stdout line is a JSON log line')
    t.equal(p.stderr(), '', 'nothing on stderr')
  })
}

void t.test('a bad flag exits with status 2 and says why on stderr', async (t) => {
  const p = run(t, ['start', '--mqtt-prot', '1884'])
  const { code } = await within(p.exited, 15000, 'exit')
  t.equal(code, 2)
  t.match(p.stderr(), /--mqtt-prot/, 'stderr names the flag')
  t.equal(p.lines().filter((l) => l.msg === 'roundgate ready').length, 0, 'never ready')

  const bad = run(t, ['start', '--mqtt-port', 'x'])
  t.equal((await within(bad.exited, 15000, 'exit')).code, 2)
  t.match(bad.stderr(), /--mqtt-port/)

  const cmd = run(t, ['frobnicate'])
  t.equal((await within(cmd.exited, 15000, 'exit')).code, 2, 'an unknown command too')
  t.match(cmd.stderr(), /frobnicate/)
})

void t.test('a port already taken exits with status 2 and a message', async (t) => {
  const holder = createServer()
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => await new Promise<void>((resolve) => holder.close(() => resolve())))
  const port = (holder.address() as AddressInfo).port
  const p = run(t, ['start', '--mqtt-port', String(port), '--http-port', '0', '--ws-port', '0', '--data-dir', await dataDir(t)])
  const { code } = await within(p.exited, 15000, 'exit')
  t.equal(code, 2)
  t.match(p.stderr(), /EADDRINUSE|listen/, p.stderr())
})

void t.test('version prints package.json version, Node and the native parts; help exits 0', async (t) => {
  const p = run(t, ['version'])
  const { code } = await within(p.exited, 15000, 'exit')
  t.equal(code, 0)
  const lines = p.stdout().trim().split('\n')
  t.equal(lines[0], `roundgate ${PKG.version}`)
  t.equal(lines[1], `node ${process.version} (linux x64, ABI ${process.versions.modules})`)
  t.equal(lines[2], 'uws native', 'the µWS binary loads here (Debian 12, Node 20)')
  t.match(lines[3], /^sqlite 3\.\d+\.\d+ \(better-sqlite3, native\)$/)
  t.equal(lines[4], 'single executable: no')

  const bare = run(t, ['--version'])
  t.equal((await within(bare.exited, 15000, 'exit')).code, 0)
  t.equal(bare.stdout().trim(), PKG.version, '--version prints the version alone')

  const h = run(t, ['help'])
  t.equal((await within(h.exited, 15000, 'exit')).code, 0)
  t.match(h.stdout(), /--mqtt-port/)
  t.match(h.stdout(), /--no-auto-create-groups/)
})

void t.test('ROUNDGATE_MQTT_PORT (and the other variables) configure the process', async (t) => {
  const port = await freePort()
  const p = run(t, ['start'], { ROUNDGATE_MQTT_PORT: String(port), ROUNDGATE_HTTP_PORT: '0', ROUNDGATE_WS_PORT: '0', ROUNDGATE_DATA_DIR: await dataDir(t) })
  const ready = await p.ready()
  t.equal(ready.mqtt, port)
  t.equal(ready.ws, 0, 'ROUNDGATE_WS_PORT=0 turned WebSocket off')
  const c = await connect(`mqtt://127.0.0.1:${port}`, 'cli-env')
  t.same((await c.subscribeAsync('probe/served', { qos: 1 })).map((g) => g.qos), [1], 'MQTT served on ROUNDGATE_MQTT_PORT')
  await c.endAsync()
  t.equal(await stop(p, 'exit'), 0)
})

void t.test('a round survives a restart: rounds never go backwards, the state is retained with the kept round', async (t) => {
  const dir = await dataDir(t)
  const port = await freePort()
  const args = ['start', '--mqtt-port', String(port), '--http-port', '0', '--ws-port', '0', '--data-dir', dir]
  const url = `mqtt://127.0.0.1:${port}`

  const first = run(t, args)
  await first.ready()
  const x = await connect(url, 'x')
  t.teardown(async () => { await x.endAsync(true) })
  const inbox = new Inbox(x)
  await x.subscribeAsync(['rg/g/release', 'rg/g/rounds', 'rg/g/error/x'], { qos: 1 })
  await x.publishAsync('rg/g/ready/x', '{}', { qos: 1 })
  const release = await inbox.next('rg/g/release', 5000)
  const r1 = release.json.round as number
  t.ok(Number.isInteger(r1) && r1 >= 1, `released round ${r1}`)
  t.strictSame(release.json.participants, 1)
  await x.publishAsync('rg/g/done/x', JSON.stringify({ round: r1, ok: true }), { qos: 1 })
  const summary = await inbox.next('rg/g/rounds', 5000)
  t.equal(summary.json.round, r1)
  t.equal(summary.json.outcome, 'completed')
  t.equal(inbox.on('rg/g/error/x').length, 0, 'no refusals')
  await x.endAsync()

  t.equal(await stop(first, 'first process exit'), 0)

  const second = run(t, args)
  await second.ready()
  const viewer = await connect(url, 'viewer')
  t.teardown(async () => { await viewer.endAsync(true) })
  const vInbox = new Inbox(viewer)
  await viewer.subscribeAsync('rg/g/state', { qos: 1 })
  const state = await vInbox.next('rg/g/state', 5000)
  t.equal(state.retain, true, 'rg/g/state is retained after the restart')
  t.equal(state.json.group, 'g')
  t.equal(state.json.round, r1, 'with the round kept from before')

  const x2 = await connect(url, 'x')
  t.teardown(async () => { await x2.endAsync(true) })
  const inbox2 = new Inbox(x2)
  await x2.subscribeAsync(['rg/g/release', 'rg/g/error/x'], { qos: 1 })
  await x2.publishAsync('rg/g/ready/x', '{}', { qos: 1 })
  const release2 = await inbox2.next('rg/g/release', 5000)
  t.ok(release2.json.round > r1, `the next round (${release2.json.round}) is above ${r1}`)
  // done, so that SIGTERM finds no round executing (else it waits stopGraceMs for it to end)
  await x2.publishAsync('rg/g/done/x', JSON.stringify({ round: release2.json.round }), { qos: 1 })
  await x2.endAsync()
  await viewer.endAsync()
  t.equal(await stop(second, 'second process exit'), 0)
})

void t.test('with the HTTP gateway on: ready means GET /readyz answers 200; SIGTERM still ends it with 0', async (t) => {
  const port = await freePort()
  const httpPort = await freePort()
  const p = run(t, ['start', '--mqtt-port', String(port), '--http-port', String(httpPort), '--ws-port', '0', '--data-dir', await dataDir(t)])
  const ready = await p.ready()
  t.equal(ready.http, httpPort)
  const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`, { signal: AbortSignal.timeout(3000) })
  t.equal(res.status, 200, '/readyz')
  await res.text()
  const c = await connect(`mqtt://127.0.0.1:${port}`, 'cli-http')
  t.teardown(async () => { await c.endAsync(true) })
  t.equal(await stop(p, 'exit'), 0)
})

void t.test('a damaged or hand-edited database stops the start with status 1 and one clear line on stderr', async (t) => {
  const dir = await dataDir(t)
  const port = await freePort()
  const args = ['start', '--mqtt-port', String(port), '--http-port', '0', '--ws-port', '0', '--data-dir', dir]
  const first = run(t, args)
  await first.ready()
  t.equal(await stop(first, 'exit'), 0)
  t.ok((await readdir(dir)).includes('roundgate.db'), 'everything is in one SQLite file')
  const path = join(dir, 'roundgate.db')
  const refused = async (what: string, pattern: RegExp): Promise<void> => {
    const p = run(t, args)
    const { code } = await within(p.exited, 15000, `exit with ${what}`)
    t.equal(code, 1, what)
    t.match(p.stderr(), pattern, p.stderr())
    t.equal(p.stderr().trim().split('\n').length, 1, 'one line, no stack trace')
    t.ok(p.lines().some((l) => l.level === 60 && l.msg === 'cannot start'), 'a fatal JSON log line too')
  }

  // hand-edited: a valid database whose group configuration says "5" where a number belongs
  const db = new Database(path)
  db.prepare("INSERT INTO configs (name, config) VALUES ('g', '{\"need\": \"5\"}')").run()
  db.prepare("INSERT INTO groups VALUES ('g', 'WAITING', 5, NULL, NULL, 0, 0, 0, NULL, 0)").run()
  db.close()
  await refused('a hand-edited row', /^roundgate: cannot start: table configs, row "g": config: invalid group config: need: Expected number, received string/)

  // damaged: the file's header overwritten
  const fd = await open(path, 'r+')
  await fd.write(Buffer.from('definitely not the SQLite format 3 header'), 0, undefined, 0)
  await fd.close()
  await refused('a damaged file', /^roundgate: cannot start: the database .*roundgate.db is damaged/)
})
