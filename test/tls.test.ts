// MQTT over TLS with a self-signed certificate made by openssl for the test.
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { connect, freePort, Inbox, startBroker } from './helpers/broker.js'


async function run (cmd: string, args: string[]): Promise<{ ok: boolean, missing: boolean, stderr: string }> {
  return await new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20000 }, (err, _stdout, stderr) => {
      const code = (err as NodeJS.ErrnoException | null)?.code
      resolve({ ok: err === null, missing: code === 'ENOENT', stderr })
    })
  })
}

const probe = await run('openssl', ['version'])
const skip = probe.missing ? 'openssl is not installed: cannot make a test certificate' : false

void t.test('MQTT over TLS (mqtts://) with a self-signed certificate', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-tls-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  const gen = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert])
  t.ok(gen.ok, 'openssl made a certificate', { stderr: gen.ok ? '' : gen.stderr })

  const b = await startBroker({ tlsCert: cert, tlsKey: key, tlsPort: await freePort() })
  t.teardown(async () => await b.close())
  t.ok(b.server.ports.tls > 0, 'the TLS listener is up')
  const url = `mqtts://127.0.0.1:${b.server.ports.tls}`

  const sub = await connect(url, 'tls-sub', { rejectUnauthorized: false })
  t.teardown(async () => { await sub.endAsync(true) })
  const pub = await connect(url, 'tls-pub', { rejectUnauthorized: false })
  t.teardown(async () => { await pub.endAsync(true) })
  const tcp = await connect(b.url, 'tls-tcp-peer')
  t.teardown(async () => { await tcp.endAsync(true) })

  const inbox = new Inbox(sub)
  const tcpInbox = new Inbox(tcp)
  await sub.subscribeAsync('tls/#', { qos: 2 })
  await tcp.subscribeAsync('tls/#', { qos: 1 })
  for (const qos of [0, 1, 2] as const) {
    await pub.publishAsync(`tls/q${qos}`, `secret ${qos}`, { qos })
    const m = await inbox.next(`tls/q${qos}`)
    t.equal(m.raw.toString(), `secret ${qos}`)
    t.equal(m.qos, qos, `TLS to TLS at QoS ${qos}`)
    t.equal((await tcpInbox.next(`tls/q${qos}`)).raw.toString(), `secret ${qos}`, 'TLS to TCP')
  }

  // Without rejectUnauthorized: false the self-signed certificate is refused: TLS is really on.
  const refused = await connect(url, 'tls-strict')
    .then(async (c) => { await c.endAsync(true); return null }, (err: Error) => err)
  t.ok(refused !== null, `a verifying client refuses the self-signed certificate (${refused?.message})`)
})
