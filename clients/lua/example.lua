-- An example terminal: lua5.4 example.lua URL GROUP CLIENTID [ROUNDS] [JOB_MS]
-- Runs ROUNDS rounds (default: for ever); each job sleeps JOB_MS (default 100) and reports the
-- shard it ran and when it started, on the broker's clock as this terminal estimates it.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local roundgate = require("roundgate")
local socket = require("socket")

local url, group, id = arg[1], arg[2], arg[3]
if not (url and group and id) then
  io.stderr:write("usage: lua5.4 example.lua URL GROUP CLIENTID [ROUNDS] [JOB_MS]\n")
  os.exit(2)
end
local rounds = tonumber(arg[4])
local job_ms = tonumber(arg[5]) or 100

local t = roundgate.new{ url = url, group = group, clientId = id, wait = 20 }
local offset, why = t:sync()
if offset then
  io.stderr:write(string.format("clock offset to the broker: %.1f ms\n", offset))
else
  io.stderr:write("no clock offset estimate (" .. why .. "); releases without startAt start at once\n")
end

local n = t:run(function (release, term)
  local started = roundgate.now_ms() + (term.offset or 0)
  if type(release.serverTime) == "number" then started = roundgate.now_ms() + (release.serverTime - release._receivedAt) end
  socket.sleep(job_ms / 1000)
  io.stdout:write(string.format("round %d shard %d/%d\n", release.round, release.shard.index, release.shard.count))
  io.stdout:flush()
  return true, { lang = "lua", shard = release.shard.index, startedAt = math.floor(started) }
end, { rounds = rounds })
io.stderr:write(string.format("%d round(s) done\n", n))
