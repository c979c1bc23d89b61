// A few DOM helpers: elements are built with h() and text is always set as text (never HTML), so
// nothing a terminal or a payload carries can become markup. Writes are skipped when unchanged.

type Child = Node | string | number | null | undefined | false
export interface Props {
  class?: string
  text?: string
  title?: string
  attrs?: Record<string, string>
  data?: Record<string, string>
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (ev: HTMLElementEventMap[K]) => void }>
}

export function h<K extends keyof HTMLElementTagNameMap> (tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  if (props.class !== undefined) el.className = props.class
  if (props.text !== undefined) el.textContent = props.text
  if (props.title !== undefined) el.title = props.title
  if (props.attrs !== undefined) for (const [k, v] of Object.entries(props.attrs)) el.setAttribute(k, v)
  if (props.data !== undefined) for (const [k, v] of Object.entries(props.data)) el.dataset[k] = v
  if (props.on !== undefined) {
    for (const [k, fn] of Object.entries(props.on)) el.addEventListener(k, fn as EventListener)
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue
    el.append(typeof c === 'object' ? c : String(c))
  }
  return el
}

/** Set an element's text only when it differs (no layout work for an unchanged cell). */
export function setText (el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text
}

/** Set a data attribute only when it differs (CSS colours cells by data attributes). */
export function setData (el: HTMLElement, key: string, value: string): void {
  if (el.dataset[key] !== value) el.dataset[key] = value
}

export function clear (el: HTMLElement): void {
  while (el.firstChild !== null) el.firstChild.remove()
}

/** A section with a heading; the body is returned for the caller to fill. */
export function section (title: string, cls: string): { root: HTMLElement, body: HTMLElement, note: HTMLElement } {
  const note = h('p', { class: 'note', attrs: { hidden: '' } })
  const body = h('div', { class: 'body' })
  const root = h('section', { class: `panel ${cls}` }, h('h3', { text: title }), note, body)
  return { root, body, note }
}

/** Show a note (or hide it with null). */
export function showNote (note: HTMLElement, text: string | null): void {
  if (text === null) { note.hidden = true; return }
  setText(note, text)
  note.hidden = false
}
