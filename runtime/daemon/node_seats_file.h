// The node daemon's side of the seats page (runtime/core/node_seats.h): a
// memfd that the guests' new programs open by its /proc path (MOSIX_SEATS),
// a seat for every process the daemon starts, and the runnable tasks of
// each load probe.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "runtime/core/expected.h"
#include "runtime/core/node_seats.h"

namespace mosix {

class NodeSeatsFile {
 public:
  // A new page for this daemon; `cores` 0 makes every child ask the home.
  static Expected<std::unique_ptr<NodeSeatsFile>> create(int cores);
  ~NodeSeatsFile();
  NodeSeatsFile(const NodeSeatsFile&) = delete;
  NodeSeatsFile& operator=(const NodeSeatsFile&) = delete;

  const std::string& path() const { return path_; }
  // A process the daemon started (a copy, a body, an arriving guest).
  void started(pid_t pid);
  // A probe of the node's load found `runnable` tasks.
  void probed(int runnable);

 private:
  NodeSeatsFile(std::string path, int fd, NodeSeats* page) : path_(std::move(path)), fd_(fd), page_(page) {}
  std::string path_;
  int fd_;
  NodeSeats* page_;
};

}  // namespace mosix
