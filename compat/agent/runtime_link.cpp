// The runtime's own link inside a guest: compat/pvm's connection to its node
// daemon's guest socket (docs/pvm.md, "Checkpoints and moves"). The library
// names it with mosix_runtime_link(fd). A checkpoint carries it as a new,
// unconnected unix stream socket at the same number: what the guest had not
// read of it is its node daemon's to keep (at a move the daemon takes it and
// gives it to the guest's link on the next node), and the library connects
// the new socket to the guest socket of the node it runs on next. Any other
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

}  // namespace

long runtime_link_image_data(long fd, SocketScratch* s) {
  if (fd != g_link_fd || g_link_fd < 0) return -1;
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
}
