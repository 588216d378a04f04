-- bench/handlers/bench.lua: the strategy the benchmarks run (make bench).
--
-- A realistic chat strategy, written the way a strategy author would:
--
-- * The customer's user data picks the target: the "gold" segment goes to a
--   dedicated group with a higher priority, otherwise the language picks
--   the group (unknown languages go to English).
-- * The flow asks for a redirect and waits for its result (a coroutine
--   wait, with a 30 s request timeout: one timer armed per request).
-- * If the redirect fails, the interaction is placed in its queue (another
--   request, 60 s timeout); if that fails too, the session ends.
-- * Once routed it records where in the interaction's user data (an action
--   that does not wait), then waits up to 20 s for the agent to pick the
--   chat up (session:wait with a timeout: another timer). The usual next
--   event is interaction.notcontrolled with resultof "routing", which the
--   standard requeue set turns into the end of the session.
-- * A server switchover (notcontrolled with resultof "revoking") suspends
--   the session (standard requeue set, one requeue timer); when the chat is
--   presented again the flow runs from the top with event.requeued set and
--   session.vars kept. A customer who left meanwhile (IsOnline "false") is
--   not routed again: the chat is stopped.
-- * Messages typed while waiting are counted by an `on` handler.
--
-- bench/gen.c simulates exactly this behaviour to predict the request ids
-- of the results it writes; change both together (bench/run.sh --check
-- verifies that they agree).

local GROUPS = {
  en = "Chat:English",
  fr = "Chat:French",
  de = "Chat:German",
  es = "Chat:Spanish",
}

local EMPTY = {}

local function target_for(ud)
  if ud.Segment == "gold" then
    return "Chat:Gold", 10
  end
  return GROUPS[ud.Language] or GROUPS.en, 1
end

local function flow(session, event)
  local data = event.data
  local ud = data.userdata or EMPTY
  local vars = session.vars
  vars.attempts = (vars.attempts or 0) + 1
  vars.customer = ud.CustomerId

  if event.requeued and ud.IsOnline == "false" then
    -- The customer left during the switchover: do not route a dead chat.
    session:stop({ reason = "customer_offline" }, { timeout = 10 })
    return
  end

  local target, priority = target_for(ud)
  local ok, result = session:request("redirect", {
    target = target,
    priority = priority,
    media = data.media,
    attempt = vars.attempts,
  }, { timeout = 30 })
  if not ok then
    vars.route_error = result == "timeout" and "timeout" or result.data.error
    ok = session:queue({ queue = data.queue or "overflow", group = target }, { timeout = 60 })
    if not ok then
      session:exit("queue_failed")
    end
  end

  vars.routed_to = target
  session:action("updatedata", { RoutedTo = target, Attempts = vars.attempts })
  session:wait("interaction.partystate.changed", { timeout = 20 })
end

return {
  defaults = "requeue",
  requeue_timeout = 120,

  start = flow,

  on = {
    ["interaction.message"] = function(session, event)
      local vars = session.vars
      vars.messages = (vars.messages or 0) + 1
      vars.last_message = event.data.text
    end,
  },
}
