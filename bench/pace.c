/*
 * pace.c: the runtime's own share of latency, without the network.
 *
 *   pace [--handlers DIR] [--no-idle] EVENTS.ndjson RATE [RATE...]
 *
 * Feeds the NDJSON lines one at a time through ixr_feed() (decode, dispatch,
 * encode: everything but the socket) on a simulated clock: line i arrives at
 * i / RATE seconds. Processing a line advances the clock by the thread CPU
 * time it took, so other processes on a shared machine barely move the
 * figures. While the simulated server is idle before the next arrival it
 * does what the event loop does then: slices of collector work (gc.c), each
 * of which also costs its CPU time and can delay the next line. Turnaround
 * of a line = when it is done - when it arrived; the percentiles are over
 * the lines that cause output (`timed`), as bench/sock times them.
 *
 * With several rates, each gets a fresh runtime. One line per rate:
 *   bench=pace rate=R lines=N timed=T service_us_mean=.. util=.. p50_us=.. p99_us=..
 *   p999_us=.. max_us=.. idle_slices=.. gc_cycles=..
 *
 * --shards N: N runtimes instead of one, each line going to the runtime its
 * data.interactionid hashes to (what several Lua states per process, the
 * sessions sharded by interactionid, would do); their collectors' idle
 * slices take turns. Session and request ids run on one sequence across
 * them (pace_ids.c), as the generated traffic expects. gc_pause_max_us is
 * the longest collector step of any of them.
 *
 * RATE may be given as a fraction of the measured saturation throughput:
 * "0.5x" runs a saturation pass first (every line back to back) and uses
 * half of its lines per second.
 *
 * It leaves the socket out on purpose: bench/sock's latency includes system
 * calls and the other process's scheduling; this isolates what ixr itself
 * (its collector pacing above all) adds.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "pace_ids.h"

/* The idle-time collector slice of the event loop (gc.c). Weak, so that the
 * program also links against a runtime that has none (for comparisons). */
struct ixr_runtime;
extern bool ixr__gc_idle(struct ixr_runtime *rt) __attribute__((weak));
extern bool ixr__gc_idle_wanted(const struct ixr_runtime *rt) __attribute__((weak));

static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_output(void *ud, const ixr_output *out) {
  (void)out;
  ++*(uint64_t *)ud;
}

static void on_log(void *ud, ixr_log_level level, const char *msg) {
  (void)ud;
  if (level <= IXR_LOG_WARN) fprintf(stderr, "pace: %s\n", msg);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}


/* Reading the thread CPU clock is a system call (no vDSO for it): 1.3 us
 * on this VM, as much as a fifth of a line's work. Every measured
 * duration includes one read's worth of it; this is that cost (the median
 * of back-to-back reads), subtracted from each. */
static uint64_t clock_cost;

static void calibrate(void) {
  enum { N = 2001 };
  static uint64_t d[N];
  for (int i = 0; i < N; i++) {
    uint64_t t0 = cpu_ns();
    d[i] = cpu_ns() - t0;
  }
  qsort(d, N, sizeof(d[0]), cmp_u64);
  clock_cost = d[N / 2];
}

/* CPU time since t0, less the clock's own cost. */
static uint64_t cpu_since(uint64_t t0) {
  uint64_t d = cpu_ns() - t0;
  return d > clock_cost ? d - clock_cost : 0;
}

typedef struct {
  const char *data;
  size_t *off; /* line i is data[off[i], off[i+1]) */
  size_t n;
} lines;

static ixr_runtime *open_rt(const char *handlers, uint64_t *nout) {
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = handlers;
  o.on_output = on_output;
  o.output_ud = nout;
  o.on_log = on_log;
  o.log_level = IXR_LOG_WARN;
  ixr_runtime *rt;
  int rc = ixr_new(&rt, &o);
  if (rc != 0) {
    fprintf(stderr, "pace: ixr_new: %s\n", ixr_strerror(rc));
    exit(1);
  }
  return rt;
}

/* Every line back to back: lines per second of CPU time. */
static double saturation(const lines *ls, const char *handlers) {
  uint64_t nout = 0;
  ixr_runtime *rt = open_rt(handlers, &nout);
  uint64_t t0 = cpu_ns();
  for (size_t i = 0; i < ls->n; i++)
    ixr_feed(rt, ls->data + ls->off[i], ls->off[i + 1] - ls->off[i]);
  uint64_t t1 = cpu_ns();
  ixr_close(rt);
  return (double)ls->n / ((double)(t1 - t0) / 1e9);
}

/* The shard of a line: its data.interactionid (found by a plain scan for
 * the member, as a router in front of the runtimes would), hashed. Lines
 * without one go to shard 0. */
static int shard_of(const char *line, size_t len, int nshards) {
  if (nshards == 1) return 0;
  static const char key[] = "\"interactionid\":\"";
  const char *end = line + len, *p = line;
  while ((size_t)(end - p) >= sizeof(key) - 1) {
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (q == NULL || (size_t)(end - q) < sizeof(key) - 1) break;
    if (memcmp(q, key, sizeof(key) - 1) == 0) {
      uint32_t h = 2166136261u;
      for (q += sizeof(key) - 1; q < end && *q != '"'; q++)
        h = (h ^ (unsigned char)*q) * 16777619u;
      return (int)(h % (uint32_t)nshards);
    }
    p = q + 1;
  }
  return 0;
}

#define MAX_SHARDS 64

static void run(const lines *ls, const char *handlers, double rate, bool idle,
                int nshards) {
  uint64_t nout = 0;
  ixr_runtime *rts[MAX_SHARDS];
  for (int k = 0; k < nshards; k++) rts[k] = open_rt(handlers, &nout);
  uint64_t *lat = malloc(ls->n * sizeof(*lat));
  if (lat == NULL) exit(1);
  double step = 1e9 / rate;
  uint64_t clock = 0, busy = 0, slices = 0;
  size_t ntimed = 0;
  int next_idle = 0;
  pace_ids ids = {0, 0};
  for (size_t i = 0; i < ls->n; i++) {
    uint64_t arrive = (uint64_t)((double)i * step);
    /* Idle until the line arrives: the loop's collector slices, one
     * runtime after the other (each has its own idle handle). */
    while (idle && clock < arrive && ixr__gc_idle != NULL) {
      int k = 0, tried = 0;
      for (; tried < nshards; tried++) {
        k = (next_idle + tried) % nshards;
        if (ixr__gc_idle_wanted((struct ixr_runtime *)rts[k])) break;
      }
      if (tried == nshards) break;
      next_idle = (k + 1) % nshards;
      uint64_t t0 = cpu_ns();
      ixr__gc_idle((struct ixr_runtime *)rts[k]);
      uint64_t d = cpu_since(t0);
      clock += d;
      busy += d;
      slices++;
    }
    if (clock < arrive) clock = arrive;
    const char *line = ls->data + ls->off[i];
    size_t len = ls->off[i + 1] - ls->off[i];
    ixr_runtime *rt = rts[shard_of(line, len, nshards)];
    if (nshards > 1) pace_ids_enter((struct ixr_runtime *)rt, &ids);
    uint64_t t0 = cpu_ns(), out_before = nout;
    ixr_feed(rt, line, len);
    uint64_t d = cpu_since(t0);
    if (nshards > 1) pace_ids_leave((struct ixr_runtime *)rt, &ids);
    clock += d;
    busy += d;
    /* Timed as bench/sock times them: only lines that cause output. */
    if (nout > out_before) lat[ntimed++] = clock - arrive;
  }
  uint64_t cycles = 0, steps = 0, lua = 0, pause_max = 0;
  for (int k = 0; k < nshards; k++) {
    ixr_stats st;
    ixr_get_stats(rts[k], &st);
    cycles += st.gc_cycles;
    steps += st.gc_steps;
    lua += st.lua_bytes;
    if (st.gc_pause_max_ns > pause_max) pause_max = st.gc_pause_max_ns;
  }
  qsort(lat, ntimed, sizeof(*lat), cmp_u64);
#define PCT(p) (ntimed ? (double)lat[(size_t)((double)(ntimed - 1) * (p))] / 1000.0 : 0.0)
  printf("bench=pace rate=%.0f lines=%zu timed=%zu idle=%s shards=%d service_us_mean=%.2f "
         "util=%.2f p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f "
         "idle_slices=%llu gc_cycles=%llu gc_steps=%llu gc_pause_max_us=%.0f "
         "lua_mb=%.1f lines_out=%llu clock_cost_ns=%llu\n",
         rate, ls->n, ntimed, idle && ixr__gc_idle != NULL ? "yes" : "no", nshards,
         (double)busy / 1000.0 / (double)ls->n, (double)busy / (double)clock,
         PCT(0.5), PCT(0.9), PCT(0.99), PCT(0.999), PCT(1.0),
         (unsigned long long)slices, (unsigned long long)cycles,
         (unsigned long long)steps, (double)pause_max / 1000.0,
         (double)lua / 1048576.0, (unsigned long long)nout,
         (unsigned long long)clock_cost);
#undef PCT
  fflush(stdout);
  free(lat);
  for (int k = 0; k < nshards; k++) ixr_close(rts[k]);
}

int main(int argc, char **argv) {
  const char *handlers = "bench/handlers", *path = NULL;
  bool idle = true;
  int first_rate = 0, nshards = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--handlers") == 0 && i + 1 < argc) handlers = argv[++i];
    else if (strcmp(argv[i], "--no-idle") == 0) idle = false;
    else if (strcmp(argv[i], "--shards") == 0 && i + 1 < argc) {
      nshards = atoi(argv[++i]);
      if (nshards < 1 || nshards > MAX_SHARDS) path = NULL, first_rate = 0, i = argc;
    }
    else if (path == NULL) path = argv[i];
    else {
      first_rate = i;
      break;
    }
  }
  if (path == NULL || first_rate == 0) {
    fprintf(stderr, "usage: pace [--handlers DIR] [--no-idle] [--shards N] EVENTS.ndjson "
                    "RATE|FRACTIONx...\n");
    return 2;
  }
  size_t len;
  char *data = bench_read_file(path, &len);
  lines ls = {data, NULL, 0};
  size_t cap = 1024;
  ls.off = malloc(cap * sizeof(*ls.off));
  ls.off[0] = 0;
  for (size_t p = 0; p < len;) {
    char *nl = memchr(data + p, '\n', len - p);
    size_t end = nl ? (size_t)(nl - data) + 1 : len;
    if (ls.n + 2 > cap) ls.off = realloc(ls.off, (cap *= 2) * sizeof(*ls.off));
    ls.off[++ls.n] = end;
    p = end;
  }
  calibrate();
  double sat = 0;
  for (int i = first_rate; i < argc; i++) {
    double rate = atof(argv[i]);
    size_t l = strlen(argv[i]);
    if (l > 0 && argv[i][l - 1] == 'x') {
      if (sat == 0) {
        sat = saturation(&ls, handlers);
        printf("bench=pace_saturation lines_per_cpu_s=%.0f\n", sat);
      }
      rate *= sat;
    }
    if (rate <= 0) {
      fprintf(stderr, "pace: bad rate %s\n", argv[i]);
      return 2;
    }
    run(&ls, handlers, rate, idle, nshards);
  }
  free(ls.off);
  free(data);
  return 0;
}
