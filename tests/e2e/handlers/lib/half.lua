-- tests/e2e/handlers/lib/half.lua: a module caught halfway through a save.
return {
  answer = 42,
