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

export const DEFAULT_WAIT_S = 30
export const MAX_WAIT_S = 120
/** answers written per event-loop turn during a fan-out, so other work (the MQTT door) interleaves */
const FANOUT_BATCH = 512

interface Waiter extends WheelEntry {
  readonly group: string
  readonly clientId: string
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

  constructor (opts: LongPollOptions) {
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
  poll (ex: Exchange, group: string, clientId: string, after: number, waitS: number, input: HeartbeatInput = {}): void {
    const older = this.byGroup.get(group)?.get(clientId)
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
    const w: Waiter = { group, clientId, after, ex, attached: true, unhold: null, bucket: null }
    let m = this.byGroup.get(group)
    if (m === undefined) this.byGroup.set(group, m = new Map<string, Waiter>())
    m.set(clientId, w)
    this.pending++
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
    const m = this.byGroup.get(w.group)
    if (m !== undefined && m.get(w.clientId) === w) {
      m.delete(w.clientId)
      if (m.size === 0) this.byGroup.delete(w.group)
    }
    this.wheel.remove(w)
    if (w.unhold !== null) { w.unhold(); w.unhold = null }
  }

  /**
   * The engine released a round: take its waiting participants off the maps at once (from
   * whichever side is smaller), then answer them, FANOUT_BATCH per event-loop turn.
   */
  private wake (rel: ActiveRelease): void {
    const m = this.byGroup.get(rel.group)
    if (m === undefined) return
    const t0 = process.hrtime.bigint()
    const due: Waiter[] = []
    const take = (w: Waiter): void => {
      if (rel.round <= w.after || !rel.has(w.clientId)) return
      this.detach(w)
      due.push(w)
    }
    if (m.size <= rel.size) {
      for (const w of [...m.values()]) take(w)
    } else {
      for (const id of rel.ids()) {
        const w = m.get(id)
        if (w !== undefined) take(w)
      }
    }
    if (due.length === 0) return
    let delivered = 0
    let i = 0
    const batch = (): void => {
      const end = Math.min(due.length, i + FANOUT_BATCH)
      for (; i < end; i++) {
        const w = due[i]
        const body = rel.encodeParts(w.clientId)
        if (body !== null && w.ex.send(200, body)) delivered++
      }
      if (i < due.length) { setImmediate(batch); return }
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
