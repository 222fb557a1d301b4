// What the processes of a tree share through their descriptors, read from
// /proc while every one of them is stopped (tree_request.cpp): open files
// (one offset and one set of flags, made once again at the restore), pipes
// (made once with their unread bytes), and what a restore would split.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/sys/atomic_file.h"

namespace mosix::ckpt {

struct TreeFdHolder {
  pid_t pid = 0;
  std::vector<std::string> own;  // paths of the request's own files, left out
};

// A descriptor of one open file that two processes of the tree hold.
struct TreeSharedFile {
  int object = 0;      // one number per open file
  std::size_t member;  // index into the holders
  int fd = 0;
};

// Descriptors above 2 of open files that two of the holders share (kcmp),
// every holder's descriptors on each; and every descriptor on a deleted
// file or memfd two of them hold, and on a named pipe any holds (each is
// made once for the tree). Refused: a socket two of them hold (but an end
// of a socketpair in `pairs`, made once for all), anything else not
// reopened by path, and a deleted file, memfd or named pipe that a process
// outside the tree holds too. Pipes are left to capture_tree_pipes.
using TreeSocketPair = std::pair<std::uint64_t, std::uint64_t>;  // the ends' inodes
Expected<std::vector<TreeSharedFile>> shared_open_files(const std::vector<TreeFdHolder>& all,
                                                        const std::vector<TreeSocketPair>& pairs);

// The socketpairs between processes of the tree, from the ends their agents
// named {end, other end} (each pair once); refused: an other end no process
// of the tree holds, or an end a process outside the tree holds too.
Expected<std::vector<TreeSocketPair>> tree_socket_pairs(const std::vector<pid_t>& members,
                                                        const std::vector<TreeSocketPair>& named);

// A pipe of the tree: what is unread in it, kept in its own file next to
// the images (image_path.pipe<n>) while every process is stopped.
struct TreePipeData {
  std::uint64_t inode = 0;
  long capacity = 0, bytes = 0;
  std::optional<sys::AtomicFile> file;
};

// A named pipe of the tree: what is unread in it, copied as a pipe's, and
// a descriptor of a member on it (members[member], fd).
struct TreeFifoData {
  std::size_t member = 0;
  int fd = 0;
  TreePipeData pipe;
};
// Every named pipe the descriptors in `files` (shared_open_files) show.
Expected<std::vector<TreeFifoData>> capture_tree_fifos(const std::vector<pid_t>& members,
                                                       const std::vector<TreeSharedFile>& files,
                                                       const std::string& image_path);

// Every pipe a process of the tree holds: refused when a process outside
// the tree holds it too; else its unread bytes, copied with tee(2) through
// an open of the member's descriptor (/proc/PID/fd/N), which leaves them in.
Expected<std::vector<TreePipeData>> capture_tree_pipes(const std::vector<pid_t>& members,
                                                       const std::string& image_path);

}  // namespace mosix::ckpt
