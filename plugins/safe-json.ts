// JSON from strangers (MQTT payloads, HTTP bodies): parsed, and refused with bad_request when any
// object key could reach a prototype once merged somewhere (`__proto__`, `constructor`,
// `prototype`): such a body is refused whole, never merged (GHSA-52qw-whmv-87c5 and the usual
// prototype-pollution family). The key scan runs only when the text could hold such a key.
import { RgError } from './errors.js'

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype'])

/** Is this a key no body may carry? */
export function isForbiddenKey (key: string): boolean {
  return FORBIDDEN.has(key)
}

function refuseKeys (_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const k of Object.keys(value)) {
      if (FORBIDDEN.has(k)) throw new RgError('bad_request', `the key "${k}" is not accepted`)
    }
  }
  return value
}

/** Parse JSON text; bad_request naming `what` when it is not JSON or holds a forbidden key. */
export function parseJson (text: string, what: string): unknown {
  // a forbidden key is spelled out, or hidden behind a \\u escape
  const suspect = text.includes('__proto__') || text.includes('constructor') || text.includes('prototype') || text.includes('\\u')
  try {
    return suspect ? JSON.parse(text, refuseKeys) : JSON.parse(text)
  } catch (err) {
    if (err instanceof RgError) throw err
    throw new RgError('bad_request', `${what} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
}
