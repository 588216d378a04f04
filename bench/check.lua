-- bench/check.lua: does the output of a run match what the generator expects?
-- luacheck: std lua54
--
--   lua5.4 bench/check.lua META OUTPUT [NAME]
--
-- META is the --meta file of bench/gen; OUTPUT the NDJSON that ixr (or the
-- plain Lua baseline) wrote for the generated traffic. Every output line is
-- decoded and counted by kind: session lines by state and end reason,
-- actions by name, errors by code. The counts must equal the generator's
-- exactly: a request id the generator predicted wrongly shows up as an
-- unexpected error (unknown_interaction) or a missing action, so this also
-- proves that the traffic is what it claims to be. Errors the mix includes
-- on purpose (bad_json, unknown_interaction) are expected in their exact
-- number; any other error fails the check.
--
-- Prints one line: check=NAME ok lines=... errors_expected=... , or the
-- differences and exits 1.

local cjson = require("cjson.safe")

local meta_path, out_path, name = arg[1], arg[2], arg[3] or "ixr"
if not meta_path or not out_path then
  io.stderr:write("usage: lua5.4 bench/check.lua META OUTPUT [NAME]\n")
  os.exit(2)
end

local want = {}
for l in io.lines(meta_path) do
  local k, v = l:match("^([%w_.]+)=(%d+)$")
  if k then want[k] = tonumber(v) end
end

local got = setmetatable({}, { __index = function() return 0 end })
local function count(k) got[k] = got[k] + 1 end
local unexpected = {}
local reqs = 0
local bad_order = 0

local n = 0
for l in io.lines(out_path) do
  n = n + 1
  local o, err = cjson.decode(l)
  if not o then
    unexpected[#unexpected + 1] = "line " .. n .. ": not JSON (" .. tostring(err) .. ")"
  elseif o.type == "session" then
    count(o.state)
    if o.state == "ended" then
      count("ended." .. tostring(o.reason))
    end
  elseif o.type == "action" then
    count("actions")
    count("action." .. tostring(o.action))
    reqs = reqs + 1
    if o.requestid ~= "r" .. reqs then bad_order = bad_order + 1 end
  elseif o.type == "error" then
    count("errors")
    count("error." .. tostring(o.error))
    if o.error ~= "bad_json" and o.error ~= "unknown_interaction" and #unexpected < 10 then
      unexpected[#unexpected + 1] = "line " .. n .. ": " .. l
    end
  else
    count("other")
    if #unexpected < 10 then unexpected[#unexpected + 1] = "line " .. n .. ": " .. l end
  end
end
got.lines_out = n

local keys = {
  "lines_out", "started", "resumed", "suspended", "ended", "ended.routing",
  "ended.deletion", "ended.deleted", "ended.completed", "actions",
  "action.redirect", "action.queue", "action.stop", "action.updatedata",
  "errors", "error.bad_json", "error.unknown_interaction",
}
local diffs = {}
for _, k in ipairs(keys) do
  if (want[k] or 0) ~= got[k] then
    diffs[#diffs + 1] = string.format("%s: expected %d, got %d", k, want[k] or 0, got[k])
  end
end
-- Anything counted that the generator does not know about (another end
-- reason, another action, another error code) is a difference too.
for k, v in pairs(got) do
  if want[k] == nil and k ~= "other" and v > 0 then
    diffs[#diffs + 1] = string.format("%s: expected 0, got %d", k, v)
  end
end
if bad_order > 0 then
  diffs[#diffs + 1] = string.format("%d actions out of request id order", bad_order)
end

if #diffs > 0 or #unexpected > 0 then
  io.stdout:write(string.format("check=%s FAILED lines=%d\n", name, n))
  for _, d in ipairs(diffs) do io.stdout:write("  ", d, "\n") end
  for _, u in ipairs(unexpected) do io.stdout:write("  unexpected ", u, "\n") end
  os.exit(1)
end
io.stdout:write(string.format(
  "check=%s ok lines=%d started=%d ended=%d suspended=%d resumed=%d actions=%d " ..
  "errors_expected=%d (bad_json=%d unknown_interaction=%d) errors_unexpected=0\n",
  name, n, got.started, got.ended, got.suspended, got.resumed, got.actions,
  got.errors, got["error.bad_json"], got["error.unknown_interaction"]))
