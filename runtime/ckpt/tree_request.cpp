#include "runtime/ckpt/tree_request.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "runtime/ckpt/format/image_file.h"
#include "runtime/ckpt/request.h"
#include "runtime/ckpt/tree_descriptors.h"
#include "runtime/ckpt/tree_protocol.h"
#include "runtime/ckpt/tree_sessions.h"
#include "runtime/core/printable.h"
#include "runtime/sys/atomic_file.h"
#include "runtime/sys/errno_text.h"

namespace mosix::ckpt {
namespace {

struct SharedMap {
  std::uint64_t start = 0, end = 0, offset = 0, dev = 0, inode = 0;
};

struct Child {
  pid_t pid = 0, vpid = 0;
  bool zombie = false;
  int code = 0, status = 0;
  bool stopped = false;
  int stop_signal = 0;  // a stopped child's, 0 when its stop was waited for
};

// One member of the tree and its conversation with its agent.
struct Member {
  pid_t pid = 0;
  int parent = -1;
  std::string request, status_fifo, control_fifo;
  int status_fd = -1, control_fd = -1, pidfd = -1;
  std::optional<sys::AtomicFile> image;
  std::string buffer;
  enum State { kAsked, kReady, kWritten, kFailed } state = kAsked;
  std::string error;
  pid_t vpid = 0, vppid = 0, pgid = 0, sid = 0;
  std::uint64_t table = 0, bytes = 0;
  int pdeathsig = 0;
  bool stopped = false;   // by a signal, at the listing
  bool held = false;      // stopped, not continued yet: not asked to answer
  int stop_signal = 0;    // what stopped it, from its parent's child line
  std::vector<Child> children;
  std::vector<SharedMap> shared;
  std::vector<TreeSocketPair> pair_ends;  // {its end, the other end held elsewhere}
  ~Member() {
    for (int fd : {status_fd, control_fd, pidfd})
      if (fd >= 0) close(fd);
    for (const std::string& f : {request, status_fifo, control_fifo})
      if (!f.empty()) unlink(f.c_str());
  }
};
using Members = std::vector<std::unique_ptr<Member>>;

// Fields 5 and 6 of /proc/PID/stat: its process group and session (a
// zombie's too); {0, 0} when it is gone.
std::pair<pid_t, pid_t> group_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  std::size_t close = line.rfind(')');
  if (close == std::string::npos) return {0, 0};
  std::istringstream rest(line.substr(close + 1));
  std::string state;
  pid_t ppid = 0, pgrp = 0, session = 0;
  rest >> state >> ppid >> pgrp >> session;
  return {pgrp, session};
}

char state_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  std::size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : 0;
}

// The children of every thread of `pid`.
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "children");
    for (pid_t c; in >> c;) out.push_back(c);
  }
  return out;
}

std::string who(const Member& m, const Members& all) {
  std::string s = "process " + std::to_string(m.pid);
  if (m.parent >= 0) s += " (child of " + std::to_string(all[static_cast<std::size_t>(m.parent)]->pid) + ")";
  return s;
}

// The tree under root as /proc shows it now: live processes, each after its
// parent (ended children are their parent's to report).
Expected<Members> list_tree(pid_t root) {
  Members out;
  out.push_back(std::make_unique<Member>());
  out[0]->pid = root;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const Member& m = *out[i];
    if (Status s = check_guest(m.pid); !s.ok()) return make_error(who(m, out) + ": " + s.error().message);
    char st = state_of(m.pid);
    if (st == 't' || (st == 'T' && m.parent < 0))
      return make_error(who(m, out) + " is stopped" + (st == 't' ? " by a tracer" : "") +
                        "; continue it (SIGCONT) before the checkpoint");
    out[i]->stopped = out[i]->held = st == 'T';
    // A vfork() child runs in its parent's memory, and the parent waits,
    // unable to take a request, until it calls exec or ends.
    if (m.parent >= 0 && syscall(SYS_kcmp, out[static_cast<std::size_t>(m.parent)]->pid, m.pid, 1 /* KCMP_VM */, 0, 0) == 0)
      return make_error(who(m, out) + " is a vfork() child that has not called exec or ended yet: it shares its "
                                      "parent's memory, which a restore would part");
    // clone(CLONE_FILES): one descriptor table, which each restore would
    // make its own of (and each would see the other's request files).
    for (std::size_t k = 0; k < i; ++k)
      if (syscall(SYS_kcmp, out[k]->pid, m.pid, 2 /* KCMP_FILES */, 0, 0) == 0)
        return make_error(who(m, out) + " shares its descriptor table with process " + std::to_string(out[k]->pid) +
                          " (clone with CLONE_FILES), which a restore would part");
    for (pid_t c : children_of(m.pid)) {
      char cs = state_of(c);
      if (cs == 0 || cs == 'Z' || cs == 'X') continue;
      out.push_back(std::make_unique<Member>());
      out.back()->pid = c;
      out.back()->parent = static_cast<int>(i);
    }
  }
  return out;
}

// Members whose standard streams are not the root's would get the
// restarter's, as the root does. One a member closed stays closed.
Status check_std_streams(const Members& all) {
  for (int fd = 0; fd < 3; ++fd) {
    struct stat root{};
    bool root_has = stat(("/proc/" + std::to_string(all[0]->pid) + "/fd/" + std::to_string(fd)).c_str(), &root) == 0;
    for (std::size_t i = 1; i < all.size(); ++i) {
      struct stat st{};
      bool has = stat(("/proc/" + std::to_string(all[i]->pid) + "/fd/" + std::to_string(fd)).c_str(), &st) == 0;
      if (has && (!root_has || st.st_dev != root.st_dev || st.st_ino != root.st_ino))
        return make_error(who(*all[i], all) + ": its fd " + std::to_string(fd) +
                          " is not the root's, and every process of a restored tree gets the restarter's standard "
                          "streams");
    }
  }
  return Status::Ok();
}

Status ask(Member& m, const std::string& dir, const TreeCheckpointRequest& r, std::size_t index) {
  std::string base = dir + "/ckpt-" + std::to_string(m.pid);
  m.status_fifo = base + ".status." + std::to_string(getpid());
  m.control_fifo = base + ".tree." + std::to_string(getpid());
  for (const std::string& f : {m.status_fifo, m.control_fifo}) {
    unlink(f.c_str());
    if (mkfifo(f.c_str(), 0600) != 0) return make_error("cannot create " + f + ": " + sys::errno_text(errno));
  }
  m.status_fd = open(m.status_fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  // Read and write: the agent's open does not wait, and our end closing
  // (this process gone) is its end of file.
  m.control_fd = open(m.control_fifo.c_str(), O_RDWR | O_CLOEXEC);
  m.pidfd = static_cast<int>(syscall(SYS_pidfd_open, m.pid, 0));
  if (m.status_fd < 0 || m.control_fd < 0 || m.pidfd < 0)
    return make_error("cannot set up the request to process " + std::to_string(m.pid) + ": " + sys::errno_text(errno));
  auto image = sys::AtomicFile::create(r.image_path + "." + std::to_string(index));
  if (!image) return image.error();
  m.image.emplace(std::move(*image));
  // --kill: stopped first, killed once every image is in place.
  AfterCheckpoint mode = r.mode == AfterCheckpoint::kKill ? AfterCheckpoint::kStop : r.mode;
  std::string request = "out=" + m.image->temp_path() + "\nstatus=" + m.status_fifo + "\nmode=" +
                        kModeNames[static_cast<int>(mode)] + "\ncompress=" + compression_name(r.compression) +
                        "\ntree=" + m.control_fifo + "\n";
  if (Status s = sys::write_file_atomically(base + ".req", request, sys::Durability::kVolatile); !s.ok()) return s;
  m.request = base + ".req";
  if (kill(m.pid, kRequestSignal) != 0)
    return make_error("cannot signal process " + std::to_string(m.pid) + ": " + sys::errno_text(errno));
  return Status::Ok();
}

// One line of a member's agent.
void take_line(Member& m, const std::string& line) {
  std::istringstream in(line);
  std::string word;
  in >> word;
  if (word == "child") {
    Child c;
    std::string kind;
    in >> c.pid >> c.vpid >> kind;
    c.zombie = kind == "zombie";
    if (c.zombie) in >> c.code >> c.status;
    std::string stopped;
    if (!c.zombie && in >> stopped && stopped == "stopped") {
      c.stopped = true;
      in >> c.stop_signal;
    }
    m.children.push_back(c);
  } else if (word == "shm") {
    SharedMap m2;
    in >> std::hex >> m2.start >> m2.end >> m2.offset >> m2.dev >> std::dec >> m2.inode;
    m.shared.push_back(m2);
  } else if (word == "sockpair") {
    TreeSocketPair p;
    in >> p.first >> p.second;
    m.pair_ends.push_back(p);
  } else if (word == "ready") {
    std::string table;
    in >> m.vpid >> m.vppid >> m.pgid >> m.sid >> table >> m.pdeathsig;
    m.table = std::strtoull(table.c_str(), nullptr, 16);
    m.state = Member::kReady;
  } else if (word == "ok") {
    in >> m.bytes;
    m.state = Member::kWritten;
  } else if (word == "error") {
    m.error = printable(line.substr(line.size() > 6 ? 6 : line.size()));
    m.state = Member::kFailed;
  }
}

// Reads the members' lines until each is at `target`; false as soon as one
// failed (unless target is kFailed: then until each has), ended or stayed
// silent for timeout_s.
bool pump(Members& all, Member::State target, int timeout_s, std::string* why) {
  auto now_ms = [] {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1'000'000L;
  };
  long last = now_ms();
  for (;;) {
    bool waiting = false;
    // Only the channels of members not there yet: one that answered may
    // have closed its own (a hang-up forever readable).
    std::vector<pollfd> fds;
    for (auto& m : all) {
      if (m->state == Member::kFailed && target != Member::kFailed) {
        *why = "process " + std::to_string(m->pid) + " refused: " + m->error;
        return false;
      }
      bool behind = m->state < target && !m->held;
      waiting = waiting || behind;
      fds.push_back({behind ? m->status_fd : -1, POLLIN, 0});
      fds.push_back({m->pidfd, POLLIN, 0});
    }
    if (!waiting) return true;
    int n = poll(fds.data(), fds.size(), 100);
    if (n < 0 && errno == EINTR) continue;
    if (now_ms() - last >= timeout_s * 1000L) {
      *why = "no answer from every process of the tree within " + std::to_string(timeout_s) + " s";
      return false;
    }
    for (std::size_t i = 0; i < all.size(); ++i) {
      Member& m = *all[i];
      if (fds[2 * i].revents & POLLIN) {
        char chunk[1024];
        ssize_t got = read(m.status_fd, chunk, sizeof chunk);
        if (got > 0) {
          m.buffer.append(chunk, static_cast<std::size_t>(got));
          last = now_ms();
        }
        for (std::size_t eol; (eol = m.buffer.find('\n')) != std::string::npos;) {
          take_line(m, m.buffer.substr(0, eol));
          m.buffer.erase(0, eol + 1);
        }
        if (got == 0 && m.state < target) {  // the agent's end closed without its answer
          *why = "process " + std::to_string(m.pid) + " closed its status channel without an answer";
          return false;
        }
      } else if (fds[2 * i].revents & POLLHUP) {
        *why = "process " + std::to_string(m.pid) + " closed its status channel without an answer";
        return false;
      } else if (fds[2 * i + 1].revents & POLLIN) {
        *why = "process " + std::to_string(m.pid) + " ended during the checkpoint of its tree";
        return false;
      }
    }
  }
}

void tell(Members& all, const char* word) {
  for (auto& m : all) {
    if (m->state == Member::kFailed) continue;
    ssize_t w = write(m->control_fd, word, std::char_traits<char>::length(word));
    (void)w;
  }
}

// Members that were stopped by a signal (and continued for the checkpoint)
// are stopped again by it before any other runs on; their parent's next
// wait reports the stop as before.
void restop(Members& all) {
  for (auto& m : all)
    if (m->stopped && !m->held) syscall(SYS_pidfd_send_signal, m->pidfd, m->stop_signal, nullptr, 0);
}

// Lets every member go on unchanged, and waits until each one that had not
// written its image yet said so (its error line); one that had is told to
// run on and says nothing more.
void abandon(Members& all) {
  restop(all);
  tell(all, "abort\n");
  Members waiting;
  for (auto& m : all)
    if ((m->state == Member::kAsked || m->state == Member::kReady) && !m->held) {
      m->state = Member::kAsked;
      waiting.push_back(std::move(m));
    }
  std::string ignored;
  pump(waiting, Member::kFailed, 10, &ignored);
}

// What the agents said against what the tree was: a member made a child
// or lost one since the tree was listed.
bool tree_changed(const Members& all) {
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::set<pid_t> said, listed;
    for (const Child& c : all[i]->children)
      if (!c.zombie) said.insert(c.pid);
    for (const auto& m : all)
      if (m->parent == static_cast<int>(i)) listed.insert(m->pid);
    if (said != listed) return true;
  }
  return false;
}

// The members stopped by a signal, continued now that every other member is
// held (so none sees it run); each is stopped again (restop) before any
// other runs on, and stops itself at the restore. Refused: one whose stop
// its parent waited for already (a restore would report it again), whose
// parent catches SIGCHLD (it would get one for the continue and the stop
// again), or stopped by a terminal signal in a group its parent's does not
// keep from being orphaned (the signal would be discarded).
Status continue_stopped(Members& all) {
  for (auto& m : all) {
    if (!m->stopped) continue;
    const Member& parent = *all[static_cast<std::size_t>(m->parent)];
    for (const Child& c : parent.children)
      if (c.pid == m->pid) m->stop_signal = c.stop_signal;
    if (m->stop_signal <= 0)
      return make_error(who(*m, all) + " is stopped, and its parent has waited for the stop already, which a "
                                       "restore would report again; continue it (SIGCONT) before the checkpoint");
    std::ifstream status("/proc/" + std::to_string(parent.pid) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("SigCgt:", 0) == 0 && (std::strtoull(line.c_str() + 7, nullptr, 16) >> (SIGCHLD - 1) & 1) != 0)
        return make_error(who(*m, all) + " is stopped, and its parent catches SIGCHLD, which would see it continued "
                                         "for the checkpoint; continue it (SIGCONT) before the checkpoint");
    // A group is kept from being orphaned by a process of it whose parent
    // is in another group of the same session (the root's parent is the
    // restarter: it does not count).
    auto [pgid, sid] = group_of(m->pid);
    bool kept = false;
    for (const auto& x : all) {
      if (x->parent < 0 || group_of(x->pid).first != pgid) continue;
      auto [ppgid, psid] = group_of(all[static_cast<std::size_t>(x->parent)]->pid);
      kept = kept || (ppgid != pgid && psid == sid);
    }
    if (m->stop_signal != SIGSTOP && !kept)
      return make_error(who(*m, all) + " is stopped by signal " + std::to_string(m->stop_signal) +
                        " in a process group a restore could leave orphaned, where that signal does not stop it");
  }
  for (auto& m : all) {
    if (!m->held) continue;
    m->held = false;
    syscall(SYS_pidfd_send_signal, m->pidfd, SIGCONT, nullptr, 0);
  }
  return Status::Ok();
}

// What a restore of this tree would not give back exactly.
Status check_restorable(const Members& all) {
  for (const auto& m : all) {
    for (const Child& c : m->children) {
      if (!c.zombie) continue;
      if (c.code == CLD_DUMPED)
        return make_error("process " + std::to_string(c.pid) + " (child of " + std::to_string(m->pid) +
                          ") ended with a core dump (signal " + std::to_string(c.status) +
                          "), which a restore does not make again");
      if (c.code != CLD_EXITED && c.code != CLD_KILLED)
        return make_error("process " + std::to_string(c.pid) + " (child of " + std::to_string(m->pid) +
                          ") is not waited for in a state a restore makes again");
      // Made again as a child of its parent's restorer, in its parent's
      // session and group, or leading its own (zombie_leads).
      auto [pgid, sid] = group_of(c.pid);
      if (sid != c.pid && (sid != m->sid || (pgid != m->pgid && pgid != c.pid)))
        return make_error("process " + std::to_string(c.pid) + " (child of " + std::to_string(m->pid) +
                          ", ended, not waited for) is in process group " + std::to_string(pgid) + " of session " +
                          std::to_string(sid) + ", neither its parent's nor its own, which a tree restore does not " +
                          "give back yet");
    }
  }
  std::vector<TreeProc> procs;
  for (const auto& m : all) procs.push_back({m->pid, m->parent, m->sid, m->pgid});
  std::vector<char> early;
  if (std::string why = plan_tree_sessions(procs, &early); !why.empty()) return make_error(why);
  return Status::Ok();
}

// "session" or "group" for a zombie that leads its own, else "".
std::string zombie_leads(const Child& c) {
  auto [pgid, sid] = group_of(c.pid);
  return sid == c.pid ? "session" : pgid == c.pid ? "group" : "";
}

// Shared anonymous memory of the tree that a process outside it maps too:
// the restore makes one object for the members alone.
Status check_shared_outside(const Members& all) {
  std::set<std::pair<std::uint64_t, std::uint64_t>> objects;
  std::set<pid_t> members;
  for (const auto& m : all) {
    members.insert(m->pid);
    for (const SharedMap& s : m->shared) objects.insert({s.dev, s.inode});
  }
  if (objects.empty()) return Status::Ok();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    pid_t pid = 0;
    auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (err != std::errc() || end != name.data() + name.size() || members.count(pid) != 0) continue;
    std::ifstream maps(entry.path() / "maps");
    for (std::string line; std::getline(maps, line);) {
      std::istringstream l(line);
      std::string range, perms, offset, dev;
      std::uint64_t inode = 0;
      l >> range >> perms >> offset >> dev >> inode;
      std::size_t colon = dev.find(':');
      if (inode == 0 || colon == std::string::npos) continue;
      std::uint64_t major = std::strtoull(dev.substr(0, colon).c_str(), nullptr, 16);
      std::uint64_t minor = std::strtoull(dev.substr(colon + 1).c_str(), nullptr, 16);
      if (objects.count({major << 32 | minor, inode}) != 0)
        return make_error("shared anonymous memory of the tree (inode " + std::to_string(inode) +
                          ") is mapped by process " + std::to_string(pid) + ", which is not in the tree");
    }
  }
  return Status::Ok();
}

std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

enum class Attempt { kDone, kChanged, kFailed };

Attempt attempt(const TreeCheckpointRequest& r, TreeCheckpointResult* out, std::string* why) {
  auto dir = request_dir();
  if (!dir) return *why = dir.error().message, Attempt::kFailed;
  sweep_stale_requests(*dir);
  auto listed = list_tree(r.root);
  if (!listed) return *why = listed.error().message, Attempt::kFailed;
  Members& all = *listed;
  if (Status s = check_std_streams(all); !s.ok()) return *why = s.error().message, Attempt::kFailed;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (Status s = ask(*all[i], *dir, r, i); !s.ok()) {
      *why = s.error().message;
      abandon(all);
      return Attempt::kFailed;
    }
  }
  // Every member stopped, none written yet.
  if (!pump(all, Member::kReady, r.answer_timeout_s, why)) {
    abandon(all);
    return Attempt::kFailed;
  }
  if (tree_changed(all)) {
    abandon(all);
    return Attempt::kChanged;
  }
  if (Status s = continue_stopped(all); !s.ok()) {
    *why = s.error().message;
    abandon(all);
    return Attempt::kFailed;
  }
  if (!pump(all, Member::kReady, r.answer_timeout_s, why)) {
    abandon(all);
    return Attempt::kFailed;
  }
  if (Status s = check_restorable(all); !s.ok() || !(s = check_shared_outside(all)).ok()) {
    *why = s.error().message;
    abandon(all);
    return Attempt::kFailed;
  }
  std::vector<TreeFdHolder> holders;
  std::vector<pid_t> pids;
  std::vector<TreeSocketPair> named;
  for (const auto& m : all) {
    holders.push_back({m->pid, {m->status_fifo, m->control_fifo, m->image->temp_path()}});
    pids.push_back(m->pid);
    named.insert(named.end(), m->pair_ends.begin(), m->pair_ends.end());
  }
  auto pairs = tree_socket_pairs(pids, named);
  auto files = pairs ? shared_open_files(holders, *pairs) : Expected<std::vector<TreeSharedFile>>(pairs.error());
  auto pipes = files ? capture_tree_pipes(pids, r.image_path) : Expected<std::vector<TreePipeData>>(files.error());
  auto fifos = pipes ? capture_tree_fifos(pids, *files, r.image_path) : Expected<std::vector<TreeFifoData>>(pipes.error());
  if (!fifos) {
    *why = fifos.error().message;
    abandon(all);
    return Attempt::kFailed;
  }
  tell(all, "go\n");
  if (!pump(all, Member::kWritten, r.answer_timeout_s, why)) {
    abandon(all);
    return Attempt::kFailed;
  }
  for (auto& m : all) {
    if (auto v = verify_image_file(m->image->temp_path()); !v) {
      *why = "the image of process " + std::to_string(m->pid) + " does not verify: " + v.error().message;
      abandon(all);
      return Attempt::kFailed;
    }
  }
  std::ostringstream manifest;
  manifest << kTreeMagicLine << "\n";
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Member& m = *all[i];
    manifest << "member " << i << " " << m.vpid << " " << m.parent << " " << std::hex << m.table << std::dec << " "
             << base_name(m.image->path()) << "\n";
  }
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (all[i]->pdeathsig > 0) manifest << "pdeathsig " << i << " " << all[i]->pdeathsig << "\n";
    if (all[i]->stopped) manifest << "stopped " << i << " " << all[i]->stop_signal << "\n";
  }
  for (std::size_t i = 0; i < all.size(); ++i)
    for (const Child& c : all[i]->children)
      if (c.zombie) {
        manifest << "zombie " << c.vpid << " " << i << " " << c.code << " " << c.status << "\n";
        if (std::string leads = zombie_leads(c); !leads.empty())
          manifest << "zombie_leads " << c.vpid << " " << leads << "\n";
        ++out->zombies;
      }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> objects;
  for (std::size_t i = 0; i < all.size(); ++i)
    for (const SharedMap& sm : all[i]->shared) {
      auto at = std::find(objects.begin(), objects.end(), std::make_pair(sm.dev, sm.inode));
      if (at == objects.end()) at = objects.insert(objects.end(), {sm.dev, sm.inode});
      manifest << "shared " << i << " " << std::hex << sm.start << " " << sm.end << " " << sm.offset << std::dec
               << " " << (at - objects.begin()) << "\n";
    }
  for (const auto& [a, b] : *pairs) manifest << "socketpair " << a << " " << b << "\n";
  for (const TreeSharedFile& f : *files) manifest << "file " << f.member << " " << f.fd << " " << f.object << "\n";
  for (TreePipeData& d : *pipes) {
    manifest << "pipe " << d.inode << " " << d.capacity << " " << d.bytes << " " << base_name(d.file->path()) << "\n";
    if (Status s = d.file->commit(sys::Durability::kDurable); !s.ok()) {
      *why = s.error().message;
      abandon(all);
      return Attempt::kFailed;
    }
  }
  for (TreeFifoData& d : *fifos) {
    manifest << "fifo " << d.member << " " << d.fd << " " << d.pipe.capacity << " " << d.pipe.bytes << " "
             << base_name(d.pipe.file->path()) << "\n";
    if (Status s = d.pipe.file->commit(sys::Durability::kDurable); !s.ok()) {
      *why = s.error().message;
      abandon(all);
      return Attempt::kFailed;
    }
  }
  for (auto& m : all) {
    if (Status s = m->image->commit(sys::Durability::kDurable); !s.ok()) {
      *why = s.error().message;
      abandon(all);
      return Attempt::kFailed;
    }
  }
  if (Status s = sys::write_file_atomically(r.image_path, manifest.str(), sys::Durability::kDurable); !s.ok()) {
    *why = s.error().message;
    abandon(all);
    return Attempt::kFailed;
  }
  if (r.mode == AfterCheckpoint::kLeaveRunning) restop(all);
  tell(all, "end\n");
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Member& m = *all[i];
    out->members.push_back({m.pid, m.vpid, m.parent, m.image->path(), m.bytes});
    out->bytes += m.bytes;
  }
  if (r.mode == AfterCheckpoint::kKill) {
    // A job's guest stays in its job, suspended, until `mosixctl restart` of
    // the manifest gives it back (its node daemon takes the note when it
    // reaps the root), as after a single checkpoint with --kill.
    bool noted = false;
    if (r.job_member) {
      if (Status s = note_suspended(r.root, r.image_path); s.ok()) noted = true;
      else spdlog::warn("tree checkpoint of {}: its job will count it as ended: {}", r.root, s.error().message);
    }
    for (auto& m : all) {
      if (syscall(SYS_pidfd_send_signal, m->pidfd, SIGKILL, nullptr, 0) != 0 && noted && m->pid == r.root) {
        (void)take_suspended(r.root);
      }
    }
    for (auto& m : all) {
      pollfd p{m->pidfd, POLLIN, 0};
      while (poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
    }
  }
  return Attempt::kDone;
}

}  // namespace

Expected<TreeCheckpointResult> request_tree_checkpoint(const TreeCheckpointRequest& r) {
  constexpr int kAttempts = 5;
  std::string why;
  for (int i = 0; i < kAttempts; ++i) {
    TreeCheckpointResult out;
    out.manifest_path = r.image_path;
    switch (attempt(r, &out, &why)) {
      case Attempt::kDone:
        return out;
      case Attempt::kFailed:
        return make_error("checkpoint of the tree of " + std::to_string(r.root) + ": " + why +
                          " (every process of the tree was left running)");
      case Attempt::kChanged:
        spdlog::debug("tree of {} changed while it was being stopped; again", r.root);
        break;
    }
  }
  return make_error("checkpoint of the tree of " + std::to_string(r.root) + ": it kept making or losing processes " +
                    "while it was being stopped (" + std::to_string(kAttempts) + " attempts)");
}

}  // namespace mosix::ckpt
