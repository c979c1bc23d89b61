-- roundgate terminal over HTTP long-poll, for Lua 5.4 with LuaSocket and lua-cjson (or dkjson).
--
--   local roundgate = require("roundgate")
--   local t = roundgate.new{ url = "http://127.0.0.1:8080", group = "render", clientId = "lua-1" }
--   t:run(function (release, t) ... return true, { frames = 10 } end)
--
-- The loop is the one of PROTOCOL sections 3-5: heartbeat, ready, long-poll the release (a pending
-- poll counts as heard from), wait until the release's startAt on the broker's clock, run the job,
-- report done, poll again with after = that round. A release without startAt (protocol 1.0)
-- starts at once. See README.md beside this file.
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")

local json, json_null
do
  local ok, cjson = pcall(require, "cjson")
  if ok then
    json = { encode = cjson.encode, decode = cjson.decode }
    json_null = cjson.null
  else
    local dk = require("dkjson")
    json = {
      encode = function (v) return dk.encode(v) end,
      decode = function (s)
        local v, _, err = dk.decode(s, 1, dk.null)
        if err then error(err) end
        return v
      end
    }
    json_null = dk.null
  end
end

local M = { _VERSION = "roundgate-lua 1.0", null = json_null, json = json }

local Terminal = {}
Terminal.__index = Terminal

local function now_ms ()
  return socket.gettime() * 1000
end
M.now_ms = now_ms

local function urlencode (s)
  return (tostring(s):gsub("[^A-Za-z0-9_.~-]", function (c) return string.format("%%%02X", c:byte()) end))
end

local function default_log (level, msg)
  io.stderr:write(string.format("roundgate[%s] %s\n", level, msg))
end

--- A terminal. opts: url (base, default http://127.0.0.1:8080), group, clientId (required),
-- role ("small" or "boss"), wait (long-poll seconds, default 30, at most 120), token (Bearer JWT),
-- log (function (level, message)), load (number reported on heartbeats).
function M.new (opts)
  assert(type(opts) == "table", "roundgate.new expects a table of options")
  assert(type(opts.group) == "string" and opts.group:match("^[A-Za-z0-9_.-]+$"), "group: 1-64 characters of A-Z a-z 0-9 _ . -")
  assert(type(opts.clientId) == "string" and opts.clientId:match("^[A-Za-z0-9_.:-]+$"), "clientId: characters of A-Z a-z 0-9 _ . : -")
  local self = setmetatable({}, Terminal)
  self.url = (opts.url or "http://127.0.0.1:8080"):gsub("/+$", "")
  self.group = opts.group
  self.clientId = opts.clientId
  self.role = opts.role or "small"
  self.wait = math.min(opts.wait or 30, 120)
  self.token = opts.token
  self.load = opts.load
  self.log = opts.log or default_log
  self.heartbeatMs = 10000
  self.offset = nil -- broker clock minus ours, in ms, once known
  return self
end

--- One HTTP exchange. Returns status, decoded JSON (or nil), headers; status is nil and the
-- second value the error text when the broker could not be reached.
function Terminal:request (method, path, body, timeout_s)
  local out = {}
  local headers = { accept = "application/json" }
  local source
  if body ~= nil then
    local text = json.encode(body)
    headers["content-type"] = "application/json"
    headers["content-length"] = tostring(#text)
    source = ltn12.source.string(text)
  end
  if self.token then headers.authorization = "Bearer " .. self.token end
  local saved = http.TIMEOUT
  http.TIMEOUT = timeout_s or 15
  local ok, code, resp_headers = http.request{
    url = self.url .. path, method = method, headers = headers, source = source, sink = ltn12.sink.table(out)
  }
  http.TIMEOUT = saved
  if not ok then return nil, tostring(code) end
  local text = table.concat(out)
  local decoded
  if text ~= "" then
    local okj, v = pcall(json.decode, text)
    if okj then decoded = v end
  end
  return code, decoded, resp_headers or {}
end

local function describe (status, answer)
  if status == nil then return "unreachable: " .. tostring(answer) end
  if type(answer) == "table" and type(answer.error) == "table" then
    return string.format("%d %s: %s", status, tostring(answer.error.code), tostring(answer.error.message))
  end
  return "HTTP " .. tostring(status)
end

function Terminal:post (what, body)
  body.clientId = self.clientId
  local status, answer = self:request("POST", "/v1/groups/" .. urlencode(self.group) .. "/" .. what, body)
  if status ~= 200 then return nil, describe(status, answer), status, answer end
  return answer
end

--- POST heartbeat; learns the broker's advised heartbeatMs.
function Terminal:heartbeat (meta)
  local answer, err = self:post("heartbeat", { role = self.role, load = self.load, meta = meta })
  if answer and type(answer.heartbeatMs) == "number" then self.heartbeatMs = answer.heartbeatMs end
  return answer, err
end

function Terminal:ready ()
  return self:post("ready", { role = self.role })
end

--- Report a round done. A 409 stale_round or 403 not_participant is returned as an error, not raised.
function Terminal:done (round, ok, result)
  local body = { round = round, ok = ok ~= false }
  if result ~= nil then body.result = result end
  return self:post("done", body)
end

function Terminal:leave ()
  return self:post("leave", {})
end

--- Estimate the broker's clock offset with GET /v1/time (the midpoint of the exchange).
-- Returns the offset in ms, or nil and why (a protocol 1.0 broker has no /v1/time).
function Terminal:sync ()
  local t0 = now_ms()
  local status, answer = self:request("GET", "/v1/time")
  local t1 = now_ms()
  if status ~= 200 or type(answer) ~= "table" or type(answer.serverTime) ~= "number" then
    return nil, describe(status, answer)
  end
  self.offset = answer.serverTime - (t0 + t1) / 2
  return self.offset
end

--- Long-poll the release of a round above `after`. Returns the release (a table) or nil and the
-- broker's current round (204), or nil, nil and an error.
function Terminal:poll (after, wait)
  wait = wait or self.wait
  local path = string.format("/v1/groups/%s/release?clientId=%s&after=%d&wait=%d&role=%s",
    urlencode(self.group), urlencode(self.clientId), after or 0, wait, urlencode(self.role))
  local status, answer, headers = self:request("GET", path, nil, wait + 15)
  local received = now_ms()
  if status == 200 and type(answer) == "table" then
    answer._receivedAt = received
    return answer
  end
  if status == 204 then return nil, tonumber(headers["x-round"]) end
  return nil, nil, describe(status, answer)
end

--- How long (ms) until the release's startAt on our clock: 0 for a 1.0 release (no startAt).
-- The offset comes from the release's serverTime (written when the answer left the broker), or,
-- without it, from the last sync().
function Terminal:start_delay (release)
  if type(release.startAt) ~= "number" then return 0 end
  local offset = self.offset
  if type(release.serverTime) == "number" and release._receivedAt then
    offset = release.serverTime - release._receivedAt
  end
  if offset == nil then return 0 end
  local delay = release.startAt - (now_ms() + offset)
  return delay > 0 and delay or 0
end

--- Sleep until the release's start instant; returns the ms slept.
function Terminal:wait_start (release)
  local delay = self:start_delay(release)
  if delay > 0 then socket.sleep(delay / 1000) end
  return delay
end

--- The whole terminal: `job(release, terminal)` returns ok (boolean) and an optional result.
-- opts.rounds stops after that many rounds (default: run for ever); opts.after is the first
-- `after` (default 0). A job that raises reports ok = false with the error text as its result.
-- Returns the number of rounds run.
function Terminal:run (job, opts)
  opts = opts or {}
  local after = opts.after or 0
  local rounds = 0
  local backoff = 1
  local function trouble (what, err)
    self.log("warn", what .. ": " .. tostring(err) .. string.format("; again in %ds", backoff))
    socket.sleep(backoff)
    backoff = math.min(backoff * 2, 10)
  end
  local announced = false
  while opts.rounds == nil or rounds < opts.rounds do
    if not announced then
      local _, err = self:heartbeat()
      if err == nil then _, err = self:ready() end
      if err ~= nil then trouble("heartbeat/ready", err) else announced = true; backoff = 1 end
    else
      local release, current, err = self:poll(after)
      if err ~= nil then
        trouble("release poll", err)
        announced = false
      elseif release == nil then
        -- 204: nothing for us yet; say ready again in case the broker forgot us (a restart, a sweep)
        local _, rerr = self:ready()
        if rerr ~= nil then trouble("ready", rerr); announced = false end
        if current ~= nil and current < after then after = current end
      else
        local round = release.round
        local slept = self:wait_start(release)
        local shard = type(release.shard) == "table" and release.shard or { index = 0, count = 1 }
        self.log("info", string.format("round %d released (shard %d of %d), started after %d ms",
          round, shard.index, shard.count, math.floor(slept)))
        local okcall, ok, result = pcall(job, release, self)
        if not okcall then ok, result = false, tostring(ok) end
        local _, derr, status = self:done(round, ok ~= false, result)
        if derr ~= nil and status == nil then
          -- the broker is unreachable: try the report again once it answers
          repeat
            trouble("done", derr)
            _, derr, status = self:done(round, ok ~= false, result)
          until derr == nil or status ~= nil
        end
        if derr ~= nil then self.log("warn", string.format("done for round %d refused: %s", round, derr)) end
        rounds = rounds + 1
        after = round
        if opts.rounds == nil or rounds < opts.rounds then
          local _, rerr = self:ready()
          if rerr ~= nil then trouble("ready", rerr); announced = false end
        end
      end
    end
  end
  return rounds
end

return M
