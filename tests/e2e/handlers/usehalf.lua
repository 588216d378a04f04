-- tests/e2e/handlers/usehalf.lua: requires a module that does not compile.
local half = require("lib.half")
return {
  start = function(session) session:action("answer", { n = half.answer }) end,
}
