// Input validation shared by both doors. Bodies arrive as parsed JSON (MQTT, HTTP JSON) or as
// strings (HTTP forms and query parameters), so numbers and booleans are also accepted as their
// text. Anything else is refused with bad_request / payload_too_large and a message naming the field.
import { RgError } from '../../errors.js'
import { MAX_PAYLOAD_BYTES, parsePartialConfig } from './group-config.js'
import { CLIENT_ID, GROUP_NAME, JOB_ID, type CtlOp, type DoneInput, type HeartbeatInput, type JobInput, type Role } from './types.js'

export const MAX_RESULT_BYTES = 8 * 1024
export const MAX_META_BYTES = 1024

type Body = Record<string, unknown>

export function asBody (input: unknown): Body {
  if (input === undefined || input === null) return {}
  if (typeof input !== 'object' || Array.isArray(input)) throw new RgError('bad_request', 'the payload must be a JSON object')
  return input as Body
}

export function checkGroupName (group: string): string {
  if (!GROUP_NAME.test(group)) {
    throw new RgError('bad_request', `"${group.slice(0, 80)}" is not a group name: 1-64 characters of A-Z a-z 0-9 _ . -`)
  }
  return group
}

export function checkClientId (id: unknown): string {
  if (typeof id !== 'string' || !CLIENT_ID.test(id)) {
    throw new RgError('bad_request', 'clientId must be 1-128 characters of A-Z a-z 0-9 _ . : -')
  }
  return id
}

function number (v: unknown, field: string): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new RgError('bad_request', `${field} must be a finite number`)
  return n
}

function role (v: unknown): Role {
  if (v !== 'small' && v !== 'boss') throw new RgError('bad_request', 'role must be "small" or "boss"')
  return v
}

function jsonBytes (v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v) ?? 'null')
}

/** heartbeat and ready: `{role?, load?, meta?}` */
export function parseHeartbeat (input: unknown): HeartbeatInput {
  const b = asBody(input)
  const out: HeartbeatInput = {}
  if (b.role !== undefined) out.role = role(b.role)
  if (b.load !== undefined && b.load !== null) out.load = number(b.load, 'load')
  if (b.meta !== undefined && b.meta !== null) {
    if (typeof b.meta !== 'object' || Array.isArray(b.meta)) throw new RgError('bad_request', 'meta must be a JSON object')
    if (jsonBytes(b.meta) > MAX_META_BYTES) throw new RgError('payload_too_large', `meta must be at most ${MAX_META_BYTES} bytes of JSON`)
    out.meta = b.meta as Record<string, unknown>
  }
  return out
}

/** done: `{round, ok?, result?}` */
export function parseDone (input: unknown): DoneInput {
  const b = asBody(input)
  if (b.round === undefined) throw new RgError('bad_request', 'round is required')
  const round = number(b.round, 'round')
  if (!Number.isInteger(round) || round < 0) throw new RgError('bad_request', 'round must be a whole number')
  const out: DoneInput = { round }
  if (b.ok !== undefined) {
    if (b.ok === true || b.ok === 'true') out.ok = true
    else if (b.ok === false || b.ok === 'false') out.ok = false
    else throw new RgError('bad_request', 'ok must be true or false')
  }
  if (b.result !== undefined) {
    if (jsonBytes(b.result) > MAX_RESULT_BYTES) throw new RgError('payload_too_large', `result must be at most ${MAX_RESULT_BYTES} bytes of JSON`)
    out.result = b.result
  }
  return out
}

export function checkJobId (id: unknown): string {
  if (typeof id !== 'string' || !JOB_ID.test(id)) {
    throw new RgError('bad_request', 'a job id must be 1-128 characters of A-Z a-z 0-9 _ . : -')
  }
  return id
}

/** A whole number from a query parameter (or a JSON number) within [min, max]; undefined when absent. */
export function parseQueryInt (v: unknown, field: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null || v === '') return undefined
  const n = number(v, field)
  if (!Number.isInteger(n) || n < min || n > max) throw new RgError('bad_request', `${field} must be a whole number from ${min} to ${max}`)
  return n
}

/** A job submission: `{id?, payload, priority?}` (PROTOCOL section 10). */
export function parseJob (input: unknown): JobInput {
  const b = asBody(input)
  for (const k of Object.keys(b)) {
    if (k !== 'id' && k !== 'payload' && k !== 'priority') throw new RgError('bad_request', `unknown job key: ${k}`)
  }
  if (!('payload' in b)) throw new RgError('bad_request', 'a job needs a payload (any JSON, null included)')
  if (jsonBytes(b.payload) > MAX_PAYLOAD_BYTES) throw new RgError('payload_too_large', `a job's payload must be at most ${MAX_PAYLOAD_BYTES} bytes of JSON`)
  const out: JobInput = { payload: b.payload ?? null }
  if (b.id !== undefined) out.id = checkJobId(b.id)
  if (b.priority !== undefined) {
    const p = number(b.priority, 'priority')
    if (!Number.isInteger(p) || Math.abs(p) > 1e6) throw new RgError('bad_request', 'priority must be a whole number from -1000000 to 1000000')
    out.priority = p
  }
  return out
}

const CTL_OPS = new Set(['configure', 'pause', 'resume', 'abort', 'release', 'kick', 'submit', 'cancel'])

/** ctl: `{op, ...}` as in PROTOCOL section 4 */
export function parseCtl (input: unknown): CtlOp {
  const b = asBody(input)
  if (typeof b.op !== 'string' || !CTL_OPS.has(b.op)) {
    throw new RgError('bad_request', `op must be one of ${[...CTL_OPS].join(', ')}`)
  }
  switch (b.op) {
    case 'configure': return { op: 'configure', config: parsePartialConfig(b.config) }
    case 'kick': return { op: 'kick', clientId: checkClientId(b.clientId) }
    case 'submit': return { op: 'submit', job: parseJob(b.job) }
    case 'cancel': return { op: 'cancel', id: checkJobId(b.id) }
    default: return { op: b.op as 'pause' | 'resume' | 'abort' | 'release' }
  }
}
