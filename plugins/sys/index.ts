// $SYS topics, as other brokers publish them: every `intervalS` seconds, retained, QoS 0, values as
// plain text (mosquitto's style) under $SYS/roundgate/:
//
//   version                      "roundgate 0.1.0"
//   uptime                       seconds since this process started
//   clients/connected            MQTT clients connected to this process
//   messages/received            PUBLISH packets received from clients (scheduler messages too)
//   messages/sent                PUBLISH packets sent to clients (releases, answers, routed messages)
//   bytes/received, bytes/sent   bytes on this process's MQTT connections (TCP, TLS, WebSocket)
//   groups                       number of groups
//   groups/{g}                   JSON counts of one group: phase, round, paused, online, onlineBoss,
//                                ready, readyBoss, participants, done, dropped (published when they
//                                changed; cleared when the group is deleted)
//
// In cluster mode the per-process figures (all but groups) go under $SYS/roundgate/nodes/{brokerId}/
// instead, since every process's messages reach every subscriber; the group counts are the same
// from every process. Clients cannot publish under $SYS/ (aedes refuses it and closes the connection).
//
// Reading: with no `canRead`, anyone may subscribe. With authentication on, broker/server.ts passes
// `canRead` (from the auth plugin's identity: true for viewers and admins): a subscription whose filter can match anything under
// $SYS/roundgate (isSysFilter) is then refused with SUBACK 0x80 for anyone else, so neither live
// nor retained values reach them. Install this plugin after the auth plugin, so that messages the
// auth plugin's authorizeForward refuses are not counted as sent.
import type { Aedes, Client } from 'aedes'
import type { Logger } from 'pino'
import { chainAuthorizePublish, chainAuthorizeSubscribe } from '../hooks.js'
import { rawPublish } from '../internals.js'
import { topicMatches, type Engine, type GroupState } from '../scheduler/index.js'

export const SYS_ROOT = '$SYS/roundgate'

/** Does this subscription filter match (some) topics under $SYS/roundgate? */
export function isSysFilter (filter: string): boolean {
  const levels = filter.split('/')
  if (levels[0] !== '$SYS') return false
  if (levels.length === 1) return false
  return levels[1] === '#' || levels[1] === '+' || levels[1] === 'roundgate'
}

export interface SysOptions {
  engine: Engine
  /** seconds between two publications; 0 turns the topics off (counting goes on, for stats()) */
  intervalS: number
  version: string
  logger: Logger
  /** the aedes broker id in cluster mode: per-process figures go under nodes/{id} */
  node?: string | null
  /** may this client read $SYS/roundgate? Absent: everyone may (no authentication). */
  canRead?: (client: Client) => boolean
}

export interface SysStats {
  uptime: number
  clientsConnected: number
  messagesReceived: number
  messagesSent: number
  bytesReceived: number
  bytesSent: number
}

/** A connection's socket: net.Socket and tls.TLSSocket count their bytes. */
interface Counted { bytesRead: number, bytesWritten: number, once: (event: 'close', fn: () => void) => unknown }

export interface Sys {
  /** Count the bytes of one MQTT connection (its TCP socket, also under TLS or WebSocket). */
  track: (socket: Counted) => void
  stats: () => SysStats
  /** Publish everything now (also what did not change). */
  publishNow: () => Promise<void>
  /**
   * The MQTT door wrote a release to `delivered` participants: releases go straight to their
   * connections, past authorizeForward, so the door tells (broker/server.ts wires its observer).
   */
  releasesSent: (delivered: number) => void
  close: () => void
}

export function installSys (broker: Aedes, opts: SysOptions): Sys {
  const started = Date.now()
  const root = opts.node != null ? `${SYS_ROOT}/nodes/${opts.node}` : SYS_ROOT
  const log = opts.logger
  let received = 0
  let sent = 0
  let closedRead = 0
  let closedWritten = 0
  const live = new Set<Counted>()

  chainAuthorizePublish(broker, (client, packet, cb, prev) => {
    if (client !== null) received++
    prev(client, packet, cb)
  })
  // [MQTT-4.7.2-1] a filter starting with a wildcard matches no topic starting with $. aedes 1.2
  // keeps to it for live messages but not for retained ones (a '#' subscriber gets the retained
  // $SYS values), so a $-topic is forwarded here only to a client holding a $-filter that matches
  // it, which the 'subscribe' events tell (restored sessions included); and $SYS/roundgate only to
  // clients canRead allows.
  const dollarFilters = new WeakMap<Client, Set<string>>()
  broker.on('subscribe', (subs, client) => {
    for (const sub of subs) {
      if (sub.topic.charCodeAt(0) !== 36 || (sub.qos as number) === 128) continue // 128: refused
      let set = dollarFilters.get(client)
      if (set === undefined) dollarFilters.set(client, set = new Set())
      set.add(sub.topic)
    }
  })
  broker.on('unsubscribe', (topics, client) => {
    const set = dollarFilters.get(client)
    if (set !== undefined) for (const topic of topics) set.delete(topic)
  })
  const dollarAllowed = (client: Client, topic: string): boolean => {
    const filters = dollarFilters.get(client)
    if (filters === undefined || ![...filters].some((f) => topicMatches(f, topic))) return false
    return opts.canRead === undefined || !topic.startsWith(`${SYS_ROOT}/`) || opts.canRead(client)
  }
  const prevForward = broker.authorizeForward.bind(broker)
  broker.authorizeForward = (client, packet) => {
    if (packet.topic.charCodeAt(0) === 36 && !dollarAllowed(client, packet.topic)) return null
    const out = prevForward(client, packet)
    if (out != null) sent++
    return out
  }

  // Nobody but the broker writes under $SYS/: aedes's own authorizePublish, at the end of the
  // chain, refuses such a PUBLISH from a client and closes its connection.
  const publishRaw = rawPublish(broker)

  if (opts.canRead !== undefined) {
    const canRead = opts.canRead
    chainAuthorizeSubscribe(broker, async (client, sub, next) => {
      if (isSysFilter(sub.topic) && !canRead(client)) return null // SUBACK 0x80
      return await next()
    })
  }

  const stats = (): SysStats => {
    let read = closedRead
    let written = closedWritten
    for (const s of live) { read += s.bytesRead; written += s.bytesWritten }
    return {
      uptime: Math.floor((Date.now() - started) / 1000),
      clientsConnected: broker.connectedClients,
      messagesReceived: received,
      messagesSent: sent,
      bytesReceived: read,
      bytesSent: written
    }
  }

  const publish = (topic: string, value: string): void => {
    publishRaw({ cmd: 'publish', topic, payload: Buffer.from(value), qos: 0, retain: true, dup: false }, null, (err) => {
      if (err != null) log.warn({ err, topic }, '$SYS publish failed')
    })
  }

  const lastGroups = new Map<string, string>()
  const publishGroups = async (all: boolean): Promise<void> => {
    const states: GroupState[] = await opts.engine.listGroups()
    publish(`${SYS_ROOT}/groups`, String(states.length))
    const seen = new Set<string>()
    for (const s of states) {
      seen.add(s.group)
      const counts = JSON.stringify({
        phase: s.phase, round: s.round, paused: s.paused, online: s.online, onlineBoss: s.onlineBoss,
        ready: s.ready, readyBoss: s.readyBoss, participants: s.participants, done: s.done, dropped: s.dropped
      })
      if (!all && lastGroups.get(s.group) === counts) continue
      lastGroups.set(s.group, counts)
      publish(`${SYS_ROOT}/groups/${s.group}`, counts)
    }
    for (const g of lastGroups.keys()) {
      if (seen.has(g)) continue
      lastGroups.delete(g)
      publish(`${SYS_ROOT}/groups/${g}`, '') // an empty retained message clears it
    }
  }

  const publishAll = async (all: boolean): Promise<void> => {
    const s = stats()
    publish(`${root}/version`, `roundgate ${opts.version}`)
    publish(`${root}/uptime`, String(s.uptime))
    publish(`${root}/clients/connected`, String(s.clientsConnected))
    publish(`${root}/messages/received`, String(s.messagesReceived))
    publish(`${root}/messages/sent`, String(s.messagesSent))
    publish(`${root}/bytes/received`, String(s.bytesReceived))
    publish(`${root}/bytes/sent`, String(s.bytesSent))
    await publishGroups(all)
  }

  let failing = false
  const timer = opts.intervalS > 0
    ? setInterval(() => {
      publishAll(false).then(() => {
        if (failing) log.info('$SYS topics published again')
        failing = false
      }, (err) => {
        if (!failing) log.warn({ err }, '$SYS topics not published (the group states could not be read); retrying every interval')
        failing = true
      })
    }, opts.intervalS * 1000)
    : null
  timer?.unref()

  return {
    track (socket) {
      live.add(socket)
      socket.once('close', () => {
        live.delete(socket)
        closedRead += socket.bytesRead
        closedWritten += socket.bytesWritten
      })
    },
    stats,
    publishNow: async () => await publishAll(true),
    releasesSent (delivered) { sent += delivered },
    close () {
      if (timer !== null) clearInterval(timer)
    }
  }
}
