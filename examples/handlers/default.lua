-- examples/handlers/default.lua: the strategy of the minimal and tcp_server
-- examples.
--
-- Route to the agent group of the interaction's media; if no agent takes
-- it in time, place it in its queue. The routing timeout comes from the
-- event (data.timeout, in seconds) so that the tcp_server self-test can
-- make a request time out quickly.

return {
  defaults = "requeue",
  requeue_timeout = 60,

  start = function(session, event)
    local data = event.data
    local timeout = tonumber(data.timeout) or 30
    local ok = session:route({ target = "AgentGroup:" .. (data.media or "General") },
                             { timeout = timeout })
    if not ok then
      session:queue({ queue = data.queue or "overflow" }, { timeout = 30 })
    end
  end,
}
