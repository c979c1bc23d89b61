// Durability for the memory store: one JSON file in the data directory, written atomically
// (temporary file + rename) at most once a second while something changed, and at shutdown.
//
// Rounds must never go backwards, even after a crash that lost the last second of writes. So each
// group also records a reserved ceiling: before a round number beyond it is used, the file is
// rewritten synchronously with a ceiling RESERVE rounds higher (once per RESERVE rounds, off the
// common path). After a clean shutdown the exact state comes back; after a crash each group
// restarts in WAITING from its ceiling, so no round number is ever handed out twice.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Scalars } from '../engine/model/durable.js'
import { GroupModel, type ModelLimits } from '../engine/model/group.js'
import type { StoredJob } from '../engine/model/jobs.js'
import { Round, type DoneReport } from '../engine/model/round.js'
import type { Terminal } from '../engine/model/terminals.js'
import type { GroupConfig, ReleaseRecord, RoundSummary } from '../engine/types.js'
import type { Held } from './store.js'

const RESERVE = 1000
const SAVE_DELAY_MS = 1000
const FILE = 'roundgate-state.json'
const VERSION = 2

interface SavedGroup {
  name: string
  config: GroupConfig
  scalars: Scalars
  reserved: number
  terminals: Terminal[]
  release: ReleaseRecord | null
  done: Array<[string, DoneReport]>
  dropped: string[]
  jobs: StoredJob[]
  history: RoundSummary[]
}

interface SavedFile { version: number, clean: boolean, savedAt: number, groups: SavedGroup[], tombstones: Array<[string, number]> }

export interface Loaded {
  groups: Held[]
  tombstones: Map<string, number>
}

export class SnapshotFile {
  private readonly path: string
  private readonly reserved = new Map<string, number>()
  private timer: NodeJS.Timeout | null = null
  private writing: Promise<void> = Promise.resolve()
  private latest: Iterable<Held> = []
  private latestTombs: Map<string, number> = new Map()

  constructor (dir: string) {
    mkdirSync(dir, { recursive: true })
    this.path = join(dir, FILE)
  }

  load (limits: ModelLimits, now: number): Loaded {
    let file: SavedFile
    try {
      file = JSON.parse(readFileSync(this.path, 'utf8')) as SavedFile
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { groups: [], tombstones: new Map() }
      throw new Error(`cannot read the state file ${this.path}: ${(err as Error).message}`, { cause: err })
    }
    if (file.version !== VERSION) throw new Error(`state file ${this.path} has unknown version ${file.version}`)
    return {
      groups: file.groups.map((g) => this.restore(g, file.clean, limits, now)),
      tombstones: new Map(file.tombstones)
    }
  }

  /** Called after every change: make sure the group's next round number is covered on disk. */
  reserve (m: GroupModel, all: Iterable<Held>, tombs: Map<string, number>): void {
    const ceiling = this.reserved.get(m.name) ?? 0
    if (m.round + 1 <= ceiling) return
    this.reserved.set(m.name, m.round + RESERVE)
    this.writeSync(all, tombs, false)
  }

  markDirty (all: Iterable<Held>, tombs: Map<string, number>): void {
    this.latest = all
    this.latestTombs = tombs
    if (this.timer !== null) return
    this.timer = setTimeout(() => {
      this.timer = null
      // eslint-disable-next-line no-restricted-syntax -- replaced by the SQLite store (issue 9)
      this.saveNow(this.latest, this.latestTombs, false).catch(() => { /* retried on the next change; saveNow at close reports */ })
    }, SAVE_DELAY_MS)
    this.timer.unref()
  }

  async saveNow (all: Iterable<Held>, tombs: Map<string, number>, clean: boolean): Promise<void> {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null }
    const text = this.serialise(all, tombs, clean)
    const next = this.writing.then(async () => {
      const tmp = `${this.path}.${process.pid}.tmp`
      await writeFile(tmp, text)
      await rename(tmp, this.path)
    })
    // eslint-disable-next-line no-restricted-syntax -- replaced by the SQLite store (issue 9)
    this.writing = next.catch(() => {})
    await next
  }

  private writeSync (all: Iterable<Held>, tombs: Map<string, number>, clean: boolean): void {
    const tmp = `${this.path}.${process.pid}.sync.tmp`
    writeFileSync(tmp, this.serialise(all, tombs, clean))
    renameSync(tmp, this.path)
  }

  private serialise (all: Iterable<Held>, tombs: Map<string, number>, clean: boolean): string {
    const groups: SavedGroup[] = []
    for (const { model: m, history } of all) {
      const r = m.current
      groups.push({
        name: m.name,
        config: m.config,
        scalars: m.scalars(),
        reserved: Math.max(this.reserved.get(m.name) ?? 0, m.round),
        terminals: [...m.terminals.online.values()],
        release: r?.record ?? null,
        done: r === null ? [] : [...r.done],
        dropped: r === null ? [] : [...r.dropped],
        jobs: m.jobs.all(),
        history
      })
    }
    const file: SavedFile = { version: VERSION, clean, savedAt: Date.now(), groups, tombstones: [...tombs] }
    return JSON.stringify(file)
  }

  private restore (g: SavedGroup, clean: boolean, limits: ModelLimits, now: number): Held {
    const m = new GroupModel(g.name, g.config, now, limits)
    this.reserved.set(g.name, g.reserved)
    // Terminals come back as if just heard from: a restart must not evict the whole fleet.
    for (const t of g.terminals) m.terminals.restore({ ...t, lastSeen: now })
    m.terminals.restoreReady()
    for (const j of g.jobs) m.jobs.restore(j)
    m.jobs.restoreDone()
    const history = g.history.slice(-limits.historyLimit)
    if (!clean) {
      // The last writes may be lost: continue above every round that could have been used.
      m.restoreScalars({ ...g.scalars, phase: 'WAITING', releasedAt: null, resetUntil: null, round: g.reserved })
      return { model: m, history }
    }
    m.restoreScalars(g.scalars)
    if (g.release !== null && g.scalars.phase === 'EXECUTING') {
      const r = new Round(g.release)
      for (const [id, d] of g.done) r.done.set(id, d)
      for (const id of g.dropped) r.dropped.add(id)
      m.current = r
    }
    return { model: m, history }
  }
}
