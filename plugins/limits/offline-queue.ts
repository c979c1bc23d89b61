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
  /** cluster mode: messages this process admitted whose enqueue has not finished (not in LLEN yet) */
  private readonly pending = new Map<string, number>()
  private readonly opts: OfflineQueueOptions
  /** messages left out of offline queues so far */
  dropped = 0

  constructor (persistence: unknown, opts: OfflineQueueOptions) {
    this.opts = opts
    const p = persistence as Persistence
    const enqueue = p.outgoingEnqueueCombi.bind(p)
    p.outgoingEnqueueCombi = async (subs, packet) => {
      const { keep, reserved } = await this.admit(subs)
      if (keep.length === 0) return
      try {
        return await enqueue(keep, packet)
      } finally {
        // released a turn later: an LLEN answered before this RPUSH may still be on its way
        // through the promise chains of this very turn, and must count the reservation
        if (reserved.length > 0) setImmediate(() => this.release(reserved))
      }
    }
  }

  private release (ids: string[]): void {
    for (const id of ids) {
      const n = (this.pending.get(id) ?? 1) - 1
      if (n > 0) this.pending.set(id, n)
      else this.pending.delete(id)
    }
  }

  /** A client connected: its queue is being delivered, its count starts again. */
  connected (clientId: string): void {
    this.counts.delete(clientId)
    this.told.delete(clientId)
  }

  /** The subscriptions to enqueue for, and (cluster mode) the ids reserved in `pending` meanwhile. */
  private async admit (subs: Sub[]): Promise<{ keep: Sub[], reserved: string[] }> {
    const { max, connected, redis } = this.opts
    const away = subs.filter((s) => !connected(s.clientId))
    const reserved: string[] = []
    if (away.length === 0) return { keep: subs, reserved }
    let lengths: number[]
    if (redis !== undefined) {
      const multi = redis.multi()
      for (const s of away) multi.llen(outgoingQueueKey(s.clientId))
      const res = await multi.exec()
      // what this process admitted a moment ago and is still writing counts too
      lengths = (res ?? []).map(([err, n], i) => (err === null ? Number(n) : 0) + (this.pending.get(away[i].clientId) ?? 0))
    } else {
      lengths = away.map((s) => this.counts.get(s.clientId) ?? 0)
    }
    const full = new Set<string>()
    away.forEach((s, i) => {
      if (lengths[i] >= max) full.add(s.clientId)
      else if (redis === undefined) this.counts.set(s.clientId, lengths[i] + 1)
      else {
        // reserved in the same turn as the check, so a concurrent enqueue sees it
        this.pending.set(s.clientId, (this.pending.get(s.clientId) ?? 0) + 1)
        reserved.push(s.clientId)
      }
    })
    if (full.size === 0) return { keep: subs, reserved }
    this.dropped += full.size
    for (const id of full) {
      if (this.told.has(id)) continue
      this.told.add(id)
      this.opts.logger.warn({ clientId: id, max }, 'offline queue full: newer messages for this session are dropped until it connects')
    }
    return { keep: subs.filter((s) => !full.has(s.clientId)), reserved }
  }
}
