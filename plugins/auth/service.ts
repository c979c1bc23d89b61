// Authentication for both doors: the credentials file, JWTs (the operator's key and the login
// key), and the tokens POST /v1/login hands to dashboards. Which identity a username/password
// (MQTT) or a Bearer token (HTTP) proves, and what an identity may still do after a reload.
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { RgError } from '../errors.js'
import { NAME, isCurrent, type Identity } from './identity.js'
import { looksLikeJwt, signToken, verifyToken, type TokenKey } from './jwt.js'
import { PasswdBusy, PasswdChecker, loadPasswd } from './passwd.js'

export interface AuthServiceOptions {
  passwdFile: string | null
  /** the operator's key (--jwt-secret or --jwt-public-key) */
  jwtKey: TokenKey | null
  /** HS256 key signing login tokens; random per process unless the cluster shares one */
  loginKey?: Uint8Array
  /** lifetime of a login token (seconds) */
  loginTtlS?: number
  logger: Logger
}

/**
 * Why a CONNECT or a request was refused: `missing` (no credentials), `bad` (wrong ones) or `busy`
 * (too many password checks already waiting).
 */
export class AuthFailure extends Error {
  readonly kind: 'missing' | 'bad' | 'busy'
  constructor (kind: 'missing' | 'bad' | 'busy', message: string) {
    super(message)
    this.name = 'AuthFailure'
    this.kind = kind
  }
}

export const LOGIN_ISSUER = 'roundgate-login'

export class AuthService {
  private readonly opts: AuthServiceOptions
  private readonly log: Logger
  private passwd: PasswdChecker | null = null
  readonly loginKey: TokenKey
  readonly loginTtlS: number

  private constructor (opts: AuthServiceOptions) {
    this.opts = opts
    this.log = opts.logger
    this.loginKey = { alg: 'HS256', key: opts.loginKey ?? randomBytes(32) }
    this.loginTtlS = opts.loginTtlS ?? 900
  }

  /** Loads the credentials file; throws PasswdError (with the line) when it is malformed. */
  static async create (opts: AuthServiceOptions): Promise<AuthService> {
    const s = new AuthService(opts)
    if (opts.passwdFile !== null) {
      const users = await loadPasswd(opts.passwdFile)
      s.passwd = new PasswdChecker(users)
      if (users.size === 0) s.log.warn({ file: opts.passwdFile }, 'the credentials file holds no user: nobody can log in with a password')
      else s.log.info({ file: opts.passwdFile, users: users.size }, 'credentials file loaded')
    }
    return s
  }

  get usesPasswd (): boolean {
    return this.passwd !== null
  }

  /**
   * Read the credentials file again (SIGHUP). A malformed file is refused with its line and the
   * users loaded before stay in force. Connections stay; their rights are looked up again.
   */
  async reload (): Promise<number> {
    if (this.passwd === null || this.opts.passwdFile === null) return 0
    const users = await loadPasswd(this.opts.passwdFile)
    this.passwd.replace(users)
    this.log.info({ file: this.opts.passwdFile, users: users.size }, 'credentials file reloaded')
    return users.size
  }

  private keys (): Array<{ key: TokenKey, via: Identity['via'], issuer?: string }> {
    const keys: Array<{ key: TokenKey, via: Identity['via'], issuer?: string }> = []
    if (this.opts.jwtKey !== null) keys.push({ key: this.opts.jwtKey, via: 'jwt' })
    keys.push({ key: this.loginKey, via: 'login', issuer: LOGIN_ISSUER })
    return keys
  }

  /** A JWT's identity, or AuthFailure `bad` (unsigned, forged, expired, not yet valid, bad claims). */
  async token (token: string): Promise<Identity> {
    try {
      return await verifyToken(token, this.keys())
    } catch (err) {
      throw new AuthFailure('bad', `invalid token: ${(err as Error).message}`)
    }
  }

  /** MQTT CONNECT: a JWT as password (any username), or a user of the credentials file. */
  async mqtt (username: string | undefined, password: Buffer | undefined): Promise<Identity> {
    if (password === undefined || password.length === 0) throw new AuthFailure('missing', 'no password given')
    if (password.length <= 8192) {
      const text = password.toString('utf8')
      if (looksLikeJwt(text)) return await this.token(text)
    }
    if (this.passwd === null) throw new AuthFailure('bad', 'the password is not a valid token')
    if (username === undefined || username === '') throw new AuthFailure('missing', 'no user name given')
    if (!NAME.test(username) || password.length > 1024) throw new AuthFailure('bad', 'bad user name or password')
    let id: Identity | null
    try {
      id = await this.passwd.check(username, password)
    } catch (err) {
      if (err instanceof PasswdBusy) throw new AuthFailure('busy', err.message)
      throw err
    }
    if (id === null) throw new AuthFailure('bad', 'bad user name or password')
    return id
  }

  /** HTTP `Authorization` header: `Bearer <JWT>`. */
  async bearer (header: string): Promise<Identity> {
    const m = /^Bearer[ ]+([A-Za-z0-9_.-]+)\s*$/i.exec(header)
    if (header === '') throw new AuthFailure('missing', 'an Authorization: Bearer <token> header is required')
    if (m === null) throw new AuthFailure('bad', 'the Authorization header must be Bearer <token>')
    return await this.token(m[1])
  }

  /** POST /v1/login: a short-lived token for a user of the credentials file. */
  async login (username: unknown, password: unknown): Promise<{ token: string, role: string, expiresAt: number }> {
    if (typeof username !== 'string' || typeof password !== 'string') throw new RgError('bad_request', 'username and password are required strings')
    if (this.passwd === null) throw new RgError('unauthorized', 'this server has no credentials file: log in with a token instead')
    let id: Identity
    try {
      id = await this.mqtt(username, Buffer.from(password, 'utf8'))
    } catch (err) {
      if (err instanceof AuthFailure && err.kind === 'busy') throw new RgError('unavailable', err.message)
      throw new RgError('unauthorized', (err as Error).message)
    }
    if (id.via !== 'passwd') throw new RgError('unauthorized', 'log in with a user name and password')
    const token = await signToken(this.loginKey, { sub: id.user, role: id.role, groups: id.groups.text, ttlS: this.loginTtlS, issuer: LOGIN_ISSUER })
    return { token, role: id.role, expiresAt: Date.now() + this.loginTtlS * 1000 }
  }

  /**
   * What `id` may do now: a credentials-file user as the file says today (null once removed);
   * a token's identity as it was, until it expires (then null).
   */
  current (id: Identity): Identity | null {
    if (!isCurrent(id)) return null
    if (id.via !== 'passwd') return id
    return this.passwd?.identity(id.user) ?? null
  }
}
