// Pre-copy, the source's side (docs/migration.md): while a guest runs, its
// memory goes to the target in rounds, each re-sending only the pages
// written since the round before, until precopy_done() says to stop the
// guest for the last step (an image of what is left: ckpt::CheckpointRequest
// with precopied). The agent inside the guest only starts the kernel's write
// tracking (a userfaultfd in asynchronous write-protect mode); the pages are
// found and read from outside, here: the PAGEMAP_SCAN ioctl on
// /proc/PID/pagemap write-protects them again as it lists them, and
// process_vm_readv copies them, so the guest's threads never run our code.
// Blocking: runs on a move's own thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <span>

#include "runtime/core/expected.h"
#include "runtime/core/precopy_policy.h"

namespace mosix {

struct PrecopyStats {
  std::uint64_t bytes = 0;  // sent in all rounds
  std::uint32_t rounds = 0;
};

// Takes `bytes` of the guest's memory at `address` for the target, in
// pieces of at most 1 MiB, or with no bytes, `zero` bytes there that hold no
// data (never written, or given back); false: the move was given up, stop.
using PageSink =
    std::function<bool(std::uint64_t address, std::span<const std::uint8_t> bytes, std::uint64_t zero)>;

// Called after each round; returns once the target has taken what the
// rounds sent (or has kept us waiting long enough), so that the next round,
// and the decision to stop, see what the guest wrote meanwhile.
using RoundTaken = std::function<void()>;

// Takes a tracked range the guest asked transparent huge pages for
// (MADV_HUGEPAGE), told before the first round.
using HugepageSink = std::function<void(std::uint64_t address, std::uint64_t length)>;

// Starts the tracking in guest `pid`, tells `hugepage` its tracked ranges
// with huge pages asked for, runs the rounds into `sink` (waiting
// for `taken` after each) and returns what they sent; the guest then still runs, its tracked memory as
// of the last round sent. On an error (no tracking on this kernel, a round
// that could not read what it write-protected, the sink gave up) the
// tracking is stopped again and the error says why: the move goes on as a
// stop-and-copy or is given up, and the guest runs on either way.
// `unsupported` is set when the kernel offers no write tracking at all.
Expected<PrecopyStats> run_precopy(pid_t pid, const PrecopyParams& params, const PageSink& sink,
                                   const RoundTaken& taken, const HugepageSink& hugepage, bool* unsupported);

}  // namespace mosix
