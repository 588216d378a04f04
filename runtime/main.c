/*
 * main.c: the ixr command. A thin client of libixr: it parses flags, makes a
 * loop and a runtime, and lets the library do the rest, exactly as an
 * embedding service would.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "ixr.h"

static void usage(FILE *f) {
  fputs("usage:\n"
        "  ixr run    [--handlers DIR] [--listen ADDR]... [--watch] [--control ADDR]\n"
        "             [--clock real|manual] [--start-time TIME]\n"
        "             [--log-level error|warn|info|debug|trace]\n"
        "             [--max-line BYTES] [--max-connections N] [--record FILE] [--trace]\n"
        "  ixr check  [--handlers DIR]\n"
        "  ixr test   [--handlers DIR] [--trace] [--log-level LEVEL] FILE|DIR...\n"
        "  ixr replay [--handlers DIR] [--to-scenario OUT] [--trace] [--log-level LEVEL] RECORD\n"
        "  ixr version\n"
        "\n"
        "ixr run reads NDJSON events on standard input and writes output lines\n"
        "on standard output, or serves each connection to --listen unix:PATH or\n"
        "tcp:HOST:PORT as its own stream. Logs go to standard error.\n"
        "--record FILE writes every input line with its arrival time, for ixr\n"
        "replay; --trace prints each step (event in, handler chosen, output) on\n"
        "standard error. --watch reloads the strategies when their files change;\n"
        "SIGHUP reloads too; --control ADDR takes ixr.reload and ixr.status.\n"
        "With --clock manual, os.time() and os.date() count from --start-time\n"
        "(YYYY-MM-DDTHH:MM:SSZ or ms since 1970; default 1970-01-01T00:00:00Z).\n"
        "ixr test runs scenario files; see docs/authoring.md.\n",
        f);
}

static int bad_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "ixr: ");
  fprintf(stderr, fmt, arg);
  fputs("\n\n", stderr);
  usage(stderr);
  return 2;
}

/* ---- ixr run ---------------------------------------------------------- */

/* Standard descriptors the caller closed (`>&-`), by number (bit 0: stdin). */
static unsigned closed_stdio;

typedef struct cli {
  ixr_runtime *rt;
  uv_signal_t sigint, sigterm, sighup;
} cli;

static void on_signal(uv_signal_t *h, int signum) {
  cli *c = h->data;
  if (c->rt == NULL) return; /* the start failed: nothing to reload or stop */
  if (signum == SIGHUP) {
    ixr_reload(c->rt, NULL); /* the runtime logs the outcome */
    return;
  }
  fprintf(stderr, "ixr: %s: finishing and stopping\n",
          signum == SIGINT ? "SIGINT" : "SIGTERM");
  ixr_stop(c->rt);
}

#define WATCH_DEBOUNCE_MS 200

static int cmd_run(int argc, char **argv) {
  ixr_options o;
  ixr_options_init(&o);
  const char **listens = calloc((size_t)argc + 1, sizeof(*listens));
  int nlisten = 0;
  const char *record = NULL;
  const char *control = NULL;
  int watch = 0;
  bool start_time = false;
  if (listens == NULL) return 1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      free(listens);
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--handlers") == 0 && v) {
      o.handlers_dir = v;
      i++;
    } else if (strcmp(a, "--listen") == 0 && v) {
      listens[nlisten++] = v;
      i++;
    } else if (strcmp(a, "--clock") == 0 && v) {
      if (strcmp(v, "real") == 0) o.clock = IXR_CLOCK_REAL;
      else if (strcmp(v, "manual") == 0) o.clock = IXR_CLOCK_MANUAL;
      else return free(listens), bad_usage("--clock takes real or manual, not '%s'", v);
      i++;
    } else if (strcmp(a, "--start-time") == 0 && v) {
      if (!cli_parse_time(v, &o.start_time_ms))
        return free(listens),
               bad_usage("--start-time takes YYYY-MM-DDTHH:MM:SS[.mmm]Z or ms since 1970, not '%s'", v);
      start_time = true;
      i++;
    } else if (strcmp(a, "--log-level") == 0 && v) {
      if (cli_parse_level(v, &o.log_level) != 0)
        return free(listens), bad_usage("unknown log level '%s'", v);
      i++;
    } else if (strcmp(a, "--watch") == 0) {
      watch = 1;
    } else if (strcmp(a, "--control") == 0 && v) {
      control = v;
      i++;
    } else if (strcmp(a, "--record") == 0 && v) {
      record = v;
      i++;
    } else if (strcmp(a, "--trace") == 0) {
      o.on_trace = cli_trace_print;
    } else if (strcmp(a, "--max-connections") == 0 && v) {
      char *end;
      unsigned long long n = strtoull(v, &end, 10);
      if (*end != '\0' || v[0] < '0' || v[0] > '9' || n < 1 || n > 1000000)
        return free(listens), bad_usage("--max-connections takes 1 to 1000000, not '%s'", v);
      o.max_connections = (size_t)n;
      i++;
    } else if (strcmp(a, "--max-line") == 0 && v) {
      char *end;
      unsigned long long n = strtoull(v, &end, 10);
      if (*end != '\0' || n < CLI_MAX_LINE_MIN || n > CLI_MAX_LINE_MAX)
        return free(listens), bad_usage("--max-line takes 64 to 1073741824 bytes, not '%s'", v);
      o.max_line = (size_t)n;
      i++;
    } else {
      free(listens);
      return bad_usage("unknown or incomplete option '%s'", a);
    }
  }
  if (start_time && o.clock != IXR_CLOCK_MANUAL)
    return free(listens), bad_usage("--start-time needs --clock manual (%s)",
                                    "the real clock's dates are the system's");
  /* Checked before anything is opened (a --record file among it). */
  if (nlisten == 0 && (closed_stdio & 3u) != 0) {
    free(listens);
    fprintf(stderr, "ixr: standard %s is closed: nothing to serve (use --listen)\n",
            (closed_stdio & 1u) ? "input" : "output");
    return 1;
  }
  /* A server of many connections: the soft limit on descriptors (often
   * 1024) up to the hard one. At the limit libuv accepts and closes new
   * connections without telling us. */
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &nofile);
  }
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) {
    free(listens);
    fprintf(stderr, "ixr: cannot create an event loop\n");
    return 1;
  }
  o.loop = &loop;
  /* The signals are ours from the start: a SIGHUP or SIGTERM that comes
   * while the strategies load or the sockets open (a supervisor that
   * reloads as soon as the socket answers) is handled once the loop runs,
   * instead of killing the process by its default action. */
  cli c;
  c.rt = NULL;
  uv_signal_t *sigs[3] = {&c.sigint, &c.sigterm, &c.sighup};
  int signums[3] = {SIGINT, SIGTERM, SIGHUP};
  for (int i = 0; i < 3; i++) {
    uv_signal_init(&loop, sigs[i]);
    sigs[i]->data = &c;
    uv_signal_start(sigs[i], on_signal, signums[i]);
    /* The runtime's streams keep the loop alive; signals alone do not. */
    uv_unref((uv_handle_t *)sigs[i]);
  }
  int status = 0;
  cli_recorder *rec = NULL;
  if (record != NULL && cli_recorder_open(&rec, record, o.clock, o.max_line) != 0)
    status = 1;
  o.on_input = rec ? cli_recorder_input : NULL;
  o.input_ud = rec;
  int rc = status == 0 ? ixr_new(&c.rt, &o) : 0;
  if (rc != 0) {
    fprintf(stderr, "ixr: cannot start: %s\n", ixr_strerror(rc));
    status = 1;
  }
  if (status != 0) {
    cli_recorder_close(rec);
    free(listens);
    for (int i = 0; i < 3; i++) uv_close((uv_handle_t *)sigs[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 1;
  }
  if (rec != NULL) cli_recorder_start(rec, c.rt);
  for (int i = 0; i < nlisten && status == 0; i++) {
    rc = ixr_listen(c.rt, listens[i]);
    if (rc != 0) {
      fprintf(stderr, "ixr: --listen %s: %s\n", listens[i], ixr_strerror(rc));
      status = 1;
    }
  }
  free(listens);
  if (status == 0 && control != NULL && (rc = ixr_listen_control(c.rt, control)) != 0) {
    fprintf(stderr, "ixr: --control %s: %s\n", control, ixr_strerror(rc));
    status = 1;
  }
  if (status == 0 && watch && (rc = ixr_watch(c.rt, WATCH_DEBOUNCE_MS)) != 0) {
    fprintf(stderr, "ixr: --watch: %s\n", ixr_strerror(rc));
    status = 1;
  }
  if (status == 0 && nlisten == 0) {
    rc = ixr_serve_fd(c.rt, 0, 1, IXR_SERVE_STOP_AT_EOF);
    if (rc != 0) {
      fprintf(stderr, "ixr: cannot read standard input: %s\n", ixr_strerror(rc));
      status = 1;
    }
  }
  if (status == 0) uv_run(&loop, UV_RUN_DEFAULT);
  ixr_stats stats;
  if (ixr_get_stats(c.rt, &stats) == 0 && stats.fd_stream_failures > 0)
    status = 1; /* input or output failed: the runtime logged how */
  ixr_close(c.rt);
  for (int i = 0; i < 3; i++) uv_close((uv_handle_t *)sigs[i], NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) fprintf(stderr, "ixr: handles left open at exit\n");
  if (cli_recorder_close(rec) != 0) status = 1;
  return status;
}

/* ---- ixr check -------------------------------------------------------- */

/* Problems on standard output (CONTRACT: FILE:LINE: message, exit 1 if
 * any); warnings, which are no problems, on standard error. */
static void print_report(void *ud, const char *line) {
  (void)ud;
  printf("%s\n", line);
}

static void print_warning(void *ud, const char *line) {
  (void)ud;
  fprintf(stderr, "%s\n", line);
}

static int cmd_check(int argc, char **argv) {
  const char *dir = "handlers";
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(argv[i], "--handlers") == 0 && i + 1 < argc) dir = argv[++i];
    else return bad_usage("unknown or incomplete option '%s'", argv[i]);
  }
  ixr_options o;
  ixr_options_init(&o);
  o.handlers_dir = dir;
  int n = ixr__check(&o, print_report, print_warning, NULL);
  if (n < 0) {
    fprintf(stderr, "ixr: check %s: %s\n", dir, ixr_strerror(n));
    return 1;
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "ixr: check: cannot write the report\n");
    return 1;
  }
  if (n > 0) {
    fprintf(stderr, "ixr: %d problem%s in %s\n", n, n == 1 ? "" : "s", dir);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN); /* a closed output is an error to report, not death */
  /* A standard descriptor left closed would be taken by the first one ixr
   * opens (the event loop's), and lines meant for it would go there: park
   * /dev/null on it, read-only so that writes still fail and are reported
   * (ixr test > closed exits 1), and remember (ixr run refuses a closed
   * stdin or stdout). */
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    int n = open("/dev/null", O_RDONLY);
    if (n != fd) return 70; /* cannot happen: the lowest free number */
    closed_stdio |= 1u << fd;
  }
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
  if (strcmp(cmd, "check") == 0) return cmd_check(argc - 2, argv + 2);
  if (strcmp(cmd, "test") == 0) return cli_test(argc - 2, argv + 2);
  if (strcmp(cmd, "replay") == 0) return cli_replay(argc - 2, argv + 2);
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("ixr %s\n", ixr_version());
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  return bad_usage("unknown command '%s'", cmd);
}
