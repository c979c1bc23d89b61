// What each role may do under the roundgate prefix (PROTOCOL section 7), over MQTT and HTTP:
//   terminal  its own clientId(s), in its groups: hb, ready, done, leave; read its groups' state,
//             rounds and jobs, its release, the errors and ctl results addressed to it
//   viewer    read state, rounds, jobs, terminals and metrics of its groups; send nothing
//   admin     everything, ctl and configuration included
// Pure functions of an identity: no I/O (authorizeForward runs them once per delivered message).
import { mayUseClientId, mayUseGroup, type Identity } from './identity.js'

export type SchedulerKind = 'hb' | 'ready' | 'done' | 'leave' | 'ctl'

/** Why `id` may not send this scheduler message, or null when it may. */
export function schedulerRefusal (id: Identity, kind: SchedulerKind, group: string, actsFor: string | null): string | null {
  if (id.role === 'admin') return null
  if (kind === 'ctl') return `${id.user} (${id.role}) may not send ctl: admins only`
  if (id.role !== 'terminal') return `${id.user} (${id.role}) may not send terminal messages`
  if (!mayUseGroup(id, group)) return `${id.user} may not use group ${group}`
  if (actsFor !== null && !mayUseClientId(id, actsFor)) return `${id.user} may not act as ${actsFor}`
  return null
}

/** May `id` use the group level of a filter (a wildcard only with every group)? */
function groupAllowed (id: Identity, group: string | undefined): boolean {
  if (group === undefined) return false
  if (group === '+' || group === '#') return id.groups.all
  return mayUseGroup(id, group)
}

/** May `id` (connected as `clientId`) subscribe to this filter under the prefix? */
export function maySubscribePrefixed (id: Identity, clientId: string, levels: string[]): boolean {
  if (id.role === 'admin') return true
  const [group, kind] = levels
  if (!groupAllowed(id, group)) return false
  switch (kind) {
    case undefined: case '+': case '#': case 'state': case 'rounds': case 'jobs':
      return group !== '#' || kind === undefined
    case 'release': case 'error': case 'ctl':
      // a topic the reader may receive only when it is addressed to it: the same rule as delivery
      return mayReadPrefixed(id, clientId, levels)
    default:
      return false // hb, ready, done, leave: consumed by the broker, nothing to read
  }
}

/** May `id` (connected as `clientId`) receive a message published on this topic under the prefix? */
export function mayReadPrefixed (id: Identity, clientId: string, levels: string[]): boolean {
  if (id.role === 'admin') return true
  const [group, kind, a, b] = levels
  if (group === undefined || !mayUseGroup(id, group)) return false
  switch (kind) {
    case 'state': case 'rounds': case 'jobs':
      return levels.length === 2
    case 'release':
      return id.role === 'terminal' && levels.length === 2
    case 'error':
      return levels.length === 3 && ownId(id, clientId, a)
    case 'ctl':
      return levels.length === 4 && a === 'result' && ownId(id, clientId, b)
    default:
      return false
  }
}

function ownId (id: Identity, clientId: string, level: string | undefined): boolean {
  if (level === undefined || level === '+' || level === '#') return false
  return level === clientId || mayUseClientId(id, level)
}

/** Who an HTTP route is for (the gateway's route declarations). */
export type RouteWho = 'terminal' | 'viewer' | 'admin' | 'anyone'

/** Why `id` may not make this HTTP call, or null when it may. */
export function httpRefusal (id: Identity, who: RouteWho, group: string | undefined, clientId: string | undefined): string | null {
  if (who === 'anyone' || id.role === 'admin') return null
  if (who === 'admin') return `${id.user} (${id.role}) may not do this: admins only`
  if (who === 'viewer') {
    if (id.role === 'terminal' && group === undefined) return `${id.user} (terminal) may not do this: viewers only`
    if (group !== undefined && !mayUseGroup(id, group)) return `${id.user} may not see group ${group}`
    return null
  }
  // a terminal call
  if (id.role !== 'terminal') return `${id.user} (${id.role}) may not act as a terminal`
  if (group !== undefined && !mayUseGroup(id, group)) return `${id.user} may not use group ${group}`
  if (clientId !== undefined && !mayUseClientId(id, clientId)) return `${id.user} may not act as ${clientId}`
  return null
}
