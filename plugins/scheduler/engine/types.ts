// Shapes shared by the round engine, its stores and both doors (MQTT, HTTP).
// Nothing here knows about a transport.

export type Role = 'small' | 'boss'
export type Phase = 'WAITING' | 'EXECUTING' | 'RESET'
export type Outcome = 'completed' | 'aborted' | 'timeout'
export type Selection = 'fifo' | 'fair' | 'load'
export type CompleteOn = 'boss' | 'all'

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
}

/** PROTOCOL section 6, the retained `state` and the `state` of GET /v1/groups/{g}. */
export interface GroupState {
  group: string
  phase: Phase
  round: number
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
  updatedAt: number
}

/** When the next time-driven transition of a group is due (epoch ms), for the engine's timers. */
export interface GroupTiming {
  resetUntil: number | null
  deadline: number | null
}

/** One release as the store decided it; each participant's message adds `role` and `shard`. */
export interface ReleaseRecord {
  group: string
  round: number
  releasedAt: number
  deadline: number
  /** every participant: smalls first (in shard order), then bosses (in shard order) */
  participants: string[]
  /** the boss participants, in shard order */
  bosses: string[]
  payload: unknown
}

/** The message one participant receives (MQTT `rg/{g}/release` and the HTTP long-poll alike). */
export interface ReleaseMessage extends ReleaseRecord {
  role: Role
  shard: { index: number, count: number }
}

export interface RoundSummary {
  group: string
  round: number
  outcome: Outcome
  releasedAt: number
  endedAt: number
  participants: string[]
  done: string[]
  dropped: string[]
  results: Record<string, unknown>
  /** roundgate's addition: the participants whose done said `ok: false` */
  failed: string[]
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

/** What a state transition caused, in order. */
export type StoreEvent =
  | { type: 'released', release: ReleaseRecord }
  | { type: 'ended', summary: RoundSummary }
  | { type: 'kicked', group: string, clientId: string }

/** Every state-changing store operation answers with this. */
export interface OpResult {
  state: GroupState
  timing: GroupTiming
  /** true when something shown in `state` changed (the engine then republishes it) */
  changed: boolean
  events: StoreEvent[]
  /** the group's advised heartbeat interval (answered to heartbeats) */
  heartbeatMs: number
  /** `done` only: the report was a repeat */
  duplicate?: boolean
  /** the store's clock (epoch ms) when the transition ran: timing is on this clock */
  now: number
}

export const GROUP_NAME = /^[A-Za-z0-9_.-]{1,64}$/
export const CLIENT_ID = /^[A-Za-z0-9_.:-]{1,128}$/
