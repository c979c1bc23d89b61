// A webhook receiver for alert tests: a real node:http server on a loopback port that records
// every POST (headers and raw body) and answers with a status the test chooses per request.
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { waitFor } from './wait.js'

export interface Hook {
  headers: IncomingHttpHeaders
  raw: string
  json: any
  at: number
}

export interface Receiver {
  url: string
  /** every request received, answered or not */
  hits: Hook[]
  /** requests answered 2xx */
  delivered: () => Hook[]
  /** the status for the n-th request (0-based); a promise holds the answer back until it settles */
  answer: (n: number, hook: Hook) => number | Promise<number>
  /** wait until `n` requests were answered 2xx */
  waitDelivered: (n: number, ms?: number) => Promise<Hook[]>
  close: () => Promise<void>
}

export async function startReceiver (answer: Receiver['answer'] = () => 200): Promise<Receiver> {
  const hits: Hook[] = []
  const ok: Hook[] = []
  const r: Partial<Receiver> = { hits, answer }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString()
      let json: unknown
      try { json = JSON.parse(raw) } catch { json = undefined }
      const hook: Hook = { headers: req.headers, raw, json, at: Date.now() }
      const n = hits.length
      hits.push(hook)
      void Promise.resolve((r as Receiver).answer(n, hook)).then((status) => {
        if (status >= 200 && status < 300) ok.push(hook)
        res.writeHead(status, { 'content-type': 'text/plain' }).end(String(status))
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return Object.assign(r, {
    url: `http://127.0.0.1:${port}/hook`,
    delivered: () => ok,
    waitDelivered: async (n: number, ms = 5000) => await waitFor(() => ok.length >= n ? ok : null, ms, `${n} alerts delivered (got ${ok.length})`),
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }) as Receiver
}

/** Whether the X-Roundgate-Signature header is the HMAC-SHA256 of the raw body with `secret`. */
export function validSignature (hook: Hook, secret: string): boolean {
  const header = hook.headers['x-roundgate-signature']
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false
  const want = createHmac('sha256', secret).update(hook.raw).digest()
  const got = Buffer.from(header.slice('sha256='.length), 'hex')
  return got.length === want.length && timingSafeEqual(got, want)
}
