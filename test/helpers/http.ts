// Test harness for the HTTP gateway: a real engine (memory store) and the real uWS listener on a
// free loopback port, with small fetch helpers.
import { pino } from 'pino'
import { startGateway, type Authorize, type Gateway, type ServerInfo } from '../../gateway/index.js'
import { createMetrics } from '../../plugins/metrics/index.js'
import { Engine, type GroupConfig, MemoryStore } from '../../plugins/scheduler/index.js'
import { waitFor } from './wait.js'

export interface TestGateway {
  engine: Engine
  gateway: Gateway
  base: string
  close: () => Promise<void>
}

export interface TestGatewayOptions {
  autoCreateGroups?: boolean
  groups?: Record<string, Partial<GroupConfig>>
  authorize?: Authorize
  isReady?: () => Promise<boolean>
  maxBodyBytes?: number
  waitTickMs?: number
  /** the built dashboard's folder (default dist/dashboard/); null serves none */
  dashboardDir?: string | null
  /** GET /v1/info */
  info?: ServerInfo
}

export async function startTestGateway (opts: TestGatewayOptions = {}): Promise<TestGateway> {
  const logger = pino({ level: 'silent' })
  const engine = new Engine({
    store: new MemoryStore(),
    logger,
    autoCreateGroups: opts.autoCreateGroups ?? true,
    groups: opts.groups,
    sweepMs: 100
  })
  await engine.start()
  const metrics = createMetrics({ engine, defaultMetrics: true })
  const gateway = await startGateway({
    engine,
    host: '127.0.0.1',
    port: 0,
    logger,
    metrics,
    authorize: opts.authorize,
    isReady: opts.isReady,
    maxBodyBytes: opts.maxBodyBytes,
    waitTickMs: opts.waitTickMs ?? 20,
    dashboardDir: opts.dashboardDir,
    info: opts.info
  })
  const base = `http://127.0.0.1:${gateway.port}`
  return {
    engine,
    gateway,
    base,
    close: async () => {
      await gateway.close()
      metrics.close()
      await engine.stop()
    }
  }
}

export interface Answer {
  status: number
  headers: Headers
  text: string
  json: any
}

async function answer (r: Response): Promise<Answer> {
  const text = await r.text()
  let json: any
  try { json = text === '' ? undefined : JSON.parse(text) } catch { json = undefined }
  return { status: r.status, headers: r.headers, text, json }
}

export async function get (base: string, path: string, init: RequestInit = {}): Promise<Answer> {
  return await answer(await fetch(base + path, init))
}

/** A request with a JSON body (anything not a string is JSON-encoded). */
export async function call (base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method, headers: { ...headers } }
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
    if (typeof body !== 'string') (init.headers as Record<string, string>)['content-type'] = 'application/json'
  }
  return await answer(await fetch(base + path, init))
}

export async function post (base: string, path: string, body?: unknown): Promise<Answer> {
  return await call(base, 'POST', path, body)
}

/** Whether `cond` comes to hold within `ms` (for `t.ok(await until(...))`). */
export async function until (cond: () => boolean, ms = 2000): Promise<boolean> {
  return await waitFor(cond, ms).then(() => true, () => false)
}
