/*
 * probe.c: which standard library does an installed libixr use by default?
 *
 * Runs a session of the requeue strategy in HANDLERS and makes the standard
 * notcontrolled handler run; the trace names that handler's FILE:LINE,
 * which is under the standard library directory. Prints that directory.
 *
 *   probe HANDLERS      prints e.g. /usr/local/share/ixr/lua
 */
#include <stdio.h>
#include <string.h>

#include <ixr.h>

static char found[4096];

static void on_trace(void *ud, const char *line) {
  (void)ud;
  const char *p = strstr(line, "standard handler ");
  const char *q = p ? strstr(p, "/ixr/multimedia.lua:") : NULL;
  if (q != NULL && found[0] == '\0') {
    p += strlen("standard handler ");
    snprintf(found, sizeof(found), "%.*s", (int)(q - p), p);
  }
}

static void on_output(void *ud, const ixr_output *out) {
  (void)ud;
  (void)out;
}

int main(int argc, char **argv) {
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = argc > 1 ? argv[1] : "handlers";
  o.on_output = on_output;
  o.on_trace = on_trace;
  ixr_runtime *rt;
  int rc = ixr_new(&rt, &o);
  if (rc != 0) {
    fprintf(stderr, "probe: %s\n", ixr_strerror(rc));
    return 1;
  }
  static const char events[] =
      "{\"name\":\"interaction.present\",\"data\":{\"interactionid\":\"P\"}}\n"
      "{\"name\":\"interaction.notcontrolled\",\"data\":{\"interactionid\":\"P\",\"resultof\":\"revoking\"}}\n";
  rc = ixr_feed(rt, events, sizeof(events) - 1);
  ixr_close(rt);
  if (rc != 0 || found[0] == '\0') {
    fprintf(stderr, "probe: no standard handler ran\n");
    return 1;
  }
  printf("%s\n", found);
  return 0;
}
