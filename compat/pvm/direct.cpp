// Direct links between two tasks of one node (docs/pvm.md, "Direct links").
// The sender asks its node daemon (kDirectAsk) when it first sends to a task,
// and again every kAskEvery messages while it has no link to it; the daemon
// passes one end of a socketpair to each if both are its guests. The
// receiver writes one byte back on its end when it has it; from then on the
// sender writes its messages to that task there, numbered as on the other
// route. A link that ends (the other task ended, moved, or was checkpointed:
// compat/agent/direct_links.cpp) is closed, and messages go through the node
// daemon again: one cut short on the link is sent again whole that way, and
// the receiver drops the piece it has of it.
#include <cerrno>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compat/pvm/task.h"

namespace mosix::pvm {
namespace {

constexpr std::uint64_t kAskEvery = 64;
constexpr std::size_t kMaxPassed = 64;

using LinkFn = int (*)(int, int);
using TakeFn = std::size_t (*)(int, void*, std::size_t);

// The agent's table of direct links (a checkpoint takes them); without the
// agent there are no checkpoints, and no direct links either.
LinkFn agent_link() {
  static LinkFn fn = reinterpret_cast<LinkFn>(::dlsym(RTLD_DEFAULT, "mosix_direct_link"));
  return fn;
}

void forget(int fd) {
  if (fd < 0) return;
  if (LinkFn fn = agent_link()) fn(fd, -1);
  ::close(fd);
}

}  // namespace

ssize_t Task::read_link(std::uint8_t* buf, std::size_t cap, int flags) {
  iovec iov{buf, cap};
  alignas(cmsghdr) char control[CMSG_SPACE(8 * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(fd_, &msg, flags | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      // Named to the agent at once: an image until its frame is read carries it too.
      if (agent_link() == nullptr || agent_link()(fd, 1) != 0) {
        ::close(fd);
        continue;
      }
      passed_fds_.push_back(fd);
      if (passed_fds_.size() > kMaxPassed) {
        forget(passed_fds_.front());
        passed_fds_.pop_front();
      }
    }
  }
  return n;
}

// The descriptor that came with a frame naming inode `ino`: one came with
// each such frame, in order, so any before it belonged to frames that were
// lost (a move took the bytes, not the descriptor).
int Task::claim_passed(std::uint64_t ino) {
  for (std::size_t i = 0; i < passed_fds_.size(); ++i) {
    struct stat st{};
    if (::fstat(passed_fds_[i], &st) != 0 || st.st_ino != ino) continue;
    int fd = passed_fds_[i];
    for (std::size_t j = 0; j < i; ++j) forget(passed_fds_[j]);
    passed_fds_.erase(passed_fds_.begin(), passed_fds_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    return fd;
  }
  return -1;
}

void Task::direct_offered(const GuestMessage& m) {
  if (m.bytes.size() != 8) return;
  std::uint64_t ino = 0;
  for (int i = 0; i < 8; ++i) ino |= static_cast<std::uint64_t>(m.bytes[static_cast<std::size_t>(i)]) << (8 * i);
  int fd = claim_passed(ino);
  if (fd < 0) return;
  if (m.kind == kDirectOut) {
    if (out_links_.count(m.source_rank) != 0 || agent_link()(fd, 0) != 0) {
      forget(fd);
      return;
    }
    out_links_[m.source_rank] = OutLink{fd, false};
    return;
  }
  const std::uint8_t ack = 1;
  if (::send(fd, &ack, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
    forget(fd);
    return;
  }
  in_links_.push_back(InLink{fd, m.source_rank, {}});
}

void Task::ask_direct(int dest_rank) {
  if (dest_rank == rank_ || dest_rank < 0 || agent_link() == nullptr || out_links_.count(dest_rank) != 0) return;
  std::uint64_t sent = sent_to_[dest_rank];
  auto [it, fresh] = ask_after_.try_emplace(dest_rank, 0);
  if (sent < it->second) return;
  it->second = sent + kAskEvery;
  (void)write_frame(encode_frame(GuestMessage{rank_, dest_rank, kDirectAsk, 0, {}}));
}

bool Task::send_direct(int dest_rank, const Frame& frame) {
  auto it = out_links_.find(dest_rank);
  if (it == out_links_.end()) return false;
  const int fd = it->second.fd;
  if (!it->second.ready) {
    std::uint8_t ack = 0;
    ssize_t n = ::recv(fd, &ack, 1, MSG_DONTWAIT);
    if (n == 1) {
      it->second.ready = true;
    } else {
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) close_out(dest_rank);
      return false;
    }
  }
  std::size_t done = 0;
  while (done < frame.size()) {
    ssize_t n = ::send(fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Full: read what comes meanwhile (the receiver may be writing to
      // this task, as PVM's own library does while it waits).
      if (!pump(-1, fd)) break;
    } else {
      break;
    }
  }
  if (done == frame.size()) return true;
  // The receiver's end is gone (it ended, moved or was checkpointed) or
  // this task's link is: what went of this frame is a piece the receiver
  // drops at the link's end; the whole frame goes the other route.
  close_out(dest_rank);
  ask_after_[dest_rank] = sent_to_[dest_rank] + kAskEvery;
  return false;
}

void Task::read_in_links(const std::vector<short>& revents) {
  static TakeFn take_held = reinterpret_cast<TakeFn>(::dlsym(RTLD_DEFAULT, "mosix_direct_link_take"));
  std::vector<std::size_t> ended;
  for (std::size_t i = 0; i < revents.size() && i < in_links_.size(); ++i) {
    if (revents[i] == 0) continue;
    InLink& l = in_links_[i];
    for (;;) {
      std::uint8_t chunk[1 << 16];
      ssize_t n = ::recv(l.fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        // Its end: first what an image took out of it into memory.
        while (take_held != nullptr) {
          std::size_t k = take_held(l.fd, chunk, sizeof chunk);
          if (k == 0) break;
          l.in.insert(l.in.end(), chunk, chunk + k);
          if (!take_frames(l.in, l.from)) break;
        }
        ended.push_back(i);
        break;
      }
      l.in.insert(l.in.end(), chunk, chunk + n);
      if (!take_frames(l.in, l.from)) {
        ended.push_back(i);
        break;
      }
    }
  }
  for (auto it = ended.rbegin(); it != ended.rend(); ++it) {
    forget(in_links_[*it].fd);  // a piece of a frame left in `in` was sent again the other way
    in_links_.erase(in_links_.begin() + static_cast<std::ptrdiff_t>(*it));
  }
}

void Task::close_out(int rank) {
  auto it = out_links_.find(rank);
  if (it == out_links_.end()) return;
  forget(it->second.fd);
  out_links_.erase(it);
}

void Task::close_links() {
  for (auto& [rank, l] : out_links_) forget(l.fd);
  out_links_.clear();
  for (InLink& l : in_links_) forget(l.fd);
  in_links_.clear();
  for (int fd : passed_fds_) forget(fd);
  passed_fds_.clear();
}

}  // namespace mosix::pvm
