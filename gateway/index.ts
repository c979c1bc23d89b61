// The HTTP door: a uWebSockets.js app serving PROTOCOL section 5 — terminal calls and the release
// long-poll, viewer and admin REST, /healthz, /readyz, /metrics. It calls the same engine as the
// MQTT door; HTTP long-poll waiters are woken by the same `release` event as MQTT participants.
import uWS from 'uWebSockets.js'
import type { Logger } from 'pino'
import type { Engine } from '../plugins/scheduler/index.js'
import type { Metrics } from '../plugins/metrics/index.js'
import { closeApp } from '../plugins/internals.js'
import { DEFAULT_MAX_BODY_BYTES } from './body.js'
import { LongPolls } from './longpoll.js'
import { Router, type Authorize } from './router.js'
import { adminRoutes } from './routes-admin.js'
import { infoRoutes, type ServerInfo } from './routes-info.js'
import { jobRoutes } from './routes-jobs.js'
import { terminalRoutes } from './routes-terminal.js'
import { opsRoutes, viewRoutes } from './routes-view.js'
import { DEFAULT_DASHBOARD_DIR, staticRoutes } from './static.js'

export type { Authorize, AuthRequest, Who } from './router.js'
export type { ServerInfo } from './routes-info.js'

export interface GatewayOptions {
  engine: Engine
  host: string
  /** 0 picks a free port; the bound one is returned */
  port: number
  logger: Logger
  metrics?: Metrics
  /** /readyz: the state store is reachable (default: engine.store.ping()) */
  isReady?: () => Promise<boolean>
  /** the authorization hook; every request passes through it (default: allow everything) */
  authorize?: Authorize
  /** request body cap in bytes (default 64 KiB) */
  maxBodyBytes?: number
  /** resolution of long-poll `wait` expiry in ms (default 100) */
  waitTickMs?: number
  /** GET /v1/info (default: version "unknown", no WebSocket port, prefix "rg", auth off) */
  info?: ServerInfo
  /** the built dashboard's folder (default dist/dashboard/); null serves no dashboard */
  dashboardDir?: string | null
}

export interface Gateway {
  port: number
  /** 'native' when the µWS binary loaded, 'fallback' when the package's JavaScript stand-in runs */
  uws: 'native' | 'fallback'
  /** release long-polls pending now */
  waiters (): number
  /** Stop listening, answer pending long-polls 503, close every connection. */
  close (): Promise<void>
}

/**
 * Which µWS is running: the package silently falls back to a slow JavaScript implementation when
 * its binary does not load (wrong glibc, Node ABI, platform). The binary's functions are native.
 */
export function uwsKind (): 'native' | 'fallback' {
  return /\{\s*\[native code\]\s*\}\s*$/.test(Function.prototype.toString.call(uWS.App)) ? 'native' : 'fallback'
}

export async function startGateway (opts: GatewayOptions): Promise<Gateway> {
  const { engine, logger: log, metrics } = opts
  const kind = uwsKind()
  if (kind === 'native') log.info('uws: native')
  else log.warn('uws: fallback (the µWS binary did not load; HTTP runs on the slow JavaScript implementation)')

  const polls = new LongPolls({ engine, logger: log, tickMs: opts.waitTickMs, observer: metrics })
  const dropPending = metrics?.addPendingSource(() => polls.size)
  const router = new Router({
    logger: log,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    authorize: opts.authorize,
    observe: (route, method, status, code) => {
      metrics?.observeHttp(route, method, status)
      if (code !== undefined) metrics?.refused(code, 'http')
    }
  })
  router.add(terminalRoutes(engine, polls))
  router.add(viewRoutes(engine, metrics))
  router.add(adminRoutes(engine))
  router.add(jobRoutes(engine))
  router.add(opsRoutes(engine, opts.isReady ?? (async () => await engine.store.ping()), metrics))
  const info = opts.info ?? { version: 'unknown', wsPort: 0, topicPrefix: 'rg', auth: false }
  router.add(infoRoutes(info))
  if (opts.dashboardDir !== null) {
    router.add(staticRoutes({ dir: opts.dashboardDir ?? DEFAULT_DASHBOARD_DIR, wsPort: info.wsPort, logger: log }))
  }

  const app = uWS.App()
  app.any('/*', (res, req) => router.handle(res, req))

  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(opts.host, opts.port, (ls) => {
      if (ls === false) reject(new Error(`HTTP gateway could not listen on ${opts.host}:${opts.port}`))
      else resolve(ls)
    })
  })
  const port = uWS.us_socket_local_port(listenSocket)
  log.info({ host: opts.host, port }, 'HTTP gateway listening')

  let closed = false
  return {
    port,
    uws: kind,
    waiters: () => polls.size,
    async close () {
      if (closed) return
      closed = true
      uWS.us_listen_socket_close(listenSocket)
      polls.close()
      dropPending?.()
      // let the answers just corked reach their sockets before every connection is closed
      await new Promise((resolve) => setImmediate(resolve))
      closeApp(app)
    }
  }
}
