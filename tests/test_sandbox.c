/*
 * test_sandbox.c: the strategy sandbox and the limits. One named test per
 * escape attempt; each must fail safely, and the runtime must carry on.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

typedef struct fixture {
  char *dir; /* these three as in tfix, for tfix_teardown */
  tcap cap;
  ixr_runtime *rt;
  int n;     /* probe sessions started */
} fixture;

/* probe: runs data.code (Lua source) in the flow under pcall and reports
 * {ok, res}; the code runs in the same kind of sandbox as strategy files. */
static const char *PROBE =
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    local f, lerr = load(event.data.code, '=probe')\n"
    "    if not f then session:action('r', { ok = false, res = 'load: ' .. lerr }) return end\n"
    "    local ok, res = pcall(f, session)\n"
    "    session:action('r', { ok = ok, res = tostring(res) })\n"
    "  end,\n"
    "}\n";

static const char *NORMAL =
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    session.vars.n = tonumber(event.data.n)\n"
    "    local e = session:wait('interaction.ping')\n"
    "    session:action('pong', { n = session.vars.n, up = ('abc'):upper() })\n"
    "  end,\n"
    "}\n";

/* keeper: each flow leaves its own thread where the `on` handlers of any
 * session can find it, and waits. */
static const char *KEEPER =
    "local flows = {}\n"
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    flows[session.interactionid] = coroutine.running()\n"
    "    local e = session:wait('interaction.go')\n"
    "    session:action('went', { v = e.data.v })\n"
    "  end,\n"
    "  on = {\n"
    "    ['interaction.grab'] = function(session, event)\n"
    "      local co = flows[event.data.target]\n"
    "      session:action('status', { s = coroutine.status(co) })\n"
    "      if event.data.how == 'close' then coroutine.close(co)\n"
    "      else coroutine.resume(co, 'forged') end\n"
    "    end,\n"
    "  },\n"
    "}\n";

static ixr_runtime *make(fixture *f, uint64_t max_instr, size_t max_mem) {
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.max_instructions = max_instr;
  o.max_memory = max_mem;
  ixr_runtime *rt = NULL;
  assert_int_equal(ixr_new(&rt, &o), 0);
  return rt;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  f->dir = tdir_new();
  tdir_write(f->dir, "probe.lua", PROBE);
  tdir_write(f->dir, "normal.lua", NORMAL);
  tdir_write(f->dir, "keeper.lua", KEEPER);
  f->rt = make(f, 2000000, 256u << 20);
  *state = f;
  return 0;
}

#define teardown tfix_teardown

/* Runs `code` in a fresh probe session; returns the index of its r line. */
static int probe(fixture *f, const char *code) {
  char esc[2048];
  size_t j = 0;
  for (const char *p = code; *p && j < sizeof(esc) - 3; p++) {
    if (*p == '"' || *p == '\\') esc[j++] = '\\';
    if (*p == '\n') {
      esc[j++] = '\\';
      esc[j++] = 'n';
      continue;
    }
    esc[j++] = *p;
  }
  esc[j] = '\0';
  char line[4096];
  snprintf(line, sizeof(line),
           "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"P%d\",\"strategy\":\"probe\",\"code\":\"%s\"}}",
           ++f->n, esc);
  size_t mark = f->cap.n;
  tfeed(f->rt, line);
  return tcap_find(&f->cap, mark, "\"action\":\"r\"", NULL);
}

/* The probe's code failed, with a message containing `why`. */
static void refused(fixture *f, const char *code, const char *why) {
  int i = probe(f, code);
  if (i < 0 || strstr(f->cap.lines[i], "\"ok\":false") == NULL ||
      strstr(f->cap.lines[i], why) == NULL) {
    fprintf(stderr, "code: %s\nexpected a refusal with: %s\n", code, why);
    tcap_dump(&f->cap);
    fail();
  }
}

/* The probe's code ran and returned a value whose text contains `what`. */
static void returned(fixture *f, const char *code, const char *what) {
  int i = probe(f, code);
  if (i < 0 || strstr(f->cap.lines[i], "\"ok\":true") == NULL ||
      strstr(f->cap.lines[i], what) == NULL) {
    fprintf(stderr, "code: %s\nexpected success with: %s\n", code, what);
    tcap_dump(&f->cap);
    fail();
  }
}

static void test_no_io(void **state) { refused(*state, "return io.open('/etc/passwd')", "undefined global 'io'"); }
static void test_no_os_execute(void **state) { refused(*state, "return os.execute('touch /tmp/ixr-pwned')", "field 'execute'"); }
static void test_no_os_exit(void **state) { refused(*state, "os.exit(1)", "field 'exit'"); }
static void test_no_os_remove(void **state) { refused(*state, "return os.remove('/tmp/x')", "field 'remove'"); }
static void test_no_os_rename(void **state) { refused(*state, "return os.rename('/tmp/x', '/tmp/y')", "field 'rename'"); }
static void test_no_os_getenv(void **state) { refused(*state, "return os.getenv('HOME')", "field 'getenv'"); }
static void test_os_time_allowed(void **state) { returned(*state, "return type(os.time())", "number"); }
static void test_no_loadfile(void **state) { refused(*state, "return loadfile('/etc/passwd')", "undefined global 'loadfile'"); }
static void test_no_dofile(void **state) { refused(*state, "return dofile('/etc/passwd')", "undefined global 'dofile'"); }
static void test_no_binary_load(void **state) {
  refused(*state, "return load('\\27Lua', 'x', 'b')", "only text chunks");
  refused(*state, "local f, e = load('\\27LuaT') error(e)", "attempt to load a binary chunk");
}
static void test_no_string_dump(void **state) {
  refused(*state, "return string.dump(print)", "field 'dump'");
  refused(*state, "return ('').dump(print)", "field 'dump'");
}
static void test_no_package(void **state) { refused(*state, "return package.loadlib('libc.so.6', 'system')", "undefined global 'package'"); }
static void test_no_debug(void **state) { refused(*state, "return debug.getregistry()", "undefined global 'debug'"); }
static void test_no_collectgarbage(void **state) { refused(*state, "collectgarbage('stop')", "undefined global 'collectgarbage'"); }
static void test_require_confined(void **state) {
  fixture *f = *state;
  refused(f, "return require('io')", "not found");
  refused(f, "return require('os')", "not found");
  refused(f, "return require('../../etc/passwd')", "bad module name");
  refused(f, "return require('/etc/passwd')", "bad module name");
  returned(f, "return type(require('ixr.multimedia').requeue.notcontrolled)", "function");
}
static void test_string_metatable_trick(void **state) {
  fixture *f = *state;
  returned(f, "return getmetatable('')", "protected");
  refused(f, "getmetatable('').__index.upper = nil", "attempt to");
  /* changing its own copy of string changes nothing for others */
  returned(f, "string.upper = nil; return tostring(string.upper)", "nil");
  returned(f, "return ('x'):upper()", "X");
  returned(f, "return string.upper('y')", "Y");
}
static void test_no_gc_metamethods(void **state) {
  fixture *f = *state;
  refused(f, "setmetatable({}, { __gc = function() while true do end end })", "__gc metamethods are not allowed");
  returned(f, "return getmetatable(setmetatable({}, { __index = { x = 7 } })).__index.x", "7");
  refused(f, "local t = setmetatable({}, { __metatable = 'locked' }) setmetatable(t, {})", "protected metatable");
}

static void test_load_with_custom_env(void **state) {
  fixture *f = *state;
  returned(f, "return load('x = 41; return x + 1', 'c', 't', {})()", "42");
  returned(f, "return tostring(load('return io or os or require', 'c', 't', {})())", "nil");
  refused(f, "return load('return _ENV.debug.traceback()', 'c', 't', {})()", "attempt to index");
}
static void test_global_writes_are_errors(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "typo.lua",
             "return { defaults = 'none', start = function(s)\n"
             "  counter = 1\n"
             "end }\n");
  ixr_close(f->rt);
  f->rt = make(f, 2000000, 256u << 20);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"T\",\"strategy\":\"typo\"}}");
  assert_true(tcap_find(&f->cap, 0, "handler_error", "typo.lua:2:", "assignment to undefined global 'counter'", NULL) >= 0);
}

static void test_pcall_around_infinite_loop(void **state) {
  fixture *f = *state;
  int i = probe(f, "pcall(function() while true do end end) session_survived = true");
  assert_true(i < 0); /* the flow never got to report */
  assert_true(tcap_find(&f->cap, 0, "\"limit_exceeded\"", "instruction budget", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"reason\":\"error\"", NULL) >= 0);
}

static void test_coroutine_wrap_around_killed_call(void **state) {
  fixture *f = *state;
  int i = probe(f,
                "local ok = pcall(coroutine.wrap(function() while true do end end))\n"
                "local co = coroutine.create(function() while true do end end)\n"
                "coroutine.resume(co)\n"
                "return 'escaped'");
  assert_true(i < 0);
  assert_true(tcap_find(&f->cap, 0, "\"limit_exceeded\"", NULL) >= 0);
  /* a later call has its full budget again */
  i = probe(f, "local n = 0 for k = 1, 100000 do n = n + k end return n");
  assert_true(i >= 0 && strstr(f->cap.lines[i], "\"ok\":true"));
}

/* Writes strategy NAME with CODE, reloads, and presents interaction IID to
 * it. */
static void start_with(fixture *f, const char *name, const char *code, const char *iid) {
  char file[64], line[256];
  snprintf(file, sizeof(file), "%s.lua", name);
  tdir_write(f->dir, file, code);
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  snprintf(line, sizeof(line),
           "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"%s\",\"strategy\":\"%s\"}}",
           iid, name);
  tfeed(f->rt, line);
}

/* A flow started by a handler (the requeued flow, started by the standard
 * present handler) that meets a limit: one error line, limit_exceeded, with
 * the input line's number and id; the handler that started it died of the
 * same kill and does not report it again. */
static void test_kill_in_a_nested_flow_is_reported_once(void **state) {
  fixture *f = *state;
  start_with(f, "loopreq",
             "return {\n"
             "  start = function(session, event) session:route({ target = 'A' }) end,\n"
             "  requeued = function(session, event) while true do end end,\n"
             "}\n", "L1");
  tfeed(f->rt, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"L1\",\"resultof\":\"revoking\"}}");
  size_t mark = f->cap.n;
  ixr_stats before, after;
  ixr_get_stats(f->rt, &before);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"L1\"},\"id\":42}");
  ixr_get_stats(f->rt, &after);
  int e = tcap_find(&f->cap, mark, "\"type\":\"error\"", NULL);
  assert_true(e >= 0);
  assert_non_null(strstr(f->cap.lines[e], "\"error\":\"limit_exceeded\""));
  assert_non_null(strstr(f->cap.lines[e], "loopreq.lua:3: instruction budget exceeded"));
  assert_non_null(strstr(f->cap.lines[e], "\"line\":3,\"id\":42"));
  assert_true(tcap_find(&f->cap, (size_t)e + 1, "\"type\":\"error\"", NULL) < 0);
  assert_true(tcap_find(&f->cap, mark, "\"ended\"", "\"reason\":\"error\"", NULL) >= 0);
  assert_int_equal(after.errors - before.errors, 1);
  assert_int_equal(after.limit_kills - before.limit_kills, 1);
}

/* A flow stopped by the instruction budget does not run its pending
 * __close: the budget raised from a hook, Lua leaves hooks off on that
 * thread, and a __close that loops would hold the runtime for good. */
static void test_killed_flow_does_not_run_its_closes(void **state) {
  fixture *f = *state;
  start_with(f, "loopclose",
             "return { defaults = 'none', start = function(session, event)\n"
             "  local a <close> = setmetatable({}, { __close = function()\n"
             "    session:log('info', 'closing') while true do end end })\n"
             "  while true do end\n"
             "end }\n", "K");
  assert_true(tcap_find(&f->cap, 0, "\"limit_exceeded\"", "loopclose.lua:4", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"K\"", "\"reason\":\"error\"", NULL) >= 0);
  assert_true(f->cap.log == NULL || strstr(f->cap.log, "closing") == NULL);
}

/* session:after refused at the memory limit leaves no timer behind (it
 * used to stay armed without its function, and fire as a nil call). */
static void test_after_at_the_memory_limit_leaves_nothing(void **state) {
  fixture *f = *state;
  ixr_close(f->rt);
  f->rt = make(f, 0, (size_t)16 << 20);
  start_with(f, "filler",
             "return { defaults = 'none', start = function(s) s:wait('never') end,\n"
             "  on = { ['x.fill'] = function(session)\n"
             "    pcall(function() for i = 1, 1e7 do session:after(100, function() end) end end)\n"
             "  end } }\n", "F");
  tfeed(f->rt, "{\"name\":\"x.fill\",\"data\":{\"interactionid\":\"F\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"limit_exceeded\"", NULL) >= 0);
  size_t mark = f->cap.n;
  tfeed(f->rt, "{\"name\":\"clock.advance\",\"data\":{\"ms\":100000}}");
  assert_true(tcap_find(&f->cap, mark, "\"error\"", NULL) < 0);
}

/* What a hostile strategy review found: each was a crash, a hang or a way
 * around a limit. */

/* request's opts are read raw: an __index that ended the session between
 * the checks and the wait used to leave a freed session's timer armed. */
static void test_opts_metamethods_are_not_run(void **state) {
  fixture *f = *state;
  start_with(f, "sneaky",
             "return { start = function(session)\n"
             "  local opts = setmetatable({}, { __index = function() session:exit('bye') return 5 end })\n"
             "  session:request('route', { target = 'A' }, opts)\n"
             "end }\n", "S");
  tfeed(f->rt, "{\"name\":\"clock.advance\",\"data\":{\"ms\":10000}}");
  assert_true(tcap_find(&f->cap, 0, "\"route\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"bye\"", NULL) < 0);
}

/* A metatable whose own __index puts __gc in while setmetatable checks
 * for it: refused before, now never registered (the finalizer would run
 * with hooks off, beyond the budget and the memory cap). */
static void test_gc_through_index_is_not_registered(void **state) {
  fixture *f = *state;
  start_with(f, "gcsneak",
             "return { defaults = 'none', start = function(session)\n"
             "  local mt = {}\n"
             "  setmetatable(mt, { __index = function(t, k)\n"
             "    if k == '__gc' then rawset(t, '__gc', function() print('finalizer ran') end) end end })\n"
             "  setmetatable({}, mt)\n"
             "end }\n", "G");
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  for (int i = 0; i < 3; i++)
    tfeed(f->rt, "{\"name\":\"ixr.status\"}"); /* collector steps between events */
  ixr_close(f->rt); /* a last full collection */
  f->rt = NULL;
  assert_true(f->cap.log == NULL || strstr(f->cap.log, "finalizer ran") == NULL);
  f->rt = make(f, 2000000, 256u << 20);
}

/* A table reached many times is written each time: the line is capped
 * (64 MiB) instead of growing with 2^n. */
static void test_shared_subtables_do_not_explode(void **state) {
  fixture *f = *state;
  int i = probe(f, "local session = ...\n"
                   "local t = {} for k = 1, 40 do t = { t, t } end\n"
                   "local ok, err = pcall(session.action, session, 'x', { t = t })\n"
                   "return tostring(ok) .. ' ' .. tostring(err)");
  assert_true(i >= 0);
  assert_non_null(strstr(f->cap.lines[i], "false"));
  assert_non_null(strstr(f->cap.lines[i], "longer than 64 MiB"));
}

/* Each generation gets its own view of ixr.core: what one wrote into it
 * with rawset is gone after a reload; and a strategy file cannot act on
 * sessions while it loads. */
static void test_core_view_per_generation(void **state) {
  fixture *f = *state;
  static const char STASHER[] =
      "local core = require('ixr.core')\n"
      "local seen = rawget(core, 'stash') ~= nil\n"
      "rawset(core, 'stash', {})\n"
      "return { defaults = 'none', start = function(s) s:action('seen', { v = seen }) end }\n";
  tdir_write(f->dir, "stasher.lua", STASHER);
  assert_int_equal(ixr_reload(f->rt, NULL), 0); /* one generation writes its stash */
  start_with(f, "stasher", STASHER, "V");       /* the next one must not see it */
  assert_true(tcap_find(&f->cap, 0, "\"seen\"", "\"v\":false", NULL) >= 0);
}

/* On the manual clock math.random gives the same numbers every run. */
static void test_random_is_seeded_on_the_manual_clock(void **state) {
  fixture *f = *state;
  char first[64] = "";
  for (int run = 0; run < 2; run++) {
    ixr_close(f->rt);
    tcap_clear(&f->cap);
    f->rt = make(f, 2000000, 256u << 20);
    int i = probe(f, "return math.random(1000000000)");
    assert_true(i >= 0);
    const char *r = strstr(f->cap.lines[i], "\"res\":");
    assert_non_null(r);
    if (run == 0) snprintf(first, sizeof(first), "%.30s", r);
    else assert_true(strncmp(first, r, strlen(first)) == 0);
  }
}

/* On the manual clock os.time() and os.date() count from start_time_ms with
 * the runtime clock, so tests and replays see the same dates; with a time
 * given, or a table, they are Lua's own. On the real clock they read the
 * system's clock, and the stats say when the runtime started. */
static void remake_at(fixture *f, ixr_clock clock, int64_t start_ms) {
  ixr_close(f->rt);
  tcap_clear(&f->cap);
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.clock = clock;
  o.start_time_ms = start_ms;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
}

static void test_os_time_follows_the_manual_clock(void **state) {
  fixture *f = *state;
  remake_at(f, IXR_CLOCK_MANUAL, 1730800800000LL); /* 2024-11-05T10:00:00Z */
  returned(f, "return os.time()", "\"res\":\"1730800800\"");
  returned(f, "return os.date('!%Y-%m-%dT%H:%M:%S')", "2024-11-05T10:00:00");
  tfeed(f->rt, "{\"name\":\"clock.advance\",\"data\":{\"ms\":90999}}");
  returned(f, "return os.time()", "\"res\":\"1730800890\"");
  returned(f, "return os.date('!%H:%M:%S')", "10:01:30");
  returned(f, "return os.date('!*t').min", "\"res\":\"1\"");
  returned(f, "return os.date('!%Y', 86400 * 366)", "1971");
  returned(f, "return os.time({ year = 2000, month = 1, day = 1, hour = 12 }) > 9e8", "true");
  returned(f, "return type(os.date())", "string");
  ixr_stats st;
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.start_time_ms, 1730800800000LL);

  /* Errors of the wrapped functions keep the strategy's position. */
  refused(f, "return os.date('%Q')", "probe:1: bad argument #1 to");
  refused(f, "return os.time({ year = 2024 })", "probe:1: field 'month' missing");
  /* A clock advanced past any date stops at the last one (no overflow). */
  assert_int_equal(ixr_advance(f->rt, UINT64_MAX), 0);
  returned(f, "return os.time()", "\"res\":\"9223372036854775\"");

  remake_at(f, IXR_CLOCK_MANUAL, -1500); /* before 1970: seconds round down */
  returned(f, "return os.time()", "\"res\":\"-2\"");
  remake_at(f, IXR_CLOCK_MANUAL, 0);
  returned(f, "return os.date('!%Y-%m-%d %H:%M:%S')", "1970-01-01 00:00:00");

  ixr_options o;
  topts(&o, f->dir, &f->cap);
  ixr_runtime *bad = NULL;
  o.start_time_ms = IXR_START_TIME_MAX + 1;
  assert_int_equal(ixr_new(&bad, &o), IXR_EINVAL);
  o.start_time_ms = -IXR_START_TIME_MAX - 1;
  assert_int_equal(ixr_new(&bad, &o), IXR_EINVAL);
  assert_null(bad);

  int64_t before = (int64_t)time(NULL) * 1000;
  remake_at(f, IXR_CLOCK_REAL, 1730800800000LL); /* ignored */
  int64_t after = (int64_t)time(NULL) * 1000 + 1000;
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_true(st.start_time_ms >= before && st.start_time_ms <= after);
  char code[128];
  snprintf(code, sizeof(code), "return math.abs(os.time() - %lld) <= 5",
           (long long)time(NULL));
  returned(f, code, "true");
}

/* Misspellings raise at the strategy's line instead of reading as nil or
 * meaning "no timeout"; the range of a timeout is in its message. */
static void test_misspellings_raise(void **state) {
  fixture *f = *state;
  refused(f, "local session = ... return session.InteractionID", "probe:1: session has no field 'InteractionID' (fields: id");
  refused(f, "local session = ... return session[1]", "session has no field '1'");
  returned(f, "local session = ... return session.interactionid", "P");
  refused(f, "local session = ... session.vars = {}", "probe:1: session.vars cannot be replaced (change its fields");
  refused(f, "local session = ... session.id = 'x'", "probe:1: session.id is read-only");
  refused(f, "local session = ... session:route({ target = 'A' }, { timout = 20 })", "unknown option 'timout' (the only one is timeout)");
  refused(f, "local session = ... session:wait('x', { 20 })", "options are named: { timeout = seconds } (got a number key)");
  refused(f, "local session = ... session:wait('x', { timeout = 1e10 })", "timeout must be a number of seconds above 0, at most 1e9");
  /* nothing was sent for the refused calls */
  assert_int_equal(tcap_find(&f->cap, 0, "\"action\":\"route\"", NULL), -1);
}

static void test_infinite_loop_in_strategy_file_load(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "spin.lua", "while true do end\nreturn {}\n");
  ixr_reload_result r;
  assert_int_equal(ixr_reload(f->rt, &r), IXR_ESTRATEGY);
  assert_non_null(strstr(r.errors, "instruction budget"));
}

static void test_memory_bomb(void **state) {
  fixture *f = *state;
  int i = probe(f, "local t = {} for k = 1, 1e9 do t[k] = ('x'):rep(1000) .. k end");
  assert_true(i < 0);
  assert_true(tcap_find(&f->cap, 0, "\"limit_exceeded\"", "memory limit", NULL) >= 0);
  /* caught by pcall or not, the call dies */
  i = probe(f, "pcall(function() local s = ('x'):rep(1 << 30) end) return 'caught'");
  assert_true(i < 0);
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_true(st.limit_kills >= 2);
  /* and the state is usable afterwards */
  i = probe(f, "return #('y'):rep(1000)");
  assert_true(i >= 0 && strstr(f->cap.lines[i], "\"res\":\"1000\""));
}

/* The per-session soft limit: the net growth of the heap in one call. */
static void test_per_call_growth_limit(void **state) {
  fixture *f = *state;
  ixr_close(f->rt);
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.max_call_growth = 4u << 20;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  /* 1 MiB kept is fine; 16 MiB kept in one call is not */
  int i = probe(f, "local t = {} for k = 1, 1024 do t[k] = ('x'):rep(1024) .. k end return #t");
  assert_true(i >= 0 && strstr(f->cap.lines[i], "\"ok\":true"));
  i = probe(f, "local t = {} for k = 1, 16384 do t[k] = ('x'):rep(1024) .. k end return #t");
  assert_true(i < 0);
  assert_true(tcap_find(&f->cap, 0, "\"limit_exceeded\"", "one call may grow", NULL) >= 0);
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.limit_kills, 1);
  /* the next session's call has its own allowance */
  i = probe(f, "return 'fine'");
  assert_true(i >= 0 && strstr(f->cap.lines[i], "\"res\":\"fine\""));
}

static void test_deep_recursion(void **state) {
  fixture *f = *state;
  int i = probe(f, "local function g(n) return 1 + g(n + 1) end return g(1)");
  assert_true(i >= 0);
  assert_non_null(strstr(f->cap.lines[i], "stack overflow"));
  /* unprotected, it ends the session with an error and a traceback */
  tdir_write(f->dir, "deep.lua",
             "local function g(n) return 1 + g(n + 1) end\n"
             "return { defaults = 'none', start = function() g(1) end }\n");
  ixr_close(f->rt);
  f->rt = make(f, 2000000, 256u << 20);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"D\",\"strategy\":\"deep\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"D\"", "\"reason\":\"error\"", NULL) >= 0);
}

/* One session loops, one bombs memory, one recurses, while 1,000 others
 * keep getting correct output. */
static void test_bad_sessions_do_not_hurt_others(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "bad.lua",
             "local function g(n) return 1 + g(n + 1) end\n"
             "return { defaults = 'none', start = function(s, e)\n"
             "  s:wait('interaction.ping')\n"
             "  if e.data.kind == 'loop' then while true do end\n"
             "  elseif e.data.kind == 'bomb' then local t = {} for k = 1, 1e9 do t[k] = ('x'):rep(4096) end\n"
             "  else g(1) end\n"
             "end }\n");
  ixr_close(f->rt);
  f->rt = make(f, 2000000, 128u << 20);
  enum { N = 1000 };
  char line[256];
  const char *kinds[3] = {"loop", "bomb", "deep"};
  for (int i = 0; i < N; i++) {
    snprintf(line, sizeof(line),
             "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"N%d\",\"strategy\":\"normal\",\"n\":%d}}", i, i);
    tfeed(f->rt, line);
    if (i % 333 == 100) {
      int k = i / 333;
      snprintf(line, sizeof(line),
               "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"BAD%d\",\"strategy\":\"bad\",\"kind\":\"%s\"}}", k, kinds[k]);
      tfeed(f->rt, line);
    }
  }
  for (int i = 0; i < N; i++) {
    snprintf(line, sizeof(line), "{\"name\":\"interaction.ping\",\"data\":{\"interactionid\":\"N%d\"}}", i);
    tfeed(f->rt, line);
    if (i % 333 == 200) {
      snprintf(line, sizeof(line), "{\"name\":\"interaction.ping\",\"data\":{\"interactionid\":\"BAD%d\"}}", i / 333);
      tfeed(f->rt, line);
    }
  }
  for (int i = 0; i < N; i++) {
    char want[128];
    snprintf(want, sizeof(want), "\"args\":{\"n\":%d,\"up\":\"ABC\"}", i);
    char who[32];
    snprintf(who, sizeof(who), "\"interactionid\":\"N%d\"", i);
    assert_true(tcap_find(&f->cap, 0, "\"pong\"", who, want, NULL) >= 0);
    assert_true(tcap_find(&f->cap, 0, "\"ended\"", who, "completed", NULL) >= 0);
  }
  assert_true(tcap_find(&f->cap, 0, "\"limit_exceeded\"", "BAD0", "instruction budget", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"limit_exceeded\"", "BAD1", "memory limit", NULL) >= 0);
  /* deep recursion dies of stack overflow, or of the memory cap first */
  assert_true(tcap_find(&f->cap, 0, "\"handler_error\"", "BAD2", "stack overflow", NULL) >= 0 ||
              tcap_find(&f->cap, 0, "\"limit_exceeded\"", "BAD2", "memory limit", NULL) >= 0);
  for (int k = 0; k < 3; k++) {
    char who[32];
    snprintf(who, sizeof(who), "\"interactionid\":\"BAD%d\"", k);
    assert_true(tcap_find(&f->cap, 0, "\"ended\"", who, "\"reason\":\"error\"", NULL) >= 0);
  }
}

/* A strategy that kept a flow's thread (coroutine.running) can neither
 * wake it with values of its own nor close it: only the dispatcher does,
 * with the events the flow waits for. (The thread of a finished flow serves
 * the next one, so a kept thread may belong to another session by then.) */
static void test_flow_cannot_be_resumed_by_strategy(void **state) {
  fixture *f = *state;
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"K1\",\"strategy\":\"keeper\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"K2\",\"strategy\":\"keeper\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.grab\",\"data\":{\"interactionid\":\"K2\",\"target\":\"K1\",\"how\":\"resume\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.grab\",\"data\":{\"interactionid\":\"K2\",\"target\":\"K1\",\"how\":\"close\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"status\"", "\"s\":\"suspended\"", NULL) >= 0);
  int e = tcap_find(&f->cap, 0, "\"handler_error\"", "keeper.lua:14:",
                    "a session's flow cannot be resumed or closed", NULL);
  assert_true(e >= 0);
  assert_true(tcap_find(&f->cap, (size_t)e + 1, "\"handler_error\"", "keeper.lua:13:",
                        "a session's flow cannot be resumed or closed", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "forged", NULL) < 0);
  /* The flow is untouched: it takes its own event. */
  tfeed(f->rt, "{\"name\":\"interaction.go\",\"data\":{\"interactionid\":\"K1\",\"v\":7}}");
  assert_true(tcap_find(&f->cap, 0, "\"went\"", "\"interactionid\":\"K1\"", "\"v\":7", NULL) >= 0);
}

/* print writes where it was called and its arguments, tab-separated, to the
 * log at info level, and nothing else (a buffer's placeholder on the stack
 * once showed up as a last "userdata: 0x..." argument). */
static void test_print_goes_to_the_log(void **state) {
  fixture *f = *state;
  returned(f, "print('one', 2, nil, true) return 'printed'", "printed");
  assert_non_null(f->cap.log);
  const char *want = "print: probe:1: one\t2\tnil\ttrue";
  const char *line = strstr(f->cap.log, want);
  assert_non_null(line);
  const char *eol = strchr(line, '\n');
  assert_int_equal(eol != NULL ? (size_t)(eol - line) : strlen(line), strlen(want));
}

/* A strategy's own coroutines are not flows: resume and close work. */
static void test_own_coroutines_work(void **state) {
  returned(*state,
           "local co = coroutine.create(function(a) coroutine.yield(a + 1) return 'done' end)\n"
           "local _, x = coroutine.resume(co, 1)\n"
           "local _, y = coroutine.resume(co)\n"
           "local c2 = coroutine.create(function() coroutine.yield() end)\n"
           "coroutine.resume(c2)\n"
           "return x .. y .. tostring(coroutine.close(c2)) .. coroutine.status(c2)",
           "2donetruedead");
  /* and the running flow is a flow */
  refused(*state, "return coroutine.resume(coroutine.running())",
          "a session's flow cannot be resumed or closed");
}

/* The modules every strategy shares (ixr.core, the standard library) are
 * read-only views: an assignment, an accident in one strategy, fails with
 * its file:line. Reading, pairs and # work as on any table. */
static void test_shared_modules_are_read_only(void **state) {
  fixture *f = *state;
  refused(f, "require('ixr.core').run = nil",
          "probe:1: module 'ixr.core' is read-only (assignment to 'run')");
  refused(f, "require('ixr.multimedia').requeue.notcontrolled = print",
          "probe:1: module 'ixr.multimedia' is read-only (assignment to 'notcontrolled')");
  refused(f, "require('ixr.multimedia').sets.requeue['interaction.deleted'] = print",
          "(assignment to 'interaction.deleted')");
  refused(f, "local c = require('ixr.core') c[#c + 1] = 1", "(assignment to a number key)");
  refused(f, "setmetatable(require('ixr.core'), nil)", "protected metatable");
  /* pairs hands out views, never the module itself */
  refused(f, "local _, c = pairs(require('ixr.core')) c.suspend = print",
          "probe:1: module 'ixr.core' is read-only (assignment to 'suspend')");
  /* the position is the strategy's, also through a library function */
  refused(f, "table.insert(require('ixr.multimedia').sets, 1)",
          "probe:1: module 'ixr.multimedia' is read-only (assignment to a number key)");
  returned(f, "local n = 0 for k in pairs(require('ixr.core')) do n = n + 1 end return n", "13");
  returned(f, "local mm = require('ixr.multimedia')\n"
              "return tostring(mm.requeue.deleted == mm.sets.requeue['interaction.deleted']\n"
              "  and mm.sets == require('ixr.multimedia').sets and #mm.sets == 0\n"
              "  and type(require('ixr.core').null))",
           "true");
  /* written as what they show */
  returned(f, "local session = ... session:action('ev', require('ixr.multimedia').events) return 'sent'", "sent");
  assert_true(tcap_find(&f->cap, 0, "\"action\":\"ev\"",
                        "\"notcontrolled\":\"interaction.notcontrolled\"", NULL) >= 0);
}

/* So one strategy cannot change the standard behaviour of the others: a
 * file that loads first and tries to replace core.suspend and the requeue
 * set's handlers leaves a later strategy's sessions suspending and
 * resuming as the standard set says. */
static void test_strategy_cannot_change_others_standard_set(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "avandal.lua",
             "local core, mm = require('ixr.core'), require('ixr.multimedia')\n"
             "local noop = function() end\n"
             "local tries = {\n"
             "  function() core.suspend = noop end,\n"
             "  function() mm.sets.requeue['interaction.notcontrolled'] = noop end,\n"
             "  function() mm.requeue.present = noop end,\n"
             "}\n"
             "for _, try in ipairs(tries) do assert(not pcall(try)) end\n"
             "return { start = function(s) s:wait('never') end }\n");
  tdir_write(f->dir, "victim.lua",
             "return { start = function(s) s:wait('interaction.x') s:action('done') end }\n");
  ixr_close(f->rt);
  f->rt = make(f, 2000000, 256u << 20);
  assert_true(tcap_find(&f->cap, 0, "avandal", NULL) < 0); /* it loaded */
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"V\",\"strategy\":\"victim\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"V\",\"resultof\":\"revoking\"}}");
  int i = tcap_find(&f->cap, 0, "\"state\":\"suspended\"", "\"V\"", NULL);
  assert_true(i >= 0);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"V\",\"strategy\":\"victim\"}}");
  assert_true(tcap_find(&f->cap, (size_t)i, "\"state\":\"resumed\"", "\"V\"", NULL) >= 0);
  tfeed(f->rt, "{\"name\":\"interaction.x\",\"data\":{\"interactionid\":\"V\"}}");
  assert_true(tcap_find(&f->cap, (size_t)i, "\"done\"", "\"V\"", NULL) >= 0);
}

/* Reads a whole file (NULL-terminated, malloc'd). */
static char *slurp(const char *path) {
  FILE *in = fopen(path, "rb");
  assert_non_null(in);
  fseek(in, 0, SEEK_END);
  long n = ftell(in);
  fseek(in, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, in), (size_t)n);
  buf[n] = '\0';
  fclose(in);
  return buf;
}

/* Views in the places a strategy may put them: a standard set as `on`, a
 * module of lua/ that re-exports views (which stay whole), or that is a
 * strategy itself; a table with a metatable of its own keeps it. */
static void test_views_where_strategies_put_them(void **state) {
  fixture *f = *state;
  char *lua = tdir_new();
  char src[1024];
  const char *std = getenv("IXR_LUA_DIR");
  assert_non_null(std);
  snprintf(src, sizeof(src), "%s/ixr/multimedia.lua", std);
  char *mm = slurp(src);
  tdir_write(lua, "ixr/multimedia.lua", mm);
  free(mm);
  tdir_write(lua, "acme/std.lua",
             "local M = { core = require('ixr.core'), events = require('ixr.multimedia').events,\n"
             "  list = { 'a', 'b', 'c' }, callable = setmetatable({}, { __call = function() return 'called' end }) }\n"
             "M.on = { ['interaction.deleted'] = function(s) s:exit('acme-deleted') end }\n"
             "M.helper_wrote = require('lib.helper')\n"
             "M.start = function(s) s:wait('never') end\n"
             "return M\n");
  tdir_write(f->dir, "legacyon.lua",
             "return { defaults = 'none', on = require('ixr.multimedia').sets.legacy,\n"
             "  start = function(s) s:wait('never') end }\n");
  tdir_write(f->dir, "acme.lua", "return require('acme.std')\n");
  /* a module of the handlers dir, required by one of lua/: a view too */
  tdir_write(f->dir, "lib/helper.lua",
             "return (pcall(function() require('ixr.core').run = print end))\n");
  tdir_write(f->dir, "user.lua",
             "local acme = require('acme.std')\n"
             "return { defaults = 'none', start = function(s)\n"
             "  local n = 0 for _ in pairs(acme.core) do n = n + 1 end\n"
             "  s:action('u', { n = n, list = table.concat(acme.list, ','), len = #acme.list,\n"
             "    called = acme.callable(), events = acme.events, helper_wrote = acme.helper_wrote })\n"
             "end }\n");
  ixr_close(f->rt);
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.lua_dir = lua;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"L\",\"strategy\":\"legacyon\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.deleted\",\"data\":{\"interactionid\":\"L\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"A\",\"strategy\":\"acme\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.deleted\",\"data\":{\"interactionid\":\"A\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"U\",\"strategy\":\"user\"}}");
  bool ok = tcap_find(&f->cap, 0, "\"ended\"", "\"L\"", "\"reason\":\"deleted\"", NULL) >= 0 &&
            tcap_find(&f->cap, 0, "\"ended\"", "\"A\"", "\"reason\":\"acme-deleted\"", NULL) >= 0 &&
            tcap_find(&f->cap, 0, "\"u\"", "\"n\":13", "\"list\":\"a,b,c\"", "\"len\":3",
                      "\"called\":\"called\"", "\"notcontrolled\":\"interaction.notcontrolled\"",
                      "\"helper_wrote\":false", NULL) >= 0;
  if (!ok) tcap_dump(&f->cap);
  ixr_close(f->rt);
  f->rt = NULL;
  tdir_remove(lua);
  assert_true(ok);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_no_io), T(test_no_os_execute), T(test_no_os_exit), T(test_no_os_remove),
      T(test_no_os_rename), T(test_no_os_getenv), T(test_os_time_allowed), T(test_no_loadfile),
      T(test_no_dofile), T(test_no_binary_load), T(test_no_string_dump), T(test_no_package),
      T(test_no_debug), T(test_no_collectgarbage), T(test_require_confined),
      T(test_string_metatable_trick), T(test_no_gc_metamethods), T(test_load_with_custom_env), T(test_global_writes_are_errors),
      T(test_pcall_around_infinite_loop), T(test_coroutine_wrap_around_killed_call),
      T(test_kill_in_a_nested_flow_is_reported_once), T(test_killed_flow_does_not_run_its_closes),
      T(test_after_at_the_memory_limit_leaves_nothing), T(test_opts_metamethods_are_not_run),
      T(test_gc_through_index_is_not_registered), T(test_shared_subtables_do_not_explode),
      T(test_core_view_per_generation), T(test_random_is_seeded_on_the_manual_clock), T(test_os_time_follows_the_manual_clock), T(test_misspellings_raise), T(test_infinite_loop_in_strategy_file_load), T(test_memory_bomb), T(test_per_call_growth_limit), T(test_deep_recursion),
      T(test_bad_sessions_do_not_hurt_others), T(test_flow_cannot_be_resumed_by_strategy),
      T(test_own_coroutines_work), T(test_print_goes_to_the_log),
      T(test_shared_modules_are_read_only), T(test_strategy_cannot_change_others_standard_set),
      T(test_views_where_strategies_put_them),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
