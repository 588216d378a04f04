/*
 * minimal.c: the smallest useful ixr host.
 *
 * It reads NDJSON events on standard input, hands them to a runtime that
 * runs on a loop of its own, and prints what the strategies ask for.
 *
 *   cc -std=c11 minimal.c $(pkg-config --cflags --libs ixr) -o minimal
 *   ./minimal handlers < events.ndjson
 *
 * Everything happens inside ixr_feed(): a complete line is decoded, given
 * to its session's strategy, and every output line it causes reaches
 * on_output() before ixr_feed() returns. (Timeouts need a running loop:
 * see tcp_server.c for a host that runs one.)
 */
#include <stdio.h>
#include <unistd.h>

#include <ixr.h>

/* Every output line, structured. The strings are valid during the call
 * only: copy what you keep. */
static void on_output(void *ud, const ixr_output *out) {
  unsigned long *actions = ud;
  int idlen = (int)out->interactionid_len;
  switch (out->type) {
    case IXR_OUT_ACTION:
      ++*actions;
      printf("action  %-6s %.*s %s %s\n", out->action, idlen,
             out->interactionid, out->requestid, out->json);
      break;
    case IXR_OUT_SESSION:
      printf("session %-9s %.*s %s %s\n", out->state, idlen,
             out->interactionid, out->session,
             out->reason ? out->reason : out->strategy ? out->strategy : "");
      break;
    case IXR_OUT_ERROR:
      printf("error   %s: %s\n", out->error, out->message);
      break;
    default:
      printf("%s\n", out->json);
      break;
  }
}

int main(int argc, char **argv) {
  unsigned long actions = 0;
  ixr_options opt;
  ixr_options_init(&opt);
  opt.handlers_dir = argc > 1 ? argv[1] : "handlers";
  opt.on_output = on_output;
  opt.output_ud = &actions;
  /* opt.loop stays NULL: the runtime makes and owns its loop. */

  ixr_runtime *rt;
  int rc = ixr_new(&rt, &opt);
  if (rc != 0) {
    fprintf(stderr, "minimal: %s: %s\n", ixr_err_name(rc), ixr_strerror(rc));
    return 1;
  }

  /* Any split will do: ixr_feed() keeps a partial line until its newline. */
  char buf[4096];
  ssize_t n;
  while (rc == 0 && (n = read(STDIN_FILENO, buf, sizeof(buf))) > 0)
    rc = ixr_feed(rt, buf, (size_t)n);
  if (rc == 0) rc = ixr_feed_end(rt); /* a last line without a newline */

  ixr_stats st;
  ixr_get_stats(rt, &st);
  printf("%lu actions, %llu sessions started, %llu ended, %llu live\n",
         actions, (unsigned long long)st.sessions_started,
         (unsigned long long)st.sessions_ended,
         (unsigned long long)(st.sessions_active + st.sessions_suspended));
  ixr_close(rt);
  if (rc != 0) fprintf(stderr, "minimal: %s\n", ixr_strerror(rc));
  return rc == 0 ? 0 : 1;
}
