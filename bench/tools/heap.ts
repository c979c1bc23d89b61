// Loaded into a broker process by the `aborts` benchmark only (node --expose-gc --import): on
// SIGUSR2 it collects garbage twice and appends `heapUsed rss` (bytes) as one line to
// BENCH_HEAP_FILE, so the benchmark can read the broker's live heap before and after a load
// without any code in the broker for it.
import { appendFileSync } from 'node:fs'

const file = process.env.BENCH_HEAP_FILE ?? ''
const gc = (globalThis as { gc?: () => void }).gc

if (file !== '') {
  process.on('SIGUSR2', () => {
    gc?.()
    gc?.()
    const m = process.memoryUsage()
    appendFileSync(file, `${m.heapUsed} ${m.rss} ${gc === undefined ? 'nogc' : 'gc'}\n`)
  })
}
