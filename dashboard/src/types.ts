// What the dashboard reads from the server (PROTOCOL 1.1 sections 2, 5, 6, 10). Fields a 1.0
// server does not send are optional: the page shows "—" for them.

export type Phase = 'WAITING' | 'EXECUTING' | 'RESET'
export type Role = 'viewer' | 'admin' | 'terminal'

export interface Info { version: string, wsPort: number, topicPrefix: string, auth: boolean }

export interface GroupState {
  group: string
  phase: Phase
  round: number
  attempt?: number
  paused?: boolean
  need?: number
  bossNeed?: number
  online?: number
  onlineBoss?: number
  ready?: number
  readyBoss?: number
  participants?: number
  done?: number
  dropped?: number
  releasedAt?: number | null
  startAt?: number | null
  nextTick?: number | null
  missed?: number
  queued?: number
  updatedAt?: number
}

export interface GroupConfig {
  need?: number
  minOnlineRatio?: number
  heartbeatMs?: number
  offlineAfterMs?: number
  schedule?: string | null
  retry?: { max: number, backoffMs: number }
  payload?: unknown
  [key: string]: unknown
}

export interface GroupView { config: GroupConfig, state: GroupState }

export interface Terminal {
  clientId: string
  role: 'small' | 'boss'
  lastSeen: number
  online?: boolean
  ready: boolean
  participating: boolean
  done?: boolean
  load: number | null
}

export interface RoundSummary {
  group: string
  round: number
  attempt?: number
  job?: string | null
  outcome: 'completed' | 'aborted' | 'timeout'
  releasedAt: number
  startAt?: number
  endedAt: number
  participants: string[]
  done: string[]
  dropped: string[]
  stragglers?: string[]
  /** roundgate: ms from startAt to each participant's done */
  doneMs?: Record<string, number>
}

export interface Fanout { round: number, door: string, ms: number, delivered: number }

export interface TerminalHistory {
  terminal: Terminal
  rounds: Array<{ round: number, outcome: string, doneMs: number | null, ok: boolean | null, dropped: boolean }>
}

export interface Job {
  id: string
  group: string
  payload?: unknown
  priority?: number
  state: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled'
  submittedAt?: number
  startedAt?: number | null
  endedAt?: number | null
  attempts?: number
  rounds?: number[]
  result?: unknown
}
