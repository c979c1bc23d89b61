// The embedded default store: every group's state machine (engine/model) in this process's memory,
// made durable in SQLite (`<dataDir>/roundgate.db`, sqlite.ts). Each operation runs synchronously
// start to finish, which is what makes it atomic: the model applies the transition, and what it
// changed durably is committed in one transaction before the answer leaves. A commit the disk
// refuses refuses the transition (`unavailable`) and rebuilds that group from the database, the
// committed truth, so memory never runs ahead of the file. Heartbeats and lastSeen stay in memory.
// Without a data directory (`--data-dir ""`) nothing is written: the pure in-memory mode.
import type { Logger } from 'pino'
import { RgError } from '../../errors.js'
import { GroupModel, type ModelLimits } from '../engine/model/group.js'
import { publicJob } from '../engine/model/jobs.js'
import type { GroupSnapshot, JobsQuery, RoundsQuery, Store, TerminalOpOptions } from '../engine/store.js'
import type {
  CtlOp, DoneInput, GroupConfig, HeartbeatInput, Job, OpResult, RoundSummary, TerminalRound, TerminalView
} from '../engine/types.js'
import type { Durability } from './db.js'
import { MemoryHistory } from './history-memory.js'
import { Persister } from './persist.js'
import { SqliteState } from './sqlite.js'

export interface MemoryStoreOptions {
  /** round summaries kept per group (at least 1000 by PROTOCOL) */
  historyLimit?: number
  /** rounds that ended longer ago than this many days go, beyond each group's newest 1000 (null: kept) */
  historyMaxAgeDays?: number | null
  maxTerminalsPerGroup?: number
  maxGroups?: number
  maxQueuedJobs?: number
  /** directory of the SQLite file; null keeps everything in memory only */
  dataDir?: string | null
  /** how hard each commit is pushed to the disk (db.ts); default 'normal' */
  durability?: Durability
  /** told about the database: migrations, the import, write faults and their end */
  logger?: Logger
  now?: () => number
}

export class MemoryStore implements Store {
  private readonly groups = new Map<string, GroupModel>()
  /** the last round of each deleted group: a group created again continues above it */
  private readonly tombstones = new Map<string, number>()
  private readonly opts: Required<Omit<MemoryStoreOptions, 'dataDir' | 'logger'>> & Pick<MemoryStoreOptions, 'logger'>
  private readonly dataDir: string | null
  private sqlite: SqliteState | null = null
  private readonly memHistory: MemoryHistory

  constructor (opts: MemoryStoreOptions = {}) {
    this.opts = {
      historyLimit: Math.max(1000, opts.historyLimit ?? 1000),
      historyMaxAgeDays: opts.historyMaxAgeDays ?? null,
      maxTerminalsPerGroup: opts.maxTerminalsPerGroup ?? 100000,
      maxGroups: opts.maxGroups ?? 10000,
      maxQueuedJobs: opts.maxQueuedJobs ?? 10000,
      durability: opts.durability ?? 'normal',
      logger: opts.logger,
      now: opts.now ?? Date.now
    }
    this.dataDir = opts.dataDir ?? null
    this.memHistory = new MemoryHistory(this.opts.historyLimit)
  }

  async open (): Promise<void> {
    if (this.dataDir === null || this.sqlite !== null) return
    const now = this.opts.now()
    const sqlite = new SqliteState({
      dir: this.dataDir,
      durability: this.opts.durability,
      historyLimit: this.opts.historyLimit,
      historyMaxAgeDays: this.opts.historyMaxAgeDays,
      logger: this.opts.logger
    }, now)
    try {
      const loaded = sqlite.load(this.limits(), now)
      for (const [name, m] of loaded.groups) this.groups.set(name, m)
      for (const [name, round] of loaded.tombstones) this.tombstones.set(name, round)
    } catch (err) {
      sqlite.close()
      throw err
    }
    this.sqlite = sqlite
  }

  async close (): Promise<void> {
    this.sqlite?.close()
    this.sqlite = null
  }

  /** The store works: in memory always; with a file, while the file takes writes. */
  async ping (): Promise<boolean> {
    return this.sqlite?.healthy() ?? true
  }

  async listGroups (): Promise<string[]> {
    return [...this.groups.keys()]
  }

  async getGroup (group: string): Promise<GroupSnapshot | null> {
    const m = this.groups.get(group)
    if (m === undefined) return null
    return { config: { ...m.config }, state: m.state(), timing: m.timing(this.opts.now()), release: m.release }
  }

  async putGroup (group: string, config: GroupConfig): Promise<OpResult> {
    return this.run(group, { createWith: config }, (m, now) => m.configure(config, now))
  }

  async ensureGroup (group: string, config: GroupConfig): Promise<OpResult> {
    return this.run(group, { createWith: config }, () => { /* created if missing, else untouched */ })
  }

  async deleteGroup (group: string): Promise<number | null> {
    const m = this.groups.get(group)
    if (m === undefined) return null
    const round = Math.max(m.round, this.tombstones.get(group) ?? 0)
    if (this.sqlite !== null) {
      try {
        this.sqlite.deleteGroup(group, round)
      } catch (err) {
        throw new RgError('unavailable', `the group could not be deleted: the database refuses writes (${(err as Error).message})`)
      }
    }
    this.groups.delete(group)
    this.tombstones.set(group, round)
    this.memHistory.drop(group)
    return round
  }

  async heartbeat (group: string, clientId: string, input: HeartbeatInput, opts?: TerminalOpOptions): Promise<OpResult> {
    this.checkRoom(group, clientId, opts)
    return this.run(group, opts, (m, now) => m.heartbeat(clientId, input, now))
  }

  async ready (group: string, clientId: string, input: HeartbeatInput, opts?: TerminalOpOptions): Promise<OpResult> {
    this.checkRoom(group, clientId, opts)
    return this.run(group, opts, (m, now) => m.ready(clientId, input, now))
  }

  /** TerminalOpOptions.maxTerminals: a new terminal needs room under the caller's bound. */
  private checkRoom (group: string, clientId: string, opts: TerminalOpOptions | undefined): void {
    if (opts?.maxTerminals === undefined) return
    const t = this.groups.get(group)?.terminals
    const size = t?.size ?? 0
    if (t?.get(clientId) === undefined && size >= opts.maxTerminals) {
      throw new RgError('unavailable', 'the broker already holds its maximum number of terminals')
    }
  }

  async done (group: string, clientId: string, input: DoneInput): Promise<OpResult> {
    let duplicate = false
    const res = this.run(group, undefined, (m, now) => { duplicate = m.reportDone(clientId, input, now) })
    res.duplicate = duplicate
    return res
  }

  async leave (group: string, clientId: string): Promise<OpResult> {
    return this.run(group, undefined, (m, now) => m.leave(clientId, now))
  }

  async hold (group: string, clientIds: string[]): Promise<OpResult> {
    return this.run(group, undefined, (m, now) => m.hold(clientIds, now))
  }

  async ctl (group: string, op: CtlOp): Promise<OpResult> {
    let created: boolean | undefined
    const jobId = op.op === 'submit' ? op.job.id : op.op === 'cancel' ? op.id : undefined
    if ((op.op === 'submit' || op.op === 'cancel') && jobId === undefined) throw new RgError('bad_request', 'a job needs its id')
    const res = this.run(group, undefined, (m, now) => {
      if (op.op === 'submit') created = m.submitJob(jobId as string, op.job.payload, op.job.priority ?? 0, now).created
      else if (op.op === 'cancel') m.cancelJob(op.id, now)
      else m.ctl(op, now)
    })
    if (jobId !== undefined) {
      // the job as the whole transition left it (a submit the same transition released is running)
      const j = this.groups.get(group)?.jobs.get(jobId)
      if (j !== undefined) res.job = publicJob(j)
      if (created !== undefined) res.created = created
    }
    return res
  }

  async tick (group: string): Promise<OpResult> {
    return this.run(group, undefined, (m, now) => m.tick(now))
  }

  async terminals (group: string): Promise<TerminalView[]> {
    const m = this.model(group)
    return m.terminals.views((id) => m.current?.participants.has(id) ?? false)
  }

  async rounds (group: string, query: RoundsQuery): Promise<RoundSummary[]> {
    this.model(group)
    return this.sqlite !== null ? this.sqlite.history.rounds(group, query) : this.memHistory.rounds(group, query)
  }

  async terminalRounds (group: string, clientId: string, limit: number): Promise<TerminalRound[]> {
    this.model(group)
    const rounds = this.sqlite !== null ? this.sqlite.history.participations(group, clientId, limit) : this.memHistory.participations(group, clientId, limit)
    return rounds.map((s) => {
      const ms = s.doneMs[clientId]
      return {
        round: s.round,
        attempt: s.attempt,
        outcome: s.outcome,
        startAt: s.startAt,
        doneMs: ms ?? null,
        ok: ms === undefined ? null : !s.failed.includes(clientId),
        dropped: s.dropped.includes(clientId)
      }
    })
  }

  async jobs (group: string, query: JobsQuery): Promise<Job[]> {
    return this.model(group).jobs.list(query)
  }

  async job (group: string, id: string): Promise<Job | null> {
    const j = this.model(group).jobs.get(id)
    return j === undefined ? null : publicJob(j)
  }

  private limits (): ModelLimits {
    return { maxTerminals: this.opts.maxTerminalsPerGroup, historyLimit: this.opts.historyLimit, maxQueuedJobs: this.opts.maxQueuedJobs }
  }

  private model (group: string): GroupModel {
    const m = this.groups.get(group)
    if (m === undefined) throw new RgError('unknown_group', `no group named ${group}`)
    return m
  }

  /** One atomic transition: find (or create) the group, apply `fn`, settle, commit, report. */
  private run (group: string, opts: TerminalOpOptions | undefined, fn: (m: GroupModel, now: number) => void): OpResult {
    const now = this.opts.now()
    let m = this.groups.get(group)
    let created = false
    if (m === undefined) {
      if (opts?.createWith === undefined) throw new RgError('unknown_group', `no group named ${group}`)
      if (this.groups.size >= this.opts.maxGroups) {
        throw new RgError('unavailable', `the broker already holds ${this.opts.maxGroups} groups`)
      }
      m = new GroupModel(group, { ...opts.createWith }, now, this.limits())
      m.round = this.tombstones.get(group) ?? 0
      created = true
    }
    const before = m.fingerprint()
    const scalars = scalarsSig(m)
    m.begin()
    fn(m, now) // throws before changing anything when it refuses
    if (created) this.groups.set(group, m)
    m.settle(now)
    const changed = created || m.fingerprint() !== before
    if (changed) m.updatedAt = now
    if (this.sqlite !== null) {
      if (created || Persister.dirty(m) || scalarsSig(m) !== scalars) this.commit(m, created, now)
    } else if (m.changes.ended !== null) {
      this.memHistory.append(m.changes.ended)
    }
    if (created) this.tombstones.delete(group)
    const events = m.events
    m.events = []
    return { state: m.state(), timing: m.timing(now), changed, events, heartbeatMs: m.config.heartbeatMs, now }
  }

  /** Commit the transition; when the disk refuses, put the group back as the file has it and refuse. */
  private commit (m: GroupModel, created: boolean, now: number): void {
    const sqlite = this.sqlite as SqliteState
    try {
      sqlite.commit(m, created)
    } catch (err) {
      this.restore(m, created, now)
      throw new RgError('unavailable', `the state could not be saved (${(err as Error).message}); nothing changed`)
    }
  }

  private restore (m: GroupModel, created: boolean, now: number): void {
    const sqlite = this.sqlite as SqliteState
    if (created) { this.groups.delete(m.name); return }
    try {
      const back = sqlite.reload(m.name, this.limits(), now, (id) => m.terminals.get(id)?.lastSeen)
      if (back === null) { this.groups.delete(m.name); return }
      // heartbeat data is memory's: keep it for the terminals the file knows
      for (const t of back.terminals.online.values()) {
        const was = m.terminals.get(t.id)
        if (was !== undefined) { t.load = was.load; t.meta = was.meta }
      }
      this.groups.set(m.name, back)
    } catch (err) {
      // the file cannot even be read back: memory is kept as it is, and the fault is logged
      this.opts.logger?.error({ group: m.name, err: (err as Error).message }, 'the group could not be read back after a failed write; memory may be ahead of the file until the next start')
    }
  }
}

/** The durable scalars of a model (GroupModel.scalars), as one comparable string, updatedAt aside. */
function scalarsSig (m: GroupModel): string {
  const { updatedAt: _updatedAt, ...durable } = m.scalars()
  return JSON.stringify(durable)
}
