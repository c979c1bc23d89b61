// The Lua half of the Redis store: the round rules of group-model.ts, written once more for Redis
// (PROTOCOL section 3). Every operation script is this prelude followed by a short body (see
// lua-ops.ts), so each transition runs start to finish inside Redis, atomically, with Redis TIME
// as the clock. A refusal raises an error before the first write: refused operations change
// nothing. test/store-suite/ holds this and the memory store to the same rules.
//
// KEYS (all hash-tagged with the group name, so one group lives in one Redis Cluster slot):
//  1 g     hash: phase round releasedAt resetUntil deadline updatedAt seq os ob np nb settled bossDone rel
//  2 cfg   hash: the group configuration (PROTOCOL section 2), payload as raw JSON
//  3 seen  zset: online terminal -> lastSeen (ms)
//  4 role  hash: online terminal -> small | boss
//  5 load  hash: terminal -> last reported load
//  6 meta  hash: terminal -> meta (raw JSON)
//  7 last  hash: terminal -> last round it took part in
//  8 rs    zset: ready smalls -> ready ticket
//  9 rb    zset: ready bosses -> ready ticket
// 10 parts hash: participant -> small | boss (this round)
// 11 plist list: participants in shard order (smalls, then bosses)
// 12 done  zset: participant -> order of its done
// 13 res   hash: participant -> "1" or "0" (ok) followed by its result as raw JSON, if any
// 14 drop  zset: dropped participant -> order of its drop
// 15 hist  zset: round summary JSON scored by round
// 16 tomb  string: the last round of this group when it was deleted (a re-created group goes on
//          from there: round numbers are never reused); removed when the group is created again
// 17 <prefix>:groups  set: every group's name (the one key outside the group's slot: scripts that
//          create a group add it here and check maxGroups against it in the same step)
// ARGV: 1 group, 2 maxTerminals, 3 historyLimit, 4 create ('' no, else maxGroups: create the group
// when it does not exist and fewer than that many exist), 5..16 the configuration to create with,
// 17.. the operation's own arguments.
export const LUA_CORE = String.raw`
local KG, KC, KSEEN, KROLE, KLOAD, KMETA, KLAST, KRS, KRB, KPARTS, KPL, KDONE, KRES, KDROP, KHIST, KTOMB, KREG = unpack(KEYS)
local NAME = ARGV[1]
local MAXT = tonumber(ARGV[2])
local HLIM = tonumber(ARGV[3])
local A = 16
local CFGF = {'need', 'bossNeed', 'minOnlineRatio', 'heartbeatMs', 'offlineAfterMs', 'execTimeoutMs', 'dropTolerance', 'completeOn', 'resetMs', 'selection', 'paused'}
local SF = {'phase', 'round', 'releasedAt', 'resetUntil', 'deadline', 'updatedAt', 'seq', 'os', 'ob', 'np', 'nb', 'settled', 'bossDone'}
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local S, C = {}, {}
local events = {}
local created = false
-- the group hash as read by open(), so save() writes it only when a field changed
local stored = nil
local CHUNK = 1000

local function fail (code, msg) error({ err = 'RG ' .. code .. ' ' .. msg }) end
local function num (n) return string.format('%.17g', n) end
local function opt (v) if v == '' or not v then return nil end return tonumber(v) end
local function onum (v) if v == nil then return '' end return num(v) end
-- clientIds and group names are [A-Za-z0-9_.:-]: they need no JSON escaping
local function q (id) return '"' .. id .. '"' end
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

local function parseCfg (c)
  C.need = tonumber(c[1]); C.bossNeed = tonumber(c[2]); C.minOnlineRatio = tonumber(c[3])
  C.heartbeatMs = tonumber(c[4]); C.offlineAfterMs = tonumber(c[5]); C.execTimeoutMs = tonumber(c[6])
  C.dropTolerance = tonumber(c[7]); C.completeOn = c[8]; C.resetMs = tonumber(c[9])
  C.selection = c[10]; C.paused = c[11] == '1'
end

-- Load the group, or prepare to create it (written only by finish, after every check passed).
local function open (canCreate)
  local v = redis.call('HMGET', KG, unpack(SF))
  if v[1] then
    local raw = {}
    for i = 1, #SF do raw[i] = v[i] or '' end
    stored = table.concat(raw, '|')
    S.phase = v[1]; S.round = tonumber(v[2]); S.releasedAt = opt(v[3]); S.resetUntil = opt(v[4])
    S.deadline = opt(v[5]); S.updatedAt = tonumber(v[6]); S.seq = tonumber(v[7]); S.os = tonumber(v[8])
    S.ob = tonumber(v[9]); S.np = tonumber(v[10]); S.nb = tonumber(v[11]); S.settled = tonumber(v[12])
    S.bossDone = tonumber(v[13])
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
  S = { phase = 'WAITING', round = last, updatedAt = now, seq = 0, os = 0, ob = 0, np = 0, nb = 0, settled = 0, bossDone = 0 }
  parseCfg({ ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[16] })
end

local function payload ()
  if created then return ARGV[15] end
  return redis.call('HGET', KC, 'payload')
end

-- The set sizes state shows: ready smalls, ready bosses, done, dropped.
local function counts ()
  return redis.call('ZCARD', KRS), redis.call('ZCARD', KRB), redis.call('ZCARD', KDONE), redis.call('ZCARD', KDROP)
end

local function fingerprintOf (rs, rb, nd, ndrop)
  return table.concat({ S.phase, S.round, C.paused and 1 or 0, C.need, C.bossNeed, S.os, S.ob, rs, rb, S.np, nd, ndrop }, '|')
end

local function fingerprint () return fingerprintOf(counts()) end

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

local function endRound (outcome)
  if S.phase ~= 'EXECUTING' then return end
  local parts = redis.call('LRANGE', KPL, 0, -1)
  local done = redis.call('ZRANGE', KDONE, 0, -1)
  local dropped = redis.call('ZRANGE', KDROP, 0, -1)
  local results, failed = {}, {}
  local res = hmget(KRES, done)
  for i, id in ipairs(done) do
    local v = res[i] or '1'
    if #v > 1 then results[#results + 1] = q(id) .. ':' .. string.sub(v, 2) end
    if string.sub(v, 1, 1) == '0' then failed[#failed + 1] = id end
  end
  local summary = '{"group":' .. q(NAME) .. ',"round":' .. num(S.round) .. ',"outcome":"' .. outcome ..
    '","releasedAt":' .. num(S.releasedAt) .. ',"endedAt":' .. num(now) .. ',"participants":' .. jlist(parts) ..
    ',"done":' .. jlist(done) .. ',"dropped":' .. jlist(dropped) .. ',"results":{' .. table.concat(results, ',') ..
    '},"failed":' .. jlist(failed) .. '}'
  redis.call('ZADD', KHIST, S.round, summary)
  local n = redis.call('ZCARD', KHIST)
  if n > HLIM then redis.call('ZREMRANGEBYRANK', KHIST, 0, n - HLIM - 1) end
  events[#events + 1] = 'E' .. summary
  redis.call('DEL', KPARTS, KPL, KDONE, KRES, KDROP)
  redis.call('HDEL', KG, 'rel')
  S.np = 0; S.nb = 0; S.settled = 0; S.bossDone = 0; S.deadline = nil
  S.phase = 'RESET'
  S.resetUntil = now + C.resetMs
  if C.resetMs == 0 then toWaiting() end
end

local function dropLimit ()
  local t = C.dropTolerance
  if t == math.floor(t) then return t end
  return math.floor(t * S.np)
end

local function completeOn ()
  if C.completeOn ~= '' then return C.completeOn end
  if C.bossNeed > 0 then return 'boss' end
  return 'all'
end

local function checkEnd ()
  if S.phase ~= 'EXECUTING' then return end
  if redis.call('ZCARD', KDROP) > dropLimit() then endRound('aborted'); return end
  local complete
  if completeOn() == 'boss' and S.nb > 0 then complete = S.bossDone >= S.nb else complete = S.settled >= S.np end
  if complete then endRound('completed') end
end

local function goOffline (id)
  local r = redis.call('HGET', KROLE, id)
  if not r then return end
  redis.call('HDEL', KROLE, id); redis.call('ZREM', KSEEN, id)
  redis.call('HDEL', KLOAD, id); redis.call('HDEL', KMETA, id); redis.call('HDEL', KLAST, id)
  if r == 'boss' then S.ob = S.ob - 1 else S.os = S.os - 1 end
  redis.call('ZREM', readyKey(r), id)
  if S.phase == 'EXECUTING' and redis.call('HEXISTS', KPARTS, id) == 1 and not redis.call('ZSCORE', KDONE, id) then
    if redis.call('ZADD', KDROP, 'NX', redis.call('ZCARD', KDROP) + 1, id) == 1 then S.settled = S.settled + 1 end
    checkEnd()
  end
end

local function selectSmalls (count)
  if count <= 0 then return {} end
  if C.selection ~= 'fair' and C.selection ~= 'load' then return redis.call('ZRANGE', KRS, 0, count - 1) end
  local z = redis.call('ZRANGE', KRS, 0, -1, 'WITHSCORES')
  local ids, seqs = {}, {}
  for i = 1, #z, 2 do ids[#ids + 1] = z[i]; seqs[#seqs + 1] = tonumber(z[i + 1]) end
  local fair = C.selection == 'fair'
  local vals = hmget(fair and KLAST or KLOAD, ids)
  local cands = {}
  for i, id in ipairs(ids) do
    local k = tonumber(vals[i])
    if k == nil then if fair then k = 0 else k = math.huge end end
    cands[i] = { id = id, k = k, s = seqs[i] }
  end
  table.sort(cands, function (a, b) if a.k ~= b.k then return a.k < b.k end return a.s < b.s end)
  local out = {}
  for i = 1, math.min(count, #cands) do out[i] = cands[i].id end
  return out
end

local function freeze (nSmall, nBoss)
  local smalls = selectSmalls(nSmall)
  local bosses = {}
  if nBoss > 0 then bosses = redis.call('ZRANGE', KRB, 0, nBoss - 1) end
  S.round = S.round + 1
  S.phase = 'EXECUTING'
  S.releasedAt = now
  redis.call('DEL', KPARTS, KPL, KDONE, KRES, KDROP)
  local all = {}
  for _, id in ipairs(smalls) do all[#all + 1] = id end
  for _, id in ipairs(bosses) do all[#all + 1] = id end
  for i = 1, #all, CHUNK do
    local hp, pl, lr = {}, {}, {}
    for j = i, math.min(i + CHUNK - 1, #all) do
      local id = all[j]
      hp[#hp + 1] = id; hp[#hp + 1] = (j <= #smalls) and 'small' or 'boss'
      pl[#pl + 1] = id
      lr[#lr + 1] = id; lr[#lr + 1] = num(S.round)
    end
    redis.call('HSET', KPARTS, unpack(hp))
    redis.call('RPUSH', KPL, unpack(pl))
    redis.call('HSET', KLAST, unpack(lr))
    redis.call('ZREM', KRS, unpack(pl))
    redis.call('ZREM', KRB, unpack(pl))
  end
  S.np = #all; S.nb = #bosses; S.settled = 0; S.bossDone = 0
  S.deadline = now + C.execTimeoutMs
  local rel = '{"group":' .. q(NAME) .. ',"round":' .. num(S.round) .. ',"releasedAt":' .. num(now) ..
    ',"deadline":' .. num(S.deadline) .. ',"participants":' .. jlist(all) .. ',"bosses":' .. jlist(bosses) ..
    ',"payload":' .. payload() .. '}'
  redis.call('HSET', KG, 'rel', rel)
  events[#events + 1] = 'R' .. rel
end

local function tryRelease ()
  if S.phase ~= 'WAITING' or C.paused then return end
  local need, bossNeed = C.need, C.bossNeed
  if need == 0 and bossNeed == 0 then return end
  local effNeed = math.min(need, S.os)
  if S.os < math.ceil(need * C.minOnlineRatio - 1e-9) then return end
  if need > 0 and effNeed < 1 then return end
  if redis.call('ZCARD', KRS) < effNeed or redis.call('ZCARD', KRB) < bossNeed then return end
  freeze(effNeed, bossNeed)
end

local function forceRelease ()
  if C.paused then fail('bad_request', 'the group is paused') end
  if S.phase ~= 'WAITING' then fail('bad_request', 'the group is not waiting (phase ' .. S.phase .. ')') end
  local rs, rb = redis.call('ZCARD', KRS), redis.call('ZCARD', KRB)
  local smalls, bosses = rs, rb
  if C.need > 0 then smalls = math.min(C.need, rs) end
  if C.bossNeed > 0 then bosses = math.min(C.bossNeed, rb) end
  if smalls + bosses < 1 then fail('bad_request', 'nobody is ready') end
  freeze(smalls, bosses)
end

local function reply (changed, dup, rs, rb, nd, ndrop)
  local resetUntil, deadline = '', ''
  if S.phase == 'RESET' then resetUntil = onum(S.resetUntil) end
  if S.phase == 'EXECUTING' then deadline = onum(S.deadline) end
  local out = { S.phase, num(S.round), C.paused and 1 or 0, num(C.need), num(C.bossNeed), num(S.os), num(S.ob),
    rs, rb, num(S.np), nd, ndrop,
    onum(S.releasedAt), num(S.updatedAt), resetUntil, deadline, changed and 1 or 0, num(C.heartbeatMs),
    dup and 1 or 0, created and 1 or 0, num(now) }
  for _, e in ipairs(events) do out[#out + 1] = e end
  return out
end

local function save ()
  if created then
    local c = {}
    local vals = { ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[16] }
    for i, f in ipairs(CFGF) do c[#c + 1] = f; c[#c + 1] = vals[i] end
    c[#c + 1] = 'payload'; c[#c + 1] = ARGV[15]
    redis.call('HSET', KC, unpack(c))
    redis.call('SADD', KREG, NAME)
    redis.call('DEL', KTOMB)
  end
  local vals = { S.phase, num(S.round), onum(S.releasedAt), onum(S.resetUntil), onum(S.deadline), num(S.updatedAt),
    num(S.seq), num(S.os), num(S.ob), num(S.np), num(S.nb), num(S.settled), num(S.bossDone) }
  if table.concat(vals, '|') == stored then return end -- nothing changed: no write (a repeat heartbeat)
  local kv = {}
  for i, f in ipairs(SF) do kv[#kv + 1] = f; kv[#kv + 1] = vals[i] end
  redis.call('HSET', KG, unpack(kv))
end

-- Every transition ends here: check the release rule, note whether state changed, write, answer.
local function finish (before, dup)
  tryRelease()
  local rs, rb, nd, ndrop = counts()
  local changed = created or fingerprintOf(rs, rb, nd, ndrop) ~= before
  if changed then S.updatedAt = now end
  save()
  return reply(changed, dup, rs, rb, nd, ndrop)
end
`
