// The dashboard's files as the gateway serves them (no browser here; test/dashboard.test.ts drives
// Chromium): index.html at /, content-hashed assets cached for ever, a strict
// Content-Security-Policy allowing the MQTT-over-WebSocket port, 404 JSON for any other file, and
// GET /v1/info telling the page what the server offers.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { freePort, startBroker } from './helpers/broker.js'
import { get, startTestGateway } from './helpers/http.js'

const PKG = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

void t.test('GET / serves the built page and its assets under a strict Content-Security-Policy', async (t) => {
  const wsPort = await freePort()
  const b = await startBroker({ wsPort, httpPort: await freePort(), topicPrefix: 'fleet/rg' })
  t.teardown(async () => await b.close())
  const base = `http://127.0.0.1:${b.server.ports.http}`

  const index = await get(base, '/')
  t.equal(index.status, 200)
  t.match(index.headers.get('content-type'), /^text\/html; charset=utf-8$/)
  t.equal(index.headers.get('cache-control'), 'no-cache', 'the page itself is revalidated: it names the current assets')
  t.equal(index.headers.get('x-content-type-options'), 'nosniff')
  const csp = index.headers.get('content-security-policy') ?? ''
  t.match(csp, /default-src 'none'/)
  t.match(csp, /script-src 'self'(;|$)/, 'scripts from this origin only')
  t.match(csp, /style-src 'self'(;|$)/, 'styles from this origin only')
  t.match(csp, new RegExp(`connect-src 'self' ws://\\*:${wsPort} wss://\\*:${wsPort}(;|$)`), 'WebSocket to the MQTT port only')
  t.notMatch(csp, /unsafe-inline|unsafe-eval|https?:/, 'no inline code, no eval, no other site')
  t.match(csp, /frame-ancestors 'none'/)

  // the page holds no inline script or style: everything comes from the asset files
  t.notMatch(index.text, /<script(?![^>]*\bsrc=)[^>]*>/, 'every <script> has a src')
  t.notMatch(index.text, /<style|\sstyle=/, 'no <style> element, no style attribute')
  t.notMatch(index.text, /https?:\/\//, 'no CDN or other site')
  const script = /<script type="module" src="\.\/(app-[A-Z0-9]+\.js)"><\/script>/.exec(index.text)?.[1]
  const style = /<link rel="stylesheet" href="\.\/(app-[A-Z0-9]+\.css)">/.exec(index.text)?.[1]
  t.ok(script, 'the page names its content-hashed script')
  t.ok(style, 'the page names its content-hashed stylesheet')

  const js = await get(base, `/${script}`)
  t.equal(js.status, 200)
  t.match(js.headers.get('content-type'), /^text\/javascript/)
  t.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable', 'a hashed asset is cached for ever')
  t.ok(js.text.length > 10000, `the bundle is served whole (${js.text.length} bytes)`)
  t.notMatch(js.text, /\beval\(|new Function\(/, 'the bundle needs no eval')
  const css = await get(base, `/${style}`)
  t.equal(css.status, 200)
  t.match(css.headers.get('content-type'), /^text\/css/)
  t.match(css.text, /\.uplot/, 'uPlot\'s stylesheet is bundled in')

  const same = await get(base, '/index.html')
  t.equal(same.text, index.text, '/index.html is the same page')

  for (const path of ['/nope.js', '/app.js', '/dashboard/index.html', '/../package.json']) {
    const miss = await get(base, path)
    t.equal(miss.status, 404, `${path}: 404`)
    t.equal(miss.json?.error?.code, 'not_found', `${path}: the JSON error body`)
  }
  const post = await get(base, '/', { method: 'POST' })
  t.equal(post.status, 404, 'POST / is no route (PROTOCOL has no 405)')
  t.equal(post.headers.get('allow'), 'GET')
})

void t.test('GET /v1/info: version, WebSocket port, topic prefix, whether auth is on', async (t) => {
  const wsPort = await freePort()
  const b = await startBroker({ wsPort, httpPort: await freePort(), topicPrefix: 'fleet/rg' })
  t.teardown(async () => await b.close())
  const info = await get(`http://127.0.0.1:${b.server.ports.http}`, '/v1/info')
  t.equal(info.status, 200)
  t.same(info.json, { version: PKG.version, wsPort, topicPrefix: 'fleet/rg', auth: false })
  t.equal(info.headers.get('cache-control'), 'no-store')

  const noWs = await startBroker({ wsPort: 0, httpPort: await freePort() })
  t.teardown(async () => await noWs.close())
  const off = await get(`http://127.0.0.1:${noWs.server.ports.http}`, '/v1/info')
  t.equal(off.json.wsPort, 0, 'no WebSocket listener: port 0 (the page then polls HTTP)')
  const csp = (await get(`http://127.0.0.1:${noWs.server.ports.http}`, '/')).headers.get('content-security-policy') ?? ''
  t.match(csp, /connect-src 'self';/, 'and the page may connect nowhere else')
})

void t.test('a gateway without a built dashboard answers / with a 404 that says so', async (t) => {
  const empty = await mkdtemp(join(tmpdir(), 'rg-nodash-'))
  t.teardown(async () => await rm(empty, { recursive: true, force: true }))
  const g = await startTestGateway({ dashboardDir: empty })
  t.teardown(async () => await g.close())
  const res = await get(g.base, '/')
  t.equal(res.status, 404)
  t.equal(res.json.error.code, 'not_found')
  t.match(res.json.error.message, /not built/)
  t.equal((await get(g.base, '/v1/info')).status, 200, '/v1/info is there all the same')
})
