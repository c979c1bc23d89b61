// Idle auto-created groups go (docs/security.md): while unknown groups are created on first use, a
// stranger could create `maxGroups` of them and fill the broker for good (they are saved). A group
// is removed when nobody configured it — not declared in the configuration file, configuration
// still the server's group defaults — it has no terminal online, it is WAITING, and its state has
// not changed for `idleMs`. Store-agnostic: it asks the engine, like any operator would.
import type { Logger } from 'pino'
import { publicConfig, type Engine } from '../scheduler/index.js'

export interface IdleGroupOptions {
  engine: Engine
  idleMs: number
  /** groups declared in the configuration file: never removed */
  declared: ReadonlySet<string>
  logger: Logger
  /** how often to look (default: idleMs / 4, between 1 s and 1 min) */
  everyMs?: number
  now?: () => number
}

export class IdleGroupSweeper {
  private readonly opts: IdleGroupOptions
  private readonly timer: NodeJS.Timeout
  private running = false
  /** groups removed so far */
  removed = 0

  constructor (opts: IdleGroupOptions) {
    this.opts = opts
    const every = opts.everyMs ?? Math.min(60000, Math.max(1000, Math.floor(opts.idleMs / 4)))
    this.timer = setInterval(() => {
      if (this.running) return
      this.running = true
      this.sweep().catch((err: unknown) => opts.logger.warn({ err }, 'looking for idle groups failed'))
        .finally(() => { this.running = false })
    }, every)
    this.timer.unref()
  }

  close (): void {
    clearInterval(this.timer)
  }

  async sweep (): Promise<void> {
    const { engine, idleMs, declared, logger } = this.opts
    const now = (this.opts.now ?? Date.now)()
    const defaults = JSON.stringify(sorted(publicConfig(engine.defaults)))
    for (const s of await engine.listGroups()) {
      if (declared.has(s.group) || s.online > 0 || s.phase !== 'WAITING' || now - s.updatedAt < idleMs) continue
      const g = await engine.getGroup(s.group).catch(() => null)
      if (g === null || JSON.stringify(sorted(g.config)) !== defaults) continue
      if (g.state.updatedAt !== s.updatedAt || g.state.online > 0) continue // it moved meanwhile
      await engine.deleteGroup(s.group).then(() => {
        this.removed++
        logger.info({ group: s.group, idleMs }, 'removed an idle auto-created group')
      }, (err: unknown) => logger.debug({ err, group: s.group }, 'idle group not removed'))
    }
  }
}

function sorted (o: object): Array<[string, unknown]> {
  return Object.entries(o).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
}
