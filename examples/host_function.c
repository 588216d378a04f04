/*
 * host_function.c: a host that gives strategies a C function.
 *
 * Strategies cannot reach the host's data by themselves (their sandbox has
 * no io, no os.execute, no package.loadlib). The host exposes what they
 * need as a module of C functions: here, require("host").lookup_customer(id)
 * reads the host's customer table. See host_handlers/default.lua for the
 * strategy that uses it.
 *
 *   cc -std=c11 host_function.c $(pkg-config --cflags --libs ixr lua5.4) -o host_function
 *   ./host_function host_handlers
 *
 * The function is registered from ixr_options.on_setup, which runs inside
 * ixr_new() before any strategy loads, so strategies can require the
 * module at load time.
 */
#include <stdio.h>
#include <string.h>

#include <ixr.h>
#include <lauxlib.h>
#include <lua.h>

/* The host's data: in a real service, a database or a cache. */
typedef struct customer {
  const char *id, *name, *tier;
} customer;

typedef struct customer_db {
  const customer *rows;
  size_t n;
  unsigned long lookups;
} customer_db;

/*
 * host.lookup_customer(id) -> { name = ..., tier = ... } or nil.
 * [-0, +1, m] It runs inside ixr's protected call, under the calling
 * strategy's instruction and memory limits: bad arguments raise a Lua error
 * (luaL_checkstring), which fails that strategy's call, not the host.
 */
static int lookup_customer(lua_State *L) {
  customer_db *db = lua_touserdata(L, lua_upvalueindex(1));
  const char *id = luaL_checkstring(L, 1);
  db->lookups++;
  for (size_t i = 0; i < db->n; i++) {
    if (strcmp(db->rows[i].id, id) != 0) continue;
    lua_createtable(L, 0, 2);
    lua_pushstring(L, db->rows[i].name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, db->rows[i].tier);
    lua_setfield(L, -2, "tier");
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

/* Runs inside ixr_new(), once the Lua state exists. */
static void setup(ixr_runtime *rt, void *ud) {
  int rc = ixr_register(rt, "host", "lookup_customer", lookup_customer, ud);
  if (rc != 0) fprintf(stderr, "host_function: ixr_register: %s\n", ixr_strerror(rc));
}

static void on_output(void *ud, const ixr_output *out) {
  (void)ud;
  if (out->type == IXR_OUT_ACTION || out->type == IXR_OUT_ERROR)
    printf("%s\n", out->json);
}

/* Feeds interaction.present for `iid`, with data.customerid when given. */
static int present(ixr_runtime *rt, const char *iid, const char *customerid) {
  ixr_field data[2];
  memset(data, 0, sizeof(data));
  data[0].key = "interactionid";
  data[0].type = IXR_V_STRING;
  data[0].str = iid;
  data[1].key = "customerid";
  data[1].type = IXR_V_STRING;
  data[1].str = customerid;
  return ixr_feed_event(rt, "interaction.present", data, customerid ? 2 : 1);
}

int main(int argc, char **argv) {
  static const customer rows[] = {
      {"C1", "Alice", "gold"},
      {"C2", "Bob", "silver"},
  };
  customer_db db = {rows, sizeof(rows) / sizeof(rows[0]), 0};

  ixr_options opt;
  ixr_options_init(&opt);
  opt.handlers_dir = argc > 1 ? argv[1] : "host_handlers";
  opt.on_output = on_output;
  opt.on_setup = setup;
  opt.setup_ud = &db; /* becomes the function's upvalue */
  ixr_runtime *rt;
  int rc = ixr_new(&rt, &opt);
  if (rc != 0) {
    fprintf(stderr, "host_function: %s\n", ixr_strerror(rc));
    return 1;
  }

  /* A gold customer, a silver one, an unknown one, and none at all: the
   * last makes lookup_customer(nil) raise, and that strategy call fails
   * with a handler_error line while the runtime carries on. */
  rc = present(rt, "I1", "C1");
  if (rc == 0) rc = present(rt, "I2", "C2");
  if (rc == 0) rc = present(rt, "I3", "C9");
  if (rc == 0) rc = present(rt, "I4", NULL);

  ixr_stats st;
  ixr_get_stats(rt, &st);
  printf("%lu lookups, %llu sessions live\n", db.lookups,
         (unsigned long long)st.sessions_active);
  ixr_close(rt);
  if (rc != 0) fprintf(stderr, "host_function: %s\n", ixr_strerror(rc));
  return rc == 0 ? 0 : 1;
}
