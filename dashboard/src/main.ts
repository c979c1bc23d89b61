// The roundgate dashboard: asks GET /v1/info what the server offers, logs in when authentication
// is on, then shows every group live (MQTT over WebSocket) and one group's page at a time
// (#/groups/{g}, #/groups/{g}/terminals/{id}) with its history over HTTP.
import 'uplot/dist/uPlot.min.css'
import './style.css'
import { Api, errorText } from './api.js'
import { canAdmin, loginForm, OPEN_SESSION, type Session } from './auth.js'
import { h } from './dom.js'
import { Live, type LiveStatus } from './live.js'
import { every, Redraw } from './throttle.js'
import type { GroupState, Info } from './types.js'
import { GroupPage } from './views/group.js'
import { Overview } from './views/overview.js'

/** at most this often a redraw, however many messages arrive */
const REDRAW_MIN_MS = 100
/** without MQTT over WebSocket, group states are polled over HTTP this often */
const POLL_MS = 2000

const byId = (id: string): HTMLElement => document.getElementById(id) as HTMLElement

function banner (text: string | null): void {
  const b = byId('banner')
  if (text === null) { b.hidden = true; b.textContent = ''; return }
  b.textContent = text
  b.hidden = false
}

async function serverOffset (api: Api): Promise<number> {
  try {
    const before = Date.now()
    const t = await api.get<{ serverTime?: unknown }>('/v1/time')
    const after = Date.now()
    return typeof t.serverTime === 'number' ? t.serverTime - (before + after) / 2 : 0
  } catch {
    return 0 // no GET /v1/time on this server: the browser's clock stands in for the broker's
  }
}

async function start (): Promise<void> {
  const api = new Api()
  const app = byId('app')
  let info: Info
  try {
    info = await api.get<Info>('/v1/info')
  } catch (err) {
    banner(`Cannot read GET /v1/info: ${errorText(err)}`)
    return
  }
  byId('version').textContent = `v${info.version}`
  let session: Session = OPEN_SESSION
  if (info.auth) {
    session = await loginForm(app, api)
    const logout = byId('logout')
    logout.hidden = false
    logout.addEventListener('click', () => window.location.reload())
  }
  api.onUnauthorized = () => banner('The server refused the credentials (expired or revoked): reload the page and log in again.')
  byId('who').textContent = session.authOn ? `${session.user} (${session.role})` : ''
  document.body.dataset.role = session.role

  const offset = await serverOffset(api)
  const clock = (): number => Date.now() + offset
  const states = new Map<string, GroupState>()
  const navigate = (hash: string): void => { window.location.hash = hash }
  const overview = new Overview((g) => navigate(`#/groups/${encodeURIComponent(g)}`))
  const group = new GroupPage({ api, admin: canAdmin(session), clock, navigate })
  const authNote = h('p', {
    class: 'auth-note',
    attrs: { id: 'auth-note' },
    text: session.authOn
      ? (canAdmin(session) ? 'Logged in as an admin.' : 'Logged in as a viewer: controls are disabled.')
      : 'Authentication is off: whoever reaches this page may control every group.'
  })
  app.replaceChildren(authNote, overview.root, group.root)

  const redraw = new Redraw(REDRAW_MIN_MS, () => {
    overview.render(states)
    if (group.current !== null) group.setState(states.get(group.current))
    group.draw()
  })
  const putState = (s: GroupState): void => {
    const old = states.get(s.group)
    // a late HTTP answer never replaces a newer live state
    if (old !== undefined && (old.updatedAt ?? 0) > (s.updatedAt ?? 0)) return
    states.set(s.group, s)
    redraw.request()
  }
  const loadGroups = async (): Promise<void> => {
    const list = await api.get<GroupState[]>('/v1/groups')
    const names = new Set(list.map((s) => s.group))
    for (const g of states.keys()) if (!names.has(g)) states.delete(g)
    for (const s of list) putState(s)
    redraw.request()
  }

  const route = (): void => {
    const m = /^#\/groups\/([^/]+)(?:\/terminals\/([^/]+))?$/.exec(window.location.hash)
    if (m === null) { group.close(); overview.select(null); return }
    const g = decodeURIComponent(m[1])
    overview.select(g)
    group.open(g, m[2] === undefined ? null : decodeURIComponent(m[2]), states.get(g))
    redraw.request()
  }
  window.addEventListener('hashchange', route)
  route()

  if (info.wsPort === 0) {
    setConn('offline', 'no MQTT over WebSocket')
    banner('MQTT over WebSocket is off on this server: the page polls the HTTP API instead of updating live.')
    every(POLL_MS, loadGroups)
    return
  }
  let everConnected = false
  const live = new Live({
    url: `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.hostname}:${info.wsPort}`,
    prefix: info.topicPrefix,
    username: session.mqtt?.username,
    password: session.mqtt?.password,
    onState: putState,
    onRound: (r) => { group.onRound(r); redraw.request() },
    onJob: (j) => group.onJob(j),
    onGone: (g) => { if (states.delete(g)) redraw.request() },
    onStatus: (status, detail) => {
      setConn(status, detail)
      if (status === 'connected') { everConnected = true; banner(null); return }
      if (status === 'connecting') return
      banner(`${everConnected ? 'Connection to the broker lost' : 'Cannot connect to the broker'}${detail === undefined ? '' : ` (${detail})`}: reconnecting…`)
    },
    onSubscribed: (refused) => {
      if (refused.length > 0) console.info('roundgate dashboard: the server refused', refused.join(', '))
      loadGroups().catch((err: unknown) => banner(`Cannot list groups: ${errorText(err)}`))
      group.refresh()
    }
  })
  live.start()
  window.addEventListener('pagehide', () => live.stop())
}

function setConn (status: LiveStatus, detail?: string): void {
  const c = byId('conn')
  c.dataset.state = status
  c.textContent = status === 'connected' ? 'live' : status
  c.title = detail ?? ''
}

start().catch((err: unknown) => {
  console.error('roundgate dashboard: start failed', err)
  banner(`The dashboard failed to start: ${errorText(err)}`)
})
