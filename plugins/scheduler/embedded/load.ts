// Reading the embedded store's state back into the models (engine/model): every group with its
// configuration, scalars, terminals (as just heard from: lastSeen is not durable), the round it
// executes (release, done reports, drops) and its jobs, through the model's own restore methods.
// Every row is checked (rows.ts) and the rows must agree with each other (an EXECUTING group has
// its release, done reports belong to participants, no row of an unknown group): the first
// disagreement refuses the whole load with one line. Nothing is half-loaded.
import { GroupModel, type ModelLimits } from '../engine/model/group.js'
import { Round } from '../engine/model/round.js'
import type { Terminal } from '../engine/model/terminals.js'
import type { Db } from './db.js'
import { configFrom, doneFrom, jobFrom, releaseSchema, scalarsFrom, terminalFrom, Where } from './rows.js'

type Row = Record<string, unknown>

export interface LoadedState {
  groups: Map<string, GroupModel>
  tombstones: Map<string, number>
}

/**
 * Load every group (or only `only`). `lastSeen(group, id)` gives a terminal's lastSeen (the
 * in-memory one when a group is rebuilt after a failed write), else it counts as heard from `now`.
 */
export function loadGroups (db: Db, limits: ModelLimits, now: number, only?: string, lastSeen?: (group: string, id: string) => number | undefined): LoadedState {
  const one = only !== undefined
  const by = (table: string, key: string, order: string): Row[] =>
    (one ? db.prepare(`SELECT * FROM ${table} WHERE ${key} = ? ORDER BY ${order}`).all(only) : db.prepare(`SELECT * FROM ${table} ORDER BY ${order}`).all()) as Row[]

  const configs = new Map<string, unknown>()
  for (const r of by('configs', 'name', 'name')) configs.set(String(r.name), r.config)
  const groups = new Map<string, GroupModel>()
  for (const r of by('groups', 'name', 'name')) {
    const name = new Where('groups', show(r.name)).text('name', r.name, /^[A-Za-z0-9_.-]{1,64}$/)
    if (!configs.has(name)) new Where('groups', JSON.stringify(name)).fail('config', 'the group has no row in configs')
    const config = configFrom(new Where('configs', JSON.stringify(name)), configs.get(name))
    const m = new GroupModel(name, config, now, limits)
    m.restoreScalars(scalarsFrom(name, r))
    groups.set(name, m)
  }
  const group = (table: string, r: Row): GroupModel => {
    const m = groups.get(String(r.grp))
    if (m === undefined) throw new Where(table, `${show(r.grp)}/${show(r.id ?? r.round)}`).problem('grp', 'no such group')
    return m
  }

  // the round each group executes: its release first, for the terminal rows it makes out of date
  const takenSeq = new Map<GroupModel, number>()
  for (const r of by('releases', 'grp', 'grp')) {
    const m = group('releases', r)
    const w = new Where('releases', JSON.stringify(m.name))
    const rec = w.shaped('record', r.record, releaseSchema)
    if (rec.group !== m.name || rec.round !== r.round) w.fail('record', `holds round ${rec.round} of group ${JSON.stringify(rec.group)}`)
    if (m.phase !== 'EXECUTING' || m.round !== rec.round) w.fail('record', `a release of round ${rec.round}, but the group is ${m.phase} at round ${m.round}`)
    m.current = new Round(rec)
    takenSeq.set(m, w.int('taken_seq', r.taken_seq))
  }
  const terminals = new Map<GroupModel, Terminal[]>()
  for (const r of by('terminals', 'grp', 'grp, id')) {
    const m = group('terminals', r)
    const t = terminalFrom(m.name, r)
    let list = terminals.get(m)
    if (list === undefined) terminals.set(m, list = [])
    list.push({ ...repairTaken(m, takenSeq.get(m) ?? 0, t), lastSeen: lastSeen?.(m.name, t.id) ?? now, load: null, meta: null })
  }
  for (const [m, list] of terminals) {
    // oldest first: the online map is kept in lastSeen order, so eviction stops early
    list.sort((a, b) => a.lastSeen - b.lastSeen)
    for (const t of list) m.terminals.restore(t)
    m.terminals.restoreReady()
  }
  // tickets handed out after the release are above every ticket it took, also after this start
  for (const [m, seq] of takenSeq) m.terminals.seq = Math.max(m.terminals.seq, seq)

  for (const m of groups.values()) {
    if (m.phase === 'EXECUTING' && m.current === null) new Where('groups', JSON.stringify(m.name)).fail('phase', `EXECUTING round ${m.round} without its release`)
  }
  for (const r of by('done', 'grp', 'grp, seq')) {
    const m = group('done', r)
    const d = doneFrom(m.name, r)
    const cur = m.current
    if (cur === null || r.round !== cur.round || !cur.participants.has(d.id)) throw new Where('done', `${JSON.stringify(m.name)}/${d.id}`).problem('id', 'not a participant of the round executing')
    cur.done.set(d.id, { ok: d.ok, result: d.result, at: d.at })
  }
  for (const r of by('dropped', 'grp', 'grp, seq')) {
    const m = group('dropped', r)
    const w = new Where('dropped', `${JSON.stringify(m.name)}/${show(r.id)}`)
    const id = w.text('id', r.id)
    const cur = m.current
    if (cur === null || r.round !== cur.round || !cur.participants.has(id)) throw w.problem('id', 'not a participant of the round executing')
    cur.dropped.add(id)
  }

  for (const r of by('jobs', 'grp', 'grp, seq')) {
    const m = group('jobs', r)
    m.jobs.restore({ ...jobFrom(m.name, r), group: m.name })
  }
  for (const m of groups.values()) m.jobs.restoreDone()

  const tombstones = new Map<string, number>()
  const tombRows = (one ? db.prepare('SELECT * FROM tombstones WHERE name = ?').all(only) : db.prepare('SELECT * FROM tombstones').all()) as Row[]
  for (const r of tombRows) {
    const w = new Where('tombstones', show(r.name))
    tombstones.set(w.text('name', r.name), w.int('round', r.round))
  }
  return { groups, tombstones }
}

/**
 * A participant's row as the release left it: the release took it out of ready and into the round
 * without rewriting its row (persist.ts), so a row still holding a ticket the release took (at
 * most `taken`) is read as the release made it. A row written since holds the model's own values.
 */
function repairTaken<T extends { id: string, readySeq: number, lastRound: number }> (m: GroupModel, taken: number, t: T): T {
  const cur = m.current
  if (cur === null || t.readySeq === 0 || t.readySeq > taken || !cur.participants.has(t.id)) return t
  return { ...t, readySeq: 0, lastRound: cur.round }
}

function show (v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v)
}
