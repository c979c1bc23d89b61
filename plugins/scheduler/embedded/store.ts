// The embedded default store: every group's state machine in this process's memory. Each
// operation runs synchronously start to finish, which is what makes it atomic. With a data
// directory, state survives restarts (see snapshot.ts): rounds never go backwards.
import { RgError } from '../../errors.js'
import { GroupModel } from '../engine/group-model.js'
import { SnapshotFile } from './snapshot.js'
import type { GroupSnapshot, RoundsQuery, Store, TerminalOpOptions } from '../engine/store.js'
import type {
  CtlOp, DoneInput, GroupConfig, HeartbeatInput, OpResult, RoundSummary, TerminalView
} from '../engine/types.js'

export interface MemoryStoreOptions {
  /** round summaries kept per group (at least 1000 by PROTOCOL) */
  historyLimit?: number
  maxTerminalsPerGroup?: number
  maxGroups?: number
  /** directory for the state snapshot; null keeps everything in memory only */
  dataDir?: string | null
  now?: () => number
}

export class MemoryStore implements Store {
  private readonly groups = new Map<string, GroupModel>()
  /** deleted groups → their last round: a group created again goes on from there */
  private readonly tombstones = new Map<string, number>()
  private readonly opts: Required<Omit<MemoryStoreOptions, 'dataDir'>>
  private readonly snapshot: SnapshotFile | null

  constructor (opts: MemoryStoreOptions = {}) {
    this.opts = {
      historyLimit: Math.max(1000, opts.historyLimit ?? 1000),
      maxTerminalsPerGroup: opts.maxTerminalsPerGroup ?? 100000,
      maxGroups: opts.maxGroups ?? 10000,
      now: opts.now ?? Date.now
    }
    this.snapshot = opts.dataDir != null ? new SnapshotFile(opts.dataDir) : null
  }

  async open (): Promise<void> {
    if (this.snapshot === null) return
    const now = this.opts.now()
    for (const model of this.snapshot.load(this.limits(), now)) this.groups.set(model.name, model)
  }

  async close (): Promise<void> {
    if (this.snapshot !== null) await this.snapshot.saveNow(this.groups.values(), true)
  }

  async ping (): Promise<boolean> {
    return true
  }

  async listGroups (): Promise<string[]> {
    return [...this.groups.keys()]
  }

  async getGroup (group: string): Promise<GroupSnapshot | null> {
    const m = this.groups.get(group)
    if (m === undefined) return null
    return { config: { ...m.config }, state: m.state(), timing: m.timing(), release: m.release }
  }

  async putGroup (group: string, config: GroupConfig): Promise<OpResult> {
    return this.run(group, { createWith: config }, (m) => m.setConfig(config))
  }

  async ensureGroup (group: string, config: GroupConfig): Promise<OpResult> {
    return this.run(group, { createWith: config }, () => {})
  }

  async deleteGroup (group: string): Promise<number | null> {
    const m = this.groups.get(group)
    if (m === undefined) return null
    this.groups.delete(group)
    this.tombstones.set(group, m.round)
    this.snapshot?.markDirty(this.groups.values())
    return m.round
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
    return this.run(group, undefined, (m, now) => m.ctl(op, now))
  }

  async tick (group: string): Promise<OpResult> {
    return this.run(group, undefined, (m, now) => m.tick(now))
  }

  async terminals (group: string): Promise<TerminalView[]> {
    return this.model(group).terminalViews()
  }

  async rounds (group: string, query: RoundsQuery): Promise<RoundSummary[]> {
    const h = this.model(group).history
    const out: RoundSummary[] = []
    for (let i = h.length - 1; i >= 0 && out.length < query.limit; i--) {
      if (query.before === undefined || h[i].round < query.before) out.push(h[i])
    }
    return out
  }

  private limits (): { maxTerminals: number, historyLimit: number } {
    return { maxTerminals: this.opts.maxTerminalsPerGroup, historyLimit: this.opts.historyLimit }
  }

  private model (group: string): GroupModel {
    const m = this.groups.get(group)
    if (m === undefined) throw new RgError('unknown_group', `no group named ${group}`)
    return m
  }

  /** One atomic transition: find (or create) the group, apply `fn`, settle, report. */
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
    m.events = []
    fn(m, now) // throws before changing anything when it refuses
    if (created) { this.groups.set(group, m); this.tombstones.delete(group) }
    m.settle(now)
    const changed = created || m.fingerprint() !== before
    if (changed) m.updatedAt = now
    const events = m.events
    m.events = []
    if (this.snapshot !== null && (changed || events.length > 0)) {
      this.snapshot.reserve(m, this.groups.values())
      this.snapshot.markDirty(this.groups.values())
    }
    return { state: m.state(), timing: m.timing(), changed, events, heartbeatMs: m.config.heartbeatMs, now }
  }
}
