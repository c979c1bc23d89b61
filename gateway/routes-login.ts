// POST /v1/login {"username", "password"} → {"token", "role", "expiresAt"}: a short-lived Bearer
// token for a dashboard that holds a credentials-file user (it speaks MQTT with the same user and
// password, HTTP with this token). Served only when authentication is on. Wrong credentials are
// 401 `unauthorized`; the request rate limits of the gateway apply to it as to any call.
import { RgError } from '../plugins/errors.js'
import type { RouteDef } from './router.js'

export type Login = (username: unknown, password: unknown) => Promise<{ token: string, role: string, expiresAt: number }>

export function loginRoutes (login: Login): RouteDef[] {
  return [
    {
      method: 'POST',
      path: '/v1/login',
      // no credentials needed to ask; the limits per address still count it (see router.ts)
      who: 'anyone',
      body: true,
      handle: async (call) => {
        const b = call.body
        if (b === null || typeof b !== 'object' || Array.isArray(b)) throw new RgError('bad_request', 'send {"username", "password"}')
        const { username, password } = b as Record<string, unknown>
        return { status: 200, json: await login(username, password) }
      }
    }
  ]
}
