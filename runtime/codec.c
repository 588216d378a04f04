/*
 * codec.c: JSON lines to Lua tables and Lua values to JSON lines, with yajl
 * (see docs/json-choice.md for why yajl). Decoding goes straight from the
 * parser's callbacks onto the Lua stack, without an intermediate tree.
 *
 * Decoding rules, also in docs/protocol.md:
 * - objects become tables; arrays become sequences (1-based);
 * - null is dropped from objects (the key is absent) and becomes ixr.null
 *   (a light userdata) in arrays, so array lengths are kept;
 * - numbers that are integers in range stay integers, others become floats;
 *   a number outside the range of a double is an error;
 * - strings must be valid UTF-8; \u0000 is allowed (Lua strings hold NULs);
 * - a duplicate key keeps its last value;
 * - nesting deeper than IXR__MAX_DEPTH is an error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "internal.h"

#define IXR__MAX_DEPTH 64

/* ---- decoding --------------------------------------------------------- */

typedef struct decoder {
  lua_State *L;
  int depth;
  lua_Integer index[IXR__MAX_DEPTH + 1]; /* 0 for objects, next index for arrays */
  const char *error;                     /* set when a callback cancels */
} decoder;

/* The light userdata that stands for JSON null inside arrays. */
static const char null_tag = 0;
#define IXR__NULL ((void *)&null_tag)

void *ixr__null(void) { return IXR__NULL; }

/* [-1, +0] stores the value on top into its container, or keeps it at the top
 * level. */
static int store(decoder *d) {
  lua_State *L = d->L;
  if (d->depth == 0) return 1;
  lua_Integer i = d->index[d->depth];
  if (i > 0) {
    lua_rawseti(L, -2, i);
    d->index[d->depth] = i + 1;
  } else {
    lua_rawset(L, -3);
  }
  return 1;
}

static int on_null(void *ctx) {
  decoder *d = ctx;
  if (d->depth > 0 && d->index[d->depth] == 0) {
    /* An object member with null is absent, also when an earlier duplicate
     * of its key had a value: the last one wins. */
    lua_pushnil(d->L);
    lua_rawset(d->L, -3);
    return 1;
  }
  lua_pushlightuserdata(d->L, IXR__NULL);
  return store(d);
}

static int on_boolean(void *ctx, int b) {
  decoder *d = ctx;
  lua_pushboolean(d->L, b);
  return store(d);
}

static int on_number(void *ctx, const char *s, size_t len) {
  decoder *d = ctx;
  char tmp[128];
  if (len >= sizeof(tmp)) {
    d->error = "number too long";
    return 0;
  }
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  if (lua_stringtonumber(d->L, tmp) == 0) {
    d->error = "malformed number";
    return 0;
  }
  if (!lua_isinteger(d->L, -1) && !isfinite(lua_tonumber(d->L, -1))) {
    lua_pop(d->L, 1);
    d->error = "number out of range";
    return 0;
  }
  return store(d);
}

/* Strings need no UTF-8 check here: ixr__decode has checked the whole
 * line strictly (yajl's own check lets overlong forms and surrogates
 * through), and refused unpaired surrogate escapes, so what yajl decodes
 * from it is valid UTF-8 too. */
static int on_string(void *ctx, const unsigned char *s, size_t len) {
  decoder *d = ctx;
  lua_pushlstring(d->L, (const char *)s, len);
  return store(d);
}

static int on_key(void *ctx, const unsigned char *s, size_t len) {
  decoder *d = ctx;
  lua_pushlstring(d->L, (const char *)s, len);
  return 1;
}

static int open_container(decoder *d, lua_Integer first_index) {
  if (d->depth >= IXR__MAX_DEPTH) {
    d->error = "nesting deeper than 64 levels";
    return 0;
  }
  if (!lua_checkstack(d->L, 4)) {
    d->error = "out of Lua stack";
    return 0;
  }
  lua_createtable(d->L, 0, first_index ? 0 : 4);
  d->depth++;
  d->index[d->depth] = first_index;
  return 1;
}

static int on_start_map(void *ctx) { return open_container(ctx, 0); }
static int on_start_array(void *ctx) { return open_container(ctx, 1); }

static int on_end(void *ctx) {
  decoder *d = ctx;
  d->depth--;
  return store(d);
}

static const yajl_callbacks callbacks = {
    on_null,  on_boolean, NULL,   NULL,           on_number,    on_string,
    on_start_map, on_key, on_end, on_start_array, on_end,
};

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

/*
 * yajl turns an unpaired surrogate escape (\ud800) into '?', so that two
 * different ids could decode to the same string. Such escapes are refused
 * here instead; returns the offset of the first one, or -1. Backslashes
 * are legal only inside strings, so no string tracking is needed.
 */
static long lone_surrogate(const char *line, size_t len) {
  const char *p = memchr(line, '\\', len), *end = line + len;
  while (p != NULL && p + 1 < end) {
    if (p[1] != 'u') {
      p += 2;
    } else {
      unsigned v, w;
      if (p + 6 > end || hex4(p + 2, &v) != 0) return -1; /* yajl reports it */
      if (v >= 0xDC00 && v <= 0xDFFF) return p - line;
      if (v >= 0xD800 && v <= 0xDBFF) {
        if (p + 12 > end || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &w) != 0 ||
            w < 0xDC00 || w > 0xDFFF)
          return p - line;
        p += 12;
      } else {
        p += 6;
      }
    }
    p = p < end ? memchr(p, '\\', (size_t)(end - p)) : NULL;
  }
  return -1;
}

/*
 * yajl's memory for one line (its handle, lexer buffer, byte stack) comes
 * from an arena that is reset before the next line: a line costs no
 * malloc/free at all unless it is larger than the arena. Each block has a
 * header with its size (yajl's realloc and free do not pass one).
 */
#define ARENA_SIZE (32 * 1024)

typedef struct arena {
  size_t used;
  char buf[ARENA_SIZE];
} arena;

typedef struct ahdr {
  size_t size;
  size_t heap; /* 1: a malloc'd block (the arena was full) */
} ahdr;

static void *a_malloc(void *ctx, size_t size) {
  arena *a = ctx;
  size_t need = sizeof(ahdr) + ((size + 15) & ~(size_t)15);
  ahdr *h;
  if (a->used + need <= ARENA_SIZE) {
    h = (ahdr *)(a->buf + a->used);
    a->used += need;
    h->heap = 0;
  } else {
    h = malloc(sizeof(ahdr) + size);
    if (h == NULL) return NULL;
    h->heap = 1;
  }
  h->size = size;
  return h + 1;
}

static void a_free(void *ctx, void *p) {
  (void)ctx;
  if (p == NULL) return;
  ahdr *h = (ahdr *)p - 1;
  if (h->heap) free(h);
}

static void *a_realloc(void *ctx, void *p, size_t size) {
  if (p == NULL) return a_malloc(ctx, size);
  ahdr *h = (ahdr *)p - 1;
  if (size <= h->size) return p;
  void *q = a_malloc(ctx, size);
  if (q == NULL) return NULL;
  memcpy(q, p, h->size);
  a_free(ctx, p);
  return q;
}

int ixr__decode(ixr_runtime *rt, const char *line, size_t len, char *err,
                size_t errlen) {
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  long bad = ixr__utf8_invalid_at(line, len);
  if (bad >= 0) {
    snprintf(err, errlen, "invalid UTF-8 (at byte %ld)", bad);
    return IXR_EINVAL;
  }
  bad = lone_surrogate(line, len);
  if (bad >= 0) {
    snprintf(err, errlen, "unpaired UTF-16 surrogate escape (at byte %ld)", bad);
    return IXR_EINVAL;
  }
  decoder d;
  d.L = L;
  d.depth = 0;
  d.index[0] = 0;
  d.error = NULL;
  if (rt->decode_arena == NULL && (rt->decode_arena = malloc(sizeof(arena))) == NULL) {
    snprintf(err, errlen, "out of memory");
    return IXR_ENOMEM;
  }
  arena *a = rt->decode_arena;
  a->used = 0;
  yajl_alloc_funcs af = {a_malloc, a_realloc, a_free, a};
  yajl_handle h = yajl_alloc(&callbacks, &af, &d);
  if (h != NULL) yajl_config(h, yajl_dont_validate_strings, 1); /* ours is stricter */
  if (h == NULL) {
    snprintf(err, errlen, "out of memory");
    return IXR_ENOMEM;
  }
  yajl_status st = yajl_parse(h, (const unsigned char *)line, len);
  if (st == yajl_status_ok) st = yajl_complete_parse(h);
  if (st != yajl_status_ok) {
    if (st == yajl_status_client_canceled && d.error != NULL) {
      snprintf(err, errlen, "%s (at byte %zu)", d.error,
               yajl_get_bytes_consumed(h));
    } else {
      unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
      size_t n = strcspn((const char *)msg, "\n");
      size_t at = yajl_get_bytes_consumed(h);
      snprintf(err, errlen, "%.*s (at byte %zu)", (int)n, (const char *)msg,
               at);
      yajl_free_error(h, msg);
    }
    yajl_free(h);
    lua_settop(L, top);
    return IXR_EINVAL;
  }
  yajl_free(h);
  if (lua_gettop(L) != top + 1) { /* empty input */
    lua_settop(L, top);
    snprintf(err, errlen, "no JSON value");
    return IXR_EINVAL;
  }
  return 0;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF.
 * Returns the offset of the first byte that breaks it, or -1. */
long ixr__utf8_invalid_at(const char *s, size_t len) {
  const unsigned char *start = (const unsigned char *)s;
  const unsigned char *p = start, *end = p + len;
  while (p < end) {
    /* ASCII, eight bytes at a time: the common case by far. */
    while (end - p >= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      if (w & 0x8080808080808080ull) break;
      p += 8;
    }
    if (p == end) break;
    unsigned c = *p;
    if (c < 0x80) {
      p++;
      continue;
    }
    size_t n;
    unsigned min, cp;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
      min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
      min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      return (long)(p - start);
    }
    if ((size_t)(end - p) <= n) return (long)(p - start);
    for (size_t i = 1; i <= n; i++) {
      if ((p[i] & 0xC0) != 0x80) return (long)(p - start);
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return (long)(p - start);
    p += n + 1;
  }
  return -1;
}

bool ixr__utf8_valid(const char *s, size_t len) {
  return ixr__utf8_invalid_at(s, len) < 0;
}

/* ---- encoding --------------------------------------------------------- */

struct ixr__jw {
  yajl_gen g;
  bool failed;
};

ixr__jw *ixr__jw_new(void) {
  ixr__jw *w = calloc(1, sizeof(*w));
  if (w == NULL) return NULL;
  w->g = yajl_gen_alloc(NULL);
  if (w->g == NULL) {
    free(w);
    return NULL;
  }
  /* ixr__jw_str and encode() check UTF-8 themselves, strictly. */
  return w;
}

void ixr__jw_free(ixr__jw *w) {
  if (w == NULL) return;
  yajl_gen_free(w->g);
  free(w);
}

void ixr__jw_begin(ixr__jw *w) {
  yajl_gen_reset(w->g, NULL);
  yajl_gen_clear(w->g);
  w->failed = false;
  yajl_gen_map_open(w->g);
}

static void key(ixr__jw *w, const char *k) {
  if (yajl_gen_string(w->g, (const unsigned char *)k, strlen(k)) !=
      yajl_gen_status_ok)
    w->failed = true;
}

void ixr__jw_str(ixr__jw *w, const char *k, const char *val, size_t len) {
  key(w, k);
  /* yajl's check alone would let overlong forms and surrogates through. */
  if (ixr__utf8_valid(val, len)) {
    yajl_gen_string(w->g, (const unsigned char *)val, len);
    return;
  }
  /* Never a key without its value: the line stays valid JSON, with every
   * byte outside ASCII shown as '?', and the caller is told. */
  w->failed = true;
  char small[256];
  char *copy = len < sizeof(small) ? small : malloc(len);
  if (copy == NULL) {
    yajl_gen_string(w->g, (const unsigned char *)"?", 1);
    return;
  }
  for (size_t i = 0; i < len; i++)
    copy[i] = (unsigned char)val[i] < 0x80 ? val[i] : '?';
  yajl_gen_string(w->g, (const unsigned char *)copy, len);
  if (copy != small) free(copy);
}

void ixr__jw_int(ixr__jw *w, const char *k, int64_t val) {
  key(w, k);
  yajl_gen_integer(w->g, (long long)val);
}

void ixr__jw_bool(ixr__jw *w, const char *k, bool val) {
  key(w, k);
  yajl_gen_bool(w->g, val);
}

static int format_double(char *buf, size_t n, double v);

void ixr__jw_double(ixr__jw *w, const char *k, double val) {
  key(w, k);
  char buf[40];
  if (!isfinite(val)) val = 0;
  int n = format_double(buf, sizeof(buf), val);
  yajl_gen_number(w->g, buf, (size_t)n);
}

/* Shortest of %.15g..%.17g that reads back as the same double. */
static int format_double(char *buf, size_t n, double v) {
  int len = 0;
  for (int prec = 15; prec <= 17; prec++) {
    len = snprintf(buf, n, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  if (strpbrk(buf, ".eE") == NULL && (size_t)len + 2 < n) {
    memcpy(buf + len, ".0", 3); /* keep it a float when read back */
    len += 2;
  }
  return len;
}

typedef struct keyref {
  const char *s; /* string keys */
  size_t len;
  bool isnum;    /* integer keys, written as their decimal text */
  lua_Integer ik;
  char num[24];
} keyref;

static const char *keytext(const keyref *k) { return k->isnum ? k->num : k->s; }

static int keycmp(const void *a, const void *b) {
  const keyref *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(keytext(x), keytext(y), n);
  if (c != 0) return c;
  return (x->len > y->len) - (x->len < y->len);
}

static int encode(ixr__jw *w, lua_State *L, int idx, int depth, char *err,
                  size_t errlen);

/* [-0, +0] a table is a JSON array when its keys are exactly 1..n (n > 0),
 * otherwise an object with sorted keys, so that output does not depend on
 * Lua's per-run string hash seed. */
static int encode_table(ixr__jw *w, lua_State *L, int idx, int depth,
                        char *err, size_t errlen) {
  yajl_gen g = w->g;
  keyref small[8];
  keyref *keys = small;
  size_t nkeys = 0, cap = IXR_ARRAY_SIZE(small);
  lua_Integer maxkey = 0;
  bool seq = true;
  int rc = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (nkeys == cap) {
      keyref *bigger = malloc(cap * 2 * sizeof(*bigger));
      if (bigger == NULL) {
        snprintf(err, errlen, "out of memory");
        lua_pop(L, 1);
        rc = -1;
        goto done;
      }
      memcpy(bigger, keys, nkeys * sizeof(*keys));
      if (keys != small) free(keys);
      keys = bigger;
      cap *= 2;
    }
    keyref *k = &keys[nkeys];
    int kt = lua_type(L, -1);
    if (kt == LUA_TNUMBER && lua_isinteger(L, -1)) {
      k->isnum = true;
      k->ik = lua_tointeger(L, -1);
      k->len = (size_t)snprintf(k->num, sizeof(k->num), "%lld", (long long)k->ik);
      k->s = NULL;
      if (k->ik < 1) seq = false;
      if (k->ik > maxkey) maxkey = k->ik;
    } else if (kt == LUA_TSTRING) {
      k->isnum = false;
      k->s = lua_tolstring(L, -1, &k->len); /* anchored by the table */
      seq = false;
      /* Checked before anything is written: a key yajl refused would leave
       * the value in the key's place. */
      if (!ixr__utf8_valid(k->s, k->len)) {
        snprintf(err, errlen, "key is not valid UTF-8");
        lua_pop(L, 1);
        rc = -1;
        goto done;
      }
    } else {
      snprintf(err, errlen, "cannot encode a %s key", lua_typename(L, kt));
      lua_pop(L, 1);
      rc = -1;
      goto done;
    }
    nkeys++;
  }
  if (seq && nkeys > 0 && (lua_Unsigned)maxkey == nkeys) {
    /* n distinct positive integer keys, the largest n: exactly 1..n. (The
     * border from lua_rawlen() is not enough: {1, nil, 3, [5] = 5} can have
     * border 3.) */
    yajl_gen_array_open(g);
    for (size_t i = 1; i <= nkeys && rc == 0; i++) {
      lua_rawgeti(L, idx, (lua_Integer)i);
      rc = encode(w, L, lua_gettop(L), depth + 1, err, errlen);
      lua_pop(L, 1);
    }
    yajl_gen_array_close(g);
    goto done;
  }
  qsort(keys, nkeys, sizeof(*keys), keycmp);
  yajl_gen_map_open(g);
  for (size_t i = 0; i < nkeys && rc == 0; i++) {
    keyref *k = &keys[i];
    yajl_gen_string(g, (const unsigned char *)keytext(k), k->len);
    if (k->isnum) {
      lua_rawgeti(L, idx, k->ik);
    } else {
      lua_pushlstring(L, k->s, k->len);
      lua_rawget(L, idx);
    }
    rc = encode(w, L, lua_gettop(L), depth + 1, err, errlen);
    lua_pop(L, 1);
  }
  yajl_gen_map_close(g);
done:
  if (keys != small) free(keys);
  return rc;
}

static int encode(ixr__jw *w, lua_State *L, int idx, int depth, char *err,
                  size_t errlen) {
  yajl_gen g = w->g;
  if (depth > IXR__MAX_DEPTH) {
    snprintf(err, errlen, "nesting deeper than %d levels (a cycle?)",
             IXR__MAX_DEPTH);
    return -1;
  }
  if (!lua_checkstack(L, 4)) {
    snprintf(err, errlen, "out of Lua stack");
    return -1;
  }
  switch (lua_type(L, idx)) {
    case LUA_TNIL: yajl_gen_null(g); return 0;
    case LUA_TBOOLEAN: yajl_gen_bool(g, lua_toboolean(L, idx)); return 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        yajl_gen_integer(g, (long long)lua_tointeger(L, idx));
      } else {
        double v = lua_tonumber(L, idx);
        if (!isfinite(v)) {
          snprintf(err, errlen, "cannot encode %s", isnan(v) ? "NaN" : "infinity");
          return -1;
        }
        char buf[40];
        int n = format_double(buf, sizeof(buf), v);
        yajl_gen_number(g, buf, (size_t)n);
      }
      return 0;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (!ixr__utf8_valid(s, len) ||
          yajl_gen_string(g, (const unsigned char *)s, len) != yajl_gen_status_ok) {
        snprintf(err, errlen, "string is not valid UTF-8");
        return -1;
      }
      return 0;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == IXR__NULL) {
        yajl_gen_null(g);
        return 0;
      }
      break;
    case LUA_TTABLE: return encode_table(w, L, idx, depth, err, errlen);
    default: break;
  }
  snprintf(err, errlen, "cannot encode a %s value", luaL_typename(L, idx));
  return -1;
}

int ixr__jw_lua(ixr__jw *w, const char *k, lua_State *L, int idx, char *err,
                size_t errlen) {
  key(w, k);
  int rc = encode(w, L, lua_absindex(L, idx), 0, err, errlen);
  if (rc != 0) w->failed = true;
  return rc;
}

void ixr__jw_end(ixr__jw *w, const char **line, size_t *len) {
  yajl_gen_map_close(w->g);
  const unsigned char *buf;
  size_t n;
  yajl_gen_get_buf(w->g, &buf, &n);
  *line = (const char *)buf;
  *len = n;
}

bool ixr__jw_failed(const ixr__jw *w) { return w->failed; }

size_t ixr__jw_len(const ixr__jw *w) {
  const unsigned char *buf;
  size_t n = 0;
  yajl_gen_get_buf(w->g, &buf, &n);
  return n;
}
