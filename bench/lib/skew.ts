// The start-skew figures of one round (the startskew scenario; its header explains the method).
// Input: per participant [receipt ns on CLOCK_MONOTONIC, startAt, serverTime] and the machine's
// epoch − monotonic offset in ns, which maps the broker's epoch instants onto the monotonic clock.
import { dist } from './report.js'

export interface Skew {
  n: number
  received: number
  beforeStart: number
  ownViewBefore: number
  /** ms, p50/p99/max of est − min(est) */
  est: { p50: number, p99: number, max: number }
  started: { p50: number, p99: number, max: number }
  /** ms, median of est − true startAt (the transit after serverTime, plus rounding) */
  estMinusStartAt: number
  /** ms, last receipt − true startAt (negative: everybody had it in time) */
  lastMinusStartAt: number
  /** distinct startAt values among the round's releases: 1 unless the broker is wrong */
  startAts: number
}

/** The figures of one round from its [receipt ns, startAt, serverTime] triples (method: bench/scenarios/startskew.ts). */
export function skewOf (triples: Array<[number, number, number]>, epochMinusMonoNs: number, n: number): Skew {
  if (triples.length === 0) {
    const none = { p50: NaN, p99: NaN, max: NaN }
    return { n, received: 0, beforeStart: 0, ownViewBefore: 0, est: none, started: none, estMinusStartAt: NaN, lastMinusStartAt: NaN, startAts: 0 }
  }
  const est: number[] = []
  const started: number[] = []
  const err: number[] = []
  let beforeStart = 0
  let ownViewBefore = 0
  let lastRecv = -Infinity
  let startAtMono = NaN
  for (const [recv, startAt, serverTime] of triples) {
    startAtMono = startAt * 1e6 - epochMinusMonoNs
    const e = recv + (startAt - serverTime) * 1e6
    est.push(e)
    started.push(Math.max(recv, e))
    err.push((e - startAtMono) / 1e6)
    if (recv < startAtMono) beforeStart++
    if (startAt > serverTime) ownViewBefore++
    lastRecv = Math.max(lastRecv, recv)
  }
  const spread = (xs: number[]): { p50: number, p99: number, max: number } => {
    const lo = Math.min(...xs)
    const d = dist(xs.map((x) => (x - lo) / 1e6))
    return { p50: d.p50, p99: d.p99, max: d.last }
  }
  return {
    n,
    received: triples.length,
    beforeStart,
    ownViewBefore,
    est: spread(est),
    started: spread(started),
    estMinusStartAt: dist(err).p50,
    lastMinusStartAt: (lastRecv - startAtMono) / 1e6,
    startAts: new Set(triples.map((x) => x[1])).size
  }
}
