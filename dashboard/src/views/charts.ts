// Charts with uPlot: round durations and outcomes over time, the release fan-out time per round
// (per door), and the done-delay distribution of the last round. A chart whose data the server
// does not give shows a note, never made-up points.
import uPlot from 'uplot'
import { h, section, showNote } from '../dom.js'
import type { Fanout, RoundSummary } from '../types.js'

const OUTCOMES = [
  { key: 'completed', stroke: '#2e7d32' },
  { key: 'aborted', stroke: '#c62828' },
  { key: 'timeout', stroke: '#ef6c00' }
] as const
const DOOR_COLOURS = ['#1565c0', '#6a1b9a', '#00838f', '#5d4037']
const HEIGHT = 200

const dotsOnly = (): null => null

/** the x range of the data itself, with a little room; a minute either side of a lone point */
function spanOf (u: uPlot): uPlot.Range.MinMax {
  const xs = u.data[0]
  const lo = xs[0] ?? 0
  const hi = xs[xs.length - 1] ?? lo
  const pad = hi === lo ? 60 : (hi - lo) * 0.03
  return [lo - pad, hi + pad]
}

class Chart {
  readonly root: HTMLElement
  readonly note: HTMLElement
  private readonly holder = h('div', { class: 'chart' })
  private plot: uPlot | null = null
  private key = ''

  constructor (title: string, id: string) {
    const s = section(title, `chart-panel ${id}`)
    this.root = s.root
    this.note = s.note
    this.holder.id = id
    s.body.append(this.holder)
  }

  /** Draw `data`; a new set of series (`key`) makes a new plot, the same one only new data. */
  show (key: string, opts: () => Omit<uPlot.Options, 'width' | 'height'>, data: uPlot.AlignedData): void {
    showNote(this.note, null)
    this.holder.hidden = false
    if (this.plot !== null && this.key === key) { this.plot.setData(data); return }
    this.plot?.destroy()
    this.key = key
    this.plot = new uPlot({ ...opts(), width: this.width(), height: HEIGHT }, data, this.holder)
  }

  empty (message: string): void {
    this.plot?.destroy()
    this.plot = null
    this.key = ''
    this.holder.hidden = true
    showNote(this.note, message)
  }

  resize (): void {
    this.plot?.setSize({ width: this.width(), height: HEIGHT })
  }

  private width (): number {
    return Math.max(280, (this.root.clientWidth || 600) - 24)
  }
}

export class Charts {
  readonly root = h('div', { class: 'charts' })
  private readonly durations = new Chart('Round durations and outcomes', 'chart-durations')
  private readonly fanout = new Chart('Release fan-out per round', 'chart-fanout')
  private readonly delays = new Chart('Done delay, last round', 'chart-delays')
  private readonly slowest = h('ol', { class: 'slowest', attrs: { id: 'slowest' } })

  constructor () {
    this.delays.root.append(this.slowest)
    this.root.append(this.durations.root, this.fanout.root, this.delays.root)
  }

  resize (): void {
    this.durations.resize()
    this.fanout.resize()
    this.delays.resize()
  }

  /** rounds: newest first, as the server answers them */
  rounds (rounds: RoundSummary[]): void {
    if (rounds.length === 0) { this.durations.empty('No finished rounds yet.'); return }
    const ordered = rounds.slice().reverse()
    const xs = ordered.map((r) => r.releasedAt / 1000)
    const ys = OUTCOMES.map((o) => ordered.map((r) => (r.outcome === o.key ? Math.max(0, r.endedAt - r.releasedAt) / 1000 : null)))
    this.durations.show('durations', () => ({
      // one round alone: a minute either side, not uPlot's guess of years
      scales: { x: { time: true, range: spanOf } },
      axes: [{}, { label: 'seconds', size: 50 }],
      series: [{}, ...OUTCOMES.map((o) => ({ label: o.key, stroke: o.stroke, paths: dotsOnly, points: { show: true, size: 7, fill: o.stroke } }))]
    }), [xs, ...ys])
  }

  fanoutUnavailable (message: string): void {
    this.fanout.empty(message)
  }

  /** fan-out entries, newest first: one series per door */
  fanoutData (entries: Fanout[]): void {
    if (entries.length === 0) { this.fanout.empty('No release fan-out measured yet.'); return }
    const doors = [...new Set(entries.map((e) => e.door))].sort()
    const rounds = [...new Set(entries.map((e) => e.round))].sort((a, b) => a - b)
    const at = new Map(rounds.map((r, i) => [r, i]))
    const ys = doors.map((d) => {
      const col: Array<number | null> = rounds.map(() => null)
      for (const e of entries) if (e.door === d) col[at.get(e.round) as number] = e.ms
      return col
    })
    this.fanout.show(`fanout:${doors.join(',')}`, () => ({
      scales: { x: { time: false } },
      axes: [{ label: 'round' }, { label: 'ms', size: 50 }],
      series: [{ label: 'round' }, ...doors.map((d, i) => ({
        label: d, stroke: DOOR_COLOURS[i % DOOR_COLOURS.length], spanGaps: true, points: { show: true, size: 5 }
      }))]
    }), [rounds, ...ys])
  }

  /** the done delays (ms from startAt) of the newest round that carries them */
  delaysOf (round: RoundSummary | undefined): void {
    this.slowest.replaceChildren()
    const doneMs = round?.doneMs
    if (round === undefined || doneMs === undefined || doneMs === null || typeof doneMs !== 'object') {
      this.delays.empty('No done-delay data: this server does not report doneMs in round summaries yet.')
      return
    }
    const entries = Object.entries(doneMs).filter(([, v]) => typeof v === 'number' && Number.isFinite(v))
    if (entries.length === 0) { this.delays.empty(`Round ${round.round}: no participant reported done.`); return }
    const values = entries.map(([, v]) => v)
    const max = Math.max(...values)
    const bins = Math.min(30, Math.max(5, Math.ceil(Math.sqrt(values.length))))
    const width = Math.max(1, Math.ceil((max + 1) / bins))
    const counts = new Array<number>(bins).fill(0)
    for (const v of values) counts[Math.min(bins - 1, Math.floor(Math.max(0, v) / width))]++
    const xs = counts.map((_, i) => i * width)
    const bars = uPlot.paths.bars?.({ size: [0.9, 80], align: 1 })
    this.delays.show(`delays:${round.round}`, () => ({
      scales: { x: { time: false } },
      axes: [{ label: `ms after startAt (round ${round.round})` }, { label: 'terminals', size: 50 }],
      series: [{ label: 'from ms' }, { label: 'terminals', stroke: '#1565c0', fill: 'rgba(21,101,192,0.35)', paths: bars }]
    }), [xs, counts])
    entries.sort((a, b) => b[1] - a[1])
    for (const [id, ms] of entries.slice(0, 5)) this.slowest.append(h('li', { text: `${id}: ${Math.round(ms)} ms` }))
    for (const id of (round.stragglers ?? []).slice(0, 5)) this.slowest.append(h('li', { class: 'straggler', text: `${id}: never reported` }))
  }
}
