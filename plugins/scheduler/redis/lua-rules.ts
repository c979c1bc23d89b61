// The Lua half of the round rules: model/round.ts (the summary and its timeline), model/group.ts
// (end of a round with retries and jobs decided, going offline, release, configuration) and
// model/rule.ts (the release rule as a blocker, scheduled ticks). Same names as the model where
// there is one; where Lua and the model could differ, the model is the spec. LUA_HOT_RULES is what
// the hot paths run (the release rule, the end-of-round check, going offline, finding that no
// scheduled tick is due); LUA_COLD_RULES is
// defined inside cold() (lua-ops.ts), made only when a transition ends a round, releases, takes a
// job, settles a scheduled tick or changes the configuration.

/** In the prelude. */
export const LUA_HOT_RULES = String.raw`
local TICK_GRACE_MS = 100
local MISSED_EVENTS_PER_TRANSITION = 10

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
  if redis.call('ZCARD', KDROP) > dropLimit() then cold().endRound('aborted', false); return end
  local complete
  if completeOn() == 'boss' and S.nb > 0 then complete = S.bossDone >= S.nb else complete = S.settled >= S.np end
  if complete then cold().endRound('completed', false) end
end

-- A terminal goes offline (leave, kick, silence): a participant not done yet drops.
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

local function onlineThreshold () return math.ceil(C.need * C.minOnlineRatio - 1e-9) end

-- model/rule.ts blocker: which rule of the release keeps it from happening now (nil when none does).
local function blocker ()
  if S.phase ~= 'WAITING' then return 'phase' end
  if C.paused then return 'paused' end
  if S.retry and now < S.retry.at then return 'backoff' end
  if C.jobsOnly and not S.retry and S.nq == 0 then return 'jobs' end
  local need, bossNeed = C.need, C.bossNeed
  if need == 0 and bossNeed == 0 then return 'nobody' end
  if S.os < onlineThreshold() then return 'online' end
  local effNeed = math.min(need, S.os)
  if need > 0 and effNeed < 1 then return 'online' end
  if redis.call('ZCARD', KRS) < effNeed then return 'ready' end
  if redis.call('ZCARD', KRB) < bossNeed then return 'bosses' end
  return nil
end

-- model/rule.ts settleTicks. Lua has no cron: the calling process passes the ticks that follow a
-- tick it knows, for the schedule and zone it knows (ARGV 6). They are used only if they
-- were computed for the stored schedule and from no later than the last consumed tick, so the ticks
-- after lastTick among them are exactly the schedule's next ones. Running out of them (or having
-- none) sets tickGap: the calling process then runs this again with the ticks that follow the
-- lastTick this answers. A tick is consumed (lastTick advanced) here, inside the atomic script.
local function settleTicks ()
  if ARGV[6] == '' then tickGap = true; return end
  local given = cjson.decode(ARGV[6])
  if given[2] ~= C.schedule or given[3] ~= C.scheduleTz or given[1] > S.lastTick then
    tickGap = true
    return
  end
  local reported = 0
  for _, tick in ipairs(given[4]) do
    if tick > S.lastTick then
      local due = tick - C.startDelayMs
      if now < due then return end
      local first = S.evalTick < tick
      local atTick = first and now - due <= TICK_GRACE_MS
      if tick > S.evalTick then S.evalTick = tick end
      -- released at the tick, or later inside its misfire window; a tick found past its window (the
      -- broker was down, or busy) is missed even if the rule holds now: never fired late
      local inWindow = now < tick + C.misfireMs - C.startDelayMs
      local why = blocker()
      if why == nil and (atTick or inWindow) then
        S.lastTick = tick
        if atTick then cold().freeze(tick) else cold().freeze(now + C.startDelayMs) end
        return
      end
      if inWindow then return end -- still inside the misfire window
      S.lastTick = tick
      S.missed = S.missed + 1
      if reported < MISSED_EVENTS_PER_TRANSITION then
        reported = reported + 1
        if why == nil then
          if first then why = 'unseen' else why = 'late' end
        end
        events[#events + 1] = 'M' .. num(tick) .. '|' .. cold().describe(why)
      end
    end
  end
  tickGap = true
end

-- model/group.ts settle: after every transition, scheduled ticks, then release at once if the rule
-- holds. A retry in a scheduled group does not wait for another tick: it reruns the tick's round
-- once its backoff has passed and the rule holds.
local function settle ()
  local scheduled = C.schedule ~= ''
  if scheduled and not S.retry then settleTicks(); return end
  if blocker() == nil then cold().freeze(now + C.startDelayMs); return end
  if scheduled then settleTicks() end
end
`

/** Inside cold(), after lua-jobs.ts. */
export const LUA_COLD_RULES = String.raw`
local MAX_RETRY_BACKOFF_MS = 600000

-- model/round.ts timingOf: done delays from startAt, p50 and p99 by nearest rank, the last.
local function timingOf (delays)
  if #delays == 0 then return '{"doneP50Ms":null,"doneP99Ms":null,"lastDoneMs":null}' end
  table.sort(delays)
  local n = #delays
  local function rank (p) return delays[math.max(1, math.ceil(p * n))] end
  return '{"doneP50Ms":' .. num(rank(0.5)) .. ',"doneP99Ms":' .. num(rank(0.99)) .. ',"lastDoneMs":' .. num(delays[n]) .. '}'
end

-- model/round.ts summary (PROTOCOL section 6), as JSON. 'results' goes last: everything before it
-- holds only numbers, fixed words and ids, which the terminalRounds script searches.
local function summaryOf (outcome)
  local parts = redis.call('LRANGE', KPL, 0, -1)
  local done = redis.call('ZRANGE', KDONE, 0, -1)
  local dropped = redis.call('ZRANGE', KDROP, 0, -1)
  local results, failed, doneMs, delays, settled = {}, {}, {}, {}, {}
  local res = hmget(KRES, done)
  for i, id in ipairs(done) do
    settled[id] = true
    local v = res[i] or '+'
    local mark, at, result = string.sub(v, 1, 1), nil, ''
    local sp = string.find(v, ' ', 2, true)
    if mark == '+' or mark == '-' then
      at = tonumber(string.sub(v, 2, (sp or 0) - 1))
      if sp then result = string.sub(v, sp + 1) end
    else
      result = string.sub(v, 2) -- reported before PROTOCOL 1.1 ('1'/'0' then the result): no time
    end
    if #result > 0 then results[#results + 1] = q(id) .. ':' .. result end
    if mark == '-' or mark == '0' then failed[#failed + 1] = id end
    if at then
      local ms = at - S.startAt
      doneMs[#doneMs + 1] = q(id) .. ':' .. num(ms)
      delays[#delays + 1] = ms
    end
  end
  for _, id in ipairs(dropped) do settled[id] = true end
  local stragglers = {}
  for _, id in ipairs(parts) do if not settled[id] then stragglers[#stragglers + 1] = id end end
  return '{"group":' .. q(NAME) .. ',"round":' .. num(S.round) .. ',"attempt":' .. num(S.attempt) .. ',"job":' .. jstr(S.job) ..
    ',"outcome":"' .. outcome .. '","releasedAt":' .. num(S.releasedAt) .. ',"startAt":' .. num(S.startAt) ..
    ',"endedAt":' .. num(now) .. ',"participants":' .. jlist(parts) .. ',"done":' .. jlist(done) ..
    ',"dropped":' .. jlist(dropped) .. ',"stragglers":' .. jlist(stragglers) .. ',"timing":' .. timingOf(delays) ..
    ',"failed":' .. jlist(failed) .. ',"doneMs":{' .. table.concat(doneMs, ',') .. '},"results":{' ..
    table.concat(results, ',') .. '}}'
end

-- engine/group-config.ts retryBackoff: each retry twice as long as the one before, at most 10 minutes.
local function retryBackoff (attempt)
  return math.min(MAX_RETRY_BACKOFF_MS, C.retryBackoffMs * 2 ^ math.max(0, attempt - 2))
end

-- model/group.ts endRound: the summary into the history, retries and the job decided (PROTOCOL
-- sections 3 and 10), RESET. byOperator: an abort or a job cancel, which ends any retry chain.
local function endRound (outcome, byOperator, jobState)
  if S.phase ~= 'EXECUTING' then return end
  local summary = summaryOf(outcome)
  redis.call('ZADD', KHIST, num(S.round), summary)
  local n = redis.call('ZCARD', KHIST)
  if n > HLIM then redis.call('ZREMRANGEBYRANK', KHIST, 0, n - HLIM - 1) end
  events[#events + 1] = 'E' .. summary

  local failedByRule = outcome == 'timeout' or (outcome == 'aborted' and not byOperator)
  S.retry = nil
  if failedByRule and S.attempt <= C.retryMax then
    local attempt = S.attempt + 1
    S.retry = { attempt = attempt, at = now + retryBackoff(attempt), job = S.job }
    events[#events + 1] = 'T{"round":' .. num(S.round) .. ',"attempt":' .. num(attempt) .. ',"at":' .. num(S.retry.at) ..
      ',"job":' .. jstr(S.job) .. '}'
  elseif failedByRule and C.retryMax > 0 then
    events[#events + 1] = 'X{"round":' .. num(S.round) .. ',"attempt":' .. num(S.attempt) .. ',"job":' .. jstr(S.job) .. '}'
  end
  local job = nil
  if S.job ~= '' then job = jobGet(S.job) end
  if job then
    local state = 'failed'
    if outcome == 'completed' then state = 'completed' elseif S.retry then state = nil elseif byOperator then state = jobState end
    jobRoundEnded(job, summary, state)
    jobEvent(job)
  end

  redis.call('DEL', KPARTS, KPL, KDONE, KRES, KDROP)
  redis.call('HDEL', KG, 'rel')
  S.np = 0; S.nb = 0; S.settled = 0; S.bossDone = 0; S.deadline = nil; S.startAt = nil; S.job = ''; S.attempt = 1
  S.phase = 'RESET'
  S.resetUntil = now + C.resetMs
  if C.resetMs == 0 then toWaiting() end
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

-- model/group.ts takeWork: the pending retry, else the next queued job, else the group's payload.
-- Returns attempt, job id ('' none), payload JSON.
local function takeWork ()
  local retry = S.retry
  S.retry = nil
  local job = nil
  if retry then
    if retry.job ~= '' then job = jobGet(retry.job) end
  else
    local head = redis.call('ZRANGE', KJQ, 0, 0)
    if head[1] then job = jobGet(head[1]) end
  end
  local attempt = 1
  if retry then attempt = retry.attempt end
  if not job then return attempt, '', payload() end
  jobStart(job, S.round, attempt)
  jobEvent(job)
  return attempt, job.id, redis.call('HGET', KJOBS, 'p:' .. job.id)
end

-- Release: freeze the participants, take the job (or the retry), start the round. nSmall and
-- nBoss default to the release rule's counts.
local function freeze (startAt, nSmall, nBoss)
  nSmall = nSmall or math.min(C.need, S.os)
  nBoss = nBoss or C.bossNeed
  local smalls = selectSmalls(nSmall)
  local bosses = {}
  if nBoss > 0 then bosses = redis.call('ZRANGE', KRB, 0, nBoss - 1) end
  S.round = S.round + 1
  local attempt, job, body = takeWork()
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
  S.attempt = attempt; S.job = job; S.startAt = startAt
  S.deadline = startAt + C.execTimeoutMs
  local rel = '{"group":' .. q(NAME) .. ',"round":' .. num(S.round) .. ',"attempt":' .. num(attempt) .. ',"job":' .. jstr(job) ..
    ',"releasedAt":' .. num(now) .. ',"startAt":' .. num(startAt) .. ',"deadline":' .. num(S.deadline) ..
    ',"participants":' .. jlist(all) .. ',"bosses":' .. jlist(bosses) .. ',"payload":' .. body .. '}'
  redis.call('HSET', KG, 'rel', rel)
  events[#events + 1] = 'R' .. rel
end

-- model/rule.ts describe: a blocker in words, with the numbers behind it (the missed alert's detail).
local function describe (b)
  if b == 'unseen' then return 'the broker did not evaluate the tick before its misfire window (' .. num(C.misfireMs) .. ' ms) passed: it was down or busy' end
  if b == 'late' then return 'the release rule came to hold only after the misfire window (' .. num(C.misfireMs) .. ' ms)' end
  if b == 'phase' then return 'the group was ' .. S.phase end
  if b == 'paused' then return 'the group was paused' end
  if b == 'backoff' then return 'retry ' .. num(S.retry and S.retry.attempt or 0) .. ' was still backing off' end
  if b == 'jobs' then return 'no job was queued (jobsOnly)' end
  if b == 'nobody' then return 'need and bossNeed are 0: only ctl release releases' end
  if b == 'online' then return num(S.os) .. ' small terminals online, ' .. num(math.max(1, onlineThreshold())) .. ' needed' end
  local rs = redis.call('ZCARD', KRS)
  if b == 'ready' then return num(rs) .. ' small terminals ready, ' .. num(math.min(C.need, S.os)) .. ' needed' end
  return num(redis.call('ZCARD', KRB)) .. ' boss terminals ready, ' .. num(C.bossNeed) .. ' needed'
end

local function forceRelease ()
  if C.paused then fail('bad_request', 'the group is paused') end
  if S.phase ~= 'WAITING' then fail('bad_request', 'the group is not waiting (phase ' .. S.phase .. ')') end
  local rs, rb = redis.call('ZCARD', KRS), redis.call('ZCARD', KRB)
  local smalls, bosses = rs, rb
  if C.need > 0 then smalls = math.min(C.need, rs) end
  if C.bossNeed > 0 then bosses = math.min(C.bossNeed, rb) end
  if smalls + bosses < 1 then fail('bad_request', 'nobody is ready') end
  freeze(now + C.startDelayMs, smalls, bosses)
end

-- model/group.ts configure: the given fields (name -> stored value) replace the stored ones.
local function configure (kv)
  -- a change of the group's payload ends a retry chain of the group's own payload
  if kv.payload ~= nil and S.retry and S.retry.job == '' and kv.payload ~= payload() then S.retry = nil end
  -- a new schedule starts now: its earlier ticks are not missed
  if (kv.schedule ~= nil and kv.schedule ~= C.schedule) or (kv.scheduleTz ~= nil and kv.scheduleTz ~= C.scheduleTz) then
    S.lastTick = math.max(S.lastTick, now)
    S.evalTick = math.max(S.evalTick, now)
  end
  local flat = {}
  for k, v in pairs(kv) do flat[#flat + 1] = k; flat[#flat + 1] = v end
  if #flat > 0 then redis.call('HSET', KC, unpack(flat)) end
  parseCfg(redis.call('HMGET', KC, unpack(CFGF)))
end

`
