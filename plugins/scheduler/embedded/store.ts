// The embedded default store: every group's state machine (engine/model) in this process's memory.
// Each operation runs synchronously start to finish, which is what makes it atomic. With a data
// directory, state survives restarts (see snapshot.ts): rounds never go backwards.
import { RgError } from '../../errors.js'
import { GroupModel, type ModelLimits } from '../engine/model/group.js'
import { publicJob } from '../engine/model/jobs.js'
import type { GroupSnapshot, JobsQuery, RoundsQuery, Store, TerminalOpOptions } from '../engine/store.js'
import type {
  CtlOp, DoneInput, GroupConfig, HeartbeatInput, Job, OpResult, RoundSummary, TerminalRound, TerminalView
} from '../engine/types.js'
import { SnapshotFile } from './snapshot.js'

export interface MemoryStoreOptions {
  /** round summaries kept per group (at least 1000 by PROTOCOL) */
  historyLimit?: number
  maxTerminalsPerGroup?: number
  maxGroups?: number
  maxQueuedJobs?: number
  /** directory for the state snapshot; null keeps everything in memory only */
  dataDir?: string | null
  now?: () => number
}

/** One group in this store: its state machine and its round history (oldest first). */
export interface Held {
  model: GroupModel
  history: RoundSummary[]
}

export class MemoryStore implements Store {
  private readonly groups = new Map<string, Held>()
  /** the last round of each deleted group: a group created again continues above it */
  private readonly tombstones = new Map<string, number>()
  private readonly opts: Required<Omit<MemoryStoreOptions, 'dataDir'>>
  private readonly snapshot: SnapshotFile | null

  constructor (opts: MemoryStoreOptions = {}) {
    this.opts = {
      historyLimit: Math.max(1000, opts.historyLimit ?? 1000),
      maxTerminalsPerGroup: opts.maxTerminalsPerGroup ?? 100000,
      maxGroups: opts.maxGroups ?? 10000,
      maxQueuedJobs: opts.maxQueuedJobs ?? 10000,
      now: opts.now ?? Date.now
    }
    this.snapshot = opts.dataDir != null ? new SnapshotFile(opts.dataDir) : null
  }

  async open (): Promise<void> {
    if (this.snapshot === null) return
    const loaded = this.snapshot.load(this.limits(), this.opts.now())
    for (const h of loaded.groups) this.groups.set(h.model.name, h)
    for (const [g, round] of loaded.tombstones) this.tombstones.set(g, round)
  }

  async close (): Promise<void> {
    if (this.snapshot !== null) await this.snapshot.saveNow(this.groups.values(), this.tombstones, true)
  }

  async ping (): Promise<boolean> {
    return true
  }

  async listGroups (): Promise<string[]> {
    return [...this.groups.keys()]
  }

  async getGroup (group: string): Promise<GroupSnapshot | null> {
    const m = this.groups.get(group)?.model
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
    const h = this.groups.get(group)
    if (h === undefined) return null
    this.groups.delete(group)
    this.tombstones.set(group, h.model.round)
    this.snapshot?.markDirty(this.groups.values(), this.tombstones)
    return h.model.round
  }

  async heartbeat (group: string, clientId: string, input: HeartbeatInput, opts?: TerminalOpOptions): Promise<OpResult> {
    return this.run(group, opts, (m, now) => m.heartbeat(clientId, input, now))
  }

  async ready (group: string, clientId: string, input: HeartbeatInput, opts?: TerminalOpOptions): Promise<OpResult> {
    return this.run(group, opts, (m, now) => m.ready(clientId, input, now))
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
      const j = this.groups.get(group)?.model.jobs.get(jobId)
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
    const h = this.held(group).history
    const out: RoundSummary[] = []
    for (let i = h.length - 1; i >= 0 && out.length < query.limit; i--) {
      const s = h[i]
      if ((query.before === undefined || s.round < query.before) && (query.outcome === undefined || s.outcome === query.outcome)) out.push(s)
    }
    return out
  }

  async terminalRounds (group: string, clientId: string, limit: number): Promise<TerminalRound[]> {
    const h = this.held(group).history
    const out: TerminalRound[] = []
    for (let i = h.length - 1; i >= 0 && out.length < limit; i--) {
      const s = h[i]
      if (!s.participants.includes(clientId)) continue
      const ms = s.doneMs[clientId]
      out.push({
        round: s.round,
        attempt: s.attempt,
        outcome: s.outcome,
        startAt: s.startAt,
        doneMs: ms ?? null,
        ok: ms === undefined ? null : !s.failed.includes(clientId),
        dropped: s.dropped.includes(clientId)
      })
    }
    return out
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

  private held (group: string): Held {
    const h = this.groups.get(group)
    if (h === undefined) throw new RgError('unknown_group', `no group named ${group}`)
    return h
  }

  private model (group: string): GroupModel {
    return this.held(group).model
  }

  /** One atomic transition: find (or create) the group, apply `fn`, settle, report. */
  private run (group: string, opts: TerminalOpOptions | undefined, fn: (m: GroupModel, now: number) => void): OpResult {
    const now = this.opts.now()
    let h = this.groups.get(group)
    let created = false
    if (h === undefined) {
      if (opts?.createWith === undefined) throw new RgError('unknown_group', `no group named ${group}`)
      if (this.groups.size >= this.opts.maxGroups) {
        throw new RgError('unavailable', `the broker already holds ${this.opts.maxGroups} groups`)
      }
      const model = new GroupModel(group, { ...opts.createWith }, now, this.limits())
      model.round = this.tombstones.get(group) ?? 0
      h = { model, history: [] }
      created = true
    }
    const m = h.model
    const before = m.fingerprint()
    m.begin()
    fn(m, now) // throws before changing anything when it refuses
    if (created) {
      this.groups.set(group, h)
      this.tombstones.delete(group)
    }
    m.settle(now)
    const ended = m.changes.ended
    if (ended !== null) {
      h.history.push(ended)
      if (h.history.length > this.opts.historyLimit) h.history.splice(0, h.history.length - this.opts.historyLimit)
    }
    const changed = created || m.fingerprint() !== before
    if (changed) m.updatedAt = now
    const events = m.events
    m.events = []
    if (this.snapshot !== null && (changed || events.length > 0 || m.changes.config || m.terminals.dirty.size > 0 || m.jobs.dirty.size > 0)) {
      this.snapshot.reserve(m, this.groups.values(), this.tombstones)
      this.snapshot.markDirty(this.groups.values(), this.tombstones)
    }
    return { state: m.state(), timing: m.timing(now), changed, events, heartbeatMs: m.config.heartbeatMs, now }
  }
}
