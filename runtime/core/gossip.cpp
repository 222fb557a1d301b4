#include "runtime/core/gossip.h"

#include <algorithm>
#include <cmath>

namespace mosix {

double local_load_estimate(double previous, double sample, double dt, double rise) {
  if (sample <= previous) return sample;
  if (rise <= 0.0) return sample;
  if (dt <= 0.0) return previous;
  return previous + (sample - previous) * (1.0 - std::exp(-dt / rise));
}

double exported_load_estimate(double previous, double sample, double dt, double decay) {
  if (sample >= previous) return sample;
  if (decay <= 0.0) return sample;
  if (dt <= 0.0) return previous;
  return sample + (previous - sample) * std::exp(-dt / decay);
}

double next_gossip_delay(const GossipParams& params, Rng& rng) {
  return params.interval * (1.0 + params.jitter * (rng.uniform() - 0.5));
}

std::optional<NodeId> pick_peer(NodeId self, std::size_t cluster_size, Rng& rng) {
  if (cluster_size < 2) return std::nullopt;
  // Draw among the cluster_size - 1 others and skip over self.
  auto pick = static_cast<NodeId>(rng.below(cluster_size - 1));
  if (pick >= self) ++pick;
  return pick;
}

LoadVector::LoadVector(NodeId self, GossipParams params)
    : self_(self), params_(params), own_{NodeLoad{.id = self}, 0.0} {
  others_.reserve(params_.capacity + params_.window);
}

void LoadVector::update_self(const NodeLoad& measured, double now) {
  own_.load = measured;
  own_.load.id = self_;
  own_.load.age = 0.0;
  own_.measured = now;
}

NodeLoad LoadVector::with_age(const Entry& e, double now) const {
  NodeLoad out = e.load;
  out.age = std::max(0.0, now - e.measured);
  return out;
}

std::vector<NodeLoad> LoadVector::window(double now) const {
  std::vector<NodeLoad> out;
  if (params_.window == 0) return out;
  const std::size_t n = std::min(others_.size(), params_.window - 1);
  out.reserve(n + 1);
  out.push_back(with_age(own_, now));
  for (std::size_t i = 0; i < n; ++i) out.push_back(with_age(others_[i], now));
  return out;
}

std::size_t LoadVector::merge(std::span<const NodeLoad> received, double now) {
  std::size_t taken = 0;
  for (const auto& in : received) {
    if (in.id == self_) continue;
    const double age = std::max(0.0, in.age);
    if (age > params_.expire_after) continue;
    const double measured = now - age;
    auto it = std::find_if(others_.begin(), others_.end(),
                           [&](const Entry& e) { return e.load.id == in.id; });
    if (it == others_.end()) {
      others_.push_back(Entry{in, measured});
      ++taken;
    } else if (measured > it->measured) {
      *it = Entry{in, measured};
      ++taken;
    }
  }
  if (taken > 0) sort_and_trim();
  expire(now);
  return taken;
}

void LoadVector::sort_and_trim() {
  std::sort(others_.begin(), others_.end(), [](const Entry& a, const Entry& b) {
    if (a.measured != b.measured) return a.measured > b.measured;
    return a.load.id < b.load.id;
  });
  if (others_.size() > params_.capacity) others_.resize(params_.capacity);
}

void LoadVector::expire(double now) {
  while (!others_.empty() && now - others_.back().measured > params_.expire_after) {
    others_.pop_back();
  }
}

void LoadVector::note_guest_sent(NodeId id, double work) {
  for (auto& e : others_) {
    if (e.load.id == id) {
      e.load.load = load_with(e.load, 1.0);
      if (e.load.work >= 0.0) e.load.work += std::max(0.0, work);
      return;
    }
  }
}

std::vector<NodeLoad> LoadVector::others(double now) const {
  std::vector<NodeLoad> out;
  out.reserve(others_.size());
  for (const auto& e : others_) out.push_back(with_age(e, now));
  return out;
}

std::optional<NodeLoad> LoadVector::find(NodeId id, double now) const {
  if (id == self_) return with_age(own_, now);
  for (const auto& e : others_) {
    if (e.load.id == id) return with_age(e, now);
  }
  return std::nullopt;
}

}  // namespace mosix
