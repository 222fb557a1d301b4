#include "runtime/core/pmi_spawn.h"

#include <charconv>
#include <optional>

namespace mosix::pmi {

namespace {

using Fields = std::map<std::string, std::string>;

// A count on the wire: decimal digits only, 0..limit.
std::optional<int> count_of(const std::string& text, int limit) {
  int n = 0;
  const char* end = text.data() + text.size();
  auto [at, ec] = std::from_chars(text.data(), end, n);
  if (text.empty() || ec != std::errc() || at != end || n < 0 || n > limit) return std::nullopt;
  return n;
}

// Reads fields[key] as a count into `n`; absent: `fallback` if it has one.
Status take_count(const Fields& fields, const std::string& key, int limit, std::optional<int> fallback,
                  const std::string& where, int& n) {
  auto it = fields.find(key);
  if (it == fields.end()) {
    if (!fallback) return make_error(where + "no " + key);
    n = *fallback;
    return {};
  }
  auto value = count_of(it->second, limit);
  if (!value) return make_error(where + key + "=" + it->second + " is not a number from 0 to " + std::to_string(limit));
  n = *value;
  return {};
}

// Numbered pairs key<first>..key<first+count-1> (and their values) into `out`.
Status take_list(const Fields& fields, const std::string& key, int first, int count, const std::string& where,
                 std::vector<std::string>& out) {
  for (int i = first; i < first + count; ++i) {
    auto it = fields.find(key + std::to_string(i));
    if (it == fields.end()) return make_error(where + "no " + key + std::to_string(i));
    out.push_back(it->second);
  }
  return {};
}

Status take_pairs(const Fields& fields, const std::string& key, const std::string& value, int count,
                  const std::string& where, KeyValues& out) {
  std::vector<std::string> keys, values;
  if (Status s = take_list(fields, key, 0, count, where, keys); !s) return s;
  if (Status s = take_list(fields, value, 0, count, where, values); !s) return s;
  for (int i = 0; i < count; ++i) out.emplace_back(keys[static_cast<std::size_t>(i)], values[static_cast<std::size_t>(i)]);
  return {};
}

}  // namespace

Expected<Spawn> parse_spawn_v2(const KeyValues& items) {
  // The items before the first subcmd are the spawn's; each subcmd starts
  // an app's.
  Fields top;
  std::vector<Fields> apps;
  for (const auto& [key, value] : items) {
    if (key == "thrid") continue;
    if (key == "subcmd") apps.emplace_back();
    Fields& into = apps.empty() ? top : apps.back();
    if (!into.emplace(key, value).second) {
      return make_error("PMI-2 spawn: " + key + " twice" +
                        (apps.empty() ? std::string() : " in command " + std::to_string(apps.size())));
    }
  }
  const int most = static_cast<int>(items.size());
  Spawn spawn;
  int ncmds = 0, preputs = 0;
  if (Status s = take_count(top, "ncmds", most, std::nullopt, "PMI-2 spawn: ", ncmds); !s) return s.error();
  if (ncmds == 0 || static_cast<std::size_t>(ncmds) != apps.size()) {
    return make_error("PMI-2 spawn: ncmds=" + std::to_string(ncmds) + " but " + std::to_string(apps.size()) +
                      " commands (subcmd) follow");
  }
  if (Status s = take_count(top, "preputcount", most, 0, "PMI-2 spawn: ", preputs); !s) return s.error();
  if (Status s = take_pairs(top, "ppkey", "ppval", preputs, "PMI-2 spawn: ", spawn.preput); !s) return s.error();
  for (std::size_t a = 0; a < apps.size(); ++a) {
    const Fields& fields = apps[a];
    const std::string where = "PMI-2 spawn: command " + std::to_string(a + 1) + ": ";
    SpawnApp app;
    app.program = fields.at("subcmd");
    int argc = 0, infos = 0;
    if (Status s = take_count(fields, "maxprocs", kSpawnMaxProcs, std::nullopt, where, app.maxprocs); !s) {
      return s.error();
    }
    if (Status s = take_count(fields, "argc", most, std::nullopt, where, argc); !s) return s.error();
    if (Status s = take_list(fields, "argv", 0, argc, where, app.args); !s) return s.error();
    if (Status s = take_count(fields, "infokeycount", most, 0, where, infos); !s) return s.error();
    if (Status s = take_pairs(fields, "infokey", "infoval", infos, where, app.info); !s) return s.error();
    if (app.program.empty()) return make_error(where + "names no program");
    if (app.maxprocs == 0) return make_error(where + "asks for 0 copies");
    spawn.apps.push_back(std::move(app));
  }
  return spawn;
}

Expected<SpawnBlock> parse_spawn_v1(const Fields& fields) {
  const std::string where = "PMI spawn: ";
  const int most = static_cast<int>(fields.size());
  SpawnBlock block;
  int argc = 0, infos = 0, preputs = 0;
  if (Status s = take_count(fields, "nprocs", kSpawnMaxProcs, std::nullopt, where, block.app.maxprocs); !s) {
    return s.error();
  }
  auto program = fields.find("execname");
  if (program == fields.end() || program->second.empty()) return make_error(where + "names no program (execname)");
  block.app.program = program->second;
  if (Status s = take_count(fields, "argcnt", most, 0, where, argc); !s) return s.error();
  if (Status s = take_list(fields, "arg", 1, argc, where, block.app.args); !s) return s.error();
  if (Status s = take_count(fields, "info_num", most, 0, where, infos); !s) return s.error();
  if (Status s = take_pairs(fields, "info_key_", "info_val_", infos, where, block.app.info); !s) return s.error();
  if (Status s = take_count(fields, "preput_num", most, 0, where, preputs); !s) return s.error();
  if (Status s = take_pairs(fields, "preput_key_", "preput_val_", preputs, where, block.preput); !s) return s.error();
  if (block.app.maxprocs == 0) return make_error(where + block.app.program + ": asks for 0 copies");
  return block;
}

bool last_spawn_block(const Fields& fields) {
  auto number = [&](const char* key) -> std::optional<int> {
    auto it = fields.find(key);
    return it == fields.end() ? std::nullopt : count_of(it->second, kSpawnMaxProcs);
  };
  const auto so_far = number("spawnssofar"), total = number("totspawns");
  return !so_far || !total || *so_far >= *total;
}

std::string info_value(const SpawnApp& app, const std::string& key) {
  for (const auto& [k, v] : app.info) {
    if (k == key) return v;
  }
  return {};
}

}  // namespace mosix::pmi
