// The runtime's own link inside a guest: compat/pvm's connection to its node
// daemon's guest socket (docs/pvm.md, "Checkpoints and moves"). The library
// names it with mosix_runtime_link(fd). An image for a move carries it as a
// new, unconnected unix stream socket at the same number: what the guest had
// not read of it is its node daemon's to take along (it gives it to the
// guest's link on the next node). An image to a file carries it with what is
// queued on it taken into the process's memory (below). Either way the library connects a new socket to the
// guest socket of the node it runs on next, at the same number. Any other
// connected socket is refused as before (sockets.cpp).
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <cstddef>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "compat/agent/sockets.h"
#include "runtime/ckpt/request_protocol.h"

namespace mosix::agent {
namespace {

// In the library's .data, so a checkpoint carries them; the inode tells the
// link from a socket the program opened later at the same number.
long g_link_fd = -1;
std::uint64_t g_link_ino = 0;
// Shut for reading by a checkpoint to a file, until the library names a new
// link (its queue is in g_held then). A move takes it as any link: its node
// daemon takes along what it kept for the task (GuestService::detach).
bool g_link_shut = false;
// What was queued on the link when an image to a file shut it: taken out of
// the socket into memory of the process (an anonymous mapping, so the image
// carries it as memory, however much it is, and no restore has to queue it
// again), for the library to take (mosix_runtime_link_take) before it reads
// its next link.
std::uint8_t* g_held = nullptr;
std::size_t g_held_cap = 0, g_held_len = 0, g_held_off = 0;

}  // namespace

void hold_socket_queue(long fd, std::uint8_t** held, std::size_t* cap, std::size_t* len) {
  for (;;) {
    if (*cap - *len < (64u << 10)) {
      std::size_t more = *cap == 0 ? (1u << 20) : 2 * *cap;
      long p = *held == nullptr ? sys(SYS_mmap, 0, more, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                                : sys(SYS_mremap, *held, *cap, more, MREMAP_MAYMOVE);
      if (p < 0 && p > -4096) return;  // what is left stays queued on the socket
      *held = reinterpret_cast<std::uint8_t*>(p);
      *cap = more;
    }
    long n = sys(SYS_recvfrom, fd, *held + *len, *cap - *len, MSG_DONTWAIT, 0, 0);
    if (n == -4 /* EINTR */) continue;
    if (n <= 0) return;
    *len += static_cast<std::size_t>(n);
  }
}

namespace {

// The record of an AF_UNIX stream socket in `state`, with `partner` for
// socket_image_data's caller; a pair end's record names its other end as
// closed. Its length in s->encoded, or -1.
long unix_stream_image_data(SocketScratch* s, mosix::ckpt::SocketState state, long partner) {
  mosix::ckpt::SocketRecord& r = s->rec;
  r = mosix::ckpt::SocketRecord{};
  r.family = AF_UNIX;
  r.type = SOCK_STREAM;
  r.protocol = 0;
  r.state = state;
  s->partner = partner;
  s->shutdown = 0;
  if (state == mosix::ckpt::SocketState::pair) {
    __builtin_memset(s->peer, 0, 9);  // the other end's inode (0: closed), this end's shutdown bits
    r.peer = mosix::ckpt::Blob(s->peer, 9);
  }
  std::size_t len = 0;
  if (!mosix::ckpt::encode(r, s->encoded, sizeof s->encoded, &len)) return -1;
  return static_cast<long>(len);
}

}  // namespace

long closed_pair_image_data(SocketScratch* s) {
  return unix_stream_image_data(s, mosix::ckpt::SocketState::pair, kPeerClosed);
}

long runtime_link_image_data(long fd, bool for_move, SocketScratch* s) {
  if (fd != g_link_fd || g_link_fd < 0) return -1;
  struct stat st{};
  if (sys(SYS_fstat, fd, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_ino != g_link_ino) return -1;
  if (!for_move) {
    // A checkpoint to a file: no node daemon takes what is queued on the
    // link, so the image does. Shut for reading first: the node daemon
    // writes no more (it keeps the rest for the task's next attach, as it
    // does for a task that runs on after the image), and what is queued is
    // all there is. That goes into g_held (memory, in the image as any);
    // the link is written as a socketpair end whose other end is closed (a
    // restart reads its end, takes g_held, and attaches again). The check
    // of the descriptors comes here first, before the memory is listed.
    if (!g_link_shut) {
      sys(SYS_shutdown, fd, SHUT_RD);
      g_link_shut = true;
      hold_socket_queue(fd, &g_held, &g_held_cap, &g_held_len);
    }
    return closed_pair_image_data(s);
  }
  return unix_stream_image_data(s, mosix::ckpt::SocketState::plain, -1);
}

}  // namespace mosix::agent

// The library's word: `fd` is its link to the node daemon (-1: none any more).
extern "C" __attribute__((visibility("default"))) void mosix_runtime_link(int fd) {
  struct stat st{};
  if (fd < 0 || mosix::agent::sys(SYS_fstat, fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    mosix::agent::g_link_fd = -1;
    return;
  }
  mosix::agent::g_link_ino = st.st_ino;
  mosix::agent::g_link_fd = fd;
  mosix::agent::g_link_shut = false;
}

// The library takes what the agent held of its old link (up to `cap` bytes;
// 0: nothing left), before it reads the link's end and attaches again.
extern "C" __attribute__((visibility("default"))) std::size_t mosix_runtime_link_take(void* buf, std::size_t cap) {
  using namespace mosix::agent;
  std::uint64_t old = 0;
  sys(SYS_rt_sigprocmask, SIG_BLOCK, &kAgentSignals, &old, 8);  // no checkpoint while g_held changes
  std::size_t n = g_held_len - g_held_off < cap ? g_held_len - g_held_off : cap;
  if (n > 0) __builtin_memcpy(buf, g_held + g_held_off, n);
  g_held_off += n;
  if (g_held != nullptr && g_held_off == g_held_len) {
    sys(SYS_munmap, g_held, g_held_cap);
    g_held = nullptr;
    g_held_cap = g_held_len = g_held_off = 0;
  }
  sys(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
  return n;
}
