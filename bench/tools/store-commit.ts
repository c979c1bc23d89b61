// The embedded store's cost per transition, in one process with no network: the same operations
// on the pure in-memory store (`--data-dir ""`), on SQLite with synchronous=NORMAL and with FULL
// (docs/storage.md says which roundgate uses and why).
//   node dist/bench/tools/store-commit.js [--n 10000] [--dir /var/tmp]
// For each store: heartbeats of known terminals (no write), N readies (one commit each), the
// deciding ready that releases all N (one transaction: the release and its N participants), and
// N done reports. Prints microseconds per operation and the deciding ready in milliseconds.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { DEFAULT_GROUP_CONFIG, MemoryStore, mergeConfig } from '../../plugins/scheduler/index.js'

const { values } = parseArgs({ options: { n: { type: 'string', default: '10000' }, dir: { type: 'string', default: tmpdir() } } })
const N = Number(values.n)

function ms (t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6
}

async function measure (label: string, dataDir: string | null, durability: 'normal' | 'full'): Promise<string[]> {
  const store = new MemoryStore({ dataDir, durability, maxTerminalsPerGroup: N + 10 })
  await store.open()
  const cfg = mergeConfig(DEFAULT_GROUP_CONFIG, { need: N, minOnlineRatio: 1, offlineAfterMs: 3600000, execTimeoutMs: 3600000, resetMs: 0 })
  await store.putGroup('g', cfg)
  const ids = Array.from({ length: N }, (_, i) => `t${i}`)
  for (const id of ids) await store.heartbeat('g', id, {})
  let t0 = process.hrtime.bigint()
  for (const id of ids) await store.heartbeat('g', id, { load: 0.5 })
  const hb = ms(t0) * 1000 / N
  t0 = process.hrtime.bigint()
  for (let i = 0; i < N - 1; i++) await store.ready('g', ids[i], {})
  const ready = ms(t0) * 1000 / (N - 1)
  t0 = process.hrtime.bigint()
  const res = await store.ready('g', ids[N - 1], {})
  const deciding = ms(t0)
  if (res.state.phase !== 'EXECUTING') throw new Error(`${label}: no release (${res.state.phase})`)
  t0 = process.hrtime.bigint()
  for (const id of ids) await store.done('g', id, { round: 1, result: { ok: 1 } })
  const done = ms(t0) * 1000 / N
  await store.close()
  return [label, hb.toFixed(1), ready.toFixed(1), deciding.toFixed(1), done.toFixed(1)]
}

const rows: string[][] = [['store', 'heartbeat µs', 'ready µs (1 commit each)', `deciding ready ms (releases ${N})`, 'done µs']]
const dirs: string[] = []
try {
  rows.push(await measure('memory (--data-dir "")', null, 'normal'))
  for (const d of ['normal', 'full'] as const) {
    const dir = mkdtempSync(join(values.dir, 'rg-commit-'))
    dirs.push(dir)
    rows.push(await measure(`sqlite synchronous=${d.toUpperCase()}`, dir, d))
  }
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
for (const r of rows) console.log(r.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  '))
