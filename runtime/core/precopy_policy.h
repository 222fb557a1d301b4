// When a pre-copy stops sending rounds (docs/migration.md). Each round sends
// the pages the guest wrote during the one before (the first: all of its
// tracked memory); the guest is stopped for the last, stop-and-copy step as
// soon as more rounds would not pay: the last round was small enough to send
// while stopped, it did not shrink enough against the round before (the
// guest writes as fast as the rounds send), or the rounds ran out.
#pragma once

#include <cstdint>
#include <span>

namespace mosix {

struct PrecopyParams {
  int max_rounds = 8;
  // Few enough bytes to send while stopped: stop now.
  std::uint64_t small_bytes = 4u << 20;
  // A round that sent more than this share of the round before did not
  // shrink the dirty set enough to be worth another.
  double shrink = 0.5;
};

// `sent`: the bytes of each round so far, first to last. True when the
// guest should be stopped now (and with no round yet, false).
bool precopy_done(const PrecopyParams& params, std::span<const std::uint64_t> sent);

}  // namespace mosix
