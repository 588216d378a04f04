/* test_runtime.c: sessions, flows, requests, timers and errors, through the
 * public API with the manual clock. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

typedef tfix fixture;

static const char *ROUTE_STRATEGY =
    "return {\n"
    "  start = function(session, event)\n"
    "    session.vars.seen = (session.vars.seen or 0) + 1\n"
    "    local ok, res = session:route({ target = 'A' }, { timeout = 30 })\n"
    "    if not ok then\n"
    "      session:queue({ queue = 'Q', why = res == 'timeout' and 'timeout' or res.data.error })\n"
    "    end\n"
    "  end,\n"
    "}\n";

/* A flow with a to-be-closed variable, cancelled while it waits. What its
 * __close saw is kept at module level (shared by the strategy's sessions)
 * and reported by any session on interaction.report. data.mode makes the
 * __close fail or loop; the session:after callback reads a local of the
 * flow (an upvalue that must survive the flow's thread being reused). */
static const char *CLOSER_STRATEGY =
    "local core = require('ixr.core')\n"
    "local log, start = {}, nil\n"
    "local function closer(session, name, mode, event)\n"
    "  return setmetatable({}, { __close = function(_, err)\n"
    "    print('closing ' .. name)\n"
    "    log[#log + 1] = name .. (err and '!' or '')\n"
    "    if mode == 'error' or mode == 'wait-exit-error' or mode == 'fail' then error('close failed: ' .. name) end\n"
    "    if mode == 'loop' then while true do end end\n"
    "    if mode == 'rerun' then core.run(session, start, event) end\n"
    "  end })\n"
    "end\n"
    "start = function(session, event)\n"
    "  local keep = 'kept-' .. session.interactionid\n"
    "  local mode = event.data.mode\n"
    "  local guard <close> = closer(session, session.interactionid, mode, event)\n"
    "  session:after(5, function(s) log[#log + 1] = 'timer ' .. keep end)\n"
    "  if mode == 'exit' then session:exit('self') end\n"
    "  if mode == 'wait-exit-error' then session:wait('interaction.go') session:exit('self') end\n"
    "  if mode == 'fail' then local t = nil; t.x = 1 end\n"
    "  session:wait('interaction.never')\n"
    "end\n"
    "return {\n"
    "  requeue_timeout = 600,\n"
    "  start = start,\n"
    "  requeued = function(session, event) session:wait('interaction.never') end,\n"
    "  on = {\n"
    "    ['interaction.report'] = function(session, event)\n"
    "      session:action('closed', { log = table.concat(log, ',') })\n"
    "    end,\n"
    "    ['interaction.end'] = function(session, event) session:exit('bye') end,\n"
    "    ['interaction.kick'] = function(session, event) core.run(session, start, event) end,\n"
    "  },\n"
    "}\n";

/* A flow that waits inside xpcall (mode "wait"), and one that fails outside
 * any pcall with functions of its own on its stack (mode "fail"). */
static const char *XPWAIT_STRATEGY =
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    if event.data.mode == 'wait' then\n"
    "      xpcall(function() session:wait('interaction.never') end,\n"
    "             function(m) return 'handled: ' .. tostring(m) end)\n"
    "    else\n"
    "      local h = function() return 'hijacked' end\n"
    "      local f1, f2, f3, f4, f5, f6, f7, f8 = h, h, h, h, h, h, h, h\n"
    "      error('fail failed')\n"
    "    end\n"
    "  end,\n"
    "  on = { ['interaction.end'] = function(session) session:exit('bye') end },\n"
    "}\n";

/* A flow that starts itself from inside itself, without end; with
 * data.deep, each level first goes 150 C calls deep (string.gsub
 * callbacks), so that the C stack, not the count of flows, runs out. */
static const char *RECURSE_STRATEGY =
    "local core = require('ixr.core')\n"
    "local function deep(n, f)\n"
    "  if n == 0 then return f() end\n"
    "  string.gsub('x', 'x', function() deep(n - 1, f) end)\n"
    "end\n"
    "local function flow(session, event)\n"
    "  if event.data and event.data.deep then\n"
    "    deep(150, function() core.run(session, flow, event) end)\n"
    "  else\n"
    "    core.run(session, flow, event)\n"
    "  end\n"
    "end\n"
    "return { defaults = 'none', start = flow }\n";

/* A flow that waits for interaction.grow, grows the heap by data.n short
 * strings, and then starts another flow (core.run from a flow makes a
 * thread and a registry ref on the main Lua thread, which is not running). */
static const char *GROWRUN_STRATEGY =
    "local core = require('ixr.core')\n"
    "local function idle(session, event) session:wait('interaction.never') end\n"
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    local ev = session:wait('interaction.grow')\n"
    "    local keep = {}\n"
    "    for i = 1, ev.data.n do keep[i] = string.rep('x', 100) end\n"
    "    session:action('grown', { n = #keep })\n"
    "    core.run(session, idle, ev)\n"
    "  end,\n"
    "}\n";

/* Pinned to its generation; a handler that ends its session and then
 * fails; a handler that restarts the flow many times over. */
static const char *EXITERR_STRATEGY =
    "local core = require('ixr.core')\n"
    "return {\n"
    "  defaults = 'none', pin = true,\n"
    "  start = function(session, event) session:wait('interaction.never') end,\n"
    "  on = {\n"
    "    ['interaction.foo'] = function(session) session:exit('bye'); error('after exit') end,\n"
    "    ['interaction.sus'] = function(session) core.suspend(session, 'paused') end,\n"
    "    ['interaction.spin'] = function(session, event)\n"
    "      for i = 1, 5000 do core.run(session, function(s) s:wait('interaction.x') end, event) end\n"
    "      session:action('spun')\n"
    "    end,\n"
    "  },\n"
    "}\n";

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  f->dir = tdir_new();
  tdir_write(f->dir, "default.lua", ROUTE_STRATEGY);
  tdir_write(f->dir, "boom.lua",
             "return {\n"
             "  start = function(session, event)\n"
             "    session:action('hello')\n"
             "    error('boom in flow')\n"
             "  end,\n"
             "  on = {\n"
             "    ['interaction.poke'] = function(session, event)\n"
             "      error({ code = 1 })\n"
             "    end,\n"
             "    ['interaction.ping'] = function(session, event)\n"
             "      session:action('pong', { n = event.data.n })\n"
             "    end,\n"
             "  },\n"
             "}\n");
  tdir_write(f->dir, "waiter.lua",
             "return {\n"
             "  defaults = 'none',\n"
             "  start = function(session, event)\n"
             "    local ev, err = session:wait('interaction.go', { timeout = 5 })\n"
             "    session:action('after_wait', { got = ev and ev.data.v or err })\n"
             "    session:after(2, function(s) s:action('tick') end)\n"
             "    local t = session:after(3, function(s) s:action('never') end)\n"
             "    session:cancel(t)\n"
             "    session:wait('interaction.end')\n"
             "    session:exit('bye')\n"
             "    session:action('unreachable')\n"
             "  end,\n"
             "  on = {\n"
             "    ['interaction.bad'] = function(session, event)\n"
             "      session:request('route', {})\n"
             "    end,\n"
             "  },\n"
             "}\n");
  tdir_write(f->dir, "syntax.lua", "return {\n  start = function(\n");
  tdir_write(f->dir, "closer.lua", CLOSER_STRATEGY);
  tdir_write(f->dir, "xpwait.lua", XPWAIT_STRATEGY);
  tdir_write(f->dir, "recurse.lua", RECURSE_STRATEGY);
  tdir_write(f->dir, "exiterr.lua", EXITERR_STRATEGY);
  tdir_write(f->dir, "growrun.lua", GROWRUN_STRATEGY);
  f->rt = trt_new(f->dir, &f->cap);
  *state = f;
  return 0;
}

#define teardown tfix_teardown

static void expect_line(fixture *f, size_t i, const char *exact) {
  if (i >= f->cap.n || strcmp(f->cap.lines[i], exact) != 0) {
    fprintf(stderr, "line %zu: expected\n  %s\n", i, exact);
    tcap_dump(&f->cap);
    fail();
  }
}

static void test_route_done_completes(void **state) {
  fixture *f = *state;
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I1\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"I1\",\"requestid\":\"r1\"}}");
  assert_int_equal(f->cap.n, 3);
  expect_line(f, 0, "{\"type\":\"session\",\"state\":\"started\",\"session\":\"s1\",\"interactionid\":\"I1\",\"strategy\":\"default\"}");
  expect_line(f, 1, "{\"type\":\"action\",\"action\":\"route\",\"session\":\"s1\",\"interactionid\":\"I1\",\"requestid\":\"r1\",\"args\":{\"target\":\"A\"}}");
  expect_line(f, 2, "{\"type\":\"session\",\"state\":\"ended\",\"session\":\"s1\",\"interactionid\":\"I1\",\"reason\":\"completed\"}");
  ixr_stats st;
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.sessions_active, 0);
  assert_int_equal(st.sessions_started, 1);
  assert_int_equal(st.sessions_ended, 1);
}

static void test_request_error_and_wrong_requestid(void **state) {
  fixture *f = *state;
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I1\"}}");
  /* A result for another request id does not wake the flow. */
  tfeed(f->rt, "{\"name\":\"error.interaction.route\",\"data\":{\"interactionid\":\"I1\",\"requestid\":\"r9\",\"error\":\"x\"}}");
  assert_int_equal(f->cap.n, 2);
  tfeed(f->rt, "{\"name\":\"error.interaction.route\",\"data\":{\"interactionid\":\"I1\",\"requestid\":\"r1\",\"error\":\"no_agents\"}}");
  expect_line(f, 2, "{\"type\":\"action\",\"action\":\"queue\",\"session\":\"s1\",\"interactionid\":\"I1\",\"requestid\":\"r2\",\"args\":{\"queue\":\"Q\",\"why\":\"no_agents\"}}");
  /* queue is a request too: the flow ends once its result arrives */
  assert_int_equal(f->cap.n, 3);
  tfeed(f->rt, "{\"name\":\"interaction.queue.done\",\"data\":{\"interactionid\":\"I1\",\"requestid\":\"r2\"}}");
  assert_true(tcap_find(&f->cap, 3, "\"ended\"", "\"completed\"", NULL) == 3);
}

static void test_request_timeout_manual_clock(void **state) {
  fixture *f = *state;
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I1\"}}");
  tfeed(f->rt, "{\"name\":\"clock.advance\",\"data\":{\"ms\":29999}}");
  assert_int_equal(f->cap.n, 2);
  tfeed(f->rt, "{\"name\":\"clock.advance\",\"data\":{\"ms\":1}}");
  expect_line(f, 2, "{\"type\":\"action\",\"action\":\"queue\",\"session\":\"s1\",\"interactionid\":\"I1\",\"requestid\":\"r2\",\"args\":{\"queue\":\"Q\",\"why\":\"timeout\"}}");
  /* The late result of the timed-out request wakes nothing: the flow now
   * waits for r2, and no handler asks for route.done. */
  tfeed(f->rt, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"I1\",\"requestid\":\"r1\"}}");
  assert_int_equal(f->cap.n, 3);
  tfeed(f->rt, "{\"name\":\"interaction.queue.done\",\"data\":{\"interactionid\":\"I1\",\"requestid\":\"r2\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "completed", NULL) == 3);
  /* now the interaction has no session */
  tfeed(f->rt, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"I1\",\"requestid\":\"r1\"}}");
  assert_true(tcap_find(&f->cap, 0, "unknown_interaction", "\"line\":6", NULL) == 4);
}

static void test_timeout_through_api_advance(void **state) {
  fixture *f = *state;
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I1\"}}");
  assert_int_equal(ixr_advance(f->rt, 30000), 0);
  assert_true(tcap_find(&f->cap, 0, "\"queue\"", "timeout", NULL) == 2);
}

static void test_failing_flow_does_not_stop_runtime(void **state) {
  fixture *f = *state;
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"B1\",\"strategy\":\"boom\"}}");
  int e = tcap_find(&f->cap, 0, "\"handler_error\"", NULL);
  assert_true(e >= 0);
  assert_non_null(strstr(f->cap.lines[e], "boom.lua:4: boom in flow"));
  assert_non_null(strstr(f->cap.lines[e], "\"traceback\":\"stack traceback:"));
  assert_non_null(strstr(f->cap.lines[e], "\"session\":\"s1\""));
  assert_true(tcap_find(&f->cap, (size_t)e, "\"ended\"", "\"reason\":\"error\"", NULL) > e);
  /* the runtime carries on */
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I2\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"started\"", "I2", NULL) >= 0);
}

static void test_failing_handler_keeps_session(void **state) {
  fixture *f = *state;
  /* boom's flow fails at once; use a session whose flow waits instead. */
  tdir_write(f->dir, "poke.lua",
             "return { start = function(s) s:wait('never') end,\n"
             "  on = { ['interaction.poke'] = function() error(setmetatable({}, {__tostring = function() return 'custom error' end})) end,\n"
             "         ['interaction.nil'] = function() error() end,\n"
             "         ['interaction.ping'] = function(s, e) s:action('pong') end } }\n");
  ixr_close(f->rt);
  tcap_clear(&f->cap);
  f->rt = trt_new(f->dir, &f->cap);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"P\",\"strategy\":\"poke\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.poke\",\"data\":{\"interactionid\":\"P\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.nil\",\"data\":{\"interactionid\":\"P\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.ping\",\"data\":{\"interactionid\":\"P\"}}");
  assert_true(tcap_find(&f->cap, 0, "handler_error", "custom error", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "handler_error", "error object is a nil value", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"pong\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", NULL) < 0);
}

static void test_input_errors_lose_nothing(void **state) {
  fixture *f = *state;
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I1\"}}");
  tfeed(f->rt, "{not json");
  tfeed(f->rt, "{\"data\":{\"interactionid\":\"I1\"},\"id\":7}");
  tfeed(f->rt, "{\"name\":\"interaction.x\",\"data\":\"str\",\"id\":\"abc\"}");
  tfeed(f->rt, "[1,2]");
  tfeed(f->rt, "{\"name\":\"interaction.x\",\"data\":{}}");
  tfeed(f->rt, "{\"name\":\"interaction.x\",\"data\":{\"interactionid\":\"ghost\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I9\",\"strategy\":\"nope\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I9\",\"strategy\":\"../etc/passwd\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I9\",\"strategy\":\"syntax\"}}");
  tfeed(f->rt, "{\"name\":\"clock.advance\",\"data\":{\"ms\":-5}}");
  tfeed(f->rt, "{\"name\":\"ixr.nonsense\"}");
  tfeed(f->rt, "   ");
  tfeed(f->rt, "");
  /* every error names its line, and echoes the id when there is one */
  assert_true(tcap_find(&f->cap, 0, "\"bad_json\"", "\"line\":2", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"bad_event\"", "\"line\":3", "\"id\":7", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"bad_event\"", "data must be an object", "\"id\":\"abc\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"bad_event\"", "\"line\":5", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"bad_event\"", "interactionid", "\"line\":6", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"unknown_interaction\"", "ghost", "\"line\":7", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"strategy_not_found\"", "\"line\":8", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"strategy_not_found\"", "\"line\":9", NULL) >= 0);
  int e = tcap_find(&f->cap, 0, "\"strategy_error\"", "\"line\":10", NULL);
  assert_true(e >= 0);
  assert_non_null(strstr(f->cap.lines[e], "syntax.lua:3:"));
  assert_true(tcap_find(&f->cap, 0, "\"bad_event\"", "\"line\":11", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"bad_event\"", "ixr.nonsense", "\"line\":12", NULL) >= 0);
  /* and the session started before all that is still there */
  tfeed(f->rt, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"I1\",\"requestid\":\"r1\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"I1\"", "completed", NULL) >= 0);
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.sessions_started, 1);
  /* the clock counts whole milliseconds: a fraction is refused, not dropped
   * (three advances of 0.6 ms used to leave the clock where it was) */
  tfeed(f->rt, "{\"name\":\"clock.advance\",\"data\":{\"ms\":0.6}}");
  assert_true(tcap_find(&f->cap, 0, "\"bad_event\"", "a whole number of milliseconds",
                        "\"line\":16", NULL) >= 0);
}

static void test_line_too_long_skips_only_that_line(void **state) {
  fixture *f = *state;
  ixr_close(f->rt);
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.max_line = 100;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  char big[400];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  tfeed(f->rt, big);
  /* split across feeds too */
  ixr_feed(f->rt, big, 50);
  ixr_feed(f->rt, big, 80);
  ixr_feed(f->rt, "\n", 1);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I1\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"line_too_long\"", "\"line\":1", NULL) == 0);
  assert_true(tcap_find(&f->cap, 0, "\"line_too_long\"", "\"line\":2", NULL) == 1);
  assert_true(tcap_find(&f->cap, 0, "\"started\"", NULL) == 2);
  assert_int_equal(f->cap.n, 4);
}

static void test_wait_after_cancel_exit(void **state) {
  fixture *f = *state;
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"W\",\"strategy\":\"waiter\"}}");
  /* a request from an on handler is refused with a clear message */
  tfeed(f->rt, "{\"name\":\"interaction.bad\",\"data\":{\"interactionid\":\"W\"}}");
  assert_true(tcap_find(&f->cap, 0, "handler_error", "only be used in the session's flow", NULL) >= 0);
  tfeed(f->rt, "{\"name\":\"interaction.go\",\"data\":{\"interactionid\":\"W\",\"v\":42}}");
  assert_true(tcap_find(&f->cap, 0, "after_wait", "\"got\":42", NULL) >= 0);
  ixr_advance(f->rt, 10000);
  assert_true(tcap_find(&f->cap, 0, "\"tick\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"never\"", NULL) < 0);
  tfeed(f->rt, "{\"name\":\"interaction.end\",\"data\":{\"interactionid\":\"W\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"reason\":\"bye\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "unreachable", NULL) < 0);
}

/* interaction.present of `iid` for `strategy`; `more`: further members of
 * data, each with its leading comma (or ""). */
static void present_as(fixture *f, const char *iid, const char *strategy,
                       const char *more) {
  char line[512];
  snprintf(line, sizeof(line),
           "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"%s\","
           "\"strategy\":\"%s\"%s}}",
           iid, strategy, more);
  tfeed(f->rt, line);
}

static void closer_present(fixture *f, const char *iid, const char *mode) {
  char more[128];
  snprintf(more, sizeof(more), ",\"mode\":\"%s\"", mode);
  present_as(f, iid, "closer", more);
}

/* The fixture's broken strategy file would make a reload fail. */
static void remove_broken_strategy(fixture *f) {
  char path[512];
  snprintf(path, sizeof(path), "%s/syntax.lua", f->dir);
  assert_int_equal(unlink(path), 0);
}

static void closer_event(fixture *f, const char *iid, const char *name) {
  char line[256];
  snprintf(line, sizeof(line), "{\"name\":\"%s\",\"data\":{\"interactionid\":\"%s\"}}",
           name, iid);
  tfeed(f->rt, line);
}

/* The log of the closer strategy, as reported by session `iid`. */
static void expect_closer_log(fixture *f, const char *iid, const char *log) {
  size_t from = f->cap.n;
  closer_event(f, iid, "interaction.report");
  char want[256];
  snprintf(want, sizeof(want), "{\"log\":\"%s\"}", log);
  if (tcap_find(&f->cap, from, "\"closed\"", want, NULL) < 0) {
    fprintf(stderr, "expected the log %s\n", want);
    tcap_dump(&f->cap);
    fail();
  }
}

/* A session that ends while its flow waits: the flow is closed as
 * coroutine.close would, after the event that ended it (its "ended" line
 * comes first); so is a flow that ends its own session. */
static void test_cancelled_flow_is_closed(void **state) {
  fixture *f = *state;
  closer_present(f, "A", "none");
  closer_present(f, "B", "none");
  expect_closer_log(f, "B", ""); /* waiting: nothing closed */
  size_t from = f->cap.n;
  closer_event(f, "A", "interaction.end");
  assert_true(tcap_find(&f->cap, from, "\"ended\"", "\"session\":\"s1\"", "\"reason\":\"bye\"",
                        NULL) >= 0);
  assert_true(tcap_find(&f->cap, from, "\"error\"", NULL) < 0);
  expect_closer_log(f, "B", "A");
  assert_non_null(strstr(f->cap.log, "closing A"));
  closer_present(f, "C", "exit"); /* session:exit in the flow yields it */
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"reason\":\"self\"", NULL) >= 0);
  expect_closer_log(f, "B", "A,C");
}

/* A __close that fails is reported, with where, for its session; one that
 * never ends is stopped by the instruction budget. Nothing else is lost. */
/* An error message holding a NUL byte is reported whole (the NUL as \\0),
 * not cut at it. */
static void test_error_message_with_nul(void **state) {
  fixture *f = *state;
  remove_broken_strategy(f);
  tdir_write(f->dir, "nul.lua",
             "return { defaults = 'none', start = function(s) error('before\\0after') end }\n");
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  present_as(f, "N", "nul", "");
  assert_true(tcap_find(&f->cap, 0, "\"handler_error\"", "before\\\\0after", NULL) >= 0);
}

static void test_failing_close_is_reported(void **state) {
  fixture *f = *state;
  closer_present(f, "A", "error");
  closer_present(f, "L", "loop");
  closer_present(f, "B", "none");
  size_t from = f->cap.n;
  closer_event(f, "A", "interaction.end");
  int e = tcap_find(&f->cap, from, "\"handler_error\"", "\"session\":\"s1\"",
                    "closer.lua:7: close failed: A", NULL);
  assert_true(e >= 0);
  /* the close ran for input line 4, which cancelled the flow */
  assert_non_null(strstr(f->cap.lines[e], "\"line\":4"));
  from = f->cap.n;
  closer_event(f, "L", "interaction.end");
  assert_true(tcap_find(&f->cap, from, "\"limit_exceeded\"", "\"session\":\"s2\"",
                        "instruction budget", NULL) >= 0);
  expect_closer_log(f, "B", "A,L");
  closer_present(f, "D", "none");
  closer_event(f, "D", "interaction.end");
  expect_closer_log(f, "B", "A,L,D");
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.sessions_active, 1);
}

/* A flow that waited inside xpcall leaves its thread's error handler
 * pointing into its old stack (lua_resetthread does not clear it): the
 * thread of a closed flow must not serve another flow, whose error would
 * go to whatever sits in that slot now. */
static void test_closed_thread_is_not_reused(void **state) {
  fixture *f = *state;
  present_as(f, "X", "xpwait", ",\"mode\":\"wait\"");
  tfeed(f->rt, "{\"name\":\"interaction.end\",\"data\":{\"interactionid\":\"X\"}}");
  present_as(f, "Y", "xpwait", ",\"mode\":\"fail\"");
  assert_true(tcap_find(&f->cap, 0, "\"handler_error\"", "\"session\":\"s2\"",
                        "xpwait.lua:10: fail failed", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "hijacked", NULL) < 0);
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"session\":\"s2\"", "\"reason\":\"error\"",
                        NULL) >= 0);
}

/* A flow that ends its own session after a reload: its strategy's old
 * generation is let go of by the session, but the close that fails still
 * names it (ASan: no use after free). */
static void test_close_after_reload(void **state) {
  fixture *f = *state;
  closer_present(f, "W", "wait-exit-error");
  remove_broken_strategy(f);
  ixr_reload_result r;
  assert_int_equal(ixr_reload(f->rt, &r), 0);
  assert_true(r.ok);
  closer_event(f, "W", "interaction.go");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"session\":\"s1\"", "\"reason\":\"self\"",
                        NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"handler_error\"", "\"session\":\"s1\"",
                        "closer.lua:7: close failed: W", NULL) >= 0);
  assert_non_null(strstr(f->cap.log, "s1 W closer: error in a <close> of the cancelled flow"));
}

/* A __close that would start the flow again (whose close would start it
 * again...) is refused, and the runtime goes on with the next event. */
static void test_close_cannot_start_a_flow(void **state) {
  fixture *f = *state;
  closer_present(f, "R", "rerun");
  closer_event(f, "R", "interaction.kick"); /* cancels the first flow */
  assert_true(tcap_find(&f->cap, 0, "\"handler_error\"", "\"session\":\"s1\"",
                        "no flow can start while cancelled flows are closed", NULL) >= 0);
  closer_present(f, "B", "none");
  expect_closer_log(f, "B", "R");
  /* the session lives on, with the flow the kick started */
  closer_event(f, "R", "interaction.end");
  expect_closer_log(f, "B", "R,R");
}

/* A flow that starts itself from inside itself is stopped at a depth,
 * with an error, instead of overflowing the C stack. */
static void test_flows_nest_boundedly(void **state) {
  fixture *f = *state;
  present_as(f, "N", "recurse", "");
  assert_true(tcap_find(&f->cap, 0, "\"handler_error\"", "nest more than 32 deep", NULL) >= 0);
  closer_present(f, "B", "none");
  assert_true(tcap_find(&f->cap, 0, "\"started\"", "\"interactionid\":\"B\"", NULL) >= 0);
}

/* A flow that fails with a to-be-closed variable pending: the variable is
 * closed, protected (its own error is dropped: the flow's is reported),
 * and the runtime carries on. (It used to be closed by lua_settop on the
 * dead thread, unprotected: the failing __close aborted the process.) */
static void test_failing_flow_closes_its_variables(void **state) {
  fixture *f = *state;
  closer_present(f, "F", "fail");
  assert_true(tcap_find(&f->cap, 0, "\"handler_error\"", "\"session\":\"s1\"",
                        "attempt to index a nil value", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"session\":\"s1\"", "\"reason\":\"error\"",
                        NULL) >= 0);
  assert_non_null(strstr(f->cap.log, "closing F"));
  closer_present(f, "B", "none");
  expect_closer_log(f, "B", "F!");
}

/* Nested flows that each go deep on the C stack end with Lua's "C stack
 * overflow" error, not a crash: a nested flow is resumed from the running
 * thread, so the C calls add up across the nesting. */
static void test_deep_nested_flows_do_not_crash(void **state) {
  fixture *f = *state;
  present_as(f, "N", "recurse", ",\"deep\":true");
  assert_true(tcap_find(&f->cap, 0, "\"handler_error\"", "stack overflow", NULL) >= 0);
  closer_present(f, "B", "none");
  assert_true(tcap_find(&f->cap, 0, "\"started\"", "\"interactionid\":\"B\"", NULL) >= 0);
}

/* A handler that ends its own session and then fails, after a reload left
 * the session (suspended: no flow holds anything) the only holder of its
 * pinned generation's strategy: the report still names the strategy
 * (ASan: no use after free). */
static void test_handler_error_after_exit_and_reload(void **state) {
  fixture *f = *state;
  remove_broken_strategy(f);
  present_as(f, "E", "exiterr", "");
  tfeed(f->rt, "{\"name\":\"interaction.sus\",\"data\":{\"interactionid\":\"E\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"suspended\"", "\"session\":\"s1\"", NULL) >= 0);
  ixr_reload_result r;
  assert_int_equal(ixr_reload(f->rt, &r), 0);
  assert_true(r.ok);
  tfeed(f->rt, "{\"name\":\"interaction.foo\",\"data\":{\"interactionid\":\"E\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"handler_error\"", "exiterr.lua:6: after exit", NULL) >= 0);
  assert_non_null(strstr(f->cap.log, "s1 E exiterr: error in interaction.foo"));
}

/* A handler that restarts a flow 5,000 times in one event: the first 4,096
 * cancelled flows are closed after the event, the rest are left to the
 * collector (with a warning), so that one event cannot pin them all. */
static void test_pending_closes_are_bounded(void **state) {
  fixture *f = *state;
  present_as(f, "S", "exiterr", "");
  tfeed(f->rt, "{\"name\":\"interaction.spin\",\"data\":{\"interactionid\":\"S\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"action\":\"spun\"", NULL) >= 0);
  assert_non_null(strstr(f->cap.log, "904 cancelled flows left unclosed: more than 4096 in one event"));
  closer_present(f, "B", "none");
  assert_true(tcap_find(&f->cap, 0, "\"started\"", "\"interactionid\":\"B\"", NULL) >= 0);
}

/* 5,000 sessions whose timers end them in the same pass (one timeout for
 * all, a failover's burst): each timer is a unit of work of its own, so
 * every cancelled flow is closed, none left to the bound of one event. */
static void test_timer_burst_closes_every_flow(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "burst.lua",
             "local closed = 0\n"
             "return { defaults = 'none',\n"
             "  start = function(session)\n"
             "    local guard <close> = setmetatable({}, { __close = function() closed = closed + 1 end })\n"
             "    session:after(1, function(s) s:exit('timer') end)\n"
             "    session:wait('interaction.never')\n"
             "  end,\n"
             "  on = { ['interaction.report'] = function(session)\n"
             "    session:action('closed', { n = closed }) end } }\n");
  remove_broken_strategy(f);
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  enum { N = 5000 };
  for (int i = 0; i < N; i++) {
    char iid[32];
    snprintf(iid, sizeof(iid), "B%d", i);
    present_as(f, iid, "burst", "");
  }
  tfeed(f->rt, "{\"name\":\"clock.advance\",\"data\":{\"ms\":500}}");
  present_as(f, "R", "burst", ""); /* the reporter, started later: lives on */
  tfeed(f->rt, "{\"name\":\"clock.advance\",\"data\":{\"ms\":500}}");
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.sessions_active, 1);
  tfeed(f->rt, "{\"name\":\"interaction.report\",\"data\":{\"interactionid\":\"R\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"closed\"", "{\"n\":5000}", NULL) >= 0);
  assert_true(f->cap.log == NULL || strstr(f->cap.log, "left unclosed") == NULL);
}

/* Under a per-call growth limit, flows that allocate right up to it and
 * then start a flow: for one of them the new flow's thread is the
 * allocation that crosses the limit. ixr's own bookkeeping on the main Lua
 * thread (not running, so no protected call to raise into) must not be
 * refused, or the process aborts; the flow's own allocations are. */
static void test_flow_start_at_the_memory_limit(void **state) {
  fixture *f = *state;
  ixr_close(f->rt);
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.max_call_growth = 96u << 10;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  /* n live strings of 101 bytes: the heap grows by about 140 bytes a
   * step, a new thread takes about 1,000. */
  for (int n = 500; n <= 800; n++) {
    char line[256];
    char iid[16];
    snprintf(iid, sizeof(iid), "G%d", n);
    present_as(f, iid, "growrun", "");
    snprintf(line, sizeof(line),
             "{\"name\":\"interaction.grow\",\"data\":{\"interactionid\":\"G%d\",\"n\":%d}}",
             n, n);
    tfeed(f->rt, line);
  }
  /* the small ones ran to the end, the big ones hit the limit */
  assert_true(tcap_find(&f->cap, 0, "\"grown\"", "\"interactionid\":\"G500\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"limit_exceeded\"", "\"interactionid\":\"G800\"", NULL) >= 0);
  closer_present(f, "B", "none");
  assert_true(tcap_find(&f->cap, 0, "\"started\"", "\"interactionid\":\"B\"", NULL) >= 0);
}

/* The host closes the runtime from its output callback, on the "ended"
 * line of a session whose flow waits: the runtime goes when the event is
 * done, and the flow's __close does not run (no strategy code runs in a
 * closing runtime, as no "ended" lines are written for its live sessions). */
static void close_on_ended(void *ud, const ixr_output *out) {
  fixture *f = ud;
  tcap_output(&f->cap, out);
  if (out->type == IXR_OUT_SESSION && strstr(f->cap.lines[f->cap.n - 1], "\"ended\"") != NULL)
    ixr_close(f->rt);
}

static void test_runtime_closed_before_flow_closes(void **state) {
  fixture *f = *state;
  ixr_close(f->rt);
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.log_level = IXR_LOG_DEBUG;
  o.on_output = close_on_ended;
  o.output_ud = f;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  closer_present(f, "A", "none");
  closer_present(f, "B", "none");
  const char *end = "{\"name\":\"interaction.end\",\"data\":{\"interactionid\":\"B\"}}\n";
  /* The feed that closes the runtime says so; the runtime is gone after. */
  assert_int_equal(ixr_feed(f->rt, end, strlen(end)), IXR_ECLOSED);
  f->rt = NULL;
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"session\":\"s2\"", NULL) >= 0);
  assert_null(f->cap.log != NULL ? strstr(f->cap.log, "closing B") : NULL);
}

/* A suspended session's flow is closed; the closure its session:after
 * keeps still sees the flow's local (closing the thread closed the
 * upvalue, copying the value out of the stack it let go of), while other
 * flows start and run. The requeued session closes its second flow too. */
static void test_closed_thread_keeps_upvalues(void **state) {
  fixture *f = *state;
  closer_present(f, "A", "none");
  tfeed(f->rt, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"A\","
               "\"resultof\":\"revoking\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"suspended\"", "\"session\":\"s1\"", NULL) >= 0);
  closer_present(f, "B", "none");
  closer_present(f, "C", "none");
  expect_closer_log(f, "B", "A");
  ixr_advance(f->rt, 5000);
  expect_closer_log(f, "B", "A,timer kept-A,timer kept-B,timer kept-C");
  closer_present(f, "A", "none"); /* presented again: requeued */
  assert_true(tcap_find(&f->cap, 0, "\"resumed\"", "\"session\":\"s1\"", NULL) >= 0);
  closer_event(f, "A", "interaction.end");
  expect_closer_log(f, "B", "A,timer kept-A,timer kept-B,timer kept-C");
  closer_event(f, "B", "interaction.end");
  expect_closer_log(f, "C", "A,timer kept-A,timer kept-B,timer kept-C,B");
}

static void test_wait_timeout(void **state) {
  fixture *f = *state;
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"W\",\"strategy\":\"waiter\"}}");
  ixr_advance(f->rt, 5000);
  assert_true(tcap_find(&f->cap, 0, "after_wait", "\"got\":\"timeout\"", NULL) >= 0);
  /* timers set inside a timer's advance fire in the same advance when due */
  assert_true(tcap_find(&f->cap, 0, "\"tick\"", NULL) < 0);
  ixr_advance(f->rt, 2000);
  assert_true(tcap_find(&f->cap, 0, "\"tick\"", NULL) >= 0);
}

static void test_manual_clock_fires_in_due_order(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "timers.lua",
             "return { defaults = 'none', start = function(s)\n"
             "  s:after(3, function(x) x:action('t3') end)\n"
             "  s:after(1, function(x) x:action('t1')\n"
             "     x:after(1, function(y) y:action('t1plus1') end) end)\n"
             "  s:after(2, function(x) x:action('t2') end)\n"
             "  s:wait('never')\n"
             "end }\n");
  ixr_close(f->rt);
  tcap_clear(&f->cap);
  f->rt = trt_new(f->dir, &f->cap);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"T\",\"strategy\":\"timers\"}}");
  tfeed(f->rt, "{\"name\":\"clock.advance\",\"data\":{\"ms\":3000}}");
  int a = tcap_find(&f->cap, 0, "\"t1\"", NULL);
  int b = tcap_find(&f->cap, 0, "\"t2\"", NULL);
  int c = tcap_find(&f->cap, 0, "\"t1plus1\"", NULL);
  int d = tcap_find(&f->cap, 0, "\"t3\"", NULL);
  assert_true(a > 0 && b > a && c > b && d > c);
}

/* A timer that re-arms itself for the same instant (session:after(0) from
 * its own function) once held the loop forever: clock.advance never
 * returned, and on the real clock ixr ignored input and SIGTERM. On the
 * manual clock a pass fires a bounded number of them and says so; the
 * chain goes on at the next advance, and the session still takes events. */
static void test_same_instant_timer_chain_is_bounded(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "tick.lua",
             "local function tick(s) s.vars.n = (s.vars.n or 0) + 1 s:after(0, tick) end\n"
             "return { defaults = 'none', start = function(s)\n"
             "  s:after(0, tick)\n"
             "  s:wait('interaction.stop')\n"
             "  s:action('ticks', { n = s.vars.n })\n"
             "end }\n");
  tdir_write(f->dir, "other.lua",
             "return { defaults = 'none', start = function(s)\n"
             "  s:after(5, function(x) x:action('other_fired') end)\n"
             "  s:wait('never')\n"
             "end }\n");
  ixr_close(f->rt);
  tcap_clear(&f->cap);
  f->rt = trt_new(f->dir, &f->cap);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"T\",\"strategy\":\"tick\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"O\",\"strategy\":\"other\"}}");
  assert_int_equal(ixr_advance(f->rt, 1), 0);
  assert_non_null(f->cap.log);
  assert_non_null(strstr(f->cap.log, "re-arming itself? this one is of s1 T, strategy tick)"));
  /* the chain does not starve the other session's timer */
  assert_int_equal(ixr_advance(f->rt, 10000), 0);
  assert_true(tcap_find(&f->cap, 0, "\"other_fired\"", "\"O\"", NULL) >= 0);
  tfeed(f->rt, "{\"name\":\"interaction.stop\",\"data\":{\"interactionid\":\"T\"}}");
  /* the first pass fires the one armed before it and 10,000 of the chain,
   * the second 10,001 more */
  assert_true(tcap_find(&f->cap, 0, "\"ticks\"", "\"n\":20002", NULL) >= 0);
}

/* Real clock: a line that arrives after a timer's due time is handled
 * after that timer, as a replay of the record would (it advances the clock
 * to the line's time first). libuv reads the time after waiting for input
 * and runs input callbacks before the timers of that time: without the
 * catch-up, the line came first. */
static void test_due_timers_fire_before_a_later_line(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "later.lua",
             "return { defaults = 'none', start = function(s)\n"
             "  s:after(0.05, function(x) x:action('timer') end)\n"
             "  s:wait('interaction.poke')\n"
             "  s:action('poked')\n"
             "end }\n");
  ixr_close(f->rt);
  tcap_clear(&f->cap);
  uv_loop_t loop;
  uv_loop_init(&loop);
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.clock = IXR_CLOCK_REAL;
  o.loop = &loop;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"R\",\"strategy\":\"later\"}}");
  usleep(80 * 1000);
  uv_update_time(&loop); /* as libuv does after a wait that input ended */
  tfeed(f->rt, "{\"name\":\"interaction.poke\",\"data\":{\"interactionid\":\"R\"}}");
  int t = tcap_find(&f->cap, 0, "\"timer\"", NULL);
  int p = tcap_find(&f->cap, 0, "\"poked\"", NULL);
  /* the same through ixr_feed_event */
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"R2\",\"strategy\":\"later\"}}");
  usleep(80 * 1000);
  uv_update_time(&loop);
  ixr_field id = {.key = "interactionid", .type = IXR_V_STRING, .str = "R2", .len = 2};
  assert_int_equal(ixr_feed_event(f->rt, "interaction.poke", &id, 1), 0);
  int t2 = tcap_find(&f->cap, 0, "\"timer\"", "\"R2\"", NULL);
  int p2 = tcap_find(&f->cap, 0, "\"poked\"", "\"R2\"", NULL);
  ixr_close(f->rt);
  f->rt = NULL;
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  if (!(t >= 0 && p > t && t2 >= 0 && p2 > t2)) {
    tcap_dump(&f->cap);
    fail();
  }
}

static void test_clock_advance_needs_manual_clock(void **state) {
  fixture *f = *state;
  ixr_close(f->rt);
  tcap_clear(&f->cap);
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = f->dir;
  o.on_output = tcap_output;
  o.output_ud = &f->cap;
  o.on_log = tcap_logcb;
  o.log_ud = &f->cap;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  tfeed(f->rt, "{\"name\":\"clock.advance\",\"data\":{\"ms\":5}}");
  assert_true(tcap_find(&f->cap, 0, "bad_event", "--clock manual", NULL) == 0);
  assert_int_equal(ixr_advance(f->rt, 5), IXR_EINVAL);
}

static void test_session_object(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "obj.lua",
             "local kept\n"
             "return { defaults = 'none', start = function(s, e)\n"
             "  kept = s\n"
             "  s:action('facts', { id = s.id, iid = s.interactionid, strategy = s.strategy,\n"
             "    state = s.state, str = tostring(s):match('^session s1') ~= nil })\n"
             "  local ok, err = pcall(function() s.id = 'x' end)\n"
             "  s:action('ro', { ok = ok, err = tostring(err):match('read%-only') ~= nil })\n"
             "  ok, err = pcall(function() s:action('bad name!') end)\n"
             "  s:action('badname', { ok = ok })\n"
             "  ok, err = pcall(function() s:action('f', { fn = print }) end)\n"
             "  s:action('badargs', { err = tostring(err):match('cannot encode a function') ~= nil })\n"
             "  ok, err = pcall(function() undefined_thing() end)\n"
             "  s:action('strict', { err = tostring(err):match(\"undefined global 'undefined_thing'\") ~= nil })\n"
             "  s:exit('done')\n"
             "end,\n"
             "on = { ['interaction.late'] = function() end } }\n");
  ixr_close(f->rt);
  tcap_clear(&f->cap);
  f->rt = trt_new(f->dir, &f->cap);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"O\",\"strategy\":\"obj\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"facts\"", "\"id\":\"s1\"", "\"iid\":\"O\"", "\"state\":\"active\"", "\"str\":true", "\"strategy\":\"obj\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"ro\"", "\"err\":true", "\"ok\":false", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"badname\"", "\"ok\":false", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"badargs\"", "\"err\":true", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"strict\"", "\"err\":true", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"done\"", NULL) >= 0);
}

/* A session object the strategy keeps after its session ended still knows
 * its id and its state, and refuses to act. */
static void test_ended_session_object(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "kept.lua",
             "local old\n"
             "return { defaults = 'none', start = function(s, e)\n"
             "  if old then\n"
             "    local ok, err = pcall(function() old:action('x') end)\n"
             "    s:action('old', { id = old.id, state = old.state, ok = ok,\n"
             "      iid = old.interactionid == nil, strategy = old.strategy == nil,\n"
             "      str = tostring(old), err = tostring(err):match('s%d+ has ended') })\n"
             "    old:log('info', 'still here')\n"
             "    old:exit('again')\n"
             "  end\n"
             "  old = s\n"
             "  s:exit('done')\n"
             "end }\n");
  ixr_close(f->rt);
  f->rt = trt_new(f->dir, &f->cap);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"K1\",\"strategy\":\"kept\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"K2\",\"strategy\":\"kept\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"old\"", "\"session\":\"s2\"", "\"id\":\"s1\"",
                        "\"state\":\"ended\"", "\"ok\":false", "\"iid\":true",
                        "\"strategy\":true", "\"str\":\"session s1 (ended)\"",
                        "\"err\":\"s1 has ended\"", NULL) >= 0);
  assert_non_null(strstr(f->cap.log, "s1 (ended): still here"));
  assert_int_equal(tcap_find(&f->cap, 0, "\"again\"", NULL), -1);
}

static void test_deterministic_output(void **state) {
  fixture *f = *state;
  const char *lines[] = {
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"A\"}}",
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"B\",\"strategy\":\"boom\"}}",
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"C\"}}",
      "{\"name\":\"error.interaction.route\",\"data\":{\"interactionid\":\"C\",\"requestid\":\"r3\",\"error\":\"e\"}}",
      "{\"name\":\"clock.advance\",\"data\":{\"ms\":60000}}",
  };
  char *first = NULL;
  for (int run = 0; run < 2; run++) {
    ixr_close(f->rt);
    tcap_clear(&f->cap);
    f->rt = trt_new(f->dir, &f->cap);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) tfeed(f->rt, lines[i]);
    size_t total = 0;
    for (size_t i = 0; i < f->cap.n; i++) total += strlen(f->cap.lines[i]) + 1;
    char *all = calloc(1, total + 1);
    for (size_t i = 0; i < f->cap.n; i++) {
      strcat(all, f->cap.lines[i]);
      strcat(all, "\n");
    }
    if (run == 0) first = all;
    else {
      assert_string_equal(first, all);
      free(all);
    }
  }
  free(first);
}

/* An output callback that feeds another event, re-entrantly. */
typedef struct reenter {
  ixr_runtime *rt;
  tcap cap;
  int fed;
} reenter;

static void reenter_output(void *ud, const ixr_output *out) {
  reenter *r = ud;
  tcap_output(&r->cap, out);
  if (out->type == IXR_OUT_ACTION && r->fed == 0) {
    r->fed = 1;
    const char *done =
        "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"I1\",\"requestid\":\"r1\"}}\n";
    ixr_feed(r->rt, done, strlen(done));
  }
}

static void test_reentrant_feed(void **state) {
  fixture *f = *state;
  reenter r;
  memset(&r, 0, sizeof(r));
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = f->dir;
  o.clock = IXR_CLOCK_MANUAL;
  o.on_output = reenter_output;
  o.output_ud = &r;
  assert_int_equal(ixr_new(&r.rt, &o), 0);
  const char *p = "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I1\"}}\n";
  assert_int_equal(ixr_feed(r.rt, p, strlen(p)), 0);
  assert_int_equal(r.cap.n, 3);
  assert_non_null(strstr(r.cap.lines[2], "completed"));
  ixr_close(r.rt);
  tcap_free(&r.cap);
}

/* The structured view of an action line carries its args as JSON. */
typedef struct argcap {
  char args[256];
  char action[32];
  char requestid[16];
} argcap;

static void argcap_output(void *ud, const ixr_output *out) {
  argcap *a = ud;
  if (out->type != IXR_OUT_ACTION) return;
  snprintf(a->args, sizeof(a->args), "%.*s", (int)out->args_len, out->args_json);
  snprintf(a->action, sizeof(a->action), "%s", out->action);
  snprintf(a->requestid, sizeof(a->requestid), "%s", out->requestid);
}

static void test_output_view_of_actions(void **state) {
  fixture *f = *state;
  argcap a;
  memset(&a, 0, sizeof(a));
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = f->dir;
  o.clock = IXR_CLOCK_MANUAL;
  o.on_output = argcap_output;
  o.output_ud = &a;
  ixr_runtime *rt;
  assert_int_equal(ixr_new(&rt, &o), 0);
  const char *p = "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I1\"}}\n";
  assert_int_equal(ixr_feed(rt, p, strlen(p)), 0);
  assert_string_equal(a.args, "{\"target\":\"A\"}");
  assert_string_equal(a.action, "route");
  assert_string_equal(a.requestid, "r1");
  ixr_close(rt);
}

static void test_close_with_live_sessions(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 100; i++) {
    char line[200];
    snprintf(line, sizeof(line),
             "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"L%d\",\"strategy\":\"waiter\"}}", i);
    tfeed(f->rt, line);
  }
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.sessions_active, 100);
  /* teardown closes with 100 live sessions and their timers: ASan checks */
}

static void test_api_misuse(void **state) {
  (void)state;
  assert_int_equal(ixr_new(NULL, NULL), IXR_EINVAL);
  assert_int_equal(ixr_feed(NULL, "x", 1), IXR_EINVAL);
  assert_int_equal(ixr_get_stats(NULL, NULL), IXR_EINVAL);
  assert_int_equal(ixr_listen(NULL, "unix:/tmp/x"), IXR_EINVAL);
  assert_string_equal(ixr_strerror(IXR_EINVAL), "invalid argument");
  assert_string_equal(ixr_err_name(IXR_ENOMEM), "ENOMEM");
  assert_string_equal(ixr_version(), IXR_VERSION_STRING);
  ixr_options o;
  ixr_options_init(&o);
  o.max_line = 0;
  ixr_runtime *rt = NULL;
  assert_int_equal(ixr_new(&rt, &o), IXR_EINVAL);
  assert_null(rt);
  ixr_close(NULL);
  ixr_stop(NULL);
}

/* ixr check: every problem, one line each, FILE:LINE: message. */
typedef struct reports {
  char lines[32][512];
  int n;
} reports;

static void collect(void *ud, const char *line) {
  reports *r = ud;
  if (r->n < 32) snprintf(r->lines[r->n++], 512, "%s", line);
}

static bool reported(const reports *r, const char *a, const char *b) {
  for (int i = 0; i < r->n; i++)
    if (strstr(r->lines[i], a) && strstr(r->lines[i], b)) return true;
  return false;
}

static void test_check(void **state) {
  (void)state;
  char *dir = tdir_new();
  tdir_write(dir, "good.lua", "return { start = function() end }\n");
  tdir_write(dir, "syntax.lua", "local x = \nreturn {\n");
  tdir_write(dir, "notable.lua", "local x = 1\nreturn 42\n");
  tdir_write(dir, "nostart.lua", "return {\n  defaults = 'legacy',\n  start = 'no',\n}\n");
  tdir_write(dir, "baddefaults.lua", "return {\n  start = function() end,\n  defaults = 'bogus',\n}\n");
  tdir_write(dir, "badtimeout.lua", "return {\n  start = function() end,\n\n  requeue_timeout = -1,\n}\n");
  tdir_write(dir, "runtime.lua", "local t = nil\nt.x = 1\nreturn {}\n");
  tdir_write(dir, "badon.lua", "return {\n  start = function() end,\n  on = { ['x'] = 5 },\n}\n");
  /* Misspelt fields and on keys would silently mean their defaults. A
   * field that is no near miss is the strategy's own (a base strategy
   * exporting helpers). */
  tdir_write(dir, "typo.lua", "return {\n  start = function() end,\n  defualts = 'legacy',\n}\n");
  tdir_write(dir, "typo2.lua", "return {\n  start = function() end,\n  requed = function() end,\n}\n");
  tdir_write(dir, "typo3.lua", "return {\n  start = function() end,\n\n  requeue_timout = 60,\n}\n");
  tdir_write(dir, "shorton.lua", "return {\n  start = function() end,\n  on = { notcontrolled = function() end },\n}\n");
  tdir_write(dir, "arrayon.lua", "return {\n  start = function() end,\n  on = { function() end },\n}\n");
  tdir_write(dir, "ctlon.lua", "return {\n  start = function() end,\n  on = { ['clock.advance'] = function() end },\n}\n");
  tdir_write(dir, "helpers.lua", "return { start = function() end, v = 1, route_vip = function() end,\n"
                                 "  route_timeout = 20, queue_timeout = 30, requeue_limit = 3,\n"
                                 "  requeue_count = 1, retry_timeout = 5, ok = true, fn = print,\n"
                                 "  on = { ['custom.event'] = function() end, hangup = function() end } }\n");
  tdir_write(dir, "sub/module.lua", "this is not lua\n");
  reports r;
  memset(&r, 0, sizeof(r));
  int n = ixr_check(dir, NULL, collect, &r);
  for (int i = 0; i < r.n; i++) fprintf(stderr, "  %s\n", r.lines[i]);
  /* 8 strategies that fail to load, and a module file that does not
   * compile (a reload would refuse it too, though no strategy requires it
   * yet); the near misses are warnings, reported but not counted: they load. */
  assert_int_equal(n, 9);
  assert_true(reported(&r, "typo.lua:3: warning: field 'defualts' is no field of a strategy: ",
                       "did you mean 'defaults'? (it is ignored)"));
  assert_true(reported(&r, "typo2.lua:3: warning: field 'requed'", "did you mean 'requeued'?"));
  assert_true(reported(&r, "typo3.lua:4: warning: field 'requeue_timout'", "did you mean 'requeue_timeout'?"));
  assert_true(reported(&r, "shorton.lua:3: warning: on[\"notcontrolled\"] handles events named "
                           "\"notcontrolled\"", "did you mean \"interaction.notcontrolled\"?"));
  assert_true(reported(&r, "ctlon.lua:3: warning: on[\"clock.advance\"] never runs",
                       "control events go to the runtime, not to strategies"));
  assert_true(reported(&r, "arrayon.lua:3:", "on is keyed by event names"));
  assert_true(reported(&r, "arrayon.lua:3:", "(on[1] is not one)"));
  assert_false(reported(&r, "helpers.lua", "")); /* other names are the strategy's own */
  assert_true(reported(&r, "sub/module.lua:1:", "syntax error"));
  assert_true(reported(&r, "syntax.lua:2:", "unexpected symbol") ||
              reported(&r, "syntax.lua:3:", "expected"));
  assert_true(reported(&r, "notable.lua:2:", "must return a table (got number)"));
  assert_true(reported(&r, "nostart.lua:3:", "start must be a function"));
  assert_true(reported(&r, "baddefaults.lua:3:", "unknown defaults value 'bogus'"));
  assert_true(reported(&r, "badtimeout.lua:4:", "requeue_timeout"));
  assert_true(reported(&r, "runtime.lua:2:", "attempt to index"));
  assert_true(reported(&r, "badon.lua:3:", "on[\"x\"] must be a function"));
  assert_int_equal(ixr_check("/nonexistent/dir", NULL, collect, &r), IXR_ENOENT);
  tdir_remove(dir);
}

/* With no stream open and no output callback, output is held, up to a
 * bound; beyond it lines are dropped, counted, and logged once. */
static void test_held_output_is_bounded(void **state) {
  fixture *f = *state;
  ixr_close(f->rt);
  tcap_clear(&f->cap);
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.on_output = NULL; /* as ixr run --listen with no connection yet */
  o.max_held = 3;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"H1\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"H2\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"H3\"}}");
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(f->cap.n, 0);          /* nothing delivered */
  assert_int_equal(st.held_dropped, 3);   /* 6 lines made, 3 held */
  assert_non_null(strstr(f->cap.log, "dropping output"));
  /* logged once, not per line */
  assert_null(strstr(strstr(f->cap.log, "dropping output") + 1, "dropping output"));
  /* What is still held when the runtime closes is lost, and said so. */
  ixr_close(f->rt);
  f->rt = NULL;
  assert_non_null(strstr(f->cap.log, "closing with 3 output lines held, which no connection "
                                     "took: they are lost"));
}

/* ixr_check_options: a strategy that needs a host module at load time. */
static int host_answer(struct lua_State *L) {
  (void)L;
  return 0;
}

static void register_host(ixr_runtime *rt, void *ud) {
  (void)ud;
  assert_int_equal(ixr_register(rt, "host", "answer", host_answer, NULL), 0);
}

static void test_check_with_host_module(void **state) {
  (void)state;
  char *dir = tdir_new();
  tdir_write(dir, "needs_host.lua",
             "local host = require('host')\n"
             "return { start = function() host.answer() end }\n");
  reports r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(ixr_check(dir, NULL, collect, &r), 1);
  assert_true(reported(&r, "needs_host.lua:1:", "module 'host' not found"));
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = dir;
  o.on_setup = register_host;
  memset(&r, 0, sizeof(r));
  assert_int_equal(ixr_check_options(&o, collect, &r), 0);
  assert_int_equal(ixr_check_options(NULL, collect, &r), IXR_EINVAL);
  tdir_remove(dir);
}

/* Structured events reach the input hook as the JSON line they stand for. */
static void record_input(void *ud, const char *line, size_t len, uint64_t now) {
  char *out = ud;
  (void)now;
  snprintf(out, 256, "%.*s", (int)len, line);
}

static void test_structured_events_are_recorded(void **state) {
  fixture *f = *state;
  char seen[256] = "";
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = f->dir;
  o.clock = IXR_CLOCK_MANUAL;
  o.on_input = record_input;
  o.input_ud = seen;
  ixr_runtime *rt;
  assert_int_equal(ixr_new(&rt, &o), 0);
  ixr_field data[] = {
      {.key = "interactionid", .type = IXR_V_STRING, .str = "S1"},
      {.key = "prio", .type = IXR_V_INT, .i = 3},
  };
  assert_int_equal(ixr_feed_event(rt, "interaction.present", data, 2), 0);
  assert_string_equal(seen, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"S1\",\"prio\":3}}");
  ixr_close(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_route_done_completes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_request_error_and_wrong_requestid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_request_timeout_manual_clock, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout_through_api_advance, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failing_flow_does_not_stop_runtime, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failing_handler_keeps_session, setup, teardown),
      cmocka_unit_test_setup_teardown(test_input_errors_lose_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_line_too_long_skips_only_that_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wait_after_cancel_exit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wait_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancelled_flow_is_closed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timer_burst_closes_every_flow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failing_close_is_reported, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_message_with_nul, setup, teardown),
      cmocka_unit_test_setup_teardown(test_closed_thread_keeps_upvalues, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runtime_closed_before_flow_closes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_closed_thread_is_not_reused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_after_reload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_cannot_start_a_flow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flows_nest_boundedly, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failing_flow_closes_its_variables, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deep_nested_flows_do_not_crash, setup, teardown),
      cmocka_unit_test_setup_teardown(test_handler_error_after_exit_and_reload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pending_closes_are_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flow_start_at_the_memory_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_manual_clock_fires_in_due_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_clock_advance_needs_manual_clock, setup, teardown),
      cmocka_unit_test_setup_teardown(test_same_instant_timer_chain_is_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_due_timers_fire_before_a_later_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_session_object, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ended_session_object, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deterministic_output, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reentrant_feed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_output_view_of_actions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_with_live_sessions, setup, teardown),
      cmocka_unit_test(test_api_misuse),
      cmocka_unit_test(test_check),
      cmocka_unit_test(test_check_with_host_module),
      cmocka_unit_test_setup_teardown(test_held_output_is_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_structured_events_are_recorded, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
