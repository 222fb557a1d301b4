#include "runtime/job/job_registry.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "runtime/daemon/proc_stat_file.h"
#include "runtime/sys/atomic_file.h"
#include "runtime/sys/errno_text.h"
#include "runtime/sys/private_path.h"
#include "runtime/sys/runtime_dir.h"

namespace mosix {
namespace {

constexpr int kRecordVersion = 1;

Expected<std::string> jobs_dir() {
  auto base = sys::runtime_dir();
  if (!base) return base.error();
  std::string dir = base.value() + "/jobs";
  if (Status s = sys::ensure_private_dir(dir); !s) return s.error();
  return dir;
}

// A job id becomes a file name: keep it to one harmless path component.
bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 128 || id[0] == '.') return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.';
  });
}

bool launcher_alive(const JobRecord& job) {
  if (job.launcher_pid <= 0) return false;
  if (kill(job.launcher_pid, 0) != 0) {
    // ESRCH: gone. EPERM: the pid now belongs to another user, and our
    // launchers run as us.
    return false;
  }
  auto st = read_proc_stat(job.launcher_pid);
  if (!st) return true;  // no /proc: trust kill()
  if (st->zombie()) return false;
  return job.launcher_start_ticks == 0 || st->starttime == job.launcher_start_ticks;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Temporaries of records (sys::AtomicFile's) whose writer died before renaming.
void remove_if_abandoned_temp(const std::string& dir, const std::string& name) {
  const std::optional<pid_t> writer = sys::atomic_temp_writer(name);
  if (!writer) return;
  if (kill(*writer, 0) != 0 && errno == ESRCH) {
    unlink((dir + "/" + name).c_str());
  }
}

}  // namespace

Status write_job(const JobRecord& job) {
  if (!valid_id(job.id)) {
    return make_error("job id '" + job.id + "' is not usable as a file name (letters, digits, "
                      "'-', '_' and '.' only)");
  }
  auto dir = jobs_dir();
  if (!dir) return dir.error();
  JobRecord record = job;
  if (record.launcher_start_ticks == 0 && record.launcher_pid > 0) {
    if (auto st = read_proc_stat(record.launcher_pid)) record.launcher_start_ticks = st->starttime;
  }
  return sys::write_file_atomically(dir.value() + "/" + job.id + ".json", job_to_json(record) + "\n",
                                    sys::Durability::kVolatile);
}

void remove_job(const std::string& id) {
  if (!valid_id(id)) return;
  auto dir = jobs_dir();
  if (!dir) return;
  std::string path = dir.value() + "/" + id + ".json";
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("cannot remove job record {}: {}", path, sys::errno_text(errno));
  }
}

std::vector<JobRecord> list_jobs() {
  std::vector<JobRecord> jobs;
  auto dir = jobs_dir();
  if (!dir) {
    spdlog::warn("cannot list jobs: {}", dir.error().message);
    return jobs;
  }
  DIR* d = opendir(dir->c_str());
  if (d == nullptr) {
    spdlog::warn("cannot list jobs in {}: {}", dir.value(), sys::errno_text(errno));
    return jobs;
  }
  std::vector<std::string> names;
  while (dirent* entry = readdir(d)) names.emplace_back(entry->d_name);
  closedir(d);

  for (const std::string& name : names) {
    if (name[0] == '.') {
      remove_if_abandoned_temp(dir.value(), name);
      continue;
    }
    if (!ends_with(name, ".json")) continue;
    std::string path = dir.value() + "/" + name;
    std::ifstream in(path);
    if (!in) continue;  // removed meanwhile
    std::ostringstream text;
    text << in.rdbuf();
    auto job = job_from_json(text.str());
    if (!job) {
      spdlog::warn("skipping job record {}: {}", path, job.error().message);
      continue;
    }
    if (!launcher_alive(job.value())) {
      spdlog::debug("removing job record {}: launcher {} is gone", path, job->launcher_pid);
      unlink(path.c_str());
      continue;
    }
    jobs.push_back(std::move(job).value());
  }
  std::sort(jobs.begin(), jobs.end(), [](const JobRecord& a, const JobRecord& b) {
    return a.start_time != b.start_time ? a.start_time < b.start_time : a.id < b.id;
  });
  return jobs;
}

nlohmann::json to_json(const GuestRecord& g) {
  return {{"rank", g.rank}, {"pid", g.pid}, {"node", g.node}, {"state", g.state}, {"exit_code", g.exit_code}};
}

std::string job_to_json(const JobRecord& job) {
  nlohmann::json guests = nlohmann::json::array();
  for (const GuestRecord& g : job.guests) guests.push_back(to_json(g));
  nlohmann::json j = {{"version", kRecordVersion},
                      {"id", job.id},
                      {"launcher_pid", job.launcher_pid},
                      {"launcher_start_ticks", job.launcher_start_ticks},
                      {"home_node", job.home_node},
                      {"command", job.command},
                      {"cwd", job.cwd},
                      {"control_socket", job.control_socket},
                      {"start_time", job.start_time},
                      {"guests", guests}};
  return j.dump(2);
}

Expected<JobRecord> job_from_json(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("job record is not a JSON object");
  try {
    int version = j.at("version").get<int>();
    if (version != kRecordVersion) {
      return make_error("job record version " + std::to_string(version) + " is not " +
                        std::to_string(kRecordVersion) + " (written by another mosixrun?)");
    }
    JobRecord job;
    job.id = j.at("id").get<std::string>();
    if (!valid_id(job.id)) return make_error("job record has an invalid id '" + job.id + "'");
    job.launcher_pid = j.at("launcher_pid").get<pid_t>();
    job.launcher_start_ticks = j.value("launcher_start_ticks", 0ull);
    job.home_node = j.value("home_node", "");
    job.command = j.value("command", "");
    job.cwd = j.value("cwd", "");
    job.control_socket = j.value("control_socket", "");
    job.start_time = j.value("start_time", 0L);
    for (const auto& g : j.value("guests", nlohmann::json::array())) {
      GuestRecord guest;
      guest.rank = g.at("rank").get<int>();
      guest.pid = g.at("pid").get<pid_t>();
      guest.node = g.value("node", "");
      guest.state = g.value("state", "");
      guest.exit_code = g.value("exit_code", -1);
      job.guests.push_back(std::move(guest));
    }
    return job;
  } catch (const nlohmann::json::exception& e) {
    return make_error(std::string("job record: ") + e.what());
  }
}

}  // namespace mosix
