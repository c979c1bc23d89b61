// The gateway's own small router. Every route is a declaration: method, path pattern, who may
// call it (for the authorization hook), whether it reads a body, and an async handler returning
// the answer. Routing ourselves (one uWS `any('/*')`) gives every unknown path and every wrong
// method the same JSON error, and a route pattern label for metrics.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js'
import type { Logger } from 'pino'
import { RgError } from '../plugins/errors.js'
import { Aborted, parseBody, readBody, terminalFields, type Fields } from './body.js'
import { Exchange, type Headers, type Observe } from './respond.js'

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

/** Who a route is for (PROTOCOL section 7 roles; `anyone` needs no credentials). */
export type Who = 'terminal' | 'viewer' | 'admin' | 'anyone'

/** What the authorization hook is asked about, once per request, before the handler runs. */
export interface AuthRequest {
  who: Who
  method: Method
  /** the route pattern, e.g. `/v1/groups/:g/ready` */
  route: string
  path: string
  group?: string
  /** terminal calls: the clientId the call acts for */
  clientId?: string
  /** the Authorization header ('' when absent) */
  authorization: string
  remoteAddress: string
}

/** What an authorized caller may see (lists are filtered by it). */
export interface AuthScope {
  mayUseGroup: (group: string) => boolean
}

/**
 * Resolve to allow (with the caller's scope, if it is limited); throw (or reject with) an RgError
 * `unauthorized` / `forbidden` to refuse.
 */
export type Authorize = (req: AuthRequest) => void | AuthScope | undefined | Promise<void | AuthScope | undefined>

/** Throws (rejects with) an RgError `rate_limited` when this address or clientId asks too often. */
export type RateLimit = (address: string, clientId: string | undefined) => Promise<void>

export interface Call {
  ex: Exchange
  params: Record<string, string>
  query: URLSearchParams
  /** the parsed body (JSON or form), undefined when there was none */
  body: unknown
  /** terminal routes: query parameters overlaid with the body's fields */
  fields: Fields
  /** the caller's address (X-Forwarded-For's last hop when the peer is a trusted proxy) */
  address: string
  /** what the caller may see, when authorization limits it */
  scope?: AuthScope
}

export interface Reply {
  status: number
  /** a JSON body; omitted with `text`, or for an empty answer */
  json?: unknown
  text?: string
  contentType?: string
  headers?: Headers
}

export interface RouteDef {
  method: Method
  path: string
  who: Who
  /** reads a request body */
  body?: boolean
  /** a terminal call: fields come from query parameters and the body, `clientId` among them */
  terminal?: boolean
  /** not counted by the request rate limits (health checks a supervisor or balancer repeats) */
  unlimited?: boolean
  /** answers a Reply, or undefined when it answers `call.ex` itself later (the long-poll) */
  handle: (call: Call) => Promise<Reply | undefined>
}

interface Compiled extends RouteDef { parts: string[] }

type Match =
  | { kind: 'route', route: Compiled, params: Record<string, string> }
  | { kind: 'method', allowed: Method[] }
  | { kind: 'none' }

export interface RouterOptions {
  logger: Logger
  maxBodyBytes: number
  authorize?: Authorize
  rateLimit?: RateLimit
  /** peers whose X-Forwarded-For names the real client (a TLS front proxy on loopback) */
  trustedProxies?: readonly string[]
  observe?: Observe
}

export class Router {
  private readonly routes: Compiled[] = []
  private readonly opts: RouterOptions

  constructor (opts: RouterOptions) {
    this.opts = opts
  }

  add (defs: RouteDef[]): void {
    for (const d of defs) this.routes.push({ ...d, parts: d.path.split('/').slice(1) })
  }

  match (method: string, path: string): Match {
    const parts = path.split('/').slice(1)
    if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop() // one trailing slash
    const allowed: Method[] = []
    for (const r of this.routes) {
      const params = matchParts(r.parts, parts)
      if (params === null) continue
      if (r.method === method) return { kind: 'route', route: r, params }
      allowed.push(r.method)
    }
    return allowed.length > 0 ? { kind: 'method', allowed } : { kind: 'none' }
  }

  /** The uWS handler: everything read from `req` here, synchronously (it dies at the first await). */
  handle (res: HttpResponse, req: HttpRequest): void {
    let ex: Exchange | null = null
    try {
      ex = this.start(res, req)
    } catch (err) {
      // a fault of ours in the synchronous part: still one JSON answer, never a crash of uWS
      if (ex === null) ex = new Exchange(res, req.getMethod().toUpperCase(), 'unmatched', this.opts.logger, this.opts.observe)
      if (ex.open) ex.error(err)
      else this.opts.logger.error({ err }, 'request handler failed')
    }
  }

  private start (res: HttpResponse, req: HttpRequest): Exchange {
    const method = req.getMethod().toUpperCase()
    const path = req.getUrl()
    const rawQuery = req.getQuery() ?? ''
    let m: Match
    try {
      m = this.match(method, path)
    } catch {
      m = { kind: 'none' }
    }
    const label = m.kind === 'route' ? m.route.path : 'unmatched'
    const ex = new Exchange(res, method, label, this.opts.logger, this.opts.observe)
    if (m.kind === 'none') {
      ex.error(new RgError('not_found', `no route ${method} ${path}`))
      return ex
    }
    if (m.kind === 'method') {
      const allow = [...new Set(m.allowed)].join(', ')
      // PROTOCOL section 5 lists no 405: a wrong method is "no such route", naming the right ones
      ex.error(new RgError('not_found', `no route ${method} ${path}; it answers ${allow}`), { headers: { Allow: allow } })
      return ex
    }
    const route = m.route
    const contentType = req.getHeader('content-type')
    const authorization = req.getHeader('authorization')
    const contentLength = req.getHeader('content-length')
    const peer = Buffer.from(res.getRemoteAddressAsText()).toString()
    const remoteAddress = clientAddress(peer, req.getHeader('x-forwarded-for'), this.opts.trustedProxies)
    res.onAborted(() => ex.abort())
    const body = route.body === true ? readBody(res, ex, contentLength, this.opts.maxBodyBytes) : null
    this.run(ex, route, m.params, path, rawQuery, contentType, authorization, remoteAddress, body).catch((err: unknown) => {
      if (err instanceof Aborted) return
      // a refused body was not read to its end: close the connection after saying so
      const close = err instanceof RgError && err.code === 'payload_too_large'
      ex.error(err, { close })
    })
    return ex
  }

  private async run (
    ex: Exchange, route: Compiled, params: Record<string, string>, path: string, rawQuery: string,
    contentType: string, authorization: string, remoteAddress: string, bodyP: Promise<Buffer> | null
  ): Promise<void> {
    const body = bodyP === null ? undefined : parseBody(await bodyP, contentType)
    const fields = route.terminal === true ? terminalFields(rawQuery, body) : {}
    const call: Call = { ex, params, query: new URLSearchParams(rawQuery), body, fields, address: remoteAddress }
    const clientId = typeof fields.clientId === 'string' ? fields.clientId : undefined
    if (this.opts.rateLimit !== undefined && route.unlimited !== true) await this.opts.rateLimit(remoteAddress, clientId)
    if (this.opts.authorize !== undefined) {
      const scope = await this.opts.authorize({
        who: route.who,
        method: route.method,
        route: route.path,
        path,
        group: params.g,
        clientId,
        authorization,
        remoteAddress
      })
      if (scope !== undefined && scope !== null) call.scope = scope
    }
    if (!ex.open) return
    const reply = await route.handle(call)
    if (reply === undefined) return
    if (reply.text !== undefined) {
      ex.send(reply.status, reply.text, { contentType: reply.contentType, headers: reply.headers })
    } else if (reply.json !== undefined) {
      ex.json(reply.status, reply.json, { headers: reply.headers })
    } else {
      ex.empty(reply.status, { headers: reply.headers })
    }
  }
}

/** The peer, or the last X-Forwarded-For hop when the peer is a trusted proxy. */
function clientAddress (peer: string, forwarded: string, trusted: readonly string[] | undefined): string {
  if (forwarded === '' || trusted === undefined || !trusted.includes(normalize(peer))) return normalize(peer)
  const hops = forwarded.split(',')
  const last = hops[hops.length - 1].trim()
  return last === '' ? normalize(peer) : normalize(last)
}

/** uWS writes IPv6 in full and IPv4-mapped addresses as ::ffff:a.b.c.d; compare them as usual. */
function normalize (addr: string): string {
  const v4 = /^(?:0{0,4}:){5}ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(addr)
  if (v4 !== null) return v4[1]
  const hex = /^(?:0{0,4}:){5}ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(addr)
  if (hex !== null) {
    const hi = parseInt(hex[1], 16)
    const lo = parseInt(hex[2], 16)
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
  }
  if (/^(?:0{4}:){7}0{3}1$/.test(addr)) return '::1'
  return addr
}

function matchParts (pattern: string[], parts: string[]): Record<string, string> | null {
  if (pattern.length !== parts.length) return null
  const params: Record<string, string> = {}
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]
    if (p.startsWith(':')) {
      if (parts[i] === '') return null
      params[p.slice(1)] = decodeURIComponent(parts[i])
    } else if (p !== parts[i]) {
      return null
    }
  }
  return params
}
