/*
 * timer.c: the runtime's clock and its timers.
 *
 * All timers (request and wait timeouts, session:after) live in one binary
 * heap ordered by (due, seq). With the real clock a single uv_timer_t is
 * armed for the earliest one, so a million pending timeouts cost a million
 * heap slots and one libuv handle. With the manual clock nothing fires until
 * ixr__timers_advance(), which fires every due timer in due order and lets
 * each one see its own due time as "now".
 */
#include <stdlib.h>

#include "internal.h"

static bool before(const ixr__timer *a, const ixr__timer *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void place(ixr_runtime *rt, size_t i, ixr__timer *t) {
  rt->heap[i] = t;
  t->heap_idx = (uint32_t)i;
}

static void sift_up(ixr_runtime *rt, size_t i) {
  ixr__timer *t = rt->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(t, rt->heap[parent])) break;
    place(rt, i, rt->heap[parent]);
    i = parent;
  }
  place(rt, i, t);
}

static void sift_down(ixr_runtime *rt, size_t i) {
  ixr__timer *t = rt->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= rt->heap_len) break;
    if (c + 1 < rt->heap_len && before(rt->heap[c + 1], rt->heap[c])) c++;
    if (!before(rt->heap[c], t)) break;
    place(rt, i, rt->heap[c]);
    i = c;
  }
  place(rt, i, t);
}

static void heap_remove(ixr_runtime *rt, ixr__timer *t) {
  size_t i = t->heap_idx;
  t->heap_idx = IXR__TIMER_IDLE;
  ixr__timer *last = rt->heap[--rt->heap_len];
  if (i < rt->heap_len) {
    place(rt, i, last);
    sift_down(rt, i);
    sift_up(rt, last->heap_idx);
  }
}

uint64_t ixr__now(ixr_runtime *rt) {
  if (rt->opt.clock == IXR_CLOCK_MANUAL) return rt->manual_now;
  if (rt->fire_now_set) return rt->fire_now;
  return uv_now(rt->loop) - rt->real_base;
}

static void on_uvtimer(uv_timer_t *h);

static void rearm(ixr_runtime *rt) {
  if (rt->opt.clock == IXR_CLOCK_MANUAL || !rt->uvtimer_open) return;
  if (rt->heap_len == 0) {
    uv_timer_stop(&rt->uvtimer);
    return;
  }
  uint64_t now = ixr__now(rt), due = rt->heap[0]->due;
  uv_timer_start(&rt->uvtimer, on_uvtimer, due > now ? due - now : 0, 0);
}

/* Timers one manual-clock pass fires at the instant they were armed for. */
#define SAME_INSTANT_MAX 10000

static int heap_push(ixr_runtime *rt, ixr__timer *t) {
  if (rt->heap_len == rt->heap_cap) {
    size_t cap = rt->heap_cap ? rt->heap_cap * 2 : 64;
    if (cap >= IXR__TIMER_DEFERRED) return IXR_ENOMEM;
    ixr__timer **h = realloc(rt->heap, cap * sizeof(*h));
    if (h == NULL) return IXR_ENOMEM;
    rt->heap = h;
    rt->heap_cap = cap;
  }
  rt->heap[rt->heap_len] = t;
  t->heap_idx = (uint32_t)rt->heap_len++;
  sift_up(rt, t->heap_idx);
  return 0;
}

/* Takes t, due at the instant being fired, out of the heap until the end
 * of the pass. False when there is no room to keep it. */
static bool defer(ixr_runtime *rt, ixr__timer *t) {
  if (rt->ndeferred == rt->deferred_cap) {
    size_t cap = rt->deferred_cap ? rt->deferred_cap * 2 : 16;
    ixr__timer **v = realloc(rt->deferred, cap * sizeof(*v));
    if (v == NULL) return false;
    rt->deferred = v;
    rt->deferred_cap = cap;
  }
  heap_remove(rt, t);
  t->heap_idx = IXR__TIMER_DEFERRED;
  rt->deferred[rt->ndeferred++] = t;
  return true;
}

/*
 * Fires every timer due at or before `until`, in due order. A timer that
 * one of them arms for the instant being fired (session:after(0, f),
 * re-armed from f: a loop) is left for the next pass on the real clock,
 * the next turn of the loop, so that input, signals and a stop still get
 * their turn. On the manual clock each one sees its own due time as now,
 * so such a chain stays at one instant: a pass fires at most
 * SAME_INSTANT_MAX of them, sets the rest aside while the other due timers
 * fire, and puts them back due at the pass's end (the next advance).
 */
static void fire_due(ixr_runtime *rt, uint64_t until) {
  uint64_t armed_before = rt->timer_seq;
  unsigned same_instant = 0;
  bool outer = !rt->firing_timers;
  rt->firing_timers = true;
  /* A timer's errors are about no input line, even when a clock.advance
   * line fires it. */
  uint64_t line_no = rt->line_no;
  bool line_has_id = rt->line_has_id;
  rt->line_no = 0;
  rt->line_has_id = false;
  while (rt->heap_len > 0 && rt->heap[0]->due <= until && !rt->closing) {
    ixr__timer *t = rt->heap[0];
    if (t->seq > armed_before && t->due <= ixr__now(rt)) {
      if (rt->opt.clock != IXR_CLOCK_MANUAL) break; /* older due ones fired */
      if (++same_instant > SAME_INSTANT_MAX) {
        if (same_instant == SAME_INSTANT_MAX + 1) {
          const ixr__session *s = ixr__timer_session(t);
          ixr__log(rt, IXR_LOG_WARN,
                   "timers: more than %d armed for the instant they were "
                   "armed at (session:after(0) re-arming itself? this one is "
                   "of s%llu %s, strategy %s): the rest wait for the next "
                   "clock.advance", SAME_INSTANT_MAX, (unsigned long long)s->id,
                   s->iid, s->strategy->name);
        }
        /* Out of the way of the other due timers, which fire as usual. */
        if (defer(rt, t)) continue;
        break;
      }
    }
    heap_remove(rt, t);
    if (rt->opt.clock == IXR_CLOCK_MANUAL) {
      rt->manual_now = t->due;
      ixr__timer_fire(rt, t); /* may free t */
    } else {
      /* Its due time is "now" for the callback (see fire_now). */
      uint64_t prev = rt->fire_now;
      bool prev_set = rt->fire_now_set;
      rt->fire_now = t->due;
      rt->fire_now_set = true;
      ixr__timer_fire(rt, t); /* may free t */
      rt->fire_now = prev;
      rt->fire_now_set = prev_set;
    }
    /* Each timer is a unit of work of its own: the flows it cancelled
     * close now, so a burst of timers (a thousand sessions with the same
     * timeout) does not fill the list that one event may fill. */
    ixr__close_cancelled(rt);
    ixr__gc_after_work(rt);
  }
  rt->line_no = line_no;
  rt->line_has_id = line_has_id;
  if (outer) {
    rt->firing_timers = false;
    /* The deferred ones are due at the pass's end: the next advance. */
    while (rt->ndeferred > 0) {
      ixr__timer *t = rt->deferred[--rt->ndeferred];
      if (t->due < until) t->due = until;
      if (heap_push(rt, t) != 0) t->heap_idx = IXR__TIMER_IDLE; /* dropped */
    }
  }
  ixr__reap(rt);
  ixr__run_queued_if_any(rt); /* what the flows closed just now fed */
}

/*
 * Before an input line, on the real clock: the timers already due fire
 * first. libuv reads the time after waiting for input and runs the input's
 * callbacks before the timers of the new time, so a line that arrived
 * after a timeout would otherwise be handled before it; a replay of the
 * record (which advances the clock to the line's time first) would then
 * go another way than the run it replays.
 */
void ixr__timers_catch_up(ixr_runtime *rt) {
  if (rt->opt.clock == IXR_CLOCK_MANUAL || rt->firing_timers ||
      rt->call_thread != NULL || rt->depth > 0 || rt->in_output > 0 ||
      rt->closing || rt->heap_len == 0)
    return;
  uint64_t now = ixr__now(rt);
  if (rt->heap[0]->due > now) return;
  fire_due(rt, now);
  if (!rt->closing) rearm(rt);
}

static void on_uvtimer(uv_timer_t *h) {
  ixr_runtime *rt = h->data;
  uv_update_time(rt->loop);
  rt->in_uv_cb++;
  fire_due(rt, ixr__now(rt));
  rt->in_uv_cb--;
  if (ixr__leave(rt)) return;
  if (rt->closing || rt->heap_len == 0) return;
  /* libuv runs a timer started from its own callback with a timeout of 0
   * again in the same pass over its timers, before any I/O: a timer left
   * for the next pass (fire_due) is due in 1 ms at the soonest. */
  uint64_t now = ixr__now(rt), due = rt->heap[0]->due;
  uv_timer_start(&rt->uvtimer, on_uvtimer, due > now ? due - now : 1, 0);
}

int ixr__timers_init(ixr_runtime *rt) {
  rt->heap = NULL;
  rt->heap_len = rt->heap_cap = 0;
  rt->manual_now = 0;
  uv_update_time(rt->loop);
  rt->real_base = uv_now(rt->loop);
  if (rt->opt.clock == IXR_CLOCK_MANUAL) {
    rt->start_time_ms = rt->opt.start_time_ms;
    return 0;
  }
  uv_timeval64_t tv;
  rt->start_time_ms = uv_gettimeofday(&tv) == 0
                          ? (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000
                          : 0;
  int rc = uv_timer_init(rt->loop, &rt->uvtimer);
  if (rc != 0) return IXR_EIO;
  rt->uvtimer.data = rt;
  uv_unref((uv_handle_t *)&rt->uvtimer); /* timers alone keep no loop alive */
  rt->uvtimer_open = true;
  rt->open_handles++;
  return 0;
}

static void on_uvtimer_closed(uv_handle_t *h) {
  ixr_runtime *rt = h->data;
  ixr__handle_closed(rt);
}

void ixr__timers_close(ixr_runtime *rt) {
  if (rt->uvtimer_open) {
    rt->uvtimer_open = false;
    uv_close((uv_handle_t *)&rt->uvtimer, on_uvtimer_closed);
  }
}

int ixr__timer_start(ixr_runtime *rt, ixr__timer *t, ixr__timer_kind kind,
                     uint64_t delay_ms) {
  ixr__timer_stop(rt, t); /* started again while pending: moved, never in twice */
  uint64_t now = ixr__now(rt);
  t->due = delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms;
  t->seq = ++rt->timer_seq;
  t->kind = (uint8_t)kind;
  if (heap_push(rt, t) != 0) {
    t->heap_idx = IXR__TIMER_IDLE;
    return IXR_ENOMEM;
  }
  if (t->heap_idx == 0) rearm(rt);
  return 0;
}

void ixr__timer_stop(ixr_runtime *rt, ixr__timer *t) {
  if (t->heap_idx == IXR__TIMER_IDLE) return;
  if (t->heap_idx == IXR__TIMER_DEFERRED) {
    for (size_t i = 0; i < rt->ndeferred; i++)
      if (rt->deferred[i] == t) {
        rt->deferred[i] = rt->deferred[--rt->ndeferred];
        break;
      }
    t->heap_idx = IXR__TIMER_IDLE;
    return;
  }
  bool was_first = t->heap_idx == 0;
  heap_remove(rt, t);
  if (was_first) rearm(rt);
}

void ixr__timers_advance(ixr_runtime *rt, uint64_t ms) {
  uint64_t target =
      ms > UINT64_MAX - rt->manual_now ? UINT64_MAX : rt->manual_now + ms;
  fire_due(rt, target);
  /* Input a timer's callback fed runs within the pass (after that timer):
   * a clock.advance among it may have taken the clock further already. */
  if (target > rt->manual_now) rt->manual_now = target;
}

/* The timers themselves belong to their owners, freed by now. */
void ixr__timers_free(ixr_runtime *rt) {
  free(rt->heap);
  rt->heap = NULL;
  rt->heap_len = rt->heap_cap = 0;
  free(rt->deferred);
  rt->deferred = NULL;
  rt->ndeferred = rt->deferred_cap = 0;
}
