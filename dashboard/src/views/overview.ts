// All groups at a glance: one row per group, updated in place (only changed cells are written).
// A click opens the group's page.
import { h, section, setData, setText, showNote } from '../dom.js'
import { bool, DASH, num, time } from '../format.js'
import type { GroupState } from '../types.js'

interface Column { key: string, label: string, title?: string, value: (s: GroupState) => string }

const pair = (a: number | undefined, b: number | undefined): string =>
  typeof b === 'number' && b > 0 ? `${num(a)} + ${b}` : num(a)

export const COLUMNS: Column[] = [
  { key: 'phase', label: 'phase', value: (s) => s.phase ?? DASH },
  { key: 'paused', label: 'paused', value: (s) => bool(s.paused) },
  { key: 'round', label: 'round', value: (s) => num(s.round) },
  { key: 'attempt', label: 'attempt', value: (s) => num(s.attempt) },
  { key: 'need', label: 'need', title: 'smalls (+ bosses) a round needs', value: (s) => pair(s.need, s.bossNeed) },
  { key: 'online', label: 'online', title: 'online smalls (+ bosses)', value: (s) => pair(s.online, s.onlineBoss) },
  { key: 'ready', label: 'ready', title: 'ready smalls (+ bosses)', value: (s) => pair(s.ready, s.readyBoss) },
  { key: 'participants', label: 'participants', value: (s) => num(s.participants) },
  { key: 'done', label: 'done', value: (s) => num(s.done) },
  { key: 'dropped', label: 'dropped', value: (s) => num(s.dropped) },
  { key: 'nextTick', label: 'next tick', value: (s) => time(s.nextTick) },
  { key: 'missed', label: 'missed', title: 'scheduled ticks missed', value: (s) => num(s.missed) },
  { key: 'queued', label: 'queued', title: 'jobs waiting', value: (s) => num(s.queued) }
]

interface Row { tr: HTMLTableRowElement, cells: HTMLTableCellElement[] }

export class Overview {
  readonly root: HTMLElement
  private readonly tbody = h('tbody')
  private readonly rows = new Map<string, Row>()
  private readonly note: HTMLElement
  private selected: string | null = null

  constructor (private readonly open: (group: string) => void) {
    const s = section('Groups', 'overview')
    this.root = s.root
    this.note = s.note
    const head = h('tr', {}, h('th', { text: 'group' }), ...COLUMNS.map((c) => h('th', { text: c.label, title: c.title })))
    s.body.append(h('div', { class: 'scroll-x' }, h('table', { class: 'grid', attrs: { id: 'groups' } }, h('thead', {}, head), this.tbody)))
  }

  select (group: string | null): void {
    this.selected = group
    for (const [g, r] of this.rows) r.tr.classList.toggle('selected', g === group)
  }

  render (states: Map<string, GroupState>): void {
    showNote(this.note, states.size === 0 ? 'No groups yet: a group appears when it is declared or a terminal first uses it.' : null)
    for (const [g, r] of this.rows) {
      if (!states.has(g)) { r.tr.remove(); this.rows.delete(g) }
    }
    const names = [...states.keys()].sort()
    let before: Element | null = this.tbody.firstElementChild
    for (const g of names) {
      const s = states.get(g) as GroupState
      let row = this.rows.get(g)
      if (row === undefined) row = this.addRow(g)
      if (row.tr !== before) this.tbody.insertBefore(row.tr, before)
      before = row.tr.nextElementSibling
      COLUMNS.forEach((c, i) => setText(row.cells[i], c.value(s)))
      setData(row.tr, 'phase', s.phase ?? '')
      setData(row.tr, 'paused', String(s.paused === true))
    }
  }

  private addRow (g: string): Row {
    const cells = COLUMNS.map((c) => h('td', { data: { field: c.key } }))
    const link = h('a', { text: g, attrs: { href: `#/groups/${encodeURIComponent(g)}` } })
    const tr = h('tr', { data: { group: g } }, h('td', { class: 'name' }, link), ...cells)
    tr.addEventListener('click', (ev) => {
      if ((ev.target as HTMLElement).closest('a') === null) this.open(g)
    })
    tr.classList.toggle('selected', g === this.selected)
    const row = { tr, cells }
    this.rows.set(g, row)
    return row
  }
}
