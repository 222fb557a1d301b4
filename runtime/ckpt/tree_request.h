// The requesting side of a tree checkpoint (`mosixctl checkpoint --tree`,
// runtime/ckpt/tree_protocol.h): every process of a tree is stopped by its
// agent before any image is written, each writes its own image, and the
// tree image (a manifest naming them) appears only when all are verified.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/request_protocol.h"
#include "runtime/core/expected.h"

namespace mosix::ckpt {

struct TreeCheckpointRequest {
  pid_t root = 0;          // the tree's root, a guest (its real pid)
  std::string image_path;  // the manifest; member images are image_path.<index>
  AfterCheckpoint mode = AfterCheckpoint::kLeaveRunning;
  Compression compression = Compression::none;
  int answer_timeout_s = 30;  // how long a member's agent may take to answer
  // kKill of a guest of a job (its root): the root is noted suspended
  // (note_suspended, request.h) before the kill, as a single checkpoint does.
  bool job_member = false;
};

struct TreeMemberImage {
  pid_t pid = 0;   // real pid at the checkpoint
  pid_t vpid = 0;  // as the program sees it
  int parent = -1;  // index of its parent member, -1 for the root
  std::string image_path;
  std::uint64_t bytes = 0;
};

struct TreeCheckpointResult {
  std::string manifest_path;
  std::vector<TreeMemberImage> members;  // the root first, each after its parent
  int zombies = 0;                       // ended children not yet waited for, made again at restart
  std::uint64_t bytes = 0;               // all member images together
};

// Blocks until every member's image is written, verified and in place and
// the manifest is written at r.image_path; the members then run on, stay
// stopped or are gone, as r.mode says. On any error (a member refused with
// its reason, a member that ended, an image that does not verify) no image
// is left and every member runs on as before; the error names the member.
// A tree that changes while it is being stopped (a new child) is tried again.
Expected<TreeCheckpointResult> request_tree_checkpoint(const TreeCheckpointRequest& r);

}  // namespace mosix::ckpt
