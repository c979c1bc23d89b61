// How values are shown: "—" for a field the server did not send (a 1.0 server has no attempt,
// nextTick, missed or queued), times on the broker's clock as local time, durations in ms or s.

export const DASH = '—'

export function present (v: unknown): boolean {
  return v !== undefined && v !== null
}

export function num (v: unknown): string {
  return typeof v === 'number' && Number.isFinite(v) ? String(v) : DASH
}

export function bool (v: unknown): string {
  return typeof v === 'boolean' ? (v ? 'yes' : 'no') : DASH
}

/** epoch ms → local time of day (with the date when it is not today) */
export function time (v: unknown): string {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return DASH
  const d = new Date(v)
  const today = new Date()
  const t = d.toLocaleTimeString(undefined, { hour12: false })
  return d.toDateString() === today.toDateString() ? t : `${d.toLocaleDateString()} ${t}`
}

export function duration (ms: unknown): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return DASH
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 120000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`
  return `${Math.round(ms / 1000)} s`
}

/** seconds since a broker-clock instant, given the broker's clock now */
export function ago (then: unknown, now: number): string {
  if (typeof then !== 'number' || !Number.isFinite(then)) return DASH
  const s = Math.max(0, (now - then) / 1000)
  return s < 10 ? s.toFixed(1) : String(Math.round(s))
}

/** A list of ids shown briefly: the first few, then "+N". */
export function ids (list: unknown, max = 4): string {
  if (!Array.isArray(list)) return DASH
  if (list.length === 0) return 'none'
  const shown = list.slice(0, max).map(String).join(', ')
  return list.length > max ? `${shown} +${list.length - max}` : shown
}

export function json (v: unknown): string {
  try { return JSON.stringify(v, null, 2) ?? 'null' } catch { return String(v) }
}
