/*
 * sock.c: the Unix socket client of the benchmarks (build/bench/sock).
 *
 *   sock throughput PATH EVENTS.ndjson
 *   sock latency PATH EVENTS.ndjson COUNTS RATE [SECONDS]
 *
 * Talks to `ixr run --listen unix:PATH` over one connection, from one
 * thread that polls the socket for both directions: it sends and reads at
 * the same time, so neither side's buffers ever stall the other.
 *
 * throughput: sends the whole file as fast as the socket takes it, then
 * shuts down its sending side; ixr finishes the stream, writes the last
 * output and closes the connection. Time: from connect to that close.
 *   bench=sock_throughput events=N seconds=S events_per_s=X lines_out=L
 *
 * latency: sends event i at t0 + i/RATE (a fixed rate, whatever ixr does)
 * for SECONDS (default 3) or to the end of the file. COUNTS is the --counts
 * file of bench/gen: how many output lines each input line causes. ixr
 * handles the lines of a stream one at a time and writes all the output of
 * one before reading the next, so output line k belongs to the oldest event
 * that still waits for output. An event's turnaround is the arrival of its
 * last output line minus the time it was due to be sent (not the time it
 * was sent: a late client does not hide a slow server). Events that cause
 * no output (chat messages) cannot be timed and are not counted. Each
 * output line that names an interaction is checked against its event.
 *   bench=latency rate=R events=N timed=T p50_us=.. p99_us=.. p999_us=..
 *     max_us=.. achieved_per_s=.. mismatches=M unanswered=U [server_busy=B]
 * achieved_per_s is the rate the lines went out at (the client may fall
 * behind its schedule). Events still waiting for output when the server
 * closes or stays silent for 10 s are `unanswered`: then the exit status is
 * 1, since the worst turnarounds are missing. With BENCH_SERVER_PID set,
 * server_busy is that process's CPU time over the traffic's wall time.
 * With BENCH_LAT_DUMP=FILE in the environment it also writes, for every
 * timed event in order, its due time and its turnaround, in microseconds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static int connect_unix(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  for (int tries = 0; tries < 500; tries++) { /* ixr may still be starting */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      return fd;
    }
    if (errno != ENOENT && errno != ECONNREFUSED) break;
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  close(fd);
  return -1;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static size_t count_lines(const char *p, size_t n) {
  size_t k = 0;
  for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))) != NULL; q++) k++;
  return k;
}

/* ---- throughput --------------------------------------------------------- */

static int throughput(const char *path, const char *file) {
  size_t len;
  char *data = bench_read_file(file, &len);
  size_t events = count_lines(data, len);
  uint64_t t0 = bench_now_ns();
  int fd = connect_unix(path);
  if (fd < 0) {
    fprintf(stderr, "sock: connect %s: %s\n", path, strerror(errno));
    return 1;
  }
  t0 = bench_now_ns();
  size_t sent = 0, lines = 0;
  bool wr_open = true;
  static char rbuf[1 << 16];
  for (;;) {
    struct pollfd p = {fd, (short)(POLLIN | (wr_open ? POLLOUT : 0)), 0};
    if (poll(&p, 1, 30000) <= 0) {
      fprintf(stderr, "sock: timed out\n");
      return 1;
    }
    if (wr_open && (p.revents & POLLOUT)) {
      size_t chunk = len - sent < (1 << 18) ? len - sent : (1 << 18);
      ssize_t w = write(fd, data + sent, chunk);
      if (w > 0) sent += (size_t)w;
      else if (w < 0 && errno != EAGAIN) {
        fprintf(stderr, "sock: write: %s\n", strerror(errno));
        return 1;
      }
      if (sent == len) {
        shutdown(fd, SHUT_WR);
        wr_open = false;
      }
    }
    if (p.revents & (POLLIN | POLLHUP)) {
      ssize_t r = read(fd, rbuf, sizeof(rbuf));
      if (r == 0) break;
      if (r > 0) lines += count_lines(rbuf, (size_t)r);
      else if (errno != EAGAIN) {
        fprintf(stderr, "sock: read: %s\n", strerror(errno));
        return 1;
      }
    }
  }
  uint64_t t1 = bench_now_ns();
  close(fd);
  double secs = (double)(t1 - t0) / 1e9;
  printf("bench=sock_throughput events=%zu seconds=%.4f events_per_s=%.0f lines_out=%zu\n",
         events, secs, (double)events / secs, lines);
  free(data);
  return sent == len ? 0 : 1;
}

/* ---- latency ------------------------------------------------------------ */

/* the interactionid of a JSON line, if it has one (the generator's and
 * ixr's lines write it as "interactionid":"..." without escapes) */
static bool iid_of(const char *p, size_t n, const char **iid, size_t *ilen) {
  static const char key[] = "\"interactionid\":\"";
  const char *end = p + n;
  for (const char *q = p; q + sizeof(key) - 1 < end; q++) {
    q = memchr(q, '"', (size_t)(end - q));
    if (q == NULL) return false;
    if ((size_t)(end - q) > sizeof(key) - 1 && memcmp(q, key, sizeof(key) - 1) == 0) {
      const char *s = q + sizeof(key) - 1;
      const char *e = memchr(s, '"', (size_t)(end - s));
      if (e == NULL) return false;
      *iid = s;
      *ilen = (size_t)(e - s);
      return true;
    }
  }
  return false;
}

/* The user + system CPU time of process PID, in clock ticks, or -1. */
static long proc_ticks(const char *pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%s/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* after the command name */
  long utime = 0, stime = 0;
  if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld",
                          &utime, &stime) != 2)
    return -1;
  return utime + stime;
}

static int latency(const char *path, const char *file, const char *countsf, double rate,
                   double seconds) {
  size_t len, nc;
  char *data = bench_read_file(file, &len);
  unsigned char *counts = (unsigned char *)bench_read_file(countsf, &nc);
  size_t nlines = count_lines(data, len);
  if (nc != nlines) {
    fprintf(stderr, "sock: %s has %zu entries for %zu lines\n", countsf, nc, nlines);
    return 1;
  }
  size_t n = (size_t)(rate * seconds);
  if (n > nlines) n = nlines;
  if (n == 0) {
    fprintf(stderr, "sock: RATE x SECONDS sends no line\n");
    return 2;
  }
  /* line starts */
  size_t *off = malloc((n + 1) * sizeof(*off));
  uint64_t *due = malloc(n * sizeof(*due));
  uint64_t *lat = malloc(n * sizeof(*lat));
  size_t *lat_ev = malloc(n * sizeof(*lat_ev)); /* which event each is */
  off[0] = 0;
  for (size_t i = 0, pos = 0; i < n; i++) {
    const char *nl = memchr(data + pos, '\n', len - pos);
    pos = (size_t)(nl - data) + 1;
    off[i + 1] = pos;
  }
  int fd = connect_unix(path);
  if (fd < 0) {
    fprintf(stderr, "sock: connect %s: %s\n", path, strerror(errno));
    return 1;
  }
  double step = 1e9 / rate;
  uint64_t t0 = bench_now_ns() + 1000000;
  for (size_t i = 0; i < n; i++) due[i] = t0 + (uint64_t)((double)i * step);

  size_t next = 0;       /* next line to send */
  size_t sent_bytes = 0; /* bytes of lines [0, next) written */
  size_t head = 0;       /* oldest event still waiting for output */
  while (head < n && counts[head] == 0) head++;
  unsigned left = head < n ? counts[head] : 0; /* lines it still waits for */
  size_t ntimed = 0, mismatches = 0, extra = 0;
  bool shut = false;
  static char rbuf[1 << 16];
  size_t acccap = 1 << 16, acclen = 0;
  char *acc = malloc(acccap); /* the output line being read */
  uint64_t last_progress = bench_now_ns();
  uint64_t t_sent = 0; /* when the last line was written whole */
  /* How busy the server is, over the traffic only (BENCH_SERVER_PID). */
  const char *spid = getenv("BENCH_SERVER_PID");
  long srv_ticks0 = spid ? proc_ticks(spid) : -1, srv_ticks1 = -1;
  uint64_t t_done = 0; /* when the last event got its last line */

  for (;;) {
    uint64_t now = bench_now_ns();
    while (next < n && due[next] <= now) next++;
    /* write what is due */
    while (sent_bytes < off[next]) {
      ssize_t w = write(fd, data + sent_bytes, off[next] - sent_bytes);
      if (w > 0) sent_bytes += (size_t)w;
      else if (w < 0 && errno == EAGAIN) break;
      else {
        fprintf(stderr, "sock: write: %s\n", strerror(errno));
        return 1;
      }
    }
    if (!shut && next == n && sent_bytes == off[n]) {
      t_sent = bench_now_ns();
      shutdown(fd, SHUT_WR);
      shut = true;
    }
    /* read what has come */
    bool closed = false;
    for (;;) {
      ssize_t r = read(fd, rbuf, sizeof(rbuf));
      if (r == 0) {
        closed = true;
        break;
      }
      if (r < 0) {
        if (errno == EAGAIN) break;
        fprintf(stderr, "sock: read: %s\n", strerror(errno));
        return 1;
      }
      uint64_t at = bench_now_ns();
      last_progress = at;
      size_t i = 0;
      while (i < (size_t)r) {
        char *nl = memchr(rbuf + i, '\n', (size_t)r - i);
        size_t k = nl ? (size_t)(nl - (rbuf + i)) : (size_t)r - i;
        if (acclen + k > acccap) {
          acccap = (acclen + k) * 2;
          acc = realloc(acc, acccap);
        }
        memcpy(acc + acclen, rbuf + i, k);
        acclen += k;
        i += k;
        if (nl == NULL) break;
        i++; /* the newline */
        /* a complete output line: it belongs to the oldest waiting event */
        if (head >= n) {
          extra++;
        } else {
          const char *a, *b;
          size_t al, bl;
          if (iid_of(acc, acclen, &a, &al) &&
              iid_of(data + off[head], off[head + 1] - off[head], &b, &bl) &&
              (al != bl || memcmp(a, b, al) != 0))
            mismatches++;
          if (--left == 0) {
            lat_ev[ntimed] = head;
            lat[ntimed++] = at > due[head] ? at - due[head] : 0;
            head++;
            while (head < n && counts[head] == 0) head++;
            left = head < n ? counts[head] : 0;
            if (head >= n) { /* all answered: the traffic's window ends */
              t_done = at;
              srv_ticks1 = spid ? proc_ticks(spid) : -1;
            }
          }
        }
        acclen = 0;
      }
    }
    if (closed) break;
    if (bench_now_ns() - last_progress > 10000000000ull) {
      fprintf(stderr, "sock: no output for 10 s (event %zu of %zu)\n", head, n);
      break;
    }
    /* sleep until the next send is due or output arrives */
    struct pollfd p = {fd, POLLIN, 0};
    if (sent_bytes < off[next]) p.events |= POLLOUT;
    /* Everything sent: wake up now and then all the same, so that a
     * server that stops answering trips the 10 s check above. */
    struct timespec ts;
    now = bench_now_ns();
    uint64_t wait = next < n ? (due[next] > now ? due[next] - now : 0) : 100000000ull;
    ts.tv_sec = (time_t)(wait / 1000000000ull);
    ts.tv_nsec = (long)(wait % 1000000000ull);
    if (ppoll(&p, 1, &ts, NULL) < 0 && errno != EINTR) {
      fprintf(stderr, "sock: poll: %s\n", strerror(errno));
      return 1;
    }
  }
  /* The window: to the last answer, or to the end if some never came. */
  uint64_t t_end = t_done != 0 ? t_done : bench_now_ns();
  if (t_done == 0) srv_ticks1 = spid ? proc_ticks(spid) : -1;
  close(fd);
  /* Events that never got all their output: their turnarounds, the worst
   * of all, are unknown, so the run is no measurement. */
  size_t unanswered = 0;
  for (size_t i = head; i < n; i++) unanswered += counts[i] != 0;
  const char *dump = getenv("BENCH_LAT_DUMP");
  if (dump != NULL) {
    FILE *f = fopen(dump, "w");
    if (f != NULL) {
      fprintf(f, "# t0_ns=%llu (CLOCK_MONOTONIC)\n", (unsigned long long)t0);
      for (size_t i = 0; i < ntimed; i++)
        fprintf(f, "%.1f %.1f\n", (double)(due[lat_ev[i]] - t0) / 1e3, (double)lat[i] / 1e3);
      fclose(f);
    }
  }
  qsort(lat, ntimed, sizeof(*lat), cmp_u64);
#define PCT(p) (ntimed ? (double)lat[(size_t)((double)(ntimed - 1) * (p))] / 1000.0 : 0)
  /* The rate the lines actually went out at: the intervals between the
   * first due time and the moment the last line was written whole. */
  double span = t_sent > t0 ? (double)(t_sent - t0) / 1e9 : 0;
  char busy[64] = "";
  if (srv_ticks0 >= 0 && srv_ticks1 >= srv_ticks0 && t_end > t0)
    snprintf(busy, sizeof(busy), " server_busy=%.2f",
             (double)(srv_ticks1 - srv_ticks0) / (double)sysconf(_SC_CLK_TCK) /
                 ((double)(t_end - t0) / 1e9));
  printf("bench=latency rate=%.0f events=%zu timed=%zu p50_us=%.0f p90_us=%.0f p99_us=%.0f "
         "p999_us=%.0f max_us=%.0f achieved_per_s=%.0f mismatches=%zu extra_lines=%zu "
         "unanswered=%zu seconds=%.2f%s\n",
         rate, n, ntimed, PCT(0.50), PCT(0.90), PCT(0.99), PCT(0.999),
         ntimed ? (double)lat[ntimed - 1] / 1000.0 : 0,
         span > 0 && next > 1 ? (double)(next - 1) / span : 0,
         mismatches, extra, unanswered, (double)(t_end - t0) / 1e9, busy);
#undef PCT
  if (unanswered > 0)
    fprintf(stderr, "sock: %zu events got no (or not all their) output: no measurement\n",
            unanswered);
  free(off);
  free(due);
  free(lat);
  free(lat_ev);
  free(acc);
  free(data);
  free(counts);
  return mismatches == 0 && extra == 0 && unanswered == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 4 && strcmp(argv[1], "throughput") == 0) return throughput(argv[2], argv[3]);
  if ((argc == 6 || argc == 7) && strcmp(argv[1], "latency") == 0) {
    char *e1, *e2 = NULL;
    double rate = strtod(argv[5], &e1), secs = argc == 7 ? strtod(argv[6], &e2) : 3.0;
    bool ok = e1 != argv[5] && *e1 == '\0' && (argc == 6 || (e2 != argv[6] && *e2 == '\0'));
    if (ok && rate > 0 && rate <= 1e7 && secs > 0 && secs <= 3600)
      return latency(argv[2], argv[3], argv[4], rate, secs);
    fprintf(stderr, "sock: RATE must be a number of events/s (0 to 1e7) and SECONDS 0 to 3600\n");
  }
  fprintf(stderr,
          "usage: sock throughput PATH EVENTS.ndjson\n"
          "       sock latency PATH EVENTS.ndjson COUNTS RATE [SECONDS]\n");
  return 2;
}
