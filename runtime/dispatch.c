/*
 * dispatch.c: sessions and the routing of events to them.
 *
 * One event at a time: find the session that owns the event's interaction
 * (or start one on interaction.present), then give the event to the first
 * of these that wants it:
 *   1. the session's flow, when it waits for exactly this event (the result
 *      of its request, with the same requestid, or the event named in wait);
 *   2. the handler for the event's name: the strategy's own `on` handler, or
 *      else the one of its standard set (lua/ixr/multimedia.lua).
 * An event nobody wants is dropped with a trace log line.
 *
 * Ended sessions leave the table at once but are freed only when the event
 * (or timer) that ended them is completely handled, so that no code up the
 * C stack is left holding a freed session.
 *
 * A flow cancelled while it waits (its session ended, was suspended, or
 * started its flow again) is closed at that same point, as
 * coroutine.close would: its pending to-be-closed variables are closed
 * (their __close runs on the protected path, with the usual limits), its
 * open upvalues are closed, and its stack lets go of what it held. Left to
 * the collector instead, a dropped thread kept its stack (the events and
 * tables the flow held) alive for another cycle and was traversed again in
 * the cycle's atomic step: on the benchmark traffic, closing them took the
 * longest collector pause of a cycle from about 1.5 to 0.9 ms (median
 * over the cycles) and the peak RSS from 40 to 33 MB. A closed thread is
 * not reused, though (only those whose function returned are): a flow
 * that waited inside xpcall leaves the thread's error handler pointing
 * into its old stack, and neither lua_resetthread nor any other call of
 * the API clears it, so the next flow's errors would call whatever sits
 * there now. A __close may not start a flow (core.run), so that closing
 * cannot go on forever: each close can only end or suspend sessions, and
 * there are only so many.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"


int ixr__dispatch_init(ixr_runtime *rt) {
  int rc = ixr__map_init(&rt->sessions, 1024);
  return rc != 0 ? rc : ixr__map_init(&rt->names, 16);
}

/* ---- wait names ------------------------------------------------------- */

/* A million flows wait for a handful of names ("redirect",
 * "interaction.partystate.changed"): one counted copy of each, not one
 * malloc'd copy per session. */
typedef struct waitname {
  ixr__mapnode node;
  size_t refs;
  char str[];
} waitname;

static waitname *waitname_of(const char *str) {
  return (waitname *)(str - offsetof(waitname, str));
}

const char *ixr__name_get(ixr_runtime *rt, const char *str, size_t len) {
  if (len >= UINT32_MAX) return NULL;
  uint32_t hash = ixr__hash(str, len);
  waitname *n = (waitname *)ixr__map_get(&rt->names, str, len, hash);
  if (n == NULL) {
    n = malloc(sizeof(*n) + len + 1);
    if (n == NULL) return NULL;
    memcpy(n->str, str, len);
    n->str[len] = '\0';
    n->node.key = n->str;
    n->node.len = (uint32_t)len;
    n->node.hash = hash;
    n->refs = 0;
    ixr__map_put(&rt->names, &n->node);
  }
  n->refs++;
  return n->str;
}

void ixr__name_put(ixr_runtime *rt, const char *str) {
  if (str == NULL) return;
  waitname *n = waitname_of(str);
  if (--n->refs > 0) return;
  ixr__map_del(&rt->names, &n->node);
  free(n);
}

/* Sessions come from the pool of the Lua state's blocks: it has no
 * headers and 8-byte classes, where malloc would round 143 bytes (the
 * struct and a 16-byte interaction id) up to 160. */
static size_t session_size(size_t iid_len) {
  return offsetof(ixr__session, iid) + iid_len + 1;
}

static void free_session(ixr_runtime *rt, ixr__session *s) {
  ixr__name_put(rt, s->wait_name);
  free(s->end_after_flow);
  ixr__pool_free(&rt->pool, s, session_size(s->node.len));
}

static void close_flows(ixr_runtime *rt);

void ixr__close_cancelled(ixr_runtime *rt) {
  if (rt->to_close_n > 0 || rt->closes_dropped > 0) close_flows(rt);
}

void ixr__reap(ixr_runtime *rt) {
  if (rt->depth > 0) return;
  close_flows(rt); /* before any session is freed: they name theirs */
  while (rt->dead != NULL) {
    ixr__session *s = rt->dead;
    rt->dead = (ixr__session *)s->node.next;
    free_session(rt, s);
  }
}

/* ---- waits and flows -------------------------------------------------- */

static void clear_wait(ixr_runtime *rt, ixr__session *s) {
  ixr__timer_stop(rt, &s->wait_timer);
  ixr__name_put(rt, s->wait_name);
  s->wait_name = NULL;
  s->wait_kind = IXR__WAIT_NONE;
}

/* Whether the list of flows to close can take one more: not past
 * IXR__MAX_PENDING_CLOSES (counted, and warned of after the event), nor
 * when it cannot grow. */
static bool close_list_room(ixr_runtime *rt) {
  if (rt->to_close_n >= IXR__MAX_PENDING_CLOSES) {
    rt->closes_dropped++;
    return false;
  }
  if (rt->to_close_n < rt->to_close_cap) return true;
  size_t cap = rt->to_close_cap ? rt->to_close_cap * 2 : 16;
  ixr__closing *a = realloc(rt->to_close, cap * sizeof(*a));
  if (a == NULL) return false;
  rt->to_close = a;
  rt->to_close_cap = cap;
  return true;
}

/* Puts the suspended thread of session s (registry ref `ref`) on the list
 * of flows to close, taking over that ref and a reference to `st`, the
 * session's strategy when the flow ran: an error in a __close names it,
 * and by then the session may have ended and a reload freed it. */
static void schedule_close(ixr_runtime *rt, ixr__session *s, int ref,
                           ixr__strategy *st) {
  if (!close_list_room(rt)) { /* left to the collector, unclosed */
    luaL_unref(rt->L, LUA_REGISTRYINDEX, ref);
    ixr__strategy_release(rt, st);
    return;
  }
  rt->to_close[rt->to_close_n++] = (ixr__closing){ref, s, st};
}

/* [-1, +0] closes the thread of a cancelled flow (argument 1). */
static int close_thread(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  int st = ixr__close_thread(co, L);
  if (st != LUA_OK) {
    lua_xmove(co, L, 1); /* the error of a __close */
    return lua_error(L);
  }
  return 0;
}

static void pool_thread(ixr_runtime *rt, lua_State *co, int ref) {
  if (rt->co_pool_n < IXR__CO_POOL) {
    rt->co_pool[rt->co_pool_n] = ref;
    rt->co_pool_L[rt->co_pool_n++] = co;
  } else {
    luaL_unref(rt->L, LUA_REGISTRYINDEX, ref);
  }
}

static void close_flows(ixr_runtime *rt) {
  if (rt->closes_dropped > 0) {
    ixr__log(rt, IXR_LOG_WARN,
             "%llu cancelled flows left unclosed: more than %d in one event",
             (unsigned long long)rt->closes_dropped, IXR__MAX_PENDING_CLOSES);
    rt->closes_dropped = 0;
  }
  if (rt->to_close_n == 0) return;
  lua_State *L = rt->L;
  rt->depth++; /* a feed from an output callback waits; no reap inside */
  rt->closing_flows = true;
  /* A __close may end other sessions and so add to the list: by index. */
  for (size_t i = 0; i < rt->to_close_n; i++) {
    ixr__closing c = rt->to_close[i];
    if (!rt->closing) { /* a closing runtime runs no more strategy code */
      lua_pushcfunction(L, close_thread);
      lua_rawgeti(L, LUA_REGISTRYINDEX, c.ref);
      ixr__invoke(rt, c.s, NULL, 1, "a <close> of the cancelled flow");
    }
    luaL_unref(L, LUA_REGISTRYINDEX, c.ref);
    ixr__strategy_release(rt, c.st);
  }
  rt->to_close_n = 0;
  rt->closing_flows = false;
  rt->depth--;
}

void ixr__flow_cancel(ixr_runtime *rt, ixr__session *s) {
  clear_wait(rt, s);
  if (s->co_ref != LUA_NOREF) {
    /* Suspended in a wait: closed once the event is done. Running (it
     * cancels itself): run_flow sees to it when it yields or returns. */
    if (lua_status(s->co) == LUA_YIELD) {
      s->strategy->refs++;
      schedule_close(rt, s, s->co_ref, s->strategy);
    } else
      luaL_unref(rt->L, LUA_REGISTRYINDEX, s->co_ref);
    s->co_ref = LUA_NOREF;
  }
  s->co = NULL;
  s->flow_epoch++;
  /* A pending end (end_after_flow) stays: a flow that replaces this one
   * (core.run) has lost control as much, and ends the session the same
   * way. Suspending drops it. */
}

/*
 * Resumes the flow with the nargs values on top of its thread. The thread is
 * anchored on rt->L while it runs: the flow may drop its own registry ref
 * (by ending or suspending the session) and must not be collected meanwhile.
 */
static void run_flow(ixr_runtime *rt, ixr__session *s, int nargs) {
  lua_State *L = rt->L;
  lua_State *co = s->co;
  uint32_t epoch = s->flow_epoch;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->co_ref); /* anchor */
  /* Held while the flow runs: if it ends its own session and yields, its
   * close below still needs the strategy the session let go of. */
  ixr__strategy *st = s->strategy;
  st->refs++;
  rt->flow_nesting++;
  ixr__call_result r = ixr__invoke(rt, s, co, nargs, "flow");
  rt->flow_nesting--;
  if (s->state != IXR__ENDED && s->flow_epoch == epoch) {
    switch (r) {
      case IXR__CALL_DONE: {
        char *reason = s->end_after_flow;
        s->end_after_flow = NULL;
        /* A thread whose function returned is as good as new: keep it for
         * the next flow instead of making (and collecting) another. */
        if (lua_status(co) == LUA_OK && lua_gettop(co) == 0) {
          pool_thread(rt, co, s->co_ref);
          s->co_ref = LUA_NOREF;
          s->co = NULL;
        }
        ixr__flow_cancel(rt, s);
        ixr__session_end(rt, s, reason ? reason : "completed");
        free(reason);
        break;
      }
      case IXR__CALL_YIELDED:
        if (s->wait_kind == IXR__WAIT_NONE) {
          /* FILE:LINE of the yield and the flow's traceback, as for any
           * other error of a flow. */
          char msg[600], where[300] = "";
          lua_Debug ar;
          for (int lv = 0; lua_getstack(co, lv, &ar); lv++)
            if (lua_getinfo(co, "Sl", &ar) && ar.currentline > 0) {
              snprintf(where, sizeof(where), "%s:%d: ", ar.short_src, ar.currentline);
              break;
            }
          snprintf(msg, sizeof(msg),
                   "%sthe flow yielded outside session:request or session:wait "
                   "(coroutine.yield in a flow is not supported)",
                   where);
          rt->internal_alloc++; /* ixr's report: not refused at a limit */
          luaL_traceback(L, co, NULL, 0);
          rt->internal_alloc--;
          ixr__emit_strategy_error(rt, s, "handler_error", msg, lua_tostring(L, -1));
          lua_pop(L, 1);
          ixr__session_end(rt, s, "error");
        }
        break;
      case IXR__CALL_FAILED: ixr__session_end(rt, s, "error"); break;
    }
  } else if (r == IXR__CALL_YIELDED) {
    /* The flow ended or suspended its own session (session:exit yields)
     * and is suspended now: close it like any cancelled flow. The anchor
     * becomes its ref, and the list takes over the strategy reference. */
    rt->internal_alloc++;
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    rt->internal_alloc--;
    schedule_close(rt, s, ref, st);
    return;
  }
  lua_pop(L, 1); /* the anchor */
  ixr__strategy_release(rt, st);
}

void ixr__flow_start(ixr_runtime *rt, ixr__session *s) {
  lua_State *L = rt->L;
  ixr__flow_cancel(rt, s);
  lua_State *co;
  if (rt->co_pool_n > 0) {
    rt->co_pool_n--;
    co = rt->co_pool_L[rt->co_pool_n];
    s->co_ref = rt->co_pool[rt->co_pool_n];
    lua_xmove(L, co, 3);        /* fn, session, event now on the thread */
  } else {
    rt->internal_alloc++; /* on the main thread, maybe inside a flow */
    co = lua_newthread(L);
    ixr__set_runtime(co, rt, true); /* a flow's: strategies may not resume it */
    lua_insert(L, -4);          /* thread, fn, session, event */
    lua_xmove(L, co, 3);
    s->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    rt->internal_alloc--;
  }
  s->co = co;
  run_flow(rt, s, 2);
}

/* ---- session lifecycle ------------------------------------------------ */

void ixr__session_end(ixr_runtime *rt, ixr__session *s, const char *reason) {
  if (s->state == IXR__ENDED) return;
  if (s->state == IXR__ACTIVE) rt->sessions_active--;
  else rt->sessions_suspended--;
  s->state = IXR__ENDED;
  rt->stats.sessions_ended++;
  ixr__map_del(&rt->sessions, &s->node);
  ixr__flow_cancel(rt, s);
  while (s->timers != NULL) {
    ixr__after *a = s->timers;
    s->timers = a->next;
    luaL_unref(rt->L, LUA_REGISTRYINDEX, a->fn_ref);
    ixr__timer_stop(rt, &a->timer);
    free(a);
  }
  ixr__emit_session(rt, s, "ended", reason);
  lua_rawgeti(rt->L, LUA_REGISTRYINDEX, s->ref);
  ixr__sessionud *ud = lua_touserdata(rt->L, -1);
  /* The strategy may keep the object: it is dead, but still knows its id. */
  if (ud != NULL) ud->v = (s->id << 1) | 1;
  lua_pop(rt->L, 1);
  luaL_unref(rt->L, LUA_REGISTRYINDEX, s->ref);
  s->ref = LUA_NOREF;
  ixr__strategy_release(rt, s->strategy);
  /* Out of the map, its node's link is free to chain the dead. */
  s->node.next = rt->dead != NULL ? &rt->dead->node : NULL;
  rt->dead = s;
}

/*
 * Suspending arms the requeue timeout in the same step, on the flow's timer
 * (free while there is no flow): a suspended session can never be left
 * without one, whatever fails in the strategy code around the call. The
 * timeout is the strategy's requeue_timeout as loaded (its table may have
 * been changed since).
 */
void ixr__session_suspend(ixr_runtime *rt, ixr__session *s, const char *reason) {
  if (s->state != IXR__ACTIVE) return;
  ixr__flow_cancel(rt, s);
  free(s->end_after_flow); /* presented again, it starts afresh */
  s->end_after_flow = NULL;
  s->state = IXR__SUSPENDED;
  rt->sessions_active--;
  rt->sessions_suspended++;
  ixr__emit_session(rt, s, "suspended", reason);
  uint64_t ms = (uint64_t)ceil(s->strategy->requeue_timeout * 1000.0);
  if (ixr__timer_start(rt, &s->wait_timer, IXR__TIMER_FLOW, ms) != 0) {
    ixr__log(rt, IXR_LOG_ERROR,
             "s%llu %s: out of memory: no requeue timeout could be armed, so "
             "the suspended session ends now",
             (unsigned long long)s->id, s->iid);
    ixr__session_end(rt, s, "error");
  }
}

void ixr__session_resume(ixr_runtime *rt, ixr__session *s) {
  if (s->state != IXR__SUSPENDED) return;
  ixr__timer_stop(rt, &s->wait_timer); /* the requeue timeout */
  s->state = IXR__ACTIVE;
  rt->sessions_suspended--;
  rt->sessions_active++;
  ixr__emit_session(rt, s, "resumed", NULL);
}

/* ---- timers ----------------------------------------------------------- */

ixr__session *ixr__timer_session(ixr__timer *t) {
  if (t->kind == IXR__TIMER_FLOW)
    return (ixr__session *)((char *)t - offsetof(ixr__session, wait_timer));
  return ((ixr__after *)t)->s;
}

void ixr__timer_fire(ixr_runtime *rt, ixr__timer *t) {
  lua_State *L = rt->L;
  ixr__after *a = t->kind == IXR__TIMER_FLOW ? NULL : (ixr__after *)t;
  ixr__session *s = ixr__timer_session(t);
  rt->depth++;
  bool requeue = a == NULL && s->state == IXR__SUSPENDED;
  /* A timer is no line's: fired by a clock.advance line, its output is
   * still its session's (dispatch.c keeps the line's stream meanwhile). */
  ixr__sink *line_from = rt->line_from;
  rt->line_from = NULL;
  if (rt->opt.on_trace != NULL)
    ixr__trace(rt, "timer at %llu ms: s%llu %s", (unsigned long long)t->due,
               (unsigned long long)s->id,
               requeue ? "requeue timeout" : a == NULL ? "flow timeout" : "session:after");
  if (requeue) {
    ixr__session_end(rt, s, "requeue_timeout");
  } else if (a == NULL) {
    ixr__wait_kind kind = s->wait_kind;
    clear_wait(rt, s);
    lua_State *co = s->co;
    if (kind == IXR__WAIT_REQUEST) lua_pushboolean(co, 0);
    else lua_pushnil(co);
    lua_pushliteral(co, "timeout");
    run_flow(rt, s, 2);
  } else {
    if (a->prev) a->prev->next = a->next;
    else s->timers = a->next;
    if (a->next) a->next->prev = a->prev;
    int fn = a->fn_ref;
    free(a);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
    luaL_unref(L, LUA_REGISTRYINDEX, fn);
    ixr__push_session(rt, s);
    ixr__invoke(rt, s, NULL, 1, "timer");
  }
  rt->line_from = line_from;
  rt->depth--;
  ixr__run_queued_if_any(rt); /* what callbacks fed meanwhile */
}

/* ---- events ----------------------------------------------------------- */

static bool is_named(const char *name, size_t len, const char *prefix,
                     const char *mid, const char *suffix) {
  size_t p = strlen(prefix), m = strlen(mid), x = strlen(suffix);
  return len == p + m + x && memcmp(name, prefix, p) == 0 &&
         memcmp(name + p, mid, m) == 0 && memcmp(name + p + m, suffix, x) == 0;
}

/* Does the waiting flow want this event? Sets *ok for request results. */
static bool flow_wants(ixr_runtime *rt, ixr__session *s, const char *name,
                       size_t len, int data, int *ok) {
  if (s->wait_kind == IXR__WAIT_EVENT)
    return strlen(s->wait_name) == len && memcmp(s->wait_name, name, len) == 0;
  if (is_named(name, len, "interaction.", s->wait_name, ".done")) *ok = 1;
  else if (is_named(name, len, "error.interaction.", s->wait_name, "")) *ok = 0;
  else return false;
  if (data == 0) return false;
  char want[24];
  size_t n = ixr__fmt_id(want, 'r', s->wait_reqid);
  lua_getfield(rt->L, data, "requestid");
  size_t rlen = 0;
  const char *rid = lua_type(rt->L, -1) == LUA_TSTRING ? lua_tolstring(rt->L, -1, &rlen) : NULL;
  bool match = rid != NULL && rlen == (size_t)n && memcmp(rid, want, rlen) == 0;
  lua_pop(rt->L, 1);
  return match;
}

static void deliver(ixr_runtime *rt, ixr__session *s, int ev, const char *name,
                    size_t len, int data) {
  lua_State *L = rt->L;
  int ok = 0;
  if (s->state == IXR__ACTIVE && s->wait_kind != IXR__WAIT_NONE &&
      flow_wants(rt, s, name, len, data, &ok)) {
    ixr__wait_kind kind = s->wait_kind;
    if (rt->opt.on_trace != NULL)
      ixr__trace(rt, "  s%llu %s -> the flow, waiting in %s",
                 (unsigned long long)s->id, name,
                 kind == IXR__WAIT_REQUEST ? "request" : "wait");
    clear_wait(rt, s);
    lua_State *co = s->co;
    if (kind == IXR__WAIT_REQUEST) lua_pushboolean(co, ok);
    lua_pushvalue(L, ev);
    lua_xmove(L, co, 1);
    run_flow(rt, s, kind == IXR__WAIT_REQUEST ? 2 : 1);
    return;
  }
  ixr__strategy *st = ixr__strategy_current(rt, s);
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->handlers_ref);
  if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
    lua_pop(L, 2);
    if (rt->opt.on_trace != NULL)
      ixr__trace(rt, "  s%llu %s -> no handler: dropped",
                 (unsigned long long)s->id, name);
    /* The event a suspended session waits for, and nothing to resume it:
     * a strategy with defaults "none" (since a reload, say) and no handler
     * of its own. Say so: it stays suspended until its requeue timeout. */
    if (s->state == IXR__SUSPENDED && len == 19 &&
        memcmp(name, "interaction.present", 19) == 0)
      ixr__log(rt, IXR_LOG_WARN,
               "s%llu %s %s: interaction.present for a suspended session, and "
               "the strategy has no handler for it (defaults = \"none\"): it "
               "stays suspended",
               (unsigned long long)s->id, s->iid, st->name);
    return;
  }
  lua_remove(L, -2);
  if (rt->opt.on_trace != NULL) {
    char where[512];
    ixr__where(L, -1, where, sizeof(where));
    size_t dl = strlen(rt->lua_dir);
    bool standard = strncmp(where, rt->lua_dir, dl) == 0 && where[dl] == '/';
    ixr__trace(rt, "  s%llu %s -> %s handler %s", (unsigned long long)s->id,
               name, standard ? "standard" : "strategy's own", where);
  }
  ixr__push_session(rt, s);
  lua_pushvalue(L, ev);
  ixr__invoke(rt, s, NULL, 2, name);
}

/* The message for a strategy that is not in service: says so when its
 * file is there now (added since the last load, or refused by a reload). */
static void not_loaded(const ixr_runtime *rt, const char *name, size_t len, char *msg,
                       size_t n) {
  int shown = (int)(len > 100 ? 100 : len);
  char path[4096];
  struct stat sb;
  if (len <= 200 &&
      snprintf(path, sizeof(path), "%s/%.*s.lua", rt->handlers_dir, (int)len, name) <
          (int)sizeof(path) &&
      stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
    snprintf(msg, n,
             "no strategy '%.*s' in service: %s/%.*s.lua is not among the strategies "
             "in service (added since they were loaded, or in a reload that was "
             "refused: the log says why); a reload that accepts it puts it in service",
             shown, name, rt->handlers_dir, shown, name);
  else
    snprintf(msg, n, "no strategy '%.*s' (looked for %s/%.*s.lua)", shown, name,
             rt->handlers_dir, shown, name);
}

/* The strategy a present names (data.strategy; "default" without one),
 * or NULL once an error line has said why none can start. */
static ixr__strategy *present_strategy(ixr_runtime *rt, ixr__sink *from, int data,
                                       uint64_t lineno, int id_idx) {
  lua_State *L = rt->L;
  const char *sname = "default";
  size_t slen = 7;
  /* Raw: core.replace passes a table a strategy made, and no strategy
   * code may run here (outside any protected call, between checks). */
  lua_pushliteral(L, "strategy");
  int t = lua_rawget(L, data);
  if (t == LUA_TSTRING) {
    sname = lua_tolstring(L, -1, &slen);
  } else if (t != LUA_TNIL) {
    lua_pop(L, 1);
    ixr__emit_error(rt, from, NULL, "bad_event", "data.strategy must be a string",
                    lineno, id_idx, NULL);
    return NULL;
  }
  ixr__strategy *st = ixr__strategy_find(rt, sname, slen);
  if (st == NULL || st->error != NULL) {
    char msg[512];
    if (st == NULL && !ixr__strategy_name_ok(sname, slen))
      snprintf(msg, sizeof(msg),
               "no strategy '%.*s': a strategy name is letters, digits, '_', "
               "'-' and '.' (the name of a file directly in %s)",
               (int)(slen > 100 ? 100 : slen), sname, rt->handlers_dir);
    else if (st == NULL)
      not_loaded(rt, sname, slen, msg, sizeof(msg));
    else
      snprintf(msg, sizeof(msg), "%s", st->error);
    lua_pop(L, 1);
    ixr__emit_error(rt, from, NULL, st ? "strategy_error" : "strategy_not_found",
                    msg, lineno, id_idx, NULL);
    return NULL;
  }
  lua_pop(L, 1); /* the strategy name */
  return st;
}

/* Starts a session of st for the present at ev. Its output goes to sink;
 * errors of the start itself to from (which may be NULL). */
static void start_with(ixr_runtime *rt, ixr__strategy *st, ixr__sink *from,
                       ixr__sinkref sink, int ev, const char *iid, size_t iid_len,
                       uint32_t hash, uint64_t lineno, int id_idx) {
  lua_State *L = rt->L;
  ixr__session *s = NULL;
  if (iid_len < UINT32_MAX)
    s = ixr__pool_realloc(&rt->pool, NULL, 0, session_size(iid_len));
  if (s == NULL) {
    ixr__emit_error(rt, from, NULL, "limit_exceeded", "out of memory", lineno,
                    id_idx, NULL);
    return;
  }
  memset(s, 0, sizeof(*s));
  memcpy(s->iid, iid, iid_len);
  s->iid[iid_len] = '\0';
  s->node.key = s->iid;
  s->node.len = (uint32_t)iid_len;
  s->node.hash = hash;
  s->wait_timer.heap_idx = IXR__TIMER_IDLE;
  s->id = ++rt->next_session_id;
  s->state = IXR__ACTIVE;
  s->strategy = st;
  st->refs++;
  s->ref = LUA_NOREF;
  s->co_ref = LUA_NOREF;
  s->sink = sink;
  if (ixr__new_session_ud(rt, s) != 0) {
    ixr__strategy_release(rt, st);
    free_session(rt, s);
    ixr__emit_error(rt, from, NULL, "limit_exceeded", "out of memory", lineno,
                    id_idx, NULL);
    return;
  }
  ixr__map_put(&rt->sessions, &s->node);
  rt->sessions_active++;
  rt->stats.sessions_started++;
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->start_ref);
  if (rt->opt.on_trace != NULL) {
    char where[512];
    ixr__trace(rt, "  s%llu %s -> new session, flow start %s",
               (unsigned long long)s->id, iid, ixr__where(L, -1, where, sizeof(where)));
  }
  ixr__emit_session(rt, s, "started", NULL);
  ixr__push_session(rt, s);
  lua_pushvalue(L, ev);
  ixr__flow_start(rt, s);
}

static void start_session(ixr_runtime *rt, ixr__sink *from, int ev, int data,
                          const char *iid, size_t iid_len, uint32_t hash,
                          uint64_t lineno, int id_idx) {
  ixr__strategy *st = present_strategy(rt, from, data, lineno, id_idx);
  if (st != NULL)
    start_with(rt, st, from, ixr__sink_ref(from), ev, iid, iid_len, hash, lineno, id_idx);
}

bool ixr__session_replace(ixr_runtime *rt, ixr__session *s, int ev) {
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  ev = lua_absindex(L, ev);
  int id_idx = 0;
  if (rt->line_has_id) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->line_id_ref);
    id_idx = lua_gettop(L);
  }
  /* Errors go to the stream of the line in progress, or (from a timer)
   * to the session's. */
  ixr__sink *from = rt->line_from != NULL ? rt->line_from : ixr__sink_resolve(rt, s->sink);
  bool done = false;
  lua_pushliteral(L, "data");
  if (lua_rawget(L, ev) == LUA_TTABLE) {
    int data = lua_gettop(L);
    ixr__strategy *st = present_strategy(rt, from, data, rt->line_no, id_idx);
    if (st != NULL && s->state == IXR__ACTIVE && s->end_after_flow != NULL) {
      /* The id and hash outlive the session: copied first. */
      size_t len = s->node.len;
      uint32_t hash = s->node.hash;
      lua_pushlstring(L, s->iid, len);
      const char *iid = lua_tostring(L, -1);
      char *reason = s->end_after_flow;
      s->end_after_flow = NULL;
      /* The stream of the present, or (called from a timer) the session's. */
      ixr__sinkref sink = rt->line_from != NULL ? ixr__sink_ref(rt->line_from) : s->sink;
      if (rt->opt.on_trace != NULL)
        ixr__trace(rt, "  s%llu presented again after losing control: ends (%s), "
                   "and a new session starts", (unsigned long long)s->id, reason);
      ixr__session_end(rt, s, reason);
      free(reason);
      start_with(rt, st, from, sink, ev, iid, len, hash, rt->line_no, id_idx);
      done = true;
    }
  }
  lua_settop(L, top);
  return done;
}

static void control(ixr_runtime *rt, ixr__sink *from, const char *name,
                    int data, uint64_t lineno, int id_idx) {
  lua_State *L = rt->L;
  if (strcmp(name, "clock.advance") == 0) {
    if (rt->opt.clock != IXR_CLOCK_MANUAL) {
      ixr__emit_error(rt, from, NULL, "bad_event",
                      "clock.advance needs the manual clock (--clock manual)",
                      lineno, id_idx, NULL);
      return;
    }
    int isnum = 0;
    lua_Number ms = 0;
    if (data != 0) {
      lua_getfield(L, data, "ms");
      ms = lua_tonumberx(L, -1, &isnum);
      isnum = isnum && lua_type(L, -1) == LUA_TNUMBER;
      lua_pop(L, 1);
    }
    /* Whole milliseconds: the clock counts in them, and a fraction
     * dropped here would be time that never passes. */
    if (!isnum || !(ms >= 0) || ms > 1e15 || ms != floor(ms)) {
      ixr__emit_error(rt, from, NULL, "bad_event",
                      "clock.advance needs data.ms, a whole number of "
                      "milliseconds from 0 to 1e15",
                      lineno, id_idx, NULL);
      return;
    }
    ixr__timers_advance(rt, (uint64_t)ms);
    return;
  }
  ixr__control(rt, from, name, lineno, id_idx);
}

/* A decoded JSON array (only asked on the error paths: an object's keys
 * are strings, so it has no [1]). */
static bool is_array(lua_State *L, int idx) {
  return lua_rawlen(L, idx) > 0 || ixr__is_marked_array(L, idx);
}

void ixr__dispatch(ixr_runtime *rt, ixr__sink *from, uint64_t lineno) {
  lua_State *L = rt->L;
  int ev = lua_gettop(L);
  rt->stats.events_in++;
  rt->depth++;
  int id_idx = 0;
  if (lua_type(L, ev) != LUA_TTABLE) {
    ixr__emit_error(rt, from, NULL, "bad_event", "an event must be a JSON object",
                    lineno, 0, NULL);
    goto done;
  }
  int t = lua_getfield(L, ev, "id"); /* ev+1 */
  if (t == LUA_TSTRING || t == LUA_TNUMBER) id_idx = ev + 1;
  rt->line_no = lineno; /* for the errors of the strategy calls below */
  rt->line_from = from;
  if (id_idx != 0) {
    lua_pushvalue(L, id_idx);
    lua_rawseti(L, LUA_REGISTRYINDEX, rt->line_id_ref);
    rt->line_has_id = true;
  }
  size_t len = 0;
  const char *name = NULL;
  if (lua_getfield(L, ev, "name") == LUA_TSTRING) /* ev+2 */
    name = lua_tolstring(L, ev + 2, &len);
  if (name == NULL || len == 0) {
    ixr__emit_error(rt, from, NULL, "bad_event",
                    is_array(L, ev) ? "an event must be a JSON object, not an array"
                                    : "name must be a non-empty string",
                    lineno, id_idx, NULL);
    goto done;
  }
  if (memchr(name, '\0', len) != NULL) {
    ixr__emit_error(rt, from, NULL, "bad_event", "name must not contain NUL",
                    lineno, id_idx, NULL);
    goto done;
  }
  int data = 0;
  t = lua_getfield(L, ev, "data"); /* ev+3 */
  if (t == LUA_TTABLE) {
    data = ev + 3;
  } else if (t != LUA_TNIL) {
    ixr__emit_error(rt, from, NULL, "bad_event", "data must be an object",
                    lineno, id_idx, NULL);
    goto done;
  }
  if (rt->opt.on_trace != NULL) {
    const char *tiid = NULL;
    if (data != 0 && lua_getfield(L, data, "interactionid") == LUA_TSTRING)
      tiid = lua_tostring(L, -1);
    ixr__trace(rt, "in line %llu: %s%s%s", (unsigned long long)lineno, name,
               tiid ? " " : "", tiid ? tiid : "");
    if (data != 0) lua_pop(L, 1);
  }
  /* A control socket takes ixr.* only: a clock.advance there would move the
   * event stream's time, and is no input line a record keeps. */
  if (strncmp(name, "ixr.", 4) == 0 ||
      (strncmp(name, "clock.", 6) == 0 && !(from != NULL && from->control_only))) {
    control(rt, from, name, data, lineno, id_idx);
    goto done;
  }
  if (from != NULL && from->control_only) {
    ixr__emit_error(rt, from, NULL, "bad_event",
                    "this is a control socket: it takes ixr.reload and "
                    "ixr.status only",
                    lineno, id_idx, NULL);
    goto done;
  }
  size_t iid_len = 0;
  const char *iid = NULL;
  if (data != 0 && lua_getfield(L, data, "interactionid") == LUA_TSTRING) /* ev+4 */
    iid = lua_tolstring(L, ev + 4, &iid_len);
  if (iid == NULL) {
    ixr__emit_error(rt, from, NULL, "bad_event",
                    data != 0 && is_array(L, data) ? "data must be an object, not an array"
                                                   : "data.interactionid must be a string",
                    lineno, id_idx, NULL);
    goto done;
  }
  uint32_t hash = ixr__hash(iid, iid_len);
  ixr__mapnode *n = ixr__map_get(&rt->sessions, iid, iid_len, hash);
  if (n == NULL) {
    if (len == 19 && memcmp(name, "interaction.present", 19) == 0) {
      start_session(rt, from, ev, data, iid, iid_len, hash, lineno, id_idx);
    } else {
      char msg[200];
      snprintf(msg, sizeof(msg), "no session owns interaction '%.100s' (%s)",
               iid, name);
      ixr__emit_error(rt, from, NULL, "unknown_interaction", msg, lineno, id_idx,
                      NULL);
    }
    goto done;
  }
  ixr__session *s = (ixr__session *)n;
  if (from != NULL) s->sink = ixr__sink_ref(from);
  deliver(rt, s, ev, name, len, data);
done:
  lua_settop(L, ev - 1);
  rt->depth--;
  ixr__reap(rt); /* the flows this line cancelled close: their errors are its */
  rt->line_no = 0;
  rt->line_from = NULL;
  if (rt->line_has_id) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, LUA_REGISTRYINDEX, rt->line_id_ref);
    rt->line_has_id = false;
  }
  ixr__run_queued_if_any(rt); /* what callbacks fed meanwhile, now the event is done */
}

/* ---- teardown --------------------------------------------------------- */

void ixr__dispatch_free(ixr_runtime *rt) {
  /* Flows not closed yet go with the Lua state: no strategy code runs
   * while the runtime closes. */
  for (size_t i = 0; i < rt->to_close_n; i++)
    ixr__strategy_release(rt, rt->to_close[i].st);
  free(rt->to_close);
  rt->to_close = NULL;
  rt->to_close_n = rt->to_close_cap = 0;
  /* Sessions still alive when the runtime closes are simply dropped: they
   * belong to the runtime, which is going away (no "ended" lines). */
  for (size_t i = 0; rt->sessions.buckets && i <= rt->sessions.mask; i++) {
    ixr__mapnode *n = rt->sessions.buckets[i];
    while (n != NULL) {
      ixr__mapnode *next = n->next;
      ixr__session *s = (ixr__session *)n;
      while (s->timers != NULL) {
        ixr__after *a = s->timers;
        s->timers = a->next;
        ixr__timer_stop(rt, &a->timer);
        free(a);
      }
      ixr__timer_stop(rt, &s->wait_timer);
      ixr__strategy_release(rt, s->strategy);
      free_session(rt, s);
      n = next;
    }
  }
  ixr__map_free(&rt->sessions);
  rt->depth = 0;
  ixr__reap(rt);
  ixr__map_free(&rt->names); /* empty now: every session let go of its name */
  ixr__timers_free(rt);
}
