// Numbers out: percentiles, a plain-text table, and the JSON document (--json).

export interface Dist { n: number, first: number, p50: number, p99: number, last: number }

/** first/p50/p99/last of latencies (ms); nearest-rank percentiles. */
export function dist (ms: number[]): Dist {
  const s = [...ms].sort((a, b) => a - b)
  const at = (q: number): number => s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]
  return { n: s.length, first: s[0] ?? NaN, p50: at(0.5), p99: at(0.99), last: s[s.length - 1] ?? NaN }
}

export function fmt (v: number | string | null | undefined, digits = 2): string {
  if (v === null || v === undefined) return '-'
  if (typeof v === 'string') return v
  if (!Number.isFinite(v)) return '-'
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US')
  return v.toFixed(digits)
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
