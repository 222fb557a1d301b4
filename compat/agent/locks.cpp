#include "compat/agent/locks.h"

#include <sys/syscall.h>

#include "compat/agent/raw.h"

namespace mosix::agent {
namespace {

using namespace mosix::ckpt;

constexpr long kKcmpFile = 0;  // KCMP_FILE

// fdinfo of one descriptor: a few lines plus one per lock.
char g_fdinfo[64 << 10];

const char* skip_space(const char* p) {
  while (*p == ' ' || *p == '\t') ++p;
  return p;
}

// The next whitespace-delimited word at p: [*word, return).
const char* word(const char* p, const char** start) {
  p = skip_space(p);
  *start = p;
  while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n') ++p;
  return p;
}

bool word_is(const char* start, const char* end, const char* text) {
  std::size_t n = cstr_len(text);
  if (static_cast<std::size_t>(end - start) != n) return false;
  for (std::size_t i = 0; i < n; ++i)
    if (start[i] != text[i]) return false;
  return true;
}

// Is fd a duplicate of a lower descriptor (dup, dup2, fork's copy)? kcmp
// compares the open file descriptions; without kcmp each is its own.
bool duplicates_lower(long fd) {
  long pid = sys(SYS_getpid);
  for (long k = 0; k < fd; ++k)
    if (sys(SYS_kcmp, pid, pid, kKcmpFile, k, fd) == 0) return true;
  return false;
}

}  // namespace

// A line is "lock:\t<id>: <KIND> <ADVISORY> <READ|WRITE> <pid> <maj:min:ino> <start> <end|EOF>",
// KIND POSIX, OFDLCK or FLOCK (or LEASE, DELEG, ACCESS).
bool write_fd_locks(ImageWriter* writer, long fd, std::uint64_t ino, char* error, std::size_t error_cap) {
  char path[64];
  Line(path, sizeof path).s("/proc/self/fdinfo/").u(static_cast<std::uint64_t>(fd));
  long n = read_file(path, g_fdinfo, sizeof g_fdinfo);
  if (n < 0) {
    Line(error, error_cap).s("fd ").u(static_cast<std::uint64_t>(fd)).s(": cannot read ").s(path)
        .s(" to record its file locks (error ").i(-n).s(")");
    return false;
  }
  g_fdinfo[n] = '\0';
  bool checked_dup = false;
  for (const char* line = g_fdinfo; *line != '\0';) {
    const char* eol = line;
    while (*eol != '\0' && *eol != '\n') ++eol;
    const char* next = *eol == '\n' ? eol + 1 : eol;
    if (!starts_with(line, "lock:")) {
      line = next;
      continue;
    }
    if (fd <= 2) {
      Line(error, error_cap).s("fd ").u(static_cast<std::uint64_t>(fd))
          .s(" (a standard stream, which a restart reconnects to its caller's) holds a lock on its file; "
             "the process keeps running");
      return false;
    }
    if (!checked_dup) {
      if (duplicates_lower(fd)) return true;
      checked_dup = true;
    }
    const char *w, *p = line + 5;
    p = word(p, &w);  // id
    const char* kind_start;
    const char* kind_end = word(p, &kind_start);
    p = word(kind_end, &w);  // ADVISORY / MANDATORY / ACTIVE
    const char* type_start;
    const char* type_end = word(p, &type_start);
    p = word(type_end, &w);  // pid
    p = word(p, &w);          // maj:min:ino
    const char* q = w;
    while (q < p && *q != ':') ++q;
    ++q;
    while (q < p && *q != ':') ++q;
    ++q;
    std::uint64_t lock_ino = q < p ? parse_dec(q) : 0;
    FileLockRecord r;
    r.fd = static_cast<std::int32_t>(fd);
    if (word_is(kind_start, kind_end, "POSIX")) {
      r.kind = LockKind::posix;
    } else if (word_is(kind_start, kind_end, "OFDLCK")) {
      r.kind = LockKind::ofd;
    } else if (word_is(kind_start, kind_end, "FLOCK")) {
      r.kind = LockKind::flock;
    } else {
      Line(error, error_cap).s("fd ").u(static_cast<std::uint64_t>(fd)).s(" holds a ")
          .sv(kind_start, static_cast<std::size_t>(kind_end - kind_start))
          .s(" on its file, which cannot be checkpointed; the process keeps running");
      return false;
    }
    if (word_is(type_start, type_end, "READ")) {
      r.type = LockType::read;
    } else if (word_is(type_start, type_end, "WRITE")) {
      r.type = LockType::write;
    } else {
      Line(error, error_cap).s("fd ").u(static_cast<std::uint64_t>(fd)).s(": a file lock of unknown type ")
          .sv(type_start, static_cast<std::size_t>(type_end - type_start));
      return false;
    }
    if (lock_ino != ino) {
      Line(error, error_cap).s("fd ").u(static_cast<std::uint64_t>(fd)).s(": fdinfo lists a lock on inode ")
          .u(lock_ino).s(", the descriptor is on inode ").u(ino);
      return false;
    }
    p = skip_space(p);
    r.start = parse_dec(p);
    p = skip_space(p);
    r.end = starts_with(p, "EOF") ? kLockToEnd : parse_dec(p);
    ImageStatus s = writer->file_lock(r);
    if (!s) {
      Line(error, error_cap).s(s.message());
      return false;
    }
    line = next;
  }
  return true;
}

}  // namespace mosix::agent
