// GET /v1/info (anyone): what a dashboard needs before it logs in — the server's version, the
// MQTT-over-WebSocket port (0 when that listener is off), the topic prefix, and whether
// authentication is on.
import type { RouteDef } from './router.js'

export interface ServerInfo {
  version: string
  /** the bound MQTT-over-WebSocket port; 0 when that listener is off */
  wsPort: number
  topicPrefix: string
  /** authentication is on: the dashboard shows its login form */
  auth: boolean
}

export function infoRoutes (info: ServerInfo): RouteDef[] {
  const body = { version: info.version, wsPort: info.wsPort, topicPrefix: info.topicPrefix, auth: info.auth }
  return [{
    method: 'GET',
    path: '/v1/info',
    who: 'anyone',
    handle: async () => ({ status: 200, json: body, headers: { 'Cache-Control': 'no-store' } })
  }]
}
