// What a door (MQTT here, HTTP in the gateway) reports about its own work, for whoever measures it
// (the metrics plugin implements this). The engine knows no doors and hears none of it.
import type { ErrorCode } from '../../errors.js'

export type DoorName = 'mqtt' | 'http'

export interface DoorObserver {
  /** a message or request was refused with `code` */
  refused (code: ErrorCode, door: DoorName): void
  /** the door finished handing a release to its participants in this process */
  fanout (door: DoorName, group: string, round: number, seconds: number, delivered: number): void
}
