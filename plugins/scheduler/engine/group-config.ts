// PROTOCOL section 2: a group's configuration, its defaults, and validation with clear messages.
import { z } from 'zod'
import { RgError } from '../../errors.js'
import { scheduleProblem, validTimeZone } from './schedule.js'
import type { CompleteOn, GroupConfig, RetryPolicy } from './types.js'

export const MAX_PAYLOAD_BYTES = 16 * 1024
const DAY = 24 * 3600 * 1000
/** PROTOCOL section 2: each retry waits twice as long as the one before, at most this long. */
export const MAX_RETRY_BACKOFF_MS = 10 * 60 * 1000
export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ max: 0, backoffMs: 1000 })

export const DEFAULT_GROUP_CONFIG: GroupConfig = Object.freeze({
  need: 1,
  bossNeed: 0,
  minOnlineRatio: 0.9,
  heartbeatMs: 10000,
  offlineAfterMs: 30000,
  execTimeoutMs: 600000,
  dropTolerance: 0,
  completeOn: null,
  resetMs: 1000,
  selection: 'fifo',
  payload: null,
  paused: false,
  startDelayMs: 0,
  schedule: null,
  scheduleTz: 'UTC',
  misfireMs: 0,
  jobsOnly: false,
  retry: DEFAULT_RETRY
})

const int = (min: number, max: number): z.ZodNumber => z.number().int().min(min).max(max)

const shape = {
  need: int(0, 100000),
  bossNeed: int(0, 10000),
  minOnlineRatio: z.number().min(0).max(1),
  heartbeatMs: int(100, DAY),
  offlineAfterMs: int(100, DAY),
  execTimeoutMs: int(100, 7 * DAY),
  dropTolerance: z.number().min(0).max(1000000).refine(
    (v) => Number.isInteger(v) || (v > 0 && v < 1),
    'must be a whole count or a ratio between 0 and 1'),
  completeOn: z.enum(['boss', 'all']).nullable(),
  resetMs: int(0, 3600 * 1000),
  selection: z.enum(['fifo', 'fair', 'load']),
  payload: z.unknown().refine(
    (v) => v === undefined || Buffer.byteLength(JSON.stringify(v) ?? 'null') <= MAX_PAYLOAD_BYTES,
    `must be at most ${MAX_PAYLOAD_BYTES} bytes of JSON`),
  paused: z.boolean(),
  startDelayMs: int(0, 60000),
  schedule: z.string().max(200).nullable().superRefine((v, ctx) => {
    const problem = v === null ? null : scheduleProblem(v, 'UTC')
    if (problem !== null) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `not a cron expression: ${problem}` })
  }),
  scheduleTz: z.string().max(64).refine(validTimeZone, 'must be an IANA time zone name, e.g. UTC or Europe/Berlin'),
  misfireMs: int(0, DAY),
  jobsOnly: z.boolean(),
  // a retry policy given replaces the whole policy; a key it leaves out takes its default
  retry: z.object({ max: int(0, 1000), backoffMs: int(0, MAX_RETRY_BACKOFF_MS) }).partial().strict()
    .transform((r): RetryPolicy => ({ ...DEFAULT_RETRY, ...r }))
}

const partialSchema = z.object(shape).partial().strict()

function describe (err: z.ZodError): string {
  return err.issues.map((i) => {
    const where = i.path.length > 0 ? i.path.join('.') : 'config'
    return i.code === 'unrecognized_keys' ? `unknown key(s): ${i.keys.join(', ')}` : `${where}: ${i.message}`
  }).join('; ')
}

/** Validate a partial configuration (PATCH, ctl configure, the config file); throws bad_request. */
export function parsePartialConfig (input: unknown): Partial<GroupConfig> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new RgError('bad_request', 'config must be a JSON object')
  }
  const res = partialSchema.safeParse(input)
  if (!res.success) throw new RgError('bad_request', `invalid group config: ${describe(res.error)}`)
  const out = res.data as Partial<GroupConfig>
  if ('payload' in input && out.payload === undefined) out.payload = null
  return out
}

/** A whole configuration: the defaults (or `base`) overlaid with a validated partial. */
export function mergeConfig (base: GroupConfig, patch: Partial<GroupConfig>): GroupConfig {
  const merged = { ...base }
  for (const [k, v] of Object.entries(patch)) {
    if (v !== undefined) (merged as Record<string, unknown>)[k] = v
  }
  return merged
}

export function completeOnOf (cfg: GroupConfig): CompleteOn {
  return cfg.completeOn ?? (cfg.bossNeed > 0 ? 'boss' : 'all')
}

/** How many participants may drop before the round is aborted (a ratio rounds down). */
export function dropLimit (cfg: GroupConfig, participants: number): number {
  const t = cfg.dropTolerance
  return Number.isInteger(t) ? t : Math.floor(t * participants)
}

/** Smalls that must be online before a release: ceil(need × minOnlineRatio). */
export function onlineThreshold (cfg: GroupConfig): number {
  return Math.ceil(cfg.need * cfg.minOnlineRatio - 1e-9)
}

/** The configuration as shown to users (GET /v1/groups/{g}): `completeOn` resolved. */
export function publicConfig (cfg: GroupConfig): GroupConfig & { completeOn: CompleteOn } {
  return { ...cfg, completeOn: completeOnOf(cfg) }
}

/** How long after a failed round's end its retry `attempt` (2, 3, ...) may be released. */
export function retryBackoff (policy: RetryPolicy, attempt: number): number {
  return Math.min(MAX_RETRY_BACKOFF_MS, policy.backoffMs * 2 ** Math.max(0, attempt - 2))
}
