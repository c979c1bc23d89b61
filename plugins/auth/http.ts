// The auth plugin's HTTP half: the gateway's `authorize` hook (gateway/router.ts). Every route but
// the `anyone` ones needs `Authorization: Bearer <JWT>` (an operator's token or a login token):
// no or a bad token is 401 `unauthorized` (an expired one too), a token whose role or groups do
// not reach the route is 403 `forbidden` (rights.ts). It answers what the caller may see, so a
// list (GET /v1/groups) shows only the caller's groups.
import { RgError } from '../errors.js'
import { mayUseGroup } from './identity.js'
import { httpRefusal, type RouteWho } from './rights.js'
import { AuthFailure, type AuthService } from './service.js'

export interface HttpAuthRequest {
  who: RouteWho
  group?: string
  clientId?: string
  authorization: string
}

/** What the caller may see: a group filter for lists. */
export interface HttpScope {
  mayUseGroup: (group: string) => boolean
}

export function httpAuthorizer (service: AuthService): (req: HttpAuthRequest) => Promise<HttpScope | undefined> {
  return async (req) => {
    if (req.who === 'anyone') return undefined
    let id
    try {
      id = await service.bearer(req.authorization)
    } catch (err) {
      if (err instanceof AuthFailure) throw new RgError('unauthorized', err.message)
      throw err
    }
    const current = service.current(id)
    if (current === null) throw new RgError('unauthorized', 'these credentials are no longer valid')
    const why = httpRefusal(current, req.who, req.group, req.clientId)
    if (why !== null) throw new RgError('forbidden', why)
    return { mayUseGroup: (g) => mayUseGroup(current, g) }
  }
}
