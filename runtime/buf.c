/* buf.c: a growable byte buffer. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int ixr__buf_reserve(ixr__buf *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return IXR_ENOMEM;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < extra) cap *= 2;
  char *p = realloc(b->data, cap);
  if (p == NULL) return IXR_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int ixr__buf_append(ixr__buf *b, const void *p, size_t n) {
  if (n == 0) return 0;
  int rc = ixr__buf_reserve(b, n);
  if (rc != 0) return rc;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

void ixr__buf_consume(ixr__buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void ixr__buf_free(ixr__buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
