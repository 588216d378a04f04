-- hours: routes by the time of day (UTC), the way a business-hours strategy
-- does. On the manual clock os.time() and os.date() count from the
-- scenario's start_time (or ixr run --start-time), so tests and replays see
-- the same hours.
return {
  defaults = "none",
  start = function(session, event)
    local hour = os.date("!*t").hour
    local open = hour >= 8 and hour < 20
    session:action("route", { target = open and "Day" or "Night", at = os.time(),
                              stamp = os.date("!%Y-%m-%dT%H:%M:%SZ") })
  end,
}
