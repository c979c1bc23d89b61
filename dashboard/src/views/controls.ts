// Admin controls: pause, resume, abort, release now (POST /v1/groups/{g}/ctl). A viewer sees them
// disabled. Abort asks for a second click within a few seconds instead of a dialog.
import { type Api, errorText, groupPath } from '../api.js'
import { h } from '../dom.js'

const OPS = [
  { op: 'pause', label: 'Pause' },
  { op: 'resume', label: 'Resume' },
  { op: 'abort', label: 'Abort round' },
  { op: 'release', label: 'Release now' }
] as const

export class Controls {
  readonly root: HTMLElement
  private readonly buttons: HTMLButtonElement[] = []
  private readonly status = h('span', { class: 'ctl-status', attrs: { id: 'ctl-status', role: 'status' } })
  private group = ''
  private armed: number | null = null

  constructor (private readonly api: Api, private readonly admin: boolean) {
    this.root = h('div', { class: 'controls', attrs: { id: 'controls' } })
    for (const o of OPS) {
      const b = h('button', { text: o.label, attrs: { type: 'button' }, data: { op: o.op } })
      b.disabled = !admin
      if (!admin) b.title = 'viewers cannot control groups: log in as an admin'
      b.addEventListener('click', () => { void this.run(o.op, b) })
      this.buttons.push(b)
      this.root.append(b)
    }
    this.root.append(this.status)
  }

  setGroup (g: string): void {
    this.group = g
    this.status.textContent = ''
    this.disarm()
  }

  private async run (op: string, b: HTMLButtonElement): Promise<void> {
    if (!this.admin) return
    if (op === 'abort' && this.armed === null) {
      b.textContent = 'Click again to abort'
      this.armed = window.setTimeout(() => this.disarm(), 4000)
      return
    }
    this.disarm()
    const group = this.group
    this.status.textContent = `${op}…`
    try {
      await this.api.post(groupPath(group, '/ctl'), { op })
      if (group === this.group) this.status.textContent = `${op}: ok`
    } catch (err) {
      if (group === this.group) this.status.textContent = `${op}: ${errorText(err)}`
    }
  }

  private disarm (): void {
    if (this.armed !== null) window.clearTimeout(this.armed)
    this.armed = null
    const abort = this.buttons.find((x) => x.dataset.op === 'abort')
    if (abort !== undefined) abort.textContent = 'Abort round'
  }
}
