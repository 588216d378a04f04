-- handlers/chat.lua: a chat strategy that uses the customer's user data.
--
-- Start an interaction with {"data":{"strategy":"chat", ...}}.
--
-- * Customers of the "gold" segment go to a dedicated group first.
-- * The language picks the agent group; unknown languages go to English.
-- * If no agent takes the chat within 30 seconds it is queued.
-- * After a chat server switchover the chat is presented again: before
--   routing it a second time, check that the customer is still online
--   (user data IsOnline), so that dead chats are not routed to agents.

local GROUPS = {
  en = "Chat:English",
  fr = "Chat:French",
  de = "Chat:German",
}

local function userdata(event)
  return event.data.userdata or {}
end

local function pick_group(ud)
  if ud.Segment == "gold" then
    return "Chat:Gold"
  end
  return GROUPS[ud.Language] or GROUPS.en
end

local function route_chat(session, event)
  local ud = userdata(event)
  local group = pick_group(ud)
  session.vars.group = group

  local ok, result = session:route({ target = group, priority = ud.Segment == "gold" and 10 or 1 },
                                   { timeout = 30 })
  if ok then
    return
  end
  local why = result == "timeout" and "timeout" or tostring(result.data.error)
  session:log("info", "route to " .. group .. " failed (" .. why .. "): queueing")
  session:queue({ queue = "chat_overflow", group = group }, { timeout = 60 })
end

return {
  defaults = "requeue",
  requeue_timeout = 120,

  start = route_chat,

  requeued = function(session, event)
    session.vars.requeues = (session.vars.requeues or 0) + 1
    if userdata(event).IsOnline == "false" then
      -- The customer left during the switchover: do not route a dead chat.
      session:stop({ reason = "customer_offline" }, { timeout = 10 })
      return
    end
    route_chat(session, event)
  end,

  on = {
    -- The customer typed while waiting: remember it for the agent.
    ["interaction.message"] = function(session, event)
      session.vars.messages = (session.vars.messages or 0) + 1
    end,
  },
}
