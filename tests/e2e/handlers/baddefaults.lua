-- tests/e2e/handlers/baddefaults.lua: defaults names no standard set: strategy_error, no session.
return {
  defaults = "requeu",
  start = function(session) end,
}
