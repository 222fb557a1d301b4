// The jobs of this user that are running on this node. mosixrun (or mosixd)
// writes one JSON record per job into the user's 0700 runtime directory and
// removes it when the job ends; readers skip records whose owner is gone.
//
// Directory: jobs/ in the runtime directory (sys::runtime_dir(),
// docs/runtime-directory.md).
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/core/expected.h"

namespace mosix {

struct GuestRecord {
  int rank = 0;
  pid_t pid = 0;           // real pid, as ps shows it
  std::string node;        // node the guest runs on now
  std::string state;       // "running", "stopped", "exited"
  int exit_code = -1;      // once exited: 0..255 (128+S if killed)
};

struct JobRecord {
  std::string id;          // "<home pid>" as text; stable for the job's life
  pid_t launcher_pid = 0;  // mosixrun's pid
  std::string home_node;
  std::string command;     // program and arguments, joined by spaces
  std::string cwd;
  std::string control_socket;  // path of the job's control socket, or empty
  long start_time = 0;     // seconds since the epoch
  std::vector<GuestRecord> guests;
  // Start time of launcher_pid (clock ticks after boot, /proc/PID/stat field
  // 22), so a reused pid is not taken for the launcher. 0: write_job fills it.
  unsigned long long launcher_start_ticks = 0;
};

// Writes (atomically replaces) the record of `job`.
Status write_job(const JobRecord& job);
// Removes the record of job `id`; no error if already gone.
void remove_job(const std::string& id);
// Every job of this user whose launcher is still alive, oldest first. Records
// of dead launchers are removed on the way.
std::vector<JobRecord> list_jobs();

std::string job_to_json(const JobRecord& job);
// One guest of a record as JSON: {"rank","pid","node","state","exit_code"}
// (the record file and `mosixctl status --json` both).
nlohmann::json to_json(const GuestRecord& guest);
Expected<JobRecord> job_from_json(const std::string& text);

}  // namespace mosix
