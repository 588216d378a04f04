-- tests/e2e/handlers/poke.lua: errors outside the flow (an `on` handler and
-- a session:after timer) are reported, and the session carries on.

return {
  start = function(session, event)
    session:after(5, function(s)
      error("timer failed for " .. s.interactionid)
    end)
    local ev = session:wait("interaction.finish")
    session:action("finished", { by = ev.data.by })
  end,

  on = {
    ["interaction.poke"] = function(session, event)
      error("poke not allowed")
    end,
  },
}
