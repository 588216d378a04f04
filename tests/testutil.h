/* testutil.h: shared helpers of the cmocka tests. */
#ifndef IXR_TESTUTIL_H
#define IXR_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ixr.h"

/* Output lines captured from a runtime. */
typedef struct tcap {
  char **lines;
  size_t n, cap;
  char *log;     /* every log line, newline separated */
  size_t loglen;
} tcap;

void tcap_output(void *ud, const ixr_output *out);
void tcap_logcb(void *ud, ixr_log_level level, const char *msg);
void tcap_clear(tcap *c);
void tcap_free(tcap *c);
/* The index of the first line at or after `from` containing every one of
 * the NULL-terminated fragments, or -1. */
int tcap_find(const tcap *c, size_t from, ...);
void tcap_dump(const tcap *c);

/* A temporary handlers directory. */
char *tdir_new(void);
void tdir_write(const char *dir, const char *name, const char *content);
void tdir_remove(char *dir);

/* The fixture most tests share: a handlers dir, captured output, and a
 * runtime. A test's own fixture may extend it (tfix first). */
typedef struct tfix {
  char *dir;
  tcap cap;
  ixr_runtime *rt;
} tfix;

/* cmocka teardown for a malloc'd fixture that starts with a tfix: closes
 * the runtime, frees the output and removes the directory. */
int tfix_teardown(void **state);

/* Options for a runtime of `handlers` on its own loop with the manual
 * clock, output and log lines into cap (set more fields after). */
void topts(ixr_options *o, const char *handlers, tcap *cap);

/* A runtime on its own loop with the manual clock, output into cap. */
ixr_runtime *trt_new(const char *handlers, tcap *cap);
/* Feeds one line (a newline is added). */
void tfeed(ixr_runtime *rt, const char *line);

#endif
