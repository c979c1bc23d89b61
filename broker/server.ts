// One roundgate process: the store, the round engine, the aedes broker with its plugins, and the
// listeners (MQTT over TCP, TLS and WebSocket; the HTTP gateway). startServer resolves once every
// listener accepts connections; close() shuts it all down in order without losing state.
import { Aedes, type AedesOptions } from 'aedes'
import { readFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import type { Logger } from 'pino'
import websocketStream from 'websocket-stream'
import { startGateway, type Gateway } from '../gateway/index.js'
import { createMetrics, type Metrics } from '../plugins/metrics/index.js'
import {
  type Bus, Engine, installSchedulerDoor, LocalBus, MemoryStore, type MqttDoor, type Store, Topics
} from '../plugins/scheduler/index.js'
import { clusterParts } from './cluster.js'
import { ConfigError, tlsPortOf, type Settings } from './config.js'
import { isRgError } from '../plugins/errors.js'
import { limitPacketSize, refuseEmptyIdWithSession, refuseWhileUnavailable } from '../plugins/mqtt-guards.js'
import { installSys, type Sys } from '../plugins/sys/index.js'
import { version } from './version.js'

export interface Ports { mqtt: number, tls: number, ws: number, http: number }

export interface RunningServer {
  settings: Settings
  broker: Aedes
  engine: Engine
  door: MqttDoor
  metrics: Metrics
  sys: Sys
  gateway: Gateway | null
  ports: Ports
  /** Shut down in order without losing state; at once, whatever executes. */
  close: () => Promise<void>
  /**
   * The graceful stop of SIGTERM. One process waits up to `graceMs` (stopGraceMs) for its
   * executing rounds to end, releasing no new round meanwhile, then closes; in cluster mode it
   * closes at once and the other processes carry the rounds (they are in Redis).
   */
  stop: (graceMs?: number) => Promise<void>
}

interface Backend {
  store: Store
  bus: Bus
  aedes: Partial<AedesOptions>
  /** the shared state is reachable (always, in one process) */
  available: () => boolean
  close: () => Promise<void>
}

async function backendFor (settings: Settings, log: Logger): Promise<Backend> {
  // Cluster mode (--redis): a Redis store, a Redis bus, mqemitter-redis and
  // aedes-persistence-redis, all from broker/cluster.ts.
  if (settings.redis !== null) {
    const c = await clusterParts(settings.redis, log, settings)
    return { store: c.store, bus: c.bus, aedes: { mq: c.mq, persistence: c.persistence }, available: c.available, close: c.close }
  }
  const store = new MemoryStore({
    dataDir: settings.dataDir,
    historyLimit: settings.historyLimit,
    maxGroups: settings.maxGroups,
    maxTerminalsPerGroup: settings.maxTerminalsPerGroup
  })
  return { store, bus: new LocalBus(), aedes: {}, available: () => true, close: async () => {} }
}

function readTlsFiles (cert: string, key: string): { cert: Buffer, key: Buffer } {
  try {
    return { cert: readFileSync(cert), key: readFileSync(key) }
  } catch (err) {
    throw new ConfigError(`cannot read the TLS certificate or key: ${(err as Error).message}`)
  }
}

async function listen (server: NetServer | HttpServer, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return (server.address() as AddressInfo).port
}

async function closeServer (server: NetServer | HttpServer): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

export async function startServer (settings: Settings, log: Logger): Promise<RunningServer> {
  const backend = await backendFor(settings, log)
  let engine: Engine | null = null
  try {
    engine = new Engine({
      store: backend.store,
      bus: backend.bus,
      logger: log.child({ module: 'engine' }),
      autoCreateGroups: settings.autoCreateGroups,
      groupDefaults: settings.groupDefaults,
      groups: settings.groups,
      sweepMs: settings.sweepMs
    })
    await engine.start()
  } catch (err) {
    await engine?.stop().catch((stopErr: unknown) => { log.error({ err: stopErr }, 'stopping the engine after a failed start failed too') })
    await backend.close()
    if (isRgError(err)) throw new ConfigError(`configuration: ${err.message}`)
    throw err
  }

  const broker = await Aedes.createBroker({
    concurrency: 1000,
    drainTimeout: 30000,
    maxClientsIdLength: 128,
    ...backend.aedes
  })
  broker.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'))
  broker.on('connectionError', (_client, err) => log.debug({ err: err.message }, 'connection error'))
  refuseEmptyIdWithSession(broker, log)
  if (settings.redis !== null) refuseWhileUnavailable(broker, backend.available, log)
  limitPacketSize(broker, settings.maxPacketBytes)
  const door = installSchedulerDoor(broker, {
    engine,
    topics: new Topics(settings.topicPrefix),
    logger: log.child({ module: 'mqtt' }),
    maxMessageBytes: settings.maxMessageBytes
  })
  await door.publishAllStates()
  const metrics = createMetrics({ engine, broker })
  // after every plugin that chains authorizeForward (auth), so refused messages are not counted
  const sys = installSys(broker, {
    engine,
    intervalS: settings.sysIntervalS,
    version: version(),
    logger: log.child({ module: 'sys' }),
    node: settings.redis !== null ? broker.id : null
  })

  const handle = (stream: Parameters<Aedes['handle']>[0], req?: Parameters<Aedes['handle']>[1]): void => {
    // the TCP socket under the connection: the stream itself, or the WebSocket's request socket
    const socket = (req?.socket ?? stream) as unknown as Parameters<Sys['track']>[0]
    if (typeof socket.bytesRead === 'number') sys.track(socket)
    broker.handle(stream, req)
  }
  const servers: Array<NetServer | HttpServer> = []
  const ports: Ports = { mqtt: 0, tls: 0, ws: 0, http: 0 }
  const host = settings.host
  let gateway: Gateway | null = null
  try {
    if (settings.mqttPort !== 0) {
      const s = createNetServer(handle)
      servers.push(s)
      ports.mqtt = await listen(s, settings.mqttPort, host)
    }
    const tlsPort = tlsPortOf(settings)
    if (tlsPort !== 0 && settings.tlsCert !== null && settings.tlsKey !== null) {
      const s = createTlsServer(readTlsFiles(settings.tlsCert, settings.tlsKey), handle)
      servers.push(s)
      ports.tls = await listen(s, tlsPort, host)
    }
    if (settings.wsPort !== 0) {
      const s = createHttpServer((_req, res) => { res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n') })
      websocketStream.createServer({ server: s, perMessageDeflate: false, maxPayload: settings.maxPacketBytes + 8 }, handle)
      servers.push(s)
      ports.ws = await listen(s, settings.wsPort, host)
    }
    if (settings.httpPort !== 0) {
      gateway = await startGateway({ engine, host, port: settings.httpPort, logger: log.child({ module: 'http' }), metrics })
      ports.http = gateway.port
    }
  } catch (err) {
    for (const s of servers) s.close()
    await gateway?.close()
    sys.close()
    metrics.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
    await engine.stop()
    await backend.close()
    if (err instanceof ConfigError) throw err
    throw new ConfigError(`cannot listen: ${(err as Error).message}`)
  }

  let closing: Promise<void> | null = null
  const close = async (): Promise<void> => {
    closing ??= (async () => {
      const stopped = servers.map(closeServer) // stop accepting; open connections close below
      await gateway?.close() // pending long-polls are answered 503 before the store goes
      door.drain()
      sys.close()
      await new Promise<void>((resolve) => broker.close(() => resolve()))
      await Promise.all(stopped)
      metrics.close()
      await engine.stop()
      await backend.close()
    })()
    await closing
  }

  const stop = async (graceMs = settings.stopGraceMs): Promise<void> => {
    const active = engine.activeGroups()
    if (settings.redis !== null) {
      if (active.length > 0) log.info({ groups: active }, 'stopping: the other processes of the cluster carry the executing rounds')
    } else if (active.length > 0 && graceMs > 0) {
      engine.quiesce()
      log.info({ groups: active, graceMs }, 'stopping: no new rounds; waiting for the executing rounds to end')
      if (await roundsEnded(engine, graceMs)) log.info('the executing rounds ended')
      else log.warn({ groups: engine.activeGroups(), graceMs }, 'stopping with rounds still executing: they go on after the next start')
    }
    await close()
  }

  if (settings.sysIntervalS > 0) {
    sys.publishNow().catch((err) => log.warn({ err }, '$SYS topics not published at start'))
  }
  log.info({ host, ...ports, store: settings.redis !== null ? 'redis' : 'memory' }, 'roundgate ready')
  return { settings, broker, engine, door, metrics, sys, gateway, ports, close, stop }
}

/** Resolves true once no group of this process is EXECUTING, false after `ms`. */
async function roundsEnded (engine: Engine, ms: number): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const check = (): void => {
      if (engine.activeGroups().length > 0) return
      finish(true)
    }
    const timer = setTimeout(() => finish(false), ms)
    const finish = (ended: boolean): void => {
      clearTimeout(timer)
      engine.off('roundEnd', check)
      engine.off('deleted', check)
      resolve(ended)
    }
    engine.on('roundEnd', check)
    engine.on('deleted', check)
    check()
  })
}
