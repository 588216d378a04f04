/*
 * stream.c: event streams over file descriptors and sockets.
 *
 * A stream reads NDJSON, frames it into lines (framer.c), has each line
 * decoded and dispatched, and writes the output lines back. It is also a
 * sink (output.c): sessions write to the stream that last sent an event for
 * their interaction.
 *
 * Output is appended to the stream's buffer and written once per loop
 * iteration (a uv_prepare handle flushes every stream with output before the
 * loop polls), so a burst of lines costs one write. Backpressure: when more
 * than HIGH_WATER bytes wait to be written, the stream stops reading its
 * input until the writes drain below LOW_WATER. A client that lets more than
 * HARD_LIMIT bytes pile up, of which the kernel takes nothing for STALL_MS
 * (it does not read), is disconnected; one that reads keeps its output (one
 * event may well produce more than HARD_LIMIT, and held output delivered on
 * a reconnect does), up to ABSOLUTE_LIMIT. The kernel frees a socket's send
 * space in coarse steps, so a reader of a few kilobytes a second can look
 * stalled: at that pace 64 MiB take hours anyway.
 *
 * Regular files and character devices (such as /dev/null) cannot be polled:
 * input from a file is read with uv_fs_read, and output to one is written
 * with plain blocking write(2), as any filter does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define READ_CHUNK (64 * 1024)
#define HIGH_WATER (1024 * 1024)
#define LOW_WATER (256 * 1024)
#define HARD_LIMIT (64 * 1024 * 1024)
#define STALL_MS 10000
#define ABSOLUTE_LIMIT ((size_t)1024 * 1024 * 1024)


typedef enum { IN_STREAM, IN_FILE } in_kind;
typedef enum { OUT_STREAM, OUT_FILE, OUT_SAME } out_kind;

typedef struct ixr__stream ixr__stream;
struct ixr__stream {
  ixr__sink sink; /* first: a sink pointer is a stream pointer */
  ixr_runtime *rt;
  ixr__stream *next_stream, *prev_stream;
  ixr__framer framer;
  char *rbuf;
  char *rbuf2; /* IN_FILE: the read ahead goes here, in turn with rbuf */
  int rhalf;   /* IN_FILE: the buffer of the read in flight (0: rbuf) */
  unsigned flags;
  char name[64];

  in_kind in;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
    uv_tty_t tty;
  } h; /* the input handle; also the output for sockets */
  bool h_open;
  uv_fs_t fsreq; /* IN_FILE */
  int in_fd;
  int64_t file_off;
  bool fs_busy;

  out_kind out;
  int out_fd;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } oh; /* a separate output handle (stdio) */
  bool oh_open;

  ixr__buf obuf;      /* output not yet handed to the kernel */
  size_t pending;     /* bytes in uv_write requests not yet completed */
  uint64_t handed;    /* bytes ever given to uv_write */
  uint64_t stall_written; /* over HARD_LIMIT: what the peer had taken, */
  uint64_t stall_since;   /* since when (loop ms; 0: not over) */
  bool reading;       /* input is being read */
  bool paused;        /* reading stopped by backpressure */
  bool eof;           /* input ended */
  bool closing;
  bool failed;        /* reading or writing failed */
  size_t *counted;    /* the connection count it is in, or NULL */
  bool half_closed_wait; /* its unix peer shut its sending side before it
                            settled: kept open until it would settle */
  int busy;           /* inside one of its own read callbacks: not freed */
  bool dirty;         /* on the flush list */
  ixr__stream *next_dirty;
  /* ixr_serve_fd: the descriptors' file status flags before libuv made
   * them non-blocking (-1: not changed). The open file descriptions are
   * shared (a shell's pipe, stderr after 2>&1), so they are put back. */
  int in_fl, out_fl;
};

typedef struct ixr__listener ixr__listener;
struct ixr__listener {
  ixr_runtime *rt;
  ixr__listener *next;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h;
  char *unix_path;
  struct stat unix_st; /* the socket file bound, to unlink only that one */
  bool closing;
  bool control_only;
  /* The connections were at their cap: one accepted by the kernel waits
   * for uv_accept (libuv stops watching the listener meanwhile, and the
   * next ones wait in the backlog) until a connection closes. waiting: 0,
   * or the order it began to wait in (the oldest is served first). */
  uint64_t waiting;
};

typedef struct write_req {
  uv_write_t req;
  ixr__stream *st;
  char *data;
  size_t len;
} write_req;

static void stream_close(ixr__stream *st);

#define CONTROL_MAX_LINE (64 * 1024) /* bytes of a control connection's line */
#define CONTROL_MAX_CONNS 64         /* control connections at once */
static void stream_fail(ixr__stream *st);
static void leave_callback(ixr__stream *st);
static void start_reading(ixr__stream *st);
static bool flush(ixr__stream *st);

/* ---- the flush list --------------------------------------------------- */

/*
 * The prepare handle is unreferenced while nothing waits to be flushed, so
 * that it keeps no loop alive by itself. Output waiting for it must keep the
 * loop alive, though: otherwise the lines produced by the last input of a
 * stream (whose read handle is no longer active) would never be written,
 * because uv_run would return before the next prepare phase.
 */
static void mark_dirty(ixr__stream *st) {
  ixr_runtime *rt = st->rt;
  if (st->dirty) return;
  st->dirty = true;
  if (rt->dirty_streams == NULL && rt->prepare_open)
    uv_ref((uv_handle_t *)&rt->prepare);
  st->next_dirty = (ixr__stream *)rt->dirty_streams;
  rt->dirty_streams = st;
}

/* Takes a stream off the flush list (before it is freed). */
static void unmark_dirty(ixr__stream *st) {
  ixr_runtime *rt = st->rt;
  if (!st->dirty) return;
  ixr__stream **pp = (ixr__stream **)&rt->dirty_streams;
  while (*pp != st) pp = &(*pp)->next_dirty;
  *pp = st->next_dirty;
  st->dirty = false;
  if (rt->dirty_streams == NULL && rt->prepare_open)
    uv_unref((uv_handle_t *)&rt->prepare);
}

/* Writes the output of every stream that has some. */
static void flush_dirty(ixr_runtime *rt) {
  while (rt->dirty_streams != NULL) {
    ixr__stream *st = rt->dirty_streams;
    rt->dirty_streams = st->next_dirty;
    st->dirty = false;
    flush(st);
  }
}

static void on_prepare(uv_prepare_t *h) {
  flush_dirty(h->data);
  uv_unref((uv_handle_t *)h);
}

/* ---- output ----------------------------------------------------------- */

static void stream_write(ixr__sink *sk, const ixr_output *out) {
  ixr__stream *st = (ixr__stream *)sk;
  if (st->closing) return;
  if (ixr__buf_reserve(&st->obuf, out->json_len + 1) != 0) {
    ixr__log(st->rt, IXR_LOG_ERROR, "%s: out of memory for output: closing",
             st->name);
    stream_fail(st);
    return;
  }
  memcpy(st->obuf.data + st->obuf.len, out->json, out->json_len);
  st->obuf.len += out->json_len;
  st->obuf.data[st->obuf.len++] = '\n';
  mark_dirty(st);
}

static void maybe_finish(ixr__stream *st);

/* Reading or writing failed: the stream closes, and counts as failed. */
static void stream_fail(ixr__stream *st) {
  st->failed = true;
  stream_close(st);
}

static void on_write(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  ixr__stream *st = w->st;
  st->pending -= w->len;
  free(w->data);
  free(w);
  if (status < 0 && status != UV_ECANCELED && !st->closing) {
    ixr__log(st->rt, IXR_LOG_WARN, "%s: write failed (%s): closing", st->name,
             uv_strerror(status));
    stream_fail(st);
    return;
  }
  if (st->closing) return;
  if (st->paused && st->pending < LOW_WATER) {
    st->paused = false;
    start_reading(st);
  }
  maybe_finish(st);
}

static uv_stream_t *out_stream(ixr__stream *st) {
  return st->out == OUT_SAME ? &st->h.stream : &st->oh.stream;
}

static void on_stall_timer(uv_timer_t *t);

/* Has the peer stopped reading while too much output waits for it? Checked
 * whenever more output is handed over (only that makes the pile grow).
 * Progress is what the kernel took from libuv's queue since the last check,
 * not completed writes: one write of a large burst completes only at its
 * end. */
static bool over_limit(ixr__stream *st, uv_stream_t *os) {
  if (st->pending <= HARD_LIMIT) {
    st->stall_since = 0;
    return false;
  }
  uint64_t now = uv_now(st->rt->loop);
  uint64_t written = st->handed - uv_stream_get_write_queue_size(os);
  if (st->pending > ABSOLUTE_LIMIT) {
    ixr__log(st->rt, IXR_LOG_WARN,
             "%s: %zu bytes of output wait for the peer, over the limit of %zu: "
             "disconnecting it", st->name, st->pending, ABSOLUTE_LIMIT);
    return true;
  }
  if (st->stall_since == 0 || written != st->stall_written) {
    st->stall_since = now != 0 ? now : 1;
    st->stall_written = written;
    /* Checked again each second even if no more output comes for it. */
    ixr_runtime *rt = st->rt;
    if (rt->stall_timer_open && !uv_is_active((uv_handle_t *)&rt->stall_timer))
      uv_timer_start(&rt->stall_timer, on_stall_timer, 1000, 1000);
    return false;
  }
  if (now - st->stall_since < STALL_MS) return false;
  ixr__log(st->rt, IXR_LOG_WARN,
           "%s: the kernel has taken none of the %zu bytes of output waiting for "
           "the peer for %d s (it reads nothing, or very slowly): disconnecting it",
           st->name, st->pending, STALL_MS / 1000);
  return true;
}

/* Each second while a connection has more than HARD_LIMIT bytes unread:
 * a peer that stopped reading after one large burst is cut too. */
static void on_stall_timer(uv_timer_t *t) {
  ixr_runtime *rt = t->data;
  bool any = false;
  rt->in_uv_cb++;
  for (ixr__stream *st = rt->streams, *next; st != NULL; st = next) {
    next = st->next_stream;
    if (st->closing || st->pending <= HARD_LIMIT || st->out == OUT_FILE) continue;
    if (over_limit(st, out_stream(st))) stream_fail(st);
    else any = true;
  }
  if (!any) uv_timer_stop(t);
  rt->in_uv_cb--;
  ixr__leave(rt);
}

/* Writes what the stream has buffered. False when the stream may be gone
 * (finished or failed: closing it can free it at once), true when it is
 * still there and open. */
static bool flush(ixr__stream *st) {
  if (st->obuf.len == 0 || st->closing) return !st->closing;
  if (st->out == OUT_FILE) {
    size_t off = 0;
    while (off < st->obuf.len) {
      ssize_t n = write(st->out_fd, st->obuf.data + off, st->obuf.len - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) { /* a non-blocking fd we do not own: wait a bit */
          usleep(1000);
          continue;
        }
        ixr__log(st->rt, IXR_LOG_ERROR, "%s: write failed (%s): closing",
                 st->name, strerror(errno));
        st->obuf.len = 0;
        stream_fail(st);
        return false;
      }
      off += (size_t)n;
    }
    st->obuf.len = 0;
    maybe_finish(st);
    return false;
  }
  /* Hand the whole buffer to one uv_write; try a direct write first. */
  uv_stream_t *os = out_stream(st);
  uv_buf_t b = uv_buf_init(st->obuf.data, (unsigned)st->obuf.len);
  if (st->pending == 0) {
    int n = uv_try_write(os, &b, 1);
    if (n > 0) {
      ixr__buf_consume(&st->obuf, (size_t)n);
      if (st->obuf.len == 0) {
        maybe_finish(st);
        return false;
      }
      b = uv_buf_init(st->obuf.data, (unsigned)st->obuf.len);
    } else if (n < 0 && n != UV_EAGAIN) {
      ixr__log(st->rt, IXR_LOG_WARN, "%s: write failed (%s): closing", st->name,
               uv_strerror(n));
      st->obuf.len = 0;
      stream_fail(st);
      return false;
    }
  }
  write_req *w = malloc(sizeof(*w));
  if (w == NULL) return true; /* retried at the next flush */
  w->st = st;
  w->data = st->obuf.data;
  w->len = st->obuf.len;
  st->obuf.data = NULL;
  st->obuf.len = st->obuf.cap = 0;
  int rc = uv_write(&w->req, os, &b, 1, on_write);
  if (rc != 0) {
    free(w->data);
    free(w);
    ixr__log(st->rt, IXR_LOG_WARN, "%s: write failed (%s): closing", st->name,
             uv_strerror(rc));
    stream_fail(st);
    return false;
  }
  st->pending += w->len;
  st->handed += w->len;
  if (over_limit(st, os)) {
    stream_fail(st);
    return false;
  }
  if (st->pending > HIGH_WATER && st->reading) {
    st->paused = true;
    if (st->in == IN_STREAM) uv_read_stop(&st->h.stream);
    st->reading = false;
  }
  return true;
}

/* ---- input ------------------------------------------------------------ */

static void on_line(void *ud, const char *line, size_t len, uint64_t lineno,
                    ixr__line_status status) {
  ixr__stream *st = ud;
  ixr_runtime *rt = st->rt;
  if (rt->closing) return;
  if (status == IXR__LINE_TOO_LONG) {
    ixr__skip_line(rt, &st->sink, len, lineno, st->framer.max_line);
    return;
  }
  ixr__decode_and_dispatch(rt, &st->sink, line, len, lineno);
}

static void input_ended(ixr__stream *st) {
  st->eof = true;
  st->reading = false;
  ixr__framer_finish(&st->framer, on_line, st);
  mark_dirty(st);
  maybe_finish(st);
}

/* Reading failed (libuv's error rc): the input ends there, and the
 * stream counts as failed. */
static void input_failed(ixr__stream *st, int rc) {
  ixr__log(st->rt, IXR_LOG_WARN, "%s: read failed (%s)", st->name, uv_strerror(rc));
  st->failed = true;
  input_ended(st);
}

static void input_chunk(ixr__stream *st, const char *p, size_t n) {
  if (ixr__framer_push(&st->framer, p, n, on_line, st) != 0) {
    ixr__log(st->rt, IXR_LOG_ERROR, "%s: out of memory framing input: closing",
             st->name);
    stream_fail(st);
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  ixr__stream *st = h->data;
  (void)hint;
  *buf = uv_buf_init(st->rbuf, READ_CHUNK);
}

/* At the end of a connection's input: did the peer only shut its sending
 * side down, and is it still there to read? Told apart on unix sockets
 * only, where a peer that closed for good makes the socket hang up; on TCP
 * its FIN looks the same either way, so such a peer counts as a probe. */
static bool peer_half_closed(ixr__stream *st) {
  uv_os_fd_t fd;
  if (st->h.handle.type != UV_NAMED_PIPE || uv_fileno(&st->h.handle, &fd) != 0) return false;
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) == 0 &&
         (p.revents & POLLOUT) != 0;
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf) {
  ixr__stream *st = h->data;
  ixr_runtime *rt = st->rt;
  (void)buf;
  if (n == 0) return;
  rt->in_uv_cb++;
  st->busy++;
  if (n > 0) {
    /* A client that sends is no probe: what is held is older than
     * anything this input causes, so it goes first. */
    if (!st->sink.settled) ixr__sink_settle(rt, &st->sink);
    input_chunk(st, st->rbuf, (size_t)n);
    /* Answer what this read asked before reading more: libuv may call us
     * up to 32 times before the loop reaches the prepare phase. */
    if (!st->closing && st->obuf.len > 0) flush(st);
  } else {
    uv_read_stop(h);
    /* A reader (nc -U sock < /dev/null) or a probe that shuts down and
     * closes: which one, the settle time tells (on_settle_timer). */
    if (n == UV_EOF && !st->sink.settled && peer_half_closed(st))
      st->half_closed_wait = true;
    if (n != UV_EOF) input_failed(st, (int)n);
    else input_ended(st);
  }
  leave_callback(st);
  rt->in_uv_cb--;
  ixr__leave(rt);
}

static bool read_file(ixr__stream *st, bool final);

static void on_fs_read(uv_fs_t *req) {
  ixr__stream *st = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  st->fs_busy = false;
  if (st->closing || st->eof) { /* closed, or stopped by ixr_stop() */
    maybe_finish(st);
    return;
  }
  ixr_runtime *rt = st->rt;
  rt->in_uv_cb++;
  st->busy++;
  if (n > 0) {
    st->file_off += n;
    char *chunk = st->rhalf ? st->rbuf2 : st->rbuf;
    st->rhalf ^= 1;
    /* The next read runs on libuv's thread pool while this chunk is
     * processed, into the other buffer: the loop does not wait for it. */
    bool ahead = st->reading && read_file(st, false);
    input_chunk(st, chunk, (size_t)n);
    if (!ahead && !st->closing && st->reading) start_reading(st);
  } else {
    if (n < 0) input_failed(st, (int)n);
    else input_ended(st);
  }
  leave_callback(st);
  rt->in_uv_cb--;
  ixr__leave(rt);
}

static void start_reading(ixr__stream *st) {
  if (st->eof || st->closing || st->rt->stopping) return;
  st->reading = true;
  if (st->in == IN_STREAM) {
    int rc = uv_read_start(&st->h.stream, on_alloc, on_read);
    if (rc != 0) input_failed(st, rc);
    return;
  }
  if (st->fs_busy) return;
  if (st->pending > HIGH_WATER) {
    st->paused = true;
    st->reading = false;
    return;
  }
  read_file(st, true);
}

/* Starts the next read of an input file into the buffer not being
 * processed. A failure ends the input when `final`; otherwise it is left
 * for start_reading() to meet again (and report) once the chunk in hand
 * is done. True when a read is in flight. */
static bool read_file(ixr__stream *st, bool final) {
  if (st->fs_busy) return true;
  if (st->eof || st->closing || st->rt->stopping || st->pending > HIGH_WATER)
    return false;
  uv_buf_t b = uv_buf_init(st->rhalf ? st->rbuf2 : st->rbuf, READ_CHUNK);
  st->fsreq.data = st;
  int rc = uv_fs_read(st->rt->loop, &st->fsreq, st->in_fd, &b, 1, -1, on_fs_read);
  if (rc != 0) {
    if (final) input_failed(st, rc);
    return false;
  }
  st->fs_busy = true;
  return true;
}

/* ---- lifecycle -------------------------------------------------------- */

static void close_stop_timer(ixr_runtime *rt);

static void accept_waiting(ixr_runtime *rt, bool control);

static void free_stream(ixr__stream *st) {
  ixr_runtime *rt = st->rt;
  unmark_dirty(st);
  if (st->prev_stream) st->prev_stream->next_stream = st->next_stream;
  else rt->streams = st->next_stream;
  if (st->next_stream) st->next_stream->prev_stream = st->prev_stream;
  ixr__framer_free(&st->framer);
  ixr__buf_free(&st->obuf);
  free(st->rbuf);
  free(st->rbuf2);
  size_t *counted = st->counted;
  free(st);
  if (counted != NULL) {
    --*counted;
    accept_waiting(rt, counted == &rt->control_conns); /* a slot is free */
  }
  if (rt->streams == NULL) close_stop_timer(rt);
  ixr__handle_closed(rt);
}

/* A closed stream goes once nothing of libuv's and none of its own
 * callbacks still use it: a strategy may stop the runtime (and so finish
 * the stream) from inside the read callback that is handling its line. */
static bool can_free(const ixr__stream *st) {
  return !st->h_open && !st->oh_open && !st->fs_busy && st->busy == 0;
}

/* The end of a read callback: the stream may have been closed inside. */
static void leave_callback(ixr__stream *st) {
  if (--st->busy == 0 && st->closing && can_free(st)) free_stream(st);
}

static void on_handle_closed(uv_handle_t *h) {
  ixr__stream *st = h->data;
  if (h == &st->h.handle) st->h_open = false;
  else st->oh_open = false;
  if (can_free(st)) free_stream(st);
}

/* Once the input has ended and every byte is written, a stream is done:
 * closing it frees it; with IXR_SERVE_STOP_AT_EOF the runtime stops too. */
static void maybe_finish(ixr__stream *st) {
  if (st->closing) {
    if (can_free(st)) free_stream(st);
    return;
  }
  if (!st->eof || st->obuf.len > 0 || st->pending > 0 || st->half_closed_wait) return;
  stream_close(st);
}

/* Output first: when both descriptors share one open file description,
 * the input's flags are the ones from before either was changed. */
static void restore_flags(ixr__stream *st) {
  if (st->out_fl >= 0) (void)fcntl(st->out_fd, F_SETFL, st->out_fl);
  if (st->in_fl >= 0) (void)fcntl(st->in_fd, F_SETFL, st->in_fl);
  st->in_fl = st->out_fl = -1;
}

/* Closes a stream; one of IXR_SERVE_STOP_AT_EOF stops the runtime, also
 * when reading or writing it failed (nothing more can come of it). */
static void stream_close(ixr__stream *st) {
  if (st->closing) return;
  st->closing = true;
  ixr_runtime *rt = st->rt;
  bool stop_rt = (st->flags & IXR_SERVE_STOP_AT_EOF) != 0;
  if (st->failed && st->in_fd >= 0) rt->stats.fd_stream_failures++;
  ixr__sink_close(rt, &st->sink);
  if (st->in == IN_STREAM && st->reading) uv_read_stop(&st->h.stream);
  st->reading = false;
  restore_flags(st);
  if (st->h_open) {
    uv_close(&st->h.handle, on_handle_closed);
  }
  if (st->oh_open) {
    uv_close(&st->oh.handle, on_handle_closed);
  }
  if (st->in == IN_FILE && st->fs_busy) uv_cancel((uv_req_t *)&st->fsreq);
  if (can_free(st)) free_stream(st); /* nothing asynchronous to wait for */
  if (stop_rt) ixr_stop(rt);
}

static ixr__stream *stream_new(ixr_runtime *rt, const char *name) {
  ixr__stream *st = calloc(1, sizeof(*st));
  if (st == NULL) return NULL;
  st->rbuf = malloc(READ_CHUNK);
  if (st->rbuf == NULL) {
    free(st);
    return NULL;
  }
  st->rt = rt;
  st->sink.write = stream_write;
  ixr__framer_init(&st->framer, rt->opt.max_line);
  snprintf(st->name, sizeof(st->name), "%s", name);
  st->in_fd = -1;
  st->out_fd = -1;
  st->in_fl = st->out_fl = -1;
  st->next_stream = rt->streams;
  if (rt->streams) ((ixr__stream *)rt->streams)->prev_stream = st;
  rt->streams = st;
  rt->open_handles++; /* the stream as a whole; released in free_stream */
  return st;
}

/*
 * Opens fd as a libuv stream handle (pipe, tty or socket). *inited says
 * whether the handle was initialised, even when opening then failed: such
 * a handle must still be closed, and its memory (inside the stream) kept
 * until its close callback has run.
 */
static int open_handle(ixr_runtime *rt, int fd, uv_handle_type type,
                       uv_handle_t *h, bool readable, bool *inited) {
  int rc;
  *inited = false;
  if (type == UV_TTY) {
    rc = uv_tty_init(rt->loop, (uv_tty_t *)h, fd, readable);
    *inited = rc == 0;
  } else if (type == UV_NAMED_PIPE) {
    rc = uv_pipe_init(rt->loop, (uv_pipe_t *)h, 0);
    *inited = rc == 0;
    if (rc == 0) rc = uv_pipe_open((uv_pipe_t *)h, fd);
  } else if (type == UV_TCP) {
    rc = uv_tcp_init(rt->loop, (uv_tcp_t *)h);
    *inited = rc == 0;
    if (rc == 0) rc = uv_tcp_open((uv_tcp_t *)h, fd);
  } else {
    return UV_EINVAL;
  }
  return rc;
}

/* Whether something listens on a unix socket path: a stale socket of an
 * earlier run refuses the connection; a live one (another runtime's, or
 * another process's) accepts it or has a full backlog. */
static bool unix_socket_live(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  /* Only a refusal says no one listens. Anything else (EACCES: a socket
   * of another user, EAGAIN: a full backlog) may be a live server, which
   * must not be unlinked from under it. */
  bool live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != ECONNREFUSED;
  close(fd);
  return live;
}

int ixr_serve_fd(ixr_runtime *rt, int in_fd, int out_fd, unsigned flags) {
  if (rt == NULL || in_fd < 0 || out_fd < 0) return IXR_EINVAL;
  if (rt->closing || rt->stopping) return IXR_ECLOSED;
  /* A descriptor that is not open is an argument error now, not a read
   * error on the loop later. */
  if (fcntl(in_fd, F_GETFD) == -1 || fcntl(out_fd, F_GETFD) == -1)
    return IXR_EINVAL;
  ixr__stream *st = stream_new(rt, in_fd == 0 && out_fd == 1 ? "stdio" : "fd");
  if (st == NULL) return IXR_ENOMEM;
  st->flags = flags;
  st->in_fd = in_fd;
  st->out_fd = out_fd;
  uv_handle_type it = uv_guess_handle(in_fd);
  uv_handle_type ot = uv_guess_handle(out_fd);
  int rc = 0;
  if (it == UV_FILE || it == UV_UNKNOWN_HANDLE) {
    st->in = IN_FILE;
    if ((st->rbuf2 = malloc(READ_CHUNK)) == NULL) {
      rc = IXR_ENOMEM;
      goto fail;
    }
  } else {
    st->in = IN_STREAM;
    st->in_fl = fcntl(in_fd, F_GETFL);
    rc = open_handle(rt, in_fd, it, &st->h.handle, true, &st->h_open);
    st->h.handle.data = st; /* after init, which may reset it */
    if (rc != 0) goto fail;
  }
  if (ot == UV_FILE || ot == UV_UNKNOWN_HANDLE) {
    st->out = OUT_FILE;
  } else if (in_fd == out_fd && st->in == IN_STREAM) {
    st->out = OUT_SAME;
  } else {
    st->out = OUT_STREAM;
    st->out_fl = fcntl(out_fd, F_GETFL);
    rc = open_handle(rt, out_fd, ot, &st->oh.handle, false, &st->oh_open);
    st->oh.handle.data = st;
    if (rc != 0) goto fail;
  }
  st->sink.settled = true; /* the host's own descriptors: no probe */
  rc = ixr__sink_open(rt, &st->sink);
  if (rc != 0) {
    stream_close(st);
    return rc;
  }
  start_reading(st);
  return 0;
fail:
  ixr__log(rt, IXR_LOG_ERROR, "cannot serve fds %d/%d: %s", in_fd, out_fd,
           uv_strerror(rc));
  st->closing = true;
  ixr__sink_close(rt, &st->sink);
  restore_flags(st);
  /* Every initialised handle closes first; the last close frees the stream. */
  bool h = st->h_open, oh = st->oh_open;
  if (h) uv_close(&st->h.handle, on_handle_closed);
  if (oh) uv_close(&st->oh.handle, on_handle_closed);
  if (!h && !oh) free_stream(st);
  return IXR_EIO;
}

/* ---- listeners -------------------------------------------------------- */

/* Settles the connections open for IXR__SETTLE_MS that have sent nothing
 * yet; comes back for the next one. */
static void on_settle_timer(uv_timer_t *t) {
  ixr_runtime *rt = t->data;
  uint64_t now = uv_now(rt->loop), next = 0;
  rt->in_uv_cb++;
  for (ixr__stream *st = rt->streams, *after; st != NULL; st = after) {
    after = st->next_stream;
    ixr__sink *sk = &st->sink;
    if (st->closing || !sk->open || sk->settled || sk->control_only) continue;
    uint64_t due = sk->opened_ms + IXR__SETTLE_MS;
    if (due > now) {
      if (next == 0 || due < next) next = due;
      continue;
    }
    if (!st->half_closed_wait) {
      ixr__sink_settle(rt, sk); /* only appends output: st stays */
      mark_dirty(st);
      continue;
    }
    /* Half-closed before it settled: still there to read, a reader gets
     * the held lines; gone, a probe leaves them to the next. */
    st->half_closed_wait = false;
    if (peer_half_closed(st)) {
      ixr__sink_settle(rt, sk);
      mark_dirty(st); /* the held lines, if any; then it finishes */
    }
    maybe_finish(st); /* may free st: `after` was taken first */
  }
  if (next != 0) uv_timer_start(t, on_settle_timer, next - now, 0);
  rt->in_uv_cb--;
  ixr__leave(rt);
}

/* The connections open on listeners of this kind, and their cap. Each
 * may hold a line in progress: counted, so that clients cannot make ixr
 * hold memory without end. Control lines are short, and control
 * connections few. */
static size_t *conn_count(ixr_runtime *rt, bool control, size_t *cap, bool **logged) {
  *cap = control ? CONTROL_MAX_CONNS : rt->opt.max_connections;
  *logged = control ? &rt->control_cap_logged : &rt->data_cap_logged;
  return control ? &rt->control_conns : &rt->data_conns;
}

static void accept_one(ixr__listener *ls);

/* A new connection. At the cap it is not accepted yet: it waits (and the
 * ones behind it in the backlog) until a connection closes. A peer that
 * connected and left at once (a probe) frees its slot as soon as its end
 * is read, so a flood of probes does not keep clients out. */
static void on_connection(uv_stream_t *server, int status) {
  ixr__listener *ls = server->data;
  ixr_runtime *rt = ls->rt;
  if (status < 0) {
    ixr__log(rt, IXR_LOG_WARN, "accept failed: %s", uv_strerror(status));
    return;
  }
  size_t cap;
  bool *logged;
  if (*conn_count(rt, ls->control_only, &cap, &logged) >= cap) {
    if (!*logged)
      ixr__log(rt, IXR_LOG_WARN, "%s: %zu connections are open, the most allowed: "
               "new ones wait until one closes", ls->control_only ? "control" : "listen",
               cap);
    *logged = true;
    ls->waiting = ++rt->accept_seq;
    return;
  }
  accept_one(ls);
}

/* Slots are free: the connections that listeners of that kind hold back
 * are accepted, the one that has waited longest first (libuv then watches
 * its listener again, and the next one there waits anew, behind the
 * others). */
static void accept_waiting(ixr_runtime *rt, bool control) {
  size_t cap;
  bool *logged;
  size_t *n = conn_count(rt, control, &cap, &logged);
  /* Down to half the cap: the next time it is reached is news. */
  if (*n <= cap / 2) *logged = false;
  while (*n < cap) {
    ixr__listener *first = NULL;
    for (ixr__listener *ls = rt->listeners; ls != NULL; ls = ls->next)
      if (ls->waiting != 0 && ls->control_only == control && !ls->closing &&
          (first == NULL || ls->waiting < first->waiting))
        first = ls;
    if (first == NULL) return;
    first->waiting = 0;
    accept_one(first);
    if (first->waiting != 0) return; /* it could not be taken (no memory) */
  }
}

static void accept_one(ixr__listener *ls) {
  ixr_runtime *rt = ls->rt;
  /* Until uv_accept, libuv holds the connection and watches the listener
   * no more: one that cannot be taken now is taken when a slot frees. */
  ixr__stream *st = stream_new(rt, "connection");
  if (st == NULL) {
    ixr__log(rt, IXR_LOG_ERROR, "out of memory accepting a connection");
    ls->waiting = ++rt->accept_seq;
    return;
  }
  st->in = IN_STREAM;
  st->out = OUT_SAME;
  int rc = ls->unix_path ? uv_pipe_init(rt->loop, &st->h.pipe, 0)
                         : uv_tcp_init(rt->loop, &st->h.tcp);
  if (rc != 0) {
    st->closing = true;
    free_stream(st);
    ls->waiting = ++rt->accept_seq;
    return;
  }
  st->h.handle.data = st;
  st->h_open = true;
  rc = uv_accept(&ls->h.stream, &st->h.stream);
  st->sink.control_only = ls->control_only;
  size_t cap;
  bool *logged;
  st->counted = conn_count(rt, ls->control_only, &cap, &logged);
  ++*st->counted;
  if (ls->control_only) {
    ixr__framer_init(&st->framer, rt->opt.max_line < CONTROL_MAX_LINE
                                      ? rt->opt.max_line : CONTROL_MAX_LINE);
    st->sink.settled = true; /* its replies go to it; it takes nothing else */
  }
  if (rc == 0) rc = ixr__sink_open(rt, &st->sink);
  if (rc != 0) {
    ixr__log(rt, IXR_LOG_WARN, "accept failed: %s", uv_strerror(rc));
    stream_close(st);
    return;
  }
  snprintf(st->name, sizeof(st->name), "connection %u", st->sink.slot);
  ixr__log(rt, IXR_LOG_DEBUG, "%s: opened", st->name);
  st->sink.opened_ms = uv_now(rt->loop);
  if (!ls->control_only && rt->settle_timer_open &&
      !uv_is_active((uv_handle_t *)&rt->settle_timer))
    uv_timer_start(&rt->settle_timer, on_settle_timer, IXR__SETTLE_MS, 0);
  start_reading(st);
}

/* The same file. The bound socket holds its inode while it is open, so no
 * other file there can have its number (a chmod or touch of ours changes
 * nothing here). */
static bool same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static void on_listener_closed(uv_handle_t *h) {
  ixr__listener *ls = h->data;
  ixr_runtime *rt = ls->rt;
  if (ls->unix_path) {
    /* Only the socket file this listener bound: another process may have
     * put its own there since. */
    struct stat sb;
    if (lstat(ls->unix_path, &sb) == 0 && same_file(&sb, &ls->unix_st))
      unlink(ls->unix_path);
    free(ls->unix_path);
  }
  free(ls);
  ixr__handle_closed(rt);
}

/* A host name (not a numeric address) to its first address, at once
 * (listening happens at start-up, where waiting for DNS is acceptable). */
static int resolve_host(ixr_runtime *rt, const char *host, const char *port,
                        struct sockaddr_storage *sa) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  if (host[0] == '\0') return -1;
  int gai = getaddrinfo(host, port, &hints, &res);
  if (gai != 0) {
    /* the address is well formed: say why it does not work */
    ixr__log(rt, IXR_LOG_ERROR, "listen tcp:%s:%s: cannot resolve '%s': %s",
             host, port, host, gai_strerror(gai));
    return -1;
  }
  int rc = -1;
  if (res != NULL && res->ai_addrlen <= sizeof(*sa)) {
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    rc = 0;
  }
  freeaddrinfo(res);
  return rc;
}

/* " (ADDRESS:PORT)": where a tcp listener is bound, so that port 0 (any
 * free port) or a host name says what it became. */
static void describe_bound(uv_tcp_t *h, char *out, size_t n) {
  struct sockaddr_storage sa;
  int len = (int)sizeof(sa);
  char ip[64];
  if (uv_tcp_getsockname(h, (struct sockaddr *)&sa, &len) != 0) return;
  if (sa.ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&sa;
    if (uv_ip4_name(a, ip, sizeof(ip)) == 0)
      snprintf(out, n, " (%s:%u)", ip, (unsigned)ntohs(a->sin_port));
  } else if (sa.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
    if (uv_ip6_name(a, ip, sizeof(ip)) == 0)
      snprintf(out, n, " ([%s]:%u)", ip, (unsigned)ntohs(a->sin6_port));
  }
}

/* A unix socket bound to path: its descriptor, or a libuv error. Bound here
 * rather than with uv_pipe_bind, which unlinks the path when the handle
 * closes, whatever file is there by then (another server's socket, made
 * after ours was removed); on_listener_closed unlinks only our own. */
static int bind_unix(const char *path) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len >= sizeof(sa.sun_path)) return UV_ENAMETOOLONG;
  memcpy(sa.sun_path, path, len + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  /* Listening at once: a second ixr starting now must find it live (a
   * socket bound but not listening refuses, and would pass for stale). */
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4096) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/* Locks the directory of path (flock, which only other ixr look at):
 * the descriptor, to close when done, or -1 (no lock: carry on). */
static int lock_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
  if (slash == NULL) snprintf(dir, sizeof(dir), ".");
  else if (slash == path) snprintf(dir, sizeof(dir), "/");
  else snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  while (flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      close(fd);
      return -1;
    }
  }
  return fd;
}

static int listen_on(ixr_runtime *rt, const char *addr, bool control_only) {
  if (rt == NULL || addr == NULL) return IXR_EINVAL;
  if (rt->closing || rt->stopping) return IXR_ECLOSED;
  ixr__listener *ls = calloc(1, sizeof(*ls));
  if (ls == NULL) return IXR_ENOMEM;
  ls->rt = rt;
  ls->control_only = control_only;
  int rc;
  if (strncmp(addr, "unix:", 5) == 0 && addr[5] != '\0') {
    /* libuv (before 1.46) cuts a longer path short without a word, and
     * would listen somewhere else than asked. */
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
    if (strlen(addr + 5) > max) {
      ixr__log(rt, IXR_LOG_ERROR,
               "cannot listen on %s: the path is %zu bytes, and a unix socket's "
               "may be at most %zu", addr, strlen(addr + 5), max);
      free(ls);
      return IXR_ELISTEN;
    }
    ls->unix_path = strdup(addr + 5);
    if (ls->unix_path == NULL) {
      free(ls);
      return IXR_ENOMEM;
    }
    /* libuv reports a missing directory as EACCES. */
    char *slash = strrchr(ls->unix_path, '/');
    if (slash != NULL && slash != ls->unix_path) {
      struct stat db;
      *slash = '\0';
      bool no_dir = stat(ls->unix_path, &db) != 0 && errno == ENOENT;
      *slash = '/';
      if (no_dir) {
        ixr__log(rt, IXR_LOG_ERROR, "cannot listen on %s: its directory does not exist",
                 addr);
        free(ls->unix_path);
        free(ls);
        return IXR_ELISTEN;
      }
    }
    struct stat fb;
    if (lstat(ls->unix_path, &fb) == 0 && !S_ISSOCK(fb.st_mode)) {
      ixr__log(rt, IXR_LOG_ERROR, "cannot listen on %s: a file that is not a socket "
               "is there (left alone)", addr);
      free(ls->unix_path);
      free(ls);
      return IXR_ELISTEN;
    }
    rc = uv_pipe_init(rt->loop, &ls->h.pipe, 0);
    if (rc == 0) {
      /* A stale socket of an earlier run is replaced; anything else that
       * is not a socket (a file named by mistake) is left alone, and the
       * bind below fails with EADDRINUSE. Check, unlink and bind hold a
       * lock on the directory: two ixr starting at once on a stale path
       * must not each find it stale, the second unlinking the first's
       * live socket. */
      int dirfd = lock_dir(ls->unix_path);
      struct stat sb;
      if (lstat(ls->unix_path, &sb) == 0 && S_ISSOCK(sb.st_mode) &&
          !unix_socket_live(ls->unix_path))
        unlink(ls->unix_path);
      rc = bind_unix(ls->unix_path);
      if (rc >= 0) {
        int fd = rc;
        if (lstat(ls->unix_path, &sb) == 0) ls->unix_st = sb;
        rc = uv_pipe_open(&ls->h.pipe, fd);
        if (rc != 0) close(fd);
      }
      if (dirfd >= 0) close(dirfd); /* and its lock with it */
    }
  } else if (strncmp(addr, "tcp:", 4) == 0) {
    const char *hp = addr + 4;
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || colon == hp) {
      free(ls);
      return IXR_EADDR;
    }
    char host[256];
    size_t hl = (size_t)(colon - hp);
    if (hl >= sizeof(host)) {
      free(ls);
      return IXR_EADDR;
    }
    memcpy(host, hp, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
      memmove(host, host + 1, hl - 2);
      host[hl - 2] = '\0';
    }
    /* Only digits: strtol alone would take "" as port 0 (any free port)
     * and accept signs and leading spaces. */
    const char *ps = colon + 1;
    size_t pl = strlen(ps);
    long port = -1;
    if (pl >= 1 && pl <= 5 && strspn(ps, "0123456789") == pl)
      port = strtol(ps, NULL, 10);
    if (port < 0 || port > 65535) {
      free(ls);
      return IXR_EADDR;
    }
    struct sockaddr_storage sa;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&sa) != 0 &&
        resolve_host(rt, host, ps, &sa) != 0) {
      free(ls);
      return IXR_ELISTEN; /* the address is well formed; resolve_host said why */
    }
    rc = uv_tcp_init(rt->loop, &ls->h.tcp);
    if (rc == 0) rc = uv_tcp_bind(&ls->h.tcp, (struct sockaddr *)&sa, 0);
  } else {
    free(ls);
    return IXR_EADDR;
  }
  ls->h.handle.data = ls;
  /* A deep backlog: a unix socket refuses connections (EAGAIN) once it
   * is full, and adapters reconnect in bursts after a failover. The kernel
   * caps it at net.core.somaxconn. */
  if (rc == 0) rc = uv_listen(&ls->h.stream, 4096, on_connection);
  rt->open_handles++;
  ls->next = rt->listeners;
  rt->listeners = ls;
  if (rc != 0) {
    ixr__log(rt, IXR_LOG_ERROR, "cannot listen on %s: %s", addr, uv_strerror(rc));
    rt->listeners = ls->next;
    if (ls->unix_path) { /* do not unlink what another process may own */
      free(ls->unix_path);
      ls->unix_path = NULL;
    }
    uv_close(&ls->h.handle, on_listener_closed);
    return IXR_ELISTEN;
  }
  char bound[80] = "";
  if (ls->unix_path == NULL) describe_bound(&ls->h.tcp, bound, sizeof(bound));
  ixr__log(rt, IXR_LOG_INFO, "listening on %s%s%s", addr, bound,
           control_only ? " (control events only)" : "");
  return 0;
}

int ixr_listen(ixr_runtime *rt, const char *addr) {
  return listen_on(rt, addr, false);
}

int ixr_listen_control(ixr_runtime *rt, const char *addr) {
  return listen_on(rt, addr, true);
}

/* ---- stopping --------------------------------------------------------- */

int ixr__streams_init(ixr_runtime *rt) {
  int rc = uv_prepare_init(rt->loop, &rt->prepare);
  if (rc != 0) return IXR_EIO;
  rt->prepare.data = rt;
  uv_prepare_start(&rt->prepare, on_prepare);
  uv_unref((uv_handle_t *)&rt->prepare);
  rt->prepare_open = true;
  rt->open_handles++;
  rc = uv_idle_init(rt->loop, &rt->gc_idle);
  if (rc != 0) return IXR_EIO;
  rt->gc_idle.data = rt;
  uv_unref((uv_handle_t *)&rt->gc_idle); /* never keeps the loop alive */
  rt->gc_idle_open = true;
  rt->open_handles++;
  uv_timer_t *timers[2] = {&rt->settle_timer, &rt->stall_timer};
  bool *open[2] = {&rt->settle_timer_open, &rt->stall_timer_open};
  for (int i = 0; i < 2; i++) {
    rc = uv_timer_init(rt->loop, timers[i]);
    if (rc != 0) return IXR_EIO;
    timers[i]->data = rt;
    uv_unref((uv_handle_t *)timers[i]); /* the connections keep the loop */
    *open[i] = true;
    rt->open_handles++;
  }
  return 0;
}

/* The collector's idle work (gc.c): while it is armed, the loop polls
 * without blocking and does one slice of collection per iteration, so an
 * event that arrives meanwhile waits for at most one slice. */
static void on_gc_idle(uv_idle_t *h) {
  ixr_runtime *rt = h->data;
  /* libuv runs idle handles before prepare handles: write the answers of
   * this iteration's events first, so they do not wait for the slice. */
  if (rt->dirty_streams != NULL) {
    flush_dirty(rt);
    if (rt->prepare_open) uv_unref((uv_handle_t *)&rt->prepare);
  }
  if (!ixr__gc_idle(rt)) uv_idle_stop(h);
}

void ixr__gc_idle_arm(ixr_runtime *rt) {
  if (rt->gc_idle_open && !uv_is_active((uv_handle_t *)&rt->gc_idle))
    uv_idle_start(&rt->gc_idle, on_gc_idle);
}

static void on_prepare_closed(uv_handle_t *h) {
  ixr_runtime *rt = h->data;
  ixr__handle_closed(rt);
}

static void on_stop_timer_closed(uv_handle_t *h) {
  ixr_runtime *rt = h->data;
  ixr__handle_closed(rt);
}

static void close_stop_timer(ixr_runtime *rt) {
  if (!rt->stop_timer_open) return;
  rt->stop_timer_open = false;
  uv_close((uv_handle_t *)&rt->stop_timer, on_stop_timer_closed);
}

/* A peer that does not read its last output cannot hold a stop forever. */
static void on_stop_deadline(uv_timer_t *t) {
  ixr_runtime *rt = t->data;
  for (ixr__stream *st = rt->streams, *next; st != NULL; st = next) {
    next = st->next_stream;
    if (st->closing) continue;
    ixr__log(rt, IXR_LOG_WARN, "%s: output not taken within %d ms of the stop: "
             "closing it", st->name, IXR__STOP_GRACE_MS);
    stream_close(st);
  }
  close_stop_timer(rt);
}

/* Closes one of the runtime's own handles (counted in open_handles), once. */
static void close_runtime_handle(bool *open, uv_handle_t *h) {
  if (!*open) return;
  *open = false;
  uv_close(h, on_prepare_closed);
}

/* Stops every listener and stream: input stops, output already produced is
 * written, then each closes (within IXR__STOP_GRACE_MS). With `now`,
 * streams close without waiting. */
void ixr__streams_stop(ixr_runtime *rt, bool now) {
  while (rt->listeners != NULL) {
    ixr__listener *ls = rt->listeners;
    rt->listeners = ls->next;
    uv_close(&ls->h.handle, on_listener_closed);
  }
  for (ixr__stream *st = rt->streams, *next; st != NULL; st = next) {
    next = st->next_stream;
    if (st->closing) continue;
    st->half_closed_wait = false;
    if (now) {
      stream_close(st);
      continue;
    }
    if (st->in == IN_STREAM && st->reading) uv_read_stop(&st->h.stream);
    st->reading = false;
    st->eof = true;
    st->flags &= ~IXR_SERVE_STOP_AT_EOF;
    if (flush(st)) maybe_finish(st); /* st may be gone when flush says so */
  }
  bool waiting = false;
  for (ixr__stream *st = rt->streams; st != NULL; st = st->next_stream)
    if (!st->closing) waiting = true;
  if (!now && waiting && !rt->stop_timer_open &&
      uv_timer_init(rt->loop, &rt->stop_timer) == 0) {
    rt->stop_timer.data = rt;
    rt->stop_timer_open = true;
    rt->open_handles++;
    uv_timer_start(&rt->stop_timer, on_stop_deadline, IXR__STOP_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&rt->stop_timer); /* the streams keep the loop */
  }
  if (now) close_stop_timer(rt);
  if (now) {
    close_runtime_handle(&rt->prepare_open, (uv_handle_t *)&rt->prepare);
    close_runtime_handle(&rt->gc_idle_open, (uv_handle_t *)&rt->gc_idle);
    close_runtime_handle(&rt->settle_timer_open, (uv_handle_t *)&rt->settle_timer);
    close_runtime_handle(&rt->stall_timer_open, (uv_handle_t *)&rt->stall_timer);
  }
}
