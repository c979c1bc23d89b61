// The one closed-loop publisher of the generators (heartbeat and overhead scenarios): nothing
// piles up in socket buffers, so what was sent is what the broker absorbed.
//   QoS 0: each connection writes `window` PUBLISH frames and a PINGREQ in one write and sends the
//          next batch when the PINGRESP is back (a broker handles a read's packets in order, so the
//          PINGRESP means every PUBLISH before it was handled).
//   QoS 1: each connection keeps `window` PUBLISHes awaiting their PUBACK.
import { type MqttConn, nowNs } from './wire.js'

const PINGREQ = Buffer.from([0xc0, 0x00])

export interface FloodResult { sent: number, t0: number, t1: number }

export async function flood (targets: Array<{ conn: MqttConn, topic: string }>, payload: Buffer | string, qos: 0 | 1, seconds: number, window: number): Promise<FloodResult> {
  let sent = 0
  const t0 = nowNs()
  const until = Date.now() + seconds * 1000
  await Promise.all(targets.map(async ({ conn, topic }) => {
    if (qos === 0) {
      const batch = Buffer.concat([...Array.from({ length: window }, () => conn.frameOf(topic, payload, 0)), PINGREQ])
      while (Date.now() < until && !conn.closed) {
        await conn.syncAfter(batch)
        sent += window
      }
      return
    }
    await new Promise<void>((resolve) => {
      let inflight = 0
      const pump = (): void => {
        while (inflight < window && Date.now() < until && !conn.closed) {
          inflight++
          sent++
          conn.publish(topic, payload, 1, () => { inflight--; pump() })
        }
        if (inflight === 0) resolve()
      }
      pump()
    })
  }))
  return { sent, t0, t1: nowNs() }
}
