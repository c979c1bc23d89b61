// One terminal's own history: GET /v1/groups/{g}/terminals/{id} answers the terminal as in the
// terminals list and its rounds (outcome, done delay, ok, dropped).
import { type Api, ApiError, enc, errorText, groupPath } from '../api.js'
import { h, section, showNote } from '../dom.js'
import { ago, bool, DASH, duration, num } from '../format.js'
import type { TerminalHistory } from '../types.js'

export class TerminalView {
  readonly root: HTMLElement
  private readonly body: HTMLElement
  private readonly note: HTMLElement
  private readonly title: HTMLElement
  private seq = 0

  constructor (private readonly api: Api, private readonly clock: () => number, private readonly close: () => void) {
    const s = section('Terminal', 'terminal-history')
    this.root = s.root
    this.body = s.body
    this.note = s.note
    this.title = this.root.querySelector('h3') as HTMLElement
    this.root.id = 'terminal-history'
    this.root.hidden = true
  }

  async show (group: string, id: string): Promise<void> {
    const seq = ++this.seq
    this.root.hidden = false
    this.title.textContent = `Terminal ${id}`
    const closer = h('button', { text: 'close', attrs: { type: 'button' } })
    closer.addEventListener('click', () => this.close())
    this.body.replaceChildren(closer)
    showNote(this.note, 'loading…')
    let hist: TerminalHistory
    try {
      hist = await this.api.get<TerminalHistory>(groupPath(group, `/terminals/${enc(id)}`))
    } catch (err) {
      if (seq !== this.seq) return
      showNote(this.note, err instanceof ApiError && err.missingRoute
        ? 'Terminal history is not available on this server (no GET /v1/groups/{g}/terminals/{id}).'
        : errorText(err))
      return
    }
    if (seq !== this.seq) return
    showNote(this.note, null)
    const t = hist.terminal
    const facts = h('dl', { class: 'facts' },
      ...[['role', t.role], ['last heard', `${ago(t.lastSeen, this.clock())} s ago`], ['online', bool(t.online)],
        ['ready', bool(t.ready)], ['participating', bool(t.participating)], ['load', num(t.load)]]
        .flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]))
    const rows = (hist.rounds ?? []).map((r) => h('tr', { data: { round: String(r.round) } },
      h('td', { text: String(r.round) }),
      h('td', {}, h('span', { class: `badge ${r.outcome}`, text: r.outcome })),
      h('td', { text: r.doneMs === null ? DASH : duration(r.doneMs) }),
      h('td', { text: r.ok === null ? DASH : bool(r.ok) }),
      h('td', { text: bool(r.dropped) })))
    const table = h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, ...['round', 'outcome', 'done after startAt', 'ok', 'dropped'].map((x) => h('th', { text: x })))),
      h('tbody', {}, ...rows))
    this.body.replaceChildren(closer, facts, rows.length > 0 ? table : h('p', { class: 'note', text: 'It took part in no round kept in the history.' }))
  }

  hide (): void {
    this.seq++
    this.root.hidden = true
  }
}
