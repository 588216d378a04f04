/*
 * ceiling.c: the bare Lua ceiling (build/bench/ceiling).
 *
 *   ceiling [--bare | --both] [--runs N] [--handler FILE] EVENTS.ndjson
 *
 * What one core can do when nothing but the Lua VM is involved: the events
 * of the file are decoded before timing starts; the timed loop builds a
 * fresh event table {name=..., data={...}} for each one, the way
 * ixr_feed_event() does (each table made at its size with lua_createtable,
 * lua_setfield), and lua_pcall's the
 * handler with it. No JSON, no I/O, no sessions but the handler's own
 * tables, no coroutines, no timers, no sandbox.
 *
 * The handler is the function of bench/plain/handler.lua (bench.lua's
 * behaviour as one plain function, the same the plain Lua baseline calls);
 * its `emit` only counts lines. With --bare it is instead
 *   function(ev, emit) local d = ev.data; return d and d.interactionid end
 * which measures table building plus the call alone; --both runs the
 * bare handler and then the full one, each in a fresh state, per run.
 *
 * One line per run (and handler):
 *   bench=ceiling run=1 events=N seconds=S events_per_s=X lines_out=L lua_kb=K
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "common.h"

/* The members of the object or array that opens at f[i]: its direct
 * children (the fields up to its END, nested ones not counted). */
static int count_members(const ixr_field *f, size_t n, size_t i) {
  int count = 0, depth = 0;
  for (size_t j = i + 1; j < n; j++) {
    if (f[j].type == IXR_V_END) {
      if (depth-- == 0) break;
      continue;
    }
    if (depth == 0) count++;
    if (f[j].type == IXR_V_OBJECT || f[j].type == IXR_V_ARRAY) depth++;
  }
  return count;
}

/* [-0, +1] pushes the value of f[*i], advancing *i past it (and past the
 * fields of a nested object or array). The input is well formed. Tables
 * are made at their size, as ixr_feed_event() makes them. */
static void push_value(lua_State *L, const ixr_field *f, size_t n, size_t *i) {
  const ixr_field *x = &f[(*i)++];
  switch (x->type) {
    case IXR_V_STRING: lua_pushlstring(L, x->str, x->len); break;
    case IXR_V_INT: lua_pushinteger(L, (lua_Integer)x->i); break;
    case IXR_V_DOUBLE: lua_pushnumber(L, x->d); break;
    case IXR_V_BOOL: lua_pushboolean(L, x->b); break;
    case IXR_V_NULL: lua_pushnil(L); break;
    case IXR_V_OBJECT:
    case IXR_V_ARRAY: {
      /* a table and a value per level: the loader allows 64 levels */
      if (!lua_checkstack(L, 4)) {
        lua_pushnil(L);
        break;
      }
      int arr = x->type == IXR_V_ARRAY;
      int count = count_members(f, n, *i - 1);
      lua_createtable(L, arr ? count : 0, arr ? 0 : count);
      lua_Integer idx = 1;
      while (*i < n && f[*i].type != IXR_V_END) {
        const char *key = f[*i].key;
        push_value(L, f, n, i);
        if (arr) lua_rawseti(L, -2, idx++);
        else lua_setfield(L, -2, key);
      }
      (*i)++;
      break;
    }
    default: lua_pushnil(L); break;
  }
}

/* [-0, +1] pushes a fresh {name = ..., data = {...}} */
static void push_event(lua_State *L, const bench_event *e) {
  lua_createtable(L, 0, 2);
  lua_pushstring(L, e->name);
  lua_setfield(L, -2, "name");
  int count = 0, depth = 0; /* the top-level fields of data */
  for (size_t j = 0; j < e->nfields; j++) {
    if (e->fields[j].type == IXR_V_END) depth--;
    else {
      if (depth == 0) count++;
      if (e->fields[j].type == IXR_V_OBJECT || e->fields[j].type == IXR_V_ARRAY) depth++;
    }
  }
  lua_createtable(L, 0, count);
  size_t i = 0;
  while (i < e->nfields) {
    const char *key = e->fields[i].key;
    push_value(L, e->fields, e->nfields, &i);
    lua_setfield(L, -2, key);
  }
  lua_setfield(L, -2, "data");
}

static const char BARE[] =
    "return function(ev, emit) local d = ev.data; return d and d.interactionid end";
static const char EMIT[] =
    "local n = 0\n"
    "return function(t) n = n + 1 end, function() return n end";

#define USAGE "usage: ceiling [--bare | --both] [--runs N] [--handler FILE] EVENTS.ndjson\n"

/* One timed pass over the events in a fresh state; prints its line. */
static int run_once(const bench_events *evs, const char *handler, int bare, int r) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  /* 1: handle(ev, emit) */
  if (bare) {
    if (luaL_dostring(L, BARE) != LUA_OK) goto lua_fail;
  } else {
    if (luaL_dofile(L, handler) != LUA_OK) goto lua_fail;
    lua_getfield(L, -1, "new");
    lua_remove(L, -2);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) goto lua_fail;
  }
  /* 2: emit, 3: count */
  if (luaL_loadstring(L, EMIT) != LUA_OK || lua_pcall(L, 0, 2, 0) != LUA_OK) goto lua_fail;
  lua_gc(L, LUA_GCCOLLECT);

  size_t failed = 0;
  uint64_t t0 = bench_now_ns();
  for (size_t i = 0; i < evs->n; i++) {
    lua_pushvalue(L, 1);
    push_event(L, &evs->ev[i]);
    lua_pushvalue(L, 2);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
      if (failed++ == 0) fprintf(stderr, "ceiling: %s\n", lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  uint64_t t1 = bench_now_ns();
  lua_pushvalue(L, 3);
  lua_call(L, 0, 1);
  long long lines = (long long)lua_tointeger(L, -1);
  int kb = lua_gc(L, LUA_GCCOUNT);
  double secs = (double)(t1 - t0) / 1e9;
  printf("bench=%s run=%d events=%zu seconds=%.4f events_per_s=%.0f lines_out=%lld "
         "lua_kb=%d failed=%zu\n",
         bare ? "ceiling_bare" : "ceiling", r, evs->n, secs, (double)evs->n / secs, lines, kb,
         failed);
  fflush(stdout);
  lua_close(L);
  return 0;
lua_fail:
  fprintf(stderr, "ceiling: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return 1;
}

int main(int argc, char **argv) {
  const char *handler = "bench/plain/handler.lua", *path = NULL;
  int runs = 1, bare = 0, both = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--bare") == 0) bare = 1;
    else if (strcmp(argv[i], "--both") == 0) both = 1;
    else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
      uint64_t x;
      if (!bench_parse_count("ceiling: --runs", argv[++i], 1, 1000, &x)) return 2;
      runs = (int)x;
    }
    else if (strcmp(argv[i], "--handler") == 0 && i + 1 < argc) handler = argv[++i];
    else if (argv[i][0] != '-' && path == NULL) path = argv[i];
    else {
      fprintf(stderr, USAGE);
      return 2;
    }
  }
  if (path == NULL || runs < 1) {
    fprintf(stderr, USAGE);
    return 2;
  }
  bench_events evs;
  bench_load_events(path, 0, &evs);
  for (int r = 1; r <= runs; r++) {
    if ((both || bare) && run_once(&evs, handler, 1, r) != 0) return 1;
    if ((both || !bare) && run_once(&evs, handler, 0, r) != 0) return 1;
  }
  bench_free_events(&evs);
  return 0;
}
