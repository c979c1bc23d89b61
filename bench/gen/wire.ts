// Lean client-side protocol pieces for the load generator: a raw MQTT 3.1.1 connection over
// node:net (packets built with mqtt-packet, frames split by hand so a 100 KB PUBLISH is
// concatenated once, not per chunk) and a raw HTTP/1.1 keep-alive connection. No MQTT.js, no
// undici: one socket and a few small objects per terminal.
//
// Every socket binds one of the source addresses 127.0.0.2-127.0.0.9 in turn, so tens of
// thousands of connections (and the RST'd ones of the abort scenario) never run one source
// address out of ephemeral ports.
import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'

/** The one clock of every measurement: CLOCK_MONOTONIC, shared by all processes of this machine. */
export function nowNs (): number {
  return Number(process.hrtime.bigint())
}

const SOURCES = 8
let nextSource = process.pid % SOURCES

/** The next loopback source address (127.0.0.2 … 127.0.0.9). */
export function sourceAddress (): string {
  nextSource = (nextSource + 1) % SOURCES
  return `127.0.0.${2 + nextSource}`
}

/** Splits a byte stream into whole MQTT frames; `onFrame(first byte, frame)`. */
class FrameReader {
  private chunks: Buffer[] = []
  private total = 0
  private need = 0

  push (chunk: Buffer, onFrame: (frame: Buffer) => void): void {
    this.chunks.push(chunk)
    this.total += chunk.length
    for (;;) {
      if (this.need === 0) {
        if (this.total < 2) return
        let head = this.chunks[0]
        if (head.length < 5 && this.chunks.length > 1) {
          head = Buffer.concat(this.chunks, this.total)
          this.chunks = [head]
        }
        let len = 0
        let mul = 1
        let i = 1
        for (;; i++) {
          if (i >= head.length) return // remaining length not complete yet
          const b = head[i]
          len += (b & 127) * mul
          mul *= 128
          if ((b & 128) === 0) break
        }
        this.need = i + 1 + len
      }
      if (this.total < this.need) return
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.total)
      const frame = all.subarray(0, this.need)
      const rest = all.subarray(this.need)
      this.chunks = rest.length > 0 ? [rest] : []
      this.total = rest.length
      this.need = 0
      onFrame(frame)
    }
  }
}

/** Topic and packet id of a PUBLISH frame (payload left in place). */
function publishInfo (frame: Buffer): { topic: string, qos: number, messageId: number, payloadAt: number } {
  let i = 1
  while ((frame[i] & 128) !== 0) i++
  i++
  const tlen = frame.readUInt16BE(i)
  const topic = frame.toString('utf8', i + 2, i + 2 + tlen)
  i += 2 + tlen
  const qos = (frame[0] >> 1) & 3
  let messageId = 0
  if (qos > 0) { messageId = frame.readUInt16BE(i); i += 2 }
  return { topic, qos, messageId, payloadAt: i }
}

const PINGREQ = Buffer.from([0xc0, 0x00])

export interface MqttConnOptions {
  port: number
  host?: string
  clientId: string
  clean?: boolean
  keepalive?: number
  /** called for every PUBLISH received (after the PUBACK, if any, is queued); `at` = nowNs() when its last bytes arrived */
  onPublish?: (conn: MqttConn, topic: string, frame: Buffer, payloadAt: number, at: number) => void
}

/** One raw MQTT connection. */
export class MqttConn {
  readonly id: string
  readonly socket: Socket
  private readonly reader = new FrameReader()
  private readonly opts: MqttConnOptions
  private nextId = 1
  private waiting = new Map<number, () => void>()
  private pings: Array<() => void> = []
  private connack: ((ok: boolean) => void) | null = null
  onPublish: MqttConnOptions['onPublish']
  closed = false

  constructor (opts: MqttConnOptions) {
    this.id = opts.clientId
    this.opts = opts
    this.onPublish = opts.onPublish
    this.socket = netConnect({ port: opts.port, host: opts.host ?? '127.0.0.1', localAddress: sourceAddress() })
    this.socket.setNoDelay(true)
    this.socket.on('data', (chunk: Buffer) => {
      const at = nowNs()
      this.reader.push(chunk, (f) => this.frame(f, at))
    })
    this.socket.on('error', () => {})
    this.socket.on('close', () => {
      this.closed = true
      this.connack?.(false)
      this.connack = null
    })
  }

  /** CONNECT and wait for CONNACK. */
  async open (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.connack = (ok) => { if (ok) resolve(); else reject(new Error(`${this.id}: connection refused or closed`)) }
      this.socket.once('connect', () => {
        this.socket.write(mqttPacket.generate({
          cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: this.id,
          clean: this.opts.clean ?? true, keepalive: this.opts.keepalive ?? 0
        }))
      })
    })
  }

  async subscribe (topic: string, qos: 0 | 1): Promise<void> {
    const messageId = this.takeId()
    await new Promise<void>((resolve) => {
      this.waiting.set(messageId, resolve)
      this.socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] }))
    })
  }

  /** Build a PUBLISH frame (QoS 1 frames get a fresh packet id). */
  frameOf (topic: string, payload: Buffer | string, qos: 0 | 1): Buffer {
    return mqttPacket.generate({ cmd: 'publish', topic, payload, qos, retain: false, dup: false, messageId: qos > 0 ? this.takeId() : undefined })
  }

  /** Publish; QoS 1 resolves on PUBACK, QoS 0 at once. Returns the socket's write result. */
  publish (topic: string, payload: Buffer | string, qos: 0 | 1, onAck?: () => void): boolean {
    if (qos === 0) return this.socket.write(this.frameOf(topic, payload, 0))
    const messageId = this.takeId()
    if (onAck !== undefined) this.waiting.set(messageId, onAck)
    return this.socket.write(mqttPacket.generate({ cmd: 'publish', topic, payload, qos, retain: false, dup: false, messageId }))
  }

  /** PINGREQ → PINGRESP: every packet sent before it has been handled by the broker. */
  async sync (): Promise<void> {
    await new Promise<void>((resolve) => {
      this.pings.push(resolve)
      this.socket.write(PINGREQ)
    })
  }

  /** Write `frames` (ending with one PINGREQ) and wait for its PINGRESP. */
  async syncAfter (frames: Buffer): Promise<void> {
    await new Promise<void>((resolve) => {
      this.pings.push(resolve)
      this.socket.write(frames)
    })
  }

  close (): void {
    if (!this.closed) this.socket.destroy()
    this.closed = true
  }

  private takeId (): number {
    const id = this.nextId
    this.nextId = id >= 65535 ? 1 : id + 1
    return id
  }

  private frame (f: Buffer, at: number): void {
    const type = f[0] >> 4
    switch (type) {
      case 2: { // CONNACK
        const ok = f[3] === 0
        this.connack?.(ok)
        this.connack = null
        break
      }
      case 3: { // PUBLISH
        const p = publishInfo(f)
        if (p.qos === 1) this.socket.write(Buffer.from([0x40, 0x02, p.messageId >> 8, p.messageId & 255]))
        this.onPublish?.(this, p.topic, f, p.payloadAt, at)
        break
      }
      case 4: // PUBACK
      case 9: { // SUBACK
        const id = f.readUInt16BE(2)
        const cb = this.waiting.get(id)
        if (cb !== undefined) { this.waiting.delete(id); cb() }
        break
      }
      case 13: // PINGRESP
        this.pings.shift()?.()
        break
    }
  }
}

export interface HttpResponse { status: number, headers: string, body: Buffer, at: number }

interface Pending { resolve: (r: HttpResponse) => void, reject: (e: Error) => void }

/**
 * One raw HTTP/1.1 keep-alive connection: requests one after another, Content-Length bodies.
 * A server may close an idle keep-alive connection between rounds: the next request then opens a
 * new one, as any HTTP client would; requests pending on a closed connection are rejected.
 */
export class HttpConn {
  private sock: Socket
  private readonly port: number
  private readonly host: string
  private chunks: Buffer[] = []
  private total = 0
  private headEnd = -1
  private need = -1
  private pending: Pending[] = []
  closed = false

  constructor (port: number, host = '127.0.0.1') {
    this.port = port
    this.host = host
    this.sock = this.open()
  }

  get socket (): Socket { return this.sock }

  private open (): Socket {
    const sock = netConnect({ port: this.port, host: this.host, localAddress: sourceAddress() })
    sock.setNoDelay(true)
    this.chunks = []
    this.total = 0
    this.headEnd = -1
    this.need = -1
    this.closed = false
    sock.on('data', (c: Buffer) => this.data(c))
    sock.on('error', () => {}) // 'close' follows and rejects what was pending
    sock.on('close', () => {
      if (sock !== this.sock) return
      this.closed = true
      const pending = this.pending
      this.pending = []
      for (const p of pending) p.reject(new Error('connection closed'))
    })
    return sock
  }

  async ready (): Promise<void> {
    if (!this.sock.connecting) return
    await new Promise<void>((resolve, reject) => {
      this.sock.once('connect', resolve)
      this.sock.once('error', reject)
    })
  }

  async request (method: string, path: string, body?: string): Promise<HttpResponse> {
    if (this.closed) this.sock = this.open()
    return await new Promise<HttpResponse>((resolve, reject) => {
      this.pending.push({ resolve, reject })
      const b = body ?? ''
      const head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        (body !== undefined ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n` : '') + '\r\n'
      this.sock.write(head + b)
    })
  }

  /** Close with a TCP RST (an aborted poll, as a client that goes away mid-request). */
  reset (): void {
    this.closed = true
    this.pending = []
    this.sock.resetAndDestroy()
  }

  close (): void {
    this.closed = true
    this.pending = []
    this.sock.destroy()
  }

  private data (c: Buffer): void {
    const at = nowNs() // the moment the bytes completing a response reached us
    this.chunks.push(c)
    this.total += c.length
    for (;;) {
      if (this.headEnd < 0) {
        const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.total)
        this.chunks = [all]
        const i = all.indexOf('\r\n\r\n')
        if (i < 0) return
        this.headEnd = i + 4
        const head = all.toString('latin1', 0, i)
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head)
        this.need = this.headEnd + (m !== null ? Number(m[1]) : 0)
      }
      if (this.total < this.need) return
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.total)
      const head = all.toString('latin1', 0, this.headEnd)
      const res: HttpResponse = { status: Number(head.slice(9, 12)), headers: head, body: all.subarray(this.headEnd, this.need), at }
      const rest = all.subarray(this.need)
      this.chunks = rest.length > 0 ? [rest] : []
      this.total = rest.length
      this.headEnd = -1
      this.need = -1
      this.pending.shift()?.resolve(res)
      if (this.total === 0) return
    }
  }
}
