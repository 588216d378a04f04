-- tests/e2e/handlers/default.lua: route, fall back to a queue on an error
-- or after 30 seconds.

return {
  start = function(session, event)
    local ok, result = session:route({ target = "Agent1" }, { timeout = 30 })
    if not ok then
      local why = result == "timeout" and "timeout" or result.data.error
      session:queue({ queue = event.data.queue or "overflow", why = why }, { timeout = 30 })
    end
  end,
}
