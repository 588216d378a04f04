/*
 * fuzzutil.h: what the fuzz targets share: the libFuzzer entry points, a
 * checker for output lines, and a runtime set up for fuzzing.
 *
 * A broken invariant is reported with fz_fail(), which prints the reason
 * and aborts: libFuzzer (and the replay driver) then saves or names the
 * input.
 */
#ifndef IXR_FUZZUTIL_H
#define IXR_FUZZUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ixr.h"

/* The libFuzzer interface (also driven by replay.c without libFuzzer). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* True when the program was given input files rather than corpus
 * directories: it replays inputs, and each must run on a fresh runtime so
 * that its result does not depend on the inputs before it. */
bool fz_replaying(int argc, char **argv);

/* $IXR_FUZZ_PRINT set: print every input line and output line to stderr,
 * to see what an input does. */
extern bool fz_print;
void fz_print_input(const char *p, size_t n);

/* Strict UTF-8 (RFC 3629), written independently of ixr's own check. */
bool fz_utf8_valid(const char *s, size_t len);

/* What fz_check_line found in an output line: the top-level string
 * members that the targets look at (decoded, NUL-terminated; NULL when
 * absent) and the top-level "ok" boolean (-1 when absent). */
typedef struct fz_line {
  char *type, *session, *state, *reason, *interactionid, *requestid, *error,
      *action, *name;
  size_t interactionid_len;
  int ok;
} fz_line;

/*
 * Checks one output line: one JSON object, strictly valid UTF-8, no
 * newline or NUL byte, nothing around the object, a "type" that agrees
 * with out->type, and structured fields that agree with the JSON. Aborts
 * if not. Fills `line` (free it with fz_line_free) when it is not NULL.
 */
void fz_check_output(const ixr_output *out, fz_line *line);
void fz_line_free(fz_line *line);

/* A runtime on its own loop with the manual clock, the fuzz strategies
 * (tests/fuzz/handlers, or $IXR_FUZZ_HANDLERS) and a log that checks and
 * drops every record. Aborts if it cannot be made. */
ixr_runtime *fz_runtime_new(ixr_output_cb on_output, void *ud, size_t max_line,
                            bool trace);

/* Checks what must hold between two events: an empty Lua stack, no
 * dispatch in progress, no session waiting to be freed. */
void fz_check_idle(ixr_runtime *rt);

#endif
