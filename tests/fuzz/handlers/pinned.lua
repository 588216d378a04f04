-- tests/fuzz/handlers/pinned.lua: the standard resultof set, pinned to the
-- generation it started on (ixr.reload must not disturb it), with a
-- zero-second timer.

return {
  defaults = "resultof",
  pin = true,

  start = function(session, event)
    session:after(0, function(s)
      s:action("tick", {})
    end)
    local ok, res = session:route({ target = "Pinned" })
    if not ok then
      session:log("info", "route failed: " .. tostring(res.data.error))
    end
  end,
}
