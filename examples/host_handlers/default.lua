-- examples/host_handlers/default.lua: the strategy of the host_function
-- example. It requires "host", a module of C functions that the host
-- program registers with ixr_register() before strategies load.

local host = require("host")

return {
  defaults = "requeue",

  start = function(session, event)
    local customer = host.lookup_customer(event.data.customerid)
    if customer == nil then
      session:route({ target = "AgentGroup:General" }, { timeout = 30 })
    elseif customer.tier == "gold" then
      session:route({ target = "AgentGroup:VIP", customer = customer.name },
                    { timeout = 30 })
    else
      session:route({ target = "AgentGroup:General", customer = customer.name },
                    { timeout = 30 })
    end
  end,
}
