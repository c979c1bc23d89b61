// Disk faults under the embedded store, on real file systems (root: CI and the development machine
// run as root; elsewhere the test says why it skips):
//  - a full disk: the data directory on a 4 MiB tmpfs (`mount -t tmpfs -o size=4m`), filled up;
//  - a read-only file: `chattr +i` on the database and its write-ahead log while the broker runs
//    (the kernel then refuses every write to them, EPERM, even on descriptors already open).
// Either way a transition is refused `unavailable` (HTTP 503, MQTT error topic) and changes
// nothing — not in the file, not in memory, no release goes out — while reads and heartbeats of
// known terminals keep working and /readyz answers 503; the fault and its end are logged once
// each; once the disk takes writes again everything goes on, and a restart finds exactly that.
import { execFileSync } from 'node:child_process'
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { DEFAULT_SETTINGS, type Settings } from '../broker/settings.js'
import { startServer, type RunningServer } from '../broker/server.js'
import { connect, Inbox, send } from './helpers/broker.js'
import { get, post } from './helpers/http.js'
import { silent } from './helpers/rounds.js'
import { freePort } from './helpers/wait.js'

const root = process.getuid?.() === 0

/** A broker on `dataDir` with HTTP and MQTT, its log lines kept. */
async function broker (t: Test, dataDir: string): Promise<{ server: RunningServer, base: string, mqtt: string, lines: Array<Record<string, unknown>> }> {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    }
  })
  const settings: Settings = {
    ...DEFAULT_SETTINGS,
    dataDir,
    httpPort: await freePort(),
    mqttPort: await freePort(),
    wsPort: 0,
    logLevel: 'info',
    groups: { g: { need: 2, minOnlineRatio: 1, resetMs: 0, offlineAfterMs: 600000 } }
  }
  const server = await startServer(settings, pino({ level: 'info' }, sink))
  let closed = false
  t.teardown(async () => { if (!closed) await server.close() })
  const close = server.close
  server.close = async () => { closed = true; await close() }
  return { server, base: `http://127.0.0.1:${server.ports.http}`, mqtt: `mqtt://127.0.0.1:${server.ports.mqtt}`, lines }
}

/** What a reader sees of group g. */
async function seen (base: string): Promise<unknown> {
  const g = (await get(base, '/v1/groups/g')).json
  const terms = ((await get(base, '/v1/groups/g/terminals')).json as Array<Record<string, unknown>>)
    .map((x): Record<string, unknown> => ({ ...x, lastSeen: 0 })).sort((a, b) => String(a.clientId).localeCompare(String(b.clientId)))
  return { config: g.config, state: { ...g.state, updatedAt: 0 }, terms, rounds: (await get(base, '/v1/groups/g/rounds')).json }
}

/**
 * The common script: a, b, c online, a ready; then `fault()` breaks the disk; every refusal is
 * checked; `repair()` mends it; the round goes on; a restart finds the same.
 */
async function underFault (t: Test, dataDir: string, fault: () => void, repair: () => void): Promise<void> {
  const { server, base, mqtt, lines } = await broker(t, dataDir)
  for (const id of ['a', 'b', 'c']) t.equal((await post(base, '/v1/groups/g/heartbeat', { clientId: id })).status, 200)
  t.equal((await post(base, '/v1/groups/g/ready', { clientId: 'a' })).status, 200)
  const m = await connect(mqtt, 'c')
  const inbox = new Inbox(m)
  await m.subscribeAsync(['rg/g/error/c', 'rg/g/release'], { qos: 1 })
  t.teardown(() => { m.end(true) })
  const before = await seen(base)

  fault()
  const refused = await post(base, '/v1/groups/g/ready', { clientId: 'b' })
  t.equal(refused.status, 503, 'a ready that would release round 1 is refused')
  t.equal(refused.json?.error?.code, 'unavailable')
  t.strictSame(await seen(base), before, 'and changed nothing: no round, b not ready')
  const poll = await get(base, '/v1/groups/g/release?clientId=a&wait=0.3')
  t.equal(poll.status, 204, 'no release went out')
  await send(m, 'rg/g/ready/c', {})
  const err = await inbox.next('rg/g/error/c')
  t.equal(err.json.code, 'unavailable', 'over MQTT the refusal comes on the error topic')
  t.ok(await silent(inbox, 'rg/g/release', 300), 'and no release reaches anyone')
  t.equal((await post(base, '/v1/groups/g/heartbeat', { clientId: 'a' })).status, 200, 'heartbeats of known terminals go on')
  t.equal((await post(base, '/v1/groups/g/heartbeat', { clientId: 'newcomer' })).status, 503, 'a new terminal would be a write: refused')
  t.equal((await get(base, '/v1/groups/g/rounds')).status, 200, 'reads go on')
  t.equal((await get(base, '/readyz')).status, 503, '/readyz says the store cannot write')
  t.equal((await get(base, '/healthz')).status, 200, '/healthz: the process is alive')
  t.strictSame(await seen(base), before, 'still nothing changed')
  const faults = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('the database refuses writes'))
  t.equal(faults.length, 1, 'the fault is logged once')
  t.match(faults[0], { level: 50, module: 'store' })
  t.comment(`the fault as logged: ${String(faults[0].code)} ${String(faults[0].err)}`)

  repair()
  t.equal((await get(base, '/readyz')).status, 200, '/readyz: writes work again')
  t.equal(lines.filter((l) => l.msg === 'the database takes writes again').length, 1, 'the recovery is logged once')
  const ok = await post(base, '/v1/groups/g/ready', { clientId: 'b' })
  t.strictSame([ok.status, ok.json], [200, { phase: 'EXECUTING', round: 1 }], 'the same ready now releases round 1')
  const rel = await get(base, '/v1/groups/g/release?clientId=a&wait=1')
  t.equal(rel.json?.round, 1, 'a receives it')
  t.equal((await post(base, '/v1/groups/g/done', { clientId: 'a', round: 1 })).status, 200)
  const after = await seen(base)
  m.end(true)
  await server.close()

  const again = await broker(t, dataDir)
  t.strictSame(await seen(again.base), after, 'a restart finds exactly what was acknowledged')
  await again.server.close()
}

void t.test('a full disk refuses transitions and changes nothing; the broker serves reads and heartbeats', { skip: root ? false : 'needs root to mount a small tmpfs' }, async (t) => {
  const mnt = await mkdtemp(join(tmpdir(), 'rg-full-'))
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt])
  t.teardown(async () => {
    execFileSync('umount', ['-l', mnt])
    await rm(mnt, { recursive: true, force: true })
  })
  const filler = join(mnt, 'filler')
  await underFault(t, join(mnt, 'data'), () => {
    const fd = openSync(filler, 'w')
    const chunk = Buffer.alloc(64 * 1024, 1)
    try {
      for (;;) writeSync(fd, chunk)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
    } finally {
      closeSync(fd)
    }
    // the last bytes too
    try { for (;;) execFileSync('sh', ['-c', `printf x >> ${filler}`], { stdio: 'ignore' }) } catch { /* full */ }
  }, () => unlinkSync(filler))
})

void t.test('a read-only database file refuses transitions and changes nothing; chattr -i ends it', { skip: root ? false : 'needs root for chattr +i' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-ro-'))
  const data = join(dir, 'data')
  const files = [join(data, 'roundgate.db'), join(data, 'roundgate.db-wal')]
  const attr = (flag: string): void => { for (const f of files) execFileSync('chattr', [flag, f]) }
  t.teardown(async () => {
    try { attr('-i') } catch { /* not set */ }
    await rm(dir, { recursive: true, force: true })
  })
  await underFault(t, data, () => attr('+i'), () => attr('-i'))
})
