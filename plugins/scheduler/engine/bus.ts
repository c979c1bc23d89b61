// How the outcome of a transition reaches every broker process. A release decided anywhere must
// be delivered by each process to the participants connected to it (MQTT and HTTP alike); a round
// end clears every process's copy of the release; a kick closes the terminal wherever it is.
// In one process the bus is a direct call; cluster mode replaces it with Redis pub/sub.
import type { StoreEvent } from './types.js'

/** What a transition caused (a release, a round's end, a kick), or a group deleted. */
export type BusEvent = StoreEvent | { type: 'deleted', group: string }

/** `local` is true in the process whose transition caused the event. */
export type BusHandler = (event: BusEvent, local: boolean) => void

export interface Bus {
  open (): Promise<void>
  publish (event: BusEvent): void
  subscribe (handler: BusHandler): void
  close (): Promise<void>
}

export class LocalBus implements Bus {
  private handlers: BusHandler[] = []

  async open (): Promise<void> {}

  publish (event: BusEvent): void {
    for (const h of this.handlers) h(event, true)
  }

  subscribe (handler: BusHandler): void {
    this.handlers.push(handler)
  }

  async close (): Promise<void> {
    this.handlers = []
  }
}
