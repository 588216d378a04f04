/*
 * cli_test.c: ixr test, scenario files run against the strategies.
 *
 * A scenario is NDJSON with comments (docs/authoring.md has the format):
 * sends, expects and clock advances, checked strictly and in order. Each
 * file gets a fresh runtime with the manual clock. Every scenario line that
 * is not a send is fed to the runtime as an empty line, so the runtime's
 * line numbers (in error lines and in the trace) are the scenario's own.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

#define SHOW_MAX 400 /* longest output line shown in a report, in bytes */

typedef enum { STEP_SEND, STEP_EXPECT, STEP_ADVANCE } step_kind;

typedef struct step {
  step_kind kind;
  int line;        /* in the scenario file */
  char *bytes;     /* SEND: the line to feed, without its newline; NULL:
                      len bytes of 'x' (send_too_long) */
  size_t len;
  cj *expect;      /* EXPECT: the fields to match */
  char *text;      /* EXPECT: the scenario line as written */
  unsigned long long ms; /* ADVANCE */
} step;

typedef struct scenario {
  const char *path;
  char *handlers; /* from the header line, resolved; NULL: the default */
  size_t max_line; /* from a max_line line; 0: the runtime's default */
  int64_t start_time_ms; /* from a start_time line */
  bool start_time_set;
  step *steps;
  size_t n, cap;
  int lines;
} scenario;

typedef struct outline {
  char *json;
  size_t len;
  cj *v;
  int from; /* the scenario line of the step that caused it */
} outline;

typedef struct run {
  const scenario *sc;
  outline *out;
  size_t nout, cap;
  int from;
  bool nomem;
} run;

typedef struct opts {
  const char *handlers;
  bool trace;
  ixr_log_level level;
} opts;

/* ---- reading a scenario ---------------------------------------------- */

static void free_scenario(scenario *sc) {
  for (size_t i = 0; i < sc->n; i++) {
    free(sc->steps[i].bytes);
    free(sc->steps[i].text);
    cj_free(sc->steps[i].expect);
  }
  free(sc->steps);
  free(sc->handlers);
}

static step *new_step(scenario *sc, step_kind kind, int line) {
  if (sc->n == sc->cap) {
    size_t cap = sc->cap ? sc->cap * 2 : 32;
    step *s = realloc(sc->steps, cap * sizeof(*s));
    if (s == NULL) return NULL;
    sc->steps = s;
    sc->cap = cap;
  }
  step *st = &sc->steps[sc->n++];
  memset(st, 0, sizeof(*st));
  st->kind = kind;
  st->line = line;
  return st;
}

static char *dup_len(const char *p, size_t len) {
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  memcpy(s, p, len);
  s[len] = '\0';
  return s;
}

/* The serialized value, as the line to send. */
static char *serialize(const cj *v, size_t *len) {
  yajl_gen g = cj_gen_new();
  if (g == NULL) return NULL;
  cj_gen(g, v);
  const unsigned char *buf;
  char *s = NULL;
  if (yajl_gen_get_buf(g, &buf, len) == yajl_gen_status_ok)
    s = dup_len((const char *)buf, *len);
  yajl_gen_free(g);
  return s;
}

bool cli_scenario_key(const char *k) {
  static const char *const names[] = {"send", "send_raw", "send_base64",
                                      "send_too_long", "expect", "advance",
                                      "handlers", "max_line", "start_time", NULL};
  for (const char *const *n = names; *n; n++)
    if (strcmp(k, *n) == 0) return true;
  return false;
}

/* The path of `rel` seen from the directory of `file`. */
static char *beside(const char *file, const char *rel) {
  const char *slash = strrchr(file, '/');
  if (rel[0] == '/' || slash == NULL) return strdup(rel);
  size_t n = (size_t)(slash - file) + strlen(rel) + 2;
  char *p = malloc(n);
  if (p != NULL) snprintf(p, n, "%.*s/%s", (int)(slash - file), file, rel);
  return p;
}

/* The text of the value of a line that is a JSON object of one member
 * (already parsed): what follows its ':' up to the closing '}', trimmed.
 * A send step sends these bytes as they are, so that what the scenario
 * says is what the runtime decodes (the scenario's parser would turn a
 * lone surrogate escape into '?', say, which ixr's decoder refuses). */
static void single_member_value(const char *p, size_t len, const char **v,
                                size_t *vlen) {
  size_t i = 0;
  while (i < len && p[i] != '"') i++; /* the key */
  for (i++; i < len && p[i] != '"'; i++)
    if (p[i] == '\\') i++;
  while (i < len && p[i] != ':') i++;
  size_t a = i + 1, b = len;
  while (b > a && p[b - 1] != '}') b--;
  b--; /* the object's '}' */
  while (a < b && (p[a] == ' ' || p[a] == '\t' || p[a] == '\r' || p[a] == '\n')) a++;
  while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t' || p[b - 1] == '\r' || p[b - 1] == '\n')) b--;
  *v = p + a;
  *vlen = b - a;
}

/*
 * One scenario line (trimmed, not a comment) into a step or the header.
 * Returns 0, or -1 with a message in err.
 */
static int parse_line(scenario *sc, int lineno, const char *p, size_t len,
                      char *err, size_t errlen) {
  char why[300];
  cj *v = cj_parse(p, len, why, sizeof(why));
  if (v == NULL) {
    snprintf(err, errlen, "not a JSON line (%s)", why);
    return -1;
  }
  int rc = -1;
  if (v->type != CJ_OBJECT) {
    snprintf(err, errlen, "a scenario line must be a JSON object");
    goto out;
  }
  const char *directive = NULL;
  for (size_t i = 0; i < v->n; i++) {
    if (!cli_scenario_key(v->k[i])) continue;
    if (directive != NULL) {
      snprintf(err, errlen, "'%s' and '%s' on one line: one step a line",
               directive, v->k[i]);
      goto out;
    }
    directive = v->k[i];
  }
  if (directive == NULL) {
    if (cj_get(v, "name") == NULL) {
      snprintf(err, errlen,
               "neither a step (send, send_raw, send_base64, send_too_long, expect, "
               "advance, handlers, max_line, start_time) nor an event (no \"name\")");
      goto out;
    }
    step *st = new_step(sc, STEP_SEND, lineno); /* a bare event: sent as written */
    if (st == NULL || (st->bytes = dup_len(p, len)) == NULL) goto nomem;
    st->len = len;
    rc = 0;
    goto out;
  }
  if (v->n > 1) {
    for (size_t i = 0; i < v->n; i++)
      if (strcmp(v->k[i], directive) != 0) {
        snprintf(err, errlen, "unexpected key '%s' beside '%s'", v->k[i],
                 directive);
        goto out;
      }
  }
  const cj *arg = v->v[0];
  if (strcmp(directive, "handlers") == 0) {
    if (sc->n > 0 || sc->handlers != NULL) {
      snprintf(err, errlen, "the handlers line must come once, before any step");
      goto out;
    }
    if (arg->type != CJ_STRING || arg->len == 0 || strlen(arg->s) != arg->len) {
      snprintf(err, errlen, "handlers takes a directory name");
      goto out;
    }
    if ((sc->handlers = beside(sc->path, arg->s)) == NULL) goto nomem;
  } else if (strcmp(directive, "max_line") == 0) {
    unsigned long long n;
    if (sc->n > 0 || sc->max_line != 0) {
      snprintf(err, errlen, "the max_line line must come once, before any step");
      goto out;
    }
    if (!cj_uint(arg, &n) || n < CLI_MAX_LINE_MIN || n > CLI_MAX_LINE_MAX) {
      snprintf(err, errlen, "max_line takes the longest input line in bytes, %llu to %llu",
               CLI_MAX_LINE_MIN, CLI_MAX_LINE_MAX);
      goto out;
    }
    sc->max_line = (size_t)n;
  } else if (strcmp(directive, "start_time") == 0) {
    if (sc->n > 0 || sc->start_time_set) {
      snprintf(err, errlen, "the start_time line must come once, before any step");
      goto out;
    }
    if (!cli_time_value(arg, &sc->start_time_ms)) {
      snprintf(err, errlen, "start_time takes \"YYYY-MM-DDTHH:MM:SS[.mmm]Z\" (UTC) or "
               "whole milliseconds since 1970, -1e15 to 1e15");
      goto out;
    }
    sc->start_time_set = true;
  } else if (strcmp(directive, "send") == 0) {
    step *st = new_step(sc, STEP_SEND, lineno);
    if (st == NULL) goto nomem;
    if (v->n == 1) { /* the value's own bytes */
      const char *raw;
      size_t rlen;
      single_member_value(p, len, &raw, &rlen);
      if ((st->bytes = dup_len(raw, rlen)) == NULL) goto nomem;
      st->len = rlen;
    } else if ((st->bytes = serialize(arg, &st->len)) == NULL) { /* "send" twice */
      goto nomem;
    }
  } else if (strcmp(directive, "send_raw") == 0) {
    if (arg->type != CJ_STRING || memchr(arg->s, '\n', arg->len) != NULL) {
      snprintf(err, errlen, "send_raw takes a string (one line, no newline)");
      goto out;
    }
    step *st = new_step(sc, STEP_SEND, lineno);
    if (st == NULL || (st->bytes = dup_len(arg->s, arg->len)) == NULL) goto nomem;
    st->len = arg->len;
  } else if (strcmp(directive, "send_base64") == 0) {
    unsigned char *bytes = NULL;
    long n = -1;
    if (arg->type == CJ_STRING) {
      if ((bytes = malloc(arg->len / 4 * 3 + 1)) == NULL) goto nomem;
      n = cj_b64_decode(arg->s, arg->len, bytes);
    }
    if (n < 0 || memchr(bytes, '\n', (size_t)n) != NULL) {
      free(bytes);
      snprintf(err, errlen, "send_base64 takes the base64 text of one line");
      goto out;
    }
    step *st = new_step(sc, STEP_SEND, lineno);
    if (st == NULL) {
      free(bytes);
      goto nomem;
    }
    st->bytes = (char *)bytes;
    st->len = (size_t)n;
  } else if (strcmp(directive, "send_too_long") == 0) {
    /* A line one byte over the limit, which the runtime skips with a
     * line_too_long error (a record keeps such a line only as a note). */
    if (arg->type != CJ_BOOL || !arg->b) {
      snprintf(err, errlen, "send_too_long takes true");
      goto out;
    }
    size_t limit = sc->max_line;
    if (limit == 0) {
      ixr_options d;
      ixr_options_init(&d);
      limit = d.max_line;
    }
    step *st = new_step(sc, STEP_SEND, lineno);
    if (st == NULL) goto nomem;
    st->bytes = NULL; /* made when sent: a scenario may hold many */
    st->len = limit + 1;
  } else if (strcmp(directive, "expect") == 0) {
    if (arg->type != CJ_OBJECT) {
      snprintf(err, errlen, "expect takes an object: the fields to match");
      goto out;
    }
    step *st = new_step(sc, STEP_EXPECT, lineno);
    if (st == NULL || (st->text = dup_len(p, len)) == NULL) goto nomem;
    st->expect = v->v[0]; /* the step takes the value over */
    v->v[0] = NULL;
  } else { /* advance */
    unsigned long long ms;
    /* Whole milliseconds, written as JSON may write them (1000 or 1e3). */
    double d = arg != NULL && arg->type == CJ_NUMBER ? strtod(arg->s, NULL) : -1.0;
    bool whole = d >= 0.0 && d <= 1e15 && d == (double)(unsigned long long)d;
    if (!cj_uint(arg, &ms) && whole) ms = (unsigned long long)d;
    else if (!cj_uint(arg, &ms)) ms = ~0ull;
    if (ms > 1000000000000000ull) {
      snprintf(err, errlen, "advance takes whole milliseconds, 0 to 1e15");
      goto out;
    }
    step *st = new_step(sc, STEP_ADVANCE, lineno);
    if (st == NULL) goto nomem;
    st->ms = ms;
  }
  rc = 0;
  goto out;
nomem:
  snprintf(err, errlen, "out of memory");
out:
  cj_free(v);
  return rc;
}

/* Reads the whole file; NULL with errno set on failure. */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (cap - n < 65536) {
      cap = cap ? cap * 2 : 65536;
      char *nb = realloc(buf, cap);
      if (nb == NULL) {
        free(buf);
        fclose(f);
        errno = ENOMEM;
        return NULL;
      }
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    errno = EIO;
    return NULL;
  }
  *len = n;
  return buf;
}

static int load_scenario(scenario *sc, char *err, size_t errlen) {
  size_t len;
  char *buf = slurp(sc->path, &len);
  if (buf == NULL) {
    snprintf(err, errlen, " cannot read: %s", strerror(errno)); /* no line */
    return -1;
  }
  int rc = 0;
  char *p = buf, *end = buf + len;
  /* A byte order mark, as some editors save one, before the first line */
  if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
  int lineno = 0;
  while (p < end && rc == 0) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *stop = nl ? nl : end;
    lineno++;
    char *q = stop;
    while (q > p && (q[-1] == '\r' || q[-1] == ' ' || q[-1] == '\t')) q--;
    while (p < q && (*p == ' ' || *p == '\t')) p++;
    if (p < q && *p != '#') {
      char why[400];
      if (parse_line(sc, lineno, p, (size_t)(q - p), why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%d: %s", lineno, why);
        rc = -1;
      }
    }
    p = stop + 1;
  }
  sc->lines = lineno;
  free(buf);
  return rc;
}

/* ---- running it -------------------------------------------------------- */

static void on_output(void *ud, const ixr_output *o) {
  run *r = ud;
  if (r->nout == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    outline *n = realloc(r->out, cap * sizeof(*n));
    if (n == NULL) {
      r->nomem = true;
      return;
    }
    r->out = n;
    r->cap = cap;
  }
  outline *l = &r->out[r->nout];
  l->json = dup_len(o->json, o->json_len);
  if (l->json == NULL) {
    r->nomem = true;
    return;
  }
  char err[200];
  l->len = o->json_len;
  l->v = cj_parse(o->json, o->json_len, err, sizeof(err));
  l->from = r->from;
  r->nout++;
}

static void show_line(const outline *l, size_t i, bool mark) {
  printf("    %s #%zu from line %d: %.*s%s\n", mark ? ">>" : "  ", i + 1, l->from,
         (int)(l->len > SHOW_MAX ? SHOW_MAX : l->len), l->json,
         l->len > SHOW_MAX ? "..." : "");
}

/* The output lines around `center` (clipped), marked if `mark`. */
static void show_window(const run *r, size_t center, size_t before,
                        size_t after, bool mark) {
  size_t from = center > before ? center - before : 0;
  size_t to = center + after + 1 < r->nout ? center + after + 1 : r->nout;
  for (size_t i = from; i < to; i++)
    show_line(&r->out[i], i, mark && i == center);
}

static const char *kind_name(step_kind k) {
  return k == STEP_SEND ? "send" : k == STEP_ADVANCE ? "advance" : "expect";
}

/* Reports an output line that no expect claimed, found before step `st`
 * (NULL: at the end of the file). */
static void fail_extra(const run *r, size_t i, const step *st) {
  const scenario *sc = r->sc;
  if (st != NULL)
    printf("FAIL %s:%d: extra line: output #%zu was not expected before this "
           "%s\n",
           sc->path, st->line, i + 1, kind_name(st->kind));
  else
    printf("FAIL %s:%d: extra line: output #%zu was not expected (end of the "
           "scenario)\n",
           sc->path, sc->lines, i + 1);
  printf("  output around it:\n");
  show_window(r, i, 2, 2, true);
}

static void fail_missing(const run *r, const step *st) {
  printf("FAIL %s:%d: missing line: no output line left to match\n",
         r->sc->path, st->line);
  printf("  expected: %s\n", st->text);
  if (r->nout == 0) {
    printf("  (there was no output at all)\n");
    return;
  }
  printf("  the last output lines (all matched already):\n");
  show_window(r, r->nout - 1, 2, 0, false);
}

static void fail_wrong(const run *r, size_t i, const step *st, const char *why) {
  printf("FAIL %s:%d: wrong line: %s\n", r->sc->path, st->line, why);
  printf("  expected: %s\n", st->text);
  printf("  output around it:\n");
  show_window(r, i, 2, 2, true);
  char scratch[8];
  for (size_t j = i + 1; j < r->nout; j++)
    if (r->out[j].v != NULL &&
        cj_match(st->expect, r->out[j].v, scratch, sizeof(scratch))) {
      printf("  output #%zu matches this expect: wrong order?\n", j + 1);
      break;
    }
}

/* A line of the scenario's own in the trace. */
static void trace_note(const opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void trace_note(const opts *o, const char *fmt, ...) {
  if (!o->trace) return;
  fflush(stdout);
  va_list ap;
  va_start(ap, fmt);
  fputs("test: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* Feeds `st` preceded by one empty line for each scenario line since the
 * last send, so that the runtime counts lines as the file does. */
static int feed(ixr_runtime *rt, const step *st, int *fed_upto) {
  size_t blanks = (size_t)(st->line - 1 - *fed_upto);
  char *buf = malloc(blanks + st->len + 1);
  if (buf == NULL) return IXR_ENOMEM;
  memset(buf, '\n', blanks);
  if (st->bytes != NULL) memcpy(buf + blanks, st->bytes, st->len);
  else memset(buf + blanks, 'x', st->len);
  buf[blanks + st->len] = '\n';
  int rc = ixr_feed(rt, buf, blanks + st->len + 1);
  free(buf);
  *fed_upto = st->line;
  return rc;
}

static bool dir_exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Runs one scenario file: prints PASS or FAIL with the details. */
static bool run_file(const char *path, const opts *o) {
  scenario sc;
  memset(&sc, 0, sizeof(sc));
  sc.path = path;
  char err[600];
  if (load_scenario(&sc, err, sizeof(err)) != 0) {
    printf("FAIL %s:%s\n", path, err); /* err: "LINE: why" or " why" */
    free_scenario(&sc);
    return false;
  }
  if (sc.n == 0) { /* a scenario that checks nothing must not pass */
    printf("FAIL %s: no steps: a scenario sends, advances or expects\n", path);
    free_scenario(&sc);
    return false;
  }
  const char *handlers = sc.handlers ? sc.handlers : o->handlers;
  if (!dir_exists(handlers)) {
    printf("FAIL %s: the handlers directory %s does not exist\n", path, handlers);
    free_scenario(&sc);
    return false;
  }
  run r;
  memset(&r, 0, sizeof(r));
  r.sc = &sc;
  ixr_options io;
  ixr_options_init(&io);
  io.handlers_dir = handlers;
  if (sc.max_line != 0) io.max_line = sc.max_line;
  io.start_time_ms = sc.start_time_ms;
  io.clock = IXR_CLOCK_MANUAL;
  io.on_output = on_output;
  io.output_ud = &r;
  io.on_log = cli_log_print;
  io.log_level = o->level;
  if (o->trace) {
    io.on_trace = cli_trace_print;
    fflush(stdout);
    fprintf(stderr, "test: %s (handlers %s)\n", path, handlers);
  }
  ixr_runtime *rt;
  int rc = ixr_new(&rt, &io);
  if (rc != 0) {
    printf("FAIL %s: cannot start a runtime: %s\n", path, ixr_strerror(rc));
    free_scenario(&sc);
    return false;
  }
  bool ok = true;
  size_t next = 0, sends = 0, expects = 0;
  int fed_upto = 0;
  for (size_t i = 0; i < sc.n && ok; i++) {
    const step *st = &sc.steps[i];
    if (st->kind != STEP_EXPECT && next < r.nout) {
      fail_extra(&r, next, st);
      ok = false;
      continue;
    }
    r.from = st->line;
    switch (st->kind) {
      case STEP_SEND:
        sends++;
        rc = feed(rt, st, &fed_upto);
        break;
      case STEP_ADVANCE:
        trace_note(o, "line %d: advance %llu ms", st->line, st->ms);
        rc = ixr_advance(rt, st->ms);
        break;
      case STEP_EXPECT: {
        expects++;
        char why[600];
        if (next == r.nout) {
          fail_missing(&r, st);
          ok = false;
        } else if (r.out[next].v == NULL) {
          fail_wrong(&r, next, st, "the output line is not valid JSON");
          ok = false;
        } else if (!cj_match(st->expect, r.out[next].v, why, sizeof(why))) {
          fail_wrong(&r, next, st, why);
          ok = false;
        } else {
          trace_note(o, "line %d: expect matched output #%zu", st->line,
                     next + 1);
          next++;
        }
        rc = 0;
        break;
      }
    }
    if (rc != 0 || r.nomem) {
      printf("FAIL %s:%d: the runtime refused the step: %s\n", path, st->line,
             r.nomem ? "out of memory" : ixr_strerror(rc));
      ok = false;
    }
  }
  if (ok && next < r.nout) {
    fail_extra(&r, next, NULL);
    ok = false;
  }
  if (ok)
    printf("PASS %s (%zu sends, %zu expects)\n", path, sends, expects);
  ixr_close(rt);
  for (size_t i = 0; i < r.nout; i++) {
    free(r.out[i].json);
    cj_free(r.out[i].v);
  }
  free(r.out);
  free_scenario(&sc);
  return ok;
}

/* ---- finding scenario files ------------------------------------------- */

typedef struct pathlist {
  char **v;
  size_t n, cap;
} pathlist;

static int push_path(pathlist *l, char *p) {
  if (p == NULL) return -1;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 32;
    char **nv = realloc(l->v, cap * sizeof(*nv));
    if (nv == NULL) {
      free(p);
      return -1;
    }
    l->v = nv;
    l->cap = cap;
  }
  l->v[l->n++] = p;
  return 0;
}

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The directories being walked, to stop at a symbolic link that leads
 * back into one of them (sub/loop -> ..). */
typedef struct ancestor {
  dev_t dev;
  ino_t ino;
  const struct ancestor *up;
} ancestor;

/* Every *.scenario file under dir, in name order. */
static int walk_below(const char *dir, pathlist *out, const ancestor *up) {
  struct stat sb;
  if (stat(dir, &sb) != 0) return -1;
  for (const ancestor *a = up; a != NULL; a = a->up)
    if (a->dev == sb.st_dev && a->ino == sb.st_ino) return 0; /* a loop */
  ancestor self = {sb.st_dev, sb.st_ino, up};
  struct dirent **names;
  int n = scandir(dir, &names, NULL, alphasort);
  if (n < 0) return -1;
  int rc = 0;
  for (int i = 0; i < n; i++) {
    const char *name = names[i]->d_name;
    if (rc == 0 && name[0] != '.') {
      size_t len = strlen(dir) + strlen(name) + 2;
      char *p = malloc(len);
      if (p == NULL) {
        rc = -1;
      } else {
        size_t dl = strlen(dir);
        while (dl > 1 && dir[dl - 1] == '/') dl--; /* "tests/" gives tests/x, not tests//x */
        snprintf(p, len, "%.*s/%s", (int)dl, dir, name);
        if (dir_exists(p)) {
          rc = walk_below(p, out, &self);
          free(p);
        } else if (has_suffix(name, ".scenario")) {
          rc = push_path(out, p);
        } else {
          free(p);
        }
      }
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

static int walk(const char *dir, pathlist *out) {
  return walk_below(dir, out, NULL);
}

static void test_usage(FILE *f) {
  fputs("usage: ixr test [--handlers DIR] [--trace] [--log-level LEVEL] "
        "FILE|DIR...\n"
        "Runs scenario files (a directory: every *.scenario file under it)\n"
        "against the strategies in DIR (default ./handlers, or the file's\n"
        "{\"handlers\": ...} line). Exit status 1 if any scenario fails.\n",
        f);
}

int cli_test(int argc, char **argv) {
  opts o = {"handlers", false, IXR_LOG_WARN};
  pathlist files = {0};
  int status = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--handlers") == 0 && i + 1 < argc) {
      o.handlers = argv[++i];
    } else if (strcmp(a, "--trace") == 0) {
      o.trace = true;
    } else if (strcmp(a, "--log-level") == 0 && i + 1 < argc) {
      if (cli_parse_level(argv[++i], &o.level) != 0) {
        fprintf(stderr, "ixr test: unknown log level '%s'\n", argv[i]);
        status = 2;
      }
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      test_usage(stdout);
      goto done;
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "ixr test: unknown or incomplete option '%s'\n\n", a);
      test_usage(stderr);
      status = 2;
    } else if (dir_exists(a)) {
      size_t before = files.n;
      if (walk(a, &files) != 0) {
        fprintf(stderr, "ixr test: cannot read the directory %s\n", a);
        status = 1;
      } else if (files.n == before) {
        fprintf(stderr, "ixr test: no *.scenario file under %s\n", a);
        status = 1;
      }
    } else if (push_path(&files, strdup(a)) != 0) {
      status = 1;
    }
    if (status != 0) goto done;
  }
  if (files.n == 0) {
    test_usage(stderr);
    status = 2;
    goto done;
  }
  unsigned passed = 0, failed = 0;
  for (size_t i = 0; i < files.n; i++) {
    if (run_file(files.v[i], &o)) passed++;
    else failed++;
    fflush(stdout);
  }
  printf("%u passed, %u failed\n", passed, failed);
  status = failed > 0 ? 1 : 0;
  if (fflush(stdout) != 0 || ferror(stdout)) { /* the report is the point */
    fprintf(stderr, "ixr test: cannot write the report: %s\n", strerror(errno));
    status = 1;
  }
done:
  for (size_t i = 0; i < files.n; i++) free(files.v[i]);
  free(files.v);
  return status;
}
