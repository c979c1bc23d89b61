// kill -9 in cluster mode: three roundgate processes on one real redis-server, a seeded driver
// playing rounds through any of them, and SIGKILL of the process that answered last at chosen
// instants (test/helpers/crash.ts), then that process started again. Redis keeps the state; the
// checks are those of the embedded crash test: no round released twice, none skipped, none going
// backwards, every acknowledged ready and done still there. CRASH_CLUSTER_RESTARTS (default 20)
// and CRASH_SEED (default 1) make longer or other runs.
import { writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { GROUP, GROUP_CONFIG, greet, INSTANTS, Ledger, playUntil, rng, RoundgateProcess } from './helpers/crash.js'
import { startRedis } from './helpers/redis-server.js'

const RESTARTS = Number(process.env.CRASH_CLUSTER_RESTARTS ?? 20)
const SEED = Number(process.env.CRASH_SEED ?? 1)

void t.test(`cluster: ${RESTARTS} kills of a roundgate process at chosen instants (seed ${SEED})`, async (t) => {
  const redis = await startRedis()
  const dir = await mkdtemp(join(tmpdir(), 'rg-crash-cluster-'))
  const cfg = join(dir, 'roundgate.json')
  writeFileSync(cfg, JSON.stringify({ groups: { [GROUP]: GROUP_CONFIG } }))
  const nodes = [0, 1, 2].map(() => new RoundgateProcess(['--redis', redis.url, '--config', cfg]))
  t.teardown(async () => {
    for (const n of nodes) await n.kill()
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  })
  for (const n of nodes) await n.start()
  const random = rng(SEED)
  const ledger = new Ledger()
  const live = (): RoundgateProcess[] => nodes.filter((n) => n.running)
  const pick = (): RoundgateProcess => { const l = live(); return l[Math.floor(random() * l.length)] }
  await greet(nodes[0].base)
  const tally: Record<string, number> = {}
  for (let i = 0; i < RESTARTS; i++) {
    const instant = INSTANTS[Math.floor(random() * INSTANTS.length)]
    tally[instant] = (tally[instant] ?? 0) + 1
    if (instant === 'after-clean-restart') {
      const n = pick()
      t.equal(await n.stop(), 0, 'a clean stop exits 0')
      await n.start()
      await n.kill() // the instant right after the clean restart
    } else {
      const n = await playUntil(ledger, pick, instant, random)
      await n.kill()
      // the rest of the cluster goes on meanwhile
      await ledger.check(pick().base, `cycle ${i}: after killing a process (${instant}), through another`)
      await n.start()
    }
    const back = nodes.find((n) => !n.running)
    if (back !== undefined) await back.start()
    await ledger.check(pick().base, `cycle ${i}: after the restart (${instant})`)
    if (ledger.problems.length > 0) break
  }
  t.comment(`instants: ${JSON.stringify(tally)}; rounds seen: ${ledger.rounds.size}; checks: ${ledger.checks}`)
  t.strictSame(ledger.problems, [], 'no round released twice, skipped or going backwards; every acknowledged ready and done kept')
  t.ok(ledger.rounds.size >= RESTARTS / 3, `rounds went on (${ledger.rounds.size} rounds)`)
})
