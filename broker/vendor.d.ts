// Types for dependencies that ship none.

// aedes-persistence-redis: aedes only needs the object it returns.
declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis'
  const aedesPersistenceRedis: (opts: { conn: Redis, maxSessionDelivery?: number }) => {
    destroy: (cb?: () => void) => unknown
  }
  export default aedesPersistenceRedis
}
