/*
 * timecmd.c: runs one command and reports its wall and CPU time
 * (build/bench/timecmd).
 *
 *   timecmd [-i IN] [-o OUT] -- COMMAND ARG...
 *
 * Standard input comes from IN and standard output goes to OUT (default:
 * inherited). Prints one line on standard error, whatever the command does:
 *   timecmd wall_s=... user_s=... sys_s=... maxrss_kb=... status=...
 * and exits with the command's status.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* wait4 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

int main(int argc, char **argv) {
  const char *in = NULL, *out = NULL;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "-i") == 0 && i + 1 < argc) in = argv[++i];
    else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) out = argv[++i];
    else if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else break;
  }
  if (i >= argc) {
    fprintf(stderr, "usage: timecmd [-i IN] [-o OUT] -- COMMAND ARG...\n");
    return 2;
  }
  double t0 = now_s();
  pid_t pid = fork();
  if (pid < 0) {
    perror("timecmd: fork");
    return 1;
  }
  if (pid == 0) {
    if (in) {
      int fd = open(in, O_RDONLY);
      if (fd < 0 || dup2(fd, 0) < 0) {
        fprintf(stderr, "timecmd: %s: %s\n", in, strerror(errno));
        _exit(127);
      }
      close(fd);
    }
    if (out) {
      int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || dup2(fd, 1) < 0) {
        fprintf(stderr, "timecmd: %s: %s\n", out, strerror(errno));
        _exit(127);
      }
      close(fd);
    }
    execvp(argv[i], argv + i);
    fprintf(stderr, "timecmd: %s: %s\n", argv[i], strerror(errno));
    _exit(127);
  }
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("timecmd: wait4");
      return 1;
    }
  }
  double wall = now_s() - t0;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  fprintf(stderr, "timecmd wall_s=%.4f user_s=%.4f sys_s=%.4f maxrss_kb=%ld status=%d\n", wall,
          tv_s(ru.ru_utime), tv_s(ru.ru_stime), ru.ru_maxrss, code);
  return code;
}
