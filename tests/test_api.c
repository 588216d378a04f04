/* test_api.c: every public function of ixr.h, used as documented and
 * misused: NULL and invalid arguments return errors rather than crash,
 * calls made from inside callbacks (re-entrant feeds, close, reload,
 * advance), closing while work is pending, and the host's own loop.
 *
 * Callbacks only record; every assertion is made after the ixr call or
 * uv_run() that ran them returns (cmocka unwinds with longjmp, and so does
 * Lua). Every test that runs a loop ends with uv_loop_close() == 0. */
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "testutil.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *const ROUTE_LUA =
    "return {\n"
    "  start = function(session, event)\n"
    "    local ok = session:route({ target = 'A' },\n"
    "                             { timeout = tonumber(event.data.timeout) or 30 })\n"
    "    if not ok then session:queue({ queue = 'Q' }, { timeout = 30 }) end\n"
    "  end,\n"
    "}\n";

/* Emits the event's data back as the args of an "echo" action, then waits. */
static const char *const ECHO_LUA =
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    session:action('echo', { name = event.name, data = event.data })\n"
    "    session:wait('never')\n"
    "  end,\n"
    "}\n";

/* session:after() with a real clock: an action 10 ms later. */
static const char *const LATER_LUA =
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    session:after(0.01, function(s) s:action('later') end)\n"
    "    session:wait('never')\n"
    "  end,\n"
    "}\n";

/* ---- fixture: a handlers directory and a capture ----------------------- */

typedef struct fixture {
  char *dir;
  tcap cap;
  ixr_runtime *rt;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  f->dir = tdir_new();
  tdir_write(f->dir, "default.lua", ROUTE_LUA);
  tdir_write(f->dir, "echo.lua", ECHO_LUA);
  tdir_write(f->dir, "later.lua", LATER_LUA);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f->rt != NULL) ixr_close(f->rt);
  tcap_free(&f->cap);
  tdir_remove(f->dir);
  free(f);
  return 0;
}

/* Options for a runtime on its own loop, output and log into f->cap. */
static void opts(fixture *f, ixr_options *o, ixr_clock clock) {
  ixr_options_init(o);
  o->handlers_dir = f->dir;
  o->clock = clock;
  o->on_output = tcap_output;
  o->output_ud = &f->cap;
  o->on_log = tcap_logcb;
  o->log_ud = &f->cap;
}

static void dump_and_fail(fixture *f, const char *why) {
  fprintf(stderr, "%s\n", why);
  tcap_dump(&f->cap);
  fail();
}

#define EXPECT_LINE(f, ...)                                             \
  do {                                                                  \
    if (tcap_find(&(f)->cap, 0, __VA_ARGS__, NULL) < 0)                 \
      dump_and_fail((f), "no line with: " #__VA_ARGS__);                \
  } while (0)

static const char *const PRESENT_I1 =
    "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I1\"}}\n";

/* ---- options, versions, error codes ------------------------------------ */

static void test_options_init_defaults(void **state) {
  (void)state;
  ixr_options_init(NULL); /* no crash */
  ixr_options o;
  memset(&o, 0xab, sizeof(o));
  ixr_options_init(&o);
  assert_string_equal(o.handlers_dir, "handlers");
  assert_null(o.lua_dir);
  assert_int_equal(o.clock, IXR_CLOCK_REAL);
  assert_null(o.loop);
  assert_null(o.on_output);
  assert_null(o.on_log);
  assert_null(o.on_input);
  assert_null(o.on_trace);
  assert_null(o.on_setup);
  assert_int_equal(o.log_level, IXR_LOG_INFO);
  assert_int_equal(o.max_line, 1024 * 1024);
  assert_int_equal(o.max_held, 100000);
  assert_int_equal(o.max_instructions, 10000000);
  assert_true(o.max_memory == (size_t)4 << 30);
  assert_int_equal(o.max_call_growth, 0);
}

static void test_versions(void **state) {
  (void)state;
  assert_string_equal(ixr_version(), IXR_VERSION_STRING);
  assert_int_equal(ixr_version_hex(), IXR_VERSION_HEX);
  char v[32];
  snprintf(v, sizeof(v), "%d.%d.%d", IXR_VERSION_MAJOR, IXR_VERSION_MINOR,
           IXR_VERSION_PATCH);
  assert_string_equal(v, IXR_VERSION_STRING);
}

static void test_error_codes(void **state) {
  (void)state;
  static const struct {
    int code;
    const char *name;
  } codes[] = {
#define XX(name, msg) {IXR_E##name, "E" #name},
      IXR_ERRNO_MAP(XX)
#undef XX
  };
  for (size_t i = 0; i < NELEM(codes); i++) {
    assert_true(codes[i].code < 0);
    assert_string_equal(ixr_err_name(codes[i].code), codes[i].name);
    const char *msg = ixr_strerror(codes[i].code);
    assert_non_null(msg);
    assert_string_not_equal(msg, "unknown error");
    for (size_t j = 0; j < i; j++) assert_int_not_equal(codes[i].code, codes[j].code);
  }
  /* Codes that are not ixr's still get a string, never NULL. */
  static const int odd[] = {1, -1, 12345, INT_MIN, INT_MAX, IXR__ERR_FIRST,
                            IXR__ERR_LAST};
  for (size_t i = 0; i < NELEM(odd); i++) {
    assert_non_null(ixr_strerror(odd[i]));
    assert_non_null(ixr_err_name(odd[i]));
  }
  assert_non_null(ixr_strerror(0));
}

/* ---- ixr_new ------------------------------------------------------------ */

static void test_new_rejects_bad_options(void **state) {
  fixture *f = *state;
  ixr_options o;
  ixr_runtime *rt = (ixr_runtime *)&o; /* must be reset to NULL */

  assert_int_equal(ixr_new(NULL, NULL), IXR_EINVAL);
  opts(f, &o, IXR_CLOCK_MANUAL);
  assert_int_equal(ixr_new(NULL, &o), IXR_EINVAL);

  o.max_line = 0;
  assert_int_equal(ixr_new(&rt, &o), IXR_EINVAL);
  assert_null(rt);

  opts(f, &o, IXR_CLOCK_MANUAL);
  o.handlers_dir = NULL;
  rt = (ixr_runtime *)&o;
  assert_int_equal(ixr_new(&rt, &o), IXR_EINVAL);
  assert_null(rt);

  opts(f, &o, (ixr_clock)7);
  assert_int_equal(ixr_new(&rt, &o), IXR_EINVAL);
  assert_null(rt);

  opts(f, &o, IXR_CLOCK_MANUAL);
  o.log_level = (ixr_log_level)9;
  assert_int_equal(ixr_new(&rt, &o), IXR_EINVAL);
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.log_level = (ixr_log_level)-1;
  assert_int_equal(ixr_new(&rt, &o), IXR_EINVAL);
  assert_null(rt);
}

static void test_new_without_standard_library(void **state) {
  fixture *f = *state;
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.lua_dir = "/nonexistent/ixr-lua";
  ixr_runtime *rt = (ixr_runtime *)&o;
  assert_int_equal(ixr_new(&rt, &o), IXR_ESTRATEGY);
  assert_null(rt);
  assert_non_null(f->cap.log);
  assert_non_null(strstr(f->cap.log, "ixr.multimedia"));
}

/* f->rt on the manual clock, its log into cb(ud) from level on. */
static void new_logging(fixture *f, ixr_log_cb cb, void *ud, ixr_log_level level) {
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_log = cb;
  o.log_ud = ud;
  o.log_level = level;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
}

/* The standard library cannot load under a cap far too small: that is no
 * strategy's fault, and ixr_new says so (it used to say IXR_ESTRATEGY). */
static void test_new_under_a_tiny_memory_cap(void **state) {
  fixture *f = *state;
  size_t caps[] = {1000, 64 * 1024};
  for (size_t i = 0; i < NELEM(caps); i++) {
    ixr_options o;
    opts(f, &o, IXR_CLOCK_MANUAL);
    o.max_memory = caps[i];
    ixr_runtime *rt = NULL;
    int rc = ixr_new(&rt, &o);
    assert_int_equal(rc, IXR_ENOMEM);
    assert_null(rt);
  }
}

typedef struct logcheck {
  int records, with_newline;
} logcheck;

static void logcheck_cb(void *ud, ixr_log_level level, const char *msg) {
  logcheck *c = ud;
  (void)level;
  c->records++;
  if (strchr(msg, '\n') != NULL || msg[0] == '\0') c->with_newline++;
}

/* A log record is one line (ixr.h): several broken files at start and at a
 * reload used to come as one message with newlines in it. */
static void test_log_records_are_single_lines(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "a.lua", "return {\n  start = \n");
  tdir_write(f->dir, "b.lua", "return 5\n");
  tdir_write(f->dir, "c.lua", "error('two\\nlines')\n");
  logcheck c = {0, 0};
  ixr_options defaults;
  ixr_options_init(&defaults);
  new_logging(f, logcheck_cb, &c, defaults.log_level);
  assert_true(c.records >= 3);
  tdir_write(f->dir, "default.lua", "return {\n");
  assert_int_equal(ixr_reload(f->rt, NULL), IXR_ESTRATEGY);
  assert_true(c.records >= 8);
  assert_int_equal(c.with_newline, 0);
}

static bool utf8_whole(const char *s);

typedef struct logkeep {
  int records, broken;
  char last[4096];
} logkeep;

static void logkeep_cb(void *ud, ixr_log_level level, const char *msg);

/* Newlines in a message join its lines with " | " in one record, which
 * keeps the session's ids; one cut for length is cut at a character. */
static void test_log_record_keeps_context_and_characters(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "logs.lua",
             "return { start = function(session, event)\n"
             "  session:log('info', 'first\\r\\nsecond\\nthird\\n')\n"
             "  for n = 1990, 2050 do print(string.rep('a', n) .. '\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80') end\n"
             "end }\n");
  logkeep k;
  memset(&k, 0, sizeof(k));
  new_logging(f, logkeep_cb, &k, IXR_LOG_INFO);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"L\",\"strategy\":\"logs\"}}");
  assert_true(k.records >= 62);
  assert_int_equal(k.broken, 0);
}

/* True if s is valid UTF-8 (enough for the test: lead and continuation
 * bytes in place). */
static bool utf8_whole(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    int n = *p < 0x80 ? 0 : *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : *p >= 0xC0 ? 1 : -1;
    if (n < 0) return false;
    p++;
    for (int i = 0; i < n; i++, p++)
      if ((*p & 0xC0) != 0x80) return false;
  }
  return true;
}

static void logkeep_cb(void *ud, ixr_log_level level, const char *msg) {
  logkeep *k = ud;
  (void)level;
  k->records++;
  if (strchr(msg, '\n') != NULL || strchr(msg, '\r') != NULL || !utf8_whole(msg)) k->broken++;
  if (strstr(msg, "first") != NULL &&
      (strstr(msg, "L") == NULL || strstr(msg, "first | second | third") == NULL))
    k->broken++;
  snprintf(k->last, sizeof(k->last), "%s", msg);
}

/* A reload's errors longer than the result's buffer are cut at a character,
 * and the ixr.reload reply keeps the characters (it used to turn every byte
 * outside ASCII into '?' once the text was cut inside one). */
static void test_reload_errors_cut_at_a_character(void **state) {
  fixture *f = *state;
  f->rt = trt_new(f->dir, &f->cap);
  char src[8192] = "error('";
  size_t n = strlen(src);
  for (int i = 0; i < 2100; i++, n += 2) memcpy(src + n, "\xc3\xa9", 2);
  memcpy(src + n, "')\n", 4);
  tdir_write(f->dir, "x.lua", src);
  ixr_reload_result res;
  assert_int_equal(ixr_reload(f->rt, &res), IXR_ESTRATEGY);
  assert_true(strlen(res.errors) > 4000);
  assert_true(utf8_whole(res.errors));
  tfeed(f->rt, "{\"name\":\"ixr.reload\"}");
  int r = tcap_find(&f->cap, 0, "\"reply\"", "\"errors\"", NULL);
  assert_true(r >= 0);
  assert_non_null(strstr(f->cap.lines[r], "x.lua:1: \xc3\xa9\xc3\xa9"));
  assert_null(strstr(f->cap.lines[r], "??"));
}

/* JSON null in an array prints as "null" (tostring), the same on every run;
 * its metatable is nobody's to change. */
static void test_null_prints_as_null(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "nulls.lua",
             "local core = require('ixr.core')\n"
             "return { start = function(session, event)\n"
             "  local v = event.data.arr[1]\n"
             "  session:action('x', { s = tostring(v), same = v == core.null,\n"
             "                        mt = tostring(getmetatable(v)),\n"
             "                        f = string.format('%s', core.null) })\n"
             "end }\n");
  f->rt = trt_new(f->dir, &f->cap);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"N\","
               "\"strategy\":\"nulls\",\"arr\":[null,1]}}");
  EXPECT_LINE(f, "\"action\":\"x\"", "\"args\":{\"f\":\"null\",\"mt\":\"false\",\"s\":\"null\",\"same\":true}");
}

/* A missing handlers directory does not stop the start (strategies may be
 * added and reloaded later); it is logged, and sessions cannot start. */
static void test_new_without_handlers_dir(void **state) {
  fixture *f = *state;
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.handlers_dir = "/nonexistent/ixr-handlers";
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  assert_non_null(f->cap.log);
  assert_non_null(strstr(f->cap.log, "/nonexistent/ixr-handlers"));
  assert_int_equal(ixr_feed(f->rt, PRESENT_I1, strlen(PRESENT_I1)), 0);
  EXPECT_LINE(f, "\"strategy_not_found\"");
}

/* A broken strategy does not stop the start either: it answers
 * strategy_error, and the other strategies work. */
static void test_new_with_broken_strategy(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "broken.lua", "return {\n  start = \n");
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  assert_non_null(strstr(f->cap.log, "broken.lua:"));
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"B\",\"strategy\":\"broken\"}}");
  EXPECT_LINE(f, "\"strategy_error\"", "broken.lua:");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"G\"}}");
  EXPECT_LINE(f, "\"started\"", "\"G\"");
}

/* ---- ixr_feed, ixr_feed_end -------------------------------------------- */

static void test_feed_misuse(void **state) {
  fixture *f = *state;
  assert_int_equal(ixr_feed(NULL, "x\n", 2), IXR_EINVAL);
  assert_int_equal(ixr_feed(NULL, NULL, 0), IXR_EINVAL);
  assert_int_equal(ixr_feed_end(NULL), IXR_EINVAL);
  f->rt = trt_new(f->dir, &f->cap);
  assert_int_equal(ixr_feed(f->rt, NULL, 5), IXR_EINVAL);
  assert_int_equal(ixr_feed(f->rt, NULL, 0), 0);
  assert_int_equal(ixr_feed(f->rt, "", 0), 0);
  assert_int_equal(ixr_feed_end(f->rt), 0); /* nothing pending */
  assert_int_equal(ixr_feed_end(f->rt), 0); /* twice */
  assert_int_equal(f->cap.n, 0);
  /* Bytes that are not JSON, or not UTF-8, are an error line, no more. */
  static const char junk[] = "\xff\xfe\x00garbage\n{\"name\":\n\n";
  assert_int_equal(ixr_feed(f->rt, junk, sizeof(junk) - 1), 0);
  assert_int_equal(f->cap.n, 2);
  EXPECT_LINE(f, "\"bad_json\"", "\"line\":1");
  EXPECT_LINE(f, "\"bad_json\"", "\"line\":2");
}

/* Any split of the input gives the same output; a last line without a
 * newline waits for ixr_feed_end(), and feeding goes on after it. */
static void test_feed_any_split(void **state) {
  fixture *f = *state;
  static const char input[] =
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I1\"}}\n"
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I2\"}}\r\n"
      "\n"
      "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"I1\",\"requestid\":\"r1\"}}";
  f->rt = trt_new(f->dir, &f->cap);
  assert_int_equal(ixr_feed(f->rt, input, sizeof(input) - 1), 0);
  assert_int_equal(f->cap.n, 4); /* the last line waits for its newline */
  assert_int_equal(ixr_feed_end(f->rt), 0);
  assert_int_equal(f->cap.n, 5);
  size_t whole = f->cap.n;
  char **lines = f->cap.lines;
  f->cap.lines = NULL;
  f->cap.n = f->cap.cap = 0;
  ixr_close(f->rt);

  f->rt = trt_new(f->dir, &f->cap);
  for (size_t i = 0; i < sizeof(input) - 1; i++)
    assert_int_equal(ixr_feed(f->rt, input + i, 1), 0);
  assert_int_equal(ixr_feed_end(f->rt), 0);
  assert_int_equal(f->cap.n, whole);
  for (size_t i = 0; i < whole; i++) {
    assert_string_equal(f->cap.lines[i], lines[i]);
    free(lines[i]);
  }
  free(lines);

  /* After ixr_feed_end() the runtime takes more input. */
  tfeed(f->rt, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"I2\",\"requestid\":\"r2\"}}");
  EXPECT_LINE(f, "\"ended\"", "\"I2\"", "completed");
}

/* ---- ixr_feed_event ------------------------------------------------------ */

static ixr_field ftype(const char *key, ixr_value_type t) {
  ixr_field x;
  memset(&x, 0, sizeof(x));
  x.key = key;
  x.type = t;
  return x;
}

static ixr_field fstr(const char *key, const char *s) {
  ixr_field x = ftype(key, IXR_V_STRING);
  x.str = s;
  return x;
}

static ixr_field fstrn(const char *key, const char *s, size_t len) {
  ixr_field x = fstr(key, s);
  x.len = len;
  return x;
}

static ixr_field fint(const char *key, int64_t i) {
  ixr_field x = ftype(key, IXR_V_INT);
  x.i = i;
  return x;
}

static ixr_field fdbl(const char *key, double d) {
  ixr_field x = ftype(key, IXR_V_DOUBLE);
  x.d = d;
  return x;
}

static ixr_field fbool(const char *key, int b) {
  ixr_field x = ftype(key, IXR_V_BOOL);
  x.b = b;
  return x;
}

static void test_feed_event_values(void **state) {
  fixture *f = *state;
  f->rt = trt_new(f->dir, &f->cap);
  ixr_field d[] = {
      fstr("interactionid", "E1"),
      fstr("strategy", "echo"),
      fint("n", -42),
      fint("big", INT64_MAX),
      fdbl("x", 1.5),
      fbool("yes", 1),
      fbool("no", 0),
      ftype("gone", IXR_V_NULL), /* as in JSON: a null member is absent */
      fstrn("part", "abcdef", 3),
      fstrn("nul", "a\0b", 3),
      ftype("obj", IXR_V_OBJECT),
      fstr("k", "v"),
      ftype("inner", IXR_V_ARRAY),
      fint(NULL, 1), /* keys are ignored in arrays */
      fstr("ignored", "two"),
      ftype(NULL, IXR_V_NULL),
      ftype(NULL, IXR_V_OBJECT),
      ftype(NULL, IXR_V_END),
      ftype(NULL, IXR_V_END),
      ftype(NULL, IXR_V_END),
      ftype("empty", IXR_V_ARRAY),
      ftype(NULL, IXR_V_END),
  };
  assert_int_equal(ixr_feed_event(f->rt, "interaction.present", d, NELEM(d)), 0);
  int i = tcap_find(&f->cap, 0, "\"action\":\"echo\"", NULL);
  if (i < 0) dump_and_fail(f, "no echo");
  const char *l = f->cap.lines[i];
  const char *frags[] = {
      "\"name\":\"interaction.present\"", "\"n\":-42",
      "\"big\":9223372036854775807", "\"x\":1.5", "\"yes\":true", "\"no\":false",
      "\"part\":\"abc\"", "\"nul\":\"a\\u0000b\"", "\"k\":\"v\"",
      "\"inner\":[1,\"two\",null,{}]", "\"interactionid\":\"E1\"",
      "\"empty\":[]"};
  for (size_t k = 0; k < NELEM(frags); k++)
    if (strstr(l, frags[k]) == NULL) {
      fprintf(stderr, "missing %s in\n  %s\n", frags[k], l);
      fail();
    }
  assert_null(strstr(l, "gone"));
  assert_null(strstr(l, "ignored"));

  /* No data at all: a valid call, and the event is a bad_event. */
  assert_int_equal(ixr_feed_event(f->rt, "interaction.present", NULL, 0), 0);
  EXPECT_LINE(f, "\"bad_event\"", "interactionid");

  /* An interaction id with a NUL byte in it: the output carries its length. */
  ixr_field z[] = {fstrn("interactionid", "A\0B", 3)};
  tcap_clear(&f->cap);
  assert_int_equal(ixr_feed_event(f->rt, "interaction.present", z, 1), 0);
  EXPECT_LINE(f, "\"started\"", "\"A\\u0000B\"");
  ixr_session_info si;
  assert_int_equal(ixr_session_find(f->rt, "A\0B", 3, &si), 0);
  assert_int_equal(ixr_session_find(f->rt, "A", 1, &si), IXR_ENOTFOUND);
}

/* Captures the interactionid_len of started lines. */
typedef struct lencap {
  size_t len;
  int n;
} lencap;

static void lencap_output(void *ud, const ixr_output *out) {
  lencap *c = ud;
  if (out->type == IXR_OUT_SESSION && strcmp(out->state, "started") == 0) {
    c->len = out->interactionid_len;
    c->n++;
  }
}

static void test_output_interactionid_len(void **state) {
  fixture *f = *state;
  lencap c = {0, 0};
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_output = lencap_output;
  o.output_ud = &c;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  ixr_field z[] = {fstrn("interactionid", "A\0B\0", 4)};
  assert_int_equal(ixr_feed_event(f->rt, "interaction.present", z, 1), 0);
  assert_int_equal(c.n, 1);
  assert_int_equal(c.len, 4);
}

static void test_feed_event_rejects_malformed(void **state) {
  fixture *f = *state;
  f->rt = trt_new(f->dir, &f->cap);
  ixr_field ok[] = {fstr("interactionid", "M")};
  assert_int_equal(ixr_feed_event(NULL, "interaction.present", ok, 1), IXR_EINVAL);
  assert_int_equal(ixr_feed_event(f->rt, NULL, ok, 1), IXR_EINVAL);
  assert_int_equal(ixr_feed_event(f->rt, "interaction.present", NULL, 1), IXR_EINVAL);
  assert_int_equal(ixr_feed_event(f->rt, "bad\xff", ok, 1), IXR_EINVAL);

  ixr_field nullkey[] = {fstr(NULL, "x")};
  ixr_field badkey[] = {fstr("k\xc3", "x")};
  ixr_field badstr[] = {fstr("interactionid", "M"), fstr("s", "\xed\xa0\x80")};
  ixr_field nullstr[] = {fstr("interactionid", NULL)};
  ixr_field badtype[] = {ftype("t", (ixr_value_type)0)};
  ixr_field badtype2[] = {ftype("t", (ixr_value_type)99)};
  ixr_field unclosed[] = {fstr("interactionid", "M"), ftype("o", IXR_V_OBJECT),
                          fint("a", 1)};
  ixr_field stray_end[] = {fstr("interactionid", "M"), ftype(NULL, IXR_V_END)};
  ixr_field nested_nullkey[] = {fstr("interactionid", "M"), ftype("o", IXR_V_OBJECT),
                                fint(NULL, 1), ftype(NULL, IXR_V_END)};
  ixr_field nan[] = {fstr("interactionid", "M"), fdbl("x", NAN)};
  ixr_field inf[] = {fstr("interactionid", "M"), fdbl("x", INFINITY)};
  struct {
    const ixr_field *d;
    size_t n;
    const char *what;
  } bad[] = {
      {nullkey, NELEM(nullkey), "NULL key"},
      {badkey, NELEM(badkey), "key not UTF-8"},
      {badstr, NELEM(badstr), "string not UTF-8 (a surrogate)"},
      {nullstr, NELEM(nullstr), "NULL string"},
      {badtype, NELEM(badtype), "type 0"},
      {badtype2, NELEM(badtype2), "type 99"},
      {unclosed, NELEM(unclosed), "object without END"},
      {stray_end, NELEM(stray_end), "END at the top"},
      {nested_nullkey, NELEM(nested_nullkey), "NULL key in a nested object"},
      {nan, NELEM(nan), "NaN"},
      {inf, NELEM(inf), "infinity"},
  };
  for (size_t i = 0; i < NELEM(bad); i++) {
    int rc = ixr_feed_event(f->rt, "interaction.present", bad[i].d, bad[i].n);
    if (rc != IXR_EINVAL) {
      fprintf(stderr, "%s: got %d\n", bad[i].what, rc);
      fail();
    }
  }

  /* 64 levels of nesting are the limit. */
  enum { DEEP = 70 };
  ixr_field deep[1 + 2 * DEEP];
  deep[0] = fstr("interactionid", "M");
  for (int i = 0; i < DEEP; i++) {
    deep[1 + i] = ftype("o", IXR_V_OBJECT);
    deep[1 + DEEP + i] = ftype(NULL, IXR_V_END);
  }
  assert_int_equal(ixr_feed_event(f->rt, "interaction.present", deep, NELEM(deep)),
                   IXR_EINVAL);

  /* Nothing was dispatched by any of them. */
  ixr_stats st;
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.events_in, 0);
  assert_int_equal(f->cap.n, 0);
  /* and the runtime works */
  assert_int_equal(ixr_feed_event(f->rt, "interaction.present", ok, 1), 0);
  EXPECT_LINE(f, "\"started\"", "\"M\"");
}

/* ---- calls made from the output callback --------------------------------- */

typedef struct inside {
  ixr_runtime *rt;
  tcap cap;
  int actions;
  int rc_feed_event, rc_feed_bad, rc_feed_end, rc_advance, rc_reload, rc_run;
  int rc_stats, rc_find, rc_register;
  char find_state[16];
  int chain; /* feed another present on each action, this many times */
  int fed;
} inside;

static int cb_fn(lua_State *L) {
  lua_pushliteral(L, "from a callback");
  return 1;
}

static void inside_output(void *ud, const ixr_output *out) {
  inside *x = ud;
  tcap_output(&x->cap, out);
  if (out->type != IXR_OUT_ACTION) return;
  x->actions++;
  if (x->actions == 1) {
    /* A structured event, queued behind the current one. */
    ixr_field d[] = {fstr("interactionid", "I1"), fstr("requestid", "r1")};
    x->rc_feed_event = ixr_feed_event(x->rt, "interaction.route.done", d, 2);
    ixr_field bad[] = {fstr(NULL, "x")};
    x->rc_feed_bad = ixr_feed_event(x->rt, "interaction.present", bad, 1);
    x->rc_feed_end = ixr_feed_end(x->rt);
    x->rc_advance = ixr_advance(x->rt, 1000);
    x->rc_reload = ixr_reload(x->rt, NULL);
    x->rc_run = ixr_run(x->rt); /* would run other events inside this one */
    ixr_stats st;
    x->rc_stats = ixr_get_stats(x->rt, &st);
    ixr_session_info si;
    x->rc_find = ixr_session_find(x->rt, "I1", 2, &si);
    if (x->rc_find == 0) snprintf(x->find_state, sizeof(x->find_state), "%s", si.state);
    x->rc_register = ixr_register(x->rt, "cbmod", "f", cb_fn, NULL);
  }
  if (x->fed < x->chain) {
    char line[160];
    int n = snprintf(line, sizeof(line),
                     "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"C%d\"}}\n",
                     x->fed++);
    ixr_feed(x->rt, line, (size_t)n);
  }
}

/* A runtime on the manual clock whose output goes to `out` (with ud),
 * stored in *slot (where the callback finds it) and returned. */
static ixr_runtime *new_with_output(fixture *f, ixr_output_cb out, void *ud,
                                    ixr_runtime **slot) {
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_output = out;
  o.output_ud = ud;
  assert_int_equal(ixr_new(slot, &o), 0);
  return *slot;
}

static ixr_runtime *inside_new(fixture *f, inside *x) {
  return new_with_output(f, inside_output, x, &x->rt);
}

static void test_calls_from_output_callback(void **state) {
  fixture *f = *state;
  inside x;
  memset(&x, 0, sizeof(x));
  f->rt = inside_new(f, &x);
  assert_int_equal(ixr_feed(f->rt, PRESENT_I1, strlen(PRESENT_I1)), 0);
  assert_int_equal(x.rc_feed_event, 0);
  assert_int_equal(x.rc_feed_bad, IXR_EINVAL);
  assert_int_equal(x.rc_feed_end, IXR_EBUSY);
  assert_int_equal(x.rc_advance, IXR_EBUSY);
  assert_int_equal(x.rc_reload, IXR_EBUSY);
  assert_int_equal(x.rc_run, IXR_EBUSY);
  assert_int_equal(x.rc_stats, 0);
  assert_int_equal(x.rc_find, 0);
  assert_string_equal(x.find_state, "active");
  assert_int_equal(x.rc_register, 0);
  /* the queued event ran after the first one: started, route, ended */
  assert_int_equal(x.cap.n, 3);
  assert_non_null(strstr(x.cap.lines[0], "\"started\""));
  assert_non_null(strstr(x.cap.lines[1], "\"route\""));
  assert_non_null(strstr(x.cap.lines[2], "\"completed\""));
  /* the module registered from the callback is there at run time */
  tdir_write(f->dir, "usecb.lua",
             "return { defaults = 'none', start = function(s)\n"
             "  s:action('cb', { v = require('cbmod').f() }) end }\n");
  static const char use[] =
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"U\",\"strategy\":\"usecb\"}}\n";
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  assert_int_equal(ixr_feed(f->rt, use, sizeof(use) - 1), 0);
  assert_true(tcap_find(&x.cap, 0, "\"cb\"", "from a callback", NULL) > 0);
  tcap_free(&x.cap);
}

/* Re-entrant feeds are queued, not nested: a long chain of them does not
 * grow the C stack, and runs in order. */
static void test_reentrant_chain(void **state) {
  fixture *f = *state;
  inside x;
  memset(&x, 0, sizeof(x));
  x.chain = 500;
  f->rt = inside_new(f, &x);
  assert_int_equal(ixr_feed(f->rt, PRESENT_I1, strlen(PRESENT_I1)), 0);
  ixr_stats st;
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.sessions_started, 501);
  assert_int_equal(x.fed, 500);
  /* in order: C0 started before C1, ... */
  int a = tcap_find(&x.cap, 0, "\"started\"", "\"C0\"", NULL);
  int b = tcap_find(&x.cap, 0, "\"started\"", "\"C1\"", NULL);
  int c = tcap_find(&x.cap, 0, "\"started\"", "\"C499\"", NULL);
  assert_true(a > 0 && b > a && c > b);
  tcap_free(&x.cap);
}

/* ---- input fed from callbacks: order, framing, limits -------------------- */

typedef struct acker {
  ixr_runtime *rt;
  tcap cap;
  const char *ack_iid;   /* acknowledge the route of this interaction */
  const char *feed_on;   /* on this action, feed `feed` */
  const char *feed;
  int rc;
} acker;

static void acker_output(void *ud, const ixr_output *out) {
  acker *a = ud;
  tcap_output(&a->cap, out);
  if (out->type != IXR_OUT_ACTION) return;
  if (a->ack_iid != NULL && strcmp(out->action, "route") == 0 &&
      strcmp(out->interactionid, a->ack_iid) == 0) {
    char ack[200];
    int n = snprintf(ack, sizeof(ack),
                     "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"%s\","
                     "\"requestid\":\"%s\"}}\n",
                     a->ack_iid, out->requestid);
    a->rc = ixr_feed(a->rt, ack, (size_t)n);
  }
  if (a->feed_on != NULL && strcmp(out->action, a->feed_on) == 0)
    a->rc = ixr_feed(a->rt, a->feed, strlen(a->feed));
}

static ixr_runtime *acker_new(fixture *f, acker *a) {
  return new_with_output(f, acker_output, a, &a->rt);
}

/* The host's chunk ends in the middle of line B when the callback of line A
 * feeds an acknowledgement: the ack runs right after A, and B, completed by
 * the next chunk, is intact (the ack used to be joined to B's first bytes,
 * and both were lost as bad_json). */
static void test_callback_feed_beside_a_partial_line(void **state) {
  fixture *f = *state;
  acker a;
  memset(&a, 0, sizeof(a));
  a.ack_iid = "A";
  f->rt = acker_new(f, &a);
  static const char stream[] =
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"A\"}}\n"
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"B\"}}\n";
  size_t cut = strlen(PRESENT_I1) + 20;
  assert_int_equal(ixr_feed(f->rt, stream, cut), 0);
  assert_int_equal(a.rc, 0);
  assert_int_equal(ixr_feed(f->rt, stream + cut, sizeof(stream) - 1 - cut), 0);
  assert_int_equal(a.cap.n, 5);
  assert_non_null(strstr(a.cap.lines[0], "\"started\""));
  assert_non_null(strstr(a.cap.lines[1], "\"route\""));
  assert_non_null(strstr(a.cap.lines[2], "\"ended\",\"session\":\"s1\""));
  assert_non_null(strstr(a.cap.lines[2], "\"completed\""));
  assert_non_null(strstr(a.cap.lines[3], "\"started\",\"session\":\"s2\",\"interactionid\":\"B\""));
  assert_non_null(strstr(a.cap.lines[4], "\"route\""));
  tcap_free(&a.cap);
}

/* A chunk of two whole lines: the ack of A runs before B, as the event
 * after A, not after the whole chunk. */
static void test_callback_feed_runs_right_after_its_event(void **state) {
  fixture *f = *state;
  acker a;
  memset(&a, 0, sizeof(a));
  a.ack_iid = "A";
  f->rt = acker_new(f, &a);
  static const char two[] =
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"A\"}}\n"
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"B\"}}\n";
  assert_int_equal(ixr_feed(f->rt, two, sizeof(two) - 1), 0);
  int ended = tcap_find(&a.cap, 0, "\"ended\"", "\"A\"", NULL);
  int b = tcap_find(&a.cap, 0, "\"started\"", "\"B\"", NULL);
  assert_true(ended > 0 && b > ended);
  tcap_free(&a.cap);
}

/* Fed from the output of a timer (ixr_advance): it runs before
 * ixr_advance returns, not at the next feed. */
static void test_callback_feed_from_a_timer(void **state) {
  fixture *f = *state;
  acker a;
  memset(&a, 0, sizeof(a));
  a.feed_on = "queue"; /* the route times out, the flow queues */
  a.feed = "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"B\"}}\n";
  f->rt = acker_new(f, &a);
  assert_int_equal(ixr_feed(f->rt, PRESENT_I1, strlen(PRESENT_I1)), 0);
  assert_int_equal(ixr_advance(f->rt, 31000), 0);
  assert_int_equal(a.rc, 0);
  ixr_session_info si;
  assert_int_equal(ixr_session_find(f->rt, "B", 1, &si), 0);
  assert_string_equal(si.id, "s2");
  tcap_free(&a.cap);
}

/* Nothing is fed while strategies load: from on_setup, or from a host
 * function a strategy file calls at load time (in ixr_new or a reload). */
static int setup_rc[5];
static int load_feed_rc;

static int feeding_fn(lua_State *L) {
  ixr_runtime *rt = *(ixr_runtime **)lua_touserdata(L, lua_upvalueindex(1));
  ixr_field d[] = {fstr("interactionid", "LOAD")};
  load_feed_rc = ixr_feed_event(rt, "interaction.present", d, 1);
  return 0;
}

static ixr_runtime *setup_rt;

static void feeding_setup(ixr_runtime *rt, void *ud) {
  (void)ud;
  ixr_field d[] = {fstr("interactionid", "SETUP")};
  setup_rc[0] = ixr_feed_event(rt, "interaction.present", d, 1);
  setup_rc[1] = ixr_feed(rt, PRESENT_I1, strlen(PRESENT_I1));
  setup_rc[2] = ixr_feed(rt, "{\"name\"", 7);
  setup_rc[3] = ixr_feed_end(rt);
  setup_rc[4] = ixr_reload(rt, NULL);
  setup_rt = rt;
  assert_int_equal(ixr_register(rt, "host", "feed", feeding_fn, &setup_rt), 0);
}

static void test_no_feeding_while_strategies_load(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "feeder.lua",
             "require('host').feed()\n"
             "return { start = function(s) s:wait('never') end }\n");
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_setup = feeding_setup;
  load_feed_rc = 0;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  for (int i = 0; i < 5; i++) assert_int_equal(setup_rc[i], IXR_EBUSY);
  assert_int_equal(load_feed_rc, IXR_EBUSY);
  load_feed_rc = 0;
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  assert_int_equal(load_feed_rc, IXR_EBUSY);
  /* nothing of it ran, and the API stream starts clean */
  assert_int_equal(f->cap.n, 0);
  assert_int_equal(ixr_feed(f->rt, PRESENT_I1, strlen(PRESENT_I1)), 0);
  EXPECT_LINE(f, "\"started\"", "\"I1\"");
  assert_true(tcap_find(&f->cap, 0, "\"error\"", NULL) < 0);
}

/* ixr_close from on_input while ixr_feed_event records its event: deferred
 * (it used to free the runtime under ixr_feed_event: use after free). */
static ixr_runtime *input_closer_rt;
static void input_closer(void *ud, const char *line, size_t len, uint64_t now) {
  (void)ud;
  (void)line;
  (void)len;
  (void)now;
  ixr_close(input_closer_rt);
}

static void test_close_from_on_input_of_feed_event(void **state) {
  fixture *f = *state;
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_input = input_closer;
  assert_int_equal(ixr_new(&input_closer_rt, &o), 0);
  ixr_field d[] = {fstr("interactionid", "A")};
  assert_int_equal(ixr_feed_event(input_closer_rt, "interaction.present", d, 1), IXR_ECLOSED);
  assert_int_equal(f->cap.n, 0); /* closed before it was dispatched */
}

/* Near the memory cap, an event fed and a function registered from the
 * output callback of a flow's action: the host's calls do not allocate in
 * Lua under the strategy's limit (they used to abort the process). */
static ixr_runtime *cap_rt;
static int pad_fn(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT);
  ixr_stats st;
  ixr_get_stats(cap_rt, &st);
  size_t cap = (size_t)8 << 20;
  size_t left = cap - (size_t)st.lua_bytes;
  static char big[8u << 20];
  lua_pushlstring(L, big, left > 256 ? left - 256 : 0);
  return 1;
}
static int cap_feed_rc = 1, cap_register_rc = 1;
static void cap_output(void *ud, const ixr_output *out) {
  tcap_output(ud, out);
  if (out->type != IXR_OUT_ACTION) return;
  ixr_field d[] = {fstr("interactionid", "A"), fstr("requestid", out->requestid),
                   fstr("pad", "a string of some length, to be copied")};
  cap_feed_rc = ixr_feed_event(cap_rt, "interaction.route.done", d, 3);
  cap_register_rc = ixr_register(cap_rt, "late", "f", cb_fn, NULL);
}
static void cap_setup(ixr_runtime *rt, void *ud) {
  (void)ud;
  ixr_register(rt, "host", "pad", pad_fn, NULL);
}

static void test_callback_calls_at_the_memory_cap(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "padded.lua",
             "local host = require('host')\n"
             "return { defaults = 'none', start = function(s, e)\n"
             "  local n = #host.pad() -- garbage from here on, not yet collected\n"
             "  local ok = s:route({ target = 'A' }, { timeout = 30 })\n"
             "  s:action('after', { ok = ok, n = n > 0 })\n"
             "end }\n");
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.max_memory = (size_t)8 << 20;
  o.on_output = cap_output;
  o.on_setup = cap_setup;
  assert_int_equal(ixr_new(&cap_rt, &o), 0);
  f->rt = cap_rt;
  static const char line[] =
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"A\",\"strategy\":\"padded\"}}\n";
  assert_int_equal(ixr_feed(f->rt, line, sizeof(line) - 1), 0);
  assert_int_equal(cap_feed_rc, 0);
  assert_int_equal(cap_register_rc, 0);
  /* the route's result, fed from the callback, woke the flow */
  EXPECT_LINE(f, "\"after\"", "\"ok\":true");
}

/* The same nesting limit for ixr_feed_event direct and from a callback,
 * and the same as the JSON line the event stands for: 62 levels below
 * data pass, 63 do not. */
static ixr_field nested[200];
static size_t nest(int levels) {
  size_t n = 0;
  nested[n++] = fstr("interactionid", "N");
  for (int i = 0; i < levels; i++) nested[n++] = ftype("o", IXR_V_OBJECT);
  nested[n++] = fint("x", 1);
  for (int i = 0; i < levels; i++) nested[n++] = ftype(NULL, IXR_V_END);
  return n;
}
static int nest_rc[2];
static void nest_output(void *ud, const ixr_output *out) {
  tcap_output(ud, out);
  if (out->type != IXR_OUT_ACTION || nest_rc[0] != 1) return;
  nest_rc[0] = ixr_feed_event(cap_rt, "interaction.deep", nested, nest(62));
  nest_rc[1] = ixr_feed_event(cap_rt, "interaction.deep", nested, nest(63));
}

static void test_feed_event_nesting_limit(void **state) {
  fixture *f = *state;
  f->rt = new_with_output(f, nest_output, &f->cap, &cap_rt);
  assert_int_equal(ixr_feed_event(f->rt, "interaction.present", nested, nest(63)), IXR_EINVAL);
  nest_rc[0] = 1;
  assert_int_equal(ixr_feed_event(f->rt, "interaction.present", nested, nest(62)), 0);
  assert_int_equal(nest_rc[0], 0);
  assert_int_equal(nest_rc[1], IXR_EINVAL);
  assert_true(tcap_find(&f->cap, 0, "\"error\"", NULL) < 0);
}

static void on_guard(uv_timer_t *t);

/* Runs the host's loop for about ms: ixr's timers keep no loop alive, a
 * guard timer of the host's does. */
static void run_loop_for(uv_loop_t *loop, uint64_t ms) {
  uv_timer_t guard;
  uv_timer_init(loop, &guard);
  uv_timer_start(&guard, on_guard, ms, 0);
  uv_run(loop, UV_RUN_DEFAULT);
}

/* Closes the fixture's runtime on the host's loop, then the loop. */
static void close_on_loop(fixture *f, uv_loop_t *loop) {
  ixr_close(f->rt);
  f->rt = NULL;
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

/* Fed by a flow's __close when a timer on the loop ended its session: the
 * flow is closed after the timer pass, and what it fed runs then (it used
 * to wait for the host's next feed, or be dropped by ixr_close). */
static ixr_runtime *close_feed_rt;
static int close_feed_fn(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushinteger(L, ixr_feed(close_feed_rt, s, n));
  return 1;
}
static void close_feed_setup(ixr_runtime *rt, void *ud) {
  (void)ud;
  ixr_register(rt, "host", "feed", close_feed_fn, NULL);
}

static void test_feed_from_close_after_a_loop_timer(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "closer.lua",
             "local host = require('host')\n"
             "return { defaults = 'none', start = function(s, e)\n"
             "  local g <close> = setmetatable({}, { __close = function()\n"
             "    host.feed('{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"FROM_CLOSE\"}}\\n')\n"
             "  end })\n"
             "  s:after(0.02, function(s2) s2:exit('bye') end)\n"
             "  s:wait('never')\n"
             "end }\n");
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  ixr_options o;
  opts(f, &o, IXR_CLOCK_REAL);
  o.loop = &loop;
  o.on_setup = close_feed_setup;
  assert_int_equal(ixr_new(&close_feed_rt, &o), 0);
  f->rt = close_feed_rt;
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"A\",\"strategy\":\"closer\"}}");
  run_loop_for(&loop, 200);
  EXPECT_LINE(f, "\"ended\"", "\"A\"", "\"bye\"");
  EXPECT_LINE(f, "\"started\"", "\"FROM_CLOSE\"");
  close_on_loop(f, &loop);
}

/* ixr_close from a host function while strategy files load: ixr_new and
 * ixr_reload answer IXR_ECLOSED and the runtime is freed (LeakSanitizer),
 * instead of returning 0 with a runtime nobody could free. */
static ixr_runtime *load_close_rt;
static int load_close_fn(lua_State *L) {
  (void)L;
  ixr_close(load_close_rt);
  return 0;
}
static void load_close_setup(ixr_runtime *rt, void *ud) {
  load_close_rt = rt;
  if (ud != NULL) return; /* the reload case registers later */
  ixr_register(rt, "host", "close", load_close_fn, NULL);
}

static void test_close_while_strategies_load(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "closing.lua",
             "require('host').close()\n"
             "return { start = function(s) s:wait('never') end }\n");
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_setup = load_close_setup;
  ixr_runtime *rt = NULL;
  assert_int_equal(ixr_new(&rt, &o), IXR_ECLOSED);
  /* and during a reload */
  tdir_remove(f->dir);
  f->dir = tdir_new();
  tdir_write(f->dir, "default.lua", ROUTE_LUA);
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_setup = load_close_setup;
  o.setup_ud = &o;
  assert_int_equal(ixr_new(&rt, &o), 0);
  assert_int_equal(ixr_register(rt, "host", "close", load_close_fn, NULL), 0);
  tdir_write(f->dir, "closing.lua",
             "require('host').close()\n"
             "return { start = function(s) s:wait('never') end }\n");
  assert_int_equal(ixr_reload(rt, NULL), IXR_ECLOSED);
}

/* A clock.advance fed from a callback during ixr_advance runs within the
 * pass; the clock never goes back when the pass ends. */
static ixr_runtime *tick_rt;
static uint64_t tick_times[8];
static int tick_n;
static void tick_output(void *ud, const ixr_output *out) {
  tcap_output(ud, out);
  if (out->type == IXR_OUT_ACTION && strcmp(out->action, "tick") == 0) {
    static const char adv[] = "{\"name\":\"clock.advance\",\"data\":{\"ms\":1000}}\n";
    ixr_feed(tick_rt, adv, sizeof(adv) - 1);
  }
}
static void tick_input(void *ud, const char *line, size_t len, uint64_t now) {
  (void)ud;
  (void)line;
  (void)len;
  if (tick_n < 8) tick_times[tick_n++] = now;
}

static void test_clock_advance_fed_during_advance(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "ticker.lua",
             "return { defaults = 'none', start = function(s)\n"
             "  s:after(0.05, function(s2) s2:action('tick') end)\n"
             "  s:after(1.0, function(s2) s2:action('at_1000') end)\n"
             "  s:wait('never')\n"
             "end }\n");
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_output = tick_output;
  o.on_input = tick_input;
  assert_int_equal(ixr_new(&tick_rt, &o), 0);
  f->rt = tick_rt;
  tick_n = 0;
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"T\",\"strategy\":\"ticker\"}}");
  assert_int_equal(ixr_advance(f->rt, 100), 0);
  /* the fed advance ran at 50 and took the clock to 1050, timers and all */
  EXPECT_LINE(f, "\"at_1000\"");
  tfeed(f->rt, "{\"name\":\"ixr.status\"}");
  assert_int_equal(tick_n, 3);
  assert_int_equal(tick_times[1], 50);
  assert_int_equal(tick_times[2], 1050);
}

/* Fed from the output callback of a bad_json error: it runs before the
 * host's next line, as after an event. */
static ixr_runtime *err_rt;
static void err_output(void *ud, const ixr_output *out) {
  tcap_output(ud, out);
  if (out->type == IXR_OUT_ERROR) {
    static const char x[] = "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"X\"}}\n";
    ixr_feed(err_rt, x, sizeof(x) - 1);
  }
}

static void test_callback_feed_after_an_error_line(void **state) {
  fixture *f = *state;
  f->rt = new_with_output(f, err_output, &f->cap, &err_rt);
  static const char two[] =
      "not json\n{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"Y\"}}\n";
  assert_int_equal(ixr_feed(f->rt, two, sizeof(two) - 1), 0);
  int x = tcap_find(&f->cap, 0, "\"started\"", "\"X\"", NULL);
  int y = tcap_find(&f->cap, 0, "\"started\"", "\"Y\"", NULL);
  assert_true(x > 0 && y > x);
}

/* ixr_advance from on_input (inside a feed) is refused: it used to clear
 * the feed's busy flag, so that a later close from on_input freed the
 * runtime under the feed. */
static ixr_runtime *adv_rt;
static int adv_rc = 1, adv_lines;
static void adv_input(void *ud, const char *line, size_t len, uint64_t now) {
  (void)ud;
  (void)line;
  (void)len;
  (void)now;
  if (++adv_lines == 1) adv_rc = ixr_advance(adv_rt, 10);
  else ixr_close(adv_rt);
}

static void test_advance_and_close_from_on_input(void **state) {
  fixture *f = *state;
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_input = adv_input;
  assert_int_equal(ixr_new(&adv_rt, &o), 0);
  static const char two[] =
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"A\"}}\n"
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"B\"}}\n";
  assert_int_equal(ixr_feed(adv_rt, two, sizeof(two) - 1), IXR_ECLOSED);
  assert_int_equal(adv_rc, IXR_EBUSY);
}

/* On the real clock a timer's callback sees its due time as now, however
 * late the loop fired it (here: 100 ms late, behind a handler that spins):
 * what it arms is due when a replay of the record fires it. */
static void test_late_timer_sees_its_due_time(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "late.lua",
             "local core = require('ixr.core')\n"
             "return { defaults = 'none', start = function(s)\n"
             "  s:action('start', { now = core.now() })\n"
             "  s:after(0.02, function(s2) s2:action('fired', { now = core.now() }) end)\n"
             "  s:wait('never')\n"
             "end, on = { ['x.spin'] = function()\n"
             "  local t = os.clock() while os.clock() - t < 0.1 do end\n"
             "end } }\n");
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  ixr_options o;
  opts(f, &o, IXR_CLOCK_REAL);
  o.loop = &loop;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"L\",\"strategy\":\"late\"}}");
  tfeed(f->rt, "{\"name\":\"x.spin\",\"data\":{\"interactionid\":\"L\"}}");
  run_loop_for(&loop, 100);
  int a = tcap_find(&f->cap, 0, "\"start\"", NULL), b = tcap_find(&f->cap, 0, "\"fired\"", NULL);
  if (a < 0 || b < 0) dump_and_fail(f, "no start or fired line");
  long long t0 = atoll(strstr(f->cap.lines[a], "\"now\":") + 6);
  long long t1 = atoll(strstr(f->cap.lines[b], "\"now\":") + 6);
  assert_int_equal(t1 - t0, 20);
  close_on_loop(f, &loop);
}

/* A byte order mark before the first line is skipped; later it is bad_json. */
static void test_byte_order_mark(void **state) {
  fixture *f = *state;
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  static const char two[] =
      "\xEF\xBB\xBF{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"A\"}}\n"
      "\xEF\xBB\xBF{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"B\"}}\n";
  assert_int_equal(ixr_feed(f->rt, two, sizeof(two) - 1), 0);
  EXPECT_LINE(f, "\"started\"", "\"A\"");
  EXPECT_LINE(f, "\"bad_json\"", "\"line\":2");
  assert_true(tcap_find(&f->cap, 0, "\"started\"", "\"B\"", NULL) < 0);
}

/* max_line SIZE_MAX ("no limit") takes lines split over several feeds. */
static void test_max_line_without_limit(void **state) {
  fixture *f = *state;
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.max_line = SIZE_MAX;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  assert_int_equal(ixr_feed(f->rt, PRESENT_I1, 10), 0);
  assert_int_equal(ixr_feed(f->rt, PRESENT_I1 + 10, strlen(PRESENT_I1) - 10), 0);
  EXPECT_LINE(f, "\"started\"", "\"I1\"");
  assert_true(tcap_find(&f->cap, 0, "\"error\"", NULL) < 0);
}

/* ---- ixr_close while work is pending, and from inside callbacks ------------ */

typedef struct closer {
  ixr_runtime *rt;
  int closes;     /* close on the Nth output line */
  int lines;
  bool closed;
  int rc_after;   /* ixr_feed after ixr_close, inside the callback */
  int rc_event_after;
  int rc_stats_after;
} closer;

static void closer_output(void *ud, const ixr_output *out) {
  closer *c = ud;
  (void)out;
  c->lines++;
  if (c->closed || c->lines != c->closes) return;
  /* Something re-entrant is pending when the runtime is closed. */
  ixr_feed(c->rt, PRESENT_I1, strlen(PRESENT_I1));
  ixr_close(c->rt);
  c->closed = true;
  c->rc_after = ixr_feed(c->rt, PRESENT_I1, strlen(PRESENT_I1));
  ixr_field d[] = {fstr("interactionid", "X")};
  c->rc_event_after = ixr_feed_event(c->rt, "interaction.present", d, 1);
  ixr_stats st;
  c->rc_stats_after = ixr_get_stats(c->rt, &st);
}

/*
 * The host closes the runtime from its output callback (it got the action
 * it was waiting for, or it is shutting down), with a re-entrant event
 * queued. The close takes effect once the callback returns: later calls
 * made inside the callback get IXR_ECLOSED, nothing more is dispatched,
 * and no memory is lost (ASan).
 */
static void test_close_from_output_callback(void **state) {
  fixture *f = *state;
  closer c;
  memset(&c, 0, sizeof(c));
  c.closes = 2; /* on the route action, in the middle of the flow */
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_output = closer_output;
  o.output_ud = &c;
  assert_int_equal(ixr_new(&c.rt, &o), 0);
  static const char two[] =
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"A\"}}\n"
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"B\"}}\n";
  int rc = ixr_feed(c.rt, two, sizeof(two) - 1);
  /* c.rt is gone now. */
  assert_true(rc == 0 || rc == IXR_ECLOSED);
  assert_true(c.closed);
  assert_int_equal(c.rc_after, IXR_ECLOSED);
  assert_int_equal(c.rc_event_after, IXR_ECLOSED);
  assert_int_equal(c.rc_stats_after, IXR_ECLOSED);
  assert_int_equal(c.lines, 2); /* B was never dispatched */
}

/* The same from the callback of a timer that fires on the host's loop. */
typedef struct timer_closer {
  ixr_runtime *rt;
  int lines;
  bool closed;
} timer_closer;

static void timer_closer_output(void *ud, const ixr_output *out) {
  timer_closer *c = ud;
  c->lines++;
  if (out->type == IXR_OUT_ACTION && strcmp(out->action, "queue") == 0 &&
      !c->closed) {
    ixr_close(c->rt);
    c->closed = true;
  }
}

static void on_guard(uv_timer_t *t) { uv_close((uv_handle_t *)t, NULL); }

static void test_close_from_timer_output_on_host_loop(void **state) {
  fixture *f = *state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  timer_closer c;
  memset(&c, 0, sizeof(c));
  ixr_options o;
  opts(f, &o, IXR_CLOCK_REAL);
  o.loop = &loop;
  o.on_output = timer_closer_output;
  o.output_ud = &c;
  assert_int_equal(ixr_new(&c.rt, &o), 0);
  tfeed(c.rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"T\",\"timeout\":0.01}}");
  run_loop_for(&loop, 300);
  assert_true(c.closed);
  assert_int_equal(c.lines, 3); /* started, route, queue */
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A pipe client of the runtime's unix listener, on the test's loop. */
typedef struct pclient {
  uv_pipe_t pipe;
  uv_connect_t conn;
  uv_write_t wr;
  char rbuf[4096];
  size_t got; /* bytes received */
  bool connected, closed;
} pclient;

static void pclient_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  pclient *c = h->data;
  (void)hint;
  *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void pclient_closed(uv_handle_t *h) {
  pclient *c = h->data;
  c->closed = true;
}

static void pclient_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  pclient *c = s->data;
  (void)buf;
  if (n < 0) {
    if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, pclient_closed);
    return;
  }
  c->got += (size_t)n;
}

static void pclient_connected(uv_connect_t *req, int status) {
  pclient *c = req->data;
  c->connected = status == 0;
  if (status == 0) uv_read_start((uv_stream_t *)&c->pipe, pclient_alloc, pclient_read);
}

static void pclient_written(uv_write_t *req, int status) {
  (void)req;
  (void)status;
}

static void sock_path(char *buf, size_t n, const char *tag) {
  static int counter;
  snprintf(buf, n, "/tmp/ixr-api-%d-%s-%d.sock", (int)getpid(), tag, counter++);
}

/*
 * Closing on the host's loop while work is pending everywhere: a session
 * with a timer armed, a connection with unread input (a partial line) and
 * output not yet flushed, and a listener. Everything closes on the next
 * run of the loop, and nothing leaks.
 */
static void test_close_with_pending_work_on_host_loop(void **state) {
  fixture *f = *state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  ixr_options o;
  opts(f, &o, IXR_CLOCK_REAL);
  o.loop = &loop;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  char path[128], addr[160];
  sock_path(path, sizeof(path), "pending");
  snprintf(addr, sizeof(addr), "unix:%s", path);
  assert_int_equal(ixr_listen(f->rt, addr), 0);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"P1\"}}");

  pclient c;
  memset(&c, 0, sizeof(c));
  uv_pipe_init(&loop, &c.pipe, 0);
  c.pipe.data = &c;
  c.conn.data = &c;
  uv_pipe_connect(&c.conn, &c.pipe, path, pclient_connected);
  for (int i = 0; i < 200 && !c.connected; i++) uv_run(&loop, UV_RUN_NOWAIT);
  assert_true(c.connected);
  static char msg[] =
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"P2\"}}\n"
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"P3\"}}\n"
      "{\"name\":\"interaction.pres";
  uv_buf_t b = uv_buf_init(msg, sizeof(msg) - 1);
  assert_int_equal(uv_write(&c.wr, (uv_stream_t *)&c.pipe, &b, 1, pclient_written), 0);
  /* Let the runtime read (and answer) part of it, then close at once. */
  for (int i = 0; i < 5; i++) uv_run(&loop, UV_RUN_NOWAIT);
  ixr_close(f->rt);
  f->rt = NULL;
  for (int i = 0; i < 200 && !c.closed; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    if (!c.closed && i == 100) uv_close((uv_handle_t *)&c.pipe, pclient_closed);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  unlink(path);
}

/* On its own loop, ixr_close() finishes everything before it returns. */
static void test_close_own_loop_with_live_sessions(void **state) {
  fixture *f = *state;
  ixr_options o;
  opts(f, &o, IXR_CLOCK_REAL);
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  for (int i = 0; i < 50; i++) {
    char line[128];
    snprintf(line, sizeof(line),
             "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"L%d\",\"strategy\":\"%s\"}}",
             i, i % 2 ? "later" : "default");
    tfeed(f->rt, line);
  }
  ixr_close(f->rt);
  f->rt = NULL;
  ixr_close(NULL);
}

/* ---- ixr_serve_fd, ixr_listen, ixr_run, ixr_stop -------------------------- */

static char *read_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return NULL;
  char *buf = calloc(1, 65536);
  size_t n = fread(buf, 1, 65535, fp);
  buf[n] = '\0';
  fclose(fp);
  return buf;
}

static void test_serve_fd(void **state) {
  fixture *f = *state;
  assert_int_equal(ixr_serve_fd(NULL, 0, 1, 0), IXR_EINVAL);
  f->rt = trt_new(f->dir, &f->cap);
  assert_int_equal(ixr_serve_fd(f->rt, -1, 1, 0), IXR_EINVAL);
  assert_int_equal(ixr_serve_fd(f->rt, 0, -1, 0), IXR_EINVAL);
  ixr_close(f->rt);

  /* A file in, a file out, on the runtime's own loop. */
  char in[1024], out[1024];
  snprintf(in, sizeof(in), "%s/in.ndjson", f->dir);
  snprintf(out, sizeof(out), "%s/out.ndjson", f->dir);
  tdir_write(f->dir, "in.ndjson",
             "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"F1\"}}\n"
             "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"F1\",\"requestid\":\"r1\"}}\n");
  int ifd = open(in, O_RDONLY);
  int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(ifd >= 0 && ofd >= 0);
  f->rt = trt_new(f->dir, &f->cap);
  assert_int_equal(ixr_serve_fd(f->rt, ifd, ofd, IXR_SERVE_STOP_AT_EOF), 0);
  assert_int_equal(ixr_run(f->rt), 0);
  close(ifd);
  close(ofd);
  char *text = read_file(out);
  assert_non_null(text);
  assert_non_null(strstr(text, "\"started\""));
  assert_non_null(strstr(text, "\"completed\""));
  free(text);
  /* The stream's output went to its fd, not to the output callback. */
  assert_int_equal(f->cap.n, 0);
  /* Stopped: nothing more is served. */
  assert_int_equal(ixr_serve_fd(f->rt, 0, 1, 0), IXR_ECLOSED);
}

/* A descriptor that is not open is refused at once, not found broken later
 * on the loop. */
static void test_serve_fd_closed_descriptor(void **state) {
  fixture *f = *state;
  f->rt = trt_new(f->dir, &f->cap);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  close(fds[0]);
  close(fds[1]);
  assert_true(ixr_serve_fd(f->rt, fds[0], fds[1], 0) < 0);
}

static void test_listen_misuse(void **state) {
  fixture *f = *state;
  assert_int_equal(ixr_listen(NULL, "tcp:127.0.0.1:0"), IXR_EINVAL);
  assert_int_equal(ixr_listen_control(NULL, "tcp:127.0.0.1:0"), IXR_EINVAL);
  f->rt = trt_new(f->dir, &f->cap);
  assert_int_equal(ixr_listen(f->rt, NULL), IXR_EINVAL);
  assert_int_equal(ixr_listen_control(f->rt, NULL), IXR_EINVAL);
  static const char *const bad[] = {
      "", "foo", "udp:1.2.3.4:5", "tcp:", "tcp:127.0.0.1", "tcp:127.0.0.1:",
      "tcp:127.0.0.1:x", "tcp:127.0.0.1:-1", "tcp:127.0.0.1:65536",
      "tcp:127.0.0.1: 80", "tcp::80", "unix:",
  };
  for (size_t i = 0; i < NELEM(bad); i++) {
    int rc = ixr_listen(f->rt, bad[i]);
    if (rc != IXR_EADDR) {
      fprintf(stderr, "'%s': got %d (%s)\n", bad[i], rc, ixr_err_name(rc));
      fail();
    }
    assert_int_equal(ixr_listen_control(f->rt, bad[i]), IXR_EADDR);
  }
  char longpath[300];
  memset(longpath, 'x', sizeof(longpath) - 1);
  memcpy(longpath, "unix:/tmp/", 10);
  longpath[sizeof(longpath) - 1] = '\0';
  /* Well formed but impossible: ELISTEN, with the reason in the log. */
  assert_int_equal(ixr_listen(f->rt, longpath), IXR_ELISTEN);
  assert_int_equal(ixr_listen(f->rt, "tcp:not-an-ip.invalid:80"), IXR_ELISTEN);
  assert_int_equal(ixr_listen(f->rt, "unix:/nonexistent-dir/ixr.sock"), IXR_ELISTEN);
  assert_int_equal(ixr_listen(f->rt, "tcp:127.0.0.1:0"), 0);

  /* Not a socket: left alone, and refused. */
  char path[128], addr[160];
  snprintf(path, sizeof(path), "%s/plain-file", f->dir);
  tdir_write(f->dir, "plain-file", "keep me\n");
  snprintf(addr, sizeof(addr), "unix:%s", path);
  assert_int_equal(ixr_listen(f->rt, addr), IXR_ELISTEN);
  char *kept = read_file(path);
  assert_string_equal(kept, "keep me\n");
  free(kept);

  ixr_stop(f->rt);
  assert_int_equal(ixr_listen(f->rt, "tcp:127.0.0.1:0"), IXR_ECLOSED);
  assert_int_equal(ixr_listen_control(f->rt, "tcp:127.0.0.1:0"), IXR_ECLOSED);
}

/* A unix socket that a live listener serves is not taken over: unlinking it
 * would cut that listener off (another runtime's, or another process's). */
static void test_listen_live_unix_socket_refused(void **state) {
  fixture *f = *state;
  f->rt = trt_new(f->dir, &f->cap);
  char path[128], addr[160];
  sock_path(path, sizeof(path), "live");
  snprintf(addr, sizeof(addr), "unix:%s", path);
  assert_int_equal(ixr_listen(f->rt, addr), 0);
  tcap other;
  memset(&other, 0, sizeof(other));
  ixr_runtime *rt2 = trt_new(f->dir, &other);
  int rc = ixr_listen(rt2, addr);
  ixr_close(rt2);
  tcap_free(&other);
  assert_int_equal(rc, IXR_ELISTEN);
  unlink(path);
}

/* ixr_run on the runtime's own loop runs until ixr_stop(), here called
 * from the output callback of a timer. */
typedef struct stopper {
  ixr_runtime *rt;
  int actions;
} stopper;

static void stopper_output(void *ud, const ixr_output *out) {
  stopper *s = ud;
  if (out->type != IXR_OUT_ACTION) return;
  s->actions++;
  ixr_stop(s->rt);
  ixr_stop(s->rt); /* twice is harmless */
}

static void test_run_and_stop(void **state) {
  fixture *f = *state;
  assert_int_equal(ixr_run(NULL), IXR_EINVAL);
  ixr_stop(NULL);
  stopper s = {NULL, 0};
  ixr_options o;
  opts(f, &o, IXR_CLOCK_REAL);
  o.on_output = stopper_output;
  o.output_ud = &s;
  assert_int_equal(ixr_new(&s.rt, &o), 0);
  f->rt = s.rt;
  assert_int_equal(ixr_listen(f->rt, "tcp:127.0.0.1:0"), 0); /* keeps it running */
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"R\",\"strategy\":\"later\"}}");
  assert_int_equal(s.actions, 0);
  assert_int_equal(ixr_run(f->rt), 0);
  assert_int_equal(s.actions, 1);
  /* The API still feeds after a stop; only serving has ended. */
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"R2\"}}");
  assert_int_equal(s.actions, 2);
}

static void test_run_on_host_loop_refused(void **state) {
  fixture *f = *state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.loop = &loop;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  assert_int_equal(ixr_run(f->rt), IXR_ELOOP);
  close_on_loop(f, &loop);
}

/* On the host's loop, ixr's timers fire while the host runs its loop, and
 * their output goes to the output callback. */
static void test_host_loop_timers(void **state) {
  fixture *f = *state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  ixr_options o;
  opts(f, &o, IXR_CLOCK_REAL);
  o.loop = &loop;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"H\",\"timeout\":0.02}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"H2\",\"strategy\":\"later\"}}");
  run_loop_for(&loop, 200);
  EXPECT_LINE(f, "\"queue\"", "\"H\"", "\"r3\"");
  EXPECT_LINE(f, "\"later\"", "\"H2\"");
  close_on_loop(f, &loop);
}

/* Two runtimes on one loop share nothing: ids, sessions and output are
 * each their own. */
static void test_two_runtimes_one_loop(void **state) {
  fixture *f = *state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  tcap a, b;
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  ixr_runtime *ra, *rb;
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.loop = &loop;
  o.output_ud = &a;
  assert_int_equal(ixr_new(&ra, &o), 0);
  o.output_ud = &b;
  assert_int_equal(ixr_new(&rb, &o), 0);
  tfeed(ra, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"X\"}}");
  tfeed(rb, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"Y\"}}");
  tfeed(rb, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"X\"}}");
  assert_int_equal(a.n, 2);
  assert_int_equal(b.n, 4);
  assert_non_null(strstr(a.lines[0], "\"session\":\"s1\""));
  assert_non_null(strstr(b.lines[2], "\"session\":\"s2\""));
  assert_int_equal(ixr_advance(ra, 30000), 0);
  assert_int_equal(a.n, 3); /* X timed out in ra only */
  assert_int_equal(b.n, 4);
  ixr_session_info si;
  assert_int_equal(ixr_session_find(ra, "Y", 1, &si), IXR_ENOTFOUND);
  ixr_close(ra);
  ixr_close(rb);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  tcap_free(&a);
  tcap_free(&b);
}

/* ---- ixr_reload, ixr_watch ------------------------------------------------- */

static void test_reload(void **state) {
  fixture *f = *state;
  ixr_reload_result res;
  memset(&res, 0xab, sizeof(res));
  assert_int_equal(ixr_reload(NULL, &res), IXR_EINVAL);
  f->rt = trt_new(f->dir, &f->cap);
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  assert_int_equal(ixr_reload(f->rt, &res), 0);
  assert_int_equal(res.ok, 1);
  assert_int_equal(res.files, 3);
  assert_int_equal(res.changed, 0);
  uint64_t gen = res.generation;
  assert_true(gen >= 3);

  tdir_write(f->dir, "broken.lua", "return {\n\n  start = 5,\n}\n");
  assert_int_equal(ixr_reload(f->rt, &res), IXR_ESTRATEGY);
  assert_int_equal(res.ok, 0);
  assert_int_equal(res.generation, gen);
  assert_non_null(strstr(res.errors, "broken.lua:3:"));
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.generation, gen);

  tdir_write(f->dir, "broken.lua", "return { start = function() end }\n");
  assert_int_equal(ixr_reload(f->rt, &res), 0);
  assert_int_equal(res.generation, gen + 1);
  assert_int_equal(res.changed, 1);
  assert_int_equal(res.errors[0], '\0');
}

static void test_watch_misuse(void **state) {
  fixture *f = *state;
  assert_int_equal(ixr_watch(NULL, 100), IXR_EINVAL);
  f->rt = trt_new(f->dir, &f->cap);
  assert_int_equal(ixr_watch(f->rt, 100), 0);
  assert_int_equal(ixr_watch(f->rt, 100), IXR_EBUSY);
  /* closing with a watch armed: teardown, checked by ASan */
}

/* ---- ixr_get_stats, ixr_session_find ---------------------------------------- */

static void test_stats(void **state) {
  fixture *f = *state;
  ixr_stats st;
  assert_int_equal(ixr_get_stats(NULL, &st), IXR_EINVAL);
  f->rt = trt_new(f->dir, &f->cap);
  assert_int_equal(ixr_get_stats(f->rt, NULL), IXR_EINVAL);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"S1\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"S2\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"S2\",\"resultof\":\"revoking\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"S1\",\"requestid\":\"r1\"}}");
  tfeed(f->rt, "not json");
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.sessions_active, 0);
  assert_int_equal(st.sessions_suspended, 1);
  assert_int_equal(st.sessions_started, 2);
  assert_int_equal(st.sessions_ended, 1);
  assert_int_equal(st.events_in, 5);
  assert_int_equal(st.lines_out, f->cap.n);
  assert_int_equal(st.errors, 1);
  assert_int_equal(st.held_dropped, 0);
  assert_int_equal(st.limit_kills, 0);
  assert_true(st.lua_bytes > 0);
  assert_true(st.generation >= 1);
}

static void test_session_find(void **state) {
  fixture *f = *state;
  ixr_session_info si;
  assert_int_equal(ixr_session_find(NULL, "x", 1, &si), IXR_EINVAL);
  f->rt = trt_new(f->dir, &f->cap);
  assert_int_equal(ixr_session_find(f->rt, NULL, 1, &si), IXR_EINVAL);
  assert_int_equal(ixr_session_find(f->rt, "x", 1, NULL), IXR_EINVAL);
  assert_int_equal(ixr_session_find(f->rt, "x", 1, &si), IXR_ENOTFOUND);
  assert_int_equal(ixr_session_find(f->rt, "", 0, &si), IXR_ENOTFOUND);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"Q1\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"Q2\",\"strategy\":\"echo\"}}");
  assert_int_equal(ixr_session_find(f->rt, "Q2", 2, &si), 0);
  assert_string_equal(si.id, "s2");
  assert_string_equal(si.state, "active");
  assert_string_equal(si.strategy, "echo");
  assert_true(si.generation >= 1);
  assert_int_equal(ixr_session_find(f->rt, "Q2xyz", 2, &si), 0); /* by length */
  tfeed(f->rt, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"Q1\"}}");
  assert_int_equal(ixr_session_find(f->rt, "Q1", 2, &si), 0);
  assert_string_equal(si.id, "s1");
  assert_string_equal(si.state, "suspended");
  tfeed(f->rt, "{\"name\":\"interaction.deleted\",\"data\":{\"interactionid\":\"Q1\"}}");
  assert_int_equal(ixr_session_find(f->rt, "Q1", 2, &si), IXR_ENOTFOUND);
}

/* Many sessions at once, each with a flow timeout, a session:after timer
 * that fires, one that is cancelled, and an interaction id of its own
 * length (one of them long): every session is found while it lives, every
 * timer fires once and in time, and every session ends and is forgotten. */
static const char *const MANY_LUA =
    "return {\n"
    "  defaults = 'none',\n"
    "  start = function(session, event)\n"
    "    local n = tonumber(event.data.n)\n"
    "    session:after(n % 7 + 1, function(s) s:action('tick') end)\n"
    "    session:cancel(session:after(n % 3, function(s) s:action('never') end))\n"
    "    local ok, r = session:request('work', nil, { timeout = n % 5 + 1 })\n"
    "    session:action(ok and 'done' or (r == 'timeout' and 'late' or 'failed'))\n"
    "    session:wait('go' .. n % 40, { timeout = 50 })\n"
    "  end,\n"
    "}\n";

static size_t count_lines(const tcap *c, const char *a, const char *b) {
  size_t k = 0;
  for (size_t i = 0; i < c->n; i++)
    if (strstr(c->lines[i], a) != NULL && (b == NULL || strstr(c->lines[i], b) != NULL))
      k++;
  return k;
}

static void many_iid(char *buf, size_t n, int i) {
  if (i == 77) { /* longer than any small-string optimisation */
    memset(buf, 'L', 600);
    snprintf(buf + 600, n - 600, "%d", i);
  } else {
    snprintf(buf, n, "M%.*d", i % 9 + 1, i);
  }
}

static void test_many_sessions(void **state) {
  fixture *f = *state;
  enum { N = 3000 };
  char line[1024], iid[700];
  tdir_write(f->dir, "many.lua", MANY_LUA);
  f->rt = trt_new(f->dir, &f->cap);
  for (int i = 0; i < N; i++) {
    many_iid(iid, sizeof(iid), i);
    snprintf(line, sizeof(line),
             "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"%s\","
             "\"strategy\":\"many\",\"n\":%d}}", iid, i);
    tfeed(f->rt, line);
  }
  ixr_stats st;
  ixr_session_info si;
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.sessions_active, N);
  for (int i = 0; i < N; i++) {
    many_iid(iid, sizeof(iid), i);
    assert_int_equal(ixr_session_find(f->rt, iid, strlen(iid), &si), 0);
    char want[24];
    snprintf(want, sizeof(want), "s%d", i + 1);
    assert_string_equal(si.id, want);
  }
  /* Session i's request is action r(i+1): a third get their result. */
  for (int i = 0; i < N; i += 3) {
    many_iid(iid, sizeof(iid), i);
    snprintf(line, sizeof(line),
             "{\"name\":\"interaction.work.done\",\"data\":{\"interactionid\":\"%s\","
             "\"requestid\":\"r%d\"}}", iid, i + 1);
    tfeed(f->rt, line);
  }
  assert_int_equal(count_lines(&f->cap, "\"done\"", NULL), N / 3);
  assert_int_equal(ixr_advance(f->rt, 4999), 0);
  assert_int_equal(count_lines(&f->cap, "\"late\"", NULL),
                   N - N / 3 - (N / 5 - N / 15)); /* n % 5 == 4: 1 ms left */
  assert_int_equal(ixr_advance(f->rt, 1), 0);
  assert_int_equal(count_lines(&f->cap, "\"late\"", NULL), N - N / 3);
  assert_int_equal(ixr_advance(f->rt, 2000), 0);
  assert_int_equal(count_lines(&f->cap, "\"tick\"", NULL), N);
  assert_int_equal(count_lines(&f->cap, "\"never\"", NULL), 0);
  assert_int_equal(count_lines(&f->cap, "\"failed\"", NULL), 0);
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.sessions_active, N);
  /* Half end through their wait (for one of 40 names: a neighbour's name
   * is no match), the rest by its timeout. */
  for (int i = 0; i < N; i += 2) {
    many_iid(iid, sizeof(iid), i);
    snprintf(line, sizeof(line),
             "{\"name\":\"go%d\",\"data\":{\"interactionid\":\"%s\"}}",
             (i + 1) % 40, iid);
    tfeed(f->rt, line);
    snprintf(line, sizeof(line),
             "{\"name\":\"go%d\",\"data\":{\"interactionid\":\"%s\"}}",
             i % 40, iid);
    tfeed(f->rt, line);
  }
  assert_int_equal(count_lines(&f->cap, "unknown_interaction", NULL), 0);
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.sessions_active, N / 2);
  assert_int_equal(st.sessions_ended, N / 2);
  assert_int_equal(ixr_advance(f->rt, 50000), 0);
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.sessions_active, 0);
  assert_int_equal(st.sessions_ended, N);
  assert_int_equal(count_lines(&f->cap, "\"ended\"", "\"completed\""), N);
  for (int i = 0; i < N; i++) {
    many_iid(iid, sizeof(iid), i);
    assert_int_equal(ixr_session_find(f->rt, iid, strlen(iid), &si), IXR_ENOTFOUND);
  }
  many_iid(iid, sizeof(iid), 77);
  assert_int_equal(tcap_find(&f->cap, 0, "\"started\"", iid, NULL) >= 0, 1);
}

/* ---- ixr_register ------------------------------------------------------------ */

typedef struct host {
  ixr_runtime *rt;
  int setups;
  int rc_setup;
  int calls;
  int rc_feed;   /* ixr_feed from inside a host function */
  int rc_reload; /* ixr_reload from inside a host function */
  int rc_advance;
  int rc_run;
} host;

/* host.get(k): "value of k", counted through the upvalue. */
static int host_get(lua_State *L) {
  host *h = lua_touserdata(L, lua_upvalueindex(1));
  const char *k = luaL_checkstring(L, 1);
  h->calls++;
  lua_pushfstring(L, "value of %s", k);
  return 1;
}

static int host_fail(lua_State *L) {
  return luaL_error(L, "the host says no");
}

/* host.feed(line): the host feeds an event from inside a strategy's call. */
static int host_feed(lua_State *L) {
  host *h = lua_touserdata(L, lua_upvalueindex(1));
  size_t len;
  const char *line = luaL_checklstring(L, 1, &len);
  h->rc_feed = ixr_feed(h->rt, line, len);
  h->rc_advance = ixr_advance(h->rt, 1);
  h->rc_run = ixr_run(h->rt);
  return 0;
}

static int host_reload(lua_State *L) {
  host *h = lua_touserdata(L, lua_upvalueindex(1));
  h->rc_reload = ixr_reload(h->rt, NULL);
  lua_pushinteger(L, h->rc_reload);
  return 1;
}

static void host_setup(ixr_runtime *rt, void *ud) {
  host *h = ud;
  h->setups++;
  h->rt = rt;
  int rc = ixr_register(rt, "host", "get", host_get, h);
  if (rc == 0) rc = ixr_register(rt, "host", "fail", host_fail, h);
  if (rc == 0) rc = ixr_register(rt, "host", "feed", host_feed, h);
  if (rc == 0) rc = ixr_register(rt, "host", "reload", host_reload, h);
  if (rc == 0) rc = ixr_register(rt, "my.tools", "get", host_get, h);
  h->rc_setup = rc;
}

/* f->rt on the manual clock, with on_setup(rt, h) run inside ixr_new. */
static void new_with_setup(fixture *f, void (*on_setup)(ixr_runtime *, void *), host *h) {
  memset(h, 0, sizeof(*h));
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_setup = on_setup;
  o.setup_ud = h;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
}

static void noop_setup(ixr_runtime *rt, void *ud) {
  (void)rt;
  (void)ud;
}

static void test_register_misuse(void **state) {
  fixture *f = *state;
  assert_int_equal(ixr_register(NULL, "m", "f", host_get, NULL), IXR_EINVAL);
  f->rt = trt_new(f->dir, &f->cap);
  assert_int_equal(ixr_register(f->rt, NULL, "f", host_get, NULL), IXR_EINVAL);
  assert_int_equal(ixr_register(f->rt, "m", NULL, host_get, NULL), IXR_EINVAL);
  assert_int_equal(ixr_register(f->rt, "m", "f", NULL, NULL), IXR_EINVAL);
  assert_int_equal(ixr_register(f->rt, "m", "", host_get, NULL), IXR_EINVAL);
  static const char *const bad[] = {"", "ixr", "ixr.core", "ixr.multimedia",
                                    "ixr.mine", ".m", "m.", "a..b", "a b",
                                    "a/b", "../x", "m\xff"};
  for (size_t i = 0; i < NELEM(bad); i++)
    if (ixr_register(f->rt, bad[i], "f", host_get, NULL) != IXR_EINVAL) {
      fprintf(stderr, "module '%s' was accepted\n", bad[i]);
      fail();
    }
  assert_int_equal(ixr_register(f->rt, "ixrx", "f", host_get, NULL), 0);
  assert_int_equal(ixr_register(f->rt, "a.b-c_d9", "f", host_get, NULL), 0);
  (void)noop_setup;
}

static void test_register_from_setup(void **state) {
  fixture *f = *state;
  /* Required when the file loads: only possible if on_setup ran first. */
  tdir_write(f->dir, "host.lua",
             "local host = require('host')\n"
             "local tools = require('my.tools')\n"
             "local at_load = host.get('load')\n"
             "return { defaults = 'none', start = function(s, e)\n"
             "  s:action('got', { load = at_load, v = host.get(e.data.k), t = tools.get('t') })\n"
             "  if e.data.fail then host.fail() end\n"
             "  s:wait('never')\n"
             "end }\n");
  host h;
  new_with_setup(f, host_setup, &h);
  assert_int_equal(h.setups, 1);
  assert_int_equal(h.rc_setup, 0);
  assert_int_equal(h.calls, 1); /* at load */
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"G\",\"strategy\":\"host\",\"k\":\"x\"}}");
  EXPECT_LINE(f, "\"got\"", "\"load\":\"value of load\"", "\"v\":\"value of x\"", "\"t\":\"value of t\"");
  assert_int_equal(h.calls, 3);
  /* A bad argument or a luaL_error fails the strategy's call, not the host. */
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"G2\",\"strategy\":\"host\",\"k\":{}}}");
  EXPECT_LINE(f, "\"handler_error\"", "bad argument #1 to 'get'", "\"G2\"");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"G3\",\"strategy\":\"host\",\"k\":\"y\",\"fail\":true}}");
  EXPECT_LINE(f, "\"handler_error\"", "the host says no", "\"G3\"");
  EXPECT_LINE(f, "\"ended\"", "\"G3\"", "\"error\"");
  /* Still there after a reload. */
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  assert_int_equal(h.setups, 1);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"G4\",\"strategy\":\"host\",\"k\":\"z\"}}");
  EXPECT_LINE(f, "\"got\"", "\"v\":\"value of z\"");
}

/* Registered after ixr_new: there for require() at run time and for the
 * next reload. */
static void test_register_later(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "late.lua",
             "return { defaults = 'none', start = function(s, e)\n"
             "  local ok, m = pcall(require, 'hostlate')\n"
             "  s:action('late', { ok = ok, v = ok and m.get('k') or nil })\n"
             "end }\n");
  host h;
  memset(&h, 0, sizeof(h));
  f->rt = trt_new(f->dir, &f->cap);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"L1\",\"strategy\":\"late\"}}");
  EXPECT_LINE(f, "\"late\"", "\"ok\":false");
  assert_int_equal(ixr_register(f->rt, "hostlate", "get", host_get, &h), 0);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"L2\",\"strategy\":\"late\"}}");
  EXPECT_LINE(f, "\"late\"", "\"ok\":true", "\"v\":\"value of k\"");
  assert_int_equal(h.calls, 1);
}

/* A host module is shared by every strategy: it is a read-only view (an
 * assignment fails with file:line), and a live one (a function registered
 * after a strategy required the module is there). */
static void hm_setup(ixr_runtime *rt, void *ud) {
  host *h = ud;
  h->rc_setup = ixr_register(rt, "hm", "get", host_get, h);
}

static void test_host_module_read_only_and_live(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "hm.lua",
             "local m = require('hm')\n"
             "return { defaults = 'none', start = function(s, e)\n"
             "  local ok, err = pcall(function() m.get = nil end)\n"
             "  s:action('hm', { ok = ok, err = err, get2 = m.get2 and m.get2('k') or 'absent' })\n"
             "end }\n");
  host h;
  new_with_setup(f, hm_setup, &h);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"H1\",\"strategy\":\"hm\"}}");
  EXPECT_LINE(f, "\"hm\"", "\"ok\":false", "hm.lua:3: module 'hm' is read-only (assignment to 'get')",
              "\"get2\":\"absent\"");
  assert_int_equal(ixr_register(f->rt, "hm", "get2", host_get, &h), 0);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"H2\",\"strategy\":\"hm\"}}");
  EXPECT_LINE(f, "\"hm\"", "\"H2\"", "\"get2\":\"value of k\"");
}

/* A host function that feeds another event re-entrantly: it is queued and
 * runs after the event in progress; reload and advance are refused. */
static void test_host_function_feeds_reentrantly(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "feeder.lua",
             "local host = require('host')\n"
             "return { defaults = 'none', start = function(s, e)\n"
             "  s:action('before')\n"
             "  host.feed('{\"name\":\"interaction.poke\",\"data\":{\"interactionid\":\"' .. s.interactionid .. '\"}}\\n')\n"
             "  s:action('after')\n"
             "  s:wait('interaction.poke')\n"
             "  s:action('poked')\n"
             "end }\n");
  host h;
  new_with_setup(f, host_setup, &h);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"F\",\"strategy\":\"feeder\"}}");
  assert_int_equal(h.rc_feed, 0);
  int a = tcap_find(&f->cap, 0, "\"before\"", NULL);
  int b = tcap_find(&f->cap, 0, "\"after\"", NULL);
  int c = tcap_find(&f->cap, 0, "\"poked\"", NULL);
  if (!(a >= 0 && b > a && c > b)) dump_and_fail(f, "before, after, poked: not in order");
  assert_int_equal(h.rc_advance, IXR_EBUSY);
  assert_int_equal(h.rc_run, IXR_EBUSY);
}

/* A reload from inside a strategy's call would swap the strategies (and
 * reset the modules) under the running code: refused, as from an output
 * callback. */
static void test_reload_from_host_function_refused(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "reloader.lua",
             "local host = require('host')\n"
             "return { defaults = 'none', start = function(s, e)\n"
             "  s:action('reloaded', { rc = host.reload() })\n"
             "end }\n");
  host h;
  new_with_setup(f, host_setup, &h);
  ixr_stats before, after;
  ixr_get_stats(f->rt, &before);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"R\",\"strategy\":\"reloader\"}}");
  ixr_get_stats(f->rt, &after);
  EXPECT_LINE(f, "\"reloaded\"");
  assert_int_equal(h.rc_reload, IXR_EBUSY);
  assert_int_equal(after.generation, before.generation);
}

/* ---- ixr_advance --------------------------------------------------------------- */

static void test_advance(void **state) {
  fixture *f = *state;
  assert_int_equal(ixr_advance(NULL, 1), IXR_EINVAL);
  f->rt = trt_new(f->dir, &f->cap);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"V\"}}");
  assert_int_equal(ixr_advance(f->rt, 0), 0);
  assert_int_equal(ixr_advance(f->rt, 29999), 0);
  assert_int_equal(f->cap.n, 2);
  assert_int_equal(ixr_advance(f->rt, 1), 0);
  EXPECT_LINE(f, "\"queue\"", "\"V\"");
  assert_int_equal(ixr_advance(f->rt, UINT64_MAX / 2), 0); /* far ahead */
  ixr_close(f->rt);

  ixr_options o;
  opts(f, &o, IXR_CLOCK_REAL);
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  assert_int_equal(ixr_advance(f->rt, 1), IXR_EINVAL); /* a real clock */
}

/* ---- ixr_check ------------------------------------------------------------------- */

static void count_report(void *ud, const char *line) {
  int *n = ud;
  (void)line;
  ++*n;
}

static void test_check(void **state) {
  fixture *f = *state;
  int n = 0;
  assert_int_equal(ixr_check(NULL, NULL, count_report, &n), IXR_EINVAL);
  assert_int_equal(ixr_check(f->dir, NULL, NULL, &n), IXR_EINVAL);
  assert_int_equal(ixr_check("/nonexistent/ixr-handlers", NULL, count_report, &n),
                   IXR_ENOENT);
  assert_int_equal(ixr_check(f->dir, NULL, count_report, &n), 0);
  assert_int_equal(n, 0);
  tdir_write(f->dir, "bad.lua", "return 1\n");
  assert_int_equal(ixr_check(f->dir, NULL, count_report, &n), 1);
  assert_int_equal(n, 1);
  assert_true(ixr_check(f->dir, "/nonexistent/ixr-lua", count_report, &n) != 0);
}

/* ---- the other callbacks: log, input, trace --------------------------------------- */

typedef struct seen {
  int logs[5];
  int inputs;
  char last_input[128];
  uint64_t last_now;
  int traces;
  bool trace_handler;
  int skipped;        /* lines over max_line: on_input with NULL */
  size_t skipped_len;
} seen;

static void seen_log(void *ud, ixr_log_level level, const char *msg) {
  seen *s = ud;
  (void)msg;
  if (level >= IXR_LOG_ERROR && level <= IXR_LOG_TRACE) s->logs[level]++;
}

static void seen_input(void *ud, const char *line, size_t len, uint64_t now) {
  seen *s = ud;
  s->inputs++;
  if (line == NULL) {
    s->skipped++;
    s->skipped_len = len;
    return;
  }
  snprintf(s->last_input, sizeof(s->last_input), "%.*s", (int)len, line);
  s->last_now = now;
}

static void seen_trace(void *ud, const char *line) {
  seen *s = ud;
  s->traces++;
  if (strstr(line, "default.lua:") != NULL) s->trace_handler = true;
}

static void test_log_input_trace_callbacks(void **state) {
  fixture *f = *state;
  seen s;
  memset(&s, 0, sizeof(s));
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_log = seen_log;
  o.log_ud = &s;
  o.log_level = IXR_LOG_WARN;
  o.on_input = seen_input;
  o.input_ud = &s;
  o.max_line = 200;
  o.on_trace = seen_trace;
  o.trace_ud = &s;
  tdir_write(f->dir, "chatty.lua",
             "return { defaults = 'none', start = function(s)\n"
             "  s:log('info', 'hidden') s:log('warn', 'shown') s:log('error', 'shown')\n"
             "  s:wait('never') end }\n");
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"C\",\"strategy\":\"chatty\"}}");
  tfeed(f->rt, "   ");
  assert_int_equal(ixr_advance(f->rt, 5000), 0);
  /* A line over max_line: passed as NULL with what was read of it, in its
   * place among the lines, so that a record keeps it. */
  char big[300];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  tfeed(f->rt, big);
  assert_int_equal(s.skipped, 1);
  assert_true(s.skipped_len > 200);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"D\"}}");
  assert_int_equal(s.logs[IXR_LOG_INFO], 0);
  assert_int_equal(s.logs[IXR_LOG_DEBUG], 0);
  assert_int_equal(s.logs[IXR_LOG_WARN], 1);
  assert_int_equal(s.logs[IXR_LOG_ERROR], 1);
  assert_int_equal(s.inputs, 4); /* every line as received, blank ones too */
  assert_non_null(strstr(s.last_input, "\"D\""));
  assert_int_equal(s.last_now, 5000);
  assert_true(s.traces > 0);
  assert_true(s.trace_handler);
}

/* Without an output callback, output is held for the next stream rather
 * than lost, and counted. */
static void test_no_output_callback(void **state) {
  fixture *f = *state;
  ixr_options o;
  opts(f, &o, IXR_CLOCK_MANUAL);
  o.on_output = NULL;
  o.max_held = 2;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"N1\"}}");
  tfeed(f->rt, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"N2\"}}");
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.sessions_started, 2);
  assert_int_equal(st.lines_out, 4);
  assert_int_equal(st.held_dropped, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_callback_feed_beside_a_partial_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_feed_runs_right_after_its_event, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_feed_from_a_timer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_feeding_while_strategies_load, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_from_on_input_of_feed_event, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_calls_at_the_memory_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_feed_event_nesting_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_line_without_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_byte_order_mark, setup, teardown),
      cmocka_unit_test_setup_teardown(test_late_timer_sees_its_due_time, setup, teardown),
      cmocka_unit_test_setup_teardown(test_feed_from_close_after_a_loop_timer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_while_strategies_load, setup, teardown),
      cmocka_unit_test_setup_teardown(test_clock_advance_fed_during_advance, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_feed_after_an_error_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_advance_and_close_from_on_input, setup, teardown),
      cmocka_unit_test(test_options_init_defaults),
      cmocka_unit_test(test_versions),
      cmocka_unit_test(test_error_codes),
      cmocka_unit_test_setup_teardown(test_new_rejects_bad_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_new_without_standard_library, setup, teardown),
      cmocka_unit_test_setup_teardown(test_new_under_a_tiny_memory_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_records_are_single_lines, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_record_keeps_context_and_characters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload_errors_cut_at_a_character, setup, teardown),
      cmocka_unit_test_setup_teardown(test_null_prints_as_null, setup, teardown),
      cmocka_unit_test_setup_teardown(test_new_without_handlers_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_new_with_broken_strategy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_feed_misuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_feed_any_split, setup, teardown),
      cmocka_unit_test_setup_teardown(test_feed_event_values, setup, teardown),
      cmocka_unit_test_setup_teardown(test_output_interactionid_len, setup, teardown),
      cmocka_unit_test_setup_teardown(test_feed_event_rejects_malformed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_calls_from_output_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reentrant_chain, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_with_pending_work_on_host_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_own_loop_with_live_sessions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_serve_fd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_listen_misuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_run_and_stop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_run_on_host_loop_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_host_loop_timers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_two_runtimes_one_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_misuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_session_find, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_sessions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_register_misuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_register_from_setup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_register_later, setup, teardown),
      cmocka_unit_test_setup_teardown(test_host_module_read_only_and_live, setup, teardown),
      cmocka_unit_test_setup_teardown(test_host_function_feeds_reentrantly, setup, teardown),
      cmocka_unit_test_setup_teardown(test_advance, setup, teardown),
      cmocka_unit_test_setup_teardown(test_check, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_input_trace_callbacks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_output_callback, setup, teardown),
      /* Library problems found while writing these (see the issue note):
       * they fail until the library is fixed, so they run last. */
      cmocka_unit_test_setup_teardown(test_serve_fd_closed_descriptor, setup, teardown),
      cmocka_unit_test_setup_teardown(test_listen_live_unix_socket_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload_from_host_function_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_from_output_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_from_timer_output_on_host_loop, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
