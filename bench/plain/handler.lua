-- bench/plain/handler.lua: bench.lua's behaviour as one plain Lua function.
--
-- The reference the benchmarks compare ixr with. It does the same work per
-- event as ixr running bench/handlers/bench.lua, as directly as plain Lua
-- allows, and produces the same output lines (same kinds, same order, same
-- request ids, so bench/check.lua accepts its output too):
--
-- * sessions are plain tables in one table keyed by interactionid (ixr: a C
--   hash map, a userdata per session with vars in a user value);
-- * the flow is a state field, not a coroutine; a request remembers the
--   request id it waits for (ixr: a coroutine per session that yields in
--   session:request and is resumed with the result);
-- * timeouts are not armed at all: there is no timer, only the deadline a
--   timer would have (ixr: a heap entry per request, wait and requeue);
-- * output lines are Lua tables given to `emit` (ixr: JSON written in C);
-- * no sandbox, no instruction or memory budget, no protected call per
--   event, no check of names, types or UTF-8 beyond what the JSON module does.
--
-- Used by bench/plain/baseline.lua (NDJSON in, JSON out with lua-cjson) and
-- by bench/ceiling.c (events built in C, `emit` does nothing): both call
-- the function new() returns as handle(event, emit).

local M = {}

local GROUPS = {
  en = "Chat:English",
  fr = "Chat:French",
  de = "Chat:German",
  es = "Chat:Spanish",
}

local EMPTY = {}

-- result events: which request kind each answers
local DONE = {
  ["interaction.redirect.done"] = "redirect",
  ["interaction.queue.done"] = "queue",
  ["interaction.stop.done"] = "stop",
}
local FAILED = {
  ["error.interaction.redirect"] = "redirect",
  ["error.interaction.queue"] = "queue",
  ["error.interaction.stop"] = "stop",
}

local REQUEUE_TIMEOUT_MS = 120000

function M.new()
  local sessions = {}
  local nsession, nrequest = 0, 0
  local now = 0 -- a stand-in for a clock: deadlines only

  local function target_for(ud)
    if ud.Segment == "gold" then
      return "Chat:Gold", 10
    end
    return GROUPS[ud.Language] or GROUPS.en, 1
  end

  local function act(s, name, args, emit)
    nrequest = nrequest + 1
    local rid = "r" .. nrequest
    emit({ type = "action", action = name, session = s.id, interactionid = s.iid,
           requestid = rid, args = args })
    return rid
  end

  local function request(s, name, args, timeout, emit)
    s.wait = name
    s.req = act(s, name, args, emit)
    s.deadline = now + timeout
  end

  local function finish(s, reason, emit)
    sessions[s.iid] = nil
    s.state = "ended"
    emit({ type = "session", state = "ended", session = s.id, interactionid = s.iid,
           reason = reason })
  end

  -- bench.lua's flow, from the top (start or requeued)
  local function start(s, data, requeued, emit)
    local ud = data.userdata or EMPTY
    local vars = s.vars
    vars.attempts = (vars.attempts or 0) + 1
    vars.customer = ud.CustomerId
    if requeued and ud.IsOnline == "false" then
      request(s, "stop", { reason = "customer_offline" }, 10000, emit)
      return
    end
    local target, priority = target_for(ud)
    s.target = target
    s.queue = data.queue
    request(s, "redirect", { target = target, priority = priority, media = data.media,
                             attempt = vars.attempts }, 30000, emit)
  end

  -- the rest of the flow once routed: record it, wait for the agent
  local function routed(s, emit)
    local vars = s.vars
    vars.routed_to = s.target
    act(s, "updatedata", { RoutedTo = s.target, Attempts = vars.attempts }, emit)
    s.wait = "event"
    s.req = nil
    s.deadline = now + 20000
  end

  local function result(s, kind, ok, data, emit)
    if kind == "stop" then
      s.wait = nil
      finish(s, s.end_after or "completed", emit)
    elseif ok then
      routed(s, emit)
    elseif kind == "redirect" then
      s.vars.route_error = data.error
      request(s, "queue", { queue = s.queue or "overflow", group = s.target }, 60000, emit)
    else
      finish(s, "queue_failed", emit)
    end
  end

  return function(ev, emit)
    local name, data = ev.name, ev.data
    local iid = data and data.interactionid
    if type(name) ~= "string" or type(iid) ~= "string" then
      emit({ type = "error", error = "bad_event", message = "data.interactionid must be a string" })
      return
    end
    local s = sessions[iid]
    if s == nil then
      if name == "interaction.present" then
        nsession = nsession + 1
        s = { id = "s" .. nsession, iid = iid, state = "active", vars = {} }
        sessions[iid] = s
        emit({ type = "session", state = "started", session = s.id, interactionid = iid,
               strategy = "bench" })
        start(s, data, false, emit)
      else
        emit({ type = "error", error = "unknown_interaction",
               message = "no session owns interaction '" .. iid .. "' (" .. name .. ")" })
      end
      return
    end

    -- the flow first, when it waits for this result
    if s.state == "active" and s.req ~= nil then
      local kind = DONE[name]
      local ok = kind ~= nil
      if not ok then kind = FAILED[name] end
      if kind == s.wait and data.requestid == s.req then
        result(s, kind, ok, data, emit)
        return
      end
    end

    -- then the handlers: the strategy's own, and the standard requeue set
    if name == "interaction.message" then
      local vars = s.vars
      vars.messages = (vars.messages or 0) + 1
      vars.last_message = data.text
    elseif name == "interaction.notcontrolled" then
      local resultof = data.resultof
      if resultof == "deletion" or resultof == "detaching" then
        finish(s, resultof, emit)
      elseif s.state ~= "active" then
        return
      elseif resultof == "routing" then
        if s.req ~= nil then s.end_after = "routing" else finish(s, "routing", emit) end
      else
        s.state = "suspended"
        s.wait, s.req = nil, nil
        s.requeue_deadline = now + REQUEUE_TIMEOUT_MS
        emit({ type = "session", state = "suspended", session = s.id, interactionid = iid,
               reason = resultof or "notcontrolled" })
      end
    elseif name == "interaction.deleted" then
      finish(s, "deleted", emit)
    elseif name == "interaction.present" then
      if s.state == "suspended" then
        s.state = "active"
        s.requeue_deadline = nil
        emit({ type = "session", state = "resumed", session = s.id, interactionid = iid })
        start(s, data, true, emit)
      end
    end
  end
end

return M
