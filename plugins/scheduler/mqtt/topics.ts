// The scheduler's MQTT topics (PROTOCOL section 4), all under one prefix (`rg` by default).
import { CLIENT_ID, GROUP_NAME } from '../engine/types.js'

/** Terminal → broker kinds, carrying the terminal's clientId as the last level. */
export const TERMINAL_KINDS = ['hb', 'ready', 'done', 'leave'] as const
export type TerminalKind = typeof TERMINAL_KINDS[number]
/** Every kind (second level after the group) a roundgate topic can have. */
const KINDS = new Set<string>([...TERMINAL_KINDS, 'ctl', 'release', 'state', 'rounds', 'jobs', 'error'])

export type ParsedTopic =
  | { kind: TerminalKind, group: string, id: string }
  | { kind: 'ctl', group: string }
  /** topics only the broker publishes on: release, state, rounds, jobs, error/{id}, ctl/result/{id} */
  | { kind: 'broker-only', group: string }
  | { kind: 'bad', group: string | null, reason: string }

export class Topics {
  readonly prefix: string
  private readonly head: string
  private readonly depth: number

  constructor (prefix: string) {
    this.prefix = prefix
    this.head = prefix + '/'
    this.depth = prefix.split('/').length
  }

  owns (topic: string): boolean {
    return topic.startsWith(this.head)
  }

  release (g: string): string { return `${this.head}${g}/release` }
  state (g: string): string { return `${this.head}${g}/state` }
  rounds (g: string): string { return `${this.head}${g}/rounds` }
  jobs (g: string): string { return `${this.head}${g}/jobs` }
  error (g: string, id: string): string { return `${this.head}${g}/error/${id}` }
  ctlResult (g: string, id: string): string { return `${this.head}${g}/ctl/result/${id}` }

  /** Classify a topic some client published on (it must start with the prefix). */
  parse (topic: string): ParsedTopic {
    const levels = topic.slice(this.head.length).split('/')
    const group = levels[0]
    if (!GROUP_NAME.test(group)) return { kind: 'bad', group: null, reason: `"${group}" is not a valid group name` }
    const kind = levels[1]
    if ((TERMINAL_KINDS as readonly string[]).includes(kind) && levels.length === 3) {
      const id = levels[2]
      if (!CLIENT_ID.test(id)) return { kind: 'bad', group, reason: `"${id}" is not a valid clientId` }
      return { kind: kind as TerminalKind, group, id }
    }
    if (kind === 'ctl' && levels.length === 2) return { kind: 'ctl', group }
    if (levels.length === 2 && (kind === 'release' || kind === 'state' || kind === 'rounds' || kind === 'jobs')) return { kind: 'broker-only', group }
    if (kind === 'error' && levels.length === 3) return { kind: 'broker-only', group }
    if (kind === 'ctl' && levels[2] === 'result' && levels.length === 4) return { kind: 'broker-only', group }
    return { kind: 'bad', group, reason: `${topic} is not a roundgate topic` }
  }

  /**
   * Whether a subscription filter under the prefix could ever match a roundgate topic. A filter that
   * names a malformed group or an unknown kind is refused (SUBACK 0x80) rather than silently idle.
   */
  plausibleFilter (filter: string): boolean {
    if (!filter.startsWith(this.head)) return true
    const levels = filter.split('/').slice(this.depth)
    const [group, kind] = levels
    if (group === undefined || group === '') return false
    if (group !== '+' && group !== '#' && !GROUP_NAME.test(group)) return false
    if (kind === undefined || kind === '+' || kind === '#') return true
    return KINDS.has(kind)
  }
}

/** MQTT topic filter matching [MQTT-4.7]: `+` one level, `#` the rest (including the parent). */
export function topicMatches (filter: string, topic: string): boolean {
  if (filter === topic) return true
  // [MQTT-4.7.2-1] wildcards at the first level do not match topics starting with $
  if (topic.charCodeAt(0) === 36 && (filter.charCodeAt(0) === 43 || filter.charCodeAt(0) === 35)) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}
