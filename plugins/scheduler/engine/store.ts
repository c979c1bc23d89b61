// The store boundary. All round state lives behind this interface; every method that changes
// state is one atomic transition (the memory store: one synchronous step; the Redis store: one Lua
// script), so any broker may take any terminal's message and a release is decided exactly once.
// Time is the store's clock (Date.now() in memory, Redis TIME in cluster mode).
//
// Errors are thrown as RgError with a catalogue code (unknown_group, stale_round, ...). A refused
// operation changes nothing at all. test/store-suite/ is the contract every store must pass.
import type {
  CtlOp, DoneInput, GroupConfig, GroupState, GroupTiming, HeartbeatInput, Job, JobState, OpResult, Outcome,
  ReleaseRecord, RoundSummary, TerminalRound, TerminalView
} from './types.js'

export interface TerminalOpOptions {
  /** create the group with this configuration when it does not exist (autoCreateGroups) */
  createWith?: GroupConfig
  /**
   * heartbeat and ready: a terminal not yet in the group is refused `unavailable` when the group
   * would then hold more than this many (the engine's share of `maxTerminals` in all groups)
   */
  maxTerminals?: number
}

export interface RoundsQuery {
  limit: number
  /** only rounds numbered below this */
  before?: number
  /** only rounds that ended so */
  outcome?: Outcome
}

export interface JobsQuery {
  limit: number
  state?: JobState
  /** only jobs submitted before the job with this id */
  before?: string
}

export interface GroupSnapshot {
  config: GroupConfig
  state: GroupState
  timing: GroupTiming
  /** the current round's release, while EXECUTING */
  release: ReleaseRecord | null
}

export interface Store {
  /** Connect / load. Resolves when the store can serve. */
  open (): Promise<void>
  /** Flush and release resources; no call may follow. */
  close (): Promise<void>
  /** Reachable right now (for /readyz). */
  ping (): Promise<boolean>

  // --- groups -------------------------------------------------------------------------------
  listGroups (): Promise<string[]>
  getGroup (group: string): Promise<GroupSnapshot | null>
  /** Create a group, or replace its whole configuration. Rounds, terminals and history stay. */
  putGroup (group: string, config: GroupConfig): Promise<OpResult>
  /** Create a group only if it does not exist yet (declared groups at start-up). */
  ensureGroup (group: string, config: GroupConfig): Promise<OpResult>
  /**
   * Remove a group and everything it holds but its last round number, which a group created again
   * under the same name goes on from (round numbers are never reused). Answers that last round,
   * or null when there was no such group.
   */
  deleteGroup (group: string): Promise<number | null>

  // --- terminals (PROTOCOL section 3) -------------------------------------------------------
  heartbeat (group: string, clientId: string, input: HeartbeatInput, opts?: TerminalOpOptions): Promise<OpResult>
  ready (group: string, clientId: string, input: HeartbeatInput, opts?: TerminalOpOptions): Promise<OpResult>
  done (group: string, clientId: string, input: DoneInput): Promise<OpResult>
  leave (group: string, clientId: string): Promise<OpResult>
  /** Count these known-or-new terminals as heard from now (their HTTP long-poll is pending). */
  hold (group: string, clientIds: string[]): Promise<OpResult>

  // --- operators ----------------------------------------------------------------------------
  /**
   * pause, resume, abort, release (forced), kick, configure (partial, already validated), and the
   * job operations: submit (with its id already chosen; idempotent) and cancel. A job operation
   * answers the job in OpResult.job (and `created` for submit).
   */
  ctl (group: string, op: CtlOp): Promise<OpResult>

  // --- time ---------------------------------------------------------------------------------
  /** Evict silent terminals, end timed-out rounds, end RESET, then check the release rule. */
  tick (group: string): Promise<OpResult>

  // --- reads --------------------------------------------------------------------------------
  terminals (group: string): Promise<TerminalView[]>
  rounds (group: string, query: RoundsQuery): Promise<RoundSummary[]>
  /** The last rounds (newest first, at most `limit`) a terminal took part in, from the history. */
  terminalRounds (group: string, clientId: string, limit: number): Promise<TerminalRound[]>
  jobs (group: string, query: JobsQuery): Promise<Job[]>
  job (group: string, id: string): Promise<Job | null>
}
