// Numbers out: percentiles, a plain-text table, and the JSON document (--json).

export interface Dist { n: number, first: number, p50: number, p99: number, last: number }

/** first/p50/p99/last of latencies (ms); nearest-rank percentiles. */
export function dist (ms: number[]): Dist {
  const s = [...ms].sort((a, b) => a - b)
  const at = (q: number): number => s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]
  return { n: s.length, first: s[0] ?? NaN, p50: at(0.5), p99: at(0.99), last: s[s.length - 1] ?? NaN }
}

/** The median: the middle value, or the mean of the two middle values of an even count. */
export function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

export function fmt (v: number | string | null | undefined, digits = 2): string {
  if (v === null || v === undefined) return '-'
  if (typeof v === 'string') return v
  if (!Number.isFinite(v)) return '-'
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US')
  return Number.isInteger(v) ? String(v) : v.toFixed(digits)
}

export function table (title: string, head: string[], rows: Array<Array<string | number | null>>): string {
  const cells = [head, ...rows.map((r) => r.map((c) => typeof c === 'number' ? fmt(c) : (c ?? '-')))]
  const widths = head.map((_h, i) => Math.max(...cells.map((r) => String(r[i]).length)))
  const line = (r: Array<string | number>): string => r.map((c, i) => i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i])).join('  ')
  return [title, line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n')
}

export interface ScenarioResult {
  scenario: string
  /** the table(s), printed unless --json */
  text: string
  /** the machine-readable figures */
  data: Record<string, unknown>
}

/** A target: the measured value (a ratio or an absolute figure) must be <= or >= `value`. */
export interface Target { op: '<=' | '>=', value: number }

/** 'yes' / 'no', or '-' when there is nothing to judge (a rival missing, a NaN). */
export function met (v: number | null, t: Target | null): string {
  if (t === null || v === null || !Number.isFinite(v)) return '-'
  return (t.op === '<=' ? v <= t.value : v >= t.value) ? 'yes' : 'no'
}

/** One row of a targets table: roundgate beside its rival, the ratio, the target and whether it is met. */
export interface Verdict {
  what: string
  roundgate: number | null
  rival: string
  rivalValue: number | null
  /** roundgate / rival; null when there is no rival figure (the target is then on roundgate's own value) */
  ratio: number | null
  target: Target | null
  note?: string
}

export function verdict (what: string, roundgate: number | null, rival: string, rivalValue: number | null, target: Target | null, note?: string): Verdict {
  const ratio = roundgate !== null && rivalValue !== null && rivalValue > 0 ? roundgate / rivalValue : null
  return { what, roundgate, rival, rivalValue, ratio, target, note }
}

export function verdictTable (title: string, rows: Verdict[]): string {
  return table(title, ['', 'roundgate', 'rival', 'rival value', 'ratio', 'target', 'met'], rows.map((v) => {
    const judged = v.rivalValue === null && v.rival === '-' ? v.roundgate : v.ratio
    const target = v.target === null ? '-' : `${v.rival === '-' ? 'value' : 'ratio'} ${v.target.op} ${v.target.value}`
    return [v.what + (v.note !== undefined ? ` (${v.note})` : ''), v.roundgate, v.rival, v.rivalValue, v.ratio, target, met(judged, v.target)]
  }))
}
