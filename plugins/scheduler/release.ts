// One active release, indexed for O(1) "is X a participant, and which shard?" and encoded once:
// every participant's message is the same JSON but for `role` and `shard`, so the common part is
// serialised a single time and each message is that prefix plus a short tail.
import type { ReleaseMessage, ReleaseRecord, Role } from './types.js'

interface Slot { role: Role, index: number }

export class ActiveRelease {
  readonly record: ReleaseRecord
  private readonly slots = new Map<string, Slot>()
  private readonly smalls: number
  private prefix: string | null = null

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

  message (clientId: string): ReleaseMessage | null {
    const slot = this.slots.get(clientId)
    if (slot === undefined) return null
    return { ...this.record, role: slot.role, shard: { index: slot.index, count: this.count(slot.role) } }
  }

  /** The participant's message as JSON text, built from the shared prefix. */
  encode (clientId: string): string | null {
    const slot = this.slots.get(clientId)
    if (slot === undefined) return null
    if (this.prefix === null) {
      const whole = JSON.stringify(this.record)
      this.prefix = whole.slice(0, -1)
    }
    return `${this.prefix},"role":"${slot.role}","shard":{"index":${slot.index},"count":${this.count(slot.role)}}}`
  }

  private count (role: Role): number {
    return role === 'boss' ? this.record.bosses.length : this.smalls
  }
}
