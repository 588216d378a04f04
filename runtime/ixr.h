/*
 * ixr.h: the public interface of libixr, the interaction handler runtime.
 *
 * This is the only header an embedding program includes. Everything here is
 * stable within a major version; everything not here is private.
 *
 * Threading: a runtime belongs to the thread that runs its uv loop. Every
 * ixr_ call for one runtime must be made on that thread. Different runtimes
 * share nothing and may run on different threads at the same time.
 *
 * Errors: functions that can fail return 0 or a negative IXR_E* code;
 * ixr_strerror() and ixr_err_name() describe a code. No function calls
 * exit() or abort() because of bad input or a failing strategy.
 */
#ifndef IXR_H
#define IXR_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IXR_VERSION_MAJOR 0
#define IXR_VERSION_MINOR 1
#define IXR_VERSION_PATCH 0
#define IXR_VERSION_STRING "0.1.0"
#define IXR_VERSION_HEX \
  ((IXR_VERSION_MAJOR << 16) | (IXR_VERSION_MINOR << 8) | IXR_VERSION_PATCH)

#if defined(__GNUC__)
#define IXR_EXTERN __attribute__((visibility("default")))
#else
#define IXR_EXTERN
#endif

/* Error codes: XX(name, message). The code of IXR_E<name> is negative.
 * IXR_ELUA and IXR_ELIMIT are reserved: no function of this version returns
 * them (a Lua state that cannot be made is IXR_ENOMEM; a strategy over a
 * limit is reported in the output, as limit_exceeded). */
#define IXR_ERRNO_MAP(XX)                                              \
  XX(INVAL, "invalid argument")                                        \
  XX(NOMEM, "out of memory")                                           \
  XX(IO, "input/output error")                                         \
  XX(CLOSED, "the runtime is closing or closed")                       \
  XX(ADDR, "bad address (expected unix:PATH or tcp:HOST:PORT)")        \
  XX(NOENT, "no such file or directory")                               \
  XX(LUA, "the Lua state could not be set up")   /* reserved */         \
  XX(STRATEGY, "a strategy failed to load")                            \
  XX(BUSY, "not now: the runtime is running or busy here")             \
  XX(LOOP, "the runtime runs on a loop it does not own")               \
  XX(LISTEN, "could not listen on the address")                        \
  XX(NOTFOUND, "no such session")                                      \
  XX(LIMIT, "a limit was exceeded")              /* reserved */

typedef enum {
  IXR_OK = 0,
#define IXR__ERR_ENUM(name, msg) IXR_E##name,
  IXR__ERR_FIRST = -1000,
  IXR_ERRNO_MAP(IXR__ERR_ENUM)
#undef IXR__ERR_ENUM
  IXR__ERR_LAST
} ixr_errno;

typedef struct ixr_runtime ixr_runtime;

/* What an output line is. */
typedef enum {
  IXR_OUT_SESSION = 1, /* {"type":"session",...}: started/suspended/resumed/ended */
  IXR_OUT_ACTION = 2,  /* {"type":"action",...}: a strategy asks for an action */
  IXR_OUT_ERROR = 3,   /* {"type":"error",...}: an input or strategy error */
  IXR_OUT_REPLY = 4    /* {"type":"reply",...}: answer to an ixr.* control event */
} ixr_output_type;

/*
 * One output line. `json` is the complete line without its newline, and
 * NUL-terminated (json[json_len] is '\0'); the other fields are a structured
 * view of it for hosts that do not want to parse JSON (NULL when the line
 * has no such field). Every pointer is valid only during the callback.
 */
typedef struct ixr_output {
  ixr_output_type type;
  const char *json;
  size_t json_len;
  const char *session;       /* "s1" */
  const char *interactionid; /* may contain NUL bytes: see interactionid_len */
  size_t interactionid_len;
  const char *state;     /* session lines: started|suspended|resumed|ended */
  const char *reason;    /* session lines: suspend or end reason */
  const char *strategy;  /* session lines: the session's strategy (the JSON
                            line names it on started lines only) */
  const char *action;    /* action lines: the action name */
  const char *requestid; /* action lines: "r1" */
  const char *args_json; /* action lines: the args object, as JSON (a slice
                            of `json`, not NUL-terminated) */
  size_t args_len;
  const char *error;     /* error lines: the error code, e.g. "bad_json" */
  const char *message;   /* error lines: a readable message */
} ixr_output;

/*
 * Output callback for events fed through ixr_feed()/ixr_feed_event(). It may
 * call ixr_feed() or ixr_feed_event() again: such input is copied, queued
 * and processed, in order, as soon as the event (or timer) being processed
 * is finished, before the rest of what the host fed. Bytes fed there are
 * framed on their own: they never join a partial line of the host's.
 */
typedef void (*ixr_output_cb)(void *ud, const ixr_output *out);

typedef enum {
  IXR_LOG_ERROR = 0,
  IXR_LOG_WARN = 1,
  IXR_LOG_INFO = 2,
  IXR_LOG_DEBUG = 3,
  IXR_LOG_TRACE = 4
} ixr_log_level;

/* Log callback. `msg` is one line without a newline. Default: stderr.
 * It must not call back into the runtime. */
typedef void (*ixr_log_cb)(void *ud, ixr_log_level level, const char *msg);

typedef enum { IXR_CLOCK_REAL = 0, IXR_CLOCK_MANUAL = 1 } ixr_clock;

/* The range of ixr_options.start_time_ms: about 31,000 years either side
 * of 1970. */
#define IXR_START_TIME_MAX 1000000000000000LL

/*
 * Input callback: every input line, as received (without its newline),
 * with the runtime clock's time in ms, before it is decoded. For recording
 * traffic (ixr run --record). Lines of control connections
 * (ixr_listen_control) are not events and are not passed. A line longer
 * than max_line, which the runtime skips with a line_too_long error, is
 * passed as line NULL, len the bytes of it read (more than max_line), so a
 * record can note where it was. Must not feed the runtime.
 */
typedef void (*ixr_input_cb)(void *ud, const char *line, size_t len,
                             uint64_t now_ms);

/* Trace callback: one readable line per step (event in, handler chosen
 * with its FILE:LINE, action out, session state change). */
typedef void (*ixr_trace_cb)(void *ud, const char *line);

typedef struct ixr_options {
  const char *handlers_dir; /* strategies; default "handlers" */
  const char *lua_dir;      /* standard library; default: the installed one,
                               or $IXR_LUA_DIR when set */
  ixr_clock clock;          /* IXR_CLOCK_MANUAL: time moves only on clock.advance */
  int64_t start_time_ms;    /* manual clock: the wall-clock time at runtime
                               clock 0, in ms since 1970-01-01 UTC, which
                               os.time() and os.date() count from (so tests
                               and replays see the same dates); default 0,
                               1970-01-01T00:00:00Z; at most
                               IXR_START_TIME_MAX either way (checked on
                               either clock). Not used on the real clock,
                               where they read the system's clock */
  uv_loop_t *loop;          /* the host's loop, or NULL for a loop of its own */
  ixr_output_cb on_output;  /* output of ixr_feed()/ixr_feed_event() */
  void *output_ud;
  ixr_log_cb on_log;
  void *log_ud;
  ixr_log_level log_level;  /* default IXR_LOG_INFO */
  size_t max_line;          /* longest input line in bytes; default 1 MiB */
  size_t max_connections;   /* connections of ixr_listen open at once (each
                               may hold up to max_line bytes of a line in
                               progress); more wait, unread, until one
                               closes, with a warning; default 1024 */
  size_t max_held;          /* output lines held while no stream is open
                               (or while the only new one settles);
                               default 100000 */
  ixr_input_cb on_input;    /* NULL: no recording */
  void *input_ud;
  ixr_trace_cb on_trace;    /* NULL: no tracing (and no cost) */
  void *trace_ud;
  /* Limits on strategies. A call into Lua (one event for one session, one
   * timer, one file load) that breaks one fails with limit_exceeded, and
   * a flow that does so ends its session with reason "error"; a pcall in
   * the script cannot catch it. 0 means no limit. */
  uint64_t max_instructions; /* per call; default 10,000,000; counted in
                                steps of 1,000 instructions */
  size_t max_memory;         /* the whole Lua state; default 4 GiB */
  size_t max_call_growth;    /* net heap growth in one call (a soft
                                per-session limit); default 0. Loading a
                                file is a call too: a few KiB keep the
                                standard library from loading */
  /* Called inside ixr_new once the Lua state exists and before any
   * strategy loads: the place to ixr_register() host functions that
   * strategies require at load time. */
  void (*on_setup)(ixr_runtime *rt, void *ud);
  void *setup_ud;
} ixr_options;

/* Fills `o` with the defaults. */
IXR_EXTERN void ixr_options_init(ixr_options *o);

/*
 * Creates a runtime and loads every strategy in the handlers directory.
 * If SIGPIPE still has its default disposition, it is set to ignored (a
 * peer that disconnects must not kill the process); a handler the host
 * installed is left alone. A
 * strategy that fails to load is logged and answers strategy_error; it does
 * not stop the runtime from starting. Returns 0 and sets *out, or an error.
 * On failure with the host's loop (options.loop), the handles ixr had made
 * are closing: run the loop once (uv_run(loop, UV_RUN_NOWAIT)) before
 * uv_loop_close(), as after ixr_close().
 */
IXR_EXTERN int ixr_new(ixr_runtime **out, const ixr_options *o);

/*
 * Feeds NDJSON bytes (any split: partial lines are kept until their newline).
 * Complete lines are processed before this returns, and their output goes to
 * on_output. ixr_feed_end() processes a last line that has no newline.
 * From on_setup, or from a host function while strategy files load (in
 * ixr_new or ixr_reload), feeding returns IXR_EBUSY: no event may run
 * under strategies half loaded.
 */
IXR_EXTERN int ixr_feed(ixr_runtime *rt, const char *bytes, size_t len);
IXR_EXTERN int ixr_feed_end(ixr_runtime *rt);

/*
 * A structured event, for hosts that have the fields at hand: no JSON is
 * written or parsed. `data` is a flat list of fields; IXR_V_OBJECT and
 * IXR_V_ARRAY open a nested value whose fields follow, up to the matching
 * IXR_V_END (keys are ignored inside arrays). Strings must be valid UTF-8;
 * `len` 0 means NUL-terminated. Nesting is limited as in the JSON line the
 * event stands for: 64 levels counting the event and `data`, so 62 below
 * `data`. Fed from a callback, the event is checked at once (IXR_EINVAL)
 * and copied, then queued as ixr_feed() input is.
 */
typedef enum {
  IXR_V_STRING = 1,
  IXR_V_INT = 2,
  IXR_V_DOUBLE = 3,
  IXR_V_BOOL = 4,
  IXR_V_NULL = 5,
  IXR_V_OBJECT = 6,
  IXR_V_ARRAY = 7,
  IXR_V_END = 8
} ixr_value_type;

typedef struct ixr_field {
  const char *key;
  ixr_value_type type;
  const char *str; /* IXR_V_STRING */
  size_t len;
  int64_t i;       /* IXR_V_INT */
  double d;        /* IXR_V_DOUBLE */
  int b;           /* IXR_V_BOOL */
} ixr_field;

/*
 * Feeds one event {"name": name, "data": {fields}}, processed before this
 * returns; output goes to on_output as for ixr_feed(). Returns IXR_EINVAL
 * for malformed fields (unbalanced nesting, invalid UTF-8, a NULL key in
 * an object), and nothing is dispatched then.
 */
IXR_EXTERN int ixr_feed_event(ixr_runtime *rt, const char *name,
                              const ixr_field *data, size_t n);

/*
 * Serves a stream of events on file descriptors (a pipe, a tty or a regular
 * file for input; output is written to out_fd). With IXR_SERVE_STOP_AT_EOF
 * the runtime stops once the input ends and all output is written, or once
 * reading or writing fails (counted in ixr_stats.fd_stream_failures). The
 * descriptors' file status flags (O_NONBLOCK) are put back when the stream
 * ends.
 */
#define IXR_SERVE_STOP_AT_EOF 1u
IXR_EXTERN int ixr_serve_fd(ixr_runtime *rt, int in_fd, int out_fd,
                            unsigned flags);

/* Listens on "unix:PATH" or "tcp:HOST:PORT"; each connection is a stream.
 * IXR_EADDR: the address is not of that form. IXR_ELISTEN: it is, but
 * cannot be listened on (logged with the reason: a host name that does not
 * resolve, a unix path too long or in a directory that does not exist, an
 * address in use, a live socket there already). */
IXR_EXTERN int ixr_listen(ixr_runtime *rt, const char *addr);

/* The same for a control socket: its connections may send only ixr.*
 * control events (ixr.reload, ixr.status), and get no session output. */
IXR_EXTERN int ixr_listen_control(ixr_runtime *rt, const char *addr);

/* Runs the runtime's own loop until ixr_stop() (or ixr_close() from a
 * callback, which also frees the runtime before this returns). IXR_ELOOP
 * on a host loop; IXR_EBUSY while running, and from a callback or a host
 * function (the loop would run other events inside the one in progress). */
IXR_EXTERN int ixr_run(ixr_runtime *rt);

/*
 * Stops serving: listeners close, streams stop reading, write the output
 * already produced and close (a peer that has not taken its output within
 * 5 seconds is disconnected). ixr_run() returns once that is done.
 */
IXR_EXTERN void ixr_stop(ixr_runtime *rt);

/*
 * Frees the runtime. On its own loop this finishes closing before it returns.
 * On a host loop the handles close asynchronously: the memory is released in
 * their close callbacks, so the host must run its loop once more (for example
 * uv_run(loop, UV_RUN_DEFAULT) until it returns). `rt` must not be used after
 * this call either way.
 *
 * Called from inside one of the runtime's callbacks (an output callback, a
 * host function a strategy called, on_setup), the close is
 * deferred: from then on every call answers IXR_ECLOSED and no more output
 * is delivered, and the runtime is freed when the outermost ixr_ call (or
 * the runtime's libuv callback) returns; ixr_run() returns then.
 */
IXR_EXTERN void ixr_close(ixr_runtime *rt);

/* What a reload did. */
typedef struct ixr_reload_result {
  int ok;              /* 1: the new generation serves; 0: rejected, the old
                          one keeps serving */
  uint64_t generation; /* the generation in service after the reload */
  unsigned files;      /* strategy files loaded */
  unsigned changed;    /* strategies added, changed or removed */
  double ms;           /* how long the loop was busy with it */
  char errors[4096];   /* "FILE:LINE: message" lines, newline separated
                          (truncated to fit) */
} ixr_reload_result;

/*
 * Reloads every strategy and the standard library into a new generation.
 * Only when every file loads and validates is it put in service, between
 * two events; otherwise the old generation keeps serving and the errors
 * are reported. New sessions use the new generation; existing sessions
 * handle their next event with it (unless their strategy has pin = true);
 * a flow waiting in request/wait finishes on the code it started with.
 * Returns 0 when swapped in, IXR_ESTRATEGY when rejected, IXR_EBUSY when
 * called from an output callback. `res` may be NULL.
 */
IXR_EXTERN int ixr_reload(ixr_runtime *rt, ixr_reload_result *res);

/*
 * Watches the handlers directory and the standard library (and their
 * subdirectories, 8 levels down) for changes, and reloads `debounce_ms`
 * after the last change of a burst (editors write a file in several
 * steps), but no later than a second (or debounce_ms, if longer) after the
 * burst's first change, when the name or the bytes of
 * a .lua file changed. A top directory replaced (mv, a symlink switched)
 * is watched again where its path leads; a .lua file that is a symlink is
 * followed. Changes made since ixr_new read the files are seen.
 */
IXR_EXTERN int ixr_watch(ixr_runtime *rt, unsigned debounce_ms);

/* Counts of live sessions by state. */
typedef struct ixr_stats {
  uint64_t sessions_active;
  uint64_t sessions_suspended;
  uint64_t sessions_started;  /* since the runtime was created */
  uint64_t sessions_ended;
  uint64_t events_in;
  uint64_t lines_out;
  uint64_t errors;
  uint64_t held_dropped;      /* output lines dropped while no stream was open */
  uint64_t limit_kills;       /* calls killed by a limit */
  uint64_t lua_bytes;         /* memory used by the Lua state */
  uint64_t generation;        /* strategy generation in service */
  uint64_t gc_cycles;         /* Lua collection cycles completed (paced by ixr) */
  uint64_t gc_steps;          /* collector steps taken */
  /* Time the runtime spent collecting, during which it handles nothing:
   * in all, the longest single pause since it was created, and the
   * longest of the last complete cycle. The longest is the cycle's atomic
   * step, which grows with the number of waiting flows (0.2 to 0.5 us
   * each here; docs/performance.md). */
  uint64_t gc_ns;
  uint64_t gc_pause_max_ns;
  uint64_t gc_pause_last_cycle_ns;
  /* Streams of ixr_serve_fd() that ended because reading or writing their
   * descriptors failed (a full disk, a reader that went away): what they
   * carried was not all handled or not all delivered. */
  uint64_t fd_stream_failures;
  /* The wall-clock time at runtime clock 0, in ms since 1970-01-01 UTC:
   * on the real clock, when the runtime started (a recorder keeps it, so
   * that a replay's os.time() is the run's); on the manual clock, the
   * start_time_ms option. */
  int64_t start_time_ms;
} ixr_stats;

IXR_EXTERN int ixr_get_stats(ixr_runtime *rt, ixr_stats *st);

/* One live session. The strings belong to the runtime: valid until the
 * next call into it. */
typedef struct ixr_session_info {
  char id[24];          /* "s1" */
  const char *state;    /* "active" | "suspended" */
  const char *strategy; /* its strategy's name */
  uint64_t generation;  /* the strategy generation its code comes from */
} ixr_session_info;

/* Looks up the session that owns an interaction: 0, or IXR_ENOTFOUND. The
 * id is `len` bytes (0 is the empty id: unlike ixr_field, not "up to the
 * NUL"; pass strlen(id)). */
IXR_EXTERN int ixr_session_find(ixr_runtime *rt, const char *interactionid,
                                size_t len, ixr_session_info *out);

/*
 * Exposes a C function to strategies as require("<module>").<name>. The
 * function is a plain lua_CFunction (include <lua.h> to write one); `ud`
 * is its first upvalue: lua_touserdata(L, lua_upvalueindex(1)). It runs
 * inside ixr's protected call and under the same limits as the strategy
 * that calls it: raise errors with luaL_error, never longjmp out of it
 * otherwise. Modules named "ixr" or "ixr.*" are reserved. Register from
 * ixr_options.on_setup so that strategies can require the module when they
 * load; registered later, it is there for the next reload and for
 * require() calls made at run time.
 */
struct lua_State;
typedef int (*ixr_lua_function)(struct lua_State *L);
IXR_EXTERN int ixr_register(ixr_runtime *rt, const char *module,
                            const char *name, ixr_lua_function fn, void *ud);

/* Advances the manual clock by `ms` and fires every timer due by then. */
IXR_EXTERN int ixr_advance(ixr_runtime *rt, uint64_t ms);

/*
 * Loads every strategy in `handlers_dir` and reports each problem through
 * `report` as "FILE:LINE: message", then each warning (what loads but looks
 * misspelt) as "FILE:LINE: warning: message". Returns the number of
 * problems (0 when all load; warnings are not counted), or a negative error
 * when the directory cannot be read.
 */
typedef void (*ixr_report_cb)(void *ud, const char *line);
IXR_EXTERN int ixr_check(const char *handlers_dir, const char *lua_dir,
                         ixr_report_cb report, void *ud);
/* The same with a host's options: its handlers_dir, lua_dir, limits and
 * on_setup (so strategies that require host modules check cleanly). */
IXR_EXTERN int ixr_check_options(const ixr_options *o, ixr_report_cb report,
                                 void *ud);

IXR_EXTERN const char *ixr_strerror(int err);
IXR_EXTERN const char *ixr_err_name(int err);
IXR_EXTERN const char *ixr_version(void);
IXR_EXTERN unsigned ixr_version_hex(void);

#ifdef __cplusplus
}
#endif
#endif /* IXR_H */
