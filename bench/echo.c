/*
 * echo.c: the latency floor of the machine (build/bench/echo).
 *
 *   echo PATH COUNTS [SPIN_US [LINE_BYTES]]
 *
 * A server that does what `ixr run --listen unix:PATH` does with its
 * socket, and nothing else: one libuv loop, 64 KiB reads, input split into
 * lines, for input line i the number of output lines the --counts file of
 * bench/gen says ixr writes for it, each naming the event's interaction and
 * LINE_BYTES long (ixr's average output line, so the socket and the client
 * carry what they carry with ixr; without it, copies of the input line),
 * all the output of one read written at once.
 * With SPIN_US it also busy-waits that long per line, the work of a server
 * whose every event costs the same, with no pauses of any kind.
 *
 * `bench/sock latency` against this server, at the rate it uses against
 * ixr, says how much of ixr's tail the machine, the socket and the client
 * make by themselves: with SPIN_US 0 the cost of the round trips alone, with
 * SPIN_US set to ixr's own CPU time per event the tail of an ideal server
 * exactly as busy as ixr. It serves one connection and exits when that
 * connection ends, and then prints how busy it was meanwhile:
 *   echo lines=N spin_us=S server_busy=B
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

static unsigned char *counts;
static size_t ncounts, line_no;
static uint64_t spin_ns;
static size_t line_bytes; /* of each output line; 0: copies of the input */

static uv_loop_t *loop;
static uv_pipe_t server, client;
static bool connected;
static uint64_t t_conn, cpu_conn; /* wall and CPU time at the connection */

static char *part; /* the unfinished input line */
static size_t partlen, partcap;
static char *out; /* output of the current read */
static size_t outlen, outcap;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static void *grow(void *p, size_t *cap, size_t need) {
  if (need <= *cap) return p;
  size_t c = *cap ? *cap : 4096;
  while (c < need) c *= 2;
  p = realloc(p, c);
  if (p == NULL) {
    fprintf(stderr, "echo: out of memory\n");
    exit(1);
  }
  *cap = c;
  return p;
}

/* The interaction id of an input line (for the output line to name it),
 * or an empty one. */
static void iid_of(const char *p, size_t n, const char **iid, size_t *len) {
  static const char key[] = "\"interactionid\":\"";
  *iid = "";
  *len = 0;
  const char *k = memmem(p, n, key, sizeof(key) - 1);
  if (k == NULL) return;
  const char *v = k + sizeof(key) - 1, *e = memchr(v, '"', (size_t)(p + n - v));
  if (e == NULL) return;
  *iid = v;
  *len = (size_t)(e - v);
}

static void line(const char *p, size_t n) {
  if (spin_ns) {
    uint64_t until = now_ns() + spin_ns;
    while (now_ns() < until) {
    }
  }
  unsigned k = line_no < ncounts ? counts[line_no] : 0;
  line_no++;
  if (k == 0) return;
  /* Each output line names the event's interaction and is line_bytes long
   * (with its newline; ixr's average), or a copy of the input line. */
  const char *iid;
  size_t il;
  iid_of(p, n, &iid, &il);
  static const char head[] = "{\"type\":\"echo\",\"interactionid\":\"";
  static const char mid[] = "\",\"pad\":\"";
  size_t fixed = sizeof(head) - 1 + il + sizeof(mid) - 1 + 3; /* "}\n */
  size_t want = line_bytes ? (line_bytes > fixed ? line_bytes : fixed) : n + 1;
  out = grow(out, &outcap, outlen + (size_t)k * want);
  for (unsigned j = 0; j < k; j++) {
    char *o = out + outlen;
    if (line_bytes == 0) {
      memcpy(o, p, n);
      o[n] = '\n';
    } else {
      memcpy(o, head, sizeof(head) - 1);
      o += sizeof(head) - 1;
      memcpy(o, iid, il);
      o += il;
      memcpy(o, mid, sizeof(mid) - 1);
      o += sizeof(mid) - 1;
      memset(o, 'x', want - fixed);
      o += want - fixed;
      memcpy(o, "\"}\n", 3);
    }
    outlen += want;
  }
}

static void on_closed(uv_handle_t *h) { (void)h; }

static void on_written(uv_write_t *req, int status) {
  free(req->data);
  free(req);
  if (status < 0) fprintf(stderr, "echo: write: %s\n", uv_strerror(status));
}

/* Writes what the last read caused: at once if the socket takes it, else
 * queued (the buffer goes with the request). */
static void flush(void) {
  if (outlen == 0) return;
  uv_buf_t b = uv_buf_init(out, (unsigned)outlen);
  int w = uv_try_write((uv_stream_t *)&client, &b, 1);
  if (w == (int)outlen) {
    outlen = 0;
    return;
  }
  size_t done = w > 0 ? (size_t)w : 0;
  uv_write_t *req = malloc(sizeof(*req));
  char *copy = malloc(outlen - done);
  if (req == NULL || copy == NULL) {
    fprintf(stderr, "echo: out of memory\n");
    exit(1);
  }
  memcpy(copy, out + done, outlen - done);
  req->data = copy;
  b = uv_buf_init(copy, (unsigned)(outlen - done));
  outlen = 0;
  int rc = uv_write(req, (uv_stream_t *)&client, &b, 1, on_written);
  if (rc < 0) {
    fprintf(stderr, "echo: write: %s\n", uv_strerror(rc));
    exit(1);
  }
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *buf) {
  (void)h;
  (void)want;
  static char rbuf[1 << 16];
  *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  uv_close((uv_handle_t *)req->handle, on_closed);
  uv_close((uv_handle_t *)&server, on_closed);
  free(req);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  if (n < 0) {
    if (n != UV_EOF) fprintf(stderr, "echo: read: %s\n", uv_strerror((int)n));
    if (partlen) line(part, partlen); /* a last line without a newline */
    partlen = 0;
    flush();
    uv_read_stop(s);
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL || uv_shutdown(req, s, on_shutdown) < 0) {
      free(req);
      uv_close((uv_handle_t *)s, on_closed);
      uv_close((uv_handle_t *)&server, on_closed);
    }
    return;
  }
  const char *p = buf->base, *end = buf->base + n;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) {
      part = grow(part, &partcap, partlen + (size_t)(end - p));
      memcpy(part + partlen, p, (size_t)(end - p));
      partlen += (size_t)(end - p);
      break;
    }
    if (partlen) {
      part = grow(part, &partcap, partlen + (size_t)(nl - p));
      memcpy(part + partlen, p, (size_t)(nl - p));
      line(part, partlen + (size_t)(nl - p));
      partlen = 0;
    } else {
      line(p, (size_t)(nl - p));
    }
    p = nl + 1;
  }
  flush();
}

static void on_connection(uv_stream_t *srv, int status) {
  if (status < 0 || connected) return;
  connected = true;
  t_conn = now_ns();
  cpu_conn = cpu_ns();
  uv_pipe_init(loop, &client, 0);
  if (uv_accept(srv, (uv_stream_t *)&client) == 0)
    uv_read_start((uv_stream_t *)&client, on_alloc, on_read);
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 5) {
    fprintf(stderr, "usage: echo PATH COUNTS [SPIN_US [LINE_BYTES]]\n");
    return 2;
  }
  if (argc >= 4) {
    char *end;
    double us = strtod(argv[3], &end);
    if (end == argv[3] || *end != '\0' || !(us >= 0 && us <= 1e6)) {
      fprintf(stderr, "echo: SPIN_US must be 0 to 1e6 microseconds, not '%s'\n", argv[3]);
      return 2;
    }
    spin_ns = (uint64_t)(us * 1000.0);
  }
  if (argc == 5) {
    char *end;
    unsigned long long b = strtoull(argv[4], &end, 10);
    if (end == argv[4] || *end != '\0' || argv[4][0] < '0' || argv[4][0] > '9' || b > 1000000) {
      fprintf(stderr, "echo: LINE_BYTES must be 0 to 1000000, not '%s'\n", argv[4]);
      return 2;
    }
    line_bytes = (size_t)b;
  }
  FILE *f = fopen(argv[2], "rb");
  if (f == NULL) {
    fprintf(stderr, "echo: %s: %s\n", argv[2], strerror(errno));
    return 1;
  }
  size_t cap = 0;
  int c;
  while ((c = fgetc(f)) != EOF) {
    counts = grow(counts, &cap, ncounts + 1);
    counts[ncounts++] = (unsigned char)c;
  }
  fclose(f);

  loop = uv_default_loop();
  uv_pipe_init(loop, &server, 0);
  remove(argv[1]);
  int rc = uv_pipe_bind(&server, argv[1]);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&server, 1, on_connection);
  if (rc < 0) {
    fprintf(stderr, "echo: listen on %s: %s\n", argv[1], uv_strerror(rc));
    return 1;
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uint64_t wall = now_ns() - t_conn, cpu = cpu_ns() - cpu_conn;
  /* how busy the server was while the client was connected */
  printf("echo lines=%zu spin_us=%.2f server_busy=%.2f\n", line_no, (double)spin_ns / 1e3,
         wall ? (double)cpu / (double)wall : 0.0);
  remove(argv[1]);
  uv_loop_close(loop);
  free(counts);
  free(part);
  free(out);
  return 0;
}
