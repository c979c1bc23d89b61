// The auth plugin's MQTT half: aedes hooks that authenticate every CONNECT (credentials file or
// JWT), bind the clientId to the credentials, and authorize every PUBLISH, SUBSCRIBE and delivered
// message (authorizeForward, synchronous), by role under the prefix (rights.ts) and by the ACL
// outside it (acl.ts). A JWT session is closed when its token expires. Installed after the
// scheduler's door, so its hooks run first and hand prefix topics on to the door, which asks
// `guard` before it applies a scheduler message (and answers a refusal on the error topic).
import type { Aedes, Client, PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import { chainAuthenticate, chainAuthorizeForward, chainAuthorizePublish, chainAuthorizeSubscribe } from '../hooks.js'
import { isSysFilter, SYS_ROOT } from '../sys/index.js'
import { markWill, rawPublish, replacePublish, willOwnerId, willOwnerMark } from '../internals.js'
import type { Acl } from './acl.js'
import { NAME, identityOf, isCurrent, mayUseClientId, ownerRecord, type Identity } from './identity.js'
import { mayReadPrefixed, maySubscribePrefixed, schedulerRefusal, type SchedulerKind } from './rights.js'
import { AuthFailure, type AuthService } from './service.js'

export interface MqttAuthOptions {
  service: AuthService
  acl: Acl
  /** the roundgate topic prefix (`rg`) */
  prefix: string
  logger: Logger
}

/** The door's questions (MessageOptions.isAdmin / mayPublish). */
export interface SchedulerGuard {
  isAdmin: (client: Client) => boolean
  mayPublish: (client: Client | null, packet: PublishPacket, kind: SchedulerKind, group: string) => string | null
}

const SYS_PREFIX = `${SYS_ROOT}/`

/** setTimeout's longest delay; a later expiry is re-armed from there */
const MAX_TIMER_MS = 2 ** 31 - 1

export class MqttAuth {
  readonly guard: SchedulerGuard
  private readonly broker: Aedes
  private readonly opts: MqttAuthOptions
  private readonly log: Logger
  private readonly head: string
  /** the levels after the prefix of the last topic forwarded (aedes asks once per subscriber) */
  private lastTopic = ''
  private lastLevels: string[] = []
  /** each authenticated client's identity, as its credentials say now */
  private readonly sessions = new WeakMap<Client, Identity>()
  private readonly live = new Set<Client>()
  private readonly timers = new WeakMap<Client, NodeJS.Timeout>()
  /** PUBLISH packets the ACL refused: acknowledged, never routed */
  private readonly dropped = new WeakSet<object>()

  constructor (broker: Aedes, opts: MqttAuthOptions) {
    this.broker = broker
    this.opts = opts
    this.log = opts.logger
    this.head = opts.prefix + '/'
    this.guard = {
      isAdmin: (client) => this.identity(client)?.role === 'admin',
      mayPublish: (client, packet, kind, group) => {
        const id = client !== null ? this.identity(client) : this.willOwner(packet)
        if (id === null) return 'no valid credentials for this message'
        const actsFor = kind === 'ctl' ? null : client?.id ?? willOwnerId(packet) ?? null
        return schedulerRefusal(id, kind, group, actsFor)
      }
    }
    this.install()
  }

  /** Connected clients authenticated now. */
  get size (): number {
    return this.live.size
  }

  /** The identity `client` acts with now, or null (credentials gone or expired). */
  identity (client: Client): Identity | null {
    const id = this.sessions.get(client)
    if (id === undefined) return null
    return this.opts.service.current(id)
  }

  /**
   * After a reload of the credentials file: every connection stays, with the rights the file now
   * gives; one whose user is gone or may no longer use its clientId is closed.
   */
  recheck (): number {
    let closed = 0
    for (const client of this.live) {
      const id = this.identity(client)
      if (id === null || !mayUseClientId(id, client.id)) {
        this.log.info({ clientId: client.id }, 'credentials withdrawn by the reload: disconnecting')
        closed++
        client.close()
      } else {
        this.sessions.set(client, id)
      }
    }
    return closed
  }

  private install (): void {
    const { broker, opts } = this
    chainAuthenticate(broker, async (client, username, password) => await this.authenticate(client, username, password))

    // Outside the prefix the ACL decides; a refused PUBLISH is acknowledged and dropped
    // [MQTT-3.3.5-2], like a refused scheduler message. Prefix topics go on to the door.
    chainAuthorizePublish(broker, (client, packet, cb, prev) => {
      if (packet.topic.startsWith(this.head)) { prev(client, packet, cb); return }
      const id = client !== null ? this.identity(client) : this.willOwner(packet)
      const clientId = client?.id ?? willOwnerId(packet) ?? ''
      if (id === null || !opts.acl.mayPublish(id, clientId, packet.topic)) {
        this.log.debug({ clientId, topic: packet.topic }, 'publish refused by the ACL')
        this.dropped.add(packet)
        cb(null)
        return
      }
      prev(client, packet, cb)
    })
    const publish = rawPublish(broker)
    replacePublish(broker, (packet, client, done) => {
      if (this.dropped.has(packet)) { this.dropped.delete(packet); done?.(); return }
      publish(packet, client, done)
    })

    chainAuthorizeSubscribe(broker, async (client, sub, next) => {
      const id = this.identity(client)
      if (id === null) return null
      // $SYS/roundgate/...: not the ACL's; the sys plugin's canRead (viewers and admins) decides
      if (isSysFilter(sub.topic)) return await next()
      const ok = sub.topic.startsWith(this.head)
          ? maySubscribePrefixed(id, client.id, sub.topic.slice(this.head.length).split('/'))
          : opts.acl.maySubscribe(id, client.id, sub.topic)
      if (!ok) {
        this.log.debug({ clientId: client.id, filter: sub.topic }, 'subscription refused')
        return null
      }
      return await next()
    })

    // Every delivered message, retained and queued ones included: synchronous, no I/O.
    chainAuthorizeForward(broker, (client, packet, prev) => {
      const id = this.sessions.get(client)
      if (id === undefined || !isCurrent(id)) return null
      const topic = packet.topic
      if (topic.startsWith(SYS_PREFIX)) return prev(client, packet) // the sys plugin's canRead decides
      const ok = topic.startsWith(this.head)
          ? mayReadPrefixed(id, client.id, this.levelsOf(topic))
          : opts.acl.mayRead(id, client.id, topic)
      return ok ? prev(client, packet) : null
    })
  }

  /** The levels of a topic under the prefix, split once for all the subscribers of one message. */
  private levelsOf (topic: string): string[] {
    if (topic !== this.lastTopic) {
      this.lastLevels = topic.slice(this.head.length).split('/')
      this.lastTopic = topic
    }
    return this.lastLevels
  }

  private async authenticate (client: Client, username: string | undefined, password: Buffer | undefined): Promise<boolean> {
    // CVE-2017-7650: a user name with + # / could widen a %u rule; refused whatever follows
    if (username !== undefined && username !== '' && !NAME.test(username)) {
      throw refusal(4, 'the user name must be 1-128 of A-Z a-z 0-9 _ . : - (never + # /)')
    }
    let id: Identity
    try {
      id = await this.opts.service.mqtt(username, password)
    } catch (err) {
      if (!(err instanceof AuthFailure)) throw err
      this.log.info({ clientId: client.id, username, why: err.message }, 'CONNECT refused')
      throw refusal(err.kind === 'missing' ? 5 : err.kind === 'busy' ? 3 : 4, err.message)
    }
    if (!mayUseClientId(id, client.id)) {
      this.log.info({ clientId: client.id, user: id.user }, 'CONNECT refused: the credentials do not allow this clientId')
      throw refusal(5, `${id.user} may not connect as ${client.id}`)
    }
    this.sessions.set(client, id)
    this.live.add(client)
    markWill(client, ownerRecord(id))
    client.conn.once('close', () => this.forget(client))
    if (id.exp !== null) this.expireAt(client, id.exp)
    return true
  }

  /** Close a token session when its token expires (PROTOCOL section 7). */
  private expireAt (client: Client, exp: number): void {
    const wait = exp - Date.now()
    const timer = setTimeout(() => {
      if (Date.now() < exp) { this.expireAt(client, exp); return }
      this.log.info({ clientId: client.id }, 'token expired: disconnecting')
      client.close()
    }, Math.min(Math.max(0, wait), MAX_TIMER_MS))
    timer.unref()
    this.timers.set(client, timer)
  }

  private forget (client: Client): void {
    this.live.delete(client)
    const t = this.timers.get(client)
    if (t !== undefined) clearTimeout(t)
  }

  /**
   * The owner of a will fired with no client attached (a dead broker's, aedes _clearWills): the
   * identity its owner had when it connected, looked up again now (a user removed since has none).
   * The mark must name the same clientId the persistence filed the will under.
   */
  private willOwner (packet: PublishPacket): Identity | null {
    const rec = identityOf(willOwnerMark(packet))
    const ownerId = willOwnerId(packet)
    if (rec === null || ownerId === undefined || !mayUseClientId(rec, ownerId)) return null
    return this.opts.service.current(rec)
  }
}

function refusal (returnCode: 2 | 3 | 4 | 5, message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode })
}

export function installMqttAuth (broker: Aedes, opts: MqttAuthOptions): MqttAuth {
  return new MqttAuth(broker, opts)
}
