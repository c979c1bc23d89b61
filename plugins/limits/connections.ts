// MQTT connections per process and per client address (docs/security.md): counted when aedes is
// handed a connection, released when it closes. One over the limit is closed before aedes reads a
// byte of it. Loopback addresses are not counted per address unless `exemptLoopback` is off.
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { isLoopbackAddress } from './address.js'

export interface ConnectionLimitOptions {
  maxConnections: number
  maxPerIp: number
  exemptLoopback: boolean
}

export class ConnectionGate {
  private total = 0
  private readonly perIp = new Map<string, number>()
  private readonly opts: ConnectionLimitOptions
  /** connections closed because a limit was reached (for the log and tests) */
  refused = 0

  constructor (opts: ConnectionLimitOptions) {
    this.opts = opts
  }

  get size (): number {
    return this.total
  }

  /**
   * Take `conn` (whose peer is `address`) if the limits allow: true, and it is released when it
   * closes; false, and it has been destroyed.
   */
  admit (conn: Duplex | Socket, address: string | undefined): boolean {
    const key = address === undefined || (this.opts.exemptLoopback && isLoopbackAddress(address)) ? null : address
    const n = key === null ? 0 : this.perIp.get(key) ?? 0
    if (this.total >= this.opts.maxConnections || n >= this.opts.maxPerIp) {
      this.refused++
      conn.destroy()
      return false
    }
    this.total++
    if (key !== null) this.perIp.set(key, n + 1)
    let released = false
    conn.once('close', () => {
      if (released) return
      released = true
      this.total--
      if (key === null) return
      const left = (this.perIp.get(key) ?? 1) - 1
      if (left > 0) this.perIp.set(key, left)
      else this.perIp.delete(key)
    })
    return true
  }
}
