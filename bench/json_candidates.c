/* json_candidates.c - compare Debian JSON C libraries for ixr's NDJSON <-> Lua job.
 *
 * Build:
 *   cc -O2 -std=c11 -Wall -Wextra bench/json_candidates.c $(pkg-config --cflags --libs lua5.4 libcjson jansson yajl json-c) -o /tmp/json_candidates
 * Run:
 *   /tmp/json_candidates            benchmark (+ round-trip check, exit 1 on mismatch)
 *   /tmp/json_candidates --hostile  hostile-input behaviour report
 *
 * decode: one NDJSON line -> Lua table on the stack (null skipped; array nulls leave a hole).
 * encode: Lua table -> one JSON line (object keys in bytewise sorted order) via the
 *         library's own generator/printer, copied into a caller buffer.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <cjson/cJSON.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_gen.h>
/* json-c and jansson headers clash (json_object, json_type, json_object_get, json_object_iter*).
 * Rename json-c's typedef/tag names and the two functions we never call; the exported
 * symbols are versioned (JSONC_0.14 vs libjansson.so.4), so both libraries link fine. */
#define json_object jc_obj
#define json_type jc_type
#define json_object_iter jc_iter
#define json_object_get jc_unused_get
#define json_object_iter_next jc_unused_iter_next
#include <json-c/json.h>
#undef json_object
#undef json_type
#undef json_object_iter
#undef json_object_get
#undef json_object_iter_next
#include <jansson.h>

#define LINES 200000
#define REPS 7
#define ENC_MAXDEPTH 4096 /* our own cap in the Lua->JSON walk (cycle guard) */
#define YAJL_MAXDEPTH 1000 /* our own cap in the yajl callbacks (yajl has none) */

static char *outbuf; static size_t outcap = 1 << 22;
static char errmsg[256];
static size_t jansson_flags = 0;                  /* json_loadb flags */
static int jsonc_flags = 0, jsonc_depth = JSON_TOKENER_DEFAULT_DEPTH;
static json_tokener *jtok;
static yajl_gen ygen;

static int fail(const char *m) { snprintf(errmsg, sizeof errmsg, "%s", m); return -1; }
static int only_ws(const char *p, const char *e) {
  for (; p < e; p++) if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') return 0;
  return 1;
}
/* JSON doubles that are integral and fit in int64 become Lua integers (cJSON only) */
static void push_double_as_lua(lua_State *L, double d) {
  if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(lua_Integer)d)
    lua_pushinteger(L, (lua_Integer)d);
  else lua_pushnumber(L, d);
}

/* ---------- shared Lua-table classification with sorted keys ---------- */
typedef struct { const char *s; size_t n; } jkey;
static int jkey_cmp(const void *a, const void *b) {
  const jkey *x = a, *y = b; size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}
typedef struct { jkey local[32]; jkey *k; size_t n; int is_array; } tinfo;
/* table at absolute idx: array if keys are exactly 1..#t (and #t>0), else object with string keys */
static int classify(lua_State *L, int idx, tinfo *ti) {
  size_t cap = 32, cnt = 0, len = lua_rawlen(L, idx); int strkeys = 1;
  ti->k = ti->local; ti->n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1); cnt++;
    if (lua_type(L, -1) != LUA_TSTRING) { strkeys = 0; continue; }
    if (ti->n == cap) {
      jkey *nk = malloc(sizeof(jkey) * cap * 2);
      if (!nk) { lua_pop(L, 1); return fail("oom"); }
      memcpy(nk, ti->k, sizeof(jkey) * cap);
      if (ti->k != ti->local) free(ti->k);
      ti->k = nk; cap *= 2;
    }
    ti->k[ti->n].s = lua_tolstring(L, -1, &ti->k[ti->n].n); ti->n++;
  }
  if (len > 0 && cnt == len) { ti->is_array = 1; ti->n = len; return 0; }
  ti->is_array = 0;
  if (!strkeys) return fail("table has non-string keys and is not a sequence");
  qsort(ti->k, ti->n, sizeof(jkey), jkey_cmp);
  return 0;
}
static void tinfo_free(tinfo *ti) { if (ti->k != ti->local) free(ti->k); }
/* push value of element i (array index or sorted key) */
static void push_elem(lua_State *L, int idx, tinfo *ti, size_t i) {
  if (ti->is_array) lua_rawgeti(L, idx, (lua_Integer)i + 1);
  else { lua_pushlstring(L, ti->k[i].s, ti->k[i].n); lua_rawget(L, idx); }
}
static int copy_out(const char *s, size_t n) {
  if (n + 1 > outcap) return fail("output too large");
  memcpy(outbuf, s, n); outbuf[n] = 0; return (int)n;
}

/* ================================ cJSON ================================ */
static int cj_push(lua_State *L, const cJSON *j) { /* 0 pushed, 1 skipped (null), -1 error */
  if (!lua_checkstack(L, 4)) return fail("lua stack");
  switch (j->type & 0xFF) {
  case cJSON_False: lua_pushboolean(L, 0); return 0;
  case cJSON_True: lua_pushboolean(L, 1); return 0;
  case cJSON_NULL: return 1;
  case cJSON_Number: push_double_as_lua(L, j->valuedouble); return 0;
  case cJSON_String: lua_pushstring(L, j->valuestring); return 0;
  case cJSON_Array: {
    lua_Integer i = 0; const cJSON *c;
    lua_createtable(L, cJSON_GetArraySize(j), 0);
    for (c = j->child; c; c = c->next) {
      int r = cj_push(L, c); i++;
      if (r < 0) return -1;
      if (r == 0) lua_rawseti(L, -2, i);
    }
    return 0;
  }
  case cJSON_Object: {
    const cJSON *c;
    lua_createtable(L, 0, cJSON_GetArraySize(j));
    for (c = j->child; c; c = c->next) {
      int r; lua_pushstring(L, c->string);
      if ((r = cj_push(L, c)) < 0) return -1;
      if (r == 0) lua_rawset(L, -3); else lua_pop(L, 1);
    }
    return 0;
  }
  }
  return fail("cjson: bad type");
}
static int cj_decode(lua_State *L, const char *buf, size_t len) {
  const char *end = NULL; int top = lua_gettop(L), r;
  cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
  if (!j) return fail("cjson: parse error");
  if (!only_ws(end, buf + len)) { cJSON_Delete(j); return fail("cjson: trailing garbage"); }
  r = cj_push(L, j); cJSON_Delete(j);
  if (r != 0) { lua_settop(L, top); return r < 0 ? -1 : fail("null document"); }
  return 0;
}
static cJSON *cj_from_lua(lua_State *L, int idx, int depth) {
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
  case LUA_TNUMBER: return cJSON_CreateNumber(lua_isinteger(L, idx) ? (double)lua_tointeger(L, idx) : lua_tonumber(L, idx));
  case LUA_TSTRING: return cJSON_CreateString(lua_tostring(L, idx));
  case LUA_TTABLE: {
    tinfo ti; cJSON *o; size_t i;
    if (depth > ENC_MAXDEPTH || !lua_checkstack(L, 4) || classify(L, idx, &ti)) return NULL;
    o = ti.is_array ? cJSON_CreateArray() : cJSON_CreateObject();
    for (i = 0; o && i < ti.n; i++) {
      cJSON *v; push_elem(L, idx, &ti, i);
      v = cj_from_lua(L, lua_gettop(L), depth + 1); lua_pop(L, 1);
      if (!v) { cJSON_Delete(o); o = NULL; break; }
      if (ti.is_array) cJSON_AddItemToArray(o, v); else cJSON_AddItemToObject(o, ti.k[i].s, v);
    }
    tinfo_free(&ti); return o;
  }
  }
  fail("cjson: unsupported lua type"); return NULL;
}
static int cj_encode(lua_State *L, int idx) {
  cJSON *j = cj_from_lua(L, lua_absindex(L, idx), 0); int ok;
  if (!j) return fail("cjson: encode failed");
  ok = cJSON_PrintPreallocated(j, outbuf, (int)outcap, 0);
  cJSON_Delete(j);
  return ok ? (int)strlen(outbuf) : fail("cjson: print failed");
}

/* ================================ jansson ================================ */
static int ja_push(lua_State *L, json_t *j) {
  if (!lua_checkstack(L, 4)) return fail("lua stack");
  switch (json_typeof(j)) {
  case JSON_FALSE: lua_pushboolean(L, 0); return 0;
  case JSON_TRUE: lua_pushboolean(L, 1); return 0;
  case JSON_NULL: return 1;
  case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(j)); return 0;
  case JSON_REAL: lua_pushnumber(L, json_real_value(j)); return 0;
  case JSON_STRING: lua_pushlstring(L, json_string_value(j), json_string_length(j)); return 0;
  case JSON_ARRAY: {
    size_t i, n = json_array_size(j);
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
      int r = ja_push(L, json_array_get(j, i));
      if (r < 0) return -1;
      if (r == 0) lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 0;
  }
  case JSON_OBJECT: {
    const char *k; size_t kl; json_t *v;
    lua_createtable(L, 0, (int)json_object_size(j));
    json_object_keylen_foreach(j, k, kl, v) {
      int r; lua_pushlstring(L, k, kl);
      if ((r = ja_push(L, v)) < 0) return -1;
      if (r == 0) lua_rawset(L, -3); else lua_pop(L, 1);
    }
    return 0;
  }
  }
  return fail("jansson: bad type");
}
static int ja_decode(lua_State *L, const char *buf, size_t len) {
  json_error_t e; int top = lua_gettop(L), r;
  json_t *j = json_loadb(buf, len, jansson_flags, &e);
  if (!j) { snprintf(errmsg, sizeof errmsg, "jansson: %s", e.text); return -1; }
  r = ja_push(L, j); json_decref(j);
  if (r != 0) { lua_settop(L, top); return r < 0 ? -1 : fail("null document"); }
  return 0;
}
static json_t *ja_from_lua(lua_State *L, int idx, int depth) {
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
  case LUA_TNUMBER: return lua_isinteger(L, idx) ? json_integer(lua_tointeger(L, idx)) : json_real(lua_tonumber(L, idx));
  case LUA_TSTRING: { size_t n; const char *s = lua_tolstring(L, idx, &n); return json_stringn(s, n); }
  case LUA_TTABLE: {
    tinfo ti; json_t *o; size_t i;
    if (depth > ENC_MAXDEPTH || !lua_checkstack(L, 4) || classify(L, idx, &ti)) return NULL;
    o = ti.is_array ? json_array() : json_object();
    for (i = 0; o && i < ti.n; i++) {
      json_t *v; int rc; push_elem(L, idx, &ti, i);
      v = ja_from_lua(L, lua_gettop(L), depth + 1); lua_pop(L, 1);
      rc = !v ? -1 : ti.is_array ? json_array_append_new(o, v) : json_object_setn_new(o, ti.k[i].s, ti.k[i].n, v);
      if (rc) { json_decref(o); o = NULL; }
    }
    tinfo_free(&ti); return o;
  }
  }
  return NULL;
}
static int ja_encode(lua_State *L, int idx) {
  json_t *j = ja_from_lua(L, lua_absindex(L, idx), 0); size_t n;
  if (!j) return fail("jansson: encode failed (invalid UTF-8, inf/nan or bad type?)");
  n = json_dumpb(j, outbuf, outcap - 1, JSON_COMPACT);
  json_decref(j);
  if (n == 0 || n >= outcap) return fail("jansson: dump failed");
  outbuf[n] = 0; return (int)n;
}

/* ================================ json-c ================================ */
static int jc_push(lua_State *L, struct jc_obj *j) {
  if (!lua_checkstack(L, 4)) return fail("lua stack");
  switch (json_object_get_type(j)) {
  case json_type_null: return 1;
  case json_type_boolean: lua_pushboolean(L, json_object_get_boolean(j)); return 0;
  case json_type_int: lua_pushinteger(L, (lua_Integer)json_object_get_int64(j)); return 0;
  case json_type_double: lua_pushnumber(L, json_object_get_double(j)); return 0;
  case json_type_string: lua_pushlstring(L, json_object_get_string(j), (size_t)json_object_get_string_len(j)); return 0;
  case json_type_array: {
    size_t i, n = json_object_array_length(j);
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
      int r = jc_push(L, json_object_array_get_idx(j, i));
      if (r < 0) return -1;
      if (r == 0) lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 0;
  }
  case json_type_object: {
    struct lh_entry *e;
    lua_createtable(L, 0, json_object_object_length(j));
    for (e = lh_table_head(json_object_get_object(j)); e; e = lh_entry_next(e)) {
      int r; lua_pushstring(L, (const char *)lh_entry_k(e));
      if ((r = jc_push(L, (struct jc_obj *)lh_entry_v(e))) < 0) return -1;
      if (r == 0) lua_rawset(L, -3); else lua_pop(L, 1);
    }
    return 0;
  }
  }
  return fail("json-c: bad type");
}
static int jc_decode(lua_State *L, const char *buf, size_t len) {
  struct jc_obj *j; int top = lua_gettop(L), r;
  json_tokener_reset(jtok);
  j = json_tokener_parse_ex(jtok, buf, (int)len);
  if (!j) {
    enum json_tokener_error e = json_tokener_get_error(jtok);
    snprintf(errmsg, sizeof errmsg, "json-c: %s", e == json_tokener_continue ? "incomplete" : json_tokener_error_desc(e));
    return -1;
  }
  if (!only_ws(buf + json_tokener_get_parse_end(jtok), buf + len)) { json_object_put(j); return fail("json-c: trailing garbage"); }
  r = jc_push(L, j); json_object_put(j);
  if (r != 0) { lua_settop(L, top); return r < 0 ? -1 : fail("null document"); }
  return 0;
}
static struct jc_obj *jc_from_lua(lua_State *L, int idx, int depth) {
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN: return json_object_new_boolean(lua_toboolean(L, idx));
  case LUA_TNUMBER: return lua_isinteger(L, idx) ? json_object_new_int64(lua_tointeger(L, idx)) : json_object_new_double(lua_tonumber(L, idx));
  case LUA_TSTRING: { size_t n; const char *s = lua_tolstring(L, idx, &n); return json_object_new_string_len(s, (int)n); }
  case LUA_TTABLE: {
    tinfo ti; struct jc_obj *o; size_t i;
    if (depth > ENC_MAXDEPTH || !lua_checkstack(L, 4) || classify(L, idx, &ti)) return NULL;
    o = ti.is_array ? json_object_new_array_ext((int)ti.n) : json_object_new_object();
    for (i = 0; o && i < ti.n; i++) {
      struct jc_obj *v; int rc; push_elem(L, idx, &ti, i);
      v = jc_from_lua(L, lua_gettop(L), depth + 1); lua_pop(L, 1);
      rc = !v ? -1 : ti.is_array ? json_object_array_add(o, v) : json_object_object_add(o, ti.k[i].s, v);
      if (rc) { json_object_put(v); json_object_put(o); o = NULL; }
    }
    tinfo_free(&ti); return o;
  }
  }
  return NULL;
}
static int jc_encode(lua_State *L, int idx) {
  struct jc_obj *j = jc_from_lua(L, lua_absindex(L, idx), 0); size_t n; int r;
  const char *s;
  if (!j) return fail("json-c: encode failed");
  s = json_object_to_json_string_length(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
  r = s ? copy_out(s, n) : fail("json-c: print failed");
  json_object_put(j); return r;
}

/* ================================ yajl ================================ */
typedef struct { lua_State *L; int depth; lua_Integer cnt[YAJL_MAXDEPTH + 1]; char arr[YAJL_MAXDEPTH + 1]; } yctx;
static int y_add(yctx *c) { /* value on top of stack -> store into parent container */
  if (c->depth == 0) return 1;
  if (c->arr[c->depth]) lua_rawseti(c->L, -2, ++c->cnt[c->depth]);
  else lua_rawset(c->L, -3);
  return 1;
}
static int y_null(void *ctx) {
  yctx *c = ctx;
  if (c->depth == 0) return fail("null document"), 0;
  if (c->arr[c->depth]) c->cnt[c->depth]++; else lua_pop(c->L, 1);
  return 1;
}
static int y_bool(void *ctx, int b) { yctx *c = ctx; lua_pushboolean(c->L, b); return y_add(c); }
static int y_number(void *ctx, const char *s, size_t n) {
  yctx *c = ctx; char tmp[64];
  if (n < sizeof tmp) { memcpy(tmp, s, n); tmp[n] = 0; if (!lua_stringtonumber(c->L, tmp)) return fail("yajl: bad number"), 0; }
  else { /* rare: long number text */
    lua_pushlstring(c->L, s, n);
    if (!lua_stringtonumber(c->L, lua_tostring(c->L, -1))) return fail("yajl: number not convertible by Lua"), 0;
    lua_remove(c->L, -2);
  }
  return y_add(c);
}
static int y_string(void *ctx, const unsigned char *s, size_t n) { yctx *c = ctx; lua_pushlstring(c->L, (const char *)s, n); return y_add(c); }
static int y_key(void *ctx, const unsigned char *s, size_t n) { yctx *c = ctx; lua_pushlstring(c->L, (const char *)s, n); return 1; }
static int y_open(yctx *c, int arr) {
  if (c->depth >= YAJL_MAXDEPTH || !lua_checkstack(c->L, 4)) return fail("yajl: nesting too deep"), 0;
  lua_createtable(c->L, 0, 0);
  c->depth++; c->arr[c->depth] = (char)arr; c->cnt[c->depth] = 0;
  return 1;
}
static int y_start_map(void *ctx) { return y_open(ctx, 0); }
static int y_start_array(void *ctx) { return y_open(ctx, 1); }
static int y_close(void *ctx) { yctx *c = ctx; c->depth--; return y_add(c); }
static const yajl_callbacks ycb = { y_null, y_bool, NULL, NULL, y_number, y_string,
                                    y_start_map, y_key, y_close, y_start_array, y_close };
static int yj_decode(lua_State *L, const char *buf, size_t len) {
  yctx c; int top = lua_gettop(L); yajl_status st; yajl_handle h;
  c.L = L; c.depth = 0; errmsg[0] = 0;
  h = yajl_alloc(&ycb, NULL, &c);
  st = yajl_parse(h, (const unsigned char *)buf, len);
  if (st == yajl_status_ok) st = yajl_complete_parse(h);
  if (st != yajl_status_ok) {
    if (st == yajl_status_error) {
      unsigned char *e = yajl_get_error(h, 0, (const unsigned char *)buf, len);
      snprintf(errmsg, sizeof errmsg, "yajl: %s", (char *)e); yajl_free_error(h, e);
    }
    yajl_free(h); lua_settop(L, top); return -1;
  }
  yajl_free(h);
  if (lua_gettop(L) != top + 1) { lua_settop(L, top); return fail("yajl: no value"); }
  return 0;
}
static int yj_gen(lua_State *L, int idx, int depth) {
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN: return yajl_gen_bool(ygen, lua_toboolean(L, idx));
  case LUA_TNUMBER: return lua_isinteger(L, idx) ? yajl_gen_integer(ygen, lua_tointeger(L, idx)) : yajl_gen_double(ygen, lua_tonumber(L, idx));
  case LUA_TSTRING: { size_t n; const char *s = lua_tolstring(L, idx, &n); return yajl_gen_string(ygen, (const unsigned char *)s, n); }
  case LUA_TTABLE: {
    tinfo ti; size_t i; int st;
    if (depth > ENC_MAXDEPTH || !lua_checkstack(L, 4) || classify(L, idx, &ti)) return -1;
    st = ti.is_array ? yajl_gen_array_open(ygen) : yajl_gen_map_open(ygen);
    for (i = 0; st == yajl_gen_status_ok && i < ti.n; i++) {
      if (!ti.is_array) st = yajl_gen_string(ygen, (const unsigned char *)ti.k[i].s, ti.k[i].n);
      if (st != yajl_gen_status_ok) break;
      push_elem(L, idx, &ti, i);
      st = yj_gen(L, lua_gettop(L), depth + 1); lua_pop(L, 1);
    }
    if (st == yajl_gen_status_ok) st = ti.is_array ? yajl_gen_array_close(ygen) : yajl_gen_map_close(ygen);
    tinfo_free(&ti); return st;
  }
  }
  return fail("yajl: unsupported lua type");
}
static int yj_encode(lua_State *L, int idx) {
  const unsigned char *b; size_t n;
  yajl_gen_clear(ygen); yajl_gen_reset(ygen, NULL);
  int st = yj_gen(L, lua_absindex(L, idx), 0);
  if (st < 0) return -1;
  if (st != yajl_gen_status_ok) {
    snprintf(errmsg, sizeof errmsg, "yajl: encode failed (gen status %d%s)", st,
             st == yajl_max_depth_exceeded ? " max_depth_exceeded" : st == yajl_gen_invalid_number ? " invalid_number" : "");
    return -1;
  }
  yajl_gen_get_buf(ygen, &b, &n);
  return copy_out((const char *)b, n);
}

/* ================================ driver ================================ */
typedef struct { const char *name; int (*decode)(lua_State *, const char *, size_t); int (*encode)(lua_State *, int); } lib_t;
static const lib_t libs[] = { { "cjson", cj_decode, cj_encode }, { "jansson", ja_decode, ja_encode },
                              { "yajl", yj_decode, yj_encode }, { "json-c", jc_decode, jc_encode } };
#define NLIBS (int)(sizeof libs / sizeof libs[0])

static const char *samples[] = {
  "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"I000123\",\"media\":\"chat\",\"queue\":\"chat_in\","
  "\"session\":\"s1\",\"ts\":1718000000123,\"userdata\":{\"CustomerId\":\"C42\",\"IsOnline\":\"true\",\"Language\":\"en\","
  "\"Segment\":\"gold\",\"Tags\":[\"vip\",\"returning\",\"fr-speaker\"],\"Score\":12.5,\"Name\":\"Ana \\\"Lu\\\" M\xc3\xbcller\","
  "\"Email\":\"ana.mueller@example.com\",\"Phone\":\"+33 6 12 34 56 78\",\"Channel\":\"web\","
  "\"Subject\":\"Order #88231 not delivered\\nsecond line\",\"OrderId\":\"88231\",\"Country\":\"FR\",\"Attempts\":2,"
  "\"Vip\":true,\"LastAgent\":\"Agent7\",\"Url\":\"https://shop.example.com/orders/88231?src=mail\",\"Ratio\":-0.25}}}",
  "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"I000124\",\"media\":\"voice\",\"queue\":\"voice_in\","
  "\"resultof\":{\"action\":\"route\",\"requestid\":\"r-77\",\"session\":\"s2\"},\"reason\":\"timeout\",\"ts\":1718000000456}}",
  "{\"name\":\"route.done\",\"data\":{\"interactionid\":\"I000125\",\"requestid\":\"r-78\",\"session\":\"s1\","
  "\"target\":\"Agent3\",\"elapsed_ms\":35,\"ok\":true}}",
  "{\"name\":\"error.interaction.route\",\"data\":{\"interactionid\":\"I000126\",\"requestid\":\"r-79\",\"session\":\"s3\","
  "\"code\":404,\"description\":\"Target \\u00e9quipe/Agent9 not found: no such user (attempt 2 of 3)\",\"retryable\":false}}",
  "{\"name\":\"ping\",\"data\":{\"seq\":42}}",
  "{\"type\":\"action\",\"action\":\"route\",\"session\":\"s1\",\"interactionid\":\"I1\",\"requestid\":\"r1\","
  "\"args\":{\"target\":\"Agent1\",\"priority\":3}}",
};
#define NSAMP (int)(sizeof samples / sizeof samples[0])

static double now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static int dcmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static char *roundtrip(lua_State *L, const lib_t *lb, const char *s, size_t n) {
  int r;
  if (lb->decode(L, s, n)) return NULL;
  r = lb->encode(L, -1); lua_pop(L, 1);
  return r < 0 ? NULL : strdup(outbuf);
}

static int check(lua_State *L) {
  int s, l, bad = 0;
  for (s = 0; s < NSAMP; s++) {
    char *ref = roundtrip(L, &libs[0], samples[s], strlen(samples[s]));
    if (!ref) { printf("json_candidates ERROR lib=%s sample=%d %s\n", libs[0].name, s, errmsg); return 1; }
    for (l = 0; l < NLIBS; l++) {
      char *o = roundtrip(L, &libs[l], samples[s], strlen(samples[s]));
      char *o2 = o ? roundtrip(L, &libs[l], o, strlen(o)) : NULL; /* canonical form must be a fixpoint */
      if (!o || !o2 || strcmp(o, ref) || strcmp(o2, ref)) {
        printf("json_candidates MISMATCH sample=%d lib=%s err=%s\n  %s: %s\n  %s: %s\n", s, libs[l].name,
               o && o2 ? "-" : errmsg, libs[0].name, ref, libs[l].name, o ? o : "(null)");
        bad = 1;
      }
      free(o); free(o2);
    }
    if (s == 0) printf("json_candidates canonical sample0 %s\n", ref);
    free(ref);
  }
  return bad;
}

static void bench(lua_State *L) {
  double dec[NLIBS][REPS], enc[NLIBS][REPS]; size_t lens[NSAMP], total = 0; int s, l, r, i;
  for (s = 0; s < NSAMP; s++) { lens[s] = strlen(samples[s]); total += lens[s]; }
  for (s = 0; s < NSAMP; s++) libs[0].decode(L, samples[s], lens[s]); /* reference tables at 1..NSAMP */
  printf("json_candidates samples=%d avg_bytes=%zu lines=%d reps=%d\n", NSAMP, total / NSAMP, LINES, REPS);
  for (r = 0; r < REPS; r++)          /* interleave libs inside each repetition to spread drift */
    for (l = 0; l < NLIBS; l++) {
      double t0; size_t sink = 0;
      lua_gc(L, LUA_GCCOLLECT);
      t0 = now_ns();
      for (i = 0; i < LINES; i++) {
        s = i % NSAMP;
        if (libs[l].decode(L, samples[s], lens[s])) { printf("decode error %s\n", errmsg); exit(1); }
        lua_pop(L, 1);
      }
      dec[l][r] = (now_ns() - t0) / LINES;
      lua_gc(L, LUA_GCCOLLECT);
      t0 = now_ns();
      for (i = 0; i < LINES; i++) {
        int n = libs[l].encode(L, 1 + i % NSAMP);
        if (n < 0) { printf("encode error %s\n", errmsg); exit(1); }
        sink += (size_t)n + (unsigned char)outbuf[0];
      }
      enc[l][r] = (now_ns() - t0) / LINES;
      if (sink == 0) printf("?");
    }
  for (l = 0; l < NLIBS; l++) {
    double d, e;
    qsort(dec[l], REPS, sizeof(double), dcmp); qsort(enc[l], REPS, sizeof(double), dcmp);
    d = dec[l][REPS / 2]; e = enc[l][REPS / 2];
    printf("json_candidates lib=%s decode_ns=%.0f encode_ns=%.0f decode_lps=%.0f encode_lps=%.0f"
           " roundtrip_ns=%.0f decode_range_ns=%.0f-%.0f encode_range_ns=%.0f-%.0f\n",
           libs[l].name, d, e, 1e9 / d, 1e9 / e, d + e, dec[l][0], dec[l][REPS - 1], enc[l][0], enc[l][REPS - 1]);
  }
  lua_settop(L, 0);
}

/* ---------- hostile input report ---------- */
static char *nest(int depth) {
  char *p = malloc((size_t)depth * 2 + 16); int i, n = 0;
  n += sprintf(p, "{\"a\":");
  for (i = 0; i < depth - 1; i++) p[n++] = '[';
  for (i = 0; i < depth - 1; i++) p[n++] = ']';
  strcpy(p + n, "}"); return p;
}
static void hostile_one(lua_State *L, const char *label, const char *s, size_t n) {
  int l;
  printf("case %s\n", label);
  for (l = 0; l < NLIBS; l++) {
    char *o = roundtrip(L, &libs[l], s, n);
    if (o) printf("  %-8s ok  %.100s%s\n", libs[l].name, o, strlen(o) > 100 ? "..." : "");
    else printf("  %-8s ERR %s\n", libs[l].name, errmsg);
    free(o);
  }
  { /* yajl with no callbacks: the library's own limits */
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    yajl_status st = yajl_parse(h, (const unsigned char *)s, n);
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    printf("  %-8s %s\n", "yajl-raw", st == yajl_status_ok ? "ok (parser alone)" : "ERR (parser alone)");
    yajl_free(h);
  }
}
static void hostile(lua_State *L) {
  static const struct { const char *label, *s; size_t n; } C[] = {
#define K(lbl, str) { lbl, str, sizeof(str) - 1 }
    K("invalid-utf8 \\xff", "{\"a\":\"x\xffy\"}"),
    K("overlong-utf8 \\xc0\\xaf", "{\"a\":\"\xc0\xaf\"}"),
    K("utf8-surrogate \\xed\\xa0\\x80", "{\"a\":\"\xed\xa0\x80\"}"),
    K("lone-surrogate escape \\ud800", "{\"a\":\"\\ud800\"}"),
    K("embedded \\u0000 in value", "{\"a\":\"x\\u0000y\"}"),
    K("embedded \\u0000 in key", "{\"k\\u0000z\":1}"),
    K("raw NUL byte in string", "{\"a\":\"x\0y\"}"),
    K("duplicate keys", "{\"a\":1,\"a\":2}"),
    K("int64 max", "{\"a\":9223372036854775807}"),
    K("int64 max+1", "{\"a\":9223372036854775808}"),
    K("uint64 max+1", "{\"a\":18446744073709551616}"),
    K("2^53+1", "{\"a\":9007199254740993}"),
    K("1e400", "{\"a\":1e400}"),
    K("1e-400", "{\"a\":1e-400}"),
    K("0.1 and 3.0", "{\"a\":0.1,\"b\":3.0}"),
    K("trailing garbage", "{\"a\":1} x"),
    K("two values on a line", "{\"a\":1}{\"b\":2}"),
    K("truncated", "{\"a\":[1,2"),
  };
  static const int depths[] = { 32, 33, 127, 128, 1000, 1001, 2048, 2049, 100000 };
  size_t i; char lbl[64];
  for (i = 0; i < sizeof C / sizeof C[0]; i++) hostile_one(L, C[i].label, C[i].s, C[i].n);
  { /* 310-digit integer: beyond int64, uint64 and DBL_MAX */
    char big[400]; memcpy(big, "{\"a\":", 5); memset(big + 5, '9', 310); strcpy(big + 315, "}");
    hostile_one(L, "310-digit integer", big, strlen(big));
  }
  for (i = 0; i < sizeof depths / sizeof depths[0]; i++) {
    char *p = nest(depths[i]);
    snprintf(lbl, sizeof lbl, "nesting depth %d", depths[i]);
    hostile_one(L, lbl, p, strlen(p)); free(p);
  }
  { /* encode side: Lua strings with invalid UTF-8 / NUL, and inf */
    static const char *code[] = { "return {a='x\\255y'}", "return {a='x\\0y'}", "return {a=1/0}", "return {a=0/0}" };
    for (i = 0; i < sizeof code / sizeof code[0]; i++) {
      int l;
      printf("case encode %s\n", code[i]);
      for (l = 0; l < NLIBS; l++) {
        int n;
        if (luaL_dostring(L, code[i])) return;
        n = libs[l].encode(L, -1); lua_pop(L, 1);
        printf("  %-8s %s %s\n", libs[l].name, n < 0 ? "ERR" : "ok ", n < 0 ? errmsg : outbuf);
      }
    }
  }
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  outbuf = malloc(outcap);
  jtok = json_tokener_new_ex(jsonc_depth); json_tokener_set_flags(jtok, jsonc_flags);
  ygen = yajl_gen_alloc(NULL);
  luaL_openlibs(L);
  if (argc > 1 && !strcmp(argv[1], "--hostile")) {
    printf("=== defaults: jansson flags=0, json-c depth=32 flags=0 ===\n");
    hostile(L);
    printf("=== hardened: jansson JSON_ALLOW_NUL|JSON_REJECT_DUPLICATES, json-c depth=1000 VALIDATE_UTF8 ===\n");
    jansson_flags = JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES;
    json_tokener_free(jtok); jtok = json_tokener_new_ex(1000); json_tokener_set_flags(jtok, JSON_TOKENER_VALIDATE_UTF8);
    hostile(L);
  } else {
    if (check(L)) return 1;
    printf("json_candidates roundtrip=ok libs=%d\n", NLIBS);
    bench(L);
  }
  json_tokener_free(jtok); yajl_gen_free(ygen); lua_close(L); free(outbuf);
  return 0;
}
