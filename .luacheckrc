-- luacheck configuration for ixr's Lua: the standard library (lua/) and
-- strategies (handlers/). Run: luacheck --config .luacheckrc lua handlers
-- (make test runs it).
--
-- The "ixr" standard is exactly the sandbox strategies and the standard
-- library run in (runtime/luahost.c): no io, no debug, os cut down to its
-- clock functions, print going to the log, require of ixr modules.

stds.ixr = {
  read_globals = {
    "_G", "_VERSION", "assert", "error", "getmetatable", "ipairs", "load",
    "next", "pairs", "pcall", "print", "rawequal", "rawget", "rawlen",
    "rawset", "require", "select", "setmetatable", "tonumber", "tostring",
    "type", "xpcall",
    coroutine = { fields = {
      "close", "create", "isyieldable", "resume", "running", "status",
      "wrap", "yield",
    } },
    math = { fields = {
      "abs", "acos", "asin", "atan", "ceil", "cos", "deg", "exp", "floor",
      "fmod", "huge", "log", "max", "maxinteger", "min", "mininteger", "modf",
      "pi", "rad", "random", "randomseed", "sin", "sqrt", "tan", "tointeger",
      "type", "ult",
    } },
    os = { fields = { "clock", "date", "difftime", "time" } },
    string = { fields = {
      "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
      "match", "pack", "packsize", "rep", "reverse", "sub", "unpack", "upper",
    } },
    table = { fields = {
      "concat", "insert", "move", "pack", "remove", "sort", "unpack",
    } },
    utf8 = { fields = {
      "char", "charpattern", "codepoint", "codes", "len", "offset",
    } },
  },
}

std = "ixr"
max_line_length = 120

-- Handlers have fixed signatures (session, event): not using one of the two
-- is normal, not a mistake.
ignore = { "212/session", "212/event" }
