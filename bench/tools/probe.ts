// Loaded into the broker process by the release benchmark only (node --import), to time the
// inside of a release on the broker's own clock (CLOCK_MONOTONIC, as every generator uses):
//   recv  — the socket read that carries the deciding message (BENCH_PROBE_MATCH, e.g.
//           "rg/bench/ready/m10000", or "clientId=m10000" for an HTTP ready) returns to JS;
//   write — the first release PUBLISH (topic BENCH_PROBE_TOPIC) is handed to a socket's write
//           syscall (net.Socket _writeGeneric, i.e. what the kernel gets at once, corked or not).
// Each release appends one line `recv write` (ns) to BENCH_PROBE_FILE. MQTT sockets only for
// `write` (the HTTP gateway writes through uWebSockets.js, which this cannot see).
import { appendFileSync } from 'node:fs'
import { Socket } from 'node:net'

const match = process.env.BENCH_PROBE_MATCH ?? ''
const topic = Buffer.from(process.env.BENCH_PROBE_TOPIC ?? 'rg/bench/release')
const file = process.env.BENCH_PROBE_FILE ?? ''
let recv = 0

if (match !== '' && file !== '') {
  const needle = Buffer.from(match)
  const proto = Socket.prototype as unknown as {
    push: (chunk: unknown, enc?: BufferEncoding) => boolean
    _writeGeneric: (writev: boolean, data: unknown, enc: string, cb: unknown) => unknown
  }
  const push = proto.push
  proto.push = function probedPush (this: Socket, chunk: unknown, enc?: BufferEncoding): boolean {
    if (recv === 0 && Buffer.isBuffer(chunk) && chunk.indexOf(needle) >= 0) recv = Number(process.hrtime.bigint())
    return push.call(this, chunk, enc)
  }
  const writeGeneric = proto._writeGeneric
  proto._writeGeneric = function probedWrite (this: Socket, writev: boolean, data: unknown, enc: string, cb: unknown): unknown {
    if (recv !== 0) {
      const first = writev ? (data as Array<{ chunk: unknown }>)[0]?.chunk : data
      if (Buffer.isBuffer(first) && first.length > 4 && (first[0] >> 4) === 3 && first.indexOf(topic) >= 0 && first.indexOf(topic) < 8) {
        const t = Number(process.hrtime.bigint())
        const r = recv
        recv = 0
        setImmediate(() => appendFileSync(file, `${r} ${t}\n`))
      }
    }
    return writeGeneric.call(this, writev, data, enc, cb)
  }
}
