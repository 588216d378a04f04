/* testutil.c: shared helpers of the cmocka tests. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

void tcap_output(void *ud, const ixr_output *out) {
  tcap *c = ud;
  /* every output line is a C string too (ixr.h) */
  assert_int_equal(out->json[out->json_len], '\0');
  if (c->n == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 64;
    c->lines = realloc(c->lines, c->cap * sizeof(*c->lines));
  }
  c->lines[c->n] = malloc(out->json_len + 1);
  memcpy(c->lines[c->n], out->json, out->json_len);
  c->lines[c->n][out->json_len] = '\0';
  c->n++;
}

void tcap_logcb(void *ud, ixr_log_level level, const char *msg) {
  tcap *c = ud;
  (void)level;
  size_t n = strlen(msg);
  c->log = realloc(c->log, c->loglen + n + 2);
  memcpy(c->log + c->loglen, msg, n);
  c->loglen += n;
  c->log[c->loglen++] = '\n';
  c->log[c->loglen] = '\0';
}

void tcap_clear(tcap *c) {
  for (size_t i = 0; i < c->n; i++) free(c->lines[i]);
  c->n = 0;
}

void tcap_free(tcap *c) {
  tcap_clear(c);
  free(c->lines);
  free(c->log);
  memset(c, 0, sizeof(*c));
}

int tcap_find(const tcap *c, size_t from, ...) {
  for (size_t i = from; i < c->n; i++) {
    va_list ap;
    va_start(ap, from);
    const char *frag;
    int all = 1;
    while ((frag = va_arg(ap, const char *)) != NULL)
      if (strstr(c->lines[i], frag) == NULL) all = 0;
    va_end(ap);
    if (all) return (int)i;
  }
  return -1;
}

void tcap_dump(const tcap *c) {
  for (size_t i = 0; i < c->n; i++) fprintf(stderr, "  [%zu] %s\n", i, c->lines[i]);
  if (c->log) fprintf(stderr, "  log:\n%s", c->log);
}

char *tdir_new(void) {
  char tmpl[] = "/tmp/ixr-test-XXXXXX";
  char *d = mkdtemp(tmpl);
  assert_non_null(d);
  return strdup(d);
}

void tdir_write(const char *dir, const char *name, const char *content) {
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  char *slash = strrchr(path, '/');
  if (slash && slash > path + strlen(dir)) {
    *slash = '\0';
    mkdir(path, 0755);
    *slash = '/';
  }
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(content, f);
  fclose(f);
}

static void rm_rf(const char *path) {
  DIR *d = opendir(path);
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char sub[1024];
      snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
      rm_rf(sub);
    }
    closedir(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}

void tdir_remove(char *dir) {
  if (dir == NULL) return;
  rm_rf(dir);
  free(dir);
}

int tfix_teardown(void **state) {
  tfix *f = *state;
  ixr_close(f->rt);
  tcap_free(&f->cap);
  tdir_remove(f->dir);
  free(f);
  return 0;
}

void topts(ixr_options *o, const char *handlers, tcap *cap) {
  ixr_options_init(o);
  o->handlers_dir = handlers;
  o->clock = IXR_CLOCK_MANUAL;
  o->on_output = tcap_output;
  o->output_ud = cap;
  o->on_log = tcap_logcb;
  o->log_ud = cap;
}

ixr_runtime *trt_new(const char *handlers, tcap *cap) {
  ixr_options o;
  topts(&o, handlers, cap);
  o.log_level = IXR_LOG_DEBUG;
  ixr_runtime *rt = NULL;
  int rc = ixr_new(&rt, &o);
  assert_int_equal(rc, 0);
  return rt;
}

void tfeed(ixr_runtime *rt, const char *line) {
  assert_int_equal(ixr_feed(rt, line, strlen(line)), 0);
  assert_int_equal(ixr_feed(rt, "\n", 1), 0);
}
