// aborts: abort hygiene of the HTTP long-poll (what bench/longpoll.ts checked, now against the
// broker as an operator starts it). --n polls in all (default 100,000), opened in batches of
// 2,000 on a paused group and torn down by the clients with a TCP RST once the broker holds them;
// after every batch the broker must hold none. The broker runs with bench/tools/heap.ts loaded
// (--expose-gc; SIGUSR2 writes its heap after GC): heap and RSS after one warm-up batch and after
// the last, so a leak per aborted poll shows as growth (a poll's objects are hundreds of bytes:
// 100,000 leaked would be tens of MB). Printed, not judged: GC noise is ~1 MB.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Fleet } from '../lib/fleet.js'
import { sleep, startRoundgate, tempDir, type Broker } from '../lib/procs.js'
import { table, verdict, verdictTable, type ScenarioResult } from '../lib/report.js'
import { ids, pendingPolls, waitFor } from '../lib/rounds.js'
import type { Options } from './common.js'

const BATCH = 2000

async function heapOf (b: Broker, file: string): Promise<{ heap: number, rss: number, gc: boolean }> {
  const lines = (): string[] => existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter((l) => l !== '') : []
  const before = lines().length
  await sleep(200)
  process.kill(b.pid, 'SIGUSR2')
  await waitFor(async () => lines().length, (k) => k > before, 'heap report from the broker', 10000)
  const [heap, rss, gc] = lines()[before].split(' ')
  return { heap: Number(heap), rss: Number(rss), gc: gc === 'gc' }
}

export async function aborts (o: Options): Promise<ScenarioResult> {
  const total = Math.max(BATCH, Math.ceil(o.n / BATCH) * BATCH)
  const fleet = new Fleet(2)
  const heapFile = join(tempDir(), 'heap.txt')
  let rg: Broker | null = null
  try {
    rg = await startRoundgate({ heapFile, groups: { ab: { need: 1, paused: true, offlineAfterMs: 600000 } } })
    const b = rg
    const batch = async (): Promise<void> => {
      // the same 2,000 clientIds every batch: a poll registers its terminal (online until
      // offlineAfterMs), so new ids would grow the group, not measure the polls
      const batchIds = ids('a', BATCH, 0)
      const shares = fleet.deal(batchIds)
      await fleet.each('open', (_g, i) => ({ port: b.httpPort, ids: shares[i] }), 'http.open')
      await fleet.each('park', (_g, i) => ({ group: 'ab', ids: shares[i], ready: false, after: 0, wait: 120 }), 'http.park')
      await waitFor(async () => await pendingPolls(b), (p) => p === BATCH, `${BATCH} polls pending`, 30000)
      await fleet.each('reset', () => ({}), 'http.reset')
      await waitFor(async () => await pendingPolls(b), (p) => p === 0, 'aborted polls removed', 30000)
    }
    await batch() // warm-up: the first batch's allocations are not a leak
    const before = await heapOf(b, heapFile)
    const t0 = Date.now()
    for (let done = 0; done < total; done += BATCH) {
      await batch()
      if (process.stderr.isTTY) process.stderr.write(`\r  aborted ${done + BATCH}/${total}   `)
    }
    process.stderr.write(`${process.stderr.isTTY ? '\r' : ''}  aborted ${total}/${total}\n`)
    const seconds = (Date.now() - t0) / 1000
    const after = await heapOf(b, heapFile)
    const left = await pendingPolls(b)
    const growth = (after.heap - before.heap) / 2 ** 20
    const rows = [
      ['broker heap after GC (MiB)', before.heap / 2 ** 20, after.heap / 2 ** 20, growth],
      ['broker RSS (MiB)', before.rss / 2 ** 20, after.rss / 2 ** 20, (after.rss - before.rss) / 2 ** 20]
    ]
    const verdicts = [
      verdict('long-polls pending after all aborts', left, '-', null, { op: '<=', value: 0 }),
      verdict(`heap growth per aborted poll (bytes; GC noise ~1 MiB / ${total} polls; a leaked poll is hundreds)`, (after.heap - before.heap) / total, '-', null, null)
    ]
    const text = [
      table(`aborts: ${total} long-polls opened in batches of ${BATCH} and reset by the client, in ${seconds.toFixed(1)} s${after.gc ? '' : ' (the broker had no gc(): heap figures are not after GC)'}`,
        ['', 'before', 'after', 'growth'], rows),
      '',
      verdictTable('checks', verdicts)
    ].join('\n')
    return { scenario: 'aborts', text, data: { total, seconds, before, after, left } }
  } finally {
    await rg?.stop()
    await fleet.close()
  }
}
