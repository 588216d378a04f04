/*
 * internal.h: what the files of libixr share with each other. Nothing here is
 * part of the public API; cross-file names start with ixr__.
 */
#ifndef IXR_INTERNAL_H
#define IXR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#include "ixr.h"

#define IXR__HIDDEN __attribute__((visibility("hidden")))

/* ---- buf.c: a growable byte buffer ------------------------------------ */

typedef struct ixr__buf {
  char *data;
  size_t len;
  size_t cap;
} ixr__buf;

int ixr__buf_reserve(ixr__buf *b, size_t extra);
int ixr__buf_append(ixr__buf *b, const void *p, size_t n);
void ixr__buf_consume(ixr__buf *b, size_t n); /* drops n bytes at the front */
void ixr__buf_free(ixr__buf *b);

/* ---- pool.c: size classes for the Lua state's small blocks ------------- */

#define IXR__POOL_MAX 1024 /* larger blocks come from malloc */
#define IXR__POOL_STEP 8   /* class granularity: Lua's objects need 8-byte
                              alignment, no more */

typedef struct ixr__pool {
  void *free[IXR__POOL_MAX / IXR__POOL_STEP];
  char *bump;
  size_t left;
  void **slabs;
  size_t nslabs, cap;
} ixr__pool;

void *ixr__pool_realloc(ixr__pool *p, void *ptr, size_t osize, size_t nsize);
void ixr__pool_free(ixr__pool *p, void *ptr, size_t osize);
void ixr__pool_destroy(ixr__pool *p);

/* ---- map.c: an intrusive string-keyed hash table ----------------------- */

typedef struct ixr__mapnode {
  struct ixr__mapnode *next;
  const char *key;
  uint32_t len; /* keys are names and interaction ids: far below 4 GiB */
  uint32_t hash;
} ixr__mapnode;

typedef struct ixr__map {
  ixr__mapnode **buckets;
  size_t mask;
  size_t count;
} ixr__map;

uint32_t ixr__hash(const char *key, size_t len);
int ixr__map_init(ixr__map *m, size_t hint);
void ixr__map_free(ixr__map *m);
ixr__mapnode *ixr__map_get(const ixr__map *m, const char *key, size_t len,
                           uint32_t hash);
/* `n` must have key, len and hash set and not be in the map. */
int ixr__map_put(ixr__map *m, ixr__mapnode *n);
void ixr__map_del(ixr__map *m, ixr__mapnode *n);

/* ---- framer.c: NDJSON line framing ------------------------------------- */

typedef enum {
  IXR__LINE_OK = 0,      /* a complete line (without its newline) */
  IXR__LINE_TOO_LONG = 1 /* a line longer than the maximum: skipped */
} ixr__line_status;

typedef void (*ixr__line_cb)(void *ud, const char *line, size_t len,
                             uint64_t lineno, ixr__line_status status);

typedef struct ixr__framer {
  ixr__buf buf;
  size_t scanned;  /* bytes of buf already known to hold no newline */
  size_t max_line;
  uint64_t lineno; /* number of the last line started */
  bool skipping;   /* inside an over-long line, dropping bytes to its end */
} ixr__framer;

void ixr__framer_init(ixr__framer *f, size_t max_line);
void ixr__framer_free(ixr__framer *f);
/* Appends bytes and calls cb for each complete line. */
int ixr__framer_push(ixr__framer *f, const char *p, size_t n, ixr__line_cb cb,
                     void *ud);
/* End of input: a last line without newline is delivered as complete. */
void ixr__framer_finish(ixr__framer *f, ixr__line_cb cb, void *ud);

/* ---- sinks: where output lines go ------------------------------------- */

typedef struct ixr__sink ixr__sink;
struct ixr__sink {
  void (*write)(ixr__sink *sk, const ixr_output *out);
  ixr__sink *prev, *next; /* the runtime's list of open sinks, oldest first */
  uint32_t slot;          /* index in rt->sinks */
  uint32_t gen;           /* rt->sink_gen[slot] while this sink is open */
  bool open;
  bool control_only;      /* a --control stream: ixr.* events only */
  /* Takes held output. A new connection settles once it sends, once it
   * has stayed open for IXR__SETTLE_MS, or when it half-closes a unix
   * socket (a reader): a probe that connects and closes at once (a health
   * check, a second ixr testing the socket) must not swallow the held
   * lines. Control connections take none, and are settled from the start. */
  bool settled;
  uint64_t opened_ms;     /* loop time it opened */
};

#define IXR__SETTLE_MS 250

/* A sink that was waiting to settle does now: held output goes to it. */
void ixr__sink_settle(ixr_runtime *rt, ixr__sink *sk);

typedef struct ixr__sinkref {
  uint32_t slot;
  uint32_t gen;
} ixr__sinkref;

int ixr__sink_open(ixr_runtime *rt, ixr__sink *sk);
void ixr__sink_close(ixr_runtime *rt, ixr__sink *sk);
ixr__sinkref ixr__sink_ref(const ixr__sink *sk);
/* The sink r names, or (gone) the newest open one, or NULL. */
ixr__sink *ixr__sink_resolve(ixr_runtime *rt, ixr__sinkref r);

/* ---- timer.c: one heap of timers, one clock --------------------------- */

typedef enum {
  IXR__TIMER_FLOW = 1, /* the timeout of a request or wait of a flow */
  IXR__TIMER_AFTER = 2 /* session:after(): calls a Lua function */
} ixr__timer_kind;

typedef struct ixr__session ixr__session;

/* A timer lives inside its owner (the session, for its flow's timeout; an
 * ixr__after, for session:after), so that arming one allocates nothing but,
 * at times, a bigger heap array. */
typedef struct ixr__timer {
  uint64_t due;      /* ms on the runtime clock */
  uint64_t seq;      /* ties broken by creation order; session:after's id */
  uint32_t heap_idx; /* IXR__TIMER_IDLE when not in the heap */
  uint8_t kind;      /* ixr__timer_kind */
} ixr__timer;

#define IXR__TIMER_IDLE UINT32_MAX
#define IXR__TIMER_DEFERRED (UINT32_MAX - 1) /* timer.c, during one pass */

/* A session:after() timer. */
typedef struct ixr__after {
  ixr__timer timer;
  ixr__session *s;
  int fn_ref;                     /* the function */
  struct ixr__after *prev, *next; /* the session's list of timers */
} ixr__after;

/* The session a timer belongs to (its flow's timeout, or a session:after). */
ixr__session *ixr__timer_session(ixr__timer *t);
int ixr__timers_init(ixr_runtime *rt);
void ixr__timers_close(ixr_runtime *rt);
uint64_t ixr__now(ixr_runtime *rt);
/* Arms t (which must be idle) to fire after delay_ms; IXR_ENOMEM when the
 * heap cannot grow. */
int ixr__timer_start(ixr_runtime *rt, ixr__timer *t, ixr__timer_kind kind,
                     uint64_t delay_ms);
/* Disarms t if it is armed; its memory stays its owner's. */
void ixr__timer_stop(ixr_runtime *rt, ixr__timer *t);
void ixr__timers_advance(ixr_runtime *rt, uint64_t ms);
/* Real clock: fires the timers already due before an input line (timer.c). */
void ixr__timers_catch_up(ixr_runtime *rt);

/* ---- strategy.c: strategies and generations --------------------------- */

typedef struct ixr__strategy {
  ixr__mapnode node; /* keyed by name */
  char *name;
  char *path;
  char *error;       /* NULL, or why it failed to load ("FILE:LINE: msg") */
  char *warnings;    /* NULL, or lines "FILE:LINE: warning: msg\n" about
                        what loads but looks like a mistake */
  int table_ref;     /* the table the file returned */
  int handlers_ref;  /* event name -> function: standard set + strategy's on */
  int start_ref;
  int requeued_ref;  /* LUA_NOREF when absent */
  double requeue_timeout;
  bool pin;          /* sessions stay on the generation they started on */
  uint64_t generation;
  uint64_t source_hash;
  int refs;          /* sessions using it, plus one while in a generation */
} ixr__strategy;

/* A set of strategies loaded together, with their standard sets. */
typedef struct ixr__generation {
  ixr__map strategies;
  int sets_ref;
  unsigned files;
  ixr__buf errors; /* "FILE:LINE: message" lines */
  ixr__buf warnings; /* "FILE:LINE: warning: message" lines (not problems) */
} ixr__generation;

int ixr__generation_build(ixr_runtime *rt, ixr__generation *g);
void ixr__generation_install(ixr_runtime *rt, ixr__generation *g);
void ixr__generation_discard(ixr_runtime *rt, ixr__generation *g);
unsigned ixr__generation_changes(ixr_runtime *rt, const ixr__generation *g);
ixr__strategy *ixr__strategy_current(ixr_runtime *rt, ixr__session *s);
ixr__strategy *ixr__strategy_find(ixr_runtime *rt, const char *name,
                                  size_t len);
void ixr__strategy_release(ixr_runtime *rt, ixr__strategy *st);
void ixr__strategies_free(ixr_runtime *rt);
bool ixr__strategy_name_ok(const char *name, size_t len);

/* ---- dispatch.c: sessions and events ----------------------------------- */

typedef enum {
  IXR__ACTIVE = 1,
  IXR__SUSPENDED = 2,
  IXR__ENDED = 3
} ixr__state;

typedef enum {
  IXR__WAIT_NONE = 0,
  IXR__WAIT_REQUEST = 1, /* for interaction.<action>.done / error.interaction.<action> */
  IXR__WAIT_EVENT = 2    /* for the next event of a name */
} ixr__wait_kind;

/*
 * One allocation per session: the struct, its flow's timeout timer and its
 * interaction id, which follows the struct. A million sessions wait at
 * once, so every byte here counts a megabyte.
 */
struct ixr__session {
  ixr__mapnode node; /* keyed by interactionid (node.key is iid, node.len
                        its length); once ended, the link of rt->dead */
  uint64_t id;
  ixr__strategy *strategy;
  lua_State *co;
  const char *wait_name; /* the action name, or the event name (shared:
                            ixr__name_get) */
  uint64_t wait_reqid;
  ixr__timer wait_timer; /* the timeout of the request or wait */
  ixr__after *timers;    /* session:after() timers */
  char *end_after_flow;  /* end reason to use when the flow finishes */
  ixr__sinkref sink;
  int ref;             /* the session userdata */
  int co_ref;          /* the flow's thread, or LUA_NOREF */
  uint32_t flow_epoch; /* changes whenever the flow is replaced or dropped */
  uint8_t state;       /* ixr__state */
  uint8_t wait_kind;   /* ixr__wait_kind */
  char iid[];          /* NUL-terminated */
};

/* The session userdata: one word, as a million of them live at once. While
 * the session lives it is the session's address (even: sessions are 8-byte
 * aligned); once it has ended, its id shifted left with the low bit set
 * (ids count sessions: they stay far below 2^63), so that session.id
 * outlives the session. */
typedef struct ixr__sessionud {
  uint64_t v;
} ixr__sessionud;

/* The live session, or NULL once it has ended. */
static inline ixr__session *ixr__ud_session(const ixr__sessionud *ud) {
  return (ud->v & 1) ? NULL : (ixr__session *)(uintptr_t)ud->v;
}
static inline uint64_t ixr__ud_id(const ixr__sessionud *ud) {
  return (ud->v & 1) ? ud->v >> 1 : ixr__ud_session(ud)->id;
}

int ixr__dispatch_init(ixr_runtime *rt);
/* A counted copy of a name, shared by the sessions that wait for it (a few
 * constants, in practice): NULL when out of memory. Release each with
 * ixr__name_put. */
const char *ixr__name_get(ixr_runtime *rt, const char *name, size_t len);
void ixr__name_put(ixr_runtime *rt, const char *name);
void ixr__dispatch_free(ixr_runtime *rt);
/* The decoded event is on top of rt->L; it is popped. */
void ixr__dispatch(ixr_runtime *rt, ixr__sink *from, uint64_t lineno);
void ixr__session_end(ixr_runtime *rt, ixr__session *s, const char *reason);
void ixr__session_suspend(ixr_runtime *rt, ixr__session *s, const char *reason);
void ixr__session_resume(ixr_runtime *rt, ixr__session *s);
/* The session lost control (end_after_flow) and its interaction is
 * presented again by the event at ev: if the present names a strategy that
 * can start, ends the session with its pending reason and starts a new
 * one for the event; otherwise says why in an error line and changes
 * nothing. True if replaced. */
bool ixr__session_replace(ixr_runtime *rt, ixr__session *s, int ev);
void ixr__flow_cancel(ixr_runtime *rt, ixr__session *s);
/* [-2, +0] runs fn(session, event) as the session's new flow. */
void ixr__flow_start(ixr_runtime *rt, ixr__session *s);
void ixr__timer_fire(ixr_runtime *rt, ixr__timer *t);
void ixr__reap(ixr_runtime *rt);
/* Closes the flows cancelled so far (their <close> variables run), at any
 * depth: between two units of work, such as two timers of one pass. */
void ixr__close_cancelled(ixr_runtime *rt);

/* ---- luahost.c: the Lua state and the one way into it ------------------ */

enum { IXR__KILL_NONE = 0, IXR__KILL_INSTRUCTIONS = 1, IXR__KILL_MEMORY = 2 };

typedef enum {
  IXR__CALL_DONE = 0,
  IXR__CALL_YIELDED = 1,
  IXR__CALL_FAILED = 2
} ixr__call_result;

int ixr__lua_open(ixr_runtime *rt);
void ixr__lua_close(ixr_runtime *rt);
/*
 * The one protected path into Lua. With co == NULL: [-(nargs+1), +0] calls
 * the function below nargs arguments on rt->L. With a thread: resumes it with
 * the nargs values on its stack. A failure becomes a handler_error line for
 * `s` (which may be NULL) and a log record; `what` names the handler.
 */
/* Closes a suspended or failed thread, as coroutine.close: its pending
 * to-be-closed variables are closed (errors caught: the status is returned
 * with the error object on co), its stack reset. `from`: the running
 * thread. */
int ixr__close_thread(lua_State *co, lua_State *from);
ixr__call_result ixr__invoke(ixr_runtime *rt, ixr__session *s, lua_State *co,
                             int nargs, const char *what);
/* [-0, +1] pushes a new sandboxed environment table for one file, on L
 * (the thread that asks: a flow may call load or require). */
void ixr__push_sandbox(lua_State *L);
/* [-0, +1] loads a file as a text chunk, or returns an error (message set). */
int ixr__load_file(lua_State *L, const char *path, const char *chunkname,
                   char **errmsg, uint64_t *hash);
/* [-0, +1] pushes the session userdata */
void ixr__push_session(ixr_runtime *rt, ixr__session *s);
int ixr__new_session_ud(ixr_runtime *rt, ixr__session *s);

/* ---- codec.c: JSON <-> Lua -------------------------------------------- */

typedef struct ixr__jw ixr__jw; /* a JSON line writer */

/* [-0, +1 | +0..1] decodes one line into a table. On failure writes a
 * message into err and pushes the line's top-level "id" if it parsed
 * before the failure and is a string or a number (*id_pushed then true;
 * id_pushed may be NULL: nothing pushed). */
int ixr__decode(ixr_runtime *rt, const char *line, size_t len, char *err,
                size_t errlen, bool *id_pushed);
ixr__jw *ixr__jw_new(void);
void ixr__jw_free(ixr__jw *w);
void ixr__jw_begin(ixr__jw *w);
void ixr__jw_str(ixr__jw *w, const char *key, const char *val, size_t len);
void ixr__jw_int(ixr__jw *w, const char *key, int64_t val);
void ixr__jw_bool(ixr__jw *w, const char *key, bool val);
void ixr__jw_double(ixr__jw *w, const char *key, double val);
/* Writes the Lua value at idx; returns 0 or sets a message in err. */
int ixr__jw_lua(ixr__jw *w, const char *key, lua_State *L, int idx, char *err,
                size_t errlen);
/* Finishes the object; the line stays valid until the next begin. */
void ixr__jw_end(ixr__jw *w, const char **line, size_t *len);
bool ixr__jw_failed(const ixr__jw *w);
size_t ixr__jw_len(const ixr__jw *w); /* bytes written so far */

/* ---- output.c: building the output lines ------------------------------ */

void ixr__emit(ixr_runtime *rt, ixr__sinkref to, ixr_output *out);
void ixr__emit_session(ixr_runtime *rt, ixr__session *s, const char *state,
                       const char *reason);
/* An error line. `from` is the stream of the line at fault (or NULL to use
 * the session's stream); lineno 0 and idx 0 leave out "line" and "id". */
/* An error of a strategy call (handler_error, limit_exceeded) about session
 * s (or NULL), with the number and the id of the input line being
 * dispatched, if any. */
void ixr__emit_strategy_error(ixr_runtime *rt, ixr__session *s, const char *code,
                              const char *message, const char *traceback);
void ixr__emit_error(ixr_runtime *rt, ixr__sink *from, ixr__session *s,
                     const char *code, const char *message, uint64_t lineno,
                     int id_idx, const char *traceback);
void ixr__held_flush(ixr_runtime *rt, ixr__sink *to);
/* "s12", "r7": a prefix and a number, NUL-terminated; returns the length
 * (buf must hold 22 bytes). */
size_t ixr__fmt_id(char *buf, char prefix, uint64_t n);
/* A trace line; call only when rt->opt.on_trace is set. */
void ixr__trace(ixr_runtime *rt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "FILE:LINE" of the function at idx, for traces. */
const char *ixr__where(lua_State *L, int idx, char *buf, size_t n);
/* Logs each line of text[0..len) as a message of its own, after prefix
 * (log records are one line each). */
/* reload.c: a fingerprint of the names and bytes of every .lua file of
 * the handlers directory and the standard library. */
uint64_t ixr__files_fingerprint(ixr_runtime *rt);
/* The watch (if any) takes fp as the files last looked at. */
void ixr__watch_saw(ixr_runtime *rt, uint64_t fp);
void ixr__log_lines(ixr_runtime *rt, ixr_log_level level, const char *prefix,
                    const char *text, size_t len);
/* n, or less so that s[0..n) does not end inside a UTF-8 sequence (a cut
 * made at n bytes): looks back from the end only. */
static inline size_t ixr__utf8_cut(const char *s, size_t n) {
  for (size_t back = 1; back <= 4 && back <= n; back++) {
    unsigned char c = (unsigned char)s[n - back];
    if ((c & 0xC0) == 0x80) continue; /* a continuation byte: look further */
    size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return want > back ? n - back : n;
  }
  return n;
}
void ixr__log(ixr_runtime *rt, ixr_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the runtime ------------------------------------------------------- */

#define IXR__CO_POOL 256 /* finished flow threads kept for reuse */
/* Flows started (core.run) from inside running flows, nested on the C
 * stack: each level is a lua_resume inside the previous one. */
#define IXR__MAX_FLOW_NESTING 32
/* Cancelled flows waiting to be closed at the end of one event: beyond
 * this, they are left to the collector unclosed (a handler that restarts
 * flows in a loop must not pin every thread until the event ends). */
#define IXR__MAX_PENDING_CLOSES 4096

/* A flow cancelled while it waited, to be closed once the event is done. */
typedef struct ixr__closing {
  int ref;               /* registry ref of its thread */
  ixr__session *s;       /* its session: freed only after the close */
  ixr__strategy *st;     /* a reference: the session's may be gone */
} ixr__closing;

typedef struct ixr__held {
  struct ixr__held *next;
  size_t len;
  char line[];
} ixr__held;

typedef struct ixr__apisink {
  ixr__sink sink;
  ixr__framer framer;        /* the host's bytes (ixr_feed) */
  ixr__framer queued_framer; /* bytes fed from inside the runtime */
  uint64_t lines;            /* lines of both, in the order processed */
} ixr__apisink;

/* Input fed from inside the runtime (an output callback, a host function
 * a strategy called), run in order once the event in progress is done
 * (runtime.c). `name` set: an event of ixr_feed_event, its fields copied
 * into the same block; otherwise `len` bytes of ixr_feed. */
typedef struct ixr__queued {
  struct ixr__queued *next;
  const char *name;
  ixr_field *fields;
  size_t n;
  size_t len;
  char *bytes;
} ixr__queued;
/* Runs the queued input, unless an event or a call is in progress (it
 * runs when that is done) or the queue is running already. Called where
 * every event and timer ends: ixr__run_queued_if_any costs a test. */
void ixr__run_queued(ixr_runtime *rt);
#define ixr__run_queued_if_any(rt) \
  do {                              \
    if ((rt)->queue_head != NULL) ixr__run_queued(rt); \
  } while (0)

typedef struct ixr__keycache ixr__keycache;
void ixr__keycache_free(ixr_runtime *rt);
/* [-0, +1] pushes the key cache's table: its index, or 0 (none pushed). */
int ixr__keycache_push(ixr_runtime *rt);
/* [-0, +1] pushes an object key given through the API (checked for UTF-8
 * unless the cache at kcidx knows it), or IXR_EINVAL with nothing pushed. */
int ixr__push_api_key(ixr_runtime *rt, int kcidx, const char *key);

typedef struct ixr__gc {
  uint64_t alloc_mark;  /* alloc_total when last accounted */
  double owed;          /* basic steps owed (negative: ahead) */
  uint64_t steps_cycle; /* steps of the cycle in progress */
  uint64_t steps_last;  /* steps the last complete cycle took */
  size_t live;          /* lua_bytes when the last cycle ended */
  uint64_t steps_total, cycles;
  /* Time the loop spent in the collector: in all, the longest single step
   * (or forced full collection), and the longest step of the cycle in
   * progress and of the last complete one (the atomic step, mostly). */
  uint64_t ns_total, pause_max_ns, pause_cycle_ns, pause_last_cycle_ns;
} ixr__gc;

struct ixr_runtime {
  ixr_options opt;
  char *handlers_dir;
  char *lua_dir;
  uv_loop_t *loop;
  uv_loop_t own_loop;
  bool owns_loop;
  bool closing;   /* ixr_close() was called */
  bool stopping;  /* ixr_stop() was called */
  bool destroyed; /* only close callbacks are left; the last one frees */
  bool close_requested; /* ixr_close() from inside a callback: deferred */
  bool running;   /* inside ixr_run() */
  uv_async_t keepalive; /* holds ixr_run()'s loop open until ixr_stop() */
  bool keepalive_open;
  bool in_setup;  /* inside ixr_options.on_setup */
  int in_uv_cb;   /* inside one of the runtime's libuv callbacks */

  lua_State *L;
  size_t lua_bytes;
  uint64_t alloc_total; /* bytes the Lua state ever asked for (gc.c's pace) */
  ixr__gc gc;
  ixr__pool pool; /* the Lua state's small blocks, and the sessions */
  ixr__buf decode_scratch; /* strings with escapes, while decoding a line */
  ixr__keycache *keycache; /* codec.c: recent object keys */
  uint64_t loaded_fp;      /* reload.c: the .lua files as the generation in
                              service was built from them, if valid */
  bool loaded_fp_valid;
  int walk_dirs;           /* luahost.c: directories of the current walk */
  ixr__sink *line_from;    /* dispatch.c: the stream of the event in
                              progress (NULL: none, or a timer) */

  /* limits of one call into Lua (luahost.c) */
  lua_State *call_thread; /* the thread of the call in progress, or NULL */
  lua_Hook hook;
  uint64_t budget;        /* instructions left */
  size_t call_base_bytes; /* lua_bytes when the call began */
  int kill;               /* IXR__KILL_*: why the call in progress must die */
  char kill_where[160];   /* "FILE:LINE" of the Lua code running at the kill */
  int last_kill;          /* the reason of the last call's failure */
  bool kill_reported;     /* a nested call reported the kill of this call */
  size_t forced_gc_bytes; /* lua_bytes after the last collection forced
                             near the memory cap */

  /* sessions */
  ixr__map sessions;
  uint64_t next_session_id;
  uint64_t next_request_id;
  uint64_t sessions_active, sessions_suspended;
  ixr__map names;     /* the names flows wait for (ixr__name_get) */
  ixr__session *dead; /* ended sessions, freed once the event is done
                         (linked through node.next) */
  int co_pool[IXR__CO_POOL]; /* registry refs of finished flow threads */
  lua_State *co_pool_L[IXR__CO_POOL];
  int co_pool_n;
  ixr__closing *to_close; /* cancelled flows not closed yet (dispatch.c) */
  size_t to_close_n, to_close_cap;
  bool closing_flows;     /* inside close_flows: no flow may start */
  uint64_t closes_dropped; /* over IXR__MAX_PENDING_CLOSES, since the last pass */
  int flow_nesting;       /* flows started from within flows, running */
  int std_loading;        /* modules of lua/ loading (luahost.c l_require) */
  bool firing_timers;     /* inside timer.c fire_due */
  struct ixr__timer **deferred; /* timers set aside by the pass (timer.c) */
  size_t ndeferred, deferred_cap;
  size_t control_conns;   /* control connections open (stream.c) */
  size_t data_conns;      /* other connections of listeners open */
  uint64_t accept_seq; /* orders the connections waiting at a cap (stream.c) */
  bool control_cap_logged, data_cap_logged; /* a refusal at the cap was
                                               logged; none closed since */
  /* >0 while ixr's own bookkeeping allocates on the main Lua thread during
   * a call (a nested flow's thread and refs): the main thread is not the
   * one running, so a refused allocation would raise with no protected
   * call to catch it; the limits let those few bytes through. */
  int internal_alloc;
  int depth;          /* nesting of dispatch; re-entrant feeds are queued */
  /* The input line being dispatched, for the errors of the strategy calls
   * it causes: its number (0 outside dispatch and in timers) and, when it
   * has an "id", that value in the registry slot line_id_ref. */
  uint64_t line_no;
  bool line_has_id;
  int line_id_ref;
  int in_output;      /* inside a sink's write (a host's output callback) */
  ixr__queued *queue_head, *queue_tail; /* input fed while busy */
  bool queue_running;
  int loading;        /* >0 while a generation of strategies is built */
  bool draining;

  /* strategies */
  ixr__map strategies;
  uint64_t generation;
  int sets_ref; /* require("ixr.multimedia").sets */

  /* timers */
  uv_timer_t uvtimer;
  bool uvtimer_open;
  ixr__timer **heap;
  size_t heap_len, heap_cap;
  uint64_t timer_seq;
  uint64_t manual_now;
  /* The real clock's "now" while a timer's callback runs: its due time,
   * as on the manual clock, however late the loop fired it. What the
   * callback arms is then due when a replay of the record says. */
  uint64_t fire_now;
  bool fire_now_set;
  uint64_t real_base; /* uv_now() at start: times count from 0 */
  int64_t start_time_ms; /* the wall clock at runtime clock 0 (ixr_stats) */

  /* sinks */
  ixr__sink **sinks;
  uint32_t *sink_gen;
  uint32_t nsinks;
  uint32_t free_slot_hint;
  ixr__sink *sinks_head, *sinks_tail; /* open sinks, oldest first */
  ixr__held *held_head, *held_tail;
  size_t held_count;
  ixr__apisink api;

  /* streams and listeners (stream.c) */
  void *streams;       /* list of ixr__stream */
  void *listeners;     /* list of ixr__listener */
  void *dirty_streams; /* streams with output to flush */
  uv_prepare_t prepare;
  bool prepare_open;
  uv_idle_t gc_idle; /* collector steps while the loop is idle (gc.c) */
  bool gc_idle_open;
  uv_timer_t stop_timer; /* closes streams that do not drain after a stop */
  bool stop_timer_open;
  uv_timer_t settle_timer; /* settles new connections (ixr__sink.settled) */
  bool settle_timer_open;
  uv_timer_t stall_timer; /* checks connections with too much unread output */
  bool stall_timer_open;
  unsigned open_handles; /* handles and streams whose close is pending */

  /* reload (reload.c) */
  ixr_reload_result last_reload;
  bool reloaded_once;
  void *watch; /* the file watcher, or NULL */

  /* output */
  ixr__jw *jw;
  char *last_traceback;
  ixr_stats stats;
};

/* stream.c */
#define IXR__STOP_GRACE_MS 5000
int ixr__streams_init(ixr_runtime *rt);
void ixr__gc_idle_arm(ixr_runtime *rt); /* stream.c: start the idle handle */

/* gc.c: ixr paces the Lua collector (stopped otherwise). ixr__gc_full runs
 * a whole collection at once (the memory cap's), timed as the steps are. */
void ixr__gc_init(ixr_runtime *rt);
void ixr__gc_after_work(ixr_runtime *rt); /* after an event, line, timers */
void ixr__gc_in_call(ixr_runtime *rt, lua_State *L); /* from the hook */
bool ixr__gc_idle_wanted(const ixr_runtime *rt);
bool ixr__gc_idle(ixr_runtime *rt); /* one idle slice; true: more wanted */
void ixr__gc_full(ixr_runtime *rt);
void ixr__streams_stop(ixr_runtime *rt, bool now);

/* The runtime a Lua thread belongs to, kept in the thread's extra space
 * (threads made by lua_newthread start with a copy of the main thread's).
 * The low bit marks the threads of flows (ixr__flow_start): strategies may
 * not resume or close those (luahost.c's coroutine guards). */
static inline ixr_runtime *ixr__runtime_of(lua_State *L) {
  uintptr_t v;
  memcpy(&v, lua_getextraspace(L), sizeof(v));
  return (ixr_runtime *)(v & ~(uintptr_t)1);
}
static inline bool ixr__is_flow_thread(lua_State *L) {
  uintptr_t v;
  memcpy(&v, lua_getextraspace(L), sizeof(v));
  return (v & 1) != 0;
}
static inline void ixr__set_runtime(lua_State *L, ixr_runtime *rt, bool flow) {
  uintptr_t v = (uintptr_t)rt | (flow ? 1u : 0u);
  memcpy(lua_getextraspace(L), &v, sizeof(v));
}

/* runtime.c */
void ixr__handle_closed(ixr_runtime *rt);
/* Call on the way out of a libuv callback (after in_uv_cb--) or an API
 * entry point: carries out an ixr_close() deferred from a callback.
 * Returns true when the runtime is gone (do not touch it again). */
bool ixr__leave(ixr_runtime *rt);

/* A line longer than max_line, of which len bytes were read: recorded
 * (on_input with a NULL line) and reported as line_too_long. */
void ixr__skip_line(ixr_runtime *rt, ixr__sink *from, size_t len,
                    uint64_t lineno, size_t max_line);
int ixr__decode_and_dispatch(ixr_runtime *rt, ixr__sink *from,
                             const char *line, size_t len, uint64_t lineno);

/* luahost.c, more */
int ixr__call_quiet(ixr_runtime *rt, int nargs, int nres, char **errmsg);
void ixr__seal_env(lua_State *L, int idx);
/* [-0, +0] if the value at idx is a read-only view of a shared module
 * (luahost.c), replaces it with the table it shows, for C code that walks
 * it with lua_next. */
void ixr__ro_shown(lua_State *L, int idx);
/* Writes a log line to fd in full, also when fd is non-blocking (output.c). */
void ixr__write_log_line(int fd, const char *p, size_t n);
void ixr__reset_modules(ixr_runtime *rt);
/* Reads and compiles the module files of lua/ and of the handlers dir's
 * subdirectories into the new module cache; returns the number of files
 * that do not compile (each a line in errors). require() serves these. */
int ixr__modules_capture(ixr_runtime *rt, ixr__buf *errors);
/* How deep below lua/ and the handlers dir module files are read (and
 * --watch looks). */
#define IXR__MODULE_DEPTH 8
/* Directories looked at in one walk of the handlers directory or the
 * standard library (loading, fingerprinting, watching): a symlink to a
 * large tree (/, /usr) must not hold the loop for seconds. */
#define IXR__MAX_WALK_DIRS 1000

/* A directory name that can be one part of a module name (require("a.b")
 * is a/b.lua): letters, digits, '_' and '-'. Other directories (lost+found,
 * a.b, names with spaces or beyond ASCII) hold no modules: they are not
 * read, fingerprinted or watched. */
static inline bool ixr__module_dir_ok(const char *s) {
  if (*s == '\0') return false;
  for (; *s; s++) {
    char c = *s;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}
/* [-0, +1 on success] ixr__load_file for the strategy file `name`, from the
 * text ixr__modules_capture kept (else from disk). */
int ixr__load_strategy_file(ixr_runtime *rt, const char *name, const char *path,
                            const char *chunkname, char **errmsg, uint64_t *hash);
int ixr__modules_save(ixr_runtime *rt);
void ixr__modules_restore(ixr_runtime *rt, int ref);

/* reload.c */
void ixr__control(ixr_runtime *rt, ixr__sink *from, const char *name,
                  uint64_t lineno, int id_idx);
void ixr__watch_close(ixr_runtime *rt);
int ixr__open_session(lua_State *L);
int ixr__open_core(lua_State *L);

/* codec.c, more */
void *ixr__null(void);
/* The array mark of empty tables (codec.c): made once per Lua state; put
 * on the table at idx; is the table at idx marked? */
void ixr__open_array_mt(lua_State *L);
void ixr__mark_array(lua_State *L, int idx);
bool ixr__is_marked_array(lua_State *L, int idx);
bool ixr__utf8_valid(const char *s, size_t len);
long ixr__utf8_invalid_at(const char *s, size_t len); /* -1 when valid */

/* strategy.c, more */
int ixr__strategies_report(ixr_runtime *rt, ixr_report_cb report, ixr_report_cb warn,
                           void *ud);
/* ixr_check_options with the warnings through their own callback (also
 * declared in cli.h, for ixr check). */
int ixr__check(const ixr_options *opt, ixr_report_cb report, ixr_report_cb warn, void *ud);

/* timer.c, more */
void ixr__timers_free(ixr_runtime *rt);

/* A debug-build check that a function left the stack as it found it. */
#ifdef NDEBUG
#define IXR_STACK_CHECK(L, top, delta) ((void)(top))
#else
#include <assert.h>
#define IXR_STACK_CHECK(L, top, delta) assert(lua_gettop(L) == (top) + (delta))
#endif

#define IXR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif /* IXR_INTERNAL_H */
