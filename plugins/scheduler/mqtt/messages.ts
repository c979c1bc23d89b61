// Terminal and operator messages under the prefix (PROTOCOL section 4), turned into engine calls.
// A refused one is answered on rg/{g}/error/{id} and the client stays connected ([MQTT-3.3.5-2]
// allows a server to drop a PUBLISH it does not authorise); a ctl is answered on
// rg/{g}/ctl/result/{id}. Answers go straight to the sender's own connection.
import type { Client, PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import { RgError, toRgError } from '../../errors.js'
import { noDelay, willOwnerId } from '../../internals.js'
import type { Engine } from '../engine/engine.js'
import { grantedQos } from './fanout.js'
import type { DoorObserver } from './observer.js'
import type { Topics } from './topics.js'
import { parseJson } from '../../safe-json.js'

export interface MessageOptions {
  engine: Engine
  topics: Topics
  logger: Logger
  /** largest scheduler payload accepted (bytes) */
  maxMessageBytes: number
  /** may this client act for other clientIds? (the auth plugin answers; nobody without it) */
  isAdmin?: (client: Client) => boolean
  /**
   * Why this message may not be applied, or null (the auth plugin answers; everything goes
   * without it). `client` is null for a will fired for a client of a dead broker.
   */
  mayPublish?: (client: Client | null, packet: PublishPacket, kind: 'hb' | 'ready' | 'done' | 'leave' | 'ctl', group: string) => string | null
  /** throws RgError `rate_limited` when `clientId` (from `client`'s address) sends too much */
  rateLimit?: (clientId: string, client: Client | null) => Promise<void>
  observer?: DoorObserver
}

export class SchedulerMessages {
  private readonly engine: Engine
  private readonly topics: Topics
  private readonly log: Logger
  private readonly opts: MessageOptions

  constructor (opts: MessageOptions) {
    this.engine = opts.engine
    this.topics = opts.topics
    this.log = opts.logger
    this.opts = opts
  }

  /**
   * One scheduler message. `client` is null for a will aedes fires for a client of a dead broker
   * of the cluster (aedes.js _clearWills): its owner is then the clientId the persistence filed it
   * under, and it gets exactly the identity check a live client's message gets.
   */
  async handle (client: Client | null, packet: PublishPacket): Promise<void> {
    const topic = packet.topic
    const p = this.topics.parse(topic)
    const actor = client !== null ? client.id : willOwnerId(packet)
    const sender = actor ?? '_'
    const group = p.group ?? (topic.slice(this.topics.prefix.length + 1).split('/')[0] || '_')
    try {
      if (actor === undefined) throw new RgError('forbidden', 'a will without an owner')
      if (p.kind === 'bad') throw new RgError('bad_topic', p.reason)
      if (p.kind === 'broker-only') throw new RgError('forbidden', `only the broker publishes on ${topic}`)
      const payload = packet.payload
      const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
      if (size > this.opts.maxMessageBytes) {
        throw new RgError('payload_too_large', `scheduler messages are at most ${this.opts.maxMessageBytes} bytes`)
      }
      const refusal = this.opts.mayPublish?.(client, packet, p.kind, p.group) ?? null
      if (refusal !== null) throw new RgError('forbidden', refusal)
      if (p.kind !== 'ctl' && p.id !== actor && (client === null || this.opts.isAdmin?.(client) !== true)) {
        throw new RgError('forbidden', `client ${actor} may only publish as itself, not as ${p.id}`)
      }
      if (p.kind === 'ctl') {
        // every answer to a ctl, a refused one too, goes where the admin waits: ctl/result
        await this.ctl(client, p.group, payload, actor)
        return
      }
      await this.opts.rateLimit?.(actor, client)
      const body = parseJsonSafe(payload)
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
      this.opts.observer?.refused(e.code, 'mqtt')
      this.log.debug({ clientId: sender, group, code: e.code, topic }, e.message)
      this.answer(client, this.topics.error(group, sender), { code: e.code, message: e.message, topic })
    }
  }

  private async ctl (client: Client | null, group: string, payload: Buffer | string, actor: string): Promise<void> {
    let op: unknown = null
    let answer: Record<string, unknown>
    try {
      const body = parseJsonSafe(payload)
      op = (body as { op?: unknown } | null)?.op ?? null
      await this.opts.rateLimit?.(actor, client)
      answer = { op, ...await this.engine.ctl(group, body) }
    } catch (err) {
      const e = toRgError(err)
      this.opts.observer?.refused(e.code, 'mqtt')
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
    // the PUBACK of what caused this answer follows it: without TCP_NODELAY it would wait for the
    // client's delayed ACK of this one (~40 ms)
    noDelay(client)
    client.publish({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(body)), qos: qos as 0 | 1, retain: false, dup: false }, (err) => {
      if (err != null) this.log.debug({ err, topic }, 'answer not delivered')
    })
  }
}

function parseJsonSafe (payload: Buffer | string): unknown {
  if (payload.length === 0) return {}
  return parseJson(payload.toString(), 'the payload')
}
