-- tests/tooling/handlers/facts.lua: contract facts that the scenario
-- tests/tooling/pass/contract.scenario pins: timers see their own due time
-- as now, session:after does not fire once its session ended, the session's
-- facts are read-only, session:exit() without a reason ends with "exit".
local core = require("ixr.core")

return {
  start = function(session, event)
    session:wait("test.end")
  end,

  on = {
    -- Two timers due at +100 and +250 ms, and one set inside the first, due
    -- 50 ms after it: each sees its own due time as now.
    ["test.timers"] = function(session)
      local t0 = core.now()
      session:after(0.25, function(s) s:action("fired", { at = core.now() - t0 }) end)
      session:after(0.1, function(s)
        s:action("fired", { at = core.now() - t0 })
        s:after(0.05, function(s2) s2:action("fired", { at = core.now() - t0, inner = true }) end)
      end)
    end,
    -- What assigning to the session's facts does.
    ["test.facts"] = function(session)
      local got = {}
      for _, k in ipairs({ "id", "interactionid", "strategy" }) do
        local ok, err = pcall(function() session[k] = "changed" end)
        got[k] = ok and "assigned" or (err:find("read%-only") and "read-only" or err)
      end
      got.still = session.interactionid
      session:action("facts", got)
    end,
    -- A timer, then the end of the session: the timer must not fire.
    ["test.exit"] = function(session)
      session:after(0.1, function(s) s:action("ghost", {}) end)
      session:exit()
    end,
  },
}
