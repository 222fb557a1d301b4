// A process tree checkpointed together (`mosixctl checkpoint --tree`): what
// the requester, the agent in each member and the restorer agree on.
// Header-only, no allocation: the agent includes it from a signal handler.
//
// The requester adds `tree=<FIFO>` to each member's request file
// (request_protocol.h). The agent then, once every thread is stopped and
// its checks pass, writes on its status FIFO one line per child
//   child <real pid> <virtual pid> live
//   child <real pid> <virtual pid> zombie <si_code> <si_status>
// (a zombie's status read with waitid(WNOWAIT): it stays unreaped), one
// line per shared anonymous mapping (hex: start, end, offset in its object,
// the object's device; decimal: its inode)
//   shm <start> <end> <offset> <dev> <inode>
// then
//   ready <virtual pid> <virtual ppid> <pgid> <sid> <TreePids address, hex> <parent death signal>
// and waits, every thread still stopped, for a word on the FIFO:
//   go      write the image ("ok <bytes>" or "error <why>" as usual), then
//           wait again for "end" (carry out the request's mode) or "abort"
//           (run on as if never asked);
//   abort   run on, no image ("error the tree's checkpoint was abandoned").
// End of file or no word within kTreeHoldSeconds counts as "abort". So no
// member runs between the first member's stop and the last one's image.
//
// The tree image is a text manifest at the image path,
//   mosix-tree 1
//   member <index> <virtual pid> <parent index, -1 for the root> <TreePids address, hex> <image file>
//   zombie <virtual pid> <parent index> <si_code> <si_status>
//   shared <member index> <start, hex> <end, hex> <offset, hex> <object number>
//   pipe <inode> <capacity> <unread bytes> <file holding them>
//   pdeathsig <member index> <signal>     (PR_SET_PDEATHSIG, when set)
// (shared: a shared anonymous mapping of a member; mappings with the same
// object number show one object, which the restore makes once for all;
// pipe: every pipe the tree's processes hold, by the inode their images'
// pipe records name, made once for all with its unread bytes: the agent of a
// tree's member leaves a pipe's bytes to the requester),
// with the root as member 0, each member after its parent, and each
// member's image file (a plain single-process image) named relative to the
// manifest's directory.
#pragma once

#include <cstdint>

namespace mosix::ckpt {

inline constexpr const char* kTreeMagicLine = "mosix-tree 1";
inline constexpr int kTreeHoldSeconds = 120;

// The agent's table of the tree's pids, in its own memory (so it is in each
// member's image); the restorer writes the new real pid of every member
// (and zombie) into it before the program runs again. fresh is set by the
// restorer and cleared by the agent when it sees it was restored: a table
// found without it after a restore is another incarnation's and is dropped.
inline constexpr int kMaxTreePids = 1024;
inline constexpr std::uint32_t kTreePidsMagic = 0x54524545;  // "TREE"
struct TreePids {
  std::uint32_t magic;
  std::uint32_t fresh;
  std::uint32_t count;
  std::int32_t parent_real;  // the real pid of the process's parent at the restore (0: unknown)
  std::int32_t pids[kMaxTreePids][2];  // {virtual pid, real pid}
};

}  // namespace mosix::ckpt
