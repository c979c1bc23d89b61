// What of a group the embedded store makes durable, in the shapes the model hands it: the
// scalars of the state machine and what one transition changed (besides the terminals and jobs it
// marks dirty). Heartbeats and lastSeen are not durable.
import type { Phase, ReleaseRecord, RoundSummary } from '../types.js'

/** The next round is a retry of a failed one (PROTOCOL section 3, retries). */
export interface PendingRetry {
  attempt: number
  /** not released before this instant */
  at: number
  job: string | null
}

/** The group's durable scalars, as the embedded store keeps them. */
export interface Scalars {
  phase: Phase
  round: number
  releasedAt: number | null
  resetUntil: number | null
  /** the last scheduled tick consumed (released or missed); 0 before the first */
  lastTick: number
  /** the last tick evaluated at its due instant (its one chance to release with startAt = tick) */
  evalTick: number
  missed: number
  retry: PendingRetry | null
  updatedAt: number
}

/** What one transition changed durably, besides terminals.dirty and jobs.dirty. */
export interface Changes {
  config: boolean
  release: ReleaseRecord | null
  /** participants whose done report arrived in this transition */
  done: string[]
  /** participants that dropped in this transition */
  dropped: string[]
  ended: RoundSummary | null
}

export function noChanges (): Changes {
  return { config: false, release: null, done: [], dropped: [], ended: null }
}
