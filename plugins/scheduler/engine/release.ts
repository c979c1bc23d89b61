// One active release, indexed for O(1) "is X a participant, and which shard?" and encoded once
// (PROTOCOL 1.1 section 4). Every participant's message is the same JSON but for `serverTime`,
// `role` and `shard`, so the common parts are serialised a single time and each message is
//   head  `{"group":…,"round":…,…,"deadline":…,"serverTime":`
//   time  the broker's clock when this copy is written (read at most every half millisecond)
//   mid   `,"participants":N,"bosses":[…],"payload":…`
//   tail  `,"role":"small","shard":{"index":i,"count":c}}`
// written to the socket as four pieces. `participants` is a count: a release stays a few hundred
// bytes however large the round (the list is in the round summary and the terminals view).
//
// The stores list smalls first, then bosses (the record's `bosses` are the tail of its
// `participants`), so a participant's shard follows from its position: the fan-out walks the list
// and the clientId → slot index is built only when something asks by id (late subscribers, HTTP).
import { performance } from 'node:perf_hooks'
import type { ReleaseRecord, Role } from './types.js'

interface Slot { role: Role, index: number }

/** How stale a copy's serverTime may be: PROTOCOL allows one read per write batch, ≤ 1 ms old. */
const STAMP_MS = 0.5

export type ReleaseParts = [head: Buffer, time: Buffer, mid: Buffer, tail: Buffer]

export class ActiveRelease {
  readonly record: ReleaseRecord
  private readonly clock: () => number
  private slotMap: Map<string, Slot> | null = null
  private readonly smalls: number
  /** the bosses are the tail of participants, in order (always so from the stores) */
  private readonly ordered: boolean
  private head: Buffer | null = null
  private mid: Buffer | null = null
  private stamp: Buffer | null = null
  private stampedAt = -Infinity

  /** `clock`: the broker's clock (the store's, in cluster mode), for serverTime. */
  constructor (record: ReleaseRecord, clock: () => number = Date.now) {
    this.record = record
    this.clock = clock
    this.smalls = record.participants.length - record.bosses.length
    this.ordered = record.bosses.every((id, i) => record.participants[this.smalls + i] === id)
  }

  get group (): string { return this.record.group }
  get round (): number { return this.record.round }
  get size (): number { return this.record.participants.length }

  /** The message parts of the participant at `position` in record.participants. */
  partsAt (position: number): ReleaseParts {
    const slot: Slot = this.ordered
      ? (position < this.smalls ? { role: 'small', index: position } : { role: 'boss', index: position - this.smalls })
      : this.slots.get(this.record.participants[position]) as Slot
    return this.parts(slot)
  }

  has (clientId: string): boolean {
    return this.slots.has(clientId)
  }

  ids (): IterableIterator<string> {
    return this.record.participants.values()
  }

  /** The participant's message (PROTOCOL section 4) as JSON text. */
  encode (clientId: string): string | null {
    const parts = this.encodeParts(clientId)
    return parts === null ? null : Buffer.concat(parts).toString()
  }

  /** The participant's message as bytes in four pieces (see the top of this file), or null. */
  encodeParts (clientId: string): ReleaseParts | null {
    const slot = this.slots.get(clientId)
    return slot === undefined ? null : this.parts(slot)
  }

  private get slots (): Map<string, Slot> {
    if (this.slotMap === null) {
      const m = new Map<string, Slot>()
      const bosses = new Set(this.record.bosses)
      let small = 0
      for (const id of this.record.participants) {
        if (!bosses.has(id)) m.set(id, { role: 'small', index: small++ })
      }
      this.record.bosses.forEach((id, index) => m.set(id, { role: 'boss', index }))
      this.slotMap = m
    }
    return this.slotMap
  }

  private parts (slot: Slot): ReleaseParts {
    if (this.head === null || this.mid === null) {
      const r = this.record
      this.head = Buffer.from(`{"group":${JSON.stringify(r.group)},"round":${r.round},"attempt":${r.attempt},"job":${JSON.stringify(r.job)},"releasedAt":${r.releasedAt},"startAt":${r.startAt},"deadline":${r.deadline},"serverTime":`)
      this.mid = Buffer.from(`,"participants":${r.participants.length},"bosses":${JSON.stringify(r.bosses)},"payload":${JSON.stringify(r.payload) ?? 'null'}`)
    }
    const t = performance.now()
    if (this.stamp === null || t - this.stampedAt >= STAMP_MS) {
      this.stamp = Buffer.from(String(Math.round(this.clock())))
      this.stampedAt = t
    }
    const count = slot.role === 'boss' ? this.record.bosses.length : this.smalls
    return [this.head, this.stamp, this.mid, Buffer.from(`,"role":"${slot.role}","shard":{"index":${slot.index},"count":${count}}}`)]
  }
}
