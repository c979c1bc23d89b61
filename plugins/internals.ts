// Every access roundgate makes to a dependency's private (undocumented or untyped) fields, in one
// file, so an upgrade of aedes, mqtt-packet, mqemitter-redis or uWebSockets.js is checked here and
// nowhere else. Each function says which field it reads or writes and why the public API does not do.
import type { Aedes, Client, Connection, PublishPacket } from 'aedes'
import type { IncomingMessage } from 'node:http'
import type { TemplatedApp } from 'uWebSockets.js'

// --- aedes 1.x: the broker ----------------------------------------------------------------------

/** aedes' publish takes the publishing client as its second argument (types show only two). */
export type RawPublish = (packet: PublishPacket, client: Client | null, done?: (err?: Error) => void) => void

interface BrokerInternals {
  /** connected clients by clientId (lib/aedes.js `this.clients`) */
  clients: Record<string, Client | undefined>
  publish: RawPublish
}

/** The connected client with this id in this process, if any (aedes keeps them in `clients`). */
export function clientById (broker: Aedes, id: string): Client | undefined {
  return (broker as unknown as BrokerInternals).clients[id]
}

/** aedes' own publish, bound, with its three-argument form. */
export function rawPublish (broker: Aedes): RawPublish {
  const b = broker as unknown as BrokerInternals
  return b.publish.bind(broker)
}

/**
 * Replace broker.publish with `publish`, which receives every publish in its three-argument form
 * (aedes calls broker.publish(packet, client, done) for client publishes, and users call it with
 * two): the scheduler consumes its own topics there.
 */
export function replacePublish (broker: Aedes, publish: RawPublish): void {
  const b = broker as unknown as BrokerInternals
  b.publish = (packet: PublishPacket, client?: Client | null | ((err?: Error) => void), done?: (err?: Error) => void) => {
    if (typeof client === 'function') { done = client; client = null }
    publish(packet, client ?? null, done)
  }
}

// --- aedes 1.x and aedes-persistence: wills ---------------------------------------------------

/** Field roundgate adds to a will at CONNECT: who set it (plain data, kept by the persistence). */
const WILL_OWNER = 'roundgateOwner'

/**
 * Mark the will a connecting client gave in its CONNECT with `owner`. aedes keeps that will in
 * client._will while the client authenticates (lib/handlers/connect.js init), then stores the same
 * object with persistence.putWill (msgpack in Redis: plain fields survive), so the mark travels
 * with it to whichever broker fires it. No-op when the CONNECT carried no will.
 */
export function markWill (client: Client, owner: object): void {
  const will = (client as unknown as { _will?: Record<string, unknown> | null })._will
  if (will !== null && will !== undefined) will[WILL_OWNER] = owner
}

/**
 * The owner of a will being fired: aedes-persistence's putWill writes `clientId` (and `brokerId`)
 * onto the will packet, and aedes's _clearWills (wills of a dead broker of the cluster) authorizes
 * and publishes that packet with no client at all: `clientId` is then the only name of its owner.
 */
export function willOwnerId (packet: PublishPacket): string | undefined {
  const id = (packet as unknown as { clientId?: unknown }).clientId
  return typeof id === 'string' ? id : undefined
}

/** The mark markWill left on a will (undefined for any other packet). */
export function willOwnerMark (packet: PublishPacket): unknown {
  return (packet as unknown as Record<string, unknown>)[WILL_OWNER]
}

// --- aedes 1.x: one client ----------------------------------------------------------------------

interface ClientInternals {
  /** granted subscriptions, filter → { qos } (lib/client.js) */
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

const inner = (client: Client): ClientInternals => client as unknown as ClientInternals

/** The client's granted subscriptions (filter → QoS); aedes exposes no reader for them. */
export function subscriptionsOf (client: Client): Record<string, { qos: number } | undefined> {
  return inner(client).subscriptions
}

/**
 * TCP_NODELAY on a client's socket (Node ignores repeats). A release follows the PUBACKs of the
 * readies; with Nagle on, the kernel holds it until those are ACKed, which terminals delay up to
 * 40 ms. Only release participants get it: plain pub/sub keeps Nagle's batching.
 */
export function noDelay (client: Client): void {
  inner(client).conn.setNoDelay?.(true)
}

const noop = (): void => { /* the write's fate is aedes' own drain handling */ }

/**
 * Write one PUBLISH [MQTT-3.3] straight to a clean-session client's connection: fixed header, topic,
 * packet id, then the payload given in parts (a shared prefix and a per-client tail), corked into
 * one writev. This is what aedes's client.publish ends in for a clean session (lib/client.js
 * deliverQoS → write.js), without its per-message Packet, setImmediate and forward check: QoS 1
 * takes its packet id from client._nextId exactly as lib/qos-packet.js does, so ids never collide
 * with aedes's own, and nothing is stored (aedes stores nothing for clean sessions either; the
 * PUBACK then finds no stored packet, as for aedes's own QoS 1 sends). A socket that does not
 * drain falls under aedes's drainTimeout like any other write. Returns false when nothing was
 * written (not a clean session, or the connection is gone): send it through client.publish then.
 */
export function writePublish (client: Client, topic: string, qos: number, retain: boolean, parts: readonly Buffer[]): boolean {
  const c = inner(client)
  if (!c.clean) return false
  if (!(c.connecting || c.connected) || c.errored) return true // gone: nothing to deliver to
  const conn = c.conn
  if (conn.destroyed === true || conn.writableEnded === true) return true
  const topicBytes = Buffer.byteLength(topic)
  let payloadBytes = 0
  for (const p of parts) payloadBytes += p.length
  const length = 2 + topicBytes + (qos > 0 ? 2 : 0) + payloadBytes
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
    const id = c._nextId
    c._nextId = id >= 65535 ? 1 : id + 1
    head.writeUInt16BE(id, i)
  }
  conn.cork?.()
  conn.write(head)
  let ok = true
  for (const p of parts) ok = conn.write(p)
  conn.uncork?.()
  if (!ok) c.waitForDrain(noop)
  return true
}

// --- mqtt-packet: the parser aedes gives each client --------------------------------------------

interface ParserInternals {
  _parseLength: () => boolean
  _emitError: (err: Error) => void
  packet: { length: number }
}

/**
 * Close any connection that announces a packet larger than `maxBytes`, before buffering it: the
 * parser's remaining-length step (`_parseLength`) is wrapped so the check runs as soon as the
 * header is read. aedes 1.2 has no such limit of its own.
 */
export function limitPacketLength (broker: Aedes, maxBytes: number): void {
  const handle = broker.handle
  broker.handle = (conn: Connection, req?: IncomingMessage): Client => {
    const client = handle(conn, req)
    const parser = (client as unknown as { _parser: ParserInternals })._parser
    const parseLength = parser._parseLength
    parser._parseLength = function guardedParseLength (this: ParserInternals): boolean {
      const ok = parseLength.call(this)
      if (ok && this.packet.length > maxBytes) {
        this._emitError(new Error(`packet of ${this.packet.length} bytes exceeds the ${maxBytes} byte limit`))
        return false
      }
      return ok
    }
    return client
  }
}

// --- mqemitter-redis ----------------------------------------------------------------------------

/** mqemitter-redis re-emits its connections' errors on `state`; unheard, they end the process. */
export function onMqEmitterError (mq: unknown, onError: (err: Error) => void): void {
  ;(mq as { state: NodeJS.EventEmitter }).state.on('error', onError)
}

// --- aedes-persistence-redis --------------------------------------------------------------------

/**
 * The Redis list holding a persistent session's queued messages (asyncPersistence.js outgoingKey:
 * `outgoing:` + the URI-encoded clientId); its LLEN is the session's queue length.
 */
export function outgoingQueueKey (clientId: string): string {
  return `outgoing:${encodeURIComponent(clientId)}`
}

// --- uWebSockets.js -----------------------------------------------------------------------------

/** App.close() (µWS ≥ 20.30) closes every connection; the typings of the pinned build omit it. */
export function closeApp (app: TemplatedApp): void {
  const closable = app as unknown as { close?: () => void }
  if (typeof closable.close === 'function') closable.close()
}
