// Terminal routes (PROTOCOL section 5): heartbeat, ready, done, leave and the release long-poll.
// Fields come from query parameters overlaid with a JSON or form body; the engine validates them.
import { RgError } from '../plugins/errors.js'
import { checkClientId, checkGroupName, type Engine, parseHeartbeat } from '../plugins/scheduler/index.js'
import { queryNumber } from './body.js'
import { DEFAULT_WAIT_S, MAX_WAIT_S, type LongPolls } from './longpoll.js'
import type { Call, RouteDef } from './router.js'

function clientIdOf (call: Call): string {
  if (call.fields.clientId === undefined) throw new RgError('bad_request', 'clientId is required')
  return checkClientId(call.fields.clientId)
}

/** The call's fields without clientId (it travels as its own argument). */
function input (call: Call): Record<string, unknown> {
  const { clientId: _id, ...rest } = call.fields
  return rest
}

export function terminalRoutes (engine: Engine, polls: LongPolls): RouteDef[] {
  return [
    {
      method: 'POST',
      path: '/v1/groups/:g/heartbeat',
      who: 'terminal',
      body: true,
      terminal: true,
      handle: async (call) => ({ status: 200, json: await engine.heartbeat(call.params.g, clientIdOf(call), input(call)) })
    },
    {
      method: 'POST',
      path: '/v1/groups/:g/ready',
      who: 'terminal',
      body: true,
      terminal: true,
      handle: async (call) => ({ status: 200, json: await engine.ready(call.params.g, clientIdOf(call), input(call)) })
    },
    {
      method: 'POST',
      path: '/v1/groups/:g/done',
      who: 'terminal',
      body: true,
      terminal: true,
      handle: async (call) => ({ status: 200, json: await engine.done(call.params.g, clientIdOf(call), input(call)) })
    },
    {
      method: 'POST',
      path: '/v1/groups/:g/leave',
      who: 'terminal',
      body: true,
      terminal: true,
      handle: async (call) => ({ status: 200, json: await engine.leave(call.params.g, clientIdOf(call)) })
    },
    {
      method: 'GET',
      path: '/v1/groups/:g/release',
      who: 'terminal',
      terminal: true,
      handle: async (call) => {
        const group = checkGroupName(call.params.g)
        const clientId = clientIdOf(call)
        const after = queryNumber(call.query, 'after') ?? 0
        if (!Number.isInteger(after) || after < 0) throw new RgError('bad_request', 'after must be a round number (a whole number ≥ 0)')
        const wait = queryNumber(call.query, 'wait') ?? DEFAULT_WAIT_S
        if (wait < 0 || wait > MAX_WAIT_S) throw new RgError('bad_request', `wait must be from 0 to ${MAX_WAIT_S} seconds`)
        // the poll counts as a heartbeat: it may name the terminal's role (validated before it parks)
        const input = parseHeartbeat(call.fields.role === undefined ? {} : { role: call.fields.role })
        if (call.ex.open) polls.poll(call.ex, group, clientId, after, wait, input, call.address)
        return undefined
      }
    }
  ]
}
