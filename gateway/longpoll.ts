// The HTTP release long-poll (PROTOCOL section 5):
//   GET /v1/groups/{g}/release?clientId=X&after=N&wait=S
// answers 200 with X's release as soon as the group executes a round r > N with X among its
// participants (at once if it already does), else 204 with `X-Round` after S seconds.
//
// Waiters are woken by the engine's `release` event, the same event that sends the MQTT release:
// no polling loop. Their `wait` expiry sits in one timer wheel: no timer per waiter. A pending
// poll holds its terminal online (engine.hold, PROTOCOL section 3) until it is answered or
// aborted. One pending poll per (group, clientId): a newer one supersedes the older, which is
// answered 409 `superseded`. An aborted poll leaves the maps, the wheel and the hold at once.
import type { Logger } from 'pino'
import { RgError } from '../plugins/errors.js'
import type { ActiveRelease, DoorObserver, Engine, HeartbeatInput } from '../plugins/scheduler/index.js'
import type { Exchange } from './respond.js'
import { TimerWheel, type WheelEntry } from './wheel.js'
import { isLoopbackAddress } from '../plugins/limits/address.js'

export const DEFAULT_WAIT_S = 30
export const MAX_WAIT_S = 120
/**
 * Answers written per event-loop turn during a fan-out: other work (the MQTT door) interleaves, and
 * uWS gets its loop back often. Measured with `npm run bench -- release --n 3000 --door http`
 * (last, median of 5 rounds; node:http rival 77–113 ms in the same runs): all in one turn 363 ms,
 * 512 per turn 148 ms, 200: 79 ms, 128: 123 ms, 64: 88 ms, 32: 95 ms (docs/benchmarks.md).
 */
const FANOUT_BATCH = 64

interface Waiter extends WheelEntry {
  readonly group: string
  readonly clientId: string
  /** counted against the per-address limit (null: exempt) */
  readonly address: string | null
  readonly after: number
  readonly ex: Exchange
  attached: boolean
  unhold: (() => void) | null
}

export interface LongPollOptions {
  engine: Engine
  logger: Logger
  /** resolution of `wait` expiry (default 100 ms) */
  tickMs?: number
  /** told how long each release took to answer its waiting participants */
  observer?: DoorObserver
  /** pending polls per client address, across groups (default 1000) */
  maxPerIp?: number
  /** pending polls per clientId, across groups (default 16) */
  maxPerClient?: number
  /** loopback addresses are not counted per address (default true) */
  exemptLoopback?: boolean
}


export class LongPolls {
  private readonly engine: Engine
  private readonly log: Logger
  /** pending polls: group → clientId → waiter (one per group and clientId) */
  private readonly byGroup = new Map<string, Map<string, Waiter>>()
  private pending = 0
  private readonly wheel: TimerWheel<Waiter>
  private readonly listeners: Array<() => void> = []
  private readonly observer: DoorObserver | undefined
  private readonly perIp = new Map<string, number>()
  private readonly perClient = new Map<string, number>()
  private readonly maxPerIp: number
  private readonly maxPerClient: number
  private readonly exemptLoopback: boolean

  constructor (opts: LongPollOptions) {
    this.maxPerIp = opts.maxPerIp ?? 1000
    this.maxPerClient = opts.maxPerClient ?? 16
    this.exemptLoopback = opts.exemptLoopback ?? true
    this.engine = opts.engine
    this.log = opts.logger
    this.observer = opts.observer
    this.wheel = new TimerWheel<Waiter>({ tickMs: opts.tickMs ?? 100, onExpire: (ws) => this.expire(ws, false) })
    // the engine isolates a listener's faults: nothing here can travel back into a transition
    const onRelease = (rel: ActiveRelease): void => this.wake(rel)
    const onKick = (group: string, clientId: string): void => {
      const w = this.byGroup.get(group)?.get(clientId)
      if (w !== undefined) this.expire([w], true)
    }
    const onDeleted = (group: string): void => {
      const m = this.byGroup.get(group)
      if (m === undefined) return
      for (const w of [...m.values()]) {
        this.detach(w)
        w.ex.error(new RgError('unknown_group', `group ${group} was deleted`))
      }
    }
    // a terminal that left (PROTOCOL 5): its pending poll is answered 204 at once, so the poll does
    // not hold it online again
    const onLeft = (group: string, clientId: string): void => {
      const w = this.byGroup.get(group)?.get(clientId)
      if (w !== undefined) this.expire([w], false)
    }
    const engine = this.engine
    engine.on('release', onRelease)
    engine.on('kick', onKick)
    engine.on('left', onLeft)
    engine.on('deleted', onDeleted)
    this.listeners.push(() => {
      engine.off('release', onRelease)
      engine.off('kick', onKick)
      engine.off('left', onLeft)
      engine.off('deleted', onDeleted)
    })
  }

  /** Pending polls right now. */
  get size (): number {
    return this.pending
  }

  /**
   * Take one poll; the caller has validated its input. Must run before any await in the route
   * handler's chain that follows `onAborted`, which `ex` already carries.
   */
  poll (ex: Exchange, group: string, clientId: string, after: number, waitS: number, input: HeartbeatInput = {}, address = ''): void {
    const older = this.byGroup.get(group)?.get(clientId)
    const counted = this.exemptLoopback && isLoopbackAddress(address) ? null : address
    // a poll that supersedes an older one of the same group and clientId takes its place
    const again = older !== undefined ? 1 : 0
    if ((this.perClient.get(clientId) ?? 0) - again >= this.maxPerClient) {
      ex.error(new RgError('rate_limited', `${clientId} already has ${this.maxPerClient} pending long-polls`))
      return
    }
    if (counted !== null && (this.perIp.get(counted) ?? 0) - (older?.address === counted ? 1 : 0) >= this.maxPerIp) {
      ex.error(new RgError('rate_limited', `${this.maxPerIp} long-polls are already pending from this address`))
      return
    }
    if (older !== undefined) {
      this.detach(older)
      older.ex.error(new RgError('superseded'))
    }
    const rel = this.engine.releaseOf(group)
    if (rel !== null && rel.round > after) {
      const body = rel.encodeParts(clientId)
      if (body !== null) {
        ex.send(200, body)
        // an answered-at-once poll still counts as hearing from the terminal
        this.engine.heartbeat(group, clientId, input).catch((err: unknown) => {
          this.log.debug({ err, group, clientId }, 'long-poll heartbeat refused')
        })
        return
      }
    }
    const w: Waiter = { group, clientId, address: counted, after, ex, attached: true, unhold: null, bucket: null }
    let m = this.byGroup.get(group)
    if (m === undefined) this.byGroup.set(group, m = new Map<string, Waiter>())
    m.set(clientId, w)
    this.pending++
    this.perClient.set(clientId, (this.perClient.get(clientId) ?? 0) + 1)
    if (counted !== null) this.perIp.set(counted, (this.perIp.get(counted) ?? 0) + 1)
    this.wheel.add(w, Date.now() + waitS * 1000)
    ex.onAbort(() => this.detach(w))
    // attached before the hold's heartbeat, so a release that heartbeat causes finds it
    this.engine.hold(group, clientId, input).then((unhold) => {
      if (w.attached) w.unhold = unhold
      else unhold()
    }, (err: unknown) => {
      if (!w.attached) return
      this.detach(w)
      w.ex.error(err)
    })
  }

  /** Answer every pending poll 503 (shutdown). */
  close (): void {
    for (const off of this.listeners) off()
    this.listeners.length = 0
    for (const w of [...this.byGroup.values()].flatMap((m) => [...m.values()])) {
      this.detach(w)
      w.ex.error(new RgError('unavailable', 'the gateway is shutting down'), { close: true })
    }
    this.wheel.drain()
  }

  private detach (w: Waiter): void {
    if (!w.attached) return
    w.attached = false
    this.pending--
    decrement(this.perClient, w.clientId)
    if (w.address !== null) decrement(this.perIp, w.address)
    const m = this.byGroup.get(w.group)
    if (m !== undefined && m.get(w.clientId) === w) {
      m.delete(w.clientId)
      if (m.size === 0) this.byGroup.delete(w.group)
    }
    this.wheel.remove(w)
    if (w.unhold !== null) { w.unhold(); w.unhold = null }
  }

  /**
   * The engine released a round: answer its waiting participants, FANOUT_BATCH per event-loop
   * turn, each taken off the maps just before its answer (so the first answer leaves at once, not
   * after every waiter was detached). The waiters are listed from whichever side is smaller; one
   * that went meanwhile (aborted, expired, superseded, kicked) is no longer attached and skipped.
   */
  private wake (rel: ActiveRelease): void {
    const m = this.byGroup.get(rel.group)
    if (m === undefined) return
    const t0 = process.hrtime.bigint()
    const list: Waiter[] = []
    if (m.size <= rel.size) {
      for (const w of m.values()) list.push(w)
    } else {
      for (const id of rel.ids()) {
        const w = m.get(id)
        if (w !== undefined) list.push(w)
      }
    }
    let delivered = 0
    let i = 0
    const batch = (): void => {
      const end = Math.min(list.length, i + FANOUT_BATCH)
      for (; i < end; i++) {
        const w = list[i]
        if (!w.attached || rel.round <= w.after) continue
        const body = rel.encodeParts(w.clientId)
        if (body === null) continue // waiting in the group, not a participant
        this.detach(w)
        if (w.ex.send(200, body)) delivered++
      }
      if (i < list.length) { setImmediate(batch); return }
      if (delivered === 0) return
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      this.observer?.fanout('http', rel.group, rel.round, seconds, delivered)
    }
    batch()
  }

  /** `wait` ran out (or the terminal was kicked): 204 with the group's current round. */
  private expire (ws: Waiter[], close: boolean): void {
    const byGroup = new Map<string, Waiter[]>()
    for (const w of ws) {
      this.detach(w)
      let list = byGroup.get(w.group)
      if (list === undefined) byGroup.set(w.group, list = [])
      list.push(w)
    }
    for (const [group, list] of byGroup) {
      this.engine.state(group).then((s) => {
        const headers = { 'X-Round': String(s.round) }
        for (const w of list) w.ex.empty(204, { headers, close })
      }, (err: unknown) => {
        for (const w of list) w.ex.error(err, { close })
      })
    }
  }
}

function decrement (m: Map<string, number>, key: string): void {
  const n = (m.get(key) ?? 1) - 1
  if (n > 0) m.set(key, n)
  else m.delete(key)
}
