-- tests/e2e/handlers/broken.lua: a syntax error, so it never loads.

return {
  start = function(session, event)
    session:route({ target = "A" }
  end,
}
