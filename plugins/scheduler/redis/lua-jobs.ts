// The Lua half of model/jobs.ts (PROTOCOL section 10): a group's job records, its queue (highest
// priority first, then oldest), the job a release takes, and finished jobs trimmed with the round
// history. Job records live in one hash of the group (jobs: 'm:', 'p:', 'c:', 'r:' fields per id)
// so that every key a script touches is named in KEYS. Payloads and results stay raw JSON, never decoded here;
// submit compares the canonical JSON the calling process computed (model/jobs.ts `canonical`).
// Defined inside cold() (lua-ops.ts): only transitions that touch jobs make these functions.
export const LUA_JOBS = String.raw`
-- A job record, or nil: { id, state, priority, seq, submittedAt, startedAt, endedAt, attempts, rounds }
-- (rounds: the round numbers, comma-separated).
local function jobOf (id, v)
  if not v then return nil end
  local f = split(v, '|')
  return { id = id, state = f[1], priority = tonumber(f[2]), seq = tonumber(f[3]), submittedAt = tonumber(f[4]),
    startedAt = opt(f[5]), endedAt = opt(f[6]), attempts = tonumber(f[7]), rounds = f[8] }
end
local function jobGet (id) return jobOf(id, redis.call('HGET', KJOBS, 'm:' .. id)) end

local function jobPut (j)
  redis.call('HSET', KJOBS, 'm:' .. j.id, table.concat({ j.state, num(j.priority), num(j.seq), num(j.submittedAt),
    onum(j.startedAt), onum(j.endedAt), num(j.attempts), j.rounds }, '|'))
end

-- The public job (PROTOCOL section 10) as JSON, or nil when it is not kept (an id, or a record).
local function jobJson (id)
  local j = id
  if type(id) == 'string' then j = jobGet(id) end
  if not j then return nil end
  return '{"id":' .. q(j.id) .. ',"group":' .. q(NAME) .. ',"payload":' .. redis.call('HGET', KJOBS, 'p:' .. j.id) ..
    ',"priority":' .. num(j.priority) .. ',"state":"' .. j.state .. '","submittedAt":' .. num(j.submittedAt) ..
    ',"startedAt":' .. jnum(j.startedAt) .. ',"endedAt":' .. jnum(j.endedAt) .. ',"attempts":' .. num(j.attempts) ..
    ',"rounds":[' .. j.rounds .. '],"result":' .. (redis.call('HGET', KJOBS, 'r:' .. j.id) or 'null') .. '}'
end

local function jobEvent (j) events[#events + 1] = 'J' .. jobJson(j) end

-- Submit, idempotent by id: the same id with the same payload answers the job kept.
local function jobSubmit (id, canon, raw, priority)
  local old = jobGet(id)
  if old then
    local was = redis.call('HGET', KJOBS, 'c:' .. id) or redis.call('HGET', KJOBS, 'p:' .. id)
    if was ~= canon then fail('duplicate', 'job ' .. id .. ' exists with another payload') end
    return false
  end
  if S.nq >= MAXQ then
    fail('unavailable', 'group ' .. NAME .. ' already queues ' .. num(MAXQ) .. ' jobs')
  end
  S.jseq = S.jseq + 1
  local j = { id = id, state = 'queued', priority = priority, seq = S.jseq, submittedAt = now, attempts = 0, rounds = '' }
  jobPut(j)
  redis.call('HSET', KJOBS, 'p:' .. id, raw)
  if canon ~= raw then redis.call('HSET', KJOBS, 'c:' .. id, canon) end
  redis.call('ZADD', KJQ, num(-priority * 4294967296 + S.jseq), id)
  S.nq = S.nq + 1
  redis.call('ZADD', KJALL, num(S.jseq), id)
  jobEvent(j)
  return true
end

-- Out of the queue, if it is there.
local function jobDequeue (id)
  S.nq = S.nq - redis.call('ZREM', KJQ, id)
end

-- A release takes a job: it runs from now (model/jobs.ts start).
local function jobStart (j, round, attempt)
  jobDequeue(j.id)
  j.state = 'running'
  if not j.startedAt then j.startedAt = now end
  j.attempts = attempt
  if j.rounds == '' then j.rounds = num(round) else j.rounds = j.rounds .. ',' .. num(round) end
  jobPut(j)
end

-- A job finished: kept with the round history, the oldest finished ones beyond it go.
local function jobFinish (j, state)
  j.state = state
  j.endedAt = now
  jobPut(j)
  local last = redis.call('ZRANGE', KJDONE, -1, -1, 'WITHSCORES')
  local score = 1
  if last[2] then score = tonumber(last[2]) + 1 end
  redis.call('ZADD', KJDONE, num(score), j.id)
  local n = redis.call('ZCARD', KJDONE)
  if n > HLIM then
    local old = redis.call('ZRANGE', KJDONE, 0, n - HLIM - 1)
    redis.call('ZREMRANGEBYRANK', KJDONE, 0, n - HLIM - 1)
    for i = 1, #old, CHUNK do
      local ids, fields = {}, {}
      for k = i, math.min(i + CHUNK - 1, #old) do
        local id = old[k]
        ids[#ids + 1] = id
        fields[#fields + 1] = 'm:' .. id; fields[#fields + 1] = 'p:' .. id
        fields[#fields + 1] = 'c:' .. id; fields[#fields + 1] = 'r:' .. id
      end
      redis.call('HDEL', KJOBS, unpack(fields))
      redis.call('ZREM', KJALL, unpack(ids))
    end
  end
end

-- A running job's round ended (model/jobs.ts roundEnded): its result is the round's summary;
-- state nil keeps it running (a retry is scheduled).
local function jobRoundEnded (j, summary, state)
  redis.call('HSET', KJOBS, 'r:' .. j.id, summary)
  if state then jobFinish(j, state) end
end
`
