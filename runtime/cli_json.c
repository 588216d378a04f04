/*
 * cli_json.c: JSON values for the ixr program's tools (scenarios, records,
 * partial matching of output lines), parsed and written with yajl, the
 * project's one JSON library.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "cli.h"

#define MAX_DEPTH 128

/* ---- parsing ---------------------------------------------------------- */

typedef struct parser {
  cj *root;
  cj *stack[MAX_DEPTH];
  int depth;
  char *key; /* pending object key */
  size_t klen;
  bool nomem, too_deep;
} parser;

static cj *node(cj_type t) {
  cj *v = calloc(1, sizeof(*v));
  if (v != NULL) v->type = t;
  return v;
}

static char *dup_bytes(const unsigned char *p, size_t len) {
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  if (len > 0) memcpy(s, p, len);
  s[len] = '\0';
  return s;
}

/* Adds v to the container on top of the stack (or makes it the root). */
static int add(parser *p, cj *v) {
  if (v == NULL) {
    p->nomem = true;
    return 0;
  }
  if (p->depth == 0) {
    p->root = v;
    return 1;
  }
  cj *c = p->stack[p->depth - 1];
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 4;
    cj **nv = realloc(c->v, cap * sizeof(*nv));
    if (nv == NULL) goto nomem;
    c->v = nv;
    if (c->type == CJ_OBJECT) {
      char **nk = realloc(c->k, cap * sizeof(*nk));
      if (nk == NULL) goto nomem;
      c->k = nk;
      size_t *nl = realloc(c->klen, cap * sizeof(*nl));
      if (nl == NULL) goto nomem;
      c->klen = nl;
    }
    c->cap = cap;
  }
  if (c->type == CJ_OBJECT) {
    c->k[c->n] = p->key;
    c->klen[c->n] = p->klen;
    p->key = NULL;
  }
  c->v[c->n++] = v;
  return 1;
nomem:
  cj_free(v);
  p->nomem = true;
  return 0;
}

static int on_null(void *ud) { return add(ud, node(CJ_NULL)); }

static int on_bool(void *ud, int b) {
  cj *v = node(CJ_BOOL);
  if (v != NULL) v->b = b != 0;
  return add(ud, v);
}

static int on_scalar(parser *p, cj_type t, const unsigned char *s, size_t len) {
  cj *v = node(t);
  if (v != NULL) {
    v->s = dup_bytes(s, len);
    v->len = len;
    if (v->s == NULL) {
      free(v);
      v = NULL;
    }
  }
  return add(p, v);
}

static int on_number(void *ud, const char *s, size_t len) {
  return on_scalar(ud, CJ_NUMBER, (const unsigned char *)s, len);
}

static int on_string(void *ud, const unsigned char *s, size_t len) {
  return on_scalar(ud, CJ_STRING, s, len);
}

static int open_container(parser *p, cj_type t) {
  if (p->depth == MAX_DEPTH) {
    p->too_deep = true;
    return 0;
  }
  cj *v = node(t);
  if (!add(p, v)) return 0;
  p->stack[p->depth++] = v;
  return 1;
}

static int on_start_map(void *ud) { return open_container(ud, CJ_OBJECT); }
static int on_start_array(void *ud) { return open_container(ud, CJ_ARRAY); }

static int on_end(void *ud) {
  parser *p = ud;
  p->depth--;
  return 1;
}

static int on_key(void *ud, const unsigned char *s, size_t len) {
  parser *p = ud;
  free(p->key);
  p->key = dup_bytes(s, len);
  p->klen = len;
  if (p->key == NULL) p->nomem = true;
  return p->key != NULL;
}

static const yajl_callbacks callbacks = {
    on_null, on_bool, NULL, NULL, on_number, on_string, on_start_map,
    on_key,  on_end,  on_start_array, on_end};

cj *cj_parse(const char *text, size_t len, char *err, size_t errlen) {
  parser p;
  memset(&p, 0, sizeof(p));
  yajl_handle h = yajl_alloc(&callbacks, NULL, &p);
  if (h == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  yajl_status st = yajl_parse(h, (const unsigned char *)text, len);
  if (st == yajl_status_ok) st = yajl_complete_parse(h);
  if (st != yajl_status_ok) {
    if (p.nomem) {
      snprintf(err, errlen, "out of memory");
    } else if (p.too_deep) {
      snprintf(err, errlen, "nested deeper than %d levels", MAX_DEPTH);
    } else {
      unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)text, len);
      snprintf(err, errlen, "invalid JSON: %s", msg ? (const char *)msg : "?");
      /* yajl's messages end with a newline: keep the report on one line */
      size_t n = strlen(err);
      while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = '\0';
      if (msg != NULL) yajl_free_error(h, msg);
    }
    cj_free(p.root);
    p.root = NULL;
  }
  free(p.key);
  yajl_free(h);
  return p.root;
}

void cj_free(cj *v) {
  if (v == NULL) return;
  for (size_t i = 0; i < v->n; i++) {
    cj_free(v->v[i]);
    if (v->k != NULL) free(v->k[i]);
  }
  free(v->v);
  free(v->k);
  free(v->klen);
  free(v->s);
  free(v);
}

/* The member named by key's len bytes (a key may hold a NUL). */
static const cj *get_n(const cj *obj, const char *key, size_t len) {
  if (obj == NULL || obj->type != CJ_OBJECT) return NULL;
  for (size_t i = 0; i < obj->n; i++)
    if (obj->klen[i] == len && memcmp(obj->k[i], key, len) == 0) return obj->v[i];
  return NULL;
}

const cj *cj_get(const cj *obj, const char *key) {
  return get_n(obj, key, strlen(key));
}

bool cj_is_str(const cj *v, const char *s) {
  return v != NULL && v->type == CJ_STRING && v->len == strlen(s) &&
         memcmp(v->s, s, v->len) == 0;
}

bool cj_uint(const cj *v, unsigned long long *out) {
  if (v == NULL || v->type != CJ_NUMBER || v->s[0] == '-') return false;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v->s, &end, 10);
  if (*end != '\0' || errno == ERANGE) return false; /* a fraction, or too big */
  *out = n;
  return true;
}

/* ---- wall-clock times -------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar: years
 * counted from March, so that the leap day ends a year, in 400-year eras
 * of 146,097 days. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;                                 /* 0..399 */
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;         /* 0..146096 */
  return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
  static const int n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : n[m - 1];
}

static bool digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool cli_parse_time(const char *s, int64_t *ms) {
  int y, mo, d, h, mi, sec, frac = 0;
  size_t len = strlen(s);
  if (len > 0 && len < 20 && strspn(s + (s[0] == '-'), "0123456789") == len - (s[0] == '-')) {
    long long n = strtoll(s, NULL, 10); /* at most 19 digits: no overflow */
    if (n < -IXR_START_TIME_MAX || n > IXR_START_TIME_MAX || len == (s[0] == '-')) return false;
    *ms = n;
    return true;
  }
  if (len < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
      s[7] != '-' || !digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) ||
      s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
    return false;
  const char *p = s + 19;
  if (*p == '.') {
    if (!digits(p + 1, 3, &frac)) return false;
    p += 4;
  }
  if (strcmp(p, "Z") != 0 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
      h > 23 || mi > 59 || sec > 59)
    return false;
  int64_t days = days_from_civil(y, mo, d);
  *ms = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + frac;
  return true; /* years 0000 to 9999: within IXR_START_TIME_MAX */
}

bool cli_time_value(const cj *v, int64_t *ms) {
  if (v == NULL || (v->type != CJ_NUMBER && v->type != CJ_STRING) || strlen(v->s) != v->len)
    return false;
  if (cli_parse_time(v->s, ms)) return true;
  /* A whole number as JSON may write it: 1.7308008e12. */
  double d = v->type == CJ_NUMBER ? strtod(v->s, NULL) : 0.5;
  if (!(d >= -(double)IXR_START_TIME_MAX && d <= (double)IXR_START_TIME_MAX) ||
      d != (double)(int64_t)d)
    return false;
  *ms = (int64_t)d;
  return true;
}

void cli_format_time(int64_t ms, char *out, size_t outlen) {
  int64_t days = ms / 86400000, rem = ms % 86400000;
  if (rem < 0) {
    rem += 86400000;
    days--;
  }
  /* Back from days to y-m-d (the inverse of days_from_civil). */
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int d = (int)(doy - (153 * mp + 2) / 5 + 1);
  int m = (int)(mp < 10 ? mp + 3 : mp - 9);
  int64_t y = yoe + era * 400 + (m <= 2);
  if (y < 0 || y > 9999) { /* no four-digit year: the milliseconds */
    snprintf(out, outlen, "%lld", (long long)ms);
    return;
  }
  int h = (int)(rem / 3600000), mi = (int)(rem / 60000 % 60), sec = (int)(rem / 1000 % 60),
      f = (int)(rem % 1000);
  if (f != 0)
    snprintf(out, outlen, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", (int)y, m, d, h, mi, sec, f);
  else
    snprintf(out, outlen, "\"%04d-%02d-%02dT%02d:%02d:%02dZ\"", (int)y, m, d, h, mi, sec);
}

/* ---- matching --------------------------------------------------------- */

static bool is_integer_text(const char *s) { return strpbrk(s, ".eE") == NULL; }

/* Integers compare exactly (also next to +-2^63, where a double would
 * take 9223372036854775806 for ...807); beyond 64 bits, and for any other
 * number, as doubles. */
static bool numbers_equal(const cj *a, const cj *b) {
  if (is_integer_text(a->s) && is_integer_text(b->s)) {
    char *ea, *eb;
    errno = 0;
    long long x = strtoll(a->s, &ea, 10);
    bool xr = errno == ERANGE;
    errno = 0;
    long long y = strtoll(b->s, &eb, 10);
    bool yr = errno == ERANGE;
    if (*ea == '\0' && *eb == '\0' && !xr && !yr) return x == y;
  }
  return strtod(a->s, NULL) == strtod(b->s, NULL);
}

/* A short rendering of a value for messages. */
static void brief(const cj *v, char *buf, size_t n) {
  switch (v->type) {
    case CJ_NULL: snprintf(buf, n, "null"); break;
    case CJ_BOOL: snprintf(buf, n, "%s", v->b ? "true" : "false"); break;
    case CJ_NUMBER: snprintf(buf, n, "%s", v->s); break;
    case CJ_STRING:
      snprintf(buf, n, "\"%.*s\"%s", v->len > 160 ? 160 : (int)v->len, v->s,
               v->len > 160 ? "..." : "");
      break;
    case CJ_ARRAY: snprintf(buf, n, "an array of %zu", v->n); break;
    case CJ_OBJECT: snprintf(buf, n, "an object"); break;
  }
}

/* Where a mismatch is, for messages: the member path, or the whole line. */
static const char *at(const char *path) { return path[0] ? path : "the line"; }

static bool match_at(const cj *e, const cj *a, char *path, size_t plen,
                     char *why, size_t whylen) {
  char eb[200], ab[200];
  if (a == NULL) {
    brief(e, eb, sizeof(eb));
    snprintf(why, whylen, "%s: expected %s, but it is absent", at(path), eb);
    return false;
  }
  if (e->type != a->type) {
    brief(e, eb, sizeof(eb));
    brief(a, ab, sizeof(ab));
    snprintf(why, whylen, "%s: expected %s, got %s", at(path), eb, ab);
    return false;
  }
  size_t base = strlen(path);
  switch (e->type) {
    case CJ_NULL: return true;
    case CJ_BOOL:
    case CJ_NUMBER:
    case CJ_STRING: {
      bool same = e->type == CJ_BOOL     ? e->b == a->b
                  : e->type == CJ_NUMBER ? numbers_equal(e, a)
                                         : e->len == a->len &&
                                               memcmp(e->s, a->s, e->len) == 0;
      if (same) return true;
      brief(e, eb, sizeof(eb));
      brief(a, ab, sizeof(ab));
      snprintf(why, whylen, "%s: expected %s, got %s", at(path), eb, ab);
      return false;
    }
    case CJ_ARRAY:
      if (e->n != a->n) {
        snprintf(why, whylen, "%s: expected %zu elements, got %zu", at(path), e->n,
                 a->n);
        return false;
      }
      for (size_t i = 0; i < e->n; i++) {
        snprintf(path + base, plen - base, "[%zu]", i + 1);
        if (!match_at(e->v[i], a->v[i], path, plen, why, whylen)) return false;
      }
      break;
    case CJ_OBJECT:
      for (size_t i = 0; i < e->n; i++) {
        snprintf(path + base, plen - base, "%s%s", base > 0 ? "." : "", e->k[i]);
        if (!match_at(e->v[i], get_n(a, e->k[i], e->klen[i]), path, plen, why, whylen))
          return false;
      }
      break;
  }
  path[base] = '\0';
  return true;
}

bool cj_match(const cj *expect, const cj *actual, char *why, size_t whylen) {
  char path[512] = "";
  return match_at(expect, actual, path, sizeof(path), why, whylen);
}

/* ---- text ------------------------------------------------------------- */

bool cj_is_text(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end) {
    unsigned c = *p;
    size_t n;
    unsigned min;
    if (c == 0) {
      return false;
    } else if (c < 0x80) {
      p++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, min = 0x10000, c &= 0x07;
    } else {
      return false;
    }
    if ((size_t)(end - p) <= n) return false;
    for (size_t i = 1; i <= n; i++) {
      if ((p[i] & 0xC0) != 0x80) return false;
      c = (c << 6) | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
    p += n + 1;
  }
  return true;
}

/* ---- writing ---------------------------------------------------------- */

yajl_gen cj_gen_new(void) {
  yajl_gen g = yajl_gen_alloc(NULL);
  if (g != NULL) yajl_gen_config(g, yajl_gen_validate_utf8, 1);
  return g;
}

void cj_gen_str(yajl_gen g, const char *s, size_t len) {
  yajl_gen_string(g, (const unsigned char *)s, len);
}

void cj_gen(yajl_gen g, const cj *v) {
  if (v == NULL) return;
  switch (v->type) {
    case CJ_NULL: yajl_gen_null(g); break;
    case CJ_BOOL: yajl_gen_bool(g, v->b); break;
    case CJ_NUMBER: yajl_gen_number(g, v->s, v->len); break;
    case CJ_STRING: cj_gen_str(g, v->s, v->len); break;
    case CJ_ARRAY:
      yajl_gen_array_open(g);
      for (size_t i = 0; i < v->n; i++) cj_gen(g, v->v[i]);
      yajl_gen_array_close(g);
      break;
    case CJ_OBJECT:
      yajl_gen_map_open(g);
      for (size_t i = 0; i < v->n; i++) {
        cj_gen_str(g, v->k[i], v->klen[i]);
        cj_gen(g, v->v[i]);
      }
      yajl_gen_map_close(g);
      break;
  }
}

int cj_gen_line(yajl_gen g, FILE *f) {
  const unsigned char *buf;
  size_t len;
  int rc = 0;
  if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) rc = -1;
  else if (fwrite(buf, 1, len, f) != len || putc('\n', f) == EOF) rc = -1;
  yajl_gen_clear(g);
  yajl_gen_reset(g, NULL);
  return rc;
}

/* ---- base64 ----------------------------------------------------------- */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *cj_b64_encode(const unsigned char *p, size_t len) {
  char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
  if (out == NULL) return NULL;
  for (size_t i = 0; i < len; i += 3) {
    unsigned v = (unsigned)p[i] << 16;
    if (i + 1 < len) v |= (unsigned)p[i + 1] << 8;
    if (i + 2 < len) v |= p[i + 2];
    *o++ = b64[(v >> 18) & 63];
    *o++ = b64[(v >> 12) & 63];
    *o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
    *o++ = i + 2 < len ? b64[v & 63] : '=';
  }
  *o = '\0';
  return out;
}

long cj_b64_decode(const char *s, size_t len, unsigned char *out) {
  if (len % 4 != 0) return -1;
  long n = 0;
  for (size_t i = 0; i < len; i += 4) {
    unsigned v = 0;
    int pad = 0;
    for (int j = 0; j < 4; j++) {
      char c = s[i + j];
      const char *at = c != '\0' ? strchr(b64, c) : NULL;
      if (c == '=' && i + 4 == len && j >= 2) {
        pad++;
        v <<= 6;
      } else if (at != NULL && pad == 0) {
        v = (v << 6) | (unsigned)(at - b64);
      } else {
        return -1;
      }
    }
    out[n++] = (unsigned char)(v >> 16);
    if (pad < 2) out[n++] = (unsigned char)(v >> 8);
    if (pad < 1) out[n++] = (unsigned char)v;
  }
  return n;
}
