#include "runtime/daemon/output_relay.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace mosix {

namespace {
constexpr size_t kMaxPendingLine = 1 << 20;
}

void widen_pipe(int fd, size_t size) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) return;
  int now = ::fcntl(fd, F_GETPIPE_SZ);
  if (now >= 0 && static_cast<size_t>(now) < size) ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(size));
}

OutputRelay::~OutputRelay() {
  for (auto& [key, s] : streams_) {
    if (s.file_fd >= 0) ::close(s.file_fd);
  }
}

Status OutputRelay::open_files(int rank) {
  if (output_dir_.empty()) return {};
  std::filesystem::path dir =
      std::filesystem::path(output_dir_) / "1" / ("rank." + std::to_string(rank));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return make_error("--output-filename: cannot create " + dir.string() + ": " + ec.message());
  }
  for (bool is_stderr : {false, true}) {
    auto path = dir / (is_stderr ? "stderr" : "stdout");
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      return make_error("--output-filename: cannot write " + path.string() + ": " +
                        std::strerror(errno));
    }
    stream(rank, is_stderr).file_fd = fd;
  }
  return {};
}

void OutputRelay::deliver(int rank, bool is_stderr, const char* data, size_t size) {
  Stream& s = stream(rank, is_stderr);
  if (s.file_fd >= 0) sys::write_all(s.file_fd, data, size);
  int out = is_stderr ? 2 : 1;
  if (!tag_ && !pvm_tasks_.count(rank)) {
    sys::write_all(out, data, size);
    return;
  }
  size_t start = 0;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\n') {
      s.pending.append(data + start, i + 1 - start);
      flush_line(rank, is_stderr, s);
      start = i + 1;
    }
  }
  s.pending.append(data + start, size - start);
  if (s.pending.size() >= kMaxPendingLine) flush_line(rank, is_stderr, s);
}

void OutputRelay::finish(int rank) {
  auto pvm = pvm_tasks_.find(rank);
  for (bool is_stderr : {false, true}) {
    Stream& s = stream(rank, is_stderr);
    if (pvm != pvm_tasks_.end() && !s.pending.empty() && s.pending.back() != '\n') s.pending += '\n';
    if (tag_ || pvm != pvm_tasks_.end()) flush_line(rank, is_stderr, s);
  }
  if (pvm != pvm_tasks_.end()) {
    if (pvm->second.catchout) {
      std::string eof = pvm->second.prefix + "EOF\n";
      sys::write_all(1, eof.data(), eof.size());
    }
    pvm_tasks_.erase(pvm);  // said once, also if the end is told twice
  }
}

void OutputRelay::set_pvm_task(int rank, int tid, bool catchout) {
  char prefix[32];
  std::snprintf(prefix, sizeof prefix, "[t%x] ", static_cast<unsigned>(tid));
  pvm_tasks_[rank] = PvmTask{prefix, catchout};
  if (catchout) {
    std::string begin = std::string(prefix) + "BEGIN\n";
    sys::write_all(1, begin.data(), begin.size());
  }
}

void OutputRelay::flush_line(int rank, bool is_stderr, Stream& s) {
  if (s.pending.empty()) return;
  if (auto pvm = pvm_tasks_.find(rank); pvm != pvm_tasks_.end()) {
    std::string line = pvm->second.prefix + s.pending;
    sys::write_all(1, line.data(), line.size());
    s.pending.clear();
    return;
  }
  auto tag = tags_.find(rank);
  std::string line = (tag != tags_.end() ? tag->second : "[1," + std::to_string(rank) + "]") + "<" +
                     (is_stderr ? "stderr" : "stdout") + ">:" + s.pending;
  sys::write_all(is_stderr ? 2 : 1, line.data(), line.size());
  s.pending.clear();
}

}  // namespace mosix
