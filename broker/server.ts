// One roundgate process: the store, the round engine, the aedes broker with its plugins, and the
// listeners (MQTT over TCP, TLS and WebSocket; the HTTP gateway). startServer resolves once every
// listener accepts connections; close() shuts it all down in order without losing state.
import { Aedes, type AedesOptions, type Client } from 'aedes'
import { createRequire } from 'node:module'
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import websocketStream from 'websocket-stream'
import { Acl, installMqttAuth, type AuthService, type MqttAuth } from '../plugins/auth/index.js'
import { ConnectionGate } from '../plugins/limits/connections.js'
import { IdleGroupSweeper } from '../plugins/limits/idle-groups.js'
import { OfflineQueueBound } from '../plugins/limits/offline-queue.js'
import { RateLimits } from '../plugins/limits/rate.js'
import { addressOf, createAuth, gatewayAuthorize, readTlsFiles } from './security.js'
import { startGateway, type Gateway } from '../gateway/index.js'
import { createMetrics, type Metrics } from '../plugins/metrics/index.js'
import {
  type Bus, Engine, installSchedulerDoor, LocalBus, MemoryStore, type MqttDoor, type Store, Topics
} from '../plugins/scheduler/index.js'
import { clusterParts } from './cluster.js'
import { ConfigError, tlsPortOf, wssPortOf, type Settings } from './config.js'
import { isRgError } from '../plugins/errors.js'
import { clientById } from '../plugins/internals.js'
import { limitPacketSize, refuseEmptyIdWithSession, refuseWhileUnavailable, refuseWildcardIds } from '../plugins/mqtt-guards.js'

// aedes's own in-memory persistence, made here so the offline-queue bound can wrap it (CommonJS)
const memoryPersistence = createRequire(import.meta.url)('aedes-persistence') as () => unknown

export interface Ports { mqtt: number, tls: number, ws: number, wss: number, http: number }

export interface RunningServer {
  settings: Settings
  broker: Aedes
  engine: Engine
  door: MqttDoor
  metrics: Metrics
  gateway: Gateway | null
  ports: Ports
  /** null when authentication is off */
  auth: AuthService | null
  mqttAuth: MqttAuth | null
  connections: ConnectionGate
  offlineQueue: OfflineQueueBound
  /** SIGHUP: read the credentials file and the TLS certificate again; connections stay */
  reload: () => Promise<void>
  close: () => Promise<void>
}

interface Backend {
  store: Store
  bus: Bus
  aedes: Partial<AedesOptions> & { persistence: unknown }
  /** cluster mode: a link to the shared Redis (rate limits, the login key, queue lengths) */
  redis?: Redis
  /** the shared state is reachable (always, in one process) */
  available: () => boolean
  close: () => Promise<void>
}

async function backendFor (settings: Settings, log: Logger): Promise<Backend> {
  // Cluster mode (--redis): a Redis store, a Redis bus, mqemitter-redis and
  // aedes-persistence-redis, all from broker/cluster.ts.
  if (settings.redis !== null) {
    const c = await clusterParts(settings.redis, log, settings)
    return { store: c.store, bus: c.bus, aedes: { mq: c.mq, persistence: c.persistence }, redis: c.redis, available: c.available, close: c.close }
  }
  const store = new MemoryStore({
    dataDir: settings.dataDir,
    historyLimit: settings.historyLimit,
    maxGroups: settings.maxGroups,
    maxTerminalsPerGroup: settings.maxTerminalsPerGroup
  })
  return { store, bus: new LocalBus(), aedes: { persistence: memoryPersistence() }, available: () => true, close: async () => {} }
}

async function listen (server: NetServer | HttpServer, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return (server.address() as AddressInfo).port
}

async function closeServer (server: NetServer | HttpServer | HttpsServer): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

export async function startServer (settings: Settings, log: Logger): Promise<RunningServer> {
  const backend = await backendFor(settings, log)
  let engine: Engine | null = null
  let auth: AuthService | null = null
  try {
    auth = await createAuth(settings, log, backend.redis)
    engine = new Engine({
      store: backend.store,
      bus: backend.bus,
      logger: log.child({ module: 'engine' }),
      // PROTOCOL section 2: on without authentication, off with it, unless the operator says
      autoCreateGroups: settings.autoCreateGroups ?? auth === null,
      groupDefaults: settings.groupDefaults,
      groups: settings.groups,
      sweepMs: settings.sweepMs,
      maxTerminals: settings.maxTerminals,
      maxMetaBytes: settings.maxMetaBytes
    })
    await engine.start()
  } catch (err) {
    await engine?.stop().catch((stopErr: unknown) => { log.error({ err: stopErr }, 'stopping the engine after a failed start failed too') })
    await backend.close()
    if (isRgError(err)) throw new ConfigError(`configuration: ${err.message}`)
    throw err
  }
  const autoCreate = settings.autoCreateGroups ?? auth === null

  const broker = await Aedes.createBroker({
    concurrency: 1000,
    drainTimeout: 30000,
    maxClientsIdLength: 128,
    connectTimeout: settings.connectTimeoutMs,
    maxInflightInbound: settings.maxInflightInbound,
    maxTopicLevels: settings.maxTopicLevels,
    ...backend.aedes
  })
  broker.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'))
  broker.on('connectionError', (_client, err) => log.debug({ err: err.message }, 'connection error'))
  refuseEmptyIdWithSession(broker, log)
  refuseWildcardIds(broker, log)
  if (settings.redis !== null) refuseWhileUnavailable(broker, backend.available, log)
  limitPacketSize(broker, settings.maxPacketBytes)
  const offlineQueue = new OfflineQueueBound(backend.aedes.persistence, {
    max: settings.maxOfflineMessages,
    connected: (id) => clientById(broker, id) !== undefined,
    redis: backend.redis,
    logger: log.child({ module: 'offline-queue' })
  })
  broker.on('clientReady', (client: Client) => offlineQueue.connected(client.id))
  const rate = new RateLimits({
    perClientPerS: settings.rateClientPerS,
    perIpPerS: settings.rateIpPerS,
    exemptLoopback: settings.exemptLoopback,
    redis: backend.redis,
    logger: log.child({ module: 'rate-limit' })
  })
  // the auth plugin is installed after the door (its hooks run first); the door asks it through these
  let mqttAuth: MqttAuth | null = null
  const door = installSchedulerDoor(broker, {
    engine,
    topics: new Topics(settings.topicPrefix),
    logger: log.child({ module: 'mqtt' }),
    maxMessageBytes: settings.maxMessageBytes,
    isAdmin: (client) => mqttAuth?.guard.isAdmin(client) ?? false,
    mayPublish: (client, packet, kind, group) => mqttAuth?.guard.mayPublish(client, packet, kind, group) ?? null,
    rateLimit: async (clientId, client) => await rate.consume(clientId, addressOf(client))
  })
  if (auth !== null) {
    mqttAuth = installMqttAuth(broker, { service: auth, acl: new Acl(settings.acl), prefix: settings.topicPrefix, logger: log.child({ module: 'auth' }) })
  }
  await door.publishAllStates()
  const metrics = createMetrics({ engine, broker })
  const idle = autoCreate && settings.idleGroupMs > 0
    ? new IdleGroupSweeper({ engine, idleMs: settings.idleGroupMs, declared: new Set(Object.keys(settings.groups)), logger: log.child({ module: 'groups' }) })
    : null

  // Every MQTT connection passes the gate (per process, per address) before aedes reads a byte.
  const connections = new ConnectionGate({ maxConnections: settings.maxConnections, maxPerIp: settings.maxConnectionsPerIp, exemptLoopback: settings.exemptLoopback })
  const handleSocket = (socket: Socket): void => {
    if (connections.admit(socket, socket.remoteAddress)) broker.handle(socket)
  }
  const handleWs = (stream: Duplex, req: IncomingMessage): void => {
    if (connections.admit(req.socket, req.socket.remoteAddress)) broker.handle(stream, req)
    else stream.destroy()
  }
  const wsServer = (s: HttpServer | HttpsServer): void => {
    websocketStream.createServer({ server: s, perMessageDeflate: false, maxPayload: settings.maxPacketBytes + 8 }, handleWs)
  }
  const upgradeOnly = (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n')
  }
  const servers: Array<NetServer | HttpServer | HttpsServer> = []
  const secure: Array<TlsServer | HttpsServer> = []
  const ports: Ports = { mqtt: 0, tls: 0, ws: 0, wss: 0, http: 0 }
  const host = settings.host
  let gateway: Gateway | null = null
  try {
    if (settings.mqttPort !== 0) {
      const s = createNetServer(handleSocket)
      servers.push(s)
      ports.mqtt = await listen(s, settings.mqttPort, host)
    }
    const tlsPort = tlsPortOf(settings)
    const wssPort = wssPortOf(settings)
    const material = settings.tlsCert !== null && settings.tlsKey !== null ? readTlsFiles(settings.tlsCert, settings.tlsKey) : null
    if (tlsPort !== 0 && material !== null) {
      const s = createTlsServer(material, handleSocket)
      servers.push(s)
      secure.push(s)
      ports.tls = await listen(s, tlsPort, host)
    }
    if (settings.wsPort !== 0) {
      const s = createHttpServer(upgradeOnly)
      wsServer(s)
      servers.push(s)
      ports.ws = await listen(s, settings.wsPort, host)
    }
    if (wssPort !== 0 && material !== null) {
      const s = createHttpsServer(material, upgradeOnly)
      wsServer(s)
      servers.push(s)
      secure.push(s)
      ports.wss = await listen(s, wssPort, host)
    }
    if (settings.httpPort !== 0) {
      gateway = await startGateway({
        engine,
        host,
        port: settings.httpPort,
        logger: log.child({ module: 'http' }),
        metrics,
        authorize: auth !== null ? gatewayAuthorize(auth) : undefined,
        login: auth?.usesPasswd === true ? async (u, p) => await auth.login(u, p) : undefined,
        rateLimit: async (address, clientId) => await rate.consume(clientId, address),
        trustedProxies: settings.trustedProxies,
        maxPollsPerIp: settings.maxPollsPerIp,
        maxPollsPerClient: settings.maxPollsPerClient,
        exemptLoopback: settings.exemptLoopback
      })
      ports.http = gateway.port
    }
  } catch (err) {
    for (const s of servers) s.close()
    idle?.close()
    await gateway?.close()
    metrics.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
    await engine.stop()
    await backend.close()
    if (err instanceof ConfigError) throw err
    throw new ConfigError(`cannot listen: ${(err as Error).message}`)
  }

  // SIGHUP: each part is read again on its own; one that fails keeps what was in force, says why
  const reload = async (): Promise<void> => {
    if (settings.tlsCert !== null && settings.tlsKey !== null && secure.length > 0) {
      try {
        const m = readTlsFiles(settings.tlsCert, settings.tlsKey)
        for (const s of secure) s.setSecureContext(m)
        log.info({ cert: settings.tlsCert }, 'TLS certificate reloaded')
      } catch (err) {
        log.error({ err: (err as Error).message }, 'TLS certificate not reloaded; the one in force stays')
      }
    }
    if (auth !== null && auth.usesPasswd) {
      try {
        await auth.reload()
        const closed = mqttAuth?.recheck() ?? 0
        if (closed > 0) log.info({ closed }, 'connections whose credentials were withdrawn were closed')
      } catch (err) {
        log.error({ err: (err as Error).message }, 'credentials file not reloaded; the users in force stay')
      }
    }
  }

  let closing: Promise<void> | null = null
  const close = async (): Promise<void> => {
    closing ??= (async () => {
      const stopped = servers.map(closeServer) // stop accepting; open connections close below
      idle?.close()
      await gateway?.close() // pending long-polls are answered 503 before the store goes
      door.drain()
      await new Promise<void>((resolve) => broker.close(() => resolve()))
      await Promise.all(stopped)
      metrics.close()
      await engine.stop()
      await backend.close()
    })()
    await closing
  }

  log.info({ host, ...ports, store: settings.redis !== null ? 'redis' : 'memory', auth: auth !== null, autoCreateGroups: autoCreate }, 'roundgate ready')
  return { settings, broker, engine, door, metrics, gateway, ports, auth, mqttAuth, connections, offlineQueue, reload, close }
}
