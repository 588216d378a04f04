/*
 * fuzz_decode.c: the line framer and the JSON decoder.
 *
 * Each input is used three ways:
 *  1. fed to a runtime with ixr_feed()/ixr_feed_end(), cut into pieces as
 *     the first byte says (so that lines span reads), the real path from
 *     bytes to dispatch; every output line is checked (fuzzutil.c);
 *  2. fed, cut the same way, to a bare framer with a small maximum line
 *     length, whose lines are compared with a plain split done here;
 *  3. decoded whole with ixr__decode(): the stack must be as it was on
 *     failure and one value higher on success; that value is encoded with
 *     the JSON writer and decoded again, and both values must be equal.
 *
 * The runtime is kept across inputs (making one costs more than running
 * many inputs) and replaced every RECYCLE inputs, or when the inputs have
 * started many sessions. When replaying files it is new for every input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "internal.h"

#define RECYCLE 2000
#define MAX_LIVE 256          /* sessions kept before the runtime is replaced */
#define RUNTIME_MAX_LINE 1024 /* small, so that line_too_long is reachable */
#define DECODE_MAX (64 * 1024)

static ixr_runtime *rt;
static unsigned long runs;
static bool fresh; /* a new runtime for every input */

static void on_output(void *ud, const ixr_output *out) {
  (void)ud;
  fz_check_output(out, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fresh = fz_replaying(*argc, *argv) || getenv("IXR_FUZZ_FRESH") != NULL;
  return 0;
}

/* ---- cutting the input into reads -------------------------------------- */

typedef struct cutter {
  const uint8_t *data;
  size_t size, pos;
  unsigned mode, param;
} cutter;

/* The first byte picks the cut: whole, in two at a point, in pieces of one
 * size, or byte by byte. The byte itself stays part of the input, so that
 * seed files are plain NDJSON. */
static void cut_init(cutter *c, const uint8_t *data, size_t size) {
  c->data = data;
  c->size = size;
  c->pos = 0;
  c->mode = size > 0 ? data[0] & 3u : 0;
  c->param = size > 0 ? data[0] >> 2 : 0;
}

static bool cut_next(cutter *c, const char **p, size_t *n) {
  if (c->pos >= c->size) return false;
  size_t left = c->size - c->pos, take = left;
  switch (c->mode) {
    case 1: {
      size_t at = c->size * c->param / 63;
      if (c->pos < at) take = at - c->pos;
      break;
    }
    case 2: take = c->param + 1u; break;
    case 3: take = c->size <= 2048 ? 1 : 7; break;
    default: break;
  }
  if (take > left) take = left;
  *p = (const char *)c->data + c->pos;
  *n = take;
  c->pos += take;
  return true;
}

/* ---- 1. through the runtime -------------------------------------------- */

static void through_runtime(const uint8_t *data, size_t size) {
  if (rt != NULL) {
    ixr_stats st;
    ixr_get_stats(rt, &st);
    if (fresh || runs % RECYCLE == 0 ||
        st.sessions_active + st.sessions_suspended > MAX_LIVE) {
      ixr_close(rt);
      rt = NULL;
    }
  }
  if (rt == NULL) rt = fz_runtime_new(on_output, NULL, RUNTIME_MAX_LINE, true);
  cutter c;
  cut_init(&c, data, size);
  const char *p;
  size_t n;
  while (cut_next(&c, &p, &n)) {
    if (fz_print) fprintf(stderr, "in:  (%zu bytes)\n", n);
    int rc = ixr_feed(rt, p, n);
    if (rc != 0) fz_fail("ixr_feed: %s", ixr_strerror(rc));
  }
  int rc = ixr_feed_end(rt);
  if (rc != 0) fz_fail("ixr_feed_end: %s", ixr_strerror(rc));
  fz_check_idle(rt);
}

/* ---- 2. the framer against a plain split ------------------------------- */

typedef struct refline {
  size_t start, len; /* without the newline and a last '\r' */
  bool too_long;
  bool terminated;
} refline;

typedef struct framecheck {
  const uint8_t *data;
  refline *lines;
  size_t nlines, next;
  bool finishing;
} framecheck;

static size_t plain_split(const uint8_t *data, size_t size, size_t max_line,
                          refline **out) {
  size_t cap = 16, n = 0, start = 0;
  refline *lines = malloc(cap * sizeof(*lines));
  if (lines == NULL) fz_fail("out of memory");
  while (start < size) {
    const uint8_t *nl = memchr(data + start, '\n', size - start);
    size_t len = nl ? (size_t)(nl - (data + start)) : size - start;
    if (n == cap) {
      cap *= 2;
      lines = realloc(lines, cap * sizeof(*lines));
      if (lines == NULL) fz_fail("out of memory");
    }
    refline *l = &lines[n++];
    l->start = start;
    l->len = len > 0 && data[start + len - 1] == '\r' ? len - 1 : len;
    l->too_long = l->len > max_line;
    l->terminated = nl != NULL;
    start += len + 1;
  }
  *out = lines;
  return n;
}

static void frame_line(void *ud, const char *line, size_t len, uint64_t lineno,
                       ixr__line_status status) {
  framecheck *fc = ud;
  if (fc->next >= fc->nlines)
    fz_fail("framer: line %llu delivered, but the input has only %zu",
            (unsigned long long)lineno, fc->nlines);
  const refline *want = &fc->lines[fc->next++];
  if (lineno != fc->next)
    fz_fail("framer: line number %llu, expected %zu", (unsigned long long)lineno,
            fc->next);
  if (want->too_long) {
    if (status != IXR__LINE_TOO_LONG || line != NULL)
      fz_fail("framer: line %zu (%zu bytes) not reported as too long",
              fc->next, want->len);
    return;
  }
  if (status != IXR__LINE_OK)
    fz_fail("framer: line %zu (%zu bytes) reported as too long", fc->next,
            want->len);
  if (!want->terminated && !fc->finishing)
    fz_fail("framer: the last line was delivered before the end of input");
  if (len != want->len || (len > 0 && memcmp(line, fc->data + want->start, len) != 0))
    fz_fail("framer: line %zu is %zu bytes, expected %zu (or its bytes differ)",
            fc->next, len, want->len);
}

static void through_framer(const uint8_t *data, size_t size) {
  /* From 1 to 64 bytes, so that long lines are common. */
  size_t max_line = size > 1 ? (size_t)(data[1] & 63u) + 1 : 8;
  framecheck fc;
  memset(&fc, 0, sizeof(fc));
  fc.data = data;
  fc.nlines = plain_split(data, size, max_line, &fc.lines);
  ixr__framer f;
  ixr__framer_init(&f, max_line);
  cutter c;
  cut_init(&c, data, size);
  const char *p;
  size_t n;
  while (cut_next(&c, &p, &n)) {
    if (ixr__framer_push(&f, p, n, frame_line, &fc) != 0)
      fz_fail("framer: push failed");
    if (f.buf.len > max_line + 1)
      fz_fail("framer: holds %zu bytes with a maximum line of %zu", f.buf.len,
              max_line);
  }
  fc.finishing = true;
  ixr__framer_finish(&f, frame_line, &fc);
  if (fc.next != fc.nlines)
    fz_fail("framer: %zu lines delivered, the input has %zu", fc.next, fc.nlines);
  ixr__framer_free(&f);
  free(fc.lines);
}

/* ---- 3. decode, encode, decode ----------------------------------------- */

/* [-0, +0] are the values at a and b equal, with number subtypes? */
static bool same_value(lua_State *L, int a, int b, int depth) {
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  int t = lua_type(L, a);
  if (t != lua_type(L, b)) return false;
  switch (t) {
    case LUA_TNIL: return true;
    case LUA_TBOOLEAN: return lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TLIGHTUSERDATA: return lua_touserdata(L, a) == lua_touserdata(L, b);
    case LUA_TNUMBER:
      if (lua_isinteger(L, a) != lua_isinteger(L, b)) return false;
      if (lua_isinteger(L, a)) return lua_tointeger(L, a) == lua_tointeger(L, b);
      return lua_tonumber(L, a) == lua_tonumber(L, b);
    case LUA_TSTRING: {
      size_t la, lb;
      const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
      return la == lb && memcmp(sa, sb, la) == 0;
    }
    case LUA_TTABLE: {
      if (depth > 100 || !lua_checkstack(L, 6)) fz_fail("compare: too deep");
      size_t na = 0, nb = 0;
      bool eq = true;
      lua_pushnil(L);
      while (lua_next(L, a) != 0) { /* key, value */
        na++;
        lua_pushvalue(L, -2);
        lua_rawget(L, b); /* key, value, b[key] */
        if (eq) eq = same_value(L, -2, -1, depth + 1);
        lua_pop(L, 2);
      }
      lua_pushnil(L);
      while (lua_next(L, b) != 0) {
        nb++;
        lua_pop(L, 1);
      }
      return eq && na == nb;
    }
    default: return false;
  }
}

static void decode_twice(const uint8_t *data, size_t size) {
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  size_t n = size < DECODE_MAX ? size : DECODE_MAX;
  char err[256];
  err[0] = '\0';
  bool id = false;
  int rc = ixr__decode(rt, (const char *)data, n, err, sizeof(err), &id);
  if (rc != 0) {
    /* Nothing, or the id it recovered: a string or a number. */
    if (lua_gettop(L) != top + (id ? 1 : 0))
      fz_fail("decode failed (%s) and left the stack %d -> %d (id %d)", err, top,
              lua_gettop(L), (int)id);
    if (id && lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      fz_fail("decode failed and recovered an id of type %s", luaL_typename(L, -1));
    if (err[0] == '\0') fz_fail("decode failed without a message");
    lua_settop(L, top);
    return;
  }
  if (lua_gettop(L) != top + 1)
    fz_fail("decode succeeded and left the stack %d -> %d", top, lua_gettop(L));
  /* Encode it, as a member of an object (the writer only writes objects). */
  ixr__jw *w = ixr__jw_new();
  if (w == NULL) fz_fail("out of memory");
  ixr__jw_begin(w);
  if (ixr__jw_lua(w, "v", L, -1, err, sizeof(err)) != 0 || ixr__jw_failed(w))
    fz_fail("a decoded value does not encode: %s", err);
  const char *line;
  size_t len;
  ixr__jw_end(w, &line, &len);
  /* Take the value out of its frame {"v":...}: framed, a value nested 64
   * deep would be one level too deep to decode again. */
  if (len < 6 || memcmp(line, "{\"v\":", 5) != 0 || line[len - 1] != '}')
    fz_fail("encoded value has an unexpected frame: %.*s", (int)len, line);
  if (memchr(line, '\n', len) != NULL)
    fz_fail("encoded value holds a newline: %.*s", (int)len, line);
  rc = ixr__decode(rt, line + 5, len - 6, err, sizeof(err), NULL);
  if (rc != 0)
    fz_fail("the encoding of a decoded value does not decode (%s): %.*s", err,
            (int)len, line);
  if (!same_value(L, -2, -1, 0))
    fz_fail("decode(encode(v)) differs from v; encoded: %.*s", (int)len, line);
  ixr__jw_free(w);
  lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  runs++;
  through_runtime(data, size);
  through_framer(data, size);
  decode_twice(data, size);
  fz_check_idle(rt);
  return 0;
}
