// Writes on forwarded sockets (forwarded.h): a reset reads as TCP's.
//
// A relayed socket is a unix stream socket; when its holder's real socket
// is reset the relay closes its end so that the guest's end has ECONNRESET
// pending (socket_resets.cpp). Read first, it reads as TCP's. Written
// first, it does not: a unix socket whose peer is gone fails a write with
// EPIPE and SIGPIPE before it looks at the pending error, where TCP gives
// the pending ECONNRESET (consumed, no SIGPIPE; the data queued before the
// reset is read after it, then end of stream). So on a forwarded socket
// the agent sends with MSG_NOSIGNAL, and on EPIPE takes the pending error
// (SO_ERROR): ECONNRESET if there was one, else EPIPE with the SIGPIPE the
// kernel would have sent the thread (unless the caller asked
// MSG_NOSIGNAL). sendfile and splice cannot be asked not to signal: the
// pending error is looked at (poll's POLLERR) before them. On any other
// descriptor each is libc's own.
#include <atomic>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "compat/agent/forwarded.h"
#include "compat/agent/raw.h"

namespace mosix::agent {
namespace {

using WriteFn = ssize_t (*)(int, const void*, size_t);
using WritevFn = ssize_t (*)(int, const iovec*, int);
using SendFn = ssize_t (*)(int, const void*, size_t, int);
using SendtoFn = ssize_t (*)(int, const void*, size_t, int, const sockaddr*, socklen_t);
using SendmsgFn = ssize_t (*)(int, const msghdr*, int);
using SendfileFn = ssize_t (*)(int, int, off_t*, size_t);
using SpliceFn = ssize_t (*)(int, loff_t*, int, loff_t*, size_t, unsigned);
std::atomic<WriteFn> g_write{nullptr};
std::atomic<WritevFn> g_writev{nullptr};
std::atomic<SendFn> g_send{nullptr};
std::atomic<SendtoFn> g_sendto{nullptr};
std::atomic<SendmsgFn> g_sendmsg{nullptr};
std::atomic<SendfileFn> g_sendfile{nullptr};
std::atomic<SpliceFn> g_splice{nullptr};

ssize_t fail(long r) {
  errno = static_cast<int>(-r);
  return -1;
}

// The socket's pending error, taken (0: none).
int take_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  return sys(SYS_getsockopt, fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 ? err : 0;
}

// After a send with MSG_NOSIGNAL added on a forwarded socket: what TCP's
// send would have given (see above). `flags`: the caller's.
ssize_t as_tcp(int fd, ssize_t r, int flags) {
  if (r >= 0 || errno != EPIPE) return r;
  if (int err = take_error(fd)) return fail(-err);
  if ((flags & MSG_NOSIGNAL) == 0) sys(SYS_tgkill, sys(SYS_getpid), sys(SYS_gettid), SIGPIPE);
  errno = EPIPE;
  return -1;
}

// Before a sendfile or splice to a forwarded socket: its pending error, as
// TCP would fail the call with it (0: none, go on).
int pending_error(int fd) {
  pollfd p{fd, 0, 0};
  if (sys(SYS_poll, &p, 1, 0) != 1 || (p.revents & POLLERR) == 0) return 0;
  return take_error(fd);
}

ssize_t sendmsg_nosignal(int fd, const msghdr* msg, int flags) {
  if (auto f = libc_next(g_sendmsg, "sendmsg")) return as_tcp(fd, f(fd, msg, flags | MSG_NOSIGNAL), flags);
  long r = sys(SYS_sendmsg, fd, msg, flags | MSG_NOSIGNAL);
  return as_tcp(fd, r < 0 ? fail(r) : r, flags);
}

// Looked up in the constructor, not on a first call: write is called from
// signal handlers (self-pipe wake-ups), where dlsym may not be.
__attribute__((constructor)) void resolve_write_functions() {
  libc_next(g_write, "write");
  libc_next(g_writev, "writev");
  libc_next(g_send, "send");
  libc_next(g_sendto, "sendto");
  libc_next(g_sendmsg, "sendmsg");
  libc_next(g_sendfile, "sendfile");
  libc_next(g_splice, "splice");
}

}  // namespace
}  // namespace mosix::agent

extern "C" {

using namespace mosix::agent;

__attribute__((visibility("default"))) ssize_t write(int fd, const void* buf, size_t n) {
  if (is_forwarded(fd)) {
    iovec v{const_cast<void*>(buf), n};
    msghdr m{};
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    ssize_t r = sendmsg_nosignal(fd, &m, 0);
    if (!(r < 0 && errno == ENOTSOCK)) return r;  // else: not a socket any more (a raw close)
  }
  if (auto f = libc_next(g_write, "write")) return f(fd, buf, n);
  long r = sys(SYS_write, fd, buf, n);
  return r < 0 ? fail(r) : r;
}

__attribute__((visibility("default"))) ssize_t writev(int fd, const iovec* iov, int count) {
  if (is_forwarded(fd)) {
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(iov);
    m.msg_iovlen = static_cast<size_t>(count < 0 ? 0 : count);
    ssize_t r = count < 0 ? fail(-EINVAL) : sendmsg_nosignal(fd, &m, 0);
    if (!(r < 0 && errno == ENOTSOCK)) return r;
  }
  if (auto f = libc_next(g_writev, "writev")) return f(fd, iov, count);
  long r = sys(SYS_writev, fd, iov, count);
  return r < 0 ? fail(r) : r;
}

__attribute__((visibility("default"))) ssize_t send(int fd, const void* buf, size_t n, int flags) {
  if (is_forwarded(fd)) {
    if (auto f = libc_next(g_send, "send")) return as_tcp(fd, f(fd, buf, n, flags | MSG_NOSIGNAL), flags);
  }
  if (auto f = libc_next(g_send, "send")) return f(fd, buf, n, flags);
  long r = sys(SYS_sendto, fd, buf, n, flags, nullptr, 0);
  return r < 0 ? fail(r) : r;
}

__attribute__((visibility("default"))) ssize_t sendto(int fd, const void* buf, size_t n, int flags,
                                                      const sockaddr* to, socklen_t to_len) {
  if (is_forwarded(fd)) {
    if (auto f = libc_next(g_sendto, "sendto"))
      return as_tcp(fd, f(fd, buf, n, flags | MSG_NOSIGNAL, to, to_len), flags);
  }
  if (auto f = libc_next(g_sendto, "sendto")) return f(fd, buf, n, flags, to, to_len);
  long r = sys(SYS_sendto, fd, buf, n, flags, to, to_len);
  return r < 0 ? fail(r) : r;
}

__attribute__((visibility("default"))) ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  if (is_forwarded(fd)) return sendmsg_nosignal(fd, msg, flags);
  if (auto f = libc_next(g_sendmsg, "sendmsg")) return f(fd, msg, flags);
  long r = sys(SYS_sendmsg, fd, msg, flags);
  return r < 0 ? fail(r) : r;
}

__attribute__((visibility("default"))) ssize_t sendfile(int out, int in, off_t* offset, size_t n) {
  if (is_forwarded(out))
    if (int err = pending_error(out)) return fail(-err);
  if (auto f = libc_next(g_sendfile, "sendfile")) return f(out, in, offset, n);
  long r = sys(SYS_sendfile, out, in, offset, n);
  return r < 0 ? fail(r) : r;
}

__attribute__((visibility("default"))) ssize_t sendfile64(int out, int in, off_t* offset, size_t n) {
  return sendfile(out, in, offset, n);
}

__attribute__((visibility("default"))) ssize_t splice(int in, loff_t* in_off, int out, loff_t* out_off, size_t n,
                                                      unsigned flags) {
  if (is_forwarded(out))
    if (int err = pending_error(out)) return fail(-err);
  if (auto f = libc_next(g_splice, "splice")) return f(in, in_off, out, out_off, n, flags);
  long r = sys(SYS_splice, in, in_off, out, out_off, n, flags);
  return r < 0 ? fail(r) : r;
}

}  // extern "C"
