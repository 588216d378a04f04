-- tests/fuzz/handlers/legacy.lua: the standard legacy set, and a flow that
-- waits without a timeout.

return {
  defaults = "legacy",

  start = function(session, event)
    local ok = session:request("transfer", { to = event.data.queue }, { timeout = 5 })
    if ok then
      session:wait("interaction.customer.reply")
    end
  end,
}
