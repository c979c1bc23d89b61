// Shapes shared by the round engine, its stores and both doors (MQTT, HTTP).
// Nothing here knows about a transport.

export type Role = 'small' | 'boss'
export type Phase = 'WAITING' | 'EXECUTING' | 'RESET'
export type Outcome = 'completed' | 'aborted' | 'timeout'
export type Selection = 'fifo' | 'fair' | 'load'
export type CompleteOn = 'boss' | 'all'
export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled'

/** PROTOCOL section 2: a failed round runs again up to `max` times, `backoffMs` doubling. */
export interface RetryPolicy {
  max: number
  backoffMs: number
}

/** PROTOCOL section 2, as stored: `completeOn: null` means "derived from bossNeed". */
export interface GroupConfig {
  need: number
  bossNeed: number
  minOnlineRatio: number
  heartbeatMs: number
  offlineAfterMs: number
  execTimeoutMs: number
  dropTolerance: number
  completeOn: CompleteOn | null
  resetMs: number
  selection: Selection
  payload: unknown
  paused: boolean
  startDelayMs: number
  schedule: string | null
  scheduleTz: string
  misfireMs: number
  jobsOnly: boolean
  retry: RetryPolicy
}

/** PROTOCOL section 6, the retained `state` and the `state` of GET /v1/groups/{g}. */
export interface GroupState {
  group: string
  phase: Phase
  round: number
  /** the executing round's attempt; in WAITING and RESET, the attempt the next release carries */
  attempt: number
  paused: boolean
  need: number
  bossNeed: number
  online: number
  onlineBoss: number
  ready: number
  readyBoss: number
  participants: number
  done: number
  dropped: number
  releasedAt: number | null
  startAt: number | null
  /** the next scheduled tick (epoch ms), null without a schedule */
  nextTick: number | null
  /** ticks missed since the group was created */
  missed: number
  /** jobs waiting in the queue */
  queued: number
  updatedAt: number
}

/** When a group next needs a time-driven transition (epoch ms on the store's clock), for the engine's timer. */
export interface GroupTiming {
  wakeAt: number | null
}

/** One release as the store decided it; each participant's message adds `role`, `shard` and `serverTime`. */
export interface ReleaseRecord {
  group: string
  round: number
  attempt: number
  /** the job this round runs, null when it runs the group's own payload */
  job: string | null
  releasedAt: number
  /** the instant every participant should begin (PROTOCOL section 4) */
  startAt: number
  deadline: number
  /** every participant: smalls first (in shard order), then bosses (in shard order) */
  participants: string[]
  /** the boss participants, in shard order */
  bosses: string[]
  payload: unknown
}

export interface RoundTiming {
  doneP50Ms: number | null
  doneP99Ms: number | null
  lastDoneMs: number | null
}

export interface RoundSummary {
  group: string
  round: number
  attempt: number
  job: string | null
  outcome: Outcome
  releasedAt: number
  startAt: number
  endedAt: number
  participants: string[]
  done: string[]
  dropped: string[]
  /** participants neither done nor dropped when the round ended */
  stragglers: string[]
  results: Record<string, unknown>
  /** done reports measured from startAt (ms) */
  timing: RoundTiming
  /** roundgate's addition: the participants whose done said `ok: false` */
  failed: string[]
  /** roundgate's addition: each done participant's report, in ms from startAt */
  doneMs: Record<string, number>
}

/** PROTOCOL section 10. */
export interface Job {
  id: string
  group: string
  payload: unknown
  priority: number
  state: JobState
  submittedAt: number
  startedAt: number | null
  endedAt: number | null
  /** runs so far (the attempt of its latest round) */
  attempts: number
  rounds: number[]
  /** the summary of its last round */
  result: RoundSummary | null
}

export interface JobInput {
  id?: string
  payload: unknown
  priority?: number
}

export interface TerminalView {
  clientId: string
  role: Role
  lastSeen: number
  online: boolean
  ready: boolean
  participating: boolean
  load: number | null
  meta: Record<string, unknown> | null
}

/** One round a terminal took part in, as its history shows (GET /v1/groups/{g}/terminals/{id}). */
export interface TerminalRound {
  round: number
  attempt: number
  outcome: Outcome
  startAt: number
  /** its done report in ms from startAt; null when it did not report */
  doneMs: number | null
  /** what its done said; null when it did not report */
  ok: boolean | null
  dropped: boolean
}

export interface HeartbeatInput {
  role?: Role
  load?: number
  meta?: Record<string, unknown>
}

export interface DoneInput {
  round: number
  ok?: boolean
  result?: unknown
}

export type CtlOp =
  | { op: 'configure', config: Partial<GroupConfig> }
  | { op: 'pause' }
  | { op: 'resume' }
  | { op: 'abort' }
  | { op: 'release' }
  | { op: 'kick', clientId: string }
  | { op: 'submit', job: JobInput }
  | { op: 'cancel', id: string }

/** Why a scheduled tick passed without a release (the `missed` alert's detail). */
export interface MissedTick {
  tick: number
  reason: string
}

/** What a state transition caused, in order. */
export type StoreEvent =
  | { type: 'released', release: ReleaseRecord }
  | { type: 'ended', summary: RoundSummary }
  | { type: 'kicked', group: string, clientId: string }
  | { type: 'left', group: string, clientId: string }
  | { type: 'job', job: Job }
  | { type: 'missed', group: string, missed: MissedTick }
  | { type: 'retry', group: string, round: number, attempt: number, at: number, job: string | null }
  | { type: 'exhausted', group: string, round: number, attempt: number, job: string | null }

/** Every state-changing store operation answers with this. */
export interface OpResult {
  state: GroupState
  timing: GroupTiming
  /** true when something shown in `state` changed (the engine then republishes it) */
  changed: boolean
  events: StoreEvent[]
  /** the group's advised heartbeat interval (answered to heartbeats) */
  heartbeatMs: number
  /** the store's clock when the transition ran (epoch ms): Redis TIME in cluster mode */
  now: number
  /** `done` only: the report was a repeat */
  duplicate?: boolean
  /** `submit` and `cancel`: the job; `created` is false when the id existed (submit) */
  job?: Job
  created?: boolean
}

export const GROUP_NAME = /^[A-Za-z0-9_.-]{1,64}$/
export const CLIENT_ID = /^[A-Za-z0-9_.:-]{1,128}$/
export const JOB_ID = /^[A-Za-z0-9_.:-]{1,128}$/
