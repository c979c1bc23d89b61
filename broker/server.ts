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
import { installAlerts, type Alerts } from '../plugins/alerts/index.js'
import { createMetrics, type Metrics } from '../plugins/metrics/index.js'
import {
  type Bus, Engine, installSchedulerDoor, LocalBus, MemoryStore, type MqttDoor, type Store, Topics
} from '../plugins/scheduler/index.js'
import { clusterParts } from './cluster.js'
import { ConfigError, tlsPortOf, type Settings } from './config.js'
import { isRgError } from '../plugins/errors.js'
import { limitPacketSize, refuseEmptyIdWithSession, refuseWhileUnavailable } from '../plugins/mqtt-guards.js'

export interface Ports { mqtt: number, tls: number, ws: number, http: number }

export interface RunningServer {
  settings: Settings
  broker: Aedes
  engine: Engine
  door: MqttDoor
  metrics: Metrics
  alerts: Alerts
  gateway: Gateway | null
  ports: Ports
  close: () => Promise<void>
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
    maxTerminalsPerGroup: settings.maxTerminalsPerGroup,
    maxQueuedJobs: settings.maxQueuedJobs
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
  const alerts = installAlerts({ engine, rules: settings.alerts, logger: log.child({ module: 'alerts' }), observer: metrics })

  const handle = (stream: Parameters<Aedes['handle']>[0], req?: Parameters<Aedes['handle']>[1]): void => { broker.handle(stream, req) }
  const servers: Array<NetServer | HttpServer> = []
  const ports: Ports = { mqtt: 0, tls: 0, ws: 0, http: 0 }
  const host = settings.host
  let gateway: Gateway | null = null
  try {
    // TCP_NODELAY: the broker often writes two small packets in a row to one client (a ctl/result
    // or an error, then the PUBACK of what caused it); with Nagle the second waits for the
    // client's delayed ACK, ~40 ms per exchange
    if (settings.mqttPort !== 0) {
      const s = createNetServer({ noDelay: true }, handle)
      servers.push(s)
      ports.mqtt = await listen(s, settings.mqttPort, host)
    }
    const tlsPort = tlsPortOf(settings)
    if (tlsPort !== 0 && settings.tlsCert !== null && settings.tlsKey !== null) {
      const s = createTlsServer({ ...readTlsFiles(settings.tlsCert, settings.tlsKey), noDelay: true }, handle)
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
    await alerts.close()
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
      await new Promise<void>((resolve) => broker.close(() => resolve()))
      await Promise.all(stopped)
      await alerts.close()
      metrics.close()
      await engine.stop()
      await backend.close()
    })()
    await closing
  }

  log.info({ host, ...ports, store: settings.redis !== null ? 'redis' : 'memory' }, 'roundgate ready')
  return { settings, broker, engine, door, metrics, alerts, gateway, ports, close }
}
