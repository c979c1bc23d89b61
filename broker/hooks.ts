// aedes hooks are callback-style; plugins write them as async functions and chain to whatever hook
// was installed before them, so several plugins (scheduler, auth, ...) compose in install order.
import type { Aedes, AuthenticateError, Client, PublishPacket, Subscription } from 'aedes'

export type AsyncPublishHook = (client: Client | null, packet: PublishPacket, next: () => Promise<void>) => Promise<void>

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

/** Wrap broker.authorizePublish: resolve to allow, reject to refuse (aedes then closes the client). */
export function chainAuthorizePublish (
  broker: Aedes,
  fn: (client: Client | null, packet: PublishPacket, next: () => Promise<void>) => Promise<void>
): void {
  const prev = broker.authorizePublish.bind(broker)
  broker.authorizePublish = (client, packet, cb) => {
    const next = async (): Promise<void> => await new Promise((resolve, reject) => {
      prev(client, packet, (err) => { if (err !== null && err !== undefined) reject(err); else resolve() })
    })
    callbackOf(fn(client, packet, next), (err) => cb(err))
  }
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

export type { AuthenticateError }
