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

type AuthenticateError = Error & { returnCode: 2 | 3 | 4 | 5 }

/**
 * Wrap broker.authenticate: resolve true to accept (or defer with `next`); reject with an error
 * carrying `returnCode` (2 identifier rejected, 4 bad user name or password, 5 not authorized)
 * to answer CONNACK with it and close the connection [MQTT-3.2.2-5].
 */
export function chainAuthenticate (
  broker: Aedes,
  fn: (client: Client, username: string | undefined, password: Buffer | undefined, next: () => Promise<boolean>) => Promise<boolean>
): void {
  const prev = broker.authenticate.bind(broker)
  broker.authenticate = (client, username, password, cb) => {
    const next = async (): Promise<boolean> => await new Promise((resolve, reject) => {
      prev(client, username, password, (err, ok) => { if (err !== null && err !== undefined) reject(err); else resolve(ok === true) })
    })
    fn(client, username, password, next).then((ok) => {
      if (ok) cb(null, true)
      else cb(Object.assign(new Error('not authorized'), { returnCode: 5 as const }), false)
    }, (err: unknown) => {
      const e = (err instanceof Error ? err : new Error(String(err))) as AuthenticateError
      if (e.returnCode === undefined) e.returnCode = 5
      cb(e, false)
    })
  }
}

type AuthorizeForward = Aedes['authorizeForward']

/**
 * Wrap broker.authorizeForward, which aedes runs synchronously once per subscriber per delivered
 * message (retained and queued ones included): answer null to withhold the message from this
 * client, or defer with `prev`. No I/O here, ever.
 */
export function chainAuthorizeForward (
  broker: Aedes,
  hook: (client: Client, packet: Parameters<AuthorizeForward>[1], prev: AuthorizeForward) => ReturnType<AuthorizeForward>
): void {
  const prev = broker.authorizeForward.bind(broker)
  broker.authorizeForward = (client, packet) => hook(client, packet, prev)
}
