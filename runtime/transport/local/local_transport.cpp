#include "runtime/transport/local/local_transport.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>

namespace mosix {

struct LocalTransport::Group {
  struct Inbox {
    std::deque<Delivery> frames;
    int event_fd = -1;
    bool closed = false;
  };
  std::mutex mutex;
  std::vector<Inbox> inboxes;

  ~Group() {
    for (auto& inbox : inboxes) {
      if (inbox.event_fd >= 0) ::close(inbox.event_fd);
    }
  }
};

namespace {

void signal_fd(int fd) {
  const std::uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the fd is readable anyway.
  while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void drain_fd(int fd) {
  std::uint64_t count;
  while (::read(fd, &count, sizeof count) < 0 && errno == EINTR) {
  }
}

}  // namespace

Expected<std::vector<std::unique_ptr<LocalTransport>>> LocalTransport::create_group(int size) {
  if (size < 1) {
    return make_error("a local transport needs at least one rank, not " + std::to_string(size));
  }
  auto group = std::make_shared<Group>();
  group->inboxes.resize(static_cast<std::size_t>(size));
  for (auto& inbox : group->inboxes) {
    inbox.event_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (inbox.event_fd < 0) {
      return make_error(std::string("local transport: cannot create an eventfd: ") +
                        std::strerror(errno) + "; raise the open-file limit (ulimit -n)");
    }
  }
  std::vector<std::unique_ptr<LocalTransport>> endpoints;
  for (int r = 0; r < size; ++r) endpoints.emplace_back(new LocalTransport(group, r));
  return endpoints;
}

LocalTransport::LocalTransport(std::shared_ptr<Group> group, int rank)
    : group_(std::move(group)), rank_(rank) {}

LocalTransport::~LocalTransport() { (void)close(); }

int LocalTransport::size() const { return static_cast<int>(group_->inboxes.size()); }

int LocalTransport::event_fd() const {
  return group_->inboxes[static_cast<std::size_t>(rank_)].event_fd;
}

Status LocalTransport::send(int dest, Frame frame) {
  if (dest < 0 || dest >= size()) {
    return make_error("send to rank " + std::to_string(dest) + ": no such rank (this job has ranks 0.." +
                      std::to_string(size() - 1) + ")");
  }
  if (frame.size() > kFrameHeaderSize + kMaxPayloadSize) {
    return make_error("send to rank " + std::to_string(dest) + ": frame of " +
                      std::to_string(frame.size()) + " bytes exceeds the limit; send large data in pieces");
  }
  std::lock_guard lock(group_->mutex);
  if (group_->inboxes[static_cast<std::size_t>(rank_)].closed) {
    return make_error("send on rank " + std::to_string(rank_) + ": the transport is closed");
  }
  auto& inbox = group_->inboxes[static_cast<std::size_t>(dest)];
  if (inbox.closed) {
    return make_error("send to rank " + std::to_string(dest) + ": that rank has closed its transport");
  }
  const bool was_empty = inbox.frames.empty();
  inbox.frames.push_back(Delivery{rank_, std::move(frame)});
  if (was_empty) signal_fd(inbox.event_fd);
  return Status::Ok();
}

Expected<std::vector<Delivery>> LocalTransport::receive() {
  auto& inbox = group_->inboxes[static_cast<std::size_t>(rank_)];
  std::lock_guard lock(group_->mutex);
  // Under the lock, so a sender cannot slip a frame in between the drain and the take.
  drain_fd(inbox.event_fd);
  std::vector<Delivery> out(std::make_move_iterator(inbox.frames.begin()),
                            std::make_move_iterator(inbox.frames.end()));
  inbox.frames.clear();
  return out;
}

Status LocalTransport::close() {
  if (!group_) return Status::Ok();
  std::lock_guard lock(group_->mutex);
  group_->inboxes[static_cast<std::size_t>(rank_)].closed = true;
  return Status::Ok();
}

}  // namespace mosix
