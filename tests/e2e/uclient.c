/*
 * uclient: a plain unix-socket client for the end-to-end tests.
 *
 *   uclient PATH LINES < input > output
 *
 * Connects to PATH, sends standard input line by line (a short pause every
 * few lines, so that two clients run interleaved), and copies what ixr
 * answers to standard output until LINES lines have arrived (or 10 s).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: uclient PATH LINES < input > output\n");
    return 2;
  }
  long want = atol(argv[2]);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
  int tries = 0;
  while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    if (++tries == 100) {
      perror("uclient: connect");
      return 1;
    }
    usleep(50000);
  }
  char line[65536];
  int n = 0;
  while (fgets(line, sizeof(line), stdin) != NULL) {
    size_t len = strlen(line), off = 0;
    while (off < len) {
      ssize_t w = write(fd, line + off, len - off);
      if (w < 0) {
        perror("uclient: write");
        return 1;
      }
      off += (size_t)w;
    }
    if (++n % 3 == 0) usleep(2000);
  }
  long got = 0;
  char buf[65536];
  time_t deadline = time(NULL) + 10;
  while (got < want && time(NULL) < deadline) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r <= 0) break;
    fwrite(buf, 1, (size_t)r, stdout);
    for (ssize_t i = 0; i < r; i++) got += buf[i] == '\n';
  }
  close(fd);
  return got == want ? 0 : 1;
}
