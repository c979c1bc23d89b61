// A generator's record of one measured delivery: the first receipt of the armed topic (MQTT) or
// the first 200 answer of a release long-poll (HTTP) per terminal, stamped with CLOCK_MONOTONIC
// when its last byte arrived. The message itself is kept and checked only after the wait (see
// check.ts), so the timed fan-out never competes with JSON parsing here.
import { checkMessage, type Expect } from './check.js'

export interface Collected {
  /** receipt times, ns on CLOCK_MONOTONIC */
  times: number[]
  bytesMin: number
  bytesMax: number
  /** messages that failed their check, with the first few problems */
  bad: number
  problems: string[]
  formats: Record<string, number>
  /** rounds named by the messages received, distinct */
  rounds: number[]
  /** per receipt, when asked: [receipt ns, startAt, serverTime] of messages that carry both */
  skew?: Array<[number, number, number]>
}

export class Receipts {
  private topic: string | null = null
  private times = new Map<string, number>()
  private bodies = new Map<string, Buffer>()

  get armedTopic (): string | null { return this.topic }
  get size (): number { return this.times.size }

  arm (topic: string): void {
    this.topic = topic
    this.times = new Map()
    this.bodies = new Map()
  }

  /** Keep the first receipt per terminal. */
  record (id: string, body: Buffer, at: number): void {
    if (this.times.has(id)) return
    this.times.set(id, at)
    this.bodies.set(id, body)
  }

  /** Wait until `count` terminals have their receipt (or the time runs out); check what came. */
  async collect (count: number, timeoutMs: number, expect: Expect, skew: boolean): Promise<Collected> {
    const until = Date.now() + timeoutMs
    while (this.times.size < count && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5))
    const out: Collected = { times: [...this.times.values()], bytesMin: Infinity, bytesMax: 0, bad: 0, problems: [], formats: {}, rounds: [], skew: skew ? [] : undefined }
    const rounds = new Set<number>()
    for (const [id, body] of this.bodies) {
      const c = checkMessage(body, id, expect)
      out.bytesMin = Math.min(out.bytesMin, body.length)
      out.bytesMax = Math.max(out.bytesMax, body.length)
      out.formats[c.format] = (out.formats[c.format] ?? 0) + 1
      if (c.round !== null) rounds.add(c.round)
      if (c.problem !== null) {
        out.bad++
        if (out.problems.length < 3 && !out.problems.includes(c.problem)) out.problems.push(c.problem)
      }
      if (out.skew !== undefined && c.startAt !== null && c.serverTime !== null) out.skew.push([this.times.get(id) as number, c.startAt, c.serverTime])
    }
    if (out.bytesMin === Infinity) out.bytesMin = 0
    out.rounds = [...rounds]
    this.bodies = new Map() // the next round's messages, not these, are kept
    return out
  }
}
