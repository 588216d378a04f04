-- bench/plain/baseline.lua: the plain Lua 5.4 baseline.
-- luacheck: std lua54
--
--   lua5.4 bench/plain/baseline.lua EVENTS.ndjson > OUT
--
-- What a Lua programmer would write without ixr: read the NDJSON file line
-- by line, decode each line with lua-cjson (the fastest JSON module Debian
-- packages for Lua 5.4: C, no validation of UTF-8), call the handler of
-- bench/plain/handler.lua (bench.lua's behaviour as one plain function),
-- encode every output table with lua-cjson and write the lines to standard
-- output, 256 lines per write. A line that does not decode gives a bad_json
-- error line, as in ixr. The session tables live in this one process, as
-- ixr's sessions live in its one Lua state.
--
-- Run from the top of the source tree (it finds the handler relative to
-- this file).

local here = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local cjson = require("cjson.safe")
local decode, encode = cjson.decode, cjson.encode
local concat, write = table.concat, io.write

local handle = require("handler").new()

local path = arg[1]
if not path then
  io.stderr:write("usage: lua5.4 bench/plain/baseline.lua EVENTS.ndjson > OUT\n")
  os.exit(2)
end

local buf, nbuf = {}, 0
local function emit(t)
  nbuf = nbuf + 1
  buf[nbuf] = encode(t)
  if nbuf == 256 then
    buf[257] = ""
    write(concat(buf, "\n"))
    nbuf = 0
  end
end

local lineno = 0
for line in io.lines(path) do
  lineno = lineno + 1
  local ev, err = decode(line)
  if type(ev) == "table" then
    handle(ev, emit)
  elseif ev == nil then
    emit({ type = "error", error = "bad_json", message = err, line = lineno })
  else
    emit({ type = "error", error = "bad_event", message = "an event must be a JSON object",
           line = lineno })
  end
end
if nbuf > 0 then
  write(concat(buf, "\n", 1, nbuf), "\n")
end
io.stdout:flush()
