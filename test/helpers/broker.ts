// Test harness: a real roundgate server in this process on free loopback ports, and real mqtt.js
// clients talking to it over TCP.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { freePort } from './wait.js'
import { pino } from 'pino'
import { DEFAULT_SETTINGS, type Settings } from '../../broker/settings.js'
import { startServer, type RunningServer } from '../../broker/server.js'

export { freePort, sleep, waitFor, within } from './wait.js'

export interface TestBroker {
  server: RunningServer
  url: string
  close: () => Promise<void>
}

/** A server with the in-memory store (no data dir unless given), MQTT on a free port, HTTP off. */
export async function startBroker (overrides: Partial<Settings> = {}): Promise<TestBroker> {
  const settings: Settings = {
    ...DEFAULT_SETTINGS,
    dataDir: null,
    httpPort: 0,
    wsPort: 0,
    logLevel: 'silent',
    ...overrides
  }
  if (overrides.mqttPort === undefined) settings.mqttPort = await freePort()
  const log = pino({ level: settings.logLevel })
  const server = await startServer(settings, log)
  return { server, url: `mqtt://127.0.0.1:${server.ports.mqtt}`, close: async () => await server.close() }
}

/** Connect and wait for CONNACK; rejects (never hangs) if the server closes the connection first. */
export async function connect (url: string, clientId: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(url, { clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  return await new Promise((resolve, reject) => {
    const fail = (err: Error): void => { c.end(true); reject(err) }
    c.once('connect', () => {
      c.off('error', fail); c.off('close', closed)
      // as real MQTT clients do: without it, a publish right after a PUBACK waits on Nagle for
      // the broker's delayed ACK (~40 ms each), which made request/answer loops crawl
      ;(c.stream as unknown as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true)
      resolve(c)
    })
    c.once('error', fail)
    const closed = (): void => fail(new Error(`${clientId}: connection closed before CONNACK`))
    c.once('close', closed)
  })
}

/** Publish JSON (or a raw string/Buffer) and wait for the broker's acknowledgement at QoS 1. */
export async function send (c: MqttClient, topic: string, body: unknown, qos: 0 | 1 = 1): Promise<void> {
  const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body)
  await c.publishAsync(topic, payload, { qos })
}

export interface Received { topic: string, json: any, retain: boolean, qos: number, raw: Buffer }

/** Everything a client receives, kept in order, with a way to wait for the next match. */
export class Inbox {
  readonly messages: Received[] = []
  private waiters: Array<{ match: (m: Received) => boolean, resolve: (m: Received) => void }> = []

  constructor (client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      let json: unknown
      try { json = payload.length > 0 ? JSON.parse(payload.toString()) : null } catch { json = undefined }
      const m: Received = { topic, json, retain: packet.retain, qos: packet.qos, raw: payload }
      this.messages.push(m)
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(m)) return true
        w.resolve(m)
        return false
      })
    })
  }

  on (topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic)
  }

  /** The first message (already received or coming) matching; rejects after `ms`. */
  async next (match: string | ((m: Received) => boolean), ms = 3000, fromIndex = 0): Promise<Received> {
    const fn = typeof match === 'string' ? (m: Received) => m.topic === match : match
    const seen = this.messages.slice(fromIndex).find(fn)
    if (seen !== undefined) return seen
    return await new Promise((resolve, reject) => {
      const w = { match: fn, resolve: (m: Received) => { clearTimeout(timer); resolve(m) } }
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w)
        reject(new Error(`no message matching ${typeof match === 'string' ? match : 'predicate'} within ${ms} ms`))
      }, ms)
      this.waiters.push(w)
    })
  }
}

/** A terminal: one MQTT connection with clientId `id`, subscribed to its release and error topics. */
export async function terminal (url: string, group: string, id: string, opts: IClientOptions = {}): Promise<{ c: MqttClient, inbox: Inbox }> {
  const c = await connect(url, id, opts)
  const inbox = new Inbox(c)
  await c.subscribeAsync([`rg/${group}/release`, `rg/${group}/error/${id}`], { qos: 1 })
  return { c, inbox }
}
