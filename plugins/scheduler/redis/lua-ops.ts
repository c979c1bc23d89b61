// One Lua script per store operation: the prelude (lua-core.ts: KEYS and ARGV layout, loading and
// saving the group; the hot rules of lua-rules.ts; cold(), which makes the rest of lua-rules.ts
// and lua-jobs.ts on first use; the common end) followed by the operation's body. Operation
// arguments start at ARGV[A + 1]. Reads are in lua-reads.ts.
import { LUA_CORE, LUA_FINISH } from './lua-core.js'
import { LUA_JOBS } from './lua-jobs.js'
import { READ_BODIES } from './lua-reads.js'
import { LUA_COLD_RULES, LUA_HOT_RULES } from './lua-rules.js'

/** The rules the hot paths do not need: made once per call, on first use, as `cold().name`. */
const COLD = `
local coldMade = nil
cold = function ()
if coldMade then return coldMade end
${LUA_JOBS}
${LUA_COLD_RULES}
coldMade = { endRound = endRound, freeze = freeze, forceRelease = forceRelease, describe = describe, configure = configure,
  jobOf = jobOf, jobGet = jobGet, jobJson = jobJson, jobEvent = jobEvent, jobSubmit = jobSubmit, jobFinish = jobFinish,
  jobDequeue = jobDequeue }
return coldMade
end
`

const TERMINAL_ARGS = `
local id = ARGV[A + 1]
local before = fingerprint()
`

/**
 * leave and kick: the terminal goes offline now. A kick emits its event (K), a leave its own (L:
 * every process ends that terminal's pending long-poll), before any release.
 */
function offline (kicked: boolean): string {
  return `
open(false)
local before = fingerprint()
goOffline(ARGV[A + 1])
events[#events + 1] = '${kicked ? 'K' : 'L'}' .. ARGV[A + 1]
return finish(before, false)
`
}

const WRITE_BODIES = {
  /** ARGV: id, role, load, meta */
  heartbeat: `
open(true)
${TERMINAL_ARGS}
touch(id, ARGV[A + 2], ARGV[A + 3], ARGV[A + 4])
return finish(before, false)
`,
  /** ARGV: id, role, load, meta */
  ready: `
open(true)
${TERMINAL_ARGS}
local r = touch(id, ARGV[A + 2], ARGV[A + 3], ARGV[A + 4])
if not redis.call('ZSCORE', readyKey(r), id) then
  S.seq = S.seq + 1
  redis.call('ZADD', readyKey(r), S.seq, id)
end
return finish(before, false)
`,
  /** ARGV: id, round, ok ('1' | '0'), result as JSON ('' when none) */
  done: `
open(false)
local id = ARGV[A + 1]
local round = tonumber(ARGV[A + 2])
if S.phase ~= 'EXECUTING' or round ~= S.round then
  fail('stale_round', 'round ' .. ARGV[A + 2] .. ' is not executing (current round ' .. num(S.round) .. ', ' .. S.phase .. ')')
end
local prole = redis.call('HGET', KPARTS, id)
if not prole then fail('not_participant', id .. ' is not a participant of round ' .. num(S.round)) end
local before = fingerprint()
touch(id, '', '', '')
if redis.call('ZSCORE', KDONE, id) then return finish(before, true) end
redis.call('ZADD', KDONE, redis.call('ZCARD', KDONE) + 1, id)
-- '+' ok or '-', when it arrived (the summary's timing), then the result
redis.call('HSET', KRES, id, (ARGV[A + 3] == '0' and '-' or '+') .. num(now) .. ' ' .. ARGV[A + 4])
if not redis.call('ZSCORE', KDROP, id) then S.settled = S.settled + 1 end
if prole == 'boss' then S.bossDone = S.bossDone + 1 end
checkEnd()
return finish(before, false)
`,
  /** ARGV: id */
  leave: offline(false),
  /** ARGV: ids... */
  hold: `
open(false)
local ids, seen, fresh = {}, {}, 0
for i = A + 1, #ARGV do
  local id = ARGV[i]
  ids[#ids + 1] = id
  if not seen[id] then
    seen[id] = true
    if not isOnline(id) then fresh = fresh + 1 end
  end
end
needRoom(fresh)
local before = fingerprint()
for _, id in ipairs(ids) do touch(id, '', '', '', true) end
return finish(before, false)
`,
  tick: `
open(false)
local before = fingerprint()
local silent = redis.call('ZRANGEBYSCORE', KSEEN, '-inf', num(now - C.offlineAfterMs))
for _, id in ipairs(silent) do goOffline(id) end
if S.phase == 'EXECUTING' and S.deadline and now >= S.deadline then cold().endRound('timeout', false) end
if S.phase == 'RESET' and S.resetUntil and now >= S.resetUntil then toWaiting() end
return finish(before, false)
`,
  /**
   * Only settle: scheduled ticks a transition could not consume for want of ticks (its tickGap),
   * and the release rule. ARGV: the job to answer ('' for none: a submit's, carried on).
   */
  settle: `
open(false)
local before = fingerprint()
if ARGV[A + 1] ~= '' then jobOut = ARGV[A + 1] end
return finish(before, false)
`,
  /** the whole configuration in ARGV 7 */
  put: `
open(true)
local before = fingerprint()
if not created then
  local vals = argvCfg()
  local kv = { payload = vals[#CFGF + 1] }
  for i, f in ipairs(CFGF) do kv[f] = vals[i] end
  cold().configure(kv)
end
return finish(before, false)
`,
  ensure: `
open(true)
local before = fingerprint()
return finish(before, false)
`,
  /** ARGV: field, value, field, value... (already validated, stored form) */
  configure: `
open(false)
local before = fingerprint()
local kv = {}
for i = A + 1, #ARGV, 2 do kv[ARGV[i]] = ARGV[i + 1] end
cold().configure(kv)
return finish(before, false)
`,
  abort: `
open(false)
if S.phase ~= 'EXECUTING' then fail('bad_request', 'no round is executing (phase ' .. S.phase .. ')') end
local before = fingerprint()
cold().endRound('aborted', true, 'failed')
return finish(before, false)
`,
  release: `
open(false)
local before = fingerprint()
cold().forceRelease()
return finish(before, false)
`,
  /** ARGV: id; a kick is a leave the operator caused, told to every process */
  kick: offline(true),
  /** ARGV: id, canonical payload JSON, payload JSON as given, priority */
  submit: `
open(false)
local before = fingerprint()
jobCreated = cold().jobSubmit(ARGV[A + 1], ARGV[A + 2], ARGV[A + 3], tonumber(ARGV[A + 4]))
jobOut = ARGV[A + 1]
return finish(before, false)
`,
  /** ARGV: id. A queued job is cancelled; a running one's round is aborted (or its pending retry dropped). */
  cancel: `
open(false)
local X = cold()
local id = ARGV[A + 1]
local j = X.jobGet(id)
if not j then fail('unknown_job', 'no job ' .. id .. ' in group ' .. NAME) end
if j.state ~= 'queued' and j.state ~= 'running' then fail('bad_request', 'job ' .. id .. ' is already ' .. j.state) end
local before = fingerprint()
jobOut = id
if j.state == 'queued' then
  X.jobDequeue(id)
  X.jobFinish(j, 'cancelled')
  X.jobEvent(j)
elseif S.phase == 'EXECUTING' and S.job == id then
  X.endRound('aborted', true, 'cancelled')
else
  if S.retry and S.retry.job == id then S.retry = nil end
  X.jobFinish(j, 'cancelled')
  X.jobEvent(j)
end
return finish(before, false)
`
} as const

const BODIES = { ...WRITE_BODIES, ...READ_BODIES }

export type OpName = keyof typeof BODIES

/** The whole source of each operation's script. */
export const OP_SOURCES: Record<OpName, string> = Object.fromEntries(
  Object.entries(BODIES).map(([name, body]) => [name, `${LUA_CORE}\n${LUA_HOT_RULES}\n${COLD}\n${LUA_FINISH}\n-- op: ${name}\n${body}`])
) as Record<OpName, string>

/** How many keys of a group the delete script removes: all but the tombstone and the registry. */
const GROUP_KEYS = 19

/**
 * deleteGroup: every key of the group at once, and its name out of the registry, in one step.
 * The group's last round stays behind in its tombstone key (KEYS[20]), so a group created again
 * under the same name goes on from there. ARGV: 1 group. Returns the last round, or false when
 * there was no such group.
 */
export const DELETE_SOURCE = `
local KTOMB, KREG = KEYS[${GROUP_KEYS + 1}], KEYS[${GROUP_KEYS + 2}]
redis.call('SREM', KREG, ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local round = tonumber(redis.call('HGET', KEYS[1], 'round') or '0')
local before = tonumber(redis.call('GET', KTOMB) or '0')
if before > round then round = before end
for i = 1, ${GROUP_KEYS} do redis.call('DEL', KEYS[i]) end
redis.call('SET', KTOMB, string.format('%.17g', round))
return round
`
