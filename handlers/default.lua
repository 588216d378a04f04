-- handlers/default.lua: the strategy for interactions that name none.
--
-- Route to the general agent group; if that fails or takes longer than
-- 30 seconds, place the interaction in its queue. With the standard
-- "requeue" behaviour a server switchover suspends the session and, when
-- the interaction is presented again, runs this flow again from the top
-- with event.requeued set and session.vars kept.

return {
  defaults = "requeue",
  requeue_timeout = 300,

  start = function(session, event)
    local data = event.data
    local vars = session.vars
    vars.attempts = (vars.attempts or 0) + 1
    if event.requeued then
      session:log("info", "requeued, attempt " .. vars.attempts)
    end

    local ok = session:route({ target = "AgentGroup:General", media = data.media },
                             { timeout = 30 })
    if not ok then
      session:queue({ queue = data.queue or "overflow" }, { timeout = 30 })
    end
  end,
}
