// MQTT over TLS and over secure WebSocket (wss) from certificate files, and the certificate read
// again on SIGHUP (server.reload) without dropping the connections already open.
import { execFile } from 'node:child_process'
import { copyFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import t from 'tap'
import { connect, freePort, Inbox, startBroker } from './helpers/broker.js'

async function run (cmd: string, args: string[]): Promise<{ ok: boolean, missing: boolean }> {
  return await new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20000 }, (err) => resolve({ ok: err === null, missing: (err as NodeJS.ErrnoException | null)?.code === 'ENOENT' }))
  })
}
const skip = (await run('openssl', ['version'])).missing ? 'openssl is not installed' : false

async function peerName (port: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject.CN
      s.end()
      resolve(Array.isArray(cn) ? cn.join(',') : cn ?? '')
    })
    s.once('error', reject)
  })
}

void t.test('TLS and wss listeners; the certificate reloaded in place', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-tlsr-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const make = async (name: string): Promise<void> => {
    const ok = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-days', '1',
      '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`)])
    t.ok(ok.ok, `certificate ${name}`)
  }
  await make('first')
  await make('second')
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  await copyFile(join(dir, 'first.pem'), cert)
  await copyFile(join(dir, 'first.key'), key)

  const b = await startBroker({ tlsCert: cert, tlsKey: key, tlsPort: await freePort(), wssPort: await freePort() })
  t.teardown(b.close)
  t.equal(await peerName(b.server.ports.tls), 'first', 'MQTT over TLS serves the first certificate')
  t.equal(await peerName(b.server.ports.wss), 'first', 'wss serves it too')

  const overTls = await connect(`mqtts://127.0.0.1:${b.server.ports.tls}`, 'tls-old', { rejectUnauthorized: false })
  t.teardown(() => { overTls.end(true) })
  const overWss = await connect(`wss://127.0.0.1:${b.server.ports.wss}`, 'wss-1', { rejectUnauthorized: false })
  t.teardown(() => { overWss.end(true) })
  const inbox = new Inbox(overWss)
  await overWss.subscribeAsync('sec/#', { qos: 1 })
  await overTls.publishAsync('sec/x', 'over tls', { qos: 1 })
  t.equal((await inbox.next('sec/x')).raw.toString(), 'over tls', 'TLS to wss')

  await copyFile(join(dir, 'second.pem'), cert)
  await copyFile(join(dir, 'second.key'), key)
  await b.server.reload()
  t.equal(await peerName(b.server.ports.tls), 'second', 'after the reload new TLS connections get the second certificate')
  t.equal(await peerName(b.server.ports.wss), 'second', 'and new wss connections')
  t.ok(overTls.connected && overWss.connected, 'the connections already open stayed')
  await overTls.publishAsync('sec/y', 'still here', { qos: 1 })
  t.equal((await inbox.next('sec/y')).raw.toString(), 'still here')

  await rm(key)
  await b.server.reload()
  t.equal(await peerName(b.server.ports.tls), 'second', 'a reload that cannot read the key keeps the certificate in force')
})
