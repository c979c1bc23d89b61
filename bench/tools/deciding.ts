// The engine's share of "deciding read → first release write": from the call of the deciding
// `ready` to the engine's `release` event, with N participants, in one process with no sockets,
// on the memory store and on SQLite (synchronous=NORMAL). R rounds each; prints the median and the
// slowest.   node dist/bench/tools/deciding.js [--n 10000] [--rounds 20] [--dir /var/tmp]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { Engine, MemoryStore } from '../../plugins/scheduler/index.js'

const { values } = parseArgs({ options: { n: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '20' }, dir: { type: 'string', default: tmpdir() } } })
const N = Number(values.n)
const R = Number(values.rounds)

async function measure (dataDir: string | null): Promise<number[]> {
  const store = new MemoryStore({ dataDir, durability: 'normal', maxTerminalsPerGroup: N + 10 })
  const engine = new Engine({
    store,
    logger: pino({ level: 'warn' }),
    autoCreateGroups: false,
    groups: { g: { need: N, minOnlineRatio: 1, resetMs: 0, offlineAfterMs: 3600000, execTimeoutMs: 3600000 } }
  })
  await engine.start()
  let t0 = 0n
  const ms: number[] = []
  engine.on('release', () => { ms.push(Number(process.hrtime.bigint() - t0) / 1e6) })
  const ids = Array.from({ length: N }, (_, i) => `t${i}`)
  for (const id of ids) await engine.heartbeat('g', id, {})
  for (let r = 1; r <= R; r++) {
    for (let i = 0; i < N - 1; i++) await engine.ready('g', ids[i], {})
    await new Promise((resolve) => setImmediate(resolve))
    t0 = process.hrtime.bigint()
    await engine.ready('g', ids[N - 1], {})
    for (const id of ids) await engine.done('g', id, { round: r })
  }
  await engine.stop()
  return ms
}

const dir = mkdtempSync(join(values.dir, 'rg-deciding-'))
try {
  console.log(`deciding ready -> release event, ${N} participants, ${R} rounds (ms)`)
  for (const [label, d] of [['memory (--data-dir "")', null], ['sqlite synchronous=NORMAL', dir]] as const) {
    const ms = await measure(d)
    const sorted = [...ms].sort((a, b) => a - b)
    console.log(`${label.padEnd(28)} median ${sorted[Math.floor(sorted.length / 2)].toFixed(2)}  max ${sorted[sorted.length - 1].toFixed(2)}`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
