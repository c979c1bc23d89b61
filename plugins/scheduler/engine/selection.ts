// Who is picked when more smalls are ready than a round needs (PROTOCOL section 2, `selection`).
// Candidates arrive in the order they declared ready (earliest first); every rule breaks ties by
// that order, so `fifo` is the plain prefix (read without copying the ready set) and the others
// are stable sorts.
import type { Selection } from './types.js'

export interface Candidate {
  /** round this terminal last took part in; 0 if never */
  lastRound: number
  /** last reported load; null if it never reported one (sorted after every reported load) */
  load: number | null
}

const byLastRound = (a: Candidate, b: Candidate): number => a.lastRound - b.lastRound

function byLoad (a: Candidate, b: Candidate): number {
  const x = a.load ?? Infinity
  const y = b.load ?? Infinity
  return x === y ? 0 : x < y ? -1 : 1
}

export function select<T extends Candidate> (rule: Selection, readyInOrder: Iterable<T>, count: number): T[] {
  const out: T[] = []
  if (count <= 0) return out
  if (rule === 'fifo') {
    for (const c of readyInOrder) {
      if (out.length >= count) break
      out.push(c)
    }
    return out
  }
  // Array.prototype.sort is stable (ES2019): equal keys keep the ready order
  return [...readyInOrder].sort(rule === 'fair' ? byLastRound : byLoad).slice(0, count)
}
