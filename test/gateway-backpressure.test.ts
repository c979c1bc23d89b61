// Back-pressure: a body the socket does not take at once is finished from onWritable, byte for
// byte. Once through the real listener to a client that stops reading, and once against a
// response that accepts a few bytes per write (so both the string and the parts path resume).
import { connect } from 'node:net'
import t from 'tap'
import { pino } from 'pino'
import type { HttpResponse } from 'uWebSockets.js'
import { Exchange } from '../gateway/respond.js'
import { startTestGateway, until } from './helpers/http.js'
import { sleep } from './helpers/wait.js'

void t.test('an 8 MB answer reaches a client that stops reading for a while, whole', async (t) => {
  const g = await startTestGateway()
  t.teardown(g.close)
  const e = g.engine
  await e.putGroup('bp', { need: 1, resetMs: 0 })
  const result = 'r'.repeat(8000)
  for (let r = 1; r <= 1000; r++) {
    await e.ready('bp', 'a', {})
    if (!await until(() => e.releaseOf('bp')?.round === r, 2000)) throw new Error(`round ${r} was not released`)
    await e.done('bp', 'a', { round: r, result })
  }
  const port = g.gateway.port
  const sock = connect({ port, host: '127.0.0.1' })
  await new Promise((resolve) => sock.once('connect', resolve))
  sock.pause()
  sock.write('GET /v1/groups/bp/rounds?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n')
  await sleep(400) // the server fills the socket and waits
  const chunks: Buffer[] = []
  let size = 0
  const whole = await new Promise<Buffer>((resolve, reject) => {
    sock.on('data', (d: Buffer) => {
      chunks.push(d)
      size += d.length
      const all = Buffer.concat(chunks, size)
      const head = all.indexOf('\r\n\r\n')
      if (head < 0) return
      const len = Number(/content-length: (\d+)/i.exec(all.subarray(0, head).toString())?.[1])
      if (all.length >= head + 4 + len) resolve(all.subarray(head + 4, head + 4 + len))
    })
    sock.on('error', reject)
    setTimeout(() => reject(new Error('body not complete within 10 s')), 10000).unref()
    sock.resume()
  })
  sock.destroy()
  t.ok(whole.length > 8_000_000, `${whole.length} bytes`)
  const rounds = JSON.parse(whole.toString())
  t.equal(rounds.length, 1000)
  t.same([rounds[0].round, rounds[999].round], [1000, 1])
  t.equal(rounds[500].results.a, result)
})

/** A uWS response stand-in whose socket takes at most `budget` bytes per write. */
function slowRes (budget: number): { res: HttpResponse, body: () => Buffer, drain: () => number } {
  let offset = 0
  let total = -1
  const got: Buffer[] = []
  let writable: ((offset: number) => boolean) | null = null
  const res = {
    cork (cb: () => void) { cb(); return res },
    writeStatus () { return res },
    writeHeader () { return res },
    getWriteOffset () { return offset },
    onWritable (h: (o: number) => boolean) { writable = h; return res },
    end () { throw new Error('end is not used for resumable bodies') },
    tryEnd (chunk: string | Uint8Array, totalSize: number): [boolean, boolean] {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk)
      total = totalSize
      const n = Math.min(budget, buf.length)
      got.push(buf.subarray(0, n))
      offset += n
      return [n === buf.length, offset === total]
    }
  }
  return {
    res: res as unknown as HttpResponse,
    body: () => Buffer.concat(got),
    // the socket drains: call the writable handler until the body is complete (bounded)
    drain: () => {
      let calls = 0
      while (offset !== total && writable !== null && calls < 10000) { calls++; writable(offset) }
      return calls
    }
  }
}

void t.test('string and parts bodies resume from the right offset', async (t) => {
  const log = pino({ level: 'silent' })
  const text = JSON.stringify({ s: 'é'.repeat(500), n: Array.from({ length: 300 }, (_, i) => i) })
  const a = slowRes(97)
  t.ok(new Exchange(a.res, 'GET', '/x', log).send(200, text))
  t.ok(a.drain() > 5, 'resumed many times')
  t.equal(a.body().toString(), text, 'a string body with multi-byte characters arrives whole')

  const head = Buffer.from('{"big":"' + 'x'.repeat(1000))
  const tail = Buffer.from('","tail":1}')
  for (const budget of [1, 50, 1000, 1005, 1010, 5000]) {
    const b = slowRes(budget)
    new Exchange(b.res, 'GET', '/x', log).send(200, [head, tail])
    b.drain()
    t.equal(b.body().toString(), head.toString() + tail.toString(), `parts, ${budget} bytes per write`)
  }

  const c = slowRes(10)
  const ex = new Exchange(c.res, 'GET', '/x', log)
  ex.send(200, text)
  ex.abort()
  c.drain()
  t.equal(c.body().length, 10, 'after the client went away nothing more is written')
  t.notOk(ex.send(200, 'again'), 'an answered exchange cannot answer twice')
})
