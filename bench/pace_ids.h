/* pace_ids.h: see pace_ids.c. */
#ifndef IXR_BENCH_PACE_IDS_H
#define IXR_BENCH_PACE_IDS_H

#include <stdint.h>

struct ixr_runtime;

typedef struct pace_ids {
  uint64_t session, request; /* the last ids given */
} pace_ids;

/* Before a line goes to rt: it continues the sequence. */
void pace_ids_enter(struct ixr_runtime *rt, const pace_ids *ids);
/* After: the sequence continues from where rt left it. */
void pace_ids_leave(const struct ixr_runtime *rt, pace_ids *ids);

#endif
