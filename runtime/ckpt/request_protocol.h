// The checkpoint request protocol between `mosixctl checkpoint` (and the
// node daemon, through runtime/ckpt/request.h) and the agent inside a guest:
// the two signals the agent takes, the request file and the status lines.
// Header-only, no allocation: the agent includes it from a signal handler.
#pragma once

#include <cstdint>

namespace mosix::ckpt {

// Real-time signals the agent takes for itself, counted down from SIGRTMAX
// (64 on Linux x86-64). glibc keeps 32 and 33 for its own use; programs that
// use real-time signals count up from SIGRTMIN (34), so the top is the least
// likely to clash. SIGUSR1/SIGUSR2 stay the program's (DMTCP takes SIGUSR2).
// kRequestSignal goes to the process (any thread may take it: that thread
// becomes the coordinator); kStopSignal goes to each other thread with tgkill
// and parks it in its handler, so its registers sit in the kernel's signal
// frame on its own stack.
inline constexpr int kRequestSignal = 62;  // SIGRTMAX-2
inline constexpr int kStopSignal = 63;     // SIGRTMAX-1

// A request is a small text file `<runtime dir>/ckpt-<real pid>.req`,
// written by mosixctl before it signals the process, with lines
//   out=<path the agent opens O_WRONLY|O_CREAT|O_TRUNC to write the image>
//   status=<FIFO the agent writes its progress and result lines into>
//   mode=leave|stop|kill
//   compress=none|fast|best
//   move=1          (optional: the image is for another node)
//   track=start     (optional, pre-copy: no image; the agent has the kernel
//                    track writes to the process's private anonymous memory
//                    from now on, see docs/migration.md)
//   track=stop      (optional: no image; the tracking ends)
//   precopy=1       (optional, with move=1: the tracked regions' pages went
//                    to the target before; the image holds only those written
//                    since the last round, and the tracking ends)
// The agent answers on the status FIFO with lines
//   progress <bytes written>
//   ok <bytes written>
//   error <one line saying what was refused and why>
// and removes the request file. An agent still finishing a session drops
// the signal: a requester that finds its request file still there after a
// silence (100 ms) signals again. The runtime directory follows the rule of
// runtime/sys/runtime_dir_rule.h (docs/runtime-directory.md); it must be a
// directory (not a symlink) owned by the user that neither group nor others
// may write (the agent checks this with lstat).
enum class AfterCheckpoint : int { kLeaveRunning = 0, kStop = 1, kKill = 2 };

inline constexpr const char* kModeNames[] = {"leave", "stop", "kill"};

// What a request asks of the agent's write tracking (pre-copy).
enum class Tracking : int { kNone = 0, kStart = 1, kStop = 2 };

}  // namespace mosix::ckpt
