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
import { GroupModel, type ModelLimits, type Terminal } from '../engine/group-model.js'
import type { GroupConfig, Phase, ReleaseRecord, Role, RoundSummary } from '../engine/types.js'

const RESERVE = 1000
const SAVE_DELAY_MS = 1000
const FILE = 'roundgate-state.json'
const VERSION = 1

interface SavedGroup {
  name: string
  config: GroupConfig
  phase: Phase
  round: number
  reserved: number
  releasedAt: number | null
  resetUntil: number | null
  release: ReleaseRecord | null
  terminals: Terminal[]
  participants: Array<[string, Role]>
  done: Array<[string, { ok: boolean, result: unknown }]>
  dropped: string[]
  history: RoundSummary[]
}

interface SavedFile { version: number, clean: boolean, savedAt: number, groups: SavedGroup[] }

export class SnapshotFile {
  private readonly path: string
  private readonly reserved = new Map<string, number>()
  private timer: NodeJS.Timeout | null = null
  private writing: Promise<void> = Promise.resolve()
  private latest: Iterable<GroupModel> = []

  constructor (dir: string) {
    mkdirSync(dir, { recursive: true })
    this.path = join(dir, FILE)
  }

  load (limits: ModelLimits, now: number): GroupModel[] {
    let file: SavedFile
    try {
      file = JSON.parse(readFileSync(this.path, 'utf8')) as SavedFile
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw new Error(`cannot read the state file ${this.path}: ${(err as Error).message}`, { cause: err })
    }
    if (file.version !== VERSION) throw new Error(`state file ${this.path} has unknown version ${file.version}`)
    return file.groups.map((g) => this.restore(g, file.clean, limits, now))
  }

  /** Called after every change: make sure the group's next round number is covered on disk. */
  reserve (m: GroupModel, all: Iterable<GroupModel>): void {
    const ceiling = this.reserved.get(m.name) ?? 0
    if (m.round + 1 <= ceiling) return
    this.reserved.set(m.name, m.round + RESERVE)
    this.writeSync(all, false)
  }

  markDirty (all: Iterable<GroupModel>): void {
    this.latest = all
    if (this.timer !== null) return
    this.timer = setTimeout(() => {
      this.timer = null
      // eslint-disable-next-line no-restricted-syntax -- replaced by the SQLite store (issue 9)
      this.saveNow(this.latest, false).catch(() => { /* retried on the next change; saveNow at close reports */ })
    }, SAVE_DELAY_MS)
    this.timer.unref()
  }

  async saveNow (all: Iterable<GroupModel>, clean: boolean): Promise<void> {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null }
    const text = this.serialise(all, clean)
    const next = this.writing.then(async () => {
      const tmp = `${this.path}.${process.pid}.tmp`
      await writeFile(tmp, text)
      await rename(tmp, this.path)
    })
    // eslint-disable-next-line no-restricted-syntax -- replaced by the SQLite store (issue 9)
    this.writing = next.catch(() => {})
    await next
  }

  private writeSync (all: Iterable<GroupModel>, clean: boolean): void {
    const tmp = `${this.path}.${process.pid}.sync.tmp`
    writeFileSync(tmp, this.serialise(all, clean))
    renameSync(tmp, this.path)
  }

  private serialise (all: Iterable<GroupModel>, clean: boolean): string {
    const groups: SavedGroup[] = []
    for (const m of all) {
      groups.push({
        name: m.name,
        config: m.config,
        phase: m.phase,
        round: m.round,
        reserved: Math.max(this.reserved.get(m.name) ?? 0, m.round),
        releasedAt: m.releasedAt,
        resetUntil: m.resetUntil,
        release: m.release,
        terminals: [...m.terminals.values()],
        participants: [...m.participants],
        done: [...m.done],
        dropped: [...m.dropped],
        history: m.history
      })
    }
    const file: SavedFile = { version: VERSION, clean, savedAt: Date.now(), groups }
    return JSON.stringify(file)
  }

  private restore (g: SavedGroup, clean: boolean, limits: ModelLimits, now: number): GroupModel {
    const m = new GroupModel(g.name, g.config, now, limits)
    m.history = g.history.slice(-limits.historyLimit)
    this.reserved.set(g.name, g.reserved)
    // Terminals come back as if just heard from: a restart must not evict the whole fleet.
    for (const t of g.terminals) {
      m.terminals.set(t.id, { ...t, lastSeen: now })
      if (t.role === 'boss') m.onlineBoss++
      else m.onlineSmall++
    }
    const ready = [...m.terminals.values()].filter((t) => t.readySeq !== 0).sort((a, b) => a.readySeq - b.readySeq)
    for (const t of ready) (t.role === 'boss' ? m.readyBoss : m.readySmall).set(t.id, t)
    m.seq = ready.length > 0 ? ready[ready.length - 1].readySeq : 0
    if (!clean) {
      // The last writes may be lost: continue above every round that could have been used.
      m.round = g.reserved
      return m
    }
    m.round = g.round
    m.phase = g.phase
    m.releasedAt = g.releasedAt
    m.resetUntil = g.resetUntil
    m.release = g.release
    m.participants = new Map(g.participants)
    m.done = new Map(g.done)
    m.dropped = new Set(g.dropped)
    return m
  }
}
