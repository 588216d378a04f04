/*
 * mem.c: memory per live session (build/bench/mem).
 *
 *   mem [--handlers DIR] [--minimal] N EVENTS.ndjson
 *
 * Starts N sessions in one runtime, through ixr_feed_event(), and leaves
 * them all alive: each one runs bench.lua's flow up to its first wait (the
 * redirect request: a coroutine suspended in session:request, with its
 * timeout armed) and keeps its session.vars. The present events are the
 * ones of the generated file (realistic user data, about 600 bytes of JSON
 * each, which the waiting flow keeps alive as its `event` argument), with a
 * fresh interactionid, userdata.CustomerId and userdata.EmailAddress for
 * each session (short strings, which Lua interns: taken as they are from the
 * 1000 templates they would be shared 1000-way, unlike real traffic). With --minimal the events carry
 * only interactionid, media, queue and strategy: the cost of a session
 * itself, without the data the strategy holds on to.
 *
 * RSS (VmRSS of /proc/self/status) is read after ixr_new() and after the N
 * sessions; the Lua heap is ixr_get_stats()'s lua_bytes, as it stands (it
 * includes garbage the incremental collector has not reclaimed yet, as the
 * RSS does).
 *
 * It also reports the collector's cycles while the sessions were started
 * and the longest pause among them (the atomic step of the last cycle, as
 * a rule): what a loop with that many waiting flows stalls for, once per
 * cycle. The last cycle ended before all N were alive, so it is a lower
 * bound for N.
 *
 * One line:
 *   bench=mem sessions=N rss_mb=... rss_bytes_per_session=...
 *     lua_mb=... lua_bytes_per_session=... seconds=... sessions_per_s=...
 *     gc_cycles=... gc_pause_max_ms=...
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* 10 million live sessions already take tens of GB. */
#define MAX_SESSIONS 10000000

static void on_output(void *ud, const ixr_output *out) {
  (void)out;
  ++*(uint64_t *)ud;
}

static void on_log(void *ud, ixr_log_level level, const char *msg) {
  (void)ud;
  if (level <= IXR_LOG_WARN) fprintf(stderr, "mem: %s\n", msg);
}

int main(int argc, char **argv) {
  const char *handlers = "bench/handlers", *path = NULL;
  long long n = -1;
  int minimal = 0;
  bool ok = true;
  for (int i = 1; i < argc && ok; i++) {
    uint64_t x;
    if (strcmp(argv[i], "--handlers") == 0 && i + 1 < argc) handlers = argv[++i];
    else if (strcmp(argv[i], "--minimal") == 0) minimal = 1;
    else if (n < 0 && argv[i][0] != '-') {
      if ((ok = bench_parse_count("mem: N", argv[i], 1, MAX_SESSIONS, &x))) n = (long long)x;
    } else if (path == NULL && argv[i][0] != '-') path = argv[i];
    else ok = false;
  }
  if (!ok || n <= 0 || path == NULL) {
    fprintf(stderr, "usage: mem [--handlers DIR] [--minimal] N EVENTS.ndjson (N 1..%d)\n",
            MAX_SESSIONS);
    return 2;
  }

  /* Templates: the first 1000 present events of the file. */
  bench_events evs;
  bench_load_events(path, 20000, &evs);
  enum { MAXT = 1000 };
  const bench_event *tmpl[MAXT];
  int ntmpl = 0;
  for (size_t i = 0; i < evs.n && ntmpl < MAXT; i++)
    if (strcmp(evs.ev[i].name, "interaction.present") == 0) tmpl[ntmpl++] = &evs.ev[i];
  if (ntmpl == 0) {
    fprintf(stderr, "mem: no interaction.present in %s\n", path);
    return 1;
  }
  size_t maxf = 0;
  for (int t = 0; t < ntmpl; t++)
    if (tmpl[t]->nfields > maxf) maxf = tmpl[t]->nfields;
  ixr_field *f = calloc(maxf + 4, sizeof(*f));

  uint64_t lines = 0;
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = handlers;
  o.on_output = on_output;
  o.output_ud = &lines;
  o.on_log = on_log;
  o.log_level = IXR_LOG_WARN;
  ixr_runtime *rt;
  int rc = ixr_new(&rt, &o);
  if (rc != 0) {
    fprintf(stderr, "mem: ixr_new: %s\n", ixr_strerror(rc));
    return 1;
  }
  ixr_stats st0, st1;
  ixr_get_stats(rt, &st0);
  long rss0 = bench_rss_kb();

  char iid[32], cid[32], email[64];
  uint64_t t0 = bench_now_ns();
  for (long long k = 0; k < n; k++) {
    const bench_event *e = tmpl[k % ntmpl];
    size_t nf;
    snprintf(iid, sizeof(iid), "M%015lld", k);
    if (minimal) {
      memset(f, 0, 4 * sizeof(*f));
      f[0] = (ixr_field){.key = "interactionid", .type = IXR_V_STRING, .str = iid};
      f[1] = (ixr_field){.key = "media", .type = IXR_V_STRING, .str = "chat"};
      f[2] = (ixr_field){.key = "queue", .type = IXR_V_STRING, .str = "chat_inbound"};
      f[3] = (ixr_field){.key = "strategy", .type = IXR_V_STRING, .str = "bench"};
      nf = 4;
    } else {
      memcpy(f, e->fields, e->nfields * sizeof(*f));
      nf = e->nfields;
      /* data.interactionid, and the per-customer values of data.userdata
       * (CustomerId, EmailAddress): unique to each session, as in real
       * traffic, where the templates would have Lua intern them once and
       * share them among N / 1000 sessions. The userdata fields gen takes
       * from small vocabularies (names, Language, Segment, Subject, ...)
       * stay shared, as real traffic shares them. */
      int depth = 0, in_ud = 0;
      for (size_t j = 0; j < nf; j++) {
        ixr_field *x = &f[j];
        if (x->type == IXR_V_END) {
          if (--depth == 0) in_ud = 0;
          continue;
        }
        if (depth == 0 && x->key && strcmp(x->key, "interactionid") == 0) {
          x->str = iid;
          x->len = 0;
        } else if (depth == 1 && in_ud && x->type == IXR_V_STRING && x->key) {
          if (strcmp(x->key, "CustomerId") == 0) {
            snprintf(cid, sizeof(cid), "C%08lld", 10000000 + k);
            x->str = cid;
            x->len = 0;
          } else if (strcmp(x->key, "EmailAddress") == 0) {
            snprintf(email, sizeof(email), "customer%lld@example.com", k + 1);
            x->str = email;
            x->len = 0;
          }
        }
        if (x->type == IXR_V_OBJECT || x->type == IXR_V_ARRAY) {
          if (depth == 0 && x->type == IXR_V_OBJECT && x->key && strcmp(x->key, "userdata") == 0)
            in_ud = 1;
          depth++;
        }
      }
    }
    if (ixr_feed_event(rt, "interaction.present", f, nf) != 0) {
      fprintf(stderr, "mem: ixr_feed_event failed at %lld\n", k);
      return 1;
    }
  }
  uint64_t t1 = bench_now_ns();
  ixr_get_stats(rt, &st1);
  long rss1 = bench_rss_kb();
  uint64_t live = st1.sessions_active + st1.sessions_suspended;
  if (live != (uint64_t)n)
    fprintf(stderr, "mem: %llu sessions alive, expected %lld\n", (unsigned long long)live, n);
  double secs = (double)(t1 - t0) / 1e9;
  double rss_b = (double)(rss1 - rss0) * 1024.0, lua_b = (double)st1.lua_bytes - (double)st0.lua_bytes;
  printf("bench=mem%s sessions=%lld live=%llu rss_mb=%.1f rss_total_mb=%.1f "
         "rss_bytes_per_session=%.0f lua_mb=%.1f lua_bytes_per_session=%.0f "
         "seconds=%.3f sessions_per_s=%.0f lines_out=%llu gc_cycles=%llu "
         "gc_pause_max_ms=%.2f\n",
         minimal ? "_minimal" : "", n, (unsigned long long)live, rss_b / 1048576.0,
         rss1 / 1024.0, rss_b / (double)n, lua_b / 1048576.0, lua_b / (double)n, secs,
         (double)n / secs, (unsigned long long)lines,
         (unsigned long long)(st1.gc_cycles - st0.gc_cycles), (double)st1.gc_pause_max_ns / 1e6);
  fflush(stdout);
  ixr_close(rt);
  free(f);
  bench_free_events(&evs);
  return live == (uint64_t)n ? 0 : 1;
}
