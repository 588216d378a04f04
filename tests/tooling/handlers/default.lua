-- tests/tooling/handlers/default.lua: a strategy with short timeouts, for
-- the tests of ixr test, ixr run --record and ixr replay (real time passes
-- in them, so 30 second timeouts would never fire).

return {
  requeue_timeout = 1,

  start = function(session, event)
    local ok = session:route({ target = "Quick" }, { timeout = 0.2 })
    if not ok then
      session:queue({ queue = "quick_overflow" }, { timeout = 0.2 })
    end
  end,

  on = {
    -- A handler that fails: handler_error, with a traceback.
    ["test.boom"] = function(session, event)
      error("boom: " .. tostring(event.data.why))
    end,
    -- Echoes the event's data back as the args of an "echo" action.
    ["test.echo"] = function(session, event)
      session:action("echo", event.data)
    end,
    -- A timer: emits "later" after event.data.seconds.
    ["test.later"] = function(session, event)
      local n = event.data.n
      session:after(event.data.seconds, function(s)
        s:action("later", { n = n })
      end)
    end,
  },
}
