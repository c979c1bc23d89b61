// systemd/: `systemd-analyze verify` finds nothing to say about the unit, alone (the single binary)
// or with the node.conf drop-in (Node.js and an npm install). verify insists that ExecStart's
// program exists, and this machine has no /usr/local/bin/roundgate: the copy verified here names
// an executable file in a temporary folder instead, and the node of this test where the drop-in
// says /usr/bin/node if that is elsewhere. Everything else is verified as shipped. docs/deploy.md
// holds the unit word for word, and its sed recipe for a cluster's template unit verifies clean.
import { spawnSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ROOT } from './helpers/clients.js'

const ANALYZE = '/usr/bin/systemd-analyze'

const dir = await mkdtemp(join(tmpdir(), 'rg-systemd-'))
t.teardown(async () => await rm(dir, { recursive: true, force: true }))
const stand = join(dir, 'roundgate')
await writeFile(stand, '#!/bin/sh\nexit 0\n')
await chmod(stand, 0o755)

const unit = await readFile(join(ROOT, 'systemd', 'roundgate.service'), 'utf8')
const dropIn = await readFile(join(ROOT, 'systemd', 'node.conf'), 'utf8')

/** The unit with the executable stand-in where ExecStart names /usr/local/bin/roundgate. */
function withStandIn (text: string): string {
  return text.replace(/^ExecStart=\/usr\/local\/bin\/roundgate /m, `ExecStart=${stand} `)
}

/** verify `text` as roundgate.service (with `dropIns` in roundgate.service.d/): everything it says. */
async function verify (name: string, text: string, dropIns: Record<string, string> = {}): Promise<{ status: number | null, said: string }> {
  const where = join(dir, name)
  await mkdir(join(where, 'roundgate.service.d'), { recursive: true })
  await writeFile(join(where, 'roundgate.service'), text)
  for (const [file, body] of Object.entries(dropIns)) await writeFile(join(where, 'roundgate.service.d', file), body)
  const res = spawnSync(ANALYZE, ['verify', '--man=no', join(where, 'roundgate.service')], { encoding: 'utf8', cwd: where })
  return { status: res.status, said: `${res.stdout}${res.stderr}`.trim() }
}

void t.test('the unit runs the binary as shipped at /usr/local/bin/roundgate, as Type=exec', async (t) => {
  t.match(unit, /^ExecStart=\/usr\/local\/bin\/roundgate start$/m)
  t.match(unit, /^Type=exec$/m, 'exec: no sd_notify without a native build')
  t.match(dropIn, /^ExecStart=$\n^ExecStart=\/usr\/bin\/node \/opt\/roundgate\/bin\/roundgate\.js start$/m, 'the drop-in clears ExecStart, then runs node')
  const grace = /^TimeoutStopSec=(\d+)$/m.exec(unit)
  t.ok(grace !== null && Number(grace[1]) * 1000 > 30000, 'TimeoutStopSec is above the default stopGraceMs (30 s)')
})

void t.test('systemd-analyze verify: not a word about the unit (binary)', async (t) => {
  const res = await verify('binary', withStandIn(unit))
  t.equal(res.said, '', 'no complaint')
  t.equal(res.status, 0)
})

void t.test('systemd-analyze verify: not a word about the unit with the node drop-in', async (t) => {
  const res = await verify('node', withStandIn(unit), { 'node.conf': dropIn.replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `) })
  t.equal(res.said, '', 'no complaint')
  t.equal(res.status, 0)
})

void t.test('the check can fail: a misspelt key and a missing program are reported', async (t) => {
  const res = await verify('bad', withStandIn(unit).replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes'),
    { 'node.conf': '[Service]\nExecStart=\nExecStart=/nonexistent/node start\n' })
  t.match(res.said, /NoNewPrivilege/, 'the misspelt key')
  t.match(res.said, /\/nonexistent\/node/, 'the program that is not there')
  t.not(res.status, 0)
})

void t.test('docs/deploy.md carries the unit as shipped, and its cluster template verifies clean too', async (t) => {
  const doc = await readFile(join(ROOT, 'docs', 'deploy.md'), 'utf8')
  const block = /```ini\n([\s\S]*?)```/.exec(doc)?.[1]
  t.equal(block, unit, 'the page holds systemd/roundgate.service word for word (it can be followed with nothing but the binary)')

  // the page's sed command, run as written, on the stand-in unit
  const sed = /sed -e [\s\S]*?\/etc\/systemd\/system\/roundgate\.service > \/etc\/systemd\/system\/roundgate@\.service/.exec(doc)?.[0]
  t.ok(sed !== undefined, 'the page makes roundgate@.service with sed')
  const where = join(dir, 'template')
  await mkdir(where, { recursive: true })
  await writeFile(join(where, 'roundgate.service'), withStandIn(unit))
  const script = (sed ?? '').replace('/etc/systemd/system/roundgate.service', join(where, 'roundgate.service'))
    .replace('/etc/systemd/system/roundgate@.service', join(where, 'roundgate@.service'))
  const made = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8' })
  t.equal(made.status, 0, 'the sed command runs', { stderr: made.stderr })
  const template = await readFile(join(where, 'roundgate@.service'), 'utf8')
  t.match(template, /^EnvironmentFile=\/etc\/default\/roundgate-%i$/m)
  t.match(template, /^Environment=ROUNDGATE_DATA_DIR=\/var\/lib\/roundgate-%i$/m)
  const res = spawnSync(ANALYZE, ['verify', '--man=no', join(where, 'roundgate@1.service')], { encoding: 'utf8', cwd: where })
  t.equal(`${res.stdout}${res.stderr}`.trim(), '', 'roundgate@1.service: no complaint')
})
