// Edit a group's configuration (need, minOnlineRatio, schedule, retry, payload) with
// PATCH /v1/groups/{g}: only the keys changed are sent, and the server's validation message
// (`400 {"error": {"code", "message"}}`, naming the key) is shown next to the field it names.
import { type Api, ApiError, errorText, groupPath } from '../api.js'
import { h } from '../dom.js'
import { json } from '../format.js'
import type { GroupConfig, GroupView } from '../types.js'

type Key = 'need' | 'minOnlineRatio' | 'schedule' | 'retry' | 'payload'
const KEYS: Key[] = ['need', 'minOnlineRatio', 'schedule', 'retry', 'payload']

interface Field { input: HTMLInputElement | HTMLTextAreaElement, key: Key, initial: string }

/** The keys a validation message names (`need: …`, `unknown key(s): schedule`, `retry.max: …`). */
export function keysNamed (message: string): Key[] {
  return KEYS.filter((k) => new RegExp(`(^|[^A-Za-z])${k}([^A-Za-z]|$)`).test(message))
}

export class ConfigForm {
  readonly root: HTMLFormElement
  private readonly fields: Field[] = []
  private readonly errors = new Map<Key, HTMLElement>()
  private readonly status = h('span', { class: 'form-status', attrs: { id: 'config-status', role: 'status' } })
  private readonly save = h('button', { text: 'Save changes', attrs: { type: 'submit' } })
  private group = ''

  constructor (private readonly api: Api, private readonly admin: boolean, private readonly onSaved: (v: GroupView) => void) {
    this.root = h('form', { class: 'config-form', attrs: { id: 'config-form', novalidate: '' } })
    const row = (key: Key, label: string, ...inputs: Array<[string, HTMLInputElement | HTMLTextAreaElement]>): void => {
      const err = h('span', { class: 'field-error', data: { for: key } })
      this.errors.set(key, err)
      const controls = h('span', { class: 'inputs' })
      for (const [sub, input] of inputs) {
        input.name = sub
        input.id = `cfg-${sub}`
        input.disabled = !admin
        controls.append(sub === key ? input : h('label', { class: 'sub' }, `${sub.replace(`${key}.`, '')} `, input))
        this.fields.push({ input, key, initial: '' })
      }
      this.root.append(h('div', { class: 'field', data: { key } }, h('label', { text: label, attrs: { for: `cfg-${inputs[0][0]}` } }), controls, err))
    }
    const num = (step: string): HTMLInputElement => h('input', { attrs: { type: 'number', step } })
    row('need', 'need (smalls per round)', ['need', num('1')])
    row('minOnlineRatio', 'minOnlineRatio', ['minOnlineRatio', num('0.01')])
    row('schedule', 'schedule (cron; empty: none)', ['schedule', h('input', { attrs: { type: 'text', placeholder: '*/30 * * * * *' } })])
    row('retry', 'retry', ['retry.max', num('1')], ['retry.backoffMs', num('100')])
    row('payload', 'payload (JSON)', ['payload', h('textarea', { attrs: { rows: '4', spellcheck: 'false' } })])
    this.save.disabled = !admin
    this.root.append(h('div', { class: 'field' }, h('span', { class: 'actions' }, this.save, this.status)))
    if (!admin) this.root.title = 'viewers cannot change the configuration: log in as an admin'
    this.root.addEventListener('submit', (ev) => { ev.preventDefault(); void this.submit() })
  }

  /** Fill the form from the server's configuration (also after a save). */
  load (group: string, cfg: GroupConfig): void {
    this.group = group
    const text: Record<string, string> = {
      need: cfg.need === undefined ? '' : String(cfg.need),
      minOnlineRatio: cfg.minOnlineRatio === undefined ? '' : String(cfg.minOnlineRatio),
      schedule: typeof cfg.schedule === 'string' ? cfg.schedule : '',
      'retry.max': cfg.retry === undefined ? '' : String(cfg.retry.max),
      'retry.backoffMs': cfg.retry === undefined ? '' : String(cfg.retry.backoffMs),
      payload: json(cfg.payload ?? null)
    }
    for (const f of this.fields) {
      f.initial = text[f.input.name] ?? ''
      f.input.value = f.initial
      if (!(f.key in cfg)) f.input.placeholder = 'not set on this server'
    }
    this.clearErrors()
    this.status.textContent = ''
  }

  private clearErrors (): void {
    for (const e of this.errors.values()) e.textContent = ''
  }

  private value (name: string): string {
    return this.fields.find((f) => f.input.name === name)?.input.value.trim() ?? ''
  }

  private changed (key: Key): boolean {
    return this.fields.some((f) => f.key === key && f.input.value.trim() !== f.initial.trim())
  }

  /** The patch of changed keys; a local error (unparseable JSON) is shown and answers null. */
  private patch (): Record<string, unknown> | null {
    const numberOr = (s: string): unknown => (s !== '' && Number.isFinite(Number(s)) ? Number(s) : s)
    const out: Record<string, unknown> = {}
    if (this.changed('need')) out.need = numberOr(this.value('need'))
    if (this.changed('minOnlineRatio')) out.minOnlineRatio = numberOr(this.value('minOnlineRatio'))
    if (this.changed('schedule')) out.schedule = this.value('schedule') === '' ? null : this.value('schedule')
    if (this.changed('retry')) out.retry = { max: numberOr(this.value('retry.max')), backoffMs: numberOr(this.value('retry.backoffMs')) }
    if (this.changed('payload')) {
      try {
        out.payload = JSON.parse(this.value('payload') === '' ? 'null' : this.value('payload')) as unknown
      } catch (err) {
        (this.errors.get('payload') as HTMLElement).textContent = `not valid JSON: ${err instanceof Error ? err.message : String(err)}`
        return null
      }
    }
    return out
  }

  private async submit (): Promise<void> {
    if (!this.admin) return
    this.clearErrors()
    const patch = this.patch()
    if (patch === null) { this.status.textContent = 'not saved'; return }
    if (Object.keys(patch).length === 0) { this.status.textContent = 'nothing changed'; return }
    const group = this.group
    this.save.disabled = true
    this.status.textContent = 'saving…'
    try {
      const view = await this.api.patch<GroupView>(groupPath(group, ''), patch)
      if (group !== this.group) return
      this.load(group, view.config)
      this.status.textContent = `saved: ${Object.keys(patch).join(', ')}`
      this.onSaved(view)
    } catch (err) {
      if (group !== this.group) return
      const named = err instanceof ApiError && err.status === 400 ? keysNamed(err.message) : []
      for (const k of named) (this.errors.get(k) as HTMLElement).textContent = err instanceof Error ? err.message : String(err)
      this.status.textContent = named.length > 0 ? 'not saved: see the field' : `not saved: ${errorText(err)}`
    } finally {
      this.save.disabled = false
    }
  }
}
