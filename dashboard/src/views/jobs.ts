// A group's job queue (PROTOCOL section 10): GET /v1/groups/{g}/jobs?state=queued, kept current
// by the live `<prefix>/{g}/jobs` messages; a job's id opens it with its result.
import { type Api, ApiError, enc, errorText, groupPath } from '../api.js'
import { h, section, showNote } from '../dom.js'
import { json, num, time } from '../format.js'
import type { Job } from '../types.js'

const SHOWN = 200

export class JobsView {
  readonly root: HTMLElement
  private readonly note: HTMLElement
  private readonly tbody = h('tbody')
  private readonly detail = h('div', { class: 'job-detail', attrs: { id: 'job-detail' } })
  private queued = new Map<string, Job>()
  private group = ''
  private openId: string | null = null
  private available = true

  constructor (private readonly api: Api) {
    const s = section('Job queue', 'jobs')
    this.root = s.root
    this.note = s.note
    const head = h('tr', {}, ...['job', 'priority', 'submitted', 'attempts'].map((t) => h('th', { text: t })))
    s.body.append(h('table', { class: 'grid', attrs: { id: 'jobs' } }, h('thead', {}, head), this.tbody), this.detail)
  }

  async load (group: string): Promise<void> {
    this.group = group
    this.openId = null
    this.detail.replaceChildren()
    try {
      const list = await this.api.get<Job[]>(`${groupPath(group, '/jobs')}?state=queued&limit=${SHOWN}`)
      if (group !== this.group) return
      this.available = true
      this.queued = new Map((Array.isArray(list) ? list : []).map((j) => [j.id, j]))
      this.render()
    } catch (err) {
      if (group !== this.group) return
      this.queued.clear()
      this.tbody.replaceChildren()
      this.available = !(err instanceof ApiError && err.missingRoute)
      showNote(this.note, this.available ? errorText(err) : 'Jobs are not available on this server (no GET /v1/groups/{g}/jobs).')
    }
  }

  /** a live job change of any group */
  onJob (j: Job): void {
    if (j.group !== this.group || !this.available) return
    if (j.state === 'queued') this.queued.set(j.id, j)
    else this.queued.delete(j.id)
    this.render()
    if (this.openId === j.id) this.showJob(j)
  }

  private render (): void {
    const jobs = [...this.queued.values()].sort((a, b) => (b.priority ?? 0) - (a.priority ?? 0) || (a.submittedAt ?? 0) - (b.submittedAt ?? 0))
    showNote(this.note, jobs.length === 0 ? 'No job queued.' : null)
    this.tbody.replaceChildren(...jobs.slice(0, SHOWN).map((j) => {
      const a = h('a', { text: j.id, attrs: { href: '#' } })
      a.addEventListener('click', (ev) => { ev.preventDefault(); void this.open(j.id) })
      return h('tr', { data: { job: j.id } }, h('td', {}, a), h('td', { text: num(j.priority) }), h('td', { text: time(j.submittedAt) }), h('td', { text: num(j.attempts) }))
    }))
  }

  private async open (id: string): Promise<void> {
    this.openId = id
    try {
      this.showJob(await this.api.get<Job>(groupPath(this.group, `/jobs/${enc(id)}`)))
    } catch (err) {
      this.detail.replaceChildren(h('p', { class: 'field-error', text: errorText(err) }))
    }
  }

  private showJob (j: Job): void {
    this.detail.replaceChildren(
      h('h4', { text: `Job ${j.id}: ${j.state}` }),
      h('p', { class: 'muted', text: `rounds ${(j.rounds ?? []).join(', ') || 'none'} · started ${time(j.startedAt)} · ended ${time(j.endedAt)}` }),
      h('pre', { class: 'json', text: json(j.result ?? null) }))
  }
}
