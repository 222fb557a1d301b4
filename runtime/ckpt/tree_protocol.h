// A process tree checkpointed together (`mosixctl checkpoint --tree`): what
// the requester, the agent in each member and the restorer agree on.
// Header-only, no allocation: the agent includes it from a signal handler.
//
// The requester adds `tree=<FIFO>` to each member's request file
// (request_protocol.h). The agent then, once every thread is stopped and
// its checks pass, writes on its status FIFO one line per child
//   child <real pid> <virtual pid> live [stopped <signal, 0: its stop was waited for>]
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
// member runs between the first member's stop and the last one's image. A
// member stopped by a signal is continued (SIGCONT) only once every other
// member is ready, and stopped again before any runs on.
//
// The tree image is a text manifest at the image path,
//   mosix-tree 1
//   member <index> <virtual pid> <parent index, -1 for the root> <TreePids address, hex> <image file>
//   zombie <virtual pid> <parent index> <si_code> <si_status>
//   zombie_leads <virtual pid> session|group   (it led its own, after its zombie line)
//   shared <member index> <start, hex> <end, hex> <offset, hex> <object number>
//   pipe <inode> <capacity> <unread bytes> <file holding them>
//   pdeathsig <member index> <signal>     (PR_SET_PDEATHSIG, when set)
//   stopped <member index> <signal>       (stopped by it, the stop not yet waited for)
//   file <member index> <fd> <object number>
//   socketpair <inode of one end> <inode of the other>
//   fifo <member index> <fd> <capacity> <unread bytes> <file holding them>
// (shared: a shared anonymous mapping of a member; mappings with the same
// object number show one object, which the restore makes once for all;
// pipe: every pipe the tree's processes hold, by the inode their images'
// pipe records name, made once for all with its unread bytes: the agent of a
// tree's member leaves a pipe's bytes to the requester; file: a descriptor
// of an open file that two members share, by kcmp, with one offset and one
// set of flags: descriptors with the same object number are one open file,
// which the restore opens once, from the first one's record, before the
// forks; socketpair: a socketpair whose ends two members hold, made once
// before the forks from the ends' records, with their queues: a member's
// agent names each end it holds whose other end is another process's in a
// line "sockpair <inode> <other end's inode>" before its ready line;
// fifo: a named pipe of the tree, by a descriptor of a member on it, made
// once before the forks and refilled with its unread bytes, which the
// requester copies (a member's agent leaves them); every descriptor the
// tree's processes have on it is named by a file line, as is every one on a
// deleted file or memfd that two members hold, which the restore makes
// once from the first holder's image),
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
