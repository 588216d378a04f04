/*
 * tcp_server.c: ixr inside a host that already runs a libuv TCP server.
 *
 * The host owns the sockets and speaks its own line protocol; ixr never
 * sees a socket. Each command becomes a structured event (ixr_feed_event:
 * no JSON is written or parsed), and each output line goes back, as a line
 * of the host's protocol, to the connection that last sent an event for its
 * interaction. The runtime shares the host's loop, so its timers (request
 * timeouts) fire while the server runs, and their output is routed the
 * same way.
 *
 * Protocol: one command a line, words separated by spaces.
 *   present IID [KEY=VALUE]...      interaction.present for IID
 *   event NAME IID [KEY=VALUE]...   any other event
 *   stats                           session counts
 *   quit                            the server closes the connection
 * A command is answered by the output lines it caused, then "ok" (or
 * "err MESSAGE"). Output lines, also sent when a timer causes them:
 *   action NAME IID REQUESTID ARGS-JSON
 *   session STATE IID SESSION [STRATEGY-OR-REASON]
 *   error CODE MESSAGE
 * A VALUE that reads as an integer or a decimal number is sent as a
 * number, true and false as booleans, anything else as a string.
 *
 *   ./tcp_server [--port N] [HANDLERS]   serves 127.0.0.1:N (default 7070)
 *   ./tcp_server --selftest [HANDLERS]   connects to itself, runs a short
 *                                        conversation, checks it, exits 0
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ixr.h>
#include <uv.h>

#define MAX_LINE 4096
#define MAX_FIELDS 32

typedef struct server server;

typedef struct conn {
  uv_tcp_t tcp;
  server *srv;
  struct conn *next;
  char in[MAX_LINE];
  size_t inlen;
  bool skipping; /* inside a line too long for `in`: dropped to its end */
  bool closing;
} conn;

/* Which connection gets an interaction's output: the last one that sent an
 * event for it. A list is enough for an example; a real host would hash. */
typedef struct route {
  struct route *next;
  conn *c;
  size_t len;
  char iid[];
} route;

struct server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_signal_t sigint;
  ixr_runtime *rt;
  conn *conns;
  route *routes;
  conn *current; /* the connection whose command is being processed */
};

/* ---- writing lines ---------------------------------------------------- */

typedef struct wreq {
  uv_write_t req;
  char data[];
} wreq;

static void on_written(uv_write_t *req, int status) {
  (void)status; /* a failed write shows up as a read error too */
  free(req);
}

static void send_line(conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void send_line(conn *c, const char *fmt, ...) {
  if (c->closing) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  wreq *w = malloc(sizeof(*w) + (size_t)n + 2);
  if (w == NULL) return;
  va_start(ap, fmt);
  vsnprintf(w->data, (size_t)n + 1, fmt, ap);
  va_end(ap);
  w->data[n] = '\n';
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)n + 1);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0)
    free(w);
}

/* ---- routing output back ---------------------------------------------- */

static route **find_route(server *srv, const char *iid, size_t len) {
  route **pp = &srv->routes;
  while (*pp != NULL &&
         ((*pp)->len != len || memcmp((*pp)->iid, iid, len) != 0))
    pp = &(*pp)->next;
  return pp;
}

static void set_route(server *srv, const char *iid, conn *c) {
  size_t len = strlen(iid);
  route **pp = find_route(srv, iid, len);
  if (*pp != NULL) {
    (*pp)->c = c;
    return;
  }
  route *r = malloc(sizeof(*r) + len);
  if (r == NULL) return;
  memcpy(r->iid, iid, len);
  r->len = len;
  r->c = c;
  r->next = NULL;
  *pp = r;
}

static void drop_route(server *srv, const char *iid, size_t len) {
  route **pp = find_route(srv, iid, len);
  if (*pp == NULL) return;
  route *r = *pp;
  *pp = r->next;
  free(r);
}

/*
 * The structured view has no field for an action's arguments: they are the
 * JSON object that ends the line ("args" is its last member, and a JSON
 * string cannot contain the unescaped text ,"args": so the first match is
 * the member itself).
 */
static const char *action_args(const ixr_output *out, int *len) {
  const char *p = strstr(out->json, ",\"args\":");
  if (p == NULL) {
    *len = 2;
    return "{}";
  }
  p += 8;
  *len = (int)(out->json + out->json_len - 1 - p);
  return p;
}

/* ixr's output callback: called during ixr_feed_event() for the lines an
 * event causes, and from the loop for the lines a timer causes. */
static void on_output(void *ud, const ixr_output *out) {
  server *srv = ud;
  conn *c = srv->current;
  if (out->interactionid != NULL) {
    route *r = *find_route(srv, out->interactionid, out->interactionid_len);
    if (r != NULL) c = r->c;
  }
  int il = (int)out->interactionid_len;
  if (c == NULL) {
    printf("no connection for: %s\n", out->json);
    return;
  }
  switch (out->type) {
    case IXR_OUT_ACTION: {
      int alen;
      const char *args = action_args(out, &alen);
      send_line(c, "action %s %.*s %s %.*s", out->action, il,
                out->interactionid, out->requestid, alen, args);
      break;
    }
    case IXR_OUT_SESSION: {
      const char *extra = out->reason != NULL ? out->reason
                          : strcmp(out->state, "started") == 0 ? out->strategy
                                                               : NULL;
      send_line(c, "session %s %.*s %s%s%s", out->state, il,
                out->interactionid, out->session, extra ? " " : "",
                extra ? extra : "");
      if (strcmp(out->state, "ended") == 0)
        drop_route(srv, out->interactionid, out->interactionid_len);
      break;
    }
    case IXR_OUT_ERROR:
      send_line(c, "error %s %s", out->error, out->message);
      break;
    default:
      send_line(c, "%s", out->json);
      break;
  }
}

/* ---- commands --------------------------------------------------------- */

/* A KEY=VALUE word as a typed field. */
static void parse_field(char *word, ixr_field *f) {
  memset(f, 0, sizeof(*f));
  char *eq = strchr(word, '=');
  f->key = word;
  f->type = IXR_V_STRING;
  f->str = "";
  if (eq == NULL) return;
  *eq = '\0';
  const char *v = eq + 1;
  char *end;
  errno = 0;
  long long i = strtoll(v, &end, 10);
  if (*v != '\0' && *end == '\0' && errno == 0) {
    f->type = IXR_V_INT;
    f->i = i;
    return;
  }
  double d = strtod(v, &end);
  if (*v != '\0' && *end == '\0' && errno == 0) {
    f->type = IXR_V_DOUBLE;
    f->d = d;
    return;
  }
  if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
    f->type = IXR_V_BOOL;
    f->b = v[0] == 't';
    return;
  }
  f->str = v; /* len 0: NUL-terminated */
}

static void conn_close(conn *c);

static void command(conn *c, char *line) {
  server *srv = c->srv;
  char *words[MAX_FIELDS + 3];
  int n = 0;
  for (char *w = strtok(line, " \t\r"); w != NULL && n < MAX_FIELDS + 3;
       w = strtok(NULL, " \t\r"))
    words[n++] = w;
  if (n == 0) return;

  if (strcmp(words[0], "quit") == 0) {
    send_line(c, "bye");
    conn_close(c);
    return;
  }
  if (strcmp(words[0], "stats") == 0) {
    ixr_stats st;
    ixr_get_stats(srv->rt, &st);
    send_line(c, "stats active=%llu suspended=%llu started=%llu ended=%llu",
              (unsigned long long)st.sessions_active,
              (unsigned long long)st.sessions_suspended,
              (unsigned long long)st.sessions_started,
              (unsigned long long)st.sessions_ended);
    send_line(c, "ok");
    return;
  }

  const char *name;
  int first; /* index of the interaction id */
  if (strcmp(words[0], "present") == 0 && n >= 2) {
    name = "interaction.present";
    first = 1;
  } else if (strcmp(words[0], "event") == 0 && n >= 3) {
    name = words[1];
    first = 2;
  } else {
    send_line(c, "err unknown command '%s'", words[0]);
    return;
  }
  if (n - first > MAX_FIELDS) {
    send_line(c, "err too many fields");
    return;
  }
  ixr_field fields[MAX_FIELDS];
  size_t nf = 0;
  memset(&fields[nf], 0, sizeof(fields[nf]));
  fields[nf].key = "interactionid";
  fields[nf].type = IXR_V_STRING;
  fields[nf++].str = words[first];
  for (int i = first + 1; i < n; i++) parse_field(words[i], &fields[nf++]);

  /* This connection now gets the interaction's output. */
  set_route(srv, words[first], c);
  srv->current = c;
  int rc = ixr_feed_event(srv->rt, name, fields, nf);
  srv->current = NULL;
  if (rc != 0) send_line(c, "err %s", ixr_strerror(rc));
  else send_line(c, "ok");
}

/* ---- connections ------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h) {
  conn *c = h->data;
  server *srv = c->srv;
  for (conn **pp = &srv->conns; *pp != NULL; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  free(c);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  uv_close((uv_handle_t *)req->handle, on_conn_closed);
  free(req);
}

/* Closes once the replies already queued are written. Sessions stay in the
 * runtime: their output goes to the next connection that sends an event
 * for them, or is printed on stdout meanwhile. */
static void conn_close(conn *c) {
  if (c->closing) return;
  c->closing = true;
  uv_read_stop((uv_stream_t *)&c->tcp);
  for (route *r = c->srv->routes; r != NULL; r = r->next)
    if (r->c == c) r->c = NULL;
  uv_shutdown_t *req = malloc(sizeof(*req));
  if (req == NULL || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    free(req);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  conn *c = h->data;
  (void)hint;
  *buf = uv_buf_init(c->in + c->inlen, (unsigned)(sizeof(c->in) - c->inlen));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn *c = s->data;
  (void)buf;
  if (n < 0) {
    conn_close(c);
    return;
  }
  c->inlen += (size_t)n;
  char *start = c->in, *nl;
  while (!c->closing &&
         (nl = memchr(start, '\n', c->inlen - (size_t)(start - c->in))) != NULL) {
    *nl = '\0';
    if (c->skipping) c->skipping = false;
    else command(c, start);
    start = nl + 1;
  }
  c->inlen -= (size_t)(start - c->in);
  memmove(c->in, start, c->inlen);
  if (c->inlen == sizeof(c->in)) { /* no newline in a full buffer */
    send_line(c, "err line too long");
    c->inlen = 0;
    c->skipping = true;
  }
}

static void on_connection(uv_stream_t *listener, int status) {
  server *srv = listener->data;
  if (status < 0) return;
  conn *c = calloc(1, sizeof(*c));
  if (c == NULL) return;
  c->srv = srv;
  uv_tcp_init(srv->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    c->next = srv->conns;
    srv->conns = c;
    return;
  }
  c->next = srv->conns;
  srv->conns = c;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Closes every handle of the host; ixr_close() then closes ixr's. */
static void server_shutdown(server *srv) {
  if (!uv_is_closing((uv_handle_t *)&srv->listener))
    uv_close((uv_handle_t *)&srv->listener, NULL);
  if (!uv_is_closing((uv_handle_t *)&srv->sigint))
    uv_close((uv_handle_t *)&srv->sigint, NULL);
  for (conn *c = srv->conns; c != NULL; c = c->next)
    if (!c->closing) {
      c->closing = true;
      uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    }
}

static void on_sigint(uv_signal_t *h, int signum) {
  (void)signum;
  fprintf(stderr, "tcp_server: interrupted, closing\n");
  server_shutdown(h->data);
}

/* ---- the self-test: a client on the same loop ------------------------- */

/* Each command is sent once the line `until` (a prefix) has arrived. */
static const struct {
  const char *send;
  const char *until;
} script[] = {
    {"present I1 media=chat", "ok"},
    {"present I2 media=email queue=mail timeout=0.2", "ok"},
    {"event interaction.route.done I1 requestid=r1", "ok"},
    {"stats", "action queue I2"}, /* the route of I2 times out meanwhile */
    {"event interaction.queue.done I2 requestid=r3", "ok"},
    {"event interaction.route.done ghost requestid=r9", "ok"},
    {"bogus", "err"},
    {"quit", "bye"},
};

/* The lines the conversation must give, in order (an error's message is
 * checked up to its code only). */
static const char *const expected[] = {
    "session started I1 s1 default",
    "action route I1 r1 {\"target\":\"AgentGroup:chat\"}",
    "ok",
    "session started I2 s2 default",
    "action route I2 r2 {\"target\":\"AgentGroup:email\"}",
    "ok",
    "session ended I1 s1 completed",
    "ok",
    "stats active=1 suspended=0 started=2 ended=1",
    "ok",
    "action queue I2 r3 {\"queue\":\"mail\"}",
    "session ended I2 s2 completed",
    "ok",
    "error unknown_interaction ",
    "ok",
    "err unknown command 'bogus'",
    "bye",
};

static bool transcript_ok(const char *t) {
  for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
    const char *nl = strchr(t, '\n');
    if (nl == NULL) return false;
    size_t want = strlen(expected[i]), got = (size_t)(nl - t);
    bool prefix = expected[i][want - 1] == ' ';
    if (got < want || memcmp(t, expected[i], want) != 0 ||
        (!prefix && got != want))
      return false;
    t = nl + 1;
  }
  return *t == '\0';
}

typedef struct client {
  uv_tcp_t tcp;
  uv_connect_t req;
  uv_timer_t guard;
  server *srv;
  size_t step;
  char in[MAX_LINE];
  size_t inlen;
  char transcript[8192];
  size_t tlen;
  bool done;
} client;

static void client_send(client *cl) {
  const char *cmd = script[cl->step].send;
  size_t n = strlen(cmd);
  wreq *w = malloc(sizeof(*w) + n + 1);
  if (w == NULL) return;
  memcpy(w->data, cmd, n);
  w->data[n] = '\n';
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)n + 1);
  if (uv_write(&w->req, (uv_stream_t *)&cl->tcp, &buf, 1, on_written) != 0)
    free(w);
}

static void client_finish(client *cl) {
  if (cl->done) return;
  cl->done = true;
  uv_close((uv_handle_t *)&cl->tcp, NULL);
  uv_close((uv_handle_t *)&cl->guard, NULL);
  server_shutdown(cl->srv);
}

static void client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  client *cl = h->data;
  (void)hint;
  *buf = uv_buf_init(cl->in + cl->inlen, (unsigned)(sizeof(cl->in) - cl->inlen));
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  client *cl = s->data;
  (void)buf;
  if (n < 0) { /* the server closed the connection after "bye" */
    client_finish(cl);
    return;
  }
  cl->inlen += (size_t)n;
  char *start = cl->in, *nl;
  while ((nl = memchr(start, '\n', cl->inlen - (size_t)(start - cl->in))) != NULL) {
    size_t len = (size_t)(nl - start) + 1;
    if (cl->tlen + len < sizeof(cl->transcript)) {
      memcpy(cl->transcript + cl->tlen, start, len);
      cl->tlen += len;
      cl->transcript[cl->tlen] = '\0';
    }
    const char *until = script[cl->step].until;
    if (strncmp(start, until, strlen(until)) == 0 &&
        ++cl->step < sizeof(script) / sizeof(script[0]))
      client_send(cl);
    start = nl + 1;
  }
  cl->inlen -= (size_t)(start - cl->in);
  memmove(cl->in, start, cl->inlen);
}

static void client_connected(uv_connect_t *req, int status) {
  client *cl = req->data;
  if (status < 0) {
    fprintf(stderr, "selftest: connect: %s\n", uv_strerror(status));
    client_finish(cl);
    return;
  }
  uv_read_start((uv_stream_t *)&cl->tcp, client_alloc, client_read);
  client_send(cl);
}

static void client_timeout(uv_timer_t *t) {
  fprintf(stderr, "selftest: no answer within 10 s\n");
  client_finish(t->data);
}

/* ---- main ------------------------------------------------------------- */

static void on_log(void *ud, ixr_log_level level, const char *msg) {
  (void)ud;
  static const char *names[] = {"error", "warn", "info", "debug", "trace"};
  fprintf(stderr, "tcp_server: ixr %s: %s\n", names[level], msg);
}

int main(int argc, char **argv) {
  bool selftest = false;
  int port = 7070;
  const char *handlers = "handlers";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--selftest") == 0) selftest = true;
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
    else handlers = argv[i];
  }
  if (selftest) port = 0; /* any free port */

  uv_loop_t loop;
  uv_loop_init(&loop);
  server srv;
  memset(&srv, 0, sizeof(srv));
  srv.loop = &loop;

  /* ixr on the host's loop, its output into on_output(). */
  ixr_options opt;
  ixr_options_init(&opt);
  opt.handlers_dir = handlers;
  opt.loop = &loop;
  opt.on_output = on_output;
  opt.output_ud = &srv;
  opt.on_log = on_log;
  opt.log_level = IXR_LOG_WARN;
  int rc = ixr_new(&srv.rt, &opt);
  if (rc != 0) {
    fprintf(stderr, "tcp_server: %s\n", ixr_strerror(rc));
    return 1;
  }

  /* The host's own server. */
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(&loop, &srv.listener);
  srv.listener.data = &srv;
  uv_signal_init(&loop, &srv.sigint);
  srv.sigint.data = &srv;
  int err = uv_tcp_bind(&srv.listener, (const struct sockaddr *)&addr, 0);
  if (err == 0) err = uv_listen((uv_stream_t *)&srv.listener, 16, on_connection);
  if (err != 0) {
    fprintf(stderr, "tcp_server: 127.0.0.1:%d: %s\n", port, uv_strerror(err));
    server_shutdown(&srv);
  } else {
    struct sockaddr_in bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&bound, &len);
    port = ntohs(bound.sin_port);
    fprintf(stderr, "tcp_server: listening on 127.0.0.1:%d\n", port);
    uv_signal_start(&srv.sigint, on_sigint, SIGINT);
  }

  client cl;
  memset(&cl, 0, sizeof(cl));
  if (selftest && err == 0) {
    cl.srv = &srv;
    uv_tcp_init(&loop, &cl.tcp);
    cl.tcp.data = &cl;
    cl.req.data = &cl;
    uv_timer_init(&loop, &cl.guard);
    cl.guard.data = &cl;
    uv_timer_start(&cl.guard, client_timeout, 10000, 0);
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_connect(&cl.req, &cl.tcp, (const struct sockaddr *)&addr,
                   client_connected);
  }

  uv_run(&loop, UV_RUN_DEFAULT);

  /* The host's handles are closed; now ixr's, and the loop runs once more
   * for their close callbacks. */
  ixr_close(srv.rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  while (srv.routes != NULL) {
    route *r = srv.routes;
    srv.routes = r->next;
    free(r);
  }
  if (uv_loop_close(&loop) != 0) {
    fprintf(stderr, "tcp_server: handles left open\n");
    return 1;
  }
  if (err != 0) return 1;
  if (!selftest) return 0;
  fputs(cl.transcript, stdout);
  if (!transcript_ok(cl.transcript)) {
    fprintf(stderr, "selftest: FAILED; expected:\n");
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
      fprintf(stderr, "%s\n", expected[i]);
    return 1;
  }
  printf("selftest: ok\n");
  return 0;
}
