// LocalTransport: N endpoints of one transport inside one process, mainly for
// testing, and for mosixrun when the job fits the home node (one rank, no
// MPI start-up). A frame is moved, not copied, into the destination's inbox.
// Endpoints of one group may be used from different threads.
#pragma once

#include <memory>
#include <vector>

#include "runtime/transport/transport.h"

namespace mosix {

class LocalTransport final : public Transport {
 public:
  // `size` connected endpoints, endpoint i having rank i.
  static Expected<std::vector<std::unique_ptr<LocalTransport>>> create_group(int size);

  ~LocalTransport() override;
  LocalTransport(const LocalTransport&) = delete;
  LocalTransport& operator=(const LocalTransport&) = delete;

  int rank() const override { return rank_; }
  int size() const override;
  Status send(int dest, Frame frame) override;
  int event_fd() const override;
  Expected<std::vector<Delivery>> receive() override;
  std::size_t pending_bytes() const override { return 0; }
  Status close() override;

  struct Group;

 private:
  LocalTransport(std::shared_ptr<Group> group, int rank);

  std::shared_ptr<Group> group_;
  int rank_;
};

}  // namespace mosix
