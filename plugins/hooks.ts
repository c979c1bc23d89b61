// aedes hooks are callback-style; plugins chain to whatever hook was installed before them, so
// several plugins (scheduler, auth, ...) compose in install order. The rare hooks (CONNECT,
// SUBSCRIBE) take async functions; authorizePublish runs for every PUBLISH of every client, so its
// chain stays callback-style: no promise per message.
import type { Aedes, Client, PublishPacket, Subscription } from 'aedes'

function callbackOf<T> (promise: Promise<T>, cb: (err: Error | null, value?: T) => void): void {
  promise.then((v) => cb(null, v), (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))))
}

/**
 * Wrap broker.authorizeSubscribe: `fn` answers the subscription to grant, `null` to refuse it with
 * SUBACK 0x80 [MQTT-3.9.3-1] (the connection stays open), or calls `next` to defer to the hook before.
 */
export function chainAuthorizeSubscribe (
  broker: Aedes,
  fn: (client: Client, sub: Subscription, next: () => Promise<Subscription | null>) => Promise<Subscription | null>
): void {
  const prev = broker.authorizeSubscribe.bind(broker)
  broker.authorizeSubscribe = (client, sub, cb) => {
    const next = async (): Promise<Subscription | null> => await new Promise((resolve, reject) => {
      prev(client, sub, (err, granted) => { if (err !== null && err !== undefined) reject(err); else resolve(granted ?? null) })
    })
    callbackOf(fn(client, sub, next), (err, granted) => cb(err, err !== null ? undefined : granted ?? null))
  }
}

type AuthorizePublish = Aedes['authorizePublish']

/**
 * Wrap broker.authorizePublish: the hook answers `cb` itself (`cb(null)` allows; an error refuses,
 * and aedes then closes the client) or defers with `prev(client, packet, cb)`, the hook installed
 * before it. No closure is made per message.
 */
export function chainAuthorizePublish (
  broker: Aedes,
  hook: (client: Client | null, packet: PublishPacket, cb: Parameters<AuthorizePublish>[2], prev: AuthorizePublish) => void
): void {
  const prev = broker.authorizePublish.bind(broker)
  broker.authorizePublish = (client, packet, cb) => { hook(client, packet, cb, prev) }
}

/** Wrap broker.preConnect: resolve true to go on, false (or an error with returnCode) to refuse. */
export function chainPreConnect (
  broker: Aedes,
  fn: (client: Client, packet: Parameters<Aedes['preConnect']>[1], next: () => Promise<boolean>) => Promise<boolean>
): void {
  const prev = broker.preConnect.bind(broker)
  broker.preConnect = (client, packet, cb) => {
    const next = async (): Promise<boolean> => await new Promise((resolve, reject) => {
      prev(client, packet, (err, ok) => { if (err !== null && err !== undefined) reject(err); else resolve(ok) })
    })
    callbackOf(fn(client, packet, next), (err, ok) => cb(err, ok === true))
  }
}
