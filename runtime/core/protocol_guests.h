// Messages about a job's guests: starting them, their output, stdin,
// signals and end, and the flow control of their streams (see protocol.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/message_type.h"

namespace mosix {

// Bits of SpawnGuest::flags.
inline constexpr std::uint32_t kSpawnStdin = 1u << 0;   // relay home's stdin to this guest
inline constexpr std::uint32_t kSpawnPinned = 1u << 1;  // --pin: the guest never moves
// argv[0] is a checkpoint image: the guest is restored from it (a rank lost
// with its node, brought back from its last periodic checkpoint).
inline constexpr std::uint32_t kSpawnRestore = 1u << 2;
// --bind-to core: bind the guest to one core of its node (it keeps the bit
// when it moves, and is bound again where it arrives).
inline constexpr std::uint32_t kSpawnBindCore = 1u << 3;
// An MPI program: the node's PMIx server wires it up (rank, size, peers).
// It does not move (its peers hold connections to it): kMpiCantMove says why.
inline constexpr std::uint32_t kSpawnPmix = 1u << 4;
inline constexpr const char* kMpiCantMove = "MPI peer connections";
// --bind-to auto for an MPI job: the home node turns it into kSpawnBindCore
// where the copy's node has a core for each of the job's copies there.
inline constexpr std::uint32_t kSpawnBindAuto = 1u << 5;
// An MPICH program: the node daemon serves it PMI-1 over PMI_FD (its
// pmi_server.h) instead of PMIx; it does not move either.
inline constexpr std::uint32_t kSpawnPmi = 1u << 6;
// A deputy's body (placed at exec, core/placement.h place_at_exec): its
// stdin is its own pipe (kSpawnStdin) or /dev/null, never the job's, and its
// start, output and end go to its deputy, not mosixrun.
inline constexpr std::uint32_t kSpawnBody = 1u << 7;
// Its stdin, stdout and stderr are a terminal of its own (a pseudo-terminal
// its node daemon holds the other side of, --pty): an interactive shell has
// job control. Its size is MOSIX_PTY_SIZE=ROWSxCOLS of its environment; kPtyCantMove: why it never moves.
inline constexpr std::uint32_t kSpawnPty = 1u << 8;
inline constexpr const char* kPtyCantMove = "its terminal (--pty) stays on its node";
// Its stderr is its stdout (one pipe), as a pvmd gives its tasks: a PVM
// task's lines reach the home as pvm's `[t40002] ` lines do (docs/pvm.md).
inline constexpr std::uint32_t kSpawnOneOutput = 1u << 9;
// Either kind of MPI copy.
inline constexpr std::uint32_t kSpawnMpi = kSpawnPmix | kSpawnPmi;

// Start a guest (one copy of the job) on the receiving node.
struct SpawnGuest {
  static constexpr MessageType kType = MessageType::kSpawnGuest;
  std::int32_t rank = 0;
  std::vector<std::string> argv;
  std::vector<std::string> env;      // "NAME=value", complete environment
  std::string cwd;
  std::uint32_t flags = 0;           // kSpawn* bits
  std::uint64_t memory_bytes = 0;    // expected need, 0 if unknown
  std::string program;               // the file to run; "" for argv[0] found on PATH
  bool operator==(const SpawnGuest&) const = default;
};

struct GuestStarted {
  static constexpr MessageType kType = MessageType::kGuestStarted;
  std::int32_t rank = 0;
  std::int32_t pid = 0;              // real pid on its node
  std::uint32_t node = 0;
  bool operator==(const GuestStarted&) const = default;
};

enum class OutputStream : std::uint8_t { kStdout = 1, kStderr = 2 };

// Bytes a guest wrote, in order per (rank, stream).
struct GuestOutput {
  static constexpr MessageType kType = MessageType::kGuestOutput;
  std::int32_t rank = 0;
  OutputStream stream = OutputStream::kStdout;
  Bytes bytes;
  bool operator==(const GuestOutput&) const = default;
};

// Bytes for a guest's stdin; eof closes it after these bytes.
struct GuestStdin {
  static constexpr MessageType kType = MessageType::kGuestStdin;
  std::int32_t rank = 0;
  Bytes bytes;
  bool eof = false;
  bool operator==(const GuestStdin&) const = default;
};

inline constexpr std::int32_t kAllRanks = -1;

struct GuestSignal {
  static constexpr MessageType kType = MessageType::kGuestSignal;
  std::int32_t rank = kAllRanks;     // or kAllRanks: every guest on the node
  std::int32_t signo = 0;            // 0: nothing, but what is held for the job's end goes now
  // The job's end after a copy failed: hold the signal for a guest until it
  // has run this much CPU time (the failed copy's, in µs) or waits for
  // something (caught_up in exit_rule.h). 0: at once; SIGKILL and signal 0
  // deliver what was held first.
  std::uint64_t not_before_cpu_us = 0;
  bool operator==(const GuestSignal&) const = default;
};

struct GuestExited {
  static constexpr MessageType kType = MessageType::kGuestExited;
  std::int32_t rank = 0;
  std::int32_t exit_code = 0;        // meaningful when term_signal == 0
  std::int32_t term_signal = 0;      // signal that killed it, 0 if it exited
  // Its node sent it SIGTERM or SIGKILL for the runtime (the job's end)
  // while it still ran: a death by that signal is the runtime's doing.
  bool runtime_signaled = false;
  std::uint64_t cpu_us = 0;          // CPU time it used, its reaped children's too, on every node it ran on
  // Not empty: it was killed once its image was written there (`mosixctl
  // checkpoint --kill`), and it stays a member of its job, suspended, until
  // `mosixctl restart` of that image brings it back (docs/mosixctl.md).
  std::string suspended_image = {};
  bool operator==(const GuestExited&) const = default;
};

// Flow control of guest output: mosixrun (or the home node, see OutputFds)
// -> home node -> the rank's node, once `bytes` of the rank's output have
// been written out at home. A node stops reading a guest's pipes while too
// much of its output is unconfirmed, so a slow reader at home blocks the
// guest, as a pipe would.
struct OutputCredit {
  static constexpr MessageType kType = MessageType::kOutputCredit;
  std::int32_t rank = 0;
  std::uint64_t bytes = 0;
  bool operator==(const OutputCredit&) const = default;
};

// A deputy's body took `bytes` more of the stdin its deputy sent into its
// pipe: body's node -> home -> the deputy's node -> the deputy, which keeps
// no more than a pipe's worth on the way (nothing it reads is taken from a
// reader that comes after the body).
struct StdinCredit {
  static constexpr MessageType kType = MessageType::kStdinCredit;
  std::int32_t rank = 0;
  std::uint64_t bytes = 0;
  bool operator==(const StdinCredit&) const = default;
};

// mosixrun's terminal took a new size (SIGWINCH): the terminal of rank
// `rank` (--pty) takes it too, and its foreground job gets SIGWINCH.
struct PtyResize {
  static constexpr MessageType kType = MessageType::kPtyResize;
  std::int32_t rank = 0;
  std::uint16_t rows = 0;
  std::uint16_t cols = 0;
  bool operator==(const PtyResize&) const = default;
};

// mosixrun -> home node, first, with mosixrun's stdout and stderr attached
// (SCM_RIGHTS over the unix socket: both run on the home node). The home
// node then writes the guests' output there itself, byte-exact and in order
// per rank and stream, before it passes on what follows (GuestExited), and
// credits the ranks' nodes (OutputCredit); mosixrun gets no GuestOutput.
// Not sent when mosixrun tags output or copies it into files.
struct OutputFds {
  static constexpr MessageType kType = MessageType::kOutputFds;
  std::uint32_t count = 2;           // descriptors attached: stdout, stderr
  bool operator==(const OutputFds&) const = default;
};

}  // namespace mosix
