// Waiting in tests, with no dependency on the broker: free ports, sleeps, polls, bounded events.
import { createServer, type AddressInfo } from 'node:net'

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo
      s.close(() => resolve(port))
    })
  })
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Poll `fn` until it returns a truthy value; rejects after `ms`. */
export async function waitFor<T> (fn: () => T | Promise<T>, ms = 3000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** `p`, or a rejection naming `what` after `ms`: no test waits for ever on an event. */
export async function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms) })
  try { return await Promise.race([p, timeout]) } finally { clearTimeout(timer) }
}
