// The CLI's commands besides start, run as an operator runs them (node bin/roundgate.js ...):
// check-config names every problem or prints the effective configuration, status shows a running
// broker's groups and rounds as tables, and every command has its --help.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { connect, freePort, Inbox, startBroker } from './helpers/broker.js'
import { ROOT, run } from './helpers/clients.js'
import { call } from './helpers/http.js'

const BIN = join(ROOT, 'bin', 'roundgate.js')

/** The CLI with an environment free of the runner's ROUNDGATE_* variables. */
function cli (t: Test, args: string[], env: Record<string, string> = {}): ReturnType<typeof run> {
  const clean: Record<string, undefined> = {}
  for (const k of Object.keys(process.env)) if (k.startsWith('ROUNDGATE_')) clean[k] = undefined
  return run(t, process.execPath, [BIN, ...args], { ...clean, ...env })
}

async function file (t: Test, content: unknown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rg-cli-cmd-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'roundgate.json')
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content))
  return path
}

void t.test('check-config: a good file prints the effective configuration, groups with their defaults', async (t) => {
  const path = await file(t, { mqttPort: 1884, redis: 'redis://user:pw@127.0.0.1:6379/0', groupDefaults: { resetMs: 50 }, groups: { render: { need: 8 } } })
  const p = cli(t, ['check-config', path], { ROUNDGATE_HTTP_PORT: '9090' })
  t.equal(await p.status(15000), 0, 'exit 0', { stderr: p.stderr() })
  const cfg = JSON.parse(p.stdout())
  t.equal(cfg.mqttPort, 1884, 'from the file')
  t.equal(cfg.httpPort, 9090, 'from the environment, as start would')
  t.equal(cfg.wsPort, 8083, 'the default')
  t.equal(cfg.redis, 'redis://***@127.0.0.1:6379/0', 'credentials in the Redis URL are hidden')
  t.match(cfg.groups.render, { need: 8, resetMs: 50, bossNeed: 0, minOnlineRatio: 0.9, selection: 'fifo' }, 'the group with groupDefaults and the defaults filled in')
  t.equal(p.stderr(), '')
})

void t.test('check-config: a bad file exits 1 naming every problem', async (t) => {
  const path = await file(t, {
    mqttPort: 70000,
    mqtPort: 1,
    groupDefaults: { resetMs: 'soon' },
    groups: { g: { need: -1, selection: 'random' }, h: { bogus: true }, fine: { need: 2 } }
  })
  const p = cli(t, ['check-config', path])
  t.equal(await p.status(15000), 1, 'exit 1')
  const err = p.stderr()
  for (const name of ['mqttPort', 'mqtPort', 'groupDefaults: .*resetMs', 'groups.g: .*need', 'groups.g: .*selection', 'groups.h: .*bogus']) {
    t.match(err, new RegExp(name), `names ${name}`)
  }
  t.notMatch(err, /groups\.fine/, 'not the good group')
  t.match(err, /5 problem\(s\)/, 'one line per setting or group: 5')
  t.equal(p.stdout(), '', 'no configuration printed')

  const missing = cli(t, ['check-config', join(tmpdir(), 'rg-no-such-file.json')])
  t.equal(await missing.status(15000), 1)
  t.match(missing.stderr(), /cannot read configuration file .*rg-no-such-file\.json/)
  const notJson = cli(t, ['check-config', await file(t, '{ "mqttPort": ')])
  t.equal(await notJson.status(15000), 1)
  t.match(notJson.stderr(), /not valid JSON/)
})

void t.test('status: groups and recent rounds of a running broker, as tables', async (t) => {
  const b = await startBroker({ httpPort: await freePort() })
  t.teardown(b.close)
  const url = `http://127.0.0.1:${b.server.ports.http}`
  t.equal((await call(url, 'PUT', '/v1/groups/idle', { need: 3 })).status, 200)
  const c = await connect(b.url, 'st-1')
  t.teardown(async () => { await c.endAsync(true) })
  const inbox = new Inbox(c)
  await c.subscribeAsync(['rg/work/release', 'rg/work/rounds'], { qos: 1 })
  await c.publishAsync('rg/work/ready/st-1', '{}', { qos: 1 })
  const round = (await inbox.next('rg/work/release')).json.round as number
  await c.publishAsync('rg/work/done/st-1', JSON.stringify({ round }), { qos: 1 })
  await inbox.next('rg/work/rounds')

  const p = cli(t, ['status', '--url', url])
  t.equal(await p.status(15000), 0, 'exit 0', { stderr: p.stderr() })
  const out = p.stdout()
  t.match(out, /^GROUP +PHASE +ROUND +PAUSED +NEED +ONLINE +READY +PARTICIPANTS +DONE +DROPPED$/m, 'the groups table header')
  t.match(out, /^idle +WAITING +0 +no +3\+0 +0\+0 +0\+0 +0 +0 +0$/m, 'group idle')
  t.match(out, /^work +(RESET|WAITING) +1 +no +1\+0 +1\+0 +0\+0 +0 +0 +0$/m, 'group work, after its round')
  t.match(out, /^work +1 +completed +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +\d+\.\d +1 +1 +0$/m, 'its round in the recent rounds')

  const json = cli(t, ['status', '--json'], { ROUNDGATE_URL: url })
  t.equal(await json.status(15000), 0, 'ROUNDGATE_URL works as --url')
  const data = JSON.parse(json.stdout())
  t.same(data.groups.map((g: any) => g.group), ['idle', 'work'])
  t.same(data.rounds.map((r: any) => [r.group, r.round, r.outcome]), [['work', 1, 'completed']])

  const down = cli(t, ['status', '--url', `http://127.0.0.1:${await freePort()}`])
  t.equal(await down.status(15000), 1, 'exit 1 when nothing answers')
  t.match(down.stderr(), /^roundgate: cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED$/m)
})

void t.test('--help on every command, exit 0', async (t) => {
  const cases: Array<[string[], RegExp[]]> = [
    [['--help'], [/start/, /check-config/, /status/, /version/, /--mqtt-port/]],
    [['start', '--help'], [/--mqtt-port <n>/, /ROUNDGATE_MQTT_PORT/, /--no-auto-create-groups/, /--config <file>/]],
    [['check-config', '--help'], [/<file>/, /every problem/]],
    [['status', '--help'], [/--url <url>/, /--token <jwt>/, /ROUNDGATE_TOKEN/]],
    [['version', '--help'], [/Node\.js version/]],
    [['help', 'status'], [/--url <url>/]]
  ]
  for (const [args, patterns] of cases) {
    const p = cli(t, args, { ROUNDGATE_TOKEN: 'secret-token-value' })
    t.equal(await p.status(15000), 0, `${args.join(' ')}: exit 0`)
    for (const re of patterns) t.match(p.stdout(), re, `${args.join(' ')}: ${re}`)
    t.notMatch(p.stdout(), /secret-token-value/, `${args.join(' ')}: never prints the token`)
  }
})
