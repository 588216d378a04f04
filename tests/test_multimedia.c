/*
 * test_multimedia.c: the standard handler sets (lua/ixr/multimedia.lua)
 * through the real runtime. The table below is the table of
 * docs/multimedia.md, row for row: change one, change the other.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* One strategy per behaviour, the same flow for all: route, report the
 * result, then wait for an event that never comes (so the flow stays). */
static const char *FLOW =
    "  start = function(session, event)\n"
    "    session.vars.starts = (session.vars.starts or 0) + 1\n"
    "    local ok = session:route({ target = 'A', starts = session.vars.starts,\n"
    "                               requeued = event.requeued == true })\n"
    "    session:action('routed', { ok = ok })\n"
    "    session:wait('interaction.finish')\n"
    "  end,\n";

typedef enum { PENDING, IDLE } flow_state; /* the flow waits: for its request | in wait() */

typedef struct row {
  const char *defaults;
  const char *event;    /* the event name */
  const char *resultof; /* NULL: absent */
  flow_state flow;
  const char *outcome;  /* "ended:R", "suspended:R", or "running" */
  const char *later;    /* PENDING rows: the outcome once the request's result
                           has arrived and the flow has finished */
} row;

/* clang-format off */
static const row ROWS[] = {
  /* requeue (the default) */
  {"requeue", "interaction.notcontrolled", "routing",   IDLE,    "ended:routing",        NULL},
  {"requeue", "interaction.notcontrolled", "routing",   PENDING, "running",              "ended:routing"},
  {"requeue", "interaction.notcontrolled", "deletion",  IDLE,    "ended:deletion",       NULL},
  {"requeue", "interaction.notcontrolled", "deletion",  PENDING, "ended:deletion",       NULL},
  {"requeue", "interaction.notcontrolled", "detaching", IDLE,    "ended:detaching",      NULL},
  {"requeue", "interaction.notcontrolled", "revoking",  IDLE,    "suspended:revoking",   NULL},
  {"requeue", "interaction.notcontrolled", "revoking",  PENDING, "suspended:revoking",   "suspended"},
  {"requeue", "interaction.notcontrolled", NULL,        IDLE,    "suspended:notcontrolled", NULL},
  {"requeue", "interaction.notcontrolled", "unheard-of", IDLE,   "suspended:unheard-of", NULL},
  {"requeue", "interaction.notcontrolled", "",          IDLE,    "suspended:notcontrolled", NULL},
  {"requeue", "interaction.deleted",       NULL,        IDLE,    "ended:deleted",        NULL},
  {"requeue", "interaction.deleted",       "deletion",  PENDING, "ended:deleted",        NULL},
  /* legacy */
  {"legacy",  "interaction.notcontrolled", "routing",   IDLE,    "ended:routing",        NULL},
  {"legacy",  "interaction.notcontrolled", "routing",   PENDING, "running",              "ended:routing"},
  {"legacy",  "interaction.notcontrolled", "deletion",  IDLE,    "ended:deletion",       NULL},
  {"legacy",  "interaction.notcontrolled", "detaching", IDLE,    "ended:detaching",      NULL},
  {"legacy",  "interaction.notcontrolled", "revoking",  IDLE,    "ended:revoking",       NULL},
  {"legacy",  "interaction.notcontrolled", NULL,        IDLE,    "ended:notcontrolled",  NULL},
  {"legacy",  "interaction.notcontrolled", "",          IDLE,    "ended:notcontrolled",  NULL},
  {"legacy",  "interaction.deleted",       NULL,        IDLE,    "ended:deleted",        NULL},
  /* resultof */
  {"resultof", "interaction.notcontrolled", "routing",   IDLE,   "running",              NULL},
  {"resultof", "interaction.notcontrolled", "routing",   PENDING, "running",             "ended:routing"},
  {"resultof", "interaction.notcontrolled", "deletion",  IDLE,   "ended:deletion",       NULL},
  {"resultof", "interaction.notcontrolled", "detaching", IDLE,   "running",              NULL},
  {"resultof", "interaction.notcontrolled", "revoking",  IDLE,   "running",              NULL},
  {"resultof", "interaction.notcontrolled", NULL,        IDLE,   "ended:notcontrolled",  NULL},
  {"resultof", "interaction.notcontrolled", "",          IDLE,   "ended:notcontrolled",  NULL},
  {"resultof", "interaction.deleted",       NULL,        IDLE,   "ended:deleted",        NULL},
  /* none */
  {"none",    "interaction.notcontrolled", "deletion",  IDLE,    "running",              NULL},
  {"none",    "interaction.notcontrolled", NULL,        IDLE,    "running",              NULL},
  {"none",    "interaction.deleted",       NULL,        IDLE,    "running",              NULL},
};
/* clang-format on */

typedef tfix fixture;

static void write_strategy(const char *dir, const char *name, const char *head,
                           const char *tail) {
  char buf[4096];
  snprintf(buf, sizeof(buf), "return {\n%s%s%s}\n", head, FLOW, tail);
  char file[128];
  snprintf(file, sizeof(file), "%s.lua", name);
  tdir_write(dir, file, buf);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  f->dir = tdir_new();
  const char *sets[] = {"requeue", "legacy", "resultof", "none"};
  for (int i = 0; i < 4; i++) {
    char head[128];
    snprintf(head, sizeof(head), "  defaults = '%s',\n  requeue_timeout = 10,\n", sets[i]);
    write_strategy(f->dir, sets[i], head, "");
  }
  /* requeue with its own requeued flow */
  write_strategy(f->dir, "ownrequeued", "  requeue_timeout = 10,\n",
                 "  requeued = function(session, event)\n"
                 "    session:action('welcome_back', { starts = session.vars.starts })\n"
                 "    session:wait('interaction.finish')\n"
                 "  end,\n");
  /* overrides notcontrolled, then calls the standard handler */
  write_strategy(f->dir, "override", "",
                 "  on = {\n"
                 "    ['interaction.notcontrolled'] = function(session, event)\n"
                 "      if session.state == 'active' then\n"
                 "        session:action('saw', { resultof = event.data.resultof or 'none' })\n"
                 "      end\n"
                 "      return require('ixr.multimedia').requeue.notcontrolled(session, event)\n"
                 "    end,\n"
                 "    ['interaction.note'] = function(session, event)\n"
                 "      session:action('noted', { state = session.state })\n"
                 "    end,\n"
                 "    ['interaction.other'] = function(session, event)\n"
                 "      local mm = require('ixr.multimedia')\n"
                 "      local other = { name = 'interaction.notcontrolled',\n"
                 "                      data = { interactionid = 'SOMEONE-ELSE', resultof = 'deletion' } }\n"
                 "      mm.requeue.notcontrolled(session, other)\n"
                 "      mm.legacy.notcontrolled(session, other)\n"
                 "      mm.resultof.notcontrolled(session, other)\n"
                 "      mm.requeue.deleted(session, other)\n"
                 "      session:action('still_here')\n"
                 "    end,\n"
                 "  },\n");
  /* requeue, with a fallback when the route times out, and an on handler
   * that acts */
  tdir_write(f->dir, "fallback.lua",
             "return {\n"
             "  start = function(session, event)\n"
             "    local ok = session:route({ target = 'A' }, { timeout = 30 })\n"
             "    if not ok then session:queue({ queue = 'Q' }) end\n"
             "    session:action('after_fallback')\n"
             "  end,\n"
             "  on = {\n"
             "    ['interaction.note'] = function(session, event)\n"
             "      session:action('noted')\n"
             "    end,\n"
             "  },\n"
             "}\n");
  /* changes its own requeue_timeout to a string while it runs */
  tdir_write(f->dir, "mutating.lua",
             "local S\n"
             "S = {\n"
             "  requeue_timeout = 10,\n"
             "  start = function(session, event)\n"
             "    S.requeue_timeout = 'ten'\n"
             "    session:wait('interaction.finish')\n"
             "  end,\n"
             "}\n"
             "return S\n");
  /* replaces its flow by hand (core.run) once the route is answered */
  tdir_write(f->dir, "nested.lua",
             "local core = require('ixr.core')\n"
             "local function second(session) session:action('note') end\n"
             "return {\n"
             "  start = function(session, event)\n"
             "    session:route({ target = 'A' }, { timeout = 10 })\n"
             "    core.run(session, second, event)\n"
             "  end,\n"
             "}\n");
  /* replaces itself from a timer, with an event of its own making */
  tdir_write(f->dir, "timerreplace.lua",
             "local core = require('ixr.core')\n"
             "return {\n"
             "  start = function(session, event) session:route({ target = 'A' }) end,\n"
             "  on = { ['interaction.later'] = function(session, event)\n"
             "    session:after(0, function(s)\n"
             "      s:log('info', 'replaced: ' .. tostring(core.replace(s, { name = 'interaction.present',\n"
             "        data = { interactionid = s.interactionid, strategy = 'requeue' } })))\n"
             "    end)\n"
             "  end },\n"
             "}\n");
  /* replaces itself from its own flow, with a table whose metamethods
   * raise: they must never run (no protected call is around that code) */
  tdir_write(f->dir, "metareplace.lua",
             "local core = require('ixr.core')\n"
             "return {\n"
             "  start = function(session, event)\n"
             "    session:route({ target = 'A' })\n"
             "    local boom = { __index = function() error('boom') end }\n"
             "    core.replace(session, { name = 'interaction.present', data = setmetatable(\n"
             "      { interactionid = session.interactionid, strategy = 'requeue' }, boom) })\n"
             "    session:action('after_replace')\n"
             "  end,\n"
             "}\n");
  /* the same, 1 ms later: its timer fires inside a clock.advance line */
  tdir_write(f->dir, "timerreplace1.lua",
             "local core = require('ixr.core')\n"
             "return {\n"
             "  start = function(session, event) session:route({ target = 'A' }) end,\n"
             "  on = { ['interaction.later'] = function(session, event)\n"
             "    session:after(0.001, function(s)\n"
             "      core.replace(s, { name = 'interaction.present',\n"
             "        data = { interactionid = s.interactionid, strategy = 'requeue' } })\n"
             "    end)\n"
             "  end },\n"
             "}\n");
  /* its own present handler */
  tdir_write(f->dir, "ownpresent.lua",
             "return {\n"
             "  start = function(session, event) session:route({ target = 'A' }) end,\n"
             "  on = { ['interaction.present'] = function(session, event)\n"
             "    session:log('info', 'own present handler')\n"
             "  end },\n"
             "}\n");
  /* resumes by hand, with a flow that is not a function */
  tdir_write(f->dir, "badresume.lua",
             "local core = require('ixr.core')\n"
             "return {\n"
             "  requeue_timeout = 10,\n"
             "  start = function(session, event) session:wait('interaction.finish') end,\n"
             "  on = {\n"
             "    ['interaction.present'] = function(session, event)\n"
             "      core.resume(session, 'start', event)\n"
             "    end,\n"
             "  },\n"
             "}\n");
  f->rt = trt_new(f->dir, &f->cap);
  *state = f;
  return 0;
}

#define teardown tfix_teardown

static void feedf(fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void feedf(fixture *f, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  tfeed(f->rt, line);
}

static void present(fixture *f, const char *iid, const char *strategy) {
  feedf(f, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"%s\",\"strategy\":\"%s\"}}",
        iid, strategy);
}

/* Checks that the lines from `from` on say `outcome` for session sid. */
static bool outcome_is(fixture *f, size_t from, const char *sid, const char *outcome) {
  char want[256];
  if (strcmp(outcome, "running") == 0) {
    for (size_t i = from; i < f->cap.n; i++)
      if (strstr(f->cap.lines[i], "\"type\":\"session\"")) return false;
    return true;
  }
  const char *colon = strchr(outcome, ':');
  if (colon == NULL) { /* a bare state: no new session line at all */
    for (size_t i = from; i < f->cap.n; i++)
      if (strstr(f->cap.lines[i], "\"type\":\"session\"")) return false;
    return true;
  }
  snprintf(want, sizeof(want),
           "{\"type\":\"session\",\"state\":\"%.*s\",\"session\":\"%s\",\"interactionid\":\"X\",\"reason\":\"%s\"}",
           (int)(colon - outcome), outcome, sid, colon + 1);
  int n = 0;
  for (size_t i = from; i < f->cap.n; i++) {
    if (strstr(f->cap.lines[i], "\"type\":\"session\"") == NULL) continue;
    if (strcmp(f->cap.lines[i], want) != 0) return false;
    n++;
  }
  return n == 1;
}

static void test_table(void **state) {
  fixture *f = *state;
  for (size_t r = 0; r < sizeof(ROWS) / sizeof(ROWS[0]); r++) {
    const row *w = &ROWS[r];
    ixr_close(f->rt);
    tcap_clear(&f->cap);
    f->rt = trt_new(f->dir, &f->cap);
    present(f, "X", w->defaults);
    if (w->flow == IDLE)
      feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"X\",\"requestid\":\"r1\"}}");
    size_t mark = f->cap.n;
    if (w->resultof)
      feedf(f, "{\"name\":\"%s\",\"data\":{\"interactionid\":\"X\",\"resultof\":\"%s\"}}", w->event, w->resultof);
    else
      feedf(f, "{\"name\":\"%s\",\"data\":{\"interactionid\":\"X\"}}", w->event);
    bool ok = outcome_is(f, mark, "s1", w->outcome);
    if (ok && w->later != NULL) {
      mark = f->cap.n;
      /* the request's result, then the event that lets the flow finish */
      feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"X\",\"requestid\":\"r1\"}}");
      feedf(f, "{\"name\":\"interaction.finish\",\"data\":{\"interactionid\":\"X\"}}");
      ok = outcome_is(f, mark, "s1", w->later);
    }
    if (!ok) {
      fprintf(stderr, "row %zu: %s %s resultof=%s flow=%s: expected %s then %s\n", r, w->defaults,
              w->event, w->resultof ? w->resultof : "(absent)", w->flow == IDLE ? "idle" : "pending",
              w->outcome, w->later ? w->later : "-");
      tcap_dump(&f->cap);
      fail();
    }
  }
}

static void test_represent_after_suspend(void **state) {
  fixture *f = *state;
  present(f, "X", "requeue");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\",\"resultof\":\"revoking\"}}");
  size_t mark = f->cap.n;
  present(f, "X", "requeue");
  assert_string_equal(f->cap.lines[mark],
                      "{\"type\":\"session\",\"state\":\"resumed\",\"session\":\"s1\",\"interactionid\":\"X\"}");
  /* the flow starts again from the top, with its vars and event.requeued */
  assert_string_equal(f->cap.lines[mark + 1],
                      "{\"type\":\"action\",\"action\":\"route\",\"session\":\"s1\",\"interactionid\":\"X\",\"requestid\":\"r2\",\"args\":{\"requeued\":true,\"starts\":2,\"target\":\"A\"}}");
  assert_int_equal(f->cap.n, mark + 2);
  /* a second present while active is ignored */
  present(f, "X", "requeue");
  assert_int_equal(f->cap.n, mark + 2);
  /* the late result of the request cancelled by the switchover is no one's */
  feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"X\",\"requestid\":\"r1\"}}");
  assert_int_equal(f->cap.n, mark + 2);
  feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"X\",\"requestid\":\"r2\"}}");
  assert_true(tcap_find(&f->cap, mark, "\"routed\"", "\"ok\":true", NULL) >= 0);
}

static void test_own_requeued_flow(void **state) {
  fixture *f = *state;
  present(f, "X", "ownrequeued");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\"}}");
  present(f, "X", "ownrequeued");
  assert_true(tcap_find(&f->cap, 0, "\"welcome_back\"", "\"starts\":1", NULL) >= 0);
}

static void test_requeue_timeout(void **state) {
  fixture *f = *state;
  present(f, "X", "requeue");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\",\"resultof\":\"revoking\"}}");
  feedf(f, "{\"name\":\"clock.advance\",\"data\":{\"ms\":9999}}");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", NULL) < 0);
  feedf(f, "{\"name\":\"clock.advance\",\"data\":{\"ms\":1}}");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"reason\":\"requeue_timeout\"", NULL) >= 0);
  /* re-presented in time: the timeout is cancelled */
  tcap_clear(&f->cap);
  present(f, "Y", "requeue");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"Y\",\"resultof\":\"revoking\"}}");
  feedf(f, "{\"name\":\"clock.advance\",\"data\":{\"ms\":5000}}");
  present(f, "Y", "requeue");
  feedf(f, "{\"name\":\"clock.advance\",\"data\":{\"ms\":60000}}");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", NULL) < 0);
  /* and a second switchover starts a fresh timeout */
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"Y\",\"resultof\":\"revoking\"}}");
  feedf(f, "{\"name\":\"clock.advance\",\"data\":{\"ms\":10000}}");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "requeue_timeout", NULL) >= 0);
}

static void test_suspended_session_rules(void **state) {
  fixture *f = *state;
  present(f, "X", "override");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\",\"resultof\":\"revoking\"}}");
  size_t mark = f->cap.n;
  /* other events reach the strategy's on handlers only, which may not act
   * on the interaction: the session does not control it */
  feedf(f, "{\"name\":\"interaction.note\",\"data\":{\"interactionid\":\"X\"},\"id\":\"n1\"}");
  assert_true(tcap_find(&f->cap, mark, "\"handler_error\"",
                        "session s1 is suspended: it does not control interaction 'X'",
                        "\"id\":\"n1\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, mark, "\"noted\"", NULL) < 0);
  /* the flow stays stopped: its wait does not wake */
  feedf(f, "{\"name\":\"interaction.finish\",\"data\":{\"interactionid\":\"X\"}}");
  assert_true(tcap_find(&f->cap, mark, "\"ended\"", NULL) < 0);
  /* routing and revoking again leave it suspended; detaching ends it */
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\",\"resultof\":\"routing\"}}");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\",\"resultof\":\"revoking\"}}");
  assert_true(tcap_find(&f->cap, mark, "\"type\":\"session\"", NULL) < 0);
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\",\"resultof\":\"detaching\"}}");
  assert_true(tcap_find(&f->cap, mark, "\"ended\"", "\"reason\":\"detaching\"", NULL) >= 0);
  /* deleted ends a suspended session too */
  present(f, "Z", "requeue");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"Z\"}}");
  feedf(f, "{\"name\":\"interaction.deleted\",\"data\":{\"interactionid\":\"Z\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"Z\"", "\"reason\":\"deleted\"", NULL) >= 0);
}

static void test_override_calls_standard(void **state) {
  fixture *f = *state;
  present(f, "X", "override");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\",\"resultof\":\"revoking\"}}");
  int saw = tcap_find(&f->cap, 0, "\"saw\"", "\"resultof\":\"revoking\"", NULL);
  int sus = tcap_find(&f->cap, 0, "\"suspended\"", "revoking", NULL);
  assert_true(saw > 0 && sus > saw);
}

/* A flow that waits for a standard event itself takes it: the standard
 * handler does not run (the flow is the nearer handler, docs/protocol.md
 * "Routing events to sessions"). Calling the standard handler from the
 * flow keeps the standard outcome, and the flow stops there: a suspension
 * from the flow's own code ends the flow as session:exit does (nothing
 * after the call runs, no error for acting while suspended). */
static void test_flow_waits_for_standard_events(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "waiter.lua",
             "local mm = require('ixr.multimedia')\n"
             "return { requeue_timeout = 10,\n"
             "  start = function(session, event)\n"
             "    if event.requeued then\n"
             "      local del = session:wait('interaction.deleted')\n"
             "      session:action('saw_deleted', {})\n"
             "      mm.requeue.deleted(session, del)\n"
             "      session:action('after_deleted', {})\n"
             "      return\n"
             "    end\n"
             "    local ev = session:wait('interaction.notcontrolled')\n"
             "    session:action('saw', { resultof = ev.data.resultof })\n"
             "    if ev.data.resultof == 'keep' then session:wait('interaction.finish') end\n"
             "    if ev.data.resultof == 'sorted' then\n"
             "      table.sort({ 2, 1 }, function(a, b) mm.requeue.notcontrolled(session, ev) return a < b end)\n"
             "      session:wait('interaction.finish')\n"
             "    end\n"
             "    mm.requeue.notcontrolled(session, ev)\n"
             "    session:action('after_suspend', {})\n"
             "  end }\n");
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  /* Taken by the flow: no suspension unless the flow asks for one. */
  present(f, "K", "waiter");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"K\",\"resultof\":\"keep\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"saw\"", "\"K\"", "\"resultof\":\"keep\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"suspended\"", "\"K\"", NULL) < 0);
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"K\"", NULL) < 0);
  /* The flow calls the standard handler: suspended, and the flow stops. */
  present(f, "W", "waiter");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"W\",\"resultof\":\"revoking\"}}");
  int saw = tcap_find(&f->cap, 0, "\"saw\"", "\"W\"", "\"resultof\":\"revoking\"", NULL);
  int sus = tcap_find(&f->cap, 0, "\"suspended\"", "\"W\"", "\"reason\":\"revoking\"", NULL);
  assert_true(saw >= 0 && sus > saw);
  assert_true(tcap_find(&f->cap, 0, "after_suspend", NULL) < 0);
  assert_true(tcap_find(&f->cap, 0, "\"error\"", NULL) < 0);
  /* Presented again: resumed; deleted, taken by the flow, which ends the
   * session through the standard handler and stops. */
  present(f, "W", "waiter");
  assert_true(tcap_find(&f->cap, 0, "\"resumed\"", "\"W\"", NULL) > sus);
  feedf(f, "{\"name\":\"interaction.deleted\",\"data\":{\"interactionid\":\"W\"}}");
  int del = tcap_find(&f->cap, 0, "\"saw_deleted\"", "\"W\"", NULL);
  int end = tcap_find(&f->cap, 0, "\"ended\"", "\"W\"", "\"reason\":\"deleted\"", NULL);
  assert_true(del > sus && end > del);
  assert_true(tcap_find(&f->cap, 0, "after_deleted", NULL) < 0);
  assert_true(tcap_find(&f->cap, 0, "\"error\"", NULL) < 0);
  /* Suspended where the flow cannot yield (a table.sort comparator): the
   * flow runs on to its next wait, which says why it cannot wait. */
  present(f, "S", "waiter");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"S\",\"resultof\":\"sorted\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"suspended\"", "\"S\"", "\"reason\":\"sorted\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"handler_error\"", "\"S\"", "is suspended: it does not control",
                        NULL) >= 0);
}

/* A standard handler called by hand the wrong way (no event, the arguments
 * swapped, a colon for a dot) raises an error at the strategy's line,
 * naming itself: doing nothing would leave a deleted interaction's
 * session alive. */
static void test_standard_handler_called_wrong(void **state) {
  fixture *f = *state;
  tdir_write(f->dir, "wrong.lua",
             "local mm = require('ixr.multimedia')\n"
             "return { start = function(session) session:wait('never') end,\n"
             "  on = { ['interaction.notcontrolled'] = function(session, event)\n"
             "    local how = event.data.how\n"
             "    if how == 'noevent' then mm.requeue.notcontrolled(session)\n"
             "    elseif how == 'swapped' then mm.legacy.notcontrolled(event, session)\n"
             "    else mm.resultof:notcontrolled(session, event) end\n"
             "  end } }\n");
  assert_int_equal(ixr_reload(f->rt, NULL), 0);
  const char *hows[] = {"noevent", "swapped", "dot"};
  const char *want[] = {"wrong.lua:5: ixr.multimedia: requeue.notcontrolled(session, event) "
                        "takes a session and an event (got userdata, nil)",
                        "wrong.lua:6: ixr.multimedia: legacy.notcontrolled(session, event) "
                        "takes a session and an event (got table, userdata)",
                        "wrong.lua:7: ixr.multimedia: resultof.notcontrolled(session, event) "
                        "takes a session and an event (got table, userdata)"};
  for (int i = 0; i < 3; i++) {
    char iid[8];
    snprintf(iid, sizeof(iid), "W%d", i);
    present(f, iid, "wrong");
    size_t mark = f->cap.n;
    feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"%s\","
             "\"how\":\"%s\",\"resultof\":\"deletion\"}}", iid, hows[i]);
    if (tcap_find(&f->cap, mark, "\"handler_error\"", want[i], NULL) < 0) {
      tcap_dump(&f->cap);
      fail();
    }
  }
}

static void test_other_interaction_is_ignored(void **state) {
  fixture *f = *state;
  present(f, "X", "override");
  feedf(f, "{\"name\":\"interaction.other\",\"data\":{\"interactionid\":\"X\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"still_here\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", NULL) < 0);
  assert_true(tcap_find(&f->cap, 0, "\"suspended\"", NULL) < 0);
}

static void test_two_switched_over_at_once(void **state) {
  fixture *f = *state;
  present(f, "A", "requeue");
  present(f, "B", "legacy");
  present(f, "C", "requeue");
  feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"C\",\"requestid\":\"r3\"}}");
  size_t mark = f->cap.n;
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"A\",\"resultof\":\"revoking\"}}");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"B\",\"resultof\":\"revoking\"}}");
  /* exactly two session lines: A suspended, B (legacy) ended; C untouched */
  assert_int_equal(f->cap.n, mark + 2);
  assert_true(tcap_find(&f->cap, mark, "\"suspended\"", "\"s1\"", NULL) == (int)mark);
  assert_true(tcap_find(&f->cap, mark, "\"ended\"", "\"s2\"", "revoking", NULL) == (int)mark + 1);
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.sessions_active, 1);
  assert_int_equal(st.sessions_suspended, 1);
}

/* 10,000 live sessions, all revoked, all presented again. */
static void test_switchover_storm(void **state) {
  fixture *f = *state;
  enum { N = 10000 };
  tdir_write(f->dir, "storm.lua",
             "return {\n"
             "  start = function(session, event)\n"
             "    local v = session.vars\n"
             "    if event.requeued then\n"
             "      v.resumes = (v.resumes or 0) + 1\n"
             "      session:action('back', { key = v.key, resumes = v.resumes })\n"
             "    else\n"
             "      v.key = event.data.interactionid .. ':secret'\n"
             "    end\n"
             "    session:wait('interaction.finish')\n"
             "  end,\n"
             "}\n");
  ixr_close(f->rt);
  tcap_clear(&f->cap);
  f->rt = trt_new(f->dir, &f->cap);
  for (int i = 0; i < N; i++)
    feedf(f, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"S%d\",\"strategy\":\"storm\"}}", i);
  for (int i = 0; i < N; i++)
    feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"S%d\",\"resultof\":\"revoking\"}}", i);
  ixr_stats st;
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.sessions_suspended, N);
  assert_int_equal(st.sessions_active, 0);
  size_t mark = f->cap.n;
  for (int i = 0; i < N; i++)
    feedf(f, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"S%d\",\"strategy\":\"storm\"}}", i);
  ixr_get_stats(f->rt, &st);
  assert_int_equal(st.sessions_active, N);
  assert_int_equal(st.sessions_suspended, 0);
  assert_int_equal(st.sessions_started, N); /* none duplicated */
  assert_int_equal(st.sessions_ended, 0);   /* none ended */
  /* each resumed with its own id and its vars intact, exactly once */
  assert_int_equal(f->cap.n, mark + 2 * N);
  for (int i = 0; i < N; i++) {
    char resumed[160], back[200];
    snprintf(resumed, sizeof(resumed),
             "{\"type\":\"session\",\"state\":\"resumed\",\"session\":\"s%d\",\"interactionid\":\"S%d\"}", i + 1, i);
    snprintf(back, sizeof(back), "\"args\":{\"key\":\"S%d:secret\",\"resumes\":1}", i);
    assert_string_equal(f->cap.lines[mark + 2 * (size_t)i], resumed);
    assert_non_null(strstr(f->cap.lines[mark + 2 * (size_t)i + 1], back));
  }
}

/* A resultof that is not a non-empty string counts as absent in every set,
 * and one too long to be a reason still suspends or ends the session: no
 * value may leave a session that lost control neither suspended nor ended
 * (the standard handler used to fail on it, and the session stayed active,
 * waiting for a result that would never come). */
static void test_malformed_resultof(void **state) {
  fixture *f = *state;
  char longer[260];
  memset(longer, 'z', 250);
  longer[250] = '\0';
  char quoted[300];
  snprintf(quoted, sizeof(quoted), "\"%s\"", longer);
  const char *values[] = {"7", "{\"code\":3}", "false", "[]", "\"\"", quoted, "\"a\\u0000b\""};
  struct { const char *set, *outcome; } sets[] = {
      {"requeue", "suspended:notcontrolled"},
      {"legacy", "ended:notcontrolled"},
      {"resultof", "ended:notcontrolled"},
  };
  for (size_t s = 0; s < 3; s++)
    for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
      ixr_close(f->rt);
      tcap_clear(&f->cap);
      f->rt = trt_new(f->dir, &f->cap);
      present(f, "X", sets[s].set);
      feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"X\",\"requestid\":\"r1\"}}");
      size_t mark = f->cap.n;
      feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\",\"resultof\":%s}}",
            values[v]);
      /* the resultof set keeps a session running on a string that cannot
       * be a reason: any value other than deletion does */
      const char *want = v >= 5 && strcmp(sets[s].set, "resultof") == 0 ? "running" : sets[s].outcome;
      if (!outcome_is(f, mark, "s1", want) || tcap_find(&f->cap, mark, "\"error\"", NULL) >= 0) {
        fprintf(stderr, "%s, resultof %.20s: expected %s\n", sets[s].set, values[v], want);
        tcap_dump(&f->cap);
        fail();
      }
    }
}

/* A session suspended under requeue whose strategy is reloaded as legacy or
 * resultof still resumes on interaction.present; with none, nothing can
 * resume it, and the log says so. */
static void test_reload_away_from_requeue(void **state) {
  fixture *f = *state;
  const char *sets[] = {"legacy", "resultof", "none"};
  for (int i = 0; i < 3; i++) {
    ixr_close(f->rt);
    tcap_clear(&f->cap);
    write_strategy(f->dir, "moving", "  requeue_timeout = 10,\n", "");
    f->rt = trt_new(f->dir, &f->cap);
    present(f, "X", "moving");
    feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\",\"resultof\":\"revoking\"}}");
    char head[128];
    snprintf(head, sizeof(head), "  defaults = '%s',\n", sets[i]);
    write_strategy(f->dir, "moving", head, "");
    assert_int_equal(ixr_reload(f->rt, NULL), 0);
    size_t mark = f->cap.n;
    present(f, "X", "moving");
    if (i < 2) {
      assert_true(tcap_find(&f->cap, mark, "\"resumed\"", "\"s1\"", NULL) >= 0);
      assert_true(tcap_find(&f->cap, mark, "\"route\"", "\"requeued\":true", NULL) >= 0);
    } else {
      assert_true(tcap_find(&f->cap, mark, "\"resumed\"", NULL) < 0);
      assert_non_null(strstr(f->cap.log, "interaction.present for a suspended session, and "
                                         "the strategy has no handler for it"));
      feedf(f, "{\"name\":\"clock.advance\",\"data\":{\"ms\":10000}}");
      assert_true(tcap_find(&f->cap, mark, "\"ended\"", "requeue_timeout", NULL) >= 0);
    }
  }
}

static const char *ROUTING =
    "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\",\"resultof\":\"routing\"}}";

/* Presented again after routing arrived while the flow waited for its
 * request: the interaction is available again, and no longer the old
 * session's. It used to go to the old session, which ignored it (active),
 * and the interaction was lost. */
static void test_present_after_routing(void **state) {
  fixture *f = *state;
  const char *sets[] = {"requeue", "legacy"};
  for (int i = 0; i < 2; i++) {
    ixr_close(f->rt);
    tcap_clear(&f->cap);
    f->rt = trt_new(f->dir, &f->cap);
    present(f, "X", sets[i]);
    size_t mark = f->cap.n;
    tfeed(f->rt, ROUTING);
    assert_true(outcome_is(f, mark, "s1", "running"));
    mark = f->cap.n;
    present(f, "X", sets[i]);
    assert_string_equal(f->cap.lines[mark],
                        "{\"type\":\"session\",\"state\":\"ended\",\"session\":\"s1\",\"interactionid\":\"X\",\"reason\":\"routing\"}");
    char started[160];
    snprintf(started, sizeof(started),
             "{\"type\":\"session\",\"state\":\"started\",\"session\":\"s2\",\"interactionid\":\"X\",\"strategy\":\"%s\"}",
             sets[i]);
    assert_string_equal(f->cap.lines[mark + 1], started);
    assert_non_null(strstr(f->cap.lines[mark + 2], "\"action\":\"route\",\"session\":\"s2\""));
    /* the old request's late result is nobody's; the new session goes on */
    feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"X\",\"requestid\":\"r1\"}}");
    assert_int_equal(f->cap.n, mark + 3);
    feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"X\",\"requestid\":\"r2\"}}");
    assert_true(tcap_find(&f->cap, mark, "\"routed\"", "\"s2\"", NULL) >= 0);
  }
}

/* After routing, while the flow still waits for its request, the session
 * no longer controls the interaction: an action is not sent, and ends the
 * session with "routing". It used to go out: a route that timed out fell
 * back to a queue for an interaction already with an agent. */
static void test_no_action_after_routing(void **state) {
  fixture *f = *state;
  /* the flow: its route times out, the fallback queue is not sent */
  present(f, "X", "fallback");
  tfeed(f->rt, ROUTING);
  size_t mark = f->cap.n;
  feedf(f, "{\"name\":\"clock.advance\",\"data\":{\"ms\":30000}}");
  assert_int_equal(f->cap.n, mark + 1);
  assert_string_equal(f->cap.lines[mark],
                      "{\"type\":\"session\",\"state\":\"ended\",\"session\":\"s1\",\"interactionid\":\"X\",\"reason\":\"routing\"}");
  assert_non_null(strstr(f->cap.log, "action 'queue' not sent: the session no longer controls its interaction"));
  /* an on handler's action */
  tcap_clear(&f->cap);
  present(f, "Y", "fallback");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"Y\",\"resultof\":\"routing\"}}");
  mark = f->cap.n;
  feedf(f, "{\"name\":\"interaction.note\",\"data\":{\"interactionid\":\"Y\"}}");
  assert_int_equal(f->cap.n, mark + 1);
  assert_non_null(strstr(f->cap.lines[mark], "\"state\":\"ended\",\"session\":\"s2\",\"interactionid\":\"Y\",\"reason\":\"routing\""));
  /* the usual case is unchanged: the result arrives, the flow finishes */
  tcap_clear(&f->cap);
  present(f, "Z", "fallback");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"Z\",\"resultof\":\"routing\"}}");
  feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"Z\",\"requestid\":\"r3\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"after_fallback\"", NULL) < 0);
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"s3\"", "\"reason\":\"routing\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"error\"", NULL) < 0);
}

/* A flow that replaces the waiting one (core.run) has lost control as
 * much: its action is not sent, and the session ends with "routing". The
 * replacement used to clear the state: the action went out and the
 * session ended "completed". */
static void test_lost_control_survives_a_new_flow(void **state) {
  fixture *f = *state;
  present(f, "X", "nested");
  tfeed(f->rt, ROUTING);
  size_t mark = f->cap.n;
  feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"X\",\"requestid\":\"r1\"}}");
  assert_int_equal(f->cap.n, mark + 1);
  assert_true(outcome_is(f, mark, "s1", "ended:routing"));
}

/* A present after routing that names no strategy that can start is an
 * error line, and the session that lost control stays: no session is lost
 * because of a bad line (CONTRACT.md). It used to be ended first. */
static void test_bad_present_after_routing_loses_nothing(void **state) {
  fixture *f = *state;
  present(f, "X", "requeue");
  tfeed(f->rt, ROUTING);
  size_t mark = f->cap.n;
  present(f, "X", "nosuch");
  feedf(f, "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"X\",\"strategy\":7}}");
  assert_true(tcap_find(&f->cap, mark, "\"strategy_not_found\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, mark, "\"bad_event\"", "data.strategy", NULL) >= 0);
  assert_true(tcap_find(&f->cap, mark, "\"type\":\"session\"", NULL) < 0);
  /* the late result lets its flow finish: ended, routing */
  feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"X\",\"requestid\":\"r1\"}}");
  feedf(f, "{\"name\":\"interaction.finish\",\"data\":{\"interactionid\":\"X\"}}");
  assert_true(tcap_find(&f->cap, mark, "\"ended\"", "\"s1\"", "\"reason\":\"routing\"", NULL) >= 0);
}

/* core.replace from a timer, where no stream sent anything: the new
 * session's output goes where the old one's went. */
static void test_replace_from_a_timer(void **state) {
  fixture *f = *state;
  present(f, "X", "timerreplace");
  tfeed(f->rt, ROUTING);
  size_t mark = f->cap.n;
  feedf(f, "{\"name\":\"interaction.later\",\"data\":{\"interactionid\":\"X\"}}");
  feedf(f, "{\"name\":\"clock.advance\",\"data\":{\"ms\":0}}");
  assert_true(outcome_is(f, mark, "s1", "ended:routing") || tcap_find(&f->cap, mark, "\"ended\"", "\"s1\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, mark, "\"started\"", "\"s2\"", "\"strategy\":\"requeue\"", NULL) >= 0);
  assert_non_null(strstr(f->cap.log, "replaced: true"));
}

/* A timer that fires inside another stream's clock.advance line is no
 * event of that stream: the session it starts writes where the old one
 * did (it used to write to the stream of the clock.advance). Here the
 * session's stream is the API's (the output callback), and the
 * clock.advance comes from a served file. */
static void test_replace_from_a_timer_keeps_the_stream(void **state) {
  fixture *f = *state;
  present(f, "X", "timerreplace1");
  tfeed(f->rt, ROUTING);
  feedf(f, "{\"name\":\"interaction.later\",\"data\":{\"interactionid\":\"X\"}}");
  size_t mark = f->cap.n;
  char in[1024], out[1024];
  snprintf(in, sizeof(in), "%s/advance.ndjson", f->dir);
  snprintf(out, sizeof(out), "%s/advance.out", f->dir);
  tdir_write(f->dir, "advance.ndjson", "{\"name\":\"clock.advance\",\"data\":{\"ms\":5}}\n");
  int ifd = open(in, O_RDONLY);
  int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(ifd >= 0 && ofd >= 0);
  assert_int_equal(ixr_serve_fd(f->rt, ifd, ofd, IXR_SERVE_STOP_AT_EOF), 0);
  assert_int_equal(ixr_run(f->rt), 0);
  close(ifd);
  close(ofd);
  assert_true(tcap_find(&f->cap, mark, "\"ended\"", "\"s1\"", "\"reason\":\"routing\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, mark, "\"started\"", "\"s2\"", NULL) >= 0);
  FILE *fp = fopen(out, "r");
  assert_non_null(fp);
  char buf[4096];
  size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  assert_null(strstr(buf, "\"s2\""));
}

/* core.replace reads the event raw (a metamethod that raised there used
 * to abort the process: no protected call is around it while a flow
 * runs), and from the session's own flow it stops that flow, as
 * session:exit does. */
static void test_replace_from_the_flow(void **state) {
  fixture *f = *state;
  present(f, "X", "metareplace");
  tfeed(f->rt, ROUTING);
  size_t mark = f->cap.n;
  feedf(f, "{\"name\":\"interaction.route.done\",\"data\":{\"interactionid\":\"X\",\"requestid\":\"r1\"}}");
  assert_true(tcap_find(&f->cap, mark, "\"ended\"", "\"s1\"", "\"reason\":\"routing\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, mark, "\"started\"", "\"s2\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, mark, "\"after_replace\"", NULL) < 0);
  assert_true(tcap_find(&f->cap, mark, "\"error\"", NULL) < 0);
}

/* The present after routing goes to the strategy's own handler for it,
 * which replaces the standard one (CONTRACT.md); it used to be taken by
 * the runtime before any handler. */
static void test_own_present_handler_after_routing(void **state) {
  fixture *f = *state;
  present(f, "X", "ownpresent");
  tfeed(f->rt, ROUTING);
  size_t mark = f->cap.n;
  present(f, "X", "ownpresent");
  assert_int_equal(f->cap.n, mark);
  assert_non_null(strstr(f->cap.log, "own present handler"));
}

/* The requeue timeout is armed with the suspension, in one step, from the
 * strategy as loaded: a strategy that changed its own requeue_timeout to
 * something that is no number used to leave its sessions suspended
 * forever (the timer was armed by Lua code after the suspension, and that
 * code failed). */
static void test_requeue_timeout_armed_with_suspension(void **state) {
  fixture *f = *state;
  present(f, "X", "mutating");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\",\"resultof\":\"revoking\"}}");
  assert_true(tcap_find(&f->cap, 0, "\"suspended\"", NULL) >= 0);
  assert_true(tcap_find(&f->cap, 0, "\"error\"", NULL) < 0);
  feedf(f, "{\"name\":\"clock.advance\",\"data\":{\"ms\":9999}}");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", NULL) < 0);
  feedf(f, "{\"name\":\"clock.advance\",\"data\":{\"ms\":1}}");
  assert_true(tcap_find(&f->cap, 0, "\"ended\"", "\"reason\":\"requeue_timeout\"", NULL) >= 0);
}

/* core.resume with a flow checks everything before it resumes: a call that
 * fails leaves the session suspended, with its requeue timeout, instead of
 * active without a flow (which nothing would ever end). */
static void test_resume_with_flow_is_one_step(void **state) {
  fixture *f = *state;
  present(f, "X", "badresume");
  feedf(f, "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"X\"}}");
  size_t mark = f->cap.n;
  present(f, "X", "badresume");
  assert_true(tcap_find(&f->cap, mark, "\"handler_error\"", "badresume.lua:7", NULL) >= 0);
  assert_true(tcap_find(&f->cap, mark, "\"resumed\"", NULL) < 0);
  feedf(f, "{\"name\":\"clock.advance\",\"data\":{\"ms\":10000}}");
  assert_true(tcap_find(&f->cap, mark, "\"ended\"", "\"reason\":\"requeue_timeout\"", NULL) >= 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_malformed_resultof, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload_away_from_requeue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_table, setup, teardown),
      cmocka_unit_test_setup_teardown(test_represent_after_suspend, setup, teardown),
      cmocka_unit_test_setup_teardown(test_own_requeued_flow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_requeue_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_suspended_session_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_override_calls_standard, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flow_waits_for_standard_events, setup, teardown),
      cmocka_unit_test_setup_teardown(test_other_interaction_is_ignored, setup, teardown),
      cmocka_unit_test_setup_teardown(test_standard_handler_called_wrong, setup, teardown),
      cmocka_unit_test_setup_teardown(test_two_switched_over_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_switchover_storm, setup, teardown),
      cmocka_unit_test_setup_teardown(test_present_after_routing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_action_after_routing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_requeue_timeout_armed_with_suspension, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resume_with_flow_is_one_step, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lost_control_survives_a_new_flow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_present_after_routing_loses_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_own_present_handler_after_routing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replace_from_a_timer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replace_from_the_flow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replace_from_a_timer_keeps_the_stream, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
