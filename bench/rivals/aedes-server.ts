// Vanilla aedes, the same version roundgate embeds, on one loopback TCP port and nothing else:
// the comparison broker of the overhead and fan-out benchmarks. `node dist/bench/rivals/aedes-server.js PORT`
import { Aedes } from 'aedes'
import { createServer } from 'node:net'

const port = Number(process.argv[2] ?? 1883)
const broker = await Aedes.createBroker({ concurrency: 1000, drainTimeout: 30000 })
const server = createServer((conn) => { broker.handle(conn) })
server.listen(port, '127.0.0.1')
const stop = (): void => {
  server.close()
  broker.close(() => process.exit(0))
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
