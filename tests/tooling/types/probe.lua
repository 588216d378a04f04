-- tests/tooling/types/probe.lua: compares lua/ixr/types.lua, the editor
-- annotations, with the runtime it describes, from inside a session.
--
-- * every member types.Session declares must exist on a live session object,
--   as a function for a method, with the declared value's type for a field;
-- * ixr.core and ixr.multimedia must have exactly the members declared
--   (both directions: a declared table that is empty stands for a map and
--   is not compared key by key).
--
-- It answers with one action, "probe", whose args.problems lists every
-- difference ("" when there is none). types_test.sh does the rest: the
-- directions that cannot be seen from Lua (the session's methods and fields
-- as runtime/session.c defines them, the strategy fields the loader reads).

local types = require("ixr.types")

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

local function compare_module(declared, real, path, problems)
  for _, k in ipairs(sorted_keys(declared)) do
    local want, have = declared[k], real[k]
    local where = path .. "." .. k
    if type(want) == "function" then
      if type(have) ~= "function" then
        problems[#problems + 1] = where .. " is declared as a function but is " .. type(have)
      end
    elseif type(want) == "table" and next(want) ~= nil then
      if type(have) ~= "table" then
        problems[#problems + 1] = where .. " is declared as a table but is " .. type(have)
      else
        compare_module(want, have, where, problems)
      end
    elseif have == nil then
      problems[#problems + 1] = where .. " is declared but the runtime has none"
    end
  end
  for _, k in ipairs(sorted_keys(real)) do
    if declared[k] == nil then
      problems[#problems + 1] = path .. "." .. k .. " exists but types.lua does not declare it"
    end
  end
end

return {
  start = function(session, event)
    local problems = {}
    for _, k in ipairs(sorted_keys(types.Session)) do
      local want, have = types.Session[k], session[k]
      if type(want) == "function" and type(have) ~= "function" then
        problems[#problems + 1] = "session:" .. k .. " is declared but the session has no such method"
      elseif type(want) ~= "function" and type(have) ~= type(want) then
        problems[#problems + 1] = "session." .. k .. " is declared as a " .. type(want)
          .. " but the session's is " .. type(have)
      end
    end
    compare_module(types.core, require("ixr.core"), "ixr.core", problems)
    compare_module(types.multimedia, require("ixr.multimedia"), "ixr.multimedia", problems)
    session:action("probe", {
      problems = table.concat(problems, "; "),
      session_members = #sorted_keys(types.Session),
    })
  end,
}
