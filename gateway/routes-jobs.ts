// Job routes (PROTOCOL section 10): submit (201, or 200 with the job an id already named), list,
// get, cancel. The same operations travel over MQTT as ctl `submit` / `cancel`.
import type { Engine } from '../plugins/scheduler/index.js'
import type { RouteDef } from './router.js'
import { param } from './routes-view.js'

export function jobRoutes (engine: Engine): RouteDef[] {
  return [
    {
      method: 'POST',
      path: '/v1/groups/:g/jobs',
      who: 'admin',
      body: true,
      handle: async (call) => {
        const { job, created } = await engine.submitJob(call.params.g, call.body)
        return { status: created ? 201 : 200, json: job }
      }
    },
    {
      method: 'GET',
      path: '/v1/groups/:g/jobs',
      who: 'viewer',
      handle: async (call) => ({
        status: 200,
        json: await engine.jobs(call.params.g, param(call, 'state'), param(call, 'limit'), param(call, 'before'))
      })
    },
    {
      method: 'GET',
      path: '/v1/groups/:g/jobs/:id',
      who: 'viewer',
      handle: async (call) => ({ status: 200, json: await engine.job(call.params.g, call.params.id) })
    },
    {
      method: 'DELETE',
      path: '/v1/groups/:g/jobs/:id',
      who: 'admin',
      handle: async (call) => ({ status: 200, json: await engine.cancelJob(call.params.g, call.params.id) })
    }
  ]
}
