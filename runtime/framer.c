/*
 * framer.c: splits a byte stream into lines. Reads may end anywhere; a line
 * may span many reads and a read may hold many lines. A line longer than the
 * maximum is reported once and its bytes are dropped up to its newline, so
 * one oversized line never costs more than max_line bytes of memory.
 */
#include <string.h>

#include "internal.h"

void ixr__framer_init(ixr__framer *f, size_t max_line) {
  memset(f, 0, sizeof(*f));
  f->max_line = max_line;
}

void ixr__framer_free(ixr__framer *f) { ixr__buf_free(&f->buf); }

static void deliver(ixr__framer *f, const char *line, size_t len,
                    ixr__line_cb cb, void *ud) {
  f->lineno++;
  if (len > 0 && line[len - 1] == '\r') len--; /* tolerate CRLF */
  if (len > f->max_line) {
    cb(ud, NULL, len, f->lineno, IXR__LINE_TOO_LONG);
    return;
  }
  cb(ud, line, len, f->lineno, IXR__LINE_OK);
}

int ixr__framer_push(ixr__framer *f, const char *p, size_t n, ixr__line_cb cb,
                     void *ud) {
  /* Fast path: nothing buffered, so whole lines are handed out in place. */
  while (n > 0 && f->buf.len == 0) {
    const char *nl = memchr(p, '\n', n);
    if (nl == NULL) break;
    size_t len = (size_t)(nl - p);
    if (f->skipping) {
      f->skipping = false; /* the end of the over-long line */
    } else {
      deliver(f, p, len, cb, ud);
    }
    p = nl + 1;
    n -= len + 1;
  }
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) : n;
    if (f->skipping) {
      if (nl) f->skipping = false;
    } else if (f->buf.len + take > f->max_line + 1) {
      /* +1 leaves room for a '\r' that is not part of the line. */
      f->lineno++;
      cb(ud, NULL, f->buf.len + take, f->lineno, IXR__LINE_TOO_LONG);
      f->buf.len = 0;
      f->skipping = (nl == NULL);
    } else {
      int rc = ixr__buf_append(&f->buf, p, take);
      if (rc != 0) return rc;
      if (nl) {
        deliver(f, f->buf.data, f->buf.len, cb, ud);
        f->buf.len = 0;
      }
    }
    if (nl == NULL) break;
    p = nl + 1;
    n -= take + 1;
  }
  return 0;
}

void ixr__framer_finish(ixr__framer *f, ixr__line_cb cb, void *ud) {
  if (f->skipping) {
    f->skipping = false;
    return;
  }
  if (f->buf.len > 0) {
    size_t len = f->buf.len;
    f->buf.len = 0;
    deliver(f, f->buf.data, len, cb, ud);
  }
}
