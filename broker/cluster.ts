// Cluster mode (--redis URL): everything several roundgate processes share through one Redis.
//  - mqemitter-redis carries MQTT messages between the brokers (retained state, summaries, ...);
//  - aedes-persistence-redis keeps sessions, subscriptions and retained messages;
//  - the Redis store keeps every group's round state, changed only by Lua scripts;
//  - the Redis bus tells every process about releases, round ends, kicks and deleted groups.
// docs/cluster.md describes the keys, the guarantees and how to run it.
import aedesPersistenceRedis from 'aedes-persistence-redis'
import { Redis, type RedisOptions } from 'ioredis'
import MQEmitterRedis from 'mqemitter-redis'
import type { Logger } from 'pino'
import { type Bus, reconnect, RedisBus, RedisStore, type Store } from '../plugins/scheduler/index.js'
import { ConfigError } from './config.js'
import { onMqEmitterError } from '../plugins/internals.js'

export interface ClusterOptions {
  historyLimit?: number
  maxGroups?: number
  maxTerminalsPerGroup?: number
}

export interface ClusterParts {
  store: Store
  bus: Bus
  /** for aedes' `mq` option */
  mq: unknown
  /** for aedes' `persistence` option */
  persistence: unknown
  /** a link to the shared Redis for small shared things (rate limits, the login key) */
  redis: Redis
  /** every Redis link is up right now (synchronous: for the CONNECT guard) */
  available: () => boolean
  close: () => Promise<void>
}

/** Connection settings of the broker's own Redis links: reconnect for ever, fail queued commands soon. */
const BROKER_LINK: RedisOptions = {
  retryStrategy: reconnect,
  // a command waiting through two failed reconnects is answered with an error, not kept hanging
  maxRetriesPerRequest: 2
}

function redact (url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}

export async function clusterParts (url: string, logger: Logger, opts: ClusterOptions = {}): Promise<ClusterParts> {
  const log = logger.child({ module: 'cluster' })
  const where = redact(url)
  // Connection trouble is logged once per change of state, not once per failed command.
  let down = false
  const onError = (err: Error): void => {
    if (!down) log.warn({ redis: where, err: err.message }, 'redis unreachable')
    down = true
  }
  const onReady = (): void => {
    if (down) log.info({ redis: where }, 'redis reachable again')
    down = false
  }

  const prefix = 'rg' // first part of the scheduler's keys and of the bus channel
  const store = new RedisStore({
    url,
    prefix,
    historyLimit: opts.historyLimit,
    maxGroups: opts.maxGroups,
    maxTerminalsPerGroup: opts.maxTerminalsPerGroup,
    onError
  })
  store.redis.on('ready', onReady)
  const bus = new RedisBus({ url, prefix, onError })

  const links: Redis[] = []
  const link = (): Redis => {
    const r = new Redis(url, BROKER_LINK)
    r.on('error', onError)
    links.push(r)
    return r
  }
  let mq: MQEmitterRedis.MQEmitterRedis | null = null
  let persistence: ReturnType<typeof aedesPersistenceRedis> | null = null
  let shared: Redis | undefined
  try {
    const pubConn = link()
    const subConn = link()
    const conn = link()
    // Fail start-up with a clear message rather than come up without Redis.
    await Promise.all(links.map(async (r) => await new Promise<void>((resolve, reject) => {
      if (r.status === 'ready') { resolve(); return }
      const timer = setTimeout(() => reject(new ConfigError(`cannot reach redis at ${where}`)), 10000)
      r.once('ready', () => { clearTimeout(timer); resolve() })
    })))
    mq = MQEmitterRedis({ pubConn, subConn })
    // mqemitter-redis re-emits connection errors on `state`: unheard, they would end the process
    onMqEmitterError(mq, onError)
    persistence = aedesPersistenceRedis({ conn })
    shared = conn
  } catch (err) {
    for (const r of links) r.disconnect()
    await store.close()
    await bus.close()
    throw err
  }

  let closing: Promise<void> | null = null
  const close = async (): Promise<void> => {
    closing ??= (async () => {
      await bus.close()
      await store.close()
      await new Promise<void>((resolve) => mq?.close(() => resolve()))
      // destroy() unsubscribes through the (already closed) broker: bounded, whatever it does
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        Promise.resolve().then(async () => await persistence?.destroy()).catch((err: Error) => {
          log.debug({ err: err.message }, 'persistence closed with an error')
        }),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, 1000) })
      ])
      clearTimeout(timer)
      for (const r of links) if (r.status !== 'end') r.disconnect()
    })()
    await closing
  }

  log.info({ redis: where }, 'cluster mode: scheduler state, MQTT routing and sessions in redis')
  const available = (): boolean => store.redis.status === 'ready' && links.every((r) => r.status === 'ready')
  // the persistence's own link (ready now): queue lengths are read where they are written
  return { store, bus, mq, persistence, redis: shared ?? store.redis, available, close }
}
