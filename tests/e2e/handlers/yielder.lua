-- tests/e2e/handlers/yielder.lua: a flow that yields by itself: handler_error
-- with this FILE:LINE, and the session ends with reason "error".
return {
  start = function(session)
    session.vars.before = true
    coroutine.yield("not a request")
  end,
}
