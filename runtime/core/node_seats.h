// Seats: the node's own, quick answer to "may a program that starts here
// stay here?" (fork and forget, docs/mosixrun.md "CHILDREN: FORK AND
// FORGET"). Asking the home node costs an exec of the deputy and a round
// trip; most programs a busy job starts stay where they start anyway. So
// the node daemon keeps one page of shared memory (a memfd, named by
// MOSIX_SEATS as /proc/PID/fd/N) that the agent reads in every new program
// before it would exec the deputy:
// - the tasks runnable at the node daemon's last probe of its load, and its
//   cores (0: every child asks the home, `--spread always`);
// - a seat for each process started here since: the copies and bodies the
//   daemon starts, the children that stayed by this page.
// A program stays without asking when the runnable tasks, the seats given
// since the last probe and itself fit in the cores. And a program whose
// parent holds a seat that no live process of the parent uses takes that
// seat over: a parent that starts a program and waits for it (a compiler
// driver, a shell running a command, make's first job) hands its place on
// the node to it, so the steps of one compile stay on one node. A seat
// passes down a line of such children (sh, make, its first job); a second
// child of the same parent while the first lives needs a free core.
//
// The page is shared by unrelated processes and any of them may die at any
// point: it has no lock. Every change is one compare-and-swap; the worst a
// race does is let one more program stay than the cores fit, until the next
// probe counts it.
#pragma once

#include <atomic>
#include <cstdint>

namespace mosix {

inline constexpr std::uint32_t kSeatsMagic = 0x53454154;  // "SEAT"
inline constexpr int kSeatCount = 250;

struct Seat {
  std::atomic<std::int32_t> owner;  // the process given the seat (0: free)
  std::atomic<std::int32_t> user;   // its child that has taken it over (0: none)
  std::atomic<std::uint32_t> round;  // the probe round it was given in
  std::uint32_t unused;
};

struct NodeSeats {
  std::uint32_t magic;
  std::atomic<std::uint32_t> round;     // the node daemon's probes so far
  std::atomic<std::int32_t> runnable;   // tasks runnable at the last probe
  std::atomic<std::int32_t> cores;      // 0: no program stays without asking
  Seat seats[kSeatCount];
};
static_assert(sizeof(NodeSeats) <= 4096, "one page");
static_assert(std::atomic<std::int32_t>::is_always_lock_free, "shared between processes");

// Gives `pid` a seat (round: now). False when every seat is held by a live
// process. `alive(pid)` says whether a process lives.
template <typename Alive>
bool give_seat(NodeSeats& page, std::int32_t pid, Alive alive) {
  const std::uint32_t now = page.round.load(std::memory_order_acquire);
  for (Seat& s : page.seats) {
    std::int32_t owner = s.owner.load(std::memory_order_acquire);
    if (owner != 0 && alive(owner)) continue;
    if (!s.owner.compare_exchange_strong(owner, pid, std::memory_order_acq_rel)) continue;
    s.user.store(0, std::memory_order_relaxed);
    s.round.store(now, std::memory_order_release);
    return true;
  }
  return false;
}

// The seats given since the last probe (the probe counts the older ones
// that are busy among its runnable tasks).
inline int seats_given_this_round(const NodeSeats& page) {
  const std::uint32_t now = page.round.load(std::memory_order_acquire);
  int n = 0;
  for (const Seat& s : page.seats) {
    if (s.owner.load(std::memory_order_acquire) != 0 && s.round.load(std::memory_order_acquire) == now) ++n;
  }
  return n;
}

enum class SeatAnswer {
  kParentsSeat,  // took over the seat of its waiting parent
  kFreeSeat,     // a core is free: given a seat of its own
  kAsk,          // ask the home node
};

// A program `pid` whose parent is `parent` starts on this node.
template <typename Alive>
SeatAnswer take_seat(NodeSeats& page, std::int32_t pid, std::int32_t parent, Alive alive) {
  if (page.magic != kSeatsMagic) return SeatAnswer::kAsk;
  const int cores = page.cores.load(std::memory_order_acquire);
  if (cores <= 0) return SeatAnswer::kAsk;
  for (Seat& s : page.seats) {
    std::int32_t user = s.user.load(std::memory_order_acquire);
    if (user == parent && user != 0) {  // the parent took this seat over from its own parent
      if (s.user.compare_exchange_strong(user, pid, std::memory_order_acq_rel)) return SeatAnswer::kParentsSeat;
      break;
    }
    if (s.owner.load(std::memory_order_acquire) != parent) continue;
    if (user != 0 && alive(user)) break;  // a sibling uses it
    if (s.user.compare_exchange_strong(user, pid, std::memory_order_acq_rel)) return SeatAnswer::kParentsSeat;
    break;
  }
  const int busy = page.runnable.load(std::memory_order_acquire) + seats_given_this_round(page);
  if (busy + 1 > cores) return SeatAnswer::kAsk;
  return give_seat(page, pid, alive) ? SeatAnswer::kFreeSeat : SeatAnswer::kAsk;
}

// The node daemon's probe: `runnable` tasks now; seats of processes that
// are gone are freed.
template <typename Alive>
void seats_probed(NodeSeats& page, int runnable, Alive alive) {
  for (Seat& s : page.seats) {
    std::int32_t owner = s.owner.load(std::memory_order_acquire);
    if (owner != 0 && !alive(owner)) s.owner.compare_exchange_strong(owner, 0, std::memory_order_acq_rel);
  }
  page.runnable.store(runnable, std::memory_order_release);
  page.round.fetch_add(1, std::memory_order_acq_rel);
}

}  // namespace mosix
