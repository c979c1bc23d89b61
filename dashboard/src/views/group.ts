// One group's page: its live state, admin controls and configuration, charts, the last rounds,
// the terminals table (refreshed at a throttled interval while the page is open), the job queue,
// and a terminal's own history when one is picked.
import { type Api, ApiError, errorText, groupPath } from '../api.js'
import { h, setData, setText } from '../dom.js'
import { time } from '../format.js'
import { every } from '../throttle.js'
import type { Fanout, GroupState, GroupView, Job, RoundSummary, Terminal } from '../types.js'
import { Charts } from './charts.js'
import { ConfigForm } from './config-form.js'
import { Controls } from './controls.js'
import { JobsView } from './jobs.js'
import { COLUMNS } from './overview.js'
import { RoundsList } from './rounds.js'
import { TerminalView } from './terminal.js'
import { TerminalsTable } from './terminals.js'

/** the terminals list is fetched again this long after the last answer: 3 s, longer for big groups */
const terminalsEvery = (n: number): number => Math.min(15000, 3000 + n)
const ROUNDS_KEPT = 200
const EXTRA: Array<{ key: string, label: string, title?: string, value: (s: GroupState) => string }> = [
  { key: 'releasedAt', label: 'released', value: (s: GroupState) => time(s.releasedAt) },
  { key: 'startAt', label: 'start at', value: (s: GroupState) => time(s.startAt) },
  { key: 'updatedAt', label: 'updated', value: (s: GroupState) => time(s.updatedAt) }
]

export interface GroupPageOptions {
  api: Api
  admin: boolean
  clock: () => number
  navigate: (hash: string) => void
}

export class GroupPage {
  readonly root = h('div', { class: 'group-page', attrs: { id: 'group-page' } })
  private readonly title = h('h2')
  private readonly cards = new Map<string, HTMLElement>()
  private readonly error = h('p', { class: 'field-error', attrs: { role: 'alert' } })
  private readonly controls: Controls
  private readonly config: ConfigForm
  private readonly charts = new Charts()
  private readonly rounds: RoundsList
  private readonly terminals: TerminalsTable
  private readonly jobs: JobsView
  private readonly terminal: TerminalView
  private group: string | null = null
  private state: GroupState | null = null
  private roundList: RoundSummary[] = []
  private stopRefresh: (() => void) | null = null
  private ageTimer = 0
  private fanoutTimer = 0
  private stateDirty = false
  private roundsDirty = false
  private terminalCount = 0
  private terminalsAt = 0

  constructor (private readonly o: GroupPageOptions) {
    const openTerminal = (id: string): void => { if (this.group !== null) o.navigate(`#/groups/${encodeURIComponent(this.group)}/terminals/${encodeURIComponent(id)}`) }
    this.controls = new Controls(o.api, o.admin)
    this.config = new ConfigForm(o.api, o.admin, (v) => { this.setState(v.state); this.draw() })
    this.rounds = new RoundsList(openTerminal)
    this.terminals = new TerminalsTable(o.clock, openTerminal)
    this.jobs = new JobsView(o.api)
    this.terminal = new TerminalView(o.api, o.clock, () => { if (this.group !== null) o.navigate(`#/groups/${encodeURIComponent(this.group)}`) })
    const cardList = h('div', { class: 'cards', attrs: { id: 'group-state' } })
    for (const c of [...COLUMNS, ...EXTRA]) {
      const v = h('span', { class: 'v', data: { field: c.key } })
      this.cards.set(c.key, v)
      cardList.append(h('div', { class: 'card' }, h('span', { class: 'k', text: c.label, title: c.title }), v))
    }
    const back = h('a', { text: '← all groups', attrs: { href: '#/' } })
    this.root.append(
      h('div', { class: 'group-head' }, back, this.title),
      this.error, cardList,
      h('section', { class: 'panel admin' }, h('h3', { text: 'Control' }), this.controls.root, h('h3', { text: 'Configuration' }), this.config.root),
      this.terminal.root,
      this.charts.root,
      this.rounds.root,
      this.terminals.root,
      this.jobs.root)
    this.root.hidden = true
    window.addEventListener('resize', () => this.charts.resize())
  }

  get current (): string | null { return this.group }

  /** Show group `g` (and terminal `id`'s history when given). */
  open (g: string, terminalId: string | null, known: GroupState | undefined): void {
    if (g !== this.group) this.switchTo(g, known)
    if (terminalId !== null) void this.terminal.show(g, terminalId)
    else this.terminal.hide()
  }

  close (): void {
    this.group = null
    this.root.hidden = true
    this.stopRefresh?.()
    this.stopRefresh = null
    window.clearInterval(this.ageTimer)
    this.terminal.hide()
  }

  /** the newest state of the open group; drawn at the next draw() */
  setState (s: GroupState | undefined): void {
    if (s === undefined || s.group !== this.group || s === this.state) return
    this.state = s
    this.stateDirty = true
  }

  /** Draw what changed since the last call (called from the page's throttled redraw). */
  draw (): void {
    if (this.group === null) return
    if (this.stateDirty) { this.stateDirty = false; this.drawState() }
    if (this.roundsDirty) { this.roundsDirty = false; this.drawRounds() }
  }

  /** a live round summary of any group */
  onRound (r: RoundSummary): void {
    if (r.group !== this.group) return
    this.roundList = [r, ...this.roundList.filter((x) => x.round !== r.round)].slice(0, ROUNDS_KEPT)
    this.roundsDirty = true
    // the fan-out of this round is measured by now, and the terminals are no longer participating:
    // fetch both once a burst of rounds settles (the terminals at most once a second)
    window.clearTimeout(this.fanoutTimer)
    this.fanoutTimer = window.setTimeout(() => {
      void this.loadFanout(r.group)
      if (performance.now() - this.terminalsAt > 1000) void this.loadTerminals(r.group)
    }, 300)
  }

  onJob (j: Job): void { this.jobs.onJob(j) }

  /** after a reconnection: what may have been missed while it was lost */
  refresh (): void {
    if (this.group !== null) void this.loadAll(this.group)
  }

  private switchTo (g: string, known: GroupState | undefined): void {
    this.close()
    this.group = g
    this.root.hidden = false
    this.title.textContent = `Group ${g}`
    this.state = known ?? null
    this.roundList = []
    this.controls.setGroup(g)
    this.terminals.setData([])
    this.drawState()
    this.drawRounds()
    void this.loadAll(g)
    this.stopRefresh = every(() => terminalsEvery(this.terminalCount), async () => { if (!document.hidden) await this.loadTerminals(g) })
    this.ageTimer = window.setInterval(() => this.terminals.schedule(), 1000)
  }

  private async loadAll (g: string): Promise<void> {
    await Promise.all([this.loadGroup(g), this.loadRounds(g), this.loadFanout(g), this.jobs.load(g)])
  }

  private async loadGroup (g: string): Promise<void> {
    try {
      const v = await this.o.api.get<GroupView>(groupPath(g))
      if (g !== this.group) return
      this.error.textContent = ''
      this.config.load(g, v.config)
      this.terminals.setLimits({ heartbeatMs: v.config.heartbeatMs, offlineAfterMs: v.config.offlineAfterMs })
      this.state = { ...v.state, ...(this.state !== null && (this.state.updatedAt ?? 0) > (v.state.updatedAt ?? 0) ? this.state : {}) }
      this.drawState()
    } catch (err) {
      if (g === this.group) this.error.textContent = errorText(err)
    }
  }

  private async loadRounds (g: string): Promise<void> {
    try {
      const list = await this.o.api.get<RoundSummary[]>(`${groupPath(g, '/rounds')}?limit=${ROUNDS_KEPT}`)
      if (g !== this.group) return
      const live = this.roundList.filter((r) => !list.some((x) => x.round === r.round))
      this.roundList = [...live, ...list].sort((a, b) => b.round - a.round).slice(0, ROUNDS_KEPT)
      this.rounds.unavailable(null)
      this.drawRounds()
    } catch (err) {
      if (g === this.group) this.rounds.unavailable(errorText(err))
    }
  }

  private async loadFanout (g: string): Promise<void> {
    try {
      const list = await this.o.api.get<Fanout[]>(groupPath(g, '/fanout'))
      if (g === this.group) this.charts.fanoutData(Array.isArray(list) ? list : [])
    } catch (err) {
      if (g !== this.group) return
      this.charts.fanoutUnavailable(err instanceof ApiError && err.missingRoute
        ? 'Fan-out history is not available on this server (no GET /v1/groups/{g}/fanout).'
        : errorText(err))
    }
  }

  private async loadTerminals (g: string): Promise<void> {
    this.terminalsAt = performance.now()
    try {
      const list = await this.o.api.get<Terminal[]>(groupPath(g, '/terminals'))
      if (g !== this.group) return
      this.terminals.unavailable(null)
      const terminals = Array.isArray(list) ? list : []
      this.terminalCount = terminals.length
      this.terminals.setData(terminals)
    } catch (err) {
      if (g === this.group) this.terminals.unavailable(errorText(err))
    }
  }

  private drawState (): void {
    const s = this.state
    for (const c of [...COLUMNS, ...EXTRA]) setText(this.cards.get(c.key) as HTMLElement, s === null ? '—' : c.value(s))
    setData(this.root, 'phase', s?.phase ?? '')
    setData(this.root, 'paused', String(s?.paused === true))
  }

  private drawRounds (): void {
    this.rounds.render(this.roundList)
    this.charts.rounds(this.roundList)
    this.charts.delaysOf(this.roundList.find((r) => r.doneMs !== undefined) ?? this.roundList[0])
  }
}
