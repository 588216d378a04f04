/*
 * fuzzutil.c: the output checker and the runtime set-up of the fuzz
 * targets. See fuzzutil.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yajl/yajl_parse.h>

#include "fuzzutil.h"
#include "internal.h"

#ifndef FZ_HANDLERS_DIR
#define FZ_HANDLERS_DIR "tests/fuzz/handlers"
#endif
#ifndef FZ_LUA_DIR
#define FZ_LUA_DIR "lua"
#endif

void fz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz invariant broken: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

bool fz_print;

void fz_print_input(const char *p, size_t n) {
  if (fz_print) fprintf(stderr, "in:  %.*s%s", (int)n, p,
                        n > 0 && p[n - 1] == '\n' ? "" : "\n");
}

bool fz_replaying(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    struct stat sb;
    if (argv[i][0] == '-') continue; /* -flag=value */
    if (stat(argv[i], &sb) == 0 && S_ISREG(sb.st_mode)) return true;
  }
  return false;
}

bool fz_utf8_valid(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    unsigned char c = p[i];
    uint32_t cp;
    size_t n;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (len - i < n) return false;
    for (size_t k = 1; k < n; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3Fu);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}

/* ---- checking output lines ------------------------------------------- */

typedef struct checker {
  int depth;
  int values; /* top-level values seen */
  bool object;
  char key[32]; /* the current top-level key (truncated) */
  bool key_long;
  const char *error;
  fz_line *line;
} checker;

static char **slot_for(checker *c) {
  if (c->depth != 1 || c->key_long) return NULL;
  fz_line *l = c->line;
  static const char *const names[] = {"type",   "session",       "state",
                                      "reason", "interactionid", "requestid",
                                      "error",  "action",        "name"};
  char **slots[] = {&l->type,      &l->session,   &l->state,
                    &l->reason,    &l->interactionid, &l->requestid,
                    &l->error,     &l->action,    &l->name};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(c->key, names[i]) == 0) return slots[i];
  return NULL;
}

static int top_value(checker *c) {
  if (c->depth == 0) {
    c->values++;
    c->error = "the line is not a JSON object";
    return 0;
  }
  return 1;
}

static int ck_null(void *ctx) { return top_value(ctx); }

static int ck_boolean(void *ctx, int b) {
  checker *c = ctx;
  if (c->depth == 1 && strcmp(c->key, "ok") == 0) c->line->ok = b;
  return top_value(c);
}

static int ck_number(void *ctx, const char *s, size_t len) {
  (void)s;
  (void)len;
  return top_value(ctx);
}

static int ck_string(void *ctx, const unsigned char *s, size_t len) {
  checker *c = ctx;
  if (!fz_utf8_valid((const char *)s, len)) {
    c->error = "a string is not valid UTF-8";
    return 0;
  }
  char **slot = slot_for(c);
  if (slot != NULL) {
    if (*slot != NULL) {
      c->error = "a member appears twice";
      return 0;
    }
    *slot = malloc(len + 1);
    if (*slot == NULL) fz_fail("out of memory");
    memcpy(*slot, s, len);
    (*slot)[len] = '\0';
    if (slot == &c->line->interactionid) c->line->interactionid_len = len;
  }
  return top_value(c);
}

static int ck_start_map(void *ctx) {
  checker *c = ctx;
  if (c->depth == 0) {
    c->values++;
    c->object = true;
  }
  c->depth++;
  return 1;
}

static int ck_map_key(void *ctx, const unsigned char *s, size_t len) {
  checker *c = ctx;
  if (!fz_utf8_valid((const char *)s, len)) {
    c->error = "a key is not valid UTF-8";
    return 0;
  }
  if (c->depth == 1) {
    c->key_long = len >= sizeof(c->key) || memchr(s, 0, len) != NULL;
    size_t n = c->key_long ? 0 : len;
    memcpy(c->key, s, n);
    c->key[n] = '\0';
  }
  return 1;
}

static int ck_end(void *ctx) {
  checker *c = ctx;
  c->depth--;
  return 1;
}

static int ck_start_array(void *ctx) {
  checker *c = ctx;
  if (c->depth == 0) {
    c->error = "the line is not a JSON object";
    return 0;
  }
  c->depth++;
  return 1;
}

static const yajl_callbacks check_callbacks = {
    ck_null,      ck_boolean, NULL,   NULL,           ck_number, ck_string,
    ck_start_map, ck_map_key, ck_end, ck_start_array, ck_end,
};

void fz_line_free(fz_line *l) {
  free(l->type);
  free(l->session);
  free(l->state);
  free(l->reason);
  free(l->interactionid);
  free(l->requestid);
  free(l->error);
  free(l->action);
  free(l->name);
  memset(l, 0, sizeof(*l));
  l->ok = -1;
}

/* A structured field must be NULL exactly when the member is absent, and
 * equal to it otherwise. Held lines (type 0) carry no structured view. */
static void same(const char *what, const char *field, const char *member,
                 const ixr_output *out) {
  if (out->type == 0) return;
  if ((field == NULL) != (member == NULL) ||
      (field != NULL && strcmp(field, member) != 0))
    fz_fail("structured field %s (%s) disagrees with the line: %.*s", what,
            field ? field : "NULL", (int)out->json_len, out->json);
}

void fz_check_output(const ixr_output *out, fz_line *result) {
  if (out == NULL || out->json == NULL) fz_fail("output without a line");
  const char *json = out->json;
  size_t len = out->json_len;
  if (fz_print) fprintf(stderr, "out: %.*s\n", (int)len, json);
  if (len < 2 || json[0] != '{' || json[len - 1] != '}')
    fz_fail("output line is not exactly one object: %.*s", (int)len, json);
  if (memchr(json, '\n', len) != NULL || memchr(json, '\r', len) != NULL)
    fz_fail("output line holds a line break: %.*s", (int)len, json);
  if (memchr(json, '\0', len) != NULL)
    fz_fail("output line holds a NUL byte: %.*s", (int)len, json);
  fz_line local;
  memset(&local, 0, sizeof(local));
  local.ok = -1;
  checker c;
  memset(&c, 0, sizeof(c));
  c.line = &local;
  yajl_handle h = yajl_alloc(&check_callbacks, NULL, &c);
  if (h == NULL) fz_fail("out of memory");
  yajl_status st = yajl_parse(h, (const unsigned char *)json, len);
  if (st == yajl_status_ok) st = yajl_complete_parse(h);
  if (st != yajl_status_ok) {
    unsigned char *msg = yajl_get_error(h, 1, (const unsigned char *)json, len);
    fz_fail("output line is not valid JSON (%s): %s\n%.*s",
            c.error ? c.error : "syntax", msg, (int)len, json);
  }
  yajl_free(h);
  if (!c.object || c.values != 1)
    fz_fail("output line is not one JSON object: %.*s", (int)len, json);
  static const char *const types[] = {NULL, "session", "action", "error",
                                      "reply"};
  if (local.type == NULL)
    fz_fail("output line without a type: %.*s", (int)len, json);
  if (out->type == 0) {
    bool known = false;
    for (int i = 1; i <= 4; i++) known = known || strcmp(local.type, types[i]) == 0;
    if (!known) fz_fail("output line of unknown type: %.*s", (int)len, json);
  } else if ((int)out->type < 1 || (int)out->type > 4 ||
             strcmp(local.type, types[out->type]) != 0) {
    fz_fail("output type %d but the line says %s: %.*s", (int)out->type,
            local.type, (int)len, json);
  }
  same("session", out->session, local.session, out);
  same("state", out->state, local.state, out);
  same("reason", out->reason, local.reason, out);
  same("action", out->action, local.action, out);
  same("requestid", out->requestid, local.requestid, out);
  same("error", out->error, local.error, out);
  if (out->type != 0) {
    if ((out->interactionid == NULL) != (local.interactionid == NULL) ||
        (out->interactionid != NULL &&
         (out->interactionid_len != local.interactionid_len ||
          memcmp(out->interactionid, local.interactionid,
                 local.interactionid_len) != 0)))
      fz_fail("structured interactionid disagrees with the line: %.*s",
              (int)len, json);
  }
  if (out->type == IXR_OUT_SESSION && (local.state == NULL || local.session == NULL))
    fz_fail("session line without state or session: %.*s", (int)len, json);
  if (out->type == IXR_OUT_ACTION &&
      (local.action == NULL || local.requestid == NULL || local.session == NULL))
    fz_fail("action line without action, requestid or session: %.*s", (int)len,
            json);
  if (out->type == IXR_OUT_ERROR && (local.error == NULL || out->message == NULL))
    fz_fail("error line without error or message: %.*s", (int)len, json);
  if (result != NULL) *result = local;
  else fz_line_free(&local);
}

/* ---- the runtime ------------------------------------------------------- */

static void check_log(void *ud, ixr_log_level level, const char *msg) {
  (void)ud;
  if ((int)level < IXR_LOG_ERROR || (int)level > IXR_LOG_TRACE)
    fz_fail("log record of level %d", (int)level);
  if (msg == NULL) fz_fail("log record without a message");
  /* The log may quote input; it need only be a C string. Touch it all. */
  volatile size_t n = strlen(msg);
  (void)n;
}

static void check_trace(void *ud, const char *line) {
  (void)ud;
  if (line == NULL) fz_fail("trace without a line");
  volatile size_t n = strlen(line);
  (void)n;
}

static size_t fz_max_line;

static void check_input(void *ud, const char *line, size_t len, uint64_t now) {
  (void)ud;
  (void)now;
  if (line == NULL) { /* a line skipped as too long: more than the limit */
    if (len <= fz_max_line) fz_fail("skipped line of %zu bytes, within %zu", len, fz_max_line);
    return;
  }
  if (len > fz_max_line) fz_fail("input record of %zu bytes, over %zu", len, fz_max_line);
  if (memchr(line, '\n', len) != NULL)
    fz_fail("input record holds a newline: the framer split it wrong");
}

ixr_runtime *fz_runtime_new(ixr_output_cb on_output, void *ud, size_t max_line,
                            bool trace) {
  ixr_options o;
  ixr_options_init(&o);
  const char *env = getenv("IXR_FUZZ_HANDLERS");
  o.handlers_dir = env != NULL && env[0] != '\0' ? env : FZ_HANDLERS_DIR;
  o.lua_dir = FZ_LUA_DIR;
  o.clock = IXR_CLOCK_MANUAL;
  o.on_output = on_output;
  o.output_ud = ud;
  o.on_log = check_log;
  o.log_level = IXR_LOG_TRACE; /* every log statement runs, then is dropped */
  o.on_input = check_input;
  if (trace) o.on_trace = check_trace;
  if (max_line != 0) o.max_line = max_line;
  fz_max_line = o.max_line;
  fz_print = getenv("IXR_FUZZ_PRINT") != NULL;
  ixr_runtime *rt = NULL;
  int rc = ixr_new(&rt, &o);
  if (rc != 0)
    fz_fail("ixr_new: %s (handlers %s, lua %s)", ixr_strerror(rc),
            o.handlers_dir, o.lua_dir);
  fz_check_idle(rt);
  return rt;
}

void fz_check_idle(ixr_runtime *rt) {
  if (lua_gettop(rt->L) != 0)
    fz_fail("the Lua stack holds %d values between events", lua_gettop(rt->L));
  if (rt->depth != 0) fz_fail("dispatch depth %d between events", rt->depth);
  if (rt->dead != NULL) fz_fail("an ended session was not freed");
  if (rt->draining || rt->in_output != 0)
    fz_fail("draining or in output between events");
  if (rt->queue_head != NULL || rt->queue_running)
    fz_fail("input fed from a callback left unprocessed");
}
