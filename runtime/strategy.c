/*
 * strategy.c: loading and checking strategy files.
 *
 * A strategy is a file handlers/<name>.lua (directly in the directory;
 * subdirectories hold modules for require). It runs once, in its own
 * sandboxed environment, and must return a table:
 *   start (function, required), requeued (function), on (table of
 *   functions by event name), defaults ("requeue" when absent, or another
 *   key of require("ixr.multimedia").sets), requeue_timeout (seconds > 0).
 * A file that breaks these rules is kept as an error ("FILE:LINE: message")
 * so that sessions asking for it get strategy_error.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"


#define DEFAULT_REQUEUE_TIMEOUT 300.0

bool ixr__strategy_name_ok(const char *name, size_t len) {
  if (len == 0 || len > 128 || name[0] == '.') return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

/*
 * The line where `field = ` first appears in the source, to point an error
 * about a field at the right place; 0 when it does not appear. With field
 * NULL: the line of the last top-level "return".
 */
static int find_line(const char *path, const char *field) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[1024];
  int n = 0, found = 0;
  size_t flen = field ? strlen(field) : 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    n++;
    const char *p = line + strspn(line, " \t");
    if (field == NULL) {
      if (strncmp(line, "return", 6) == 0) found = n;
      continue;
    }
    if (strncmp(p, field, flen) == 0) {
      const char *q = p + flen;
      q += strspn(q, " \t");
      if (*q == '=' && q[1] != '=') {
        found = n;
        break;
      }
    }
  }
  fclose(f);
  return found;
}

/* The edit distance of a and b, an adjacent swap counting as one edit
 * (short names; at most 9). */
static int distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 32 || lb > 32) return 9;
  int d[33][33];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[la][lb] > 9 ? 9 : d[la][lb];
}

/* The index in names of the name k looks like a misspelling of (one edit
 * away; two for names of 8 letters or more, when the first letter is
 * right: queue_timeout is a name of its own, not requeue_timeout), or -1. */
static int misspelt(const char *k, const char *const *names) {
  int best = -1, bd = 10;
  for (int i = 0; names[i] != NULL; i++) {
    int d = distance(k, names[i]);
    int room = strlen(names[i]) >= 8 && k[0] == names[i][0] ? 2 : 1;
    if (d > 0 && d <= room && d < bd) {
      bd = d;
      best = i;
    }
  }
  return best;
}


static char *fail_at(const char *path, const char *field, const char *fmt,
                     const char *arg) {
  int line = find_line(path, field);
  if (line == 0 && field != NULL) line = find_line(path, NULL);
  if (line == 0) line = 1;
  char msg[512], out[1024];
  snprintf(msg, sizeof(msg), fmt, arg);
  snprintf(out, sizeof(out), "%s:%d: %s", path, line, msg);
  return strdup(out);
}

/* Adds "FILE:LINE: warning: MSG" to st->warnings (the line of `field`). */
static void warn_at(ixr__strategy *st, const char *field, const char *msg) {
  char *w = fail_at(st->path, field, "warning: %s", msg);
  if (w == NULL) return;
  size_t old = st->warnings ? strlen(st->warnings) : 0, add = strlen(w);
  char *all = realloc(st->warnings, old + add + 2);
  if (all != NULL) {
    memcpy(all + old, w, add);
    memcpy(all + old + add, "\n", 2);
    st->warnings = all;
  }
  free(w);
}

/* [-1, +0] validates the strategy table on top and fills st; returns an
 * error message (malloc'd) or NULL. */
static char *adopt(ixr_runtime *rt, ixr__strategy *st, int sets_ref) {
  lua_State *L = rt->L;
  int tbl = lua_gettop(L);
  char *err = NULL;
  if (!lua_istable(L, tbl)) {
    err = fail_at(st->path, NULL, "a strategy must return a table (got %s)",
                  luaL_typename(L, tbl));
    goto out;
  }
  /* A misspelt field (defualts, requed, requeue_timout) would silently mean
   * its default: a key one or two edits from a field's name, holding a
   * value of that field's type, is reported as a warning (ixr check prints
   * it, a load logs it). It still loads: other keys are the strategy's own
   * (a base strategy that others require may export helpers). Its own keys
   * only, raw. */
  static const char *const fields[] = {"start", "requeued", "on", "defaults",
                                       "requeue_timeout", "pin", NULL};
  static const int types[] = {LUA_TFUNCTION, LUA_TFUNCTION, LUA_TTABLE, LUA_TSTRING,
                              LUA_TNUMBER, LUA_TBOOLEAN};
  lua_pushnil(L);
  while (lua_next(L, tbl) != 0) {
    int near = lua_type(L, -2) == LUA_TSTRING ? misspelt(lua_tostring(L, -2), fields) : -1;
    if (near >= 0 && lua_type(L, -1) == types[near]) {
      char msg[200];
      snprintf(msg, sizeof(msg), "field '%.60s' is no field of a strategy: did you mean "
               "'%s'? (it is ignored)", lua_tostring(L, -2), fields[near]);
      warn_at(st, lua_tostring(L, -2), msg);
    }
    lua_pop(L, 1);
  }
  /* Each field is read once and the value read is the one kept: a table
   * with an __index (inheritance from a base strategy works) must not pass
   * the checks with one value and serve another. start and requeued stay
   * on the stack (tbl+1, tbl+2) until their refs are taken. */
  if (lua_getfield(L, tbl, "start") != LUA_TFUNCTION) {
    err = fail_at(st->path, "start", "start must be a function (got %s)",
                  luaL_typename(L, -1));
    goto out;
  }
  int t = lua_getfield(L, tbl, "requeued");
  if (t != LUA_TNIL && t != LUA_TFUNCTION) {
    err = fail_at(st->path, "requeued", "requeued must be a function (got %s)",
                  lua_typename(L, t));
    goto out;
  }
  st->requeue_timeout = DEFAULT_REQUEUE_TIMEOUT;
  t = lua_getfield(L, tbl, "requeue_timeout");
  if (t != LUA_TNIL) {
    lua_Number v = lua_tonumber(L, -1);
    if (t != LUA_TNUMBER || !(v > 0) || v > 1e9) {
      lua_pop(L, 1);
      err = fail_at(st->path, "requeue_timeout", "%s",
                    "requeue_timeout must be a number of seconds above 0, at "
                    "most 1e9");
      goto out;
    }
    st->requeue_timeout = v;
  }
  lua_pop(L, 1);
  t = lua_getfield(L, tbl, "pin");
  st->pin = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN) {
    err = fail_at(st->path, "pin", "pin must be true or false (got %s)",
                  lua_typename(L, t));
    goto out;
  }
  /* defaults: a key of the standard sets */
  const char *defaults = "requeue";
  t = lua_getfield(L, tbl, "defaults");
  if (t == LUA_TSTRING) defaults = lua_tostring(L, -1);
  else if (t != LUA_TNIL) {
    lua_pop(L, 1);
    err = fail_at(st->path, "defaults",
                  "defaults must be a string: requeue, legacy, resultof or "
                  "none (got %s)",
                  lua_typename(L, t));
    goto out;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, sets_ref);
  if (lua_getfield(L, -1, defaults) != LUA_TTABLE) {
    err = fail_at(st->path, "defaults",
                  "unknown defaults value '%s' (expected requeue, legacy, "
                  "resultof or none)",
                  defaults);
    goto out;
  }
  ixr__ro_shown(L, -1); /* the set is a read-only view: walk what it shows */
  /* handlers = copy of the standard set, then the strategy's own on */
  lua_newtable(L);
  int handlers = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, handlers - 1) != 0) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, handlers);
  }
  t = lua_getfield(L, tbl, "on");
  if (t == LUA_TTABLE) {
    ixr__ro_shown(L, -1); /* on = a standard set, or a module's table */
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING) {
        char k[64];
        if (lua_type(L, -2) == LUA_TNUMBER)
          snprintf(k, sizeof(k), "on[%s]", lua_tostring(L, -2) ? lua_tostring(L, -2) : "?");
        else
          snprintf(k, sizeof(k), "a %s key", luaL_typename(L, -2));
        err = fail_at(st->path, "on",
                      "on is keyed by event names, such as "
                      "[\"interaction.partystate.changed\"] (%s is not one)", k);
        goto out;
      }
      const char *k = lua_tostring(L, -2);
      if (!lua_isfunction(L, -1)) {
        err = fail_at(st->path, "on",
                      "on[\"%s\"] must be a function keyed by an event name", k);
        goto out;
      }
      /* on = { notcontrolled = ... }, or on = mm.requeue (keyed by the
       * short names): a handler for an event that never comes. */
      if (strcmp(k, "present") == 0 || strcmp(k, "notcontrolled") == 0 ||
          strcmp(k, "deleted") == 0) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "on[\"%s\"] handles events named \"%s\": did you mean "
                 "\"interaction.%s\"?", k, k, k);
        warn_at(st, "on", msg);
      } else if (strncmp(k, "clock.", 6) == 0 || strncmp(k, "ixr.", 4) == 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "on[\"%.60s\"] never runs: control events go to "
                 "the runtime, not to strategies", k);
        warn_at(st, "on", msg);
      }
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, handlers);
    }
  } else if (t != LUA_TNIL) {
    err = fail_at(st->path, "on", "on must be a table of handlers (got %s)",
                  lua_typename(L, t));
    goto out;
  }
  lua_pop(L, 1); /* on */
  st->handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, tbl + 2); /* start, requeued: as read above */
  if (lua_type(L, tbl + 2) == LUA_TFUNCTION)
    st->requeued_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else
    lua_pop(L, 1);
  st->start_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, tbl);
  st->table_ref = luaL_ref(L, LUA_REGISTRYINDEX);
out:
  lua_settop(L, tbl - 1);
  return err;
}

/* Warnings in line order (a table's keys come in hash order, which changes
 * from run to run): each is "PATH:LINE: ...". */
typedef struct warning_line {
  unsigned long line;
  char *text;
} warning_line;

static int by_line(const void *a, const void *b) {
  const warning_line *x = a, *y = b;
  return x->line != y->line ? (x->line < y->line ? -1 : 1) : strcmp(x->text, y->text);
}

static void sort_warnings(ixr__strategy *st) {
  if (st->warnings == NULL) return;
  size_t n = 0, len = strlen(st->warnings), pl = strlen(st->path) + 1;
  for (const char *p = st->warnings; *p; p++) n += *p == '\n';
  warning_line *lines = malloc(n * sizeof(*lines));
  char *sorted = malloc(len + 1);
  if (lines == NULL || sorted == NULL) {
    free(lines);
    free(sorted);
    return;
  }
  size_t i = 0;
  for (char *p = st->warnings; *p; p = strchr(p, '\n') + 1) {
    lines[i].text = p;
    lines[i++].line = strtoul(p + pl, NULL, 10);
  }
  for (i = 0; i < n; i++) *strchr(lines[i].text, '\n') = '\0';
  qsort(lines, n, sizeof(*lines), by_line);
  size_t off = 0;
  for (i = 0; i < n; i++) {
    size_t l = strlen(lines[i].text);
    memcpy(sorted + off, lines[i].text, l);
    sorted[off + l] = '\n';
    off += l + 1;
  }
  sorted[off] = '\0';
  free(lines);
  free(st->warnings);
  st->warnings = sorted;
}

/* adopt() as a protected call: reading the returned table's fields runs
 * its metamethods (a strict table's __index that raises, or loops), which
 * must fail the file, not the process. */
typedef struct adopt_args {
  ixr__strategy *st;
  int sets_ref;
  char *err;
} adopt_args;

static int adopt_call(lua_State *L) {
  adopt_args *a = lua_touserdata(L, lua_upvalueindex(1));
  a->err = adopt(ixr__runtime_of(L), a->st, a->sets_ref);
  return 0;
}

/* Loads one strategy file into a new record. Never fails for the file's
 * sake: a broken file gives a record with `error` set. */
static ixr__strategy *load_one(ixr_runtime *rt, const char *name,
                               int sets_ref) {
  lua_State *L = rt->L;
  ixr__strategy *st = calloc(1, sizeof(*st));
  if (st == NULL) return NULL;
  size_t plen = strlen(rt->handlers_dir) + strlen(name) + 6;
  st->name = strdup(name);
  st->path = malloc(plen);
  char *chunk = malloc(plen + 1);
  if (st->name == NULL || st->path == NULL || chunk == NULL) {
    free(st->name);
    free(st->path);
    free(st);
    free(chunk);
    return NULL;
  }
  snprintf(st->path, plen, "%s/%s.lua", rt->handlers_dir, name);
  snprintf(chunk, plen + 1, "@%s", st->path);
  st->node.key = st->name;
  st->node.len = strlen(st->name);
  st->node.hash = ixr__hash(st->name, st->node.len);
  st->table_ref = st->handlers_ref = st->start_ref = st->requeued_ref =
      LUA_NOREF;
  st->refs = 1;
  char *err = NULL;
  int top = lua_gettop(L);
  if (ixr__load_strategy_file(rt, name, st->path, chunk, &err, &st->source_hash) == 0) {
    ixr__push_sandbox(L);              /* fn, env */
    lua_pushvalue(L, -1);
    lua_setupvalue(L, -3, 1);           /* the chunk's _ENV */
    lua_insert(L, -2);                  /* env, fn */
    if (ixr__call_quiet(rt, 0, 1, &err) == 0) { /* env, result */
      adopt_args a = {st, sets_ref, NULL};
      lua_pushlightuserdata(L, &a);
      lua_pushcclosure(L, adopt_call, 1);
      lua_insert(L, -2);                /* env, adopt_call, result */
      if (ixr__call_quiet(rt, 1, 0, &err) == 0) {
        err = a.err;                    /* env */
      } else {
        free(a.err);
        size_t pl = strlen(st->path);
        if (strncmp(err, st->path, pl) != 0 || err[pl] != ':') {
          char *raw = err; /* a message without the file: give it one */
          err = fail_at(st->path, NULL, "reading the returned table: %s", raw);
          free(raw);
        }
      }
      ixr__seal_env(L, -1);
    }
  }
  lua_settop(L, top);
  free(chunk);
  st->error = err;
  if (err != NULL) {
    free(st->warnings); /* the error says it all */
    st->warnings = NULL;
  }
  sort_warnings(st);
  return st;
}

static void free_strategy(ixr_runtime *rt, ixr__strategy *st) {
  if (rt->L != NULL) {
    luaL_unref(rt->L, LUA_REGISTRYINDEX, st->table_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, st->handlers_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, st->start_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, st->requeued_ref);
  }
  free(st->name);
  free(st->path);
  free(st->error);
  free(st->warnings);
  free(st);
}

void ixr__strategy_release(ixr_runtime *rt, ixr__strategy *st) {
  if (--st->refs == 0) free_strategy(rt, st);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The strategy names in dir (its NAME.lua files), sorted. A .lua file whose name cannot be a
 * strategy's is not loaded: a warning in warnings, since nothing else
 * would tell (a file named "new route.lua", say). */
static int list_strategies(const char *dir, char ***names, size_t *count,
                           ixr__buf *warnings) {
  DIR *d = opendir(dir);
  if (d == NULL) return IXR_ENOENT;
  char **v = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0) continue;
    if (!ixr__strategy_name_ok(e->d_name, len - 4)) {
      if (e->d_name[0] == '.') continue; /* an editor's hidden file */
      char msg[600];
      int k = snprintf(msg, sizeof(msg),
                       "%s/%s: warning: not loaded: a strategy's name is letters, "
                       "digits, '_', '-' and '.' (128 at most)\n",
                       dir, e->d_name);
      if (k > (int)sizeof(msg) - 1) k = (int)sizeof(msg) - 1;
      ixr__buf_append(warnings, msg, (size_t)k);
      continue;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **nv = realloc(v, cap * sizeof(*nv));
      if (nv == NULL) {
        rc = IXR_ENOMEM;
        break;
      }
      v = nv;
    }
    v[n] = strndup(e->d_name, len - 4);
    if (v[n] == NULL) {
      rc = IXR_ENOMEM;
      break;
    }
    n++;
  }
  closedir(d);
  if (rc != 0) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
    return rc;
  }
  if (n > 0) qsort(v, n, sizeof(*v), cmp_names);
  *names = v;
  *count = n;
  return 0;
}

/* [-0, +0] loads require("ixr.multimedia").sets into *ref. */
static int load_sets(ixr_runtime *rt, int *ref, ixr__buf *errors) {
  lua_State *L = rt->L;
  ixr__push_sandbox(L);
  lua_getfield(L, -1, "require");
  lua_remove(L, -2);
  lua_pushliteral(L, "ixr.multimedia");
  char *err = NULL;
  if (ixr__call_quiet(rt, 1, 1, &err) != 0) {
    ixr__buf_append(errors, err, strlen(err));
    ixr__buf_append(errors, "\n", 1);
    free(err);
    return IXR_ESTRATEGY;
  }
  if (!lua_istable(L, -1) || lua_getfield(L, -1, "sets") != LUA_TTABLE) {
    lua_settop(L, lua_gettop(L) - (lua_istable(L, -2) ? 2 : 1));
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "%s/ixr/multimedia.lua: no table 'sets'\n",
                     rt->lua_dir);
    ixr__buf_append(errors, msg, (size_t)n);
    return IXR_ESTRATEGY;
  }
  *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  return 0;
}

void ixr__generation_discard(ixr_runtime *rt, ixr__generation *g) {
  ixr__map *m = &g->strategies;
  for (size_t i = 0; m->buckets && i <= m->mask; i++) {
    ixr__mapnode *node = m->buckets[i];
    while (node != NULL) {
      ixr__mapnode *next = node->next;
      ixr__strategy_release(rt, (ixr__strategy *)node);
      node = next;
    }
  }
  ixr__map_free(m);
  if (rt->L != NULL) luaL_unref(rt->L, LUA_REGISTRYINDEX, g->sets_ref);
  g->sets_ref = LUA_NOREF;
  ixr__buf_free(&g->errors);
  ixr__buf_free(&g->warnings);
}

/*
 * Loads the standard library and every strategy of the handlers dir into
 * g, with a fresh module cache (nothing of an older generation is reused).
 * Returns the number of problems, each a line in g->errors; a negative
 * error when the directory cannot be read or memory runs out.
 */
static int generation_build(ixr_runtime *rt, ixr__generation *g);

/* While it runs, input fed by host functions the strategies' files call
 * is refused (ixr_feed answers IXR_EBUSY): it would run under a half-built
 * generation. */
int ixr__generation_build(ixr_runtime *rt, ixr__generation *g) {
  rt->loading++;
  int rc = generation_build(rt, g);
  rt->loading--;
  /* What loads but looks like a mistake, in the log of every load. */
  char *end = g->warnings.len > 0 ? g->warnings.data + g->warnings.len : NULL;
  for (char *p = g->warnings.data; p != NULL && p < end;) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) nl = end;
    ixr__log(rt, IXR_LOG_WARN, "loading strategies: %.*s", (int)(nl - p), p);
    p = nl + 1;
  }
  return rc;
}

static int generation_build(ixr_runtime *rt, ixr__generation *g) {
  memset(g, 0, sizeof(*g));
  g->sets_ref = LUA_NOREF;
  int rc = ixr__map_init(&g->strategies, 16);
  if (rc != 0) return rc;
  ixr__reset_modules(rt);
  int module_problems = ixr__modules_capture(rt, &g->errors);
  if (load_sets(rt, &g->sets_ref, &g->errors) != 0) return 1 + module_problems;
  char **names = NULL;
  size_t n = 0;
  rc = list_strategies(rt->handlers_dir, &names, &n, &g->warnings);
  if (rc != 0) {
    char msg[600];
    int len = snprintf(msg, sizeof(msg), "%s: cannot read the directory\n",
                       rt->handlers_dir);
    ixr__buf_append(&g->errors, msg, (size_t)len);
    return rc;
  }
  int problems = module_problems;
  for (size_t i = 0; i < n; i++) {
    ixr__strategy *st = load_one(rt, names[i], g->sets_ref);
    free(names[i]);
    if (st == NULL) {
      problems++;
      ixr__buf_append(&g->errors, "out of memory\n", 14);
      continue;
    }
    g->files++;
    if (st->error != NULL) {
      problems++;
      ixr__buf_append(&g->errors, st->error, strlen(st->error));
      ixr__buf_append(&g->errors, "\n", 1);
    } else if (st->warnings != NULL) {
      ixr__buf_append(&g->warnings, st->warnings, strlen(st->warnings));
    }
    ixr__map_put(&g->strategies, &st->node);
  }
  free(names);
  return problems;
}

/* How many strategies differ between the generation in service and g:
 * added, removed, or with other source bytes. */
unsigned ixr__generation_changes(ixr_runtime *rt, const ixr__generation *g) {
  unsigned changed = 0;
  const ixr__map *m = &g->strategies;
  for (size_t i = 0; i <= m->mask; i++)
    for (ixr__mapnode *node = m->buckets[i]; node; node = node->next) {
      ixr__strategy *st = (ixr__strategy *)node;
      ixr__strategy *old = (ixr__strategy *)ixr__map_get(
          &rt->strategies, node->key, node->len, node->hash);
      if (old == NULL || old->source_hash != st->source_hash) changed++;
    }
  m = &rt->strategies;
  for (size_t i = 0; i <= m->mask; i++)
    for (ixr__mapnode *node = m->buckets[i]; node; node = node->next)
      if (ixr__map_get(&g->strategies, node->key, node->len, node->hash) == NULL)
        changed++;
  return changed;
}

/* Puts g in service: new sessions use it, and the old generation's
 * strategies live on only as long as sessions pinned to them. */
void ixr__generation_install(ixr_runtime *rt, ixr__generation *g) {
  ixr__generation old;
  memset(&old, 0, sizeof(old));
  old.strategies = rt->strategies;
  old.sets_ref = rt->sets_ref;
  rt->strategies = g->strategies;
  rt->sets_ref = g->sets_ref;
  rt->generation++;
  const ixr__map *m = &rt->strategies;
  for (size_t i = 0; i <= m->mask; i++)
    for (ixr__mapnode *node = m->buckets[i]; node; node = node->next)
      ((ixr__strategy *)node)->generation = rt->generation;
  ixr__buf_free(&g->errors);
  ixr__buf_free(&g->warnings);
  memset(g, 0, sizeof(*g));
  g->sets_ref = LUA_NOREF;
  if (old.strategies.buckets != NULL) ixr__generation_discard(rt, &old);
  else if (rt->L != NULL) luaL_unref(rt->L, LUA_REGISTRYINDEX, old.sets_ref);
}

/* The strategy a session should use for its next event: its own, or the
 * one of the same name in the generation in service (unless pinned). */
ixr__strategy *ixr__strategy_current(ixr_runtime *rt, ixr__session *s) {
  ixr__strategy *st = s->strategy;
  if (st->generation == rt->generation || st->pin) return st;
  ixr__strategy *now = ixr__strategy_find(rt, st->name, strlen(st->name));
  if (now == NULL || now->error != NULL) return st; /* removed: keep its own */
  now->refs++;
  s->strategy = now;
  ixr__strategy_release(rt, st);
  return now;
}

ixr__strategy *ixr__strategy_find(ixr_runtime *rt, const char *name,
                                  size_t len) {
  if (!ixr__strategy_name_ok(name, len)) return NULL;
  return (ixr__strategy *)ixr__map_get(&rt->strategies, name, len,
                                       ixr__hash(name, len));
}

void ixr__strategies_free(ixr_runtime *rt) {
  ixr__generation g;
  memset(&g, 0, sizeof(g));
  g.strategies = rt->strategies;
  g.sets_ref = rt->sets_ref;
  ixr__generation_discard(rt, &g);
  memset(&rt->strategies, 0, sizeof(rt->strategies));
  rt->sets_ref = LUA_NOREF;
}

/* ixr check: every problem of every strategy, one report line each. */
int ixr__strategies_report(ixr_runtime *rt, ixr_report_cb report, ixr_report_cb warn,
                           void *ud) {
  ixr__generation g;
  int rc = ixr__generation_build(rt, &g);
  if (rc < 0) {
    ixr__generation_discard(rt, &g);
    return rc;
  }
  ixr__buf *lists[2] = {&g.errors, &g.warnings};
  ixr_report_cb to[2] = {report, warn};
  for (int i = 0; i < 2; i++) {
    if (lists[i]->len == 0) continue; /* data may be NULL */
    char *p = lists[i]->data, *end = p + lists[i]->len;
    while (p < end) {
      char *nl = memchr(p, '\n', (size_t)(end - p));
      if (nl == NULL) nl = end;
      *nl = '\0';
      to[i](ud, p);
      p = nl + 1;
    }
  }
  ixr__generation_discard(rt, &g);
  return rc; /* problems only: warnings are not counted */
}
