// One load-generator process (forked by bench/lib/fleet.ts, never inside a broker). It holds a
// share of the terminals as raw sockets and obeys the parent's commands over IPC. Every time it
// reports is CLOCK_MONOTONIC in nanoseconds (process.hrtime), which all processes of the machine
// share, so a receipt here and the send of the deciding message in another generator compare
// directly. The same commands drive roundgate and its rivals (vanilla aedes, Mosquitto, the
// node:http long-poll server): one client code path for every broker measured.
import type { Expect } from './check.js'
import { flood } from './flood.js'
import { Receipts } from './receipts.js'
import { HttpConn, MqttConn, nowNs } from './wire.js'

interface Msg { seq: number, cmd: string, args: Record<string, unknown> }

const mqtt = new Map<string, MqttConn>()
const http = new Map<string, HttpConn>()
let control: HttpConn | null = null
const receipts = new Receipts()
/** plain counters for the overhead scenario (messages outside the armed topic) */
let received = 0
let lastReceivedAt = 0
/** long-polls that failed (connection closed, not 200/204), since the last arm */
let pollFailures = 0

function progress (done: number, total: number): void {
  process.send?.({ progress: { done, total } })
}

function onPublish (conn: MqttConn, topic: string, frame: Buffer, payloadAt: number, at: number): void {
  if (topic === receipts.armedTopic) {
    receipts.record(conn.id, frame.subarray(payloadAt), at)
    return
  }
  received++
  lastReceivedAt = at
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

function httpOf (id: string): HttpConn {
  const c = http.get(id)
  if (c === undefined) throw new Error(`no HTTP terminal ${id} here`)
  return c
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

  /** Every listed terminal publishes once (QoS 1 waits for every PUBACK, QoS 0 for a PINGRESP). */
  async 'mqtt.publishEach' (a: { ids?: string[], topic: string, payload: string, qos: 0 | 1 }) {
    const ids = a.ids ?? [...mqtt.keys()]
    await withTimeout(Promise.all(ids.map(async (id) => {
      const c = mqtt.get(id)
      if (c === undefined) throw new Error(`no terminal ${id} here`)
      if (a.qos === 0) {
        c.publish(a.topic.replace('{id}', id), a.payload, 0)
        await c.sync()
      } else {
        await new Promise<void>((resolve) => c.publish(a.topic.replace('{id}', id), a.payload, 1, resolve))
      }
    })), 60000, 'mqtt.publishEach')
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

  /** Start recording the first receipt of `topic` per terminal (MQTT publishes and HTTP release answers). */
  async arm (a: { topic: string }) {
    receipts.arm(a.topic)
    received = 0
    lastReceivedAt = 0
    pollFailures = 0
    return {}
  },

  /** Wait until `count` terminals here have their receipt (or the time runs out), then check every message. */
  async receipts (a: { count: number, timeoutMs: number, expect: Expect, skew?: boolean }) {
    const got = await receipts.collect(a.count, a.timeoutMs, a.expect, a.skew === true)
    return { ...got, pollFailures }
  },

  /** HTTP terminals: one keep-alive connection each (reopened by the next request if the server closed it). */
  async 'http.open' (a: { port: number, ids: string[] }) {
    await withTimeout(pool(a.ids, 100, async (id) => {
      http.get(id)?.close()
      const c = new HttpConn(a.port)
      http.set(id, c)
      await c.ready()
    }, (n) => progress(n, a.ids.length)), 120000, 'http.open')
    return { opened: a.ids.length }
  },

  /**
   * Each listed HTTP terminal optionally declares ready (POST, awaited), then parks its release
   * long-poll (GET …/release?after=&wait=, not awaited: its answer is the release, recorded as a
   * receipt when it is a 200).
   */
  async 'http.park' (a: { group: string, ids: string[], ready: boolean, after: number, wait?: number }) {
    await withTimeout(pool(a.ids, 100, async (id) => {
      const c = httpOf(id)
      if (a.ready) {
        const r = await c.request('POST', `/v1/groups/${a.group}/ready`, JSON.stringify({ clientId: id }))
        if (r.status !== 200) throw new Error(`ready ${id}: HTTP ${r.status} ${r.body.toString()}`)
      }
      c.request('GET', `/v1/groups/${a.group}/release?clientId=${encodeURIComponent(id)}&after=${a.after}&wait=${a.wait ?? 120}`).then((r) => {
        if (r.status === 200) receipts.record(id, r.body, r.at)
        else if (r.status !== 204) pollFailures++
      }, () => { pollFailures++ })
    }, (n) => progress(n, a.ids.length)), 120000, 'http.park')
    return { parked: a.ids.length }
  },

  /** Each listed HTTP terminal reports done for `round`. */
  async 'http.done' (a: { group: string, ids: string[], round: number }) {
    await withTimeout(pool(a.ids, 100, async (id) => {
      const r = await httpOf(id).request('POST', `/v1/groups/${a.group}/done`, JSON.stringify({ clientId: id, round: a.round }))
      if (r.status !== 200) throw new Error(`done ${id}: HTTP ${r.status} ${r.body.toString()}`)
    }), 120000, 'http.done')
    return { done: a.ids.length }
  },

  /** Tear every HTTP terminal's connection down with a TCP RST (aborted polls). */
  async 'http.reset' () {
    const n = http.size
    for (const c of http.values()) c.reset()
    http.clear()
    return { reset: n }
  },

  /** One HTTP ready on a control connection; answers the monotonic time just before the write. */
  async 'http.readyOne' (a: { port: number, group: string, id: string }) {
    if (control === null || control.closed) { control = new HttpConn(a.port); await control.ready() }
    const t0 = nowNs() // request() writes synchronously, right after this
    const req = control.request('POST', `/v1/groups/${a.group}/ready`, JSON.stringify({ clientId: a.id }))
    const r = await withTimeout(req, 30000, 'http.readyOne')
    return { t0, status: r.status }
  },

  /** Closed-loop publishing for `seconds` (flood.ts): heartbeats or plain pub/sub. */
  async flood (a: { topicOf: Record<string, string>, payload: string, bytes?: number, qos: 0 | 1, seconds: number, window: number }) {
    const payload = a.bytes !== undefined ? Buffer.alloc(a.bytes, 'x') : a.payload
    const targets = Object.entries(a.topicOf).map(([id, topic]) => {
      const conn = mqtt.get(id)
      if (conn === undefined) throw new Error(`no terminal ${id} here`)
      return { conn, topic }
    })
    return await withTimeout(flood(targets, payload, a.qos, a.seconds, a.window), a.seconds * 1000 + 60000, 'flood')
  },

  async 'count.read' () {
    return { received, lastReceivedAt }
  },

  async close () {
    for (const c of mqtt.values()) c.close()
    for (const c of http.values()) c.close()
    control?.close()
    control = null
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
