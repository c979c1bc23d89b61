// Request bodies: read with a size cap, then parsed by content type. Terminal calls accept JSON,
// application/x-www-form-urlencoded and query parameters (PROTOCOL section 5); form and query
// values arrive as text, which the engine's validation accepts for numbers and booleans.
import type { HttpResponse } from 'uWebSockets.js'
import { RgError } from '../plugins/errors.js'
import { isForbiddenKey, parseJson } from '../plugins/safe-json.js'
import type { Exchange } from './respond.js'

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Thrown (as a rejection) when the client went away while its body was being read. */
export class Aborted extends Error {
  constructor () { super('the client went away'); this.name = 'Aborted' }
}

function tooLarge (cap: number): RgError {
  return new RgError('payload_too_large', `the request body must be at most ${cap} bytes`)
}

/**
 * Read the whole body. Must be called in the synchronous part of the route handler (uWS hands
 * body chunks only to an onData attached there). A declared Content-Length above the cap is
 * refused before a byte is read; a body that grows past it while streaming is refused at once.
 */
export function readBody (res: HttpResponse, ex: Exchange, contentLength: string, cap: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const declared = contentLength === '' ? NaN : Number(contentLength)
    if (Number.isFinite(declared) && declared > cap) { reject(tooLarge(cap)); return }
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    ex.onAbort(() => reject(new Aborted()))
    res.onData((chunk, isLast) => {
      if (over) return
      size += chunk.byteLength
      if (size > cap) { over = true; reject(tooLarge(cap)); return }
      // uWS neuters the ArrayBuffer when this callback returns: copy it
      chunks.push(Buffer.from(new Uint8Array(chunk).slice()))
      if (isLast) resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size))
    })
  })
}

export type Fields = Record<string, unknown>

function isObject (v: unknown): v is Fields {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function formFields (text: string): Fields {
  const out: Fields = {}
  for (const [k, v] of new URLSearchParams(text)) {
    if (isForbiddenKey(k)) throw new RgError('bad_request', `the field "${k}" is not accepted`)
    out[k] = v
  }
  return out
}

/** Parse a body by its Content-Type: JSON (the default) or a form. Empty means "no body". */
export function parseBody (buf: Buffer, contentType: string): unknown {
  if (buf.length === 0) return undefined
  let text: string
  try {
    text = utf8.decode(buf)
  } catch {
    throw new RgError('bad_request', 'the request body is not valid UTF-8')
  }
  const ct = contentType.toLowerCase()
  if (ct.startsWith('application/x-www-form-urlencoded')) return formFields(text)
  if (text.trim() === '') return undefined
  try {
    return parseJson(text, 'the request body')
  } catch (err) {
    const hint = ct === '' || ct.includes('json') ? '' : ' (send application/json or application/x-www-form-urlencoded)'
    if (err instanceof RgError && hint !== '') throw new RgError(err.code, err.message + hint)
    throw err
  }
}

/**
 * A terminal call's fields: query parameters, overlaid with the body's (JSON object or form).
 * `meta` given as text (form or query) is read as JSON, since a form cannot nest.
 */
export function terminalFields (query: string, body: unknown): Fields {
  const out = query === '' ? {} : formFields(query)
  if (body !== undefined) {
    if (!isObject(body)) throw new RgError('bad_request', 'the request body must be a JSON object')
    Object.assign(out, body)
  }
  if (typeof out.meta === 'string') out.meta = parseJson(out.meta, 'meta')
  return out
}

/** A numeric query parameter: undefined when absent or empty, else a finite number or 400. */
export function queryNumber (q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name)
  if (v === null || v.trim() === '') return undefined
  const n = Number(v)
  if (!Number.isFinite(n)) throw new RgError('bad_request', `${name} must be a number`)
  return n
}
