// One active release, indexed for O(1) "is X a participant, and which shard?" and encoded once:
// every participant's message is the same JSON but for `role` and `shard`, so the common part is
// serialised a single time and each message is that prefix plus a short tail.
//
// The stores list smalls first, then bosses (the record's `bosses` are the tail of its
// `participants`), so a participant's shard follows from its position: the fan-out walks the list
// and the clientId → slot index is built only when something asks by id (late subscribers, HTTP).
import type { ReleaseRecord, Role } from './types.js'

interface Slot { role: Role, index: number }

export class ActiveRelease {
  readonly record: ReleaseRecord
  private slotMap: Map<string, Slot> | null = null
  private readonly smalls: number
  /** the bosses are the tail of participants, in order (always so from the stores) */
  private readonly ordered: boolean
  private prefix: string | null = null
  private prefixBytes: Buffer | null = null

  constructor (record: ReleaseRecord) {
    this.record = record
    this.smalls = record.participants.length - record.bosses.length
    this.ordered = record.bosses.every((id, i) => record.participants[this.smalls + i] === id)
  }

  get group (): string { return this.record.group }
  get round (): number { return this.record.round }
  get size (): number { return this.record.participants.length }

  /** The message parts of the participant at `position` in record.participants. */
  partsAt (position: number): [prefix: Buffer, tail: Buffer] {
    const slot: Slot = this.ordered
      ? (position < this.smalls ? { role: 'small', index: position } : { role: 'boss', index: position - this.smalls })
      : this.slots.get(this.record.participants[position]) as Slot
    return this.parts(slot)
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

  has (clientId: string): boolean {
    return this.slots.has(clientId)
  }

  ids (): IterableIterator<string> {
    return this.record.participants.values()
  }

  /** The participant's message (a ReleaseMessage) as JSON text, built from the shared prefix. */
  encode (clientId: string): string | null {
    const slot = this.slots.get(clientId)
    if (slot === undefined) return null
    return this.prefixText() + this.tail(slot)
  }

  /**
   * The participant's message as bytes in two pieces: the prefix, one Buffer shared by every
   * participant (the release lists them all, so it grows with the round), and its own short tail.
   * A door writes both to the socket, so a release to N costs one encoding, not N.
   */
  encodeParts (clientId: string): [prefix: Buffer, tail: Buffer] | null {
    const slot = this.slots.get(clientId)
    return slot === undefined ? null : this.parts(slot)
  }

  private parts (slot: Slot): [prefix: Buffer, tail: Buffer] {
    this.prefixBytes ??= Buffer.from(this.prefixText())
    return [this.prefixBytes, Buffer.from(this.tail(slot))]
  }

  private prefixText (): string {
    if (this.prefix === null) {
      const whole = JSON.stringify(this.record)
      this.prefix = whole.slice(0, -1)
    }
    return this.prefix
  }

  private tail (slot: Slot): string {
    return `,"role":"${slot.role}","shard":{"index":${slot.index},"count":${this.count(slot.role)}}}`
  }

  private count (role: Role): number {
    return role === 'boss' ? this.record.bosses.length : this.smalls
  }
}
