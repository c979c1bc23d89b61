// Releases to MQTT participants: each participant's release written straight to its own connection
// (never through topic matching, so nobody else can ever receive it), live at the release, and
// late, as a retained message, to a participant that subscribes during its round or comes back on
// a persistent session.
import type { Aedes, Client, Subscription } from 'aedes'
import { clientById, noDelay, subscriptionsOf, writePublish } from '../../internals.js'
import type { Engine } from '../engine/engine.js'
import type { ActiveRelease } from '../engine/release.js'
import { topicMatches, type Topics } from './topics.js'
import type { DoorObserver } from './observer.js'

const noop = (): void => { /* a late release's delivery is aedes' to retry on a persistent session */ }

export class ReleaseFanout {
  private readonly broker: Aedes
  private readonly engine: Engine
  private readonly topics: Topics
  private readonly observer: DoorObserver | undefined

  constructor (broker: Aedes, engine: Engine, topics: Topics, observer?: DoorObserver) {
    this.broker = broker
    this.engine = engine
    this.topics = topics
    this.observer = observer
  }

  /** Write each local participant's release straight to its connection. */
  deliver (rel: ActiveRelease): void {
    const started = process.hrtime.bigint()
    const topic = this.topics.release(rel.group)
    let pending = 1
    let delivered = 0
    const finish = (): void => {
      if (--pending > 0) return
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      this.observer?.fanout('mqtt', rel.group, rel.round, seconds, delivered)
    }
    const ids = rel.record.participants
    for (let i = 0; i < ids.length; i++) {
      const client = clientById(this.broker, ids[i])
      if (client === undefined || !client.connected) continue
      const qos = grantedQos(client, topic)
      if (qos < 0) continue
      pending++
      delivered++
      this.send(client, rel.partsAt(i), topic, qos, false, finish)
    }
    finish()
  }

  /** A participant subscribing during its round gets its release at once, as a retained message. */
  onSubscribe (subs: Subscription[], client: Client): void {
    this.offer(client, (topic) => {
      let qos = -1 // only the filters of this SUBSCRIBE count, and only those granted
      for (const s of subs) {
        if ((s.qos as number) !== 128 && topicMatches(s.topic, topic)) qos = Math.max(qos, Math.min(1, s.qos))
      }
      return qos
    })
  }

  /** A participant coming back on a persistent session, its subscription restored. */
  onClientReady (client: Client): void {
    this.offer(client, (topic) => grantedQos(client, topic))
  }

  /** The release of every round `client` takes part in, at the QoS `qosFor` grants (-1: none). */
  private offer (client: Client, qosFor: (topic: string) => number): void {
    for (const rel of this.engine.activeReleases()) {
      if (!rel.has(client.id)) continue
      const topic = this.topics.release(rel.group)
      const qos = qosFor(topic)
      if (qos < 0) continue
      const parts = rel.encodeParts(client.id)
      if (parts !== null) this.send(client, parts, topic, qos, true, noop)
    }
  }

  private send (client: Client, parts: readonly Buffer[], topic: string, qos: number, retain: boolean, done: () => void): void {
    noDelay(client)
    if (writePublish(client, topic, qos, retain, parts)) { done(); return }
    // a persistent session: through aedes, which stores the QoS 1 message for retransmission
    client.publish({ cmd: 'publish', topic, payload: Buffer.concat(parts), qos: qos as 0 | 1, retain, dup: false }, done)
  }
}

/** The QoS a client gets on `topic`: the highest of its matching subscriptions, at most 1; -1 if none. */
export function grantedQos (client: Client, topic: string): number {
  const subs = subscriptionsOf(client)
  let qos = -1
  for (const filter in subs) {
    const s = subs[filter]
    if (s !== undefined && topicMatches(filter, topic)) qos = Math.max(qos, Math.min(1, s.qos))
    if (qos === 1) break
  }
  return qos
}
