// A set of half-open address ranges [start, end), kept sorted, disjoint and
// merged. Pure and header-only: the restorer (a static binary) keeps the
// memory it filled early in one (runtime/ckpt/restorer/early.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace mosix {

struct Range {
  std::uint64_t start = 0, end = 0;
  bool operator==(const Range&) const = default;
};

class RangeSet {
 public:
  const std::vector<Range>& ranges() const { return ranges_; }
  bool empty() const { return ranges_.empty(); }
  std::uint64_t bytes() const {
    std::uint64_t n = 0;
    for (const Range& r : ranges_) n += r.end - r.start;
    return n;
  }

  void add(std::uint64_t start, std::uint64_t end) {
    if (start >= end) return;
    // The first range that ends at or after start, and the first that
    // starts after end: everything between touches [start, end) and merges.
    auto lo = std::lower_bound(ranges_.begin(), ranges_.end(), start,
                               [](const Range& r, std::uint64_t v) { return r.end < v; });
    auto hi = std::upper_bound(lo, ranges_.end(), end, [](std::uint64_t v, const Range& r) { return v < r.start; });
    if (lo != hi) {
      start = std::min(start, lo->start);
      end = std::max(end, (hi - 1)->end);
    }
    lo = ranges_.erase(lo, hi);
    ranges_.insert(lo, Range{start, end});
  }

  void remove(std::uint64_t start, std::uint64_t end) {
    if (start >= end) return;
    std::vector<Range> out;
    out.reserve(ranges_.size() + 1);
    for (const Range& r : ranges_) {
      if (r.end <= start || r.start >= end) {
        out.push_back(r);
        continue;
      }
      if (r.start < start) out.push_back(Range{r.start, start});
      if (r.end > end) out.push_back(Range{end, r.end});
    }
    ranges_ = std::move(out);
  }

  // Calls fn(start, end) for each part of [start, end) inside the set
  // (covered) or outside it (!covered), in address order.
  template <typename Fn>
  void parts(std::uint64_t start, std::uint64_t end, bool covered, Fn&& fn) const {
    std::uint64_t at = start;
    for (const Range& r : ranges_) {
      if (r.end <= at) continue;
      if (r.start >= end) break;
      std::uint64_t s = std::max(r.start, at), e = std::min(r.end, end);
      if (!covered && at < s) fn(at, s);
      if (covered) fn(s, e);
      at = e;
    }
    if (!covered && at < end) fn(at, end);
  }

  bool contains(std::uint64_t start, std::uint64_t end) const {
    bool whole = false;
    parts(start, end, true, [&](std::uint64_t s, std::uint64_t e) { whole = s == start && e == end; });
    return whole;
  }

 private:
  std::vector<Range> ranges_;
};

}  // namespace mosix
