/*
 * common.h: what the benchmark programs share: a clock, RSS, medians, and
 * the generated NDJSON loaded ahead of time as structured events.
 */
#ifndef IXR_BENCH_COMMON_H
#define IXR_BENCH_COMMON_H

#include <stdbool.h>
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
  size_t skipped; /* lines that do not decode (the bad_json lines among them) */
  size_t bytes;   /* bytes of the lines loaded */
  void *arena;    /* private */
} bench_events;

/* Loads up to `limit` lines (0: all) of an NDJSON file. Lines that do not
 * decode (not JSON, not an object with a string "name", or nested deeper
 * than 64 levels, as ixr's decoder refuses them) are counted in `skipped`.
 * Exits (status 1, with a message) on I/O errors and when no line decodes. */
void bench_load_events(const char *path, size_t limit, bench_events *out);
void bench_free_events(bench_events *e);

/* Reads a whole file; exits on errors. *len gets its size. */
char *bench_read_file(const char *path, size_t *len);

uint64_t bench_now_ns(void);
/* Resident set size of this process in KiB, from /proc/self/status. */
long bench_rss_kb(void);

/* Median of n values (sorts v): the mean of the two middle ones when n is
 * even; 0 when n <= 0. */
double bench_median(double *v, int n);

/* Parses the value s of option opt (the name used in the message, e.g.
 * "--runs") as a count: decimal digits only (no sign, blanks, exponent or
 * base prefix), no overflow, min <= value <= max. On failure prints
 * "OPT: bad value 'S': want a whole number from MIN to MAX" to stderr and
 * returns false, leaving *out alone. */
bool bench_parse_count(const char *opt, const char *s, uint64_t min, uint64_t max,
                       uint64_t *out);

#endif
