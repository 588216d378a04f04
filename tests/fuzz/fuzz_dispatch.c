/*
 * fuzz_dispatch.c: the event dispatcher and the session logic, with the
 * fixed strategies of tests/fuzz/handlers.
 *
 * An input is not JSON but a program: every two bytes are one event, built
 * here from a small grammar, so that the fuzzer explores orders of events
 * rather than JSON syntax (fuzz_decode does that). Byte 0 picks the kind of
 * event (and, in its high part, an "id" member and an extra member); byte 1
 * picks the interaction (I0..I7, low three bits) and a parameter (the
 * other five): the strategy and flow mode of interaction.present, the
 * request id of a result, the milliseconds of clock.advance, and so on.
 *
 * Every output line is checked (fuzzutil.c), and the sessions it speaks
 * of are followed: ids count up from s1 and r1 without gaps; a session
 * goes started -> (suspended -> resumed)* -> ended, at most one per
 * interaction at a time, and nothing names it after its end; the
 * runtime's counts agree after every event. A few rules of the contract
 * and of the standard sets are checked as well (see expect_*), only in
 * the positive form "this line must appear", which holds even when the
 * host's replies (auto-reply mode) add lines of their own.
 *
 * A fresh runtime per input keeps inputs independent (a crash replays from
 * its file alone); see README.md for the cost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "internal.h"

#define NIID 8
#define MAX_RELOADS 2     /* per input: a reload is slow */
#define MAX_AUTOREPLY 64  /* per input: replies can chain */
#define MAX_SEEN 4096     /* lines remembered for one event */
#define REQUEUE_TIMEOUT_MS 60000 /* handlers/default.lua */

static const char *const iids[NIID] = {"I0", "I1", "I2", "I3",
                                       "I4", "I5", "\xc3\x9cn\xc3\xaf", "a\"b\\c\n"};

typedef enum {
  S_NONE = 0,
  S_ACTIVE = 1,
  S_SUSPENDED = 2,
  S_ENDED = 3
} sstate;

typedef enum { ST_DEFAULT = 0, ST_LEGACY, ST_PINNED, ST_OTHER } strat;

typedef struct sess {
  sstate state;
  int iid;
  strat strategy;
  uint64_t suspended_at;
} sess;

/* One output line of the event in progress, as the checks need it. */
typedef struct seen {
  int type;
  uint64_t sid;
  char state[12];
  char reason[40];
  char error[40];
  char name[16];
  int ok;
  int iid;
} seen;

typedef struct tracker {
  ixr_runtime *rt;
  sess *sessions; /* by session number; [0] unused */
  size_t cap;
  uint64_t last_sid, last_rid;
  uint64_t live[NIID]; /* the session of each interaction, or 0 */
  char pending_action[NIID][16];
  uint64_t pending_rid[NIID];
  uint64_t now;
  uint64_t started, ended;
  int autoreply; /* 0 off, 1 answer with .done, 2 with error. */
  int autoreplies;
  int reloads;
  seen lines[MAX_SEEN];
  size_t nlines;
  bool overflow;
} tracker;

static tracker T;
static bool fresh = true;
static unsigned long keep = 1; /* inputs served by one runtime */
static unsigned long runs;

/* ---- a small JSON writer ----------------------------------------------- */

typedef struct jbuf {
  char data[2048];
  size_t len;
} jbuf;

static void jraw(jbuf *b, const char *s) {
  size_t n = strlen(s);
  if (b->len + n >= sizeof(b->data)) fz_fail("event line too long");
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void jstr(jbuf *b, const char *s) {
  jraw(b, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char tmp[8];
    if (*p == '"' || *p == '\\') {
      tmp[0] = '\\';
      tmp[1] = (char)*p;
      tmp[2] = '\0';
    } else if (*p < 0x20) {
      snprintf(tmp, sizeof(tmp), "\\u%04x", *p);
    } else {
      tmp[0] = (char)*p;
      tmp[1] = '\0';
    }
    jraw(b, tmp);
  }
  jraw(b, "\"");
}

static void jnum(jbuf *b, long long v) {
  char tmp[32];
  snprintf(tmp, sizeof(tmp), "%lld", v);
  jraw(b, tmp);
}

/* ---- following the output ---------------------------------------------- */

static uint64_t number_after(const char *s, char prefix) {
  if (s == NULL || s[0] != prefix || s[1] < '1' || s[1] > '9') return 0;
  char *end;
  unsigned long long v = strtoull(s + 1, &end, 10);
  return *end == '\0' ? v : 0;
}

static int iid_index(const char *iid, size_t len) {
  for (int i = 0; i < NIID; i++)
    if (strlen(iids[i]) == len && memcmp(iids[i], iid, len) == 0) return i;
  return -1;
}

static strat strategy_index(const char *name) {
  if (name == NULL) return ST_OTHER;
  if (strcmp(name, "default") == 0) return ST_DEFAULT;
  if (strcmp(name, "legacy") == 0) return ST_LEGACY;
  if (strcmp(name, "pinned") == 0) return ST_PINNED;
  return ST_OTHER;
}

static sess *session_at(uint64_t sid) {
  if (sid >= T.cap) {
    size_t cap = T.cap ? T.cap : 64;
    while (cap <= sid) cap *= 2;
    sess *s = realloc(T.sessions, cap * sizeof(*s));
    if (s == NULL) fz_fail("out of memory");
    memset(s + T.cap, 0, (cap - T.cap) * sizeof(*s));
    T.sessions = s;
    T.cap = cap;
  }
  return &T.sessions[sid];
}

static void copy(char *dst, size_t n, const char *src) {
  snprintf(dst, n, "%s", src ? src : "");
}

static void autoreply(const fz_line *l, int iid) {
  if (T.autoreply == 0 || T.autoreplies >= MAX_AUTOREPLY) return;
  static const char *const answered[] = {"route", "queue", "stop", "transfer"};
  bool known = false;
  for (size_t i = 0; i < sizeof(answered) / sizeof(answered[0]); i++)
    known = known || strcmp(l->action, answered[i]) == 0;
  if (!known) return;
  T.autoreplies++;
  /* What a host may and may not do from its output callback. */
  if (ixr_advance(T.rt, 0) != IXR_EBUSY) fz_fail("ixr_advance in output: not EBUSY");
  if (ixr_feed_end(T.rt) != IXR_EBUSY) fz_fail("ixr_feed_end in output: not EBUSY");
  if (T.autoreplies == 1 && ixr_reload(T.rt, NULL) != IXR_EBUSY)
    fz_fail("ixr_reload in output: not EBUSY");
  jbuf b = {.len = 0};
  jraw(&b, "{\"name\":");
  char name[64];
  if (T.autoreply == 1) snprintf(name, sizeof(name), "interaction.%s.done", l->action);
  else snprintf(name, sizeof(name), "error.interaction.%s", l->action);
  jstr(&b, name);
  jraw(&b, ",\"data\":{\"interactionid\":");
  jstr(&b, iids[iid]);
  jraw(&b, ",\"requestid\":");
  jstr(&b, l->requestid);
  jraw(&b, ",\"error\":\"auto\"}}\n");
  fz_print_input(b.data, b.len);
  int rc = ixr_feed(T.rt, b.data, b.len);
  if (rc != 0) fz_fail("ixr_feed in output: %s", ixr_strerror(rc));
}

static void on_output(void *ud, const ixr_output *out) {
  (void)ud;
  fz_line l;
  fz_check_output(out, &l);
  const char *json = out->json;
  int jl = (int)out->json_len;
  seen *sn = T.nlines < MAX_SEEN ? &T.lines[T.nlines++] : NULL;
  if (sn == NULL) T.overflow = true;
  else memset(sn, 0, sizeof(*sn));
  int iid = -1;
  if (l.interactionid != NULL) {
    iid = iid_index(l.interactionid, l.interactionid_len);
    if (iid < 0) fz_fail("output for an interaction never sent: %.*s", jl, json);
  }
  uint64_t sid = 0;
  if (l.session != NULL) {
    sid = number_after(l.session, 's');
    if (sid == 0) fz_fail("bad session id: %.*s", jl, json);
    if (iid < 0) fz_fail("session without interactionid: %.*s", jl, json);
  }
  sess *s = sid ? session_at(sid) : NULL;
  if (out->type == IXR_OUT_SESSION) {
    if (strcmp(l.state, "started") == 0) {
      if (sid != T.last_sid + 1)
        fz_fail("session s%llu started after s%llu: %.*s", (unsigned long long)sid,
                (unsigned long long)T.last_sid, jl, json);
      if (T.live[iid] != 0)
        fz_fail("second session for %s while s%llu lives: %.*s", iids[iid],
                (unsigned long long)T.live[iid], jl, json);
      T.last_sid = sid;
      T.live[iid] = sid;
      T.started++;
      s->state = S_ACTIVE;
      s->iid = iid;
      s->strategy = strategy_index(out->strategy);
    } else {
      if (s->state == S_NONE || s->state == S_ENDED)
        fz_fail("%s for a session that is not alive: %.*s", l.state, jl, json);
      if (strcmp(l.state, "suspended") == 0) {
        if (s->state != S_ACTIVE) fz_fail("suspended twice: %.*s", jl, json);
        s->state = S_SUSPENDED;
        s->suspended_at = T.now;
      } else if (strcmp(l.state, "resumed") == 0) {
        if (s->state != S_SUSPENDED) fz_fail("resumed while active: %.*s", jl, json);
        s->state = S_ACTIVE;
      } else if (strcmp(l.state, "ended") == 0) {
        if (l.reason == NULL || l.reason[0] == '\0')
          fz_fail("ended without a reason: %.*s", jl, json);
        s->state = S_ENDED;
        T.live[s->iid] = 0;
        T.ended++;
      } else {
        fz_fail("unknown session state: %.*s", jl, json);
      }
    }
  } else if (s != NULL && (s->state == S_NONE || s->state == S_ENDED)) {
    fz_fail("a line for a session that is not alive: %.*s", jl, json);
  }
  if (s != NULL && s->iid != iid)
    fz_fail("session s%llu belongs to %s: %.*s", (unsigned long long)sid,
            iids[s->iid], jl, json);
  if (out->type == IXR_OUT_ACTION) {
    uint64_t rid = number_after(l.requestid, 'r');
    if (rid != T.last_rid + 1)
      fz_fail("request r%llu after r%llu: %.*s", (unsigned long long)rid,
              (unsigned long long)T.last_rid, jl, json);
    T.last_rid = rid;
    /* The requests of the strategies, for the events that answer them. */
    if (strcmp(l.action, "route") == 0 || strcmp(l.action, "queue") == 0 ||
        strcmp(l.action, "stop") == 0 || strcmp(l.action, "transfer") == 0) {
      copy(T.pending_action[iid], sizeof(T.pending_action[iid]), l.action);
      T.pending_rid[iid] = rid;
    }
  }
  if (out->type == IXR_OUT_REPLY && l.name != NULL &&
      strcmp(l.name, "ixr.reload") == 0 && l.ok != 1)
    fz_fail("ixr.reload of unchanged files was rejected: %.*s", jl, json);
  if (sn != NULL) {
    sn->type = (int)out->type;
    sn->sid = sid;
    sn->iid = iid;
    sn->ok = l.ok;
    copy(sn->state, sizeof(sn->state), l.state);
    copy(sn->reason, sizeof(sn->reason), l.reason);
    copy(sn->error, sizeof(sn->error), l.error);
    copy(sn->name, sizeof(sn->name), l.name);
  }
  if (out->type == IXR_OUT_ACTION) autoreply(&l, iid);
  fz_line_free(&l);
}

/* ---- expectations ------------------------------------------------------ */

typedef struct expect {
  int type;           /* IXR_OUT_SESSION or IXR_OUT_ERROR */
  uint64_t sid;       /* session lines: which (0: a started line for iid) */
  int iid;
  const char *state;  /* session lines */
  const char *reason; /* session lines: NULL for any */
  const char *error;  /* error lines */
} expect;

typedef struct expects {
  expect e[NIID + 2];
  int n;
  const char *what; /* the event, for messages */
} expects;

static void want(expects *x, expect e) {
  if (x->n < (int)(sizeof(x->e) / sizeof(x->e[0]))) x->e[x->n++] = e;
}

static void want_session(expects *x, uint64_t sid, int iid, const char *state,
                         const char *reason) {
  want(x, (expect){IXR_OUT_SESSION, sid, iid, state, reason, NULL});
}

static void want_error(expects *x, const char *code) {
  want(x, (expect){IXR_OUT_ERROR, 0, -1, NULL, NULL, code});
}

static void check_expects(const expects *x) {
  if (T.overflow) return;
  for (int i = 0; i < x->n; i++) {
    const expect *e = &x->e[i];
    bool found = false;
    for (size_t k = 0; k < T.nlines && !found; k++) {
      const seen *sn = &T.lines[k];
      if (sn->type != e->type) continue;
      if (e->type == IXR_OUT_ERROR) {
        found = strcmp(sn->error, e->error) == 0;
        continue;
      }
      if (e->sid != 0 ? sn->sid != e->sid : sn->iid != e->iid) continue;
      found = strcmp(sn->state, e->state) == 0 &&
              (e->reason == NULL || strcmp(sn->reason, e->reason) == 0);
    }
    if (!found) {
      fprintf(stderr, "lines of this event:\n");
      for (size_t k = 0; k < T.nlines; k++)
        fprintf(stderr, "  type %d s%llu %s %s %s\n", T.lines[k].type,
                (unsigned long long)T.lines[k].sid, T.lines[k].state,
                T.lines[k].reason, T.lines[k].error);
      if (e->type == IXR_OUT_ERROR)
        fz_fail("%s: expected an error %s", x->what, e->error);
      fz_fail("%s: expected %s%s%s for s%llu (%s)", x->what, e->state,
              e->reason ? " with reason " : "", e->reason ? e->reason : "",
              (unsigned long long)e->sid, e->iid >= 0 ? iids[e->iid] : "?");
    }
  }
}

/* interaction.notcontrolled with `resultof` (NULL: absent) for session sid:
 * what the standard sets promise. Routing depends on the flow (requeue and
 * legacy): skipped while the session is active. */
static void expect_notcontrolled(expects *x, uint64_t sid, const char *resultof) {
  sess *s = session_at(sid);
  const char *r = resultof ? resultof : "notcontrolled";
  bool ends_anyway = resultof != NULL && (strcmp(resultof, "deletion") == 0 ||
                                          strcmp(resultof, "detaching") == 0);
  switch (s->strategy) {
    case ST_DEFAULT: /* requeue */
      if (resultof != NULL && strcmp(resultof, "routing") == 0) break;
      if (ends_anyway) want_session(x, sid, s->iid, "ended", r);
      else if (s->state == S_ACTIVE) want_session(x, sid, s->iid, "suspended", r);
      break;
    case ST_LEGACY: /* routing while the flow waits: ends after the flow */
      if (resultof != NULL && strcmp(resultof, "routing") == 0 && s->state == S_ACTIVE) break;
      want_session(x, sid, s->iid, "ended", r);
      break;
    case ST_PINNED: /* resultof */
      if (resultof == NULL || strcmp(resultof, "deletion") == 0)
        want_session(x, sid, s->iid, "ended", r);
      break;
    default: break;
  }
}

/* ---- the grammar ------------------------------------------------------- */

enum {
  EV_PRESENT,
  EV_NC_REVOKING,
  EV_NC_DELETION,
  EV_NC_DETACHING,
  EV_NC_ROUTING,
  EV_NC_NONE,
  EV_NC_OTHER,
  EV_DELETED,
  EV_PENDING_DONE,
  EV_PENDING_ERROR,
  EV_ROUTE_DONE,
  EV_ROUTE_ERROR,
  EV_QUEUE_DONE,
  EV_ADVANCE,
  EV_PING,
  EV_STATUS,
  EV_RELOAD,
  EV_REPLY,
  EV_BOOM,
  EV_EXIT,
  EV_LATER,
  EV_AUTOREPLY,
  EV_STRUCTURED,
  EV_BAD,
  EV_COUNT
};

static const char *const strategies[] = {NULL, NULL, "default", "legacy",
                                         "pinned", "nosuch"};
static const char *const modes[] = {NULL, NULL, "return", "error", "exit", "yield"};
static const uint64_t advances[16] = {0,     1,     999,    1000,   5000,  14999,
                                      15000, 20000, 29999,  30000,  45000, 59999,
                                      60000, 61000, 300000, 3600000};

static void begin_event(jbuf *b, unsigned hi, const char *name) {
  b->len = 0;
  jraw(b, "{");
  if (hi & 1) {
    jraw(b, "\"id\":");
    jnum(b, (long long)hi * 7);
    jraw(b, ",");
  } else if (hi & 2) {
    jraw(b, "\"id\":\"q\\u00e9\",");
  }
  if (hi & 4) jraw(b, "\"x\":[1,{\"y\":null},-2.5e3,\"\\ud83d\\ude00\"],");
  jraw(b, "\"name\":");
  jstr(b, name);
}

static void data_iid(jbuf *b, int iid) {
  jraw(b, ",\"data\":{\"interactionid\":");
  jstr(b, iids[iid]);
}

static void feed(jbuf *b) {
  jraw(b, "\n");
  fz_print_input(b->data, b->len);
  int rc = ixr_feed(T.rt, b->data, b->len);
  if (rc != 0) fz_fail("ixr_feed: %s", ixr_strerror(rc));
}

/* A result event for request `rid` of `action`. */
static void result_event(jbuf *b, unsigned hi, int iid, const char *action,
                         uint64_t rid, bool ok) {
  char name[64], r[24];
  if (ok) snprintf(name, sizeof(name), "interaction.%s.done", action);
  else snprintf(name, sizeof(name), "error.interaction.%s", action);
  snprintf(r, sizeof(r), "r%llu", (unsigned long long)rid);
  begin_event(b, hi, name);
  data_iid(b, iid);
  jraw(b, ",\"requestid\":");
  jstr(b, r);
  if (!ok) jraw(b, ",\"error\":\"no_agents\"");
  jraw(b, "}}");
}

/* Before an event for an interaction: what must follow when no session
 * owns it (only interaction.present starts one). */
static bool expect_owner(expects *x, int iid) {
  if (T.live[iid] != 0) return true;
  want_error(x, "unknown_interaction");
  return false;
}

static void advance_expects(expects *x, uint64_t ms) {
  uint64_t now = T.now + ms;
  for (int i = 0; i < NIID; i++) {
    uint64_t sid = T.live[i];
    if (sid == 0) continue;
    sess *s = session_at(sid);
    if (s->strategy == ST_DEFAULT && s->state == S_SUSPENDED &&
        s->suspended_at + REQUEUE_TIMEOUT_MS <= now)
      want_session(x, sid, i, "ended", "requeue_timeout");
  }
}

static void structured(unsigned param, int iid, expects *x) {
  ixr_field f[16];
  size_t n = 0;
  memset(f, 0, sizeof(f));
  const char *name = NULL;
  int want_rc = 0;
  char rid[24];
  unsigned which = param & 7;
  if (which != 3) {
    f[n++] = (ixr_field){.key = "interactionid", .type = IXR_V_STRING, .str = iids[iid]};
  }
  switch (which) {
    case 0:
      name = "interaction.present";
      f[n++] = (ixr_field){.key = "strategy", .type = IXR_V_STRING, .str = "default"};
      if (T.live[iid] == 0) want_session(x, 0, iid, "started", NULL);
      break;
    case 1:
      name = "interaction.notcontrolled";
      f[n++] = (ixr_field){.key = "resultof", .type = IXR_V_STRING, .str = "revoking"};
      if (expect_owner(x, iid)) expect_notcontrolled(x, T.live[iid], "revoking");
      break;
    case 2: {
      static char buf[64];
      const char *action = T.pending_action[iid][0] ? T.pending_action[iid] : "route";
      snprintf(buf, sizeof(buf), "interaction.%s.done", action);
      name = buf;
      snprintf(rid, sizeof(rid), "r%llu", (unsigned long long)T.pending_rid[iid]);
      f[n++] = (ixr_field){.key = "requestid", .type = IXR_V_STRING, .str = rid};
      expect_owner(x, iid);
      break;
    }
    case 3:
      name = "clock.advance";
      f[n++] = (ixr_field){.key = "ms", .type = IXR_V_DOUBLE, .d = 1500.0};
      advance_expects(x, 1500);
      T.now += 1500;
      break;
    case 4:
      name = "interaction.ping";
      f[n++] = (ixr_field){.key = "echo", .type = IXR_V_OBJECT};
      f[n++] = (ixr_field){.key = "list", .type = IXR_V_ARRAY};
      f[n++] = (ixr_field){.type = IXR_V_INT, .i = -9007199254740993LL};
      f[n++] = (ixr_field){.type = IXR_V_DOUBLE, .d = 2.5};
      f[n++] = (ixr_field){.type = IXR_V_BOOL, .b = 1};
      f[n++] = (ixr_field){.type = IXR_V_NULL};
      f[n++] = (ixr_field){.type = IXR_V_STRING, .str = "ab\0c", .len = 4};
      f[n++] = (ixr_field){.type = IXR_V_END};
      f[n++] = (ixr_field){.key = "gone", .type = IXR_V_NULL};
      f[n++] = (ixr_field){.type = IXR_V_END};
      expect_owner(x, iid);
      break;
    case 5: /* unbalanced */
      name = "interaction.ping";
      f[n++] = (ixr_field){.key = "echo", .type = IXR_V_ARRAY};
      f[n++] = (ixr_field){.type = IXR_V_INT, .i = 1};
      want_rc = IXR_EINVAL;
      break;
    case 6: /* not UTF-8 */
      name = "interaction.ping";
      f[n++] = (ixr_field){.key = "echo", .type = IXR_V_STRING, .str = "\xed\xa0\x80"};
      want_rc = IXR_EINVAL;
      break;
    default: /* a NULL key in an object */
      name = "interaction.ping";
      f[n++] = (ixr_field){.key = NULL, .type = IXR_V_INT, .i = 1};
      want_rc = IXR_EINVAL;
      break;
  }
  if (fz_print) fprintf(stderr, "in:  ixr_feed_event %s (case %u)\n", name, which);
  int rc = ixr_feed_event(T.rt, name, f, n);
  if (rc != want_rc)
    fz_fail("ixr_feed_event(%s, case %u): %d, expected %d", name, which, rc, want_rc);
  if (want_rc != 0 && T.nlines != 0)
    fz_fail("ixr_feed_event refused an event but dispatched it");
}

static void bad_event(jbuf *b, unsigned hi, unsigned param, int iid, expects *x) {
  static const char *const lines[] = {
      "{\"name\":\"interaction.ping\"}",
      "{\"name\":\"interaction.ping\",\"data\":[1]}",
      "{\"name\":\"\",\"data\":{}}",
      "{\"name\":\"ixr.nope\"}",
      "{\"name\":\"clock.advance\",\"data\":{\"ms\":\"5\"}}",
      "{\"name\":\"clock.advance\",\"data\":{\"ms\":-1}}",
      "[]",
      "{\"name\":\"interaction.ping\",\"data\":{\"interactionid\":\"I0\"",
      "  \t ",
      "{\"name\":\"interaction.ping\",\"data\":{\"interactionid\":5}}",
      "{\"name\":\"clock.advance\",\"data\":{\"ms\":1e300}}",
      "{\"name\":\"ixr.status\\u0000x\"}",
      "{\"name\":7}",
  };
  static const char *const codes[] = {
      "bad_event", "bad_event", "bad_event", "bad_event", "bad_event",
      "bad_event", "bad_event", "bad_json",  NULL,        "bad_event",
      "bad_event", NULL,        "bad_event"};
  unsigned n = (unsigned)(sizeof(lines) / sizeof(lines[0]));
  if (param < n) {
    b->len = 0;
    jraw(b, lines[param]);
    if (codes[param] != NULL) want_error(x, codes[param]);
    return;
  }
  /* A present with a bad strategy name. */
  begin_event(b, hi, "interaction.present");
  data_iid(b, iid);
  if (param & 1) {
    jraw(b, ",\"strategy\":7}}");
    if (T.live[iid] == 0) want_error(x, "bad_event");
  } else {
    jraw(b, ",\"strategy\":\"../default\"}}");
    if (T.live[iid] == 0) want_error(x, "strategy_not_found");
  }
}

/* Feeds one event of the grammar. */
static void one_event(uint8_t b0, uint8_t b1) {
  unsigned kind = b0 % EV_COUNT, hi = b0 / EV_COUNT;
  int iid = b1 & 7;
  unsigned param = b1 >> 3; /* 0..31 */
  jbuf b = {.len = 0};
  expects x;
  memset(&x, 0, sizeof(x));
  char what[64];
  snprintf(what, sizeof(what), "event kind %u on %s, parameter %u", kind,
           iids[iid], param);
  x.what = what;
  T.nlines = 0;
  T.overflow = false;
  uint64_t sid = T.live[iid];
  static const char *const nc[] = {"revoking", "deletion", "detaching",
                                   "routing",  NULL,       "transfer\xc3\xa9"};
  switch (kind) {
    case EV_PRESENT: {
      const char *st = strategies[param % 6];
      const char *mode = modes[(param / 6) % 6];
      begin_event(&b, hi, "interaction.present");
      data_iid(&b, iid);
      jraw(&b, ",\"media\":\"chat\",\"queue\":\"q");
      jnum(&b, param);
      jraw(&b, "\"");
      if (st != NULL) {
        jraw(&b, ",\"strategy\":");
        jstr(&b, st);
      }
      if (mode != NULL) {
        jraw(&b, ",\"mode\":");
        jstr(&b, mode);
      }
      jraw(&b, "}}");
      if (sid == 0) {
        if (st != NULL && strcmp(st, "nosuch") == 0) want_error(&x, "strategy_not_found");
        else want_session(&x, 0, iid, "started", NULL);
      } else if (session_at(sid)->state == S_SUSPENDED &&
                 session_at(sid)->strategy == ST_DEFAULT) {
        want_session(&x, sid, iid, "resumed", NULL);
      }
      break;
    }
    case EV_NC_REVOKING:
    case EV_NC_DELETION:
    case EV_NC_DETACHING:
    case EV_NC_ROUTING:
    case EV_NC_NONE:
    case EV_NC_OTHER: {
      const char *resultof = nc[kind - EV_NC_REVOKING];
      begin_event(&b, hi, "interaction.notcontrolled");
      data_iid(&b, iid);
      if (resultof != NULL) {
        jraw(&b, ",\"resultof\":");
        jstr(&b, resultof);
      }
      jraw(&b, "}}");
      if (expect_owner(&x, iid)) expect_notcontrolled(&x, sid, resultof);
      break;
    }
    case EV_DELETED:
      begin_event(&b, hi, "interaction.deleted");
      data_iid(&b, iid);
      jraw(&b, "}}");
      if (expect_owner(&x, iid)) {
        sess *s = session_at(sid);
        if (s->strategy != ST_OTHER) want_session(&x, sid, iid, "ended", "deleted");
      }
      break;
    case EV_PENDING_DONE:
    case EV_PENDING_ERROR: {
      const char *action = T.pending_action[iid][0] ? T.pending_action[iid] : "route";
      uint64_t rid = T.pending_rid[iid] ? T.pending_rid[iid] : 1;
      result_event(&b, hi, iid, action, rid, kind == EV_PENDING_DONE);
      expect_owner(&x, iid);
      break;
    }
    case EV_ROUTE_DONE:
    case EV_ROUTE_ERROR:
      result_event(&b, hi, iid, "route", param + 1, kind == EV_ROUTE_DONE);
      expect_owner(&x, iid);
      break;
    case EV_QUEUE_DONE:
      result_event(&b, hi, iid, "queue", param + 1, true);
      expect_owner(&x, iid);
      break;
    case EV_ADVANCE: {
      uint64_t ms = advances[param & 15];
      begin_event(&b, hi, "clock.advance");
      jraw(&b, ",\"data\":{\"ms\":");
      if (param & 16) {
        char tmp[40];
        snprintf(tmp, sizeof(tmp), "%llu.0", (unsigned long long)ms);
        jraw(&b, tmp); /* a float that is a whole number */
      } else {
        jnum(&b, (long long)ms);
      }
      jraw(&b, "}}");
      advance_expects(&x, ms);
      T.now += ms;
      break;
    }
    case EV_PING:
      begin_event(&b, hi, "interaction.ping");
      data_iid(&b, iid);
      jraw(&b, ",\"echo\":");
      jnum(&b, param);
      jraw(&b, "}}");
      expect_owner(&x, iid);
      break;
    case EV_RELOAD:
    case EV_STATUS:
      if (kind == EV_RELOAD && T.reloads < MAX_RELOADS) {
        T.reloads++;
        begin_event(&b, hi, "ixr.reload");
        jraw(&b, "}");
      } else { /* also a reload beyond MAX_RELOADS */
        begin_event(&b, hi, "ixr.status");
        jraw(&b, ",\"data\":{\"interactionid\":\"ignored\"}}");
      }
      break;
    case EV_REPLY:
      begin_event(&b, hi, "interaction.customer.reply");
      data_iid(&b, iid);
      jraw(&b, ",\"text\":");
      jstr(&b, (param & 1) ? "d\xc3\xa9j\xc3\xa0 vu \xf0\x9f\x98\x80" : "hello");
      jraw(&b, "}}");
      expect_owner(&x, iid);
      break;
    case EV_BOOM:
      begin_event(&b, hi, "interaction.boom");
      data_iid(&b, iid);
      jraw(&b, "}}");
      if (expect_owner(&x, iid) && session_at(sid)->strategy == ST_DEFAULT)
        want_error(&x, "handler_error");
      break;
    case EV_EXIT: {
      /* Reasons as a strategy might get them: some cut to a few bytes. */
      static const char *const reasons[] = {NULL, "custom", "42", "",
                                            "r\xc3\xa9sum\xc3\xa9", "\xe2\x82\xac"};
      const char *reason = reasons[param % 6];
      unsigned max = (param / 6) % 4; /* 0: whole */
      begin_event(&b, hi, "interaction.exit");
      data_iid(&b, iid);
      if (reason != NULL && param % 6 == 2) {
        jraw(&b, ",\"reason\":42");
      } else if (reason != NULL) {
        jraw(&b, ",\"reason\":");
        jstr(&b, reason);
      }
      if (max != 0) {
        jraw(&b, ",\"max\":");
        jnum(&b, max);
      }
      jraw(&b, "}}");
      expect_owner(&x, iid);
      break;
    }
    case EV_LATER: {
      static const char *const secs[] = {"0", "0.5", "1", "15", "100", "-1", "\"x\"", "1e10"};
      begin_event(&b, hi, "interaction.later");
      data_iid(&b, iid);
      jraw(&b, ",\"s\":");
      jraw(&b, secs[param & 7]);
      if (param & 8) jraw(&b, ",\"cancel\":true");
      jraw(&b, "}}");
      expect_owner(&x, iid);
      break;
    }
    case EV_AUTOREPLY:
      T.autoreply = (int)(param % 3);
      if (fz_print) fprintf(stderr, "in:  (auto-reply mode %d)\n", T.autoreply);
      return;
    case EV_STRUCTURED:
      structured(param, iid, &x);
      check_expects(&x);
      return;
    default:
      bad_event(&b, hi, param % 16, iid, &x);
      break;
  }
  feed(&b);
  check_expects(&x);
}

/* ---- the runtime's own counts ------------------------------------------ */

static void check_counts(void) {
  uint64_t active = 0, suspended = 0;
  for (int i = 0; i < NIID; i++) {
    if (T.live[i] == 0) continue;
    sess *s = session_at(T.live[i]);
    if (s->state == S_ACTIVE) active++;
    else if (s->state == S_SUSPENDED) suspended++;
    else fz_fail("a live session in state %d", (int)s->state);
  }
  ixr_stats st;
  ixr_get_stats(T.rt, &st);
  if (st.sessions_active != active || st.sessions_suspended != suspended)
    fz_fail("runtime counts %llu active, %llu suspended; the output says %llu, %llu",
            (unsigned long long)st.sessions_active,
            (unsigned long long)st.sessions_suspended,
            (unsigned long long)active, (unsigned long long)suspended);
  if (st.sessions_started != T.started || st.sessions_ended != T.ended)
    fz_fail("runtime counts %llu started, %llu ended; the output says %llu, %llu",
            (unsigned long long)st.sessions_started,
            (unsigned long long)st.sessions_ended, (unsigned long long)T.started,
            (unsigned long long)T.ended);
  fz_check_idle(T.rt);
}

/* ---- libFuzzer --------------------------------------------------------- */

static void tracker_reset(void) {
  if (T.rt != NULL) ixr_close(T.rt);
  free(T.sessions);
  memset(&T, 0, sizeof(T));
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  /* One runtime per input is the default; IXR_FUZZ_KEEP=N keeps one for N
   * inputs (faster, but a crash may then need the inputs before it). */
  const char *env = getenv("IXR_FUZZ_KEEP");
  if (env != NULL && atol(env) > 1) keep = (unsigned long)atol(env);
  fresh = keep == 1 || fz_replaying(*argc, *argv) || getenv("IXR_FUZZ_FRESH") != NULL;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (T.rt == NULL || fresh || runs % keep == 0) {
    tracker_reset();
    /* Tracing on for half of the runtimes: its code runs too. */
    T.rt = fz_runtime_new(on_output, NULL, 0, size > 0 && (data[0] & 0x80));
  }
  runs++;
  T.reloads = 0;
  T.autoreplies = 0;
  T.autoreply = 0;
  for (size_t i = 0; i + 1 < size; i += 2) {
    one_event(data[i], data[i + 1]);
    check_counts();
  }
  if (ixr_feed_end(T.rt) != 0) fz_fail("ixr_feed_end failed");
  check_counts();
  /* Closed here rather than before the next input: libFuzzer's leak check
   * then sees every allocation of the input freed by ixr_close(). */
  if (fresh) tracker_reset();
  return 0;
}
