// The requesting side of a checkpoint: ask the agent inside a guest to write
// its image, wait for its answer, verify the image, and only then give it its
// final name. Used by `mosixctl checkpoint` and by periodic checkpoints.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_reader.h"
#include "runtime/ckpt/request_protocol.h"
#include "runtime/core/expected.h"

namespace mosix::ckpt {

struct CheckpointRequest {
  pid_t pid = 0;                     // the guest's real pid (as ps shows it)
  std::string image_path;            // where the verified image ends up
  AfterCheckpoint mode = AfterCheckpoint::kLeaveRunning;
  // For a move to another node: the agent then refuses what only makes
  // sense here (a socket bound to an address of this node).
  bool for_move = false;
  Compression compression = Compression::none;
  // Pre-copy (docs/migration.md): kStart and kStop write no image; with
  // precopied the tracked regions hold only the pages written since the last
  // round of the daemon's.
  Tracking tracking = Tracking::kNone;
  bool precopied = false;
  // Called from the calling thread about every 256 MiB written.
  std::function<void(std::uint64_t bytes_written)> on_progress;
  // How long the agent may take to start answering.
  int answer_timeout_s = 30;
  // kKill of a guest of a job: a note (note_suspended) tells its node daemon
  // that its end is this checkpoint's, so the job keeps it as a suspended
  // member instead of counting it as ended.
  bool job_member = false;
};

struct CheckpointResult {
  std::string image_path;
  std::uint64_t bytes = 0;
  ImageSummary summary;  // what verification read
};

// Blocks until the image of guest `r.pid` is written to a temporary next to
// r.image_path, verified (every chunk read back and checked) and renamed
// onto r.image_path (mode 0600). The guest then runs on, is left stopped
// or is gone (for kKill, this returns only once the process has ended).
// On any error nothing is left at r.image_path and the process keeps running
// (unless it died by itself); the error names the pid and what went wrong:
// not a guest, no answer within the timeout, the agent's refusal with its
// reason (e.g. "fd 3 is a socket"), the process ended, the image does not
// verify. Uses the runtime directory of request_protocol.h for the request files.
Expected<CheckpointResult> request_checkpoint(const CheckpointRequest& r);

// The bare protocol, for callers that stream the image: asks the agent in
// guest `r.pid` to write its image to `out_path` (which it opens
// O_WRONLY|O_CREAT|O_TRUNC: a file, or a FIFO that someone reads) and blocks
// until it answers. Returns the bytes written. r.image_path is not used and
// nothing is verified: the reader of out_path must verify the image.
Expected<std::uint64_t> ask_agent(const CheckpointRequest& r, const std::string& out_path);

// Removes the request files in `dir` that a requester killed on its way left
// behind (request_checkpoint's own are removed when it returns, even on
// error): a status FIFO ckpt-<guest>.status.<requester> whose requester is
// gone, and a request ckpt-<guest>.req whose guest is gone (one of a live
// guest is left: it may be another requester's in flight, and the next
// request to that guest replaces it). Anything else in `dir` is left alone.
// Returns how many it removed.
int sweep_stale_requests(const std::string& dir);

// Whether `pid` is a process of this user with the agent (libmosix.so)
// loaded; the error says which of the two is not the case.
Status check_guest(pid_t pid);

// One line of the agent's status channel (without its newline): "progress
// <bytes>", "ok <bytes>", "error <reason>". The numbers are parsed without
// exceptions: a line that starts as one of these but whose number is missing,
// not decimal, followed by anything or out of range is kMalformed; any other
// line is kOther (ignored by the reader).
struct AgentLine {
  enum Kind { kProgress, kOk, kError, kMalformed, kOther };
  Kind kind = kOther;
  std::uint64_t bytes = 0;  // kProgress, kOk
  std::string reason;       // kError
};
AgentLine parse_agent_line(std::string_view line);

// The request directory: the runtime directory (sys::runtime_dir(), the
// rule of runtime/sys/runtime_dir_rule.h that the agent follows too).
// Created 0700 if missing; refused unless sys::ensure_private_dir accepts it
// (ours, not a symlink, not writable by others).
Expected<std::string> request_dir();

// The note of a guest killed once its image was written (kKill with
// job_member): REQUEST_DIR/suspended-PID holds the image's path. Written
// before the kill; its node daemon takes it (read and removed) when it reaps
// the guest: the image's path, or nothing when there is no note.
Status note_suspended(pid_t pid, const std::string& image_path);
std::optional<std::string> take_suspended(pid_t pid);

}  // namespace mosix::ckpt
