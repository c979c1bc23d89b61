// Scheduled groups (PROTOCOL sections 2 and 3): a cron expression (6 fields with seconds, or 5
// without) evaluated in an IANA time zone, with croner. The stores never run cron themselves: they
// are given the ticks that follow the group's last consumed tick and decide inside their atomic
// transition which tick releases or is missed, so every process and the Lua scripts agree.
import { Cron } from 'croner'

/** Ticks handed to one transition at most (a long outage is counted in bulk, see `missedBetween`). */
export const MAX_TICKS = 64

/** A parsed expression, and its last answer to nextTick (asked several times per transition). */
interface Entry { cron: Cron, after: number, next: number | null }

const cache = new Map<string, Entry>()

function entryOf (schedule: string, tz: string): Entry {
  const key = `${tz}\n${schedule}`
  let e = cache.get(key)
  if (e === undefined) {
    e = { cron: new Cron(schedule, { timezone: tz, paused: true }), after: NaN, next: null }
    if (cache.size > 1000) cache.clear() // bounded: schedules are few, but they come from users
    cache.set(key, e)
  }
  return e
}

/** Why `schedule`/`scheduleTz` cannot be used, or null when they can. */
export function scheduleProblem (schedule: string, tz: string): string | null {
  const fields = schedule.trim().split(/\s+/).length
  if (fields !== 5 && fields !== 6) return `must have 5 fields, or 6 with seconds first (got ${fields})`
  try {
    const c = new Cron(schedule, { timezone: tz, paused: true })
    c.nextRun(new Date(0))
    return null
  } catch (err) {
    return (err as Error).message.replace(/^Cron\w*: /, '')
  }
}

/** Whether `tz` is an IANA time zone name this runtime knows. */
export function validTimeZone (tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz }).format(0)
    return true
  } catch {
    return false
  }
}

/** The first tick strictly after `after` (epoch ms), or null when the expression has no more. */
export function nextTick (schedule: string, tz: string, after: number): number | null {
  const e = entryOf(schedule, tz)
  if (e.after !== after) {
    e.next = e.cron.nextRun(new Date(after))?.getTime() ?? null
    e.after = after
  }
  return e.next
}

/** Up to `max` ticks strictly after `after`, while they are ≤ `until`. */
export function ticksBetween (schedule: string, tz: string, after: number, until: number, max = MAX_TICKS): number[] {
  const c = entryOf(schedule, tz).cron
  const out: number[] = []
  let t = after
  while (out.length < max) {
    const n = c.nextRun(new Date(t))?.getTime()
    if (n === undefined || n > until) break
    out.push(n)
    t = n
  }
  return out
}
