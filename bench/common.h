/*
 * common.h: what the benchmark programs share: a clock, RSS, medians, and
 * the generated NDJSON loaded ahead of time as structured events.
 */
#ifndef IXR_BENCH_COMMON_H
#define IXR_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "ixr.h"

/* One event of the file, decoded before any timing starts: its name and
 * its data object as the flat field list of ixr_feed_event(). */
typedef struct bench_event {
  const char *name;
  const ixr_field *fields;
  size_t nfields;
  const char *iid; /* data.interactionid, or NULL */
} bench_event;

typedef struct bench_events {
  bench_event *ev;
  size_t n;
  size_t skipped; /* lines that are not a JSON object (the bad_json lines) */
  size_t bytes;   /* bytes of the lines loaded */
  void *arena;    /* private */
} bench_events;

/* Loads up to `limit` lines (0: all) of an NDJSON file. Exits on I/O errors. */
void bench_load_events(const char *path, size_t limit, bench_events *out);
void bench_free_events(bench_events *e);

/* Reads a whole file; exits on errors. *len gets its size. */
char *bench_read_file(const char *path, size_t *len);

uint64_t bench_now_ns(void);
/* Resident set size of this process in KiB, from /proc/self/status. */
long bench_rss_kb(void);
/* Median of n values (sorts v). */
double bench_median(double *v, int n);

#endif
