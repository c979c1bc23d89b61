// What the Redis store's scripts take and answer, in TypeScript shapes: the configuration as
// stored (one hash field per key), the answer of every transition (lua-core.ts `reply`), its
// events, and the records the read scripts answer.
import { DEFAULT_GROUP_CONFIG } from '../engine/group-config.js'
import type {
  GroupConfig, GroupState, Job, OpResult, Phase, ReleaseRecord, RoundSummary, StoreEvent, TerminalRound
} from '../engine/types.js'
import { REPLY_EVENTS } from './lua-core.js'

/** The stored configuration fields, in the order of lua-core.ts CFGF; the payload follows. */
export const CFG_FIELDS = ['need', 'bossNeed', 'minOnlineRatio', 'heartbeatMs', 'offlineAfterMs', 'execTimeoutMs',
  'dropTolerance', 'completeOn', 'resetMs', 'selection', 'paused', 'startDelayMs', 'schedule', 'scheduleTz', 'misfireMs',
  'jobsOnly', 'retryMax', 'retryBackoffMs'] as const

/** The configuration argument of a script that creates nothing. */
export const NO_CFG = ''

/** A configuration key as stored: field name → value (retry takes two fields). */
function storedFields (key: string, value: unknown): Array<[string, string]> {
  switch (key) {
    case 'payload': return [['payload', JSON.stringify(value ?? null)]]
    case 'paused': case 'jobsOnly': return [[key, value === true ? '1' : '0']]
    case 'completeOn': case 'schedule': return [[key, typeof value === 'string' ? value : '']]
    case 'retry': {
      const r = value as GroupConfig['retry']
      return [['retryMax', String(r.max)], ['retryBackoffMs', String(r.backoffMs)]]
    }
    default: return [[key, typeof value === 'string' ? value : JSON.stringify(value)]]
  }
}

/** A whole configuration as the create argument: a JSON list of CFG_FIELDS' stored values, then the payload's JSON. */
export function encodeConfig (c: GroupConfig): string {
  const h = new Map<string, string>()
  for (const [k, v] of Object.entries(c)) for (const [f, s] of storedFields(k, v)) h.set(f, s)
  return JSON.stringify([...CFG_FIELDS.map((f) => h.get(f) ?? ''), h.get('payload') ?? 'null'])
}

/** A (validated) partial configuration as field, value, field, value... */
export function encodePatch (patch: Partial<GroupConfig>): string[] {
  const kv: string[] = []
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined || !(k in DEFAULT_GROUP_CONFIG)) continue
    for (const [f, s] of storedFields(k, v)) kv.push(f, s)
  }
  return kv
}

/** The configuration hash (HGETALL) back; keys a group stored before PROTOCOL 1.1 lacks take their defaults. */
export function decodeConfig (flat: string[]): GroupConfig {
  const h: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]] = flat[i + 1]
  const d = DEFAULT_GROUP_CONFIG
  const n = (v: string | undefined, def: number): number => v === undefined || v === '' ? def : Number(v)
  return {
    need: Number(h.need),
    bossNeed: Number(h.bossNeed),
    minOnlineRatio: Number(h.minOnlineRatio),
    heartbeatMs: Number(h.heartbeatMs),
    offlineAfterMs: Number(h.offlineAfterMs),
    execTimeoutMs: Number(h.execTimeoutMs),
    dropTolerance: Number(h.dropTolerance),
    completeOn: h.completeOn === '' || h.completeOn === undefined ? null : h.completeOn as GroupConfig['completeOn'],
    resetMs: Number(h.resetMs),
    selection: h.selection as GroupConfig['selection'],
    payload: JSON.parse(h.payload ?? 'null') as unknown,
    paused: h.paused === '1',
    startDelayMs: n(h.startDelayMs, d.startDelayMs),
    schedule: h.schedule === undefined || h.schedule === '' ? null : h.schedule,
    scheduleTz: h.scheduleTz ?? d.scheduleTz,
    misfireMs: n(h.misfireMs, d.misfireMs),
    jobsOnly: h.jobsOnly === '1',
    retry: { max: n(h.retryMax, d.retry.max), backoffMs: n(h.retryBackoffMs, d.retry.backoffMs) }
  }
}

const optNum = (v: unknown): number | null => v === '' || v === null || v === undefined ? null : Number(v)

/** A release, as a script wrote it (one written by a script before PROTOCOL 1.1 gets its defaults). */
export function parseRelease (json: string): ReleaseRecord {
  const r = JSON.parse(json) as ReleaseRecord
  if (r.attempt !== undefined) return r
  return { ...r, attempt: 1, job: null, startAt: r.releasedAt }
}

/** A round summary, as a script wrote it (one kept from before PROTOCOL 1.1 gets its defaults). */
export function parseSummary (json: string): RoundSummary {
  const s = JSON.parse(json) as RoundSummary
  if (s.attempt !== undefined) return s
  const settled = new Set([...s.done, ...s.dropped])
  return {
    ...s,
    attempt: 1,
    job: null,
    startAt: s.releasedAt,
    stragglers: s.participants.filter((id) => !settled.has(id)),
    timing: { doneP50Ms: null, doneP99Ms: null, lastDoneMs: null },
    doneMs: {}
  }
}

function parseEvent (group: string, e: string): StoreEvent {
  const body = e.slice(1)
  switch (e[0]) {
    case 'R': return { type: 'released', release: parseRelease(body) }
    case 'E': return { type: 'ended', summary: parseSummary(body) }
    case 'L': return { type: 'left', group, clientId: body }
    case 'K': return { type: 'kicked', group, clientId: body }
    case 'J': return { type: 'job', job: JSON.parse(body) as Job }
    case 'M': {
      const bar = body.indexOf('|')
      return { type: 'missed', group, missed: { tick: Number(body.slice(0, bar)), reason: body.slice(bar + 1) } }
    }
    case 'T': {
      const r = JSON.parse(body) as { round: number, attempt: number, at: number, job: string | null }
      return { type: 'retry', group, round: r.round, attempt: r.attempt, at: r.at, job: r.job }
    }
    case 'X': {
      const r = JSON.parse(body) as { round: number, attempt: number, job: string | null }
      return { type: 'exhausted', group, round: r.round, attempt: r.attempt, job: r.job }
    }
    default: throw new Error(`unknown event from a script: ${e.slice(0, 40)}`)
  }
}

/** What of a group's schedule an answer carries: the store computes its ticks from it. */
export interface ScheduleInfo {
  schedule: string | null
  tz: string
  /** the last tick consumed (released or missed) */
  lastTick: number
  startDelayMs: number
  misfireMs: number
}

export interface Reply {
  /** state.nextTick and the tick's part of timing.wakeAt are filled in by the store (ticks.ts) */
  result: OpResult
  schedule: ScheduleInfo
  /** the script could not consume every tick that may be due (it had none or used them all up) */
  tickGap: boolean
  /** the instants of timing.wakeAt other than the next tick */
  wake: number[]
}

/** The answer of lua-core.ts `reply()`. */
export function parseReply (group: string, raw: unknown): Reply {
  const a = raw as unknown[]
  const phase = a[0] as Phase
  const state: GroupState = {
    group,
    phase,
    round: Number(a[1]),
    attempt: Number(a[20]),
    paused: Number(a[2]) === 1,
    need: Number(a[3]),
    bossNeed: Number(a[4]),
    online: Number(a[5]) + Number(a[6]),
    onlineBoss: Number(a[6]),
    ready: Number(a[7]) + Number(a[8]),
    readyBoss: Number(a[8]),
    participants: Number(a[9]),
    done: Number(a[10]),
    dropped: Number(a[11]),
    releasedAt: optNum(a[12]),
    startAt: optNum(a[21]),
    nextTick: null,
    missed: Number(a[22]),
    queued: Number(a[23]),
    updatedAt: Number(a[13])
  }
  const wake: number[] = []
  for (const i of [14, 15, 24]) { const v = optNum(a[i]); if (v !== null) wake.push(v) } // resetUntil, deadline, retry
  const result: OpResult = {
    state,
    timing: { wakeAt: null },
    changed: Number(a[16]) === 1,
    events: a.slice(REPLY_EVENTS).map((e) => parseEvent(group, String(e))),
    heartbeatMs: Number(a[17]),
    now: Number(a[19])
  }
  if (Number(a[18]) === 1) result.duplicate = true
  if (Array.isArray(a[26])) {
    const [json, created] = a[26] as [string, number]
    result.job = JSON.parse(json) as Job
    result.created = Number(created) === 1
  }
  const sched = a[25]
  if (!Array.isArray(sched)) return { result, schedule: NO_SCHEDULE, tickGap: false, wake }
  const [lastTick, schedule, tz, startDelayMs, misfireMs, gap] = sched as [number, string, string, number, number, number]
  return {
    result,
    schedule: { schedule, tz, lastTick: Number(lastTick), startDelayMs: Number(startDelayMs), misfireMs: Number(misfireMs) },
    tickGap: Number(gap) === 1,
    wake
  }
}

const NO_SCHEDULE: ScheduleInfo = Object.freeze({ schedule: null, tz: 'UTC', lastTick: 0, startDelayMs: 0, misfireMs: 0 })

/** One row of the terminalRounds script. */
export function parseTerminalRound (row: Array<string | number>): TerminalRound {
  const [round, attempt, outcome, startAt, doneMs, ok, dropped] = row
  return {
    round: Number(round),
    attempt: Number(attempt),
    outcome: outcome as TerminalRound['outcome'],
    startAt: Number(startAt),
    doneMs: optNum(doneMs),
    ok: ok === '' ? null : ok === '1',
    dropped: Number(dropped) === 1
  }
}

export { optNum }
