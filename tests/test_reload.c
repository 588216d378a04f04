/* test_reload.c: hot reload. Generations are validated, then swapped; a
 * broken file never replaces a working one; nothing is lost under load. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

typedef tfix fixture;

static void strategy(const char *dir, const char *name, int version, const char *extra) {
  char buf[2048];
  snprintf(buf, sizeof(buf),
           "local counter = 0\n"
           "return {\n"
           "  %s\n"
           "  start = function(session, event)\n"
           "    counter = counter + 1\n"
           "    session:action('hello', { v = %d, counter = counter })\n"
           "    local ok = session:route({ v = %d })\n"
           "    session:action('after_route', { v = %d })\n"
           "    session:wait('interaction.finish')\n"
           "  end,\n"
           "  on = { ['interaction.ping'] = function(session, event)\n"
           "    session:action('pong', { v = %d }) end },\n"
           "}\n",
           extra ? extra : "", version, version, version, version);
  char file[128];
  snprintf(file, sizeof(file), "%s.lua", name);
  tdir_write(dir, file, buf);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  f->dir = tdir_new();
  strategy(f->dir, "default", 1, NULL);
  strategy(f->dir, "pinned", 1, "pin = true,");
  f->rt = trt_new(f->dir, &f->cap);
  *state = f;
  return 0;
}

#define teardown tfix_teardown

static void present(fixture *f, const char *iid, const char *strat) {
  char line[256];
  snprintf(line, sizeof(line),
           "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"%s\",\"strategy\":\"%s\"}}", iid, strat);
  tfeed(f->rt, line);
}

static void send_ev(fixture *f, const char *name, const char *iid, const char *extra) {
  char line[256];
  snprintf(line, sizeof(line), "{\"name\":\"%s\",\"data\":{\"interactionid\":\"%s\"%s}}", name, iid,
           extra ? extra : "");
  tfeed(f->rt, line);
}

static void test_broken_reload_keeps_old_generation(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "default.lua", "return {\n  start = function(\n");
  ixr_reload_result r;
  assert_int_equal(ixr_reload(f->rt, &r), IXR_ESTRATEGY);
  assert_int_equal(r.ok, 0);
  assert_int_equal(r.generation, 1);
  assert_non_null(strstr(r.errors, "default.lua:3:"));
  /* the old code still serves new sessions */
  present(f, "A", "default");
  assert_true(tcap_find(&f->cap, 0, "\"hello\"", "\"v\":1", NULL) >= 0);
  /* a file that loads but breaks the rules is rejected the same way */
  tdir_write(f->dir, "default.lua", "return { start = 42 }\n");
  assert_int_equal(ixr_reload(f->rt, &r), IXR_ESTRATEGY);
  assert_non_null(strstr(r.errors, "start must be a function"));
  /* a broken standard library module too */
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.generation, 1);
}

/* A strategy table with metatables: its fields are read through them (a
 * start inherited through __index works), and an __index that raises or
 * runs away fails the file, not the process (it once aborted ixr on the
 * reload, losing every session). The failure names the file. */
static void test_strategy_table_metamethods(void **state) {
  fixture *f = *state;
  present(f, "LIVE", "default");
  tdir_write(f->dir, "inherit.lua",
             "local base = { start = function(s) s:exit('inherited') end }\n"
             "return setmetatable({}, { __index = base })\n");
  ixr_reload_result r;
  assert_int_equal(ixr_reload(f->rt, &r), 0);
  present(f, "I", "inherit");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"I\"", "\"reason\":\"inherited\"", NULL) >= 0);
  /* each field is read once: the start that passed the check is the one
   * that runs (an __index giving a function once, then a number, used to
   * pass the checks and fail every session) */
  tdir_write(f->dir, "fickle.lua",
             "local n = 0\n"
             "return setmetatable({}, { __index = function(_, k)\n"
             "  if k == 'start' then n = n + 1\n"
             "    if n == 1 then return function(s) s:exit('first') end end\n"
             "    return 42 end end })\n");
  assert_int_equal(ixr_reload(f->rt, &r), 0);
  present(f, "F", "fickle");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"F\"", "\"reason\":\"first\"", NULL) >= 0);
  tdir_write(f->dir, "strict.lua",
             "return setmetatable({ start = function() end },\n"
             "  { __index = function(_, k) error('no field ' .. k, 2) end })\n");
  assert_int_equal(ixr_reload(f->rt, &r), IXR_ESTRATEGY);
  assert_non_null(strstr(r.errors, "strict.lua:1: reading the returned table: no field"));
  char path[512];
  snprintf(path, sizeof(path), "%s/strict.lua", f->dir);
  unlink(path);
  tdir_write(f->dir, "spin.lua",
             "return setmetatable({ start = function() end },\n"
             "  { __index = function()\n"
             "      while true do end\n"
             "    end })\n");
  assert_int_equal(ixr_reload(f->rt, &r), IXR_ESTRATEGY);
  assert_non_null(strstr(r.errors, "spin.lua:3: instruction budget exceeded"));
  /* the runtime and its session are still there, on generation 3 (the
   * two good reloads above) */
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.generation, 3);
  send_ev(f, "interaction.ping", "LIVE", NULL);
  assert_true(tcap_find(&f->cap, 0, "\"pong\"", "\"LIVE\"", NULL) >= 0);
}

/* A file that runs away while it loads is reported at the line where it
 * was stopped, as every other loading error. */
static void test_runaway_file_names_its_line(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "loop.lua", "local x = 0\nwhile true do\n  x = x + 1\nend\n");
  ixr_reload_result r;
  assert_int_equal(ixr_reload(f->rt, &r), IXR_ESTRATEGY);
  if (strstr(r.errors, "loop.lua:3: instruction budget exceeded") == NULL) {
    fprintf(stderr, "errors: %s\n", r.errors);
    fail();
  }
}

/* Module files are read and checked when a generation loads, as strategy
 * files are: a module required only at run time, broken on disk, makes the
 * reload fail and the old module keeps serving; edited on disk without a
 * reload, it changes nothing until the next one. */
static void test_modules_are_part_of_the_generation(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "lib/util.lua", "return { v = function() return 'v1' end }\n");
  tdir_write(f->dir, "lazy.lua",
             "return { start = function(s)\n"
             "  s:action('lib', { v = require('lib.util').v() })\n"
             "end }\n");
  ixr_reload_result r;
  assert_int_equal(ixr_reload(f->rt, &r), 0);
  tdir_write(f->dir, "lib/util.lua", "return { v = function() return 'v2' end }\n");
  present(f, "L1", "lazy"); /* first require, after the file changed */
  assert_true(tcap_find(&f->cap, 0, "\"lib\"", "\"L1\"", "\"v\":\"v1\"", NULL) >= 0);
  tdir_write(f->dir, "lib/util.lua", "return { v = function() return ");
  assert_int_equal(ixr_reload(f->rt, &r), IXR_ESTRATEGY);
  assert_non_null(strstr(r.errors, "lib/util.lua:1:"));
  present(f, "L2", "lazy");
  assert_true(tcap_find(&f->cap, 0, "\"lib\"", "\"L2\"", "\"v\":\"v1\"", NULL) >= 0);
  tdir_write(f->dir, "lib/util.lua", "return { v = function() return 'v3' end }\n");
  assert_int_equal(ixr_reload(f->rt, &r), 0);
  present(f, "L3", "lazy");
  assert_true(tcap_find(&f->cap, 0, "\"lib\"", "\"L3\"", "\"v\":\"v3\"", NULL) >= 0);
  /* a strategy file of the top level can be required as well */
  tdir_write(f->dir, "base.lua", "return { start = function() end, v = 'base' }\n");
  tdir_write(f->dir, "ext.lua",
             "local base = require('base')\n"
             "return { start = function(s) s:action('lib', { v = base.v }) end }\n");
  assert_int_equal(ixr_reload(f->rt, &r), 0);
  present(f, "L4", "ext");
  assert_true(tcap_find(&f->cap, 0, "\"lib\"", "\"L4\"", "\"v\":\"base\"", NULL) >= 0);
}

static void test_add_change_remove(void **state) {
  fixture *f = *state;
  strategy(f->dir, "extra", 1, NULL);
  strategy(f->dir, "default", 2, NULL);
  ixr_reload_result r;
  assert_int_equal(ixr_reload(f->rt, &r), 0);
  assert_int_equal(r.generation, 2);
  assert_int_equal(r.files, 3);
  assert_int_equal(r.changed, 2); /* extra added, default changed */
  present(f, "A", "extra");
  present(f, "B", "default");
  assert_true(tcap_find(&f->cap, 0, "\"hello\"", "\"A\"", "\"v\":1", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"hello\"", "\"B\"", "\"v\":2", NULL) >= 0);
  /* remove extra: its live session keeps running, new ones are refused */
  char path[1024];
  snprintf(path, sizeof(path), "%s/extra.lua", f->dir);
  unlink(path);
  assert_int_equal(ixr_reload(f->rt, &r), 0);
  assert_int_equal(r.changed, 1);
  send_ev(f, "interaction.ping", "A", NULL);
  assert_true(tcap_find(&f->cap, 0, "\"pong\"", "\"A\"", NULL) >= 0);
  present(f, "C", "extra");
  assert_true(tcap_find(&f->cap, 0, "strategy_not_found", NULL) >= 0);
}

static void test_next_event_uses_new_generation(void **state) {
  fixture *f = *state;
  present(f, "A", "default");
  send_ev(f, "interaction.route.done", "A", ",\"requestid\":\"r2\"");
  assert_true(tcap_find(&f->cap, 0, "\"after_route\"", "\"v\":1", NULL) >= 0);
  strategy(f->dir, "default", 2, NULL);
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  send_ev(f, "interaction.ping", "A", NULL);
  assert_true(tcap_find(&f->cap, 0, "\"pong\"", "\"v\":2", NULL) >= 0);
}

static void test_pinned_sessions_stay(void **state) {
  fixture *f = *state;
  present(f, "P", "pinned");
  strategy(f->dir, "pinned", 2, "pin = true,");
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  send_ev(f, "interaction.ping", "P", NULL);
  assert_true(tcap_find(&f->cap, 0, "\"pong\"", "\"P\"", "\"v\":1", NULL) >= 0);
  /* new sessions of a pinned strategy start on the new generation */
  present(f, "Q", "pinned");
  assert_true(tcap_find(&f->cap, 0, "\"hello\"", "\"Q\"", "\"v\":2", NULL) >= 0);
}

static void test_waiting_flow_finishes_on_old_code(void **state) {
  fixture *f = *state;
  present(f, "A", "default"); /* hello is r1; waits in route, r2, on version 1 */
  strategy(f->dir, "default", 2, NULL);
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  send_ev(f, "interaction.route.done", "A", ",\"requestid\":\"r2\"");
  assert_true(tcap_find(&f->cap, 0, "\"after_route\"", "\"v\":1", NULL) >= 0);
}

/* session.vars belong to the session, not to the code: kept across a
 * reload that changes the strategy, for a session that is running and for
 * one that is suspended and comes back on the new code. */
static void test_vars_survive_a_reload(void **state) {
  fixture *f = *state;
  const char *v1 =
      "return {\n"
      "  start = function(session, event)\n"
      "    session.vars.seen = (session.vars.seen or 0) + 1\n"
      "    session.vars.from = session.vars.from or 'v1'\n"
      "    session:wait('interaction.finish')\n"
      "  end,\n"
      "  on = { ['interaction.ping'] = function(session)\n"
      "    session:action('vars', { code = 1, seen = session.vars.seen, from = session.vars.from })\n"
      "  end },\n"
      "}\n";
  tdir_write(f->dir, "keep.lua", v1);
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  present(f, "V1", "keep");
  present(f, "V2", "keep");
  send_ev(f, "interaction.notcontrolled", "V2", ",\"resultof\":\"revoking\"");
  assert_true(tcap_find(&f->cap, 0, "\"suspended\"", "\"V2\"", NULL) >= 0);
  char v2[1024];
  snprintf(v2, sizeof(v2), "%s", v1);
  char *code = strstr(v2, "code = 1");
  assert_non_null(code);
  code[7] = '2';
  tdir_write(f->dir, "keep.lua", v2);
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  send_ev(f, "interaction.ping", "V1", NULL);
  assert_true(tcap_find(&f->cap, 0, "\"vars\"", "\"V1\"", "\"code\":2", "\"seen\":1",
                        "\"from\":\"v1\"", NULL) >= 0);
  present(f, "V2", "keep"); /* resumed: the flow runs again, on the new code */
  assert_true(tcap_find(&f->cap, 0, "\"resumed\"", "\"V2\"", NULL) >= 0);
  send_ev(f, "interaction.ping", "V2", NULL);
  assert_true(tcap_find(&f->cap, 0, "\"vars\"", "\"V2\"", "\"code\":2", "\"seen\":2",
                        "\"from\":\"v1\"", NULL) >= 0);
}

static void test_module_state_does_not_survive(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "lib/count.lua", "local M = { n = 0 }\nfunction M.bump() M.n = M.n + 1; return M.n end\nreturn M\n");
  tdir_write(f->dir, "counting.lua",
             "local count = require('lib.count')\n"
             "return { defaults = 'none', start = function(s)\n"
             "  s:action('n', { n = count.bump() })\n"
             "end }\n");
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  present(f, "A", "counting");
  present(f, "B", "counting");
  assert_true(tcap_find(&f->cap, 0, "\"n\"", "\"B\"", "\"n\":2", NULL) >= 0);
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  present(f, "C", "counting");
  assert_true(tcap_find(&f->cap, 0, "\"n\"", "\"C\"", "\"n\":1", NULL) >= 0);
  /* and the strategy's own file-level locals start over too */
  present(f, "D", "default");
  assert_true(tcap_find(&f->cap, 0, "\"hello\"", "\"D\"", "\"counter\":1", NULL) >= 0);
}

/* A module that fails to load fails each require with its own error, not
 * as a "require loop" the second time. */
static void test_failed_module_is_not_a_loop(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "lib/bad.lua", "error('bad module')\n");
  tdir_write(f->dir, "usesbad.lua",
             "return { defaults = 'none', start = function(s)\n"
             "  local ok, err = pcall(require, 'lib.bad')\n"
             "  local ok2, err2 = pcall(require, 'lib.bad')\n"
             "  s:action('r', { a = tostring(err):match('bad module') ~= nil,\n"
             "                  b = tostring(err2):match('bad module') ~= nil })\n"
             "end }\n");
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  present(f, "M", "usesbad");
  assert_true(tcap_find(&f->cap, 0, "\"r\"", "\"a\":true", "\"b\":true", NULL) >= 0);
}

static void test_control_events(void **state) {
  fixture *f = *state;
  tfeed(f->rt, "{\"name\":\"ixr.reload\",\"id\":\"r-1\"}");
  assert_true(tcap_find(&f->cap, 0, "\"type\":\"reply\"", "\"name\":\"ixr.reload\"", "\"id\":\"r-1\"",
                        "\"ok\":true", "\"generation\":2", NULL) >= 0);
  tdir_write(f->dir, "default.lua", "syntax error here\n");
  tfeed(f->rt, "{\"name\":\"ixr.reload\"}");
  assert_true(tcap_find(&f->cap, 0, "\"ok\":false", "\"generation\":2", "default.lua:1:", NULL) >= 0);
  present(f, "A", "pinned");
  tfeed(f->rt, "{\"name\":\"ixr.status\"}");
  assert_true(tcap_find(&f->cap, 0, "\"name\":\"ixr.status\"", "\"generation\":2",
                        "\"sessions_active\":1", "\"last_reload_ok\":false", NULL) >= 0);
}

/* Rapid successive writes: one reload, not many. */
typedef struct watchctx {
  ixr_runtime *rt;
  const char *dir;
  int writes;
  uv_timer_t writer, stopper;
} watchctx;

static void on_write_tick(uv_timer_t *t) {
  watchctx *w = t->data;
  strategy(w->dir, "default", 10 + w->writes, NULL);
  if (++w->writes == 5) uv_timer_stop(t);
}

static void on_stop(uv_timer_t *t) {
  watchctx *w = t->data;
  uv_close((uv_handle_t *)&w->writer, NULL);
  uv_close((uv_handle_t *)&w->stopper, NULL);
  ixr_stop(w->rt);
}

/* Runs a runtime that watches f->dir (debounce ms) on a loop of its own:
 * `step` runs every `every` ms from 10 ms on (it stops its timer itself),
 * and the runtime stops at `stop_ms`. Returns the generation then. */
static const char *watched_lua_dir; /* the standard library, if not the default */

static uint64_t run_watched(fixture *f, unsigned debounce, uv_timer_cb step,
                            uint64_t every, uint64_t stop_ms, watchctx *w) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = f->dir;
  o.lua_dir = watched_lua_dir;
  o.loop = &loop;
  o.on_log = tcap_logcb;
  o.log_ud = &f->cap;
  ixr_runtime *rt;
  assert_int_equal(ixr_new(&rt, &o), 0);
  assert_int_equal(ixr_watch(rt, debounce), 0);
  assert_int_equal(ixr_watch(rt, debounce), IXR_EBUSY);
  w->rt = rt;
  w->dir = f->dir;
  w->writes = 0;
  uv_timer_init(&loop, &w->writer);
  uv_timer_init(&loop, &w->stopper);
  w->writer.data = w->stopper.data = w;
  uv_timer_start(&w->writer, step, 10, every);
  uv_timer_start(&w->stopper, on_stop, stop_ms, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  ixr_stats st;
  ixr_get_stats(rt, &st);
  ixr_close(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  return st.generation;
}

static void test_watch_debounces(void **state) {
  fixture *f = *state;
  watchctx w;
  /* 5 writes, 10 ms apart: one burst */
  uint64_t gen = run_watched(f, 400, on_write_tick, 10, 2000, &w);
  assert_int_equal(w.writes, 5);
  assert_int_equal(gen, 2); /* exactly one reload */
}

/* What an editor does around a save, and what --watch must make of it:
 * its swap, lock and backup files and a save of the same bytes reload
 * nothing (a reload resets module state); a new directory of modules is
 * watched from then on. One step every 300 ms, the debounce 100 ms. */
static uint64_t edit_gens[6]; /* the generation before each step */

static void on_edit_step(uv_timer_t *t) {
  watchctx *w = t->data;
  char path[512];
  ixr_stats st;
  ixr_get_stats(w->rt, &st);
  edit_gens[w->writes] = st.generation;
  switch (w->writes++) {
    case 0: /* editor files beside the strategy: no reload */
      tdir_write(w->dir, ".default.lua.swp", "swap");
      tdir_write(w->dir, "#default.lua#", "autosave");
      tdir_write(w->dir, "default.lua~", "backup");
      tdir_write(w->dir, ".#default.lua", "lock");
      break;
    case 1: /* the same bytes saved again: no reload */
      strategy(w->dir, "default", 1, NULL);
      break;
    case 2: /* a new directory with a module: reload (generation 2) */
      snprintf(path, sizeof(path), "%s/newlib", w->dir);
      mkdir(path, 0755);
      tdir_write(w->dir, "newlib/m.lua", "return { v = 1 }\n");
      break;
    case 3: /* an edit in it: seen, since it is watched now (generation 3) */
      tdir_write(w->dir, "newlib/m.lua", "return { v = 2 }\n");
      break;
    case 4: /* the directory removed and made again (generation 4) */
      snprintf(path, sizeof(path), "%s/newlib/m.lua", w->dir);
      unlink(path);
      snprintf(path, sizeof(path), "%s/newlib", w->dir);
      rmdir(path);
      mkdir(path, 0755);
      tdir_write(w->dir, "newlib/m.lua", "return { v = 3 }\n");
      break;
    case 5: /* and an edit in the new one is seen (generation 5) */
      tdir_write(w->dir, "newlib/m.lua", "return { v = 4 }\n");
      uv_timer_stop(t);
      break;
  }
}

static void test_watch_ignores_editor_files_follows_new_dirs(void **state) {
  fixture *f = *state;
  watchctx w;
  uint64_t gen = run_watched(f, 100, on_edit_step, 300, 2000, &w);
  assert_int_equal(w.writes, 6);
  /* no reload for the editor's files, none for the same bytes, one for the
   * new directory's module, one for its edit, one for the directory made
   * again, one for an edit in it */
  if (edit_gens[1] != 1 || edit_gens[2] != 1 || edit_gens[3] != 2 ||
      edit_gens[4] != 3 || edit_gens[5] != 4 || gen != 5) {
    fprintf(stderr, "generations %llu %llu %llu %llu %llu, then %llu; log:\n%s\n",
            (unsigned long long)edit_gens[1], (unsigned long long)edit_gens[2],
            (unsigned long long)edit_gens[3], (unsigned long long)edit_gens[4],
            (unsigned long long)edit_gens[5], (unsigned long long)gen,
            f->cap.log ? f->cap.log : "");
    fail();
  }
}

/* A file written to without end beside the strategies (an editor's swap
 * file, a log) used to put every reload off for as long as it was written:
 * a look now comes at most a second after the first event of a burst. */
static void on_swap_tick(uv_timer_t *t) {
  watchctx *w = t->data;
  char path[512];
  snprintf(path, sizeof(path), "%s/.default.lua.swp", w->dir);
  FILE *fp = fopen(path, "a");
  if (fp != NULL) {
    fputs("x", fp);
    fclose(fp);
  }
  if (w->writes == 1) strategy(w->dir, "default", 2, NULL);
  if (++w->writes == 18) uv_timer_stop(t);
}

static void test_watch_not_starved_by_other_writes(void **state) {
  fixture *f = *state;
  watchctx w;
  /* writes every 100 ms for 1.8 s, debounce 300 ms: the reload is due by
   * about 1.1 s, and the run stops at 1.7 s, still inside the writes */
  uint64_t gen = run_watched(f, 300, on_swap_tick, 100, 1700, &w);
  assert_int_equal(gen, 2);
}

static void remove_tree(const char *path) {
  char cmd[4200];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
  assert_int_equal(system(cmd), 0);
}

/* The handlers directory replaced as a whole (mv new handlers): watched
 * again where its path now leads. It used to stop the watch, silently. */
static char *moved_aside;

static void on_swap_dir_step(uv_timer_t *t) {
  watchctx *w = t->data;
  char fresh[512];
  snprintf(fresh, sizeof(fresh), "%s.new", w->dir);
  if (w->writes++ == 0) {
    assert_int_equal(mkdir(fresh, 0755), 0);
    strategy(fresh, "default", 2, NULL);
    assert_int_equal(rename(w->dir, moved_aside), 0);
    assert_int_equal(rename(fresh, w->dir), 0);
  } else {
    strategy(w->dir, "default", 3, NULL); /* an edit in the new directory */
    uv_timer_stop(t);
  }
}

static void test_watch_follows_a_replaced_handlers_dir(void **state) {
  fixture *f = *state;
  char old[512];
  snprintf(old, sizeof(old), "%s.old", f->dir);
  moved_aside = old;
  watchctx w;
  uint64_t gen = run_watched(f, 100, on_swap_dir_step, 400, 1500, &w);
  assert_int_equal(w.writes, 2);
  remove_tree(old);
  if (gen != 3) {
    fprintf(stderr, "generation %llu; log:\n%s\n", (unsigned long long)gen,
            f->cap.log ? f->cap.log : "");
    fail();
  }
}

/* A strategy that answers with action 'vN', at path. */
static void write_version(const char *path, int v) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fprintf(fp, "return { start = function(session) session:action('v%d') end }\n", v);
  fclose(fp);
}

/* A directory beside the handlers (dir + suffix) holding version 1 of a
 * strategy file `name`, whose path goes into target; returns the
 * directory (static). */
static const char *outside_target(fixture *f, const char *suffix, const char *name,
                                  char *target, size_t len) {
  static char ext[512];
  snprintf(ext, sizeof(ext), "%s%s", f->dir, suffix);
  assert_int_equal(mkdir(ext, 0755), 0);
  snprintf(target, len, "%s/%s", ext, name);
  write_version(target, 1);
  return ext;
}

/* handlers/t.lua, a symlink to version 1 of a strategy in a directory
 * beside the handlers (dir + suffix), whose path goes into link_target;
 * returns that directory. */
static char link_target[600];

static const char *linked_strategy(fixture *f, const char *suffix) {
  const char *ext = outside_target(f, suffix, "t.lua", link_target, sizeof(link_target));
  char link[600];
  snprintf(link, sizeof(link), "%s/t.lua", f->dir);
  assert_int_equal(symlink(link_target, link), 0);
  return ext;
}

/* A strategy file that is a symlink: an edit where it leads is seen. */

static void on_link_edit(uv_timer_t *t) {
  watchctx *w = t->data;
  write_version(link_target, 2);
  w->writes++;
  uv_timer_stop(t);
}

static void test_watch_follows_a_symlinked_strategy(void **state) {
  fixture *f = *state;
  const char *ext = linked_strategy(f, "-ext");
  watchctx w;
  uint64_t gen = run_watched(f, 100, on_link_edit, 200, 1000, &w);
  remove_tree(ext);
  assert_int_equal(w.writes, 1);
  assert_int_equal(gen, 2);
}

/* A symlink made (or switched) after the watch began is followed too. */
static char late_target[600];

static void on_late_link_step(uv_timer_t *t) {
  watchctx *w = t->data;
  char link[600];
  switch (w->writes++) {
    case 0: /* the link appears: a new strategy (generation 2) */
      snprintf(link, sizeof(link), "%s/late.lua", w->dir);
      assert_int_equal(symlink(late_target, link), 0);
      break;
    case 1: /* its target edited (generation 3) */
      write_version(late_target, 2);
      uv_timer_stop(t);
      break;
  }
}

static void test_watch_follows_a_symlink_made_later(void **state) {
  fixture *f = *state;
  const char *ext = outside_target(f, "-late", "late.lua", late_target, sizeof(late_target));
  watchctx w;
  uint64_t gen = run_watched(f, 100, on_late_link_step, 400, 1400, &w);
  remove_tree(ext);
  assert_int_equal(w.writes, 2);
  assert_int_equal(gen, 3);
}

/* The directory a symlinked strategy leads to, replaced under the same
 * path (the link unchanged): its files are watched again. */
static void on_target_dir_step(uv_timer_t *t) {
  watchctx *w = t->data;
  char dir[600];
  snprintf(dir, sizeof(dir), "%s", link_target);
  *strrchr(dir, '/') = '\0';
  if (w->writes++ == 0) {
    remove_tree(dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    write_version(link_target, 2); /* generation 2 */
  } else {
    write_version(link_target, 3); /* generation 3: seen in the new directory */
    uv_timer_stop(t);
  }
}

static void test_watch_follows_a_replaced_link_target_dir(void **state) {
  fixture *f = *state;
  const char *ext = linked_strategy(f, "-tgt");
  watchctx w;
  uint64_t gen = run_watched(f, 100, on_target_dir_step, 500, 1600, &w);
  remove_tree(ext);
  assert_int_equal(w.writes, 2);
  assert_int_equal(gen, 3);
}

/* The standard library replaced as a whole, beside the handlers directory
 * (one parent for both, as in the source tree): followed as well. */
static char lua_copy[512];

static void on_lua_swap_step(uv_timer_t *t) {
  watchctx *w = t->data;
  char cmd[4096];
  if (w->writes++ == 0) {
    snprintf(cmd, sizeof(cmd), "cp -r '%s' '%s.new' && mv '%s' '%s.old' && mv '%s.new' '%s' && "
             "echo '-- edited' >> '%s/ixr/types.lua'",
             lua_copy, lua_copy, lua_copy, lua_copy, lua_copy, lua_copy, lua_copy);
    assert_int_equal(system(cmd), 0);
  } else {
    snprintf(cmd, sizeof(cmd), "echo '-- edited again' >> '%s/ixr/types.lua'", lua_copy);
    assert_int_equal(system(cmd), 0);
    uv_timer_stop(t);
  }
}

static void test_watch_follows_a_replaced_lua_dir(void **state) {
  fixture *f = *state;
  const char *src = getenv("IXR_LUA_DIR");
  assert_non_null(src);
  snprintf(lua_copy, sizeof(lua_copy), "%s-lua", f->dir);
  char cmd[1200];
  snprintf(cmd, sizeof(cmd), "cp -r '%s' '%s'", src, lua_copy);
  assert_int_equal(system(cmd), 0);
  watched_lua_dir = lua_copy;
  watchctx w;
  uint64_t gen = run_watched(f, 100, on_lua_swap_step, 400, 1400, &w);
  watched_lua_dir = NULL;
  remove_tree(lua_copy);
  snprintf(cmd, sizeof(cmd), "%s.old", lua_copy);
  remove_tree(cmd);
  assert_int_equal(w.writes, 2);
  assert_int_equal(gen, 3);
}

/* A reload by hand (SIGHUP, ixr_reload) while watching takes the files as
 * it read them: the watch does not reload them a second time. */
static void on_edit_and_reload(uv_timer_t *t) {
  watchctx *w = t->data;
  strategy(w->dir, "default", 7, NULL);
  assert_int_equal(ixr_reload(w->rt, NULL), 0);
  w->writes++;
  uv_timer_stop(t);
}

static void test_watch_after_a_reload_by_hand(void **state) {
  fixture *f = *state;
  watchctx w;
  uint64_t gen = run_watched(f, 100, on_edit_and_reload, 100, 800, &w);
  assert_int_equal(w.writes, 1);
  assert_int_equal(gen, 2);
}

/* A file changed while the first generation loads (before ixr_watch) is
 * reloaded once the watch starts. It used to wait for some other change. */
static void on_stop_only(uv_timer_t *t) { ixr_stop(t->data); uv_close((uv_handle_t *)t, NULL); }

static void test_watch_sees_a_change_made_during_the_first_load(void **state) {
  fixture *f = *state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = f->dir;
  o.loop = &loop;
  o.on_log = tcap_logcb;
  o.log_ud = &f->cap;
  ixr_runtime *rt;
  assert_int_equal(ixr_new(&rt, &o), 0);
  strategy(f->dir, "default", 2, NULL); /* after the load, before the watch */
  assert_int_equal(ixr_watch(rt, 100), 0);
  uv_timer_t stop;
  uv_timer_init(&loop, &stop);
  stop.data = rt;
  uv_timer_start(&stop, on_stop_only, 800, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  ixr_stats st;
  ixr_get_stats(rt, &st);
  ixr_close(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(st.generation, 2);
}

/* A module that returns nothing is most often one caught halfway through a
 * save: refused when a strategy requires it as it loads (the reload is
 * rejected), an error where it is required later. */
static void test_module_returning_nothing_is_refused(void **state) {
  fixture *f = *state;
  char lib[512];
  snprintf(lib, sizeof(lib), "%s/lib", f->dir);
  assert_int_equal(mkdir(lib, 0755), 0);
  tdir_write(f->dir, "lib/route.lua", "local M = {}\nM.target = 'A'\n");
  tdir_write(f->dir, "uses.lua",
             "local route = require('lib.route')\n"
             "return { start = function(session) session:action('t', { t = route.target }) end }\n");
  ixr_reload_result res;
  assert_int_equal(ixr_reload(f->rt, &res), IXR_ESTRATEGY);
  assert_non_null(strstr(res.errors, "module 'lib.route' returned nothing"));
  /* complete, it loads */
  tdir_write(f->dir, "lib/route.lua", "local M = {}\nM.target = 'A'\nreturn M\n");
  assert_int_equal(ixr_reload(f->rt, &res), 0);
}

/* A symlink to / among the module directories used to keep the loop
 * walking the whole file system (to 8 levels, /proc included) at every
 * load: the walk stops after 1,000 directories, and says so. */
static void test_link_to_a_large_tree_is_bounded(void **state) {
  fixture *f = *state;
  char link[600];
  snprintf(link, sizeof(link), "%s/root", f->dir);
  assert_int_equal(symlink("/", link), 0);
  ixr_reload_result res;
  assert_int_equal(ixr_reload(f->rt, &res), IXR_ESTRATEGY);
  assert_non_null(strstr(res.errors, "more than 1000 directories of modules"));
  assert_true(res.ms < 10000);
  unlink(link);
}

/* a.b.lua and a/b.lua are both module a.b: which one require loaded
 * depended on the order of a directory listing. A problem now. */
static void test_one_module_two_files_is_a_problem(void **state) {
  fixture *f = *state;
  char dir[600];
  snprintf(dir, sizeof(dir), "%s/lib", f->dir);
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(dir, sizeof(dir), "%s/lib/a", f->dir);
  assert_int_equal(mkdir(dir, 0755), 0);
  tdir_write(f->dir, "lib/a.b.lua", "return { v = 1 }\n");
  tdir_write(f->dir, "lib/a/b.lua", "return { v = 2 }\n");
  ixr_reload_result res;
  assert_int_equal(ixr_reload(f->rt, &res), IXR_ESTRATEGY);
  assert_non_null(strstr(res.errors, "module 'lib.a.b' is "));
  assert_non_null(strstr(res.errors, "as well: rename one"));
}

/* A FIFO named like a strategy used to block the whole runtime in the
 * reload until something wrote to it. */
static void test_fifo_named_lua_does_not_block(void **state) {
  fixture *f = *state;
  char fifo[512];
  snprintf(fifo, sizeof(fifo), "%s/p.lua", f->dir);
  assert_int_equal(mkfifo(fifo, 0644), 0);
  ixr_reload_result res;
  assert_int_equal(ixr_reload(f->rt, &res), IXR_ESTRATEGY);
  assert_non_null(strstr(res.errors, "p.lua: cannot open: not a regular file"));
  unlink(fifo);
}

/* A module directory that cannot be read hides its modules: the reload is
 * refused, not taken with the directory as empty. As root every directory
 * can be read, so the check runs as nobody, in a child. */
static void test_unreadable_module_dir_refuses_the_reload(void **state) {
  fixture *f = *state;
  char lib[512];
  snprintf(lib, sizeof(lib), "%s/lib", f->dir);
  assert_int_equal(mkdir(lib, 0755), 0);
  tdir_write(f->dir, "lib/m.lua", "return { v = 1 }\n");
  chmod(f->dir, 0755);
  char cmd[1100];
  snprintf(cmd, sizeof(cmd), "chmod a+r '%s'/*.lua '%s'/lib/*.lua", f->dir, f->dir);
  assert_int_equal(system(cmd), 0);
  bool root = geteuid() == 0;
  /* A directory that cannot hold modules (its name cannot be part of one)
   * is no problem, readable or not: a volume's lost+found. */
  char lost[600];
  snprintf(lost, sizeof(lost), "%s/lost+found", f->dir);
  assert_int_equal(mkdir(lost, root ? 0700 : 0), 0);
  /* The handlers are readable as they are: a reload is taken. */
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  if (root) assert_int_equal(chmod(lib, 0700), 0); /* nobody cannot read it */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (root && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(10);
    if (!root && chmod(lib, 0) != 0) _exit(11);
    ixr_options o;
    topts(&o, f->dir, &f->cap); /* the child's log stays in its copy */
    ixr_runtime *rt;
    if (ixr_new(&rt, &o) != 0) _exit(12);
    /* an unreadable subdirectory (lost+found) is no reason not to watch */
    if (ixr_watch(rt, 100) != 0) _exit(16);
    ixr_reload_result res;
    if (strstr(ixr_reload(rt, &res) == 0 ? "" : res.errors, "lost+found") != NULL) _exit(15);
    int rc = ixr_reload(rt, &res);
    bool said = strstr(res.errors, "lib: cannot read the directory") != NULL;
    ixr_close(rt);
    _exit(rc == IXR_ESTRATEGY && said ? 0 : 14);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  chmod(lib, 0755);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * Reload under load: events for thousands of sessions stream in over a unix
 * socket while the handlers are rewritten 50 times, some of them broken.
 */
enum { SESSIONS = 3000, REWRITES = 50 };

typedef struct load {
  ixr_runtime *rt;
  const char *dir;
  uv_pipe_t client;
  uv_connect_t conn;
  char *out;
  size_t outlen, outcap;
  int sent_chunks;
  int rewrites, rejected, accepted;
  bool done_sending;
  int connect_status;
  char *payload;
  size_t payload_len, payload_off;
  uv_write_t wreq;
} load;

static void load_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h;
  b->base = malloc(hint);
  b->len = hint;
}

static size_t count(const char *hay, size_t len, const char *needle) {
  size_t n = 0, nl = strlen(needle);
  for (const char *p = hay; (p = memmem(p, len - (size_t)(p - hay), needle, nl)) != NULL; p += nl) n++;
  return n;
}

static void load_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  load *l = s->data;
  if (n > 0) {
    if (l->outlen + (size_t)n > l->outcap) {
      l->outcap = (l->outlen + (size_t)n) * 2;
      l->out = realloc(l->out, l->outcap);
    }
    memcpy(l->out + l->outlen, b->base, (size_t)n);
    l->outlen += (size_t)n;
    /* every session ends: stop when all ended lines are in */
    if (count(l->out, l->outlen, "\"state\":\"ended\"") == SESSIONS) {
      uv_close((uv_handle_t *)&l->client, NULL);
      ixr_stop(l->rt);
    }
  }
  free(b->base);
}

static void send_chunk(load *l);

static void rewrite(load *l);

static void on_chunk_written(uv_write_t *req, int status) {
  load *l = req->data;
  (void)status;
  /* handlers rewritten (and reloaded) every 8 chunks while events flow */
  if (++l->sent_chunks % 8 == 0) rewrite(l);
  send_chunk(l);
}

/* The payload goes out in small chunks, so that reloads fall between them. */
static void send_chunk(load *l) {
  if (l->payload_off >= l->payload_len) {
    l->done_sending = true;
    return;
  }
  size_t n = l->payload_len - l->payload_off;
  if (n > 1500) n = 1500;
  uv_buf_t b = uv_buf_init(l->payload + l->payload_off, (unsigned)n);
  l->payload_off += n;
  l->wreq.data = l;
  uv_write(&l->wreq, (uv_stream_t *)&l->client, &b, 1, on_chunk_written);
}

static void rewrite(load *l) {
  if (l->rewrites == REWRITES) return;
  l->rewrites++;
  if (l->rewrites % 5 == 0)
    tdir_write(l->dir, "default.lua", "return { start = function(s) s:route( end }\n");
  else
    strategy(l->dir, "default", 100 + l->rewrites, NULL);
  if (ixr_reload(l->rt, NULL) == 0) l->accepted++;
  else l->rejected++;
}

static void on_connected(uv_connect_t *req, int status) {
  load *l = req->data;
  l->connect_status = status; /* asserted after uv_run */
  uv_read_start((uv_stream_t *)&l->client, load_alloc, load_read);
  send_chunk(l);
}

static void test_reload_under_load(void **state) {
  fixture *f = *state;
  /* a strategy whose sessions end: present -> route -> done -> finish */
  uv_loop_t loop;
  uv_loop_init(&loop);
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = f->dir;
  o.loop = &loop;
  o.on_log = tcap_logcb;
  o.log_ud = &f->cap;
  ixr_runtime *rt;
  assert_int_equal(ixr_new(&rt, &o), 0);
  char sock[128];
  snprintf(sock, sizeof(sock), "/tmp/ixr-reload-%d.sock", (int)getpid());
  char addr[140];
  snprintf(addr, sizeof(addr), "unix:%s", sock);
  assert_int_equal(ixr_listen(rt, addr), 0);

  load l;
  memset(&l, 0, sizeof(l));
  l.rt = rt;
  l.dir = f->dir;
  /* request ids: each present emits hello (r<2i+1>) then route (r<2i+2>) */
  size_t cap = (size_t)SESSIONS * 400;
  l.payload = malloc(cap);
  for (int i = 0; i < SESSIONS; i++)
    l.payload_len += (size_t)snprintf(l.payload + l.payload_len, cap - l.payload_len,
        "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"L%d\"}}\n", i);
  for (int i = 0; i < SESSIONS; i++)
    l.payload_len += (size_t)snprintf(l.payload + l.payload_len, cap - l.payload_len,
        "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"L%d\",\"requestid\":\"r%d\"}}\n"
        "{\"name\":\"interaction.finish\",\"data\":{\"interactionid\":\"L%d\"}}\n", i, 2 * i + 2, i);
  uv_pipe_init(&loop, &l.client, 0);
  l.client.data = &l;
  l.conn.data = &l;
  uv_pipe_connect(&l.conn, &l.client, sock, on_connected);
  uv_run(&loop, UV_RUN_DEFAULT);

  assert_int_equal(l.connect_status, 0);
  assert_true(l.done_sending);
  /* every input event produced its output; none lost, none duplicated */
  assert_int_equal(count(l.out, l.outlen, "\"state\":\"started\""), SESSIONS);
  assert_int_equal(count(l.out, l.outlen, "\"action\":\"route\""), SESSIONS);
  assert_int_equal(count(l.out, l.outlen, "\"action\":\"after_route\""), SESSIONS);
  assert_int_equal(count(l.out, l.outlen, "\"reason\":\"completed\""), SESSIONS);
  assert_int_equal(count(l.out, l.outlen, "\"type\":\"error\""), 0);
  for (int i = 0; i < SESSIONS; i += 97) {
    char want[96];
    snprintf(want, sizeof(want), "\"state\":\"started\",\"session\":\"s%d\",\"interactionid\":\"L%d\"", i + 1, i);
    assert_int_equal(count(l.out, l.outlen, want), 1);
  }
  /* every broken write was rejected, every good one accepted */
  fprintf(stderr, "  rewrites %d: %d accepted, %d rejected\n", l.rewrites, l.accepted, l.rejected);
  assert_int_equal(l.rewrites, REWRITES);
  assert_int_equal(l.rejected, l.rewrites / 5);
  assert_int_equal(l.accepted, l.rewrites - l.rewrites / 5);
  ixr_stats st;
  ixr_get_stats(rt, &st);
  assert_int_equal(st.sessions_active, 0);
  assert_int_equal(st.generation, 1 + (uint64_t)l.accepted);
  ixr_close(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  free(l.payload);
  free(l.out);
}

/* The version under load finishes with the flow's `finish` wait. */
static int setup_load(void **state) {
  int rc = setup(state);
  fixture *f = *state;
  ixr_close(f->rt);
  f->rt = trt_new(f->dir, &f->cap);
  return rc;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_broken_reload_keeps_old_generation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_add_change_remove, setup, teardown),
      cmocka_unit_test_setup_teardown(test_strategy_table_metamethods, setup, teardown),
      cmocka_unit_test_setup_teardown(test_modules_are_part_of_the_generation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runaway_file_names_its_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_next_event_uses_new_generation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pinned_sessions_stay, setup, teardown),
      cmocka_unit_test_setup_teardown(test_waiting_flow_finishes_on_old_code, setup, teardown),
      cmocka_unit_test_setup_teardown(test_vars_survive_a_reload, setup, teardown),
    cmocka_unit_test_setup_teardown(test_module_state_does_not_survive, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_module_is_not_a_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_control_events, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_debounces, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_ignores_editor_files_follows_new_dirs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_not_starved_by_other_writes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_follows_a_replaced_handlers_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_follows_a_symlinked_strategy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_sees_a_change_made_during_the_first_load, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_follows_a_symlink_made_later, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_follows_a_replaced_link_target_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_follows_a_replaced_lua_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_after_a_reload_by_hand, setup, teardown),
      cmocka_unit_test_setup_teardown(test_module_returning_nothing_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fifo_named_lua_does_not_block, setup, teardown),
      cmocka_unit_test_setup_teardown(test_one_module_two_files_is_a_problem, setup, teardown),
      cmocka_unit_test_setup_teardown(test_link_to_a_large_tree_is_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unreadable_module_dir_refuses_the_reload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload_under_load, setup_load, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
