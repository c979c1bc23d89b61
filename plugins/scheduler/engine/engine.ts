// The round engine's entry points: what both doors (MQTT hooks, HTTP gateway) call. Each validates
// its input, applies it to the store in one atomic transition, and hands what the transition caused
// to the core (core.ts), which turns it into events. It knows nothing of MQTT or HTTP.
import { randomUUID } from 'node:crypto'
import { RgError } from '../../errors.js'
import { EngineCore } from './core.js'
import { mergeConfig, parsePartialConfig, publicConfig } from './group-config.js'
import type { ActiveRelease } from './release.js'
import type { GroupSnapshot } from './store.js'
import type { GroupConfig, GroupState, Job, JobInput, JobState, Phase, RoundSummary, TerminalRound, TerminalView } from './types.js'
import {
  asBody, checkClientId, checkGroupName, checkJobId, parseCtl, parseDone, parseHeartbeat, parseJob, parseQueryInt
} from './validate.js'

export { type EngineEvents, type EngineOptions, type Notice } from './core.js'

export class Engine extends EngineCore {
  // --- terminals ------------------------------------------------------------------------------

  async heartbeat (group: string, clientId: string, body: unknown): Promise<{ phase: Phase, round: number, heartbeatMs: number }> {
    this.checkQuiet(group, 'heartbeat')
    const input = parseHeartbeat(body)
    const g = checkGroupName(group)
    const id = checkClientId(clientId)
    const meta = this.budgets.admit(g, id, input.meta)
    const res = this.apply(await this.store.heartbeat(g, id, input, this.createOpts(g)))
    this.budgets.heard(g, id, meta)
    return { phase: res.state.phase, round: res.state.round, heartbeatMs: res.heartbeatMs }
  }

  async ready (group: string, clientId: string, body: unknown): Promise<{ phase: Phase, round: number }> {
    this.checkQuiet(group, 'ready')
    const input = parseHeartbeat(body)
    const g = checkGroupName(group)
    const id = checkClientId(clientId)
    const meta = this.budgets.admit(g, id, input.meta)
    const res = this.apply(await this.store.ready(g, id, input, this.createOpts(g)))
    this.budgets.heard(g, id, meta)
    return { phase: res.state.phase, round: res.state.round }
  }

  async done (group: string, clientId: string, body: unknown): Promise<{ duplicate: boolean }> {
    this.checkQuiet(group, 'done')
    const input = parseDone(body)
    const g = checkGroupName(group)
    const id = checkClientId(clientId)
    const res = this.apply(await this.store.done(g, id, input))
    this.budgets.heard(g, id, null)
    return { duplicate: res.duplicate === true }
  }

  async leave (group: string, clientId: string): Promise<Record<string, never>> {
    this.checkQuiet(group, 'leave')
    this.apply(await this.store.leave(checkGroupName(group), checkClientId(clientId)))
    return {}
  }

  /**
   * A terminal's HTTP long-poll is pending: it counts as heard from until the returned function
   * is called (PROTOCOL section 3, liveness). The first hold is a heartbeat.
   */
  async hold (group: string, clientId: string, body: unknown = {}): Promise<() => void> {
    const g = checkGroupName(group)
    this.checkQuiet(g, 'a release poll')
    const id = checkClientId(clientId)
    const input = parseHeartbeat(body)
    const meta = this.budgets.admit(g, id, input.meta)
    this.apply(await this.store.heartbeat(g, id, input, this.createOpts(g)))
    this.budgets.heard(g, id, meta)
    let ids = this.holds.get(g)
    if (ids === undefined) this.holds.set(g, ids = new Map<string, number>())
    ids.set(id, (ids.get(id) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (ids.get(id) ?? 1) - 1
      if (n > 0) ids.set(id, n)
      else ids.delete(id)
    }
  }

  /** The release of the round `group` executes now, as this process knows it. */
  releaseOf (group: string): ActiveRelease | null {
    return this.active.get(group) ?? null
  }

  activeReleases (): IterableIterator<ActiveRelease> {
    return this.active.values()
  }

  // --- operators and viewers ------------------------------------------------------------------

  /** A ctl message (PROTOCOL sections 4 and 10): `job` is answered for submit and cancel. */
  async ctl (group: string, body: unknown): Promise<{ ok: true, job?: Job }> {
    const op = parseCtl(body)
    this.checkQuiet(group, `ctl ${op.op}`)
    if (op.op === 'submit') return { ok: true, job: (await this.submit(group, op.job)).job }
    const res = this.apply(await this.store.ctl(checkGroupName(group), op))
    return res.job === undefined ? { ok: true } : { ok: true, job: res.job }
  }

  /** PUT: the whole configuration; keys not given take the server's group defaults. */
  async putGroup (group: string, body: unknown): Promise<{ config: GroupConfig, state: GroupState }> {
    this.checkQuiet(group, 'a configuration change')
    const cfg = mergeConfig(this.defaults, parsePartialConfig(asBody(body)))
    const res = this.apply(await this.store.putGroup(checkGroupName(group), cfg))
    return { config: publicConfig(cfg), state: res.state }
  }

  /** PATCH: only the keys given change. */
  async patchGroup (group: string, body: unknown): Promise<{ config: GroupConfig, state: GroupState }> {
    this.checkQuiet(group, 'a configuration change')
    const patch = parsePartialConfig(asBody(body))
    this.apply(await this.store.ctl(checkGroupName(group), { op: 'configure', config: patch }))
    return await this.getGroup(group)
  }

  async deleteGroup (group: string): Promise<void> {
    this.checkQuiet(group, 'deleting a group')
    // the store answers the group's last round: every process then knows which releases are stale
    const round = await this.store.deleteGroup(checkGroupName(group))
    if (round === null) throw new RgError('unknown_group', `no group named ${group}`)
    this.share({ type: 'deleted', group, round })
  }

  async getGroup (group: string): Promise<{ config: GroupConfig, state: GroupState }> {
    const snap = await this.snapshot(group)
    return { config: publicConfig(snap.config), state: snap.state }
  }

  async listGroups (): Promise<GroupState[]> {
    const out: GroupState[] = []
    for (const g of (await this.store.listGroups()).sort()) {
      const snap = await this.store.getGroup(g)
      if (snap !== null) out.push(snap.state)
    }
    return out
  }

  async terminals (group: string): Promise<TerminalView[]> {
    return await this.store.terminals(checkGroupName(group))
  }

  /** One terminal and the last rounds it took part in (the dashboard's terminal history). */
  async terminal (group: string, clientId: string, limit?: unknown): Promise<{ terminal: TerminalView | null, rounds: TerminalRound[] }> {
    const g = checkGroupName(group)
    const id = checkClientId(clientId)
    const n = parseQueryInt(limit, 'limit', 1, 1000) ?? 50
    const terminal = (await this.store.terminals(g)).find((t) => t.clientId === id) ?? null
    const rounds = await this.store.terminalRounds(g, id, n)
    if (terminal === null && rounds.length === 0) throw new RgError('unknown_group', `no terminal ${id} in group ${g}, now or in its history`)
    return { terminal, rounds }
  }

  async rounds (group: string, limit?: unknown, before?: unknown, outcome?: unknown): Promise<RoundSummary[]> {
    const n = parseQueryInt(limit, 'limit', 1, 1000) ?? 50
    const b = parseQueryInt(before, 'before', 0, Number.MAX_SAFE_INTEGER)
    if (outcome !== undefined && outcome !== 'completed' && outcome !== 'aborted' && outcome !== 'timeout') {
      throw new RgError('bad_request', 'outcome must be completed, aborted or timeout')
    }
    return await this.store.rounds(checkGroupName(group), { limit: n, before: b, outcome: outcome })
  }

  async state (group: string): Promise<GroupState> {
    return (await this.snapshot(group)).state
  }

  // --- jobs (PROTOCOL section 10) ---------------------------------------------------------------

  /** Submit a job: 201 when created, 200 with the existing job when its id was known. */
  async submitJob (group: string, body: unknown): Promise<{ job: Job, created: boolean }> {
    return await this.submit(group, parseJob(body))
  }

  /** A job parsed and checked (parseJob: over HTTP here, inside parseCtl over MQTT). */
  private async submit (group: string, input: JobInput): Promise<{ job: Job, created: boolean }> {
    const res = this.apply(await this.store.ctl(checkGroupName(group), { op: 'submit', job: { ...input, id: input.id ?? randomUUID() } }))
    if (res.job === undefined) throw new RgError('unavailable', 'the store did not answer the job')
    return { job: res.job, created: res.created === true }
  }

  /** Cancel a queued job, or abort the round of a running one. */
  async cancelJob (group: string, id: string): Promise<Job> {
    const res = this.apply(await this.store.ctl(checkGroupName(group), { op: 'cancel', id: checkJobId(id) }))
    if (res.job === undefined) throw new RgError('unknown_job', `no job ${id} in group ${group}`)
    return res.job
  }

  async jobs (group: string, state?: unknown, limit?: unknown, before?: unknown): Promise<Job[]> {
    const states: JobState[] = ['queued', 'running', 'completed', 'failed', 'cancelled']
    if (state !== undefined && !states.includes(state as JobState)) throw new RgError('bad_request', `state must be one of ${states.join(', ')}`)
    const n = parseQueryInt(limit, 'limit', 1, 1000) ?? 50
    const b = before === undefined ? undefined : checkJobId(before)
    return await this.store.jobs(checkGroupName(group), { limit: n, state: state as JobState | undefined, before: b })
  }

  async job (group: string, id: string): Promise<Job> {
    const j = await this.store.job(checkGroupName(group), checkJobId(id))
    if (j === null) throw new RgError('unknown_job', `no job ${id} in group ${group}`)
    return j
  }

  private async snapshot (group: string): Promise<GroupSnapshot> {
    const snap = await this.store.getGroup(checkGroupName(group))
    if (snap === null) throw new RgError('unknown_group', `no group named ${group}`)
    return snap
  }

}
