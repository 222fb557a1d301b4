// mosix-restore TREE: a process tree from its manifest
// (runtime/ckpt/tree_protocol.h). Phase 1 reads and checks every member's
// image in this process first; a problem in any refuses the whole tree with
// nothing made. Then the tree is made with fork(): each member's restorer
// forks the restorers of its children (after joining its own session or
// group again, which they inherit) and a process for each of its zombies,
// which ends at once with the recorded status and stays unreaped. Every
// member then goes through the single-process restore; right before the
// point of no return they wait for each other (a member refused meanwhile
// makes them all exit 2), and each writes the tree's new pids into its
// agent's table once its memory is back. Each pipe is made once before the
// forks with its unread bytes; each member keeps the ends its image names
// and puts them at their numbers with its other pipes. An open file that
// members share (one offset, one set of flags) is opened once before the
// forks, kept and put at its numbers the same way. Shared anonymous memory that
// several members map is one object again: staged once before the forks,
// filled by its first mapping's member, and mapped over each member's copy.
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/ckpt/restorer/reserved_range.h"
#include "runtime/ckpt/restorer/restorer.h"
#include "runtime/ckpt/tree_protocol.h"
#include "runtime/ckpt/tree_sessions.h"
#include "runtime/core/little_endian.h"

namespace mosix::ckpt::restorer {
namespace {

constexpr std::uint64_t kStagingBase = kTreeStagingBase;
constexpr long kBarrierSeconds = 60;

struct TreeSync {
  std::atomic<int> arrived;
  std::atomic<int> failed;
  std::atomic<int> filled;  // members whose shared memory is in the staging objects
  std::int32_t pids[kMaxTreePids][2];  // {virtual, real}: the members, then the zombies
};
constexpr std::size_t kSyncLen = (sizeof(TreeSync) + kPage - 1) & ~(kPage - 1);

struct MemberLine {
  int parent;
  std::int32_t vpid;
  std::uint64_t table;
  std::string file;
};
struct ZombieLine {
  std::int32_t vpid;
  int parent, code, status;
  int leads = 0;  // 1: its own process group, 2: its own session
};
struct SharedLine {
  int member;
  std::uint64_t start, end, offset;
  int object;
};
struct TreePipe {
  std::uint64_t inode;
  long capacity, bytes;
  std::string file;
  int ends[2] = {-1, -1};  // made before the forks: read, write
  int kept[2] = {-1, -1};  // this member's, above its image descriptor
};

// An open file two members share: "file <member> <fd> <object>".
struct FileLine {
  int member, fd, object;
};
// A named pipe of the tree: "fifo <member> <fd> <capacity> <bytes> <file>".
struct FifoLine {
  int member, fd;
  long capacity, bytes;
  std::string file;
};

bool g_tree = false;
int g_members = 0, g_entries = 0;
TreeSync* g_sync = nullptr;
std::uint64_t g_table = 0;
std::int32_t g_pids[kMaxTreePids][2];
int g_me = 0;
std::vector<SharedLine> g_shared;
std::vector<std::uint64_t> g_object_base;
std::vector<TreePipe> g_pipes;
std::vector<std::pair<int, int>> g_pdeathsig;  // {member, signal}
std::vector<std::pair<int, int>> g_stopped;    // {member, the signal that stopped it}
std::vector<FileLine> g_files;
std::vector<FifoLine> g_fifos;
std::vector<int> g_file_ends;  // per object, opened before the forks
std::vector<int> g_file_kept;  // per object, this member's, above its image descriptor
struct TreePair {
  std::uint64_t ino[2];
  int ends[2] = {-1, -1};  // made before the forks
  int kept[2] = {-1, -1};  // this member's, above its image descriptor
};
std::vector<TreePair> g_pairs;

long futex(std::atomic<int>* word, int op, int value, const timespec* ts) {
  return syscall(SYS_futex, word, op, value, ts, nullptr, 0);
}

// Seconds on the monotonic clock, by system call: in phase 2 the vDSO libc
// found at start has moved.
long mono_seconds() {
  timespec now{};
  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &now);
  return now.tv_sec;
}

void read_manifest(int fd, std::vector<MemberLine>* members, std::vector<ZombieLine>* zombies,
                   std::vector<SharedLine>* shared) {
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) {
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > (1u << 20)) refuse("the tree manifest is larger than 1 MiB");
  }
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string kind;
    l >> kind;
    if (kind == "member") {
      MemberLine m;
      int index = -1;
      std::string table;
      l >> index >> m.vpid >> m.parent >> table >> m.file;
      char* end = nullptr;
      m.table = std::strtoull(table.c_str(), &end, 16);
      if (!l || index != static_cast<int>(members->size()) || m.parent >= index || (index > 0 && m.parent < 0) ||
          (index == 0 && m.parent != -1) || m.vpid <= 0 || end == table.c_str() || *end != '\0' ||
          m.file.find('/') != std::string::npos || m.file.empty() || m.file[0] == '.')
        refuse("malformed tree manifest line: " + line);
      members->push_back(m);
    } else if (kind == "zombie") {
      ZombieLine z;
      l >> z.vpid >> z.parent >> z.code >> z.status;
      if (!l || z.parent < 0 || z.parent >= static_cast<int>(members->size()) || z.vpid <= 0 ||
          (z.code != CLD_EXITED && z.code != CLD_KILLED) || z.status < 0 || z.status > 255 ||
          (z.code == CLD_KILLED && (z.status < 1 || z.status > 64)))
        refuse("malformed tree manifest line: " + line);
      zombies->push_back(z);
    } else if (kind == "zombie_leads") {
      std::int32_t vpid = 0;
      std::string what;
      l >> vpid >> what;
      ZombieLine* z = nullptr;
      for (ZombieLine& y : *zombies)
        if (y.vpid == vpid) z = &y;
      if (!l || z == nullptr || (what != "group" && what != "session")) refuse("malformed tree manifest line: " + line);
      z->leads = what == "session" ? 2 : 1;
    } else if (kind == "shared") {
      SharedLine h;
      l >> h.member >> std::hex >> h.start >> h.end >> h.offset >> std::dec >> h.object;
      if (!l || h.member < 0 || h.member >= static_cast<int>(members->size()) || h.start >= h.end ||
          (h.start | h.end | h.offset) % kPage != 0 || h.object < 0 || h.object > static_cast<int>(shared->size()) ||
          h.offset > (1ULL << 40))
        refuse("malformed tree manifest line: " + line);
      shared->push_back(h);
    } else if (kind == "pdeathsig") {
      int member = -1, sig = 0;
      l >> member >> sig;
      if (!l || member < 0 || member >= static_cast<int>(members->size()) || sig < 1 || sig > 64)
        refuse("malformed tree manifest line: " + line);
      g_pdeathsig.emplace_back(member, sig);
    } else if (kind == "stopped") {
      int member = -1, sig = 0;
      l >> member >> sig;
      if (!l || member <= 0 || member >= static_cast<int>(members->size()) ||
          (sig != SIGSTOP && sig != SIGTSTP && sig != SIGTTIN && sig != SIGTTOU))
        refuse("malformed tree manifest line: " + line);
      g_stopped.emplace_back(member, sig);
    } else if (kind == "pipe") {
      TreePipe t;
      l >> t.inode >> t.capacity >> t.bytes >> t.file;
      if (!l || t.capacity <= 0 || t.bytes < 0 || t.bytes > t.capacity || t.file.find('/') != std::string::npos ||
          t.file.empty() || t.file[0] == '.')
        refuse("malformed tree manifest line: " + line);
      g_pipes.push_back(t);
    } else if (kind == "socketpair") {
      TreePair t;
      l >> t.ino[0] >> t.ino[1];
      if (!l || t.ino[0] == t.ino[1]) refuse("malformed tree manifest line: " + line);
      g_pairs.push_back(t);
    } else if (kind == "fifo") {
      FifoLine f{-1, -1, 0, 0, {}};
      l >> f.member >> f.fd >> f.capacity >> f.bytes >> f.file;
      if (!l || f.member < 0 || f.member >= static_cast<int>(members->size()) || f.fd < 3 || f.capacity <= 0 ||
          f.bytes < 0 || f.bytes > f.capacity || f.file.find('/') != std::string::npos || f.file.empty() ||
          f.file[0] == '.')
        refuse("malformed tree manifest line: " + line);
      g_fifos.push_back(f);
    } else if (kind == "file") {
      FileLine f{-1, -1, -1};
      l >> f.member >> f.fd >> f.object;
      int objects = 0;
      for (const FileLine& g : g_files) objects = g.object + 1 > objects ? g.object + 1 : objects;
      if (!l || f.member < 0 || f.member >= static_cast<int>(members->size()) || f.fd < 3 || f.object < 0 ||
          f.object > objects)
        refuse("malformed tree manifest line: " + line);
      g_files.push_back(f);
    } else if (!kind.empty()) {
      refuse("malformed tree manifest line: " + line);
    }
  }
  if (members->empty()) refuse("the tree manifest names no process");
  if (members->size() + zombies->size() > static_cast<std::size_t>(kMaxTreePids))
    refuse("the tree has more than " + std::to_string(kMaxTreePids) + " processes");
}

// Ends this process the way the zombie did, leaving it to its parent.
[[noreturn]] void end_as(const ZombieLine& z) {
  if ((z.leads == 2 && setsid() < 0) || (z.leads == 1 && setpgid(0, 0) != 0)) _exit(126);
  if (z.code == CLD_KILLED) {
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    sigaction(z.status, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    syscall(SYS_kill, getpid(), z.status);
  }
  syscall(SYS_exit_group, z.code == CLD_EXITED ? z.status : 128 + z.status);
  __builtin_unreachable();
}

// The first record of the file fd f is on in its image: the one that
// carries a ghost's data.
const Fd& first_on_inode(const Image& img, const Fd& f) {
  for (const Fd& e : img.fds)
    if (e.rec.kind == f.rec.kind && e.rec.dev == f.rec.dev && e.rec.inode == f.rec.inode) return e;
  return f;
}

// Each open file that members share, once, from its first descriptor's
// record: opened by path with its flags and at its offset, inherited by
// every member through the forks. A deleted-but-open file or memfd that
// members hold is made again once here (from the first holder's data), and
// every descriptor any member has on it is one of these open files (the
// requester named them all): each opened through it, then it gets its mode,
// time and seals. Every descriptor the manifest names must be one its
// member's image has.
void open_tree_files(const std::vector<Image>& images, const std::vector<MemberLine>& members, const std::string& dir) {
  struct TreeGhost {
    std::uint64_t dev, inode;
    int fd;
    const Fd* rec;
    bool given;  // a memfd's own file went to a descriptor
  };
  std::vector<TreeGhost> ghosts;
  // Each named pipe once, refilled, held open for reading and writing
  // (which never blocks) while the descriptors on it are opened through it.
  struct TreeFifo {
    std::uint64_t dev, inode;
    int anchor;
    const Fd* rec;
    bool removed;
  };
  std::vector<TreeFifo> fifos;
  for (const FifoLine& l : g_fifos) {
    const Fd* f = fd_numbered(images[static_cast<std::size_t>(l.member)], l.fd);
    if (f != nullptr && f->rec.kind == FdKind::shared && f->data.size() >= 4)
      f = fd_numbered(images[static_cast<std::size_t>(l.member)],
                      static_cast<std::int32_t>(load_le<std::uint32_t>(f->data.data())));
    if (f == nullptr || f->rec.kind != FdKind::fifo)
      refuse("fd " + std::to_string(l.fd) + " of process " +
             std::to_string(members[static_cast<std::size_t>(l.member)].vpid) +
             " is not the named pipe the tree manifest says");
    std::string path = dir + l.file;
    std::string bytes(static_cast<std::size_t>(l.bytes), '\0');
    int in = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) refuse(path + ": " + strerror(errno));
    bool whole = read(in, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    char more;
    whole = whole && read(in, &more, 1) == 0;
    close(in);
    if (!whole) refuse(path + " does not hold the " + std::to_string(l.bytes) + " bytes the manifest says");
    auto [anchor, removed] = open_fifo(*f, 3, bytes, l.capacity);
    fifos.push_back({f->rec.dev, f->rec.inode, anchor, f, removed});
  }
  for (const FileLine& h : g_files) {
    const Image& img = images[static_cast<std::size_t>(h.member)];
    std::string what = "fd " + std::to_string(h.fd) + " of process " +
                       std::to_string(members[static_cast<std::size_t>(h.member)].vpid);
    const Fd* f = fd_numbered(img, h.fd);
    if (f != nullptr && f->rec.kind == FdKind::shared && f->data.size() >= 4)
      f = fd_numbered(img, static_cast<std::int32_t>(load_le<std::uint32_t>(f->data.data())));
    if (f == nullptr) refuse(what + ", an open file the tree shares, is not in its image");
    FdKind k = f->rec.kind;
    bool ghost = k == FdKind::ghost || k == FdKind::memfd;
    if (k != FdKind::regular && k != FdKind::directory && k != FdKind::char_device && k != FdKind::tty && !ghost &&
        k != FdKind::fifo)
      refuse(what + " is an open file the tree shares, of a kind (" + fd_kind_name(k) +
             ") that is not reopened by its path");
    if (h.object < static_cast<int>(g_file_ends.size())) continue;
    const FdRecord& r = f->rec;
    int flags = (static_cast<int>(r.open_flags) & ~(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY)) | O_CLOEXEC;
    bool path_only = (flags & O_PATH) != 0;
    if (path_only && S_ISLNK(r.mode)) flags |= O_NOFOLLOW;
    std::string path = f->path;
    int fd = -1;
    if (ghost) {
      TreeGhost* g = nullptr;
      for (TreeGhost& t : ghosts)
        if (t.dev == r.dev && t.inode == r.inode) g = &t;
      if (g == nullptr) {
        const Fd& data = first_on_inode(img, *f);
        ghosts.push_back({r.dev, r.inode, make_ghost(data, 3), &data, false});
        g = &ghosts.back();
      }
      path = "/proc/self/fd/" + std::to_string(g->fd);
      // memfd_create's own file to its first read-write descriptor, as the
      // program's was (an open through /proc holds write access, and exec
      // of the memfd fails with ETXTBSY).
      if (k == FdKind::memfd && !g->given && (flags & O_ACCMODE) == O_RDWR) {
        g->given = true;
        fd = fcntl(g->fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0 || fcntl(fd, F_SETFL, flags & (O_APPEND | O_NONBLOCK)) != 0)
          refuse(what + ": cannot keep the memfd: " + strerror(errno));
      }
    }
    if (k == FdKind::fifo) {
      const TreeFifo* t = nullptr;
      for (const TreeFifo& x : fifos)
        if (x.dev == r.dev && x.inode == r.inode) t = &x;
      if (t == nullptr) refuse(what + " is a named pipe the tree manifest does not name");
      path = "/proc/self/fd/" + std::to_string(t->anchor);
      // Never blocks; its own O_NONBLOCK is given back below.
      fd = open(path.c_str(), (flags & (O_ACCMODE | O_CLOEXEC)) | O_NONBLOCK);
      if (fd < 0 || fcntl(fd, F_SETFL, flags & (O_NONBLOCK | O_APPEND)) != 0)
        refuse(what + ": cannot open the named pipe again: " + strerror(errno));
    }
    if (fd < 0) fd = open(path.c_str(), flags);
    if (fd < 0) refuse(what + ": cannot reopen " + f->path + ": " + strerror(errno));
    if ((k == FdKind::regular || ghost) && !path_only && lseek(fd, static_cast<off_t>(r.offset), SEEK_SET) < 0)
      refuse(what + ": cannot seek " + f->path + ": " + strerror(errno));
    g_file_ends.push_back(fd);
  }
  for (const TreeGhost& g : ghosts) finish_ghost(*g.rec, g.fd);
  for (const TreeFifo& t : fifos) finish_fifo(*t.rec, t.anchor, t.removed);
  g_file_kept.assign(g_file_ends.size(), -1);
}

const Fd* socket_with(const std::vector<Image>& images, std::uint64_t inode) {
  for (const Image& img : images)
    for (const Fd& f : img.fds)
      if (f.rec.kind == FdKind::socket && f.rec.inode == inode) return &f;
  return nullptr;
}

// Each socketpair between members, once, from its ends' records.
void make_tree_pairs(const std::vector<Image>& images) {
  for (TreePair& t : g_pairs) {
    const Fd* a = socket_with(images, t.ino[0]);
    const Fd* b = socket_with(images, t.ino[1]);
    if (a == nullptr || b == nullptr)
      refuse("no process of the tree holds socket:[" + std::to_string(a == nullptr ? t.ino[0] : t.ino[1]) +
             "], a socketpair end the tree manifest names");
    make_tree_pair(*a, *b, t.ends);
  }
}

}  // namespace

bool is_tree_manifest(int fd) {
  std::string magic = std::string(kTreeMagicLine) + "\n";
  char buf[32] = {};
  ssize_t n = pread(fd, buf, magic.size(), 0);
  return n == static_cast<ssize_t>(magic.size()) && magic.compare(0, magic.size(), buf, magic.size()) == 0;
}

int start_tree(const std::string& manifest_path, int manifest_fd, Image* img) {
  std::vector<MemberLine> members;
  std::vector<ZombieLine> zombies;
  read_manifest(manifest_fd, &members, &zombies, &g_shared);
  close(manifest_fd);
  std::string dir = manifest_path.substr(0, manifest_path.rfind('/') + 1);
  static OwnMaps own;
  read_own_maps(&own);
  std::vector<Image> images;
  std::vector<int> fds;
  std::string tree_name = g_image_path;
  for (std::size_t i = 0; i < members.size(); ++i) {
    std::string path = dir + members[i].file;
    snprintf(g_image_path, sizeof g_image_path, "%s (process %d of the tree, %s)", tree_name.c_str(),
             members[i].vpid, path.c_str());
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) refuse(strerror(errno));
    images.push_back(read_image(fd));
    fds.push_back(fd);
    const Image& m = images.back();
    if (m.process.pid != members[i].vpid)
      refuse("its image holds process " + std::to_string(m.process.pid) + ", not " + std::to_string(members[i].vpid));
    check_restorable(m, own);
    bool writable = false;
    for (const Region& g : m.regions)
      writable = writable || (g.rec.start <= members[i].table && members[i].table + sizeof(TreePids) <= g.rec.end &&
                              (g.rec.prot & PROT_WRITE) && g.rec.kind != RegionKind::shared_file &&
                              g.rec.kind != RegionKind::shared_anon);
    if (!writable) refuse("its agent's pid table at " + hex(members[i].table) + " is not in its private writable memory");
  }
  // Each shared object once, as large as its mappings reach, staged where
  // every member's restorer inherits it.
  std::vector<std::uint64_t> sizes;
  for (const SharedLine& h : g_shared) {
    bool found = false;
    for (const Region& g : images[static_cast<std::size_t>(h.member)].regions)
      found = found || (g.rec.start == h.start && g.rec.end == h.end && g.rec.kind == RegionKind::shared_anon);
    if (!found)
      refuse("process " + std::to_string(members[static_cast<std::size_t>(h.member)].vpid) +
             " has no shared anonymous mapping at " + hex(h.start) + ", as the tree manifest says");
    if (static_cast<std::size_t>(h.object) >= sizes.size()) sizes.resize(static_cast<std::size_t>(h.object) + 1, 0);
    std::uint64_t reach = h.offset + (h.end - h.start);
    if (reach > sizes[static_cast<std::size_t>(h.object)]) sizes[static_cast<std::size_t>(h.object)] = reach;
  }
  std::uint64_t staging = kStagingBase;
  for (std::uint64_t size : sizes) {
    if (size > kReservedHigh - staging)
      refuse("the tree's shared anonymous memory is larger than the restorer's " +
             std::to_string((kReservedHigh - kStagingBase) >> 20) + " MiB staging area");
    void* obj = mmap(reinterpret_cast<void*>(staging), size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (obj != reinterpret_cast<void*>(staging))
      refuse(std::string("cannot stage the tree's shared memory: ") + strerror(errno));
    g_object_base.push_back(staging);
    staging += size;
  }
  open_tree_files(images, members, dir);
  make_tree_pairs(images);
  // Each pipe once, with its unread bytes, inherited by every member.
  for (TreePipe& t : g_pipes) {
    std::string path = dir + t.file;
    snprintf(g_image_path, sizeof g_image_path, "%s (pipe:[%lu], %s)", tree_name.c_str(),
             static_cast<unsigned long>(t.inode), path.c_str());
    std::string bytes(static_cast<std::size_t>(t.bytes), '\0');
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) refuse(strerror(errno));
    bool whole = read(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    char more;
    whole = whole && read(fd, &more, 1) == 0;
    close(fd);
    if (!whole) refuse("it does not hold the " + std::to_string(t.bytes) + " bytes the manifest says");
    if (pipe2(t.ends, O_CLOEXEC) != 0) refuse(std::string("pipe2: ") + strerror(errno));
    if (fcntl(t.ends[1], F_SETPIPE_SZ, static_cast<int>(t.capacity)) < t.capacity)
      refuse("a pipe of " + std::to_string(t.capacity) + " bytes cannot be made here: " + strerror(errno) +
             " (see /proc/sys/fs/pipe-max-size)");
    if (!bytes.empty() && write(t.ends[1], bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
      refuse(std::string("refilling the pipe: ") + strerror(errno));
  }
  void* at = mmap(reinterpret_cast<void*>(kTreeSyncBase), kSyncLen, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (at != reinterpret_cast<void*>(kTreeSyncBase)) refuse(std::string("cannot map the tree's shared page: ") + strerror(errno));
  g_sync = static_cast<TreeSync*>(at);
  g_tree = true;
  g_members = static_cast<int>(members.size());
  g_entries = g_members + static_cast<int>(zombies.size());
  for (std::size_t i = 0; i < members.size(); ++i) g_sync->pids[i][0] = members[i].vpid;
  for (std::size_t k = 0; k < zombies.size(); ++k) g_sync->pids[members.size() + k][0] = zombies[k].vpid;
  // A zombie must stay one (SIGCHLD ignored would reap it), and its SIGCHLD
  // must not be left pending for the restored parent: default, unblocked.
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &dfl, nullptr);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_UNBLOCK, &chld, nullptr);

  // Which children are forked before their parent's setsid() (they keep
  // the session it had before).
  std::vector<TreeProc> procs;
  for (std::size_t i = 0; i < members.size(); ++i)
    procs.push_back({images[i].header.real_pid, members[i].parent, images[i].process.sid, images[i].process.pgid});
  std::vector<char> early;
  if (std::string why = plan_tree_sessions(procs, &early); !why.empty()) refuse(why);
  int me = 0;
  g_sync->pids[0][1] = getpid();
  for (bool forked = true; forked;) {
    forked = false;
    snprintf(g_image_path, sizeof g_image_path, "%s (process %d of the tree)", tree_name.c_str(), members[me].vpid);
    for (int pass = 0; pass < 2 && !forked; ++pass) {
      if (pass == 1) {
        // Its own session or group, which its other children inherit. Its
        // parent death signal, which fork() cleared.
        restore_session(images[static_cast<std::size_t>(me)]);
        for (const auto& [member, sig] : g_pdeathsig)
          if (member == me && prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0)
            refuse(std::string("prctl(PR_SET_PDEATHSIG): ") + strerror(errno));
      }
      for (std::size_t j = 0; j < members.size() && !forked; ++j) {
        if (members[j].parent != me || (early[j] != 0) != (pass == 0)) continue;
        pid_t pid = fork();
        if (pid < 0) refuse(std::string("fork: ") + strerror(errno));
        g_sync->pids[j][1] = pid == 0 ? getpid() : pid;
        if (pid == 0) {
          me = static_cast<int>(j);
          forked = true;
        }
      }
    }
    if (forked) continue;
    for (std::size_t k = 0; k < zombies.size(); ++k) {
      if (zombies[k].parent != me) continue;
      pid_t pid = fork();
      if (pid < 0) refuse(std::string("fork: ") + strerror(errno));
      if (pid == 0) end_as(zombies[k]);
      g_sync->pids[members.size() + k][1] = pid;
      siginfo_t info{};
      while (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
      }
    }
  }
  for (std::size_t i = 0; i < fds.size(); ++i)
    if (static_cast<int>(i) != me) close(fds[i]);
  g_me = me;
  g_table = members[static_cast<std::size_t>(me)].table;
  *img = std::move(images[static_cast<std::size_t>(me)]);
  return fds[static_cast<std::size_t>(me)];
}

std::int32_t tree_real_pid(std::int32_t vpid, bool after_barrier) {
  if (!g_tree) return 0;
  for (int i = 0; i < g_entries; ++i) {
    const std::int32_t* p = after_barrier ? g_pids[i] : g_sync->pids[i];
    if (p[0] == vpid) return after_barrier ? p[1] : 1;
  }
  return 0;
}

bool is_tree_pipe(std::uint64_t inode) {
  for (const TreePipe& t : g_pipes)
    if (t.inode == inode) return true;
  return false;
}

int keep_tree_pipes(const Image& img, int kept) {
  for (TreePipe& t : g_pipes) {
    for (const Fd& f : img.fds) {
      if (f.rec.kind != FdKind::pipe || f.rec.inode != t.inode) continue;
      int end = (f.rec.open_flags & O_ACCMODE) == O_RDONLY ? 0 : 1;
      if (t.kept[end] >= 0) continue;
      t.kept[end] = fcntl(t.ends[end], F_DUPFD_CLOEXEC, kept + 1);
      if (t.kept[end] < 0) refuse(std::string("cannot keep a pipe of the tree: ") + strerror(errno));
      kept = t.kept[end];
    }
  }
  for (TreePipe& t : g_pipes) {
    close(t.ends[0]);
    close(t.ends[1]);
  }
  return kept;
}

int keep_tree_files(const Image& img, int kept) {
  for (const FileLine& h : g_files) {
    auto o = static_cast<std::size_t>(h.object);
    if (h.member != g_me || g_file_kept[o] >= 0) continue;
    g_file_kept[o] = fcntl(g_file_ends[o], F_DUPFD_CLOEXEC, kept + 1);
    if (g_file_kept[o] < 0) refuse(std::string("cannot keep an open file of the tree: ") + strerror(errno));
    kept = g_file_kept[o];
  }
  for (int& fd : g_file_ends) close(fd), fd = -1;
  for (TreePair& t : g_pairs) {
    for (int k = 0; k < 2; ++k) {
      bool mine = false;
      for (const Fd& f : img.fds) mine = mine || (f.rec.kind == FdKind::socket && f.rec.inode == t.ino[k]);
      if (mine) {
        t.kept[k] = fcntl(t.ends[k], F_DUPFD_CLOEXEC, kept + 1);
        if (t.kept[k] < 0) refuse(std::string("cannot keep a socketpair end of the tree: ") + strerror(errno));
        kept = t.kept[k];
      }
      close(t.ends[k]);
      t.ends[k] = -1;
    }
  }
  return kept;
}

int tree_socket(std::uint64_t inode) {
  for (const TreePair& t : g_pairs)
    for (int k = 0; k < 2; ++k)
      if (t.ino[k] == inode) return t.kept[k];
  return -1;
}

int tree_file(std::int32_t fd) {
  for (const FileLine& h : g_files)
    if (h.member == g_me && h.fd == fd) return g_file_kept[static_cast<std::size_t>(h.object)];
  return -1;
}

bool is_tree_file(std::int32_t fd) {
  for (const FileLine& h : g_files)
    if (h.member == g_me && h.fd == fd) return true;
  return false;
}

void close_tree_files() {
  for (int& fd : g_file_kept)
    if (fd >= 0) close(fd), fd = -1;
  for (TreePair& t : g_pairs)
    for (int& fd : t.kept)
      if (fd >= 0) close(fd), fd = -1;
}

void place_tree_pipes(const Image& img) {
  for (TreePipe& t : g_pipes) {
    // The first record of each end takes the end made for the tree (one
    // open file with the other processes' first, the requester checked);
    // each further one was an open of its own in this process and is
    // opened again so (its flags its own).
    bool placed[2] = {false, false};
    for (const Fd& f : img.fds) {
      const FdRecord& e = f.rec;
      if (e.kind != FdKind::pipe || t.inode != e.inode) continue;
      bool reader = (e.open_flags & O_ACCMODE) == O_RDONLY;
      int src = t.kept[reader ? 0 : 1];
      if (src < 0) die("placing a pipe of the tree", -EBADF);
      int fd = src;
      if (placed[reader]) {
        std::string again = "/proc/self/fd/" + std::to_string(src);
        fd = open(again.c_str(), (reader ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
        if (fd < 0) die("opening a pipe end of the tree again", -errno);
      }
      placed[reader] = true;
      if (fd != e.fd && dup3(fd, e.fd, (e.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
        die("placing a pipe of the tree", -errno);
      if (fd == e.fd) fcntl(fd, F_SETFD, e.fd_flags & FD_CLOEXEC);
      if (fd != src && fd != e.fd) close(fd);
      fcntl(e.fd, F_SETFL, static_cast<int>(e.open_flags) & (O_NONBLOCK | O_APPEND));
    }
  }
  for (TreePipe& t : g_pipes)
    for (int& k : t.kept)
      if (k >= 0) close(k), k = -1;
}

void close_unheld_std_streams(const Image& img) {
  if (!g_tree || g_me == 0) return;
  for (int fd = 0; fd <= 2; ++fd)
    if (fd_numbered(img, fd) == nullptr) close(fd);
}

void tree_refused() {
  if (g_sync == nullptr) return;
  g_sync->failed.store(1);
  futex(&g_sync->arrived, FUTEX_WAKE, 0x7fffffff, nullptr);
}

void tree_barrier() {
  if (!g_tree) return;
  g_sync->arrived.fetch_add(1);
  futex(&g_sync->arrived, FUTEX_WAKE, 0x7fffffff, nullptr);
  long start = mono_seconds();
  for (;;) {
    int arrived = g_sync->arrived.load();
    if (g_sync->failed.load() != 0) {
      // The member refused said why; the root says what became of the tree.
      TreeSync* s = g_sync;
      g_sync = nullptr;
      if (getpid() == s->pids[0][1]) refuse("another process of the tree could not be restored (see above)");
      _exit(2);
    }
    if (arrived >= g_members) break;
    if (mono_seconds() - start > kBarrierSeconds) refuse("the other processes of the tree did not get ready");
    timespec wait{0, 100'000'000L};
    futex(&g_sync->arrived, FUTEX_WAIT, arrived, &wait);
  }
  std::memcpy(g_pids, g_sync->pids, sizeof g_pids);
}

void finish_tree(const Image& img) {
  if (!g_tree) return;
  // The first mapping of each object in the manifest fills it from this
  // member's memory, just loaded; once every member is here, each maps the
  // object over its own copy.
  for (std::size_t i = 0; i < g_shared.size(); ++i) {
    const SharedLine& h = g_shared[i];
    bool first = true;
    for (std::size_t k = 0; k < i; ++k) first = first && g_shared[k].object != h.object;
    if (h.member != g_me || !first) continue;
    std::size_t len = h.end - h.start;
    if (mprotect(reinterpret_cast<void*>(h.start), len, PROT_READ) != 0) die("mprotect of shared memory", -errno);
    std::memcpy(reinterpret_cast<void*>(g_object_base[static_cast<std::size_t>(h.object)] + h.offset),
                reinterpret_cast<const void*>(h.start), len);
  }
  g_sync->filled.fetch_add(1);
  futex(&g_sync->filled, FUTEX_WAKE, 0x7fffffff, nullptr);
  long start = mono_seconds();
  for (int filled; (filled = g_sync->filled.load()) < g_members;) {
    if (mono_seconds() - start > kBarrierSeconds) die("waiting for the other processes of the tree", -ETIMEDOUT);
    timespec wait{0, 100'000'000L};
    futex(&g_sync->filled, FUTEX_WAIT, filled, &wait);
  }
  for (const SharedLine& h : g_shared) {
    if (h.member != g_me) continue;
    std::size_t len = h.end - h.start;
    long r = syscall(SYS_mremap, g_object_base[static_cast<std::size_t>(h.object)] + h.offset, 0, len,
                     MREMAP_MAYMOVE | MREMAP_FIXED, h.start);
    if (r != static_cast<long>(h.start)) die("mapping the tree's shared memory", -errno);
    for (const Region& g : img.regions)
      if (g.rec.start == h.start && mprotect(reinterpret_cast<void*>(h.start), len, static_cast<int>(g.rec.prot)) != 0)
        die("mprotect of shared memory", -errno);
  }
  munmap(g_sync, kSyncLen);
  g_sync = nullptr;
  auto* t = reinterpret_cast<TreePids*>(g_table);
  t->count = 0;
  for (int i = 0; i < g_entries; ++i) {
    t->pids[i][0] = g_pids[i][0];
    t->pids[i][1] = g_pids[i][1];
  }
  t->magic = kTreePidsMagic;
  t->parent_real = g_me == 0 ? 0 : getppid();
  t->fresh = 1;
  t->count = static_cast<std::uint32_t>(g_entries);
  // Stopped at the checkpoint: stopped again before the program runs (a
  // terminal stop signal blocked now stays pending until its mask is back),
  // which its parent's next wait reports as before.
  for (const auto& [member, sig] : g_stopped)
    if (member == g_me) syscall(SYS_kill, getpid(), sig);
}

}  // namespace mosix::ckpt::restorer
