// Viewer routes (group states, one group, its terminals, its round history) and the operational
// ones (/healthz, /readyz, /metrics).
import { RgError } from '../plugins/errors.js'
import type { Engine } from '../plugins/scheduler/index.js'
import type { Call, RouteDef } from './router.js'

export interface Renderer {
  render (): Promise<{ contentType: string, body: string }>
}

/** Where the fan-out times per round come from (the metrics plugin). */
export interface FanoutSource {
  fanouts (group: string): Array<{ round: number, door: string, ms: number, delivered: number }>
}

export function viewRoutes (engine: Engine, fanouts: FanoutSource | undefined): RouteDef[] {
  return [
    {
      method: 'GET',
      path: '/v1/groups/:g/fanout',
      who: 'viewer',
      handle: async (call) => {
        await engine.state(call.params.g) // unknown_group when there is none
        return { status: 200, json: fanouts?.fanouts(call.params.g) ?? [] }
      }
    },
    {
      method: 'GET',
      path: '/v1/groups',
      who: 'viewer',
      handle: async (call) => {
        const all = await engine.listGroups()
        const scope = call.scope
        return { status: 200, json: scope === undefined ? all : all.filter((s) => scope.mayUseGroup(s.group)) }
      }
    },
    {
      method: 'GET',
      path: '/v1/groups/:g',
      who: 'viewer',
      handle: async (call) => ({ status: 200, json: await engine.getGroup(call.params.g) })
    },
    {
      method: 'GET',
      path: '/v1/groups/:g/terminals',
      who: 'viewer',
      handle: async (call) => ({ status: 200, json: await engine.terminals(call.params.g) })
    },
    {
      method: 'GET',
      path: '/v1/groups/:g/terminals/:id',
      who: 'viewer',
      handle: async (call) => ({ status: 200, json: await engine.terminal(call.params.g, call.params.id, param(call, 'limit')) })
    },
    {
      method: 'GET',
      path: '/v1/groups/:g/rounds',
      who: 'viewer',
      handle: async (call) => ({
        status: 200,
        json: await engine.rounds(call.params.g, param(call, 'limit'), param(call, 'before'), param(call, 'outcome'))
      })
    }
  ]
}

/** A query parameter as given (the engine validates it), undefined when absent. */
export function param (call: Call, name: string): string | undefined {
  return call.query.get(name) ?? undefined
}

export function opsRoutes (engine: Engine, isReady: () => Promise<boolean>, metrics: Renderer | undefined): RouteDef[] {
  return [
    {
      method: 'GET',
      path: '/v1/time',
      who: 'anyone',
      // the broker's clock (the store's in cluster mode), for terminals estimating their offset
      handle: async () => ({ status: 200, json: { serverTime: Math.round(engine.now()) } })
    },
    {
      method: 'GET',
      path: '/healthz',
      who: 'anyone',
      unlimited: true,
      handle: async () => ({ status: 200, json: { status: 'ok' } })
    },
    {
      method: 'GET',
      path: '/readyz',
      who: 'anyone',
      unlimited: true,
      handle: async () => {
        let ok: boolean
        try {
          ok = await isReady()
        } catch (err) {
          throw new RgError('unavailable', `not ready: ${err instanceof Error ? err.message : String(err)}`)
        }
        if (!ok) throw new RgError('unavailable', 'not ready: the state store is not reachable')
        return { status: 200, json: { status: 'ready' } }
      }
    },
    {
      method: 'GET',
      path: '/metrics',
      // PROTOCOL section 5: "anyone (metrics may need viewer)"; the authorization hook decides
      who: 'viewer',
      handle: async () => {
        if (metrics === undefined) throw new RgError('not_found', 'metrics are not enabled on this server')
        const m = await metrics.render()
        return { status: 200, text: m.body, contentType: m.contentType }
      }
    }
  ]
}
