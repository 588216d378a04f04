/*
 * runtime.c: the runtime object and the public API around it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dlfcn.h>

#include "internal.h"

#ifndef IXR_INSTALL_LUA_DIR
#define IXR_INSTALL_LUA_DIR "/usr/local/share/ixr/lua"
#endif
#ifndef IXR_SOURCE_LUA_DIR
#define IXR_SOURCE_LUA_DIR ""
#endif
#ifndef IXR_LIB_TO_LUA
#define IXR_LIB_TO_LUA "../share/ixr/lua"
#endif
#ifndef IXR_BIN_TO_LUA
#define IXR_BIN_TO_LUA "../share/ixr/lua"
#endif

void ixr_options_init(ixr_options *o) {
  if (o == NULL) return;
  memset(o, 0, sizeof(*o));
  o->handlers_dir = "handlers";
  o->clock = IXR_CLOCK_REAL;
  o->log_level = IXR_LOG_INFO;
  o->max_line = 1024 * 1024;
  o->max_held = 100000;
  o->max_connections = 1024;
  o->max_instructions = 10000000;
  o->max_memory = (size_t)4 << 30;
}

static bool is_dir(const char *p) {
  struct stat sb;
  return p != NULL && p[0] != '\0' && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The installed standard library next to the file that holds this code:
 * libixr.so in LIBDIR, or a program linked with libixr.a in BINDIR. */
static bool lua_dir_near_binary(char *buf, size_t n) {
  Dl_info info;
  if (dladdr((void *)&ixr_new, &info) == 0 || info.dli_fname == NULL)
    return false;
  const char *slash = strrchr(info.dli_fname, '/');
  if (slash == NULL) return false;
  int dl = (int)(slash - info.dli_fname);
  static const char *const rel[] = {IXR_LIB_TO_LUA, IXR_BIN_TO_LUA};
  for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
    char probe[4200];
    int len = snprintf(probe, sizeof(probe), "%.*s/%s/ixr", dl, info.dli_fname, rel[i]);
    if (len < 0 || (size_t)len >= sizeof(probe) || (size_t)len - 4 >= n) continue;
    if (!is_dir(probe)) continue;
    memcpy(buf, probe, (size_t)len - 4);
    buf[len - 4] = '\0';
    return true;
  }
  return false;
}

/* The standard library: the option, $IXR_LUA_DIR, the copy installed next
 * to the library, the copy at the configured install prefix, or the source
 * tree's (for programs run from a build directory). */
static const char *find_lua_dir(const ixr_options *o, char *buf, size_t n) {
  if (o->lua_dir != NULL) return o->lua_dir;
  const char *env = getenv("IXR_LUA_DIR");
  if (env != NULL && env[0] != '\0') return env;
  if (lua_dir_near_binary(buf, n)) return buf;
  if (is_dir(IXR_INSTALL_LUA_DIR "/ixr")) return IXR_INSTALL_LUA_DIR;
  if (is_dir(IXR_SOURCE_LUA_DIR)) return IXR_SOURCE_LUA_DIR;
  return IXR_INSTALL_LUA_DIR;
}

/* Loads the first generation. A broken strategy file is logged and kept as
 * an error record; a broken standard library stops the start. */
static int load_first_generation(ixr_runtime *rt) {
  ixr__generation g;
  rt->loaded_fp = ixr__files_fingerprint(rt); /* for ixr_watch, later */
  rt->loaded_fp_valid = true;
  int rc = ixr__generation_build(rt, &g);
  if (g.errors.len > 0)
    ixr__log_lines(rt, rc < 0 || g.sets_ref == LUA_NOREF ? IXR_LOG_ERROR : IXR_LOG_WARN,
                   "loading strategies: ", g.errors.data, g.errors.len);
  if (g.sets_ref == LUA_NOREF) {
    ixr__generation_discard(rt, &g);
    /* The standard library could not load within max_memory: no strategy
     * is at fault. */
    return rt->last_kill == IXR__KILL_MEMORY ? IXR_ENOMEM : IXR_ESTRATEGY;
  }
  ixr__generation_install(rt, &g);
  return 0;
}

/* ---- the API sink: output to the host's callback ---------------------- */

static void api_write(ixr__sink *sk, const ixr_output *out) {
  ixr_runtime *rt = (ixr_runtime *)((char *)sk - offsetof(ixr_runtime, api));
  if (rt->opt.on_output != NULL) rt->opt.on_output(rt->opt.output_ud, out);
}

static void destroy(ixr_runtime *rt);

int ixr_new(ixr_runtime **out, const ixr_options *o) {
  if (out == NULL) return IXR_EINVAL;
  *out = NULL;
  ixr_options defaults;
  if (o == NULL) {
    ixr_options_init(&defaults);
    o = &defaults;
  }
  if (o->max_line == 0 || o->handlers_dir == NULL ||
      (o->clock != IXR_CLOCK_REAL && o->clock != IXR_CLOCK_MANUAL) ||
      o->log_level < IXR_LOG_ERROR || o->log_level > IXR_LOG_TRACE ||
      o->start_time_ms < -IXR_START_TIME_MAX || o->start_time_ms > IXR_START_TIME_MAX)
    return IXR_EINVAL;
  /* A peer that goes away while we write to it must be an EPIPE to handle,
   * not a signal that kills the host. Only the default disposition is
   * changed: a host that handles SIGPIPE itself keeps its handler. */
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
  ixr_runtime *rt = calloc(1, sizeof(*rt));
  if (rt == NULL) return IXR_ENOMEM;
  rt->opt = *o;
  if (rt->opt.max_held == 0) rt->opt.max_held = 100000;
  if (rt->opt.max_connections == 0) rt->opt.max_connections = 1024;
  /* Beyond any real line; SIZE_MAX, meant as "no limit", would overflow
   * the framer's arithmetic. */
  if (rt->opt.max_line > SIZE_MAX / 4) rt->opt.max_line = SIZE_MAX / 4;
  ixr__framer_init(&rt->api.framer, rt->opt.max_line);
  ixr__framer_init(&rt->api.queued_framer, rt->opt.max_line);
  rt->handlers_dir = strdup(o->handlers_dir);
  char near[4096];
  rt->lua_dir = strdup(find_lua_dir(o, near, sizeof(near)));
  rt->sets_ref = LUA_NOREF;
  int rc = IXR_ENOMEM;
  if (rt->handlers_dir == NULL || rt->lua_dir == NULL) goto fail;
  rt->opt.handlers_dir = rt->handlers_dir;
  rt->opt.lua_dir = rt->lua_dir;
  if (o->loop != NULL) {
    rt->loop = o->loop;
  } else {
    if (uv_loop_init(&rt->own_loop) != 0) {
      rc = IXR_EIO;
      goto fail;
    }
    rt->loop = &rt->own_loop;
    rt->owns_loop = true;
  }
  rt->jw = ixr__jw_new();
  if (rt->jw == NULL) goto fail;
  if ((rc = ixr__dispatch_init(rt)) != 0) goto fail;
  if ((rc = ixr__timers_init(rt)) != 0) goto fail;
  if ((rc = ixr__streams_init(rt)) != 0) goto fail;
  if ((rc = ixr__lua_open(rt)) != 0) goto fail;
  if (o->on_setup != NULL) {
    rt->in_setup = true;
    o->on_setup(rt, o->setup_ud);
    rt->in_setup = false;
    if (rt->close_requested) {
      rc = IXR_ECLOSED;
      goto fail;
    }
  }
  if ((rc = load_first_generation(rt)) != 0) goto fail;
  if (rt->close_requested) { /* by a host function a strategy file called */
    rc = IXR_ECLOSED;
    goto fail;
  }
  rt->api.sink.write = api_write;
  /* Without an output callback the API is no place for output: lines go
   * to the streams, or are held until one connects. */
  rt->api.sink.settled = true;
  if (o->on_output != NULL && (rc = ixr__sink_open(rt, &rt->api.sink)) != 0)
    goto fail;
  *out = rt;
  return 0;
fail:
  destroy(rt);
  return rc;
}

/* ---- processing input ------------------------------------------------- */

int ixr__decode_and_dispatch(ixr_runtime *rt, ixr__sink *from,
                             const char *line, size_t len, uint64_t lineno) {
  ixr__timers_catch_up(rt); /* timers due before this line fire first */
  if (rt->closing) return 0;
  /* Recorded before the blank-line check, so that a replay numbers lines
   * as the original run did. Not a control connection's: its lines are no
   * events, and its replies went to it, not into the event stream. */
  if (rt->opt.on_input != NULL && !(from != NULL && from->control_only))
    rt->opt.on_input(rt->opt.input_ud, line, len, ixr__now(rt));
  /* A byte order mark before a stream's first line: a file saved by an
   * editor that writes one. */
  if (lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
    line += 3;
    len -= 3;
  }
  /* Blank lines are allowed between events. */
  size_t i = 0;
  while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
  if (i == len) return 0;
  char err[256];
  bool id = false;
  if (ixr__decode(rt, line, len, err, sizeof(err), &id) != 0) {
    rt->stats.events_in++;
    ixr__emit_error(rt, from, NULL, "bad_json", err, lineno, id ? lua_gettop(rt->L) : 0,
                    NULL);
    if (id) lua_pop(rt->L, 1);
    return 0;
  }
  ixr__dispatch(rt, from, lineno);
  ixr__gc_after_work(rt);
  return 0;
}

void ixr__skip_line(ixr_runtime *rt, ixr__sink *from, size_t len,
                    uint64_t lineno, size_t max_line) {
  /* As for any line: the timers due before it first, and recorded, so that
   * a replay meets the same error at the same line number. */
  ixr__timers_catch_up(rt);
  if (rt->closing) return;
  if (rt->opt.on_input != NULL && !(from != NULL && from->control_only))
    rt->opt.on_input(rt->opt.input_ud, NULL, len, ixr__now(rt));
  char msg[128];
  snprintf(msg, sizeof(msg), "line longer than %zu bytes: skipped", max_line);
  ixr__emit_error(rt, from, NULL, "line_too_long", msg, lineno, 0, NULL);
}

static void api_line(void *ud, const char *line, size_t len, uint64_t lineno,
                     ixr__line_status status) {
  ixr_runtime *rt = ud;
  (void)lineno; /* each framer counts its own lines; the API numbers the
                   lines of both in the order they are processed */
  if (rt->closing) return; /* closed by a callback of an earlier line */
  uint64_t n = ++rt->api.lines;
  if (status == IXR__LINE_TOO_LONG) {
    ixr__skip_line(rt, &rt->api.sink, len, n, rt->opt.max_line);
  } else {
    ixr__decode_and_dispatch(rt, &rt->api.sink, line, len, n);
  }
  /* What the output callback fed, before the host's next line (an error
   * line, unlike an event, ends outside dispatch). */
  ixr__run_queued_if_any(rt);
}

/* ---- input fed from inside the runtime -------------------------------- */

/*
 * A host may feed from its output callback or from a C function a strategy
 * calls: an event is in progress then. Such input is copied into a queue
 * and run, in order, as soon as that event is done (ixr__run_queued, called
 * where an event or a timer finishes), before anything else the host fed.
 * Bytes go through a framer of their own, so they never mix with a partial
 * line of the host's current ixr_feed; events are checked now (the caller
 * gets IXR_EINVAL) and copied, so no Lua memory is touched while a
 * strategy's call, and its limits, are in force.
 */
static bool must_queue(const ixr_runtime *rt) {
  return rt->depth > 0 || rt->draining || rt->queue_running ||
         rt->call_thread != NULL || rt->in_output > 0;
}

static size_t field_strlen(const ixr_field *f) {
  return f->len ? f->len : strlen(f->str);
}

/* Walks every field of a checked event, IXR_V_END included, calling
 * `visit` for each with whether its key counts (a member of an object, not
 * an array's member or an end). */
static void each_field(const ixr_field *f, size_t n,
                       void (*visit)(const ixr_field *, bool keyed, void *),
                       void *ud) {
  bool in_array[66];
  int depth = 0;
  in_array[0] = false;
  for (size_t i = 0; i < n; i++) {
    bool end = f[i].type == IXR_V_END;
    visit(&f[i], !end && !in_array[depth], ud);
    if (end) depth--;
    else if (f[i].type == IXR_V_OBJECT || f[i].type == IXR_V_ARRAY)
      in_array[++depth] = f[i].type == IXR_V_ARRAY;
  }
}

static void count_bytes(const ixr_field *f, bool keyed, void *ud) {
  size_t *size = ud;
  if (keyed) *size += strlen(f->key) + 1;
  if (f->type == IXR_V_STRING) *size += field_strlen(f) + 1;
}

typedef struct copier {
  ixr_field *to;
  char *p;
} copier;

static void copy_field(const ixr_field *f, bool keyed, void *ud) {
  copier *c = ud;
  ixr_field *t = c->to++;
  *t = *f;
  t->key = NULL;
  if (keyed) {
    size_t k = strlen(f->key) + 1;
    t->key = memcpy(c->p, f->key, k);
    c->p += k;
  }
  if (f->type == IXR_V_STRING) {
    size_t len = field_strlen(f);
    memcpy(c->p, f->str, len);
    c->p[len] = '\0';
    t->str = c->p;
    t->len = len;
    c->p += len + 1;
  }
}

/* Queues an event (name set, fields checked) or bytes. */
static int enqueue(ixr_runtime *rt, const char *name, const ixr_field *f,
                   size_t n, const char *bytes, size_t len) {
  size_t align = _Alignof(ixr_field);
  size_t at = (sizeof(ixr__queued) + align - 1) / align * align;
  size_t size = at;
  if (name != NULL) {
    size += n * sizeof(ixr_field) + strlen(name) + 1;
    each_field(f, n, count_bytes, &size);
  } else {
    size += len;
  }
  ixr__queued *q = malloc(size);
  if (q == NULL) return IXR_ENOMEM;
  memset(q, 0, sizeof(*q));
  char *p = (char *)q + at;
  if (name != NULL) {
    q->fields = (ixr_field *)(void *)p;
    q->n = n;
    copier c = {q->fields, p + n * sizeof(ixr_field)};
    each_field(f, n, copy_field, &c);
    size_t k = strlen(name) + 1;
    q->name = memcpy(c.p, name, k);
  } else {
    q->bytes = memcpy(p, bytes, len);
    q->len = len;
  }
  if (rt->queue_tail != NULL) rt->queue_tail->next = q;
  else rt->queue_head = q;
  rt->queue_tail = q;
  return 0;
}

static void free_queue(ixr_runtime *rt) {
  while (rt->queue_head != NULL) {
    ixr__queued *q = rt->queue_head;
    rt->queue_head = q->next;
    free(q);
  }
  rt->queue_tail = NULL;
}

static int feed_event_now(ixr_runtime *rt, const char *name,
                          const ixr_field *data, size_t n);

void ixr__run_queued(ixr_runtime *rt) {
  if (rt->queue_head == NULL || rt->queue_running || rt->depth > 0 ||
      rt->call_thread != NULL || rt->in_output > 0 || rt->loading > 0)
    return;
  rt->queue_running = true;
  while (rt->queue_head != NULL && !rt->closing) {
    ixr__queued *q = rt->queue_head;
    rt->queue_head = q->next;
    if (rt->queue_head == NULL) rt->queue_tail = NULL;
    int rc = q->name != NULL
                 ? feed_event_now(rt, q->name, q->fields, q->n)
                 : ixr__framer_push(&rt->api.queued_framer, q->bytes, q->len,
                                    api_line, rt);
    if (rc != 0 && !rt->closing)
      ixr__log(rt, IXR_LOG_ERROR, "input fed from a callback: %s: dropped",
               ixr_strerror(rc));
    free(q);
  }
  if (rt->closing) free_queue(rt);
  rt->queue_running = false;
}

int ixr_feed(ixr_runtime *rt, const char *bytes, size_t len) {
  if (rt == NULL || (bytes == NULL && len > 0)) return IXR_EINVAL;
  if (rt->closing) return IXR_ECLOSED;
  if (rt->in_setup || rt->loading > 0) return IXR_EBUSY;
  if (len == 0) return 0;
  if (must_queue(rt)) return enqueue(rt, NULL, NULL, 0, bytes, len);
  rt->draining = true;
  ixr__run_queued(rt); /* what callbacks fed earlier goes first */
  int rc = ixr__framer_push(&rt->api.framer, bytes, len, api_line, rt);
  ixr__run_queued(rt);
  rt->draining = false;
  if (ixr__leave(rt)) return IXR_ECLOSED;
  return rt->close_requested ? IXR_ECLOSED : rc;
}

/* [-0, +1] pushes the value of fields[*i] (advancing *i past it), or
 * returns IXR_EINVAL with nothing pushed. With L NULL it only checks. */
static int push_field(ixr_runtime *rt, lua_State *L, int kcidx,
                      const ixr_field *f, size_t n, size_t *i, int depth);

/* The members directly inside the container whose first member is f[i]
 * (up to its IXR_V_END, or to n): the size its table is made with. */
static int count_members(const ixr_field *f, size_t n, size_t i) {
  int count = 0, nest = 0;
  for (; i < n; i++) {
    if (f[i].type == IXR_V_END) {
      if (nest == 0) break;
      nest--;
      continue;
    }
    if (nest == 0) count++;
    if (f[i].type == IXR_V_OBJECT || f[i].type == IXR_V_ARRAY) nest++;
  }
  return count;
}

/* [-0, +0] sets the members f[*i].. into the table on top, up to an
 * IXR_V_END (consumed) or, with `top_level`, to n. Keys go through the key
 * cache at kcidx; a null member is absent, as in JSON. With L NULL it only
 * checks them. */
static int push_members(ixr_runtime *rt, lua_State *L, int kcidx,
                        const ixr_field *f, size_t n, size_t *i, int depth,
                        bool arr, bool top_level) {
  lua_Integer idx = 1;
  while (*i < n && f[*i].type != IXR_V_END) {
    if (!arr) {
      const char *key = f[*i].key;
      if (key == NULL) return IXR_EINVAL;
      int rc = L != NULL ? ixr__push_api_key(rt, kcidx, key)
                         : ixr__utf8_valid(key, strlen(key)) ? 0 : IXR_EINVAL;
      if (rc != 0) return rc;
    }
    bool null_member = !arr && f[*i].type == IXR_V_NULL;
    int rc = push_field(rt, L, kcidx, f, n, i, depth + 1);
    if (L == NULL) {
      if (rc != 0) return rc;
      continue;
    }
    if (rc != 0) {
      if (!arr) lua_pop(L, 1);
      return rc;
    }
    if (null_member) lua_pop(L, 2);
    else if (arr) lua_rawseti(L, -2, idx++);
    else lua_rawset(L, -3);
  }
  if (top_level) return *i < n ? IXR_EINVAL : 0; /* a stray IXR_V_END */
  if (*i >= n) return IXR_EINVAL;                /* no IXR_V_END */
  (*i)++;
  return 0;
}

static int push_field(ixr_runtime *rt, lua_State *L, int kcidx,
                      const ixr_field *f, size_t n, size_t *i, int depth) {
  const ixr_field *x = &f[*i];
  (*i)++;
  switch (x->type) {
    case IXR_V_STRING: {
      if (x->str == NULL) return IXR_EINVAL;
      size_t len = field_strlen(x);
      if (!ixr__utf8_valid(x->str, len)) return IXR_EINVAL;
      if (L != NULL) lua_pushlstring(L, x->str, len);
      return 0;
    }
    case IXR_V_INT:
      if (L != NULL) lua_pushinteger(L, (lua_Integer)x->i);
      return 0;
    case IXR_V_DOUBLE:
      if (x->d != x->d || x->d > 1.7976931348623157e308 || x->d < -1.7976931348623157e308)
        return IXR_EINVAL;
      if (L != NULL) lua_pushnumber(L, x->d);
      return 0;
    case IXR_V_BOOL:
      if (L != NULL) lua_pushboolean(L, x->b);
      return 0;
    case IXR_V_NULL:
      if (L != NULL) lua_pushlightuserdata(L, ixr__null());
      return 0;
    case IXR_V_OBJECT:
    case IXR_V_ARRAY: {
      /* The event is a level and data another, as in the JSON line the
       * event stands for (a record of it must replay): 64 in all. */
      if (depth + 1 >= 64 || (L != NULL && !lua_checkstack(L, 4))) return IXR_EINVAL;
      bool arr = x->type == IXR_V_ARRAY;
      if (L != NULL) {
        int count = count_members(f, n, *i);
        lua_createtable(L, arr ? count : 0, arr ? 0 : count);
        if (arr && count == 0) ixr__mark_array(L, -1); /* as [] from JSON */
      }
      int rc = push_members(rt, L, kcidx, f, n, i, depth, arr, false);
      if (rc != 0 && L != NULL) lua_pop(L, 1);
      return rc;
    }
    default: return IXR_EINVAL;
  }
}

int ixr_feed_event(ixr_runtime *rt, const char *name, const ixr_field *data,
                   size_t n) {
  if (rt == NULL || name == NULL || (data == NULL && n > 0)) return IXR_EINVAL;
  if (rt->closing) return IXR_ECLOSED;
  if (rt->in_setup || rt->loading > 0) return IXR_EBUSY;
  if (!ixr__utf8_valid(name, strlen(name))) return IXR_EINVAL;
  size_t i = 0;
  if (push_members(rt, NULL, 0, data, n, &i, 0, false, true) != 0) return IXR_EINVAL;
  if (must_queue(rt)) return enqueue(rt, name, data, n, NULL, 0);
  rt->draining = true; /* a close from on_input is deferred too */
  ixr__run_queued(rt); /* what callbacks fed earlier goes first */
  int rc = feed_event_now(rt, name, data, n);
  ixr__run_queued(rt);
  rt->draining = false;
  if (ixr__leave(rt)) return IXR_ECLOSED;
  return rt->close_requested ? IXR_ECLOSED : rc;
}

/* Dispatches a checked event now. */
static int feed_event_now(ixr_runtime *rt, const char *name,
                          const ixr_field *data, size_t n) {
  ixr__timers_catch_up(rt); /* as ixr_feed: timers due first */
  if (rt->closing) return 0;
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8)) return IXR_ENOMEM;
  int kcidx = ixr__keycache_push(rt);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  /* data: an object of the n fields, closed here */
  lua_createtable(L, 0, count_members(data, n, 0));
  size_t i = 0;
  int rc = push_members(rt, L, kcidx, data, n, &i, 0, false, true);
  if (rc != 0) {
    lua_settop(L, top);
    return rc;
  }
  lua_setfield(L, -2, "data");
  if (kcidx != 0) lua_remove(L, kcidx);
  if (rt->opt.on_input != NULL) {
    /* A recording sees structured events as the JSON line they stand for. */
    char err[128];
    const char *line;
    size_t len;
    ixr__jw_begin(rt->jw);
    ixr__jw_str(rt->jw, "name", name, strlen(name));
    lua_getfield(L, -1, "data");
    int bad = ixr__jw_lua(rt->jw, "data", L, -1, err, sizeof(err));
    lua_pop(L, 1);
    ixr__jw_end(rt->jw, &line, &len);
    if (bad == 0) rt->opt.on_input(rt->opt.input_ud, line, len, ixr__now(rt));
    if (rt->closing) {
      lua_settop(L, top);
      return 0;
    }
  }
  ixr__dispatch(rt, &rt->api.sink, 0); /* pops the event */
  ixr__gc_after_work(rt);
  IXR_STACK_CHECK(L, top, 0);
  return 0;
}

int ixr_feed_end(ixr_runtime *rt) {
  if (rt == NULL) return IXR_EINVAL;
  if (rt->closing) return IXR_ECLOSED;
  if (must_queue(rt) || rt->in_setup || rt->loading > 0) return IXR_EBUSY;
  rt->draining = true;
  ixr__run_queued(rt);
  ixr__framer_finish(&rt->api.framer, api_line, rt);
  ixr__run_queued(rt);
  ixr__framer_finish(&rt->api.queued_framer, api_line, rt);
  ixr__run_queued(rt);
  rt->draining = false;
  if (ixr__leave(rt)) return IXR_ECLOSED;
  return rt->close_requested ? IXR_ECLOSED : 0;
}

int ixr_advance(ixr_runtime *rt, uint64_t ms) {
  if (rt == NULL) return IXR_EINVAL;
  if (rt->closing) return IXR_ECLOSED;
  if (rt->opt.clock != IXR_CLOCK_MANUAL) return IXR_EINVAL;
  if (must_queue(rt) || rt->in_setup || rt->loading > 0) return IXR_EBUSY;
  rt->draining = true;
  ixr__run_queued(rt);
  ixr__timers_advance(rt, ms);
  ixr__run_queued(rt);
  rt->draining = false;
  if (ixr__leave(rt)) return IXR_ECLOSED;
  return 0;
}

int ixr_get_stats(ixr_runtime *rt, ixr_stats *st) {
  if (rt == NULL || st == NULL) return IXR_EINVAL;
  if (rt->closing) return IXR_ECLOSED;
  *st = rt->stats;
  st->sessions_active = rt->sessions_active;
  st->sessions_suspended = rt->sessions_suspended;
  st->lua_bytes = rt->lua_bytes;
  st->start_time_ms = rt->start_time_ms;
  st->gc_cycles = rt->gc.cycles;
  st->gc_steps = rt->gc.steps_total;
  st->gc_ns = rt->gc.ns_total;
  st->gc_pause_max_ns = rt->gc.pause_max_ns;
  st->gc_pause_last_cycle_ns = rt->gc.pause_last_cycle_ns;
  st->generation = rt->generation;
  return 0;
}

int ixr_session_find(ixr_runtime *rt, const char *iid, size_t len,
                     ixr_session_info *out) {
  if (rt == NULL || iid == NULL || out == NULL) return IXR_EINVAL;
  if (rt->closing) return IXR_ECLOSED;
  ixr__session *s = (ixr__session *)ixr__map_get(&rt->sessions, iid, len,
                                                 ixr__hash(iid, len));
  if (s == NULL) return IXR_ENOTFOUND;
  snprintf(out->id, sizeof(out->id), "s%llu", (unsigned long long)s->id);
  out->state = s->state == IXR__ACTIVE ? "active" : "suspended";
  out->strategy = s->strategy->name;
  out->generation = s->strategy->generation;
  return 0;
}

/* ---- running and closing ---------------------------------------------- */

static bool busy(const ixr_runtime *rt);

int ixr_run(ixr_runtime *rt) {
  if (rt == NULL) return IXR_EINVAL;
  if (!rt->owns_loop) return IXR_ELOOP;
  if (rt->closing) return IXR_ECLOSED;
  /* Not from a callback or a host function: the loop would run other
   * events and timers inside the one in progress. */
  if (rt->running || busy(rt)) return IXR_EBUSY;
  /* Timers alone keep no loop alive (so that a host loop can end); here
   * the loop runs until ixr_stop(), timers or not. */
  if (!rt->stopping && !rt->keepalive_open &&
      uv_async_init(rt->loop, &rt->keepalive, NULL) == 0) {
    rt->keepalive_open = true;
    rt->keepalive.data = rt;
    rt->open_handles++;
  }
  rt->running = true;
  uv_run(rt->loop, UV_RUN_DEFAULT);
  rt->running = false;
  if (rt->close_requested) destroy(rt); /* ixr_close() from a callback */
  return 0;
}

static void on_keepalive_closed(uv_handle_t *h) {
  ixr__handle_closed(h->data);
}

static void close_keepalive(ixr_runtime *rt) {
  if (!rt->keepalive_open) return;
  rt->keepalive_open = false;
  uv_close((uv_handle_t *)&rt->keepalive, on_keepalive_closed);
}

void ixr_stop(ixr_runtime *rt) {
  if (rt == NULL || rt->stopping) return;
  rt->stopping = true;
  ixr__streams_stop(rt, false);
  close_keepalive(rt);
}

void ixr__handle_closed(ixr_runtime *rt) {
  rt->open_handles--;
  if (rt->destroyed && rt->open_handles == 0) {
    /* The host's loop ran the last close callback: release the memory. */
    free(rt);
  }
}

/*
 * Closes the handles and frees everything. The runtime struct itself lives
 * until the last close callback has run: at once on its own loop, later on
 * a host's loop (see ixr__handle_closed).
 */
static void destroy(ixr_runtime *rt) {
  rt->closing = true;
  rt->stopping = true;
  close_keepalive(rt);
  ixr__watch_close(rt);
  ixr__streams_stop(rt, true);
  ixr__timers_close(rt);
  ixr__dispatch_free(rt);
  ixr__strategies_free(rt);
  ixr__lua_close(rt);
  ixr__jw_free(rt->jw);
  rt->jw = NULL;
  ixr__buf_free(&rt->decode_scratch);
  ixr__keycache_free(rt);
  ixr__framer_free(&rt->api.framer);
  ixr__framer_free(&rt->api.queued_framer);
  free_queue(rt);
  if (rt->held_count > 0)
    ixr__log(rt, IXR_LOG_WARN,
             "closing with %zu output lines held, which no connection took: "
             "they are lost", rt->held_count);
  while (rt->held_head != NULL) {
    ixr__held *h = rt->held_head;
    rt->held_head = h->next;
    free(h);
  }
  free(rt->sinks);
  free(rt->sink_gen);
  rt->sinks = NULL;
  rt->sink_gen = NULL;
  rt->nsinks = 0;
  rt->sinks_head = rt->sinks_tail = NULL;
  free(rt->handlers_dir);
  free(rt->lua_dir);
  rt->handlers_dir = rt->lua_dir = NULL;
  if (rt->owns_loop) {
    uv_run(rt->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
    uv_loop_close(rt->loop);
    free(rt);
    return;
  }
  rt->destroyed = true;
  if (rt->open_handles == 0) free(rt);
}

/* Inside a call that may still use the runtime on its way out. */
static bool busy(const ixr_runtime *rt) {
  return rt->depth > 0 || rt->draining || rt->queue_running || rt->in_output > 0 ||
         rt->call_thread != NULL || rt->in_setup || rt->in_uv_cb > 0;
}

void ixr_close(ixr_runtime *rt) {
  if (rt == NULL || rt->destroyed || rt->close_requested) return;
  if (busy(rt) || rt->running) {
    /* From a callback: everything returns IXR_ECLOSED from now on, no
     * more output is delivered, and the memory goes when the outermost
     * call (or libuv callback) returns. */
    rt->close_requested = true;
    rt->closing = true;
    rt->stopping = true;
    if (rt->running && !busy(rt)) uv_stop(rt->loop);
    return;
  }
  destroy(rt);
}

bool ixr__leave(ixr_runtime *rt) {
  if (!rt->close_requested || busy(rt)) return false;
  if (rt->running) {
    uv_stop(rt->loop); /* ixr_run finishes the close once uv_run returns */
    return false;
  }
  destroy(rt);
  return true;
}

/* ---- ixr check -------------------------------------------------------- */

static void quiet_log(void *ud, ixr_log_level level, const char *msg) {
  (void)ud;
  (void)level;
  (void)msg;
}

int ixr_check(const char *handlers_dir, const char *lua_dir,
              ixr_report_cb report, void *ud) {
  if (handlers_dir == NULL || report == NULL) return IXR_EINVAL;
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = handlers_dir;
  o.lua_dir = lua_dir;
  return ixr_check_options(&o, report, ud);
}

int ixr_check_options(const ixr_options *opt, ixr_report_cb report, void *ud) {
  return ixr__check(opt, report, report, ud);
}

int ixr__check(const ixr_options *opt, ixr_report_cb report, ixr_report_cb warn, void *ud) {
  if (opt == NULL || opt->handlers_dir == NULL || report == NULL || warn == NULL)
    return IXR_EINVAL;
  ixr_options o = *opt; /* its limits and on_setup, on a quiet runtime */
  o.clock = IXR_CLOCK_MANUAL;
  o.loop = NULL;
  o.on_output = NULL;
  o.on_input = NULL;
  o.on_trace = NULL;
  o.on_log = quiet_log;
  ixr_runtime *rt;
  int rc = ixr_new(&rt, &o);
  if (rc != 0) return rc;
  rc = ixr__strategies_report(rt, report, warn, ud);
  ixr_close(rt);
  return rc;
}
