// JSON Web Tokens with `jose`: HS256 with a shared secret (--jwt-secret), RS256 or EdDSA with a
// public key file (--jwt-public-key, PEM). A token carries `sub` (the clientId, or a user name for
// viewers and admins), `role`, `groups` (a glob list, default `*`) and must carry `exp`; `nbf` is
// honoured when present. `roundgate token` mints them (signToken), the gateway's POST /v1/login
// mints short-lived ones for dashboards.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { SignJWT, jwtVerify } from 'jose'
import { GlobList, NAME, defaultClients, isRole, type Identity, type Role } from './identity.js'

export type Alg = 'HS256' | 'RS256' | 'EdDSA'

/** A key that verifies (or signs) tokens, with the one algorithm it is used with. */
export interface TokenKey {
  alg: Alg
  key: KeyObject | Uint8Array
}

export class TokenError extends Error {
  override name = 'TokenError'
}

/** An HS256 secret: at least 32 bytes, so it cannot be guessed offline from one token. */
export function secretKey (secret: string | Uint8Array): TokenKey {
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret
  if (key.length < 32) throw new TokenError('the JWT secret must be at least 32 bytes long')
  return { alg: 'HS256', key }
}

function algOf (k: KeyObject, file: string): Alg {
  if (k.asymmetricKeyType === 'rsa') return 'RS256'
  if (k.asymmetricKeyType === 'ed25519') return 'EdDSA'
  throw new TokenError(`${file}: a ${k.asymmetricKeyType ?? 'symmetric'} key; roundgate takes RSA (RS256) or Ed25519 (EdDSA) keys`)
}

/** A PEM public key file (an RSA or Ed25519 SPKI key, or a certificate). */
export function publicKeyFile (file: string): TokenKey {
  let k: KeyObject
  try {
    k = createPublicKey(readFileSync(file))
  } catch (err) {
    throw new TokenError(`cannot read the JWT public key ${file}: ${(err as Error).message}`)
  }
  return { alg: algOf(k, file), key: k }
}

/** A PEM private key file (RSA or Ed25519), for `roundgate token --key`. */
export function privateKeyFile (file: string): TokenKey {
  let k: KeyObject
  try {
    k = createPrivateKey(readFileSync(file))
  } catch (err) {
    throw new TokenError(`cannot read the private key ${file}: ${(err as Error).message}`)
  }
  return { alg: algOf(k, file), key: k }
}

export interface TokenClaims {
  sub: string
  role: Role
  groups?: string
  /** lifetime in seconds */
  ttlS: number
  /** `iss` to set (login tokens) */
  issuer?: string
}

export async function signToken (k: TokenKey, c: TokenClaims): Promise<string> {
  if (!NAME.test(c.sub)) throw new TokenError('sub must be 1-128 of A-Z a-z 0-9 _ . : - (never + # /)')
  if (!isRole(c.role)) throw new TokenError('role must be terminal, viewer or admin')
  if (c.groups !== undefined) new GlobList(c.groups) // throws on a bad list
  if (!Number.isInteger(c.ttlS) || c.ttlS < 1) throw new TokenError('the lifetime must be a whole number of seconds ≥ 1')
  const now = Math.floor(Date.now() / 1000)
  const jwt = new SignJWT({ role: c.role, ...(c.groups !== undefined ? { groups: c.groups } : {}) })
    .setProtectedHeader({ alg: k.alg, typ: 'JWT' })
    .setSubject(c.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + c.ttlS)
  if (c.issuer !== undefined) jwt.setIssuer(c.issuer)
  return await jwt.sign(k.key)
}

/** Does this password look like a JWT (three base64url parts)? Then it is checked as one. */
export function looksLikeJwt (s: string): boolean {
  return /^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*$/.test(s) && s.startsWith('eyJ')
}

/**
 * Verify a token against each key in turn (the configured one, then the login key); the identity
 * it carries, or a TokenError saying why not.
 */
export async function verifyToken (token: string, keys: Array<{ key: TokenKey, via: Identity['via'], issuer?: string }>): Promise<Identity> {
  let last: Error = new TokenError('no key to verify tokens with')
  for (const k of keys) {
    try {
      const { payload } = await jwtVerify(token, k.key.key, {
        algorithms: [k.key.alg],
        requiredClaims: ['sub', 'exp'],
        ...(k.issuer !== undefined ? { issuer: k.issuer } : {})
      })
      const sub = payload.sub
      if (typeof sub !== 'string' || !NAME.test(sub)) throw new TokenError('sub must be 1-128 of A-Z a-z 0-9 _ . : - (never + # /)')
      if (!isRole(payload.role)) throw new TokenError('role must be terminal, viewer or admin')
      let groups: GlobList
      try {
        groups = new GlobList(typeof payload.groups === 'string' ? payload.groups : '*')
      } catch {
        throw new TokenError('groups must be a comma-separated list of globs')
      }
      if (payload.groups !== undefined && typeof payload.groups !== 'string') throw new TokenError('groups must be a string')
      return { user: sub, role: payload.role, clients: defaultClients(sub, payload.role), groups, via: k.via, exp: (payload.exp as number) * 1000 }
    } catch (err) {
      last = err instanceof TokenError ? err : new TokenError(err instanceof Error ? err.message : String(err))
    }
  }
  throw last
}
