#include "runtime/core/node_state.h"

#include <algorithm>

namespace mosix {

double capacity(const NodeLoad& node) {
  if (node.speed <= 0.0 || node.cores <= 0) return 0.0;
  return node.speed * node.cores;
}

double runnable(const NodeLoad& node) { return std::max(0.0, node.load) * capacity(node); }

double load_with(const NodeLoad& node, double processes) {
  const double cap = capacity(node);
  if (cap <= 0.0) return node.load;
  return node.load + processes / cap;
}

double process_rate(const NodeLoad& node, double processes) {
  if (capacity(node) <= 0.0) return 0.0;
  if (processes <= node.cores) return node.speed;
  return node.speed * node.cores / processes;
}

double expected_remaining(const GuestState& guest, double floor) {
  if (guest.remaining_work >= 0.0) return guest.remaining_work;
  return std::max(guest.cpu_used, floor);
}

double expected_work(const std::vector<GuestState>& guests, double floor) {
  double sum = 0.0;
  for (const auto& g : guests) sum += expected_remaining(g, floor);
  return sum;
}

}  // namespace mosix
