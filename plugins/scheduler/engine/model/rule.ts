// The release rule of PROTOCOL section 3 as a question (what keeps a group from releasing now?)
// and scheduled ticks: when a tick is due, when it releases, when it is missed and why.
import { onlineThreshold } from '../group-config.js'
import { nextTick } from '../schedule.js'
import type { GroupModel } from './group.js'

export type Blocker = 'phase' | 'paused' | 'backoff' | 'jobs' | 'nobody' | 'online' | 'ready' | 'bosses'

const MISSED_EVENTS_PER_TRANSITION = 10
/** A tick's first evaluation counts as "at the tick" when it runs at most this late (a timer's lateness). */
export const TICK_GRACE_MS = 100
const TICKS_PER_TRANSITION = 1000

/** Which rule of the release keeps it from happening now (null when none does). Hot: no strings built. */
export function blocker (m: GroupModel, now: number): Blocker | null {
  if (m.phase !== 'WAITING') return 'phase'
  if (m.config.paused) return 'paused'
  if (m.retry !== null && now < m.retry.at) return 'backoff'
  if (m.config.jobsOnly && m.retry === null && m.jobs.queued === 0) return 'jobs'
  const { need, bossNeed } = m.config
  const t = m.terminals
  if (need === 0 && bossNeed === 0) return 'nobody'
  if (t.onlineSmall < onlineThreshold(m.config)) return 'online'
  const effNeed = Math.min(need, t.onlineSmall)
  if (need > 0 && effNeed < 1) return 'online'
  if (t.readySmall.size < effNeed) return 'ready'
  if (t.readyBoss.size < bossNeed) return 'bosses'
  return null
}

/** A blocker in words, with the numbers behind it (the `missed` alert's detail). */
export function describe (m: GroupModel, b: Blocker | Lateness): string {
  if (b === 'unseen' || b === 'late') return describeLate(m, b)
  const t = m.terminals
  const effNeed = Math.min(m.config.need, t.onlineSmall)
  switch (b) {
    case 'phase': return `the group was ${m.phase}`
    case 'paused': return 'the group was paused'
    case 'backoff': return `retry ${m.retry?.attempt ?? 0} was still backing off`
    case 'jobs': return 'no job was queued (jobsOnly)'
    case 'nobody': return 'need and bossNeed are 0: only ctl release releases'
    case 'online': return `${t.onlineSmall} small terminals online, ${Math.max(1, onlineThreshold(m.config))} needed`
    case 'ready': return `${t.readySmall.size} small terminals ready, ${effNeed} needed`
    case 'bosses': return `${t.readyBoss.size} boss terminals ready, ${m.config.bossNeed} needed`
  }
}

/** Why a tick was missed when the release rule holds (it was evaluated too late, or held too late). */
type Lateness = 'unseen' | 'late'

function describeLate (m: GroupModel, why: Lateness): string {
  switch (why) {
    case 'unseen': return `the broker did not evaluate the tick before its misfire window (${m.config.misfireMs} ms) passed: it was down or busy`
    case 'late': return `the release rule came to hold only after the misfire window (${m.config.misfireMs} ms)`
  }
}

/**
 * Scheduled groups (PROTOCOL section 3): tick T is due at T - startDelayMs and may release until
 * T + misfireMs - startDelayMs; its first evaluation at or after the due instant, if it runs
 * within TICK_GRACE_MS of it (the engine's timer does), is "the tick" (startAt = T); a later
 * release in the window starts startDelayMs after it is decided. A tick whose window passes
 * without a release is missed, and so is one first evaluated after its window (the broker was
 * down or busy), even if the rule holds by then: it is never fired late.
 */
export function settleTicks (m: GroupModel, now: number): void {
  const { schedule, scheduleTz, startDelayMs, misfireMs } = m.config
  if (schedule === null) return
  let reported = 0
  for (let i = 0; i < TICKS_PER_TRANSITION; i++) {
    const tick = nextTick(schedule, scheduleTz, m.lastTick)
    if (tick === null || now < tick - startDelayMs) return
    const first = m.evalTick < tick
    const atTick = first && now - (tick - startDelayMs) <= TICK_GRACE_MS
    m.evalTick = Math.max(m.evalTick, tick)
    // the tick may release at its due instant or later inside its misfire window; a tick found
    // past its window (the broker was down, or busy) is missed even if the rule holds now
    const inWindow = now < tick + misfireMs - startDelayMs
    const why = blocker(m, now)
    if (why === null && (atTick || inWindow)) {
      m.lastTick = tick
      m.freeze(now, atTick ? tick : now + startDelayMs)
      return
    }
    if (inWindow) return // still inside the misfire window
    m.lastTick = tick
    m.missed++
    const reason = why ?? (first ? 'unseen' : 'late')
    if (reported++ < MISSED_EVENTS_PER_TRANSITION) m.events.push({ type: 'missed', group: m.name, missed: { tick, reason: describe(m, reason) } })
  }
}

/** The next scheduled tick not yet consumed (released or missed), or null without a schedule. */
export function nextTickOf (m: GroupModel): number | null {
  const { schedule, scheduleTz } = m.config
  return schedule === null ? null : nextTick(schedule, scheduleTz, m.lastTick)
}
