// The read scripts of the Redis store: one consistent view each, run after the same prelude as the
// transitions (lua-ops.ts) but writing nothing. Round summaries are searched as stored: the
// summary JSON of lua-rules.ts `summaryOf` keeps `results` (the only part holding what terminals
// sent) last, so everything before it holds only numbers, fixed words and ids; a search is taken
// only where it matches before the results, and a plain search for `"<id>"` in a list is exact
// (ids are [A-Za-z0-9_.:-], never a quote). A summary kept from before PROTOCOL 1.1 has its
// results before `failed`: it has no done times either, so nothing after its results is needed.
const SUMMARY_SEARCH = String.raw`
-- summaries read per command: a summary of a big round is large (80 KB at 1,000 participants),
-- and Redis hands a script a long reply slower than several short ones
local SCAN = 5
-- where a summary's results start (or its end): what comes before holds no text a terminal sent
local function headEnd (s)
  return string.find(s, ',"results":', 1, true) or #s + 1
end
-- the JSON list or object under key, as a string, if it starts before stop
local function segment (s, stop, key, open, close)
  local p = string.find(s, ',"' .. key .. '":' .. open, 1, true)
  if not p or p > stop then return nil end
  return string.sub(s, p, string.find(s, close, p, true))
end
-- whether the JSON list under key holds the quoted id
local function inList (s, stop, key, quoted)
  local seg = segment(s, stop, key, '[', ']')
  return seg ~= nil and string.find(seg, quoted, 1, true) ~= nil
end
-- the first capture of pattern if it matches before stop, or nil
local function field (s, stop, pattern)
  local at, _, v = string.find(s, pattern)
  if at and at < stop then return v end
  return nil
end
-- the number under the quoted id in the JSON object under key, or nil
local function inObject (s, stop, key, quoted)
  local seg = segment(s, stop, key, '{', '}')
  if not seg then return nil end
  local at = string.find(seg, quoted .. ':', 1, true)
  if not at then return nil end
  return string.match(seg, '^(%-?%d+)', at + #quoted + 1)
end
`

export const READ_BODIES = {
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
  /** ARGV: limit, before ('' for none), outcome ('' for any). Newest first. */
  rounds: `
${SUMMARY_SEARCH}
open(false)
local max = '+inf'
if ARGV[A + 2] ~= '' then max = '(' .. ARGV[A + 2] end
local limit = tonumber(ARGV[A + 1])
if ARGV[A + 3] == '' then return redis.call('ZREVRANGEBYSCORE', KHIST, max, '-inf', 'LIMIT', 0, limit) end
local outcome = ARGV[A + 3]
local out, offset = {}, 0
while #out < limit do
  local chunk = redis.call('ZREVRANGEBYSCORE', KHIST, max, '-inf', 'LIMIT', offset, SCAN)
  if #chunk == 0 then break end
  offset = offset + #chunk
  for _, s in ipairs(chunk) do
    -- the outcome comes early in every summary, before anything a terminal sent
    if #out < limit and string.match(s, '"outcome":"(%a+)"') == outcome then out[#out + 1] = s end
  end
end
return out
`,
  /**
   * ARGV: clientId, limit. The last rounds (newest first) the terminal took part in, each as
   * { round, attempt, outcome, startAt, doneMs ('' none), ok ('1', '0', '' none), dropped (1/0) }.
   */
  terminalRounds: `
${SUMMARY_SEARCH}
open(false)
local quoted = '"' .. ARGV[A + 1] .. '"'
local limit = tonumber(ARGV[A + 2])
local out, offset = {}, 0
while #out < limit do
  local chunk = redis.call('ZREVRANGE', KHIST, offset, offset + SCAN - 1)
  if #chunk == 0 then break end
  offset = offset + #chunk
  for _, s in ipairs(chunk) do
    local stop = headEnd(s)
    if #out < limit and inList(s, stop, 'participants', quoted) then
      local ms = inObject(s, stop, 'doneMs', quoted)
      local ok = ''
      if ms then ok = inList(s, stop, 'failed', quoted) and '0' or '1' end
      -- attempt and startAt are missing from a summary kept from before PROTOCOL 1.1
      out[#out + 1] = { field(s, stop, '"round":(%d+)'), field(s, stop, '"attempt":(%d+)') or '1',
        field(s, stop, '"outcome":"(%a+)"'), field(s, stop, '"startAt":(%-?%d+)') or field(s, stop, '"releasedAt":(%-?%d+)'),
        ms or '', ok, inList(s, stop, 'dropped', quoted) and 1 or 0 }
    end
  end
end
return out
`,
  /** ARGV: limit, state ('' any), before (a job id, '' none). Newest first, as JSON. */
  jobs: `
open(false)
local X = cold()
local limit, state, before = tonumber(ARGV[A + 1]), ARGV[A + 2], ARGV[A + 3]
local max = '+inf'
if before ~= '' then
  local b = X.jobGet(before)
  if not b then fail('bad_request', 'before: no job ' .. before .. ' in group ' .. NAME) end
  max = '(' .. num(b.seq)
end
local out, offset = {}, 0
while #out < limit do
  local ids = redis.call('ZREVRANGEBYSCORE', KJALL, max, '-inf', 'LIMIT', offset, 200)
  if #ids == 0 then break end
  offset = offset + #ids
  local fields = {}
  for i, id in ipairs(ids) do fields[i] = 'm:' .. id end
  local metas = redis.call('HMGET', KJOBS, unpack(fields))
  for i, id in ipairs(ids) do
    local j = X.jobOf(id, metas[i])
    if #out < limit and j and (state == '' or j.state == state) then out[#out + 1] = X.jobJson(j) end
  end
end
return out
`,
  /** ARGV: id. The job as JSON, or nil. */
  job: `
open(false)
return cold().jobJson(ARGV[A + 1]) or false
`
} as const
