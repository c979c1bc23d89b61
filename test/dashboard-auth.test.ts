// The dashboard's login in real Chromium against the real process started with authentication
// (PROTOCOL sections 7 and 8): a viewer logged in with a JWT sees every control disabled; an
// admin pauses a group from the page and the broker has it paused; username + password logs in
// through POST /v1/login. The authentication flags and tools (`--jwt-secret`, `roundgate token`,
// `--passwd-file`, `roundgate passwd`) land with the auth plugin in parallel: each test runs once
// `roundgate help` lists what it needs, and until then is skipped with a reason saying so.
// The first test needs none of that: the page's login against the gateway's own authorization
// hook checking real HS256 JWTs (jose), with the page on HTTP alone (no WebSocket port).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { jwtVerify, SignJWT } from 'jose'
import t, { type Test } from 'tap'
import { RgError } from '../plugins/errors.js'
import { launch, ROOT, snap, type Browser } from './helpers/browser.js'
import { freePort, waitFor, within } from './helpers/broker.js'
import { startTestGateway } from './helpers/http.js'

const BIN = join(ROOT, 'bin', 'roundgate.js')
const SECRET = 'dashboard-test-secret-0123456789abcdef'

function cleanEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ROUNDGATE_')) env[k] = v
  return env
}


/** `roundgate <args>`: its stdout, or a failure with its stderr. */
function tool (args: string[], input?: string): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, env: cleanEnv(), encoding: 'utf8', input })
  if (r.status !== 0) throw new Error(`roundgate ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
  return r.stdout.trim()
}

const token = (sub: string, role: string): string => tool(['token', '--secret', SECRET, '--sub', sub, '--role', role, '--ttl', '1h'])

interface Running { base: string, stop: () => Promise<void> }

/** The real process with authentication on (flags as PROTOCOL section 8 names them) and group `demo`. */
async function startAuthed (t: Test, authFlags: string[]): Promise<Running> {
  const dir = await mkdtemp(join(tmpdir(), 'rg-dash-auth-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const config = join(dir, 'roundgate.json')
  await writeFile(config, JSON.stringify({ groups: { demo: { need: 2 } } }))
  const [mqtt, ws, http] = [await freePort(), await freePort(), await freePort()]
  const child: ChildProcess = spawn(process.execPath, [BIN, 'start', '--mqtt-port', String(mqtt), '--ws-port', String(ws),
    '--http-port', String(http), '--data-dir', join(dir, 'data'), '--config', config, ...authFlags],
  { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    await within(exited, 15000, 'roundgate to stop').catch(() => { child.kill('SIGKILL') })
  }
  t.teardown(stop)
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`roundgate exited ${child.exitCode} before ready: ${err}`)
    return out.includes('"roundgate ready"')
  }, 15000, 'roundgate ready')
  return { base: `http://127.0.0.1:${http}`, stop }
}

let browser: Browser
t.before(async () => { browser = await launch() })
t.teardown(async () => await browser?.close())

async function loginWithToken (base: string, jwt: string): Promise<Page> {
  const { page } = await browser.page()
  await page.goto(`${base}/`)
  await page.waitForSelector('#login-jwt')
  await page.fill('#login-token', jwt)
  await page.click('#login-jwt button[type="submit"]')
  await page.waitForSelector('#auth-note', { timeout: 5000 })
  await page.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 })
  return page
}

void t.test('the login form: a JWT is checked by the server, a viewer gets disabled controls, an admin pauses', async (t) => {
  const key = new TextEncoder().encode(SECRET)
  const sign = async (sub: string, role: string, secret = key): Promise<string> =>
    await new SignJWT({ role }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(secret)
  const g = await startTestGateway({
    groups: { demo: { need: 2 } },
    info: { version: 'test', wsPort: 0, topicPrefix: 'rg', auth: true },
    authorize: async (req) => {
      if (req.who === 'anyone') return
      const m = /^Bearer (.+)$/.exec(req.authorization)
      if (m === null) throw new RgError('unauthorized', 'a Bearer token is required')
      let role: unknown
      try {
        role = (await jwtVerify(m[1], key)).payload.role
      } catch (err) {
        throw new RgError('unauthorized', `bad token: ${(err as Error).message}`)
      }
      if (req.who === 'admin' && role !== 'admin') throw new RgError('forbidden', 'admins only')
    }
  })
  t.teardown(async () => await g.close())

  const { page } = await browser.page()
  await page.goto(`${g.base}/`)
  await page.waitForSelector('#login-jwt')
  t.notOk(await page.locator('#auth-note').count(), 'nothing but the login form before logging in')
  await page.fill('#login-token', await sign('mallory', 'admin', new TextEncoder().encode('another secret, not the server\'s')))
  await page.click('#login-jwt button[type="submit"]')
  await page.waitForFunction(() => /unauthorized/.test(document.querySelector('#login-error')?.textContent ?? ''), undefined, { timeout: 5000 })
  t.pass(`a token the server refuses stays on the form: ${await page.locator('#login-error').innerText()}`)

  await page.fill('#login-token', await sign('viewer-1', 'viewer'))
  await page.click('#login-jwt button[type="submit"]')
  await page.waitForSelector('#auth-note')
  t.match(await page.locator('#auth-note').innerText(), /viewer: controls are disabled/)
  t.match(await page.locator('#who').innerText(), /viewer-1 \(viewer\)/)
  await page.waitForSelector('#groups tr[data-group="demo"]', { timeout: 5000 })
  t.pass('groups listed over HTTP with the Bearer token (no WebSocket port: polled)')
  await page.click('#groups tr[data-group="demo"] a')
  await page.waitForSelector('#controls')
  for (const op of ['pause', 'resume', 'abort', 'release']) {
    t.ok(await page.locator(`#controls button[data-op="${op}"]`).isDisabled(), `${op} is disabled for a viewer`)
  }
  t.ok(await page.locator('#cfg-need').isDisabled(), 'the configuration cannot be edited by a viewer')
  await snap(page, 'login-viewer')

  await page.reload() // the token is kept in memory only: a reload asks again
  await page.waitForSelector('#login-jwt')
  await page.fill('#login-token', await sign('admin-1', 'admin'))
  await page.click('#login-jwt button[type="submit"]')
  await page.waitForSelector('#controls button[data-op="pause"]:not([disabled])', { timeout: 5000 })
  await page.click('#controls button[data-op="pause"]')
  await waitFor(async () => (await g.engine.getGroup('demo')).config.paused, 3000, 'the group to be paused')
  t.pass('an admin paused the group from the page')
  // the engine pauses before the HTTP answer reaches the page: wait for the page to say so
  await page.waitForSelector('#ctl-status:has-text("pause: ok")', { timeout: 5000 })
  t.match(await page.locator('#ctl-status').innerText(), /pause: ok/)
  await page.close()
})

void t.test('a viewer logged in with a JWT sees the groups live and every control disabled', async (t) => {
  const r = await startAuthed(t, ['--jwt-secret', SECRET])
  const info = await (await fetch(`${r.base}/v1/info`)).json() as { auth: boolean }
  t.equal(info.auth, true, '/v1/info says authentication is on')
  const page = await loginWithToken(r.base, token('viewer-1', 'viewer'))
  t.match(await page.locator('#auth-note').innerText(), /viewer/, 'the page says: a viewer')
  t.match(await page.locator('#who').innerText(), /viewer-1 \(viewer\)/)
  await page.waitForSelector('#groups tr[data-group="demo"]', { timeout: 5000 })
  t.pass('the group shows (MQTT over WebSocket with the JWT as password, HTTP with Bearer)')
  await page.click('#groups tr[data-group="demo"] a')
  await page.waitForSelector('#controls')
  for (const op of ['pause', 'resume', 'abort', 'release']) {
    t.ok(await page.locator(`#controls button[data-op="${op}"]`).isDisabled(), `${op} is disabled for a viewer`)
  }
  t.ok(await page.locator('#cfg-need').isDisabled(), 'the configuration cannot be edited')
  t.ok(await page.locator('#config-form button[type="submit"]').isDisabled(), 'nor saved')
  await snap(page, 'viewer')
  await page.close()
})

void t.test('an admin logged in with a JWT pauses the group from the page, and the broker has it paused', async (t) => {
  const r = await startAuthed(t, ['--jwt-secret', SECRET])
  const admin = token('admin-1', 'admin')
  const page = await loginWithToken(r.base, admin)
  t.match(await page.locator('#auth-note').innerText(), /admin/)
  await page.waitForSelector('#groups tr[data-group="demo"]', { timeout: 5000 })
  await page.click('#groups tr[data-group="demo"] a')
  await page.waitForSelector('#controls button[data-op="pause"]:not([disabled])', { timeout: 5000 })
  await page.click('#controls button[data-op="pause"]')
  const paused = async (): Promise<boolean> => {
    const res = await fetch(`${r.base}/v1/groups/demo`, { headers: { authorization: `Bearer ${admin}` } })
    const g = await res.json() as { config: { paused?: boolean } }
    return g.config.paused === true
  }
  await waitFor(paused, 3000, 'the broker to pause demo')
  t.pass('paused in the broker')
  await page.waitForFunction(() => document.querySelector('#group-state [data-field="paused"]')?.textContent === 'yes', undefined, { timeout: 2000 })
  t.pass('and on the page')
  await page.close()
})

void t.test('username and password: MQTT with them, HTTP with the token of POST /v1/login', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-dash-passwd-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'passwd')
  tool(['passwd', file, 'ops', '--role', 'admin'], 'correct horse battery staple\n')
  const r = await startAuthed(t, ['--passwd-file', file])
  const { page } = await browser.page()
  await page.goto(`${r.base}/`)
  await page.fill('#login-user', 'ops')
  await page.fill('#login-pass', 'wrong password')
  await page.click('#login-password button[type="submit"]')
  await page.waitForFunction(() => (document.querySelector('#login-error')?.textContent ?? '') !== '', undefined, { timeout: 5000 })
  t.match(await page.locator('#login-error').innerText(), /unauthorized/, 'a wrong password is refused by the server')
  await page.fill('#login-pass', 'correct horse battery staple')
  await page.click('#login-password button[type="submit"]')
  await page.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 })
  t.match(await page.locator('#auth-note').innerText(), /admin/, 'the role from /v1/login')
  await page.waitForSelector('#groups tr[data-group="demo"]', { timeout: 5000 })
  t.pass('groups live over MQTT with the username and password')
  await page.close()
})
