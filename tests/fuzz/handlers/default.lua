-- tests/fuzz/handlers/default.lua: the fixed strategy of fuzz_dispatch.
--
-- It uses every way a flow can wait (request with and without a timeout,
-- wait with a timeout), session:after timers that outlive the flow, `on`
-- handlers that act, fail, exit and set timers, and the standard requeue
-- set behind an `on` handler that calls it. The fuzzer then drives it with
-- events in any order. data.mode on interaction.present picks an unusual
-- flow: "return", "error", "exit" or "yield". Every flow holds a
-- to-be-closed variable, so that closing cancelled flows (and reusing their
-- threads) runs under the fuzzer too.

local multimedia = require("ixr.multimedia")

local function start(session, event)
  local data = event.data
  local vars = session.vars
  vars.starts = (vars.starts or 0) + 1
  local guard <close> = setmetatable({}, {
    __close = function(_, err)
      session:log("debug", err and "flow closed by an error" or "flow closed")
    end,
  })

  local mode = data.mode
  if mode == "return" then
    return
  elseif mode == "error" then
    error("flow failed on purpose")
  elseif mode == "exit" then
    session:exit("flow_exit")
    error("not reached: exit stops the flow")
  elseif mode == "yield" then
    coroutine.yield()
  end

  -- A reminder that may fire while the flow waits, while the session is
  -- suspended, or never (when the session ends first).
  session:after(15, function(s)
    s:action("remind", { starts = s.vars.starts })
  end)

  local ok, res = session:route({ target = "Agent1", media = data.media },
                                { timeout = 30 })
  if not ok then
    local why = res == "timeout" and "timeout" or tostring(res.data.error)
    ok = session:queue({ queue = data.queue or "overflow", why = why },
                       { timeout = 60 })
    if not ok then
      return
    end
  end

  local reply = session:wait("interaction.customer.reply", { timeout = 20 })
  if reply then
    session:action("ack", { text = reply.data.text, n = vars.starts })
  end

  -- No timeout: the flow waits until the result comes or the session ends.
  session:stop({ reason = "done" })
end

return {
  defaults = "requeue",
  requeue_timeout = 60,

  start = start,

  on = {
    ["interaction.ping"] = function(session, event)
      session:action("pong", { echo = event.data.echo, state = session.state })
    end,

    ["interaction.boom"] = function()
      error("handler failed on purpose")
    end,

    ["interaction.exit"] = function(session, event)
      -- Reasons cut to data.max bytes, as a strategy keeping them short
      -- for a host's report columns would.
      local reason, max = event.data.reason, event.data.max
      if type(reason) == "string" and max then
        reason = reason:sub(1, max)
      end
      session:exit(reason)
    end,

    ["interaction.later"] = function(session, event)
      local id = session:after(event.data.s or 1, function(s)
        s:action("later", { s = event.data.s })
      end)
      if event.data.cancel then
        session:cancel(id)
      end
    end,

    ["interaction.notcontrolled"] = function(session, event)
      session.vars.lost = (session.vars.lost or 0) + 1
      return multimedia.requeue.notcontrolled(session, event)
    end,
  },
}
