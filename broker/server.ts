// One roundgate process: the store, the round engine, the aedes broker with its plugins, and the
// listeners (MQTT over TCP, TLS and WebSocket; the HTTP gateway). startServer resolves once every
// listener accepts connections; close() shuts it all down in order without losing state.
import { Aedes, type AedesOptions } from 'aedes'
import { readFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import type { Logger } from 'pino'
import { createWebSocketStream, WebSocketServer } from 'ws'
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

/** The package's version, for GET /v1/info (dist/broker/server.js → package.json). */
function packageVersion (): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown }
    return typeof pkg.version === 'string' ? pkg.version : 'unknown'
  } catch {
    return 'unknown'
  }
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

/**
 * MQTT over WebSocket on `ws` 8 (as aedes's own docs do): every connection becomes a byte stream
 * for aedes. One MQTT packet may span several WebSocket messages and one message may hold several
 * packets; aedes parses the stream either way. `maxPayload` bounds one WebSocket message (the MQTT
 * packet limit itself is enforced on the parsed packet, plugins/mqtt-guards.ts).
 */
function mqttOverWebSocket (
  server: HttpServer, maxPacketBytes: number,
  handle: (stream: Parameters<Aedes['handle']>[0], req?: Parameters<Aedes['handle']>[1]) => void, log: Logger
): WebSocketServer {
  const wss = new WebSocketServer({
    server,
    perMessageDeflate: false,
    maxPayload: maxPacketBytes + 8,
    // MQTT clients ask for the `mqtt` subprotocol (MQTT 3.1.1 section 6); answer it when asked
    handleProtocols: (protocols) => protocols.has('mqtt') ? 'mqtt' : (protocols.has('mqttv3.1') ? 'mqttv3.1' : false)
  })
  wss.on('connection', (socket, req) => {
    const stream = createWebSocketStream(socket)
    // a broken socket ends its stream; aedes sees the close. Logged at debug like other client errors.
    stream.on('error', (err) => log.debug({ err: err.message }, 'websocket stream error'))
    handle(stream, req)
  })
  wss.on('error', (err) => log.error({ err }, 'MQTT over WebSocket server error'))
  return wss
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
  const metrics = createMetrics({ engine, broker })
  let sys: Sys | null = null
  const door = installSchedulerDoor(broker, {
    engine,
    topics: new Topics(settings.topicPrefix),
    logger: log.child({ module: 'mqtt' }),
    maxMessageBytes: settings.maxMessageBytes,
    // the door's refusals and fan-outs: to the metrics, and the releases written to $SYS's counts
    observer: {
      refused: (code, door) => metrics.refused(code, door),
      fanout: (door, group, round, seconds, delivered) => {
        metrics.fanout(door, group, round, seconds, delivered)
        sys?.releasesSent(delivered)
      }
    }
  })
  await door.publishAllStates()
  // after every plugin that chains authorizeForward (auth), so refused messages are not counted
  sys = installSys(broker, {
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
  let wss: WebSocketServer | null = null
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
      wss = mqttOverWebSocket(s, settings.maxPacketBytes, handle, log)
      servers.push(s)
      ports.ws = await listen(s, settings.wsPort, host)
    }
    if (settings.httpPort !== 0) {
      gateway = await startGateway({
        engine,
        host,
        port: settings.httpPort,
        logger: log.child({ module: 'http' }),
        metrics,
        // authentication is not part of this build yet: every client may do what an admin may
        info: { version: packageVersion(), wsPort: ports.ws, topicPrefix: settings.topicPrefix, auth: false }
      })
      ports.http = gateway.port
    }
  } catch (err) {
    for (const s of servers) s.close()
    wss?.close()
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
      wss?.close()
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
