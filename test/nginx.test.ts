// HTTPS in front of the gateway (docs/security.md): Debian's nginx runs the shipped configuration
// (systemd/roundgate-nginx.conf, ports and certificate paths replaced) with a self-signed
// certificate made here by openssl; a long-poll waits through it and is released through it,
// a Bearer token passes through, and the gateway sees the client's address from X-Forwarded-For.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { freePort, startBroker, waitFor } from './helpers/broker.js'
import { SECRET } from './helpers/auth.js'
import { secretKey, signToken } from '../plugins/auth/index.js'

async function run (cmd: string, args: string[]): Promise<{ ok: boolean, missing: boolean, out: string }> {
  return await new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20000 }, (err, stdout, stderr) => {
      const code = (err as NodeJS.ErrnoException | null)?.code
      resolve({ ok: err === null, missing: code === 'ENOENT', out: stdout + stderr })
    })
  })
}

const nginxBin = ['/usr/sbin/nginx', 'nginx']
let nginx: string | null = null
for (const n of nginxBin) if ((await run(n, ['-v'])).ok) { nginx = n; break }
const skip = nginx === null ? 'nginx is not installed (test/run.sh installs it as root)' : false

interface Answer { status: number, body: string, headers: Record<string, string | string[] | undefined> }

async function https (port: number, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, rejectUnauthorized: false, headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

void t.test('a long-poll through nginx terminating TLS', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-nginx-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  const gen = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert])
  t.ok(gen.ok, 'openssl made a certificate', { out: gen.ok ? '' : gen.out })

  const b = await startBroker({ httpPort: await freePort(), wsPort: await freePort(), jwtSecret: SECRET, trustedProxies: ['127.0.0.1'], groups: { front: { need: 1 } } })
  t.teardown(b.close)
  const httpsPort = await freePort()
  const shipped = await readFile(new URL('../../systemd/roundgate-nginx.conf', import.meta.url), 'utf8')
  const site = shipped
    .replace('listen 443 ssl;', `listen 127.0.0.1:${httpsPort} ssl;`)
    .replace('listen [::]:443 ssl;', '')
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${b.server.ports.http};`)
    .replace('server 127.0.0.1:8083;', `server 127.0.0.1:${b.server.ports.ws};`)
    .replace('/etc/roundgate/tls/cert.pem', cert)
    .replace('/etc/roundgate/tls/key.pem', key)
  t.not(site, shipped, 'the shipped configuration, with this test\'s ports and certificate')
  const readTimeout = /location \/ \{[^}]*proxy_read_timeout (\d+)s;/.exec(shipped)
  t.ok(readTimeout !== null && Number(readTimeout[1]) > 120, 'the read timeout outlasts the longest long-poll (120 s)')
  await writeFile(join(dir, 'site.conf'), site)
  await writeFile(join(dir, 'nginx.conf'), [
    'worker_processes 1;', `pid ${join(dir, 'nginx.pid')};`, `error_log ${join(dir, 'error.log')} warn;`, 'daemon off;',
    'events { worker_connections 256; }',
    'http {',
    `  access_log off; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;`,
    `  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
    `  include ${join(dir, 'site.conf')};`,
    '}'
  ].join('\n'))
  const check = await run(nginx ?? 'nginx', ['-t', '-p', dir, '-c', join(dir, 'nginx.conf')])
  t.ok(check.ok, 'nginx -t accepts the configuration', { out: check.out })
  const proc: ChildProcess = spawn(nginx ?? 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' })
  t.teardown(() => { proc.kill('SIGQUIT') })
  await waitFor(async () => await https(httpsPort, 'GET', '/healthz').then((r) => r.status === 200, () => false), 10000, 'nginx up')

  const tok = await signToken(secretKey(SECRET), { sub: 'fx', role: 'terminal', ttlS: 300 })
  const auth = { authorization: `Bearer ${tok}` }
  t.equal((await https(httpsPort, 'POST', '/v1/groups/front/heartbeat', JSON.stringify({ clientId: 'fx' }))).status, 401, 'no token through the proxy: 401')

  const waited = Date.now()
  const empty = await https(httpsPort, 'GET', '/v1/groups/front/release?clientId=fx&after=0&wait=2', undefined, auth)
  t.equal(empty.status, 204, 'a poll with nothing to release waits its 2 s and answers 204 through nginx')
  t.ok(Date.now() - waited >= 1900, 'it really waited')
  t.equal(empty.headers['x-round'], '0')

  const poll = https(httpsPort, 'GET', '/v1/groups/front/release?clientId=fx&after=0&wait=60', undefined, auth)
  await waitFor(() => b.server.gateway?.waiters() === 1, 5000, 'the poll parked')
  const ready = await https(httpsPort, 'POST', '/v1/groups/front/ready', JSON.stringify({ clientId: 'fx' }), auth)
  t.equal(ready.status, 200, 'ready through nginx')
  const rel = await poll
  t.equal(rel.status, 200, 'the parked poll is released through nginx')
  t.equal(JSON.parse(rel.body).round, 1)
  t.equal(await readFile(join(dir, 'error.log'), 'utf8').then((s) => s.includes('[error]') ? s : ''), '', 'nginx logged no error')
})
