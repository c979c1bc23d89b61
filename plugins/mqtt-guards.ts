// Broker-wide MQTT guards that aedes 1.2 leaves to its users.
import type { Aedes, ConnectPacket } from 'aedes'
import mqttPacket from 'mqtt-packet'
import type { Logger } from 'pino'
import { chainPreConnect } from './hooks.js'

/**
 * A CONNECT refused before aedes sees it: the CONNACK with `returnCode`, then the connection
 * closes [MQTT-3.2.2-5]. Chained as a preConnect hook: `refuse` says when.
 */
function refuseConnect (broker: Aedes, returnCode: 2 | 3, refuse: (packet: ConnectPacket) => boolean, log: Logger, why: string): void {
  chainPreConnect(broker, async (client, packet, next) => {
    if (!refuse(packet)) return await next()
    log.debug(`refused CONNECT: ${why}`)
    mqttPacket.writeToStream({ cmd: 'connack', returnCode, sessionPresent: false }, client.conn)
    client.conn.end()
    return false
  })
}

/**
 * [MQTT-3.1.3-8]: a zero-byte ClientId with CleanSession=0 is answered with CONNACK 0x02
 * (identifier rejected) and the connection is closed. aedes 1.2 would invent an id instead.
 */
export function refuseEmptyIdWithSession (broker: Aedes, log: Logger): void {
  refuseConnect(broker, 2, (p) => (p.clientId ?? '') === '' && p.clean === false, log, 'empty clientId with CleanSession=0')
}

/**
 * CVE-2017-7650: a clientId holding `+`, `#` or `/` could widen a `%c` ACL rule or land in a
 * topic level; it is answered CONNACK 0x02 (identifier rejected), with or without authentication.
 */
export function refuseWildcardIds (broker: Aedes, log: Logger): void {
  refuseConnect(broker, 2, (p) => /[+#/]/.test(p.clientId ?? ''), log, 'clientId holds + # or /')
}

/**
 * While the shared state is unreachable (cluster mode without Redis), a CONNECT is answered at once
 * with CONNACK 0x03, server unavailable [MQTT-3.2.2-6], instead of waiting on session storage.
 * The client retries later, or elsewhere through its balancer.
 */
export function refuseWhileUnavailable (broker: Aedes, available: () => boolean, log: Logger): void {
  refuseConnect(broker, 3, () => !available(), log, 'shared state unreachable')
}
