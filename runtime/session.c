/*
 * session.c: the session object strategies see, and the ixr.core module the
 * standard library is built on.
 *
 * A session object is a full userdata (metatable "ixr.session") that points
 * at its C session until the session ends. Its user values hold session.vars
 * (1) and the standard library's private table (2), both made on first use.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"


#define SESSION_MT "ixr.session"

typedef ixr__sessionud sessionud;

int ixr__new_session_ud(ixr_runtime *rt, ixr__session *s) {
  lua_State *L = rt->L;
  sessionud *ud = lua_newuserdatauv(L, sizeof(*ud), 2);
  ud->v = (uint64_t)(uintptr_t)s;
  luaL_setmetatable(L, SESSION_MT);
  s->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return s->ref == LUA_REFNIL ? IXR_ENOMEM : 0;
}

void ixr__push_session(ixr_runtime *rt, ixr__session *s) {
  lua_rawgeti(rt->L, LUA_REGISTRYINDEX, s->ref);
}

/* A call killed by a limit may still run a few instructions before the
 * count hook fires again (up to one budget step, in another coroutine):
 * none of them may have an effect. */
static void check_usable(lua_State *L) {
  ixr_runtime *rt = ixr__runtime_of(L);
  if (rt->kill != IXR__KILL_NONE)
    luaL_error(L, "the call was stopped by a limit");
  /* nor may a strategy file act on sessions while it loads */
  if (rt->loading > 0)
    luaL_error(L, "sessions cannot be used while strategy files load");
}

/* The live session of argument `arg`, or an error. */
static ixr__session *check_live(lua_State *L, int arg) {
  check_usable(L);
  sessionud *ud = luaL_checkudata(L, arg, SESSION_MT);
  ixr__session *s = ixr__ud_session(ud);
  if (s == NULL)
    luaL_error(L, "session s%I has ended", (lua_Integer)ixr__ud_id(ud));
  return s;
}

/* ---- actions ---------------------------------------------------------- */

static bool action_name_ok(const char *name, size_t len) {
  if (len == 0 || len > 64) return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

/* Emits an action line for the arguments (self, name, args) at 1..3 and
 * returns its request id number. Raises on bad arguments, and while the
 * session is suspended: it does not control its interaction then (after a
 * switchover the action would reach a server that did not give it). */
/* Raises on a bad action name or args; returns the name. */
static const char *check_action(lua_State *L, int name_idx, int args_idx, size_t *nlen) {
  const char *name = luaL_checklstring(L, name_idx, nlen);
  if (!action_name_ok(name, *nlen))
    luaL_argerror(L, name_idx,
                  "action name must be 1 to 64 letters, digits, '_', '-' or '.'");
  if (!lua_isnoneornil(L, args_idx)) luaL_checktype(L, args_idx, LUA_TTABLE);
  return name;
}

/* Raises when the session is suspended: it may not act meanwhile. */
static void check_not_suspended(lua_State *L, const ixr__session *s) {
  if (s->state == IXR__SUSPENDED)
    luaL_error(L,
               "session s%I is suspended: it does not control interaction "
               "'%s' until it is presented again",
               (lua_Integer)s->id, s->iid);
}

static uint64_t emit_action(lua_State *L, ixr__session *s, int name_idx,
                            int args_idx) {
  ixr_runtime *rt = ixr__runtime_of(L);
  check_not_suspended(L, s);
  size_t nlen;
  const char *name = check_action(L, name_idx, args_idx, &nlen);
  /* Taken once the line is written: a refused action uses up no id. */
  uint64_t reqid = rt->next_request_id + 1;
  char sid[24], rid[24];
  size_t sidlen = ixr__fmt_id(sid, 's', s->id);
  size_t ridlen = ixr__fmt_id(rid, 'r', reqid);
  ixr__jw *w = rt->jw;
  ixr__jw_begin(w);
  ixr__jw_str(w, "type", "action", 6);
  ixr__jw_str(w, "action", name, nlen);
  ixr__jw_str(w, "session", sid, sidlen);
  ixr__jw_str(w, "interactionid", s->iid, s->node.len);
  ixr__jw_str(w, "requestid", rid, ridlen);
  char err[200];
  /* The writer puts ,"args": then the value: remember where the value
   * starts */
  size_t args_at = ixr__jw_len(w) + sizeof(",\"args\":") - 1;
  if (lua_isnoneornil(L, args_idx)) {
    lua_newtable(L);
    ixr__jw_lua(w, "args", L, -1, err, sizeof(err));
    lua_pop(L, 1);
  } else if (ixr__jw_lua(w, "args", L, args_idx, err, sizeof(err)) != 0) {
    luaL_error(L, "action '%s': args: %s", name, err);
  }
  ixr_output out;
  memset(&out, 0, sizeof(out));
  ixr__jw_end(w, &out.json, &out.json_len);
  out.type = IXR_OUT_ACTION;
  out.session = sid;
  out.interactionid = s->iid;
  out.interactionid_len = s->node.len;
  out.action = name;
  out.requestid = rid;
  out.args_json = out.json + args_at;
  out.args_len = out.json_len - args_at - 1; /* without the line's last '}' */
  rt->next_request_id = reqid;
  ixr__emit(rt, s->sink, &out);
  return reqid;
}

static void push_reqid(lua_State *L, uint64_t id) {
  lua_pushfstring(L, "r%I", (lua_Integer)id);
}

/*
 * The session lost control of its interaction while its flow waited for
 * the result of its own request (notcontrolled with routing:
 * core.end_after_flow), and ends once the flow finishes. An action now
 * would act on an interaction that has gone elsewhere (its request timed
 * out, say, and the flow falls back to a queue): it is not sent, and the
 * session ends here with that reason, as session:exit would end it.
 */
static int lost_control(lua_State *L, ixr__session *s, int name_idx) {
  ixr_runtime *rt = ixr__runtime_of(L);
  const char *name = lua_type(L, name_idx) == LUA_TSTRING ? lua_tostring(L, name_idx) : "?";
  char *reason = s->end_after_flow;
  s->end_after_flow = NULL;
  ixr__log(rt, IXR_LOG_INFO,
           "s%llu %s: action '%.64s' not sent: the session no longer controls "
           "its interaction (%s); it ends now",
           (unsigned long long)s->id, s->iid, name, reason);
  bool in_flow = (L == s->co);
  ixr__session_end(rt, s, reason);
  free(reason);
  if (in_flow && lua_isyieldable(L)) return lua_yield(L, 0);
  return 0;
}

/* session:action(name, args) -> requestid */
static int s_action(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  if (s->end_after_flow != NULL) {
    size_t nlen;
    check_action(L, 2, 3, &nlen); /* a mistake is reported all the same */
    return lost_control(L, s, 2);
  }
  push_reqid(L, emit_action(L, s, 2, 3));
  return 1;
}

/* Timeout in ms from opts.timeout (seconds), or 0 for none. */
static uint64_t opt_timeout(lua_State *L, int opts_idx) {
  if (lua_isnoneornil(L, opts_idx)) return 0;
  luaL_checktype(L, opts_idx, LUA_TTABLE);
  /* Raw: a metamethod here could end the session or replace its flow
   * between the checks of the caller and the wait it sets up. */
  lua_pushliteral(L, "timeout");
  lua_rawget(L, opts_idx);
  uint64_t ms = 0;
  if (!lua_isnil(L, -1)) {
    int isnum;
    lua_Number t = lua_tonumberx(L, -1, &isnum);
    if (!isnum || !(t > 0) || t > 1e9)
      luaL_argerror(L, opts_idx,
                    "timeout must be a number of seconds above 0, at most 1e9");
    ms = (uint64_t)ceil(t * 1000.0);
  }
  lua_pop(L, 1);
  /* A misspelt option ({ timout = 20 }) must not mean "no timeout". Looked
   * for only when there is none: this runs for every request, and a table
   * walk would cost more than the rest of the check. */
  if (ms != 0) return ms;
  lua_pushnil(L);
  while (lua_next(L, opts_idx) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, opts_idx, lua_pushfstring(L, "options are named: { timeout = "
                                                    "seconds } (got a %s key)",
                                                 luaL_typename(L, -1)));
    if (strcmp(lua_tostring(L, -1), "timeout") != 0)
      luaL_argerror(L, opts_idx, lua_pushfstring(L, "unknown option '%s' (the only "
                                                    "one is timeout)",
                                                 lua_tostring(L, -1)));
  }
  return ms;
}

/* The flow can wait only from its own coroutine, at a yieldable point. */
static void check_flow(lua_State *L, ixr__session *s, const char *what) {
  /* A flow that suspended its session where it could not yield (inside
   * table.sort, say) runs on to here: say why it cannot wait. */
  if (L != s->co) check_not_suspended(L, s);
  if (L != s->co)
    luaL_error(L,
               "session:%s can only be used in the session's flow (start or "
               "requeued), not in an on handler, a timer or another coroutine",
               what);
  if (!lua_isyieldable(L))
    luaL_error(L, "session:%s cannot wait here (inside a metamethod or a C "
                  "function such as table.sort)",
               what);
}

static void set_wait(lua_State *L, ixr__session *s, ixr__wait_kind kind,
                     const char *name, uint64_t reqid, uint64_t timeout_ms) {
  ixr_runtime *rt = ixr__runtime_of(L);
  const char *copy = ixr__name_get(rt, name, strlen(name));
  if (copy == NULL) luaL_error(L, "out of memory");
  s->wait_kind = kind;
  s->wait_name = copy;
  s->wait_reqid = reqid;
  if (timeout_ms > 0 &&
      ixr__timer_start(rt, &s->wait_timer, IXR__TIMER_FLOW, timeout_ms) != 0)
    luaL_error(L, "out of memory");
}

static int request(lua_State *L, ixr__session *s, const char *what,
                   int name_idx, int args_idx, int opts_idx) {
  check_flow(L, s, what);
  uint64_t ms = opt_timeout(L, opts_idx);
  const char *name = luaL_checkstring(L, name_idx);
  if (s->end_after_flow != NULL) {
    size_t nlen;
    check_action(L, name_idx, args_idx, &nlen); /* a mistake is reported all the same */
    return lost_control(L, s, name_idx);
  }
  uint64_t reqid = emit_action(L, s, name_idx, args_idx);
  set_wait(L, s, IXR__WAIT_REQUEST, name, reqid, ms);
  /* The dispatcher resumes with (true, event), (false, event) or
   * (false, "timeout"); those become request's results. The arguments
   * are not needed any more: a waiting session should not hold them. */
  lua_settop(L, 0);
  return lua_yield(L, 0);
}

/* session:request(name, args, opts) -> ok, event_or_"timeout" */
static int s_request(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  return request(L, s, "request", 2, 3, 4);
}

/* session:route/queue/stop(args, opts): request() for a fixed action. */
static int named_request(lua_State *L, const char *action) {
  ixr__session *s = check_live(L, 1);
  lua_settop(L, 3);
  lua_pushstring(L, action); /* 4 */
  return request(L, s, action, 4, 2, 3);
}
static int s_route(lua_State *L) { return named_request(L, "route"); }
static int s_queue(lua_State *L) { return named_request(L, "queue"); }
static int s_stop(lua_State *L) { return named_request(L, "stop"); }

/* session:wait(name, opts) -> event | nil, "timeout" */
static int s_wait(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  const char *name = luaL_checkstring(L, 2);
  check_flow(L, s, "wait");
  uint64_t ms = opt_timeout(L, 3);
  set_wait(L, s, IXR__WAIT_EVENT, name, 0, ms);
  lua_settop(L, 0);
  return lua_yield(L, 0);
}

/* session:after(seconds, fn) -> timer id */
static int s_after(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  ixr_runtime *rt = ixr__runtime_of(L);
  lua_Number secs = luaL_checknumber(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  if (!(secs >= 0) || secs > 1e9)
    return luaL_argerror(L, 2, "seconds must be a number from 0 to 1e9");
  /* The function's ref first: it may raise (the memory limit), and a call
   * that raised must leave no timer behind. */
  lua_pushvalue(L, 3);
  int fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ixr__after *a = malloc(sizeof(*a));
  if (a != NULL) {
    a->timer.heap_idx = IXR__TIMER_IDLE;
    if (ixr__timer_start(rt, &a->timer, IXR__TIMER_AFTER,
                         (uint64_t)ceil(secs * 1000.0)) != 0) {
      free(a);
      a = NULL;
    }
  }
  if (a == NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
    return luaL_error(L, "out of memory");
  }
  a->s = s;
  a->fn_ref = fn_ref;
  a->next = s->timers;
  a->prev = NULL;
  if (s->timers) s->timers->prev = a;
  s->timers = a;
  lua_pushinteger(L, (lua_Integer)a->timer.seq);
  return 1;
}

/* session:cancel(timer_id) -> true if a pending timer was cancelled */
static int s_cancel(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  ixr_runtime *rt = ixr__runtime_of(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  for (ixr__after *a = s->timers; a != NULL; a = a->next) {
    if ((lua_Integer)a->timer.seq != id) continue;
    if (a->prev) a->prev->next = a->next;
    else s->timers = a->next;
    if (a->next) a->next->prev = a->prev;
    luaL_unref(L, LUA_REGISTRYINDEX, a->fn_ref);
    ixr__timer_stop(rt, &a->timer);
    free(a);
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  return 1;
}

/* A reason goes into a JSON line, and through ixr as a C string: 1 to 200
 * bytes of valid UTF-8 without NUL (text after one would be lost). */
#define REASON_RULE "reason must be 1 to 200 bytes of UTF-8, without NUL"
static bool reason_ok(const char *reason, size_t len) {
  return len > 0 && len <= 200 && memchr(reason, '\0', len) == NULL &&
         ixr__utf8_valid(reason, len);
}

/* session:exit(reason): ends the session now. In the flow it also stops the
 * flow: nothing after the call runs. */
static int s_exit(lua_State *L) {
  check_usable(L);
  sessionud *ud = luaL_checkudata(L, 1, SESSION_MT);
  size_t len = 0;
  const char *reason = luaL_optlstring(L, 2, "exit", &len);
  if (!reason_ok(reason, len)) return luaL_argerror(L, 2, REASON_RULE);
  ixr__session *s = ixr__ud_session(ud);
  if (s == NULL) return 0; /* ended already: nothing to do */
  bool in_flow = (L == s->co);
  ixr__session_end(ixr__runtime_of(L), s, reason);
  if (in_flow && lua_isyieldable(L)) return lua_yield(L, 0);
  return 0;
}

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          "trace", NULL};

/* session:log(level, message) */
static int s_log(lua_State *L) {
  sessionud *ud = luaL_checkudata(L, 1, SESSION_MT);
  int level = luaL_checkoption(L, 2, NULL, level_names);
  const char *msg = luaL_tolstring(L, 3, NULL);
  ixr_runtime *rt = ixr__runtime_of(L);
  ixr__session *s = ixr__ud_session(ud);
  if (s != NULL)
    ixr__log(rt, (ixr_log_level)level, "s%llu %s %s: %s",
             (unsigned long long)s->id, s->iid, s->strategy->name, msg);
  else
    ixr__log(rt, (ixr_log_level)level, "s%llu (ended): %s",
             (unsigned long long)ixr__ud_id(ud), msg);
  return 0;
}

static const char *state_name(const sessionud *ud) {
  ixr__session *s = ixr__ud_session(ud);
  if (s == NULL) return "ended";
  return s->state == IXR__ACTIVE ? "active"
         : s->state == IXR__SUSPENDED ? "suspended" : "ended";
}

/* [-0, +1] pushes user value n, making it a table on first use */
static void push_uservalue_table(lua_State *L, int idx, int n) {
  if (lua_getiuservalue(L, idx, n) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, n);
  }
}

static int s_index(lua_State *L) {
  sessionud *ud = lua_touserdata(L, 1);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1; /* a method */
  lua_pop(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k == NULL) return 0;
  if (strcmp(k, "vars") == 0) {
    push_uservalue_table(L, 1, 1);
  } else if (strcmp(k, "id") == 0) {
    lua_pushfstring(L, "s%I", (lua_Integer)ixr__ud_id(ud));
  } else if (strcmp(k, "interactionid") == 0) {
    ixr__session *s = ixr__ud_session(ud);
    if (s == NULL) return 0;
    lua_pushlstring(L, s->iid, s->node.len);
  } else if (strcmp(k, "strategy") == 0) {
    ixr__session *s = ixr__ud_session(ud);
    if (s == NULL) return 0;
    lua_pushstring(L, s->strategy->name);
  } else if (strcmp(k, "state") == 0) {
    lua_pushstring(L, state_name(ud));
  } else {
    /* A misspelt field (session.InteractionID) must not read as nil. */
    luaL_where(L, 1); /* the strategy's line */
    lua_pushfstring(L,
                    "session has no field '%s' (fields: id, interactionid, "
                    "strategy, state, vars; methods: action, request, route, "
                    "queue, stop, wait, after, cancel, exit, log)",
                    k);
    lua_concat(L, 2);
    return lua_error(L);
  }
  return 1;
}

static int s_newindex(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  luaL_where(L, 1);
  if (k != NULL && strcmp(k, "vars") == 0)
    lua_pushliteral(L, "session.vars cannot be replaced (change its fields: "
                       "session.vars.name = value)");
  else
    lua_pushfstring(L, "session.%s is read-only (keep your own state in "
                       "session.vars)", k ? k : "?");
  lua_concat(L, 2);
  return lua_error(L);
}

static int s_tostring(lua_State *L) {
  sessionud *ud = luaL_checkudata(L, 1, SESSION_MT);
  ixr__session *s = ixr__ud_session(ud);
  if (s != NULL)
    lua_pushfstring(L, "session s%I (%s, %s)", (lua_Integer)s->id, s->iid,
                    state_name(ud));
  else
    lua_pushfstring(L, "session s%I (ended)", (lua_Integer)ixr__ud_id(ud));
  return 1;
}

static const luaL_Reg session_methods[] = {
    {"action", s_action}, {"request", s_request}, {"route", s_route},
    {"queue", s_queue},   {"stop", s_stop},       {"wait", s_wait},
    {"after", s_after},   {"cancel", s_cancel},   {"exit", s_exit},
    {"log", s_log},       {NULL, NULL}};

/* [-0, +0] registers the "ixr.session" metatable. */
int ixr__open_session(lua_State *L) {
  luaL_newmetatable(L, SESSION_MT);
  luaL_newlib(L, session_methods);
  lua_pushcclosure(L, s_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, s_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, s_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "ixr.session");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  return 0;
}

/* ---- ixr.core --------------------------------------------------------- */

/* core.state(session) -> "active" | "suspended" | "ended" */
static int c_state(lua_State *L) {
  sessionud *ud = luaL_checkudata(L, 1, SESSION_MT);
  lua_pushstring(L, state_name(ud));
  return 1;
}

static const char *check_reason(lua_State *L, int arg) {
  size_t len;
  const char *reason = luaL_checklstring(L, arg, &len);
  if (!reason_ok(reason, len)) luaL_argerror(L, arg, REASON_RULE);
  return reason;
}

/* core.suspend(session, reason): stops the flow (its pending request or wait
 * is cancelled), emits "suspended" and arms the requeue timeout. */
static int c_suspend(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  const char *reason = check_reason(L, 2);
  bool in_flow = (L == s->co);
  ixr__session_suspend(ixr__runtime_of(L), s, reason);
  /* From the session's own flow (a flow that waited for notcontrolled and
   * calls the standard handler): the flow is cancelled by the suspension,
   * so it stops here, as after session:exit. */
  if (in_flow && s->state == IXR__SUSPENDED && lua_isyieldable(L)) return lua_yield(L, 0);
  return 0;
}

/* Raises unless a new flow may start now. */
static void check_can_start(lua_State *L, ixr_runtime *rt, const char *fn) {
  /* Closing a cancelled flow must come to an end: a __close that started
   * a flow, whose own close started another, would go on forever. */
  if (rt->closing_flows)
    luaL_error(L, "%s: no flow can start while cancelled flows are closed (in "
                  "a <close>)", fn);
  if (rt->flow_nesting >= IXR__MAX_FLOW_NESTING)
    luaL_error(L, "%s: flows started from flows nest more than %d deep", fn,
               IXR__MAX_FLOW_NESTING);
  if (L != rt->L && !lua_checkstack(rt->L, 4)) /* 3 values and an anchor */
    luaL_error(L, "%s: stack overflow", fn);
}

/* Starts the flow fn (at 2) with the session (1) and the event (3). */
static void start_flow(lua_State *L, ixr_runtime *rt, ixr__session *s) {
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 3);
  if (L != rt->L) lua_xmove(L, rt->L, 3);
  ixr__flow_start(rt, s);
}

/* core.resume(session [, fn, event]): a suspended session is active again
 * ("resumed"), its requeue timeout cancelled. With fn, in the same step,
 * its new flow runs fn(session, event): nothing can fail between the two
 * and leave an active session without a flow. */
static int c_resume(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  ixr_runtime *rt = ixr__runtime_of(L);
  if (lua_isnoneornil(L, 2)) {
    ixr__session_resume(rt, s);
    return 0;
  }
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checkany(L, 3);
  if (s->state != IXR__SUSPENDED)
    return luaL_error(L, "core.resume: session s%I is not suspended",
                      (lua_Integer)s->id);
  check_can_start(L, rt, "core.resume");
  ixr__session_resume(rt, s);
  start_flow(L, rt, s);
  return 0;
}

/* core.run(session, fn, event): replaces the session's flow with a new one
 * running fn(session, event), and runs it to its first wait. */
static int c_run(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checkany(L, 3);
  ixr_runtime *rt = ixr__runtime_of(L);
  if (s->state != IXR__ACTIVE)
    return luaL_error(L, "core.run: session s%I is not active",
                      (lua_Integer)s->id);
  check_can_start(L, rt, "core.run");
  start_flow(L, rt, s);
  return 0;
}

/* core.flow_waiting(session) -> nil | "request" | "event" */
static int c_flow_waiting(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  if (s->wait_kind == IXR__WAIT_REQUEST) lua_pushliteral(L, "request");
  else if (s->wait_kind == IXR__WAIT_EVENT) lua_pushliteral(L, "event");
  else lua_pushnil(L);
  return 1;
}

/* core.end_after_flow(session, reason): the session lost control of its
 * interaction while its flow waits; when the flow (or one that replaces
 * it) finishes, end the session with this reason instead of "completed".
 * Until then it sends no action (lost_control); suspending drops it. */
static int c_end_after_flow(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  const char *reason = check_reason(L, 2);
  char *copy = strdup(reason);
  if (copy == NULL) return luaL_error(L, "out of memory");
  free(s->end_after_flow);
  s->end_after_flow = copy;
  return 0;
}

/* core.ending(session) -> the reason the session will end with once its
 * flow finishes (it lost control: core.end_after_flow), or nil */
static int c_ending(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  if (s->end_after_flow != NULL) lua_pushstring(L, s->end_after_flow);
  else lua_pushnil(L);
  return 1;
}

/* core.replace(session, event) -> true | false: the session lost control
 * (core.ending) and its interaction is presented again by event: ends the
 * session with its pending reason and starts a new session for the event,
 * as for an interaction without one. A present whose strategy cannot
 * start replaces nothing (false): its error line says why. */
static int c_replace(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  ixr_runtime *rt = ixr__runtime_of(L);
  if (s->state != IXR__ACTIVE || s->end_after_flow == NULL)
    return luaL_error(L, "core.replace: session s%I has not lost control of "
                         "its interaction", (lua_Integer)s->id);
  /* Raw reads (here and in ixr__session_replace): no strategy code may run
   * between these checks and the replacement. */
  lua_pushliteral(L, "data");
  size_t len = 0;
  const char *iid = NULL;
  if (lua_rawget(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "interactionid");
    if (lua_rawget(L, -2) == LUA_TSTRING) iid = lua_tolstring(L, -1, &len);
  }
  if (iid == NULL || len != s->node.len || memcmp(iid, s->iid, len) != 0)
    return luaL_error(L, "core.replace: the event is not about interaction '%s'",
                      s->iid);
  lua_settop(L, 2);
  check_can_start(L, rt, "core.replace");
  bool in_flow = (L == s->co);
  lua_pushvalue(L, 2);
  if (L != rt->L) lua_xmove(L, rt->L, 1);
  bool done = ixr__session_replace(rt, s, -1);
  lua_pop(rt->L, 1);
  /* From the session's own flow: it has ended, and its flow stops here,
   * as after session:exit. */
  if (done && in_flow && lua_isyieldable(L)) return lua_yield(L, 0);
  lua_pushboolean(L, done);
  return 1;
}

/* core.strategy(session) -> the table the strategy file returned */
static int c_strategy(lua_State *L) {
  ixr__session *s = check_live(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->strategy->table_ref);
  return 1;
}

/* core.data(session) -> a table private to the standard library */
static int c_data(lua_State *L) {
  luaL_checkudata(L, 1, SESSION_MT);
  push_uservalue_table(L, 1, 2);
  return 1;
}

/* core.now() -> milliseconds on the runtime clock */
static int c_now(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)ixr__now(ixr__runtime_of(L)));
  return 1;
}

/* core.array([t]) -> t: marks t (or a new empty table) as an array, so
 * that it is written as [] while empty, as an empty array that came in
 * JSON is. A table with a metatable of its own cannot be marked. */
static int c_array(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  } else {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (!ixr__is_marked_array(L, 1) && lua_getmetatable(L, 1))
      return luaL_argerror(L, 1, "the table has a metatable of its own");
  }
  ixr__mark_array(L, 1);
  return 1;
}

static const luaL_Reg core_funcs[] = {
    {"array", c_array},
    {"state", c_state},
    {"suspend", c_suspend},
    {"resume", c_resume},
    {"run", c_run},
    {"flow_waiting", c_flow_waiting},
    {"end_after_flow", c_end_after_flow},
    {"ending", c_ending},
    {"replace", c_replace},
    {"strategy", c_strategy},
    {"data", c_data},
    {"now", c_now},
    {NULL, NULL}};

/* [-0, +1] pushes the ixr.core table */
int ixr__open_core(lua_State *L) {
  luaL_newlib(L, core_funcs);
  lua_pushlightuserdata(L, ixr__null());
  lua_setfield(L, -2, "null");
  return 1;
}
