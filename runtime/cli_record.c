/*
 * cli_record.c: recording (ixr run --record), tracing (--trace) and replay
 * (ixr replay, optionally into a scenario file).
 *
 * A record file is NDJSON. Its first line says how it was made,
 *   {"record":"ixr","version":1,"clock":"real","max_line":1048576,
 *    "start_time_ms":1730800800000}
 * and every other line is one input line as the runtime received it, with
 * the runtime clock's time in ms:
 *   {"t":1520,"line":"{\"name\":\"interaction.present\",...}"}
 * Lines that are not valid UTF-8 (or hold a NUL byte) cannot be a JSON
 * string; they are kept byte for byte as {"t":..,"base64":"..."}, so a
 * replay reproduces the errors they caused. A line longer than max_line,
 * which the run skipped, is noted as {"t":..,"too_long":BYTES_READ}; the
 * replay feeds a line one byte over the limit in its place. A reload that
 * was no input line (SIGHUP, --watch, the control socket) is noted as
 * {"t":..,"reloaded":GENERATION} before the next line: a replay cannot
 * redo it, and says so.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ---- hooks shared by the commands -------------------------------------- */

/* A line to standard error, in full: `ixr run` serves a standard output
 * that libuv makes non-blocking, and with 2>&1 standard error shares it,
 * so a full pipe refuses writes with EAGAIN that stdio would drop. */
static void stderr_line(const char *prefix, const char *line) {
  fflush(stdout); /* keep reports and log lines in order on a terminal */
  char buf[4096];
  int n = snprintf(buf, sizeof(buf), "%s%s\n", prefix, line);
  if (n < 0) return;
  if (n > (int)sizeof(buf) - 1) n = (int)sizeof(buf) - 1;
  for (const char *p = buf, *end = buf + n; p < end;) {
    ssize_t w = write(STDERR_FILENO, p, (size_t)(end - p));
    struct pollfd pfd = {.fd = STDERR_FILENO, .events = POLLOUT};
    if (w > 0) p += w;
    else if (w < 0 && errno == EINTR) continue;
    else if (w < 0 && errno == EAGAIN && (poll(&pfd, 1, -1) >= 0 || errno == EINTR)) continue;
    else return;
  }
}

void cli_trace_print(void *ud, const char *line) {
  (void)ud;
  stderr_line("", line);
}

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          "trace"};

int cli_parse_level(const char *s, ixr_log_level *out) {
  for (int i = 0; i < 5; i++)
    if (strcmp(s, level_names[i]) == 0) {
      *out = (ixr_log_level)i;
      return 0;
    }
  return -1;
}

void cli_log_print(void *ud, ixr_log_level level, const char *msg) {
  (void)ud;
  char prefix[32];
  snprintf(prefix, sizeof(prefix), "ixr: %s: ", level_names[level]);
  stderr_line(prefix, msg);
}

/* ---- recording -------------------------------------------------------- */

struct cli_recorder {
  FILE *f;
  char *path;
  yajl_gen g;
  bool failed;
  ixr_clock clock;
  size_t max_line;
  ixr_runtime *rt;
  uint64_t generation; /* in service at the last line */
  bool inband;         /* the last line may have been an ixr.reload */
};

static void record_failed(cli_recorder *r) {
  if (!r->failed)
    fprintf(stderr, "ixr: --record %s: %s: recording stopped\n", r->path,
            strerror(errno));
  r->failed = true;
}

int cli_recorder_open(cli_recorder **out, const char *path, ixr_clock clock,
                      size_t max_line) {
  cli_recorder *r = calloc(1, sizeof(*r));
  if (r == NULL || (r->path = strdup(path)) == NULL || (r->g = cj_gen_new()) == NULL) {
    fprintf(stderr, "ixr: --record %s: out of memory\n", path);
    goto fail;
  }
  /* Not the input being read; and the record of the last run (the one
   * of an incident, after a crash and a restart) is kept as FILE.1. */
  struct stat rs, in;
  if (stat(path, &rs) == 0) {
    if (fstat(STDIN_FILENO, &in) == 0 && rs.st_dev == in.st_dev && rs.st_ino == in.st_ino) {
      fprintf(stderr, "ixr: --record %s: it is the standard input\n", path);
      goto fail;
    }
    if (S_ISREG(rs.st_mode) && rs.st_size > 0) {
      size_t n = strlen(path) + 3;
      char *old = malloc(n);
      if (old != NULL) {
        snprintf(old, n, "%s.1", path);
        if (rename(path, old) == 0)
          fprintf(stderr, "ixr: --record %s: the record there before is now %s\n", path, old);
        else
          fprintf(stderr, "ixr: --record %s: cannot keep the record there as %s: %s\n", path,
                  old, strerror(errno));
        free(old);
      }
    }
  }
  if ((r->f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "ixr: --record %s: %s\n", path, strerror(errno));
    goto fail;
  }
  r->clock = clock;
  r->max_line = max_line;
  *out = r;
  return 0;
fail:
  if (r != NULL) {
    if (r->g != NULL) yajl_gen_free(r->g);
    free(r->path);
    free(r);
  }
  return -1;
}

void cli_recorder_start(cli_recorder *r, ixr_runtime *rt) {
  ixr_stats st;
  ixr_get_stats(rt, &st);
  r->rt = rt;
  r->generation = st.generation;
  fprintf(r->f,
          "{\"record\":\"ixr\",\"version\":1,\"clock\":\"%s\",\"max_line\":%zu,"
          "\"start_time_ms\":%lld}\n",
          r->clock == IXR_CLOCK_MANUAL ? "manual" : "real", r->max_line,
          (long long)st.start_time_ms);
  if (fflush(r->f) != 0) record_failed(r);
}

/* A reload that is no input line (SIGHUP, --watch, the control socket)
 * cannot be replayed: the record says where one put a new generation in
 * service, {"t":..,"reloaded":GENERATION}, so that a replay can say from
 * where its output may differ. The generation is looked at when each line
 * arrives; a change right after a line that may be an ixr.reload is taken
 * for that line's (which the replay does again). */
static void note_reload(cli_recorder *r, const char *line, size_t len, uint64_t now_ms) {
  ixr_stats st;
  if (r->rt == NULL || ixr_get_stats(r->rt, &st) != 0) return;
  if (st.generation != r->generation && !r->inband) {
    yajl_gen g = r->g;
    yajl_gen_map_open(g);
    cj_gen_str(g, "t", 1);
    yajl_gen_integer(g, (long long)now_ms);
    cj_gen_str(g, "reloaded", 8);
    yajl_gen_integer(g, (long long)st.generation);
    yajl_gen_map_close(g);
    if (cj_gen_line(g, r->f) != 0) record_failed(r);
  }
  r->generation = st.generation;
  r->inband = line != NULL && memmem(line, len, "ixr.reload", 10) != NULL;
}

void cli_recorder_input(void *ud, const char *line, size_t len, uint64_t now_ms) {
  cli_recorder *r = ud;
  if (r->failed) return;
  note_reload(r, line, len, now_ms);
  if (r->failed) return;
  yajl_gen g = r->g;
  yajl_gen_map_open(g);
  cj_gen_str(g, "t", 1);
  yajl_gen_integer(g, (long long)now_ms);
  if (line == NULL) { /* a line over --max-line, skipped: where it was */
    cj_gen_str(g, "too_long", 8);
    yajl_gen_integer(g, (long long)len);
  } else if (cj_is_text(line, len)) {
    cj_gen_str(g, "line", 4);
    cj_gen_str(g, line, len);
  } else {
    char *b = cj_b64_encode((const unsigned char *)line, len);
    if (b == NULL) {
      errno = ENOMEM;
      record_failed(r);
      yajl_gen_clear(g);
      yajl_gen_reset(g, NULL);
      return;
    }
    cj_gen_str(g, "base64", 6);
    cj_gen_str(g, b, strlen(b));
    free(b);
  }
  yajl_gen_map_close(g);
  /* Flushed line by line: the incident worth replaying may be the crash. */
  if (cj_gen_line(g, r->f) != 0 || fflush(r->f) != 0) record_failed(r);
}

int cli_recorder_close(cli_recorder *r) {
  if (r == NULL) return 0;
  if (fclose(r->f) != 0) record_failed(r);
  int rc = r->failed ? -1 : 0;
  yajl_gen_free(r->g);
  free(r->path);
  free(r);
  return rc;
}

/* ---- replay ----------------------------------------------------------- */

typedef struct replay {
  const char *path;
  FILE *scen;         /* --to-scenario, or NULL */
  yajl_gen g;
  int scen_line;      /* lines written to the scenario so far */
  int send_line;      /* the scenario line of the last send */
  unsigned long long sends, expects;
  unsigned long long fed; /* lines fed: the runtime's line number */
  uint64_t t;         /* the time recorded for the line being fed */
  long rec_line;      /* its line in the record file */
  long diverged_at;   /* first record line replayed at another time, or 0 */
  unsigned long long reloads; /* reloads of the run that were no input line */
  long reload_at;     /* the record line of the first, or 0 */
  uint64_t diverged_t, diverged_now;
  bool out_failed, scen_failed;
} replay;

static void scen_gen_line(replay *rp) {
  if (cj_gen_line(rp->g, rp->scen) != 0) rp->scen_failed = true;
  rp->scen_line++;
}

/*
 * An output line as an expect. Everything must match, except what cannot
 * be the same in another run: error messages and tracebacks (they quote
 * file paths, which depend on where the scenario runs from) and the
 * measurements in replies to ixr.* control events. An error's "line" is
 * the scenario's line number of the send that caused it.
 */
static void write_expect(replay *rp, const cj *v) {
  bool is_error = cj_is_str(cj_get(v, "type"), "error");
  bool is_reply = cj_is_str(cj_get(v, "type"), "reply");
  yajl_gen g = rp->g;
  yajl_gen_map_open(g);
  cj_gen_str(g, "expect", 6);
  yajl_gen_map_open(g);
  for (size_t i = 0; i < v->n; i++) {
    const char *k = v->k[i];
    if (is_error && (strcmp(k, "message") == 0 || strcmp(k, "traceback") == 0))
      continue;
    if (is_reply && strcmp(k, "type") != 0 && strcmp(k, "name") != 0 &&
        strcmp(k, "id") != 0 && strcmp(k, "ok") != 0)
      continue;
    cj_gen_str(g, k, v->klen[i]);
    unsigned long long n;
    if (is_error && strcmp(k, "line") == 0 && cj_uint(v->v[i], &n) && n == rp->fed)
      yajl_gen_integer(g, rp->send_line);
    else
      cj_gen(g, v->v[i]);
  }
  yajl_gen_map_close(g);
  yajl_gen_map_close(g);
  scen_gen_line(rp);
  rp->expects++;
}

static void replay_output(void *ud, const ixr_output *o) {
  replay *rp = ud;
  if (fwrite(o->json, 1, o->json_len, stdout) != o->json_len ||
      putchar('\n') == EOF)
    rp->out_failed = true;
  if (rp->scen == NULL) return;
  char err[200];
  cj *v = cj_parse(o->json, o->json_len, err, sizeof(err));
  if (v == NULL || v->type != CJ_OBJECT) {
    fprintf(stderr, "ixr replay: an output line is not a JSON object (%s)\n",
            v ? "not an object" : err);
    rp->scen_failed = true;
  } else {
    write_expect(rp, v);
  }
  cj_free(v);
}

static void replay_input(void *ud, const char *line, size_t len, uint64_t now_ms) {
  replay *rp = ud;
  (void)line;
  (void)len;
  if (now_ms != rp->t && rp->diverged_at == 0) {
    rp->diverged_at = rp->rec_line;
    rp->diverged_t = rp->t;
    rp->diverged_now = now_ms;
  }
}

/* Is this recorded input line fit to stand in a scenario as it is, as a bare
 * event line? (A JSON object with a name and no key a scenario reads, and
 * no blanks around it, which the scenario reader would trim.) */
static bool bare_event(const char *line, size_t len) {
  if (len < 2 || line[0] != '{' || line[len - 1] != '}') return false;
  char err[8];
  cj *v = cj_parse(line, len, err, sizeof(err));
  bool ok = v != NULL && v->type == CJ_OBJECT && cj_get(v, "name") != NULL;
  for (size_t i = 0; ok && i < v->n; i++)
    if (cli_scenario_key(v->k[i])) ok = false;
  cj_free(v);
  return ok;
}

static void write_send(replay *rp, const char *line, size_t len, size_t max_line) {
  /* The runtime skipped a byte order mark before the record's first line;
   * in the scenario that line is not the first the runtime sees. */
  if (rp->fed == 0 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
    line += 3;
    len -= 3;
  }
  if (len == 0) return; /* an empty line does nothing; none is needed */
  if (len > max_line) { /* a line the run skipped as too long */
    if (fputs("{\"send_too_long\":true}\n", rp->scen) == EOF) rp->scen_failed = true;
    rp->scen_line++;
  } else if (cj_is_text(line, len)) {
    if (bare_event(line, len)) {
      if (fwrite(line, 1, len, rp->scen) != len || putc('\n', rp->scen) == EOF)
        rp->scen_failed = true;
      rp->scen_line++;
    } else {
      yajl_gen_map_open(rp->g);
      cj_gen_str(rp->g, "send_raw", 8);
      cj_gen_str(rp->g, line, len);
      yajl_gen_map_close(rp->g);
      scen_gen_line(rp);
    }
  } else {
    char *b = cj_b64_encode((const unsigned char *)line, len);
    if (b == NULL) {
      rp->scen_failed = true;
      return;
    }
    yajl_gen_map_open(rp->g);
    cj_gen_str(rp->g, "send_base64", 11);
    cj_gen_str(rp->g, b, strlen(b));
    yajl_gen_map_close(rp->g);
    scen_gen_line(rp);
    free(b);
  }
  rp->send_line = rp->scen_line;
  rp->sends++;
}

/* Splits an absolute, normalized path into its next component. */
static const char *next_part(const char *p, size_t *len) {
  while (*p == '/') p++;
  *len = strcspn(p, "/");
  return p;
}

/*
 * The handlers directory as the scenario at `scen_path` should name it:
 * relative to the scenario's directory when both resolve, else as given.
 */
static char *handlers_for(const char *scen_path, const char *handlers) {
  char to[PATH_MAX], from[PATH_MAX];
  char *dir = strdup(scen_path);
  if (dir == NULL) return NULL;
  char *slash = strrchr(dir, '/');
  if (slash == dir) slash[1] = '\0';
  else if (slash != NULL) *slash = '\0';
  else strcpy(dir, ".");
  bool ok = realpath(handlers, to) != NULL && realpath(dir, from) != NULL;
  free(dir);
  if (!ok) return strdup(handlers);
  /* skip the common leading components */
  const char *a = from, *b = to;
  for (;;) {
    size_t la, lb;
    const char *pa = next_part(a, &la), *pb = next_part(b, &lb);
    if (la == 0 || la != lb || memcmp(pa, pb, la) != 0) break;
    a = pa + la;
    b = pb + lb;
  }
  size_t ups = 0, la;
  for (const char *p = next_part(a, &la); la > 0; p = next_part(p + la, &la)) ups++;
  b = next_part(b, &la);
  size_t need = ups * 3 + strlen(b) + 2;
  char *rel = malloc(need);
  if (rel == NULL) return NULL;
  rel[0] = '\0';
  for (size_t i = 0; i < ups; i++) strcat(rel, "../");
  strcat(rel, b);
  size_t n = strlen(rel);
  if (n == 0) strcpy(rel, ".");
  else if (rel[n - 1] == '/') rel[n - 1] = '\0';
  return rel;
}

static void replay_usage(FILE *f) {
  fputs("usage: ixr replay [--handlers DIR] [--to-scenario OUT] [--trace]\n"
        "                  [--log-level LEVEL] RECORD\n"
        "Feeds a record made by ixr run --record RECORD back through the\n"
        "strategies in DIR (default ./handlers), with the clock following the\n"
        "recorded times, as fast as it can. Output lines go to standard output;\n"
        "--to-scenario also writes them, with the inputs, as a scenario file.\n",
        f);
}

/* One record line: sets *t and the input bytes (malloc'd) in *line. */
/* A record line: its time, and the input line to feed (malloc'd, with room
 * for a newline). A line the run skipped as too long becomes one of
 * max_line + 1 bytes, which the replay skips the same way. */
static int parse_record(const char *text, size_t len, size_t max_line, uint64_t *t,
                        char **line, size_t *line_len, char *err, size_t errlen) {
  char why[300];
  cj *v = cj_parse(text, len, why, sizeof(why));
  int rc = -1;
  unsigned long long tv, skipped;
  const cj *l = cj_get(v, "line"), *b = cj_get(v, "base64"), *tl = cj_get(v, "too_long");
  const cj *rl = cj_get(v, "reloaded");
  unsigned long long gen;
  if (v != NULL && v->type == CJ_OBJECT && rl != NULL && l == NULL && b == NULL &&
      tl == NULL && cj_uint(cj_get(v, "t"), &tv) && cj_uint(rl, &gen)) {
    *t = tv; /* a reload mark: no line */
    cj_free(v);
    return 1;
  }
  if (v == NULL) {
    snprintf(err, errlen, "not a JSON line (%s)", why);
  } else if (v->type == CJ_OBJECT && cj_get(v, "t") == NULL && cj_get(v, "name") != NULL) {
    snprintf(err, errlen, "an event, not a record line: this looks like an events "
             "file (feed it with ixr run < FILE; ixr run --record makes records)");
  } else if (v->type != CJ_OBJECT || !cj_uint(cj_get(v, "t"), &tv)) {
    snprintf(err, errlen, "a record line needs \"t\": whole milliseconds");
  } else if ((l != NULL) + (b != NULL) + (tl != NULL) != 1 ||
             (tl == NULL && (l ? l : b)->type != CJ_STRING) ||
             (tl != NULL && !cj_uint(tl, &skipped))) {
    snprintf(err, errlen,
             "a record line needs one of \"line\" or \"base64\", a string, "
             "\"too_long\", a byte count, or \"reloaded\", a generation");
  } else if (tl != NULL) {
    if ((*line = malloc(max_line + 2)) != NULL) {
      memset(*line, 'x', max_line + 1);
      *line_len = max_line + 1;
      *t = tv;
      rc = 0;
    }
  } else if (l != NULL && memchr(l->s, '\n', l->len) != NULL) {
    snprintf(err, errlen, "\"line\" holds a newline: a record line is one "
             "input line");
  } else if (l != NULL) {
    if ((*line = malloc(l->len + 1)) != NULL) {
      memcpy(*line, l->s, l->len);
      *line_len = l->len;
      *t = tv;
      rc = 0;
    }
  } else if ((*line = malloc(b->len / 4 * 3 + 1)) != NULL) {
    long n = cj_b64_decode(b->s, b->len, (unsigned char *)*line);
    if (n < 0 || memchr(*line, '\n', (size_t)n) != NULL) {
      free(*line);
      snprintf(err, errlen, n < 0 ? "\"base64\" is not base64 text"
                                  : "\"base64\" holds a newline: a record line "
                                    "is one input line");
    } else {
      *line_len = (size_t)n;
      *t = tv;
      rc = 0;
    }
  }
  if (rc != 0 && err[0] == '\0') snprintf(err, errlen, "out of memory");
  cj_free(v);
  return rc;
}

/* The header line of a record: 1 (and *follow_t, *max_line set; *max_line
 * stays 0 in records made before the header had it), 0 when the line is
 * not a header (records may lack one), -1 with a message in err. */
static int read_header(const char *text, size_t len, bool *follow_t,
                       size_t *max_line, int64_t *start_ms, char *err, size_t errlen) {
  char why[300];
  cj *h = cj_parse(text, len, why, sizeof(why));
  int rc = h != NULL && cj_get(h, "record") != NULL ? 1 : 0;
  if (rc == 1) {
    const cj *clock = cj_get(h, "clock"), *ml = cj_get(h, "max_line"),
             *st = cj_get(h, "start_time_ms");
    unsigned long long n = 0;
    if (cj_is_str(clock, "manual")) {
      *follow_t = false;
    } else if (!cj_is_str(clock, "real")) {
      snprintf(err, errlen, "the header's \"clock\" must be \"real\" or \"manual\"");
      rc = -1;
    }
    if (rc == 1 && ml != NULL &&
        (!cj_uint(ml, &n) || n < CLI_MAX_LINE_MIN || n > CLI_MAX_LINE_MAX)) {
      snprintf(err, errlen, "the header's \"max_line\" must be %llu to %llu bytes",
               CLI_MAX_LINE_MIN, CLI_MAX_LINE_MAX);
      rc = -1;
    }
    *max_line = (size_t)n;
    if (rc == 1 && st != NULL && (st->type != CJ_NUMBER || !cli_time_value(st, start_ms))) {
      snprintf(err, errlen, "the header's \"start_time_ms\" must be whole milliseconds "
               "since 1970, at most %lld either way", (long long)IXR_START_TIME_MAX);
      rc = -1;
    }
  }
  cj_free(h);
  return rc;
}

/* The length of a line read by getline without its line end. */
static size_t without_eol(const char *buf, ssize_t n) {
  size_t len = (size_t)n;
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
  return len;
}

int cli_replay(int argc, char **argv) {
  const char *handlers = "handlers", *to_scenario = NULL, *path = NULL;
  bool trace = false;
  ixr_log_level level = IXR_LOG_WARN;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      replay_usage(stdout);
      return 0;
    }
    bool ok = true;
    if (strcmp(a, "--handlers") == 0 && v) handlers = argv[++i];
    else if (strcmp(a, "--to-scenario") == 0 && v) to_scenario = argv[++i];
    else if (strcmp(a, "--log-level") == 0 && v) ok = cli_parse_level(argv[++i], &level) == 0;
    else if (strcmp(a, "--trace") == 0) trace = true;
    else if ((a[0] != '-' || a[1] == '\0') && path == NULL) path = a;
    else ok = false;
    if (!ok) {
      fprintf(stderr, "ixr replay: bad, repeated or incomplete argument '%s'\n\n",
              argv[i]);
      replay_usage(stderr);
      return 2;
    }
  }
  if (path == NULL) {
    replay_usage(stderr);
    return 2;
  }
  struct stat sb;
  if (stat(handlers, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "ixr replay: the handlers directory %s does not exist\n",
            handlers);
    return 1;
  }
  FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (in == NULL) {
    fprintf(stderr, "ixr replay: %s: %s\n", path, strerror(errno));
    return 1;
  }
  replay rp;
  memset(&rp, 0, sizeof(rp));
  rp.path = path;
  int status = 1;
  ixr_runtime *rt = NULL;
  char *scen_tmp = NULL;
  char *buf = NULL, *line = NULL;
  size_t cap = 0;
  rp.g = cj_gen_new();
  if (rp.g == NULL) goto done;
  if (to_scenario != NULL) {
    /* Not over the record being read; and written aside, then renamed, so
     * that a failed replay leaves no half scenario in its place. */
    struct stat rs, ss;
    if (fstat(fileno(in), &rs) == 0 && stat(to_scenario, &ss) == 0 &&
        rs.st_dev == ss.st_dev && rs.st_ino == ss.st_ino) {
      fprintf(stderr, "ixr replay: --to-scenario %s is the record itself\n",
              to_scenario);
      goto done;
    }
    /* A new file of its own beside OUT (never the record, never another
     * file that happens to have the name). */
    size_t tl = strlen(to_scenario) + 8;
    if ((scen_tmp = malloc(tl)) == NULL) goto done;
    snprintf(scen_tmp, tl, "%s.XXXXXX", to_scenario);
    int fd = mkstemp(scen_tmp);
    if (fd >= 0) { /* mkstemp makes it 0600: a scenario is an ordinary file */
      mode_t mask = umask(0);
      umask(mask);
      (void)fchmod(fd, 0666 & ~mask);
    }
    if (fd < 0 || (rp.scen = fdopen(fd, "w")) == NULL) {
      fprintf(stderr, "ixr replay: --to-scenario %s: %s\n", to_scenario,
              strerror(errno));
      if (fd >= 0) {
        close(fd);
        unlink(scen_tmp);
      }
      free(scen_tmp);
      scen_tmp = NULL;
      goto done;
    }
  }
  /* The header, if any, is the first line with text. It is read before the
   * runtime is made: it says the line limit of the recorded run. Any other
   * first line is the first record line, fed below. */
  bool follow_t = true, first_pending = false;
  size_t max_line = 0, len = 0;
  int64_t start_ms = 0;
  ssize_t n;
  while ((n = getline(&buf, &cap, in)) >= 0) {
    rp.rec_line++;
    if ((len = without_eol(buf, n)) == 0) continue;
    char err[400] = "";
    int header = read_header(buf, len, &follow_t, &max_line, &start_ms, err, sizeof(err));
    if (header < 0) {
      fprintf(stderr, "ixr replay: %s:%ld: %s\n", path, rp.rec_line, err);
      goto done;
    }
    first_pending = header == 0;
    break;
  }
  ixr_options o;
  ixr_options_init(&o);
  size_t default_max_line = o.max_line;
  if (max_line != 0) o.max_line = max_line;
  o.handlers_dir = handlers;
  o.clock = IXR_CLOCK_MANUAL;
  o.start_time_ms = start_ms; /* os.time() and os.date() as in the run */
  o.on_output = replay_output;
  o.output_ud = &rp;
  o.on_input = replay_input;
  o.input_ud = &rp;
  o.on_log = cli_log_print;
  o.log_level = level;
  if (trace) o.on_trace = cli_trace_print;
  int rc = ixr_new(&rt, &o);
  if (rc != 0) {
    fprintf(stderr, "ixr replay: cannot start: %s\n", ixr_strerror(rc));
    goto done;
  }
  if (rp.scen != NULL) {
    char *h = handlers_for(to_scenario, handlers);
    if (h == NULL) goto done;
    fprintf(rp.scen, "# Replayed from %s by ixr replay --to-scenario.\n", path);
    rp.scen_line++;
    yajl_gen_map_open(rp.g);
    cj_gen_str(rp.g, "handlers", 8);
    cj_gen_str(rp.g, h, strlen(h));
    yajl_gen_map_close(rp.g);
    scen_gen_line(&rp);
    free(h);
    if (o.max_line != default_max_line) { /* the recorded run's line limit */
      fprintf(rp.scen, "{\"max_line\":%zu}\n", o.max_line);
      rp.scen_line++;
    }
    if (start_ms != 0) { /* the recorded run's wall clock at its start */
      char when[48];
      cli_format_time(start_ms, when, sizeof(when));
      fprintf(rp.scen, "{\"start_time\":%s}\n", when);
      rp.scen_line++;
    }
  }
  /* The clock: a record of a real-clock run is replayed by advancing the
   * manual clock to each line's time; in a record of a manual-clock run the
   * recorded clock.advance events move it, exactly as they did. */
  uint64_t now = 0;
  status = 0;
  while (first_pending || (n = getline(&buf, &cap, in)) >= 0) {
    if (first_pending) {
      first_pending = false; /* buf holds it, len is its length */
    } else {
      rp.rec_line++;
      if ((len = without_eol(buf, n)) == 0) continue;
    }
    char err[400] = "";
    uint64_t t = 0;
    size_t line_len = 0;
    int pr = parse_record(buf, len, o.max_line, &t, &line, &line_len, err, sizeof(err));
    if (pr < 0) {
      fprintf(stderr, "ixr replay: %s:%ld: %s\n", path, rp.rec_line, err);
      status = 1;
      break;
    }
    if (pr == 1) { /* the run reloaded here, by no input line */
      if (rp.reloads++ == 0) rp.reload_at = rp.rec_line;
      if (rp.scen != NULL) {
        fputs("# The recorded run reloaded its strategies here (SIGHUP, --watch or "
              "the control socket): this scenario runs on one set of files.\n",
              rp.scen);
        rp.scen_line++;
      }
      continue;
    }
    /* The run fired the timers due by a line's arrival before the line,
     * even those armed by the line before it in the same millisecond
     * (session:after(0)): so does the replay, advancing by 0 then. */
    if (follow_t && (t > now || (t == now && rp.fed > 0))) {
      if (rp.scen != NULL) {
        fprintf(rp.scen, "{\"advance\":%llu}\n", (unsigned long long)(t - now));
        rp.scen_line++;
      }
      rc = ixr_advance(rt, t - now);
      now = t;
    }
    if (rp.scen != NULL) write_send(&rp, line, line_len, o.max_line);
    rp.t = t;
    rp.fed++;
    line[line_len] = '\n';
    if (rc == 0) rc = ixr_feed(rt, line, line_len + 1);
    free(line);
    line = NULL;
    if (rc != 0) {
      fprintf(stderr, "ixr replay: %s:%ld: %s\n", path, rp.rec_line,
              ixr_strerror(rc));
      status = 1;
      break;
    }
  }
  if (ferror(in)) {
    fprintf(stderr, "ixr replay: %s: read error\n", path);
    status = 1;
  }
  if (rp.reloads > 0)
    fprintf(stderr,
            "ixr replay: warning: the recorded run reloaded its strategies %llu "
            "time%s by SIGHUP, --watch or the control socket, first at %s:%ld: "
            "this replay runs every line on the files of --handlers as they are "
            "now, so its output may differ from the run's from there on\n",
            rp.reloads, rp.reloads == 1 ? "" : "s", path, rp.reload_at);
  if (rp.diverged_at != 0)
    fprintf(stderr,
            "ixr replay: warning: %s:%ld was recorded at %llu ms but replayed "
            "at %llu ms: the output may differ from the recorded run's from "
            "there on\n",
            path, rp.diverged_at, (unsigned long long)rp.diverged_t,
            (unsigned long long)rp.diverged_now);
done:
  if (rt != NULL) ixr_close(rt);
  if (fflush(stdout) != 0 || rp.out_failed) {
    fprintf(stderr, "ixr replay: cannot write the output: %s\n", strerror(errno));
    status = 1;
  }
  if (rp.scen != NULL) {
    if (fclose(rp.scen) != 0 || rp.scen_failed) {
      fprintf(stderr, "ixr replay: --to-scenario %s: write error\n", to_scenario);
      status = 1;
    } else if (status == 0 && rename(scen_tmp, to_scenario) != 0) {
      fprintf(stderr, "ixr replay: --to-scenario %s: %s\n", to_scenario,
              strerror(errno));
      status = 1;
    } else if (status == 0) {
      fprintf(stderr, "ixr replay: wrote %s: %llu sends, %llu expects\n",
              to_scenario, rp.sends, rp.expects);
    }
    if (status != 0) unlink(scen_tmp);
  }
  free(scen_tmp);
  if (rp.g != NULL) yajl_gen_free(rp.g);
  free(buf);
  if (in != stdin) fclose(in);
  return status;
}
