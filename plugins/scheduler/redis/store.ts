// The cluster-mode store: every group's state in one shared Redis, every transition one Lua script
// (lua-core.ts, lua-jobs.ts, lua-rules.ts, lua-ops.ts) run atomically inside Redis with Redis TIME
// as the clock, so any broker process may take any terminal's message and each release, each
// scheduled tick and each job is decided exactly once. It passes the same abstract suite as the
// embedded store (test/store-suite/).
//
// Keys: `<prefix>:{<group>}:<part>` for a group's state (the hash tag keeps a group in one Redis
// Cluster slot), and `<prefix>:groups`, the set of group names, which the scripts that create or
// delete a group change in the same step (it is the only key outside a group's slot, so it pins
// the registry to the Redis that holds the groups). docs/cluster.md describes every key.
import { Redis } from 'ioredis'
import { quit, reconnect } from './link.js'
import { RgError } from '../../errors.js'
import { canonical } from '../engine/model/jobs.js'
import type { GroupSnapshot, JobsQuery, RoundsQuery, Store, TerminalOpOptions } from '../engine/store.js'
import {
  JOB_ID, type CtlOp, type DoneInput, type GroupConfig, type HeartbeatInput, type Job, type OpResult, type Role,
  type RoundSummary, type TerminalRound, type TerminalView
} from '../engine/types.js'
import {
  decodeConfig, encodeConfig, encodePatch, NO_CFG, optNum, parseRelease, parseReply, parseSummary, parseTerminalRound,
  type Reply
} from './codec.js'
import { DELETE_SOURCE, OP_SOURCES, type OpName } from './lua-ops.js'
import { LuaScript, runScript, scriptError } from './script.js'
import { FOLLOW_UP_TICKS, TickFeed } from './ticks.js'

export interface RedisStoreOptions {
  /** redis://host:port[/db] */
  url: string
  /** first part of every key (default `rg`) */
  prefix?: string
  historyLimit?: number
  maxTerminalsPerGroup?: number
  maxGroups?: number
  maxQueuedJobs?: number
  /** told about connection trouble (the store itself never hangs on it) */
  onError?: (err: Error) => void
}

/** A group's keys in the order lua-core.ts names them; the registry follows. */
const PARTS = ['g', 'cfg', 'seen', 'role', 'load', 'meta', 'last', 'rs', 'rb', 'parts', 'plist', 'done', 'res', 'drop', 'hist',
  'jq', 'jobs', 'jall', 'jdone', 'tomb'] as const

const SCRIPTS = Object.fromEntries(
  Object.entries(OP_SOURCES).map(([name, src]) => [name, new LuaScript(src)])
) as Record<OpName, LuaScript>
const DELETE = new LuaScript(DELETE_SOURCE)

/** Follow-up settles one store call may add when a script ran out of ticks (the next transition goes on). */
const MAX_FOLLOW_UPS = 3
const MAX_PRIORITY = 1e6
/** Key lists kept per group name (made on every call otherwise); forgotten all at once beyond this many names. */
const MAX_KEY_LISTS = 20000

export class RedisStore implements Store {
  readonly redis: Redis
  private readonly prefix: string
  private readonly historyLimit: number
  private readonly maxTerminals: number
  private readonly maxGroups: number
  private readonly maxQueuedJobs: number
  private readonly ticks = new TickFeed()
  private readonly keyLists = new Map<string, string[]>()
  /** groups this process has seen exist (a terminal op then sends no creation config) */
  private readonly existing = new Set<string>()
  private closed = false

  constructor (opts: RedisStoreOptions) {
    this.prefix = opts.prefix ?? 'rg'
    this.historyLimit = Math.max(1000, opts.historyLimit ?? 1000)
    this.maxTerminals = opts.maxTerminalsPerGroup ?? 100000
    this.maxGroups = opts.maxGroups ?? 10000
    this.maxQueuedJobs = opts.maxQueuedJobs ?? 10000
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
    const { state, timing } = this.complete(group, parseReply(group, raw[0]))
    return { config: decodeConfig(raw[1]), state, timing, release: raw[2] === '' ? null : parseRelease(raw[2]) }
  }

  async putGroup (group: string, config: GroupConfig): Promise<OpResult> {
    return await this.op('put', group, config, [])
  }

  async ensureGroup (group: string, config: GroupConfig): Promise<OpResult> {
    return await this.op('ensure', group, config, [])
  }

  async deleteGroup (group: string): Promise<number | null> {
    if (this.closed) throw new RgError('unavailable', 'the store is closed')
    this.ticks.forget(group)
    this.existing.delete(group)
    const last = await runScript(this.redis, DELETE, this.keys(group), [group])
    return last === null ? null : Number(last)
  }

  // --- terminals ----------------------------------------------------------------------------

  async heartbeat (group: string, clientId: string, input: HeartbeatInput, opts?: TerminalOpOptions): Promise<OpResult> {
    return await this.terminalOp('heartbeat', group, terminalArgs(clientId, input), opts)
  }

  async ready (group: string, clientId: string, input: HeartbeatInput, opts?: TerminalOpOptions): Promise<OpResult> {
    return await this.terminalOp('ready', group, terminalArgs(clientId, input), opts)
  }

  /**
   * A terminal's heartbeat or ready. The configuration to create the group with (autoCreateGroups)
   * goes to Redis only while this process has not seen the group exist: sent with every heartbeat
   * it was most of the bytes and garbage of the call (a payload may be 16 KiB). A group deleted
   * meanwhile (by any process) answers `unknown_group` before the script writes anything, and the
   * call is made again with the configuration.
   */
  private async terminalOp (name: 'heartbeat' | 'ready', group: string, args: string[], opts?: TerminalOpOptions): Promise<OpResult> {
    if (opts?.createWith !== undefined && this.existing.has(group)) {
      try {
        return await this.op(name, group, undefined, args, opts.maxTerminals)
      } catch (err) {
        if (!(err instanceof RgError && err.code === 'unknown_group')) throw err
        this.existing.delete(group)
      }
    }
    const res = await this.op(name, group, opts?.createWith, args, opts?.maxTerminals)
    if (this.existing.size >= MAX_KEY_LISTS) this.existing.clear()
    this.existing.add(group)
    return res
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
      case 'configure': return await this.op('configure', group, undefined, encodePatch(op.config))
      // pause and resume are the configuration's `paused`, one script for all three
      case 'pause': return await this.op('configure', group, undefined, encodePatch({ paused: true }))
      case 'resume': return await this.op('configure', group, undefined, encodePatch({ paused: false }))
      case 'kick': return await this.op('kick', group, undefined, [op.clientId])
      case 'submit': return await this.submit(group, op.job)
      case 'cancel': {
        const res = await this.op('cancel', group, undefined, [checkJob(op.id)])
        delete res.created
        return res
      }
      default: return await this.op(op.op, group, undefined, [])
    }
  }

  /** Submit a job (its id already chosen); the payload's canonical JSON is compared inside the script. */
  private async submit (group: string, job: Extract<CtlOp, { op: 'submit' }>['job']): Promise<OpResult> {
    if (job.id === undefined) throw new RgError('bad_request', 'a job needs its id')
    const priority = job.priority ?? 0
    if (!Number.isInteger(priority) || Math.abs(priority) > MAX_PRIORITY) {
      throw new RgError('bad_request', `priority must be a whole number from -${MAX_PRIORITY} to ${MAX_PRIORITY}`)
    }
    const payload = job.payload ?? null
    return await this.op('submit', group, undefined, [checkJob(job.id), canonical(payload), JSON.stringify(payload), String(priority)])
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
    const raw = await this.run('rounds', group, [String(query.limit), query.before === undefined ? '' : String(query.before), query.outcome ?? '']) as string[]
    return raw.map(parseSummary)
  }

  async terminalRounds (group: string, clientId: string, limit: number): Promise<TerminalRound[]> {
    const raw = await this.run('terminalRounds', group, [clientId, String(limit)]) as Array<Array<string | number>>
    return raw.map(parseTerminalRound)
  }

  async jobs (group: string, query: JobsQuery): Promise<Job[]> {
    const raw = await this.run('jobs', group, [String(query.limit), query.state ?? '', query.before === undefined ? '' : checkJob(query.before)]) as string[]
    return raw.map((j) => JSON.parse(j) as Job)
  }

  async job (group: string, id: string): Promise<Job | null> {
    const raw = await this.run('job', group, [checkJob(id)]) as string | null
    return raw === null ? null : JSON.parse(raw) as Job
  }

  // --- internals ----------------------------------------------------------------------------

  private registry (): string {
    return `${this.prefix}:groups`
  }

  /** Every key of a group, in the order lua-core.ts names them, then the registry. */
  keys (group: string): string[] {
    let keys = this.keyLists.get(group)
    if (keys === undefined) {
      if (this.keyLists.size >= MAX_KEY_LISTS) this.keyLists.clear()
      keys = [...PARTS.map((p) => `${this.prefix}:{${group}}:${p}`), this.registry()]
      this.keyLists.set(group, keys)
    }
    return keys
  }

  private async run (name: OpName, group: string, args: string[], create = '', cfg = NO_CFG, ticks = this.ticks.args(group), maxTerminals?: number): Promise<unknown> {
    if (this.closed) throw new RgError('unavailable', 'the store is closed')
    // the engine's share of the terminals in all groups (TerminalOpOptions.maxTerminals) bounds the group's
    const maxT = Math.min(this.maxTerminals, maxTerminals ?? Infinity)
    const argv = [group, String(maxT), String(this.historyLimit), create, String(this.maxQueuedJobs), ticks, cfg, ...args]
    return await runScript(this.redis, SCRIPTS[name], this.keys(group), argv)
  }

  /**
   * One transition: one script (which, when it creates the group, also registers it). When it
   * could not consume a scheduled tick for want of ticks (this process knew an older last tick or
   * schedule, or the group is far behind) and one is due, a settle script follows at once with the
   * ticks after the last tick it answered: each tick is still consumed inside one script.
   */
  private async op (name: OpName, group: string, createWith: GroupConfig | undefined, args: string[], maxTerminals?: number): Promise<OpResult> {
    const create = createWith === undefined ? '' : String(this.maxGroups)
    let reply = parseReply(group, await this.run(name, group, args, create, createWith === undefined ? NO_CFG : encodeConfig(createWith), this.ticks.args(group), maxTerminals))
    let res = this.complete(group, reply)
    for (let i = 0; i < MAX_FOLLOW_UPS && reply.tickGap; i++) {
      const known = this.ticks.learn(group, reply.schedule, res.now)
      if (!this.ticks.due(known, res.now)) break
      const job = res.job?.id ?? ''
      reply = parseReply(group, await this.run('settle', group, [job], '', NO_CFG, this.ticks.args(group, FOLLOW_UP_TICKS)))
      const next = this.complete(group, reply)
      next.events = [...res.events, ...next.events]
      next.changed ||= res.changed
      if (res.duplicate === true) next.duplicate = true
      if (res.created !== undefined) next.created = res.created
      if (next.job === undefined && res.job !== undefined) next.job = res.job
      res = next
    }
    return res
  }

  /** Fill in what derives from the schedule: state.nextTick, timing.wakeAt. */
  private complete (group: string, reply: Reply): OpResult {
    const res = reply.result
    const known = this.ticks.learn(group, reply.schedule, res.now)
    res.state.nextTick = this.ticks.nextTick(known)
    res.timing = { wakeAt: this.ticks.wakeAt(known, res.now, reply.wake) }
    return res
  }
}

function checkJob (id: string): string {
  if (!JOB_ID.test(id)) throw new RgError('bad_request', 'a job id is 1 to 128 of A-Z a-z 0-9 _ . : -')
  return id
}

function terminalArgs (clientId: string, input: HeartbeatInput): string[] {
  return [
    clientId,
    input.role ?? '',
    input.load === undefined ? '' : String(input.load),
    input.meta === undefined ? '' : JSON.stringify(input.meta)
  ]
}
