// Where a process keeps its state: one process on the embedded store (and aedes's own in-memory
// persistence), or the cluster on Redis (broker/cluster.ts): the scheduler's store and bus, and
// what aedes shares between brokers.
import type { AedesOptions } from 'aedes'
// aedes's own in-memory persistence, made here so the offline-queue bound can wrap it; imported
// (not required at run time) so the single binary's bundle holds it
import aedesMemoryPersistence from 'aedes-persistence'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { LocalBus, MemoryStore, type Bus, type Store } from '../plugins/scheduler/index.js'
import { clusterParts } from './cluster.js'
import type { Settings } from './settings.js'

// the package is CommonJS: its default import is module.exports, the factory (its typings say
// otherwise under NodeNext)
const memoryPersistence = aedesMemoryPersistence as unknown as () => unknown

export interface Backend {
  store: Store
  bus: Bus
  aedes: Partial<AedesOptions> & { persistence: unknown }
  /** cluster mode: a link to the shared Redis (rate limits, the login key, queue lengths) */
  redis?: Redis
  /** the shared state is reachable (always, in one process) */
  available: () => boolean
  close: () => Promise<void>
}

export async function backendFor (settings: Settings, log: Logger): Promise<Backend> {
  if (settings.redis !== null) {
    const c = await clusterParts(settings.redis, log, settings)
    return { store: c.store, bus: c.bus, aedes: { mq: c.mq, persistence: c.persistence }, redis: c.redis, available: c.available, close: c.close }
  }
  const store = new MemoryStore({
    dataDir: settings.dataDir,
    durability: settings.durability,
    historyLimit: settings.historyLimit,
    historyMaxAgeDays: settings.historyMaxAgeDays,
    logger: log.child({ module: 'store' }),
    maxGroups: settings.maxGroups,
    maxTerminalsPerGroup: settings.maxTerminalsPerGroup,
    maxQueuedJobs: settings.maxQueuedJobs
  })
  return { store, bus: new LocalBus(), aedes: { persistence: memoryPersistence() }, available: () => true, close: async () => { /* nothing shared to let go */ } }
}
