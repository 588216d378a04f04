-- tick.lua: a timer that re-arms itself for "now" (session:after(0)); the
-- runtime must still read input between its firings (run_golden.sh).
local function tick(session)
  session.vars.n = (session.vars.n or 0) + 1
  session:after(0, tick)
end

return {
  defaults = "none",
  start = function(session, event)
    session:after(0, tick)
    session:wait("interaction.stop")
    session:action("ticked", { some = session.vars.n > 0 })
  end,
}
