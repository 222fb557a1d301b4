// A job whose copies all run on this node, driven by one event loop: it
// starts the guests, relays their stdio, forwards signals, ends the job by
// mpirun's rules and returns the job's exit status.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/daemon/guest_process.h"
#include "runtime/daemon/job_registry.h"

namespace mosix {

struct LocalJobSpec {
  std::vector<GuestLaunch> guests;  // in rank order; stdin_fd is decided here
  bool tag_output = false;
  std::string output_dir;           // --output-filename, empty for none
  bool keep_going = false;
  double timeout_seconds = 0;       // 0: none
  double kill_grace_seconds = 3;    // SIGTERM, then SIGKILL after this
  JobRecord record;                 // id, home node, command; guests filled in here
  double ckpt_interval_seconds = 0; // periodic checkpoints of every copy; 0: none
  std::string ckpt_dir;             // ... into DIR/rank.N.img, the newest kept
};

// Runs the job to its end. An error means nothing is left running.
Expected<int> run_local_job(LocalJobSpec spec);

}  // namespace mosix
