// Sessions and process groups of a process tree restored by forks
// (tree_protocol.h): a session can only be had by inheriting it or by
// setsid(), a group by inheriting it, by setpgid(0, 0), or by joining one of
// the same session. The restorer of each process forks those of its
// children that need the session it inherited before its own setsid() (they
// are "early"), the others after, so a child may be in its own session, its
// parent's, or the one its parent had before setsid(). A process's group is
// its own or the one it inherits. Pure: the requester checks a tree with it
// at checkpoint time, the restorer plans the forks with it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace mosix::ckpt {

struct TreeProc {
  pid_t pid = 0;    // at the checkpoint, as are sid and pgid (0: led from outside the pid namespace)
  int parent = -1;  // index, -1 for the root; each process after its parent
  pid_t sid = 0, pgid = 0;
};

// Fills (*early)[i]: process i is forked before its parent's setsid().
// Returns "" or why the tree's sessions and groups cannot be made again.
inline std::string plan_tree_sessions(const std::vector<TreeProc>& t, std::vector<char>* early) {
  // Session and group 0 are real values, not "unknown": /proc and getsid()
  // give 0 for a session or group whose leader is outside the pid namespace
  // (a container, a job started by a namespaced launcher).
  constexpr pid_t kAny = -1, kUnknown = -2;
  std::size_t n = t.size();
  early->assign(n, 0);
  std::vector<pid_t> need(n, kAny), isid(n, kUnknown), ipg(n, kUnknown);
  auto name = [&](std::size_t i) {
    std::string s = "process " + std::to_string(t[i].pid);
    if (t[i].parent >= 0) s += " (child of " + std::to_string(t[static_cast<std::size_t>(t[i].parent)].pid) + ")";
    return s;
  };
  // The session each process's restorer must have when it is forked.
  for (std::size_t k = n; k-- > 0;) {
    if (t[k].sid != t[k].pid) {
      need[k] = t[k].sid;
      continue;
    }
    for (std::size_t c = k + 1; c < n; ++c) {
      if (t[c].parent != static_cast<int>(k) || need[c] == kAny || need[c] == t[k].sid) continue;
      if (need[k] != kAny && need[k] != need[c])
        return name(c) + " is in session " + std::to_string(need[c]) + " and another child of its parent in session " +
               std::to_string(need[k]) + ", which a tree restore cannot both give back";
      need[k] = need[c];
    }
  }
  // The root keeps the session and group it had unless it led them; what it
  // had before a setsid() is not known.
  isid[0] = t[0].sid == t[0].pid ? kUnknown : t[0].sid;
  ipg[0] = t[0].pgid == t[0].pid ? kUnknown : t[0].pgid;
  for (std::size_t c = 1; c < n; ++c) {
    auto p = static_cast<std::size_t>(t[c].parent);
    if (need[c] == kAny || need[c] == t[p].sid) {
      isid[c] = t[p].sid;
      ipg[c] = t[p].pgid;
    } else if (t[p].sid == t[p].pid && isid[p] != kUnknown && need[c] == isid[p]) {
      (*early)[c] = 1;
      isid[c] = isid[p];
      ipg[c] = ipg[p];
    } else {
      return name(c) + (t[c].sid == t[c].pid ? " leads a session with a process in session "
                                             : " is in session ") +
             std::to_string(need[c]) + ", neither its parent's nor one its parent had before, which a tree restore " +
             "does not give back";
    }
    if (t[c].pgid != t[c].pid && t[c].pgid != ipg[c])
      return name(c) + " is in process group " + std::to_string(t[c].pgid) +
             ", neither its own nor the one it inherited, which a tree restore does not give back yet";
  }
  return "";
}

}  // namespace mosix::ckpt
