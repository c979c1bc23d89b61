// Admin routes: whole (PUT) and partial (PATCH) group configuration, deletion, and ctl
// operations (the same ops as MQTT `rg/{g}/ctl`, PROTOCOL section 4).
import type { Engine } from '../plugins/scheduler/index.js'
import type { RouteDef } from './router.js'

export function adminRoutes (engine: Engine): RouteDef[] {
  return [
    {
      method: 'PUT',
      path: '/v1/groups/:g',
      who: 'admin',
      body: true,
      handle: async (call) => ({ status: 200, json: await engine.putGroup(call.params.g, call.body) })
    },
    {
      method: 'PATCH',
      path: '/v1/groups/:g',
      who: 'admin',
      body: true,
      handle: async (call) => ({ status: 200, json: await engine.patchGroup(call.params.g, call.body) })
    },
    {
      method: 'DELETE',
      path: '/v1/groups/:g',
      who: 'admin',
      handle: async (call) => {
        // answered with the group as it was just before it went
        const group = await engine.getGroup(call.params.g)
        await engine.deleteGroup(call.params.g)
        return { status: 200, json: group }
      }
    },
    {
      method: 'POST',
      path: '/v1/groups/:g/ctl',
      who: 'admin',
      body: true,
      handle: async (call) => ({ status: 200, json: await engine.ctl(call.params.g, call.body) })
    }
  ]
}
