/*
 * pace_ids.c: one sequence of session and request ids across the runtimes
 * of `pace --shards N`.
 *
 * The generated traffic answers requests by the ids one runtime would give
 * them (r1, r2, ... in the order of the lines). Runtimes that each count
 * from r1 would never see their results, so the shards hand one counter on
 * to each other, line after line: the ids come out as with one runtime, and
 * the traffic stays valid. (A sharded ixr would need ids unique across its
 * shards anyway; this is the simplest scheme that fits the traffic.) It
 * reaches into the runtime's struct, so it builds only against this tree.
 */
#include "internal.h"

#include "pace_ids.h"

void pace_ids_enter(struct ixr_runtime *rt, const pace_ids *ids) {
  rt->next_session_id = ids->session;
  rt->next_request_id = ids->request;
}

void pace_ids_leave(const struct ixr_runtime *rt, pace_ids *ids) {
  ids->session = rt->next_session_id;
  ids->request = rt->next_request_id;
}
