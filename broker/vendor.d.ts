// Types for dependencies that ship none.
declare module 'websocket-stream' {
  import type { Server as HttpServer, IncomingMessage } from 'node:http'
  import type { Duplex } from 'node:stream'
  interface ServerOptions { server: HttpServer, perMessageDeflate?: boolean, maxPayload?: number }
  const websocketStream: {
    createServer: (opts: ServerOptions, onStream: (stream: Duplex, req: IncomingMessage) => void) => unknown
  }
  export default websocketStream
}

// aedes-persistence-redis ships no types; aedes only needs the object it returns.
declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis'
  const aedesPersistenceRedis: (opts: { conn: Redis, maxSessionDelivery?: number }) => {
    destroy: (cb?: () => void) => unknown
  }
  export default aedesPersistenceRedis
}

