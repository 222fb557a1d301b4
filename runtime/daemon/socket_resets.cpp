// Forwarded sockets: a reset of a real socket (the client's, or the loss of
// the node that held it) reaches the guest as a reset (socket_forwarding.h).
//
// The guest's end of a relay is a unix stream socket. Linux gives it
// ECONNRESET (once, after what is queued is read), EPOLLERR|EPOLLHUP, when
// the other end is closed while bytes are still unread in that other end's
// own receive queue (net/unix/af_unix.c, unix_release_sock); a close with
// nothing unread is a plain end of stream. So the relay makes sure its end
// has a byte unread (it writes one on a copy of the guest's end, taken with
// pidfd_getfd, found by its inode and checked on the copy), then closes its
// end. Where the copy cannot be had, the guest reads a plain end of stream,
// as before, and the log says so once.
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/unix_diag.h>
#include <spdlog/spdlog.h>
#include <string>
#include <string_view>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/daemon/socket_forwarding.h"

namespace mosix {
namespace {

std::uint64_t inode_of(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// The inode of the socket connected to unix socket `fd` (sock_diag), or an error.
Expected<std::uint64_t> peer_inode(int fd) {
  const std::uint64_t ino = inode_of(fd);
  int nl = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return make_error(std::string("sock_diag: ") + std::strerror(errno));
  struct {
    nlmsghdr h;
    unix_diag_req r;
  } req{};
  req.h.nlmsg_len = sizeof req;
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.h.nlmsg_flags = NLM_F_REQUEST;
  req.r.sdiag_family = AF_UNIX;
  req.r.udiag_ino = static_cast<std::uint32_t>(ino);
  req.r.udiag_show = UDIAG_SHOW_PEER;
  req.r.udiag_cookie[0] = req.r.udiag_cookie[1] = ~0u;  // any
  alignas(nlmsghdr) char buf[1024];
  ssize_t n = ::send(nl, &req, sizeof req, 0) == sizeof req ? ::recv(nl, buf, sizeof buf, 0) : -1;
  const int err = errno;
  ::close(nl);
  auto* h = reinterpret_cast<nlmsghdr*>(buf);
  if (n < 0) return make_error(std::string("sock_diag: ") + std::strerror(err));
  if (!NLMSG_OK(h, static_cast<std::size_t>(n)) || h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
    return make_error("sock_diag has no answer for a unix socket (no unix_diag in this kernel?)");
  auto* m = static_cast<unix_diag_msg*>(NLMSG_DATA(h));
  int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
  for (auto* a = reinterpret_cast<rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type != UNIX_DIAG_PEER) continue;
    std::uint32_t peer = 0;
    std::memcpy(&peer, RTA_DATA(a), sizeof peer);
    return std::uint64_t{peer};
  }
  return make_error("sock_diag names no peer");
}

// A copy of the descriptor of process `pid` that is the socket of inode
// `ino` (checked on the copy itself), or an error.
Expected<int> take_socket(pid_t pid, std::uint64_t ino) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  const std::string want = "socket:[" + std::to_string(ino) + "]";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return make_error("cannot list " + dir + ": " + std::strerror(errno));
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  std::string why = pidfd < 0 ? std::string("pidfd_open: ") + std::strerror(errno) : "it has no such socket";
  int found = -1;
  while (dirent* e = (pidfd >= 0 && found < 0) ? ::readdir(d) : nullptr) {
    char link[64] = {};
    if (e->d_name[0] == '.') continue;
    ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), link, sizeof link - 1);
    if (n <= 0 || std::string_view(link, static_cast<std::size_t>(n)) != want) continue;
    int got = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, std::atoi(e->d_name), 0));
    if (got < 0) {
      why = std::string("pidfd_getfd: ") + std::strerror(errno);
    } else if (inode_of(got) != ino) {
      ::close(got);  // the number was reused meanwhile
    } else {
      found = got;
    }
  }
  ::closedir(d);
  if (pidfd >= 0) ::close(pidfd);
  if (found < 0) return make_error(why);
  return found;
}

}  // namespace

void SocketForwarding::reset(const Key& k) {
  End* e = find(false, k);
  if (e == nullptr) return;
  if (e->sd && e->state == State::kLive && e->acked && e->guest > 0) {
    pump_write(false, k);  // what came before the reset, as far as the guest's queue takes it
    e = find(false, k);
    if (e == nullptr) return;  // its end is closed already
    const int fd = e->sd->native_handle();
    int unread = 0;
    if (::ioctl(fd, SIOCINQ, &unread) != 0 || unread == 0) {
      Expected<std::uint64_t> ino = e->guest_ino != 0 ? Expected<std::uint64_t>(e->guest_ino) : peer_inode(fd);
      Expected<int> copy = ino ? take_socket(e->guest, *ino) : Expected<int>(ino.error());
      std::string why;
      if (copy) {
        const char byte = 0;
        if (::send(*copy, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1) why = std::strerror(errno);
        ::close(*copy);
      } else {
        why = copy.error().message;
      }
      if (!why.empty() && !reset_said_) {
        reset_said_ = true;
        spdlog::info("rank {}: a reset of its forwarded socket reads as an end of stream in the guest (its end "
                     "cannot be reached: {}); said once", k.first, why);
      }
    }
  }
  erase(false, k);
}

}  // namespace mosix
