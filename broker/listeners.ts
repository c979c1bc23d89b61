// The MQTT listeners of one process: TCP, TLS, WebSocket and secure WebSocket. Every connection
// passes the connection gate (per process, per address) before aedes reads a byte, and its socket
// is counted for $SYS. TLS listeners take a new certificate on reload (SIGHUP) without dropping
// a connection.
import type { Aedes } from 'aedes'
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import type { Logger } from 'pino'
import { createWebSocketStream, WebSocketServer } from 'ws'
import { ConfigError, tlsPortOf, wssPortOf } from './config.js'
import type { Settings } from './settings.js'
import { readTlsFiles } from './security.js'

export interface MqttPorts { mqtt: number, tls: number, ws: number, wss: number }

export interface ListenerOptions {
  settings: Settings
  broker: Aedes
  logger: Logger
  /** may this socket connect (the connection gate)? */
  admit: (socket: Socket, address: string | undefined) => boolean
  /** count this connection's bytes ($SYS) */
  track: (socket: Socket) => void
}

export interface MqttListeners {
  ports: MqttPorts
  /** Read the TLS certificate and key again; the listeners use them for new connections. */
  reloadTls: () => void
  /** Stop accepting; resolves when every listener has closed (connections close with aedes). */
  close: () => Promise<void>
}

async function listen (server: NetServer | HttpServer, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return (server.address() as AddressInfo).port
}

const upgradeOnly = (_req: IncomingMessage, res: ServerResponse): void => {
  res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n')
}

/**
 * MQTT over WebSocket on `ws` 8 (as aedes's own docs do): every connection becomes a byte stream
 * for aedes. One MQTT packet may span several WebSocket messages and one message may hold several
 * packets; aedes parses the stream either way. `maxPayload` bounds one WebSocket message (the MQTT
 * packet limit itself is enforced on the parsed packet, plugins/mqtt-guards.ts).
 */
function mqttOverWebSocket (server: HttpServer | HttpsServer, maxPacketBytes: number, handle: (stream: Duplex, req: IncomingMessage) => void, log: Logger): WebSocketServer {
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

export async function openMqttListeners (o: ListenerOptions): Promise<MqttListeners> {
  const { settings, broker, logger: log } = o
  const host = settings.host
  const handleSocket = (socket: Socket): void => {
    if (!o.admit(socket, socket.remoteAddress)) return
    o.track(socket)
    broker.handle(socket)
  }
  const handleWs = (stream: Duplex, req: IncomingMessage): void => {
    if (!o.admit(req.socket, req.socket.remoteAddress)) { stream.destroy(); return }
    o.track(req.socket)
    broker.handle(stream, req)
  }
  const servers: Array<NetServer | HttpServer | HttpsServer> = []
  const secure: Array<TlsServer | HttpsServer> = []
  const sockets: WebSocketServer[] = []
  const ports: MqttPorts = { mqtt: 0, tls: 0, ws: 0, wss: 0 }
  const closeAll = async (): Promise<void> => {
    for (const w of sockets) w.close()
    await Promise.all(servers.map(async (s) => await new Promise<void>((resolve) => s.close(() => resolve()))))
  }
  try {
    if (settings.mqttPort !== 0) {
      // Nagle stays on, as in aedes and Mosquitto: plain pub/sub coalesces small writes (listener-
      // wide TCP_NODELAY cost it 15-20 %, `npm run bench -- overhead`). The scheduler turns it off
      // on a socket it answers or releases to (plugins/scheduler/mqtt), where a second small write
      // would otherwise wait for the client's delayed ACK, ~40 ms per exchange.
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
      sockets.push(mqttOverWebSocket(s, settings.maxPacketBytes, handleWs, log))
      servers.push(s)
      ports.ws = await listen(s, settings.wsPort, host)
    }
    if (wssPort !== 0 && material !== null) {
      const s = createHttpsServer(material, upgradeOnly)
      sockets.push(mqttOverWebSocket(s, settings.maxPacketBytes, handleWs, log))
      servers.push(s)
      secure.push(s)
      ports.wss = await listen(s, wssPort, host)
    }
  } catch (err) {
    for (const s of servers) s.close()
    for (const w of sockets) w.close()
    if (err instanceof ConfigError) throw err
    throw new ConfigError(`cannot listen: ${(err as Error).message}`)
  }

  return {
    ports,
    reloadTls () {
      if (settings.tlsCert === null || settings.tlsKey === null || secure.length === 0) return
      try {
        const m = readTlsFiles(settings.tlsCert, settings.tlsKey)
        for (const s of secure) s.setSecureContext(m)
        log.info({ cert: settings.tlsCert }, 'TLS certificate reloaded')
      } catch (err) {
        log.error({ err: (err as Error).message }, 'TLS certificate not reloaded; the one in force stays')
      }
    },
    close: closeAll
  }
}
