// The scheduler's MQTT door: aedes hooks that turn terminal traffic under the prefix into engine
// calls, and the engine's events into MQTT: each participant's release written straight to its own
// connection (never through topic matching, so nobody else can ever receive it), the throttled
// retained state, round summaries, error answers and ctl results.
//
// Scheduler messages are consumed here, not routed: they never reach other subscribers, the
// retained store or the offline queues. A refused one is answered on rg/{g}/error/{id} and the
// client stays connected ([MQTT-3.3.5-2] allows a server to drop a PUBLISH it does not authorise).
import type { Aedes, Client, PublishPacket, Subscription } from 'aedes'
import type { Logger } from 'pino'
import { RgError, toRgError } from '../../errors.js'
import { chainAuthorizePublish, chainAuthorizeSubscribe } from '../../hooks.js'
import type { Engine } from '../engine/engine.js'
import type { ActiveRelease } from '../engine/release.js'
import { StatePublisher } from './state-publisher.js'
import { topicMatches, type Topics } from './topics.js'
import type { GroupState, RoundSummary } from '../engine/types.js'

export interface MqttDoorOptions {
  engine: Engine
  topics: Topics
  logger: Logger
  /** largest scheduler payload accepted (bytes) */
  maxMessageBytes: number
  /** may this client act for other clientIds? (the auth plugin answers; nobody without it) */
  isAdmin?: (client: Client) => boolean
}

type Publish = (packet: PublishPacket, client: Client | null, done?: (err?: Error) => void) => void
interface AedesInternals { clients: Record<string, Client | undefined>, publish: Publish }
interface ClientInternals {
  subscriptions: Record<string, { qos: number } | undefined>
  clean: boolean
  connecting: boolean
  connected: boolean
  errored: boolean
  conn: NodeJS.WritableStream & { cork?: () => void, uncork?: () => void, setNoDelay?: (on?: boolean) => unknown, destroyed?: boolean, writableEnded?: boolean }
  /** aedes's next outgoing packet id for this client (lib/qos-packet.js takes from it the same way) */
  _nextId: number
  waitForDrain: (cb: (err?: Error | null) => void) => void
}

const noop = (): void => {}

export class MqttDoor {
  private readonly broker: Aedes & AedesInternals
  private readonly engine: Engine
  private readonly topics: Topics
  private readonly log: Logger
  private readonly opts: MqttDoorOptions
  private readonly state: StatePublisher
  private readonly publishRaw: Publish
  private draining = false

  constructor (broker: Aedes, opts: MqttDoorOptions) {
    this.broker = broker as Aedes & AedesInternals
    this.engine = opts.engine
    this.topics = opts.topics
    this.log = opts.logger
    this.opts = opts
    this.publishRaw = this.broker.publish.bind(broker)
    this.state = new StatePublisher((s) => this.publishState(s))
    this.install()
  }

  /** Stop taking scheduler messages (shutdown: the wills of clients we disconnect are not leaves). */
  drain (): void {
    this.draining = true
    this.state.close()
  }

  /** Publish the retained state of every group now (at start-up). */
  async publishAllStates (): Promise<void> {
    for (const s of await this.engine.listGroups()) this.state.changed(s, true)
  }

  private install (): void {
    const { broker, engine, topics } = this
    // Scheduler messages are applied in authorizePublish, which aedes runs before it acknowledges
    // a QoS 1/2 PUBLISH: a PUBACK means the message is in the store, even if this process dies
    // right after. Synchronous for every other topic: every PUBLISH of every client passes here.
    // A refusal is answered on the error topic and the hook still says yes, so nobody is
    // disconnected for it [MQTT-3.3.5-2].
    chainAuthorizePublish(broker, (client, packet, cb, prev) => {
      if (!topics.owns(packet.topic)) { prev(client, packet, cb); return }
      if (client === null && !this.isTerminalTopic(packet.topic)) { cb(null); return }
      this.fromClient(client, packet).then(() => cb(null), (err: unknown) => {
        this.log.error({ err, topic: packet.topic }, 'scheduler message failed')
        cb(null)
      })
    })
    // ...and then consumed at broker.publish: never routed, retained or queued.
    broker.publish = ((packet: PublishPacket, client?: Client | null | ((err?: Error) => void), done?: (err?: Error) => void) => {
      if (typeof client === 'function') { done = client; client = null }
      if (topics.owns(packet.topic) && (client != null || this.isTerminalTopic(packet.topic))) {
        done?.()
        return
      }
      this.publishRaw(packet, client ?? null, done)
    })
    chainAuthorizeSubscribe(broker, async (client, sub, next) => {
      if (!topics.plausibleFilter(sub.topic)) return null // SUBACK 0x80
      return await next()
    })

    broker.on('subscribe', (subs: Subscription[], client: Client) => this.onSubscribe(subs, client))
    broker.on('clientReady', (client: Client) => this.onClientReady(client))

    engine.on('release', (rel) => this.deliver(rel))
    engine.on('changed', (s, phaseChanged) => this.state.changed(s, phaseChanged))
    engine.on('roundEnd', (summary, local) => { if (local) this.publishSummary(summary) })
    engine.on('kick', (_g, id) => broker.clients[id]?.close())
    engine.on('deleted', (g) => {
      this.state.forget(g)
      this.publishRaw({ cmd: 'publish', topic: topics.state(g), payload: Buffer.alloc(0), qos: 0, retain: true, dup: false }, null, noop)
    })
  }

  private isTerminalTopic (topic: string): boolean {
    const p = this.topics.parse(topic)
    return p.kind === 'hb' || p.kind === 'ready' || p.kind === 'done' || p.kind === 'leave'
  }

  // --- terminal → broker ---------------------------------------------------------------------

  /** One scheduler message. `client` is null for a will published on behalf of a dead broker. */
  private async fromClient (client: Client | null, packet: PublishPacket): Promise<void> {
    if (this.draining) return
    const topic = packet.topic
    const p = this.topics.parse(topic)
    const sender = client?.id ?? (p.kind !== 'bad' && 'id' in p ? p.id : '_')
    const group = p.group ?? (topic.slice(this.topics.prefix.length + 1).split('/')[0] || '_')
    try {
      if (p.kind === 'bad') throw new RgError('bad_topic', p.reason)
      if (p.kind === 'broker-only') throw new RgError('forbidden', `only the broker publishes on ${topic}`)
      const payload = packet.payload
      const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
      if (size > this.opts.maxMessageBytes) {
        throw new RgError('payload_too_large', `scheduler messages are at most ${this.opts.maxMessageBytes} bytes`)
      }
      const body = parseJson(payload, size)
      if (p.kind === 'ctl') {
        await this.ctl(client, p.group, body)
        return
      }
      if (client !== null && p.id !== client.id && this.opts.isAdmin?.(client) !== true) {
        throw new RgError('forbidden', `client ${client.id} may only publish as itself, not as ${p.id}`)
      }
      switch (p.kind) {
        case 'hb': await this.engine.heartbeat(p.group, p.id, body); break
        case 'ready': await this.engine.ready(p.group, p.id, body); break
        case 'leave': await this.engine.leave(p.group, p.id); break
        case 'done': {
          const res = await this.engine.done(p.group, p.id, body)
          if (res.duplicate) throw new RgError('duplicate', `${p.id} already reported round ${(body as { round: number }).round}`)
          break
        }
      }
    } catch (err) {
      const e = toRgError(err)
      if (e.code === 'unavailable' && !(err instanceof RgError)) this.log.error({ err, topic }, 'scheduler message failed')
      this.engine.noteRefused(e.code, 'mqtt')
      this.log.debug({ clientId: sender, group, code: e.code, topic }, e.message)
      this.answer(client, this.topics.error(group, sender), { code: e.code, message: e.message, topic })
    }
  }

  private async ctl (client: Client | null, group: string, body: unknown): Promise<void> {
    const op = (body as { op?: unknown } | null)?.op ?? null
    let answer: Record<string, unknown>
    try {
      await this.engine.ctl(group, body)
      answer = { op, ok: true }
    } catch (err) {
      const e = toRgError(err)
      this.engine.noteRefused(e.code, 'mqtt')
      answer = { op, ok: false, error: { code: e.code, message: e.message } }
    }
    if (client !== null) this.answer(client, this.topics.ctlResult(group, client.id), answer)
  }

  /**
   * An error or ctl result goes straight to the connection that sent the message (if it
   * subscribed to it), not through the broker's routing: it reaches the sender even while cluster
   * messaging (Redis) is down, and nobody else ever receives it.
   */
  private answer (client: Client | null, topic: string, body: unknown): void {
    if (client === null || !client.connected) return
    const qos = grantedQos(client, topic)
    if (qos < 0) return
    client.publish({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(body)), qos: qos as 0 | 1, retain: false, dup: false }, (err) => {
      if (err != null) this.log.debug({ err, topic }, 'answer not delivered')
    })
  }

  // --- broker → terminals --------------------------------------------------------------------

  /** Write each local participant's release straight to its connection. */
  private deliver (rel: ActiveRelease): void {
    const started = process.hrtime.bigint()
    const topic = this.topics.release(rel.group)
    let pending = 1
    let delivered = 0
    const finish = (): void => {
      if (--pending > 0) return
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      this.engine.noteFanout('mqtt', rel.group, rel.round, seconds, delivered)
    }
    const ids = rel.record.participants
    for (let i = 0; i < ids.length; i++) {
      const client = this.broker.clients[ids[i]]
      if (client === undefined || !client.connected) continue
      const qos = grantedQos(client, topic)
      if (qos < 0) continue
      pending++
      delivered++
      this.sendRelease(client, rel.partsAt(i), topic, qos, false, finish)
    }
    finish()
  }

  private sendRelease (client: Client, parts: [Buffer, Buffer], topic: string, qos: number, retain: boolean, done: () => void): void {
    // TCP_NODELAY on a participant's socket (once; Node skips repeats): the release follows the
    // PUBACKs of the readies, and with Nagle on, the kernel holds it until those are ACKed, which
    // terminals delay up to 40 ms. Plain pub/sub connections keep Nagle's batching.
    ;(client as unknown as ClientInternals).conn.setNoDelay?.(true)
    if ((client as unknown as ClientInternals).clean) {
      writeRelease(client as unknown as ClientInternals, topic, qos, retain, parts)
      done()
      return
    }
    // a persistent session: through aedes, which stores the QoS 1 message for retransmission
    client.publish({ cmd: 'publish', topic, payload: Buffer.concat(parts), qos: qos as 0 | 1, retain, dup: false }, done)
  }

  /** A participant subscribing during its round gets its release at once, as a retained message. */
  private onSubscribe (subs: Subscription[], client: Client): void {
    this.offerReleases(client, (topic) => {
      let qos = -1 // only the filters of this SUBSCRIBE count, and only those granted
      for (const s of subs) {
        if ((s.qos as number) !== 128 && topicMatches(s.topic, topic)) qos = Math.max(qos, Math.min(1, s.qos))
      }
      return qos
    })
  }

  /** A participant coming back on a persistent session, its subscription restored. */
  private onClientReady (client: Client): void {
    this.offerReleases(client, (topic) => grantedQos(client, topic))
  }

  /** The release of every round `client` takes part in, at the QoS `qosFor` grants (-1: none). */
  private offerReleases (client: Client, qosFor: (topic: string) => number): void {
    for (const rel of this.engine.activeReleases()) {
      if (!rel.has(client.id)) continue
      const topic = this.topics.release(rel.group)
      const qos = qosFor(topic)
      if (qos < 0) continue
      const parts = rel.encodeParts(client.id)
      if (parts !== null) this.sendRelease(client, parts, topic, qos, true, noop)
    }
  }

  private publishState (s: GroupState): void {
    this.send(this.topics.state(s.group), s, 1, true)
  }

  private publishSummary (s: RoundSummary): void {
    this.send(this.topics.rounds(s.group), s, 1, false)
  }

  private send (topic: string, body: unknown, qos: 0 | 1, retain: boolean): void {
    const payload = Buffer.from(JSON.stringify(body))
    this.publishRaw({ cmd: 'publish', topic, payload, qos, retain, dup: false }, null, (err) => {
      if (err != null) this.log.warn({ err, topic }, 'publish failed')
    })
  }
}

function parseJson (payload: Buffer | string, size: number): unknown {
  if (size === 0) return {}
  try {
    return JSON.parse(payload.toString())
  } catch {
    throw new RgError('bad_request', 'the payload is not valid JSON')
  }
}

/**
 * Write one release PUBLISH [MQTT-3.3] straight to a clean-session client's connection: fixed
 * header, topic, packet id, then the payload as the release's shared prefix and this participant's
 * tail, corked into one writev. This is what aedes's client.publish ends in for a clean session
 * (lib/client.js deliverQoS → write.js), without its per-message Packet, setImmediate and forward
 * check: QoS 1 takes its packet id from client._nextId exactly as lib/qos-packet.js does, so ids
 * never collide with aedes's own, and nothing is stored (aedes stores nothing for clean sessions
 * either; the PUBACK then finds no stored packet, as for aedes's own QoS 1 sends). A socket that
 * does not drain falls under aedes's drainTimeout like any other write.
 */
function writeRelease (client: ClientInternals, topic: string, qos: number, retain: boolean, [prefix, tail]: [Buffer, Buffer]): void {
  if (!(client.connecting || client.connected) || client.errored) return
  const conn = client.conn
  if (conn.destroyed === true || conn.writableEnded === true) return
  const topicBytes = Buffer.byteLength(topic)
  const length = 2 + topicBytes + (qos > 0 ? 2 : 0) + prefix.length + tail.length
  let lengthBytes = 1
  while (length >= 128 ** lengthBytes) lengthBytes++ // [MQTT-2.2.3] remaining length, at most 4 bytes
  const head = Buffer.allocUnsafe(1 + lengthBytes + 2 + topicBytes + (qos > 0 ? 2 : 0))
  let i = 0
  head[i++] = 0x30 | (qos << 1) | (retain ? 1 : 0)
  let rest = length
  do {
    let b = rest % 128
    rest = Math.floor(rest / 128)
    if (rest > 0) b |= 128
    head[i++] = b
  } while (rest > 0)
  head.writeUInt16BE(topicBytes, i)
  i += 2
  i += head.write(topic, i)
  if (qos > 0) {
    const id = client._nextId
    client._nextId = id >= 65535 ? 1 : id + 1
    head.writeUInt16BE(id, i)
  }
  conn.cork?.()
  conn.write(head)
  conn.write(prefix)
  const ok = conn.write(tail)
  conn.uncork?.()
  if (!ok) client.waitForDrain(noop)
}

/** The QoS a client gets on `topic`: the highest of its matching subscriptions, at most 1; -1 if none. */
function grantedQos (client: Client, topic: string): number {
  const subs = (client as unknown as ClientInternals).subscriptions
  let qos = -1
  for (const filter in subs) {
    const s = subs[filter]
    if (s !== undefined && topicMatches(filter, topic)) qos = Math.max(qos, Math.min(1, s.qos))
    if (qos === 1) break
  }
  return qos
}

export function installSchedulerDoor (broker: Aedes, opts: MqttDoorOptions): MqttDoor {
  return new MqttDoor(broker, opts)
}
