/*
 * common.c: see common.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_tree.h>

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

long bench_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

char *bench_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    exit(1);
  }
  size_t cap = 1 << 20, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (buf == NULL) {
      fprintf(stderr, "out of memory reading %s\n", path);
      exit(1);
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
    if (n == cap) {
      cap *= 2;
      buf = realloc(buf, cap + 1);
    }
  }
  if (ferror(f)) {
    fprintf(stderr, "%s: read error\n", path);
    exit(1);
  }
  fclose(f);
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* ---- an arena of 1 MiB chunks: stable addresses, freed at once --------- */

typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  char mem[];
} chunk;

static void *arena_alloc(chunk **a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (*a == NULL || (*a)->used + n > (*a)->cap) {
    size_t cap = n > (1u << 20) ? n : (1u << 20);
    chunk *c = malloc(sizeof(chunk) + cap);
    if (c == NULL) {
      fprintf(stderr, "out of memory\n");
      exit(1);
    }
    c->next = *a;
    c->used = 0;
    c->cap = cap;
    *a = c;
  }
  void *p = (*a)->mem + (*a)->used;
  (*a)->used += n;
  return p;
}

static const char *arena_str(chunk **a, const char *s, size_t len) {
  char *p = arena_alloc(a, len + 1);
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

/* ---- JSON tree to field list -------------------------------------------- */

typedef struct {
  ixr_field *f;
  size_t n, cap;
} fieldvec;

static void fv_push(fieldvec *v, ixr_field x) {
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 64;
    v->f = realloc(v->f, v->cap * sizeof(*v->f));
    if (v->f == NULL) {
      fprintf(stderr, "out of memory\n");
      exit(1);
    }
  }
  v->f[v->n++] = x;
}

static void flatten(chunk **a, fieldvec *v, const char *key, yajl_val x) {
  ixr_field f;
  memset(&f, 0, sizeof(f));
  f.key = key;
  if (YAJL_IS_STRING(x)) {
    f.type = IXR_V_STRING;
    f.len = strlen(x->u.string);
    f.str = arena_str(a, x->u.string, f.len);
    fv_push(v, f);
  } else if (YAJL_IS_INTEGER(x)) {
    f.type = IXR_V_INT;
    f.i = YAJL_GET_INTEGER(x);
    fv_push(v, f);
  } else if (YAJL_IS_NUMBER(x)) {
    f.type = IXR_V_DOUBLE;
    f.d = YAJL_GET_DOUBLE(x);
    fv_push(v, f);
  } else if (YAJL_IS_TRUE(x) || YAJL_IS_FALSE(x)) {
    f.type = IXR_V_BOOL;
    f.b = YAJL_IS_TRUE(x);
    fv_push(v, f);
  } else if (YAJL_IS_NULL(x)) {
    f.type = IXR_V_NULL;
    fv_push(v, f);
  } else if (YAJL_IS_OBJECT(x)) {
    f.type = IXR_V_OBJECT;
    fv_push(v, f);
    for (size_t i = 0; i < x->u.object.len; i++) {
      const char *k = x->u.object.keys[i];
      flatten(a, v, arena_str(a, k, strlen(k)), x->u.object.values[i]);
    }
    memset(&f, 0, sizeof(f));
    f.type = IXR_V_END;
    fv_push(v, f);
  } else if (YAJL_IS_ARRAY(x)) {
    f.type = IXR_V_ARRAY;
    fv_push(v, f);
    for (size_t i = 0; i < x->u.array.len; i++) flatten(a, v, NULL, x->u.array.values[i]);
    memset(&f, 0, sizeof(f));
    f.type = IXR_V_END;
    fv_push(v, f);
  }
}

/* As ixr's own decoder (runtime/codec.c): a line nested deeper than this,
 * counting the top-level object as 1, does not decode. */
#define MAX_DEPTH 64

/* Whether the containers of the line nest at most MAX_DEPTH deep. Checked
 * before yajl builds the tree: yajl_tree_free() and flatten() recurse once
 * per level, and a line of 200,000 '[' overflows the C stack. Brackets
 * inside strings do not count; malformed JSON is yajl's to refuse. */
static int depth_ok(const char *p, const char *end) {
  int depth = 0, in_str = 0;
  for (; p < end; p++) {
    char c = *p;
    if (in_str) {
      if (c == '\\' && p + 1 < end) p++;
      else if (c == '"') in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '[' || c == '{') {
      if (++depth > MAX_DEPTH) return 0;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return 1;
}

void bench_load_events(const char *path, size_t limit, bench_events *out) {
  size_t len;
  char *text = bench_read_file(path, &len);
  memset(out, 0, sizeof(*out));
  chunk *a = NULL;
  size_t cap = 0;
  fieldvec v = {0};
  char *p = text, *end = text + len;
  while (p < end && (limit == 0 || out->n + out->skipped < limit)) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) nl = end;
    *nl = '\0';
    out->bytes += (size_t)(nl - p) + 1;
    char err[128];
    yajl_val root = depth_ok(p, nl) ? yajl_tree_parse(p, err, sizeof(err)) : NULL;
    yajl_val name = root ? yajl_tree_get(root, (const char *[]){"name", NULL}, yajl_t_string)
                         : NULL;
    if (root == NULL || !YAJL_IS_OBJECT(root) || name == NULL) {
      out->skipped++;
    } else {
      if (out->n == cap) {
        cap = cap ? cap * 2 : 1024;
        out->ev = realloc(out->ev, cap * sizeof(*out->ev));
        if (out->ev == NULL) {
          fprintf(stderr, "out of memory\n");
          exit(1);
        }
      }
      bench_event *e = &out->ev[out->n++];
      e->name = arena_str(&a, name->u.string, strlen(name->u.string));
      e->iid = NULL;
      v.n = 0;
      yajl_val data = yajl_tree_get(root, (const char *[]){"data", NULL}, yajl_t_object);
      if (data != NULL) {
        for (size_t i = 0; i < data->u.object.len; i++) {
          const char *k = data->u.object.keys[i];
          size_t first = v.n;
          flatten(&a, &v, arena_str(&a, k, strlen(k)), data->u.object.values[i]);
          if (strcmp(k, "interactionid") == 0 && v.f[first].type == IXR_V_STRING)
            e->iid = v.f[first].str;
        }
      }
      ixr_field *f = arena_alloc(&a, v.n * sizeof(*f) + 1);
      if (v.n) memcpy(f, v.f, v.n * sizeof(*f));
      e->fields = f;
      e->nfields = v.n;
    }
    yajl_tree_free(root);
    p = nl + 1;
  }
  free(v.f);
  free(text);
  out->arena = a;
  if (out->n == 0) {
    fprintf(stderr,
            "%s: no event in %zu line(s): none is a JSON object with a string \"name\" "
            "nested at most %d levels deep\n",
            path, out->skipped, MAX_DEPTH);
    bench_free_events(out);
    exit(1);
  }
}

void bench_free_events(bench_events *e) {
  chunk *c = e->arena;
  while (c != NULL) {
    chunk *next = c->next;
    free(c);
    c = next;
  }
  free(e->ev);
  memset(e, 0, sizeof(*e));
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
  if (n <= 0) return 0;
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

bool bench_parse_count(const char *opt, const char *s, uint64_t min, uint64_t max,
                       uint64_t *out) {
  uint64_t x = 0;
  bool ok = s != NULL && *s != '\0';
  for (const char *p = s; ok && *p; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (*p < '0' || *p > '9' || x > (UINT64_MAX - d) / 10) ok = false;
    else x = x * 10 + d;
  }
  if (!ok || x < min || x > max) {
    fprintf(stderr, "%s: bad value '%s': want a whole number from %llu to %llu\n", opt,
            s ? s : "", (unsigned long long)min, (unsigned long long)max);
    return false;
  }
  *out = x;
  return true;
}
