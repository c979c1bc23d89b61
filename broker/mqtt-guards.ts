// Broker-wide MQTT guards that aedes 1.2 leaves to its users.
import type { Aedes, Client, Connection } from 'aedes'
import type { IncomingMessage } from 'node:http'
import mqttPacket from 'mqtt-packet'
import type { Logger } from 'pino'
import { chainPreConnect } from './hooks.js'

/**
 * [MQTT-3.1.3-8]: a zero-byte ClientId with CleanSession=0 is answered with CONNACK 0x02
 * (identifier rejected) and the connection is closed. aedes 1.2 would invent an id instead.
 */
export function refuseEmptyIdWithSession (broker: Aedes, log: Logger): void {
  chainPreConnect(broker, async (client, packet, next) => {
    if ((packet.clientId ?? '') === '' && packet.clean === false) {
      log.debug('refused CONNECT: empty clientId with CleanSession=0')
      const conn = client.conn
      mqttPacket.writeToStream({ cmd: 'connack', returnCode: 2, sessionPresent: false }, conn)
      conn.end()
      return false
    }
    return await next()
  })
}

/**
 * While the shared state is unreachable (cluster mode without Redis), a CONNECT is answered at once
 * with CONNACK 0x03, server unavailable [MQTT-3.2.2-6], instead of waiting on session storage.
 * The client retries later, or elsewhere through its balancer.
 */
export function refuseWhileUnavailable (broker: Aedes, available: () => boolean, log: Logger): void {
  chainPreConnect(broker, async (client, _packet, next) => {
    if (!available()) {
      log.debug('refused CONNECT: shared state unreachable')
      const conn = client.conn
      mqttPacket.writeToStream({ cmd: 'connack', returnCode: 3, sessionPresent: false }, conn)
      conn.end()
      return false
    }
    return await next()
  })
}

interface ParserInternals {
  _parseLength: () => boolean
  _emitError: (err: Error) => void
  packet: { length: number }
}

/**
 * Close any connection that announces a packet larger than `maxBytes`, before buffering it:
 * the remaining-length header is checked as soon as it is parsed.
 */
export function limitPacketSize (broker: Aedes, maxBytes: number): void {
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
