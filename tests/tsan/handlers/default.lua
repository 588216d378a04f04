-- tests/tsan/handlers/default.lua: route, and queue when the route times
-- out; asks the host function of two_runtimes.c for a tag first.
local host = require("host")

return {
  start = function(session, event)
    local data = event.data
    local ok = session:route({ target = "A", tag = host.tag(data.n or 0) },
                             { timeout = tonumber(data.timeout) or 30 })
    if not ok then
      session:queue({ queue = "Q" }, { timeout = 30 })
    end
  end,
}
