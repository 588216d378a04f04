/*
 * two_runtimes.c: the threading rule, under ThreadSanitizer.
 *
 * Two threads, each with its own uv loop and its own runtime, process
 * thousands of events at the same time: NDJSON through ixr_feed() and
 * structured events through ixr_feed_event(), timeouts fired by their
 * loops, a host C function, a reload and an ixr_check() each. Runtimes
 * share nothing, so ThreadSanitizer must report nothing, and each thread
 * must get exactly the output its own events call for.
 *
 *   two_runtimes HANDLERS LUADIR [EVENTS-PER-THREAD]
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "ixr.h"

#define NTHREADS 2
#define NTIMEOUTS 50 /* sessions per thread whose route times out */

/*
 * libuv closes its file descriptors with a raw close system call (to avoid
 * the cancellation point of close()), which ThreadSanitizer cannot see. When
 * one thread's closed loop descriptor number is then reused by the other
 * thread (an fopen of a strategy file, say), ThreadSanitizer takes its own
 * bookkeeping of that descriptor for a data race between the two threads.
 * So no thread closes a loop while another may still open a descriptor:
 * the ixr_check() calls, each of which makes and closes a loop, take turns,
 * and the threads close their own loops only once every thread is done.
 */
static pthread_mutex_t check_turn = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t all_done;

typedef struct worker {
  int index;
  const char *handlers, *lua_dir;
  int n; /* interactions fed to completion */
  uv_loop_t loop;
  ixr_runtime *rt;
  uv_timer_t wait; /* keeps the loop running while the timeouts are due */
  uint64_t wait_start;
  /* counted in callbacks, checked after the thread ends */
  unsigned long started, ended, routes, queues, errors, other, wrong_owner;
  unsigned long host_calls;
  int rc_first; /* first failing return code, or 0 */
  char failure[256];
} worker;

static void fail(worker *w, const char *what, int rc) {
  if (w->rc_first != 0) return;
  w->rc_first = rc ? rc : -1;
  snprintf(w->failure, sizeof(w->failure), "thread %d: %s: %s", w->index, what,
           rc ? ixr_strerror(rc) : "failed");
}

/* Counts output lines; every interaction id must be one of this thread's. */
static void on_output(void *ud, const ixr_output *out) {
  worker *w = ud;
  char prefix[8];
  snprintf(prefix, sizeof(prefix), "T%d-", w->index);
  if (out->interactionid != NULL &&
      strncmp(out->interactionid, prefix, strlen(prefix)) != 0)
    w->wrong_owner++;
  switch (out->type) {
    case IXR_OUT_SESSION:
      if (strcmp(out->state, "started") == 0) w->started++;
      else if (strcmp(out->state, "ended") == 0) w->ended++;
      else w->other++;
      break;
    case IXR_OUT_ACTION:
      if (strcmp(out->action, "route") == 0) w->routes++;
      else if (strcmp(out->action, "queue") == 0) w->queues++;
      else w->other++;
      break;
    case IXR_OUT_ERROR: w->errors++; break;
    default: w->other++; break;
  }
}

static void on_log(void *ud, ixr_log_level level, const char *msg) {
  worker *w = ud;
  if (level <= IXR_LOG_WARN)
    fprintf(stderr, "thread %d: ixr: %s\n", w->index, msg);
}

/* host.tag(n): a host function, counted per runtime through its upvalue. */
static int host_tag(lua_State *L) {
  worker *w = lua_touserdata(L, lua_upvalueindex(1));
  lua_Integer n = luaL_checkinteger(L, 1);
  w->host_calls++;
  lua_pushinteger(L, n % 7);
  return 1;
}

static void setup(ixr_runtime *rt, void *ud) {
  worker *w = ud;
  int rc = ixr_register(rt, "host", "tag", host_tag, w);
  if (rc != 0) fail(w, "ixr_register", rc);
}

static void on_wait(uv_timer_t *t) {
  worker *w = t->data;
  /* Stop once every timeout has fired (the sessions then wait on a 30 s
   * queue request), or give up after 10 s (the counts then fail). */
  if (w->queues >= NTIMEOUTS || uv_now(&w->loop) - w->wait_start > 10000)
    uv_close((uv_handle_t *)t, NULL);
}

static void report(void *ud, const char *line) {
  (void)ud;
  (void)line;
}

static void *run(void *arg) {
  worker *w = arg;
  if (uv_loop_init(&w->loop) != 0) {
    fail(w, "uv_loop_init", 0);
    pthread_barrier_wait(&all_done); /* the others must not wait forever */
    return NULL;
  }
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = w->handlers;
  o.lua_dir = w->lua_dir;
  o.loop = &w->loop;
  o.on_output = on_output;
  o.output_ud = w;
  o.on_log = on_log;
  o.log_ud = w;
  o.on_setup = setup;
  o.setup_ud = w;
  int rc = ixr_new(&w->rt, &o);
  if (rc != 0) {
    fail(w, "ixr_new", rc);
    pthread_barrier_wait(&all_done);
    uv_loop_close(&w->loop);
    return NULL;
  }

  char line[256], iid[32], rid[16];
  for (int i = 0; i < w->n && w->rc_first == 0; i++) {
    snprintf(iid, sizeof(iid), "T%d-%d", w->index, i);
    if (i % 2 == 0) { /* NDJSON */
      int len = snprintf(line, sizeof(line),
                         "{\"name\":\"interaction.present\",\"data\":"
                         "{\"interactionid\":\"%s\",\"n\":%d}}\n",
                         iid, i);
      if ((rc = ixr_feed(w->rt, line, (size_t)len)) != 0) fail(w, "ixr_feed", rc);
    } else { /* structured */
      ixr_field f[3];
      memset(f, 0, sizeof(f));
      f[0].key = "interactionid";
      f[0].type = IXR_V_STRING;
      f[0].str = iid;
      f[1].key = "n";
      f[1].type = IXR_V_INT;
      f[1].i = i;
      if ((rc = ixr_feed_event(w->rt, "interaction.present", f, 2)) != 0)
        fail(w, "ixr_feed_event", rc);
    }
    /* the route action of this session is the latest request: r<count> */
    snprintf(rid, sizeof(rid), "r%lu", w->routes + w->queues);
    ixr_field d[2];
    memset(d, 0, sizeof(d));
    d[0].key = "interactionid";
    d[0].type = IXR_V_STRING;
    d[0].str = iid;
    d[1].key = "requestid";
    d[1].type = IXR_V_STRING;
    d[1].str = rid;
    if ((rc = ixr_feed_event(w->rt, "interaction.route.done", d, 2)) != 0)
      fail(w, "ixr_feed_event", rc);
    if (i == w->n / 2) { /* a reload halfway through */
      ixr_reload_result res;
      if ((rc = ixr_reload(w->rt, &res)) != 0) fail(w, "ixr_reload", rc);
    }
  }

  /* Sessions whose route times out on the loop's real clock. */
  for (int i = 0; i < NTIMEOUTS && w->rc_first == 0; i++) {
    ixr_field f[2];
    memset(f, 0, sizeof(f));
    snprintf(iid, sizeof(iid), "T%d-t%d", w->index, i);
    f[0].key = "interactionid";
    f[0].type = IXR_V_STRING;
    f[0].str = iid;
    f[1].key = "timeout";
    f[1].type = IXR_V_DOUBLE;
    f[1].d = 0.02 + 0.001 * i;
    if ((rc = ixr_feed_event(w->rt, "interaction.present", f, 2)) != 0)
      fail(w, "ixr_feed_event", rc);
  }
  uv_timer_init(&w->loop, &w->wait);
  w->wait.data = w;
  w->wait_start = uv_now(&w->loop);
  uv_timer_start(&w->wait, on_wait, 10, 10);
  uv_run(&w->loop, UV_RUN_DEFAULT);

  /* ixr_check makes (and closes) a runtime of its own. It has no on_setup,
   * so the strategy's require("host") is one problem it reports. */
  pthread_mutex_lock(&check_turn);
  rc = ixr_check(w->handlers, w->lua_dir, report, NULL);
  pthread_mutex_unlock(&check_turn);
  if (rc < 0) fail(w, "ixr_check", rc);

  pthread_barrier_wait(&all_done);
  ixr_close(w->rt);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&w->loop) != 0) fail(w, "uv_loop_close (handles left open)", 0);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s HANDLERS LUADIR [EVENTS-PER-THREAD]\n", argv[0]);
    return 2;
  }
  int n = argc > 3 ? atoi(argv[3]) : 3000;
  worker w[NTHREADS];
  pthread_t th[NTHREADS];
  memset(w, 0, sizeof(w));
  pthread_barrier_init(&all_done, NULL, NTHREADS);
  for (int i = 0; i < NTHREADS; i++) {
    w[i].index = i;
    w[i].handlers = argv[1];
    w[i].lua_dir = argv[2];
    w[i].n = n;
    if (pthread_create(&th[i], NULL, run, &w[i]) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      return 1;
    }
  }
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);

  int failed = 0;
  unsigned long want_sessions = (unsigned long)n + NTIMEOUTS;
  for (int i = 0; i < NTHREADS; i++) {
    worker *x = &w[i];
    printf("thread %d: %lu started, %lu ended, %lu routes, %lu queues, "
           "%lu errors, %lu host calls\n",
           i, x->started, x->ended, x->routes, x->queues, x->errors,
           x->host_calls);
    if (x->rc_first != 0) {
      fprintf(stderr, "%s\n", x->failure);
      failed = 1;
    }
    if (x->started != want_sessions || x->ended != (unsigned long)n ||
        x->routes != want_sessions || x->queues != NTIMEOUTS ||
        x->errors != 0 || x->other != 0 || x->wrong_owner != 0 ||
        x->host_calls != want_sessions) {
      fprintf(stderr,
              "thread %d: expected %lu started, %d ended, %lu routes, %d "
              "queues, %lu host calls, no errors, no other lines, no foreign "
              "ids (got %lu other, %lu foreign)\n",
              i, want_sessions, n, want_sessions, NTIMEOUTS, want_sessions,
              x->other, x->wrong_owner);
      failed = 1;
    }
  }
  printf(failed ? "two runtimes: FAILED\n" : "two runtimes: ok\n");
  return failed;
}
