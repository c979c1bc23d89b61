// The rival of roundgate's HTTP door: a minimal long-poll server on node:http, what one would
// write by hand without roundgate. N clients park a GET; the ready that brings the count to
// `need` answers every parked GET with a small JSON body (the shape of a PROTOCOL 1.1 release,
// built per client: a count, not a list). No rules, no store, no timer wheel: one Map of parked
// responses and one timer per poll. It speaks the same paths as roundgate so the benchmark's
// clients drive both the same way:
//   POST /v1/groups/{g}/ready {clientId}          200 {phase, round}; the need-th ready releases
//   GET  /v1/groups/{g}/release?clientId&after&wait  parks; 200 the release, 204 after `wait` s
//   POST /v1/groups/{g}/done {clientId, round}    200 {duplicate: false}
//   GET  /status                                   {round, ready, pending}
//
//   node dist/bench/rivals/http-longpoll.js PORT NEED   (loopback only)
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'

interface Parked { timer: NodeJS.Timeout, clientId: string }

export interface Rival {
  server: Server
  status: () => { round: number, ready: number, pending: number }
}

const MAX_BODY = 4096

export function createLongPollRival (need: number): Rival {
  let round = 0
  let released: { group: string, releasedAt: number, count: number } | null = null
  const ready = new Set<string>()
  const parked = new Map<ServerResponse, Parked>()

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    const text = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
    res.end(text)
  }

  const releaseOf = (group: string, index: number): unknown => {
    const r = released as { releasedAt: number, count: number }
    return {
      group, round, attempt: 1, job: null, releasedAt: r.releasedAt, startAt: r.releasedAt, deadline: r.releasedAt + 600000,
      serverTime: Date.now(), participants: r.count, bosses: [], payload: null, role: 'small', shard: { index, count: r.count }
    }
  }

  const release = (group: string): void => {
    round++
    released = { group, releasedAt: Date.now(), count: ready.size }
    ready.clear()
    let index = 0
    for (const [res, p] of parked) {
      clearTimeout(p.timer)
      json(res, 200, releaseOf(group, index++))
    }
    parked.clear()
  }

  const readBody = (req: IncomingMessage, done: (body: any) => void, fail: (status: number) => void): void => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => { size += c.length; if (size <= MAX_BODY) chunks.push(c) })
    req.on('end', () => {
      if (size > MAX_BODY) { fail(413); return }
      try { done(JSON.parse(Buffer.concat(chunks).toString('utf8'))) } catch { fail(400) }
    })
  }

  const server = createServer((req, res) => {
    const [path, query = ''] = (req.url ?? '/').split('?', 2)
    const parts = path.split('/') // ['', 'v1', 'groups', g, action]
    const group = parts[3] ?? ''
    const action = parts[1] === 'v1' && parts[2] === 'groups' && parts.length === 5 ? parts[4] : ''
    if (req.method === 'GET' && path === '/status') { json(res, 200, { round, ready: ready.size, pending: parked.size }); return }
    if (req.method === 'GET' && action === 'release') {
      const q = new URLSearchParams(query)
      const clientId = q.get('clientId') ?? ''
      const after = Number(q.get('after') ?? 0)
      const wait = Math.min(120, Math.max(0, Number(q.get('wait') ?? 30)))
      if (released !== null && round > after) { json(res, 200, releaseOf(group, 0)); return }
      const timer = setTimeout(() => {
        parked.delete(res)
        res.writeHead(204, { 'x-round': String(round) })
        res.end()
      }, wait * 1000)
      parked.set(res, { timer, clientId })
      res.on('close', () => {
        const p = parked.get(res)
        if (p !== undefined) { clearTimeout(p.timer); parked.delete(res) }
      })
      return
    }
    if (req.method === 'POST' && (action === 'ready' || action === 'done')) {
      readBody(req, (body) => {
        const clientId = typeof body?.clientId === 'string' ? body.clientId : ''
        if (clientId === '') { json(res, 400, { error: { code: 'bad_request', message: 'clientId' } }); return }
        if (action === 'done') { json(res, 200, { duplicate: false }); return }
        ready.add(clientId)
        json(res, 200, { phase: 'WAITING', round })
        if (ready.size >= need) release(group)
      }, (status) => json(res, status, { error: { code: status === 413 ? 'payload_too_large' : 'bad_request', message: 'body' } }))
      return
    }
    json(res, 404, { error: { code: 'not_found', message: path } })
  })
  // keep-alive connections stay open between rounds, as roundgate's do; a poll may last 120 s
  server.keepAliveTimeout = 0
  server.requestTimeout = 0
  return { server, status: () => ({ round, ready: ready.size, pending: parked.size }) }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2])
  const need = Number(process.argv[3])
  if (!Number.isInteger(port) || !Number.isInteger(need) || need < 1) {
    process.stderr.write('usage: node dist/bench/rivals/http-longpoll.js PORT NEED\n')
    process.exit(2)
  }
  const { server } = createLongPollRival(need)
  server.listen(port, '127.0.0.1')
  const stop = (): void => { server.closeAllConnections(); server.close(() => process.exit(0)) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
