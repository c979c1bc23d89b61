// Server settings: defaults, file < environment < flags, every flag as ROUNDGATE_<FLAG>, and bad
// values refused with a ConfigError naming the setting and where it came from.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { ConfigError, authOn, loadSettings, tlsPortOf, wssPortOf } from '../broker/config.js'
import { DEFAULT_SETTINGS, type Settings } from '../broker/settings.js'
import { startServer } from '../broker/server.js'
import { freePort } from './helpers/broker.js'

const dir = await mkdtemp(join(tmpdir(), 'rg-config-'))
t.teardown(async () => await rm(dir, { recursive: true, force: true }))
let files = 0

async function file (content: unknown): Promise<string> {
  const path = join(dir, `config-${++files}.json`)
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content))
  return path
}

/** The ConfigError loadSettings throws (fails the test if it returns or throws anything else). */
function refusal (t: Test, argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    loadSettings(argv, env)
  } catch (err) {
    t.type(err, ConfigError, 'a ConfigError')
    return (err as Error).message
  }
  t.fail(`loadSettings(${JSON.stringify(argv)}, ${JSON.stringify(env)}) was accepted`)
  return ''
}

void t.test('defaults: PROTOCOL section 8 (127.0.0.1, 1883, 8080, 8083, TLS off, groups created on use)', async (t) => {
  const s = loadSettings([], {})
  t.strictSame(s, DEFAULT_SETTINGS)
  t.equal(s.host, '127.0.0.1')
  t.equal(s.mqttPort, 1883)
  t.equal(s.httpPort, 8080)
  t.equal(s.wsPort, 8083)
  t.equal(tlsPortOf(s), 0, 'TLS is off without certificates')
  t.equal(s.autoCreateGroups, null, 'unset: on without authentication, off with it (the server decides)')
  t.equal(s.topicPrefix, 'rg')
  t.equal(s.redis, null)
  t.equal(tlsPortOf({ ...s, tlsCert: 'c.pem', tlsKey: 'k.pem' }), 8883, 'TLS defaults to 8883 with certificates')
  t.equal(loadSettings([], { UNRELATED: 'x', ROUNDGATEX: '1' }).mqttPort, 1883, 'unrelated variables are ignored')
})

void t.test('precedence: file < environment < flags, setting by setting', async (t) => {
  const cfg = await file({ mqttPort: 1001, httpPort: 1002, wsPort: 1003, host: '127.0.0.2', groups: { g: { need: 3 } } })
  const fileOnly = loadSettings(['--config', cfg], {})
  t.equal(fileOnly.mqttPort, 1001)
  t.equal(fileOnly.httpPort, 1002)
  t.equal(fileOnly.wsPort, 1003)
  t.equal(fileOnly.host, '127.0.0.2')
  t.strictSame(fileOnly.groups, { g: { need: 3 } }, 'groups come from the file')

  const env = { ROUNDGATE_MQTT_PORT: '2001', ROUNDGATE_HTTP_PORT: '2002' }
  const fileEnv = loadSettings(['--config', cfg], env)
  t.equal(fileEnv.mqttPort, 2001, 'environment over file')
  t.equal(fileEnv.httpPort, 2002)
  t.equal(fileEnv.wsPort, 1003, 'the file still gives what the environment leaves')

  const all = loadSettings(['--config', cfg, '--mqtt-port', '3001'], env)
  t.equal(all.mqttPort, 3001, 'flag over environment over file')
  t.equal(all.httpPort, 2002)
  t.equal(all.wsPort, 1003)
  t.equal(all.host, '127.0.0.2')

  t.equal(loadSettings(['--config', cfg], { ROUNDGATE_CONFIG: '/nonexistent.json' }).mqttPort, 1001, '--config over ROUNDGATE_CONFIG')
  t.equal(loadSettings(['--mqtt-port=4001'], {}).mqttPort, 4001, '--flag=value works too')
  t.equal(loadSettings(['--mqtt-port', '0'], {}).mqttPort, 0, '0 turns a listener off')
})

void t.test('every flag also as ROUNDGATE_<FLAG>, with the same effect', async (t) => {
  const cfg = await file({ topicPrefix: 'fromfile' })
  const cases: Array<[flag: string, value: string, key: keyof Settings, expected: unknown]> = [
    ['host', '127.0.0.9', 'host', '127.0.0.9'],
    ['mqtt-port', '1884', 'mqttPort', 1884],
    ['http-port', '8081', 'httpPort', 8081],
    ['ws-port', '0', 'wsPort', 0],
    ['redis', 'redis://127.0.0.1:6379/2', 'redis', 'redis://127.0.0.1:6379/2'],
    ['auto-create-groups', 'false', 'autoCreateGroups', false],
    ['topic-prefix', 'fleet/rg', 'topicPrefix', 'fleet/rg'],
    ['data-dir', '/tmp/rg-data', 'dataDir', '/tmp/rg-data'],
    ['log-level', 'warn', 'logLevel', 'warn'],
    ['config', cfg, 'topicPrefix', 'fromfile']
  ]
  for (const [flag, value, key, expected] of cases) {
    const name = `ROUNDGATE_${flag.toUpperCase().replace(/-/g, '_')}`
    const fromEnv = loadSettings([], { [name]: value })
    t.strictSame(fromEnv[key], expected, `${name}=${value}`)
    const argv = flag === 'auto-create-groups' ? [value === 'false' ? '--no-auto-create-groups' : '--auto-create-groups'] : [`--${flag}`, value]
    t.strictSame(loadSettings(argv, {})[key], expected, `${argv.join(' ')}`)
  }
  // The TLS trio goes together.
  const tls = { ROUNDGATE_TLS_CERT: '/c.pem', ROUNDGATE_TLS_KEY: '/k.pem', ROUNDGATE_TLS_PORT: '8884' }
  const fromEnv = loadSettings([], tls)
  const fromFlags = loadSettings(['--tls-cert', '/c.pem', '--tls-key', '/k.pem', '--tls-port', '8884'], {})
  for (const s of [fromEnv, fromFlags]) {
    t.equal(s.tlsCert, '/c.pem')
    t.equal(s.tlsKey, '/k.pem')
    t.equal(tlsPortOf(s), 8884)
  }
  // Booleans from the environment read the usual spellings.
  for (const v of ['0', 'false', 'no', 'off', 'FALSE']) t.equal(loadSettings([], { ROUNDGATE_AUTO_CREATE_GROUPS: v }).autoCreateGroups, false, v)
  for (const v of ['1', 'true', 'yes', 'on']) t.equal(loadSettings([], { ROUNDGATE_AUTO_CREATE_GROUPS: v }).autoCreateGroups, true, v)
})

void t.test('--no-auto-create-groups / --auto-create-groups', async (t) => {
  t.equal(loadSettings(['--no-auto-create-groups'], {}).autoCreateGroups, false)
  t.equal(loadSettings(['--auto-create-groups'], {}).autoCreateGroups, true)
  t.equal(loadSettings(['--no-auto-create-groups'], { ROUNDGATE_AUTO_CREATE_GROUPS: 'true' }).autoCreateGroups, false, 'the flag beats the environment')
  t.equal(loadSettings(['--auto-create-groups'], { ROUNDGATE_AUTO_CREATE_GROUPS: 'false' }).autoCreateGroups, true, 'both ways')
  const cfg = await file({ autoCreateGroups: false })
  t.equal(loadSettings(['--config', cfg], {}).autoCreateGroups, false, 'from the file')
  t.equal(loadSettings(['--config', cfg, '--auto-create-groups'], {}).autoCreateGroups, true, 'the flag beats the file')
  t.equal(loadSettings(['--no-auto-create-groups', '--auto-create-groups'], {}).autoCreateGroups, true, 'the last one given wins')
  t.equal(loadSettings(['--auto-create-groups', '--no-auto-create-groups'], {}).autoCreateGroups, false, 'the last one given wins')
  t.equal(loadSettings([], { ROUNDGATE_NO_AUTO_CREATE_GROUPS: '1' }).autoCreateGroups, false, 'ROUNDGATE_NO_AUTO_CREATE_GROUPS, as every flag')
  t.equal(loadSettings([], { ROUNDGATE_NO_AUTO_CREATE_GROUPS: 'false' }).autoCreateGroups, true)
  t.throws(() => loadSettings([], { ROUNDGATE_NO_AUTO_CREATE_GROUPS: '1', ROUNDGATE_AUTO_CREATE_GROUPS: '1' }), ConfigError, 'contradictory variables are refused')
  t.throws(() => loadSettings(['--no-host'], {}), ConfigError, 'only boolean flags have a --no- form')
})

void t.test('bad values: a ConfigError naming the setting and its source', async (t) => {
  let m = refusal(t, ['--mqtt-port', '70000'])
  t.match(m, /--mqtt-port/, `bad port names the flag: ${m}`)
  t.match(m, /command line/, 'and the source')

  m = refusal(t, ['--http-port', 'eighty'])
  t.match(m, /http-?port/i, m)
  t.match(m, /command line/)

  m = refusal(t, [], { ROUNDGATE_WS_PORT: '-1' })
  t.match(m, /ROUNDGATE_WS_PORT|ws-?port/i, m)
  t.match(m, /environment/)

  m = refusal(t, [], { ROUNDGATE_MQTT_PORT: '99999' })
  t.match(m, /ROUNDGATE_MQTT_PORT/, m)
  t.match(m, /environment/)

  const badPortFile = await file({ mqttPort: 'not a port' })
  m = refusal(t, ['--config', badPortFile])
  t.match(m, /mqttPort/, m)
  t.match(m, badPortFile)

  m = refusal(t, ['--bogus-flag', '1'])
  t.match(m, /--bogus-flag/, `unknown flag: ${m}`)
  t.match(m, /command line/)

  m = refusal(t, ['start-now'])
  t.match(m, /start-now/, `stray argument: ${m}`)

  m = refusal(t, ['--mqtt-port'])
  t.match(m, /--mqtt-port/, `missing value: ${m}`)

  const unknownKey = await file({ mqttPort: 1884, mqtPort: 1 })
  m = refusal(t, ['--config', unknownKey])
  t.match(m, /mqtPort/, `unknown key: ${m}`)
  t.match(m, unknownKey)

  const badJson = await file('{ "mqttPort": 1884, }')
  m = refusal(t, ['--config', badJson])
  t.match(m, /JSON/, `invalid JSON: ${m}`)
  t.match(m, badJson)

  const notObject = await file('[1, 2]')
  m = refusal(t, ['--config', notObject])
  t.match(m, /object/, `top level not an object: ${m}`)
  t.match(m, notObject)

  const missing = join(dir, 'does-not-exist.json')
  m = refusal(t, ['--config', missing])
  t.match(m, missing, `missing file: ${m}`)
  m = refusal(t, [], { ROUNDGATE_CONFIG: missing })
  t.match(m, missing, `missing file from the environment: ${m}`)

  m = refusal(t, ['--tls-cert', '/c.pem'])
  t.match(m, /tls-?key/i, `tls-cert without tls-key: ${m}`)
  t.match(m, /command line/)
  m = refusal(t, [], { ROUNDGATE_TLS_KEY: '/k.pem' })
  t.match(m, /tls-?cert/i, `tls-key without tls-cert: ${m}`)
  t.match(m, /environment/)
  m = refusal(t, ['--tls-port', '8884'])
  t.match(m, /tls-?cert/i, `tls-port without certificates: ${m}`)

  m = refusal(t, ['--log-level', 'loud'])
  t.match(m, /log-?level/i, m)
  m = refusal(t, ['--redis', 'localhost:6379'])
  t.match(m, /redis/, m)
  m = refusal(t, ['--topic-prefix', 'rg/#'])
  t.match(m, /topic-?prefix/i, m)
  m = refusal(t, [], { ROUNDGATE_AUTO_CREATE_GROUPS: 'maybe' })
  t.match(m, /ROUNDGATE_AUTO_CREATE_GROUPS/, m)

  const badGroupsShape = await file({ groups: { g: 5 } })
  m = refusal(t, ['--config', badGroupsShape])
  t.match(m, /groups\.g/, `groups must hold objects: ${m}`)
})

void t.test('group configurations in the file are refused when the file is read, naming file, group and key', async (t) => {
  for (const [content, words] of [
    [{ groups: { g: { need: -1 } } }, ['groups.g', 'need']],
    [{ groups: { g: { selection: 'random' } } }, ['groups.g', 'selection']],
    [{ groups: { g: { needs: 2 } } }, ['groups.g', 'needs']],
    [{ groups: { 'bad group!': { need: 1 } } }, ['bad group!', 'group name']],
    [{ groupDefaults: { dropTolerance: 1.5 } }, ['groupDefaults', 'dropTolerance']]
  ] as Array<[unknown, string[]]>) {
    const path = await file(content)
    const m = refusal(t, ['--config', path])
    for (const w of [path, ...words]) t.match(m, w, `${JSON.stringify(content)}: the message names ${w}: ${m}`)
  }
  const good = await file({ groupDefaults: { need: 2 }, groups: { g: { need: 3, selection: 'fair', payload: { job: 1 } }, 'h.1': {} } })
  t.strictSame(loadSettings(['--config', good], {}).groups, { g: { need: 3, selection: 'fair', payload: { job: 1 } }, 'h.1': {} })
})

void t.test('group configurations in the file are validated at start', async (t) => {
  const base: Settings = { ...DEFAULT_SETTINGS, dataDir: null, httpPort: 0, wsPort: 0, logLevel: 'silent', mqttPort: await freePort() }
  const log = pino({ level: 'silent' })
  for (const [groups, word] of [
    [{ g: { need: -1 } }, 'need'],
    [{ g: { selection: 'random' } }, 'selection'],
    [{ g: { needs: 2 } }, 'needs'],
    [{ 'bad group!': { need: 1 } }, 'group name']
  ] as Array<[Settings['groups'], string]>) {
    const err = await startServer({ ...base, groups }, log).then(async (s) => { await s.close(); return null }, (e: unknown) => e)
    t.type(err, ConfigError, `${JSON.stringify(groups)} refused with a ConfigError`)
    t.match((err as Error | null)?.message ?? '', word, `the message names ${word}: ${(err as Error | null)?.message}`)
  }
  // The port is not left bound by a refused start.
  const ok = await startServer({ ...base, groups: { g: { need: 2 } } }, log)
  t.teardown(async () => await ok.close())
  t.equal(ok.ports.mqtt, base.mqttPort, 'a valid group configuration starts')
})

void t.test('invalid groupDefaults handed to startServer are a ConfigError too', async (t) => {
  const base: Settings = { ...DEFAULT_SETTINGS, dataDir: null, httpPort: 0, wsPort: 0, logLevel: 'silent', mqttPort: await freePort() }
  const err = await startServer({ ...base, groupDefaults: { need: -1 } }, pino({ level: 'silent' })).then(async (s) => { await s.close(); return null }, (e: unknown) => e)
  t.type(err, ConfigError)
  t.match((err as Error | null)?.message ?? '', 'need')
})

void t.test('authentication and exposure (PROTOCOL sections 7 and 8)', async (t) => {
  t.throws(() => loadSettings(['--host', '0.0.0.0']), /refusing to listen on 0\.0\.0\.0 without authentication.*--insecure/, 'a non-loopback listener without auth refuses to start')
  t.throws(() => loadSettings([], { ROUNDGATE_HOST: '192.0.2.1' }), ConfigError, 'also from the environment')
  t.equal(loadSettings(['--host', '0.0.0.0', '--insecure']).insecure, true, '--insecure allows it')
  t.equal(loadSettings(['--host', '::1']).host, '::1', 'IPv6 loopback needs nothing')
  const withAuth = loadSettings(['--host', '0.0.0.0', '--passwd-file', '/nonexistent/passwd'])
  t.ok(authOn(withAuth), 'a credentials file turns authentication on')
  t.ok(authOn(loadSettings([], { ROUNDGATE_JWT_SECRET: 'x'.repeat(32) })), 'ROUNDGATE_JWT_SECRET too')
  t.throws(() => loadSettings(['--jwt-secret', 'short']), /at least 32 characters/, 'a short secret is refused')
  t.throws(() => loadSettings(['--jwt-secret', 'x'.repeat(32), '--jwt-public-key', 'k.pem']), /not both/)
  t.throws(() => loadSettings(['--wss-port', '8084']), /--wss-port needs --tls-cert/)
  t.equal(wssPortOf({ ...loadSettings([]), tlsCert: 'c.pem', tlsKey: 'k.pem' }), 8084, 'wss defaults to 8084 with certificates')
})

void t.test('ACL rules and limits are validated where they are read', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-cfg-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'c.json')
  await writeFile(file, JSON.stringify({ acl: [{ effect: 'allow', access: 'read', topic: 'a/x%c/#' }] }))
  t.throws(() => loadSettings(['--config', file]), /acl\[0\]\.topic .*whole level/)
  await writeFile(file, JSON.stringify({ acl: [{ effect: 'allow', access: 'read', topic: 'a/%c/#', roles: ['terminal'] }], maxConnectionsPerIp: 10 }))
  t.equal(loadSettings(['--config', file]).acl.length, 1)
  await writeFile(file, JSON.stringify({ maxTopicLevels: 1000 }))
  t.throws(() => loadSettings(['--config', file]), /maxTopicLevels/)
})
