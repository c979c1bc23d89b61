// The scheduler's MQTT door: installs the aedes hooks that turn terminal traffic under the prefix
// into engine calls (messages.ts), and turns the engine's events into MQTT: releases (fanout.ts),
// the throttled retained state (state-publisher.ts), round summaries, kicks and deleted groups.
//
// Scheduler messages are consumed here, not routed: they never reach other subscribers, the
// retained store or the offline queues.
import type { Aedes, Client, PublishPacket, Subscription } from 'aedes'
import type { Logger } from 'pino'
import { chainAuthorizePublish, chainAuthorizeSubscribe } from '../../hooks.js'
import { clientById, rawPublish, replacePublish, type RawPublish } from '../../internals.js'
import type { Engine } from '../engine/engine.js'
import type { GroupState, RoundSummary } from '../engine/types.js'
import { ReleaseFanout } from './fanout.js'
import { SchedulerMessages, type MessageOptions } from './messages.js'
import { StatePublisher } from './state-publisher.js'
import type { Topics } from './topics.js'

export type MqttDoorOptions = MessageOptions

export class MqttDoor {
  private readonly broker: Aedes
  private readonly engine: Engine
  private readonly topics: Topics
  private readonly log: Logger
  private readonly state: StatePublisher
  private readonly messages: SchedulerMessages
  private readonly fanout: ReleaseFanout
  private readonly publishRaw: RawPublish
  private draining = false

  constructor (broker: Aedes, opts: MqttDoorOptions) {
    this.broker = broker
    this.engine = opts.engine
    this.topics = opts.topics
    this.log = opts.logger
    this.publishRaw = rawPublish(broker)
    this.state = new StatePublisher((s) => this.publishState(s))
    this.messages = new SchedulerMessages(opts)
    this.fanout = new ReleaseFanout(broker, opts.engine, opts.topics, opts.observer)
    this.install()
  }

  /** Stop taking scheduler messages (shutdown: the wills of clients we disconnect are not leaves). */
  drain (): void {
    this.draining = true
    this.state.close()
  }

  /** Publish the retained state of every group now (at start-up). */
  async publishAllStates (): Promise<void> {
    for (const s of await this.engine.listGroups()) this.state.changed(s, true)
  }

  private install (): void {
    const { broker, engine, topics } = this
    // Scheduler messages are applied in authorizePublish, which aedes runs before it acknowledges
    // a QoS 1/2 PUBLISH: a PUBACK means the message is in the store, even if this process dies
    // right after. Synchronous for every other topic: every PUBLISH of every client passes here.
    // A refusal is answered on the error topic and the hook still says yes, so nobody is
    // disconnected for it [MQTT-3.3.5-2].
    chainAuthorizePublish(broker, (client, packet, cb, prev) => {
      if (!topics.owns(packet.topic)) { prev(client, packet, cb); return }
      if ((client === null && !this.isTerminalTopic(packet.topic)) || this.draining) { cb(null); return }
      this.messages.handle(client, packet).then(() => cb(null), (err: unknown) => {
        this.log.error({ err, topic: packet.topic }, 'scheduler message failed')
        cb(null)
      })
    })
    // ...and then consumed at broker.publish: never routed, retained or queued.
    replacePublish(broker, (packet: PublishPacket, client: Client | null, done?: (err?: Error) => void) => {
      if (topics.owns(packet.topic) && (client !== null || this.isTerminalTopic(packet.topic))) {
        done?.()
        return
      }
      this.publishRaw(packet, client, done)
    })
    chainAuthorizeSubscribe(broker, async (_client, sub, next) => {
      if (!topics.plausibleFilter(sub.topic)) return null // SUBACK 0x80
      return await next()
    })

    broker.on('subscribe', (subs: Subscription[], client: Client) => this.fanout.onSubscribe(subs, client))
    broker.on('clientReady', (client: Client) => this.fanout.onClientReady(client))

    engine.on('release', (rel) => this.fanout.deliver(rel))
    engine.on('changed', (s, phaseChanged) => this.state.changed(s, phaseChanged))
    engine.on('roundEnd', (summary, local) => { if (local) this.publishSummary(summary) })
    // a job at every change of its state (PROTOCOL section 10), told by the process that changed it
    engine.on('job', (job) => this.send(topics.jobs(job.group), job, 1, false))
    engine.on('kick', (_g, id) => clientById(broker, id)?.close())
    engine.on('deleted', (g) => {
      this.state.forget(g)
      this.publishRaw({ cmd: 'publish', topic: topics.state(g), payload: Buffer.alloc(0), qos: 0, retain: true, dup: false }, null, (err) => {
        if (err != null) this.log.warn({ err, group: g }, 'clearing the retained state of a deleted group failed')
      })
    })
  }

  private isTerminalTopic (topic: string): boolean {
    const p = this.topics.parse(topic)
    return p.kind === 'hb' || p.kind === 'ready' || p.kind === 'done' || p.kind === 'leave'
  }

  private publishState (s: GroupState): void {
    this.send(this.topics.state(s.group), s, 1, true)
  }

  private publishSummary (s: RoundSummary): void {
    this.send(this.topics.rounds(s.group), s, 1, false)
  }

  private send (topic: string, body: unknown, qos: 0 | 1, retain: boolean): void {
    const payload = Buffer.from(JSON.stringify(body))
    this.publishRaw({ cmd: 'publish', topic, payload, qos, retain, dup: false }, null, (err) => {
      if (err != null) this.log.warn({ err, topic }, 'publish failed')
    })
  }
}

export function installSchedulerDoor (broker: Aedes, opts: MqttDoorOptions): MqttDoor {
  return new MqttDoor(broker, opts)
}
