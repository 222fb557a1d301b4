/* ckpt_socket [STEPS]: holds a TCP socket listening on 127.0.0.1 (any port)
 * and a TCP connection to it (both ends) while it computes, so that a
 * checkpoint must be refused with a socket's descriptor named (a listener
 * alone could be restored; a connection cannot), and the program must keep
 * running to its normal result.
 * The descriptor and port go to stderr ("ckpt_socket: listening fd=N
 * port=P"); stdout holds only deterministic lines. At the end it checks the
 * socket still listens on the same port. Ten progress lines, then
 * "RESULT ckpt_socket <checksum> OK". Default 60000 steps. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ckpt_common.h"

#define NAME "ckpt_socket"

static unsigned port_of(int fd) {
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  if (getsockname(fd, (struct sockaddr*)&addr, &len) != 0) ckpt_fail(NAME, "getsockname: %s", strerror(errno));
  return ntohs(addr.sin_port);
}

int main(int argc, char** argv) {
  long steps = ckpt_steps(NAME, argc, argv, 60000);
  ckpt_print("%s start steps=%ld\n", NAME, steps);

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) ckpt_fail(NAME, "socket: %s", strerror(errno));
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, (struct sockaddr*)&addr, sizeof addr) != 0) ckpt_fail(NAME, "bind 127.0.0.1:0: %s", strerror(errno));
  if (listen(fd, 4) != 0) ckpt_fail(NAME, "listen: %s", strerror(errno));
  const unsigned port = port_of(fd);
  addr.sin_port = htons((unsigned short)port);
  int client = socket(AF_INET, SOCK_STREAM, 0);
  if (client < 0 || connect(client, (struct sockaddr*)&addr, sizeof addr) != 0)
    ckpt_fail(NAME, "connect to itself: %s", strerror(errno));
  int served = -1;
  while ((served = accept(fd, NULL, NULL)) < 0 && (errno == EAGAIN || errno == EINTR)) {
  }
  if (served < 0) ckpt_fail(NAME, "accept: %s", strerror(errno));
  fprintf(stderr, "%s: listening fd=%d port=%u, connected fds %d and %d\n", NAME, fd, port, client, served);
  fflush(stderr);

  uint64_t sum = 0;
  for (long step = 1; step <= steps; ++step) {
    for (int i = 0; i < 10000; ++i) sum = ckpt_mix(sum, (uint64_t)(step ^ i));
    if (ckpt_is_tenth(step, steps)) ckpt_print("%s step %ld/%ld sum=%016llx\n", NAME, step, steps, (unsigned long long)sum);
  }

  if (port_of(fd) != port) ckpt_fail(NAME, "the listening socket changed port");
  int c = accept(fd, NULL, NULL);
  if (c >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
    ckpt_fail(NAME, "accept on the idle listening socket: %s", c >= 0 ? "got a connection" : strerror(errno));
  if (write(client, "c", 1) != 1) ckpt_fail(NAME, "the connection is gone: %s", strerror(errno));
  char byte = 0;
  if (read(served, &byte, 1) != 1 || byte != 'c') ckpt_fail(NAME, "the connection does not carry data");
  close(client);
  close(served);
  close(fd);
  ckpt_result(NAME, sum);
  return 0;
}
