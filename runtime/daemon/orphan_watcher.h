// A small process that outlives its parent by a moment: if the parent dies
// without saying goodbye (even by SIGKILL), the watcher kills the process
// groups the parent told it about, then removes what the parent would have
// removed on its way out: the CPU-cap cgroups of a node daemon, the socket
// directory of a job. PR_SET_PDEATHSIG covers a guest itself; the watcher
// covers what the guest started and what the parent left on disk.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "runtime/core/expected.h"

namespace mosix {

class OrphanWatcher {
 public:
  // Forks the watcher. Call before starting threads.
  static Expected<OrphanWatcher> start();

  OrphanWatcher(OrphanWatcher&& other) noexcept;
  OrphanWatcher& operator=(OrphanWatcher&&) = delete;
  ~OrphanWatcher();

  // The watcher will SIGKILL process group `pgid` if we die.
  void watch(pid_t pgid);
  // If we die: after the groups, every process still in cgroup `dir` (a
  // group made for this job alone) is killed, `dir` is removed once empty,
  // then the directories above it that are left empty, up to and including `top`.
  void remove_cgroup_at_death(const std::string& dir, const std::string& top);
  // If we die: the sockets in directory `dir` are removed, then `dir`
  // itself if nothing else is in it.
  void remove_sockets_at_death(const std::string& dir);
  // We end normally: the watcher exits without killing or removing anything.
  void release();
  pid_t pid() const { return pid_; }

 private:
  OrphanWatcher(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  void send_paths(std::int32_t kind, const std::string& a, const std::string& b);
  pid_t pid_ = -1;
  int fd_ = -1;
};

}  // namespace mosix
