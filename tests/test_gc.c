/*
 * test_gc.c: ixr paces the Lua collector itself (runtime/gc.c). Lua's own
 * collector is stopped, so everything that used to rely on it must still
 * happen: garbage made by events is collected between events, a call that
 * churns garbage in a loop is collected while it runs, and when the loop
 * has nothing to do the collector works in idle time and then lets the
 * loop sleep.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "testutil.h"

/* Every session makes ~40 KB of garbage in its flow and ends. */
static const char *CHURN =
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    local t = {}\n"
    "    for i = 1, 400 do t[i] = { i, tostring(i) .. event.data.interactionid } end\n"
    "    session:action('done', { n = #t })\n"
    "  end,\n"
    "}\n";

/* One call that makes `n` small tables and keeps none of them. */
static const char *LONGCALL =
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    local n = tonumber(event.data.n)\n"
    "    local last\n"
    "    for i = 1, n do last = { i, i + 1, i + 2 } end\n"
    "    session:action('done', { last = last[1] })\n"
    "  end,\n"
    "}\n";

/* Sessions that stay alive, waiting: the live data the collector keeps. */
static const char *KEEP =
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    session.vars.blob = string.rep(event.data.interactionid, 50)\n"
    "    session:wait('interaction.never')\n"
    "  end,\n"
    "}\n";

/* One call that keeps everything it makes: killed by the memory cap. */
static const char *BOMB =
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    local t = {}\n"
    "    while true do t[#t + 1] = string.rep('x', 100) .. #t end\n"
    "  end,\n"
    "}\n";

static int setup(void **state) {
  tfix *f = calloc(1, sizeof(*f));
  f->dir = tdir_new();
  tdir_write(f->dir, "churn.lua", CHURN);
  tdir_write(f->dir, "longcall.lua", LONGCALL);
  tdir_write(f->dir, "keep.lua", KEEP);
  tdir_write(f->dir, "bomb.lua", BOMB);
  *state = f;
  return 0;
}

static void present(ixr_runtime *rt, const char *strategy, int i, const char *extra) {
  char line[256];
  snprintf(line, sizeof(line),
           "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I%d\","
           "\"strategy\":\"%s\"%s}}",
           i, strategy, extra);
  tfeed(rt, line);
}

static ixr_stats stats(ixr_runtime *rt) {
  ixr_stats st;
  ixr_get_stats(rt, &st);
  return st;
}

/* 4,000 sessions × ~40 KB of garbage = ~160 MB allocated. Without a
 * collector the heap would hold all of it; paced, it stays small. */
static void garbage_of_events_is_collected(void **state) {
  tfix *f = *state;
  f->rt = trt_new(f->dir, &f->cap);
  size_t peak = 0;
  for (int i = 0; i < 4000; i++) {
    present(f->rt, "churn", i, "");
    ixr_stats st = stats(f->rt);
    if (st.lua_bytes > peak) peak = st.lua_bytes;
  }
  ixr_stats st = stats(f->rt);
  assert_int_equal(st.sessions_ended, 4000);
  assert_int_equal(st.errors, 0);
  assert_true(st.gc_cycles >= 5);
  /* The live heap is well under 2 MB; allow for garbage between cycles. */
  assert_true(peak < 16u << 20);
  /* The time it took is reported: the longest pause is one of the steps,
   * the last cycle's longest is no longer than the longest ever. */
  assert_true(st.gc_pause_last_cycle_ns > 0);
  assert_true(st.gc_pause_last_cycle_ns <= st.gc_pause_max_ns);
  assert_true(st.gc_pause_max_ns <= st.gc_ns);
}

/* After a call killed by the memory cap its garbage is collected at once
 * (luahost.c's full collection, or gc.c's catch-up when the heap is over
 * 3x the live data), the collector's work is counted and timed, and the
 * runtime carries on. ixr.status reports the collector's figures. */
static void killed_call_is_collected_and_reported(void **state) {
  tfix *f = *state;
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.max_memory = 24u << 20;
  o.max_call_growth = 0;
  o.max_instructions = 0;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  ixr_stats before = stats(f->rt);
  present(f->rt, "bomb", 1, "");
  ixr_stats st = stats(f->rt);
  assert_int_equal(st.limit_kills, 1);
  assert_true(st.gc_cycles > before.gc_cycles);
  assert_true(st.gc_ns > before.gc_ns);
  assert_true(st.gc_pause_max_ns > 0);
  assert_true(st.lua_bytes < 8u << 20); /* the bomb's tables are gone */
  present(f->rt, "churn", 2, "");
  assert_true(tcap_find(&f->cap, 0, "\"action\":\"done\"", "\"n\":400", NULL) >= 0);
  tfeed(f->rt, "{\"name\":\"ixr.status\"}");
  assert_true(tcap_find(&f->cap, 0, "\"name\":\"ixr.status\"", "\"gc_cycles\":",
                        "\"gc_ms\":", "\"gc_pause_max_us\":",
                        "\"gc_pause_last_cycle_us\":", NULL) >= 0);
}

/* A single call churning ~200 MB of garbage under a 48 MB cap and a 24 MB
 * per-call growth limit: it must finish, collected from the instruction
 * hook as it runs, not be killed by a limit. */
static void long_call_collects_as_it_goes(void **state) {
  tfix *f = *state;
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.max_memory = 48u << 20;
  o.max_call_growth = 24u << 20;
  o.max_instructions = 100000000;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  present(f->rt, "longcall", 1, ",\"n\":\"2500000\"");
  assert_true(tcap_find(&f->cap, 0, "\"action\":\"done\"", "\"last\":2500000", NULL) >= 0);
  ixr_stats st = stats(f->rt);
  assert_int_equal(st.limit_kills, 0);
  assert_int_equal(st.errors, 0);
  assert_true(st.gc_cycles >= 2);
  assert_true(st.lua_bytes < 48u << 20);
}

/* Live data survives any number of cycles. */
static void live_sessions_survive(void **state) {
  tfix *f = *state;
  f->rt = trt_new(f->dir, &f->cap);
  for (int i = 0; i < 2000; i++) present(f->rt, "keep", i, "");
  for (int i = 0; i < 3000; i++) present(f->rt, "churn", 100000 + i, "");
  ixr_stats st = stats(f->rt);
  assert_true(st.gc_cycles >= 3);
  assert_int_equal(st.sessions_active, 2000);
  for (int i = 0; i < 2000; i += 97) {
    char iid[16];
    int n = snprintf(iid, sizeof(iid), "I%d", i);
    ixr_session_info info;
    assert_int_equal(ixr_session_find(f->rt, iid, (size_t)n, &info), 0);
  }
}

static void on_deadline(uv_timer_t *t) { uv_close((uv_handle_t *)t, NULL); }

static double cpu_ms(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3 +
         (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
}

/* On a host loop: after a burst of events the collector works while the
 * loop is idle, then stops, and the loop sleeps (no busy polling). */
static void idle_loop_collects_then_sleeps(void **state) {
  tfix *f = *state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  ixr_options o;
  topts(&o, f->dir, &f->cap);
  o.loop = &loop;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  for (int i = 0; i < 1500; i++) present(f->rt, "churn", i, "");
  uint64_t steps0 = stats(f->rt).gc_steps;

  /* The loop is kept alive by a 300 ms timer of the host's. */
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_update_time(&loop);
  uv_timer_start(&t, on_deadline, 300, 0);
  double c0 = cpu_ms();
  uint64_t w0 = uv_hrtime();
  uv_run(&loop, UV_RUN_DEFAULT);
  double cpu = cpu_ms() - c0;
  double wall = (double)(uv_hrtime() - w0) / 1e6;
  uint64_t steps1 = stats(f->rt).gc_steps;

  assert_true(steps1 > steps0); /* idle-time collection happened */
  assert_true(wall >= 250);
  /* Busy polling for 300 ms would cost about 300 ms of CPU time. */
  assert_true(cpu < 150);

  ixr_close(f->rt);
  f->rt = NULL;
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(garbage_of_events_is_collected, setup, tfix_teardown),
      cmocka_unit_test_setup_teardown(long_call_collects_as_it_goes, setup, tfix_teardown),
      cmocka_unit_test_setup_teardown(killed_call_is_collected_and_reported, setup, tfix_teardown),
      cmocka_unit_test_setup_teardown(live_sessions_survive, setup, tfix_teardown),
      cmocka_unit_test_setup_teardown(idle_loop_collects_then_sleeps, setup, tfix_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
