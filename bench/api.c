/*
 * api.c: throughput through the embedding API (build/bench/api).
 *
 *   api [--runs N] [--handlers DIR] EVENTS.ndjson
 *
 * The events of the file are decoded before timing starts (as the ceiling
 * does); the timed loop hands each one to ixr_feed_event() as a name and a
 * field list: no JSON is parsed. The runtime writes its output lines as
 * JSON to the output callback, which counts them (an embedding host would
 * use the structured fields or forward the JSON). Lines of the file that
 * are not JSON objects (the deliberate bad_json lines) are left out.
 *
 * One line per run:
 *   bench=api run=1 events=N seconds=S events_per_s=X lines_out=L lua_kb=K
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define MAX_RUNS 1000

typedef struct {
  uint64_t lines, bytes;
} sink;

static void on_output(void *ud, const ixr_output *out) {
  sink *s = ud;
  s->lines++;
  s->bytes += out->json_len;
}

static void on_log(void *ud, ixr_log_level level, const char *msg) {
  (void)ud;
  if (level <= IXR_LOG_WARN) fprintf(stderr, "api: %s\n", msg);
}

int main(int argc, char **argv) {
  const char *handlers = "bench/handlers", *path = NULL;
  int runs = 1;
  bool ok = true;
  for (int i = 1; i < argc && ok; i++) {
    uint64_t x;
    if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
      if ((ok = bench_parse_count("api: --runs", argv[++i], 1, MAX_RUNS, &x))) runs = (int)x;
    } else if (strcmp(argv[i], "--handlers") == 0 && i + 1 < argc) handlers = argv[++i];
    else if (argv[i][0] != '-' && path == NULL) path = argv[i];
    else ok = false;
  }
  if (!ok || path == NULL) {
    fprintf(stderr, "usage: api [--runs N (1..%d)] [--handlers DIR] EVENTS.ndjson\n",
            MAX_RUNS);
    return 2;
  }
  bench_events evs;
  bench_load_events(path, 0, &evs);

  for (int r = 1; r <= runs; r++) {
    sink out = {0, 0};
    ixr_options o;
    ixr_options_init(&o);
    o.handlers_dir = handlers;
    o.on_output = on_output;
    o.output_ud = &out;
    o.on_log = on_log;
    o.log_level = IXR_LOG_WARN;
    ixr_runtime *rt;
    int rc = ixr_new(&rt, &o);
    if (rc != 0) {
      fprintf(stderr, "api: ixr_new: %s\n", ixr_strerror(rc));
      return 1;
    }
    size_t failed = 0;
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < evs.n; i++) {
      const bench_event *e = &evs.ev[i];
      if (ixr_feed_event(rt, e->name, e->fields, e->nfields) != 0) failed++;
    }
    uint64_t t1 = bench_now_ns();
    ixr_stats st;
    ixr_get_stats(rt, &st);
    double secs = (double)(t1 - t0) / 1e9;
    printf("bench=api run=%d events=%zu seconds=%.4f events_per_s=%.0f lines_out=%llu "
           "lua_kb=%llu sessions_live=%llu failed=%zu\n",
           r, evs.n, secs, (double)evs.n / secs, (unsigned long long)out.lines,
           (unsigned long long)(st.lua_bytes / 1024),
           (unsigned long long)(st.sessions_active + st.sessions_suspended), failed);
    fflush(stdout);
    ixr_close(rt);
  }
  bench_free_events(&evs);
  return 0;
}
