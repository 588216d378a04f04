/*
 * map.c: an intrusive, chained, string-keyed hash table. The nodes live in
 * the objects they index (a session, a strategy), so a million sessions cost
 * one pointer each in the bucket array and nothing else.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* FNV-1a: short keys (interaction ids) dominate, where it is hard to beat. */
uint32_t ixr__hash(const char *key, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)key[i];
    h *= 16777619u;
  }
  return h;
}

int ixr__map_init(ixr__map *m, size_t hint) {
  size_t n = 16;
  while (n < hint) n *= 2;
  m->buckets = calloc(n, sizeof(*m->buckets));
  if (m->buckets == NULL) return IXR_ENOMEM;
  m->mask = n - 1;
  m->count = 0;
  return 0;
}

void ixr__map_free(ixr__map *m) {
  free(m->buckets);
  m->buckets = NULL;
  m->mask = 0;
  m->count = 0;
}

ixr__mapnode *ixr__map_get(const ixr__map *m, const char *key, size_t len,
                           uint32_t hash) {
  for (ixr__mapnode *n = m->buckets[hash & m->mask]; n != NULL; n = n->next)
    if (n->hash == hash && n->len == len && memcmp(n->key, key, len) == 0)
      return n;
  return NULL;
}

static void grow(ixr__map *m) {
  size_t n = (m->mask + 1) * 2;
  ixr__mapnode **b = calloc(n, sizeof(*b));
  if (b == NULL) return; /* keep the longer chains: still correct */
  for (size_t i = 0; i <= m->mask; i++) {
    ixr__mapnode *node = m->buckets[i];
    while (node != NULL) {
      ixr__mapnode *next = node->next;
      node->next = b[node->hash & (n - 1)];
      b[node->hash & (n - 1)] = node;
      node = next;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->mask = n - 1;
}

int ixr__map_put(ixr__map *m, ixr__mapnode *n) {
  if (m->count >= m->mask + 1) grow(m);
  ixr__mapnode **slot = &m->buckets[n->hash & m->mask];
  n->next = *slot;
  *slot = n;
  m->count++;
  return 0;
}

void ixr__map_del(ixr__map *m, ixr__mapnode *n) {
  ixr__mapnode **p = &m->buckets[n->hash & m->mask];
  while (*p != NULL) {
    if (*p == n) {
      *p = n->next;
      n->next = NULL;
      m->count--;
      return;
    }
    p = &(*p)->next;
  }
}
