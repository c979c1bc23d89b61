// The Lua half of the Redis store: the round rules of engine/model/ (group.ts, rule.ts, jobs.ts,
// round.ts, terminals.ts), written once more for Redis (PROTOCOL sections 3, 6, 9 and 10). Every
// operation script is this prelude, the rules (lua-rules.ts, lua-jobs.ts) and a short body
// (lua-ops.ts, lua-reads.ts), so each transition runs start to finish inside Redis, atomically,
// with Redis TIME as the clock. A refusal raises an error before the first write: refused
// operations change nothing. Where this and the TypeScript model could differ, the model is the
// spec; test/store-suite/ and test/store-redis-model.test.ts hold both to it.
//
// Cost: a script runs its whole prelude at every call, and every function it defines is a closure
// made again each time. So the prelude defines only what the hot paths (heartbeat, ready, done)
// use; the rest (ending a round, releasing, jobs, ticks, configuration) is defined inside `cold()`,
// made on first use within a call, and reached as `cold().name`.
//
// KEYS (all hash-tagged with the group name, so one group lives in one Redis Cluster slot):
//  1 g      hash: phase round releasedAt resetUntil deadline updatedAt seq os ob np nb settled
//                 bossDone attempt job startAt lastTick evalTick missed retry jseq nq, and rel
//  2 cfg    hash: the group configuration (PROTOCOL section 2), payload as raw JSON
//  3 seen   zset: online terminal -> lastSeen (ms)
//  4 role   hash: online terminal -> small | boss
//  5 load   hash: terminal -> last reported load
//  6 meta   hash: terminal -> meta (raw JSON)
//  7 last   hash: terminal -> last round it took part in
//  8 rs     zset: ready smalls -> ready ticket
//  9 rb     zset: ready bosses -> ready ticket
// 10 parts  hash: participant -> small | boss (this round)
// 11 plist  list: participants in shard order (smalls, then bosses)
// 12 done   zset: participant -> order of its done
// 13 res    hash: participant -> '+' (ok) or '-', the arrival time (ms), a space, its result JSON
// 14 drop   zset: dropped participant -> order of its drop
// 15 hist   zset: round summary JSON scored by round
// 16 jq     zset: queued job ids, scored -priority * 2^32 + number (highest priority, then oldest)
// 17 jobs   hash: per job id, 'm:<id>' state|priority|number|submittedAt|startedAt|endedAt|attempts|rounds,
//           'p:<id>' its payload as submitted (raw JSON), 'c:<id>' the canonical JSON of the payload
//           where it differs, 'r:<id>' the summary of its last round (raw JSON)
// 18 jall   zset: every kept job id, scored by its number (listing, newest first)
// 19 jdone  zset: finished job ids in the order they finished (trimmed with the history)
// 20 tomb   string: the last round of this group when it was deleted (a re-created group goes on
//           from there: round numbers are never reused); removed when the group is created again
// 21 <prefix>:groups  set: every group's name (the one key outside the group's slot: scripts that
//           create a group add it here and check maxGroups against it in the same step)
// ARGV: 1 group, 2 maxTerminals, 3 historyLimit, 4 create ('' no, else maxGroups: create the group
// when it does not exist and fewer than that many exist), 5 maxQueuedJobs, 6 the scheduled ticks
// the calling process computed ('' none, else JSON [the tick they follow, the schedule and the
// zone they were computed for, [the ticks, ascending]]), 7 the configuration to create with or to
// put ('' none, else a JSON list of strings: CFGF's fields in order, then the payload's JSON),
// 8.. the operation's own arguments. Both JSON arguments are decoded only when used.

/** The group hash's scalar fields (KEYS[1]), as open() reads them and save() writes those that changed. */
const SCALARS = ['phase', 'round', 'releasedAt', 'resetUntil', 'deadline', 'updatedAt', 'seq', 'os', 'ob', 'np', 'nb', 'settled',
  'bossDone', 'attempt', 'job', 'startAt', 'lastTick', 'evalTick', 'missed', 'retry', 'jseq', 'nq'] as const

export const LUA_CORE = String.raw`
local KG, KC, KSEEN, KROLE, KLOAD, KMETA, KLAST, KRS, KRB, KPARTS, KPL, KDONE, KRES, KDROP, KHIST, KJQ, KJOBS, KJALL, KJDONE, KTOMB, KREG = unpack(KEYS)
local NAME = ARGV[1]
local MAXT = tonumber(ARGV[2])
local HLIM = tonumber(ARGV[3])
local MAXQ = tonumber(ARGV[5])
local CFGF = {'need', 'bossNeed', 'minOnlineRatio', 'heartbeatMs', 'offlineAfterMs', 'execTimeoutMs', 'dropTolerance',
  'completeOn', 'resetMs', 'selection', 'paused', 'startDelayMs', 'schedule', 'scheduleTz', 'misfireMs', 'jobsOnly',
  'retryMax', 'retryBackoffMs'}
local A = 7
local SF = {${SCALARS.map((f) => `'${f}'`).join(', ')}}
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local S, C = {}, {}
local events = {}
local created = false
-- settleTicks could not go on: it was given no usable ticks, or used them all up
local tickGap = false
-- submit and cancel: the job the answer carries, as the whole transition leaves it
local jobOut = nil
local jobCreated = false
local CHUNK = 1000
-- cold(): the rules the hot paths do not need, made on first use (lua-ops.ts)
local cold
-- the group's scalars as open() read them, so save() writes only the fields that changed
local S0 = nil

local function fail (code, msg) error({ err = 'RG ' .. code .. ' ' .. msg }) end
local function num (n) return string.format('%.17g', n) end
local function opt (v) if v == '' or not v then return nil end return tonumber(v) end
local function onum (v) if v == nil then return '' end return num(v) end
local function jnum (v) if v == nil then return 'null' end return num(v) end
-- clientIds, job ids and group names are [A-Za-z0-9_.:-]: they need no JSON escaping
local function q (id) return '"' .. id .. '"' end
local function jstr (s) if s == nil or s == '' then return 'null' end return q(s) end
local function jlist (ids)
  local out = {}
  for i, id in ipairs(ids) do out[i] = q(id) end
  return '[' .. table.concat(out, ',') .. ']'
end
local function hmget (key, ids)
  local out = {}
  for i = 1, #ids, CHUNK do
    local part = {}
    for j = i, math.min(i + CHUNK - 1, #ids) do part[#part + 1] = ids[j] end
    local v = redis.call('HMGET', key, unpack(part))
    for _, x in ipairs(v) do out[#out + 1] = x end
  end
  return out
end
local function split (s, sep)
  local out = {}
  for x in string.gmatch(s .. sep, '([^' .. sep .. ']*)' .. sep) do out[#out + 1] = x end
  return out
end

-- The configuration (keys missing in a group stored before PROTOCOL 1.1 take their defaults).
local function parseCfg (c)
  C.need = tonumber(c[1]); C.bossNeed = tonumber(c[2]); C.minOnlineRatio = tonumber(c[3])
  C.heartbeatMs = tonumber(c[4]); C.offlineAfterMs = tonumber(c[5]); C.execTimeoutMs = tonumber(c[6])
  C.dropTolerance = tonumber(c[7]); C.completeOn = c[8]; C.resetMs = tonumber(c[9])
  C.selection = c[10]; C.paused = c[11] == '1'
  C.startDelayMs = tonumber(c[12]) or 0; C.schedule = c[13] or ''; C.scheduleTz = c[14] or 'UTC'
  C.misfireMs = tonumber(c[15]) or 0; C.jobsOnly = c[16] == '1'
  C.retryMax = tonumber(c[17]) or 0; C.retryBackoffMs = tonumber(c[18]) or 1000
end

-- The configuration given in ARGV (create, put): CFGF's fields, then the payload.
local givenCfg = nil
local function argvCfg ()
  if not givenCfg then givenCfg = cjson.decode(ARGV[7]) end
  return givenCfg
end

-- A pending retry: 'attempt|at|job' ('' job: the group's payload).
local function parseRetry (v)
  if not v or v == '' then return nil end
  local f = split(v, '|')
  return { attempt = tonumber(f[1]), at = tonumber(f[2]), job = f[3] }
end

-- Load the group, or prepare to create it (written only by finish, after every check passed).
local function open (canCreate)
  local v = redis.call('HMGET', KG, unpack(SF))
  if v[1] then
    S.phase = v[1]; S.round = tonumber(v[2]); S.releasedAt = opt(v[3]); S.resetUntil = opt(v[4])
    S.deadline = opt(v[5]); S.updatedAt = tonumber(v[6]); S.seq = tonumber(v[7]); S.os = tonumber(v[8])
    S.ob = tonumber(v[9]); S.np = tonumber(v[10]); S.nb = tonumber(v[11]); S.settled = tonumber(v[12])
    S.bossDone = tonumber(v[13]); S.attempt = tonumber(v[14]) or 1; S.job = v[15] or ''; S.startAt = opt(v[16])
    S.lastTick = tonumber(v[17]) or 0; S.evalTick = tonumber(v[18]) or 0; S.missed = tonumber(v[19]) or 0
    S.retry = v[20] or ''; S.jseq = tonumber(v[21]) or 0; S.nq = tonumber(v[22]) or 0
    S0 = { ${SCALARS.map((f) => `${f} = S.${f}`).join(', ')} }
    S.retry = parseRetry(S.retry)
    parseCfg(redis.call('HMGET', KC, unpack(CFGF)))
    return
  end
  if not canCreate or ARGV[4] == '' then fail('unknown_group', 'no group named ' .. NAME) end
  if redis.call('SCARD', KREG) >= tonumber(ARGV[4]) and redis.call('SISMEMBER', KREG, NAME) == 0 then
    fail('unavailable', 'the broker already holds its maximum number of groups (' .. ARGV[4] .. ')')
  end
  created = true
  -- a group deleted before goes on from its last round: a round number is never handed out twice
  local last = tonumber(redis.call('GET', KTOMB) or '0')
  -- a new schedule starts from now: ticks before the group existed are not missed
  S = { phase = 'WAITING', round = last, updatedAt = now, seq = 0, os = 0, ob = 0, np = 0, nb = 0, settled = 0, bossDone = 0,
    attempt = 1, job = '', lastTick = now, evalTick = now, missed = 0, jseq = 0, nq = 0 }
  parseCfg(argvCfg())
end

local function payload ()
  if created then return argvCfg()[#CFGF + 1] end
  return redis.call('HGET', KC, 'payload')
end

-- The set sizes state shows: ready smalls, ready bosses, done, dropped (queued jobs: S.nq, kept
-- with the queue by every script that changes it).
local function counts ()
  return redis.call('ZCARD', KRS), redis.call('ZCARD', KRB), redis.call('ZCARD', KDONE), redis.call('ZCARD', KDROP)
end

-- model/group.ts fingerprint(): everything state shows but updatedAt (and what is derived), as a
-- list compared item by item (no string is built on the hot path).
local function fingerprintOf (rs, rb, nd, ndrop)
  return { S.phase, S.round, C.paused, C.need, C.bossNeed, S.os, S.ob, rs, rb, S.np, nd, ndrop, S.missed, S.nq, S.lastTick,
    S.retry and S.retry.attempt or 1 }
end

local function fingerprint () return fingerprintOf(counts()) end

local function sameAs (a, b)
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function readyKey (role) if role == 'boss' then return KRB end return KRS end

-- Room for n terminals not yet online (checked before any write).
local function needRoom (n)
  if n > 0 and redis.call('ZCARD', KSEEN) + n > MAXT then
    fail('unavailable', 'group ' .. NAME .. ' already holds ' .. MAXT .. ' terminals')
  end
end
local function isOnline (id) return redis.call('HEXISTS', KROLE, id) == 1 end

local function changeRole (id, from, to)
  if from == 'boss' then S.ob = S.ob - 1; S.os = S.os + 1 else S.os = S.os - 1; S.ob = S.ob + 1 end
  if redis.call('ZREM', readyKey(from), id) == 1 then
    S.seq = S.seq + 1
    redis.call('ZADD', readyKey(to), S.seq, id)
  end
  redis.call('HSET', KROLE, id, to)
end

-- Hear from a terminal (role, load, meta: '' when not given). Returns its role.
-- A terminal not yet online needs room first (before its first write), unless the caller
-- already made room for a batch (roomChecked).
local function touch (id, role, load, meta, roomChecked)
  local r = redis.call('HGET', KROLE, id)
  if not r then
    if not roomChecked then needRoom(1) end
    r = role ~= '' and role or 'small'
    redis.call('HSET', KROLE, id, r)
    if r == 'boss' then S.ob = S.ob + 1 else S.os = S.os + 1 end
  elseif role ~= '' and role ~= r then
    changeRole(id, r, role)
    r = role
  end
  redis.call('ZADD', KSEEN, now, id)
  if load ~= '' then redis.call('HSET', KLOAD, id, load) end
  if meta ~= '' then redis.call('HSET', KMETA, id, meta) end
  return r
end

local function toWaiting () S.phase = 'WAITING'; S.resetUntil = nil end
`

/**
 * The end of every transition (after lua-jobs.ts and lua-rules.ts): settle (scheduled ticks, the
 * release rule), note whether state changed, write the group hash, answer. The answer's layout is
 * parsed by codec.ts `parseReply` (REPLY_EVENTS is where the events start).
 */
export const LUA_FINISH = String.raw`
-- '' for nil: a script's answer cannot hold nil. Numbers go back as they are: every number in an
-- answer is a whole number, which Redis answers as an integer (no string formatting here).
local function rnum (v) if v == nil then return '' end return v end

local function reply (changed, dup, rs, rb, nd, ndrop)
  local resetUntil, deadline, startAt, retryAt = '', '', '', ''
  if S.phase == 'RESET' then resetUntil = rnum(S.resetUntil) end
  if S.phase == 'EXECUTING' then deadline = rnum(S.deadline); startAt = rnum(S.startAt) end
  local attempt = S.retry and S.retry.attempt or 1
  if S.phase == 'EXECUTING' then attempt = S.attempt end
  if S.phase == 'WAITING' and S.retry and S.retry.at > now then retryAt = S.retry.at end
  -- what the calling process computes the ticks from: only for a scheduled group
  local sched = ''
  if C.schedule ~= '' then sched = { S.lastTick, C.schedule, C.scheduleTz, C.startDelayMs, C.misfireMs, tickGap and 1 or 0 } end
  local job = ''
  if jobOut then
    local json = cold().jobJson(jobOut)
    if json then job = { json, jobCreated and 1 or 0 } end
  end
  local out = { S.phase, S.round, C.paused and 1 or 0, C.need, C.bossNeed, S.os, S.ob, rs, rb, S.np, nd, ndrop,
    rnum(S.releasedAt), S.updatedAt, resetUntil, deadline, changed and 1 or 0, C.heartbeatMs, dup and 1 or 0,
    now, attempt, startAt, S.missed, S.nq, retryAt, sched, job }
  for _, e in ipairs(events) do out[#out + 1] = e end
  return out
end

local function stored (v)
  if type(v) == 'number' then return num(v) end
  return v or ''
end

local function retryField (r)
  if not r then return '' end
  return num(r.attempt) .. '|' .. num(r.at) .. '|' .. r.job
end

-- Write the group hash: every field when the group is new, else only the fields that changed
-- (nothing at all for a repeat heartbeat).
local function save ()
  if created then
    local c = {}
    local vals = argvCfg()
    for i, f in ipairs(CFGF) do c[#c + 1] = f; c[#c + 1] = vals[i] end
    c[#c + 1] = 'payload'; c[#c + 1] = vals[#CFGF + 1]
    redis.call('HSET', KC, unpack(c))
    redis.call('SADD', KREG, NAME)
    redis.call('DEL', KTOMB)
    S0 = {}
  end
  local kv = {}
${SCALARS.filter((f) => f !== 'retry').map((f) => `  if S.${f} ~= S0.${f} then kv[#kv + 1] = '${f}'; kv[#kv + 1] = stored(S.${f}) end`).join('\n')}
  local retry = retryField(S.retry)
  if retry ~= S0.retry then kv[#kv + 1] = 'retry'; kv[#kv + 1] = retry end
  if #kv > 0 then redis.call('HSET', KG, unpack(kv)) end
end

-- Every transition ends here: scheduled ticks and the release rule, note whether state changed,
-- write, answer.
local function finish (before, dup)
  settle()
  local rs, rb, nd, ndrop = counts()
  local changed = created or not sameAs(fingerprintOf(rs, rb, nd, ndrop), before)
  if changed then S.updatedAt = now end
  save()
  return reply(changed, dup, rs, rb, nd, ndrop)
end
`

/** Index of the first event in a script's answer (codec.ts). */
export const REPLY_EVENTS = 27
