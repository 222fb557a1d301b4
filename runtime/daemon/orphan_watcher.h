// A small process that outlives its parent by a moment: if the parent dies
// without saying goodbye (even by SIGKILL), the watcher kills the process
// groups the parent told it about. PR_SET_PDEATHSIG covers a guest itself;
// the watcher covers what the guest started.
#pragma once

#include <sys/types.h>

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
  // We end normally: the watcher exits without killing anything.
  void release();
  pid_t pid() const { return pid_; }

 private:
  OrphanWatcher(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  pid_t pid_ = -1;
  int fd_ = -1;
};

}  // namespace mosix
