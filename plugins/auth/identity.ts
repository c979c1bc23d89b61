// Who a client is once authenticated (PROTOCOL section 7), whichever way it proved it: a line of
// the credentials file or a JWT. An identity names a role, the clientIds it may use and the
// groups it may touch, each as a list of globs.

export const ROLES = ['terminal', 'viewer', 'admin'] as const
export type Role = typeof ROLES[number]

/** A user name, JWT `sub` or clientId as roundgate accepts it: never `+`, `#` or `/` (CVE-2017-7650). */
export const NAME = /^[A-Za-z0-9_.:-]{1,128}$/
/** One glob of a `clients` or `groups` list: the name characters plus `*` (any run) and `?` (one). */
const GLOB = /^[A-Za-z0-9_.:*?-]{1,128}$/

/** A comma-separated list of globs, compiled once. */
export class GlobList {
  readonly text: string
  readonly all: boolean
  private readonly re: RegExp

  constructor (text: string) {
    const parts = text.split(',')
    for (const p of parts) {
      if (!GLOB.test(p)) throw new Error(`"${text}" is not a list of globs (comma-separated, each 1-128 of A-Z a-z 0-9 _ . : - * ?)`)
    }
    this.text = text
    this.all = parts.includes('*')
    const alt = parts.map((p) => p.replace(/[.]/g, '\\.').replace(/\*/g, '.*').replace(/\?/g, '.'))
    this.re = new RegExp(`^(?:${alt.join('|')})$`)
  }

  test (name: string): boolean {
    return this.all || this.re.test(name)
  }
}

export interface Identity {
  /** the user name (credentials file) or the token's `sub` (JWT) */
  user: string
  role: Role
  /** clientIds this identity may connect as and act for */
  clients: GlobList
  /** groups this identity may use */
  groups: GlobList
  via: 'passwd' | 'jwt' | 'login'
  /** when the credentials stop being valid (epoch ms), for JWTs; null: not before a reload says so */
  exp: number | null
}

const ALL = new GlobList('*')

/** The clientIds an identity may use when its credentials name none: see docs/security.md. */
export function defaultClients (user: string, role: Role): GlobList {
  if (role === 'admin') return ALL
  if (role === 'viewer') return new GlobList(`${user},${user}-*`)
  return new GlobList(user)
}

export function isRole (v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v)
}

/** May `id` connect as, or act for, `clientId`? */
export function mayUseClientId (id: Identity, clientId: string): boolean {
  return id.role === 'admin' || id.clients.test(clientId)
}

/** May `id` use group `group` at all (its role then says how)? */
export function mayUseGroup (id: Identity, group: string): boolean {
  return id.role === 'admin' || id.groups.test(group)
}

/** Still valid now? */
export function isCurrent (id: Identity, now = Date.now()): boolean {
  return id.exp === null || now < id.exp
}

/** The part of an identity that travels with a will (plain data: it is stored by the persistence). */
export interface OwnerRecord {
  user: string
  role: Role
  clients: string
  groups: string
  via: Identity['via']
  exp: number | null
}

export function ownerRecord (id: Identity): OwnerRecord {
  return { user: id.user, role: id.role, clients: id.clients.text, groups: id.groups.text, via: id.via, exp: id.exp }
}

export function identityOf (rec: unknown): Identity | null {
  if (rec === null || typeof rec !== 'object') return null
  const r = rec as Partial<OwnerRecord>
  if (typeof r.user !== 'string' || !isRole(r.role) || typeof r.clients !== 'string' || typeof r.groups !== 'string') return null
  if (r.via !== 'passwd' && r.via !== 'jwt' && r.via !== 'login') return null
  try {
    return { user: r.user, role: r.role, clients: new GlobList(r.clients), groups: new GlobList(r.groups), via: r.via, exp: typeof r.exp === 'number' ? r.exp : null }
  } catch {
    return null
  }
}
