// ACL rules for topics outside the roundgate prefix (PROTOCOL section 7), from the configuration:
//
//   "acl": [ {"effect": "allow", "access": "readwrite", "topic": "devices/%c/#", "roles": ["terminal"]},
//            {"effect": "deny",  "access": "read",      "topic": "devices/+/secret"},
//            {"effect": "allow", "access": "read",      "topic": "devices/#", "roles": ["viewer"]} ]
//
// `%c` (the clientId) and `%u` (the user name) stand for whole topic levels only. Rules are tried
// in order; the first that applies to the client and matches decides; nothing matching is denied.
// A SUBSCRIBE filter is granted when an `allow` rule could match some topic of it before a `deny`
// rule covers all of it; each message is then checked again, topic by topic, on delivery
// (authorizeForward), so a filter wider than the rules never carries a denied topic — retained
// messages included. Admins are not bound by these rules.
import { z } from 'zod'
import { ROLES, type Identity } from './identity.js'

const ruleSchema = z.object({
  effect: z.enum(['allow', 'deny']),
  access: z.enum(['read', 'write', 'readwrite']),
  topic: z.string().min(1).max(1024),
  roles: z.array(z.enum(ROLES)).min(1).optional(),
  users: z.array(z.string().min(1)).min(1).optional()
}).strict()

export const aclSchema = z.array(ruleSchema).max(10000)
export type AclRuleInput = z.infer<typeof ruleSchema>

interface Rule {
  allow: boolean
  read: boolean
  write: boolean
  levels: string[]
  roles: Set<string> | null
  users: Set<string> | null
}

/** Why a rule's topic is not usable, or null. */
export function checkRuleTopic (topic: string): string | null {
  const levels = topic.split('/')
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]
    if (l === '#' && i !== levels.length - 1) return '# must be the last level'
    if (l !== '#' && l.includes('#')) return '# must be a whole level'
    if (l !== '+' && l.includes('+')) return '+ must be a whole level'
    if (l !== '%c' && l !== '%u' && l.includes('%')) return '%c and %u must each be a whole level'
  }
  return null
}

export class Acl {
  private readonly rules: Rule[]

  constructor (input: AclRuleInput[]) {
    this.rules = input.map((r, i) => {
      const why = checkRuleTopic(r.topic)
      if (why !== null) throw new Error(`acl[${i}].topic "${r.topic}": ${why}`)
      return {
        allow: r.effect === 'allow',
        read: r.access !== 'write',
        write: r.access !== 'read',
        levels: r.topic.split('/'),
        roles: r.roles === undefined ? null : new Set(r.roles),
        users: r.users === undefined ? null : new Set(r.users)
      }
    })
  }

  get size (): number {
    return this.rules.length
  }

  /** May this client publish on `topic`? */
  mayPublish (id: Identity, clientId: string, topic: string): boolean {
    return this.first('write', id, clientId, topic)
  }

  /** May this client receive a message published on `topic`? (synchronous, no I/O: authorizeForward) */
  mayRead (id: Identity, clientId: string, topic: string): boolean {
    return this.first('read', id, clientId, topic)
  }

  /** The first rule for this access that applies to the client and matches `topic` decides; none: deny. */
  private first (access: 'read' | 'write', id: Identity, clientId: string, topic: string): boolean {
    if (id.role === 'admin') return true
    const t = topic.split('/')
    for (const r of this.rules) {
      if (!r[access] || !applies(r, id)) continue
      if (matches(subst(r.levels, id, clientId), t)) return r.allow
    }
    return false
  }

  /** May this client subscribe to `filter`? */
  maySubscribe (id: Identity, clientId: string, filter: string): boolean {
    if (id.role === 'admin') return true
    const f = filter.split('/')
    for (const r of this.rules) {
      if (!r.read || !applies(r, id)) continue
      const p = subst(r.levels, id, clientId)
      if (r.allow && intersects(p, f)) return true
      if (!r.allow && covers(p, f)) return false
    }
    return false
  }
}

function applies (r: Rule, id: Identity): boolean {
  return (r.roles === null || r.roles.has(id.role)) && (r.users === null || r.users.has(id.user))
}

function subst (levels: string[], id: Identity, clientId: string): string[] {
  let out: string[] | null = null
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]
    if (l !== '%c' && l !== '%u') continue
    out ??= levels.slice()
    out[i] = l === '%c' ? clientId : id.user
  }
  return out ?? levels
}

const isWild = (l: string | undefined): boolean => l === '+' || l === '#'
/** [MQTT-4.7.2-1]: a filter starting with a wildcard does not match a topic starting with $ */
const dollarGuard = (a: string[], b: string[]): boolean => (isWild(a[0]) && b[0]?.startsWith('$') === true) || (isWild(b[0]) && a[0]?.startsWith('$') === true)

/** Does filter `p` match topic `t`? */
export function matches (p: string[], t: string[]): boolean {
  if (isWild(p[0]) && t[0]?.startsWith('$') === true) return false
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '#') return true
    if (i >= t.length) return false
    if (p[i] !== '+' && p[i] !== t[i]) return false
  }
  return p.length === t.length
}

/** Is there a topic both filters match? */
export function intersects (p: string[], f: string[]): boolean {
  if (dollarGuard(p, f)) return false
  for (let i = 0; ; i++) {
    if (p[i] === '#' || f[i] === '#') return true
    if (i >= p.length || i >= f.length) return i >= p.length && i >= f.length
    if (p[i] !== '+' && f[i] !== '+' && p[i] !== f[i]) return false
  }
}

/** Does filter `p` match every topic filter `f` matches? */
export function covers (p: string[], f: string[]): boolean {
  // a leading wildcard never matches a $ topic, which a literal $ first level of f names
  if (isWild(p[0]) && !isWild(f[0]) && f[0]?.startsWith('$') === true) return false
  for (let i = 0; ; i++) {
    if (p[i] === '#') return true
    if (i >= f.length) return i >= p.length
    if (i >= p.length) return false
    if (f[i] === '#') return false
    if (p[i] === '+') continue
    if (f[i] === '+' || p[i] !== f[i]) return false
  }
}
