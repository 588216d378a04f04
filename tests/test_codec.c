/* test_codec.c: JSON lines to Lua values and back (codec.c), driven directly
 * on the Lua state of a real runtime with an empty handlers directory. */
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "internal.h"

typedef struct fixture {
  char *dir;
  tcap cap;
  ixr_runtime *rt;
  lua_State *L;
  ixr__jw *w;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  f->dir = tdir_new();
  f->rt = trt_new(f->dir, &f->cap);
  f->L = f->rt->L;
  assert_int_equal(lua_gettop(f->L), 0); /* the tests count from an empty stack */
  f->w = ixr__jw_new();
  assert_non_null(f->w);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  int top = lua_gettop(f->L);
  ixr__jw_free(f->w);
  ixr_close(f->rt);
  tcap_free(&f->cap);
  tdir_remove(f->dir);
  free(f);
  if (top != 0) {
    fprintf(stderr, "Lua stack left at %d\n", top);
    return -1;
  }
  return 0;
}

/* ---- decoding helpers ------------------------------------------------- */

/* Two sentinels under the decoded value, to see that a failed decode leaves
 * the stack exactly as it found it. */
static void push_sentinels(lua_State *L) {
  lua_pushliteral(L, "sentinel");
  lua_pushinteger(L, 4242);
}

static void check_sentinels(lua_State *L) {
  assert_int_equal(lua_gettop(L), 2);
  assert_string_equal(lua_tostring(L, 1), "sentinel");
  assert_int_equal(lua_tointeger(L, 2), 4242);
  lua_settop(L, 0);
}

/* [-0, +1] decodes, asserting success; the value is left on top. */
static void decode_ok_n(fixture *f, const char *json, size_t len) {
  char err[256] = "";
  int top = lua_gettop(f->L);
  int rc = ixr__decode(f->rt, json, len, err, sizeof(err), NULL);
  if (rc != 0) fail_msg("decode of %.200s failed: %s", json, err);
  assert_int_equal(lua_gettop(f->L), top + 1);
}

static void decode_ok(fixture *f, const char *json) {
  decode_ok_n(f, json, strlen(json));
}

/* A decode that must fail with a message containing `frag`, leaving the
 * stack alone. */
static void decode_fail_n(fixture *f, const char *json, size_t len,
                          const char *frag) {
  char err[256] = "";
  push_sentinels(f->L);
  int rc = ixr__decode(f->rt, json, len, err, sizeof(err), NULL);
  if (rc == 0) fail_msg("decode of %.200s succeeded", json);
  assert_int_equal(rc, IXR_EINVAL);
  assert_true(strlen(err) > 0);
  if (frag != NULL && strstr(err, frag) == NULL)
    fail_msg("decode of %.200s: message \"%s\" lacks \"%s\"", json, err, frag);
  check_sentinels(f->L);
}

static void decode_fail(fixture *f, const char *json, const char *frag) {
  decode_fail_n(f, json, strlen(json), frag);
}

/* [-0, +0] the type of t[k] for the table on top. */
static int field_type(lua_State *L, const char *k) {
  int t = lua_getfield(L, -1, k);
  lua_pop(L, 1);
  return t;
}

static void expect_int_field(lua_State *L, const char *k, lua_Integer v) {
  lua_getfield(L, -1, k);
  assert_true(lua_isinteger(L, -1));
  assert_true(lua_tointeger(L, -1) == v);
  lua_pop(L, 1);
}

static void expect_float_field(lua_State *L, const char *k, double v) {
  lua_getfield(L, -1, k);
  assert_int_equal(lua_type(L, -1), LUA_TNUMBER);
  assert_false(lua_isinteger(L, -1));
  assert_true(lua_tonumber(L, -1) == v);
  lua_pop(L, 1);
}

static void expect_str_field(lua_State *L, const char *k, const char *v,
                             size_t vlen) {
  lua_getfield(L, -1, k);
  assert_int_equal(lua_type(L, -1), LUA_TSTRING);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  assert_int_equal(len, vlen);
  assert_memory_equal(s, v, vlen);
  lua_pop(L, 1);
}

static size_t count_keys(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    n++;
  }
  return n;
}

static char *nested(const char *open, const char *inner, const char *close,
                    int depth) {
  size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
  char *s = malloc((size_t)depth * (lo + lc) + li + 1);
  assert_non_null(s);
  char *p = s;
  for (int i = 0; i < depth; i++, p += lo) memcpy(p, open, lo);
  memcpy(p, inner, li);
  p += li;
  for (int i = 0; i < depth; i++, p += lc) memcpy(p, close, lc);
  *p = '\0';
  return s;
}

/* ---- decoding --------------------------------------------------------- */

static void test_decode_event(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  decode_ok(f, "{\"name\":\"interaction.start\",\"interactionid\":\"i-1\","
               "\"data\":{\"n\":5,\"ok\":true,\"no\":false,\"txt\":\"h\xc3\xa9llo\"}}");
  assert_int_equal(lua_type(L, -1), LUA_TTABLE);
  assert_int_equal(count_keys(L, -1), 3);
  expect_str_field(L, "name", "interaction.start", 17);
  expect_str_field(L, "interactionid", "i-1", 3);
  assert_int_equal(lua_getfield(L, -1, "data"), LUA_TTABLE);
  expect_int_field(L, "n", 5);
  lua_getfield(L, -1, "ok");
  assert_true(lua_isboolean(L, -1) && lua_toboolean(L, -1));
  lua_getfield(L, -2, "no");
  assert_true(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
  lua_pop(L, 2);
  expect_str_field(L, "txt", "h\xc3\xa9llo", 6);
  assert_int_equal(field_type(L, "missing"), LUA_TNIL);
  lua_settop(L, 0);
}

static void test_decode_nested(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  decode_ok(f, " { \"a\" : {\"b\":[1,[2,3],{\"c\":\"d\"}, []]}, \"e\":[], \"o\":{} } ");
  assert_int_equal(lua_getfield(L, -1, "a"), LUA_TTABLE);
  assert_int_equal(lua_getfield(L, -1, "b"), LUA_TTABLE);
  assert_int_equal(lua_rawlen(L, -1), 4);
  assert_int_equal(count_keys(L, -1), 4);
  lua_rawgeti(L, -1, 1);
  assert_true(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 1);
  lua_pop(L, 1);
  assert_int_equal(lua_rawgeti(L, -1, 2), LUA_TTABLE);
  assert_int_equal(lua_rawlen(L, -1), 2);
  lua_rawgeti(L, -1, 2);
  assert_int_equal(lua_tointeger(L, -1), 3);
  lua_pop(L, 2);
  assert_int_equal(lua_rawgeti(L, -1, 3), LUA_TTABLE);
  expect_str_field(L, "c", "d", 1);
  lua_pop(L, 1);
  assert_int_equal(lua_rawgeti(L, -1, 4), LUA_TTABLE);
  assert_int_equal(count_keys(L, -1), 0);
  lua_pop(L, 3);
  assert_int_equal(lua_getfield(L, -1, "e"), LUA_TTABLE);
  assert_int_equal(count_keys(L, -1), 0);
  lua_pop(L, 1);
  assert_int_equal(lua_getfield(L, -1, "o"), LUA_TTABLE);
  assert_int_equal(count_keys(L, -1), 0);
  lua_settop(L, 0);
}

static void test_decode_null(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  decode_ok(f, "{\"a\":null,\"b\":1,\"arr\":[null,1,null],\"o\":{\"x\":null}}");
  /* In an object: the key is absent. */
  assert_int_equal(field_type(L, "a"), LUA_TNIL);
  assert_int_equal(count_keys(L, -1), 3);
  assert_int_equal(lua_getfield(L, -1, "o"), LUA_TTABLE);
  assert_int_equal(count_keys(L, -1), 0);
  lua_pop(L, 1);
  /* In an array: ixr.null, so the length is kept. */
  assert_int_equal(lua_getfield(L, -1, "arr"), LUA_TTABLE);
  assert_int_equal(lua_rawlen(L, -1), 3);
  assert_int_equal(lua_rawgeti(L, -1, 1), LUA_TLIGHTUSERDATA);
  assert_ptr_equal(lua_touserdata(L, -1), ixr__null());
  lua_pop(L, 1);
  assert_int_equal(lua_rawgeti(L, -1, 2), LUA_TNUMBER);
  lua_pop(L, 1);
  assert_int_equal(lua_rawgeti(L, -1, 3), LUA_TLIGHTUSERDATA);
  assert_ptr_equal(lua_touserdata(L, -1), ixr__null());
  lua_settop(L, 0);
}

static void test_decode_numbers(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  decode_ok(f, "{\"i\":42,\"neg\":-7,\"z\":0,\"f\":1.5,\"e\":1e2,\"E\":2E-1,"
               "\"fz\":0.0,\"nz\":-0.0,\"max\":9223372036854775807,"
               "\"min\":-9223372036854775808,\"tiny\":1e-400}");
  expect_int_field(L, "i", 42);
  expect_int_field(L, "neg", -7);
  expect_int_field(L, "z", 0);
  expect_float_field(L, "f", 1.5);
  expect_float_field(L, "e", 100.0);
  expect_float_field(L, "E", 0.2);
  expect_float_field(L, "fz", 0.0);
  expect_float_field(L, "nz", 0.0);
  expect_int_field(L, "max", LUA_MAXINTEGER);
  expect_int_field(L, "min", LUA_MININTEGER);
  expect_float_field(L, "tiny", 0.0); /* underflow is not an error */
  lua_settop(L, 0);

  /* Integers beyond 64 bits become floats. */
  decode_ok(f, "{\"big\":9223372036854775808,\"nbig\":-9223372036854775809,"
               "\"huge\":123456789012345678901234567890}");
  expect_float_field(L, "big", 9223372036854775808.0);
  expect_float_field(L, "nbig", -9223372036854775808.0);
  expect_float_field(L, "huge", 123456789012345678901234567890.0);
  lua_settop(L, 0);

  /* Beyond the range of a double: an error, not inf. */
  decode_fail(f, "{\"x\":1e400}", "out of range");
  decode_fail(f, "{\"x\":-1e400}", "out of range");
  decode_fail(f, "[1, 2, 1e999]", "out of range");
  /* Not JSON numbers, although Lua would read them. */
  decode_fail(f, "{\"x\":0x10}", NULL);
  decode_fail(f, "{\"x\":.5}", NULL);
  decode_fail(f, "{\"x\":+1}", NULL);
  decode_fail(f, "{\"x\":inf}", NULL);
  decode_fail(f, "{\"x\":NaN}", NULL);
  decode_fail(f, "{\"x\":01}", NULL);
}

static void test_decode_duplicate_keys(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  decode_ok(f, "{\"a\":1,\"b\":\"x\",\"a\":2,\"b\":{\"c\":3}}");
  expect_int_field(L, "a", 2);
  assert_int_equal(field_type(L, "b"), LUA_TTABLE);
  assert_int_equal(count_keys(L, -1), 2);
  lua_settop(L, 0);
  /* The last one wins also when it is null (absent) or follows a null. */
  decode_ok(f, "{\"a\":1,\"a\":null,\"b\":null,\"b\":3}");
  assert_int_equal(field_type(L, "a"), LUA_TNIL);
  expect_int_field(L, "b", 3);
  assert_int_equal(count_keys(L, -1), 1);
  lua_settop(L, 0);
}

static void test_decode_strings(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  /* \u0000 is kept: Lua strings hold NULs. */
  decode_ok(f, "{\"s\":\"a\\u0000b\",\"k\\u0000\":1}");
  expect_str_field(L, "s", "a\0b", 3);
  lua_pushlstring(L, "k\0", 2);
  lua_rawget(L, -2);
  assert_int_equal(lua_tointeger(L, -1), 1);
  lua_settop(L, 0);
  decode_ok(f, "{\"esc\":\"q\\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f\","
               "\"u\":\"\\u00e9\\u20AC\",\"pair\":\"\\ud83d\\ude00\","
               "\"raw\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}");
  expect_str_field(L, "esc", "q\"b\\s/n\nt\tr\rb\bf\f", 16);
  expect_str_field(L, "u", "\xc3\xa9\xe2\x82\xac", 5);
  expect_str_field(L, "pair", "\xf0\x9f\x98\x80", 4);
  expect_str_field(L, "raw", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
  lua_settop(L, 0);
}

static void test_decode_invalid_utf8(void **state) {
  fixture *f = *state;
  decode_fail(f, "{\"s\":\"\xff\"}", NULL);
  decode_fail(f, "{\"s\":\"a\xc3\"}", NULL);             /* cut short */
  decode_fail(f, "{\"s\":\"\x80\"}", NULL);              /* lone continuation */
  decode_fail(f, "{\"s\":\"\xc0\x80\"}", "UTF-8");       /* overlong NUL */
  decode_fail(f, "{\"s\":\"\xe0\x80\xaf\"}", "UTF-8");   /* overlong '/' */
  decode_fail(f, "{\"s\":\"\xed\xa0\x80\"}", "UTF-8");   /* surrogate */
  decode_fail(f, "{\"s\":\"\xf4\x90\x80\x80\"}", "UTF-8"); /* > U+10FFFF */
  decode_fail(f, "{\"s\":\"\\udc00\"}", "surrogate");    /* lone low surrogate: refused before yajl turns it into "?" */
  decode_fail(f, "{\"\xc0\x80\":1}", "UTF-8");           /* in a key */
  decode_fail(f, "{\"k\xff\":1}", NULL);
  decode_fail(f, "{\"a\":[1,{\"b\":[\"\xed\xbf\xbf\"]}]}", "UTF-8"); /* deep */
}

static void test_decode_malformed(void **state) {
  fixture *f = *state;
  /* Truncated. */
  decode_fail(f, "{\"a\":1", NULL);
  decode_fail(f, "{\"a\":", NULL);
  decode_fail(f, "{\"a\"", NULL);
  decode_fail(f, "{\"a\":\"abc", NULL);
  decode_fail(f, "{\"a\":[1,2", NULL);
  decode_fail(f, "{", NULL);
  decode_fail(f, "[[[[", NULL);
  /* Trailing garbage. */
  decode_fail(f, "{\"a\":1}x", "trailing garbage");
  decode_fail(f, "{\"a\":1}}", NULL);
  decode_fail(f, "{\"a\":1},", NULL);
  /* Two values on one line. */
  decode_fail(f, "{\"a\":1} {\"b\":2}", NULL);
  decode_fail(f, "{}{}", NULL);
  decode_fail(f, "1 2", NULL);
  /* Other mistakes. */
  decode_fail(f, "{'a':1}", NULL);
  decode_fail(f, "{a:1}", NULL);
  decode_fail(f, "{\"a\":1,}", NULL);
  decode_fail(f, "[1,]", NULL);
  decode_fail(f, "{\"a\":tru}", NULL);
  decode_fail(f, "{\"a\":\"tab\there\"}", NULL); /* raw control character */
  decode_fail(f, "{\"a\":\"\\x41\"}", NULL);
  decode_fail(f, "{\"a\":1 /* c */}", NULL);
  decode_fail_n(f, "{\"a\":\"x\0y\"}", 11, NULL);  /* raw NUL */
  decode_fail_n(f, "{\"a\":1}\0", 8, NULL);
  /* Empty and blank lines: no value. */
  decode_fail_n(f, "", 0, NULL);
  decode_fail(f, "   ", NULL);
  decode_fail(f, "\t\r", NULL);
}

/* The decoder takes any JSON value; dispatch is what asks for an object. */
static void test_decode_top_level_values(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  decode_ok(f, "[1,2,3]");
  assert_int_equal(lua_type(L, -1), LUA_TTABLE);
  assert_int_equal(lua_rawlen(L, -1), 3);
  lua_settop(L, 0);
  decode_ok(f, "\"str\"");
  assert_string_equal(lua_tostring(L, -1), "str");
  lua_settop(L, 0);
  decode_ok(f, " 42 ");
  assert_true(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 42);
  lua_settop(L, 0);
  decode_ok(f, "2.5");
  assert_true(lua_tonumber(L, -1) == 2.5);
  lua_settop(L, 0);
  decode_ok(f, "true");
  assert_true(lua_isboolean(L, -1) && lua_toboolean(L, -1));
  lua_settop(L, 0);
  decode_ok(f, "null");
  assert_ptr_equal(lua_touserdata(L, -1), ixr__null());
  lua_settop(L, 0);
}

static void test_decode_nesting_limit(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  /* 64 levels: fine, and all of them are there. */
  char *ok = nested("[", "7", "]", 64);
  decode_ok(f, ok);
  for (int i = 0; i < 64; i++) {
    assert_int_equal(lua_type(L, -1), LUA_TTABLE);
    assert_int_equal(lua_rawlen(L, -1), 1);
    lua_rawgeti(L, -1, 1);
  }
  assert_int_equal(lua_tointeger(L, -1), 7);
  lua_settop(L, 0);
  free(ok);
  ok = nested("{\"a\":", "{}", "}", 63);
  decode_ok(f, ok);
  lua_settop(L, 0);
  free(ok);
  ok = nested("{\"a\":[", "1", "]}", 32);
  decode_ok(f, ok);
  lua_settop(L, 0);
  free(ok);

  /* 65 levels: rejected, whatever the containers. */
  char *bad = nested("[", "7", "]", 65);
  decode_fail(f, bad, "nesting");
  free(bad);
  bad = nested("{\"a\":", "{}", "}", 64);
  decode_fail(f, bad, "nesting");
  free(bad);
  bad = nested("[", "{\"a\":1}", "]", 64);
  decode_fail(f, bad, "nesting");
  free(bad);
  bad = nested("[", "", "]", 100000); /* deep enough to hurt a recursive parser */
  decode_fail(f, bad, "nesting");
  free(bad);
}

static void test_decode_long_string(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  enum { N = 1 << 20 };
  size_t pre = strlen("{\"s\":\"");
  char *json = malloc(pre + N + 3);
  assert_non_null(json);
  memcpy(json, "{\"s\":\"", pre);
  for (size_t i = 0; i < N; i++) json[pre + i] = (char)('a' + i % 26);
  /* A multibyte character at the very end of the string. */
  memcpy(json + pre + N - 2, "\xc3\xa9", 2);
  memcpy(json + pre + N, "\"}", 3);
  decode_ok_n(f, json, pre + N + 2);
  expect_str_field(L, "s", json + pre, N);
  lua_settop(L, 0);
  free(json);
}

/* A failure in the middle of a big document leaves nothing behind. */
static void test_decode_failure_restores_stack(void **state) {
  fixture *f = *state;
  decode_fail(f, "{\"a\":{\"b\":[1,2,{\"c\":[3,\"x\",1e400]}]}}", "out of range");
  decode_fail(f, "{\"a\":{\"b\":[1,2,{\"c\":[3,\"x\"]}]}} 5", NULL);
  decode_fail(f, "{\"a\":{\"b\":[1,2,{\"c\":[3,\"x\"", NULL);
  /* And success on top of other values leaves them alone too. */
  push_sentinels(f->L);
  decode_ok(f, "{\"a\":1}");
  lua_pop(f->L, 1);
  check_sentinels(f->L);
}

/* Escapes at every position around the decoder's eight-byte steps, and the
 * edge cases of \u. */
static void test_decode_escape_edges(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  char json[128], want[64];
  for (size_t at = 0; at < 20; at++) {
    /* "aaa...\nbbb": the escape after `at` plain bytes, then 9 more. */
    size_t n = 0, w = 0;
    n += (size_t)snprintf(json + n, sizeof(json) - n, "{\"s\":\"");
    for (size_t i = 0; i < at; i++) json[n++] = want[w++] = 'a';
    json[n++] = '\\';
    json[n++] = 'n';
    want[w++] = '\n';
    for (size_t i = 0; i < 9; i++) json[n++] = want[w++] = 'b';
    memcpy(json + n, "\"}", 3);
    decode_ok(f, json);
    expect_str_field(L, "s", want, w);
    lua_settop(L, 0);
    /* And a plain string of the same length, ending at every position. */
    n = 6 + at;
    memcpy(json + n, "\"}", 3);
    decode_ok(f, json);
    expect_str_field(L, "s", want, at);
    lua_settop(L, 0);
  }
  decode_ok(f, "[\"\\u0000\",\"\\\\\",\"\\\"\",\"x\\u0041\",\"\\uD83D\\uDE00\","
               "\"\\u007f\\u0080\\u07FF\\u0800\\uFFFF\",\"\\udbff\\udfff\"]");
  const char *wants[] = {"\0", "\\", "\"", "xA", "\xf0\x9f\x98\x80",
                         "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf",
                         "\xf4\x8f\xbf\xbf"};
  size_t lens[] = {1, 1, 1, 2, 4, 11, 4};
  for (int i = 0; i < 7; i++) {
    size_t len;
    lua_rawgeti(L, -1, i + 1);
    const char *s = lua_tolstring(L, -1, &len);
    assert_int_equal(len, lens[i]);
    assert_memory_equal(s, wants[i], len);
    lua_pop(L, 1);
  }
  lua_settop(L, 0);
  /* Unpaired surrogates, however they end. */
  decode_fail(f, "[\"\\ud800\"]", "surrogate");
  decode_fail(f, "[\"\\ud800\\u0041\"]", "surrogate");
  decode_fail(f, "[\"\\ud800\\ud800\"]", "surrogate");
  decode_fail(f, "[\"\\udfff\\ud800\"]", "surrogate");
  decode_fail(f, "[\"\\ud800\\n\"]", "surrogate");
  decode_fail(f, "\"\\ud800", "surrogate");
  decode_fail(f, "\"\\ud800\\udc0", "surrogate");
  /* Broken escapes. */
  decode_fail(f, "[\"\\u12\"]", "\\u escape");
  decode_fail(f, "[\"\\u12g4\"]", "\\u escape");
  decode_fail(f, "[\"\\a\"]", "escape");
  decode_fail(f, "[\"\\U0041\"]", "escape");
  decode_fail(f, "[\"\\", NULL);
  decode_fail(f, "[\"ab\\\"]", "unterminated string");
  decode_fail(f, "[\"x\\n\x01\"]", "control character");
  decode_fail(f, "[\"x\x1f\"]", "control character");
  decode_fail_n(f, "[\"\\n\0\"]", 6, "control character");
}

/* Containers bigger than the decoder moves at once, with duplicates and
 * nulls on both sides of each move. */
static void test_decode_big_containers(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  enum { N = 1000 };
  char *json = malloc(N * 32 + 64);
  assert_non_null(json);
  size_t n = 0;
  json[n++] = '[';
  for (int i = 0; i < N; i++)
    n += (size_t)sprintf(json + n, i % 7 == 3 ? "%snull" : "%s%d", i ? "," : "", i);
  json[n++] = ']';
  json[n] = '\0';
  decode_ok(f, json);
  assert_int_equal(lua_rawlen(L, -1), N);
  assert_int_equal(count_keys(L, -1), N);
  for (int i = 0; i < N; i++) {
    lua_rawgeti(L, -1, i + 1);
    if (i % 7 == 3) assert_ptr_equal(lua_touserdata(L, -1), ixr__null());
    else assert_true(lua_isinteger(L, -1) && lua_tointeger(L, -1) == i);
    lua_pop(L, 1);
  }
  lua_settop(L, 0);
  /* k<i> for i < N, then again with null for the even ones and a new value
   * for the odd ones: the last one wins. */
  n = 0;
  json[n++] = '{';
  for (int i = 0; i < 2 * N; i++) {
    int k = i % N;
    if (i < N) n += (size_t)sprintf(json + n, "%s\"k%d\":%d", i ? "," : "", k, k);
    else if (k % 2 == 0) n += (size_t)sprintf(json + n, ",\"k%d\":null", k);
    else n += (size_t)sprintf(json + n, ",\"k%d\":\"v\"", k);
  }
  /* And a null first, a value after. */
  n += (size_t)sprintf(json + n, ",\"z\":null,\"z\":1}");
  decode_ok(f, json);
  assert_int_equal(count_keys(L, -1), N / 2 + 1);
  expect_str_field(L, "k1", "v", 1);
  expect_str_field(L, "k999", "v", 1);
  assert_int_equal(field_type(L, "k0"), LUA_TNIL);
  assert_int_equal(field_type(L, "k998"), LUA_TNIL);
  expect_int_field(L, "z", 1);
  lua_settop(L, 0);
  free(json);
  /* 64 levels exactly, the deepest an array in an object. */
  char *deep = nested("[", "{\"a\":1,\"b\":[1,2,3],\"c\":{}}", "]", 62);
  decode_ok(f, deep);
  lua_settop(L, 0);
  free(deep);
  deep = nested("{\"a\":", "[[]]", "}", 63);
  decode_fail(f, deep, "nesting deeper than 64 levels");
  free(deep);
}

static void test_decode_number_edges(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  decode_ok(f, "{\"mz\":-0,\"z0\":0e0,\"p\":1E+2,\"m\":1e-2,\"x\":-1.5E-3,"
               "\"d18\":999999999999999999,\"n18\":-999999999999999999,"
               "\"d19\":1000000000000000000,\"n19\":-9223372036854775807,"
               "\"lz\":0.000,\"frac\":12345678901234567890.5}");
  expect_int_field(L, "mz", 0);
  expect_float_field(L, "z0", 0.0);
  expect_float_field(L, "p", 100.0);
  expect_float_field(L, "m", 0.01);
  expect_float_field(L, "x", -1.5e-3);
  expect_int_field(L, "d18", 999999999999999999);
  expect_int_field(L, "n18", -999999999999999999);
  expect_int_field(L, "d19", 1000000000000000000);
  expect_int_field(L, "n19", -9223372036854775807);
  expect_float_field(L, "lz", 0.0);
  expect_float_field(L, "frac", 12345678901234567890.5);
  lua_getfield(L, -1, "mz");
  assert_true(lua_isinteger(L, -1)); /* as Lua reads "-0" */
  lua_pop(L, 1);
  lua_settop(L, 0);
  decode_ok(f, "-0.0");
  assert_false(lua_isinteger(L, -1));
  assert_true(signbit(lua_tonumber(L, -1)));
  lua_settop(L, 0);
  decode_ok(f, "[1.7976931348623157e308,4.9e-324,-2.2250738585072014e-308]");
  lua_rawgeti(L, -1, 1);
  assert_true(lua_tonumber(L, -1) == 1.7976931348623157e308);
  lua_settop(L, 0);
  /* 127 bytes is the longest number; 128 is too long. */
  char num[160];
  memset(num, '0', sizeof(num));
  num[0] = '1';
  num[127] = '\0';
  decode_ok(f, num);
  assert_true(lua_tonumber(L, -1) == 1e126);
  lua_settop(L, 0);
  num[127] = '0';
  num[128] = '\0';
  decode_fail(f, num, "number too long");
  decode_fail(f, "1.7976931348623159e308", "out of range");
  const char *bad[] = {"1.", "1.e3", "1e", "1e+", "1E-", "-", "--1", "-a", ".5",
                       "+1", "00", "-01", "1.5.2", "1e5e5", "0x1", "1_000", "Infinity"};
  for (size_t i = 0; i < IXR_ARRAY_SIZE(bad); i++) {
    char json[64];
    snprintf(json, sizeof(json), "[%s]", bad[i]);
    decode_fail(f, json, NULL);
    decode_fail(f, bad[i], NULL);
  }
}

/* Every strict prefix of an event fails, with the stack as it was. */
static void test_decode_truncated_everywhere(void **state) {
  fixture *f = *state;
  const char *line =
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"i-\\u00e91\","
      "\"n\":-12.5e-1,\"ok\":true,\"no\":false,\"nil\":null,\"arr\":[1,null,"
      "\"h\xc3\xa9\xf0\x9f\x98\x80\",{\"x\":\"q\\\"\\\\\\/\\ud83d\\ude00\"}],\"big\":"
      "12345678901234567890} , \"id\" : 7 }";
  size_t len = strlen(line);
  for (size_t n = 0; n < len; n++) decode_fail_n(f, line, n, NULL);
  decode_ok_n(f, line, len);
  lua_settop(f->L, 0);
}

/* Every class of invalid UTF-8, at several positions, with its offset. */
static void test_decode_utf8_classes(void **state) {
  fixture *f = *state;
  const char *bad[] = {"\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xc2", "\xc2\x41",
                       "\xe0\x9f\xbf", "\xe0\xa0", "\xe2\x82", "\xed\xa0\x80",
                       "\xed\xbf\xbf", "\xf0\x8f\xbf\xbf", "\xf0\x90\x80",
                       "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80",
                       "\xfe", "\xff", "\xe2\x28\xa1", "\xf0\x90\x28\xbc"};
  for (size_t i = 0; i < IXR_ARRAY_SIZE(bad); i++) {
    for (size_t at = 0; at < 11; at++) {
      char json[64], frag[48];
      size_t n = (size_t)snprintf(json, sizeof(json), "[\"%.*s%s\"]", (int)at,
                                  "0123456789", bad[i]);
      snprintf(frag, sizeof(frag), "invalid UTF-8 (at byte %zu)", 2 + at);
      decode_fail_n(f, json, n, frag);
      /* In a key, and after an escape. */
      n = (size_t)snprintf(json, sizeof(json), "{\"%.*s%s\":1}", (int)at,
                           "0123456789", bad[i]);
      decode_fail_n(f, json, n, frag);
      n = (size_t)snprintf(json, sizeof(json), "[\"\\n%.*s%s\"]", (int)at,
                           "0123456789", bad[i]);
      snprintf(frag, sizeof(frag), "invalid UTF-8 (at byte %zu)", 4 + at);
      decode_fail_n(f, json, n, frag);
    }
  }
  /* The edges of each valid range. */
  decode_ok(f, "[\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
               "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"]");
  lua_settop(f->L, 0);
  /* Outside strings a byte above ASCII is just not JSON. */
  decode_fail(f, "[1,\xc3\xa9]", NULL);
  decode_fail(f, "\xef\xbb\xbf{}", NULL); /* a byte order mark */
}

/* A big string with escapes, then small ones: the scratch memory for
 * escapes grows and is given back. */
static void test_decode_big_escaped_string(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  enum { N = 300000 };
  char *json = malloc(N * 2 + 16), *want = malloc(N);
  assert_non_null(json);
  assert_non_null(want);
  size_t n = 0, w = 0;
  json[n++] = '"';
  for (size_t i = 0; i < N; i++) {
    if (i % 1000 == 999) {
      json[n++] = '\\';
      json[n++] = 't';
      want[w++] = '\t';
    } else if (i % 1000 == 500) {
      memcpy(json + n, "\xe2\x82\xac", 3); /* 3 bytes of input, 3 of output */
      memcpy(want + w, "\xe2\x82\xac", 3);
      n += 3;
      w += 3;
      i += 2;
    } else {
      json[n++] = want[w++] = (char)('a' + i % 26);
    }
  }
  json[n++] = '"';
  decode_ok_n(f, json, n);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  assert_int_equal(len, w);
  assert_memory_equal(s, want, w);
  lua_settop(L, 0);
  assert_true(f->rt->decode_scratch.cap <= 64 * 1024);
  decode_ok(f, "\"a\\tb\"");
  assert_string_equal(lua_tostring(L, -1), "a\tb");
  lua_settop(L, 0);
  free(json);
  free(want);
}

/* Messages say what was wrong and where. */
static void test_decode_messages(void **state) {
  fixture *f = *state;
  decode_fail(f, "{not json", "unexpected 'n', expected a string key or '}' (at byte 1)");
  decode_fail(f, "{\"a\":1,}", "expected a string key (at byte 7)");
  decode_fail(f, "{\"a\" 1}", "unexpected '1', expected ':' (at byte 5)");
  decode_fail(f, "[1 2]", "expected ',' or ']' (at byte 3)");
  decode_fail(f, "{\"a\":1", "unexpected end of input, expected ',' or '}' (at byte 6)");
  decode_fail(f, "[1,\x01]", "unexpected byte 0x01, expected a value (at byte 3)");
  decode_fail(f, "{\"a\":1}x", "trailing garbage (at byte 7)");
  decode_fail(f, "[\"abc", "unterminated string (at byte 1)");
  decode_fail(f, "[nul]", "invalid literal");
  decode_fail(f, "{\"a\":[1e999]}", "number out of range (at byte 6)");
  /* yajl missed garbage that was an unterminated string after the value. */
  decode_fail(f, "{\"a\":1} \"abc", "trailing garbage (at byte 8)");
  decode_fail(f, "1 \"x", "trailing garbage");
}

/* yajl took VT and FF for whitespace; lines that passed still pass. */
static void test_decode_whitespace(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  decode_ok(f, "\v\f\t\r\n {\v\"a\"\f:\t[\r1\n,\v2\f]\t}\v\f");
  assert_int_equal(lua_getfield(L, -1, "a"), LUA_TTABLE);
  assert_int_equal(lua_rawlen(L, -1), 2);
  lua_settop(L, 0);
  decode_fail(f, "[1,\xc2\xa0 2]", NULL); /* no-break space is not */
  decode_fail(f, "\v\f", "no JSON value");
}

/* ---- encoding helpers ------------------------------------------------- */

/* [-0, +1] evaluates a Lua expression (literals and operators only). */
static void push_expr(lua_State *L, const char *expr) {
  char chunk[4096];
  snprintf(chunk, sizeof(chunk), "return %s", expr);
  if (luaL_loadstring(L, chunk) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
    fail_msg("Lua: %s", lua_tostring(L, -1));
}

/* Encodes the value on top as {"v": value} and pops it. Returns the rc of
 * ixr__jw_lua; the line (when rc is 0) and the message go into out/err. */
static int encode_top(fixture *f, char *out, size_t outlen, char *err,
                      size_t errlen) {
  lua_State *L = f->L;
  int top = lua_gettop(L);
  err[0] = '\0';
  ixr__jw_begin(f->w);
  int rc = ixr__jw_lua(f->w, "v", L, -1, err, errlen);
  assert_int_equal(lua_gettop(L), top); /* [-0, +0], failed or not */
  const char *line;
  size_t len;
  ixr__jw_end(f->w, &line, &len);
  assert_int_equal(ixr__jw_failed(f->w), rc != 0);
  if (rc == 0) {
    assert_true(len < outlen);
    memcpy(out, line, len);
    out[len] = '\0';
    assert_int_equal(strlen(out), len); /* no raw NUL in a line */
  } else {
    assert_true(strlen(err) > 0);
  }
  lua_pop(L, 1);
  return rc;
}

/* Every line written decodes again. */
static void check_decodes(fixture *f, const char *line) {
  decode_ok(f, line);
  lua_pop(f->L, 1);
}

static void expect_encoding(fixture *f, const char *expr, const char *json) {
  char out[4096], err[256];
  push_expr(f->L, expr);
  if (encode_top(f, out, sizeof(out), err, sizeof(err)) != 0)
    fail_msg("encoding %s failed: %s", expr, err);
  if (strcmp(out, json) != 0)
    fail_msg("encoding %s:\n  got  %s\n  want %s", expr, out, json);
  check_decodes(f, out);
}

static void expect_encoding_error(fixture *f, const char *expr,
                                  const char *frag) {
  char out[4096], err[256];
  push_expr(f->L, expr);
  if (encode_top(f, out, sizeof(out), err, sizeof(err)) == 0)
    fail_msg("encoding %s succeeded: %s", expr, out);
  if (strstr(err, frag) == NULL)
    fail_msg("encoding %s: message \"%s\" lacks \"%s\"", expr, err, frag);
}

/* Object keys come from a cache of recent keys (codec.c): thousands of
 * distinct keys that collide in it, keys that differ only in the middle,
 * keys at and past its length limit, with escapes or non-ASCII bytes: each
 * decodes to exactly its own string, line after line. */
static void test_decode_key_cache(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  char line[512], key[128];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 3000; i++) {
      /* same length, same first and last bytes: only the middle differs */
      snprintf(key, sizeof(key), "abcdefgh%06dstuvwxyz", i);
      snprintf(line, sizeof(line), "{\"%s\":%d,\"k%d\":%d}", key, i, i % 700, i);
      decode_ok(f, line);
      lua_getfield(L, -1, key);
      assert_int_equal(lua_tointeger(L, -1), i);
      lua_pop(L, 1);
      snprintf(key, sizeof(key), "k%d", i % 700);
      lua_getfield(L, -1, key);
      assert_int_equal(lua_tointeger(L, -1), i);
      lua_pop(L, 2);
    }
  }
  static const struct {
    const char *json, *key;
  } cases[] = {
      {"{\"0123456789012345678901234567890123456789\":1}", /* 40: cached */
       "0123456789012345678901234567890123456789"},
      {"{\"01234567890123456789012345678901234567890\":1}", /* 41: not */
       "01234567890123456789012345678901234567890"},
      {"{\"a\\u0062c\":1}", "abc"},
      {"{\"abc\":1}", "abc"},
      {"{\"caf\xc3\xa9\":1}", "caf\xc3\xa9"},
      {"{\"\":1}", ""},
      {"{\"a\":{\"a\":{\"a\":1}}}", "a"},
  };
  for (int r = 0; r < 2; r++) {
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
      decode_ok(f, cases[i].json);
      lua_pushnil(L);
      assert_true(lua_next(L, -2));
      size_t n;
      const char *k = lua_tolstring(L, -2, &n);
      assert_int_equal(n, strlen(cases[i].key));
      assert_memory_equal(k, cases[i].key, n);
      lua_pop(L, 1);                  /* [t k] */
      assert_int_equal(lua_next(L, -2), 0); /* the only member: [t] */
      lua_pop(L, 1);
    }
  }
}

/* ---- encoding --------------------------------------------------------- */

static void test_encode_scalars_and_fields(void **state) {
  fixture *f = *state;
  expect_encoding(f, "true", "{\"v\":true}");
  expect_encoding(f, "false", "{\"v\":false}");
  expect_encoding(f, "nil", "{\"v\":null}");
  expect_encoding(f, "42", "{\"v\":42}");
  expect_encoding(f, "-7", "{\"v\":-7}");
  expect_encoding(f, "9223372036854775807",
                  "{\"v\":9223372036854775807}");
  expect_encoding(f, "-9223372036854775807 - 1", "{\"v\":-9223372036854775808}");
  expect_encoding(f, "'hi'", "{\"v\":\"hi\"}");
  expect_encoding(f, "''", "{\"v\":\"\"}");

  /* The writer's own fields, in the order written. */
  char err[64];
  const char *line;
  size_t len;
  ixr__jw_begin(f->w);
  ixr__jw_str(f->w, "type", "x", 1);
  ixr__jw_int(f->w, "n", -5);
  lua_pushinteger(f->L, 1);
  assert_int_equal(ixr__jw_lua(f->w, "v", f->L, -1, err, sizeof(err)), 0);
  lua_pop(f->L, 1);
  ixr__jw_str(f->w, "nul", "a\0b", 3);
  ixr__jw_end(f->w, &line, &len);
  assert_false(ixr__jw_failed(f->w));
  const char *want = "{\"type\":\"x\",\"n\":-5,\"v\":1,\"nul\":\"a\\u0000b\"}";
  assert_int_equal(len, strlen(want));
  assert_memory_equal(line, want, len);
}

static void test_encode_null(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  char out[256], err[128];
  lua_pushlightuserdata(L, ixr__null());
  assert_int_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  assert_string_equal(out, "{\"v\":null}");
  /* In an array it keeps its place. */
  lua_createtable(L, 3, 0);
  lua_pushinteger(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushlightuserdata(L, ixr__null());
  lua_rawseti(L, -2, 2);
  lua_pushinteger(L, 3);
  lua_rawseti(L, -2, 3);
  assert_int_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  assert_string_equal(out, "{\"v\":[1,null,3]}");
  /* Any other light userdata is not null. */
  static const char other = 0;
  lua_pushlightuserdata(L, (void *)&other);
  assert_int_not_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  assert_non_null(strstr(err, "cannot encode"));
  /* Decoding and encoding again gives the same line. */
  decode_ok(f, "{\"a\":[null,1,null],\"b\":null}");
  assert_int_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  assert_string_equal(out, "{\"v\":{\"a\":[null,1,null]}}");
}

static void test_encode_tables(void **state) {
  fixture *f = *state;
  /* Objects: keys sorted bytewise, at every level. */
  expect_encoding(f, "{ b = 1, a = 2, c = { z = 1, y = 2, Z = 3 }, aa = 0 }",
                  "{\"v\":{\"a\":2,\"aa\":0,\"b\":1,\"c\":{\"Z\":3,\"y\":2,\"z\":1}}}");
  /* Arrays: keys exactly 1..n. */
  expect_encoding(f, "{ 1, 'two', true, false, { 3 }, { x = 1 } }",
                  "{\"v\":[1,\"two\",true,false,[3],{\"x\":1}]}");
  expect_encoding(f, "{ [3] = 'c', [1] = 'a', [2] = 'b' }",
                  "{\"v\":[\"a\",\"b\",\"c\"]}");
  /* Empty: an object. */
  expect_encoding(f, "{}", "{\"v\":{}}");
  expect_encoding(f, "{ {}, { {} } }", "{\"v\":[{},[{}]]}");
  /* Integer keys that are not 1..n: an object with string keys, sorted as
   * text. */
  expect_encoding(f, "{ [1] = 1, [2] = 2, [4] = 4 }",
                  "{\"v\":{\"1\":1,\"2\":2,\"4\":4}}");
  expect_encoding(f, "{ [0] = 0, [1] = 1 }", "{\"v\":{\"0\":0,\"1\":1}}");
  expect_encoding(f, "{ [-1] = 'm' }", "{\"v\":{\"-1\":\"m\"}}");
  expect_encoding(f, "{ [2] = 2 }", "{\"v\":{\"2\":2}}");
  expect_encoding(f, "{ 1, 2, x = 3 }", "{\"v\":{\"1\":1,\"2\":2,\"x\":3}}");
  expect_encoding(f, "{ [1] = 1, [2] = 2, [10] = 10 }",
                  "{\"v\":{\"1\":1,\"10\":10,\"2\":2}}");
  expect_encoding(f, "{ 'a', nil, 'c' }", "{\"v\":{\"1\":\"a\",\"3\":\"c\"}}");
  /* A table whose border (#t) is 3 while its keys are 1, 3 and 5: all three
   * must be written. */
  expect_encoding(f,
                  "(function() local t = { 1, 2, 3, 4, x = 0 }; t.x = nil; "
                  "t[5] = 5; t[2] = nil; t[4] = nil; return t end)()",
                  "{\"v\":{\"1\":1,\"3\":3,\"5\":5}}");
  /* Many keys (past the writer's small key buffer). */
  expect_encoding(f, "{ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17 }",
                  "{\"v\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}");
  expect_encoding(f,
                  "{ k = 1, j = 2, i = 3, h = 4, g = 5, f = 6, e = 7, d = 8, "
                  "c = 9, b = 10, a = 11 }",
                  "{\"v\":{\"a\":11,\"b\":10,\"c\":9,\"d\":8,\"e\":7,\"f\":6,"
                  "\"g\":5,\"h\":4,\"i\":3,\"j\":2,\"k\":1}}");
  /* Around the writer's fast path (up to 32 members wait on the stack):
   * 32 and 33 members, as arrays, objects and mixed integer keys, give the
   * same kind of line. */
  for (int n = 31; n <= 34; n++) {
    char expr[2048], want[2048];
    size_t e = 0, o = 0;
    /* an array 1..n */
    e = (size_t)snprintf(expr, sizeof(expr), "{");
    o = (size_t)snprintf(want, sizeof(want), "{\"v\":[");
    for (int i = 1; i <= n; i++) {
      e += (size_t)snprintf(expr + e, sizeof(expr) - e, "%d,", i * 10);
      o += (size_t)snprintf(want + o, sizeof(want) - o, "%s%d", i > 1 ? "," : "", i * 10);
    }
    snprintf(expr + e, sizeof(expr) - e, "}");
    snprintf(want + o, sizeof(want) - o, "]}");
    expect_encoding(f, expr, want);
    /* an object: keys k01..kNN given in reverse, written sorted */
    e = (size_t)snprintf(expr, sizeof(expr), "{");
    o = (size_t)snprintf(want, sizeof(want), "{\"v\":{");
    for (int i = n; i >= 1; i--)
      e += (size_t)snprintf(expr + e, sizeof(expr) - e, "k%02d=%d,", i, i);
    for (int i = 1; i <= n; i++)
      o += (size_t)snprintf(want + o, sizeof(want) - o, "%s\"k%02d\":%d", i > 1 ? "," : "", i, i);
    snprintf(expr + e, sizeof(expr) - e, "}");
    snprintf(want + o, sizeof(want) - o, "}}");
    expect_encoding(f, expr, want);
    /* integer keys 2..n+1: not an array; an object sorted as text */
    e = (size_t)snprintf(expr, sizeof(expr), "{");
    for (int i = 2; i <= n + 1; i++)
      e += (size_t)snprintf(expr + e, sizeof(expr) - e, "[%d]=%d,", i, i);
    snprintf(expr + e, sizeof(expr) - e, "}");
    char out[4096], err[256];
    push_expr(f->L, expr);
    assert_int_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
    assert_non_null(strstr(out, "{\"v\":{\"10\":10,\"11\":11,"));
    assert_non_null(strstr(out, n + 1 >= 30 ? "\"2\":2,\"20\":20," : "\"2\":2,"));
  }
  /* A bad key past the fast path is still reported. */
  expect_encoding_error(f,
                        "(function() local t = {} for i = 1, 40 do t['k' .. i] = i end "
                        "t[true] = 1 return t end)()",
                        "cannot encode a boolean key");
}

static void test_encode_floats(void **state) {
  fixture *f = *state;
  expect_encoding(f, "0.1", "{\"v\":0.1}");
  expect_encoding(f, "3.0", "{\"v\":3.0}");
  expect_encoding(f, "-2.5", "{\"v\":-2.5}");
  expect_encoding(f, "1e300", "{\"v\":1e+300}");
  expect_encoding(f, "-0.0", "{\"v\":-0.0}");
  expect_encoding(f, "2^53", "{\"v\":9007199254740992.0}");
  expect_encoding(f, "1e16", "{\"v\":1e+16}");
  /* Floats stay floats and read back exactly. */
  static const char *exprs[] = {"1/3", "0.1 + 0.2", "5e-324", "1.7976931348623157e308",
                                "123456.789", "-1e-7"};
  for (size_t i = 0; i < IXR_ARRAY_SIZE(exprs); i++) {
    lua_State *L = f->L;
    char out[256], err[128];
    push_expr(L, exprs[i]);
    double want = lua_tonumber(L, -1);
    assert_int_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
    decode_ok(f, out);
    lua_getfield(L, -1, "v");
    assert_false(lua_isinteger(L, -1));
    if (lua_tonumber(L, -1) != want) fail_msg("%s -> %s", exprs[i], out);
    lua_settop(L, 0);
  }
}

/* An empty array read from JSON is written back as [] (it is marked);
 * an empty object stays {}, and so does an empty table made in Lua. */
static void test_empty_arrays_round_trip(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  decode_ok(f, "{\"v\":{\"a\":[],\"o\":{},\"n\":[[],{},[[]]]}}");
  lua_getfield(L, -1, "v");
  lua_remove(L, -2);
  char out[256], err[128];
  assert_int_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  assert_string_equal(out, "{\"v\":{\"a\":[],\"n\":[[],{},[[]]],\"o\":{}}}");
  lua_newtable(L);
  assert_int_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  assert_string_equal(out, "{\"v\":{}}");
}

/* A host program that calls setlocale() with a locale whose decimal point
 * is ',' still gets JSON numbers (printf would write 1,5: an array of one
 * float would read back as two numbers). The locale is made for the test
 * with localedef (Debian's locales package, which make test installs). */
static void test_encode_floats_in_a_comma_locale(void **state) {
  fixture *f = *state;
  char dir[] = "/tmp/ixr-locale-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
  if (system(cmd) != 0) fail_msg("localedef could not make de_DE.UTF-8 (package locales)");
  setenv("LOCPATH", dir, 1);
  assert_non_null(setlocale(LC_NUMERIC, "de_DE.UTF-8"));
  assert_string_equal(nl_langinfo(RADIXCHAR), ",");
  expect_encoding(f, "{ 1.5, 2.0, 1e300, -0.25 }", "{\"v\":[1.5,2.0,1e+300,-0.25]}");
  expect_encoding(f, "{ price = 0.1 + 0.2 }", "{\"v\":{\"price\":0.30000000000000004}}");
  setlocale(LC_NUMERIC, "C");
  unsetenv("LOCPATH");
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_encode_errors(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  /* [1] and ["1"] would be the same JSON key twice, in an order that
   * varies from run to run */
  expect_encoding_error(f, "{ [1] = 'int', ['1'] = 'str' }", "key '1' is both a number and a string key");
  expect_encoding_error(f, "(function() local t = {} for i = 1, 40 do t['k' .. i] = i end "
                           "t[7] = 1 t['7'] = 2 return t end)()",
                        "key '7' is both");
  expect_encoding_error(f, "0/0", "NaN");
  expect_encoding_error(f, "1/0", "infinity");
  expect_encoding_error(f, "-1/0", "infinity");
  expect_encoding_error(f, "{ 1, 2, { x = 0/0 } }", "NaN");
  expect_encoding_error(f, "function() end", "function");
  expect_encoding_error(f, "{ f = function() end }", "function");
  expect_encoding_error(f, "{ [true] = 1 }", "boolean key");
  expect_encoding_error(f, "{ [1.5] = 1 }", "number key");
  expect_encoding_error(f, "(function() local t = {}; t.self = t; return t end)()",
                        "nesting");
  expect_encoding_error(f, "(function() local t = { 1 }; t[2] = t; return t end)()",
                        "nesting");
  /* Invalid UTF-8, in values and in keys, including what yajl alone lets
   * through (overlong forms, surrogates). */
  expect_encoding_error(f, "'\\xff'", "UTF-8");
  expect_encoding_error(f, "'a\\xc3'", "UTF-8");
  expect_encoding_error(f, "'\\xc0\\x80'", "UTF-8");
  expect_encoding_error(f, "'\\xed\\xa0\\x80'", "UTF-8");
  expect_encoding_error(f, "{ ok = { '\\xf4\\x90\\x80\\x80' } }", "UTF-8");
  expect_encoding_error(f, "{ ['\\xff'] = 'v' }", "UTF-8");
  expect_encoding_error(f, "{ ['\\xc0\\x80'] = 1 }", "UTF-8");
  /* A userdata and a thread. */
  lua_newuserdatauv(L, 8, 0);
  char out[256], err[128];
  assert_int_not_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  assert_non_null(strstr(err, "userdata"));
  lua_newthread(L);
  assert_int_not_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  assert_non_null(strstr(err, "thread"));

  /* ixr__jw_str refuses invalid UTF-8 the same way. */
  const char *line;
  size_t len;
  ixr__jw_begin(f->w);
  ixr__jw_str(f->w, "a", "\xc0\x80", 2);
  ixr__jw_end(f->w, &line, &len);
  assert_true(ixr__jw_failed(f->w));
  ixr__jw_begin(f->w);
  ixr__jw_str(f->w, "a", "\xff", 1);
  ixr__jw_end(f->w, &line, &len);
  assert_true(ixr__jw_failed(f->w));

  /* After a failure half way through, the next line starts clean. */
  push_expr(L, "{ a = 1, b = { c = { 1, 2, function() end } } }");
  assert_int_not_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  expect_encoding(f, "{ a = 1 }", "{\"v\":{\"a\":1}}");
}

/* Deep but finite: 64 tables under the line's object are fine. */
static void test_encode_depth(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  char out[1024], err[128];
  push_expr(L, "(function() local t = 1; for i = 1, 64 do t = { t } end; return t end)()");
  assert_int_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  char *want_v = nested("[", "1", "]", 64);
  char want[1024];
  snprintf(want, sizeof(want), "{\"v\":%s}", want_v);
  free(want_v);
  assert_string_equal(out, want);
  push_expr(L, "(function() local t = 1; for i = 1, 200 do t = { t } end; return t end)()");
  assert_int_not_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  assert_non_null(strstr(err, "nesting"));
}

static void test_encode_escaping(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  expect_encoding(f, "'say \"hi\"'", "{\"v\":\"say \\\"hi\\\"\"}");
  expect_encoding(f, "'back\\\\slash'", "{\"v\":\"back\\\\slash\"}");
  expect_encoding(f, "'a\\nb\\rc\\td'", "{\"v\":\"a\\nb\\rc\\td\"}");
  expect_encoding(f, "'\\0'", "{\"v\":\"\\u0000\"}");
  expect_encoding(f, "'/'", "{\"v\":\"/\"}");
  expect_encoding(f, "'h\\xc3\\xa9 \\xf0\\x9f\\x98\\x80'",
                  "{\"v\":\"h\xc3\xa9 \xf0\x9f\x98\x80\"}");
  expect_encoding(f, "{ ['k\"\\n'] = 1 }", "{\"v\":{\"k\\\"\\n\":1}}");

  /* Every control character is escaped, and everything reads back. */
  char out[4096], err[128];
  char all[160];
  size_t n = 0;
  for (int c = 0; c < 0x80; c++) all[n++] = (char)c;
  memcpy(all + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
  n += 9;
  lua_pushlstring(L, all, n);
  assert_int_equal(encode_top(f, out, sizeof(out), err, sizeof(err)), 0);
  for (const char *p = out; *p; p++) assert_true((unsigned char)*p >= 0x20);
  decode_ok(f, out);
  expect_str_field(L, "v", all, n);
  lua_settop(L, 0);
}

/* The writer's exact bytes, which are those yajl_gen wrote before it: the
 * golden tests and every consumer of the lines depend on them. */
static void test_encode_exact_bytes(void **state) {
  fixture *f = *state;
  const char *line;
  size_t len;
  char all[128];
  for (int c = 0; c < 128; c++) all[c] = (char)c;
  ixr__jw_begin(f->w);
  ixr__jw_str(f->w, "s", all, sizeof(all));
  ixr__jw_int(f->w, "max", INT64_MAX);
  ixr__jw_int(f->w, "min", INT64_MIN);
  ixr__jw_int(f->w, "zero", 0);
  ixr__jw_int(f->w, "neg", -1);
  ixr__jw_bool(f->w, "t", true);
  ixr__jw_bool(f->w, "f", false);
  ixr__jw_double(f->w, "d", 0.5);
  ixr__jw_double(f->w, "inf", INFINITY);
  ixr__jw_end(f->w, &line, &len);
  assert_false(ixr__jw_failed(f->w));
  const char *want =
      "{\"s\":\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n"
      "\\u000B\\f\\r\\u000E\\u000F\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015"
      "\\u0016\\u0017\\u0018\\u0019\\u001A\\u001B\\u001C\\u001D\\u001E\\u001F"
      " !\\\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`"
      "abcdefghijklmnopqrstuvwxyz{|}~\x7f\","
      "\"max\":9223372036854775807,\"min\":-9223372036854775808,\"zero\":0,"
      "\"neg\":-1,\"t\":true,\"f\":false,\"d\":0.5,\"inf\":0.0}";
  assert_int_equal(len, strlen(want));
  assert_memory_equal(line, want, len);
}

/* A string that grows six-fold when escaped, past the writer's buffer, and
 * UTF-8 checked on the way. */
static void test_encode_big_strings(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  enum { N = 100000 };
  char *s = malloc(N);
  assert_non_null(s);
  for (size_t i = 0; i < N; i++) s[i] = (char)(i % 2 ? 0x01 : 'a');
  const char *line;
  size_t len;
  char err[128];
  lua_pushlstring(L, s, N);
  ixr__jw_begin(f->w);
  assert_int_equal(ixr__jw_lua(f->w, "v", L, -1, err, sizeof(err)), 0);
  lua_pop(L, 1);
  ixr__jw_end(f->w, &line, &len);
  assert_int_equal(len, strlen("{\"v\":\"\"}") + N / 2 + N / 2 * 6);
  decode_ok_n(f, line, len);
  expect_str_field(L, "v", s, N);
  lua_settop(L, 0);
  /* Invalid UTF-8 at the very end of a long string. */
  memset(s, 'x', N);
  s[N - 1] = (char)0xC3;
  lua_pushlstring(L, s, N);
  ixr__jw_begin(f->w);
  assert_int_not_equal(ixr__jw_lua(f->w, "v", L, -1, err, sizeof(err)), 0);
  assert_non_null(strstr(err, "UTF-8"));
  lua_settop(L, 0);
  free(s);
}

/* A member that fails to encode is left out whole: the line stays valid
 * JSON (the caller is told, and may still use it). */
static void test_encode_failed_member(void **state) {
  fixture *f = *state;
  lua_State *L = f->L;
  const char *line;
  size_t len;
  char err[128];
  ixr__jw_begin(f->w);
  ixr__jw_str(f->w, "a", "x", 1);
  size_t at = ixr__jw_len(f->w);
  push_expr(L, "{ 1, 2, { ok = true, f = print } }");
  assert_int_not_equal(ixr__jw_lua(f->w, "v", L, -1, err, sizeof(err)), 0);
  lua_pop(L, 1);
  assert_int_equal(ixr__jw_len(f->w), at);
  ixr__jw_str(f->w, "b", "y", 1);
  ixr__jw_end(f->w, &line, &len);
  assert_true(ixr__jw_failed(f->w));
  const char *want = "{\"a\":\"x\",\"b\":\"y\"}";
  assert_int_equal(len, strlen(want));
  assert_memory_equal(line, want, len);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_decode_event),
      T(test_decode_nested),
      T(test_decode_null),
      T(test_decode_numbers),
      T(test_decode_duplicate_keys),
      T(test_decode_strings),
      T(test_decode_invalid_utf8),
      T(test_decode_malformed),
      T(test_decode_top_level_values),
      T(test_decode_nesting_limit),
      T(test_decode_long_string),
      T(test_decode_failure_restores_stack),
      T(test_decode_escape_edges),
      T(test_decode_big_containers),
      T(test_decode_number_edges),
      T(test_decode_truncated_everywhere),
      T(test_decode_utf8_classes),
      T(test_decode_big_escaped_string),
      T(test_decode_messages),
      T(test_decode_whitespace),
      T(test_encode_scalars_and_fields),
      T(test_encode_null),
      T(test_decode_key_cache),
    T(test_encode_tables),
      T(test_encode_floats),
      T(test_encode_floats_in_a_comma_locale),
      T(test_empty_arrays_round_trip),
      T(test_encode_errors),
      T(test_encode_depth),
      T(test_encode_escaping),
      T(test_encode_exact_bytes),
      T(test_encode_big_strings),
      T(test_encode_failed_member),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
