// The hottest frames of a V8 .cpuprofile (from `node --cpu-prof`), optionally only samples taken
// in a time window: `node dist/bench/tools/prof-top.js FILE [--from ms --to ms] [--top 25]`.
// Self time per function (file:line), and total (inclusive) time per function.
import { readFileSync } from 'node:fs'

interface Node { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: Node[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

const args = process.argv.slice(2)
const file = args[0]
const opt = (name: string, d: number): number => { const i = args.indexOf(`--${name}`); return i < 0 ? d : Number(args[i + 1]) }
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
const from = opt('from', 0)
const to = opt('to', Infinity)
const top = opt('top', 25)
const byId = new Map(p.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const name = (n: Node): string => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${n.callFrame.lineNumber + 1}`
const self = new Map<string, number>()
const total = new Map<string, number>()
let t = 0
let sum = 0
for (let i = 0; i < p.samples.length; i++) {
  t += p.timeDeltas[i]
  const ms = t / 1000
  if (ms < from || ms > to) continue
  const dt = (p.timeDeltas[i + 1] ?? 0) / 1000
  sum += dt
  let n = byId.get(p.samples[i]) as Node
  self.set(name(n), (self.get(name(n)) ?? 0) + dt)
  const seen = new Set<string>()
  for (;;) {
    const k = name(n)
    if (!seen.has(k)) { seen.add(k); total.set(k, (total.get(k) ?? 0) + dt) }
    const up = parent.get(n.id)
    if (up === undefined) break
    n = byId.get(up) as Node
  }
}
const show = (title: string, m: Map<string, number>): void => {
  console.log(`${title} (of ${sum.toFixed(0)} ms sampled)`)
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${v.toFixed(1).padStart(9)} ms  ${(100 * v / sum).toFixed(1).padStart(5)}%  ${k}`)
}
show('self', self)
show('total', total)
