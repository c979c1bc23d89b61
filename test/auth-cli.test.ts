// The auth tools and flags as an operator uses them: `roundgate passwd` (password on stdin),
// `roundgate token`, `roundgate start --passwd-file/--jwt-secret` serving a terminal that holds a
// token from the CLI and refusing everything else, SIGHUP reloading the credentials file, and
// `--host 0.0.0.0` without authentication refusing to start with one line naming --insecure.
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { freePort, Inbox, send, waitFor, within } from './helpers/broker.js'
import { connackCode, login } from './helpers/auth.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'bin', 'roundgate.js')
const SECRET = 'cli-secret-0123456789-0123456789-0123456789'

function env (): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ROUNDGATE_')) out[k] = v
  return out
}

interface Run { code: number | null, stdout: string, stderr: string }

async function cli (args: string[], stdin?: string): Promise<Run> {
  return await new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: env(), stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    child.once('exit', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin ?? '')
  })
}

const dir = await mkdtemp(join(tmpdir(), 'rg-authcli-'))
t.teardown(async () => await rm(dir, { recursive: true, force: true }))
const pwFile = join(dir, 'passwd')

void t.test('--host 0.0.0.0 without authentication refuses to start: one line naming --insecure', async (t) => {
  const r = await cli(['start', '--host', '0.0.0.0', '--data-dir', ''])
  t.equal(r.code, 2, 'exit status 2, like any configuration error')
  const lines = r.stderr.trim().split('\n')
  t.equal(lines.length, 1, 'one line')
  t.match(lines[0], /--insecure/)
  const other = await cli(['start', '--host', '192.0.2.1', '--data-dir', ''])
  t.equal(other.code, 2, 'any non-loopback address')
})

void t.test('roundgate passwd: the password from stdin, lines checked, bad input refused', async (t) => {
  const r = await cli(['passwd', pwFile, 'op', '--role', 'admin'], 'op-password-1\n')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /added op \(admin\)/)
  const r2 = await cli(['passwd', pwFile, 'dev1', '--role', 'terminal', '--clients', 'dev1,dev1-*', '--groups', 'render*', '--cost', '10'], 'dev1-password\n')
  t.equal(r2.code, 0, r2.stderr)
  const text = await readFile(pwFile, 'utf8')
  t.match(text, /^dev1 terminal dev1,dev1-\* render\* \$scrypt\$ln=10,r=8,p=1\$\S+\$\S+$/m, 'one line: user role clients groups hash')
  t.notMatch(text, /dev1-password/, 'the password is not in the file')
  t.equal((await cli(['passwd', pwFile, 'x', '--role', 'root'], 'password-x\n')).code, 2, 'an unknown role: 2')
  t.equal((await cli(['passwd', pwFile, 'a/b', '--role', 'viewer'], 'password-x\n')).code, 2, 'a user name with /: 2')
  t.equal((await cli(['passwd', pwFile, 'short', '--role', 'viewer'], 'abc\n')).code, 2, 'a short password: 2')
  const broken = join(dir, 'broken')
  await writeFile(broken, 'ok-user viewer - * $scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\nroot\n')
  const b = await cli(['passwd', broken, 'new', '--role', 'viewer'], 'password-new\n')
  t.equal(b.code, 2, 'a malformed file is not rewritten')
  t.match(b.stderr, /line 2/, 'the error names the line')
  const s = await cli(['start', '--passwd-file', broken, '--mqtt-port', '0', '--http-port', '0', '--ws-port', '0', '--data-dir', ''])
  t.equal(s.code, 2, 'the broker refuses a malformed credentials file')
  t.match(s.stderr, /line 2/)
})

void t.test('a broker with --passwd-file and --jwt-secret serves a terminal holding a CLI token, refuses the rest', async (t) => {
  const tok = await cli(['token', '--secret', SECRET, '--sub', 'term1', '--role', 'terminal', '--groups', 'render*', '--ttl', '10m'])
  t.equal(tok.code, 0, tok.stderr)
  const token = tok.stdout.trim()
  t.equal((await cli(['token', '--sub', 'x', '--role', 'terminal'])).code, 2, 'token without a key: 2')
  t.equal((await cli(['token', '--secret', 'short', '--sub', 'x', '--role', 'terminal'])).code, 2, 'a short secret: 2')

  const port = await freePort()
  const cfg = join(dir, 'cfg.json')
  await writeFile(cfg, JSON.stringify({ groups: { render: { need: 1 } } }))
  const child = spawn(process.execPath, [BIN, 'start', '--passwd-file', pwFile, '--jwt-secret', SECRET, '--mqtt-port', String(port),
    '--http-port', '0', '--ws-port', '0', '--data-dir', '', '--config', cfg], { cwd: ROOT, env: env(), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  await waitFor(() => out.includes('roundgate ready'), 15000, 'ready')
  const url = `mqtt://127.0.0.1:${port}`

  t.equal(await connackCode(url, 'term1'), 5, 'no credentials: refused')
  t.equal(await connackCode(url, 'term2', { username: 'term1', password: token }), 5, 'the token for another clientId: refused')
  t.equal(await connackCode(url, 'op', { username: 'op', password: 'not-it' }), 4, 'a wrong password: refused')
  const c = await login(url, 'term1', 'term1', token)
  t.teardown(() => { c.end(true) })
  const inbox = new Inbox(c)
  await c.subscribeAsync(['rg/render/release', 'rg/render/error/term1'], { qos: 1 })
  await send(c, 'rg/render/ready/term1', {})
  t.equal((await inbox.next('rg/render/release')).json.round, 1, 'the token holder is released')
  t.equal(await connackCode(url, 'op-1', { username: 'op', password: 'op-password-1' }), 0, 'the admin of the credentials file connects')

  // SIGHUP: a user added to the file can connect, nobody was dropped
  t.equal(await connackCode(url, 'late', { username: 'late', password: 'late-password' }), 4)
  t.equal((await cli(['passwd', pwFile, 'late', '--role', 'terminal', '--cost', '10'], 'late-password\n')).code, 0)
  child.kill('SIGHUP')
  await waitFor(() => out.includes('credentials file reloaded'), 5000, 'reloaded')
  t.equal(await connackCode(url, 'late', { username: 'late', password: 'late-password' }), 0, 'after SIGHUP the new user connects')
  t.ok(c.connected, 'the token session stayed')
  await send(c, 'rg/render/done/term1', { round: 1 }) // SIGTERM waits for an executing round to end
  child.kill('SIGTERM')
  t.equal(await within(exited, 15000, 'exit'), 0)
})

void t.test('--insecure starts with a warning at every start', async (t) => {
  const port = await freePort()
  const child = spawn(process.execPath, [BIN, 'start', '--insecure', '--mqtt-port', String(port), '--http-port', '0', '--ws-port', '0', '--data-dir', ''],
    { cwd: ROOT, env: env(), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  await waitFor(() => out.includes('roundgate ready'), 15000, 'ready')
  const warn = out.split('\n').filter((l) => l.includes('"level":40') && l.includes('--insecure'))
  t.equal(warn.length, 1, 'one warning naming --insecure')
  child.kill('SIGTERM')
  t.equal(await within(exited, 15000, 'exit'), 0)
})
