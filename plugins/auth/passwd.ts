// The credentials file (--passwd-file): one user per line, five fields separated by spaces or tabs:
//
//   USER  ROLE  CLIENTS  GROUPS  HASH
//   t1    terminal  -      render-*  $scrypt$ln=14,r=8,p=1$<salt>$<key>
//
// USER is 1-128 of A-Z a-z 0-9 _ . : - (never + # /); ROLE terminal, viewer or admin; CLIENTS the
// clientIds the user may connect as (comma-separated globs, `-` for the role's default: see
// identity.ts); GROUPS the groups it may use (globs, `*` for all); HASH an scrypt hash in the PHC
// string format (base64 without padding). Blank lines and lines starting with # are ignored.
// Anything else is an error naming the line (Mosquitto CVE-2018-12551: a malformed line is never
// read as a user), and a file without users lets nobody in (CVE-2018-12550).
import { randomBytes, scrypt, timingSafeEqual, createHash } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { GlobList, NAME, defaultClients, isRole, type Identity, type Role } from './identity.js'

export class PasswdError extends Error {
  override name = 'PasswdError'
}

export interface PasswdEntry {
  user: string
  role: Role
  /** as written: `-` for the role's default */
  clients: string
  groups: string
  hash: string
}

export interface ScryptParams { ln: number, r: number, p: number }

/** log2 of N = 14 (16 MiB a check), r 8, p 1: Node's own default. docs/security.md says how to change it. */
export const DEFAULT_SCRYPT: ScryptParams = { ln: 14, r: 8, p: 1 }

/**
 * scrypt runs on libuv's thread pool (4 threads by default), which file I/O needs too: at most
 * this many checks run at once, at most MAX_WAITING wait, and a CONNECT beyond that is answered
 * "server unavailable" at once rather than queued behind a flood of wrong passwords.
 */
const MAX_RUNNING = 2
const MAX_WAITING = 64

export class PasswdBusy extends Error {
  override name = 'PasswdBusy'
}

/** A small semaphore for the scrypt checks. */
class Gate {
  private running = 0
  private readonly waiting: Array<() => void> = []

  async run<T> (fn: () => Promise<T>): Promise<T> {
    if (this.running >= MAX_RUNNING) {
      if (this.waiting.length >= MAX_WAITING) throw new PasswdBusy('too many password checks waiting: try again shortly')
      await new Promise<void>((resolve) => this.waiting.push(resolve))
    } else {
      this.running++
    }
    try {
      return await fn()
    } finally {
      const next = this.waiting.shift()
      if (next !== undefined) next() // the slot passes straight to the next waiter
      else this.running--
    }
  }
}
const KEY_BYTES = 32
const HASH = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,})\$([A-Za-z0-9+/]{16,})$/

interface ParsedHash { params: ScryptParams, salt: Buffer, key: Buffer }

function parseHash (hash: string): ParsedHash | null {
  const m = HASH.exec(hash)
  if (m === null) return null
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) }
  if (params.ln < 10 || params.ln > 20 || params.r < 1 || params.r > 32 || params.p < 1 || params.p > 16) return null
  return { params, salt: Buffer.from(m[4], 'base64'), key: Buffer.from(m[5], 'base64') }
}

async function derive (password: string | Buffer, salt: Buffer, params: ScryptParams, bytes: number): Promise<Buffer> {
  const N = 2 ** params.ln
  return await new Promise((resolve, reject) => {
    scrypt(password, salt, bytes, { N, r: params.r, p: params.p, maxmem: 256 * N * params.r + 1024 * 1024 }, (err, key) => {
      if (err !== null) reject(err)
      else resolve(key)
    })
  })
}

const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '')

export async function hashPassword (password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(16)
  const key = await derive(password, salt, params, KEY_BYTES)
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`
}

export async function verifyPassword (password: string | Buffer, hash: string): Promise<boolean> {
  const h = parseHash(hash)
  if (h === null) return false
  const key = await derive(password, h.salt, h.params, h.key.length)
  return key.length === h.key.length && timingSafeEqual(key, h.key)
}

/** One line, or null for a blank or comment line; throws with the reason otherwise. */
function parseLine (line: string): PasswdEntry | null {
  const text = line.trim()
  if (text === '' || text.startsWith('#')) return null
  const f = text.split(/[ \t]+/)
  if (f.length !== 5) throw new Error(`expected 5 fields (USER ROLE CLIENTS GROUPS HASH), found ${f.length}`)
  const [user, role, clients, groups, hash] = f
  if (!NAME.test(user)) throw new Error('the user name must be 1-128 of A-Z a-z 0-9 _ . : - (never + # /)')
  if (!isRole(role)) throw new Error(`role must be terminal, viewer or admin, not "${role.slice(0, 40)}"`)
  if (clients !== '-') new GlobList(clients) // throws with the reason
  new GlobList(groups)
  if (parseHash(hash) === null) throw new Error('the hash is not $scrypt$ln=N,r=N,p=N$<salt>$<key> (write it with `roundgate passwd`)')
  return { user, role, clients, groups, hash }
}

/** Every user of a credentials file's text. `source` names it in errors. */
export function parsePasswd (text: string, source: string): Map<string, PasswdEntry> {
  const users = new Map<string, PasswdEntry>()
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    let e: PasswdEntry | null
    try {
      e = parseLine(lines[i])
    } catch (err) {
      throw new PasswdError(`${source} line ${i + 1}: ${(err as Error).message}`)
    }
    if (e === null) continue
    if (users.has(e.user)) throw new PasswdError(`${source} line ${i + 1}: user ${e.user} appears twice`)
    users.set(e.user, e)
  }
  return users
}

export function formatEntry (e: PasswdEntry): string {
  return [e.user, e.role, e.clients, e.groups, e.hash].join(' ')
}

export function identityOfEntry (e: PasswdEntry): Identity {
  return {
    user: e.user,
    role: e.role,
    clients: e.clients === '-' ? defaultClients(e.user, e.role) : new GlobList(e.clients),
    groups: new GlobList(e.groups),
    via: 'passwd',
    exp: null
  }
}

export async function loadPasswd (path: string): Promise<Map<string, PasswdEntry>> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new PasswdError(`cannot read the credentials file ${path}: ${(err as Error).message}`)
  }
  return parsePasswd(text, `credentials file ${path}`)
}

/**
 * Add or replace one user's line, keeping every other line (comments included) as it was.
 * The file is checked first (a malformed file is not rewritten) and replaced atomically, mode 0600.
 */
export async function upsertUser (path: string, entry: PasswdEntry): Promise<'added' | 'replaced'> {
  let text = ''
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new PasswdError(`cannot read ${path}: ${(err as Error).message}`)
  }
  parsePasswd(text, path)
  const lines = text === '' ? [] : text.replace(/\r?\n$/, '').split(/\r?\n/)
  let outcome: 'added' | 'replaced' = 'added'
  const out = lines.map((l) => {
    const e = parseLine(l)
    if (e?.user !== entry.user) return l
    outcome = 'replaced'
    return formatEntry(entry)
  })
  if (outcome === 'added') out.push(formatEntry(entry))
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, out.join('\n') + '\n', { mode: 0o600 })
  await rename(tmp, path)
  return outcome
}

/**
 * Checks passwords against the loaded file. A password that already passed scrypt for the same
 * hash is remembered as a keyed digest, so a reconnecting terminal costs one SHA-256, not one
 * scrypt; the memory goes with every reload.
 */
export class PasswdChecker {
  private users: Map<string, PasswdEntry>
  private readonly verified = new Map<string, Buffer>()
  /** identities built from the current file, one per user (their globs compiled once) */
  private readonly ids = new Map<string, Identity>()
  private readonly pepper = randomBytes(32)
  private readonly gate = new Gate()
  /** a hash to spend the same time on for unknown users, so timing does not tell who exists */
  private readonly decoy: Promise<string>

  constructor (users: Map<string, PasswdEntry>) {
    this.users = users
    this.decoy = hashPassword(randomBytes(16).toString('hex'))
  }

  get size (): number {
    return this.users.size
  }

  replace (users: Map<string, PasswdEntry>): void {
    this.users = users
    this.verified.clear()
    this.ids.clear()
  }

  /** The identity the file gives `user` now, or undefined when it has no such user. */
  identity (user: string): Identity | undefined {
    let id = this.ids.get(user)
    if (id !== undefined) return id
    const e = this.users.get(user)
    if (e === undefined) return undefined
    id = identityOfEntry(e)
    this.ids.set(user, id)
    return id
  }

  /** The identity of `user` when `password` is right, else null. */
  async check (user: string, password: Buffer): Promise<Identity | null> {
    const e = this.users.get(user)
    if (e === undefined) {
      const decoy = await this.decoy
      await this.gate.run(async () => await verifyPassword(password, decoy))
      return null
    }
    const digest = createHash('sha256').update(this.pepper).update(e.hash).update('\0').update(password).digest()
    const seen = this.verified.get(user)
    if (seen !== undefined && timingSafeEqual(seen, digest)) return this.identity(user) ?? null
    if (!await this.gate.run(async () => await verifyPassword(password, e.hash))) return null
    const now = this.users.get(user) // the file may have been reloaded meanwhile
    if (now === undefined || now.hash !== e.hash) return null
    this.verified.set(user, digest)
    return this.identity(user) ?? null
  }
}
