// The dashboard in real Chromium (Debian's, through playwright-core) against a real broker: the
// page loads under its Content-Security-Policy, groups appear live, a round driven by real MQTT
// terminals shows on the page within a second, the admin controls act on the broker, a broker
// restart shows a banner that clears on reconnection, and 1,000 terminals stay smooth.
// Screenshots go to artifacts/dashboard/ (gitignored); ROUNDGATE_SCREENSHOT=1 also rewrites
// docs/dashboard.png, the README's picture.
import { copyFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import t from 'tap'
import type { Settings } from '../broker/settings.js'
import { type Browser, launch, ROOT, snap, type Watched } from './helpers/browser.js'
import { freePort, send, startBroker, terminal, type TestBroker, waitFor } from './helpers/broker.js'

/** the page must show a change this soon after the broker made it (issue 13: within a second) */
const LIVE_MS = 1000
/**
 * 1,000 terminals: bounds far above what a busy 2-core machine shows (render ~150 ms, frame p95
 * 20–100 ms, page work per frame a few ms), so only a real regression fails — a table that drew
 * every row would spend hundreds of ms per frame in layout. The frame time is wall-clock (other
 * processes share the cores); the page's own work per frame comes from Chromium's counters.
 */
const RENDER_BOUND_MS = 5000
const FRAME_P95_BOUND_MS = 250
const WORK_PER_FRAME_BOUND_MS = 50
/** terminals in the big group: 1,000 by default; ROUNDGATE_DASHBOARD_TERMINALS=10000 for the 10,000 */
const N = Math.max(1000, Math.min(100000, Number(process.env.ROUNDGATE_DASHBOARD_TERMINALS ?? 1000) || 1000))

let browser: Browser
t.before(async () => { browser = await launch() })
t.teardown(async () => await browser?.close())

async function startWithHttp (overrides: Partial<Settings> = {}): Promise<{ b: TestBroker, base: string }> {
  const b = await startBroker({ wsPort: await freePort(), httpPort: await freePort(), ...overrides })
  return { b, base: `http://127.0.0.1:${b.server.ports.http}` }
}

/** Open the dashboard; CSP violations are recorded in the page from its very first script. */
async function openPage (base: string, hash = ''): Promise<Watched> {
  const w = await browser.page()
  await w.page.addInitScript(() => {
    const seen: string[] = []
    Object.assign(window, { __cspViolations: seen })
    document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI}`))
  })
  await w.page.goto(`${base}/${hash}`)
  await w.page.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 })
  return w
}

/**
 * Errors that matter: the browser logs every HTTP error answer, and a 404 from an endpoint this
 * server does not have yet is expected (the page says so), as is a status the test provoked.
 */
async function problems (w: Watched, expected: number[] = [404]): Promise<string[]> {
  const csp = await w.page.evaluate(() => (window as unknown as { __cspViolations: string[] }).__cspViolations)
  const answered = new RegExp(`Failed to load resource: the server responded with a status of (${expected.join('|')})\\b`)
  return [...csp.map((c) => `CSP: ${c}`), ...w.errors.filter((e) => !answered.test(e))]
}

const cell = (page: Page, group: string, field: string): Promise<string> =>
  page.locator(`#groups tr[data-group="${group}"] td[data-field="${field}"]`).innerText()

/**
 * ms until the element `sel` exists (text undefined) or its text equals `text` (or matches it),
 * checked every animation frame; rejects after `ms`. (A function, not a string: the page's CSP
 * forbids eval, and playwright evaluates string predicates with it.)
 */
async function shownWithin (page: Page, what: string, sel: string, text: string | RegExp | undefined, ms: number): Promise<number> {
  const t0 = Date.now()
  const arg = { sel, text: typeof text === 'string' ? text : null, re: text instanceof RegExp ? text.source : null }
  await page.waitForFunction(({ sel, text, re }) => {
    const el = document.querySelector(sel)
    if (el === null) return false
    if (text !== null) return el.textContent === text
    if (re !== null) return new RegExp(re).test(el.textContent ?? '')
    return true
  }, arg, { polling: 'raf', timeout: ms }).catch((err: Error) => {
    throw new Error(`${what}: not shown within ${ms} ms (${err.message.split('\n')[0]})`)
  })
  return Date.now() - t0
}

void t.test('the page loads under its CSP, a group appears, and a round of real MQTT terminals shows within a second', async (t) => {
  const { b, base } = await startWithHttp({ groups: { demo: { need: 3, resetMs: 200, payload: { scene: 'city' } } } })
  t.teardown(async () => await b.close())
  const w = await openPage(base)
  const { page } = w
  t.match(await page.locator('#auth-note').innerText(), /Authentication is off/, 'the page says authentication is off')
  const info = await (await fetch(`${base}/v1/info`)).json()
  t.equal(await page.locator('#version').innerText(), `v${info.version}`, 'the version from GET /v1/info')

  const ids = ['t1', 't2', 't3']
  const terms = await Promise.all(ids.map(async (id) => await terminal(b.url, 'demo', id)))
  t.teardown(async () => { for (const x of terms) await x.c.endAsync(true) })
  await Promise.all(terms.map(async (x, i) => await send(x.c, `rg/demo/hb/${ids[i]}`, { load: (i + 1) / 10 })))
  await page.waitForSelector('#groups tr[data-group="demo"]', { timeout: 5000 })
  await shownWithin(page, 'three online', '#groups tr[data-group="demo"] td[data-field="online"]', '3', 3000)
  t.equal(await cell(page, 'demo', 'phase'), 'WAITING', 'the group appears, WAITING')
  t.equal(await cell(page, 'demo', 'attempt'), '1', 'the attempt the next release carries')
  t.equal(await cell(page, 'demo', 'nextTick'), '—', 'no schedule: no next tick')

  await page.click('#groups tr[data-group="demo"] a')
  await page.waitForSelector('#group-page:not([hidden])')
  t.equal(await page.locator('#group-page h2').innerText(), 'Group demo')
  await shownWithin(page, 'terminals table', '#terminal-count', '3 terminals', 5000)

  // the round: ready → EXECUTING on the page within a second
  for (const [i, x] of terms.entries()) await send(x.c, `rg/demo/ready/${ids[i]}`, {})
  await Promise.all(terms.map(async (x) => await x.inbox.next('rg/demo/release')))
  const execMs = await shownWithin(page, 'EXECUTING', '#groups tr[data-group="demo"] td[data-field="phase"]', 'EXECUTING', LIVE_MS)
  t.pass(`phase EXECUTING on the page ${execMs} ms after the release reached the terminals`)
  t.equal(await page.locator('#group-state [data-field="participants"]').innerText(), '3', 'the group page shows the participants')

  // done → the new round in the list and the phase back to WAITING, each within a second
  for (const [i, x] of terms.entries()) await send(x.c, `rg/demo/done/${ids[i]}`, { round: 1, ok: true })
  const roundMs = await shownWithin(page, 'round 1 in the list', '#rounds tr[data-round="1"][data-outcome="completed"]', undefined, LIVE_MS)
  t.pass(`round 1 (completed) on the page ${roundMs} ms after the last done`)
  await shownWithin(page, 'WAITING again', '#group-state [data-field="phase"]', 'WAITING', LIVE_MS + 200)
  t.equal(await page.locator('#group-state [data-field="round"]').innerText(), '1')
  t.ok(await page.locator('#chart-durations canvas').count() > 0, 'the round-duration chart is drawn')

  // a few more rounds for the charts, then the picture
  for (let r = 2; r <= 6; r++) {
    for (const [i, x] of terms.entries()) await send(x.c, `rg/demo/ready/${ids[i]}`, {})
    await Promise.all(terms.map(async (x) => await x.inbox.next((m) => m.topic === 'rg/demo/release' && m.json?.round === r)))
    for (const [i, x] of terms.entries()) {
      await new Promise((resolve) => setTimeout(resolve, 20 * (i + 1) * r))
      await send(x.c, `rg/demo/done/${ids[i]}`, { round: r, ok: true })
    }
    await waitFor(async () => (await b.server.engine.state('demo')).phase === 'WAITING', 3000, `round ${r} to end`)
  }
  await shownWithin(page, 'round 6', '#rounds tr[data-round="6"]', undefined, 2000)

  // the PROTOCOL 1.1 parts of the summary and the fan-out route, drawn from what the server answers
  const summary = (await (await fetch(`${base}/v1/groups/demo/rounds?limit=1`)).json())[0]
  t.type(summary.doneMs, 'object', 'the summary carries doneMs')
  const stragglers = await page.locator('#rounds tr[data-round="6"] td').nth(8).innerText()
  t.equal(stragglers, summary.stragglers.length === 0 ? 'none' : summary.stragglers[0], 'stragglers as the summary has them')
  await page.waitForSelector('#chart-delays canvas', { timeout: 2000 })
  t.equal(await page.locator('#slowest li').count(), 3, 'the done-delay chart and the slowest terminals of the last round')
  const fanout = await fetch(`${base}/v1/groups/demo/fanout`)
  await fanout.text()
  t.equal(fanout.status, 200, 'GET /fanout answers')
  await page.waitForSelector('#chart-fanout canvas', { timeout: 2000 })
  t.pass('the fan-out chart is drawn')

  // a terminal's own history, opened from the terminals table
  await page.click('#terminals .tid >> text=t2')
  await page.waitForSelector('#terminal-history:not([hidden])')
  t.equal(await page.locator('#terminal-history h3').innerText(), 'Terminal t2')
  const hist = await fetch(`${base}/v1/groups/demo/terminals/t2`)
  await hist.text()
  t.equal(hist.status, 200, 'GET /terminals/t2 answers')
  await page.waitForSelector('#terminal-history tr[data-round="6"]', { timeout: 2000 })
  t.equal(await page.locator('#terminal-history tbody tr').count(), 6, 't2 took part in six rounds')
  await page.click('#terminal-history button')
  await page.waitForSelector('#terminal-history', { state: 'hidden' })
  await page.waitForFunction(() => window.location.hash === '#/groups/demo')
  t.pass('closing the history goes back to the group')
  const shot = await snap(page, 'group-demo')
  t.pass(`screenshot ${shot}`)
  if (process.env.ROUNDGATE_SCREENSHOT === '1') {
    await copyFile(shot, join(ROOT, 'docs', 'dashboard.png'))
    t.pass('docs/dashboard.png rewritten')
  }
  t.same(await problems(w), [], 'no CSP violation, no script error')
  await page.close()
})

void t.test('admin controls on the page act on the broker; a refused value is shown on its field', async (t) => {
  const { b, base } = await startWithHttp({ groups: { ops: { need: 2 } } })
  t.teardown(async () => await b.close())
  const w = await openPage(base, '#/groups/ops')
  const { page } = w
  await page.waitForSelector('#controls button[data-op="pause"]:not([disabled])')

  await page.click('#controls button[data-op="pause"]')
  await waitFor(async () => (await b.server.engine.getGroup('ops')).config.paused, 3000, 'the broker to pause the group')
  t.pass('pause from the page paused the group in the broker')
  await shownWithin(page, 'paused', '#group-state [data-field="paused"]', 'yes', LIVE_MS)
  t.match(await page.locator('#ctl-status').innerText(), /pause: ok/)
  await page.click('#controls button[data-op="resume"]')
  await waitFor(async () => !(await b.server.engine.getGroup('ops')).config.paused, 3000, 'the broker to resume the group')
  t.pass('resume too')

  // edit: need 2 → 5 is saved; minOnlineRatio 2 is refused and the message shows on that field
  await page.fill('#cfg-need', '5')
  await page.click('#config-form button[type="submit"]')
  await shownWithin(page, 'saved', '#config-status', /saved: need/, 3000)
  t.equal((await b.server.engine.getGroup('ops')).config.need, 5, 'the new need is in the broker')
  await shownWithin(page, 'need 5 live', '#group-state [data-field="need"]', '5', LIVE_MS)

  // the job queue (PROTOCOL 1.1 section 10), where the server has it: a job submitted while the
  // group is paused shows in the queue live
  await page.click('#controls button[data-op="pause"]')
  await waitFor(async () => (await b.server.engine.getGroup('ops')).config.paused, 3000, 'paused again')
  const job = await fetch(`${base}/v1/groups/ops/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'job-1', payload: { n: 1 } }) })
  await job.text()
  t.equal(job.status, 201, 'the job is queued')
  await shownWithin(page, 'queued job', '#jobs tr[data-job="job-1"]', undefined, LIVE_MS)
  t.pass('a submitted job shows in the queue within a second')

  await page.fill('#cfg-minOnlineRatio', '2')
  await page.click('#config-form button[type="submit"]')
  const err = page.locator('.field-error[data-for="minOnlineRatio"]')
  await err.waitFor({ state: 'visible', timeout: 3000 })
  t.match(await err.innerText(), /minOnlineRatio/, 'the server\'s message, naming the key, next to the field')
  t.equal(await page.locator('.field-error[data-for="need"]').innerText(), '', 'and not next to the others')
  t.equal((await b.server.engine.getGroup('ops')).config.minOnlineRatio, 0.9, 'nothing was changed')
  await snap(page, 'controls')

  // a deleted group leaves the list live (its retained state is cleared)
  const del = await fetch(`${base}/v1/groups/ops`, { method: 'DELETE' })
  await del.text()
  t.equal(del.status, 200)
  await page.locator('#groups tr[data-group="ops"]').waitFor({ state: 'detached', timeout: LIVE_MS })
  t.pass('the deleted group left the list within a second')
  t.same(await problems(w, [404, 400]), [], 'no CSP violation, no script error (the refused PATCH was a 400)')
  await page.close()
})

void t.test('a broker restart shows a banner; the page reconnects, clears it and is live again', async (t) => {
  const mqttPort = await freePort()
  const ports = { mqttPort, wsPort: await freePort(), httpPort: await freePort() }
  let b = await startBroker({ ...ports, groups: { before: {} } })
  t.teardown(async () => await b.close())
  const base = `http://127.0.0.1:${b.server.ports.http}`
  const w = await openPage(base)
  const { page } = w
  await page.waitForSelector('#groups tr[data-group="before"]')
  t.ok(await page.locator('#banner').isHidden(), 'no banner while connected')

  await b.close()
  await page.locator('#banner').waitFor({ state: 'visible', timeout: 5000 })
  t.match(await page.locator('#banner').innerText(), /lost.*reconnecting/i, 'the banner says the connection was lost')
  await snap(page, 'banner')

  b = await startBroker({ ...ports, groups: { after: {} } })
  await page.locator('#banner').waitFor({ state: 'hidden', timeout: 10000 })
  t.equal(await page.locator('#conn').getAttribute('data-state'), 'connected', 'reconnected; the banner cleared')
  await page.waitForSelector('#groups tr[data-group="after"]', { timeout: 5000 })
  t.pass('the restarted broker\'s groups show')
  const term = await terminal(b.url, 'after', 'a1')
  t.teardown(async () => { await term.c.endAsync(true) })
  await send(term.c, 'rg/after/hb/a1', {})
  await shownWithin(page, 'live after reconnecting', '#groups tr[data-group="after"] td[data-field="online"]', '1', LIVE_MS + 500)
  t.pass('live updates flow again')
  t.same((await problems(w)).filter((e) => !/WebSocket connection .* failed/.test(e)), [], 'no CSP violation or script error beyond the refused reconnections')
  await page.close()
})

void t.test(`${N.toLocaleString('en')} terminals: the terminals view renders and scrolls smoothly (virtualised)`, async (t) => {
  const { b, base } = await startWithHttp({ groups: { big: { need: 1000, heartbeatMs: 60000, offlineAfterMs: 120000 } } })
  t.teardown(async () => await b.close())
  const n = N
  const ids = Array.from({ length: n }, (_, i) => `big-${String(i).padStart(5, '0')}`)
  for (let i = 0; i < n; i += 50) {
    await Promise.all(ids.slice(i, i + 50).map(async (id, j) => {
      const res = await fetch(`${base}/v1/groups/big/heartbeat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ clientId: id, role: (i + j) % 100 === 0 ? 'boss' : 'small', load: ((i + j) % 17) / 17 })
      })
      await res.text()
      if (res.status !== 200) throw new Error(`heartbeat ${id}: ${res.status}`)
    }))
  }
  const w = await openPage(base)
  const { page } = w
  await page.waitForSelector('#groups tr[data-group="big"]')

  // time to render: from opening the group until its terminals are listed and drawn
  const renderMs = await page.evaluate(async (n) => await new Promise<number>((resolve) => {
    const t0 = performance.now()
    window.location.hash = '#/groups/big'
    const check = (): void => {
      const count = document.querySelector('#terminal-count')?.textContent
      const first = document.querySelector('#terminals .vt-row:not([hidden]) .tid')?.textContent
      if (count === `${n} terminals` && first === 'big-00000') requestAnimationFrame(() => resolve(performance.now() - t0))
      else requestAnimationFrame(check)
    }
    check()
  }), n)
  const rows = await page.locator('#terminals .vt-row').count()
  t.ok(rows < 80, `virtualised: ${rows} row elements for ${n} terminals`)

  // a scroll from top to bottom in about 80 frames (12 rows a frame for 1,000): the time between
  // frames, and the main thread's script, style and layout time (Chromium's Performance counters)
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Performance.enable')
  const work = async (): Promise<number> => {
    const { metrics } = await cdp.send('Performance.getMetrics')
    const m = new Map(metrics.map((x) => [x.name, x.value]))
    return ((m.get('ScriptDuration') ?? 0) + (m.get('LayoutDuration') ?? 0) + (m.get('RecalcStyleDuration') ?? 0)) * 1000
  }
  const workBefore = await work()
  const frames = await page.evaluate(async (rowsPerFrame) => await new Promise<number[]>((resolve) => {
    const vp = document.querySelector('#terminals') as HTMLElement
    vp.scrollTop = 0
    const gaps: number[] = []
    let last = performance.now()
    const step = (): void => {
      const now = performance.now()
      gaps.push(now - last)
      last = now
      if (vp.scrollTop + vp.clientHeight >= vp.scrollHeight - 1) { resolve(gaps.slice(1)); return }
      vp.scrollTop += rowsPerFrame * 24
      requestAnimationFrame(step)
    }
    requestAnimationFrame(step)
  }), Math.max(12, Math.ceil(n / 80)))
  const workMs = (await work()) - workBefore
  const lastId = ids[n - 1]
  await page.waitForFunction((id) => [...document.querySelectorAll('#terminals .vt-row:not([hidden]) .tid')].some((a) => a.textContent === id), lastId, { timeout: 2000 })
  t.pass('scrolled to the end: the last terminal is drawn')
  const sorted = frames.slice().sort((a, b) => a - b)
  const p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))]
  const mean = frames.reduce((a, b) => a + b, 0) / frames.length
  const max = sorted[sorted.length - 1]
  const perFrame = workMs / frames.length
  const line = `${n} terminals: render ${renderMs.toFixed(0)} ms; scroll ${frames.length} frames, frame time mean ${mean.toFixed(1)} ms, ` +
    `p95 ${p95.toFixed(1)} ms, max ${max.toFixed(1)} ms; page work (script+style+layout) ${perFrame.toFixed(2)} ms per frame`
  t.comment(line)
  console.log(`# ${line}`)
  t.ok(renderMs < RENDER_BOUND_MS, `terminals view drawn in ${renderMs.toFixed(0)} ms (bound ${RENDER_BOUND_MS} ms)`)
  t.ok(p95 < FRAME_P95_BOUND_MS, `scroll frame time p95 ${p95.toFixed(1)} ms (bound ${FRAME_P95_BOUND_MS} ms)`)
  t.ok(perFrame < WORK_PER_FRAME_BOUND_MS, `page work ${perFrame.toFixed(2)} ms per scroll frame (bound ${WORK_PER_FRAME_BOUND_MS} ms)`)

  await page.fill('#terminal-filter', 'big-009')
  await shownWithin(page, 'filter', '#terminal-count', `100 of ${n} terminals`, 2000)
  t.pass('the filter narrows the list')
  await snap(page, `terminals-${n}`)
  t.same(await problems(w), [], 'no CSP violation, no script error')
  await page.close()
})
