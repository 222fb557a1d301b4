// Which children of a guest stay on their node for their descriptors
// (placement at exec, docs/mosixrun.md "CHILDREN: FORK AND FORGET"). Pure
// and header-only: the agent decides with it before it would exec the
// deputy (compat/agent/place_at_exec.cpp), and the deputy applies it to its
// stdin again with what it adds (whether another process reads that pipe).
#pragma once

namespace mosix {

enum class StdinKind { kNull, kPipeOrSocket, kOther };

// A child stays when it holds descriptors other than 0-2 (they could not
// follow it) or its stdin is neither /dev/null nor a pipe or socket (a
// terminal, or a file whose offset it shares with its parent).
constexpr bool stays_for_descriptors(StdinKind in, bool holds_other_fds) {
  return holds_other_fds || in == StdinKind::kOther;
}

}  // namespace mosix
