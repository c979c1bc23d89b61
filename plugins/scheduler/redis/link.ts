// What every roundgate connection to Redis shares: how it reconnects and how it closes.
import type { Redis } from 'ioredis'

/** Reconnect for ever, backing off to one attempt a second. */
export const reconnect = (times: number): number => Math.min(50 * times, 1000)

/** Close a link: QUIT when connected (flushes what is queued), else just drop it. */
export async function quit (r: Redis): Promise<void> {
  if (r.status !== 'ready') { r.disconnect(); return }
  try {
    await r.quit()
  } catch {
    r.disconnect() // not connected after all: nothing to flush
  }
}
