// The last rounds of a group: outcome, how long, who was done, who straggled, who dropped.
// Terminal names open that terminal's own history.
import { h, section, showNote } from '../dom.js'
import { DASH, duration, num, time } from '../format.js'
import type { RoundSummary } from '../types.js'

const SHOWN = 20
const IDS = 4

export class RoundsList {
  readonly root: HTMLElement
  private readonly tbody = h('tbody')
  private readonly note: HTMLElement

  constructor (private readonly openTerminal: (id: string) => void) {
    const s = section('Last rounds', 'rounds')
    this.root = s.root
    this.note = s.note
    const head = h('tr', {}, ...['round', 'attempt', 'outcome', 'released', 'took', 'job', 'participants', 'done', 'stragglers', 'dropped']
      .map((t) => h('th', { text: t })))
    s.body.append(h('div', { class: 'scroll-x' }, h('table', { class: 'grid', attrs: { id: 'rounds' } }, h('thead', {}, head), this.tbody)))
  }

  unavailable (message: string | null): void {
    showNote(this.note, message)
  }

  /** rounds: newest first */
  render (rounds: RoundSummary[]): void {
    if (rounds.length === 0) showNote(this.note, 'No finished rounds yet.')
    else showNote(this.note, null)
    const rows = rounds.slice(0, SHOWN).map((r) => h('tr', { data: { round: String(r.round), outcome: r.outcome } },
      h('td', { text: String(r.round) }),
      h('td', { text: num(r.attempt) }),
      h('td', {}, h('span', { class: `badge ${r.outcome}`, text: r.outcome })),
      h('td', { text: time(r.releasedAt) }),
      h('td', { text: duration(r.endedAt - r.releasedAt) }),
      h('td', { text: r.job ?? DASH }),
      h('td', { text: String(r.participants?.length ?? 0) }),
      h('td', { text: String(r.done?.length ?? 0) }),
      h('td', {}, this.idList(r.stragglers)),
      h('td', {}, this.idList(r.dropped))))
    this.tbody.replaceChildren(...rows)
  }

  private idList (list: string[] | undefined): Node {
    if (list === undefined) return document.createTextNode(DASH)
    if (list.length === 0) return document.createTextNode('none')
    const span = h('span', { class: 'ids' })
    list.slice(0, IDS).forEach((id, i) => {
      if (i > 0) span.append(', ')
      const a = h('a', { text: id, attrs: { href: '#' } })
      a.addEventListener('click', (ev) => { ev.preventDefault(); this.openTerminal(id) })
      span.append(a)
    })
    if (list.length > IDS) span.append(` +${list.length - IDS}`)
    return span
  }
}
