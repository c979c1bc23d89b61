// The dashboard's static files (built by `npm run build` into dist/dashboard/ with esbuild): read
// once at start, served from memory with their content type, cache headers and a strict
// Content-Security-Policy. Only the files the build wrote are routes; any other path stays the
// router's 404 JSON. Nothing here reads the file system per request.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { RgError } from '../plugins/errors.js'
import type { RouteDef } from './router.js'

/** Where the build writes the dashboard: dist/dashboard/, beside this module's dist/gateway/. */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../dashboard/', import.meta.url))

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8'
}

/** esbuild's `[name]-[hash]` names: content-addressed, so cacheable for ever */
const HASHED = /-[A-Z0-9]{8}\.[a-z]+(\.map)?$/
/** a dashboard file is small; anything bigger in that folder is not ours */
const MAX_FILE_BYTES = 8 * 1024 * 1024

export interface StaticOptions {
  /** the folder holding index.html and its assets */
  dir: string
  /** the MQTT-over-WebSocket port the page connects to (0: none), allowed by connect-src */
  wsPort: number
  logger: Logger
}

/**
 * The Content-Security-Policy of every dashboard answer: scripts, styles and fetches from this
 * origin only, plus WebSocket connections to the MQTT port (any host name the page was opened
 * under, that port only: the page connects to its own host name). No inline script or style
 * element, no eval, no frames, no plugins.
 */
export function contentSecurityPolicy (wsPort: number): string {
  const connect = ["'self'"]
  if (wsPort > 0) connect.push(`ws://*:${wsPort}`, `wss://*:${wsPort}`)
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src ${connect.join(' ')}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join('; ')
}

interface StaticFile { path: string, body: string, headers: Record<string, string> }

function readFiles (dir: string, csp: string, log: Logger): StaticFile[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (err) {
    log.warn({ dir, err: (err as Error).message }, 'dashboard: not built (run `npm run build`); GET / answers 404')
    return []
  }
  const files: StaticFile[] = []
  for (const name of names.sort()) {
    const type = CONTENT_TYPES[extname(name)]
    const full = join(dir, name)
    const st = statSync(full)
    if (type === undefined || !st.isFile() || st.size > MAX_FILE_BYTES) continue
    files.push({
      path: `/${name}`,
      body: readFileSync(full, 'utf8'),
      headers: {
        'Cache-Control': HASHED.test(name) ? 'public, max-age=31536000, immutable' : 'no-cache',
        'Content-Security-Policy': csp,
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
        'X-Frame-Options': 'DENY',
        'Content-Type': type
      }
    })
  }
  return files
}

/** GET routes for `/` (index.html) and every file of the built dashboard. */
export function staticRoutes (opts: StaticOptions): RouteDef[] {
  const csp = contentSecurityPolicy(opts.wsPort)
  const files = readFiles(opts.dir, csp, opts.logger)
  const index = files.find((f) => f.path === '/index.html')
  if (files.length > 0 && index === undefined) opts.logger.warn({ dir: opts.dir }, 'dashboard: no index.html in the build folder')
  const routes: RouteDef[] = files.map((f) => fileRoute(f.path, f))
  if (index !== undefined) {
    routes.push(fileRoute('/', index))
    opts.logger.info({ dir: opts.dir, files: files.length }, 'dashboard: served at /')
  } else {
    routes.push({
      method: 'GET',
      path: '/',
      who: 'anyone',
      handle: async () => { throw new RgError('not_found', `the dashboard is not built (no index.html in ${opts.dir}); run npm run build`) }
    })
  }
  return routes
}

function fileRoute (path: string, f: StaticFile): RouteDef {
  const { 'Content-Type': contentType, ...headers } = f.headers
  return {
    method: 'GET',
    path,
    who: 'anyone',
    handle: async () => ({ status: 200, text: f.body, contentType, headers })
  }
}
