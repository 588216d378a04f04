/*
 * codec.c: JSON lines to Lua tables and Lua values to JSON lines. Decoding is
 * a hand-written recursive-descent parser that checks the line and builds
 * the Lua values in one pass; encoding writes straight into a byte buffer,
 * checking UTF-8 while it escapes (docs/json-choice.md says why both are
 * our own rather than yajl's).
 *
 * Decoding rules, also in docs/protocol.md:
 * - strict RFC 8259 JSON (one value; no comments, trailing commas or
 *   leading zeros), except that VT and FF count as whitespace, as they did
 *   with yajl;
 * - objects become tables; arrays become sequences (1-based);
 * - null is dropped from objects (the key is absent) and becomes ixr.null
 *   (a light userdata) in arrays, so array lengths are kept;
 * - numbers that are integers in range stay integers, others become floats;
 *   a number outside the range of a double, or longer than 127 bytes, is an
 *   error;
 * - strings must be valid UTF-8 (no overlong forms, no surrogates, nothing
 *   above U+10FFFF); \u0000 is allowed (Lua strings hold NULs); a \u escape
 *   of half a surrogate pair is an error, a pair becomes one character;
 * - a duplicate key keeps its last value;
 * - nesting deeper than IXR__MAX_DEPTH is an error.
 * Every error message ends with "(at byte N)", N counting from 0.
 */
#include <langinfo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define IXR__MAX_DEPTH 64
/* The longest output line the writer makes for Lua values. */
#define IXR__MAX_OUTPUT_LINE (64 << 20)

/* ---- decoding --------------------------------------------------------- */

/* The light userdata that stands for JSON null inside arrays. */
static const char null_tag = 0;
#define IXR__NULL ((void *)&null_tag)

void *ixr__null(void) { return IXR__NULL; }

/*
 * An empty table cannot say whether it was [] or {}. Arrays that arrive
 * empty get this metatable (in the registry at &array_mt_key), and the
 * writer writes an empty table that has it as []; core.array() puts it on
 * a strategy's own tables. It has no fields: only its identity counts.
 */
static const char array_mt_key = 0;

static int null_tostring(lua_State *L) {
  if (lua_touserdata(L, 1) == IXR__NULL) lua_pushliteral(L, "null");
  else lua_pushfstring(L, "userdata: %p", lua_touserdata(L, 1));
  return 1;
}

void ixr__open_array_mt(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, "ixr.array");
  lua_setfield(L, -2, "__name");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
  /* JSON null (core.null) prints as "null", not as an address that
   * changes from run to run: the same input must give the same output.
   * The metatable of all light userdata, which only ixr makes; hidden from
   * getmetatable, so that no strategy changes it for the others. */
  lua_pushlightuserdata(L, IXR__NULL);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, null_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

void ixr__mark_array(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
  lua_setmetatable(L, idx);
}

bool ixr__is_marked_array(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return false;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
  bool yes = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return yes;
}

/*
 * A container's values wait on the Lua stack until it closes; then its
 * table is made with the exact size and filled, so that no table is ever
 * rehashed while it grows. A big container moves its values into the
 * table every BATCH members, which bounds the stack: at most
 * 2 * BATCH + 1 slots per level of nesting.
 */
#define BATCH 64

/* Scratch memory kept for strings with escapes beyond this is given back
 * after the line. */
#define SCRATCH_KEEP (64 * 1024)

typedef struct decoder {
  lua_State *L;
  const unsigned char *start, *end;
  const unsigned char *p; /* the next byte to read */
  ixr__buf *scratch;      /* strings with escapes are decoded here */
  ixr__keycache *kc;      /* recent object keys (NULL: none) */
  int kcidx;              /* their Lua strings: the table at this index */
  /* The failure: a message, or what was expected instead of the byte at
   * `at`. */
  const char *msg;
  const char *expected;
  const unsigned char *at;
  bool oom;
  /* The text of the top-level "id" member's value, once it parsed: a line
   * that fails after it still gets its id echoed. */
  const unsigned char *id_at, *id_end;
} decoder;

static int fail(decoder *d, const unsigned char *at, const char *msg) {
  d->msg = msg;
  d->at = at;
  return -1;
}

static int unexpected(decoder *d, const unsigned char *at, const char *expected) {
  d->msg = NULL;
  d->expected = expected;
  d->at = at;
  return -1;
}

static void error_message(const decoder *d, char *err, size_t errlen) {
  size_t at = (size_t)(d->at - d->start);
  if (d->msg != NULL)
    snprintf(err, errlen, "%s (at byte %zu)", d->msg, at);
  else if (d->at == d->end)
    snprintf(err, errlen, "unexpected end of input, expected %s (at byte %zu)",
             d->expected, at);
  else if (*d->at > 0x20 && *d->at < 0x7F)
    snprintf(err, errlen, "unexpected '%c', expected %s (at byte %zu)",
             *d->at, d->expected, at);
  else
    snprintf(err, errlen, "unexpected byte 0x%02x, expected %s (at byte %zu)",
             *d->at, d->expected, at);
}

/* Whitespace between tokens: RFC 8259's space, tab, LF and CR, and also
 * VT and FF, which yajl (the parser before this one) took as whitespace
 * too: lines that were accepted stay accepted. */
static inline const unsigned char *skip_ws(const unsigned char *p,
                                           const unsigned char *end) {
  while (p < end && (*p == ' ' || (*p >= '\t' && *p <= '\r'))) p++;
  return p;
}

/* The length of the strict UTF-8 sequence (RFC 3629) that starts with a
 * byte >= 0x80 at p, or 0 if there is none. */
static inline size_t utf8_seq(const unsigned char *p, const unsigned char *end) {
  unsigned c = p[0];
  size_t avail = (size_t)(end - p);
  if (c >= 0xC2 && c <= 0xDF)
    return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    /* E0: no overlong forms (below U+0800); ED: no surrogates. */
    unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    if (avail < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80) return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    /* F0: no overlong forms (below U+10000); F4: nothing above U+10FFFF. */
    unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (avail < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 ||
        (p[3] & 0xC0) != 0x80)
      return 0;
    return 4;
  }
  return 0;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* The first byte at or after p that a string cannot just copy: '"', '\\',
 * a control character or a byte outside ASCII; or end. Eight bytes at a
 * time: each test below sets the high bit of a byte that is what it looks
 * for, and can set more bits only above such a byte (through a borrow), so
 * the lowest bit set is the first byte wanted. */
static inline const unsigned char *plain_run(const unsigned char *p,
                                             const unsigned char *end) {
  while (end - p >= 8) {
    uint64_t w, q, b;
    memcpy(&w, p, 8);
    q = w ^ (ONES * '"');
    b = w ^ (ONES * '\\');
    /* A byte below 0x20 borrows in w - 0x20..; one at 0xA0 or above keeps
     * its high bit, but w itself has that bit. */
    uint64_t hit = (((q - ONES) & ~q) | ((b - ONES) & ~b) | (w - ONES * 0x20) | w) &
                   HIGHS;
    if (hit != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      return p + (__builtin_ctzll(hit) >> 3);
#else
      break;
#endif
    }
    p += 8;
  }
  while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
  return p;
}

static int hex4(const unsigned char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  *out = v;
  return 0;
}

/* Decodes the escape at p (a backslash) into o; returns the bytes written
 * (0 on failure) and advances *pp past the escape. */
static size_t unescape(decoder *d, const unsigned char **pp, char *o) {
  const unsigned char *p = *pp, *end = d->end;
  if (end - p < 2) {
    unexpected(d, end, "the rest of an escape");
    return 0;
  }
  char c;
  switch (p[1]) {
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case '/': c = '/'; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'u': {
      unsigned v, w;
      if (end - p < 6 || hex4(p + 2, &v) != 0) {
        fail(d, p, "invalid \\u escape: four hex digits expected");
        return 0;
      }
      if (v >= 0xD800 && v <= 0xDFFF) {
        /* Only a high surrogate followed by a low one stands for a
         * character; yajl used to turn the others into '?', which would
         * make different ids decode alike. */
        if (v > 0xDBFF || end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
            hex4(p + 8, &w) != 0 || w < 0xDC00 || w > 0xDFFF) {
          fail(d, p, "unpaired UTF-16 surrogate escape");
          return 0;
        }
        v = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00);
        *pp = p + 12;
      } else {
        *pp = p + 6;
      }
      if (v < 0x80) {
        o[0] = (char)v;
        return 1;
      }
      if (v < 0x800) {
        o[0] = (char)(0xC0 | (v >> 6));
        o[1] = (char)(0x80 | (v & 0x3F));
        return 2;
      }
      if (v < 0x10000) {
        o[0] = (char)(0xE0 | (v >> 12));
        o[1] = (char)(0x80 | ((v >> 6) & 0x3F));
        o[2] = (char)(0x80 | (v & 0x3F));
        return 3;
      }
      o[0] = (char)(0xF0 | (v >> 18));
      o[1] = (char)(0x80 | ((v >> 12) & 0x3F));
      o[2] = (char)(0x80 | ((v >> 6) & 0x3F));
      o[3] = (char)(0x80 | (v & 0x3F));
      return 4;
    }
    default:
      fail(d, p, "invalid escape in a string");
      return 0;
  }
  o[0] = c;
  *pp = p + 2;
  return 1;
}

/* [-0, +1] d->p is just past an opening quote: pushes the string and
 * moves d->p past its closing quote. A string without escapes goes to Lua
 * straight from the line; one with escapes is decoded into the scratch
 * buffer first (never longer than its JSON text). */
static int push_string(decoder *d) {
  const unsigned char *s = d->p, *p = s, *end = d->end;
  for (;;) {
    p = plain_run(p, end);
    if (p == end) return fail(d, s - 1, "unterminated string");
    if (*p == '"') {
      lua_pushlstring(d->L, (const char *)s, (size_t)(p - s));
      d->p = p + 1;
      return 0;
    }
    if (*p == '\\') break;
    if (*p < 0x20) return fail(d, p, "control character in a string");
    size_t n = utf8_seq(p, end);
    if (n == 0) return fail(d, p, "invalid UTF-8");
    p += n;
  }
  /* Escapes: what is left of the line bounds the decoded length. */
  if (ixr__buf_reserve(d->scratch, (size_t)(end - s)) != 0) {
    d->oom = true;
    return fail(d, p, "out of memory");
  }
  char *o = d->scratch->data;
  memcpy(o, s, (size_t)(p - s));
  o += p - s;
  for (;;) {
    /* p is at a byte that plain_run stopped at. */
    if (*p == '"') break;
    if (*p == '\\') {
      size_t n = unescape(d, &p, o);
      if (n == 0) return -1;
      o += n;
    } else if (*p < 0x20) {
      return fail(d, p, "control character in a string");
    } else {
      size_t n = utf8_seq(p, end);
      if (n == 0) return fail(d, p, "invalid UTF-8");
      memcpy(o, p, n);
      o += n;
      p += n;
    }
    const unsigned char *run = p;
    p = plain_run(p, end);
    memcpy(o, run, (size_t)(p - run));
    o += p - run;
    if (p == end) return fail(d, s - 1, "unterminated string");
  }
  lua_pushlstring(d->L, d->scratch->data, (size_t)(o - d->scratch->data));
  d->p = p + 1;
  return 0;
}

static inline bool is_digit(unsigned c) { return c - '0' < 10; }

/* [-0, +1] pushes the number at d->p. Plain integers of up to 18 digits
 * are read here; everything else goes through lua_stringtonumber, as Lua
 * would read the same text: integers that fit in 64 bits stay integers,
 * larger ones become floats. */
static int push_number(decoder *d) {
  const unsigned char *s = d->p, *p = s, *end = d->end;
  bool neg = false, isfloat = false;
  if (*p == '-') {
    neg = true;
    p++;
  }
  const unsigned char *digits = p;
  if (p == end || !is_digit(*p)) return fail(d, p, "malformed number: a digit is expected");
  if (*p == '0') p++;
  else
    while (p < end && is_digit(*p)) p++;
  size_t ndigits = (size_t)(p - digits);
  if (p < end && *p == '.') {
    p++;
    if (p == end || !is_digit(*p))
      return fail(d, p, "malformed number: a digit is expected after '.'");
    while (p < end && is_digit(*p)) p++;
    isfloat = true;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p == end || !is_digit(*p))
      return fail(d, p, "malformed number: a digit is expected in the exponent");
    while (p < end && is_digit(*p)) p++;
    isfloat = true;
  }
  size_t len = (size_t)(p - s);
  char tmp[128];
  if (len >= sizeof(tmp)) return fail(d, s, "number too long");
  if (!isfloat && ndigits <= 18) {
    /* At most 10^18 - 1: no overflow. */
    lua_Integer v = 0;
    for (const unsigned char *q = digits; q < p; q++) v = v * 10 + (*q - '0');
    lua_pushinteger(d->L, neg ? -v : v);
  } else {
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (lua_stringtonumber(d->L, tmp) == 0) return fail(d, s, "malformed number");
    if (!lua_isinteger(d->L, -1) && !isfinite(lua_tonumber(d->L, -1))) {
      lua_pop(d->L, 1);
      return fail(d, s, "number out of range");
    }
  }
  d->p = p;
  return 0;
}

static int parse_value(decoder *d, int depth);

/* [-k, +0] moves the k values above `base` (or above the table at base)
 * into the array; *n counts the elements stored so far. Makes the table
 * at base first if `made` is false. */
static void flush_array(lua_State *L, int base, bool made, lua_Integer *n) {
  int top = lua_gettop(L), first = made ? base + 1 : base, t = base;
  if (!made) {
    lua_createtable(L, top - first + 1, 0);
    t = top + 1;
  }
  for (int i = first; i <= top; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, t, ++*n);
  }
  if (!made) lua_replace(L, base);
  lua_settop(L, base);
}

/* [-2k, +0] the same for an object's key/value pairs, set in order so that
 * the last of duplicate keys wins (a nil value, from null, removes the
 * key); nrec is the number of non-null values, a size hint. */
static void flush_object(lua_State *L, int base, bool made, int nrec) {
  int top = lua_gettop(L), first = made ? base + 1 : base, t = base;
  if (!made) {
    lua_createtable(L, 0, nrec);
    t = top + 1;
  }
  for (int i = first; i < top; i += 2) {
    lua_pushvalue(L, i);
    lua_pushvalue(L, i + 1);
    lua_rawset(L, t);
  }
  if (!made) lua_replace(L, base);
  lua_settop(L, base);
}

/* [-0, +1] d->p is at '['. */
static int parse_array(decoder *d, int depth) {
  lua_State *L = d->L;
  const unsigned char *p = skip_ws(d->p + 1, d->end);
  if (depth >= IXR__MAX_DEPTH) return fail(d, d->p, "nesting deeper than 64 levels");
  if (!lua_checkstack(L, 2 * BATCH + 4)) return fail(d, d->p, "out of Lua stack");
  if (p < d->end && *p == ']') {
    lua_createtable(L, 0, 0);
    ixr__mark_array(L, -1); /* written back as [] */
    d->p = p + 1;
    return 0;
  }
  int base = lua_gettop(L) + 1, pending = 0;
  bool made = false;
  lua_Integer n = 0;
  for (;;) {
    d->p = p;
    if (parse_value(d, depth + 1) != 0) return -1;
    pending++;
    p = skip_ws(d->p, d->end);
    if (p < d->end && *p == ',') {
      p = skip_ws(p + 1, d->end);
      if (pending == 2 * BATCH) {
        flush_array(L, base, made, &n);
        made = true;
        pending = 0;
      }
      continue;
    }
    if (p < d->end && *p == ']') break;
    return unexpected(d, p, "',' or ']'");
  }
  if (!made || pending > 0) flush_array(L, base, made, &n);
  d->p = p + 1;
  return 0;
}

/*
 * The key cache. Object keys repeat from line to line ("interactionid",
 * "userdata", ...), and making each one a Lua string means hashing it and
 * walking Lua's string table every time: the largest single cost of
 * decoding. So recent keys (plain ASCII, short) keep their Lua string in
 * a table anchored in the registry, found again by a cheap hash of the
 * bytes, a length and a memcmp. Direct-mapped: a colliding key replaces
 * the older one.
 */
#define KC_SLOTS 512
#define KC_MAXLEN 40 /* Lua's short strings */

struct ixr__keycache {
  struct {
    uint8_t n; /* length + 1; 0: empty */
    char s[KC_MAXLEN];
  } e[KC_SLOTS];
};

static const char KEYCACHE_KEY = 'k'; /* registry key of the strings */

static inline unsigned kc_slot(const unsigned char *s, size_t len) {
  uint64_t a = 0, b = 0;
  size_t m = len < 8 ? len : 8;
  memcpy(&a, s, m);
  memcpy(&b, s + len - m, m);
  uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull) ^ len) * 0xC2B2AE3D27D4EB4Full;
  return (unsigned)(h >> 40) & (KC_SLOTS - 1);
}

/* [-0, +1] pushes the key s[0..len), which must be valid UTF-8, through
 * the cache: found again, or made and remembered. */
/* Whether the cache holds s[0..len); *slot is where it is or would go. */
static bool kc_hit(const ixr__keycache *kc, const unsigned char *s,
                   size_t len, unsigned *slot) {
  *slot = kc_slot(s, len);
  return kc->e[*slot].n == len + 1 && memcmp(kc->e[*slot].s, s, len) == 0;
}

static void kc_push(lua_State *L, ixr__keycache *kc, int kcidx,
                    const unsigned char *s, size_t len) {
  unsigned slot;
  if (kc_hit(kc, s, len, &slot)) {
    lua_rawgeti(L, kcidx, (lua_Integer)slot + 1);
    return;
  }
  lua_pushlstring(L, (const char *)s, len);
  lua_pushvalue(L, -1);
  lua_rawseti(L, kcidx, (lua_Integer)slot + 1);
  kc->e[slot].n = (uint8_t)(len + 1);
  memcpy(kc->e[slot].s, s, len);
}

/* [-0, +1] d->p is just past the opening quote of a key. */
static int push_key(decoder *d) {
  const unsigned char *s = d->p, *p = plain_run(s, d->end);
  size_t len = (size_t)(p - s);
  if (d->kc == NULL || p == d->end || *p != '"' || len > KC_MAXLEN)
    return push_string(d);
  kc_push(d->L, d->kc, d->kcidx, s, len);
  d->p = p + 1;
  return 0;
}

/* Pushes the cache's table (or nothing when there is no cache). */
static ixr__keycache *keycache(ixr_runtime *rt, lua_State *L) {
  if (rt->keycache == NULL) {
    ixr__keycache *kc = calloc(1, sizeof(*kc));
    if (kc == NULL) return NULL;
    lua_createtable(L, KC_SLOTS, 0);
    for (int i = 1; i <= KC_SLOTS; i++) { /* the array part, for good */
      lua_pushboolean(L, 0);
      lua_rawseti(L, -2, i);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEYCACHE_KEY);
    rt->keycache = kc;
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &KEYCACHE_KEY);
  return rt->keycache;
}

int ixr__keycache_push(ixr_runtime *rt) {
  return keycache(rt, rt->L) != NULL ? lua_gettop(rt->L) : 0;
}

int ixr__push_api_key(ixr_runtime *rt, int kcidx, const char *key) {
  lua_State *L = rt->L;
  size_t len = strlen(key);
  ixr__keycache *kc = kcidx != 0 ? rt->keycache : NULL;
  unsigned slot;
  if (kc != NULL && len <= KC_MAXLEN &&
      kc_hit(kc, (const unsigned char *)key, len, &slot)) {
    /* A key found in the cache was valid when it went in. */
    lua_rawgeti(L, kcidx, (lua_Integer)slot + 1);
    return 0;
  }
  if (!ixr__utf8_valid(key, len)) return IXR_EINVAL;
  if (kc != NULL && len <= KC_MAXLEN)
    kc_push(L, kc, kcidx, (const unsigned char *)key, len);
  else
    lua_pushlstring(L, key, len);
  return 0;
}

void ixr__keycache_free(ixr_runtime *rt) {
  free(rt->keycache);
  rt->keycache = NULL;
}

/* [-0, +1] d->p is at '{'. */
static int parse_object(decoder *d, int depth) {
  lua_State *L = d->L;
  const unsigned char *p = skip_ws(d->p + 1, d->end), *end = d->end;
  if (depth >= IXR__MAX_DEPTH) return fail(d, d->p, "nesting deeper than 64 levels");
  if (!lua_checkstack(L, 2 * BATCH + 4)) return fail(d, d->p, "out of Lua stack");
  if (p < end && *p == '}') {
    lua_createtable(L, 0, 0);
    d->p = p + 1;
    return 0;
  }
  int base = lua_gettop(L) + 1, pending = 0, nrec = 0;
  bool made = false;
  for (const char *want = "a string key or '}'";; want = "a string key") {
    if (p == end || *p != '"') return unexpected(d, p, want);
    bool is_id = depth == 0 && end - p >= 4 && memcmp(p, "\"id\"", 4) == 0;
    d->p = p + 1;
    if (push_key(d) != 0) return -1;
    p = skip_ws(d->p, end);
    if (p == end || *p != ':') return unexpected(d, p, "':'");
    p = skip_ws(p + 1, end);
    if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
      lua_pushnil(L); /* the member is absent */
      d->p = p + 4;
      if (is_id) d->id_at = NULL; /* a later "id":null leaves none */
    } else {
      d->p = p;
      if (parse_value(d, depth + 1) != 0) return -1;
      if (is_id) {
        d->id_at = p;
        d->id_end = d->p;
      }
      nrec++;
    }
    pending++;
    p = skip_ws(d->p, end);
    if (p < end && *p == ',') {
      p = skip_ws(p + 1, end);
      if (pending == BATCH) {
        flush_object(L, base, made, nrec);
        made = true;
        pending = nrec = 0;
      }
      continue;
    }
    if (p < end && *p == '}') break;
    return unexpected(d, p, "',' or '}'");
  }
  flush_object(L, base, made, nrec);
  d->p = p + 1;
  return 0;
}

static int literal(decoder *d, const char *word, size_t n) {
  if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
    return fail(d, d->p, "invalid literal (true, false or null expected)");
  d->p += n;
  return 0;
}

/* [-0, +1] pushes the value at d->p; depth is the number of containers
 * around it. */
static int parse_value(decoder *d, int depth) {
  const unsigned char *p = d->p;
  if (p == d->end) return unexpected(d, p, "a value");
  switch (*p) {
    case '"':
      d->p = p + 1;
      return push_string(d);
    case '{': return parse_object(d, depth);
    case '[': return parse_array(d, depth);
    case 't':
      if (literal(d, "true", 4) != 0) return -1;
      lua_pushboolean(d->L, 1);
      return 0;
    case 'f':
      if (literal(d, "false", 5) != 0) return -1;
      lua_pushboolean(d->L, 0);
      return 0;
    case 'n':
      if (literal(d, "null", 4) != 0) return -1;
      lua_pushlightuserdata(d->L, IXR__NULL);
      return 0;
    default:
      if (*p == '-' || is_digit(*p)) return push_number(d);
      return unexpected(d, p, "a value");
  }
}

/* [-0, +1 | +0] after a failed decode: the value of the line's top-level
 * "id" member, when it parsed before the failure and is a string or a
 * number (what an error line echoes). */
static bool push_id(const decoder *failed) {
  if (failed->id_at == NULL || failed->oom) return false;
  decoder e = *failed;
  e.start = e.p = failed->id_at;
  e.end = failed->id_end;
  e.kc = NULL;
  int t = LUA_TNONE;
  if (parse_value(&e, 1) == 0) {
    t = lua_type(e.L, -1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) lua_pop(e.L, 1);
  }
  return t == LUA_TSTRING || t == LUA_TNUMBER;
}

int ixr__decode(ixr_runtime *rt, const char *line, size_t len, char *err,
                size_t errlen, bool *id_pushed) {
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  if (id_pushed != NULL) *id_pushed = false;
  decoder d;
  d.L = L;
  d.start = (const unsigned char *)line;
  d.end = d.start + len;
  d.p = skip_ws(d.start, d.end);
  d.scratch = &rt->decode_scratch;
  d.msg = d.expected = NULL;
  d.at = NULL;
  d.oom = false;
  d.id_at = d.id_end = NULL;
  if (d.p == d.end) {
    snprintf(err, errlen, "no JSON value");
    return IXR_EINVAL;
  }
  int rc = 0;
  if (!lua_checkstack(L, 5)) rc = fail(&d, d.p, "out of Lua stack");
  d.kc = NULL;
  if (rc == 0 && (d.kc = keycache(rt, L)) != NULL) d.kcidx = lua_gettop(L);
  if (rc == 0) rc = parse_value(&d, 0);
  if (rc == 0 && skip_ws(d.p, d.end) != d.end)
    rc = fail(&d, skip_ws(d.p, d.end), "trailing garbage");
  if (rc != 0) {
    lua_settop(L, top);
    error_message(&d, err, errlen);
    if (id_pushed != NULL) *id_pushed = push_id(&d);
  }
  if (d.scratch->cap > SCRATCH_KEEP) ixr__buf_free(d.scratch);
  if (rc != 0) return d.oom ? IXR_ENOMEM : IXR_EINVAL;
  if (d.kc != NULL) lua_remove(L, d.kcidx);
  IXR_STACK_CHECK(L, top, 1);
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

/*
 * The writer appends to one growable buffer that lives as long as it does.
 * Its bytes are those yajl_gen wrote before (docs/json-choice.md): no
 * spaces; strings escape '"', '\\' and the control characters, as \b \t \n
 * \f \r or \u00XX with capital hex digits, and nothing else ('/', DEL and
 * all of UTF-8 go through as they are); integers in decimal; floats as
 * format_double() gives them.
 */
struct ixr__jw {
  ixr__buf b;
  size_t members; /* members of the line's object written so far */
  bool failed;
  bool oom;       /* the buffer could not grow: the line is lost */
};

ixr__jw *ixr__jw_new(void) {
  ixr__jw *w = calloc(1, sizeof(*w));
  if (w == NULL) return NULL;
  if (ixr__buf_reserve(&w->b, 256) != 0) {
    free(w);
    return NULL;
  }
  return w;
}

void ixr__jw_free(ixr__jw *w) {
  if (w == NULL) return;
  ixr__buf_free(&w->b);
  free(w);
}

/* Room for n more bytes; false (and the line marked lost) if there is
 * none. */
static inline bool room(ixr__jw *w, size_t n) {
  if (w->b.cap - w->b.len >= n) return true;
  if (!w->oom && ixr__buf_reserve(&w->b, n) == 0) return true;
  w->oom = w->failed = true;
  return false;
}

static inline void put(ixr__jw *w, const char *s, size_t n) {
  if (!room(w, n)) return;
  memcpy(w->b.data + w->b.len, s, n);
  w->b.len += n;
}

static inline void put_char(ixr__jw *w, char c) {
  if (!room(w, 1)) return;
  w->b.data[w->b.len++] = c;
}

void ixr__jw_begin(ixr__jw *w) {
  w->b.len = 0;
  w->members = 0;
  w->failed = w->oom = false;
  put_char(w, '{');
}

/*
 * Writes s as a JSON string, checking that it is strict UTF-8 in the same
 * pass; returns -1 (with nothing written) if it is not. Space for the
 * plain case is reserved up front; an escape, which turns one byte into up
 * to six, makes sure of the room it needs for the rest.
 */
static int put_string(ixr__jw *w, const char *s, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  size_t mark = w->b.len;
  if (!room(w, len + 2)) return 0;
  char *o = w->b.data + w->b.len;
  *o++ = '"';
  for (;;) {
    const unsigned char *q = plain_run(p, end);
    memcpy(o, p, (size_t)(q - p));
    o += q - p;
    p = q;
    if (p == end) break;
    if (*p >= 0x80) {
      size_t n = utf8_seq(p, end);
      if (n == 0) {
        w->b.len = mark;
        return -1;
      }
      memcpy(o, p, n);
      o += n;
      p += n;
      continue;
    }
    size_t used = (size_t)(o - w->b.data);
    if (w->b.cap - used < (size_t)(end - p) + 6) {
      w->b.len = used;
      if (!room(w, (size_t)(end - p) + 6)) return 0;
      o = w->b.data + used;
    }
    unsigned c = *p++;
    *o++ = '\\';
    switch (c) {
      case '"': *o++ = '"'; break;
      case '\\': *o++ = '\\'; break;
      case '\b': *o++ = 'b'; break;
      case '\t': *o++ = 't'; break;
      case '\n': *o++ = 'n'; break;
      case '\f': *o++ = 'f'; break;
      case '\r': *o++ = 'r'; break;
      default:
        memcpy(o, "u00", 3);
        o[3] = hex[c >> 4];
        o[4] = hex[c & 15];
        o += 5;
        break;
    }
  }
  *o++ = '"';
  w->b.len = (size_t)(o - w->b.data);
  return 0;
}

/* The line's own keys are ASCII literals of the runtime. */
static void key(ixr__jw *w, const char *k) {
  if (w->members++ > 0) put_char(w, ',');
  put_string(w, k, strlen(k));
  put_char(w, ':');
}

void ixr__jw_str(ixr__jw *w, const char *k, const char *val, size_t len) {
  key(w, k);
  if (put_string(w, val, len) == 0) return;
  /* Never a key without its value: the line stays valid JSON, with every
   * byte that breaks UTF-8 shown as '?' (the characters around it kept),
   * and the caller is told. */
  w->failed = true;
  char small[256];
  char *copy = len < sizeof(small) ? small : malloc(len);
  if (copy == NULL) {
    put_string(w, "?", 1);
    return;
  }
  const unsigned char *p = (const unsigned char *)val, *end = p + len;
  size_t o = 0;
  while (p < end) {
    size_t n = *p < 0x80 ? 1 : utf8_seq(p, end);
    if (n == 0) {
      copy[o++] = '?';
      p++;
    } else {
      memcpy(copy + o, p, n);
      o += n;
      p += n;
    }
  }
  put_string(w, copy, o);
  if (copy != small) free(copy);
}

/* Decimal text of v, at the end of buf (at least 21 bytes); returns its
 * start. */
static char *int_text(char *bufend, int64_t v) {
  char *p = bufend;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) *--p = '-';
  return p;
}

static void put_int(ixr__jw *w, int64_t v) {
  char buf[24];
  char *s = int_text(buf + sizeof(buf), v);
  put(w, s, (size_t)(buf + sizeof(buf) - s));
}

void ixr__jw_int(ixr__jw *w, const char *k, int64_t val) {
  key(w, k);
  put_int(w, val);
}

void ixr__jw_bool(ixr__jw *w, const char *k, bool val) {
  key(w, k);
  if (val) put(w, "true", 4);
  else put(w, "false", 5);
}

static int format_double(char *buf, size_t n, double v);

void ixr__jw_double(ixr__jw *w, const char *k, double val) {
  key(w, k);
  char buf[40];
  if (!isfinite(val)) val = 0;
  int n = format_double(buf, sizeof(buf), val);
  put(w, buf, (size_t)n);
}

/* Shortest of %.15g..%.17g that reads back as the same double. printf
 * and strtod follow the host program's LC_NUMERIC (a host may have called
 * setlocale: "1,5" in German), so the text is checked in that locale and
 * its decimal point then written as JSON's '.'. */
static int format_double(char *buf, size_t n, double v) {
  int len = 0;
  for (int prec = 15; prec <= 17; prec++) {
    len = snprintf(buf, n, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  /* Only text with something else than the C locale's characters can
   * hold another decimal point: the common case asks nothing. */
  if (strspn(buf, "0123456789+-.eE") != (size_t)len) {
    const char *radix = nl_langinfo(RADIXCHAR);
    size_t rl = radix != NULL ? strlen(radix) : 0;
    char *at;
    if (rl > 0 && (at = strstr(buf, radix)) != NULL) {
      *at = '.';
      memmove(at + 1, at + rl, (size_t)len - (size_t)(at - buf) - rl + 1);
      len -= (int)rl - 1;
    }
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
  int slot;      /* fast path: the stack slot of the value */
  char num[24];
} keyref;

static const char *keytext(const keyref *k) { return k->isnum ? k->num : k->s; }

/* Sorted keys with the same text ([1] and ["1"]) would be one JSON key
 * written twice, in an order that varies between runs: an error. 0, or
 * -1 with err set. Only tables with keys of both kinds need it. */
static int check_unique(const keyref *keys, size_t n, char *err, size_t errlen);

static int keycmp(const void *a, const void *b) {
  const keyref *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(keytext(x), keytext(y), n);
  if (c != 0) return c;
  return (x->len > y->len) - (x->len < y->len);
}

static int encode(ixr__jw *w, lua_State *L, int idx, int depth, char *err,
                  size_t errlen);

/* Checks a key of a table being encoded (on top of the stack) and fills k;
 * integer keys get their text only if `text`. 0, or -1 with err set. */
static int take_key(lua_State *L, keyref *k, bool text, char *err,
                    size_t errlen) {
  int kt = lua_type(L, -1);
  if (kt == LUA_TNUMBER && lua_isinteger(L, -1)) {
    k->isnum = true;
    k->ik = lua_tointeger(L, -1);
    k->s = NULL;
    k->len = text ? (size_t)snprintf(k->num, sizeof(k->num), "%lld",
                                     (long long)k->ik)
                  : 0;
    return 0;
  }
  if (kt == LUA_TSTRING) {
    k->isnum = false;
    k->s = lua_tolstring(L, -1, &k->len); /* anchored by the table */
    /* Checked before anything of the table is written, so that a bad key
     * is reported before a bad value under an earlier key. */
    if (!ixr__utf8_valid(k->s, k->len)) {
      snprintf(err, errlen, "key is not valid UTF-8");
      return -1;
    }
    return 0;
  }
  snprintf(err, errlen, "cannot encode a %s key", lua_typename(L, kt));
  return -1;
}

#define FAST_MEMBERS 32

/* The common case, a table of at most FAST_MEMBERS members: they wait on
 * the Lua stack (key, value, key, value...) while the keys are sorted, so
 * that no value is looked up again and no key string is made again.
 * Returns 1 when the table is bigger (nothing written, stack unchanged). */
static int encode_small_table(ixr__jw *w, lua_State *L, int idx, int depth,
                              char *err, size_t errlen) {
  keyref keys[FAST_MEMBERS];
  int base = lua_gettop(L), n = 0, rc = 0, nnum = 0;
  lua_Integer maxkey = 0;
  bool seq = true;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) { /* [.. k v] */
    /* Room as needed: a flow's stack is small, and growing it for the
     * largest table would keep it large. */
    if (n == FAST_MEMBERS || !lua_checkstack(L, 4)) {
      lua_settop(L, base);
      return 1;
    }
    keyref *k = &keys[n];
    k->slot = lua_gettop(L);
    lua_pushvalue(L, -2); /* the iteration goes on from a copy of the key */
    if (take_key(L, k, false, err, errlen) != 0) {
      lua_settop(L, base);
      return -1;
    }
    if (!k->isnum || k->ik < 1) seq = false;
    else if (k->ik > maxkey) maxkey = k->ik;
    nnum += k->isnum;
    n++;
  }
  if (n == 0 && ixr__is_marked_array(L, idx)) { /* [] as it came, or core.array() */
    put(w, "[]", 2);
    return 0;
  }
  if (seq && n > 0 && maxkey == n) {
    /* n distinct positive integer keys, the largest n: exactly 1..n. (The
     * border from lua_rawlen() is not enough: {1, nil, 3, [5] = 5} can have
     * border 3.) Slot of key i: */
    int slot[FAST_MEMBERS];
    for (int i = 0; i < n; i++) slot[keys[i].ik - 1] = keys[i].slot;
    put_char(w, '[');
    for (int i = 0; i < n && rc == 0; i++) {
      if (i > 0) put_char(w, ',');
      rc = encode(w, L, slot[i], depth + 1, err, errlen);
    }
    put_char(w, ']');
    lua_settop(L, base);
    return rc;
  }
  /* An object: integer keys as text, then keys in byte order (insertion
   * sort: n is small). */
  for (int i = 0; i < n; i++)
    if (keys[i].isnum)
      keys[i].len = (size_t)snprintf(keys[i].num, sizeof(keys[i].num),
                                     "%lld", (long long)keys[i].ik);
  for (int i = 1; i < n; i++) {
    keyref k = keys[i];
    int j = i;
    for (; j > 0 && keycmp(&keys[j - 1], &k) > 0; j--) keys[j] = keys[j - 1];
    keys[j] = k;
  }
  if (nnum > 0 && nnum < n && check_unique(keys, (size_t)n, err, errlen) != 0) {
    lua_settop(L, base);
    return -1;
  }
  put_char(w, '{');
  for (int i = 0; i < n && rc == 0; i++) {
    if (i > 0) put_char(w, ',');
    put_string(w, keytext(&keys[i]), keys[i].len); /* checked above */
    put_char(w, ':');
    rc = encode(w, L, keys[i].slot, depth + 1, err, errlen);
  }
  put_char(w, '}');
  lua_settop(L, base);
  return rc;
}

static int check_unique(const keyref *keys, size_t n, char *err, size_t errlen) {
  for (size_t i = 1; i < n; i++)
    if (keycmp(&keys[i - 1], &keys[i]) == 0) {
      snprintf(err, errlen, "key '%.40s' is both a number and a string key",
               keytext(&keys[i]));
      return -1;
    }
  return 0;
}

/* [-0, +0] a table is a JSON array when its keys are exactly 1..n (n > 0),
 * otherwise an object with sorted keys, so that output does not depend on
 * Lua's per-run string hash seed. */
static int encode_table(ixr__jw *w, lua_State *L, int idx, int depth,
                        char *err, size_t errlen) {
  int fast = encode_small_table(w, L, idx, depth, err, errlen);
  if (fast != 1) return fast;
  keyref small[8];
  keyref *keys = small;
  size_t nkeys = 0, nnum = 0, cap = IXR_ARRAY_SIZE(small);
  lua_Integer maxkey = 0;
  bool seq = true;
  int rc = 0, nbufs = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (nkeys == cap) {
      /* A userdata below the key, not malloc: the lookups below can raise
       * (a long key string is made anew, and a call's memory cap may
       * refuse it), and a longjmp must not leak the array. */
      if (!lua_checkstack(L, 3)) {
        snprintf(err, errlen, "out of Lua stack");
        lua_pop(L, 1);
        rc = -1;
        goto done;
      }
      keyref *bigger = lua_newuserdatauv(L, cap * 2 * sizeof(*bigger), 0);
      lua_insert(L, -2);
      nbufs++;
      memcpy(bigger, keys, nkeys * sizeof(*keys));
      keys = bigger;
      cap *= 2;
    }
    keyref *k = &keys[nkeys];
    if (take_key(L, k, true, err, errlen) != 0) {
      lua_pop(L, 1);
      rc = -1;
      goto done;
    }
    if (!k->isnum || k->ik < 1) seq = false;
    else if (k->ik > maxkey) maxkey = k->ik;
    nnum += k->isnum;
    nkeys++;
  }
  if (seq && nkeys > 0 && (lua_Unsigned)maxkey == nkeys) {
    /* n distinct positive integer keys, the largest n: exactly 1..n. (The
     * border from lua_rawlen() is not enough: {1, nil, 3, [5] = 5} can have
     * border 3.) */
    put_char(w, '[');
    for (size_t i = 1; i <= nkeys && rc == 0; i++) {
      if (i > 1) put_char(w, ',');
      lua_rawgeti(L, idx, (lua_Integer)i);
      rc = encode(w, L, lua_gettop(L), depth + 1, err, errlen);
      lua_pop(L, 1);
    }
    put_char(w, ']');
    goto done;
  }
  qsort(keys, nkeys, sizeof(*keys), keycmp);
  if (nnum > 0 && nnum < nkeys && check_unique(keys, nkeys, err, errlen) != 0) {
    rc = -1;
    goto done;
  }
  put_char(w, '{');
  for (size_t i = 0; i < nkeys && rc == 0; i++) {
    keyref *k = &keys[i];
    if (i > 0) put_char(w, ',');
    put_string(w, keytext(k), k->len); /* checked above */
    put_char(w, ':');
    if (k->isnum) {
      lua_rawgeti(L, idx, k->ik);
    } else {
      lua_pushlstring(L, k->s, k->len);
      lua_rawget(L, idx);
    }
    rc = encode(w, L, lua_gettop(L), depth + 1, err, errlen);
    lua_pop(L, 1);
  }
  put_char(w, '}');
done:
  lua_pop(L, nbufs);
  return rc;
}

static int encode(ixr__jw *w, lua_State *L, int idx, int depth, char *err,
                  size_t errlen) {
  if (depth > IXR__MAX_DEPTH) {
    snprintf(err, errlen, "nesting deeper than %d levels (a cycle?)",
             IXR__MAX_DEPTH);
    return -1;
  }
  /* A table reached many times (t = {t, t}, twenty times over) is written
   * each time: a few instructions could ask for gigabytes, beyond the Lua
   * memory cap (the line is C memory) and the budget (this is C). */
  if (w->b.len > IXR__MAX_OUTPUT_LINE) {
    snprintf(err, errlen, "the line would be longer than %d MiB",
             IXR__MAX_OUTPUT_LINE >> 20);
    return -1;
  }
  if (!lua_checkstack(L, 4)) {
    snprintf(err, errlen, "out of Lua stack");
    return -1;
  }
  switch (lua_type(L, idx)) {
    case LUA_TNIL: put(w, "null", 4); return 0;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx)) put(w, "true", 4);
      else put(w, "false", 5);
      return 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        put_int(w, (int64_t)lua_tointeger(L, idx));
      } else {
        double v = lua_tonumber(L, idx);
        if (!isfinite(v)) {
          snprintf(err, errlen, "cannot encode %s", isnan(v) ? "NaN" : "infinity");
          return -1;
        }
        char buf[40];
        int n = format_double(buf, sizeof(buf), v);
        put(w, buf, (size_t)n);
      }
      return 0;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (put_string(w, s, len) != 0) {
        snprintf(err, errlen, "string is not valid UTF-8");
        return -1;
      }
      return 0;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == IXR__NULL) {
        put(w, "null", 4);
        return 0;
      }
      break;
    case LUA_TTABLE:
      /* A read-only view of a shared module (luahost.c) is written as the
       * table it shows, not as the empty table it is. */
      if (lua_getmetatable(L, idx)) {
        lua_pop(L, 1);
        if (!lua_checkstack(L, 1)) {
          snprintf(err, errlen, "out of Lua stack");
          return -1;
        }
        lua_pushvalue(L, idx);
        ixr__ro_shown(L, -1);
        int rc = encode_table(w, L, lua_gettop(L), depth, err, errlen);
        lua_pop(L, 1);
        return rc;
      }
      return encode_table(w, L, idx, depth, err, errlen);
    default: break;
  }
  snprintf(err, errlen, "cannot encode a %s value", luaL_typename(L, idx));
  return -1;
}

int ixr__jw_lua(ixr__jw *w, const char *k, lua_State *L, int idx, char *err,
                size_t errlen) {
  size_t mark = w->b.len, members = w->members;
  key(w, k);
  int rc = encode(w, L, lua_absindex(L, idx), 0, err, errlen);
  if (rc != 0) {
    /* Without the member, the line stays valid JSON. */
    w->b.len = mark;
    w->members = members;
    w->failed = true;
  }
  return rc;
}

void ixr__jw_end(ixr__jw *w, const char **line, size_t *len) {
  put_char(w, '}');
  put_char(w, '\0'); /* hosts may treat the line as a C string */
  if (w->oom) {
    *line = "{}";
    *len = 2;
    return;
  }
  w->b.len--;
  *line = w->b.data;
  *len = w->b.len;
}

bool ixr__jw_failed(const ixr__jw *w) { return w->failed; }

size_t ixr__jw_len(const ixr__jw *w) { return w->b.len; }
