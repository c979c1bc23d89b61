// One Lua script per store operation: the prelude of lua-core.ts (rules, KEYS and ARGV layout)
// followed by the operation's body. Operation arguments start at ARGV[A + 1] (A = 16).
import { LUA_CORE } from './lua-core.js'

const TERMINAL_ARGS = `
local id = ARGV[A + 1]
local before = fingerprint()
`

const WRITE_CFG = `
local vals = { ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[16] }
local c = {}
for i, f in ipairs(CFGF) do c[#c + 1] = f; c[#c + 1] = vals[i] end
c[#c + 1] = 'payload'; c[#c + 1] = ARGV[15]
redis.call('HSET', KC, unpack(c))
parseCfg(vals)
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

const BODIES = {
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
redis.call('HSET', KRES, id, ARGV[A + 3] .. ARGV[A + 4])
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
if S.phase == 'EXECUTING' and S.deadline and now >= S.deadline then endRound('timeout') end
if S.phase == 'RESET' and S.resetUntil and now >= S.resetUntil then toWaiting() end
return finish(before, false)
`,
  /** ARGV 5..16: the whole configuration */
  put: `
open(true)
local before = fingerprint()
if not created then
${WRITE_CFG}
end
return finish(before, false)
`,
  ensure: `
open(true)
local before = fingerprint()
return finish(before, false)
`,
  /** ARGV: field, value, field, value... (already validated) */
  configure: `
open(false)
local before = fingerprint()
local kv = {}
for i = A + 1, #ARGV, 2 do kv[#kv + 1] = ARGV[i]; kv[#kv + 1] = ARGV[i + 1] end
if #kv > 0 then redis.call('HSET', KC, unpack(kv)) end
parseCfg(redis.call('HMGET', KC, unpack(CFGF)))
return finish(before, false)
`,
  abort: `
open(false)
if S.phase ~= 'EXECUTING' then fail('bad_request', 'no round is executing (phase ' .. S.phase .. ')') end
local before = fingerprint()
endRound('aborted')
return finish(before, false)
`,
  release: `
open(false)
local before = fingerprint()
forceRelease()
return finish(before, false)
`,
  /** ARGV: id; a kick is a leave the operator caused, told to every process */
  kick: offline(true),
  // --- reads: one consistent view each ------------------------------------------------------
  snapshot: `
if redis.call('EXISTS', KG) == 0 then return false end
open(false)
return { reply(false, false, counts()), redis.call('HGETALL', KC), redis.call('HGET', KG, 'rel') or '' }
`,
  terminals: `
open(false)
local z = redis.call('ZRANGE', KSEEN, 0, -1, 'WITHSCORES')
local ids, seen = {}, {}
for i = 1, #z, 2 do ids[#ids + 1] = z[i]; seen[#seen + 1] = z[i + 1] end
return { ids, seen, hmget(KROLE, ids), hmget(KLOAD, ids), hmget(KMETA, ids),
  redis.call('ZRANGE', KRS, 0, -1), redis.call('ZRANGE', KRB, 0, -1), redis.call('HKEYS', KPARTS) }
`,
  /** ARGV: limit, before ('' for none) */
  rounds: `
open(false)
local max = '+inf'
if ARGV[A + 2] ~= '' then max = '(' .. ARGV[A + 2] end
return redis.call('ZREVRANGEBYSCORE', KHIST, max, '-inf', 'LIMIT', 0, tonumber(ARGV[A + 1]))
`
} as const

export type OpName = keyof typeof BODIES

/** The whole source of each operation's script. */
export const OP_SOURCES: Record<OpName, string> = Object.fromEntries(
  Object.entries(BODIES).map(([name, body]) => [name, `${LUA_CORE}\n-- op: ${name}\n${body}`])
) as Record<OpName, string>

/**
 * deleteGroup: every key of the group at once, and its name out of the registry, in one step.
 * The group's last round stays behind in its tombstone key (KEYS[16]), so a group created again
 * under the same name goes on from there. ARGV: 1 group. Returns the last round, or false when
 * there was no such group.
 */
export const DELETE_SOURCE = `
local KTOMB, KREG = KEYS[16], KEYS[17]
redis.call('SREM', KREG, ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local round = tonumber(redis.call('HGET', KEYS[1], 'round') or '0')
local before = tonumber(redis.call('GET', KTOMB) or '0')
if before > round then round = before end
for i = 1, 15 do redis.call('DEL', KEYS[i]) end
redis.call('SET', KTOMB, string.format('%.17g', round))
return round
`
