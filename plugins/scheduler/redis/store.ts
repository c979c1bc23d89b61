// The cluster-mode store: every group's state in one shared Redis, every transition one Lua script
// (redis/lua-core.ts + redis/lua-ops.ts) run atomically inside Redis with Redis TIME as the clock,
// so any broker process may take any terminal's message and each release is decided exactly once.
// It passes the same abstract suite as the memory store (test/store-suite/).
//
// Keys: `<prefix>:{<group>}:<part>` for a group's state (the hash tag keeps a group in one Redis
// Cluster slot), and `<prefix>:groups`, the set of group names, which the scripts that create or
// delete a group change in the same step (it is the only key outside a group's slot, so it pins
// the registry to the Redis that holds the groups). docs/cluster.md describes every key.
import { Redis } from 'ioredis'
import { quit, reconnect } from './link.js'
import { RgError } from '../../errors.js'
import { DELETE_SOURCE, OP_SOURCES, type OpName } from './lua-ops.js'
import { LuaScript, runScript, scriptError } from './script.js'
import { DEFAULT_GROUP_CONFIG } from '../engine/group-config.js'
import { timingOf } from '../engine/model/round.js'
import type { GroupSnapshot, JobsQuery, RoundsQuery, Store, TerminalOpOptions } from '../engine/store.js'
import type {
  CtlOp, DoneInput, GroupConfig, GroupState, HeartbeatInput, Job, OpResult, Phase, ReleaseRecord,
  Role, RoundSummary, StoreEvent, TerminalRound, TerminalView
} from '../engine/types.js'

export interface RedisStoreOptions {
  /** redis://host:port[/db] */
  url: string
  /** first part of every key (default `rg`) */
  prefix?: string
  historyLimit?: number
  maxTerminalsPerGroup?: number
  maxGroups?: number
  /** told about connection trouble (the store itself never hangs on it) */
  onError?: (err: Error) => void
}

const PARTS = ['g', 'cfg', 'seen', 'role', 'load', 'meta', 'last', 'rs', 'rb', 'parts', 'plist', 'done', 'res', 'drop', 'hist', 'tomb'] as const

const SCRIPTS = Object.fromEntries(
  Object.entries(OP_SOURCES).map(([name, src]) => [name, new LuaScript(src)])
) as Record<OpName, LuaScript>
const DELETE = new LuaScript(DELETE_SOURCE)

/** Configuration fields in the order of ARGV 5..16 (payload at 15, paused at 16). */
const CFG_ORDER = ['need', 'bossNeed', 'minOnlineRatio', 'heartbeatMs', 'offlineAfterMs', 'execTimeoutMs',
  'dropTolerance', 'completeOn', 'resetMs', 'selection', 'payload', 'paused'] as const
const NO_CFG = CFG_ORDER.map(() => '')

function encodeField (key: string, value: unknown): string {
  if (key === 'payload') return JSON.stringify(value ?? null)
  if (key === 'paused') return value === true ? '1' : '0'
  if (key === 'completeOn') return typeof value === 'string' ? value : ''
  return typeof value === 'string' ? value : JSON.stringify(value)
}

function encodeConfig (c: GroupConfig): string[] {
  return CFG_ORDER.map((k) => encodeField(k, c[k]))
}

function decodeConfig (flat: string[]): GroupConfig {
  const h: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]] = flat[i + 1]
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
    // PROTOCOL 1.1 keys: not yet kept by the Lua scripts
    startDelayMs: DEFAULT_GROUP_CONFIG.startDelayMs,
    schedule: DEFAULT_GROUP_CONFIG.schedule,
    scheduleTz: DEFAULT_GROUP_CONFIG.scheduleTz,
    misfireMs: DEFAULT_GROUP_CONFIG.misfireMs,
    jobsOnly: DEFAULT_GROUP_CONFIG.jobsOnly,
    retry: DEFAULT_GROUP_CONFIG.retry
  }
}

const optNum = (v: unknown): number | null => v === '' || v === null || v === undefined ? null : Number(v)

function parseEvent (group: string, e: string): StoreEvent {
  const body = e.slice(1)
  switch (e[0]) {
    case 'R': return { type: 'released', release: withReleaseDefaults(JSON.parse(body) as ReleaseRecord) }
    case 'E': return { type: 'ended', summary: withSummaryDefaults(JSON.parse(body) as RoundSummary) }
    case 'L': return { type: 'left', group, clientId: body }
    default: return { type: 'kicked', group, clientId: body }
  }
}

/** PROTOCOL 1.1 release fields the Lua scripts do not write yet. */
function withReleaseDefaults (r: ReleaseRecord): ReleaseRecord {
  return { ...r, attempt: r.attempt ?? 1, job: r.job ?? null, startAt: r.startAt ?? r.releasedAt }
}

/** PROTOCOL 1.1 summary fields the Lua scripts do not write yet. */
function withSummaryDefaults (s: RoundSummary): RoundSummary {
  const settled = new Set([...s.done, ...s.dropped])
  return {
    ...s,
    attempt: s.attempt ?? 1,
    job: s.job ?? null,
    startAt: s.startAt ?? s.releasedAt,
    stragglers: s.stragglers ?? s.participants.filter((id) => !settled.has(id)),
    timing: s.timing ?? timingOf([]),
    doneMs: s.doneMs ?? {}
  }
}

/** The reply of lua-core.ts `reply()`. */
function parseReply (group: string, raw: unknown): OpResult {
  const a = raw as Array<string | number>
  const state: GroupState = {
    group,
    phase: a[0] as Phase,
    round: Number(a[1]),
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
    updatedAt: Number(a[13]),
    attempt: 1,
    startAt: a[0] === 'EXECUTING' ? optNum(a[12]) : null,
    nextTick: null,
    missed: 0,
    queued: 0
  }
  const resetUntil = optNum(a[14])
  const deadline = optNum(a[15])
  const result: OpResult = {
    state,
    timing: { wakeAt: resetUntil ?? deadline },
    changed: Number(a[16]) === 1,
    events: a.slice(21).map((e) => parseEvent(group, String(e))),
    heartbeatMs: Number(a[17]),
    now: Number(a[20])
  }
  if (Number(a[18]) === 1) result.duplicate = true
  return result
}

export class RedisStore implements Store {
  readonly redis: Redis
  private readonly prefix: string
  private readonly historyLimit: number
  private readonly maxTerminals: number
  private readonly maxGroups: number
  private closed = false

  constructor (opts: RedisStoreOptions) {
    this.prefix = opts.prefix ?? 'rg'
    this.historyLimit = Math.max(1000, opts.historyLimit ?? 1000)
    this.maxTerminals = opts.maxTerminalsPerGroup ?? 100000
    this.maxGroups = opts.maxGroups ?? 10000
    this.redis = new Redis(opts.url, {
      lazyConnect: true,
      // fail at once while Redis is unreachable (answered `unavailable`), never queue and hang
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // a command unanswered this long fails as `unavailable`
      commandTimeout: 5000,
      enableAutoPipelining: true,
      retryStrategy: reconnect
    })
    this.redis.on('error', (err: Error) => opts.onError?.(err))
  }

  async open (): Promise<void> {
    try {
      await this.redis.connect()
      // load every script once, so concurrent first calls need no NOSCRIPT round trip
      await Promise.all([...Object.values(SCRIPTS), DELETE].map(async (s) => await this.redis.script('LOAD', s.source)))
    } catch (err) {
      throw scriptError(err)
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await quit(this.redis)
  }

  async ping (): Promise<boolean> {
    try {
      return await this.redis.ping() === 'PONG'
    } catch {
      return false
    }
  }

  // --- groups -------------------------------------------------------------------------------

  async listGroups (): Promise<string[]> {
    try {
      return await this.redis.smembers(this.registry())
    } catch (err) {
      throw scriptError(err)
    }
  }

  async getGroup (group: string): Promise<GroupSnapshot | null> {
    const raw = await this.run('snapshot', group, []) as [unknown, string[], string] | null
    if (raw === null) return null
    const result = parseReply(group, raw[0])
    return {
      config: decodeConfig(raw[1]),
      state: result.state,
      timing: result.timing,
      release: raw[2] === '' ? null : withReleaseDefaults(JSON.parse(raw[2]) as ReleaseRecord)
    }
  }

  async putGroup (group: string, config: GroupConfig): Promise<OpResult> {
    return await this.op('put', group, config, [])
  }

  async ensureGroup (group: string, config: GroupConfig): Promise<OpResult> {
    return await this.op('ensure', group, config, [])
  }

  async deleteGroup (group: string): Promise<number | null> {
    if (this.closed) throw new RgError('unavailable', 'the store is closed')
    const last = await runScript(this.redis, DELETE, this.keys(group), [group])
    return last === null ? null : Number(last)
  }

  // --- terminals ----------------------------------------------------------------------------

  async heartbeat (group: string, clientId: string, input: HeartbeatInput, opts?: TerminalOpOptions): Promise<OpResult> {
    return await this.op('heartbeat', group, opts?.createWith, terminalArgs(clientId, input), opts?.maxTerminals)
  }

  async ready (group: string, clientId: string, input: HeartbeatInput, opts?: TerminalOpOptions): Promise<OpResult> {
    return await this.op('ready', group, opts?.createWith, terminalArgs(clientId, input), opts?.maxTerminals)
  }

  async done (group: string, clientId: string, input: DoneInput): Promise<OpResult> {
    const result = input.result === undefined ? '' : JSON.stringify(input.result)
    const res = await this.op('done', group, undefined, [clientId, String(input.round), input.ok === false ? '0' : '1', result])
    res.duplicate = res.duplicate === true
    return res
  }

  async leave (group: string, clientId: string): Promise<OpResult> {
    return await this.op('leave', group, undefined, [clientId])
  }

  async hold (group: string, clientIds: string[]): Promise<OpResult> {
    return await this.op('hold', group, undefined, clientIds)
  }

  // --- operators and time ---------------------------------------------------------------------

  async ctl (group: string, op: CtlOp): Promise<OpResult> {
    switch (op.op) {
      case 'configure': return await this.configure(group, op.config)
      // pause and resume are the configuration's `paused`, one script for all three
      case 'pause': return await this.configure(group, { paused: true })
      case 'resume': return await this.configure(group, { paused: false })
      case 'kick': return await this.op('kick', group, undefined, [op.clientId])
      case 'submit': case 'cancel':
        throw new RgError('bad_request', 'jobs are not yet available in cluster mode')
      default: return await this.op(op.op, group, undefined, [])
    }
  }

  private async configure (group: string, config: Partial<GroupConfig>): Promise<OpResult> {
    const kv: string[] = []
    for (const [k, v] of Object.entries(config)) {
      if (v !== undefined && (CFG_ORDER as readonly string[]).includes(k)) kv.push(k, encodeField(k, v))
    }
    return await this.op('configure', group, undefined, kv)
  }

  async tick (group: string): Promise<OpResult> {
    return await this.op('tick', group, undefined, [])
  }

  // --- reads --------------------------------------------------------------------------------

  async terminals (group: string): Promise<TerminalView[]> {
    const [ids, seen, roles, loads, metas, rs, rb, parts] = await this.run('terminals', group, []) as Array<Array<string | null>>
    const ready = new Set([...rs, ...rb])
    const participating = new Set(parts)
    return (ids as string[]).map((id, i) => ({
      clientId: id,
      role: roles[i] as Role,
      lastSeen: Number(seen[i]),
      online: true,
      ready: ready.has(id),
      participating: participating.has(id),
      load: optNum(loads[i]),
      meta: metas[i] === null ? null : JSON.parse(metas[i]) as Record<string, unknown>
    }))
  }

  async rounds (group: string, query: RoundsQuery): Promise<RoundSummary[]> {
    const raw = await this.run('rounds', group, [String(query.limit), query.before === undefined ? '' : String(query.before)]) as string[]
    return raw.map((s) => withSummaryDefaults(JSON.parse(s) as RoundSummary))
  }

  async terminalRounds (group: string, clientId: string, limit: number): Promise<TerminalRound[]> {
    const out: TerminalRound[] = []
    for (const s of await this.rounds(group, { limit: 1000 })) {
      if (out.length >= limit) break
      if (!s.participants.includes(clientId)) continue
      const ms = s.doneMs[clientId]
      out.push({ round: s.round, attempt: s.attempt, outcome: s.outcome, startAt: s.startAt, doneMs: ms ?? null, ok: ms === undefined ? null : !s.failed.includes(clientId), dropped: s.dropped.includes(clientId) })
    }
    return out
  }

  async jobs (group: string, _query: JobsQuery): Promise<Job[]> {
    await this.getGroup(group)
    return []
  }

  async job (_group: string, _id: string): Promise<Job | null> {
    return null
  }

  // --- internals ----------------------------------------------------------------------------

  private registry (): string {
    return `${this.prefix}:groups`
  }

  /** Every key of a group, in the order lua-core.ts names them, then the registry. */
  keys (group: string): string[] {
    return [...PARTS.map((p) => `${this.prefix}:{${group}}:${p}`), this.registry()]
  }

  private async run (name: OpName, group: string, args: string[], create: string = '', cfg: string[] = NO_CFG, maxTerminals?: number): Promise<unknown> {
    if (this.closed) throw new RgError('unavailable', 'the store is closed')
    const maxT = Math.min(this.maxTerminals, maxTerminals ?? Infinity)
    const argv = [group, String(maxT), String(this.historyLimit), create, ...cfg, ...args]
    return await runScript(this.redis, SCRIPTS[name], this.keys(group), argv)
  }

  /** One transition: one script (which, when it creates the group, also registers it). */
  private async op (name: OpName, group: string, createWith: GroupConfig | undefined, args: string[], maxTerminals?: number): Promise<OpResult> {
    const create = createWith === undefined ? '' : String(this.maxGroups)
    const raw = await this.run(name, group, args, create, createWith === undefined ? NO_CFG : encodeConfig(createWith), maxTerminals)
    return parseReply(group, raw)
  }
}

function terminalArgs (clientId: string, input: HeartbeatInput): string[] {
  return [
    clientId,
    input.role ?? '',
    input.load === undefined ? '' : String(input.load),
    input.meta === undefined ? '' : JSON.stringify(input.meta)
  ]
}
