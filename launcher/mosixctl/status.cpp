// mosixctl status: this node at a glance (topology, speed, load, memory) and
// the jobs of this user running on it. The --json form is a stable interface,
// documented in docs/mosixctl.md.
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "launcher/mosixctl/commands.h"
#include "runtime/job/job_registry.h"
#include "runtime/topology/node_load.h"
#include "runtime/topology/speed.h"
#include "runtime/topology/topology.h"
#include "runtime/sys/host_name.h"

namespace mosix::ctl {
namespace {

constexpr int kStatusJsonVersion = 1;

struct SpeedStatus {
  double value = 1.0;
  std::optional<SpeedRecord> record;  // set when calibrated
  std::string file;                   // empty when no path could be chosen
  std::string problem;                // why a stored speed was not used
};

struct NodeStatus {
  std::string node;
  Topology topology;
  SpeedStatus speed;
  LoadAverage load;
  MemoryInfo memory;
  std::vector<JobRecord> jobs;
};

SpeedStatus speed_status() {
  SpeedStatus s;
  auto path = speed_file_path();
  if (!path) {
    s.problem = path.error().message;
    return s;
  }
  s.file = path.value();
  auto loaded = load_speed(s.file);
  if (!loaded) {
    s.problem = loaded.error().message;
  } else if (loaded->has_value()) {
    s.record = loaded->value();
    s.value = s.record->speed;
  }
  return s;
}

NodeStatus collect() {
  NodeStatus st;
  st.node = sys::host_name();
  auto topology = probe_this_node();
  if (!topology) throw CommandError(topology.error().message);
  st.topology = std::move(topology).value();
  st.speed = speed_status();
  auto load = read_loadavg();
  if (!load) throw CommandError(load.error().message);
  st.load = load.value();
  auto memory = read_meminfo();
  if (!memory) throw CommandError(memory.error().message);
  st.memory = memory.value();
  st.jobs = list_jobs();
  return st;
}

nlohmann::json null_or(const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); }

nlohmann::json to_status_json(const NodeStatus& st) {
  nlohmann::json speed = {{"value", st.speed.value},
                          {"calibrated", st.speed.record.has_value()},
                          {"score", nullptr},
                          {"date", nullptr},
                          {"file", null_or(st.speed.file)},
                          {"problem", null_or(st.speed.problem)}};
  if (st.speed.record) {
    speed["score"] = st.speed.record->score;
    speed["date"] = st.speed.record->date;
  }
  nlohmann::json jobs = nlohmann::json::array();
  for (const JobRecord& job : st.jobs) {
    nlohmann::json guests = nlohmann::json::array();
    for (const GuestRecord& g : job.guests) guests.push_back(to_json(g));
    jobs.push_back({{"id", job.id},
                    {"launcher_pid", job.launcher_pid},
                    {"home_node", job.home_node},
                    {"command", job.command},
                    {"cwd", job.cwd},
                    {"control_socket", null_or(job.control_socket)},
                    {"start_time", job.start_time},
                    {"guests", guests}});
  }
  return {{"version", kStatusJsonVersion},
          {"node", st.node},
          {"topology", to_json(st.topology)},
          {"speed", speed},
          {"load", {{"avg1", st.load.avg1},
                    {"avg5", st.load.avg5},
                    {"avg15", st.load.avg15},
                    {"running", st.load.running},
                    {"threads", st.load.threads}}},
          {"memory", {{"total_bytes", st.memory.total_bytes},
                      {"available_bytes", st.memory.available_bytes}}},
          {"jobs", jobs}};
}

std::string gib(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(bytes) / (1u << 30));
  return text;
}

std::string local_time(long epoch_seconds) {
  std::time_t t = epoch_seconds;
  std::tm tm{};
  localtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}

// Columns padded to their widest cell, two spaces apart; the last is not padded.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

std::string shortened(const std::string& s, std::size_t max) {
  return s.size() <= max ? s : s.substr(0, max - 3) + "...";
}

void print_human(const NodeStatus& st) {
  char text[160];
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"node", st.node});
  rows.push_back({"cpu", summary(st.topology)});
  if (st.speed.record) {
    std::snprintf(text, sizeof text, "%.2f (measured %s)", st.speed.value,
                  st.speed.record->date.c_str());
  } else if (!st.speed.problem.empty()) {
    std::snprintf(text, sizeof text, "%.2f (stored speed unusable: run mosixctl tune)",
                  st.speed.value);
  } else {
    std::snprintf(text, sizeof text, "%.2f (not calibrated: run mosixctl tune)", st.speed.value);
  }
  rows.push_back({"speed", text});
  std::snprintf(text, sizeof text, "%.2f %.2f %.2f (1, 5, 15 min; %d running)", st.load.avg1,
                st.load.avg5, st.load.avg15, st.load.running);
  rows.push_back({"load", text});
  rows.push_back({"memory", gib(st.memory.available_bytes) + " available of " +
                                gib(st.memory.total_bytes)});
  rows.push_back({"jobs", st.jobs.empty() ? "none" : std::to_string(st.jobs.size())});
  print_table(rows);
  if (st.jobs.empty()) return;

  std::printf("\n");
  std::vector<std::vector<std::string>> jobs = {{"JOB", "STARTED", "GUESTS", "COMMAND"}};
  for (const JobRecord& job : st.jobs) {
    jobs.push_back({job.id, local_time(job.start_time), std::to_string(job.guests.size()),
                    shortened(job.command, 60)});
  }
  print_table(jobs);
}

}  // namespace

void register_status(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* status = app.add_subcommand(
      "status", "Show this node (topology, speed, load, memory) and your jobs running on it");
  status->add_flag("--json", *json, "Print the status as JSON (stable, see docs/mosixctl.md)");
  status->callback([json] {
    NodeStatus st = collect();
    if (!st.speed.problem.empty()) spdlog::warn("{}", st.speed.problem);
    if (*json) {
      std::cout << to_status_json(st).dump(2) << "\n";
    } else {
      print_human(st);
    }
  });
}

}  // namespace mosix::ctl
