-- tests/e2e/handlers/nostart.lua: loads, but has no start function.

return {
  defaults = "requeue",
}
