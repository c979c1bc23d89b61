// The single binary (npm run build:binary, scripts/build-binary.ts): built, copied into an empty
// folder, and run there with a PATH that holds no node and no node_modules anywhere above it. It
// prints its version with native µWS and SQLite, checks a configuration, runs a round with one MQTT
// and one HTTP terminal, and ends with status 0 on SIGTERM, leaving nothing in its TMPDIR.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import { buildBinary } from '../scripts/build-binary.js'
import { connect, freePort, Inbox } from './helpers/broker.js'
import { run } from './helpers/clients.js'
import { call, get, post } from './helpers/http.js'
import { waitFor, within } from './helpers/wait.js'

const home = await mkdtemp(join(tmpdir(), 'rg-binary-'))
t.teardown(async () => await rm(home, { recursive: true, force: true }))
const bin = join(home, 'bin')
const privateTmp = join(home, 'tmp')
await mkdir(bin)
await mkdir(privateTmp)
const exe = join(bin, 'roundgate')
const build = await buildBinary(exe)
t.comment(`built ${exe}: ${(build.bytes / 1024 / 1024).toFixed(1)} MiB in ${build.seconds.toFixed(1)} s; needs glibc >= ${build.needs.glibc}`)

/** Only what the binary is given: no node on PATH, no NODE_* variables, its own TMPDIR. */
const ENV = { PATH: bin, HOME: home, TMPDIR: privateTmp, LANG: 'C.UTF-8' }

function binary (args: string[]): ReturnType<typeof run> {
  return run(t, exe, args, Object.fromEntries([...Object.keys(process.env).map((k) => [k, undefined]), ...Object.entries(ENV)]))
}

void t.test('the folder has nothing but the binary: no node on PATH, no node_modules above it', async (t) => {
  t.same(await readdir(bin), ['roundgate'])
  t.notOk(existsSync(join(bin, 'node')), 'no node on its PATH')
  for (let d = bin; ; d = dirname(d)) {
    t.notOk(existsSync(join(d, 'node_modules')), `no node_modules in ${d}`)
    if (dirname(d) === d) break
  }
})

void t.test('version: Node 20, native µWS and SQLite from the binary itself', async (t) => {
  const p = binary(['version'])
  t.equal(await p.status(30000), 0, 'exit 0', { stderr: p.stderr() })
  const lines = p.stdout().trim().split('\n')
  t.match(lines[0], /^roundgate \d+\.\d+\.\d+/)
  t.match(lines[1], /^node v20\.\d+\.\d+ \(linux x64, ABI 115\)$/)
  t.equal(lines[2], 'uws native')
  t.match(lines[3], /^sqlite 3\.\d+\.\d+ \(better-sqlite3, native\)$/)
  t.equal(lines[4], 'single executable: yes')
  t.equal(p.stderr(), '', 'no warning on stderr')
  t.same(await readdir(privateTmp), [], 'the addons\' temporary files are gone')
})

void t.test('check-config and --help work from the binary', async (t) => {
  const cfg = join(home, 'roundgate.json')
  await writeFile(cfg, JSON.stringify({ groups: { render: { need: 2 } } }))
  const p = binary(['check-config', cfg])
  t.equal(await p.status(30000), 0, 'exit 0', { stderr: p.stderr() })
  t.equal(JSON.parse(p.stdout()).groups.render.need, 2)
  const h = binary(['start', '--help'])
  t.equal(await h.status(30000), 0)
  t.match(h.stdout(), /--mqtt-port <n>/)
})

void t.test('start: a round with one MQTT and one HTTP terminal, then SIGTERM ends it with status 0', async (t) => {
  const mqttPort = await freePort()
  const httpPort = await freePort()
  const child = spawn(exe, ['start', '--mqtt-port', String(mqttPort), '--http-port', String(httpPort), '--ws-port', '0', '--data-dir', join(home, 'data')],
    { cwd: home, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  await waitFor(() => out.includes('"msg":"roundgate ready"') || child.exitCode !== null, 30000, 'the ready line')
  t.match(out, /"msg":"uws: native"/, 'the gateway runs native µWS')

  const base = `http://127.0.0.1:${httpPort}`
  const page = await get(base, '/')
  t.equal(page.status, 200, 'the dashboard is served from inside the binary')
  t.match(page.text, /<html/i)
  t.equal((await call(base, 'PUT', '/v1/groups/bin', { need: 2, minOnlineRatio: 1 })).status, 200)
  const m = await connect(`mqtt://127.0.0.1:${mqttPort}`, 'bin-mqtt')
  t.teardown(async () => { await m.endAsync(true) })
  const inbox = new Inbox(m)
  await m.subscribeAsync(['rg/bin/release', 'rg/bin/rounds'], { qos: 1 })
  const poll = get(base, '/v1/groups/bin/release?clientId=bin-http&after=0&wait=20')
  await post(base, '/v1/groups/bin/ready', { clientId: 'bin-http' })
  await m.publishAsync('rg/bin/ready/bin-mqtt', '{}', { qos: 1 })

  const viaMqtt = (await inbox.next('rg/bin/release', 10000)).json
  const viaHttp = await within(poll, 10000, 'the HTTP release')
  t.equal(viaHttp.status, 200)
  t.equal(viaHttp.json.round, viaMqtt.round, 'one round for both doors')
  await m.publishAsync('rg/bin/done/bin-mqtt', JSON.stringify({ round: viaMqtt.round }), { qos: 1 })
  t.equal((await post(base, '/v1/groups/bin/done', { clientId: 'bin-http', round: viaMqtt.round })).status, 200)
  const summary = (await inbox.next('rg/bin/rounds', 10000)).json
  t.equal(summary.outcome, 'completed')
  t.same([...summary.done].sort(), ['bin-http', 'bin-mqtt'])

  child.kill('SIGTERM')
  t.equal(await within(exited, 30000, 'exit after SIGTERM'), 0, 'exit status 0')
  t.equal(err, '', 'nothing on stderr')
  t.same(await readdir(privateTmp), [], 'nothing left in TMPDIR')
})
