/* http_load PORT CONNS PROGRESS STOP [COUNT]: a load generator for
 * http_server (sockets_test.sh). CONNS threads each keep one keep-alive
 * connection to 127.0.0.1:PORT, send 1 to 40 requests on it (now and then
 * three pipelined at once), check every response byte for byte against
 * http_body.h, close it and open the next. Bodies are small, with every
 * tenth request 64-256 KiB.
 *
 * It runs until the file STOP exists (or COUNT requests were answered),
 * writing the number answered so far to PROGRESS now and then (a decimal
 * number padded with spaces, rewritten in place). At the end:
 * "http_load: requests N errors E connections C seconds S rate R/s p99 L ms
 * worst-second W" on stdout (L: the 99th percentile of the time from a
 * request's send to its whole answer; W: the fewest answers in one whole
 * second of the run), each error on stderr, and status 1 if there was any. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_body.h"

static unsigned short g_port;
static const char* g_stop;
static long g_count;
static int g_progress = -1;
static atomic_long g_done, g_errors, g_conns;
static struct timespec g_start;
#define MAX_SECONDS 3600
#define LATENCY_BUCKETS 4096 /* 0.1 ms each; the last holds the rest */
static atomic_long g_per_second[MAX_SECONDS];
static atomic_long g_latency[LATENCY_BUCKETS];

static double since(const struct timespec* t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static int stopped(void) {
  struct stat st;
  return (g_count > 0 && atomic_load(&g_done) >= g_count) || stat(g_stop, &st) == 0;
}

static void note_done(const struct timespec* sent) {
  long bucket = (long)(since(sent) * 1e4);
  atomic_fetch_add(&g_latency[bucket < LATENCY_BUCKETS ? bucket : LATENCY_BUCKETS - 1], 1);
  long second = (long)since(&g_start);
  if (second < MAX_SECONDS) atomic_fetch_add(&g_per_second[second], 1);
  long n = atomic_fetch_add(&g_done, 1) + 1;
  if (n % 100 == 0 && g_progress >= 0) {
    char line[32];
    int len = snprintf(line, sizeof line, "%-20ld\n", n);
    if (pwrite(g_progress, line, (size_t)len, 0) < 0) perror("http_load: progress");
  }
}

static int error(int thread, const char* what) {
  fprintf(stderr, "http_load: connection of thread %d: %s (%s)\n", thread, what, errno ? strerror(errno) : "");
  atomic_fetch_add(&g_errors, 1);
  return -1;
}

static int send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads one response into buf (headers, then Content-Length bytes) and
 * checks it against the body expected. */
static int read_response(int fd, int thread, char* buf, size_t cap, size_t* have, const char* want, size_t want_len) {
  char* end;
  size_t head = 0;
  for (;;) {
    if ((end = memmem(buf, *have, "\r\n\r\n", 4)) != NULL) {
      head = (size_t)(end - buf) + 4;
      break;
    }
    ssize_t r = recv(fd, buf + *have, cap - *have, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return error(thread, r == 0 ? "the server closed it before answering" : "recv");
    *have += (size_t)r;
  }
  unsigned long len = 0;
  char* cl = memmem(buf, head, "Content-Length: ", 16);
  if (strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) != 0 || cl == NULL || sscanf(cl + 16, "%lu", &len) != 1 ||
      len != want_len) {
    errno = 0;
    return error(thread, "a wrong status line or length");
  }
  while (*have < head + len) {
    ssize_t r = recv(fd, buf + *have, cap - *have, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return error(thread, r == 0 ? "the server closed it in the middle of a body" : "recv");
    *have += (size_t)r;
  }
  if (memcmp(buf + head, want, want_len) != 0) {
    errno = 0;
    return error(thread, "a body that differs from the one expected");
  }
  memmove(buf, buf + head + len, *have - head - len);
  *have -= head + len;
  return 0;
}

static void* client(void* arg) {
  int thread = (int)(long)arg;
  unsigned long next = (unsigned long)thread << 32;
  unsigned rng = (unsigned)thread * 7919u + 1;
  size_t cap = 2 * HTTP_BODY_MAX;
  char* buf = malloc(cap);
  char* want[3];
  for (int i = 0; i < 3; ++i) want[i] = malloc(HTTP_BODY_MAX);
  while (!stopped()) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(g_port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) {
      error(thread, "connect");
      if (fd >= 0) close(fd);
      break;
    }
    atomic_fetch_add(&g_conns, 1);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int requests = 1 + (int)((rng = rng * 1103515245u + 12345u) >> 16) % 40;
    size_t have = 0;
    int ok = 1;
    for (int r = 0; ok && r < requests && !stopped();) {
      int batch = ((rng = rng * 1103515245u + 12345u) >> 16) % 8 == 0 ? 3 : 1;
      char req[3][128];
      size_t len[3];
      char out[384];
      size_t out_len = 0;
      for (int b = 0; b < batch; ++b) {
        unsigned long seed = ++next;
        rng = rng * 1103515245u + 12345u;
        len[b] = seed % 10 == 0 ? (64u << 10) + (rng >> 8) % (192u << 10) : 10 + (rng >> 8) % 2000;
        http_body(seed, want[b], len[b]);
        int n = snprintf(req[b], sizeof req[b], "GET /body/%lu/%zu HTTP/1.1\r\nHost: test\r\n\r\n", seed, len[b]);
        memcpy(out + out_len, req[b], (size_t)n);
        out_len += (size_t)n;
      }
      struct timespec sent;
      clock_gettime(CLOCK_MONOTONIC, &sent);
      if (send_all(fd, out, out_len) != 0) {
        ok = error(thread, "send") == 0;
        break;
      }
      for (int b = 0; ok && b < batch; ++b) {
        if (read_response(fd, thread, buf, cap, &have, want[b], len[b]) != 0) {
          ok = 0;
        } else {
          note_done(&sent);
        }
      }
      r += batch;
    }
    close(fd);
  }
  free(buf);
  for (int i = 0; i < 3; ++i) free(want[i]);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 5 || argc > 6) {
    fprintf(stderr, "usage: http_load PORT CONNS PROGRESS STOP [COUNT]\n");
    return 2;
  }
  g_port = (unsigned short)atoi(argv[1]);
  int conns = atoi(argv[2]);
  g_stop = argv[4];
  g_count = argc == 6 ? atol(argv[5]) : 0;
  if (g_port == 0 || conns < 1 || conns > 1000) {
    fprintf(stderr, "http_load: PORT and CONNS (1 to 1000) are numbers\n");
    return 2;
  }
  g_progress = open(argv[3], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (g_progress < 0) {
    perror("http_load: progress file");
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  g_start = t0;
  pthread_t* t = calloc((size_t)conns, sizeof *t);
  for (int i = 0; i < conns; ++i) pthread_create(&t[i], NULL, client, (void*)(long)i);
  for (int i = 0; i < conns; ++i) pthread_join(t[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  long done = atomic_load(&g_done), errors = atomic_load(&g_errors);
  char line[32];
  int len = snprintf(line, sizeof line, "%-20ld\n", done);
  if (pwrite(g_progress, line, (size_t)len, 0) < 0) perror("http_load: progress");
  long p99 = 0, seen = 0;
  for (; p99 < LATENCY_BUCKETS && seen < done - done / 100; ++p99) seen += atomic_load(&g_latency[p99]);
  long worst = -1;
  for (long i = 0; i + 1 < (long)s && i < MAX_SECONDS; ++i)
    if (worst < 0 || atomic_load(&g_per_second[i]) < worst) worst = atomic_load(&g_per_second[i]);
  printf("http_load: requests %ld errors %ld connections %ld seconds %.2f rate %.0f/s p99 %.1f ms worst-second %ld\n",
         done, errors, atomic_load(&g_conns), s, done / s, p99 / 10.0, worst);
  return errors == 0 ? 0 : 1;
}
