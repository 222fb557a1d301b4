#include "runtime/core/proc_stat.h"

#include <charconv>

namespace mosix {
namespace {

// The next space-separated word of `rest`, removed from it; empty at the end.
std::string_view next_word(std::string_view& rest) {
  std::size_t begin = rest.find_first_not_of(" \n");
  if (begin == std::string_view::npos) {
    rest = {};
    return {};
  }
  std::size_t end = rest.find_first_of(" \n", begin);
  if (end == std::string_view::npos) end = rest.size();
  std::string_view word = rest.substr(begin, end - begin);
  rest.remove_prefix(end);
  return word;
}

template <typename T>
bool to_number(std::string_view word, T& out) {
  if (word.empty()) return false;
  auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), out);
  return ec == std::errc() && end == word.data() + word.size();
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view line) {
  const std::size_t open = line.find(" (");
  const std::size_t close = line.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open + 2) return std::nullopt;
  ProcStat st;
  if (!to_number(line.substr(0, open), st.pid)) return std::nullopt;
  st.comm = std::string(line.substr(open + 2, close - open - 2));
  std::string_view rest = line.substr(close + 1);
  std::string_view state = next_word(rest);
  if (state.size() != 1) return std::nullopt;
  st.state = state[0];
  for (int field = 4; field <= 22; ++field) {
    std::string_view word = next_word(rest);
    bool ok = true;
    switch (field) {
      case 4: ok = to_number(word, st.ppid); break;
      case 5: ok = to_number(word, st.pgrp); break;
      case 9: ok = to_number(word, st.flags); break;
      case 14: ok = to_number(word, st.utime); break;
      case 15: ok = to_number(word, st.stime); break;
      case 16: ok = to_number(word, st.cutime); break;
      case 17: ok = to_number(word, st.cstime); break;
      case 22: ok = to_number(word, st.starttime); break;
      default: ok = !word.empty(); break;
    }
    if (!ok) return std::nullopt;
  }
  return st;
}

}  // namespace mosix
