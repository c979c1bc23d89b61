// One HTTP exchange on uWebSockets.js: the response, whether it was aborted, whether it was
// answered. Every write goes through here, so the rules of uWS hold in one place:
// - nothing is ever written to an aborted response (uWS frees it; touching it is a crash);
// - writes made outside the route handler's synchronous part are corked (one syscall);
// - bodies go out with tryEnd and, under back-pressure, the rest on onWritable.
import type { HttpResponse } from 'uWebSockets.js'
import type { Logger } from 'pino'
import { RgError, toRgError, type ErrorCode } from '../plugins/errors.js'

const STATUS_LINES: Record<number, string> = {
  200: '200 OK',
  204: '204 No Content',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  409: '409 Conflict',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable'
}

export type Headers = Record<string, string>

/** Called once per exchange when it is answered (status; `code` for errors) or aborted. */
export type Observe = (route: string, method: string, status: number | 'aborted', code?: ErrorCode) => void

export interface SendOptions {
  headers?: Headers
  contentType?: string
  /** close the connection after this answer (e.g. a body that was refused before it was read) */
  close?: boolean
}

export class Exchange {
  readonly res: HttpResponse
  readonly method: string
  /** the route pattern, for metrics and logs (`unmatched` when no route matched) */
  route: string
  aborted = false
  answered = false
  private abortHandlers: Array<() => void> | null = null
  private readonly observe: Observe | undefined
  private readonly log: Logger

  constructor (res: HttpResponse, method: string, route: string, log: Logger, observe?: Observe) {
    this.res = res
    this.method = method
    this.route = route
    this.log = log
    this.observe = observe
  }

  /** uWS calls this when the client went away; from now on `res` must not be touched. */
  abort (): void {
    if (this.aborted) return
    this.aborted = true
    if (this.answered) return // went away while the rest of a body waited for onWritable
    this.observe?.(this.route, this.method, 'aborted')
    const hs = this.abortHandlers
    this.abortHandlers = null
    if (hs !== null) for (const h of hs) h()
  }

  onAbort (fn: () => void): void {
    if (this.aborted) { fn(); return }
    if (this.abortHandlers === null) this.abortHandlers = []
    this.abortHandlers.push(fn)
  }

  /** True while an answer may still be written. */
  get open (): boolean {
    return !this.aborted && !this.answered
  }

  json (status: number, value: unknown, opts: SendOptions = {}): boolean {
    return this.send(status, JSON.stringify(value), { ...opts, contentType: 'application/json' })
  }

  /** The catalogue's error body: `{"error": {"code", "message"}}` with the code's status. */
  error (err: unknown, opts: SendOptions = {}): boolean {
    const e = toRgError(err)
    if (!(err instanceof RgError)) this.log.error({ err, route: this.route }, 'request failed')
    return this.send(e.status, JSON.stringify({ error: { code: e.code, message: e.message } }), opts, e.code)
  }

  /** 204: no body, no Content-Length (RFC 9110 section 8.6). */
  empty (status: number, opts: SendOptions = {}): boolean {
    // no argument: no Content-Length at all (passing undefined reports a bogus length)
    return this.answer(status, opts, undefined, (res) => {
      if (opts.close === true) res.endWithoutBody(0, true)
      else res.endWithoutBody()
    })
  }

  /**
   * Answer with a body: one string, or parts (a release's shared pieces and its tail) written as
   * one body.
   */
  send (status: number, body: string | readonly Uint8Array[], opts: SendOptions = {}, code?: ErrorCode): boolean {
    const headed = { ...opts, contentType: opts.contentType ?? 'application/json' }
    return this.answer(status, headed, code, () => {
      if (typeof body === 'string') this.writeString(body, opts.close === true)
      else this.writeParts(body, opts.close === true)
    })
  }

  /** The one way an answer starts: claimed once, status and headers, the body, all corked. */
  private answer (status: number, opts: SendOptions, code: ErrorCode | undefined, body: (res: HttpResponse) => void): boolean {
    if (!this.open) return false
    this.answered = true
    this.abortHandlers = null
    const res = this.res
    res.cork(() => {
      res.writeStatus(STATUS_LINES[status] ?? String(status))
      if (opts.contentType !== undefined) res.writeHeader('Content-Type', opts.contentType)
      if (opts.headers !== undefined) for (const [k, v] of Object.entries(opts.headers)) res.writeHeader(k, v)
      body(res)
    })
    this.observe?.(this.route, this.method, status, code)
    return true
  }

  // tryEnd the body; what the socket does not take now goes out from onWritable, with byte
  // offsets counted from where this body started (the uWS streaming pattern). tryEnd never
  // buffers: a refused remainder is ours to resend, and we keep it until it is written.

  private writeString (body: string, close: boolean): void {
    const res = this.res
    if (close) {
      // end(…, closeConnection) cannot be resumed; bodies answered with close are small errors
      res.end(body, true)
      return
    }
    const start = res.getWriteOffset()
    const total = Buffer.byteLength(body)
    const [ok, done] = res.tryEnd(body, total)
    if (!ok && !done) this.resume(Buffer.from(body), start, total)
  }

  private writeParts (parts: readonly Uint8Array[], close: boolean): void {
    // one piece for uWS: each tryEnd of a part is a write of its own (a syscall per part, measured
    // with strace), and joining a few hundred bytes costs less than one of them
    const whole = parts.length === 1 ? parts[0] : Buffer.concat(parts)
    const res = this.res
    if (close) { res.end(whole, true); return }
    const start = res.getWriteOffset()
    const [ok, done] = res.tryEnd(whole, whole.byteLength)
    if (!ok && !done) this.resume(Buffer.from(whole.buffer, whole.byteOffset, whole.byteLength), start, whole.byteLength)
  }

  private resume (whole: Buffer, start: number, total: number): void {
    const res = this.res
    // the client went away mid-body: abort() runs, and onWritable is not called again
    res.onWritable((offset) => {
      if (this.aborted) return true
      const [ok] = res.tryEnd(whole.subarray(offset - start), total)
      return ok
    })
  }
}
