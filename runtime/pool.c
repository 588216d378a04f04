/*
 * pool.c: the allocator behind the Lua state's small objects.
 *
 * Nearly everything Lua allocates per event is small (strings, tables of a
 * few fields, closures, coroutine call info) and lives for one event. With
 * glibc that churn cost a third of the CPU and, through malloc_consolidate
 * and free, most of the long pauses. Lua tells the allocator the old size of
 * every block, so a size-class free list needs no headers: blocks of up to
 * IXR__POOL_MAX bytes come from slabs (64 KiB, then 2 MiB) in 8-byte
 * classes, and a freed block goes on the front of its class's list. Slabs
 * are kept until the state is closed (the peak working set stays
 * reserved).
 *
 * The classes are as fine as Lua's alignment allows, and wide enough for a
 * coroutine's first stack (720 bytes), because a million live sessions
 * hold a million of each: with 16-byte classes every table (56 bytes) took
 * 64, and each stack paid a malloc header.
 *
 * The sessions' own structs (dispatch.c) come from here too: a million of
 * them wait at once, and they have sizes the classes fit well.
 *
 * Builds with AddressSanitizer skip the pool, so that it can see Lua's
 * blocks one by one.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define POOL_ENABLED 0
#else
#define POOL_ENABLED 1
#endif

/* The first slabs are small, so that a runtime with a small heap (a test,
 * a host with many small runtimes) stays small; once the heap has grown
 * past SMALL_SLABS of them, the slabs are huge pages (see slab_new). */
#define SMALL_SLAB ((size_t)64 * 1024)
#define SMALL_SLABS 32
#define HUGE_SLAB ((size_t)2 * 1024 * 1024)

/* A slab: a small one from malloc, or HUGE_SLAB bytes at a HUGE_SLAB
 * boundary, which the kernel may back with one huge page where
 * transparent huge pages are enabled for those who ask (MADV_HUGEPAGE):
 * one page fault instead of 512 (each fault costs 12 to 14 us on the
 * virtual machines measured), and one TLB entry for the collector's walks
 * over the heap instead of 512. From malloc either way, not mmap: leak
 * checkers (LeakSanitizer in the fuzzing build, valgrind) then see the
 * pointers to Lua's larger blocks that the slabs hold. */
static char *slab_new(size_t size) {
  if (size != HUGE_SLAB) return malloc(size);
  void *a = NULL;
  if (posix_memalign(&a, HUGE_SLAB, HUGE_SLAB) != 0) return NULL;
#ifdef MADV_HUGEPAGE
  madvise(a, HUGE_SLAB, MADV_HUGEPAGE); /* a hint: without it, 4 KiB pages */
#endif
  return a;
}

#define STEP IXR__POOL_STEP
#define NCLASSES (IXR__POOL_MAX / STEP)

/* 1 for 1..STEP bytes, and so on */
static inline size_t class_of(size_t n) { return (n + STEP - 1) / STEP; }

static void *slab_block(ixr__pool *p, size_t size) {
  if (p->left < size) {
    /* The tail of the old slab goes to the free lists, largest class first. */
    while (p->left >= STEP) {
      size_t c = p->left >= IXR__POOL_MAX ? NCLASSES : p->left / STEP;
      void *b = p->bump;
      *(void **)b = p->free[c - 1];
      p->free[c - 1] = b;
      p->bump += c * STEP;
      p->left -= c * STEP;
    }
    if (p->nslabs == p->cap) {
      size_t cap = p->cap ? p->cap * 2 : 64;
      void **s = realloc(p->slabs, cap * sizeof(*s));
      if (s == NULL) return NULL;
      p->slabs = s;
      p->cap = cap;
    }
    size_t slab_size = p->nslabs < SMALL_SLABS ? SMALL_SLAB : HUGE_SLAB;
    char *slab = slab_new(slab_size);
    if (slab == NULL) return NULL;
    p->slabs[p->nslabs++] = slab;
    p->bump = slab;
    p->left = slab_size;
  }
  void *b = p->bump;
  p->bump += size;
  p->left -= size;
  return b;
}

static void *pool_get(ixr__pool *p, size_t n) {
  size_t c = class_of(n);
  void *b = p->free[c - 1];
  if (b != NULL) {
    void *next = *(void **)b;
    p->free[c - 1] = next;
    /* The list is in the order the collector swept, all over the slabs:
     * the next block of this class is likely cold. Fetch it now, so that
     * the next allocation (and Lua's first writes to it) do not wait. */
    if (next != NULL) __builtin_prefetch(next, 1, 3);
    return b;
  }
  return slab_block(p, c * STEP);
}

static void pool_put(ixr__pool *p, void *b, size_t n) {
  size_t c = class_of(n);
  *(void **)b = p->free[c - 1];
  p->free[c - 1] = b;
}

void *ixr__pool_realloc(ixr__pool *p, void *ptr, size_t osize, size_t nsize) {
  if (!POOL_ENABLED) return realloc(ptr, nsize);
  bool was_small = ptr != NULL && osize <= IXR__POOL_MAX;
  bool small = nsize <= IXR__POOL_MAX;
  if (ptr == NULL) return small ? pool_get(p, nsize) : malloc(nsize);
  if (was_small && small && class_of(osize) == class_of(nsize)) return ptr;
  if (!was_small && !small) return realloc(ptr, nsize);
  void *b = small ? pool_get(p, nsize) : malloc(nsize);
  if (b == NULL) return NULL; /* Lua keeps the old block */
  memcpy(b, ptr, osize < nsize ? osize : nsize);
  if (was_small) pool_put(p, ptr, osize);
  else free(ptr);
  return b;
}

void ixr__pool_free(ixr__pool *p, void *ptr, size_t osize) {
  if (ptr == NULL) return;
  if (POOL_ENABLED && osize <= IXR__POOL_MAX) pool_put(p, ptr, osize);
  else free(ptr);
}

void ixr__pool_destroy(ixr__pool *p) {
  for (size_t i = 0; i < p->nslabs; i++) free(p->slabs[i]);
  free(p->slabs);
  memset(p, 0, sizeof(*p));
}
