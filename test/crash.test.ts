// kill -9 of the one-process broker on its embedded store (SQLite in the data directory): a seeded
// driver plays rounds over HTTP, the process is killed with SIGKILL at chosen instants (between
// two readies, right after a release, between two dones, right after a clean restart, with a
// request in flight; test/helpers/crash.ts) and started again on the same data directory, and
// everything is checked from outside: no round released twice, none skipped, none going
// backwards, every acknowledged ready and done still there. CRASH_RESTARTS (default 100) and
// CRASH_SEED (default 1) make longer or other runs.
import { writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { GROUP, GROUP_CONFIG, greet, INSTANTS, Ledger, playUntil, rng, RoundgateProcess } from './helpers/crash.js'

const RESTARTS = Number(process.env.CRASH_RESTARTS ?? 100)
const SEED = Number(process.env.CRASH_SEED ?? 1)

void t.test(`embedded: ${RESTARTS} restarts, kill -9 at chosen instants (seed ${SEED})`, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-crash-'))
  const cfg = join(dir, 'roundgate.json')
  writeFileSync(cfg, JSON.stringify({ groups: { [GROUP]: GROUP_CONFIG } }))
  const node = new RoundgateProcess(['--data-dir', join(dir, 'data'), '--config', cfg])
  t.teardown(async () => {
    await node.kill()
    await rm(dir, { recursive: true, force: true })
  })
  await node.start()
  await greet(node.base)
  const random = rng(SEED)
  const ledger = new Ledger()
  const tally: Record<string, number> = {}
  for (let i = 0; i < RESTARTS; i++) {
    const instant = INSTANTS[Math.floor(random() * INSTANTS.length)]
    tally[instant] = (tally[instant] ?? 0) + 1
    if (instant === 'after-clean-restart') {
      t.equal(await node.stop(), 0, 'a clean stop exits 0')
      await node.start()
      await ledger.check(node.base, `cycle ${i}: after a clean restart`)
      await node.kill() // the instant right after the clean restart
    } else {
      await playUntil(ledger, () => node, instant, random)
      await node.kill()
    }
    await node.start()
    await ledger.check(node.base, `cycle ${i}: after kill -9 (${instant})`)
    if (ledger.problems.length > 0) break
  }
  t.comment(`instants: ${JSON.stringify(tally)}; rounds seen: ${ledger.rounds.size}; checks: ${ledger.checks}`)
  t.strictSame(ledger.problems, [], 'no round released twice, skipped or going backwards; every acknowledged ready and done kept')
  t.ok(ledger.rounds.size >= RESTARTS / 3, `rounds went on (${ledger.rounds.size} rounds)`)
})
