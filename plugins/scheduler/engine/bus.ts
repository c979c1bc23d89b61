// How the outcome of a transition reaches the OTHER broker processes. The engine handles what its
// own transitions caused directly; the bus carries those events to every other process, which
// delivers a release to the participants connected to it (MQTT and HTTP alike), clears its copy
// of the release at a round's end, and closes a kicked terminal wherever it is.
//
// Two implementations pass the same suite (test/bus-suite.ts): LocalBus, for processes that share
// one store inside one Node process (tests, and the one-process broker, which has no peers), and
// RedisBus, over Redis pub/sub, for the cluster. Neither hands a publisher its own events back.
import type { StoreEvent } from './types.js'

/**
 * What a transition caused (a release, a round's end, a kick, a terminal that left), or a group
 * deleted, with its last round: a release of that round or before, arriving late from another
 * process, is stale.
 */
export type BusEvent = StoreEvent | { type: 'deleted', group: string, round: number }

export type BusHandler = (event: BusEvent) => void

export interface Bus {
  open (): Promise<void>
  /** Tell every other process; never calls this bus's own handlers. */
  publish (event: BusEvent): void
  /** Events published by the other processes. */
  subscribe (handler: BusHandler): void
  close (): Promise<void>
}

/**
 * Buses joined in one Node process: what one publishes reaches every other bus of the same hub,
 * synchronously. A broker on its own gets a hub of one (nobody else to tell).
 */
export class LocalHub {
  readonly members = new Set<LocalBus>()

  bus (): LocalBus {
    return new LocalBus(this)
  }
}

export class LocalBus implements Bus {
  private readonly hub: LocalHub
  private handlers: BusHandler[] = []

  constructor (hub: LocalHub = new LocalHub()) {
    this.hub = hub
  }

  async open (): Promise<void> {
    this.hub.members.add(this)
  }

  publish (event: BusEvent): void {
    for (const bus of this.hub.members) {
      if (bus !== this) bus.receive(event)
    }
  }

  subscribe (handler: BusHandler): void {
    this.handlers.push(handler)
  }

  async close (): Promise<void> {
    this.hub.members.delete(this)
    this.handlers = []
  }

  private receive (event: BusEvent): void {
    for (const h of this.handlers) h(event)
  }
}
