// Broker-wide budgets the engine keeps at its entry points (docs/security.md), so no store has to
// count across groups:
// - terminals in all groups (`maxTerminals`): each group's online count, from every transition's
//   state (the sweep ticks every group each second, so in cluster mode it sees the others' work
//   too, a second late at most); a call that could add a terminal is given the room left
//   (TerminalOpOptions.maxTerminals) and the store refuses a new terminal beyond it;
// - `meta` bytes in total (`maxMetaBytes`): the meta this process accepted, per terminal, until the
//   terminal leaves, is kicked, or stays silent past its group's offlineAfterMs. In cluster mode
//   each process holds its own budget.
import { RgError } from '../../errors.js'

export class TerminalBudget {
  private readonly online = new Map<string, number>()
  private total = 0
  readonly max: number

  constructor (max: number) {
    this.max = max
  }

  observe (group: string, online: number): void {
    const before = this.online.get(group) ?? 0
    if (before === online) return
    this.total += online - before
    this.online.set(group, online)
  }

  forget (group: string): void {
    this.total -= this.online.get(group) ?? 0
    this.online.delete(group)
  }

  /** The most terminals `group` may hold after a call that could add one. */
  roomFor (group: string): number {
    return (this.online.get(group) ?? 0) + Math.max(0, this.max - this.total)
  }
}

interface MetaEntry { bytes: number, seen: number }

export class MetaBudget {
  private readonly groups = new Map<string, Map<string, MetaEntry>>()
  private total = 0
  readonly max: number

  constructor (max: number) {
    this.max = max
  }

  /** Throws `unavailable` when keeping `bytes` of meta for this terminal would pass the budget. */
  check (group: string, id: string, bytes: number): void {
    const old = this.groups.get(group)?.get(id)?.bytes ?? 0
    if (this.total - old + bytes > this.max) {
      throw new RgError('unavailable', `the broker already keeps its maximum of ${this.max} bytes of terminal meta`)
    }
  }

  set (group: string, id: string, bytes: number, now: number): void {
    let m = this.groups.get(group)
    if (m === undefined) this.groups.set(group, m = new Map<string, MetaEntry>())
    const old = m.get(id)
    this.total += bytes - (old?.bytes ?? 0)
    m.set(id, { bytes, seen: now })
  }

  /** The terminal was heard from (its meta stays). */
  seen (group: string, id: string, now: number): void {
    const e = this.groups.get(group)?.get(id)
    if (e !== undefined) e.seen = now
  }

  drop (group: string, id: string): void {
    const m = this.groups.get(group)
    const e = m?.get(id)
    if (m === undefined || e === undefined) return
    this.total -= e.bytes
    m.delete(id)
    if (m.size === 0) this.groups.delete(group)
  }

  forget (group: string): void {
    for (const e of this.groups.get(group)?.values() ?? []) this.total -= e.bytes
    this.groups.delete(group)
  }

  /** Groups holding meta (for the prune). */
  holders (): string[] {
    return [...this.groups.keys()]
  }

  /** Drop the meta of terminals of `group` not heard from since `before` (evicted for silence). */
  prune (group: string, before: number): void {
    const m = this.groups.get(group)
    if (m === undefined) return
    for (const [id, e] of m) if (e.seen < before) this.drop(group, id)
  }
}

/** how often the offlineAfterMs of a group holding meta is read again */
const META_PRUNE_MS = 10000

/**
 * The two budgets as the engine uses them at its entry points: `admit` before a call that may add
 * a terminal or keep its meta, `heard` after it, `observe` every transition's state, `forget` /
 * `drop` on deletions and leaves, `prune` at each sweep.
 */
export class Budgets {
  private readonly terminals: TerminalBudget | null
  private readonly meta: MetaBudget | null
  /** offlineAfterMs of the groups holding meta, read again every META_PRUNE_MS */
  private readonly offlineMs = new Map<string, { ms: number, at: number }>()

  constructor (maxTerminals: number | undefined, maxMetaBytes: number | undefined) {
    this.terminals = maxTerminals !== undefined ? new TerminalBudget(maxTerminals) : null
    this.meta = maxMetaBytes !== undefined ? new MetaBudget(maxMetaBytes) : null
  }

  /** The most terminals `group` may hold after this call (undefined: no broker-wide bound). */
  roomFor (group: string): number | undefined {
    return this.terminals?.roomFor(group)
  }

  /** The meta bytes a heartbeat or ready would keep, checked against the budget; null when none. */
  admit (group: string, id: string, meta: Record<string, unknown> | undefined): number | null {
    if (this.meta === null || meta === undefined) return null
    const bytes = Buffer.byteLength(JSON.stringify(meta))
    this.meta.check(group, id, bytes)
    return bytes
  }

  /** The call went through: keep its meta (or note the terminal was heard from). */
  heard (group: string, id: string, meta: number | null): void {
    if (this.meta === null) return
    if (meta !== null) this.meta.set(group, id, meta, Date.now())
    else this.meta.seen(group, id, Date.now())
  }

  observe (group: string, online: number): void {
    this.terminals?.observe(group, online)
  }

  drop (group: string, id: string): void {
    this.meta?.drop(group, id)
  }

  forget (group: string): void {
    this.terminals?.forget(group)
    this.meta?.forget(group)
    this.offlineMs.delete(group)
  }

  /** Meta of terminals silent past their group's offlineAfterMs is no longer kept by the store. */
  async prune (offlineAfterMs: (group: string) => Promise<number | null>): Promise<void> {
    const budget = this.meta
    if (budget === null) return
    await Promise.all(budget.holders().map(async (group) => {
      const now = Date.now()
      let o = this.offlineMs.get(group)
      if (o === undefined || now - o.at > META_PRUNE_MS) {
        const ms = await offlineAfterMs(group)
        if (ms === null) { this.forget(group); return }
        this.offlineMs.set(group, o = { ms, at: now })
      }
      budget.prune(group, now - o.ms - 1000)
    }))
  }
}
