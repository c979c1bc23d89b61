// A strict reader of the Prometheus text exposition (format 0.0.4) for tests: every line must be a
// comment or a sample of a declared metric.

export interface Sample { name: string, labels: Record<string, string>, value: number }

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?,?\\})? (\\S+)(?: (-?\\d+))?$`)
const VALUE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]Inf|NaN)$/

/** A strict reader of the text format: throws on any line that is not a comment or a sample. */
export function parseProm (text: string): { samples: Sample[], types: Map<string, string> } {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  const lines = text.split('\n')
  if (lines.at(-1) === '') lines.pop()
  for (const [i, line] of lines.entries()) {
    if (line === '') continue
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
      if (m === null) throw new Error(`line ${i + 1}: bad comment: ${line}`)
      if (!new RegExp(`^${NAME}$`).test(m[2])) throw new Error(`line ${i + 1}: bad metric name ${m[2]}`)
      if (m[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3])) throw new Error(`line ${i + 1}: bad type ${m[3]}`)
        types.set(m[2], m[3])
      }
      continue
    }
    const m = SAMPLE.exec(line)
    if (m === null) throw new Error(`line ${i + 1}: not "name{labels} value": ${line}`)
    if (!VALUE.test(m[3])) throw new Error(`line ${i + 1}: bad value ${m[3]}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]
    const base = m[1].replace(/_(bucket|sum|count|total|created)$/, '')
    if (!types.has(m[1]) && !types.has(base)) throw new Error(`line ${i + 1}: ${m[1]} has no TYPE`)
    samples.push({ name: m[1], labels, value: Number(m[3].replace('Inf', 'Infinity')) })
  }
  return { samples, types }
}

export function find (samples: Sample[], name: string, labels: Record<string, string> = {}): Sample | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
}
