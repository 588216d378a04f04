-- ixr.multimedia: the standard handler sets for multimedia interactions.
--
-- A strategy picks one with its `defaults` field:
--
--   requeue   (the default) losing control does not end the session. On
--             interaction.notcontrolled with resultof "revoking", no
--             resultof, or a value this library does not know, the session
--             is suspended and waits for interaction.present for the same
--             interaction; then it resumes (same session, session.vars kept)
--             and runs the strategy's `requeued` flow, or `start` again with
--             event.requeued == true. It gives up after requeue_timeout
--             seconds (reason "requeue_timeout"). "deletion" and "detaching"
--             end it. "routing" ends it too, but when the flow still waits
--             for the result of its own request, only once the flow finishes
--             (meanwhile an action ends it, and so does a new present, which
--             starts a new session).
--             A suspended session ends only on "deletion", "detaching" or
--             interaction.deleted; other events go to the strategy's own
--             `on` handlers.
--   legacy    any interaction.notcontrolled ends the session, with the
--             resultof value as the reason ("notcontrolled" when absent);
--             "routing" while the flow waits for its request, as in requeue,
--             once the flow finishes.
--   resultof  interaction.notcontrolled ends the session only when resultof
--             is absent ("notcontrolled") or "deletion"; any other value
--             leaves it running, but "routing" while the flow waits for
--             its request ends it once the flow finishes, as in the others.
--   none      no standard handlers at all.
--
-- In requeue, legacy and resultof, interaction.deleted ends the session with
-- reason "deleted", and interaction.present resumes a suspended session (in
-- legacy and resultof only a reload from requeue leaves one suspended).
--
-- A resultof that is not a non-empty string counts as absent. One that
-- cannot be a reason (over 200 bytes) gives the reason "notcontrolled".
--
-- A strategy's own `on` handler for an event replaces the standard one; it
-- can still call it, for example:
--
--   on = {
--     ["interaction.notcontrolled"] = function(session, event)
--       session:log("info", "lost control: " .. tostring(event.data.resultof))
--       require("ixr.multimedia").requeue.notcontrolled(session, event)
--     end,
--   }
--
-- Every handler checks that the event is about the session's own
-- interaction: ixr routes events by interaction id, so this matters only
-- when a strategy calls a handler by hand with another event.

local core = require("ixr.core")
local type = type -- every standard handler checks its arguments with it

local M = {}

-- Event names handled by the sets, by the short names used below.
M.events = {
  notcontrolled = "interaction.notcontrolled",
  deleted = "interaction.deleted",
  present = "interaction.present",
}

-- Is the event about the session's own interaction? Called the wrong way
-- (no event, the arguments swapped, `mm.requeue:notcontrolled(...)`), a
-- handler raises, naming itself, instead of doing nothing: a deletion
-- handled by nothing would leave the session alive.
local function own(session, event, name)
  if type(session) ~= "userdata" or type(event) ~= "table" then
    error(("ixr.multimedia: %s(session, event) takes a session and an event (got %s, %s)")
      :format(name, type(session), type(event)), 3)
  end
  local data = event.data
  return data ~= nil and data.interactionid == session.interactionid
end

-- The values engines send (DOMAIN.md): the usual case, checked in place
-- with one lookup (these handlers run for every notcontrolled event):
--   local resultof = event.data.resultof
--   if not KNOWN[resultof] then resultof = other_resultof(resultof) end
local KNOWN = { routing = true, deletion = true, detaching = true, revoking = true }

-- Any other resultof, or nil when there is none: a value that is not a
-- non-empty string says nothing about why control was lost.
local function other_resultof(resultof)
  if type(resultof) ~= "string" or resultof == "" then return nil end
  return resultof
end

-- A resultof as a session reason. Reasons go into output lines and are 1
-- to 200 bytes of UTF-8 without NUL; a value that cannot be one still
-- suspends or ends the session, as "notcontrolled".
local function reason_of(resultof)
  if KNOWN[resultof] then return resultof end
  if resultof == nil or #resultof > 200 or not utf8.len(resultof)
      or resultof:find("\0", 1, true) then
    return "notcontrolled"
  end
  return resultof
end

-- Ends the session for interaction.deleted (all sets but none).
local function deleted(session, event)
  if own(session, event, "deleted") then
    session:exit("deleted")
  end
end

-- notcontrolled with "routing": the expected result of the session's own
-- action. If the flow still waits for the result of its request, the
-- session ends once the flow finishes (DOMAIN.md, for every set); it no
-- longer controls the interaction meanwhile: an action it tries is not
-- sent and ends it, and an interaction.present ends it and starts a new
-- session (present, below). Returns true in that case.
local function routed_while_waiting(session)
  if core.flow_waiting(session) == "request" then
    core.end_after_flow(session, "routing")
    return true
  end
  return false
end

-- requeue and legacy: "routing" ends the session, now or after the flow.
local function routed(session)
  if not routed_while_waiting(session) then
    session:exit("routing")
  end
end

-- requeue ------------------------------------------------------------------

M.requeue = {}

function M.requeue.notcontrolled(session, event)
  if not own(session, event, "requeue.notcontrolled") then return end
  local resultof = event.data.resultof
  if not KNOWN[resultof] then resultof = other_resultof(resultof) end
  if resultof == "deletion" or resultof == "detaching" then
    session:exit(resultof)
  elseif core.state(session) ~= "active" then
    -- Suspended: only deletion and detaching (above) end it; it keeps
    -- waiting for interaction.present.
    return
  elseif resultof == "routing" then
    routed(session)
  else
    -- revoking, absent, or unknown: control was taken away, and the
    -- interaction will most likely be presented again. core.suspend arms
    -- the requeue timeout too (the strategy's requeue_timeout, default
    -- 300 s): it ends the session with "requeue_timeout".
    core.suspend(session, reason_of(resultof))
  end
end

function M.requeue.present(session, event)
  if not own(session, event, "requeue.present") then return end
  if core.state(session) ~= "suspended" then
    if core.ending(session) then
      -- It lost control (routing) while its flow waited, and the
      -- interaction is available again: no longer this session's. A new
      -- session starts for it (unless the present names no strategy that
      -- can start: then nothing changes, and an error line says why).
      core.replace(session, event)
      return
    end
    -- Presented again while still controlled: nothing to do.
    session:log("debug", "interaction.present for an active session: ignored")
    return
  end
  event.requeued = true
  local strategy = core.strategy(session)
  -- One step: resumed (its requeue timeout cancelled) and running its new
  -- flow. Should anything before it fail, the session is still suspended,
  -- with its requeue timeout.
  core.resume(session, strategy.requeued or strategy.start, event)
end

M.requeue.deleted = deleted

-- legacy -------------------------------------------------------------------

M.legacy = {}

function M.legacy.notcontrolled(session, event)
  if not own(session, event, "legacy.notcontrolled") then return end
  local resultof = event.data.resultof
  if not KNOWN[resultof] then resultof = other_resultof(resultof) end
  if resultof == "routing" and core.state(session) == "active" then
    routed(session)
  else
    session:exit(reason_of(resultof))
  end
end

M.legacy.deleted = deleted
M.legacy.present = M.requeue.present

-- resultof -----------------------------------------------------------------

M.resultof = {}

function M.resultof.notcontrolled(session, event)
  if not own(session, event, "resultof.notcontrolled") then return end
  local resultof = event.data.resultof
  if not KNOWN[resultof] then resultof = other_resultof(resultof) end
  if resultof == nil or resultof == "deletion" then
    session:exit(reason_of(resultof))
  elseif resultof == "routing" and core.state(session) == "active" then
    -- Any other value leaves the session running, but the details that
    -- apply to every set (DOMAIN.md) end it once the flow that waits for
    -- its request finishes.
    routed_while_waiting(session)
  end
end

M.resultof.deleted = deleted
M.resultof.present = M.requeue.present

-- none ---------------------------------------------------------------------

M.none = {}

-- The sets by event name, as the runtime installs them: a strategy's own
-- `on` handlers are laid over these.
local function by_event(set)
  local handlers = {}
  for short, fn in pairs(set) do
    handlers[M.events[short]] = fn
  end
  return handlers
end

M.sets = {
  requeue = by_event(M.requeue),
  legacy = by_event(M.legacy),
  resultof = by_event(M.resultof),
  none = by_event(M.none),
}

return M
