// A group's terminals as a virtualised table: only the rows in view (plus a few) exist in the
// DOM, reused as the list scrolls, so 10,000 terminals cost what 30 do. Seconds since a terminal
// was last heard are coloured against the group's heartbeatMs and offlineAfterMs.
import { h, section, setData, setText, showNote } from '../dom.js'
import { ago, bool, DASH, num } from '../format.js'
import type { Terminal } from '../types.js'

export const ROW_HEIGHT = 24
const OVERSCAN = 6
const VIEW_ROWS = 18

interface Cells { row: HTMLDivElement, id: HTMLAnchorElement, role: HTMLElement, seen: HTMLElement, ready: HTMLElement, part: HTMLElement, done: HTMLElement, load: HTMLElement }

export interface Limits { heartbeatMs: number, offlineAfterMs: number }

/** fresh: heard within a heartbeat interval (+50%); late: not yet offline; offline. */
export function freshness (t: Terminal, now: number, lim: Limits): 'fresh' | 'late' | 'offline' {
  const age = now - t.lastSeen
  if (t.online === false || age >= lim.offlineAfterMs) return 'offline'
  return age <= lim.heartbeatMs * 1.5 ? 'fresh' : 'late'
}

type SortKey = 'id' | 'seen' | 'load'

export class TerminalsTable {
  readonly root: HTMLElement
  private readonly viewport = h('div', { class: 'vt-viewport', attrs: { id: 'terminals', tabindex: '0' } })
  private readonly spacer = h('div', { class: 'vt-spacer' })
  private readonly count = h('span', { class: 'muted', attrs: { id: 'terminal-count' } })
  private readonly filter = h('input', { attrs: { type: 'search', placeholder: 'filter by clientId', id: 'terminal-filter' } })
  private readonly sort = h('select', { attrs: { id: 'terminal-sort' } },
    h('option', { text: 'clientId', attrs: { value: 'id' } }),
    h('option', { text: 'longest silent first', attrs: { value: 'seen' } }),
    h('option', { text: 'highest load first', attrs: { value: 'load' } }))
  private readonly note: HTMLElement
  private readonly pool: Cells[] = []
  private all: Terminal[] = []
  private view: Terminal[] = []
  private frame = 0
  private limits: Limits = { heartbeatMs: 10000, offlineAfterMs: 30000 }
  /** the broker's clock now, in ms */
  private readonly clock: () => number

  constructor (clock: () => number, private readonly openTerminal: (id: string) => void) {
    this.clock = clock
    const s = section('Terminals', 'terminals')
    this.root = s.root
    this.note = s.note
    const head = h('div', { class: 'vt-row vt-head' }, ...['clientId', 'role', 'last heard (s)', 'ready', 'participating', 'done', 'load'].map((t) => h('span', { text: t })))
    this.viewport.append(this.spacer)
    s.body.append(h('div', { class: 'toolbar' }, this.filter, this.sort, this.count), head, this.viewport)
    this.viewport.addEventListener('scroll', () => this.schedule(), { passive: true })
    this.filter.addEventListener('input', () => this.refilter())
    this.sort.addEventListener('change', () => this.refilter())
  }

  setLimits (lim: Partial<Limits>): void {
    if (typeof lim.heartbeatMs === 'number') this.limits.heartbeatMs = lim.heartbeatMs
    if (typeof lim.offlineAfterMs === 'number') this.limits.offlineAfterMs = lim.offlineAfterMs
  }

  setData (list: Terminal[]): void {
    this.all = list
    this.refilter()
  }

  unavailable (message: string | null): void {
    showNote(this.note, message)
  }

  /** Redraw the rows in view (ages move on every second even without new data). */
  schedule (): void {
    if (this.frame !== 0) return
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw() })
  }

  private refilter (): void {
    const f = this.filter.value.trim()
    const key = this.sort.value as SortKey
    const list = f === '' ? this.all.slice() : this.all.filter((t) => t.clientId.includes(f))
    if (key === 'id') list.sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0))
    else if (key === 'seen') list.sort((a, b) => a.lastSeen - b.lastSeen)
    else list.sort((a, b) => (b.load ?? -Infinity) - (a.load ?? -Infinity))
    this.view = list
    setText(this.count, f === '' ? `${this.all.length} terminals` : `${list.length} of ${this.all.length} terminals`)
    this.spacer.style.height = `${list.length * ROW_HEIGHT}px`
    // as tall as its rows, up to VIEW_ROWS of them; beyond that it scrolls
    this.viewport.style.height = `${Math.max(2, Math.min(VIEW_ROWS, list.length)) * ROW_HEIGHT + 2}px`
    this.schedule()
  }

  private draw (): void {
    const height = this.viewport.clientHeight
    const top = this.viewport.scrollTop
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN)
    const last = Math.min(this.view.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN)
    const needed = last - first
    while (this.pool.length < needed) this.pool.push(this.makeRow())
    const now = this.clock()
    for (let i = 0; i < this.pool.length; i++) {
      const c = this.pool[i]
      const t = this.view[first + i]
      if (i >= needed || t === undefined) { c.row.hidden = true; continue }
      c.row.hidden = false
      c.row.style.transform = `translateY(${(first + i) * ROW_HEIGHT}px)`
      setText(c.id, t.clientId)
      c.id.dataset.id = t.clientId
      setText(c.role, t.role)
      setText(c.seen, ago(t.lastSeen, now))
      setData(c.seen, 'fresh', freshness(t, now, this.limits))
      setText(c.ready, bool(t.ready))
      setText(c.part, bool(t.participating))
      setText(c.done, t.done === undefined ? DASH : bool(t.done))
      setText(c.load, num(t.load))
    }
  }

  private makeRow (): Cells {
    const id = h('a', { class: 'tid', attrs: { href: '#' } })
    id.addEventListener('click', (ev) => {
      ev.preventDefault()
      const v = id.dataset.id
      if (v !== undefined) this.openTerminal(v)
    })
    const cell = (): HTMLElement => h('span')
    const c: Cells = { row: h('div', { class: 'vt-row' }), id, role: cell(), seen: cell(), ready: cell(), part: cell(), done: cell(), load: cell() }
    c.seen.className = 'seen'
    c.row.append(h('span', {}, id), c.role, c.seen, c.ready, c.part, c.done, c.load)
    this.viewport.append(c.row)
    return c
  }
}
