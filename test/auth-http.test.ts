// Authentication and roles over HTTP (PROTOCOL sections 5 and 7): Bearer tokens from
// `roundgate token` (the real CLI) and from POST /v1/login; 401 without or with a bad or expired
// token, 403 beyond the role, and no state changed by a refused call.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { call, get } from './helpers/http.js'
import { freePort, sleep, startBroker } from './helpers/broker.js'
import { SECRET, passwdFile } from './helpers/auth.js'
import { secretKey, signToken } from '../plugins/auth/index.js'

const run = promisify(execFile)
const cli = new URL('../../bin/roundgate.js', import.meta.url).pathname

const pw = await passwdFile([
  { user: 'v1', role: 'viewer', password: 'pw-v1-secret', groups: 'g1' },
  { user: 'a1', role: 'admin', password: 'pw-a1-secret' }
])
t.teardown(pw.remove)
const b = await startBroker({ passwdFile: pw.path, jwtSecret: SECRET, httpPort: await freePort(), groups: { g1: { need: 1 }, g2: { need: 1 } } })
t.teardown(b.close)
const base = `http://127.0.0.1:${b.server.ports.http}`
const bearer = (tok: string): Record<string, string> => ({ authorization: `Bearer ${tok}` })

async function cliToken (...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [cli, 'token', '--secret', SECRET, ...args])
  return stdout.trim()
}

void t.test('a terminal holding a token from `roundgate token` runs its round over HTTP', async (t) => {
  const tok = await cliToken('--sub', 'h1', '--role', 'terminal', '--groups', 'g1', '--ttl', '10m')
  t.match(tok, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/, 'the CLI printed a JWT')
  const r = await call(base, 'POST', '/v1/groups/g1/ready', { clientId: 'h1' }, bearer(tok))
  t.equal(r.status, 200, 'ready accepted')
  const rel = await call(base, 'GET', '/v1/groups/g1/release?clientId=h1&after=0&wait=5', undefined, bearer(tok))
  t.equal(rel.status, 200, 'released')
  t.equal(rel.json.round, 1)
  const done = await call(base, 'POST', '/v1/groups/g1/done', { clientId: 'h1', round: 1 }, bearer(tok))
  t.equal(done.status, 200, 'done accepted')
})

void t.test('refusals: 401 and 403, nothing changed', async (t) => {
  const tok = await cliToken('--sub', 'h2', '--role', 'terminal', '--groups', 'g1')
  const before = await b.server.engine.getGroup('g1')
  t.equal((await call(base, 'POST', '/v1/groups/g1/ready', { clientId: 'h2' })).status, 401, 'no token: 401')
  const bad = await call(base, 'POST', '/v1/groups/g1/ready', { clientId: 'h2' }, { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJoMiJ9.x' })
  t.equal(bad.status, 401, 'a forged token: 401')
  t.equal(bad.json.error.code, 'unauthorized')
  const expired = await signToken(secretKey(SECRET), { sub: 'h2', role: 'terminal', ttlS: 1 })
  await sleep(1100)
  t.equal((await call(base, 'POST', '/v1/groups/g1/ready', { clientId: 'h2' }, bearer(expired))).status, 401, 'an expired token: 401')
  const other = await call(base, 'POST', '/v1/groups/g1/ready', { clientId: 'h3' }, bearer(tok))
  t.equal(other.status, 403, 'a terminal acting as another clientId: 403')
  t.equal(other.json.error.code, 'forbidden')
  t.equal((await call(base, 'POST', '/v1/groups/g2/ready', { clientId: 'h2' }, bearer(tok))).status, 403, 'a group it may not use: 403')
  t.equal((await call(base, 'GET', '/v1/groups/g2', undefined, bearer(tok))).status, 403, 'reading a group it may not: 403')
  t.equal((await call(base, 'POST', '/v1/groups/g1/ctl', { op: 'pause' }, bearer(tok))).status, 403, 'ctl from a terminal: 403')
  const viewer = await cliToken('--sub', 'v9', '--role', 'viewer')
  t.equal((await call(base, 'PATCH', '/v1/groups/g1', { need: 5 }, bearer(viewer))).status, 403, 'a viewer steering: 403')
  t.equal((await call(base, 'POST', '/v1/groups/g1/ready', { clientId: 'v9' }, bearer(viewer))).status, 403, 'a viewer acting as a terminal: 403')
  t.equal((await call(base, 'GET', '/v1/groups/g1', undefined, bearer(viewer))).status, 200, 'a viewer reads')
  const after = await b.server.engine.getGroup('g1')
  t.same(after.config, before.config, 'configuration unchanged')
  t.equal(after.state.ready, before.state.ready, 'nobody became ready')
  t.equal(after.state.online, before.state.online, 'nobody came online')
})

void t.test('/metrics needs a viewer; /healthz and /readyz need nobody', async (t) => {
  t.equal((await get(base, '/metrics')).status, 401)
  const viewer = await cliToken('--sub', 'v9', '--role', 'viewer')
  const m = await get(base, '/metrics', { headers: bearer(viewer) })
  t.equal(m.status, 200)
  t.match(m.text, /roundgate_/)
  const term = await cliToken('--sub', 'h9', '--role', 'terminal')
  t.equal((await get(base, '/metrics', { headers: bearer(term) })).status, 403, 'a terminal may not read metrics')
  t.equal((await get(base, '/healthz')).status, 200)
  t.equal((await get(base, '/readyz')).status, 200)
})

void t.test('POST /v1/login: a short-lived token for a credentials-file user', async (t) => {
  t.equal((await call(base, 'POST', '/v1/login', { username: 'v1', password: 'wrong' })).status, 401, 'a wrong password: 401')
  t.equal((await call(base, 'POST', '/v1/login', { username: 'v1' })).status, 400, 'no password: 400')
  const r = await call(base, 'POST', '/v1/login', { username: 'v1', password: 'pw-v1-secret' })
  t.equal(r.status, 200)
  t.equal(r.json.role, 'viewer')
  const list = await call(base, 'GET', '/v1/groups', undefined, bearer(r.json.token))
  t.equal(list.status, 200, 'the login token reads')
  t.same(list.json.map((s: any) => s.group), ['g1'], 'a viewer limited to g1 sees only g1 in the list')
  t.equal((await call(base, 'GET', '/v1/groups/g2', undefined, bearer(r.json.token))).status, 403, 'and not g2')
  const admin = await call(base, 'POST', '/v1/login', { username: 'a1', password: 'pw-a1-secret' })
  t.equal((await call(base, 'PATCH', '/v1/groups/g2', { need: 2 }, bearer(admin.json.token))).status, 200, 'an admin login token steers')
})

void t.test('bodies with prototype keys are refused, never merged', async (t) => {
  const admin = await cliToken('--sub', 'root', '--role', 'admin')
  const before = await b.server.engine.getGroup('g2')
  const r = await call(base, 'PATCH', '/v1/groups/g2', '{"__proto__": {"need": 7}, "paused": true}', { ...bearer(admin), 'content-type': 'application/json' })
  t.equal(r.status, 400)
  const esc = await call(base, 'PATCH', '/v1/groups/g2', '{"\\u005f_proto__": {"need": 7}}', { ...bearer(admin), 'content-type': 'application/json' })
  t.equal(esc.status, 400, 'also spelled with an escape')
  const form = await call(base, 'POST', '/v1/groups/g1/heartbeat', 'clientId=root&constructor=1', { ...bearer(admin), 'content-type': 'application/x-www-form-urlencoded' })
  t.equal(form.status, 400, 'a form field named constructor')
  t.same((await b.server.engine.getGroup('g2')).config, before.config, 'nothing changed')
  t.equal(({} as any).need, undefined, 'no prototype polluted')
})
