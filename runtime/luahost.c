/*
 * luahost.c: the Lua state, its sandbox, module loading, and the one
 * protected path from C into Lua.
 *
 * Every call into Lua goes through call_protected(): lua_pcall with a
 * message handler for plain calls, lua_resume for flows. Both turn any
 * error value into a message plus a traceback, keep the stack balanced, and
 * never let an error escape to a libuv callback.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lualib.h>

#include "internal.h"

/* Registry keys: addresses of private tags. */
static const char SANDBOX_KEY = 0; /* the allow-listed globals */
static const char LOADED_KEY = 0;  /* modules loaded by require */
static const char STRICT_KEY = 0;  /* the metatable of strategy environments */
static const char CORE_KEY = 0;    /* the ixr.core table */
static const char HOST_KEY = 0;    /* modules of C functions a host registered */
static const char SHOWN_KEY = 0;   /* in a read-only view's metatable: what it shows */
static const char SOURCES_KEY = 0; /* in the module cache: the generation's module files */


/* ---- limits: the allocator and the instruction budget ----------------- */

/*
 * The allocator counts every byte of the Lua state. While a script runs
 * (inside call_protected) it also enforces the limits: the state's total
 * (max_memory) and the net growth of one call (max_call_growth, a soft
 * per-session limit: garbage not yet collected counts too). Outside script
 * calls (decoding events, building session objects), and for ixr's own
 * bookkeeping on the main thread inside one (rt->internal_alloc), it never
 * refuses: a refusal there would have no protected call to land in.
 */
static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  ixr_runtime *rt = ud;
  if (ptr == NULL) osize = 0;
  if (nsize == 0) {
    ixr__pool_free(&rt->pool, ptr, osize);
    rt->lua_bytes -= osize;
    return NULL;
  }
  if (nsize > osize && rt->call_thread != NULL && rt->internal_alloc == 0) {
    size_t after = rt->lua_bytes + (nsize - osize);
    bool over = (rt->opt.max_memory != 0 && after > rt->opt.max_memory) ||
                (rt->opt.max_call_growth != 0 && after > rt->call_base_bytes &&
                 after - rt->call_base_bytes > rt->opt.max_call_growth);
    if (over) {
      if (rt->kill == IXR__KILL_NONE) {
        rt->kill = IXR__KILL_MEMORY;
        /* From now on every instruction of the call fails, so a pcall in
         * the script cannot swallow the kill. */
        lua_sethook(rt->call_thread, rt->hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
      }
      return NULL;
    }
  }
  void *p = ixr__pool_realloc(&rt->pool, ptr, osize, nsize);
  if (p != NULL) {
    rt->lua_bytes = rt->lua_bytes - osize + nsize;
    if (nsize > osize) rt->alloc_total += nsize - osize;
  }
  return p;
}

/* "FILE:LINE: " where the kill found the call (if it was in Lua code) and
 * which limit it hit. */
static const char *kill_message(ixr_runtime *rt, char *buf, size_t n) {
  int w = 0;
  if (rt->kill_where[0] != '\0') w = snprintf(buf, n, "%s: ", rt->kill_where);
  if (w < 0 || (size_t)w >= n) w = 0;
  buf += w;
  n -= (size_t)w;
  if (rt->kill == IXR__KILL_INSTRUCTIONS)
    snprintf(buf, n, "instruction budget exceeded: more than %llu Lua "
             "instructions in one call",
             (unsigned long long)rt->opt.max_instructions);
  else if (rt->opt.max_call_growth != 0 &&
           rt->lua_bytes - rt->call_base_bytes > rt->opt.max_call_growth / 2)
    snprintf(buf, n, "memory limit exceeded: one call may grow the Lua heap "
             "by at most %zu bytes", rt->opt.max_call_growth);
  else
    snprintf(buf, n, "memory limit exceeded: the Lua state may use at most "
             "%zu bytes", rt->opt.max_memory);
  return buf - w;
}

/* Notes where the Lua code was when a kill first raised there. */
static void note_kill_where(ixr_runtime *rt, lua_State *L) {
  lua_Debug ar;
  if (rt->kill_where[0] != '\0' || !lua_getstack(L, 0, &ar)) return;
  if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
    snprintf(rt->kill_where, sizeof(rt->kill_where), "%s:%d", ar.short_src,
             ar.currentline);
}

#define BUDGET_STEP 1000 /* instructions between two looks at the budget */

/*
 * The count hook. Every BUDGET_STEP instructions it charges the budget of
 * the call; once it is spent (or memory ran out) it raises, and keeps
 * raising at every instruction and line until the call has unwound.
 */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  ixr_runtime *rt = ixr__runtime_of(L);
  (void)ar;
  if (rt->kill == IXR__KILL_NONE) {
    /* A thread made during a killed call inherited the per-instruction
     * hook: put it back to the normal pace. */
    if (lua_gethookcount(L) != BUDGET_STEP)
      lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_STEP);
    /* A long call collects its own garbage as it goes (gc.c). */
    ixr__gc_in_call(rt, L);
    if (rt->opt.max_instructions == 0) return;
    if (rt->budget > BUDGET_STEP) {
      rt->budget -= BUDGET_STEP;
      return;
    }
    rt->kill = IXR__KILL_INSTRUCTIONS;
  }
  lua_sethook(L, budget_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
  note_kill_where(rt, L);
  char buf[400];
  lua_pushstring(L, kill_message(rt, buf, sizeof(buf)));
  lua_error(L);
}

/* ---- the protected path ----------------------------------------------- */

int ixr__close_thread(lua_State *co, lua_State *from) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, from);
#else
  (void)from;
  return lua_resetthread(co);
#endif
}

/*
 * [-0, +1] a readable message from any error value. __tostring is tried only
 * when `meta` is set: a dead coroutine cannot run metamethods.
 */
static const char *error_message(lua_State *L, int idx, bool meta) {
  idx = lua_absindex(L, idx);
  int t = lua_type(L, idx);
  size_t len = 0;
  const char *s = NULL;
  if (t == LUA_TSTRING || t == LUA_TNUMBER) s = lua_tolstring(L, idx, &len);
  if (s != NULL && memchr(s, '\0', len) != NULL) {
    /* The message goes on as a C string: a NUL would cut it there. */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
      if (s[i] == '\0') luaL_addstring(&b, "\\0");
      else luaL_addchar(&b, s[i]);
    }
    luaL_pushresult(&b);
  } else if (s != NULL) {
    lua_pushstring(L, s);
  } else if (meta && luaL_callmeta(L, idx, "__tostring")) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
    }
  } else {
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
  }
  return lua_tostring(L, -1);
}

/* Message handler for lua_pcall: the message, and the traceback aside. */
static int msgh(lua_State *L) {
  ixr_runtime *rt = ixr__runtime_of(L);
  error_message(L, 1, true);
  luaL_traceback(L, L, NULL, 1);
  free(rt->last_traceback);
  rt->last_traceback = strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  return 1;
}

/*
 * The core of the one path. With co == NULL: [-(nargs+1), +0] calls the
 * function below the nargs arguments on rt->L. With a thread: resumes it.
 * On failure returns IXR__CALL_FAILED with *msg and *tb (malloc'd).
 */
static ixr__call_result call_protected(ixr_runtime *rt, lua_State *co,
                                       int nargs, int nres, char **msg,
                                       char **tb) {
  lua_State *L = rt->L;
  *msg = NULL;
  *tb = NULL;
  /* Nested calls (a flow started from a handler) share the outer budget. */
  bool outer = rt->call_thread == NULL;
  lua_State *prev_thread = rt->call_thread;
  lua_State *T = co ? co : L;
  if (outer) {
    /* Near the cap, collect first: garbage of earlier calls (a killed
     * memory bomb, say) must not be charged to this one. Only again once
     * the heap has grown since the last such collection: with live data
     * near the cap, a full collection before every call would be ruinous. */
    size_t cap = rt->opt.max_memory;
    if (cap != 0 && rt->lua_bytes > cap / 10 * 9 &&
        rt->lua_bytes > rt->forced_gc_bytes + cap / 20) {
      ixr__gc_full(rt);
      rt->forced_gc_bytes = rt->lua_bytes;
    }
    rt->budget = rt->opt.max_instructions;
    rt->kill = IXR__KILL_NONE;
    rt->kill_where[0] = '\0';
    rt->kill_reported = false;
    rt->call_base_bytes = rt->lua_bytes;
  }
  rt->call_thread = T;
  lua_sethook(T, budget_hook, LUA_MASKCOUNT, BUDGET_STEP);
  ixr__call_result result;
  if (co == NULL) {
    int base = lua_gettop(L) - nargs; /* the function's slot */
    lua_pushcfunction(L, msgh);
    lua_insert(L, base);
    int st = lua_pcall(L, nargs, nres, base);
    if (st == LUA_OK) {
      lua_remove(L, base);
      IXR_STACK_CHECK(L, base - 1, nres);
      result = IXR__CALL_DONE;
    } else {
      *msg = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "(no message)");
      if (rt->last_traceback != NULL) {
        *tb = rt->last_traceback;
        rt->last_traceback = NULL;
      }
      lua_settop(L, base - 1);
      result = IXR__CALL_FAILED;
    }
  } else {
    int nout = 0;
    /* From the thread that runs now, if any (a flow started by a flow):
     * the C calls then add up across nested resumes, and Lua's own limit
     * stops a deep nesting with an error before the C stack runs out. */
    int st = lua_resume(co, prev_thread != NULL ? prev_thread : L, nargs, &nout);
    if (st == LUA_OK || st == LUA_YIELD) {
      lua_pop(co, nout);
      result = st == LUA_OK ? IXR__CALL_DONE : IXR__CALL_YIELDED;
    } else {
      /* A failed coroutine keeps its stack: take the traceback from it.
       * This runs outside any protected call (on the main thread, or on a
       * flow's, when a flow started this one), so the report's strings
       * must not be refused at a memory limit the flow just hit: they are
       * ixr's bookkeeping, small and freed at once. */
      rt->internal_alloc++;
      const char *m = error_message(co, -1, false);
      *msg = strdup(m ? m : "(no message)");
      luaL_traceback(L, co, NULL, 0);
      *tb = strdup(lua_tostring(L, -1));
      lua_pop(L, 1);
      rt->internal_alloc--;
      /* Its pending to-be-closed variables are closed now, protected (an
       * error in one is dropped: the flow's own error is the report).
       * lua_settop would run them unprotected on a dead thread. Not after
       * a kill: the instruction budget raised from a hook, and Lua leaves
       * hooks off on that thread, so no budget would stop a __close that
       * loops (and a memory kill leaves no room to run one). */
      if (rt->kill == IXR__KILL_NONE) ixr__close_thread(co, L);
      result = IXR__CALL_FAILED;
    }
  }
  /* A kill that a script's pcall caught and that then ran to completion
   * cannot happen (every instruction raises), but a yield right after the
   * kill can: the call still counts as killed. */
  if (rt->kill != IXR__KILL_NONE) {
    char buf[400];
    free(*msg);
    *msg = strdup(kill_message(rt, buf, sizeof(buf)));
    result = IXR__CALL_FAILED;
  }
  lua_sethook(T, budget_hook, LUA_MASKCOUNT, BUDGET_STEP);
  rt->call_thread = prev_thread;
  /* Why this call failed, nested or not: a nested call (a flow started by
   * a handler) that meets a limit reports limit_exceeded too. */
  rt->last_kill = result == IXR__CALL_FAILED ? rt->kill : IXR__KILL_NONE;
  if (outer && rt->last_kill != IXR__KILL_NONE) {
    rt->stats.limit_kills++;
    /* What a killed call built is garbage now: give it back at once. */
    if (rt->kill == IXR__KILL_MEMORY) {
      ixr__gc_full(rt);
      rt->forced_gc_bytes = rt->lua_bytes;
    }
  }
  if (outer) rt->kill = IXR__KILL_NONE;
  return result;
}

ixr__call_result ixr__invoke(ixr_runtime *rt, ixr__session *s, lua_State *co,
                             int nargs, const char *what) {
  char *msg, *tb;
  /* The call may end the session, which lets go of its strategy (freed if
   * a reload replaced it); the report below still names it. */
  ixr__strategy *st = s != NULL ? s->strategy : NULL;
  if (st != NULL) st->refs++;
  bool nested = rt->call_thread != NULL;
  ixr__call_result r = call_protected(rt, co, nargs, 0, &msg, &tb);
  if (r == IXR__CALL_FAILED) {
    const char *m = msg ? msg : "out of memory";
    bool killed = rt->last_kill != IXR__KILL_NONE;
    if (killed && !nested && rt->kill_reported) {
      /* The nested call that met the limit has said so (a flow started by
       * this handler): the handler died of the same kill, one report. */
    } else {
      if (s != NULL)
        ixr__log(rt, IXR_LOG_ERROR, "s%llu %s %s: error in %s: %s",
                 (unsigned long long)s->id, s->iid, st->name, what, m);
      else
        ixr__log(rt, IXR_LOG_ERROR, "error in %s: %s", what, m);
      ixr__emit_strategy_error(rt, s, killed ? "limit_exceeded" : "handler_error",
                               m, tb);
      if (killed && nested) rt->kill_reported = true;
    }
    free(msg);
    free(tb);
  }
  if (st != NULL) ixr__strategy_release(rt, st);
  return r;
}

/* [-(nargs+1), +nres] a call whose failure is returned, not emitted (on
 * failure nothing is pushed). */
int ixr__call_quiet(ixr_runtime *rt, int nargs, int nres, char **errmsg) {
  char *msg, *tb;
  ixr__call_result r = call_protected(rt, NULL, nargs, nres, &msg, &tb);
  free(tb);
  if (r == IXR__CALL_FAILED) {
    *errmsg = msg ? msg : strdup("out of memory");
    return -1;
  }
  return 0;
}

/* ---- loading files ---------------------------------------------------- */

/* A whole file into b; 0, or an error with its message in *errmsg. */
static int read_file(const char *path, ixr__buf *b, char **errmsg) {
  /* Not blocking: a FIFO named x.lua would hold the whole runtime until
   * something wrote to it. Only a regular file is read. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat sb;
  const char *why = NULL;
  if (fd < 0) why = strerror(errno);
  else if (fstat(fd, &sb) != 0) why = strerror(errno);
  else if (!S_ISREG(sb.st_mode)) why = "not a regular file";
  else if (fcntl(fd, F_SETFL, 0) != 0) why = strerror(errno);
  FILE *f = why == NULL ? fdopen(fd, "rb") : NULL;
  if (why == NULL && f == NULL) why = strerror(errno);
  if (f == NULL) {
    if (fd >= 0) close(fd);
    char buf[512];
    snprintf(buf, sizeof(buf), "%s: cannot open: %s", path, why);
    *errmsg = strdup(buf);
    return IXR_ENOENT;
  }
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
    if (ixr__buf_append(b, chunk, n) != 0) {
      fclose(f);
      ixr__buf_free(b);
      *errmsg = strdup("out of memory");
      return IXR_ENOMEM;
    }
  }
  fclose(f);
  return 0;
}

/* Compiles text as chunkname; its FNV-1a 64 hash (which tells a changed
 * file from an unchanged one) into *hash when asked. */
static int compile_text(lua_State *L, const char *text, size_t len,
                        const char *chunkname, char **errmsg, uint64_t *hash) {
  if (hash != NULL) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
      h ^= (unsigned char)text[i];
      h *= 1099511628211ull;
    }
    *hash = h;
  }
  if (luaL_loadbufferx(L, text, len, chunkname, "t") != LUA_OK) {
    *errmsg = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return IXR_ESTRATEGY;
  }
  return 0;
}

int ixr__load_file(lua_State *L, const char *path, const char *chunkname,
                   char **errmsg, uint64_t *hash) {
  ixr__buf b = {0};
  int rc = read_file(path, &b, errmsg);
  if (rc != 0) return rc;
  rc = compile_text(L, b.data ? b.data : "", b.len, chunkname, errmsg, hash);
  ixr__buf_free(&b);
  return rc;
}

int ixr__load_strategy_file(ixr_runtime *rt, const char *name, const char *path,
                            const char *chunkname, char **errmsg, uint64_t *hash) {
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  /* The text the generation captured for require (capture_dir): the file
   * is read once per reload. */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &LOADED_KEY);
  if (lua_rawgetp(L, -1, &SOURCES_KEY) == LUA_TTABLE &&
      lua_getfield(L, -1, name) == LUA_TTABLE &&
      lua_rawgeti(L, -1, 1) == LUA_TSTRING) {
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    int rc = compile_text(L, text, len, chunkname, errmsg, hash);
    if (rc == 0) lua_replace(L, top + 1); /* the chunk, where LOADED was */
    lua_settop(L, rc == 0 ? top + 1 : top);
    return rc;
  }
  lua_settop(L, top);
  return ixr__load_file(L, path, chunkname, errmsg, hash);
}

/* ---- the sandbox ------------------------------------------------------ */

/* print() goes to the log: standard output carries only JSON lines. */
static int l_print(lua_State *L) {
  ixr_runtime *rt = ixr__runtime_of(L);
  int n = lua_gettop(L); /* before the buffer: luaL_buffinit pushes a box */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  luaL_where(L, 1); /* which print: "FILE:LINE: " */
  ixr__log(rt, IXR_LOG_INFO, "print: %s%s", lua_tostring(L, -1), lua_tostring(L, -2));
  return 0;
}

/*
 * setmetatable without __gc: a finalizer runs whenever the collector finds
 * its object dead, inside whatever call (or none) happens to allocate then,
 * so it would escape the protected path and the session it came from.
 */
static int l_setmetatable(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int t = lua_type(L, 2);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  /* Raw: a lookup through the metatable's own __index could put __gc in
   * just before lua_setmetatable registers the finalizer. Lua registers
   * one only if __gc is there (raw) at this call. */
  lua_pushliteral(L, "__gc");
  if (t == LUA_TTABLE && lua_rawget(L, 2) != LUA_TNIL)
    return luaL_argerror(L, 2, "__gc metamethods are not allowed in strategies");
  lua_settop(L, 2);
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  lua_setmetatable(L, 1);
  return 1;
}

/* load() of text only, in a sandboxed environment unless one is given. */
static int l_load(lua_State *L) {
  size_t len;
  const char *s = lua_tolstring(L, 1, &len);
  if (s == NULL) return luaL_argerror(L, 1, "only a string chunk is accepted");
  const char *name = luaL_optstring(L, 2, "=(load)");
  const char *mode = luaL_optstring(L, 3, "t");
  if (strcmp(mode, "t") != 0)
    return luaL_argerror(L, 3, "only text chunks (mode \"t\") are allowed");
  int has_env = !lua_isnone(L, 4);
  if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2; /* nil, message */
  }
  if (has_env) lua_pushvalue(L, 4);
  else ixr__push_sandbox(L);
  if (lua_setupvalue(L, -2, 1) == NULL) lua_pop(L, 1);
  return 1;
}

static bool module_name_ok(const char *name, size_t len) {
  if (len == 0 || len > 200 || name[0] == '.' || name[len - 1] == '.')
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              (c == '.' && name[i + 1] != '.');
    if (!ok) return false;
  }
  return true;
}

/*
 * Read-only views. The modules every strategy shares (ixr.core, the
 * standard library under lua/, a host's C functions) are handed out as
 * views: an empty table whose metatable reads from the module, so that a
 * strategy that assigns into one (`core.run = ...`, by accident) gets an
 * error with its file:line instead of changing the module for every other
 * strategy of the runtime. As the sandbox itself, this protects against
 * accidents, not against a hostile strategy (rawset still writes).
 */

/* [-0, +1] "FILE:LINE: " of the nearest Lua code on the stack (the caller
 * of table.insert, say, not table.insert), or "". */
static void where_lua(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
  }
  lua_pushliteral(L, "");
}

/* __newindex: upvalue 1 is the module's name. */
static int ro_newindex(lua_State *L) {
  const char *mod = lua_tostring(L, lua_upvalueindex(1));
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  where_lua(L);
  if (k != NULL)
    lua_pushfstring(L, "module '%s' is read-only (assignment to '%s')", mod, k);
  else
    lua_pushfstring(L, "module '%s' is read-only (assignment to a %s key)", mod,
                    luaL_typename(L, 2));
  lua_concat(L, 2);
  return lua_error(L);
}

/* The iterator of a view: next over the table shown (upvalue 1), which
 * pairs never hands out itself (its state is the view). */
static int ro_next(lua_State *L) {
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_next(L, lua_upvalueindex(1))) return 2;
  lua_pushnil(L);
  return 1;
}

/* __pairs: upvalue 1 is the view's ro_next. */
static int ro_pairs(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* __len: upvalue 1 is the table shown. */
static int ro_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
  return 1;
}

/* [-1, +1] replaces the table on top with its read-only view; other values
 * stay as they are. A table without tables inside is shown live (a host
 * module sees the functions registered later); one with tables is shown
 * through a copy whose tables are views too, so that no path leads to a
 * writable part. memo (an index) maps each table to its view: shared and
 * cyclic tables get one view. */
static void ro_view(lua_State *L, const char *mod, int memo, int depth) {
  if (lua_type(L, -1) != LUA_TTABLE) return;
  luaL_checkstack(L, 8, "read-only view");
  /* A view (a module that re-exports ixr.core) is one already. A table
   * with a metatable of its own stays as it is: a view would lose its
   * metamethods. */
  if (lua_getmetatable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  if (depth > 64) luaL_error(L, "module '%s' nests tables too deeply", mod);
  lua_pushvalue(L, -1);
  if (lua_rawget(L, memo) != LUA_TNIL) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  int t = lua_gettop(L);
  bool flat = true;
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    bool tbl = lua_type(L, -1) == LUA_TTABLE;
    lua_pop(L, 1);
    if (tbl) {
      flat = false;
      lua_pop(L, 1);
      break;
    }
  }
  lua_newtable(L); /* t+1: the view */
  lua_pushvalue(L, t);
  lua_pushvalue(L, t + 1);
  lua_rawset(L, memo);
  if (flat) {
    lua_pushvalue(L, t); /* t+2: what the view shows */
  } else {
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
      ro_view(L, mod, memo, depth + 1);
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, t + 2);
    }
  }
  lua_createtable(L, 0, 5); /* t+3 */
  lua_pushvalue(L, t + 2);
  lua_setfield(L, t + 3, "__index");
  lua_pushstring(L, mod);
  lua_pushcclosure(L, ro_newindex, 1);
  lua_setfield(L, t + 3, "__newindex");
  lua_pushvalue(L, t + 2);
  lua_pushcclosure(L, ro_next, 1);
  lua_pushcclosure(L, ro_pairs, 1);
  lua_setfield(L, t + 3, "__pairs");
  lua_pushvalue(L, t + 2);
  lua_pushcclosure(L, ro_len, 1);
  lua_setfield(L, t + 3, "__len");
  lua_pushliteral(L, "read-only");
  lua_setfield(L, t + 3, "__metatable");
  lua_pushvalue(L, t + 2);
  lua_rawsetp(L, t + 3, &SHOWN_KEY);
  lua_setmetatable(L, t + 1);
  lua_pop(L, 1);     /* the shown table */
  lua_replace(L, t); /* the view where the table was */
}

/* [-1, +1] the value on top, as a read-only view (see ro_view). */
static void read_only(lua_State *L, const char *mod) {
  lua_newtable(L);
  lua_insert(L, -2);
  ro_view(L, mod, lua_gettop(L) - 1, 0);
  lua_remove(L, -2);
}

void ixr__ro_shown(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (!lua_getmetatable(L, idx)) return;
  if (lua_rawgetp(L, -1, &SHOWN_KEY) == LUA_TTABLE) {
    lua_replace(L, idx);
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 2);
}

/* require: ixr.core, or a module file under lua/ or the handlers dir. */
static int l_require(lua_State *L) {
  ixr_runtime *rt = ixr__runtime_of(L);
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  lua_settop(L, 1);
  /* The standard library, while it loads, gets ixr.core itself: it is
   * ixr's own code, and it calls core functions on every event, where a
   * view would cost a metatable lookup each. */
  if (rt->std_loading > 0 && strcmp(name, "ixr.core") == 0) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &CORE_KEY);
    return 1;
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &LOADED_KEY); /* 2 */
  lua_pushvalue(L, 1);
  if (lua_rawget(L, 2) != LUA_TNIL) {
    if (lua_toboolean(L, -1) && lua_type(L, -1) == LUA_TLIGHTUSERDATA &&
        lua_touserdata(L, -1) == (void *)&LOADED_KEY)
      return luaL_error(L, "module '%s' requires itself (a require loop)", name);
    return 1;
  }
  lua_pop(L, 1);
  if (!module_name_ok(name, len))
    return luaL_error(L, "bad module name '%s'", name);
  /* a module of the host's C functions */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &HOST_KEY);
  if (lua_getfield(L, -1, name) == LUA_TTABLE) {
    read_only(L, name);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, 2);
    return 1;
  }
  lua_pop(L, 2);
  /* The module files were read and compiled when the generation loaded
   * (ixr__modules_capture): a file changed or broken since then is not
   * seen until the next reload, which checks it first. */
  if (lua_rawgetp(L, 2, &SOURCES_KEY) != LUA_TTABLE ||
      lua_getfield(L, -1, name) != LUA_TTABLE)
    return luaL_error(L, "module '%s' not found in %s/ or %s/ (among the files "
                         "there when the strategies were loaded)",
                      name, rt->lua_dir, rt->handlers_dir);
  /* A file that did not compile when the generation loaded: its own
   * error, not "not found" (the file is there). */
  if (lua_rawgeti(L, -1, 4) == LUA_TSTRING)
    return luaL_error(L, "module '%s' did not compile: %s", name, lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_rawgeti(L, -1, 3);
  bool standard = lua_toboolean(L, -1); /* under lua/: shared, so read-only */
  lua_pop(L, 1);
  lua_rawgeti(L, -1, 2); /* the path */
  lua_rawgeti(L, -2, 1); /* the compiled chunk, or a strategy file's text */
  lua_replace(L, 3);
  lua_replace(L, 4);
  lua_settop(L, 4); /* name, loaded, chunk, path */
  if (lua_type(L, 3) == LUA_TSTRING) {
    size_t srclen;
    const char *src = lua_tolstring(L, 3, &srclen);
    lua_pushfstring(L, "@%s", lua_tostring(L, 4));
    if (luaL_loadbufferx(L, src, srclen, lua_tostring(L, -1), "t") != LUA_OK)
      return lua_error(L);
    lua_replace(L, 3);
    lua_settop(L, 4);
  }
  /* mark as loading, to catch loops */
  lua_pushvalue(L, 1);
  lua_pushlightuserdata(L, (void *)&LOADED_KEY);
  lua_rawset(L, 2);
  lua_pushvalue(L, 3);
  ixr__push_sandbox(L);
  lua_pushvalue(L, -1);
  lua_setupvalue(L, -3, 1);        /* fn, env */
  lua_insert(L, -2);               /* env, fn */
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 4);
  /* Inside the caller's protected call already; this pcall only lets a
   * failed module be forgotten (not left looking like a require loop)
   * before its error goes on up. Only a module of lua/ itself gets
   * ixr.core (above), not a module of the handlers dir it requires. */
  int outer_std = rt->std_loading;
  rt->std_loading = standard ? outer_std + 1 : 0;
  int st = lua_pcall(L, 2, 1, 0);
  rt->std_loading = outer_std;
  if (st != LUA_OK) {
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_rawset(L, 2);
    return lua_error(L);
  }
  ixr__seal_env(L, -2);
  if (lua_isnil(L, -1)) {
    /* A module's environment is its own and sealed: it can give nothing
     * to the strategies but what it returns. One that returns nothing is,
     * far more often, a file caught halfway through a save (its first
     * lines compile): refused, so that the reload is. */
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_rawset(L, 2);
    return luaL_error(L, "%s: module '%s' returned nothing (a module must "
                         "return its value, usually a table; is the file "
                         "complete?)",
                      lua_tostring(L, 4), name);
  }
  if (standard) {
    lua_pushvalue(L, 1); /* not "loading" if making the view fails */
    lua_pushnil(L);
    lua_rawset(L, 2);
    read_only(L, name);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);
  lua_rawset(L, 2);
  return 1;
}

/* Reading an undefined global is an error that names it. */
static int strict_index(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  return luaL_error(L, "undefined global '%s'", k ? k : "?");
}

/* Writing a global once the file is loaded is an error (catches typos). */
static int strict_newindex(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  return luaL_error(L,
                    "assignment to undefined global '%s' (declare it local, "
                    "or keep state in session.vars)",
                    k ? k : "?");
}

/* [-0, +1] a shallow copy of the table on top (room for nrec fields). */
static void push_copy(lua_State *L, int nrec) {
  lua_createtable(L, 0, nrec);
  lua_pushnil(L);
  while (lua_next(L, -3) != 0) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
}

/*
 * [-0, +1] a new environment: the allow-listed globals, with private copies
 * of the library tables, so that a strategy that changes string.format or
 * table.insert changes them for itself only.
 */
void ixr__push_sandbox(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &SANDBOX_KEY);
  int base = lua_gettop(L);
  lua_createtable(L, 0, 32);
  int env = base + 1;
  lua_pushnil(L);
  while (lua_next(L, base) != 0) {
    if (lua_type(L, -1) == LUA_TTABLE) { /* a library: copy it */
      push_copy(L, 32);
      lua_remove(L, -2);
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, env);
  }
  lua_pushvalue(L, env);
  lua_setfield(L, env, "_G");
  lua_remove(L, base);
  /* While the file runs, globals may be defined; reads are strict already. */
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, strict_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
}

/* [-0, +0] seals the environment table at idx: no new globals from now on. */
void ixr__seal_env(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &STRICT_KEY);
  lua_setmetatable(L, idx);
}

static const char *const allowed_globals[] = {
    "assert", "error",  "ipairs",   "next",     "pairs",  "pcall",
    "rawequal", "rawget", "rawlen", "rawset",   "select", "setmetatable",
    "getmetatable", "tonumber", "tostring", "type", "xpcall", "_VERSION",
    "coroutine", "math", "string", "table", "utf8", NULL};

static const char *const allowed_os[] = {"time", "clock", "date", "difftime",
                                         NULL};

/*
 * coroutine.resume and coroutine.close of the sandbox refuse the thread of
 * a flow. Only the dispatcher resumes a flow (with the event or timeout it
 * waits for) and closes it; a strategy that kept coroutine.running() would
 * otherwise wake a waiting flow with values of its own, or (the thread being
 * reused once its flow is over) another session's flow. Upvalue 1 is the
 * original function.
 */
static int flow_guard(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  if (co != NULL && ixr__is_flow_thread(co))
    return luaL_error(L, "a session's flow cannot be resumed or closed by a "
                         "strategy (ixr resumes it with the events it waits for)");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* [-0, +1] a copy of the coroutine library with the flow guards. */
static void push_coroutine_lib(lua_State *L) {
  lua_getglobal(L, "coroutine");
  push_copy(L, 8);
  static const char *const guarded[] = {"resume", "close", NULL};
  for (const char *const *g = guarded; *g != NULL; g++) {
    lua_getfield(L, -2, *g);
    lua_pushcclosure(L, flow_guard, 1);
    lua_setfield(L, -2, *g);
  }
  lua_remove(L, -2);
}

/*
 * On the manual clock os.time() and os.date() without a time count from
 * ixr_options.start_time_ms, as the runtime clock does from 0: a test or a
 * replay sees the same dates on every run. Upvalue 1 is the original
 * function, which does everything else (os.time{...}, os.date(fmt, t)).
 */
static void push_manual_wall_s(lua_State *L) {
  ixr_runtime *rt = ixr__runtime_of(L);
  /* The manual clock may be advanced past any date (ixr_advance takes a
   * uint64_t): the sum stops at the largest time instead of overflowing. */
  uint64_t now = ixr__now(rt);
  int64_t ms;
  if (now > (uint64_t)INT64_MAX || __builtin_add_overflow(rt->start_time_ms, (int64_t)now, &ms))
    ms = INT64_MAX;
  int64_t s = ms / 1000;
  if (ms % 1000 < 0) s--; /* down, before 1970 too */
  lua_pushinteger(L, (lua_Integer)s);
}

/* Calls the original function (upvalue 1) with the arguments on the stack.
 * Its errors (a bad format) are raised again with the strategy's FILE:LINE,
 * which they would lack: called from here, their position is this C
 * function's. */
static int call_original(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  if (lua_pcall(L, lua_gettop(L) - 1, 1, 0) != LUA_OK) {
    if (lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return 1;
}

static int manual_os_time(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    push_manual_wall_s(L);
    return 1;
  }
  return call_original(L);
}

static int manual_os_date(lua_State *L) {
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1); /* the format, or nil for the default */
    push_manual_wall_s(L);
  }
  return call_original(L);
}

static void build_sandbox(lua_State *L) {
  lua_createtable(L, 0, 32);
  for (const char *const *g = allowed_globals; *g != NULL; g++) {
    lua_getglobal(L, *g);
    lua_setfield(L, -2, *g);
  }
  push_coroutine_lib(L);
  lua_setfield(L, -2, "coroutine");
  lua_createtable(L, 0, 4);
  lua_getglobal(L, "os");
  for (const char *const *g = allowed_os; *g != NULL; g++) {
    lua_getfield(L, -1, *g);
    lua_setfield(L, -3, *g);
  }
  lua_pop(L, 1);
  if (ixr__runtime_of(L)->opt.clock == IXR_CLOCK_MANUAL) {
    static const struct { const char *name; lua_CFunction f; } wall[] = {
        {"time", manual_os_time}, {"date", manual_os_date}};
    for (size_t i = 0; i < sizeof(wall) / sizeof(wall[0]); i++) {
      lua_getfield(L, -1, wall[i].name);
      lua_pushcclosure(L, wall[i].f, 1);
      lua_setfield(L, -2, wall[i].name);
    }
  }
  lua_setfield(L, -2, "os");
  lua_pushcfunction(L, l_setmetatable);
  lua_setfield(L, -2, "setmetatable");
  lua_pushcfunction(L, l_print);
  lua_setfield(L, -2, "print");
  lua_pushcfunction(L, l_load);
  lua_setfield(L, -2, "load");
  lua_pushcfunction(L, l_require);
  lua_setfield(L, -2, "require");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &SANDBOX_KEY);

  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, strict_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, strict_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &STRICT_KEY);
}

/* Forget loaded modules (a new generation loads its own). */
void ixr__reset_modules(ixr_runtime *rt) {
  lua_State *L = rt->L;
  lua_newtable(L);
  /* A view of its own for each generation: what a strategy wrote into
   * one with rawset stays with that generation. */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CORE_KEY);
  read_only(L, "ixr.core");
  lua_setfield(L, -2, "ixr.core");
  lua_newtable(L);
  lua_rawsetp(L, -2, &SOURCES_KEY);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &LOADED_KEY);
}

/* Compiles every NAME.lua under dir, down to IXR__MODULE_DEPTH, into
 * sources[module] = {chunk, path, standard[, error]}, unless an earlier
 * directory had that module; the strategy files at the top of the handlers dir are
 * kept as text instead (load_one compiles and checks them). prefix: the
 * module name of dir ("" at the top). A file that does not compile is a
 * problem: one "FILE:LINE: message" line in errors. */
static int capture_dir(ixr_runtime *rt, int sources, const char *dir,
                       const char *prefix, int depth, bool standard,
                       ixr__buf *errors) {
  lua_State *L = rt->L;
  DIR *d = opendir(dir);
  if (d == NULL) {
    /* A top directory that is missing is reported where it is needed
     * (the handlers directory, the standard library). A subdirectory that
     * cannot be read would hide its modules: a problem, not an empty one. */
    if (depth == 0) return 0;
    char msg[4200];
    int n = snprintf(msg, sizeof(msg), "%s: cannot read the directory: %s\n",
                     dir, strerror(errno));
    if (n > (int)sizeof(msg) - 1) n = (int)sizeof(msg) - 1;
    ixr__buf_append(errors, msg, (size_t)n);
    return 1;
  }
  int problems = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    size_t nl = strlen(n);
    if (n[0] == '.') continue;
    char path[4096], mod[512];
    if (snprintf(path, sizeof(path), "%s/%s", dir, n) >= (int)sizeof(path)) continue;
    struct stat sb;
    if (stat(path, &sb) != 0) continue;
    if (S_ISDIR(sb.st_mode)) {
      /* Only a directory whose name can be part of a module name (not
       * lost+found, say) holds modules: only its problems count. */
      int ml = snprintf(mod, sizeof(mod), "%s%s", prefix, n);
      if (depth >= IXR__MODULE_DEPTH || ml + 1 >= (int)sizeof(mod) ||
          !ixr__module_dir_ok(n) || !module_name_ok(mod, (size_t)ml))
        continue;
      if (++rt->walk_dirs > IXR__MAX_WALK_DIRS) {
        if (rt->walk_dirs == IXR__MAX_WALK_DIRS + 1) {
          char msg[4300];
          int k = snprintf(msg, sizeof(msg),
                           "%s: more than %d directories of modules (a symlink to a "
                           "large tree?): the rest is not read\n",
                           path, IXR__MAX_WALK_DIRS);
          if (k > (int)sizeof(msg) - 1) k = (int)sizeof(msg) - 1;
          ixr__buf_append(errors, msg, (size_t)k);
          problems++;
        }
        continue;
      }
      mod[ml] = '.';
      mod[ml + 1] = '\0';
      problems += capture_dir(rt, sources, path, mod, depth + 1, standard, errors);
      continue;
    }
    if (!S_ISREG(sb.st_mode) || nl < 5 || strcmp(n + nl - 4, ".lua") != 0) continue;
    int ml = snprintf(mod, sizeof(mod), "%s%.*s", prefix, (int)(nl - 4), n);
    if (ml >= (int)sizeof(mod) || !module_name_ok(mod, (size_t)ml)) continue;
    if (lua_getfield(L, sources, mod) != LUA_TNIL) {
      /* lua/ comes first; two files of the same tree for one module
       * (a.b.lua and a/b.lua) would leave which one require loads to the
       * order of a directory listing: a problem. */
      lua_rawgeti(L, -1, 2);
      const char *other = lua_tostring(L, -1);
      size_t dl = strlen(rt->lua_dir);
      bool from_std = other != NULL && strncmp(other, rt->lua_dir, dl) == 0 && other[dl] == '/';
      if (standard == from_std) {
        char msg[9000];
        int k = snprintf(msg, sizeof(msg), "%s: module '%s' is %s as well: rename one\n",
                         path, mod, other ? other : "?");
        if (k > (int)sizeof(msg) - 1) k = (int)sizeof(msg) - 1;
        ixr__buf_append(errors, msg, (size_t)k);
        problems++;
      }
      lua_pop(L, 2);
      continue;
    }
    lua_pop(L, 1);
    char *err = NULL;
    bool broken = false;
    if (!standard && depth == 0) { /* a strategy file: its text */
      ixr__buf b = {0};
      if (read_file(path, &b, &err) != 0) {
        free(err); /* load_one reports it */
        continue;
      }
      lua_pushlstring(L, b.data ? b.data : "", b.len);
      ixr__buf_free(&b);
    } else {
      char chunkname[4100];
      snprintf(chunkname, sizeof(chunkname), "@%s", path);
      if (ixr__load_file(L, path, chunkname, &err, NULL) != 0) {
        problems++;
        const char *m = err ? err : "out of memory";
        ixr__buf_append(errors, m, strlen(m));
        ixr__buf_append(errors, "\n", 1);
        /* kept with its error, for require to tell */
        lua_pushboolean(L, false);
        lua_pushstring(L, m);
        free(err);
        broken = true;
      }
    }
    lua_createtable(L, 4, 0);
    lua_insert(L, broken ? -3 : -2);
    if (broken) lua_rawseti(L, -3, 4);
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, path);
    lua_rawseti(L, -2, 2);
    lua_pushboolean(L, standard);
    lua_rawseti(L, -2, 3);
    lua_setfield(L, sources, mod);
  }
  closedir(d);
  return problems;
}

int ixr__modules_capture(ixr_runtime *rt, ixr__buf *errors) {
  lua_State *L = rt->L;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &LOADED_KEY);
  lua_rawgetp(L, -1, &SOURCES_KEY);
  int sources = lua_gettop(L);
  rt->walk_dirs = 0;
  int problems = capture_dir(rt, sources, rt->lua_dir, "", 0, true, errors);
  rt->walk_dirs = 0;
  problems += capture_dir(rt, sources, rt->handlers_dir, "", 0, false, errors);
  lua_pop(L, 2);
  return problems;
}

/* A registry ref to the module cache in use, to restore it after a failed
 * reload; ixr__modules_restore puts it back and releases the ref. */
int ixr__modules_save(ixr_runtime *rt) {
  lua_rawgetp(rt->L, LUA_REGISTRYINDEX, &LOADED_KEY);
  return luaL_ref(rt->L, LUA_REGISTRYINDEX);
}

void ixr__modules_restore(ixr_runtime *rt, int ref) {
  lua_rawgeti(rt->L, LUA_REGISTRYINDEX, ref);
  lua_rawsetp(rt->L, LUA_REGISTRYINDEX, &LOADED_KEY);
  luaL_unref(rt->L, LUA_REGISTRYINDEX, ref);
}

typedef struct registration {
  const char *module, *name;
  ixr_lua_function fn;
  void *ud;
} registration;

/* [-0, +0] the Lua side of ixr_register, in a protected call. */
static int do_register(lua_State *L) {
  const registration *r = lua_touserdata(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &HOST_KEY);
  if (lua_getfield(L, -1, r->module) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, r->module);
  }
  lua_pushlightuserdata(L, r->ud);
  lua_pushcclosure(L, (lua_CFunction)r->fn, 1);
  lua_setfield(L, -2, r->name);
  return 0;
}

int ixr_register(ixr_runtime *rt, const char *module, const char *name,
                 ixr_lua_function fn, void *ud) {
  if (rt == NULL || module == NULL || name == NULL || fn == NULL ||
      name[0] == '\0')
    return IXR_EINVAL;
  if (rt->closing) return IXR_ECLOSED;
  if (!module_name_ok(module, strlen(module)) || strcmp(module, "ixr") == 0 ||
      strncmp(module, "ixr.", 4) == 0)
    return IXR_EINVAL;
  /* It may be called from a callback while a strategy's call runs: the
   * few bytes are the host's, not the strategy's (its memory limits do not
   * refuse them), and a failure is returned, never raised through the
   * host's code. */
  registration r = {module, name, fn, ud};
  lua_State *L = rt->L;
  if (!lua_checkstack(L, 4)) return IXR_ENOMEM;
  rt->internal_alloc++;
  lua_pushcfunction(L, do_register);
  lua_pushlightuserdata(L, &r);
  int st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK) lua_pop(L, 1);
  rt->internal_alloc--;
  return st == LUA_OK ? 0 : IXR_ENOMEM;
}

int ixr__lua_open(ixr_runtime *rt) {
  lua_State *L = lua_newstate(lua_alloc, rt);
  if (L == NULL) return IXR_ENOMEM;
  rt->L = L;
  rt->hook = budget_hook;
  ixr__set_runtime(L, rt, false);
  static const luaL_Reg libs[] = {
      {LUA_GNAME, luaopen_base},          {LUA_COLIBNAME, luaopen_coroutine},
      {LUA_TABLIBNAME, luaopen_table},    {LUA_STRLIBNAME, luaopen_string},
      {LUA_MATHLIBNAME, luaopen_math},    {LUA_UTF8LIBNAME, luaopen_utf8},
      {LUA_OSLIBNAME, luaopen_os},        {NULL, NULL}};
  for (const luaL_Reg *lib = libs; lib->func != NULL; lib++) {
    luaL_requiref(L, lib->name, lib->func, 1);
    lua_pop(L, 1);
  }
  /* On the manual clock (tests, replays) math.random starts from the same
   * seed every run, as everything else there is the same: Lua seeds it
   * from the time otherwise. */
  if (rt->opt.clock == IXR_CLOCK_MANUAL) {
    lua_getglobal(L, "math");
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, 0x1c5);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
  }
  /* string.dump would hand out bytecode, and the string metatable is
   * shared by every string of every strategy: neither is reachable. */
  lua_getglobal(L, "string");
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushliteral(L, "the string metatable is protected");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);
  build_sandbox(L);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &HOST_KEY);
  ixr__open_array_mt(L);
  lua_pushboolean(L, 0); /* a slot for the id of the line being dispatched */
  rt->line_id_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ixr__open_session(L);
  ixr__open_core(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CORE_KEY);
  ixr__reset_modules(rt);
  ixr__gc_init(rt);
  return 0;
}

void ixr__lua_close(ixr_runtime *rt) {
  if (rt->L != NULL) lua_close(rt->L);
  ixr__pool_destroy(&rt->pool);
  rt->L = NULL;
  free(rt->last_traceback);
  rt->last_traceback = NULL;
}
