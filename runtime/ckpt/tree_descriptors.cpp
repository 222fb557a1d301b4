#include "runtime/ckpt/tree_descriptors.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string_view>

#include "runtime/sys/errno_text.h"

namespace mosix::ckpt {
namespace {

// The inode of a "pipe:[N]" link, or 0.
std::uint64_t pipe_inode(const std::string& link) {
  if (link.rfind("pipe:[", 0) != 0) return 0;
  return std::strtoull(link.c_str() + 6, nullptr, 10);
}

std::string fd_path(pid_t pid, int fd) { return "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd); }

struct Held {
  std::size_t member;
  int fd;
  std::string link;
};

// A deleted file or a memfd, by the link of a descriptor on it.
bool is_ghost_link(const std::string& link) {
  constexpr std::string_view kDeleted = " (deleted)";
  return link.rfind("/memfd:", 0) == 0 ||
         (link[0] == '/' && link.size() > kDeleted.size() &&
          link.compare(link.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0);
}

// Refuses when a process outside the tree holds one of the files (deleted
// files, memfds and named pipes, by device and inode) the tree makes once
// for its processes.
Status check_held_outside(const std::vector<TreeFdHolder>& all, const std::set<std::pair<dev_t, ino_t>>& ghosts,
                          const std::set<std::pair<dev_t, ino_t>>& fifos) {
  if (ghosts.empty() && fifos.empty()) return {};
  std::set<pid_t> in_tree;
  for (const TreeFdHolder& h : all) in_tree.insert(h.pid);
  std::error_code ec;
  for (const auto& p : std::filesystem::directory_iterator("/proc", ec)) {
    pid_t pid = std::atoi(p.path().filename().c_str());
    if (pid <= 0 || in_tree.count(pid) != 0) continue;
    std::error_code fd_ec;
    for (const auto& e : std::filesystem::directory_iterator(p.path() / "fd", fd_ec)) {
      std::error_code link_ec;
      std::string link = std::filesystem::read_symlink(e.path(), link_ec).string();
      struct stat st{};
      if (link_ec || link.empty() || link[0] != '/' || (!is_ghost_link(link) && fifos.empty()) ||
          stat(e.path().c_str(), &st) != 0)
        continue;
      if (ghosts.count({st.st_dev, st.st_ino}) != 0)
        return make_error("a deleted file or memfd of the tree (" + link + ") is open in process " +
                          std::to_string(pid) + " too, which is not in the tree");
      if (fifos.count({st.st_dev, st.st_ino}) != 0)
        return make_error("a named pipe of the tree (" + link + ") is open in process " + std::to_string(pid) +
                          " too, which is not in the tree");
    }
  }
  return {};
}

}  // namespace

// Each file the holders have open, by device and inode; the descriptors on
// it fall into open files by kcmp; an open file with descriptors in two
// processes is one object of the result (sockets refused, pipes left out).
Expected<std::vector<TreeSharedFile>> shared_open_files(const std::vector<TreeFdHolder>& all,
                                                        const std::vector<TreeSocketPair>& pairs) {
  std::set<std::string> made_once;
  for (const auto& [a, b] : pairs) {
    made_once.insert("socket:[" + std::to_string(a) + "]");
    made_once.insert("socket:[" + std::to_string(b) + "]");
  }
  std::map<std::pair<dev_t, ino_t>, std::vector<Held>> by_file;
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::string dir = "/proc/" + std::to_string(all[i].pid) + "/fd";
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      int fd = std::atoi(entry.path().filename().c_str());
      if (fd <= 2) continue;
      std::string link = std::filesystem::read_symlink(entry.path(), ec).string();
      if (ec || link.rfind("/proc/", 0) == 0 || link.rfind("pipe:", 0) == 0 || made_once.count(link) != 0 ||
          std::find(all[i].own.begin(), all[i].own.end(), link) != all[i].own.end())
        continue;
      struct stat st{};
      if (stat(entry.path().c_str(), &st) != 0) continue;
      by_file[{st.st_dev, st.st_ino}].push_back({i, fd, link});
    }
  }
  // A deleted file or memfd is made again once for the tree, so a process
  // outside it must not hold one (it would keep the old one).
  std::set<std::pair<dev_t, ino_t>> ghosts, fifos;
  for (const auto& [file, held] : by_file) {
    struct stat st{};
    const Held& h = held.front();
    if (stat(fd_path(all[h.member].pid, h.fd).c_str(), &st) != 0) continue;
    // A removed named pipe's link ends in " (deleted)" too.
    if (S_ISFIFO(st.st_mode)) fifos.insert(file);
    else if (S_ISREG(st.st_mode) && is_ghost_link(h.link)) ghosts.insert(file);
  }
  if (Status s = check_held_outside(all, ghosts, fifos); !s.ok()) return s.error();
  std::vector<TreeSharedFile> out;
  int objects = 0;
  for (const auto& [file, held] : by_file) {
    // open[k]: the descriptors of one open file.
    std::vector<std::vector<const Held*>> open;
    for (const Held& h : held) {
      bool placed = false;
      for (auto& o : open) {
        const Held& x = *o.front();
        long same = syscall(SYS_kcmp, all[x.member].pid, all[h.member].pid, 0 /* KCMP_FILE */, x.fd, h.fd);
        if (same < 0)
          return make_error("cannot tell whether fd " + std::to_string(x.fd) + " of process " +
                            std::to_string(all[x.member].pid) + " and fd " + std::to_string(h.fd) + " of process " +
                            std::to_string(all[h.member].pid) + " are one open file (" + h.link +
                            "): kcmp: " + sys::errno_text(errno));
        if (same == 0) {
          o.push_back(&h);
          placed = true;
          break;
        }
      }
      if (!placed) open.push_back({&h});
    }
    // A deleted file or memfd two processes hold is made again once, before
    // the forks, and each of its open files with it, also one that only
    // one process holds (opened through the other's, /proc/PID/fd/N).
    // A named pipe of the tree likewise, even one only one process holds:
    // its unread bytes are the requester's to copy (capture_tree_fifos).
    bool ghost_of_two = false;
    for (const Held& h : held) ghost_of_two = ghost_of_two || h.member != held.front().member;
    ghost_of_two = (ghost_of_two && ghosts.count(file) != 0) || fifos.count(file) != 0;
    for (const auto& o : open) {
      if (ghost_of_two) {
        for (const Held* h : o) out.push_back({objects, h->member, h->fd});
        ++objects;
        continue;
      }
      const Held* other = nullptr;
      for (const Held* h : o)
        if (h->member != o.front()->member) other = h;
      if (other == nullptr) continue;
      const Held& x = *o.front();
      std::string both = "fd " + std::to_string(x.fd) + " of process " + std::to_string(all[x.member].pid) +
                         " and fd " + std::to_string(other->fd) + " of process " +
                         std::to_string(all[other->member].pid);
      if (x.link.rfind("socket:", 0) == 0)
        return make_error(both + " are one socket (" + x.link + "), which a tree restore does not give back yet");
      struct stat st{};
      bool by_path = x.link[0] == '/' && x.link.find(" (deleted)") == std::string::npos &&
                     x.link.rfind("/memfd:", 0) != 0 && stat(fd_path(all[x.member].pid, x.fd).c_str(), &st) == 0 &&
                     (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISCHR(st.st_mode));
      if (!by_path)
        return make_error(both + " are one open file (" + x.link +
                          ": one offset and one set of flags) that is not reopened by its path, which a tree "
                          "restore does not give back yet");
      for (const Held* h : o) out.push_back({objects, h->member, h->fd});
      ++objects;
    }
  }
  return out;
}

// The inodes of the sockets each process holds ("socket:[N]" links).
std::set<std::uint64_t> sockets_of(pid_t pid) {
  std::set<std::uint64_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::string link = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && link.rfind("socket:[", 0) == 0) out.insert(std::strtoull(link.c_str() + 8, nullptr, 10));
  }
  return out;
}

Expected<std::vector<TreeSocketPair>> tree_socket_pairs(const std::vector<pid_t>& members,
                                                        const std::vector<TreeSocketPair>& named) {
  std::vector<TreeSocketPair> out;
  if (named.empty()) return out;
  std::set<std::uint64_t> ends;
  std::map<std::uint64_t, std::vector<pid_t>> held;  // inode -> the members holding it
  for (pid_t m : members)
    for (std::uint64_t ino : sockets_of(m)) held[ino].push_back(m);
  for (const auto& [a, b] : named) {
    if (held.count(b) == 0)
      return make_error("the other end (socket:[" + std::to_string(b) + "]) of socketpair end socket:[" +
                        std::to_string(a) + "] is held by a process that is not in the tree");
    // Each holder's agent copies an end's queue by walking it with the
    // socket's one peek offset: two holders would walk it at once, and each
    // see part of it (the suite saw one find the other's offset set).
    for (std::uint64_t end : {a, b}) {
      const std::vector<pid_t>& by = held[end];
      if (by.size() > 1)
        return make_error("socketpair end socket:[" + std::to_string(end) + "] is held by processes " +
                          std::to_string(by[0]) + " and " + std::to_string(by[1]) +
                          " of the tree, and its queue is copied by one (close it in all but one before the checkpoint)");
    }
    ends.insert(a);
    ends.insert(b);
    if (std::find(out.begin(), out.end(), TreeSocketPair{b, a}) == out.end() &&
        std::find(out.begin(), out.end(), TreeSocketPair{a, b}) == out.end())
      out.push_back({a, b});
  }
  std::set<pid_t> in_tree(members.begin(), members.end());
  std::error_code ec;
  for (const auto& p : std::filesystem::directory_iterator("/proc", ec)) {
    pid_t pid = std::atoi(p.path().filename().c_str());
    if (pid <= 0 || in_tree.count(pid) != 0) continue;
    for (std::uint64_t ino : sockets_of(pid))
      if (ends.count(ino) != 0)
        return make_error("a socketpair end of the tree (socket:[" + std::to_string(ino) + "]) is held by process " +
                          std::to_string(pid) + " too, which is not in the tree");
  }
  return out;
}

// The access mode of a descriptor (its fdinfo's flags), -1 if unknown.
int access_mode(pid_t pid, int fd) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
  for (std::string key; in >> key;) {
    if (key != "flags:") continue;
    std::string flags;
    in >> flags;
    return static_cast<int>(std::strtol(flags.c_str(), nullptr, 8) & O_ACCMODE);
  }
  return -1;
}

namespace {

// The unread bytes of the pipe or named pipe fd of pid, copied with tee(2)
// through an open of /proc/PID/fd/N (nothing is taken out) into a new file
// at `path`, with the pipe's capacity, into *d.
Status copy_unread(pid_t pid, int fd, const std::string& path, TreePipeData* d) {
  std::string what = std::to_string(d->inode) + "] of process " + std::to_string(pid);
  int in = open(fd_path(pid, fd).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (in < 0) return make_error("cannot open pipe:[" + what + " to read what is in it: " + sys::errno_text(errno));
  int avail = 0;
  d->capacity = fcntl(in, F_GETPIPE_SZ);
  bool ok = d->capacity > 0 && ioctl(in, FIONREAD, &avail) == 0;
  d->bytes = avail;
  std::string bytes;
  if (ok && avail > 0) {
    int tmp[2];
    ok = pipe2(tmp, O_CLOEXEC | O_NONBLOCK) == 0;
    if (ok) {
      ok = fcntl(tmp[1], F_SETPIPE_SZ, static_cast<int>(d->capacity)) >= d->capacity &&
           tee(in, tmp[1], static_cast<std::size_t>(avail), SPLICE_F_NONBLOCK) == avail;
      bytes.resize(static_cast<std::size_t>(avail));
      ok = ok && read(tmp[0], bytes.data(), bytes.size()) == avail;
      close(tmp[0]);
      close(tmp[1]);
    }
  }
  close(in);
  if (!ok) return make_error("cannot copy what is unread in pipe:[" + what);
  auto file = sys::AtomicFile::create(path);
  if (!file) return file.error();
  if (!bytes.empty() && write(file->fd(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
    return make_error("cannot write " + file->temp_path() + ": " + sys::errno_text(errno));
  d->file.emplace(std::move(*file));
  return {};
}

}  // namespace

Expected<std::vector<TreePipeData>> capture_tree_pipes(const std::vector<pid_t>& members,
                                                       const std::string& image_path) {
  // An end of a pipe that two processes hold must be one open file: the
  // restore makes each end once for the tree.
  std::map<std::pair<std::uint64_t, int>, std::vector<std::pair<pid_t, int>>> ends;
  std::error_code ec;
  for (pid_t m : members)
    for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(m) + "/fd", ec)) {
      int fd = std::atoi(e.path().filename().c_str());
      std::uint64_t ino = fd > 2 ? pipe_inode(std::filesystem::read_symlink(e.path(), ec).string()) : 0;
      if (ino != 0) ends[{ino, access_mode(m, fd)}].push_back({m, fd});
    }
  for (const auto& [end, held] : ends) {
    bool shared = false;
    for (const auto& h : held) shared = shared || h.first != held.front().first;
    if (!shared) continue;
    for (const auto& h : held)
      if (syscall(SYS_kcmp, held.front().first, h.first, 0 /* KCMP_FILE */, held.front().second, h.second) != 0)
        return make_error("fd " + std::to_string(held.front().second) + " of process " +
                          std::to_string(held.front().first) + " and fd " + std::to_string(h.second) +
                          " of process " + std::to_string(h.first) + " are two opens of one end of pipe:[" +
                          std::to_string(end.first) + "], which a tree restore would make one");
  }
  std::map<std::uint64_t, std::pair<pid_t, int>> holder;  // inode -> a member's descriptor
  std::set<pid_t> in_tree(members.begin(), members.end());
  for (pid_t m : members) {
    for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(m) + "/fd", ec)) {
      int fd = std::atoi(e.path().filename().c_str());
      std::uint64_t ino = fd > 2 ? pipe_inode(std::filesystem::read_symlink(e.path(), ec).string()) : 0;
      if (ino != 0) holder.emplace(ino, std::make_pair(m, fd));
    }
  }
  std::vector<TreePipeData> out;
  if (holder.empty()) return out;
  for (const auto& p : std::filesystem::directory_iterator("/proc", ec)) {
    pid_t pid = std::atoi(p.path().filename().c_str());
    if (pid <= 0 || in_tree.count(pid) != 0) continue;
    std::error_code fd_ec;
    for (const auto& e : std::filesystem::directory_iterator(p.path() / "fd", fd_ec)) {
      std::uint64_t ino = pipe_inode(std::filesystem::read_symlink(e.path(), fd_ec).string());
      if (ino != 0 && holder.count(ino) != 0)
        return make_error("a pipe of the tree (pipe:[" + std::to_string(ino) + "]) is held by process " +
                          std::to_string(pid) + " too, which is not in the tree");
    }
  }
  for (const auto& [ino, at] : holder) {
    TreePipeData d;
    d.inode = ino;
    if (Status s = copy_unread(at.first, at.second, image_path + ".pipe" + std::to_string(out.size()), &d); !s.ok())
      return s.error();
    out.push_back(std::move(d));
  }
  return out;
}

Expected<std::vector<TreeFifoData>> capture_tree_fifos(const std::vector<pid_t>& members,
                                                       const std::vector<TreeSharedFile>& files,
                                                       const std::string& image_path) {
  std::vector<TreeFifoData> out;
  std::set<std::pair<dev_t, ino_t>> seen;
  for (const TreeSharedFile& f : files) {
    pid_t pid = members[f.member];
    struct stat st{};
    if (stat(fd_path(pid, f.fd).c_str(), &st) != 0 || !S_ISFIFO(st.st_mode) || !seen.insert({st.st_dev, st.st_ino}).second)
      continue;
    TreeFifoData d;
    d.member = f.member;
    d.fd = f.fd;
    d.pipe.inode = st.st_ino;
    if (Status s = copy_unread(pid, f.fd, image_path + ".fifo" + std::to_string(out.size()), &d.pipe); !s.ok())
      return s.error();
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace mosix::ckpt
