/*
 * test_hostile.c: hostile input through the whole runtime. Each line has a
 * defined outcome (an error line, or a defined acceptance), and after each
 * one a valid line still works and the session started first is intact.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef tfix fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  f->dir = tdir_new();
  tdir_write(f->dir, "default.lua",
             "return { start = function(s, e)\n"
             "  s:action('hello', { n = #(e.data.blob or ''), items = e.data.items and #e.data.items })\n"
             "  s:wait('interaction.never')\n"
             "end }\n");
  f->rt = trt_new(f->dir, &f->cap);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"KEEP\"}}");
  *state = f;
  return 0;
}

#define teardown tfix_teardown

/* Feeds raw bytes (a newline is added), expects one line with every
 * fragment, then checks a valid line still works and KEEP is alive. */
static void outcome(fixture *f, const char *bytes, size_t len, const char *frag1,
                    const char *frag2) {
  size_t mark = f->cap.n;
  assert_int_equal(ixr_feed(f->rt, bytes, len), 0);
  assert_int_equal(ixr_feed(f->rt, "\n", 1), 0);
  int i = tcap_find(&f->cap, mark, frag1, frag2 ? frag2 : frag1, NULL);
  if (i < 0) {
    fprintf(stderr, "input: %.200s\nexpected a line with %s %s\n", bytes, frag1, frag2 ? frag2 : "");
    tcap_dump(&f->cap);
    fail();
  }
  static int probe = 0;
  char line[200];
  snprintf(line, sizeof(line),
           "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"OK%d\"}}", ++probe);
  mark = f->cap.n;
  tfeed(f->rt, line);
  assert_true(tcap_find(&f->cap, mark, "\"started\"", NULL) >= 0);
  ixr_session_info info;
  assert_int_equal(ixr_session_find(f->rt, "KEEP", 4, &info), 0);
  assert_string_equal(info.id, "s1");
}

static void text(fixture *f, const char *s, const char *frag1, const char *frag2) {
  outcome(f, s, strlen(s), frag1, frag2);
}

static void test_deep_nesting(void **state) {
  fixture *f = *state;
  size_t depth = 10000;
  char *s = malloc(depth * 2 + 200);
  size_t n = (size_t)sprintf(s, "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"D\",\"v\":");
  for (size_t i = 0; i < depth; i++) s[n++] = '[';
  for (size_t i = 0; i < depth; i++) s[n++] = ']';
  n += (size_t)sprintf(s + n, "}}");
  outcome(f, s, n, "\"bad_json\"", "nesting deeper than 64");
  free(s);
}

static void test_huge_string_accepted(void **state) {
  fixture *f = *state;
  size_t big = 900 * 1024; /* under the 1 MiB line limit */
  char *s = malloc(big + 200);
  size_t n = (size_t)sprintf(s, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"H\",\"blob\":\"");
  memset(s + n, 'a', big);
  n += big;
  n += (size_t)sprintf(s + n, "\"}}");
  char want[32];
  snprintf(want, sizeof(want), "\"n\":%zu", big);
  outcome(f, s, n, "\"hello\"", want);
  free(s);
}

static void test_over_long_line(void **state) {
  fixture *f = *state;
  size_t big = 2 * 1024 * 1024;
  char *s = malloc(big);
  memset(s, 'x', big);
  outcome(f, s, big, "\"line_too_long\"", NULL);
  free(s);
}

static void test_huge_array_accepted(void **state) {
  fixture *f = *state;
  size_t count = 100000;
  char *s = malloc(count * 2 + 200);
  size_t n = (size_t)sprintf(s, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"A\",\"items\":[");
  for (size_t i = 0; i < count; i++) {
    s[n++] = '1';
    s[n++] = i + 1 < count ? ',' : ']';
  }
  n += (size_t)sprintf(s + n, "}}");
  outcome(f, s, n, "\"hello\"", "\"items\":100000");
  free(s);
}

static void test_numbers_out_of_range(void **state) {
  fixture *f = *state;
  text(f, "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"KEEP\",\"v\":1e400}}", "\"bad_json\"", "out of range");
  text(f, "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"KEEP\",\"v\":-1e400}}", "\"bad_json\"", "out of range");
  /* 2^64 is a float, not an error */
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"BIG\",\"n\":18446744073709551616}}");
  assert_true(tcap_find(&f->cap, 0, "\"started\"", "BIG", NULL) >= 0);
  text(f, "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"KEEP\",\"v\":0x10}}", "\"bad_json\"", NULL);
  text(f, "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"KEEP\",\"v\":NaN}}", "\"bad_json\"", NULL);
}

static void test_duplicate_keys(void **state) {
  fixture *f = *state;
  /* the last value wins: this is a present for DUP2, not DUP1 */
  text(f, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"DUP1\",\"interactionid\":\"DUP2\"}}",
       "\"started\"", "\"DUP2\"");
  text(f, "{\"name\":\"interaction.nope\",\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"DUP3\"}}",
       "\"started\"", "\"DUP3\"");
}

static void test_nul_bytes(void **state) {
  fixture *f = *state;
  const char raw[] = "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"K\0EEP\"}}";
  outcome(f, raw, sizeof(raw) - 1, "\"bad_json\"", NULL);
  /* an escaped NUL is a legal character of an id, and is escaped back */
  text(f, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"N\\u0000UL\"}}",
       "\"started\"", "\"interactionid\":\"N\\u0000UL\"");
}

static void test_invalid_utf8(void **state) {
  fixture *f = *state;
  text(f, "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"\xff\xfe\"}}", "\"bad_json\"", NULL);
  text(f, "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"\xc0\x80\"}}", "\"bad_json\"", "UTF-8");
  text(f, "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"\xed\xa0\x80\"}}", "\"bad_json\"", "UTF-8");
  text(f, "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"\\ud800\"}}", "\"bad_json\"", "surrogate");
  text(f, "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"\\udc00x\"}}", "\"bad_json\"", "surrogate");
  text(f, "{\"name\":\"x.y\",\"data\":{\"interactionid\":\"\\ud83d\\u0041\"}}", "\"bad_json\"", "surrogate");
  /* a proper pair is a character; an escaped backslash before u is text */
  text(f, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"\\ud83d\\ude00\"}}", "\"started\"", "\"interactionid\":\"\xf0\x9f\x98\x80\"");
  text(f, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"a\\\\ud800\"}}", "\"started\"", NULL);
  /* the error message itself stays valid JSON */
  int i = tcap_find(&f->cap, 0, "\"bad_json\"", NULL);
  assert_true(i >= 0);
}

static void test_wrong_types(void **state) {
  fixture *f = *state;
  static const char *lines[] = {
      "{\"name\":42,\"data\":{\"interactionid\":\"KEEP\"}}",
      "{\"name\":null,\"data\":{\"interactionid\":\"KEEP\"}}",
      "{\"name\":[\"interaction.present\"],\"data\":{\"interactionid\":\"KEEP\"}}",
      "{\"name\":{\"a\":1},\"data\":{\"interactionid\":\"KEEP\"}}",
      "{\"name\":\"\",\"data\":{\"interactionid\":\"KEEP\"}}",
      "{\"name\":\"x.y\",\"data\":\"KEEP\"}",
      "{\"name\":\"x.y\",\"data\":[1]}",
      "{\"name\":\"x.y\",\"data\":7}",
      "{\"name\":\"x.y\",\"data\":{\"interactionid\":7}}",
      "{\"name\":\"x.y\",\"data\":{\"interactionid\":null}}",
      "{\"name\":\"x.y\",\"data\":{\"interactionid\":{\"id\":\"KEEP\"}}}",
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"W\",\"strategy\":5}}",
      "\"just a string\"",
      "42",
      "null",
  };
  for (size_t k = 0; k < sizeof(lines) / sizeof(lines[0]); k++)
    text(f, lines[k], "\"bad_event\"", NULL);
}

static void test_not_json_at_all(void **state) {
  fixture *f = *state;
  text(f, "GET / HTTP/1.1", "\"bad_json\"", NULL);
  text(f, "{\"name\":\"x.y\"", "\"bad_json\"", NULL);
  text(f, "{\"name\":\"x.y\"} {\"name\":\"x.y\"}", "\"bad_json\"", NULL);
  text(f, "{'name':'x.y'}", "\"bad_json\"", NULL);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_deep_nesting),     T(test_huge_string_accepted), T(test_over_long_line),
      T(test_huge_array_accepted), T(test_numbers_out_of_range), T(test_duplicate_keys),
      T(test_nul_bytes),        T(test_invalid_utf8),         T(test_wrong_types),
      T(test_not_json_at_all),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
