/* test_framer.c: NDJSON line framing (framer.c), driven directly. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "internal.h"

/* One line as the callback saw it. */
typedef struct rec {
  char *line; /* a copy, NUL-terminated for messages; NULL if cb got NULL */
  size_t len;
  uint64_t lineno;
  ixr__line_status status;
} rec;

typedef struct recorder {
  rec *recs;
  size_t n, cap;
  bool oom; /* a copy failed: checked after the push returns */
} recorder;

/* The framer callback: records only. Asserting here would longjmp out of the
 * framer in the middle of its work. */
static void record(void *ud, const char *line, size_t len, uint64_t lineno,
                   ixr__line_status status) {
  recorder *r = ud;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    rec *bigger = realloc(r->recs, cap * sizeof(*bigger));
    if (bigger == NULL) {
      r->oom = true;
      return;
    }
    r->recs = bigger;
    r->cap = cap;
  }
  rec *x = &r->recs[r->n];
  x->line = NULL;
  if (line != NULL) {
    x->line = malloc(len + 1);
    if (x->line == NULL) {
      r->oom = true;
      return;
    }
    memcpy(x->line, line, len);
    x->line[len] = '\0';
  }
  x->len = len;
  x->lineno = lineno;
  x->status = status;
  r->n++;
}

static void recorder_free(recorder *r) {
  for (size_t i = 0; i < r->n; i++) free(r->recs[i].line);
  free(r->recs);
  memset(r, 0, sizeof(*r));
}

static void push(ixr__framer *f, recorder *r, const char *p, size_t n) {
  assert_int_equal(ixr__framer_push(f, p, n, record, r), 0);
  assert_false(r->oom);
}

static void push_str(ixr__framer *f, recorder *r, const char *s) {
  push(f, r, s, strlen(s));
}

/* Feeds the bytes one read of one byte at a time. */
static void push_bytewise(ixr__framer *f, recorder *r, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) push(f, r, p + i, 1);
}

static void expect_ok(const recorder *r, size_t i, const char *line, size_t len,
                      uint64_t lineno) {
  assert_true(i < r->n);
  const rec *x = &r->recs[i];
  assert_int_equal(x->status, IXR__LINE_OK);
  assert_int_equal(x->lineno, lineno);
  assert_int_equal(x->len, len);
  if (len > 0) {
    assert_non_null(x->line);
    assert_memory_equal(x->line, line, len);
  }
}

static void expect_ok_str(const recorder *r, size_t i, const char *line,
                          uint64_t lineno) {
  expect_ok(r, i, line, strlen(line), lineno);
}

static void expect_too_long(const recorder *r, size_t i, uint64_t lineno) {
  assert_true(i < r->n);
  assert_int_equal(r->recs[i].status, IXR__LINE_TOO_LONG);
  assert_int_equal(r->recs[i].lineno, lineno);
}

static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* ---- the tests -------------------------------------------------------- */

static void test_byte_by_byte(void **state) {
  (void)state;
  ixr__framer f;
  recorder r = {0};
  ixr__framer_init(&f, 1024);
  const char *in = "{\"name\":\"a\"}\n{\"name\":\"bc\"}\n";
  size_t first = strlen("{\"name\":\"a\"}");
  for (size_t i = 0; i < strlen(in); i++) {
    push(&f, &r, in + i, 1);
    /* Nothing is delivered before its newline arrives. */
    assert_int_equal(r.n, i < first ? 0 : i < strlen(in) - 1 ? 1 : 2);
  }
  assert_int_equal(r.n, 2);
  expect_ok_str(&r, 0, "{\"name\":\"a\"}", 1);
  expect_ok_str(&r, 1, "{\"name\":\"bc\"}", 2);
  ixr__framer_finish(&f, record, &r);
  assert_int_equal(r.n, 2);
  ixr__framer_free(&f);
  recorder_free(&r);
}

static void test_many_lines_one_read(void **state) {
  (void)state;
  ixr__framer f;
  recorder r = {0};
  ixr__framer_init(&f, 1024);
  push_str(&f, &r, "one\ntwo\nthree\n{\"x\":[1,2]}\npart");
  assert_int_equal(r.n, 4);
  expect_ok_str(&r, 0, "one", 1);
  expect_ok_str(&r, 1, "two", 2);
  expect_ok_str(&r, 2, "three", 3);
  expect_ok_str(&r, 3, "{\"x\":[1,2]}", 4);
  /* The partial line completes in the next read, which holds more lines:
   * they go through the buffered path. */
  push_str(&f, &r, "ial\nfive\nsix\n");
  assert_int_equal(r.n, 7);
  expect_ok_str(&r, 4, "partial", 5);
  expect_ok_str(&r, 5, "five", 6);
  expect_ok_str(&r, 6, "six", 7);
  ixr__framer_free(&f);
  recorder_free(&r);
}

static void test_crlf(void **state) {
  (void)state;
  ixr__framer f;
  recorder r = {0};
  ixr__framer_init(&f, 1024);
  push_str(&f, &r, "a\r\nbb\r\n");
  /* The \r and the \n in different reads. */
  push_str(&f, &r, "ccc\r");
  assert_int_equal(r.n, 2);
  push_str(&f, &r, "\n");
  /* Only a \r right before the newline is dropped. */
  push_str(&f, &r, "x\ry\n\r\r\n");
  assert_int_equal(r.n, 5);
  expect_ok_str(&r, 0, "a", 1);
  expect_ok_str(&r, 1, "bb", 2);
  expect_ok_str(&r, 2, "ccc", 3);
  expect_ok_str(&r, 3, "x\ry", 4);
  expect_ok_str(&r, 4, "\r", 5);
  /* Byte by byte, the same. */
  push_bytewise(&f, &r, "dd\r\n\r\n", 6);
  assert_int_equal(r.n, 7);
  expect_ok_str(&r, 5, "dd", 6);
  expect_ok(&r, 6, "", 0, 7);
  ixr__framer_free(&f);
  recorder_free(&r);
}

static void test_empty_lines(void **state) {
  (void)state;
  ixr__framer f;
  recorder r = {0};
  ixr__framer_init(&f, 1024);
  /* Empty lines are delivered as empty; skipping them is the runtime's job,
   * and they still count for line numbers. */
  push_str(&f, &r, "\n\na\n\r\n\n");
  assert_int_equal(r.n, 5);
  expect_ok(&r, 0, "", 0, 1);
  expect_ok(&r, 1, "", 0, 2);
  expect_ok_str(&r, 2, "a", 3);
  expect_ok(&r, 3, "", 0, 4);
  expect_ok(&r, 4, "", 0, 5);
  /* And in the buffered path. */
  push_str(&f, &r, "b");
  push_str(&f, &r, "\n\n\nc\n");
  assert_int_equal(r.n, 9);
  expect_ok_str(&r, 5, "b", 6);
  expect_ok(&r, 6, "", 0, 7);
  expect_ok(&r, 7, "", 0, 8);
  expect_ok_str(&r, 8, "c", 9);
  ixr__framer_finish(&f, record, &r);
  assert_int_equal(r.n, 9);
  ixr__framer_free(&f);
  recorder_free(&r);
}

/* A line of exactly max_line bytes is fine, one more byte is too long, in
 * the in-place path, the buffered path, and with a CRLF ending. */
static void test_max_line_boundary(void **state) {
  (void)state;
  enum { MAX = 8 };
  ixr__framer f;
  recorder r = {0};
  ixr__framer_init(&f, MAX);

  push_str(&f, &r, "12345678\n");        /* 1: in place */
  push_bytewise(&f, &r, "abcdefgh\n", 9); /* 2: buffered */
  push_str(&f, &r, "ABCDEFGH\r\n");      /* 3: CRLF, in place */
  push_bytewise(&f, &r, "hgfedcba\r\n", 10); /* 4: CRLF, buffered */
  push_str(&f, &r, "12345678");          /* 5: \r in its own read */
  push_str(&f, &r, "\r");
  push_str(&f, &r, "\n");
  assert_int_equal(r.n, 5);
  expect_ok_str(&r, 0, "12345678", 1);
  expect_ok_str(&r, 1, "abcdefgh", 2);
  expect_ok_str(&r, 2, "ABCDEFGH", 3);
  expect_ok_str(&r, 3, "hgfedcba", 4);
  expect_ok_str(&r, 4, "12345678", 5);

  push_str(&f, &r, "123456789\n");          /* 6: in place */
  push_bytewise(&f, &r, "abcdefghi\n", 10); /* 7: buffered */
  push_str(&f, &r, "ABCDEFGHI\r\n");        /* 8: CRLF does not help */
  push_bytewise(&f, &r, "ihgfedcba\r\n", 11); /* 9 */
  push_str(&f, &r, "ok\n");                 /* 10 */
  assert_int_equal(r.n, 10);
  expect_too_long(&r, 5, 6);
  expect_too_long(&r, 6, 7);
  expect_too_long(&r, 7, 8);
  expect_too_long(&r, 8, 9);
  expect_ok_str(&r, 9, "ok", 10);
  ixr__framer_free(&f);
  recorder_free(&r);
}

/* An over-long line that arrives in several reads is reported once, its
 * bytes are not kept, and the next line comes through with its number. */
static void test_too_long_over_several_reads(void **state) {
  (void)state;
  enum { MAX = 16 };
  ixr__framer f;
  recorder r = {0};
  ixr__framer_init(&f, MAX);
  push_str(&f, &r, "first\n");
  push_str(&f, &r, "aaaaaaaaaa");      /* 10 bytes: buffered */
  assert_int_equal(r.n, 1);
  push_str(&f, &r, "aaaaaaaaaa");      /* 20: over the limit */
  assert_int_equal(r.n, 2);
  expect_too_long(&r, 1, 2);
  for (int i = 0; i < 50; i++) {
    push_str(&f, &r, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    /* Dropped, not buffered. */
    assert_true(f.buf.len <= MAX + 1);
  }
  push_str(&f, &r, "cc\nsecond\nthi");
  push_str(&f, &r, "rd\n");
  assert_int_equal(r.n, 4);
  expect_too_long(&r, 1, 2);
  expect_ok_str(&r, 2, "second", 3);
  expect_ok_str(&r, 3, "third", 4);

  /* The same, byte by byte, with the newline alone in the next read (the
   * in-place path ends the skipping). */
  char *big = repeat('x', 100);
  push_bytewise(&f, &r, big, 100);
  assert_true(f.buf.len <= MAX + 1);
  assert_int_equal(r.n, 5);
  expect_too_long(&r, 4, 5);
  push_str(&f, &r, "\n");
  push_str(&f, &r, "fifth-after\n");
  assert_int_equal(r.n, 6);
  expect_ok_str(&r, 5, "fifth-after", 6);

  /* An over-long line complete in one read, between two good ones. */
  push_str(&f, &r, "a\n");
  push(&f, &r, big, 100);
  push_str(&f, &r, "\nb\n");
  assert_int_equal(r.n, 9);
  expect_ok_str(&r, 6, "a", 7);
  expect_too_long(&r, 7, 8);
  expect_ok_str(&r, 8, "b", 9);

  /* Two over-long lines in a row, each reported once. */
  push(&f, &r, big, 60);
  push(&f, &r, big, 40);
  push_str(&f, &r, "\n");
  push(&f, &r, big, 30);
  push_str(&f, &r, "\nlast\n");
  assert_int_equal(r.n, 12);
  expect_too_long(&r, 9, 10);
  expect_too_long(&r, 10, 11);
  expect_ok_str(&r, 11, "last", 12);
  ixr__framer_finish(&f, record, &r);
  assert_int_equal(r.n, 12);
  free(big);
  ixr__framer_free(&f);
  recorder_free(&r);
}

static void test_too_long_then_finish(void **state) {
  (void)state;
  enum { MAX = 8 };
  ixr__framer f;
  recorder r = {0};
  ixr__framer_init(&f, MAX);
  push_str(&f, &r, "ok\n");
  push_str(&f, &r, "waytoolongforthis"); /* no newline, ever */
  push_str(&f, &r, "andmore");
  assert_int_equal(r.n, 2);
  expect_too_long(&r, 1, 2);
  ixr__framer_finish(&f, record, &r);
  assert_int_equal(r.n, 2); /* not reported again */
  ixr__framer_finish(&f, record, &r);
  assert_int_equal(r.n, 2);
  ixr__framer_free(&f);
  recorder_free(&r);

  /* max_line + 1 bytes at the end of input: only finish can tell. */
  memset(&r, 0, sizeof(r));
  ixr__framer_init(&f, MAX);
  push_str(&f, &r, "123456789");
  assert_int_equal(r.n, 0);
  ixr__framer_finish(&f, record, &r);
  assert_int_equal(r.n, 1);
  expect_too_long(&r, 0, 1);
  ixr__framer_free(&f);
  recorder_free(&r);

  /* Byte by byte. */
  memset(&r, 0, sizeof(r));
  ixr__framer_init(&f, MAX);
  push_bytewise(&f, &r, "0123456789abcdef", 16);
  assert_int_equal(r.n, 1);
  expect_too_long(&r, 0, 1);
  ixr__framer_finish(&f, record, &r);
  assert_int_equal(r.n, 1);
  ixr__framer_free(&f);
  recorder_free(&r);
}

static void test_finish_delivers_last_line(void **state) {
  (void)state;
  ixr__framer f;
  recorder r = {0};
  ixr__framer_init(&f, 64);
  ixr__framer_finish(&f, record, &r); /* nothing buffered: nothing */
  assert_int_equal(r.n, 0);
  push_str(&f, &r, "a\n{\"name\":");
  push_str(&f, &r, "\"end\"}");
  assert_int_equal(r.n, 1);
  ixr__framer_finish(&f, record, &r);
  assert_int_equal(r.n, 2);
  expect_ok_str(&r, 0, "a", 1);
  expect_ok_str(&r, 1, "{\"name\":\"end\"}", 2);
  ixr__framer_finish(&f, record, &r); /* delivered once */
  assert_int_equal(r.n, 2);
  /* A last line with a trailing \r. */
  push_str(&f, &r, "z\r");
  ixr__framer_finish(&f, record, &r);
  assert_int_equal(r.n, 3);
  expect_ok_str(&r, 2, "z", 3);
  ixr__framer_free(&f);
  recorder_free(&r);
}

/* Line numbers count every line: good, empty, CRLF and over-long alike. */
static void test_line_numbers_across_everything(void **state) {
  (void)state;
  enum { MAX = 10 };
  ixr__framer f;
  recorder r = {0};
  ixr__framer_init(&f, MAX);
  char *big = repeat('q', 25);
  push_str(&f, &r, "l1\n\nl3\r\n");       /* 1, 2 (empty), 3 */
  push(&f, &r, big, 25);                   /* 4: over-long, open */
  push(&f, &r, big, 25);
  push_str(&f, &r, "\nl5");                /* 4 ends; 5 is partial */
  push_bytewise(&f, &r, "5\n\r\nl7\n", 7); /* 5, 6 (empty), 7 */
  push(&f, &r, big, 11);                   /* 8: max_line + 1 */
  push_str(&f, &r, "\n");
  push(&f, &r, big, 10);                   /* 9: exactly max_line */
  push_str(&f, &r, "\nl10");
  ixr__framer_finish(&f, record, &r);      /* 10 */
  assert_int_equal(r.n, 10);
  expect_ok_str(&r, 0, "l1", 1);
  expect_ok(&r, 1, "", 0, 2);
  expect_ok_str(&r, 2, "l3", 3);
  expect_too_long(&r, 3, 4);
  expect_ok_str(&r, 4, "l55", 5);
  expect_ok(&r, 5, "", 0, 6);
  expect_ok_str(&r, 6, "l7", 7);
  expect_too_long(&r, 7, 8);
  expect_ok(&r, 8, big, 10, 9);
  expect_ok_str(&r, 9, "l10", 10);
  for (size_t i = 0; i < r.n; i++) assert_int_equal(r.recs[i].lineno, i + 1);
  free(big);
  ixr__framer_free(&f);
  recorder_free(&r);
}

/* The framer splits bytes; whether they are UTF-8 (or JSON) is the
 * decoder's business. NUL bytes pass too. */
static void test_invalid_utf8_passes_through(void **state) {
  (void)state;
  static const char bad[] = "{\"s\":\"\xff\xfe\xc0\x80\xed\xa0\x80\x00\xc3\"}";
  size_t blen = sizeof(bad) - 1;
  ixr__framer f;
  recorder r = {0};
  ixr__framer_init(&f, 1024);
  push(&f, &r, bad, blen);
  push_str(&f, &r, "\n");
  push_bytewise(&f, &r, bad, blen);
  push_str(&f, &r, "\n");
  char both[2 * sizeof(bad)];
  memcpy(both, bad, blen);
  both[blen] = '\n';
  memcpy(both + blen + 1, bad, blen);
  push(&f, &r, both, 2 * blen + 1);
  ixr__framer_finish(&f, record, &r);
  assert_int_equal(r.n, 4);
  for (size_t i = 0; i < 4; i++) expect_ok(&r, i, bad, blen, i + 1);
  ixr__framer_free(&f);
  recorder_free(&r);
}

/* After finish, the framer can take a new stream; free on a framer that
 * holds a partial line releases it (checked by ASan). */
static void test_free_with_partial_line(void **state) {
  (void)state;
  ixr__framer f;
  recorder r = {0};
  ixr__framer_init(&f, 1 << 20);
  char *big = repeat('p', 100000);
  push(&f, &r, big, 100000);
  assert_int_equal(r.n, 0);
  assert_int_equal(f.buf.len, 100000);
  free(big);
  ixr__framer_free(&f);
  ixr__framer_free(&f); /* twice is harmless */
  recorder_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_byte_by_byte),
      cmocka_unit_test(test_many_lines_one_read),
      cmocka_unit_test(test_crlf),
      cmocka_unit_test(test_empty_lines),
      cmocka_unit_test(test_max_line_boundary),
      cmocka_unit_test(test_too_long_over_several_reads),
      cmocka_unit_test(test_too_long_then_finish),
      cmocka_unit_test(test_finish_delivers_last_line),
      cmocka_unit_test(test_line_numbers_across_everything),
      cmocka_unit_test(test_invalid_utf8_passes_through),
      cmocka_unit_test(test_free_with_partial_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
