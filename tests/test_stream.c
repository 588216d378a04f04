/* test_stream.c: event streams over sockets, in process. The runtime runs on
 * a loop the test owns; the clients are libuv connections on the same loop.
 *
 * Callbacks only record what happened (lines received, statuses, counts);
 * every assertion is made after uv_run() returns. Every test ends with
 * uv_loop_close() == 0, so no handle may be left open by the runtime. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <lua.h>

#include "testutil.h"

#define MAX_CLIENTS 8
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- clients ------------------------------------------------------------ */

typedef struct fixture fixture;

typedef struct client {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h;
  uv_connect_t conn;
  fixture *f;
  bool inited;    /* h is initialized: it must be closed */
  bool closing;   /* uv_close() was called */
  bool closed;    /* its close callback ran */
  bool connected;
  int connect_status;
  bool no_read;   /* do not start reading when connected */
  bool eof;       /* the server closed the connection */
  int read_error; /* a read error other than EOF */
  int writes_pending;
  int write_errors;
  char rbuf[64 * 1024];
  char *part; /* a line received in part */
  size_t part_len, part_cap;
  size_t nlines;
  /* Lines are kept in `cap`, unless `seq` is set: then each one is checked
   * to be the unknown_interaction error of input line nlines, and dropped. */
  tcap cap;
  bool seq;
  size_t seq_bad;     /* the first line (1-based) that was not as expected */
  char seq_bad_line[256];
} client;

struct fixture {
  uv_loop_t loop;
  bool loop_closed;
  uv_timer_t tick;  /* wakes uv_run(UV_RUN_ONCE) up; unreferenced */
  uv_timer_t guard; /* stops a uv_run(UV_RUN_DEFAULT) that would hang */
  bool guard_fired;
  char *dir;
  char path[128]; /* the unix socket */
  ixr_runtime *rt;
  tcap log;
  client c[MAX_CLIENTS];
  size_t max_connections; /* for srv_start; 0: the default */
};

static int sock_counter;

static void on_client_closed(uv_handle_t *h) {
  client *c = h->data;
  c->closed = true;
}

static void client_close(client *c) {
  if (!c->inited || c->closing) return;
  c->closing = true;
  uv_close(&c->h.handle, on_client_closed);
}

static void client_line(client *c, char *line, size_t len) {
  c->nlines++;
  if (!c->seq) {
    ixr_output out;
    memset(&out, 0, sizeof(out));
    line[len] = '\0'; /* where its newline was: a C string, as ixr's own */
    out.json = line;
    out.json_len = len;
    tcap_output(&c->cap, &out);
    return;
  }
  if (c->seq_bad != 0) return;
  line[len] = '\0';
  char want[64];
  snprintf(want, sizeof(want), "'n%zu'", c->nlines);
  const char *ln = strstr(line, "\"line\":");
  bool ok = strstr(line, "\"unknown_interaction\"") != NULL &&
            strstr(line, want) != NULL && ln != NULL &&
            strtoull(ln + 7, NULL, 10) == c->nlines;
  if (!ok) {
    c->seq_bad = c->nlines;
    snprintf(c->seq_bad_line, sizeof(c->seq_bad_line), "%s", line);
  }
}

static void on_client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  client *c = h->data;
  (void)hint;
  *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  client *c = s->data;
  (void)buf;
  if (n < 0) {
    if (n == UV_EOF) c->eof = true;
    else c->read_error = (int)n;
    client_close(c);
    return;
  }
  const char *p = c->rbuf, *end = c->rbuf + n;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t k = (size_t)((nl ? nl : end) - p);
    if (c->part_len + k + 1 > c->part_cap) {
      c->part_cap = (c->part_len + k + 1) * 2;
      c->part = realloc(c->part, c->part_cap);
    }
    memcpy(c->part + c->part_len, p, k);
    c->part_len += k;
    if (nl == NULL) break;
    client_line(c, c->part, c->part_len);
    c->part_len = 0;
    p = nl + 1;
  }
}

static void client_start_reading(client *c) {
  uv_read_start(&c->h.stream, on_client_alloc, on_client_read);
}

static void on_client_connect(uv_connect_t *req, int status) {
  client *c = req->data;
  c->connect_status = status;
  if (status < 0) {
    client_close(c);
    return;
  }
  c->connected = true;
  if (!c->no_read) client_start_reading(c);
}

/* Starts connecting c to the socket at path. */
static void client_connect_to(fixture *f, client *c, const char *path) {
  c->f = f;
  assert_int_equal(uv_pipe_init(&f->loop, &c->h.pipe, 0), 0);
  c->inited = true;
  c->h.handle.data = c;
  c->conn.data = c;
  uv_pipe_connect(&c->conn, &c->h.pipe, path, on_client_connect);
}


typedef struct client_write {
  uv_write_t req;
  client *c;
  char data[];
} client_write;

static void on_client_write(uv_write_t *req, int status) {
  client_write *w = (client_write *)req;
  w->c->writes_pending--;
  if (status < 0) w->c->write_errors++;
  free(w);
}

static void client_send(client *c, const char *data, size_t len) {
  client_write *w = malloc(sizeof(*w) + len);
  assert_non_null(w);
  w->c = c;
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  assert_int_equal(uv_write(&w->req, &c->h.stream, &b, 1, on_client_write), 0);
  c->writes_pending++;
}

static void client_sends(client *c, const char *s) { client_send(c, s, strlen(s)); }

static void client_free(client *c) {
  tcap_free(&c->cap);
  free(c->part);
  c->part = NULL;
}

/* ---- running the loop ----------------------------------------------------- */

static void on_tick(uv_timer_t *t) { (void)t; }

typedef bool (*pred_fn)(fixture *f, void *ud);

/* Runs the loop until pred() holds or `ms` milliseconds have passed; returns
 * whether pred() held. */
static bool run_until(fixture *f, pred_fn pred, void *ud, unsigned ms) {
  uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;
  uv_timer_start(&f->tick, on_tick, 2, 2);
  bool ok;
  while (!(ok = pred(f, ud)) && uv_hrtime() < deadline) uv_run(&f->loop, UV_RUN_ONCE);
  uv_timer_stop(&f->tick);
  return ok;
}

/* A few turns of the loop without blocking. */
static void run_nowait(fixture *f, int turns) {
  for (int i = 0; i < turns; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Runs the loop for `ms` milliseconds. */
static bool never(fixture *f, void *ud) {
  (void)f;
  (void)ud;
  return false;
}
static void run_for(fixture *f, unsigned ms) { run_until(f, never, NULL, ms); }

typedef struct want_lines {
  client *c;
  size_t n;
} want_lines;

static bool has_lines(fixture *f, void *ud) {
  (void)f;
  want_lines *w = ud;
  return w->c->nlines >= w->n || w->c->closing;
}

static bool wait_lines(fixture *f, client *c, size_t n, unsigned ms) {
  want_lines w = {c, n};
  return run_until(f, has_lines, &w, ms) && c->nlines >= n;
}

static bool is_connected(fixture *f, void *ud) {
  (void)f;
  client *c = ud;
  return c->connected || c->closing;
}

/* Connects c to the socket at path, and waits for it. */
static void connect_to(fixture *f, client *c, const char *path) {
  client_connect_to(f, c, path);
  assert_true(run_until(f, is_connected, c, 5000));
  assert_int_equal(c->connect_status, 0);
}

static void connect_unix(fixture *f, client *c) { connect_to(f, c, f->path); }

static bool is_closed(fixture *f, void *ud) {
  (void)f;
  client *c = ud;
  return c->closed;
}

static bool writes_done(fixture *f, void *ud) {
  (void)f;
  client *c = ud;
  return c->writes_pending == 0;
}

/* Sends and waits until the bytes are handed to the kernel, then gives the
 * runtime a few turns to read them: a piece sent this way arrives alone. */
static void send_piece(fixture *f, client *c, const char *s, size_t len) {
  client_send(c, s, len);
  assert_true(run_until(f, writes_done, c, 5000));
  run_nowait(f, 3);
}

/* ---- the fixture ---------------------------------------------------------- */

static const char *ROUTE =
    "return { start = function(session, event)\n"
    "  session:route({ target = 'A' }, { timeout = 30 })\n"
    "end }\n";
static const char *SHORT =
    "return { start = function(session, event)\n"
    "  session:route({ target = 'B' }, { timeout = 5 })\n"
    "end }\n";

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  uv_timer_init(&f->loop, &f->tick);
  uv_unref((uv_handle_t *)&f->tick);
  uv_timer_init(&f->loop, &f->guard);
  uv_unref((uv_handle_t *)&f->guard);
  f->dir = tdir_new();
  tdir_write(f->dir, "default.lua", ROUTE);
  tdir_write(f->dir, "short.lua", SHORT);
  *state = f;
  return 0;
}

static void srv_start(fixture *f, ixr_clock clock, size_t max_line) {
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = f->dir;
  o.clock = clock;
  o.loop = &f->loop;
  o.on_log = tcap_logcb;
  o.log_ud = &f->log;
  o.log_level = IXR_LOG_DEBUG;
  /* As in `ixr run --listen`: no output callback. */
  if (max_line != 0) o.max_line = max_line;
  if (f->max_connections != 0) o.max_connections = f->max_connections;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  snprintf(f->path, sizeof(f->path), "/tmp/ixr-test-%ld-%d.sock", (long)getpid(),
           ++sock_counter);
  char addr[160];
  snprintf(addr, sizeof(addr), "unix:%s", f->path);
  assert_int_equal(ixr_listen(f->rt, addr), 0);
}

static void close_all_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void print_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  fprintf(stderr, "  open handle: %s%s\n", uv_handle_type_name(uv_handle_get_type(h)),
          uv_is_closing(h) ? " (closing)" : "");
}

/* Closes the clients and the runtime, runs the loop until nothing is left,
 * and returns uv_loop_close()'s result (0: no handle was left open). */
static int shut_down(fixture *f) {
  for (int i = 0; i < MAX_CLIENTS; i++) client_close(&f->c[i]);
  if (f->rt != NULL) {
    ixr_close(f->rt);
    f->rt = NULL;
  }
  if (!uv_is_closing((uv_handle_t *)&f->tick)) uv_close((uv_handle_t *)&f->tick, NULL);
  if (!uv_is_closing((uv_handle_t *)&f->guard)) uv_close((uv_handle_t *)&f->guard, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&f->loop);
  if (rc != 0) {
    uv_walk(&f->loop, print_walk, NULL);
    uv_walk(&f->loop, close_all_walk, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
  }
  f->loop_closed = true;
  return rc;
}

/* The end of every test: nothing may be left open. */
static void finish(fixture *f) { assert_int_equal(shut_down(f), 0); }

static int teardown(void **state) {
  fixture *f = *state;
  if (!f->loop_closed) shut_down(f);
  for (int i = 0; i < MAX_CLIENTS; i++) client_free(&f->c[i]);
  tcap_free(&f->log);
  tdir_remove(f->dir);
  if (f->path[0] != '\0') unlink(f->path);
  free(f);
  return 0;
}

/* ---- checking lines ------------------------------------------------------- */

/* Copies the string value of "key" in a line into out ("" when absent). */
static const char *jstr(const char *line, const char *key, char *out, size_t n) {
  char pat[64];
  snprintf(pat, sizeof(pat), "\"%s\":\"", key);
  out[0] = '\0';
  const char *p = strstr(line, pat);
  if (p == NULL) return out;
  p += strlen(pat);
  const char *q = strchr(p, '"');
  if (q == NULL) return out;
  size_t k = (size_t)(q - p) < n - 1 ? (size_t)(q - p) : n - 1;
  memcpy(out, p, k);
  out[k] = '\0';
  return out;
}

static void dump(const char *who, const tcap *cap) {
  fprintf(stderr, "%s received %zu lines:\n", who, cap->n);
  tcap_dump(cap);
}

static void expect_line(client *c, const char *who, size_t i, const char *exact) {
  if (i >= c->cap.n || strcmp(c->cap.lines[i], exact) != 0) {
    fprintf(stderr, "%s line %zu: expected\n  %s\n", who, i, exact);
    dump(who, &c->cap);
    fail();
  }
}

/* Lines i and i+1 must be the started and route lines of a new session for
 * iid; returns its session and request ids. */
static void expect_started(client *c, const char *who, size_t i, const char *iid,
                           char *sid, char *rid) {
  assert_true(i + 1 < c->cap.n);
  jstr(c->cap.lines[i], "session", sid, 16);
  jstr(c->cap.lines[i + 1], "requestid", rid, 16);
  char want[512];
  snprintf(want, sizeof(want),
           "{\"type\":\"session\",\"state\":\"started\",\"session\":\"%s\","
           "\"interactionid\":\"%s\",\"strategy\":\"default\"}",
           sid, iid);
  expect_line(c, who, i, want);
  snprintf(want, sizeof(want),
           "{\"type\":\"action\",\"action\":\"route\",\"session\":\"%s\","
           "\"interactionid\":\"%s\",\"requestid\":\"%s\",\"args\":{\"target\":\"A\"}}",
           sid, iid, rid);
  expect_line(c, who, i + 1, want);
}

static void expect_ended(client *c, const char *who, size_t i, const char *sid,
                         const char *iid, const char *reason) {
  char want[512];
  snprintf(want, sizeof(want),
           "{\"type\":\"session\",\"state\":\"ended\",\"session\":\"%s\","
           "\"interactionid\":\"%s\",\"reason\":\"%s\"}",
           sid, iid, reason);
  expect_line(c, who, i, want);
}

static char *present(const char *iid, const char *strategy) {
  static char buf[256];
  if (strategy)
    snprintf(buf, sizeof(buf),
             "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"%s\","
             "\"strategy\":\"%s\"}}\n",
             iid, strategy);
  else
    snprintf(buf, sizeof(buf),
             "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"%s\"}}\n",
             iid);
  return buf;
}

static char *route_done(const char *iid, const char *rid) {
  static char buf[256];
  snprintf(buf, sizeof(buf),
           "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"%s\","
           "\"requestid\":\"%s\"}}\n",
           iid, rid);
  return buf;
}

/* Sends two texts in alternating pieces of varying sizes (cut anywhere, also
 * in the middle of lines), one piece at a time. */
static void send_interleaved(fixture *f, client *a, const char *ta, client *b,
                             const char *tb) {
  static const size_t sizes[] = {7, 51, 13, 90, 1, 33, 64, 5};
  size_t la = strlen(ta), lb = strlen(tb), ia = 0, ib = 0, k = 0;
  while (ia < la || ib < lb) {
    size_t n = sizes[k++ % NELEM(sizes)];
    if (ia < la) {
      size_t m = n < la - ia ? n : la - ia;
      send_piece(f, a, ta + ia, m);
      ia += m;
    }
    n = sizes[k++ % NELEM(sizes)];
    if (ib < lb) {
      size_t m = n < lb - ib ? n : lb - ib;
      send_piece(f, b, tb + ib, m);
      ib += m;
    }
  }
}

/* ---- a) two clients at once ------------------------------------------------ */

static void test_two_clients_get_only_their_own_lines(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  client *a = &f->c[0], *b = &f->c[1];
  connect_unix(f, a);
  connect_unix(f, b);

  char ta[1024], tb[1024];
  snprintf(ta, sizeof(ta), "%s", present("A1", NULL));
  strcat(ta, present("A2", NULL));
  snprintf(tb, sizeof(tb), "%s", present("B1", NULL));
  strcat(tb, "{oops\n"); /* an error goes back to this client only */
  strcat(tb, present("B2", NULL));
  send_interleaved(f, a, ta, b, tb);
  assert_true(wait_lines(f, a, 4, 5000));
  assert_true(wait_lines(f, b, 5, 5000));

  char sa1[16], ra1[16], sa2[16], ra2[16], sb1[16], rb1[16], sb2[16], rb2[16];
  expect_started(a, "A", 0, "A1", sa1, ra1);
  expect_started(a, "A", 2, "A2", sa2, ra2);
  expect_started(b, "B", 0, "B1", sb1, rb1);
  assert_true(tcap_find(&b->cap, 2, "\"bad_json\"", "\"line\":2", NULL) == 2);
  expect_started(b, "B", 3, "B2", sb2, rb2);

  /* The results, answered in another order than asked, again in pieces. */
  char da[512], db[512];
  snprintf(da, sizeof(da), "%s", route_done("A2", ra2));
  strcat(da, route_done("A1", ra1));
  snprintf(db, sizeof(db), "%s", route_done("B1", rb1));
  strcat(db, route_done("B2", rb2));
  send_interleaved(f, b, db, a, da);
  assert_true(wait_lines(f, a, 6, 5000));
  assert_true(wait_lines(f, b, 7, 5000));
  run_for(f, 50); /* nothing more may come */

  if (a->cap.n != 6) dump("A", &a->cap);
  if (b->cap.n != 7) dump("B", &b->cap);
  assert_int_equal(a->cap.n, 6);
  assert_int_equal(b->cap.n, 7);
  expect_ended(a, "A", 4, sa2, "A2", "completed");
  expect_ended(a, "A", 5, sa1, "A1", "completed");
  expect_ended(b, "B", 5, sb1, "B1", "completed");
  expect_ended(b, "B", 6, sb2, "B2", "completed");
  assert_false(a->eof || b->eof);

  ixr_stats st;
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.sessions_started, 4);
  assert_int_equal(st.sessions_ended, 4);
  finish(f);
}

/* ---- b) sessions outlive their connection ---------------------------------- */

static void test_reconnect_takes_over_sessions(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  client *c1 = &f->c[0], *c2 = &f->c[1], *c3 = &f->c[2];
  connect_unix(f, c1);
  client_sends(c1, present("I1", NULL));
  client_sends(c1, present("I2", "short"));
  assert_true(wait_lines(f, c1, 4, 5000));
  char s1[16], r1[16];
  expect_started(c1, "c1", 0, "I1", s1, r1);
  assert_string_equal(s1, "s1");
  assert_string_equal(r1, "r1");

  /* The adapter goes away, then comes back on two connections. */
  client_close(c1);
  assert_true(run_until(f, is_closed, c1, 5000));
  run_nowait(f, 5);
  connect_unix(f, c2);
  connect_unix(f, c3);
  client_sends(c3, "\n"); /* it sends: no probe (a blank line does nothing) */

  /* The result for a request made on the first connection finishes its
   * session; the lines go to the connection that sent the event. */
  client_sends(c2, route_done("I1", r1));
  assert_true(wait_lines(f, c2, 1, 5000));
  expect_ended(c2, "c2", 0, "s1", "I1", "completed");

  /* I2's last event came from the closed connection: its timeout's output
   * goes to the newest open connection. */
  assert_int_equal(ixr_advance(f->rt, 5000), 0);
  assert_true(wait_lines(f, c3, 1, 5000));
  expect_ended(c3, "c3", 0, "s2", "I2", "completed");
  run_for(f, 50);
  assert_int_equal(c2->cap.n, 1);
  assert_int_equal(c3->cap.n, 1);

  ixr_stats st;
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.sessions_active, 0);
  assert_int_equal(st.sessions_ended, 2);
  assert_int_equal(st.held_dropped, 0);
  finish(f);
}

/* A raw, non-blocking unix socket connected to path. */
static int raw_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

/* What arrived on fd so far (the loop runs meanwhile), into buf. */
static ssize_t raw_read(fixture *f, int fd, char *buf, size_t n, unsigned ms) {
  size_t got = 0;
  for (unsigned waited = 0; waited < ms && got < n - 1; waited += 10) {
    run_for(f, 10);
    ssize_t r = read(fd, buf + got, n - 1 - got);
    if (r == 0) break; /* closed by ixr */
    if (r > 0) got += (size_t)r;
  }
  buf[got] = '\0';
  return (ssize_t)got;
}


/* A probe that connects and closes at once (a health check, a second ixr
 * testing the socket) does not swallow the held lines: they wait until a
 * connection sends or stays open for a moment. One that does is served
 * them, before anything its own input causes; what comes meanwhile for a
 * closed connection's sessions waits behind them. */
static void test_probe_does_not_take_held_output(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  client *c1 = &f->c[0], *c2 = &f->c[1], *c3 = &f->c[2];
  connect_unix(f, c1);
  client_sends(c1, present("I1", "short"));
  client_sends(c1, present("I2", NULL));
  assert_true(wait_lines(f, c1, 4, 5000));
  client_close(c1);
  assert_true(run_until(f, is_closed, c1, 5000));
  run_nowait(f, 5);
  assert_int_equal(ixr_advance(f->rt, 5000), 0); /* I1's end: held */

  int probe = raw_connect(f->path);
  run_for(f, 20);
  close(probe);
  run_for(f, 100);
  /* A silent client that stays gets them once the moment is up. */
  connect_unix(f, c2);
  assert_true(wait_lines(f, c2, 1, 2000));
  expect_ended(c2, "c2", 0, "s1", "I1", "completed");
  client_close(c2);
  assert_true(run_until(f, is_closed, c2, 5000));
  run_nowait(f, 5);

  /* Held again (I2's result, fed while no connection is open): a reader
   * that half-closes at once (nc -U sock < /dev/null) gets it too. */
  const char *second = route_done("I2", "r2");
  assert_int_equal(ixr_feed(f->rt, second, strlen(second)), 0);
  /* A client that shuts its side down and closes at once takes nothing. */
  int shutter = raw_connect(f->path);
  assert_int_equal(shutdown(shutter, SHUT_WR), 0);
  run_for(f, 10);
  close(shutter);
  run_for(f, 400);
  int reader = raw_connect(f->path);
  assert_int_equal(shutdown(reader, SHUT_WR), 0);
  char got[512];
  ssize_t n = raw_read(f, reader, got, sizeof(got), 2000);
  assert_true(n > 0);
  assert_non_null(strstr(got, "\"interactionid\":\"I2\""));
  close(reader);
  run_for(f, 50);

  /* Held again (I3's start); a client that sends gets it at once, before
   * what its own event causes. */
  const char *third = present("I3", NULL);
  assert_int_equal(ixr_feed(f->rt, third, strlen(third)), 0);
  connect_unix(f, c3);
  client_sends(c3, present("I4", NULL));
  assert_true(wait_lines(f, c3, 4, 2000));
  char sid[16], rid[16];
  expect_started(c3, "c3", 0, "I3", sid, rid);
  expect_started(c3, "c3", 2, "I4", sid, rid);
  finish(f);
}

/* With no connection open, a session's output is held until one connects
 * (CONTRACT.md section 3), not dropped. */
static void test_output_held_while_no_connection(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  client *c1 = &f->c[0], *c2 = &f->c[1];
  connect_unix(f, c1);
  client_sends(c1, present("I1", NULL));
  client_sends(c1, present("I2", "short"));
  assert_true(wait_lines(f, c1, 4, 5000));
  client_close(c1);
  assert_true(run_until(f, is_closed, c1, 5000));
  run_nowait(f, 5);

  assert_int_equal(ixr_advance(f->rt, 5000), 0); /* I2's route times out */
  connect_unix(f, c2);
  bool got = wait_lines(f, c2, 1, 2000);
  client_sends(c2, route_done("I1", "r1"));
  wait_lines(f, c2, got ? 2 : 1, 5000);
  if (!got || c2->cap.n != 2) {
    fprintf(stderr, "the line of I2's end, made while no connection was open, "
                    "was not delivered to the next connection\n");
    dump("c2", &c2->cap);
  }
  assert_int_equal(c2->cap.n, 2);
  expect_ended(c2, "c2", 0, "s2", "I2", "completed");
  expect_ended(c2, "c2", 1, "s1", "I1", "completed");
  finish(f);
}


/* A control socket bounds what a client can make it hold: 64 connections
 * at once (the next waits until one closes), and 64 KiB of line. */
static void test_control_socket_limits(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  char cpath[160], caddr[170];
  snprintf(cpath, sizeof(cpath), "%s.ctl", f->path);
  snprintf(caddr, sizeof(caddr), "unix:%s", cpath);
  assert_int_equal(ixr_listen_control(f->rt, caddr), 0);
  enum { N = 65 };
  int fds[N];
  for (int i = 0; i < N; i++) {
    fds[i] = raw_connect(cpath);
    run_for(f, 2);
  }
  run_for(f, 50);
  char buf[4096];
  /* the 65th waits: not served, not closed */
  assert_int_equal(write(fds[N - 1], "{\"name\":\"ixr.status\"}\n", 22), 22);
  assert_true(raw_read(f, fds[N - 1], buf, sizeof(buf), 300) <= 0);
  /* the first still answers; a long line is refused, not kept */
  size_t big = 100 * 1024;
  char *line = malloc(big + 1);
  assert_non_null(line);
  memset(line, 'x', big);
  line[big] = '\n';
  size_t off = 0;
  while (off < big + 1) {
    ssize_t w = write(fds[0], line + off, big + 1 - off);
    if (w > 0) off += (size_t)w;
    else run_for(f, 5);
  }
  free(line);
  assert_int_equal(write(fds[0], "{\"name\":\"ixr.status\"}\n", 22), 22);
  raw_read(f, fds[0], buf, sizeof(buf), 2000);
  assert_non_null(strstr(buf, "line_too_long"));
  assert_non_null(strstr(buf, "65536"));
  assert_non_null(strstr(buf, "\"name\":\"ixr.status\""));
  /* one closes: the 65th is served, its waiting line answered */
  close(fds[1]);
  memset(buf, 0, sizeof(buf));
  assert_true(raw_read(f, fds[N - 1], buf, sizeof(buf), 2000) > 0);
  assert_non_null(strstr(buf, "\"name\":\"ixr.status\""));
  for (int i = 0; i < N; i++)
    if (i != 1) close(fds[i]);
  run_for(f, 50);
  int again = raw_connect(cpath);
  assert_int_equal(write(again, "{\"name\":\"ixr.status\"}\n", 22), 22);
  raw_read(f, again, buf, sizeof(buf), 2000);
  assert_non_null(strstr(buf, "\"name\":\"ixr.status\""));
  close(again);
  run_for(f, 20);
  finish(f);
}

/* A control socket takes ixr.* events only and gets no session output. */
static void test_control_socket(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  char cpath[160], caddr[170];
  snprintf(cpath, sizeof(cpath), "%s.ctl", f->path);
  snprintf(caddr, sizeof(caddr), "unix:%s", cpath);
  assert_int_equal(ixr_listen_control(f->rt, caddr), 0);
  client *data = &f->c[0], *ctl = &f->c[1];
  connect_unix(f, data);
  /* connect the control client to the control socket */
  uv_pipe_init(&f->loop, &ctl->h.pipe, 0);
  ctl->h.handle.data = ctl;
  ctl->f = f;
  ctl->inited = true;
  ctl->conn.data = ctl;
  uv_pipe_connect(&ctl->conn, &ctl->h.pipe, cpath, on_client_connect);
  assert_true(run_until(f, is_connected, ctl, 5000));
  assert_int_equal(ctl->connect_status, 0);

  client_sends(data, present("D0", "short")); /* its route times out in 5 s */
  assert_true(wait_lines(f, data, 2, 5000));
  client_sends(ctl, "{\"name\":\"ixr.status\",\"id\":1}\n");
  client_sends(ctl, present("C1", NULL));
  client_sends(ctl, "{\"name\":\"ixr.reload\"}\n");
  /* not the event stream's clock either */
  client_sends(ctl, "{\"name\":\"clock.advance\",\"data\":{\"ms\":5000}}\n");
  assert_true(wait_lines(f, ctl, 4, 5000));
  assert_non_null(strstr(ctl->cap.lines[0], "\"type\":\"reply\",\"name\":\"ixr.status\",\"id\":1"));
  assert_non_null(strstr(ctl->cap.lines[1], "this is a control socket"));
  assert_non_null(strstr(ctl->cap.lines[2], "\"name\":\"ixr.reload\""));
  assert_non_null(strstr(ctl->cap.lines[2], "\"ok\":true"));
  assert_non_null(strstr(ctl->cap.lines[3], "this is a control socket"));
  run_for(f, 50);
  assert_int_equal(data->cap.n, 2); /* D0's timeout did not fire */

  /* the control connection is the newest, but session output never goes
   * there: with the data connection gone, it is held for the next one */
  client_sends(data, present("D1", "short"));
  assert_true(wait_lines(f, data, 4, 5000));
  client_close(data);
  assert_true(run_until(f, is_closed, data, 5000));
  run_nowait(f, 5);
  assert_int_equal(ixr_advance(f->rt, 5000), 0);
  run_for(f, 50);
  assert_int_equal(ctl->cap.n, 4);
  /* While output is held, the control connection still gets its replies
   * (an operator asks ixr.status exactly then). */
  client_sends(ctl, "{\"name\":\"ixr.status\",\"id\":2}\n");
  assert_true(wait_lines(f, ctl, 5, 2000));
  assert_non_null(strstr(ctl->cap.lines[4], "\"name\":\"ixr.status\",\"id\":2"));
  client *again = &f->c[2];
  connect_unix(f, again);
  assert_true(wait_lines(f, again, 2, 5000));
  expect_ended(again, "again", 0, "s1", "D0", "completed");
  expect_ended(again, "again", 1, "s2", "D1", "completed");
  finish(f);
}

/* ---- hostile peers ---------------------------------------------------------- */

/* A line without its newline, then a disconnect: the line is complete at
 * end of input and processed. A peer that only shut its sending side down
 * gets the output; one that is gone costs its own output (the write fails
 * and is logged), and the session it started lives on for the others. */
typedef struct shut {
  uv_shutdown_t req;
  bool done;
} shut;

static void on_shut(uv_shutdown_t *req, int status) {
  shut *sh = req->data;
  (void)status;
  sh->done = true;
}

static void test_line_without_newline_then_disconnect(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  client *a = &f->c[0], *b = &f->c[1], *c = &f->c[2];
  connect_unix(f, b);
  connect_unix(f, a);
  char *p = strdup(present("NL1", NULL));
  size_t n = strlen(p);
  assert_true(n > 0 && p[n - 1] == '\n');
  send_piece(f, a, p, n - 1); /* everything but the newline */
  shut sh = {.done = false};
  sh.req.data = &sh;
  uv_shutdown(&sh.req, &a->h.stream, on_shut);
  assert_true(wait_lines(f, a, 2, 5000));
  char sid[16], rid[16];
  expect_started(a, "a", 0, "NL1", sid, rid);

  /* gone for good after half a line: bad JSON, reported to no one */
  connect_unix(f, c);
  send_piece(f, c, p, n / 2);
  client_close(c);
  assert_true(run_until(f, is_closed, c, 5000));
  run_for(f, 50);
  /* gone for good after a whole line without newline: the session starts */
  client *d = &f->c[3];
  char *q = strdup(present("NL2", NULL));
  connect_unix(f, d);
  send_piece(f, d, q, strlen(q) - 1);
  client_close(d);
  assert_true(run_until(f, is_closed, d, 5000));
  run_for(f, 50);
  ixr_session_info info;
  assert_int_equal(ixr_session_find(f->rt, "NL2", 3, &info), 0);
  /* and b, which has been there all along, carries on */
  client_sends(b, "{\"name\":\"interaction.deleted\",\"data\":{\"interactionid\":\"NL2\"}}\n");
  assert_true(wait_lines(f, b, 1, 5000));
  assert_non_null(strstr(b->cap.lines[0], "\"reason\":\"deleted\""));
  free(p);
  free(q);
  finish(f);
}

/* Thousands of connections at once, each served its own output. */
typedef struct many {
  uv_pipe_t pipe;
  uv_connect_t conn;
  uv_write_t wreq;
  char line[128];
  char in[512];
  size_t inlen;
  int status;
  bool done, closed;
} many;

static void many_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  many *m = h->data;
  (void)hint;
  b->base = m->in + m->inlen;
  b->len = sizeof(m->in) - 1 - m->inlen;
}

static void many_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  many *m = s->data;
  (void)b;
  if (n > 0) {
    m->inlen += (size_t)n;
    m->in[m->inlen] = '\0';
    size_t lines = 0;
    for (size_t i = 0; i < m->inlen; i++) lines += m->in[i] == '\n';
    if (lines >= 2) m->done = true;
  } else if (n < 0) {
    m->done = true;
  }
}

static void many_written(uv_write_t *w, int status) { (void)w; (void)status; }

static void many_connected(uv_connect_t *req, int status) {
  many *m = req->data;
  m->status = status;
  if (status < 0) {
    m->done = true;
    return;
  }
  uv_read_start((uv_stream_t *)&m->pipe, many_alloc, many_read);
  uv_buf_t b = uv_buf_init(m->line, (unsigned)strlen(m->line));
  uv_write(&m->wreq, (uv_stream_t *)&m->pipe, &b, 1, many_written);
}

static void many_closed(uv_handle_t *h) {
  many *m = h->data;
  m->closed = true;
}

typedef struct many_set {
  many *m;
  int n;
} many_set;

static bool all_done(fixture *f, void *ud) {
  (void)f;
  many_set *set = ud;
  for (int i = 0; i < set->n; i++)
    if (!set->m[i].done) return false;
  return true;
}

static bool all_closed(fixture *f, void *ud) {
  (void)f;
  many_set *set = ud;
  for (int i = 0; i < set->n; i++)
    if (!set->m[i].closed) return false;
  return true;
}

static void test_thousands_of_connections(void **state) {
  fixture *f = *state;
  enum { N = 2000 };
  f->max_connections = 4096; /* the default is 1024 at once */
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  many_set set = {calloc(N, sizeof(many)), N};
  for (int i = 0; i < N; i++) {
    many *m = &set.m[i];
    snprintf(m->line, sizeof(m->line),
             "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"M%d\"}}\n", i);
    uv_pipe_init(&f->loop, &m->pipe, 0);
    m->pipe.data = m;
    m->conn.data = m;
    uv_pipe_connect(&m->conn, &m->pipe, f->path, many_connected);
  }
  assert_true(run_until(f, all_done, &set, 30000));
  int ok = 0;
  for (int i = 0; i < N; i++) {
    many *m = &set.m[i];
    char want[64];
    snprintf(want, sizeof(want), "\"interactionid\":\"M%d\"", i);
    if (m->status == 0 && strstr(m->in, "\"state\":\"started\"") && strstr(m->in, want) &&
        strstr(m->in, "\"action\":\"route\""))
      ok++;
  }
  for (int i = 0; i < N; i++) uv_close((uv_handle_t *)&set.m[i].pipe, many_closed);
  assert_true(run_until(f, all_closed, &set, 30000));
  free(set.m);
  assert_int_equal(ok, N);
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.sessions_started, N);
  finish(f);
}

/* Beyond max_connections, new connections wait until one closes (each
 * open one may hold a line in progress: memory without end otherwise),
 * with one warning; then they are served, in the order they came. */
static bool first_four_served(fixture *f, void *ud) {
  (void)ud;
  for (int i = 0; i < 4; i++)
    if (f->c[i].nlines < 2) return false;
  return true;
}

static void test_connection_cap(void **state) {
  fixture *f = *state;
  f->max_connections = 4;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  for (int i = 0; i < 6; i++) {
    connect_unix(f, &f->c[i]);
    run_for(f, 20); /* accepted in this order */
    char iid[8];
    snprintf(iid, sizeof(iid), "K%d", i);
    if (!f->c[i].eof && !f->c[i].closing) client_sends(&f->c[i], present(iid, NULL));
  }
  assert_true(run_until(f, first_four_served, NULL, 5000));
  run_for(f, 100);
  for (int i = 4; i < 6; i++) assert_true(!f->c[i].eof && f->c[i].nlines == 0);
  const char *w = strstr(f->log.log, "listen: 4 connections are open, the most allowed");
  assert_non_null(w);
  assert_null(strstr(w + 20, "connections are open, the most allowed")); /* once */
  client_close(&f->c[0]); /* the 5th is served, its waiting line answered */
  assert_true(wait_lines(f, &f->c[4], 2, 5000));
  run_for(f, 50);
  assert_int_equal(f->c[5].nlines, 0);
  client_close(&f->c[1]); /* then the 6th */
  assert_true(wait_lines(f, &f->c[5], 2, 5000));
  assert_false(f->c[4].eof || f->c[5].eof);
  finish(f);
}

/* Two listeners, one slot: connections held back on either are served in
 * the order they came, not always the last listener's first. */
static void test_waiting_connections_in_order(void **state) {
  fixture *f = *state;
  f->max_connections = 1;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  char path2[200], addr2[210];
  snprintf(path2, sizeof(path2), "%s.b", f->path);
  snprintf(addr2, sizeof(addr2), "unix:%s", path2);
  assert_int_equal(ixr_listen(f->rt, addr2), 0);
  client *x = &f->c[0], *w = &f->c[1], *y = &f->c[2];
  connect_to(f, x, f->path); /* served */
  client_sends(x, present("X", NULL));
  assert_true(wait_lines(f, x, 2, 5000));
  connect_to(f, w, f->path); /* waits on the first listener */
  client_sends(w, present("W", NULL));
  run_for(f, 50);
  connect_to(f, y, path2); /* then one on the second */
  client_sends(y, present("Y", NULL));
  run_for(f, 50);
  assert_int_equal(w->nlines, 0);
  assert_int_equal(y->nlines, 0);
  client_close(x); /* W came first */
  assert_true(wait_lines(f, w, 2, 5000));
  run_for(f, 50);
  assert_int_equal(y->nlines, 0);
  client_close(w);
  assert_true(wait_lines(f, y, 2, 5000));
  finish(f);
  unlink(path2);
}

/* Peers that connect and leave at once (probes), more of them than the
 * cap, all before ixr reads any: their slots free as their ends are
 * read, so a client that comes after them is served. */
static void test_probe_flood_does_not_lock_out(void **state) {
  fixture *f = *state;
  f->max_connections = 8;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  for (int i = 0; i < 200; i++) close(raw_connect(f->path));
  client *c = &f->c[0];
  connect_unix(f, c);
  client_sends(c, present("PF", NULL));
  assert_true(wait_lines(f, c, 2, 5000));
  assert_false(c->eof);
  finish(f);
}

/* ---- c) line_too_long ------------------------------------------------------- */

static void test_line_too_long_on_socket(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_MANUAL, 256);
  client *c = &f->c[0];
  connect_unix(f, c);

  /* Line 1: 300 bytes, in three pieces. */
  char lng[1100];
  memset(lng, 'x', sizeof(lng));
  lng[0] = '{';
  send_piece(f, c, lng, 100);
  send_piece(f, c, lng + 100, 100);
  send_piece(f, c, lng + 200, 100);
  send_piece(f, c, "\n", 1);
  /* Line 2 works. */
  client_sends(c, present("T1", NULL));
  assert_true(wait_lines(f, c, 3, 5000));
  /* Line 3: 1000 bytes and line 4 in one write. */
  char both[1400];
  memcpy(both, lng, 1000);
  both[1000] = '\n';
  snprintf(both + 1001, sizeof(both) - 1001, "%s", present("T2", NULL));
  client_sends(c, both);
  /* Line 5: exactly 256 bytes is not too long. */
  char exact[300];
  const char *head = "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"T3\"},\"pad\":\"";
  size_t hl = strlen(head);
  memcpy(exact, head, hl);
  memset(exact + hl, 'p', 256 - hl - 2);
  memcpy(exact + 254, "\"}\n", 4);
  assert_int_equal(strlen(exact), 257);
  client_sends(c, exact);
  assert_true(wait_lines(f, c, 8, 5000));
  run_for(f, 50);

  if (c->cap.n != 8) dump("c", &c->cap);
  assert_int_equal(c->cap.n, 8);
  expect_line(c, "c", 0,
              "{\"type\":\"error\",\"error\":\"line_too_long\",\"message\":\"line "
              "longer than 256 bytes: skipped\",\"line\":1}");
  char sid[16], rid[16];
  expect_started(c, "c", 1, "T1", sid, rid);
  expect_line(c, "c", 3,
              "{\"type\":\"error\",\"error\":\"line_too_long\",\"message\":\"line "
              "longer than 256 bytes: skipped\",\"line\":3}");
  expect_started(c, "c", 4, "T2", sid, rid);
  expect_started(c, "c", 6, "T3", sid, rid);
  assert_false(c->eof);
  finish(f);
}

/* ---- d) backpressure ---------------------------------------------------------- */

#define FLOOD_LINES 200000

typedef struct stall {
  uint64_t last;
  uint64_t since;
} stall;

/* True once the runtime has read no event for 300 ms. */
static bool input_stalled(fixture *f, void *ud) {
  stall *s = ud;
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  uint64_t now = uv_hrtime();
  if (st.events_in != s->last || s->since == 0) {
    s->last = st.events_in;
    s->since = now;
    return false;
  }
  return now - s->since > 300 * 1000000ull;
}

static bool flood_done(fixture *f, void *ud) {
  (void)f;
  client *c = ud;
  return c->nlines >= FLOOD_LINES || c->closing || c->seq_bad != 0;
}

static void test_backpressure_stops_reading(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  client *c = &f->c[0];
  c->no_read = true;
  c->seq = true;
  connect_unix(f, c);

  /* Every line is an event for an interaction nobody owns: one error line
   * of about 120 bytes out per 60 bytes in, and no state kept. */
  size_t cap = (size_t)FLOOD_LINES * 64, len = 0;
  char *flood = malloc(cap);
  assert_non_null(flood);
  for (unsigned i = 1; i <= FLOOD_LINES; i++)
    len += (size_t)snprintf(flood + len, cap - len,
                            "{\"name\":\"interaction.x\",\"data\":{\"interactionid\":\"n%u\"}}\n", i);
  client_send(c, flood, len);
  free(flood);

  /* The client does not read: the runtime must stop reading it. */
  stall s = {0, 0};
  assert_true(run_until(f, input_stalled, &s, 30000));
  ixr_stats st;
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  fprintf(stderr, "  stalled after %llu of %d events, %llu lines out\n",
          (unsigned long long)st.events_in, FLOOD_LINES,
          (unsigned long long)st.lines_out);
  assert_true(st.events_in < FLOOD_LINES / 2);
  assert_int_equal(c->writes_pending, 1); /* our input waits, unread */
  /* What the runtime holds is bounded: every line out is still unread, in
   * its buffers or the socket's. 16 MiB is far above the 1 MiB high-water
   * mark plus one turn's reading, and far below all of the output (24 MB). */
  assert_true(st.lines_out * 130 < 16u * 1024 * 1024);
  assert_false(c->eof);

  /* Now it reads: every line arrives, in order, and the input is read to
   * the end. */
  client_start_reading(c);
  assert_true(run_until(f, flood_done, c, 90000));
  if (c->seq_bad != 0)
    fprintf(stderr, "line %zu was not as expected: %s\n", c->seq_bad, c->seq_bad_line);
  assert_int_equal(c->seq_bad, 0);
  assert_int_equal(c->nlines, FLOOD_LINES);
  assert_true(run_until(f, writes_done, c, 5000));
  assert_int_equal(c->write_errors, 0);
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.events_in, FLOOD_LINES);
  assert_int_equal(st.lines_out, FLOOD_LINES);
  assert_false(c->eof);
  finish(f);
}

/* One event whose output is larger than the pile a client may leave unread
 * (64 MiB): a client that reads it, as fast as it can, gets all of it. It
 * was disconnected as a non-reader the moment the burst was handed over. A
 * client that reads none of it for 10 s is disconnected, when more output
 * comes for it. */
static const char *BIG =
    "return { defaults = 'none', start = function(session)\n"
    "  local chunk = string.rep('x', 1000000)\n"
    "  for i = 1, 70 do session:action('spam', { i = i, s = chunk }) end\n"
    "  session:wait('never')\n"
    "end }\n";

static bool logged_disconnect(fixture *f, void *ud) {
  client *c = ud;
  return c->eof || strstr(f->log.log, "disconnecting") != NULL;
}

static void test_big_burst_reaches_a_reading_client(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "big.lua", BIG);
  srv_start(f, IXR_CLOCK_REAL, 0);
  client *c = &f->c[0];
  connect_unix(f, c);
  client_sends(c, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"B1\",\"strategy\":\"big\"}}\n");
  assert_true(wait_lines(f, c, 71, 60000)); /* started, then 70 of 1 MB */
  assert_false(c->eof);
  assert_null(strstr(f->log.log, "disconnecting"));
  assert_non_null(strstr(c->cap.lines[70], "\"i\":70"));
  finish(f);
}

static void test_stalled_client_is_disconnected(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "big.lua", BIG);
  srv_start(f, IXR_CLOCK_REAL, 0);
  client *c = &f->c[0];
  c->no_read = true;
  connect_unix(f, c);
  client_sends(c, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"B1\",\"strategy\":\"big\"}}\n");
  run_for(f, 3000);
  assert_null(strstr(f->log.log, "disconnecting")); /* 10 s are not up */
  /* No more output comes for it, but it is checked each second. */
  assert_true(run_until(f, logged_disconnect, c, 20000));
  assert_non_null(strstr(f->log.log, "the kernel has taken none of the"));
  finish(f);
}

/* ---- e) stopping and closing with connections open ------------------------- */

typedef struct stopper {
  uv_check_t check;
  fixture *f;
  uint64_t after_events;
  bool stopped;
} stopper;

/* Stops the runtime in the check phase of the turn in which it read its
 * last event: its output is then still in the runtime's buffers. */
static void on_check(uv_check_t *h) {
  stopper *s = h->data;
  ixr_stats st;
  ixr_get_stats(s->f->rt, &st);
  if (!s->stopped && st.events_in >= s->after_events) {
    s->stopped = true;
    ixr_stop(s->f->rt);
    uv_check_stop(h);
  }
}

static void on_guard(uv_timer_t *t) {
  fixture *f = t->data;
  f->guard_fired = true;
  uv_stop(&f->loop);
}

/* Runs the loop until nothing keeps it alive; fails if that takes more
 * than ms (the guard stops it). */
static void run_guarded(fixture *f, unsigned ms) {
  f->guard.data = f;
  uv_timer_start(&f->guard, on_guard, ms, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&f->guard);
  assert_false(f->guard_fired);
}

static void test_stop_with_open_connections(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_REAL, 0); /* a live 30 s timeout, too */
  client *a = &f->c[0], *b = &f->c[1];
  connect_unix(f, a);
  connect_unix(f, b);
  client_sends(a, present("A1", NULL));
  assert_true(wait_lines(f, a, 2, 5000));

  stopper s;
  memset(&s, 0, sizeof(s));
  s.f = f;
  s.after_events = 3;
  s.check.data = &s;
  uv_check_init(&f->loop, &s.check);
  uv_check_start(&s.check, on_check);
  uv_unref((uv_handle_t *)&s.check);
  client_sends(a, present("A2", NULL));
  client_sends(b, present("B1", NULL));
  client_sends(b, "{\"name\":\"interaction.present\",\"da"); /* never finished */

  /* The runtime stops, flushes and closes every connection; the clients
   * close on EOF; then nothing keeps the loop alive. */
  f->guard.data = f;
  uv_timer_start(&f->guard, on_guard, 20000, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&f->guard);
  uv_close((uv_handle_t *)&s.check, NULL);
  run_nowait(f, 1);

  assert_false(f->guard_fired);
  assert_true(s.stopped);
  assert_true(a->eof && a->closed);
  assert_true(b->eof && b->closed);
  assert_int_equal(a->read_error, 0);
  assert_int_equal(b->read_error, 0);
  /* Output made before the stop was written before the close. */
  if (a->cap.n != 4) dump("A", &a->cap);
  if (b->cap.n != 2) dump("B", &b->cap);
  assert_int_equal(a->cap.n, 4);
  assert_int_equal(b->cap.n, 2);
  char sid[16], rid[16];
  expect_started(a, "A", 0, "A1", sid, rid);
  expect_started(a, "A", 2, "A2", sid, rid);
  expect_started(b, "B", 0, "B1", sid, rid);
  /* The listener is gone, with its socket file. */
  struct stat sb;
  assert_int_equal(stat(f->path, &sb), -1);
  char addr[160];
  snprintf(addr, sizeof(addr), "unix:%s", f->path);
  assert_int_equal(ixr_listen(f->rt, addr), IXR_ECLOSED);

  ixr_close(f->rt);
  f->rt = NULL;
  finish(f);
}

/* ixr_close() without ixr_stop(): connections close at once. */
static void test_close_with_open_connections(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_REAL, 0);
  client *a = &f->c[0], *b = &f->c[1];
  connect_unix(f, a);
  connect_unix(f, b);
  client_sends(a, present("A1", NULL));
  client_sends(b, "{\"name\":\"interaction.present\",\"da");
  assert_true(wait_lines(f, a, 2, 5000));
  ixr_close(f->rt);
  f->rt = NULL;
  run_guarded(f, 20000);
  assert_true(a->eof && a->closed);
  assert_true(b->eof && b->closed);
  struct stat sb;
  assert_int_equal(stat(f->path, &sb), -1);
  finish(f);
}

/* ---- serving file descriptors ---------------------------------------------- */

static void srv_new(fixture *f) {
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = f->dir;
  o.clock = IXR_CLOCK_MANUAL;
  o.loop = &f->loop;
  o.on_log = tcap_logcb;
  o.log_ud = &f->log;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
}

/* Two events; the last line has no newline. */
static const char *TWO_EVENTS =
    "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"F1\"}}\n"
    "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"F2\"}}";

static const char *TWO_EVENTS_OUT =
    "{\"type\":\"session\",\"state\":\"started\",\"session\":\"s1\",\"interactionid\":\"F1\",\"strategy\":\"default\"}\n"
    "{\"type\":\"action\",\"action\":\"route\",\"session\":\"s1\",\"interactionid\":\"F1\",\"requestid\":\"r1\",\"args\":{\"target\":\"A\"}}\n"
    "{\"type\":\"session\",\"state\":\"started\",\"session\":\"s2\",\"interactionid\":\"F2\",\"strategy\":\"default\"}\n"
    "{\"type\":\"action\",\"action\":\"route\",\"session\":\"s2\",\"interactionid\":\"F2\",\"requestid\":\"r2\",\"args\":{\"target\":\"A\"}}\n";

static int temp_file(fixture *f, const char *name, const char *content) {
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", f->dir, name);
  tdir_write(f->dir, name, content);
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  return fd;
}

static char *file_text(int fd) {
  static char buf[4096];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static bool file_has_all(fixture *f, void *ud) {
  (void)f;
  return strcmp(file_text(*(int *)ud), TWO_EVENTS_OUT) == 0;
}

/* `ixr run` reading a pipe: the last lines' output is written before the
 * runtime stops at the end of the input, though nothing else keeps the loop
 * alive then. */
static void test_serve_fd_pipe_flushes_at_eof(void **state) {
  fixture *f = *state;
  srv_new(f);
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(write(p[1], TWO_EVENTS, strlen(TWO_EVENTS)), (ssize_t)strlen(TWO_EVENTS));
  close(p[1]);
  int out = temp_file(f, "out.ndjson", "");
  assert_int_equal(ixr_serve_fd(f->rt, p[0], out, IXR_SERVE_STOP_AT_EOF), 0);
  run_guarded(f, 20000);
  assert_string_equal(file_text(out), TWO_EVENTS_OUT);
  finish(f); /* closes the pipe's handle, and with it p[0] */
  close(out);
}

/* libuv makes a pipe non-blocking, and the open file description is
 * shared (a shell's pipe, stderr after 2>&1): its flags are put back when
 * the stream ends, so the next process on the pipe is not surprised. */
static void test_serve_fd_restores_blocking_mode(void **state) {
  fixture *f = *state;
  srv_new(f);
  int p[2];
  assert_int_equal(pipe(p), 0);
  int same = dup(p[0]); /* the same open file description as p[0] */
  assert_true(same >= 0);
  assert_int_equal(write(p[1], TWO_EVENTS, strlen(TWO_EVENTS)), (ssize_t)strlen(TWO_EVENTS));
  close(p[1]);
  int out = temp_file(f, "out.ndjson", "");
  assert_int_equal(ixr_serve_fd(f->rt, p[0], out, IXR_SERVE_STOP_AT_EOF), 0);
  assert_true((fcntl(same, F_GETFL) & O_NONBLOCK) != 0); /* libuv's doing */
  run_guarded(f, 20000);
  assert_int_equal(fcntl(same, F_GETFL) & O_NONBLOCK, 0);
  ixr_stats st;
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.fd_stream_failures, 0);
  finish(f);
  close(same);
  close(out);
}

/* ixr.stop() for strategies, as a host may offer it. */
static int l_host_stop(lua_State *L) {
  ixr_stop(lua_touserdata(L, lua_upvalueindex(1)));
  return 0;
}

/* ixr_stop from inside a strategy's call, while a file-to-file stream
 * ends its input with output buffered: stopping writes it and finishes the
 * stream, which frees it, and nothing may touch it after (ASan once saw
 * ixr__streams_stop read the freed stream). */
static void test_stop_from_strategy_at_end_of_file(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "stopper.lua",
             "return { defaults = 'none', start = function(s)\n"
             "  s:action('bye')\n"
             "  require('hoststop').stop()\n"
             "end }\n");
  srv_new(f);
  assert_int_equal(ixr_register(f->rt, "hoststop", "stop", l_host_stop, f->rt), 0);
  /* the last line without its newline: it is handled at the end of the
   * input, inside the file's read callback */
  int in = temp_file(f, "in.ndjson",
                     "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"S\","
                     "\"strategy\":\"stopper\"}}");
  int out = temp_file(f, "out.ndjson", "");
  assert_int_equal(ixr_serve_fd(f->rt, in, out, 0), 0);
  run_guarded(f, 20000);
  assert_non_null(strstr(file_text(out), "\"action\":\"bye\""));
  finish(f);
  close(in);
  close(out);
}

/* Output that cannot be written (the reader went away) ends a stream of
 * IXR_SERVE_STOP_AT_EOF and stops the runtime, though its input is still
 * open: nothing more can come of it. Counted as a failure (ixr run exits
 * with 1). */
static void test_serve_fd_write_failure_stops(void **state) {
  fixture *f = *state;
  srv_new(f);
  void (*old)(int) = signal(SIGPIPE, SIG_IGN);
  int in[2], outp[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(outp), 0);
  close(outp[0]); /* nobody reads the output */
  int keep_out = dup(outp[1]);
  assert_int_equal(write(in[1], TWO_EVENTS, strlen(TWO_EVENTS)), (ssize_t)strlen(TWO_EVENTS));
  assert_int_equal(ixr_serve_fd(f->rt, in[0], outp[1], IXR_SERVE_STOP_AT_EOF), 0);
  run_guarded(f, 20000); /* stopped, with in[1] still open */
  ixr_stats st;
  assert_int_equal(ixr_get_stats(f->rt, &st), 0);
  assert_int_equal(st.fd_stream_failures, 1);
  assert_int_equal(fcntl(keep_out, F_GETFL) & O_NONBLOCK, 0);
  finish(f);
  close(in[1]);
  close(keep_out);
  signal(SIGPIPE, old);
}

/* A descriptor the loop already watches: libuv initialises the handle and
 * then refuses to open it (EEXIST). The half-made stream must be closed
 * through its close callback, not freed under libuv. libuv itself is not
 * instrumented, so ASan cannot see a slip here: ctest runs this test under
 * valgrind too (stream_valgrind). */
static void test_serve_fd_open_fails_after_init(void **state) {
  fixture *f = *state;
  srv_new(f);
  int p[2];
  assert_int_equal(pipe(p), 0);
  int out = temp_file(f, "out.ndjson", "");
  assert_int_equal(ixr_serve_fd(f->rt, p[0], out, 0), 0);
  assert_int_equal(ixr_serve_fd(f->rt, p[0], out, 0), IXR_EIO);
  run_nowait(f, 3);
  close(p[1]); /* the first stream ends at EOF */
  run_nowait(f, 5);
  finish(f); /* uv_loop_close == 0: every handle closed */
  close(out);
}

/* A regular file (this time ending with a newline), on a runtime that also
 * listens: the loop goes on after the file's stream is done and freed. */
static void test_serve_fd_file_then_socket(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  char text[512];
  snprintf(text, sizeof(text), "%s\n", TWO_EVENTS);
  int in = temp_file(f, "in.ndjson", text);
  int out = temp_file(f, "out.ndjson", "");
  assert_int_equal(ixr_serve_fd(f->rt, in, out, 0), 0);
  assert_true(run_until(f, file_has_all, &out, 5000));
  /* The runtime carries on with its connections. */
  client *c = &f->c[0];
  connect_unix(f, c);
  client_sends(c, route_done("F1", "r1"));
  assert_true(wait_lines(f, c, 1, 5000));
  expect_ended(c, "c", 0, "s1", "F1", "completed");
  run_for(f, 20);
  finish(f);
  close(in);
  close(out);
}

/* A regular file of many read chunks (input files are read 64 KiB at a
 * time, the next chunk while the last one is processed), with lines that
 * straddle the chunk boundaries: every line is processed, in order. */
static void test_serve_fd_big_file_in_order(void **state) {
  fixture *f = *state;
  srv_new(f);
  enum { N = 4000 };
  size_t cap = (size_t)N * 400, len = 0;
  char *text = malloc(cap);
  assert_non_null(text);
  for (int i = 0; i < N; i++) {
    /* lines of varying length, so that chunk ends fall anywhere */
    len += (size_t)snprintf(text + len, cap - len,
                            "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":"
                            "\"B%05d\",\"pad\":\"%.*s\"}}\n",
                            i, 1 + (i * 37) % 250,
                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
  }
  assert_true(len > 8 * 65536);
  int in = temp_file(f, "big.ndjson", text);
  free(text);
  int out = temp_file(f, "out.ndjson", "");
  assert_int_equal(ixr_serve_fd(f->rt, in, out, IXR_SERVE_STOP_AT_EOF), 0);
  run_guarded(f, 60000);
  /* Two lines out per event: started, then route. */
  off_t size = lseek(out, 0, SEEK_END);
  assert_true(size > 0);
  char *o = malloc((size_t)size + 1);
  assert_non_null(o);
  assert_int_equal(pread(out, o, (size_t)size, 0), size);
  o[size] = '\0';
  int seen = 0;
  for (char *p = o; (p = strstr(p, "\"state\":\"started\"")) != NULL; p++) {
    char want[64];
    snprintf(want, sizeof(want), "\"interactionid\":\"B%05d\"", seen);
    char *nl = strchr(p, '\n');
    assert_non_null(nl);
    *nl = '\0';
    if (strstr(p, want) == NULL) fail_msg("line %d out of order: %s", seen, p);
    p = nl;
    seen++;
  }
  assert_int_equal(seen, N);
  free(o);
  finish(f);
  close(in);
  close(out);
}

/* A client that half-closes still gets all of its output, then EOF. */
static void on_shutdown(uv_shutdown_t *req, int status) {
  client *c = req->data;
  if (status < 0) c->write_errors++;
}

static void test_half_close_gets_all_output(void **state) {
  fixture *f = *state;
  srv_start(f, IXR_CLOCK_MANUAL, 0);
  client *c = &f->c[0];
  connect_unix(f, c);
  client_sends(c, TWO_EVENTS);
  uv_shutdown_t sreq;
  sreq.data = c;
  assert_int_equal(uv_shutdown(&sreq, &c->h.stream, on_shutdown), 0);
  assert_true(run_until(f, is_closed, c, 5000));
  assert_true(c->eof);
  assert_int_equal(c->write_errors, 0);
  assert_int_equal(c->cap.n, 4);
  char sid[16], rid[16];
  expect_started(c, "c", 0, "F1", sid, rid);
  expect_started(c, "c", 2, "F2", sid, rid);
  finish(f);
}

/* ---- f) tcp, and addresses ----------------------------------------------------- */

static void test_tcp_round_trip(void **state) {
  fixture *f = *state;
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = f->dir;
  o.clock = IXR_CLOCK_MANUAL;
  o.loop = &f->loop;
  o.on_log = tcap_logcb;
  o.log_ud = &f->log;
  assert_int_equal(ixr_new(&f->rt, &o), 0);
  int port = 0, rc = IXR_ELISTEN;
  for (int i = 0; i < 20 && rc == IXR_ELISTEN; i++) {
    port = 40000 + (int)((getpid() + i * 997) % 20000);
    char addr[64];
    snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%d", port);
    rc = ixr_listen(f->rt, addr);
  }
  assert_int_equal(rc, 0);

  client *c = &f->c[0];
  c->f = f;
  assert_int_equal(uv_tcp_init(&f->loop, &c->h.tcp), 0);
  c->inited = true;
  c->h.handle.data = c;
  c->conn.data = c;
  struct sockaddr_in sa;
  assert_int_equal(uv_ip4_addr("127.0.0.1", port, &sa), 0);
  assert_int_equal(uv_tcp_connect(&c->conn, &c->h.tcp, (struct sockaddr *)&sa,
                                  on_client_connect), 0);
  assert_true(run_until(f, is_connected, c, 5000));
  assert_int_equal(c->connect_status, 0);
  client_sends(c, present("T1", NULL));
  assert_true(wait_lines(f, c, 2, 5000));
  char sid[16], rid[16];
  expect_started(c, "tcp", 0, "T1", sid, rid);
  client_sends(c, route_done("T1", rid));
  assert_true(wait_lines(f, c, 3, 5000));
  expect_ended(c, "tcp", 2, sid, "T1", "completed");

  static const char *bad[] = {
      "tcp:nohost", "foo:bar", "unix:", "tcp:", "tcp::80", "tcp:127.0.0.1:",
      "tcp:127.0.0.1:99999", "tcp:127.0.0.1:-1", "tcp:127.0.0.1:80x",
      "", "unix",
  };
  /* Well formed, but not to be listened on: the log says why. */
  char longpath[300] = "unix:/tmp/";
  memset(longpath + 10, 'x', 200);
  longpath[210] = '\0';
  assert_int_equal(ixr_listen(f->rt, longpath), IXR_ELISTEN);
  assert_non_null(strstr(f->log.log, "the path is 205 bytes, and a unix socket's may be at most 107"));
  assert_int_equal(ixr_listen(f->rt, "tcp:not-an-ip.invalid:80"), IXR_ELISTEN);
  assert_non_null(strstr(f->log.log, "cannot resolve 'not-an-ip.invalid'"));
  for (size_t i = 0; i < NELEM(bad); i++) {
    int r = ixr_listen(f->rt, bad[i]);
    if (r != IXR_EADDR) fprintf(stderr, "ixr_listen(\"%s\") = %d\n", bad[i], r);
    assert_int_equal(r, IXR_EADDR);
  }
  assert_int_equal(ixr_listen(f->rt, NULL), IXR_EINVAL);
  assert_int_equal(ixr_listen(NULL, "unix:/tmp/x"), IXR_EINVAL);
  /* A path that cannot be bound fails to listen, and leaves nothing open. */
  assert_int_equal(ixr_listen(f->rt, "unix:/nonexistent-dir/ixr.sock"), IXR_ELISTEN);
  assert_non_null(strstr(f->log.log, "cannot listen on unix:/nonexistent-dir/ixr.sock: its "
                                     "directory does not exist"));
  /* A file that is not a socket is not replaced. */
  tdir_write(f->dir, "precious", "keep me\n");
  char addr[1100];
  snprintf(addr, sizeof(addr), "unix:%s/precious", f->dir);
  assert_int_equal(ixr_listen(f->rt, addr), IXR_ELISTEN);
  struct stat sb;
  snprintf(addr, sizeof(addr), "%s/precious", f->dir);
  assert_int_equal(stat(addr, &sb), 0);
  assert_true(S_ISREG(sb.st_mode));
  /* A socket another process put where ours was (after removing ours) is
   * not unlinked when the runtime stops: only the file it bound is. */
  snprintf(f->path, sizeof(f->path), "/tmp/ixr-test-%ld-%d.sock", (long)getpid(),
           ++sock_counter);
  snprintf(addr, sizeof(addr), "unix:%s", f->path);
  assert_int_equal(ixr_listen(f->rt, addr), 0);
  assert_int_equal(unlink(f->path), 0);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un other;
  memset(&other, 0, sizeof(other));
  other.sun_family = AF_UNIX;
  assert_true(strlen(f->path) < sizeof(other.sun_path));
  memcpy(other.sun_path, f->path, strlen(f->path) + 1);
  assert_int_equal(bind(fd, (struct sockaddr *)&other, sizeof(other)), 0);
  finish(f);
  assert_int_equal(lstat(f->path, &sb), 0);
  assert_true(S_ISSOCK(sb.st_mode));
  close(fd);
  unlink(f->path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_two_clients_get_only_their_own_lines, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reconnect_takes_over_sessions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_output_held_while_no_connection, setup, teardown),
      cmocka_unit_test_setup_teardown(test_probe_does_not_take_held_output, setup, teardown),
      cmocka_unit_test_setup_teardown(test_line_too_long_on_socket, setup, teardown),
      cmocka_unit_test_setup_teardown(test_control_socket, setup, teardown),
      cmocka_unit_test_setup_teardown(test_control_socket_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_line_without_newline_then_disconnect, setup, teardown),
      cmocka_unit_test_setup_teardown(test_thousands_of_connections, setup, teardown),
      cmocka_unit_test_setup_teardown(test_connection_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_probe_flood_does_not_lock_out, setup, teardown),
      cmocka_unit_test_setup_teardown(test_waiting_connections_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backpressure_stops_reading, setup, teardown),
      cmocka_unit_test_setup_teardown(test_big_burst_reaches_a_reading_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stalled_client_is_disconnected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_with_open_connections, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_with_open_connections, setup, teardown),
      cmocka_unit_test_setup_teardown(test_serve_fd_pipe_flushes_at_eof, setup, teardown),
      cmocka_unit_test_setup_teardown(test_serve_fd_open_fails_after_init, setup, teardown),
      cmocka_unit_test_setup_teardown(test_serve_fd_restores_blocking_mode, setup, teardown),
      cmocka_unit_test_setup_teardown(test_serve_fd_write_failure_stops, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_from_strategy_at_end_of_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_serve_fd_big_file_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_serve_fd_file_then_socket, setup, teardown),
      cmocka_unit_test_setup_teardown(test_half_close_gets_all_output, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tcp_round_trip, setup, teardown),
  };
  /* IXR_TEST_FILTER=test_tcp* runs only the tests whose names match. */
  if (getenv("IXR_TEST_FILTER") != NULL) cmocka_set_test_filter(getenv("IXR_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
