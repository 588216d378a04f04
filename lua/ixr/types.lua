---@meta _
-- ixr/types.lua: type annotations (LuaCATS, for lua-language-server) for
-- strategy authors: the strategy table, the session object, events, and the
-- standard modules ixr.multimedia and ixr.core.
--
-- Nothing here runs in production: point the editor at this directory
-- (".luarc.json" at the top of the repository does it for handlers/) and
-- annotate a strategy's table with
--
--   ---@type ixr.Strategy
--   return { start = function(session, event) ... end }
--
-- to get completion and type checks on `session`, `event` and the fields.
--
-- The tables below are the declarations: each member is written once, as
-- code, so that tests/tooling/types_test.sh can load this file and compare
-- it with what the runtime really provides (every session method and
-- field, every strategy field the loader reads, every module function).
-- Add a member to the runtime and that test fails until it is added here.

-- Members are empty functions with the real parameter names, for the
-- editor: their arguments are unused by design.
-- luacheck: no unused args

local types = {}

-------------------------------------------------------------------------------
-- Events

---An event, as a strategy's handlers receive it.
---@class ixr.Event
---@field name string the event name, dotted and lower case ("interaction.present")
---@field data ixr.EventData the event's data object ({} when the event had none)
---@field id? string|number the input line's "id", when it had one
---@field requeued? boolean set by the standard library when a suspended session's interaction is presented again

---The `data` of an event. Beyond `interactionid`, whatever the source sends.
---@class ixr.EventData
---@field interactionid string the interaction the event is about
---@field requestid? string for action results: the request they answer ("r1")
---@field resultof? "routing"|"deletion"|"detaching"|"revoking"|string why control was lost (interaction.notcontrolled)
---@field strategy? string on the event that starts a session: the strategy file to run
---@field error? string for error.interaction.<action>: the error code
---@field description? string for error.interaction.<action>: a readable reason
---@field userdata? table<string, any> user data attached to the interaction
---@field [string] any

---A handler for an event: `on` handlers and the standard library's.
---@alias ixr.Handler fun(session: ixr.Session, event: ixr.Event)

---Options of a request or a wait.
---@class ixr.WaitOpts
---@field timeout? number seconds to wait at most (above 0, at most 1e9); no limit when absent.
---The only option: in a table without it, any key is an error

---A session's state.
---@alias ixr.State "active"|"suspended"|"ended"

---A log level of session:log.
---@alias ixr.LogLevel "error"|"warn"|"info"|"debug"|"trace"

-------------------------------------------------------------------------------
-- The session object

---One run of a strategy for one interaction. Fields are read-only; keep
---your own state in `session.vars`.
---@class ixr.Session
local Session = {}
types.Session = Session

---The session id: "s1", "s2", ... (per runtime, deterministic).
---@type string
Session.id = "s1"

---The interaction the session owns (Composer's system.InteractionID).
---@type string
Session.interactionid = "I1"

---The strategy's name: its file name in handlers/ without ".lua".
---@type string
Session.strategy = "default"

---A table the strategy owns: kept across events, requeues and reloads.
---Keep it to JSON-representable values.
---@type table<string, any>
Session.vars = {}

---"active", "suspended" (after an unexpected loss of control, waiting to be
---presented again) or "ended".
---@type ixr.State
Session.state = "active"

---Emits an action line and returns its request id at once (does not wait).
---Raises while the session is suspended: it does not control its
---interaction until the interaction is presented again.
---@param name string the action: 1 to 64 letters, digits, "_", "-" or "."
---@param args? table the action's arguments (JSON-representable)
---@return string requestid "r1", "r2", ...
function Session:action(name, args) end

---Emits an action and waits (in the flow only) for its result:
---`interaction.<name>.done` or `error.interaction.<name>` with the same
---requestid, or the timeout.
---@param name string
---@param args? table
---@param opts? ixr.WaitOpts
---@return boolean ok true for interaction.<name>.done
---@return ixr.Event|"timeout" result the result event, or "timeout"
function Session:request(name, args, opts) end

---session:request("route", args, opts).
---@param args? table for example { target = "AgentGroup:General" }
---@param opts? ixr.WaitOpts
---@return boolean ok
---@return ixr.Event|"timeout" result
function Session:route(args, opts) end

---session:request("queue", args, opts).
---@param args? table for example { queue = "overflow" }
---@param opts? ixr.WaitOpts
---@return boolean ok
---@return ixr.Event|"timeout" result
function Session:queue(args, opts) end

---session:request("stop", args, opts).
---@param args? table
---@param opts? ixr.WaitOpts
---@return boolean ok
---@return ixr.Event|"timeout" result
function Session:stop(args, opts) end

---Waits (in the flow only) for the next event of that name for this session.
---@param name string an event name
---@param opts? ixr.WaitOpts
---@return ixr.Event|nil event the event, or nil on timeout
---@return "timeout"|nil why
function Session:wait(name, opts) end

---Calls fn(session) after `seconds`, unless the session has ended first.
---@param seconds number 0 to 1e9
---@param fn fun(session: ixr.Session)
---@return integer timer an id for session:cancel
function Session:after(seconds, fn) end

---Cancels a timer of session:after.
---@param timer integer
---@return boolean cancelled true when it was still pending
function Session:cancel(timer) end

---Ends the session now (in the flow, nothing after the call runs).
---@param reason? string the end reason, 1 to 200 bytes (default "exit")
function Session:exit(reason) end

---Logs a message with the session's ids attached (on standard error).
---@param level ixr.LogLevel
---@param message any
function Session:log(level, message) end

-------------------------------------------------------------------------------
-- The strategy table (what a file in handlers/ returns)

---@class ixr.Strategy
local Strategy = {}
types.Strategy = Strategy

---The flow (required): runs as a coroutine when the session starts; it may
---wait in session:request/route/queue/stop/wait. Returning ends the session
---with reason "completed".
---@type fun(session: ixr.Session, event: ixr.Event)
Strategy.start = function(session, event) end

---What a suspended session runs when its interaction is presented again
---(standard "requeue" behaviour). Default: start again, with
---event.requeued == true; session.vars are kept.
---@type fun(session: ixr.Session, event: ixr.Event)?
Strategy.requeued = function(session, event) end

---Handlers by event name. One given here replaces the standard one for
---that event; it can still call it (require("ixr.multimedia")).
---@type table<string, ixr.Handler>?
Strategy.on = {}

---The standard behaviour on losing control (docs/multimedia.md).
---@type ("requeue"|"legacy"|"resultof"|"none")?
Strategy.defaults = "requeue"

---Seconds a suspended session waits to be presented again (default 300).
---@type number?
Strategy.requeue_timeout = 300

---true: sessions keep this generation of the strategy across reloads
---instead of moving to the newly loaded one at their next event.
---@type boolean?
Strategy.pin = false

-------------------------------------------------------------------------------
-- require("ixr.multimedia"): the standard handler sets

---@class ixr.multimedia.requeue
---@field notcontrolled ixr.Handler suspend on revoking/absent/unknown; end on deletion, detaching, routing
---@field present ixr.Handler resume a suspended session and run requeued (or start)
---@field deleted ixr.Handler end with "deleted"

---@class ixr.multimedia.legacy
---@field notcontrolled ixr.Handler end on any interaction.notcontrolled
---@field deleted ixr.Handler end with "deleted"

---@class ixr.multimedia.resultof
---@field notcontrolled ixr.Handler end when resultof is absent or "deletion"
---@field deleted ixr.Handler end with "deleted"

---@class ixr.multimedia
local multimedia = {}
types.multimedia = multimedia

---Short names of the events the sets handle, to the full event names.
---@type { notcontrolled: string, deleted: string, present: string }
multimedia.events = {
  notcontrolled = "interaction.notcontrolled",
  deleted = "interaction.deleted",
  present = "interaction.present",
}

---@type ixr.multimedia.requeue
multimedia.requeue = {
  notcontrolled = function(session, event) end,
  present = function(session, event) end,
  deleted = function(session, event) end,
}

---@type ixr.multimedia.legacy
multimedia.legacy = {
  notcontrolled = function(session, event) end,
  deleted = function(session, event) end,
}

---@type ixr.multimedia.resultof
multimedia.resultof = {
  notcontrolled = function(session, event) end,
  deleted = function(session, event) end,
}

---No standard handlers at all.
---@type table
multimedia.none = {}

---The sets by event name, as the runtime installs them under a strategy's
---own `on` handlers.
---@type table<"requeue"|"legacy"|"resultof"|"none", table<string, ixr.Handler>>
multimedia.sets = {}

-------------------------------------------------------------------------------
-- require("ixr.core"): what only C can do, used by the standard library

---@class ixr.core
local core = {}
types.core = core

---@param session ixr.Session
---@return ixr.State
function core.state(session) end

---Cancels the flow's pending request or wait (the flow is then closed, its
---<close> variables too), emits "suspended" and arms the requeue timeout
---(the strategy's requeue_timeout as loaded), which ends the session with
---"requeue_timeout" unless it is resumed first.
---@param session ixr.Session
---@param reason string
function core.suspend(session, reason) end

---Cancels the requeue timeout and emits "resumed": the session is active
---again. With fn, in the same step, its new flow runs fn(session, event), as
---core.run; a call that fails does so before resuming.
---@param session ixr.Session
---@param fn? fun(session: ixr.Session, event: ixr.Event)
---@param event? ixr.Event
function core.resume(session, fn, event) end

---Replaces the session's flow with fn(session, event), run to its first wait.
---Not from a <close> of a cancelled flow; flows started from inside flows
---nest at most 32 deep.
---@param session ixr.Session
---@param fn fun(session: ixr.Session, event: ixr.Event)
---@param event ixr.Event
function core.run(session, fn, event) end

---@param session ixr.Session
---@return "request"|"event"|nil waiting what the flow waits for
function core.flow_waiting(session) end

---The session lost control while its flow waits: when the flow finishes,
---end the session with this reason instead of "completed". Until then an
---action is not sent and ends the session with this reason, and an
---interaction.present ends it and starts a new session.
---@param session ixr.Session
---@param reason string
function core.end_after_flow(session, reason) end

---The reason the session will end with once its flow finishes (it lost
---control: core.end_after_flow), or nil.
---@param session ixr.Session
---@return string|nil reason
function core.ending(session) end

---The session lost control (core.ending) and its interaction is presented
---again by event: ends it with its pending reason and starts a new session
---for the event (its fields read raw). A present whose strategy cannot
---start replaces nothing (false; its error line says why). From the
---session's own flow, that flow stops there, as after session:exit.
---@param session ixr.Session
---@param event ixr.Event
---@return boolean replaced
function core.replace(session, event) end

---@param session ixr.Session
---@return ixr.Strategy strategy the table the strategy file returned
function core.strategy(session) end

---@param session ixr.Session
---@return table private a table private to the standard library, per session
function core.data(session) end

---@return integer ms the runtime clock, in milliseconds
function core.now() end

---Marks `t` (or a new empty table) as an array: while empty it is written
---as [] (an empty array that came in as [] is marked already).
---@generic T: table
---@param t? T a table without a metatable of its own
---@return T t
function core.array(t) return t end

---The value that stands for JSON null in arrays.
---@type lightuserdata
core.null = "null"

return types
