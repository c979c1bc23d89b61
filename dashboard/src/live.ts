// Live state over MQTT over WebSocket (the mqtt package's browser bundle): the retained
// `<prefix>/+/state` of every group, every round summary on `<prefix>/+/rounds`, every job change
// on `<prefix>/+/jobs`. mqtt.js reconnects on its own (and subscribes again); the page is told
// the connection's status so it can show a banner while it is lost.
import mqtt, { type MqttClient } from 'mqtt'
import type { GroupState, Job, RoundSummary } from './types.js'

export type LiveStatus = 'connecting' | 'connected' | 'reconnecting' | 'offline'

export interface LiveOptions {
  url: string
  prefix: string
  username?: string
  password?: string
  onState: (s: GroupState) => void
  onRound: (r: RoundSummary) => void
  onJob: (j: Job) => void
  /** the retained state was cleared: the group was deleted */
  onGone: (group: string) => void
  /** a status change, with a reason when it was lost or refused */
  onStatus: (status: LiveStatus, detail?: string) => void
  /** each (re)connection, once subscribed: the page refreshes what it may have missed */
  onSubscribed: (refused: string[]) => void
}

const decoder = new TextDecoder()

export class Live {
  private client: MqttClient | null = null

  constructor (private readonly opts: LiveOptions) {}

  start (): void {
    const o = this.opts
    o.onStatus('connecting')
    const client = mqtt.connect(o.url, {
      clientId: `rg-dashboard-${Math.random().toString(36).slice(2, 10)}`,
      protocolVersion: 4,
      clean: true,
      // plain timers: mqtt.js's default in browsers runs its keepalive in a blob: Worker, which the
      // page's Content-Security-Policy forbids. A hidden tab's timers may fire only once a minute,
      // so the keepalive (the broker allows 1.5 times it) stays well above that.
      timerVariant: 'native',
      keepalive: 120,
      reconnectPeriod: 1000,
      // every (re)connection subscribes in its 'connect' handler below
      resubscribe: false,
      connectTimeout: 5000,
      username: o.username,
      password: o.password
    })
    this.client = client
    const topics = ['state', 'rounds', 'jobs'].map((k) => `${o.prefix}/+/${k}`)
    client.on('connect', () => {
      o.onStatus('connected')
      // one SUBSCRIBE per filter: a server that does not publish a kind (jobs before PROTOCOL
      // 1.1) refuses that filter alone (SUBACK 0x80), which mqtt.js reports as an error
      void Promise.all(topics.map(async (t) => {
        try {
          const granted = await client.subscribeAsync(t, { qos: 0 })
          return granted.some((g) => g.qos === 128) ? t : null
        } catch {
          return t
        }
      })).then((res) => o.onSubscribed(res.filter((t): t is string => t !== null)))
    })
    client.on('reconnect', () => o.onStatus('reconnecting'))
    client.on('close', () => o.onStatus('reconnecting', 'connection closed'))
    client.on('offline', () => o.onStatus('offline'))
    client.on('error', (err) => o.onStatus('reconnecting', err.message))
    client.on('message', (topic, payload) => this.dispatch(topic, payload))
  }

  stop (): void {
    this.client?.end(true)
    this.client = null
  }

  private dispatch (topic: string, payload: Uint8Array): void {
    const o = this.opts
    if (!topic.startsWith(`${o.prefix}/`)) return
    const [group, kind, ...rest] = topic.slice(o.prefix.length + 1).split('/')
    if (group === undefined || group === '' || rest.length > 0) return
    if (payload.length === 0) {
      if (kind === 'state') o.onGone(group) // the retained state is cleared when a group is deleted
      return
    }
    let value: unknown
    try {
      value = JSON.parse(decoder.decode(payload))
    } catch {
      console.warn('roundgate dashboard: a message that is not JSON on', topic)
      return
    }
    if (value === null || typeof value !== 'object') return
    if (kind === 'state') o.onState({ ...(value as GroupState), group })
    else if (kind === 'rounds') o.onRound({ ...(value as RoundSummary), group })
    else if (kind === 'jobs') o.onJob({ ...(value as Job), group })
  }
}
