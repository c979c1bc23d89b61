// One active release, indexed for O(1) "is X a participant, and which shard?" and encoded once:
// every participant's message is the same JSON but for `role` and `shard`, so the common part is
// serialised a single time and each message is that prefix plus a short tail.
import type { ReleaseRecord, Role } from './types.js'

interface Slot { role: Role, index: number }

export class ActiveRelease {
  readonly record: ReleaseRecord
  private readonly slots = new Map<string, Slot>()
  private readonly smalls: number
  private prefix: string | null = null
  private prefixBytes: Buffer | null = null

  constructor (record: ReleaseRecord) {
    this.record = record
    const bosses = new Set(record.bosses)
    let small = 0
    for (const id of record.participants) {
      if (!bosses.has(id)) this.slots.set(id, { role: 'small', index: small++ })
    }
    this.smalls = small
    record.bosses.forEach((id, index) => this.slots.set(id, { role: 'boss', index }))
  }

  get group (): string { return this.record.group }
  get round (): number { return this.record.round }
  get size (): number { return this.slots.size }

  has (clientId: string): boolean {
    return this.slots.has(clientId)
  }

  ids (): IterableIterator<string> {
    return this.slots.keys()
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
    if (slot === undefined) return null
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
