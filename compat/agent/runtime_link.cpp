// The runtime's own link inside a guest: compat/pvm's connection to its node
// daemon's guest socket (docs/pvm.md, "Checkpoints and moves"). The library
// names it with mosix_runtime_link(fd). An image for a move carries it as a
// new, unconnected unix stream socket at the same number: what the guest had
// not read of it is its node daemon's to take along (it gives it to the
// guest's link on the next node). An image to a file carries it with what is
// queued on it (below). Either way the library connects a new socket to the
// guest socket of the node it runs on next, at the same number. Any other
// connected socket is refused as before (sockets.cpp).
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "compat/agent/raw.h"
#include "compat/agent/sockets.h"

namespace mosix::agent {
namespace {

// In the library's .data, so a checkpoint carries them; the inode tells the
// link from a socket the program opened later at the same number.
long g_link_fd = -1;
std::uint64_t g_link_ino = 0;
// Shut for reading by a checkpoint to a file, until the library names a new
// link: a move then refuses it (the daemon no longer writes what it holds
// for the task to this link, so it could not take it along).
bool g_link_shut = false;

}  // namespace

long runtime_link_image_data(long fd, bool for_move, SocketScratch* s) {
  if (fd != g_link_fd || g_link_fd < 0 || (for_move && g_link_shut)) return -1;
  struct stat st{};
  if (sys(SYS_fstat, fd, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_ino != g_link_ino) return -1;
  mosix::ckpt::SocketRecord& r = s->rec;
  r = mosix::ckpt::SocketRecord{};
  r.family = AF_UNIX;
  r.type = SOCK_STREAM;
  r.protocol = 0;
  r.state = mosix::ckpt::SocketState::plain;
  s->partner = -1;
  s->shutdown = 0;
  if (!for_move) {
    // A checkpoint to a file: no node daemon takes what is queued on the
    // link, so the image does, as the queue of a socketpair end whose other
    // end is closed (a restart reads it, then the end of the link, and
    // attaches again). Shut for reading first: the node daemon writes no
    // more (it keeps the rest for the task's next attach, as it does for a
    // task that runs on after the image), and the queue the image takes is
    // all there is.
    sys(SYS_shutdown, fd, SHUT_RD);
    g_link_shut = true;
    r.state = mosix::ckpt::SocketState::pair;
    s->partner = kPeerClosed;
    __builtin_memset(s->peer, 0, 9);  // the other end's inode (0: closed), this end's shutdown bits
    r.peer = mosix::ckpt::Blob(s->peer, 9);
  }
  std::size_t len = 0;
  if (!mosix::ckpt::encode(r, s->encoded, sizeof s->encoded, &len)) return -1;
  return static_cast<long>(len);
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
