// One roundgate process: the store, the round engine, the aedes broker with its plugins (guards,
// limits, the scheduler's MQTT door, auth, $SYS), and the listeners (MQTT over TCP, TLS, WebSocket
// and secure WebSocket; the HTTP gateway). startServer resolves once every listener accepts
// connections; close() shuts it all down in order without losing state; stop() is SIGTERM's
// graceful version; reload() is SIGHUP's.
import { Aedes, type Client } from 'aedes'
import type { Logger } from 'pino'
import { startGateway, type Gateway } from '../gateway/index.js'
import { installAlerts, type Alerts } from '../plugins/alerts/index.js'
import { Acl, httpAuthorizer, installMqttAuth, type AuthService, type MqttAuth } from '../plugins/auth/index.js'
import { isRgError } from '../plugins/errors.js'
import { clientById, limitPacketLength } from '../plugins/internals.js'
import { ConnectionGate } from '../plugins/limits/connections.js'
import { IdleGroupSweeper } from '../plugins/limits/idle-groups.js'
import { OfflineQueueBound } from '../plugins/limits/offline-queue.js'
import { RateLimits } from '../plugins/limits/rate.js'
import { createMetrics, type Metrics } from '../plugins/metrics/index.js'
import { refuseEmptyIdWithSession, refuseWhileUnavailable, refuseWildcardIds } from '../plugins/mqtt-guards.js'
import { Engine, installSchedulerDoor, Topics, type MqttDoor } from '../plugins/scheduler/index.js'
import { installSys, type Sys } from '../plugins/sys/index.js'
import { backendFor } from './backend.js'
import { ConfigError } from './config.js'
import type { Settings } from './settings.js'
import { openMqttListeners, type MqttPorts } from './listeners.js'
import { addressOf, createAuth } from './security.js'
import { version } from './version.js'

export interface Ports extends MqttPorts { http: number }

export interface RunningServer {
  settings: Settings
  broker: Aedes
  engine: Engine
  door: MqttDoor
  metrics: Metrics
  alerts: Alerts
  sys: Sys
  gateway: Gateway | null
  ports: Ports
  /** null when authentication is off */
  auth: AuthService | null
  mqttAuth: MqttAuth | null
  connections: ConnectionGate
  offlineQueue: OfflineQueueBound
  /** SIGHUP: read the credentials file and the TLS certificate again; connections stay */
  reload: () => Promise<void>
  /** Shut down in order without losing state; at once, whatever executes. */
  close: () => Promise<void>
  /**
   * The graceful stop of SIGTERM. One process waits up to `graceMs` (stopGraceMs) for its
   * executing rounds to end, releasing no new round meanwhile, then closes; in cluster mode it
   * closes at once and the other processes carry the rounds (they are in Redis).
   */
  stop: (graceMs?: number) => Promise<void>
}

export async function startServer (settings: Settings, log: Logger): Promise<RunningServer> {
  const backend = await backendFor(settings, log)
  let engine: Engine | null = null
  let auth: AuthService | null = null
  let autoCreate: boolean
  try {
    auth = await createAuth(settings, log, backend.redis)
    // PROTOCOL section 2: on without authentication, off with it, unless the operator says
    autoCreate = settings.autoCreateGroups ?? auth === null
    engine = new Engine({
      store: backend.store,
      bus: backend.bus,
      logger: log.child({ module: 'engine' }),
      autoCreateGroups: autoCreate,
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
  limitPacketLength(broker, settings.maxPacketBytes)
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
  const metrics = createMetrics({ engine, broker })
  // the auth plugin is installed after the door (its hooks run first); the door asks it through these
  let mqttAuth: MqttAuth | null = null
  let sys: Sys | null = null
  const door = installSchedulerDoor(broker, {
    engine,
    topics: new Topics(settings.topicPrefix),
    logger: log.child({ module: 'mqtt' }),
    maxMessageBytes: settings.maxMessageBytes,
    isAdmin: (client) => mqttAuth?.guard.isAdmin(client) ?? false,
    mayPublish: (client, packet, kind, group) => mqttAuth?.guard.mayPublish(client, packet, kind, group) ?? null,
    rateLimit: async (clientId, client) => await rate.consume(clientId, addressOf(client)),
    // the door's refusals and fan-outs: to the metrics, and the releases written to $SYS's counts
    observer: {
      refused: (code, door) => metrics.refused(code, door),
      fanout: (door, group, round, seconds, delivered) => {
        metrics.fanout(door, group, round, seconds, delivered)
        sys?.releasesSent(delivered)
      }
    }
  })
  if (auth !== null) {
    mqttAuth = installMqttAuth(broker, { service: auth, acl: new Acl(settings.acl), prefix: settings.topicPrefix, logger: log.child({ module: 'auth' }) })
  }
  await door.publishAllStates()
  // after every plugin that chains authorizeForward (auth), so refused messages are not counted
  const readers = mqttAuth
  sys = installSys(broker, {
    engine,
    // with authentication on, $SYS/roundgate is for viewers and admins (PROTOCOL section 7)
    canRead: readers === null ? undefined : (client) => { const role = readers.identity(client)?.role; return role === 'viewer' || role === 'admin' },
    intervalS: settings.sysIntervalS,
    version: version(),
    logger: log.child({ module: 'sys' }),
    node: settings.redis !== null ? broker.id : null
  })
  const alerts = installAlerts({ engine, rules: settings.alerts, logger: log.child({ module: 'alerts' }), observer: metrics })
  const idle = autoCreate && settings.idleGroupMs > 0
    ? new IdleGroupSweeper({ engine, idleMs: settings.idleGroupMs, declared: new Set(Object.keys(settings.groups)), logger: log.child({ module: 'groups' }) })
    : null

  // Every MQTT connection passes the gate (per process, per address) before aedes reads a byte.
  const connections = new ConnectionGate({ maxConnections: settings.maxConnections, maxPerIp: settings.maxConnectionsPerIp, exemptLoopback: settings.exemptLoopback })
  const counted = sys
  let gateway: Gateway | null = null
  let listeners: Awaited<ReturnType<typeof openMqttListeners>> | null = null
  const ports: Ports = { mqtt: 0, tls: 0, ws: 0, wss: 0, http: 0 }
  try {
    listeners = await openMqttListeners({
      settings,
      broker,
      logger: log,
      admit: (socket, address) => connections.admit(socket, address),
      track: (socket) => counted.track(socket)
    })
    Object.assign(ports, listeners.ports)
    if (settings.httpPort !== 0) {
      gateway = await startGateway({
        engine,
        host: settings.host,
        port: settings.httpPort,
        logger: log.child({ module: 'http' }),
        metrics,
        authorize: auth !== null ? httpAuthorizer(auth) : undefined,
        login: auth?.usesPasswd === true ? async (u, p) => await auth.login(u, p) : undefined,
        rateLimit: async (address, clientId) => await rate.consume(clientId, address),
        trustedProxies: settings.trustedProxies,
        maxPollsPerIp: settings.maxPollsPerIp,
        maxPollsPerClient: settings.maxPollsPerClient,
        exemptLoopback: settings.exemptLoopback,
        info: { version: version(), wsPort: ports.ws, topicPrefix: settings.topicPrefix, auth: auth !== null }
      })
      ports.http = gateway.port
    }
  } catch (err) {
    const closing = listeners?.close()
    idle?.close()
    await gateway?.close()
    await alerts.close()
    sys.close()
    metrics.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
    await closing
    await engine.stop()
    await backend.close()
    if (err instanceof ConfigError) throw err
    throw new ConfigError(`cannot listen: ${(err as Error).message}`)
  }
  const mqtt = listeners

  // SIGHUP: each part is read again on its own; one that fails keeps what was in force, says why
  const reload = async (): Promise<void> => {
    mqtt.reloadTls()
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
      const stopped = mqtt.close() // stop accepting; open connections close with the broker below
      idle?.close()
      await gateway?.close() // pending long-polls are answered 503 before the store goes
      door.drain()
      counted.close()
      await new Promise<void>((resolve) => broker.close(() => resolve()))
      await stopped
      await alerts.close()
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
    counted.publishNow().catch((err: unknown) => log.warn({ err }, '$SYS topics not published at start'))
  }
  log.info({ host: settings.host, ...ports, store: settings.redis !== null ? 'redis' : settings.dataDir !== null ? 'sqlite' : 'memory', auth: auth !== null, autoCreateGroups: autoCreate }, 'roundgate ready')
  return { settings, broker, engine, door, metrics, alerts, sys: counted, gateway, ports, auth, mqttAuth, connections, offlineQueue, reload, close, stop }
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
