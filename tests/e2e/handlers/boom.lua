-- tests/e2e/handlers/boom.lua: a flow that emits one action, then fails.

local function explode(session)
  error("boom in the flow of " .. session.interactionid)
end

return {
  start = function(session, event)
    session:action("hello", { n = 1 })
    explode(session)
  end,
}
