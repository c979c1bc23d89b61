// Logging in (PROTOCOL section 7). With authentication off, everyone may do what an admin may and
// the page says so. With it on, the operator gives either a JWT — sent as HTTP `Authorization:
// Bearer` and as the MQTT password with the token's `sub` as username — or a username and
// password: those go to MQTT as they are, and HTTP gets a token from `POST /v1/login`. The role
// (the token's `role` claim, or /v1/login's answer) decides whether the controls are enabled.
import { type Api, ApiError, errorText } from './api.js'
import { h } from './dom.js'
import type { Role } from './types.js'

export interface Session {
  authOn: boolean
  role: Role
  /** who the page is logged in as ('' without authentication) */
  user: string
  token: string | null
  mqtt: { username: string, password: string } | null
}

export function canAdmin (s: Session): boolean {
  return s.role === 'admin'
}

export const OPEN_SESSION: Session = { authOn: false, role: 'admin', user: '', token: null, mqtt: null }

interface Claims { sub?: unknown, role?: unknown, exp?: unknown }

/** The claims of a JWT (not verified here: the server verifies; the page only reads sub and role). */
export function jwtClaims (token: string): Claims {
  const parts = token.split('.')
  if (parts.length !== 3) throw new Error('a JWT has three dot-separated parts')
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/')
    const bytes = Uint8Array.from(atob(b64 + '='.repeat((4 - b64.length % 4) % 4)), (c) => c.charCodeAt(0))
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as unknown
    if (claims === null || typeof claims !== 'object') throw new Error('not an object')
    return claims
  } catch (err) {
    throw new Error(`the token's payload is not readable JSON (${err instanceof Error ? err.message : String(err)})`, { cause: err })
  }
}

function roleOf (v: unknown): Role {
  return v === 'admin' || v === 'viewer' || v === 'terminal' ? v : 'viewer'
}

export function sessionFromToken (token: string): Session {
  const claims = jwtClaims(token)
  if (typeof claims.sub !== 'string' || claims.sub === '') throw new Error('the token has no `sub` claim')
  if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) throw new Error('the token has expired')
  return { authOn: true, role: roleOf(claims.role), user: claims.sub, token, mqtt: { username: claims.sub, password: token } }
}

export async function sessionFromPassword (api: Api, username: string, password: string): Promise<Session> {
  let answer: { token?: unknown, role?: unknown }
  try {
    answer = await api.post<{ token?: unknown, role?: unknown }>('/v1/login', { username, password })
  } catch (err) {
    if (err instanceof ApiError && err.missingRoute) {
      throw new Error('this server has no POST /v1/login: log in with a JWT instead', { cause: err })
    }
    throw err
  }
  if (typeof answer.token !== 'string') throw new Error('POST /v1/login answered without a token')
  let role = answer.role
  if (role === undefined) {
    try { role = jwtClaims(answer.token).role } catch { role = undefined }
  }
  return { authOn: true, role: roleOf(role), user: username, token: answer.token, mqtt: { username, password } }
}

/** The login form; resolves with a session once the credentials were accepted. */
export async function loginForm (root: HTMLElement, api: Api): Promise<Session> {
  return await new Promise((resolve) => {
    const error = h('p', { class: 'field-error', attrs: { id: 'login-error', role: 'alert' } })
    const token = h('textarea', { attrs: { id: 'login-token', rows: '3', placeholder: 'eyJhbGciOi…', autocomplete: 'off' } })
    const user = h('input', { attrs: { id: 'login-user', autocomplete: 'username' } })
    const pass = h('input', { attrs: { id: 'login-pass', type: 'password', autocomplete: 'current-password' } })
    const busy = (on: boolean): void => { for (const b of root.querySelectorAll('button')) b.disabled = on }
    const done = (s: Session): void => { root.replaceChildren(); resolve(s) }

    const byToken = h('form', { class: 'login', attrs: { id: 'login-jwt' } },
      h('h3', { text: 'With a token (JWT)' }),
      h('label', { text: 'token', attrs: { for: 'login-token' } }), token,
      h('button', { text: 'log in', attrs: { type: 'submit' } }))
    byToken.addEventListener('submit', (ev) => {
      ev.preventDefault()
      try {
        const s = sessionFromToken(token.value.trim())
        api.token = s.token
        // check the token against the server before going on (a refused one answers 401)
        busy(true)
        api.get('/v1/groups').then(() => done(s), (err: unknown) => {
          api.token = null
          busy(false)
          error.textContent = errorText(err)
        })
      } catch (err) {
        error.textContent = errorText(err)
      }
    })

    const byPassword = h('form', { class: 'login', attrs: { id: 'login-password' } },
      h('h3', { text: 'With a username and password' }),
      h('label', { text: 'username', attrs: { for: 'login-user' } }), user,
      h('label', { text: 'password', attrs: { for: 'login-pass' } }), pass,
      h('button', { text: 'log in', attrs: { type: 'submit' } }))
    byPassword.addEventListener('submit', (ev) => {
      ev.preventDefault()
      busy(true)
      sessionFromPassword(api, user.value.trim(), pass.value).then((s) => {
        api.token = s.token
        done(s)
      }, (err: unknown) => {
        busy(false)
        error.textContent = errorText(err)
      })
    })

    root.replaceChildren(h('section', { class: 'panel login-panel' },
      h('h2', { text: 'Log in' }),
      h('p', { text: 'Authentication is on. Log in as a viewer (read only) or an admin (controls).' }),
      h('div', { class: 'login-forms' }, byToken, byPassword),
      error))
  })
}
