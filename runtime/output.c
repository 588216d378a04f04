/*
 * output.c: output lines, where they go, and the log.
 *
 * Every output line is built here, with the JSON writer of codec.c, and
 * handed to a sink: the API's output callback, or a stream (stdio, a unix or
 * tcp connection). A session's lines go to the sink that last sent an event
 * for its interaction; when that one has closed, to the newest open sink;
 * with none open they are held, up to a bound, and written to the next one
 * once it settles (sends, or stays open a moment: ixr__sink.settled).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* ---- sinks ------------------------------------------------------------ */

int ixr__sink_open(ixr_runtime *rt, ixr__sink *sk) {
  uint32_t slot = UINT32_MAX;
  for (uint32_t i = 0; i < rt->nsinks; i++) {
    uint32_t j = (rt->free_slot_hint + i) % rt->nsinks;
    if (rt->sinks[j] == NULL) {
      slot = j;
      break;
    }
  }
  if (slot == UINT32_MAX) {
    uint32_t n = rt->nsinks ? rt->nsinks * 2 : 8;
    ixr__sink **s = realloc(rt->sinks, n * sizeof(*s));
    if (s == NULL) return IXR_ENOMEM;
    rt->sinks = s;
    uint32_t *g = realloc(rt->sink_gen, n * sizeof(*g));
    if (g == NULL) return IXR_ENOMEM;
    rt->sink_gen = g;
    for (uint32_t i = rt->nsinks; i < n; i++) {
      rt->sinks[i] = NULL;
      rt->sink_gen[i] = 0;
    }
    slot = rt->nsinks;
    rt->nsinks = n;
  }
  rt->free_slot_hint = slot + 1;
  rt->sinks[slot] = sk;
  sk->slot = slot;
  sk->gen = ++rt->sink_gen[slot];
  sk->open = true;
  sk->next = NULL;
  sk->prev = rt->sinks_tail;
  if (rt->sinks_tail) rt->sinks_tail->next = sk;
  else rt->sinks_head = sk;
  rt->sinks_tail = sk;
  if (!sk->control_only && sk->settled) ixr__held_flush(rt, sk);
  return 0;
}

void ixr__sink_settle(ixr_runtime *rt, ixr__sink *sk) {
  if (sk->settled || !sk->open || sk->control_only) return;
  sk->settled = true;
  ixr__held_flush(rt, sk);
}

void ixr__sink_close(ixr_runtime *rt, ixr__sink *sk) {
  if (!sk->open) return;
  sk->open = false;
  rt->sinks[sk->slot] = NULL;
  rt->free_slot_hint = sk->slot;
  if (sk->prev) sk->prev->next = sk->next;
  else rt->sinks_head = sk->next;
  if (sk->next) sk->next->prev = sk->prev;
  else rt->sinks_tail = sk->prev;
  sk->prev = sk->next = NULL;
}

ixr__sinkref ixr__sink_ref(const ixr__sink *sk) {
  ixr__sinkref r = {sk->slot, sk->gen};
  return r;
}

static ixr__sink *resolve(ixr_runtime *rt, ixr__sinkref r) {
  if (r.gen != 0 && r.slot < rt->nsinks && rt->sinks[r.slot] != NULL &&
      rt->sink_gen[r.slot] == r.gen)
    return rt->sinks[r.slot];
  /* the newest open sink that takes session output (CONTRACT: "to the
   * newest open stream"), or NULL */
  ixr__sink *sk = rt->sinks_tail;
  while (sk != NULL && sk->control_only) sk = sk->prev;
  return sk;
}

ixr__sink *ixr__sink_resolve(ixr_runtime *rt, ixr__sinkref r) { return resolve(rt, r); }

static void hold(ixr_runtime *rt, const ixr_output *out) {
  if (rt->held_count >= rt->opt.max_held) {
    if (rt->stats.held_dropped++ == 0)
      ixr__log(rt, IXR_LOG_WARN,
               "no stream is open and %zu output lines are held already: "
               "dropping output (counted in held_dropped)",
               rt->held_count);
    return;
  }
  ixr__held *h = malloc(sizeof(*h) + out->json_len + 1);
  if (h == NULL) {
    rt->stats.held_dropped++;
    return;
  }
  h->next = NULL;
  h->len = out->json_len;
  memcpy(h->line, out->json, out->json_len);
  h->line[out->json_len] = '\0'; /* a C string, as every output line */
  if (rt->held_tail) rt->held_tail->next = h;
  else rt->held_head = h;
  rt->held_tail = h;
  rt->held_count++;
}

void ixr__held_flush(ixr_runtime *rt, ixr__sink *to) {
  while (rt->held_head != NULL && to->open) {
    ixr__held *h = rt->held_head;
    rt->held_head = h->next;
    if (rt->held_head == NULL) rt->held_tail = NULL;
    rt->held_count--;
    ixr_output out;
    memset(&out, 0, sizeof(out));
    out.json = h->line;
    out.json_len = h->len;
    to->write(to, &out);
    free(h);
  }
}

void ixr__emit(ixr_runtime *rt, ixr__sinkref to, ixr_output *out) {
  if (rt->close_requested) return; /* the host closed us in a callback */
  rt->stats.lines_out++;
  if (rt->opt.on_trace != NULL)
    ixr__trace(rt, "  out %.*s", (int)(out->json_len > 300 ? 300 : out->json_len),
               out->json);
  /* Held lines wait for a new connection to settle (a probe must not take
   * them); what comes for it meanwhile waits behind them, in order. With
   * the held lines at their bound, such a line is dropped and counted, as
   * any beyond the bound. */
  ixr__sink *sk = resolve(rt, to);
  if (sk == NULL || (!sk->settled && rt->held_head != NULL)) {
    hold(rt, out);
    return;
  }
  rt->in_output++;
  sk->write(sk, out);
  rt->in_output--;
}

/* ---- building lines --------------------------------------------------- */

size_t ixr__fmt_id(char *buf, char prefix, uint64_t n) {
  char tmp[20];
  size_t k = 0;
  do {
    tmp[k++] = (char)('0' + n % 10);
    n /= 10;
  } while (n != 0);
  buf[0] = prefix;
  for (size_t i = 0; i < k; i++) buf[1 + i] = tmp[k - 1 - i];
  buf[k + 1] = '\0';
  return k + 1;
}

static void session_id(char *buf, size_t n, const ixr__session *s) {
  (void)n;
  ixr__fmt_id(buf, 's', s->id);
}

void ixr__emit_session(ixr_runtime *rt, ixr__session *s, const char *state,
                       const char *reason) {
  char sid[24];
  session_id(sid, sizeof(sid), s);
  ixr__jw *w = rt->jw;
  ixr__jw_begin(w);
  ixr__jw_str(w, "type", "session", 7);
  ixr__jw_str(w, "state", state, strlen(state));
  ixr__jw_str(w, "session", sid, strlen(sid));
  ixr__jw_str(w, "interactionid", s->iid, s->node.len);
  if (strcmp(state, "started") == 0)
    ixr__jw_str(w, "strategy", s->strategy->name, strlen(s->strategy->name));
  if (reason != NULL) ixr__jw_str(w, "reason", reason, strlen(reason));
  ixr_output out;
  memset(&out, 0, sizeof(out));
  ixr__jw_end(w, &out.json, &out.json_len);
  out.type = IXR_OUT_SESSION;
  out.session = sid;
  out.interactionid = s->iid;
  out.interactionid_len = s->node.len;
  out.state = state;
  out.reason = reason;
  out.strategy = s->strategy->name;
  ixr__emit(rt, s->sink, &out);
}

void ixr__emit_error(ixr_runtime *rt, ixr__sink *from, ixr__session *s,
                     const char *code, const char *message, uint64_t lineno,
                     int id_idx, const char *traceback) {
  rt->stats.errors++;
  char sid[24];
  ixr__jw *w = rt->jw;
  ixr__jw_begin(w);
  ixr__jw_str(w, "type", "error", 5);
  ixr__jw_str(w, "error", code, strlen(code));
  /* A message may quote invalid input: ixr__jw_str keeps the line valid
   * JSON even then ('?' for bytes that are not ASCII). */
  ixr__jw_str(w, "message", message, strlen(message));
  if (lineno > 0) ixr__jw_int(w, "line", (int64_t)lineno);
  if (id_idx != 0) {
    char err[64];
    ixr__jw_lua(w, "id", rt->L, id_idx, err, sizeof(err));
  }
  if (s != NULL) {
    session_id(sid, sizeof(sid), s);
    ixr__jw_str(w, "session", sid, strlen(sid));
    ixr__jw_str(w, "interactionid", s->iid, s->node.len);
  }
  if (traceback != NULL) ixr__jw_str(w, "traceback", traceback, strlen(traceback));
  ixr_output out;
  memset(&out, 0, sizeof(out));
  ixr__jw_end(w, &out.json, &out.json_len);
  out.type = IXR_OUT_ERROR;
  out.error = code;
  out.message = message;
  if (s != NULL) {
    out.session = sid;
    out.interactionid = s->iid;
    out.interactionid_len = s->node.len;
  }
  ixr__sinkref to = {0, 0};
  if (from != NULL && from->open) to = ixr__sink_ref(from);
  else if (s != NULL) to = s->sink;
  ixr__emit(rt, to, &out);
}

void ixr__emit_strategy_error(ixr_runtime *rt, ixr__session *s, const char *code,
                              const char *message, const char *traceback) {
  lua_State *L = rt->L;
  int id_idx = 0;
  if (rt->line_has_id) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->line_id_ref);
    id_idx = lua_gettop(L);
  }
  ixr__emit_error(rt, NULL, s, code, message, rt->line_no, id_idx, traceback);
  if (id_idx != 0) lua_pop(L, 1);
}

/* ---- tracing ---------------------------------------------------------- */

void ixr__trace(ixr_runtime *rt, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  rt->opt.on_trace(rt->opt.trace_ud, msg);
}

const char *ixr__where(lua_State *L, int idx, char *buf, size_t n) {
  lua_Debug ar;
  lua_pushvalue(L, idx);
  if (lua_getinfo(L, ">S", &ar) && ar.source[0] == '@')
    snprintf(buf, n, "%s:%d", ar.source + 1, ar.linedefined);
  else
    snprintf(buf, n, "%s", lua_isfunction(L, idx) ? "(C or string chunk)" : "?");
  return buf;
}

/* ---- the log ---------------------------------------------------------- */

static const char *level_name[] = {"error", "warn", "info", "debug", "trace"};

static void log_one(ixr_runtime *rt, ixr_log_level level, const char *msg) {
  if (rt->opt.on_log != NULL) {
    rt->opt.on_log(rt->opt.log_ud, level, msg);
    return;
  }
  char line[2100];
  int n = snprintf(line, sizeof(line), "ixr: %s: %s\n", level_name[level], msg);
  if (n > (int)sizeof(line) - 1) n = (int)sizeof(line) - 1;
  ixr__write_log_line(STDERR_FILENO, line, (size_t)n);
}

/*
 * A log record is one line (ixr.h: on_log's msg has no newline, and hosts
 * write each as one syslog or JSON record): newlines in a message (a Lua
 * error that spans lines, a print of several) become " | ", so that the
 * record keeps its context (the session's ids come first). One too long
 * for the buffer is cut at a character boundary.
 */
void ixr__log(ixr_runtime *rt, ixr_log_level level, const char *fmt, ...) {
  if (level > rt->opt.log_level) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  size_t len = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
  if (memchr(msg, '\n', len) == NULL && memchr(msg, '\r', len) == NULL) {
    msg[ixr__utf8_cut(msg, len)] = '\0';
    log_one(rt, level, msg);
    return;
  }
  while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r')) len--;
  char one[2048];
  size_t o = 0;
  for (size_t i = 0; i < len && o < sizeof(one) - 4; i++) {
    if (msg[i] == '\r' || msg[i] == '\n') {
      if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n') i++;
      memcpy(one + o, " | ", 3);
      o += 3;
    } else {
      one[o++] = msg[i];
    }
  }
  one[ixr__utf8_cut(one, o)] = '\0';
  log_one(rt, level, one);
}

void ixr__log_lines(ixr_runtime *rt, ixr_log_level level, const char *prefix,
                    const char *text, size_t len) {
  const char *end = text + len;
  for (const char *p = text; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) nl = end;
    if (nl > p) ixr__log(rt, level, "%s%.*s", prefix, (int)(nl - p), p);
    p = nl + 1;
  }
}

/* Standard error may share its open file description with a standard
 * output that libuv made non-blocking (2>&1 into a pipe): a full pipe then
 * refuses a write with EAGAIN, and stdio would drop the line. So: write
 * all of it, waiting for room as a blocking descriptor would. */
void ixr__write_log_line(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      if (poll(&pfd, 1, -1) < 0 && errno != EINTR) return;
    } else {
      return; /* closed, or worse: a log line is not worth more */
    }
  }
}
