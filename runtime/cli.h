/*
 * cli.h: the parts of the ixr program that are not the library: scenario
 * tests (ixr test), recording, tracing and replay (ixr run --record/--trace,
 * ixr replay), and the small JSON helpers they share. Compiled into the ixr
 * program only; everything here talks to the runtime through ixr.h alone.
 */
#ifndef IXR_CLI_H
#define IXR_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <yajl/yajl_gen.h>

#include "ixr.h"

/* ---- JSON values (cli_json.c) ---------------------------------------- */

/*
 * A parsed JSON value that keeps what a generic tree usually loses and these
 * tools need: string lengths (strings may hold NUL bytes), the exact text of
 * numbers, and the order of object keys.
 */
typedef enum { CJ_NULL, CJ_BOOL, CJ_NUMBER, CJ_STRING, CJ_ARRAY, CJ_OBJECT } cj_type;

typedef struct cj {
  cj_type type;
  bool b;
  char *s;      /* CJ_STRING: the bytes (NUL-terminated too); CJ_NUMBER: its text */
  size_t len;
  size_t n;     /* CJ_ARRAY, CJ_OBJECT: number of members */
  size_t cap;
  struct cj **v;
  char **k;     /* CJ_OBJECT: the keys, NUL-terminated */
  size_t *klen;
} cj;

/* Parses one JSON text. Returns NULL and a readable reason in err. */
cj *cj_parse(const char *text, size_t len, char *err, size_t errlen);
void cj_free(cj *v);

/* The first member `key` of an object, or NULL. */
const cj *cj_get(const cj *obj, const char *key);
bool cj_is_str(const cj *v, const char *s);

/* A JSON number as a non-negative integer; false if it is not one. */
bool cj_uint(const cj *v, unsigned long long *out);

/*
 * Partial match: every member of an expected object must be in the actual
 * object and match (recursively); arrays match element by element and must
 * have the same length; strings, booleans and null match exactly; numbers
 * by value. On a mismatch, `why` gets the path and both values.
 */
bool cj_match(const cj *expect, const cj *actual, char *why, size_t whylen);

/* Valid UTF-8 without NUL bytes: bytes a JSON string carries exactly. */
bool cj_is_text(const char *s, size_t len);

/* A compact generator (no spaces), for one line at a time. */
yajl_gen cj_gen_new(void);
/* Writes v (NULL: nothing). */
void cj_gen(yajl_gen g, const cj *v);
void cj_gen_str(yajl_gen g, const char *s, size_t len);
/* Writes the generated line and a newline to f, and resets g. */
int cj_gen_line(yajl_gen g, FILE *f);

/* Base64 (RFC 4648, with padding). cj_b64_decode returns -1 on bad input;
 * out must hold 3 * (len / 4) bytes. */
char *cj_b64_encode(const unsigned char *p, size_t len);
long cj_b64_decode(const char *s, size_t len, unsigned char *out);

/* The line limits `ixr run --max-line`, a record's header and a scenario's
 * max_line line accept, in bytes. */
#define CLI_MAX_LINE_MIN 64ull
#define CLI_MAX_LINE_MAX (1ull << 30)

/* ---- ixr test (cli_test.c) -------------------------------------------- */

int cli_test(int argc, char **argv);

/* Is `k` a key that makes a scenario line a step (send, expect, ...)? */
bool cli_scenario_key(const char *k);

/* Wall-clock times (the manual clock's start time, cli_json.c): whole ms
 * since 1970-01-01 UTC, within IXR_START_TIME_MAX, or
 * "YYYY-MM-DDTHH:MM:SS[.mmm]Z". cli_parse_time reads either as text;
 * cli_time_value a JSON number or string; cli_format_time writes the JSON
 * value (the quoted text when the year has four digits, else the number). */
bool cli_parse_time(const char *s, int64_t *ms);
bool cli_time_value(const cj *v, int64_t *ms);
void cli_format_time(int64_t ms, char *out, size_t outlen);

/* ---- recording, tracing, replay (cli_record.c) ------------------------ */

typedef struct cli_recorder cli_recorder;

/* Opens FILE for `ixr run --record FILE`: its input hook is
 * cli_recorder_input with the recorder as ud. Returns 0, or -1 after
 * saying why on standard error. cli_recorder_start, once the runtime
 * exists and before any input, writes the header line: the clock, the line
 * limit and the wall-clock time at runtime clock 0 of the run, which a
 * replay needs; from then on it also notes where a reload that was no
 * input line put a new generation in service. */
int cli_recorder_open(cli_recorder **out, const char *path, ixr_clock clock,
                      size_t max_line);
void cli_recorder_start(cli_recorder *r, ixr_runtime *rt);
void cli_recorder_input(void *ud, const char *line, size_t len, uint64_t now_ms);
/* Closes the file; returns 0, or -1 when a write failed (already reported). */
int cli_recorder_close(cli_recorder *r);

/* Trace hook that prints each line on standard error. */
void cli_trace_print(void *ud, const char *line);

/* Log hook for the tools: "ixr: LEVEL: message" on standard error. */
void cli_log_print(void *ud, ixr_log_level level, const char *msg);
int cli_parse_level(const char *s, ixr_log_level *out);

int cli_replay(int argc, char **argv);

/* ixr_check_options with the warnings through a callback of their own
 * (runtime.c): ixr check prints problems and warnings apart. */
int ixr__check(const ixr_options *opt, ixr_report_cb report, ixr_report_cb warn, void *ud);

#endif /* IXR_CLI_H */
