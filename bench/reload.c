/*
 * bench/reload.c: the pause a hot reload puts in the event loop.
 *
 *   reload [--files N] [--sessions N] [--reloads N]
 *
 * Writes N strategy files (each a realistic strategy of ~40 lines that
 * requires a shared module), starts the live sessions (their flows wait in
 * session:wait, as sessions do between events), then reloads repeatedly,
 * changing one file each time. ixr_reload() runs on the loop thread between
 * two events, so the time it takes is the pause: no event is processed
 * meanwhile. Prints one line: median, p90 and max of the pauses, and the
 * time of the first event handled after a reload (it pays for moving its
 * session to the new generation).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h" /* bench_median, bench_parse_count */
#include "ixr.h"

#define MAX_FILES 10000
#define MAX_SESSIONS 10000000
#define MAX_RELOADS 100000

static const char *STRATEGY =
    "-- generated strategy %d (version %d)\n"
    "local util = require('lib.util')\n"
    "local GROUPS = { en = 'Chat:English', fr = 'Chat:French', de = 'Chat:German' }\n"
    "local function pick(ud)\n"
    "  if ud.Segment == 'gold' then return 'Chat:Gold' end\n"
    "  return GROUPS[ud.Language] or GROUPS.en\n"
    "end\n"
    "return {\n"
    "  defaults = 'requeue',\n"
    "  requeue_timeout = 120,\n"
    "  start = function(session, event)\n"
    "    local ud = event.data.userdata or {}\n"
    "    session.vars.group = pick(ud)\n"
    "    session.vars.tag = util.tag(%d)\n"
    "    session:wait('interaction.finish')\n"
    "    local ok = session:route({ target = session.vars.group }, { timeout = 30 })\n"
    "    if not ok then session:queue({ queue = 'overflow' }, { timeout = 60 }) end\n"
    "  end,\n"
    "  requeued = function(session, event)\n"
    "    if (event.data.userdata or {}).IsOnline == 'false' then\n"
    "      session:stop({ reason = 'offline' })\n"
    "      return\n"
    "    end\n"
    "    session:wait('interaction.finish')\n"
    "  end,\n"
    "  on = {\n"
    "    ['interaction.message'] = function(session, event)\n"
    "      session.vars.messages = (session.vars.messages or 0) + 1\n"
    "    end,\n"
    "    ['interaction.ping'] = function(session, event)\n"
    "      session:action('pong', { v = %d })\n"
    "    end,\n"
    "  },\n"
    "}\n";

static void write_file(const char *dir, const char *name, const char *text) {
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    perror(path);
    exit(1);
  }
  fputs(text, f);
  fclose(f);
}

static void write_strategy(const char *dir, int i, int version) {
  char name[64], text[4096];
  snprintf(name, sizeof(name), "s%03d.lua", i);
  snprintf(text, sizeof(text), STRATEGY, i, version, i, version);
  write_file(dir, name, text);
}

static void quiet(void *ud, ixr_log_level l, const char *m) {
  (void)ud;
  (void)l;
  (void)m;
}

static size_t outputs;
static void count_output(void *ud, const ixr_output *o) {
  (void)ud;
  (void)o;
  outputs++;
}

int main(int argc, char **argv) {
  int files = 10, sessions = 100000, reloads = 30;
  for (int i = 1; i < argc; i += 2) {
    uint64_t x;
    int *to = NULL;
    uint64_t max = 0;
    if (strcmp(argv[i], "--files") == 0) to = &files, max = MAX_FILES;
    else if (strcmp(argv[i], "--sessions") == 0) to = &sessions, max = MAX_SESSIONS;
    else if (strcmp(argv[i], "--reloads") == 0) to = &reloads, max = MAX_RELOADS;
    char opt[32];
    snprintf(opt, sizeof(opt), "reload: %s", argv[i]);
    if (to == NULL || i + 1 >= argc || !bench_parse_count(opt, argv[i + 1], 1, max, &x)) {
      fprintf(stderr,
              "usage: reload [--files N (1..%d)] [--sessions N (1..%d)] "
              "[--reloads N (1..%d)]\n",
              MAX_FILES, MAX_SESSIONS, MAX_RELOADS);
      return 2;
    }
    *to = (int)x;
  }
  char dir[] = "/tmp/ixr-bench-reload-XXXXXX";
  if (mkdtemp(dir) == NULL) return 1;
  char lib[sizeof(dir) + 8];
  snprintf(lib, sizeof(lib), "%s/lib", dir);
  mkdir(lib, 0755);
  write_file(lib, "util.lua",
             "local M = {}\nfunction M.tag(n) return 'strategy-' .. n end\nreturn M\n");
  for (int i = 0; i < files; i++) write_strategy(dir, i, 1);

  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = dir;
  o.clock = IXR_CLOCK_MANUAL;
  o.on_log = quiet;
  o.on_output = count_output;
  ixr_runtime *rt;
  if (ixr_new(&rt, &o) != 0) return 1;
  char iid[32], strat[16];
  for (int i = 0; i < sessions; i++) {
    snprintf(iid, sizeof(iid), "I%d", i);
    snprintf(strat, sizeof(strat), "s%03d", i % files);
    ixr_field f[] = {
        {.key = "interactionid", .type = IXR_V_STRING, .str = iid},
        {.key = "strategy", .type = IXR_V_STRING, .str = strat},
        {.key = "userdata", .type = IXR_V_OBJECT},
        {.key = "Language", .type = IXR_V_STRING, .str = "fr"},
        {.key = "Segment", .type = IXR_V_STRING, .str = "silver"},
        {.type = IXR_V_END},
    };
    if (ixr_feed_event(rt, "interaction.present", f, 6) != 0) return 1;
  }
  ixr_stats st;
  ixr_get_stats(rt, &st);
  if (st.sessions_active != (uint64_t)sessions) {
    fprintf(stderr, "reload: only %llu of %d sessions live\n",
            (unsigned long long)st.sessions_active, sessions);
    return 1;
  }
  double *pause = calloc((size_t)reloads, sizeof(double));
  double *first = calloc((size_t)reloads, sizeof(double));
  for (int r = 0; r < reloads; r++) {
    write_strategy(dir, r % files, r + 2);
    ixr_reload_result res;
    uint64_t t0 = uv_hrtime();
    int rc = ixr_reload(rt, &res);
    uint64_t t1 = uv_hrtime();
    if (rc != 0 || !res.ok) {
      fprintf(stderr, "reload failed: %s\n", res.errors);
      return 1;
    }
    pause[r] = (double)(t1 - t0) / 1e6;
    /* the next event of a live session moves it to the new generation */
    snprintf(iid, sizeof(iid), "I%d", (r * 7919) % sessions);
    ixr_field f[] = {{.key = "interactionid", .type = IXR_V_STRING, .str = iid}};
    t0 = uv_hrtime();
    ixr_feed_event(rt, "interaction.ping", f, 1);
    first[r] = (double)(uv_hrtime() - t0) / 1e6;
  }
  /* bench_median sorts: pause[] is in order for the p90 and the max below */
  double pause_median = bench_median(pause, reloads);
  double first_median = bench_median(first, reloads);
  ixr_get_stats(rt, &st);
  printf("bench=reload files=%d sessions=%d reloads=%d pause_ms_median=%.2f "
         "pause_ms_p90=%.2f pause_ms_max=%.2f next_event_ms_median=%.3f "
         "generation=%llu lua_heap_mb=%.1f\n",
         files, sessions, reloads, pause_median, pause[reloads * 9 / 10],
         pause[reloads - 1], first_median, (unsigned long long)st.generation,
         (double)st.lua_bytes / 1048576.0);
  ixr_close(rt);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  free(pause);
  free(first);
  return 0;
}
