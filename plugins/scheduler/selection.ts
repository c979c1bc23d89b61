// Who is picked when more smalls are ready than a round needs (PROTOCOL section 2, `selection`).
// Candidates arrive in the order they declared ready (earliest first); every rule breaks ties by
// that order, so `fifo` is the plain prefix and the others are stable sorts.
import type { Selection } from './types.js'

export interface Candidate {
  id: string
  /** round this terminal last took part in; 0 if never */
  lastRound: number
  /** last reported load; null if it never reported one (sorted after every reported load) */
  load: number | null
}

export function select (rule: Selection, readyInOrder: Candidate[], count: number): string[] {
  if (count <= 0) return []
  let ordered = readyInOrder
  if (rule === 'fair') {
    ordered = stableSort(readyInOrder, (a, b) => a.lastRound - b.lastRound)
  } else if (rule === 'load') {
    ordered = stableSort(readyInOrder, (a, b) => (a.load ?? Infinity) - (b.load ?? Infinity) || 0)
  }
  const out: string[] = []
  for (let i = 0; i < ordered.length && out.length < count; i++) out.push(ordered[i].id)
  return out
}

function stableSort<T> (items: T[], cmp: (a: T, b: T) => number): T[] {
  // Array.prototype.sort is stable since ES2019; comparing Infinity - Infinity gives NaN, so
  // the comparators above fall back to 0 and keep the ready order.
  return [...items].sort((a, b) => {
    const c = cmp(a, b)
    return Number.isNaN(c) ? 0 : c
  })
}
