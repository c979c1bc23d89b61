// One load-generator process (forked by bench/lib/fleet.ts, never inside the broker). It holds a
// share of the terminals as raw sockets and obeys the parent's commands over IPC. Every time it
// reports is CLOCK_MONOTONIC in nanoseconds (process.hrtime), which all processes of the machine
// share, so a receipt here and the send of the deciding message in another generator compare
// directly.
import { HttpConn, MqttConn, nowNs } from './lib/wire.js'

interface Msg { seq: number, cmd: string, args: Record<string, unknown> }

const mqtt = new Map<string, MqttConn>()
const http = new Map<string, HttpConn>()
let control: HttpConn | null = null
/** receipt times (ns) by terminal, for the armed topic */
let receipts = new Map<string, number>()
let armedTopic: string | null = null
let armedBytes = 0
/** plain counters for the overhead scenario */
let received = 0
let lastReceivedAt = 0

function progress (done: number, total: number): void {
  process.send?.({ progress: { done, total } })
}

function onPublish (conn: MqttConn, topic: string, frame: Buffer): void {
  if (armedTopic !== null && topic === armedTopic) {
    if (!receipts.has(conn.id)) receipts.set(conn.id, nowNs())
    armedBytes = frame.length
    return
  }
  const t = nowNs()
  received++
  lastReceivedAt = t
}

async function pool<T> (items: T[], parallel: number, fn: (item: T) => Promise<void>, report?: (n: number) => void): Promise<void> {
  let next = 0
  let doneCount = 0
  let lastReport = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]
      await fn(item)
      doneCount++
      const now = Date.now()
      if (report !== undefined && now - lastReport > 200) { lastReport = now; report(doneCount) }
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker))
  report?.(doneCount)
}

async function withTimeout<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<T>((_r, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

const commands: Record<string, (a: any) => Promise<unknown>> = {
  /** Connect MQTT terminals (clean sessions), optionally subscribing each to one filter. */
  async 'mqtt.connect' (a: { port: number, ids: string[], sub?: { topic: string, qos: 0 | 1 }, parallel?: number }) {
    await withTimeout(pool(a.ids, a.parallel ?? 100, async (id) => {
      const c = new MqttConn({ port: a.port, clientId: id, onPublish })
      await c.open()
      if (a.sub !== undefined) await c.subscribe(a.sub.topic.replace('{id}', id), a.sub.qos)
      mqtt.set(id, c)
    }, (n) => progress(n, a.ids.length)), 120000, 'mqtt.connect')
    return { connected: a.ids.length }
  },

  /** Every listed terminal publishes once (QoS 1 waits for every PUBACK). */
  async 'mqtt.publishEach' (a: { ids?: string[], topic: string, payload: string, qos: 0 | 1 }) {
    const ids = a.ids ?? [...mqtt.keys()]
    let acked = 0
    await withTimeout(new Promise<void>((resolve) => {
      if (ids.length === 0) { resolve(); return }
      for (const id of ids) {
        const c = mqtt.get(id)
        if (c === undefined) throw new Error(`no terminal ${id} here`)
        c.publish(a.topic.replace('{id}', id), a.payload, a.qos, () => { if (++acked === ids.length) resolve() })
        if (a.qos === 0) acked++
      }
      if (a.qos === 0) { Promise.all([...mqtt.values()].map(async (c) => await c.sync())).then(() => resolve(), () => resolve()) }
    }), 60000, 'mqtt.publishEach')
    return { sent: ids.length }
  },

  /** Publish one message now; answers the monotonic time taken just before the write. */
  async 'mqtt.publishOne' (a: { id: string, topic: string, payload: string, qos: 0 | 1 }) {
    const c = mqtt.get(a.id)
    if (c === undefined) throw new Error(`no terminal ${a.id} here`)
    const frame = c.frameOf(a.topic.replace('{id}', a.id), a.payload, a.qos)
    const t0 = nowNs()
    c.socket.write(frame)
    return { t0 }
  },

  /** Start recording the first receipt of `topic` per terminal (MQTT publishes and HTTP answers). */
  async arm (a: { topic: string }) {
    receipts = new Map()
    armedTopic = a.topic
    armedBytes = 0
    received = 0
    lastReceivedAt = 0
    return {}
  },

  /** Wait until `count` terminals here have their receipt (or the time runs out); answer the times. */
  async receipts (a: { count: number, timeoutMs: number }) {
    const until = Date.now() + a.timeoutMs
    while (receipts.size < a.count && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5))
    return { times: [...receipts.values()], bytes: armedBytes }
  },

  /** HTTP terminals: each opens a keep-alive socket, optionally declares ready, then parks its release long-poll. */
  async 'http.terminals' (a: { port: number, group: string, ids: string[], ready: boolean, after?: number, wait?: number }) {
    await withTimeout(pool(a.ids, 100, async (id) => {
      const c = new HttpConn(a.port)
      http.set(id, c)
      await c.ready()
      if (a.ready) {
        const r = await c.request('POST', `/v1/groups/${a.group}/ready`, JSON.stringify({ clientId: id }))
        if (r.status !== 200) throw new Error(`ready ${id}: HTTP ${r.status} ${r.body.toString()}`)
      }
      // not awaited: the answer is the release
      c.request('GET', `/v1/groups/${a.group}/release?clientId=${encodeURIComponent(id)}&after=${a.after ?? 0}&wait=${a.wait ?? 120}`).then((r) => {
        if (r.status === 200 && !receipts.has(id)) receipts.set(id, r.at)
        armedBytes = r.body.length
      }, () => {})
    }, (n) => progress(n, a.ids.length)), 120000, 'http.terminals')
    return { parked: a.ids.length }
  },

  /** One HTTP ready on a control connection; answers the monotonic time just before the write. */
  async 'http.readyOne' (a: { port: number, group: string, id: string }) {
    if (control === null || control.closed) { control = new HttpConn(a.port); await control.ready() }
    const t0 = nowNs() // request() writes synchronously, right after this
    const req = control.request('POST', `/v1/groups/${a.group}/ready`, JSON.stringify({ clientId: a.id }))
    const r = await withTimeout(req, 30000, 'http.readyOne')
    return { t0, status: r.status }
  },

  /**
   * Heartbeat load, closed loop: every connection writes `batch` QoS 0 heartbeats and a PINGREQ
   * in one write, and sends the next batch when the PINGRESP is back (aedes handles a read's
   * packets before it reads on), so at most `batch` heartbeats per connection are ever in flight
   * and what was sent is what the broker absorbed.
   */
  async 'hb.flood' (a: { group: string, seconds: number, batch: number, payload: string }) {
    const conns = [...mqtt.values()]
    let sent = 0
    const t0 = nowNs()
    const until = Date.now() + a.seconds * 1000
    await withTimeout(Promise.all(conns.map(async (c) => {
      const one = c.frameOf(`rg/${a.group}/hb/${c.id}`, a.payload, 0)
      const buf = Buffer.concat([...Array.from({ length: a.batch }, () => one), Buffer.from([0xc0, 0x00])])
      while (Date.now() < until && !c.closed) {
        await c.syncAfter(buf)
        sent += a.batch
      }
    })), a.seconds * 1000 + 60000, 'hb.flood')
    const t1 = nowNs()
    return { sent, t0, t1 }
  },

  /**
   * Plain publishers for the overhead scenario, closed loop so nothing piles up in socket buffers:
   * QoS 0 writes `window` publishes and a PINGREQ and goes on at the PINGRESP; QoS 1 keeps
   * `window` publishes awaiting their PUBACK.
   */
  async 'pub.flood' (a: { topicOf: Record<string, string>, qos: 0 | 1, seconds: number, window: number, bytes: number }) {
    const payload = Buffer.alloc(a.bytes, 'x')
    const t0 = nowNs()
    const until = Date.now() + a.seconds * 1000
    let sent = 0
    await withTimeout(Promise.all(Object.entries(a.topicOf).map(async ([id, topic]) => {
      const c = mqtt.get(id) as MqttConn
      if (a.qos === 0) {
        const batch = Buffer.concat([...Array.from({ length: a.window }, () => c.frameOf(topic, payload, 0)), Buffer.from([0xc0, 0x00])])
        while (Date.now() < until && !c.closed) {
          await c.syncAfter(batch)
          sent += a.window
        }
        return
      }
      await new Promise<void>((resolve) => {
        let inflight = 0
        const pump = (): void => {
          while (inflight < a.window && Date.now() < until && !c.closed) {
            inflight++
            sent++
            c.publish(topic, payload, 1, () => { inflight--; pump() })
          }
          if (inflight === 0) resolve()
        }
        pump()
      })
    })), a.seconds * 1000 + 60000, 'pub.flood')
    return { sent, t0, t1: nowNs() }
  },

  async 'count.read' () {
    return { received, lastReceivedAt }
  },

  async close () {
    for (const c of mqtt.values()) c.close()
    for (const c of http.values()) c.close()
    control?.close()
    mqtt.clear()
    http.clear()
    return {}
  }
}

process.on('message', (m: Msg) => {
  const fn = commands[m.cmd]
  if (fn === undefined) { process.send?.({ seq: m.seq, error: `unknown command ${m.cmd}` }); return }
  fn(m.args).then((result) => process.send?.({ seq: m.seq, result }), (err: Error) => process.send?.({ seq: m.seq, error: err.message }))
})
process.on('disconnect', () => process.exit(0))
// never outlive the run that started us
setTimeout(() => process.exit(3), Number(process.env.BENCH_GEN_MAX_MS ?? 900000)).unref()
