#include "runtime/daemon/cpu_cap.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "runtime/daemon/proc_stat_file.h"

namespace mosix {
namespace {

constexpr const char* kAdvice =
    "run as root, or start mosixrun inside a cgroup delegated to you "
    "(e.g. systemd-run --user --scope -p Delegate=yes mosixrun ...)";
constexpr const char* kLeaf = "mosix-leaf";

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool has_token(const std::string& text, const std::string& token) {
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    if (word == token || word == "+" + token) return true;
  }
  return false;
}

// /proc/self/mounts escapes space, tab, newline and backslash as \ooo.
std::string unescape_mount_path(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int value = 0;
      bool octal = true;
      for (std::size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') octal = false;
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// On a real cgroup file system the kernel makes and removes the control
// files; in a test tree (any other file system) we make and remove them.
bool on_cgroupfs(const std::string& dir) {
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) != 0) return false;
  return fs.f_type == CGROUP_SUPER_MAGIC || fs.f_type == CGROUP2_SUPER_MAGIC;
}

// Writes `text` in one write(2), as cgroup files want. Returns 0 or errno.
int write_file(const std::string& path, const std::string& text, bool append, bool kernel) {
  int flags = O_WRONLY | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
  if (!kernel) flags |= O_CREAT;
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = n < 0 ? errno : (static_cast<std::size_t>(n) == text.size() ? 0 : EIO);
  ::close(fd);
  return err;
}

std::string describe_write_error(const std::string& path, int err) {
  if (err == ENOENT) return path + " does not exist: the cpu controller is not enabled for that cgroup";
  return std::string("cannot write ") + path + ": " + std::strerror(err);
}

// Returns 0, or errno of mkdir when the directory is neither made nor there.
int make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0) return 0;
  int err = errno;
  struct stat st {};
  if (err == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return 0;
  return err;
}

// rmdir, after deleting the files a test tree holds (a cgroup file system
// deletes its own). A directory with subdirectories is left alone.
int remove_group_dir(const std::string& path, bool kernel) {
  if (!kernel) {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return errno;
    std::vector<std::string> files;
    bool has_subdir = false;
    while (dirent* e = ::readdir(d)) {
      std::string entry = e->d_name;
      if (entry == "." || entry == "..") continue;
      struct stat st {};
      std::string full = path + "/" + entry;
      if (::lstat(full.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        has_subdir = true;
      } else {
        files.push_back(full);
      }
    }
    ::closedir(d);
    if (has_subdir) return ENOTEMPTY;
    for (const auto& f : files) ::unlink(f.c_str());
  }
  if (::rmdir(path.c_str()) == 0) return 0;
  return errno;
}

// Subdirectories of `dir`, as full paths.
std::vector<std::string> subdirectories(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string entry = e->d_name;
    struct stat st {};
    if (entry != "." && entry != ".." && ::lstat((dir + "/" + entry).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      out.push_back(dir + "/" + entry);
    }
  }
  ::closedir(d);
  return out;
}

// The groups a job left when it was killed with its daemons (they remove
// their own groups only when they end normally): top/jobPID, where PID, the
// job's mosixrun on this machine, is no longer a process. Only empty groups
// go: rmdir refuses one that still holds processes. A PID in use again, or
// one we may not signal, keeps its groups.
void sweep_dead_jobs(const std::string& top, bool kernel) {
  for (const std::string& job : subdirectories(top)) {
    const std::string name = job.substr(top.size() + 1);
    if (name.size() < 4 || name.size() > 13 || name.compare(0, 3, "job") != 0 ||
        name.find_first_not_of("0123456789", 3) != std::string::npos) {
      continue;
    }
    const long pid = std::stol(name.substr(3));
    if (pid <= 0 || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    for (const std::string& node : subdirectories(job)) (void)remove_group_dir(node, kernel);
    if (remove_group_dir(job, kernel) == 0) spdlog::debug("removed {}: its job {} is gone", job, pid);
  }
}

bool writable(const std::string& path) { return ::access(path.c_str(), W_OK) == 0; }

// Whether `pid` is `root` or a descendant of it (by the parent chain in
// /proc). Nothing when `pid` itself is gone.
std::optional<bool> in_tree_of(pid_t pid, pid_t root) {
  auto st = read_proc_stat(pid);
  if (!st) return std::nullopt;
  for (int hops = 0; hops < 4096; ++hops) {
    if (pid == root) return true;
    if (st->ppid <= 0) return false;
    pid = st->ppid;
    st = read_proc_stat(pid);
    if (!st) return false;
  }
  return false;
}

// The job's own root process: the mosixrun whose pid names the job
// ("job<PID>/..."), when it is this process or one of its ancestors; this
// process otherwise.
pid_t job_root_of(const std::string& name) {
  const pid_t self = ::getpid();
  if (name.compare(0, 3, "job") != 0) return self;
  pid_t pid = 0;
  const char* first = name.data() + 3;
  const char* last = name.data() + std::min(name.size(), name.find('/'));
  auto [end, ec] = std::from_chars(first, last, pid);
  if (ec != std::errc() || end != last || pid <= 0) return self;
  return in_tree_of(self, pid).value_or(false) ? pid : self;
}

Status evacuate(const std::string& parent, bool kernel, pid_t job_root) {
  std::string leaf = parent + "/" + kLeaf;
  int moved = 0;
  for (int round = 0; round < 10; ++round) {
    auto procs = read_text(parent + "/cgroup.procs");
    if (!procs) return make_error("cannot read " + parent + "/cgroup.procs");
    auto pids = split(*procs, '\n');
    if (pids.empty()) break;
    // Every process is checked before any is moved: a cgroup that holds
    // someone else's process (the user's shell, a container's init) keeps
    // all of them where they are.
    std::vector<std::string> ours;
    for (const auto& text : pids) {
      pid_t pid = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
      if (ec != std::errc() || end != text.data() + text.size()) {
        return make_error("cannot read " + parent + "/cgroup.procs: '" + text + "' is not a pid");
      }
      std::optional<bool> mine = in_tree_of(pid, job_root);
      if (!mine) continue;  // it exited meanwhile
      if (!*mine) {
        auto st = read_proc_stat(pid);
        return make_error("cgroup " + parent + " holds process " + text + " (" + (st ? st->comm : "?") +
                          "), which is not this job's; cgroup v2 allows no processes beside capped groups, "
                          "and mosixrun moves only its own: start mosixrun in a cgroup of its own "
                          "(e.g. systemd-run --user --scope -p Delegate=yes mosixrun ...)");
      }
      ours.push_back(text);
    }
    if (moved == 0 && !ours.empty()) {
      if (int err = make_dir(leaf); err != 0) {
        return make_error("cannot make " + leaf + " to move the processes of " + parent +
                          " into (cgroup v2 allows no processes beside capped children): " + std::strerror(err));
      }
    }
    for (const auto& pid : ours) {
      int err = write_file(leaf + "/cgroup.procs", pid + "\n", true, kernel);
      if (err == ESRCH) continue;  // it exited meanwhile
      if (err != 0) {
        return make_error("cannot move process " + pid + " from " + parent + " into " + leaf + ": " +
                          std::strerror(err));
      }
      ++moved;
    }
    if (!kernel) break;  // a test tree's file does not empty itself
  }
  spdlog::info("moved {} process(es) of this job from cgroup {} into {} so that its children can be CPU-capped",
               moved, parent, leaf);
  return Status::Ok();
}

Status enable_cpu(const std::string& dir, bool is_parent, bool kernel, pid_t job_root) {
  std::string control = dir + "/cgroup.subtree_control";
  auto current = read_text(control);
  if (current && has_token(*current, "cpu")) return Status::Ok();
  int err = write_file(control, "+cpu", false, kernel);
  if (err == EBUSY && is_parent) {
    if (Status s = evacuate(dir, kernel, job_root); !s) return s;
    err = write_file(control, "+cpu", false, kernel);
  }
  if (err != 0) {
    return make_error("cannot enable the cpu controller in " + control + ": " + std::strerror(err));
  }
  return Status::Ok();
}

bool valid_name(const std::string& name) {
  auto parts = split(name, '/');
  if (parts.empty() || name.front() == '/' || name.back() == '/' || name.find("//") != std::string::npos) {
    return false;
  }
  for (const auto& part : parts) {
    for (char c : part) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                c == '-';
      if (!ok) return false;
    }
  }
  return true;
}

std::string uncapped(const std::string& reason) { return "cannot cap CPU: " + reason + "; " + kAdvice; }

std::string join_path(const std::string& mount, const std::string& rel) {
  if (rel.empty() || rel == "/") return mount;
  return mount + (rel.front() == '/' ? "" : "/") + rel;
}

}  // namespace

long cpu_cap_quota_us(double cpus) {
  return static_cast<long>(std::llround(cpus * static_cast<double>(kCpuCapPeriodUs)));
}

CgroupRoots detect_cgroups(const CgroupProbe& probe) {
  bool as_root = probe.as_root.value_or(::geteuid() == 0);
  std::string v2_mount, v1_mount;
  if (auto mounts = read_text(probe.mounts)) {
    for (const auto& line : split(*mounts, '\n')) {
      std::istringstream in(line);
      std::string dev, dir, type, options;
      if (!(in >> dev >> dir >> type >> options)) continue;
      if (type == "cgroup2" && v2_mount.empty()) v2_mount = unescape_mount_path(dir);
      if (type == "cgroup" && v1_mount.empty()) {
        for (const auto& opt : split(options, ',')) {
          if (opt == "cpu") v1_mount = unescape_mount_path(dir);
        }
      }
    }
  }
  std::string v2_path, v1_path;
  if (auto self = read_text(probe.self_cgroup)) {
    for (const auto& line : split(*self, '\n')) {
      auto first = line.find(':');
      auto second = first == std::string::npos ? first : line.find(':', first + 1);
      if (second == std::string::npos) continue;
      std::string controllers = line.substr(first + 1, second - first - 1);
      std::string path = line.substr(second + 1);
      if (line.compare(0, first, "0") == 0 && controllers.empty()) v2_path = path;
      for (const auto& c : split(controllers, ',')) {
        if (c == "cpu") v1_path = path;
      }
    }
  }

  CgroupRoots roots;
  auto root_controllers = v2_mount.empty() ? std::nullopt : read_text(v2_mount + "/cgroup.controllers");
  if (root_controllers && has_token(*root_controllers, "cpu")) {
    std::string parent = as_root ? v2_mount : join_path(v2_mount, v2_path);
    auto controllers = read_text(parent + "/cgroup.controllers");
    if (!controllers || !has_token(*controllers, "cpu")) {
      roots.problem = uncapped("the cpu controller is not available in cgroup " + parent +
                               " (its parent does not pass it down)");
    } else if (!writable(parent) || !writable(parent + "/cgroup.subtree_control") ||
               !writable(parent + "/cgroup.procs")) {
      roots.problem = uncapped(std::string(as_root ? "" : "not root, and ") + "cgroup " + parent +
                               " is not writable (" + std::strerror(EACCES) + ")");
    } else {
      roots.version = CgroupVersion::kV2;
      roots.parent = parent;
    }
    return roots;
  }
  if (!v1_mount.empty()) {
    std::string parent = as_root ? v1_mount : join_path(v1_mount, v1_path);
    struct stat st {};
    if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      roots.problem = uncapped("cgroup " + parent + " named by " + probe.self_cgroup + " does not exist");
    } else if (!writable(parent)) {
      roots.problem = uncapped(std::string(as_root ? "" : "not root, and ") + "cgroup " + parent +
                               " is not writable (" + std::strerror(EACCES) + ")");
    } else {
      roots.version = CgroupVersion::kV1;
      roots.parent = parent;
    }
    return roots;
  }
  roots.problem = uncapped("no cgroup hierarchy with the cpu controller is mounted (" + probe.mounts +
                           " shows neither a cgroup2 offering cpu nor a cgroup v1 mounted with cpu)");
  return roots;
}

std::optional<std::string> why_uncapped(const CgroupRoots& roots) {
  if (roots.version != CgroupVersion::kNone) return std::nullopt;
  if (!roots.problem.empty()) return roots.problem;
  return uncapped("no cgroup was found");
}

Expected<CpuCap> CpuCap::create(std::string name, double cpus, const CgroupRoots& roots) {
  if (auto why = why_uncapped(roots)) return make_error(*why);
  if (!valid_name(name)) {
    return make_error("bad CPU cap group name '" + name +
                      "': use words of letters, digits, '_' and '-' separated by '/', e.g. job1234/vnode2");
  }
  if (!std::isfinite(cpus) || cpus < 0.01) {
    return make_error("cannot cap " + name + " to " + std::to_string(cpus) + " CPUs: give at least 0.01");
  }
  const bool v2 = roots.version == CgroupVersion::kV2;
  const bool kernel = on_cgroupfs(roots.parent);
  std::string top = roots.parent + "/mosix";
  sweep_dead_jobs(top, kernel);
  const pid_t job_root = job_root_of(name);
  std::vector<std::string> chain{roots.parent, top};
  for (const auto& part : split(name, '/')) chain.push_back(chain.back() + "/" + part);

  // Another daemon may remove an empty directory on our way down while we
  // make our group (its last group went away): a vanished directory means
  // try again from the top.
  Status made;
  for (int attempt = 0; attempt < 3; ++attempt) {
    made = Status::Ok();
    bool vanished = false;
    for (std::size_t i = 0; i < chain.size() && made && !vanished; ++i) {
      if (i > 0) {
        if (int err = make_dir(chain[i]); err != 0) {
          made = make_error("cannot make cgroup " + chain[i] + ": " + std::strerror(err));
          vanished = err == ENOENT;
          continue;
        }
      }
      if (v2 && i + 1 < chain.size()) {
        made = enable_cpu(chain[i], i == 0, kernel, job_root);
        vanished = !made && ::access(chain[i].c_str(), F_OK) != 0;
      }
    }
    if (!vanished) break;
  }
  if (!made) return made.error();

  CpuCap cap(chain.back(), top, cpus);
  cap.kernel_ = kernel;
  std::string quota = std::to_string(cpu_cap_quota_us(cpus));
  std::string period = std::to_string(kCpuCapPeriodUs);
  std::vector<std::pair<std::string, std::string>> writes;
  if (v2) {
    writes.emplace_back(cap.dir_ + "/cpu.max", quota + " " + period);
  } else {
    writes.emplace_back(cap.dir_ + "/cpu.cfs_period_us", period);
    writes.emplace_back(cap.dir_ + "/cpu.cfs_quota_us", quota);
  }
  for (const auto& [path, text] : writes) {
    if (int err = write_file(path, text, false, kernel); err != 0) {
      std::string message = describe_write_error(path, err);
      (void)cap.remove();
      return make_error(message);
    }
  }
  // The weight, in proportion to the cap (1 CPU: the default weight). The
  // quota is a ceiling only: on a machine busy with other work, groups of
  // equal weight would get equal parts of what is left, and a vcluster's
  // "fast" and "slow" nodes would become alike. Weights keep their ratios.
  // Not fatal: the cap holds without it.
  const std::string weight_file = cap.dir_ + (v2 ? "/cpu.weight" : "/cpu.shares");
  const long weight = v2 ? std::clamp(std::lround(cpus * 100), 1L, 10000L) : std::max(2L, std::lround(cpus * 1024));
  if (int err = write_file(weight_file, std::to_string(weight), false, kernel); err != 0) {
    spdlog::debug("CPU cap {}: weight not set: {}", cap.dir_, describe_write_error(weight_file, err));
  }
  spdlog::debug("CPU cap {}: {} CPUs ({} us per {} us)", cap.dir_, cpus, quota, period);
  return cap;
}

Status move_job_into_leaf(const std::string& cgroup, pid_t job_root) {
  return evacuate(cgroup, on_cgroupfs(cgroup), job_root);
}

CpuCap::CpuCap(CpuCap&& other) noexcept
    : dir_(std::exchange(other.dir_, {})), top_(std::move(other.top_)), cpus_(other.cpus_),
      kernel_(other.kernel_) {}

CpuCap& CpuCap::operator=(CpuCap&& other) noexcept {
  if (this != &other) {
    if (Status s = remove(); !s) spdlog::warn("{}", s.error().message);
    dir_ = std::exchange(other.dir_, {});
    top_ = std::move(other.top_);
    cpus_ = other.cpus_;
    kernel_ = other.kernel_;
  }
  return *this;
}

void remove_empty_parents(const std::string& dir, const std::string& top, bool kernel) {
  for (std::string d = dir.substr(0, dir.rfind('/'));
       d.size() > top.size() && d.compare(0, top.size(), top) == 0 && d[top.size()] == '/';
       d = d.substr(0, d.rfind('/'))) {
    int err = remove_group_dir(d, kernel);
    // EBUSY with no subdirectory: only groups gone offline are left below
    // (two nodes' removers racing, each seeing the other's group, left an
    // empty job<PID> when this gave up after 1 s on a loaded machine). A
    // subdirectory is another node's live group: it stays, and so does d.
    for (int tries = 0; err == EBUSY && tries < 6000 && subdirectories(d).empty(); ++tries) {
      ::usleep(5000);
      err = remove_group_dir(d, kernel);
    }
    if (err != 0 && err != ENOENT) return;
  }
}

CpuCap::~CpuCap() {
  if (Status s = remove(); !s) spdlog::warn("{}", s.error().message);
}

Status CpuCap::add(pid_t pid) {
  if (dir_.empty()) return make_error("cannot add process " + std::to_string(pid) + " to a removed CPU cap");
  std::string procs = dir_ + "/cgroup.procs";
  if (int err = write_file(procs, std::to_string(pid) + "\n", true, kernel_); err != 0) {
    return make_error("cannot move process " + std::to_string(pid) + " into cgroup " + dir_ + ": " +
                      (err == ESRCH ? std::string("no such process") : std::strerror(err)));
  }
  return Status::Ok();
}

Status CpuCap::remove() {
  if (dir_.empty()) return Status::Ok();
  int err = remove_group_dir(dir_, kernel_);
  if (err != 0 && err != ENOENT) {
    std::string why = err == EBUSY || err == ENOTEMPTY ? "it still holds processes or groups" : std::strerror(err);
    return make_error("cannot remove cgroup " + dir_ + ": " + why);
  }
  // The directories above, below parent/mosix, go once empty. A daemon
  // making its group meanwhile tries again (see create).
  std::string dir = dir_;
  dir_.clear();
  remove_empty_parents(dir, top_, kernel_);
  return Status::Ok();
}

}  // namespace mosix
