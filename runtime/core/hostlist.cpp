#include "runtime/core/hostlist.h"

#include <charconv>
#include <cstdint>

#include "runtime/core/printable.h"

namespace mosix {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// A decimal integer in [min, max]; nothing else in `s`.
bool parse_int(std::string_view s, long min, long max, long& out) {
  if (s.empty()) return false;
  long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < min || v > max) return false;
  out = v;
  return true;
}

bool valid_host_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == ':';
    if (!ok) return false;
  }
  return true;
}

std::vector<std::string_view> split_top_level(std::string_view text, char sep) {
  // Splits on `sep` outside brackets and parentheses.
  std::vector<std::string_view> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '[' || c == '(') ++depth;
    if (c == ']' || c == ')') --depth;
    if (c == sep && depth == 0) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(text.substr(start));
  return parts;
}

constexpr long kMaxSlots = 1 << 20;
constexpr size_t kMaxExpandedHosts = 1 << 20;

}  // namespace

Expected<std::vector<HostSlots>> parse_host_list(std::string_view text) {
  std::vector<HostSlots> hosts;
  text = trim(text);
  if (text.empty()) return make_error("empty host list: give hosts as --host a:2,b");
  for (std::string_view item : split_top_level(text, ',')) {
    item = trim(item);
    if (item.empty()) {
      return make_error("empty entry in host list " + quote(text) + ": remove the extra comma");
    }
    HostSlots h;
    std::string_view name = item;
    // `name:N`; an IPv6 address without slots is not supported by mpirun either.
    if (auto colon = item.rfind(':'); colon != std::string_view::npos) {
      name = item.substr(0, colon);
      long slots = 0;
      if (!parse_int(item.substr(colon + 1), 1, kMaxSlots, slots)) {
        return make_error("bad slot count in host list entry " + quote(item) + ": write host:N with N >= 1");
      }
      h.slots = static_cast<int>(slots);
      h.slots_given = true;
    }
    if (!valid_host_name(name)) {
      return make_error("bad host name " + quote(name) + " in host list");
    }
    h.name = std::string(name);
    hosts.push_back(std::move(h));
  }
  return merge_hosts(hosts);
}

Expected<std::vector<HostSlots>> parse_hostfile(std::string_view text,
                                                std::string_view file_name) {
  std::vector<HostSlots> hosts;
  int line_no = 0;
  size_t pos = 0;
  auto where = [&] { return printable(file_name) + ":" + std::to_string(line_no) + ": "; };
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) {
      if (end == text.size()) break;
      continue;
    }
    // Tokens separated by blanks: name, then key=value pairs.
    std::vector<std::string_view> tokens;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
      if (j > i) tokens.push_back(line.substr(i, j - i));
      i = j;
    }
    HostSlots h;
    if (!valid_host_name(tokens[0]) || tokens[0].find('=') != std::string_view::npos) {
      return make_error(where() + "bad host name " + quote(tokens[0]));
    }
    h.name = std::string(tokens[0]);
    for (size_t t = 1; t < tokens.size(); ++t) {
      std::string_view tok = tokens[t];
      auto eq = tok.find('=');
      std::string_view key = eq == std::string_view::npos ? tok : tok.substr(0, eq);
      std::string_view value = eq == std::string_view::npos ? "" : tok.substr(eq + 1);
      long n = 0;
      if (key == "slots" || key == "cpu" || key == "count") {
        if (!parse_int(value, 1, kMaxSlots, n)) {
          return make_error(where() + "bad slot count " + quote(tok) + ": write slots=N with N >= 1");
        }
        h.slots = static_cast<int>(n);
        h.slots_given = true;
      } else if (key == "max_slots" || key == "max-slots") {
        if (!parse_int(value, 0, kMaxSlots, n)) {
          return make_error(where() + "bad max_slots " + quote(tok));
        }
      } else {
        return make_error(where() + "unknown keyword " + quote(tok) +
                          ": a line is 'host [slots=N] [max_slots=N]'");
      }
    }
    hosts.push_back(std::move(h));
    if (end == text.size()) break;
  }
  if (hosts.empty()) {
    return make_error(printable(file_name) + ": names no host: add lines 'host slots=N'");
  }
  return merge_hosts(hosts);
}

std::vector<HostSlots> merge_hosts(const std::vector<HostSlots>& hosts) {
  std::vector<HostSlots> out;
  for (const HostSlots& h : hosts) {
    bool merged = false;
    for (HostSlots& o : out) {
      if (o.name == h.name) {
        o.slots += h.slots;
        o.slots_given = o.slots_given || h.slots_given;
        merged = true;
        break;
      }
    }
    if (!merged) out.push_back(h);
  }
  return out;
}

namespace {

// One bracket range list `01-04,07` -> strings with the width of the lower bound.
Expected<std::vector<std::string>> expand_ranges(std::string_view ranges, std::string_view whole) {
  std::vector<std::string> out;
  for (std::string_view r : split_top_level(ranges, ',')) {
    r = trim(r);
    auto dash = r.find('-');
    std::string_view lo_s = dash == std::string_view::npos ? r : r.substr(0, dash);
    std::string_view hi_s = dash == std::string_view::npos ? r : r.substr(dash + 1);
    long lo = 0, hi = 0;
    if (!parse_int(lo_s, 0, INT32_MAX, lo) || !parse_int(hi_s, 0, INT32_MAX, hi) || hi < lo) {
      return make_error("malformed Slurm node list " + quote(whole) + ": bad range " + quote(r));
    }
    if (static_cast<size_t>(hi - lo) > kMaxExpandedHosts) {
      return make_error("Slurm node list " + quote(whole) + " is too large");
    }
    size_t width = lo_s.size();
    for (long v = lo; v <= hi; ++v) {
      std::string num = std::to_string(v);
      if (num.size() < width) num.insert(0, width - num.size(), '0');
      out.push_back(std::move(num));
    }
  }
  return out;
}

}  // namespace

Expected<std::vector<std::string>> expand_slurm_hostlist(std::string_view text) {
  std::vector<std::string> hosts;
  text = trim(text);
  if (text.empty()) return make_error("empty Slurm node list");
  int depth = 0;
  for (char c : text) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (depth < 0 || depth > 1) {
      return make_error("malformed Slurm node list " + quote(text) + ": unbalanced brackets");
    }
  }
  if (depth != 0) {
    return make_error("malformed Slurm node list " + quote(text) + ": unbalanced brackets");
  }
  for (std::string_view item : split_top_level(text, ',')) {
    item = trim(item);
    if (item.empty()) {
      return make_error("malformed Slurm node list " + quote(text) + ": empty entry");
    }
    // Expand every bracket group in turn (`rack[1-2]n[1-3]` is a product).
    std::vector<std::string> partial{""};
    size_t i = 0;
    while (i < item.size()) {
      auto open = item.find('[', i);
      std::string_view literal = item.substr(i, open == std::string_view::npos ? std::string_view::npos : open - i);
      for (std::string& p : partial) p.append(literal);
      if (open == std::string_view::npos) break;
      auto close = item.find(']', open);
      auto nums = expand_ranges(item.substr(open + 1, close - open - 1), text);
      if (!nums) return nums.error();
      std::vector<std::string> next;
      for (const std::string& p : partial) {
        for (const std::string& n : *nums) next.push_back(p + n);
      }
      if (next.size() > kMaxExpandedHosts) {
        return make_error("Slurm node list " + quote(text) + " is too large");
      }
      partial = std::move(next);
      i = close + 1;
    }
    for (std::string& p : partial) {
      if (!valid_host_name(p)) {
        return make_error("malformed Slurm node list " + quote(text) + ": bad host name " + quote(p));
      }
      hosts.push_back(std::move(p));
    }
  }
  return hosts;
}

Expected<std::vector<int>> expand_slurm_tasks_per_node(std::string_view text) {
  std::vector<int> counts;
  text = trim(text);
  if (text.empty()) return make_error("empty SLURM_TASKS_PER_NODE");
  for (std::string_view item : split_top_level(text, ',')) {
    item = trim(item);
    long count = 0, repeat = 1;
    std::string_view count_s = item;
    if (auto paren = item.find('('); paren != std::string_view::npos) {
      count_s = item.substr(0, paren);
      std::string_view rest = item.substr(paren);
      if (rest.size() < 4 || rest.substr(0, 2) != "(x" || rest.back() != ')' ||
          !parse_int(rest.substr(2, rest.size() - 3), 1, kMaxExpandedHosts, repeat)) {
        return make_error("malformed SLURM_TASKS_PER_NODE " + quote(text) + " at " + quote(item) +
                          ": expected N or N(xR)");
      }
    }
    if (!parse_int(count_s, 0, kMaxSlots, count)) {
      return make_error("malformed SLURM_TASKS_PER_NODE " + quote(text) + " at " + quote(item) +
                        ": expected N or N(xR)");
    }
    if (counts.size() + static_cast<size_t>(repeat) > kMaxExpandedHosts) {
      return make_error("SLURM_TASKS_PER_NODE " + quote(text) + " is too large");
    }
    counts.insert(counts.end(), static_cast<size_t>(repeat), static_cast<int>(count));
  }
  return counts;
}

}  // namespace mosix
