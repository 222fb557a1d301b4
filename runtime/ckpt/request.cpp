#include "runtime/ckpt/request.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>

#include <spdlog/spdlog.h>

#include "runtime/ckpt/format/image_file.h"
#include "runtime/core/printable.h"
#include "runtime/sys/atomic_file.h"
#include "runtime/sys/errno_text.h"
#include "runtime/sys/runtime_dir.h"

namespace mosix::ckpt {
namespace {

// The agent's lines are short; a longer one is not the agent speaking.
constexpr std::size_t kMaxAgentLine = 4096;

// Closes and removes the request file and the status FIFO however the
// request ends.
struct RequestFiles {
  std::string request, fifo;
  int fifo_fd = -1, pidfd = -1;
  ~RequestFiles() {
    if (fifo_fd >= 0) close(fifo_fd);
    if (pidfd >= 0) close(pidfd);
    if (!request.empty()) unlink(request.c_str());
    if (!fifo.empty()) unlink(fifo.c_str());
  }
};

// Reads the agent's lines until its result; returns the image size.
Expected<std::uint64_t> await_answer(const CheckpointRequest& r, const RequestFiles& f,
                                     const std::string& what) {
  std::string buffer;
  bool connected = false;
  constexpr int kPollMs = 100;
  int idle_ms = 0;
  for (;;) {
    pollfd fds[2] = {{f.fifo_fd, POLLIN, 0}, {f.pidfd, POLLIN, 0}};
    int n = poll(fds, 2, kPollMs);
    if (n < 0 && errno == EINTR) continue;
    if (fds[0].revents & POLLIN) {
      connected = true;
      char chunk[1024];
      ssize_t got = read(f.fifo_fd, chunk, sizeof chunk);
      if (got > 0) buffer.append(chunk, static_cast<std::size_t>(got));
      for (std::size_t eol; (eol = buffer.find('\n')) != std::string::npos;) {
        std::string line = buffer.substr(0, eol);
        buffer.erase(0, eol + 1);
        AgentLine a = parse_agent_line(line);
        switch (a.kind) {
          case AgentLine::kProgress:
            if (r.on_progress) r.on_progress(a.bytes);
            break;
          case AgentLine::kOk:
            return a.bytes;
          case AgentLine::kError:
            return make_error(what + " refused: " + printable(a.reason));
          case AgentLine::kMalformed:
            return make_error(what + ": the agent's answer " + quote(line) + " is not understood");
          case AgentLine::kOther:
            break;
        }
      }
      if (buffer.size() > kMaxAgentLine)
        return make_error(what + ": the agent sent a line longer than " + std::to_string(kMaxAgentLine) + " bytes");
      continue;
    }
    if ((fds[0].revents & POLLHUP) && connected)
      return make_error(what + ": the agent closed its status channel without a result");
    if (fds[1].revents & POLLIN)
      return make_error(what + ": process " + std::to_string(r.pid) + " ended before its image was complete");
    // The agent removes the request file as it reads it: one still there
    // after a silence means the signal found the agent busy (finishing the
    // session before: a pre-copy's last request follows its first by
    // milliseconds) and was dropped, or has not been handled yet. Again,
    // but only then: a second signal to a process whose agent is merely slow
    // (a loaded machine) could land in the middle of its session, and a
    // restored node.js was found hung in a futex after such a checkpoint.
    if (!connected && n == 0 && r.precopied && (idle_ms + kPollMs) % 1000 == 0 &&
        ::access(f.request.c_str(), F_OK) == 0) {
      kill(r.pid, kRequestSignal);
    }
    if (!connected && n == 0 && (idle_ms += kPollMs) >= r.answer_timeout_s * 1000)
      return make_error(what + ": no answer from process " + std::to_string(r.pid) + " within " +
                        std::to_string(r.answer_timeout_s) + " s (is it blocking signal " +
                        std::to_string(kRequestSignal) + ", or stopped?)");
  }
}

}  // namespace

AgentLine parse_agent_line(std::string_view line) {
  AgentLine out;
  auto number = [&](std::string_view digits, AgentLine::Kind kind) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
      out.kind = AgentLine::kMalformed;
    } else {
      out.kind = kind;
      out.bytes = value;
    }
  };
  if (line.starts_with("progress ")) {
    number(line.substr(9), AgentLine::kProgress);
  } else if (line.starts_with("ok ")) {
    number(line.substr(3), AgentLine::kOk);
  } else if (line.starts_with("error ")) {
    out.kind = AgentLine::kError;
    out.reason = std::string(line.substr(6));
  }
  return out;
}

Expected<std::string> request_dir() { return sys::runtime_dir(); }

Status check_guest(pid_t pid) {
  if (kill(pid, 0) != 0)
    return make_error("no process " + std::to_string(pid) + " of yours (" + sys::errno_text(errno) + ")");
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  bool loaded = false, dynamic = false;
  while (!loaded && std::getline(maps, line)) {
    loaded = line.find("/libmosix.so") != std::string::npos;
    dynamic = dynamic || line.find("/ld-linux") != std::string::npos || line.find("/ld-musl") != std::string::npos;
  }
  if (loaded) {
    // The request signal's default action kills. Send it only when the
    // agent's handler is in place, or while the signal is blocked (an exec
    // in progress: the new program's agent takes it). A process between an
    // exec that nothing could interpose and its agent's constructor has
    // neither for a few milliseconds.
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::uint64_t bit = 1ULL << (kRequestSignal - 1), caught = 0, blocked = 0;
    while (std::getline(status, line)) {
      if (line.rfind("SigCgt:", 0) == 0) caught = std::strtoull(line.c_str() + 7, nullptr, 16);
      if (line.rfind("SigBlk:", 0) == 0) blocked = std::strtoull(line.c_str() + 7, nullptr, 16);
    }
    if ((caught & bit) || (blocked & bit)) return Status::Ok();
    return make_error("process " + std::to_string(pid) +
                      " is starting a program and its agent cannot take a request yet: try again");
  }
  if (!dynamic)
    return make_error("process " + std::to_string(pid) +
                      " is statically linked: libmosix.so cannot be loaded into it, so it cannot be checkpointed "
                      "or moved (nor its sockets forwarded); link it dynamically");
  return make_error("process " + std::to_string(pid) +
                    " is not a guest: libmosix.so is not loaded in it (start it under mosixrun, or with "
                    "LD_PRELOAD=libmosix.so)");
}

namespace {

// A pid that names no process now (kill(pid, 0) says ESRCH; EPERM: it lives,
// another user's).
bool gone(long pid) { return pid <= 0 || pid > INT_MAX || (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH); }

// The number at the start of `text` (all of `text` when `whole`), or -1.
long leading_number(std::string_view text, std::size_t* used, bool whole) {
  long value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || (whole && end != text.data() + text.size())) return -1;
  if (used != nullptr) *used = static_cast<std::size_t>(end - text.data());
  return value;
}

}  // namespace

int sweep_stale_requests(const std::string& dir) {
  std::error_code ec;
  int removed = 0;
  std::filesystem::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::filesystem::path& path = it->path();
    std::string name = path.filename().string();
    std::string_view rest(name);
    if (rest.substr(0, 5) != "ckpt-") continue;
    rest.remove_prefix(5);
    std::size_t used = 0;
    long guest = leading_number(rest, &used, false);
    if (guest <= 0) continue;
    rest.remove_prefix(used);
    bool stale = false;
    if (rest == ".req") {
      stale = gone(guest);
    } else if (rest.substr(0, 8) == ".status.") {
      long requester = leading_number(rest.substr(8), nullptr, true);
      stale = requester > 0 && gone(requester);
    }
    if (stale && ::unlink(path.c_str()) == 0) ++removed;
  }
  if (removed > 0) spdlog::debug("removed {} stale checkpoint request file(s) in {}", removed, dir);
  return removed;
}

Expected<std::uint64_t> ask_agent(const CheckpointRequest& r, const std::string& out_path) {
  std::string what = "checkpoint of " + std::to_string(r.pid);
  if (Status s = check_guest(r.pid); !s.ok()) return s.error();
  auto dir = request_dir();
  if (!dir) return dir.error();

  sweep_stale_requests(*dir);
  RequestFiles f;
  std::string base = *dir + "/ckpt-" + std::to_string(r.pid);
  f.fifo = base + ".status." + std::to_string(getpid());
  unlink(f.fifo.c_str());
  if (mkfifo(f.fifo.c_str(), 0600) != 0)
    return make_error("cannot create " + f.fifo + ": " + sys::errno_text(errno));
  f.fifo_fd = open(f.fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (f.fifo_fd < 0) return make_error("cannot open " + f.fifo + ": " + sys::errno_text(errno));
  f.pidfd = static_cast<int>(syscall(SYS_pidfd_open, r.pid, 0));
  if (f.pidfd < 0)
    return make_error("cannot watch process " + std::to_string(r.pid) + ": " + sys::errno_text(errno));

  const char* mode = kModeNames[static_cast<int>(r.mode)];
  const std::string request = "out=" + out_path + "\nstatus=" + f.fifo + "\nmode=" + mode +
                              "\ncompress=" + compression_name(r.compression) + "\n" +
                              (r.for_move ? "move=1\n" : "") + (r.precopied ? "precopy=1\n" : "") +
                              (r.tracking == Tracking::kStart  ? "track=start\n"
                               : r.tracking == Tracking::kStop ? "track=stop\n"
                                                               : "");
  if (Status s = sys::write_file_atomically(base + ".req", request, sys::Durability::kVolatile); !s.ok())
    return s.error();
  f.request = base + ".req";
  spdlog::debug("{}: request {} ({} mode), signal {}", what, f.request, mode, kRequestSignal);
  if (kill(r.pid, kRequestSignal) != 0)
    return make_error("cannot signal process " + std::to_string(r.pid) + ": " + sys::errno_text(errno));

  auto bytes = await_answer(r, f, what);
  if (!bytes) return bytes.error();
  if (r.mode == AfterCheckpoint::kKill) {
    pollfd p{f.pidfd, POLLIN, 0};
    while (poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
  }
  return bytes;
}

namespace {

// The state letter of /proc/PID/stat ('T' stopped), or 0.
char process_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  std::size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : 0;
}

// After a checkpoint in "stop" mode that ends in failure: the agent stops the
// process right after its answer, so wait for it to be stopped, then let it
// go on as it was (a process the user had stopped stays stopped).
void resume(pid_t pid, bool was_stopped) {
  if (was_stopped) return;
  for (int i = 0; i < 2000 && process_state(pid) != 'T' && process_state(pid) != 0; ++i) ::usleep(1000);
  ::kill(pid, SIGCONT);
}

}  // namespace

Expected<CheckpointResult> request_checkpoint(const CheckpointRequest& r) {
  std::string what = "checkpoint of " + std::to_string(r.pid);
  auto file = sys::AtomicFile::create(r.image_path);
  if (!file) return file.error();
  // --kill ends the process only once its image is verified and in place: the
  // agent is asked to stop it instead, and a failure after that lets it run on
  // where it was, so no failed checkpoint ever loses the process.
  bool kill_after = r.mode == AfterCheckpoint::kKill;
  CheckpointRequest asked = r;
  if (kill_after) asked.mode = AfterCheckpoint::kStop;
  bool was_stopped = process_state(r.pid) == 'T';
  int pidfd = kill_after ? static_cast<int>(syscall(SYS_pidfd_open, r.pid, 0)) : -1;
  // The read-back check runs beside the agent's writing (ImageFollower):
  // the image is checked whole before anything is committed or killed, as
  // when it followed the writing, but the process is stopped for less.
  ImageFollower follower(file->temp_path());
  auto bytes = ask_agent(asked, file->temp_path());
  auto summary = follower.finish(bytes ? *bytes : 0);
  Status done = Status::Ok();
  if (!bytes) {
    done = bytes.error();
  } else if (!summary) {
    done = make_error(what + ": the image does not verify: " + summary.error().message);
  } else if (Status s = file->commit(sys::Durability::kDurable); !s.ok()) {
    done = s.error();
  } else {
    if (kill_after && pidfd >= 0) {
      bool noted = false;
      if (r.job_member) {
        if (Status s = note_suspended(r.pid, r.image_path); s.ok()) noted = true;
        else spdlog::warn("{}: its job will count it as ended: {}", what, s.error().message);
      }
      if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) != 0 && noted) (void)take_suspended(r.pid);
      pollfd p{pidfd, POLLIN, 0};
      while (poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
    }
    if (pidfd >= 0) ::close(pidfd);
    return CheckpointResult{r.image_path, *bytes, *summary};
  }
  if (kill_after && bytes) {
    resume(r.pid, was_stopped);
    done = make_error(done.error().message + " (process " + std::to_string(r.pid) + " was left running)");
  }
  if (pidfd >= 0) ::close(pidfd);
  return done.error();
}

namespace {

Expected<std::string> suspended_note_path(pid_t pid) {
  auto dir = request_dir();
  if (!dir) return dir.error();
  return *dir + "/suspended-" + std::to_string(pid);
}

}  // namespace

Status note_suspended(pid_t pid, const std::string& image_path) {
  auto path = suspended_note_path(pid);
  if (!path) return path.error();
  return sys::write_file_atomically(*path, image_path, sys::Durability::kVolatile);
}

std::optional<std::string> take_suspended(pid_t pid) {
  auto path = suspended_note_path(pid);
  if (!path) return std::nullopt;
  std::ifstream in(*path);
  if (!in) return std::nullopt;
  std::string image;
  std::getline(in, image);
  ::unlink(path->c_str());
  if (image.empty()) return std::nullopt;
  return image;
}

}  // namespace mosix::ckpt
