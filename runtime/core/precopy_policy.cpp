#include "runtime/core/precopy_policy.h"

namespace mosix {

bool precopy_done(const PrecopyParams& params, std::span<const std::uint64_t> sent) {
  if (sent.empty()) return false;
  if (static_cast<int>(sent.size()) >= params.max_rounds) return true;
  const std::uint64_t last = sent.back();
  if (last <= params.small_bytes) return true;
  return sent.size() >= 2 && static_cast<double>(last) > params.shrink * static_cast<double>(sent[sent.size() - 2]);
}

}  // namespace mosix
