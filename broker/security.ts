// The security parts of one roundgate process, built from the settings (docs/security.md):
// authentication (credentials file, JWT keys, the login key), the rate limits, the MQTT connection
// gate, and the TLS material that SIGHUP reloads. server.ts wires them in.
import type { Client } from 'aedes'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { AuthService, PasswdError, TokenError, publicKeyFile, secretKey, type TokenKey } from '../plugins/auth/index.js'
import { ConfigError, authOn, isLoopback } from './config.js'
import type { Settings } from './settings.js'

/** The login key of a cluster: made once, shared by every broker through Redis. */
async function sharedLoginKey (redis: Redis): Promise<Uint8Array> {
  const key = 'rg:auth:login-key'
  await redis.set(key, randomBytes(32).toString('hex'), 'NX')
  const hex = await redis.get(key)
  if (hex === null || !/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${key} in redis is not a 32-byte hex key`)
  return Buffer.from(hex, 'hex')
}

/** The authentication service, or null when authentication is off. Bad files are ConfigErrors. */
export async function createAuth (settings: Settings, log: Logger, redis?: Redis): Promise<AuthService | null> {
  if (!authOn(settings)) {
    if (settings.insecure) {
      log.warn({ host: settings.host }, isLoopback(settings.host)
        ? '--insecure: authentication is off'
        : `--insecure: authentication is off and ${settings.host} is reachable beyond this machine: anyone who reaches a port may do everything`)
    }
    return null
  }
  let jwtKey: TokenKey | null = null
  try {
    if (settings.jwtSecret !== null) jwtKey = secretKey(settings.jwtSecret)
    if (settings.jwtPublicKey !== null) jwtKey = publicKeyFile(settings.jwtPublicKey)
    return await AuthService.create({
      passwdFile: settings.passwdFile,
      jwtKey,
      loginKey: redis !== undefined ? await sharedLoginKey(redis) : undefined,
      loginTtlS: settings.loginTtlS,
      logger: log.child({ module: 'auth' })
    })
  } catch (err) {
    if (err instanceof PasswdError || err instanceof TokenError) throw new ConfigError(err.message)
    throw err
  }
}

/** The address an MQTT client connected from (TCP/TLS socket, or the WebSocket's HTTP request). */
export function addressOf (client: Client | null): string | undefined {
  if (client === null) return undefined
  return (client.conn as Partial<Socket>).remoteAddress ?? client.req?.socket.remoteAddress
}

/** The certificate and key for MQTT over TLS and wss, read again at every SIGHUP. */
export function readTlsFiles (cert: string, key: string): { cert: Buffer, key: Buffer } {
  try {
    return { cert: readFileSync(cert), key: readFileSync(key) }
  } catch (err) {
    throw new ConfigError(`cannot read the TLS certificate or key: ${(err as Error).message}`)
  }
}
