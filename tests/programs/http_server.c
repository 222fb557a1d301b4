/* http_server PORTFILE [THREADS]: a small multi-threaded HTTP/1.1 server of
 * ours for the forwarded-socket tests (sockets_test.sh). It listens on
 * 127.0.0.1 (any port; the port goes to PORTFILE, written whole by a
 * rename), and THREADS workers (default 4) share one epoll instance with
 * EPOLLONESHOT watches on the listener and on every keep-alive connection.
 *
 * GET /body/SEED/SIZE answers SIZE bytes of http_body(SEED) (http_body.h);
 * GET /gate/SEED/SIZE answers the same, once the file named by $HTTP_GATE
 * is gone: it makes FILE.in first, so a test knows the call is in the
 * server (a call in flight while the server moves; counted, and the count
 * said at /quit: "http_server: quit, N gated calls").
 * GET /quit answers "bye" and ends the process with status 0 once sent.
 * Any other request gets 404. Requests may be pipelined. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_body.h"

#define MAX_REQUEST 8192

struct conn {
  int fd;
  size_t len;
  char buf[MAX_REQUEST];
};

static int g_epoll, g_listener;
static int g_gated;
static struct conn g_listen_tag;

static void die(const char* what) {
  fprintf(stderr, "http_server: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Writes all of it, waiting for room on a non-blocking socket. */
static int send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd q = {fd, POLLOUT, 0};
      poll(&q, 1, -1);
    } else {
      return -1;
    }
  }
  return 0;
}

static int respond(int fd, const char* line) {
  char head[256];
  unsigned long seed = 0, size = 0;
  char* body = NULL;
  size_t body_len = 0;
  int status = 200, quit = 0;
  if (sscanf(line, "GET /body/%lu/%lu ", &seed, &size) == 2 && size <= HTTP_BODY_MAX) {
    body = malloc(size + 1);
    http_body(seed, body, size);
    body_len = size;
  } else if (sscanf(line, "GET /gate/%lu/%lu ", &seed, &size) == 2 && size <= HTTP_BODY_MAX) {
    const char* gate = getenv("HTTP_GATE");
    __atomic_add_fetch(&g_gated, 1, __ATOMIC_RELAXED);
    if (gate != NULL) {
      char in[4096];
      snprintf(in, sizeof in, "%s.in", gate);
      FILE* f = fopen(in, "w");
      if (f != NULL) fclose(f);
      struct timespec tick = {0, 10 * 1000 * 1000};
      while (access(gate, F_OK) == 0) nanosleep(&tick, NULL);
    }
    body = malloc(size + 1);
    http_body(seed, body, size);
    body_len = size;
  } else if (strncmp(line, "GET /quit ", 10) == 0) {
    body = strdup("bye");
    body_len = 3;
    quit = 1;
  } else {
    body = strdup("not found");
    body_len = 9;
    status = 404;
  }
  int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: keep-alive\r\n\r\n", status,
                   status == 200 ? "OK" : "Not Found", body_len);
  int rc = send_all(fd, head, (size_t)n) == 0 && send_all(fd, body, body_len) == 0 ? 0 : -1;
  free(body);
  if (quit && rc == 0) {
    printf("http_server: quit, %d gated calls\n", __atomic_load_n(&g_gated, __ATOMIC_RELAXED));
    fflush(stdout);
    _exit(0);
  }
  return rc;
}

/* Reads what is there; answers every whole request. -1: the connection is done. */
static int serve(struct conn* c) {
  for (;;) {
    if (c->len == sizeof c->buf) return -1;
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (r == 0) return -1;
    if (r < 0) return errno == EAGAIN ? 0 : errno == EINTR ? serve(c) : -1;
    c->len += (size_t)r;
    char* end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) != NULL) {
      size_t used = (size_t)(end - c->buf) + 4;
      c->buf[used - 1] = '\0';
      if (respond(c->fd, c->buf) != 0) return -1;
      memmove(c->buf, c->buf + used, c->len - used);
      c->len -= used;
    }
  }
}

static void rearm(struct conn* c, int fd) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT | EPOLLRDHUP, .data.ptr = c};
  if (epoll_ctl(g_epoll, EPOLL_CTL_MOD, fd, &ev) != 0) die("epoll_ctl MOD");
}

static void* worker(void* arg) {
  (void)arg;
  for (;;) {
    struct epoll_event ev;
    int n = epoll_wait(g_epoll, &ev, 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    struct conn* c = ev.data.ptr;
    if (c == &g_listen_tag) {
      int fd;
      while ((fd = accept4(g_listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn* nc = calloc(1, sizeof *nc);
        nc->fd = fd;
        struct epoll_event e = {.events = EPOLLIN | EPOLLONESHOT | EPOLLRDHUP, .data.ptr = nc};
        if (epoll_ctl(g_epoll, EPOLL_CTL_ADD, fd, &e) != 0) die("epoll_ctl ADD");
      }
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) die("accept4");
      rearm(&g_listen_tag, g_listener);
      continue;
    }
    if (serve(c) != 0) {
      epoll_ctl(g_epoll, EPOLL_CTL_DEL, c->fd, NULL);
      close(c->fd);
      free(c);
    } else {
      rearm(c, c->fd);
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: http_server PORTFILE [THREADS]\n");
    return 2;
  }
  int threads = argc == 3 ? atoi(argv[2]) : 4;
  if (threads < 1 || threads > 64) {
    fprintf(stderr, "http_server: THREADS must be 1 to 64\n");
    return 2;
  }
  g_listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (g_listener < 0) die("socket");
  int one = 1;
  setsockopt(g_listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  if (bind(g_listener, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(g_listener, 512) != 0 ||
      getsockname(g_listener, (struct sockaddr*)&addr, &len) != 0)
    die("bind/listen");
  g_epoll = epoll_create1(EPOLL_CLOEXEC);
  if (g_epoll < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = &g_listen_tag};
  if (epoll_ctl(g_epoll, EPOLL_CTL_ADD, g_listener, &ev) != 0) die("epoll_ctl listener");
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
  FILE* f = fopen(tmp, "w");
  if (f == NULL) die("port file");
  fprintf(f, "%u\n", ntohs(addr.sin_port));
  fclose(f);
  if (rename(tmp, argv[1]) != 0) die("rename port file");
  printf("http_server: %d threads\n", threads);
  fflush(stdout);
  pthread_t t[64];
  for (int i = 1; i < threads; ++i) pthread_create(&t[i], NULL, worker, NULL);
  worker(NULL);
  return 0;
}
