-- tests/tooling/handlers/arrays.lua: empty arrays written as [], by mark
-- (core.array) or because they came in as [].
local core = require("ixr.core")

return {
  defaults = "none",
  start = function(session, event)
    local ok, err = pcall(core.array, setmetatable({}, {}))
    session:action("arrays", {
      none = core.array(),
      mine = core.array({ "a" }),
      plain = {},
      given = event.data.given,
      refused = not ok and err:find("metatable of its own", 1, true) ~= nil,
    })
  end,
}
