// The offline queue of a persistent session, bounded (docs/security.md): aedes queues every QoS ≥ 1
// message for every persistent subscriber that is not connected — every `state` and `rounds` of a
// group, for ever — and neither aedes-persistence (memory) nor aedes-persistence-redis bounds it
// (the latter's maxSessionDelivery only caps what is sent back at reconnection; the rest stays).
// Here each persistence's outgoingEnqueueCombi, which aedes calls for every such message, leaves
// out the sessions that already hold `max` queued messages: the newest are dropped, like
// Mosquitto's max_queued_messages. A session counts from zero again when its client connects.
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { outgoingQueueKey } from '../internals.js'

interface Sub { clientId: string }
interface Persistence { outgoingEnqueueCombi: (subs: Sub[], packet: unknown) => Promise<unknown> }

export interface OfflineQueueOptions {
  max: number
  /** is this client connected to this process now? (its messages are delivered, not piling up) */
  connected: (clientId: string) => boolean
  /** cluster mode: read the real queue lengths from the Redis the persistence writes to */
  redis?: Redis
  logger: Logger
}

export class OfflineQueueBound {
  private readonly counts = new Map<string, number>()
  private readonly told = new Set<string>()
  private readonly opts: OfflineQueueOptions
  /** messages left out of offline queues so far */
  dropped = 0

  constructor (persistence: unknown, opts: OfflineQueueOptions) {
    this.opts = opts
    const p = persistence as Persistence
    const enqueue = p.outgoingEnqueueCombi.bind(p)
    p.outgoingEnqueueCombi = async (subs, packet) => {
      const keep = await this.admit(subs)
      if (keep.length > 0) return await enqueue(keep, packet)
    }
  }

  /** A client connected: its queue is being delivered, its count starts again. */
  connected (clientId: string): void {
    this.counts.delete(clientId)
    this.told.delete(clientId)
  }

  private async admit (subs: Sub[]): Promise<Sub[]> {
    const { max, connected, redis } = this.opts
    const away = subs.filter((s) => !connected(s.clientId))
    if (away.length === 0) return subs
    let lengths: number[]
    if (redis !== undefined) {
      const multi = redis.multi()
      for (const s of away) multi.llen(outgoingQueueKey(s.clientId))
      const res = await multi.exec()
      lengths = (res ?? []).map(([err, n]) => err === null ? Number(n) : 0)
    } else {
      lengths = away.map((s) => this.counts.get(s.clientId) ?? 0)
    }
    const full = new Set<string>()
    away.forEach((s, i) => {
      if (lengths[i] >= max) full.add(s.clientId)
      else if (redis === undefined) this.counts.set(s.clientId, lengths[i] + 1)
    })
    if (full.size === 0) return subs
    this.dropped += full.size
    for (const id of full) {
      if (this.told.has(id)) continue
      this.told.add(id)
      this.opts.logger.warn({ clientId: id, max }, 'offline queue full: newer messages for this session are dropped until it connects')
    }
    return subs.filter((s) => !full.has(s.clientId))
  }
}
