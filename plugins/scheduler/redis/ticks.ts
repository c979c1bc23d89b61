// Scheduled ticks for the Redis store's scripts. Lua cannot run cron, so this process computes a
// group's ticks with engine/schedule.ts (croner) from the group's last consumed tick, which every
// script answers and this keeps per group, and hands each transition the ticks after it up to the
// store's clock (plus the next one). The script decides which tick releases or is missed and
// consumes it atomically (lua-rules.ts `settleTicks`), so whichever process comes first releases
// a tick and no tick releases twice. This also fills in what the model derives from the schedule:
// state.nextTick and the tick's part of timing.wakeAt (model/group.ts `timing`).
import { MAX_TICKS, nextTick, ticksBetween } from '../engine/schedule.js'
import type { ScheduleInfo } from './codec.js'

/** ARGV 6 when this process knows of no schedule for the group. */
const NONE = ''
/** How far this process's estimate of the store's clock may be off (ms): ticks are given beyond it. */
const MARGIN_MS = 1000
/** Ticks handed to a transition that follows up a gap, from the exact last tick (model/rule.ts: 1000 per transition). */
export const FOLLOW_UP_TICKS = 1000
const MAX_GROUPS = 20000

interface Known {
  info: ScheduleInfo
  /** nextTick(info): memoized, it is asked for on every answer */
  next: number | null
  /** the last ticks handed out and until when (store clock) they cover every due tick */
  args: string | null
  coverDue: number
}

export class TickFeed {
  private readonly groups = new Map<string, Known>()
  /** the store's clock minus this process's (ms), from the last answer */
  private offset = 0

  /** An answer arrived: the store's clock and the group's schedule as it is now. */
  learn (group: string, info: ScheduleInfo, storeNow: number): Known {
    this.offset = storeNow - Date.now()
    const k = this.groups.get(group)
    if (k !== undefined && same(k.info, info)) {
      k.info = info // misfireMs
      return k
    }
    if (this.groups.size >= MAX_GROUPS) this.groups.clear() // names of groups long deleted elsewhere: relearnt at the next answer
    const fresh: Known = { info, next: info.schedule === null ? null : nextTick(info.schedule, info.tz, info.lastTick), args: null, coverDue: -Infinity }
    this.groups.set(group, fresh)
    return fresh
  }

  forget (group: string): void {
    this.groups.delete(group)
  }

  /** ARGV 6 for a transition of `group`: the ticks after its last known tick (lua-core.ts). */
  args (group: string, max = MAX_TICKS): string {
    const k = this.groups.get(group)
    if (k === undefined || k.info.schedule === null) return NONE
    const est = Date.now() + this.offset
    if (k.args !== null && max === MAX_TICKS && est + MARGIN_MS < k.coverDue) return k.args
    const { schedule, tz, lastTick, startDelayMs } = k.info
    const ticks = ticksBetween(schedule, tz, lastTick, est + startDelayMs + MARGIN_MS, max)
    let coverDue = Infinity
    if (ticks.length < max) {
      // and the next one: the script stops there, whatever the clock it runs at
      const upcoming = nextTick(schedule, tz, ticks.at(-1) ?? lastTick)
      if (upcoming !== null) { ticks.push(upcoming); coverDue = upcoming - startDelayMs }
    } else {
      coverDue = (ticks.at(-1) as number) - startDelayMs
    }
    const args = JSON.stringify([lastTick, schedule, tz, ticks])
    if (max === MAX_TICKS) { k.args = args; k.coverDue = coverDue }
    return args
  }

  /** state.nextTick: the next tick not yet consumed, or null without a schedule. */
  nextTick (k: Known): number | null {
    return k.next
  }

  /** A tick may be due that the script could not consume (its tickGap): worth a follow-up now. */
  due (k: Known, storeNow: number): boolean {
    return k.next !== null && k.next - k.info.startDelayMs <= storeNow
  }

  /** model/group.ts timing(): the earliest of the other instants and the next tick's. */
  wakeAt (k: Known, storeNow: number, others: number[]): number | null {
    const at = [...others]
    if (k.next !== null) {
      const due = k.next - k.info.startDelayMs
      at.push(due > storeNow ? due : Math.max(due, k.next + k.info.misfireMs - k.info.startDelayMs))
    }
    return at.length > 0 ? Math.min(...at) : null
  }
}

function same (a: ScheduleInfo, b: ScheduleInfo): boolean {
  return a.schedule === b.schedule && a.tz === b.tz && a.lastTick === b.lastTick && a.startDelayMs === b.startDelayMs
}

export type { Known as KnownSchedule }
