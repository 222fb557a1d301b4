#include "runtime/core/pmi_wire.h"

#include <algorithm>
#include <map>

#include "runtime/core/little_endian.h"

namespace mosix::pmi {

namespace {

// Splits `text` at `separator` into "key=value" items, the first of which
// must be cmd=NAME. PMI-1 words need their '='; PMI-2 allows a bare key,
// and a doubled separator there is one inside a value (MPICH's escape).
std::optional<Command> parse_items(std::string_view text, char separator, bool v2) {
  Command c;
  bool first = true;
  while (!text.empty()) {
    std::string item;
    std::size_t at = 0;
    for (; at < text.size(); ++at) {
      if (text[at] != separator) {
        item += text[at];
      } else if (v2 && at + 1 < text.size() && text[at + 1] == separator && item.find('=') != std::string::npos) {
        item += separator;
        ++at;
      } else {
        break;
      }
    }
    text.remove_prefix(std::min(text.size(), at + 1));
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    if (eq == 0 || (eq == std::string::npos && !v2)) return std::nullopt;
    std::string key = item.substr(0, std::min(eq, item.size()));
    std::string value = eq == std::string::npos ? std::string() : item.substr(eq + 1);
    if (first) {
      if (key != "cmd" || value.empty()) return std::nullopt;
      c.cmd = std::move(value);
      first = false;
    } else {
      c.fields[key] = value;
      c.items.emplace_back(std::move(key), std::move(value));
    }
  }
  if (first) return std::nullopt;
  return c;
}

}  // namespace

std::optional<Command> parse_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return parse_items(line, ' ', false);
}

std::string reply(std::string_view cmd, std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  std::string out = "cmd=";
  out += cmd;
  for (const auto& [k, v] : fields) {
    out += ' ';
    out += k;
    out += '=';
    out += v;
  }
  out += '\n';
  return out;
}

std::string reply_line(std::string_view cmd, const KeyValues& fields) {
  std::string out = "cmd=";
  out += cmd;
  for (const auto& [k, v] : fields) out += " " + k + "=" + v;
  out += '\n';
  return out;
}

std::optional<std::size_t> frame_length(std::string_view bytes) {
  if (bytes.size() < 6) return std::nullopt;
  // Right-aligned ("%6u": MPICH 4.1 on) or left-aligned and padded with
  // blanks (MPICH 4.0's simple2pmi, Slurm's libpmi2).
  std::size_t n = 0;
  bool digits = false, ended = false;
  for (char ch : bytes.substr(0, 6)) {
    if (ch == ' ') {
      ended = digits;
      continue;
    }
    if (ch < '0' || ch > '9' || ended) return std::nullopt;
    n = n * 10 + static_cast<std::size_t>(ch - '0');
    digits = true;
  }
  if (!digits) return std::nullopt;
  return n;
}

std::optional<Command> parse_v2(std::string_view body) {
  // What follows a NUL is not the command (a C client's buffer).
  return parse_items(body.substr(0, body.find('\0')), ';', true);
}

std::string reply_v2(std::string_view cmd, const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string body = "cmd=";
  body += cmd;
  body += ';';
  for (const auto& [k, v] : fields) {
    body += k + "=";
    for (char ch : v) {
      body += ch;
      if (ch == ';') body += ';';
    }
    body += ';';
  }
  std::string length = std::to_string(body.size());
  if (length.size() < 6) length.insert(0, 6 - length.size(), ' ');
  return length + body;
}

bool valid_key(std::string_view key) {
  return !key.empty() && key.size() <= kKeyMax && key.find_first_of(" \n=") == std::string_view::npos;
}

bool valid_value(std::string_view value) {
  return value.size() <= kValueMax && value.find_first_of(" \n") == std::string_view::npos;
}

std::string process_mapping(const std::vector<std::uint32_t>& rank_nodes) {
  std::map<std::uint32_t, std::size_t> ids;
  for (std::uint32_t node : rank_nodes) ids.emplace(node, 0);
  for (std::size_t next = 0; auto& [node, id] : ids) id = next++;
  auto id = [&](std::uint32_t node) { return ids[node]; };
  // Runs of consecutive ranks on one node, then runs on consecutive nodes of
  // the same length merged into one block.
  struct Block {
    std::size_t first, count, per_node;
  };
  std::vector<Block> blocks;
  for (std::size_t r = 0; r < rank_nodes.size();) {
    std::size_t end = r;
    while (end < rank_nodes.size() && rank_nodes[end] == rank_nodes[r]) ++end;
    const std::size_t node = id(rank_nodes[r]), length = end - r;
    if (!blocks.empty() && blocks.back().per_node == length && blocks.back().first + blocks.back().count == node) {
      blocks.back().count++;
    } else {
      blocks.push_back(Block{node, 1, length});
    }
    r = end;
  }
  std::string out = "(vector";
  for (const Block& b : blocks) {
    out += ",(" + std::to_string(b.first) + "," + std::to_string(b.count) + "," + std::to_string(b.per_node) + ")";
  }
  return out + ")";
}

std::vector<std::uint8_t> pack(const KeyValues& pairs) {
  std::vector<std::uint8_t> out;
  auto put = [&out](const std::string& s) {
    const std::size_t at = out.size();
    out.resize(at + 4 + s.size());
    store_le(out.data() + at, static_cast<std::uint32_t>(s.size()));
    std::copy(s.begin(), s.end(), out.begin() + static_cast<std::ptrdiff_t>(at + 4));
  };
  for (const auto& [k, v] : pairs) {
    put(k);
    put(v);
  }
  return out;
}

Expected<KeyValues> unpack(std::span<const std::uint8_t> blob) {
  KeyValues pairs;
  std::size_t at = 0;
  auto take = [&](std::string& s) -> bool {
    if (blob.size() - at < 4) return false;
    const std::uint32_t n = load_le<std::uint32_t>(blob.data() + at);
    at += 4;
    if (blob.size() - at < n) return false;
    s.assign(reinterpret_cast<const char*>(blob.data() + at), n);
    at += n;
    return true;
  };
  while (at < blob.size()) {
    std::string k, v;
    if (!take(k) || !take(v)) {
      return make_error("PMI key-value blob cut short at byte " + std::to_string(at) + " of " +
                        std::to_string(blob.size()));
    }
    pairs.emplace_back(std::move(k), std::move(v));
  }
  return pairs;
}

}  // namespace mosix::pmi
