/*
 * gc.c: ixr paces the Lua collector itself.
 *
 * Left to itself, Lua 5.4's incremental collector waits until the heap has
 * doubled and then runs the whole cycle in a rush: with the default step
 * multiplier it does several units of work per byte allocated, so the cycle
 * over a 20 MB heap of live sessions is over within the next few dozen
 * events, each of which pays one to five milliseconds of marking or
 * sweeping. Measured with an instrumented liblua at 10,000 events/s: a
 * cycle every half second, 10 to 20 ms of back-to-back steps, and every
 * event that arrives meanwhile waits for them (p99 6 to 12 ms). Smaller
 * steps do not help: the work per byte allocated stays the same, so the
 * burst does too.
 *
 * So ixr stops the automatic collector and drives it in basic steps
 * (lua_gc LUA_GCSTEP with 0: a fixed amount of work, tens of
 * microseconds, see STEP_MUL), at moments of its choosing:
 *
 *  - After each unit of work (an event, a line, a timer): the work pays
 *    for the bytes it allocated, at a rate that spreads one whole cycle
 *    over allocating SPREAD times the heap the last cycle left (the steps
 *    a cycle takes are learnt from the previous one). At most PAY_MAX
 *    steps at a time; the rest carries over.
 *  - When the loop has nothing else to do (a uv_idle handle, stream.c):
 *    steps ahead of the debt, IDLE_SLICE_NS at a time, up to a quarter of
 *    a cycle ahead. Under moderate load much of the collection happens
 *    here.
 *  - Inside a long call (the budget hook, every 1,000 instructions), once
 *    the call has allocated HOOK_BYTES since the last step: a script that
 *    churns garbage in a loop is collected as it goes, as before.
 *  - Falling behind (the heap over BEHIND times the live heap): everything
 *    owed, at once, as Lua itself would have done.
 *
 * A failed allocation still makes Lua run an emergency full collection
 * (that does not depend on the collector running), and the memory cap's
 * forced collections (luahost.c) are unchanged.
 */
#include <uv.h>

#include "internal.h"

/* A basic step is (2^STEP_SIZE_LOG2 / 16) * STEP_MUL units of work: about
 * 50 us of marking or 100 us of sweeping (~3,200 objects) here. */
#define STEP_SIZE_LOG2 10
#define STEP_MUL 50
/* A cycle over allocating SPREAD times the heap left by the last one. The
 * heap then peaks near 2.8x the live data (1.0: 4x, 0.5: 2x, as Lua's
 * default); measured on the benchmark traffic: 0.75 costs the same
 * instructions as Lua's own pacing, 0.5 costs 2.6% more, 1.0 doubles the
 * peak RSS. */
#define SPREAD 0.75
#define PAY_MAX 2       /* steps one unit of work pays at most */
#define BEHIND 3.0      /* heap / live beyond which all debt is paid at once */
#define HOOK_BYTES (256 * 1024)
#define IDLE_SLICE_NS 200000ull
#define MIN_LIVE (256 * 1024) /* a floor for the live estimate */

/* With the collector stopped Lua still calls luaC_step at every allocation
 * once its debt is positive (a call that does nothing). A large credit
 * keeps the debt negative: LUA_GCSTEP with a negative size only adds it to
 * the debt (Lua 5.4 lapi.c) and steps nothing. */
static void credit(lua_State *L) { lua_gc(L, LUA_GCSTEP, -(1 << 20)); }

void ixr__gc_init(ixr_runtime *rt) {
  lua_State *L = rt->L;
  ixr__gc *g = &rt->gc;
  lua_gc(L, LUA_GCINC, 0, STEP_MUL, STEP_SIZE_LOG2);
  lua_gc(L, LUA_GCSTOP);
  credit(L);
  g->alloc_mark = rt->alloc_total;
  g->owed = 0;
  g->steps_cycle = 0;
  g->steps_last = 0;
  g->live = rt->lua_bytes;
}

/* Steps per byte allocated. */
static double rate(const ixr_runtime *rt) {
  const ixr__gc *g = &rt->gc;
  double live = (double)(g->live > MIN_LIVE ? g->live : MIN_LIVE);
  /* Before the first cycle: a guess from the heap (a step covers a few
   * kilobytes); the first cycle corrects it. */
  double steps = g->steps_last != 0 ? (double)g->steps_last
                                    : 1.0 + (double)rt->lua_bytes / 4096.0;
  return steps / (SPREAD * live);
}

/* The loop was held for ns nanoseconds by the collector. */
static void note_pause(ixr__gc *g, uint64_t ns) {
  g->ns_total += ns;
  if (ns > g->pause_max_ns) g->pause_max_ns = ns;
  if (ns > g->pause_cycle_ns) g->pause_cycle_ns = ns;
}

/* stepped: the cycle was made of basic steps only, so its count of them
 * is what the next one will take. */
static void cycle_done(ixr_runtime *rt, bool stepped) {
  ixr__gc *g = &rt->gc;
  g->cycles++;
  if (stepped) g->steps_last = g->steps_cycle;
  g->steps_cycle = 0;
  g->live = rt->lua_bytes;
  g->pause_last_cycle_ns = g->pause_cycle_ns;
  g->pause_cycle_ns = 0;
}

/* L: the running thread (a step may only run on it). */
static void step(ixr_runtime *rt, lua_State *L) {
  ixr__gc *g = &rt->gc;
  g->owed -= 1.0;
  g->steps_total++;
  g->steps_cycle++;
  uint64_t t0 = uv_hrtime();
  int done = lua_gc(L, LUA_GCSTEP, 0);
  note_pause(g, uv_hrtime() - t0);
  credit(L);
  if (done) {
    cycle_done(rt, true);
    ixr__log(rt, IXR_LOG_DEBUG,
             "gc: cycle %llu: %llu steps, heap %zu KiB, longest step %.2f ms",
             (unsigned long long)g->cycles, (unsigned long long)g->steps_last,
             rt->lua_bytes / 1024, (double)g->pause_last_cycle_ns / 1e6);
  }
}

void ixr__gc_full(ixr_runtime *rt) {
  ixr__gc *g = &rt->gc;
  uint64_t t0 = uv_hrtime();
  lua_gc(rt->L, LUA_GCCOLLECT);
  note_pause(g, uv_hrtime() - t0);
  credit(rt->L);
  /* Whatever cycle was in progress is complete now. */
  cycle_done(rt, false);
}

static void account(ixr_runtime *rt) {
  ixr__gc *g = &rt->gc;
  uint64_t a = rt->alloc_total;
  g->owed += (double)(a - g->alloc_mark) * rate(rt);
  g->alloc_mark = a;
}

static bool behind(const ixr_runtime *rt) {
  size_t live = rt->gc.live > MIN_LIVE ? rt->gc.live : MIN_LIVE;
  return (double)rt->lua_bytes > BEHIND * (double)live;
}

void ixr__gc_after_work(ixr_runtime *rt) {
  if (rt->L == NULL || rt->call_thread != NULL) return;
  ixr__gc *g = &rt->gc;
  account(rt);
  int n = 0;
  while (g->owed >= 1.0 && (n < PAY_MAX || behind(rt))) {
    step(rt, rt->L);
    n++;
  }
  if (ixr__gc_idle_wanted(rt)) ixr__gc_idle_arm(rt);
}

void ixr__gc_in_call(ixr_runtime *rt, lua_State *L) {
  if (rt->alloc_total - rt->gc.alloc_mark < HOOK_BYTES) return;
  account(rt);
  int n = 0;
  while (rt->gc.owed >= 1.0 && (n < PAY_MAX || behind(rt))) {
    step(rt, L);
    n++;
  }
}

bool ixr__gc_idle_wanted(const ixr_runtime *rt) {
  const ixr__gc *g = &rt->gc;
  /* Up to a quarter of a cycle ahead: enough to absorb a burst, and
   * little collection that the load would not have asked for. */
  double ahead = (double)g->steps_last / 4.0;
  if (ahead < 2.0) ahead = 2.0;
  return g->owed > -ahead;
}

bool ixr__gc_idle(ixr_runtime *rt) {
  if (rt->L == NULL || rt->call_thread != NULL) return false;
  account(rt);
  uint64_t t0 = uv_hrtime();
  while (ixr__gc_idle_wanted(rt)) {
    step(rt, rt->L);
    if (uv_hrtime() - t0 >= IDLE_SLICE_NS) break;
  }
  return ixr__gc_idle_wanted(rt);
}
