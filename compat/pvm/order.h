// Messages from one sender, back in the order it sent them. A sender numbers
// its messages to each receiver from 0; the node daemons deliver them by two
// routes that may overtake each other (guest_service.h), and the receiver
// lets each one out only after every earlier one. Pure, header-only.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace mosix::pvm {

template <typename T>
class PerSenderOrder {
 public:
  // The items of `sender` now in order: this one and those it released, or
  // nothing if an earlier one is still missing. A number seen before is dropped.
  std::vector<T> arrive(int sender, std::uint64_t seq, T item) {
    std::vector<T> out;
    std::uint64_t& next = next_[sender];
    if (seq < next) return out;
    if (seq > next) {
      early_[sender].emplace(seq, std::move(item));
      return out;
    }
    out.push_back(std::move(item));
    ++next;
    auto held = early_.find(sender);
    if (held == early_.end()) return out;
    for (auto it = held->second.find(next); it != held->second.end(); it = held->second.find(next)) {
      out.push_back(std::move(it->second));
      held->second.erase(it);
      ++next;
    }
    if (held->second.empty()) early_.erase(held);
    return out;
  }
  // Items that came early and still wait, for every sender.
  std::size_t waiting() const {
    std::size_t n = 0;
    for (const auto& [sender, items] : early_) n += items.size();
    return n;
  }

 private:
  std::map<int, std::uint64_t> next_;
  std::map<int, std::map<std::uint64_t, T>> early_;
};

}  // namespace mosix::pvm
