// The node's word to the programs of its guests' families, in a file of the
// runtime directory: `<runtime dir>/node-<daemon pid>.env`, one NAME=value a
// line (an empty value: unset). The same values the daemon puts into the
// environment of every guest it starts (GuestTable::node_env()). A guest
// restored here from another node still has that node's values in its
// memory; its new programs find this file through their ancestors and take
// them from here (compat/agent/place_at_exec.cpp).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/core/expected.h"

namespace mosix {

class NodeEnvFile {
 public:
  // Writes the file of this process (atomically: a reader never sees half
  // of it), after removing those left by daemons that are gone.
  static Expected<std::unique_ptr<NodeEnvFile>> create(const std::vector<std::string>& lines);
  ~NodeEnvFile();  // removes it
  NodeEnvFile(const NodeEnvFile&) = delete;
  NodeEnvFile& operator=(const NodeEnvFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  explicit NodeEnvFile(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace mosix
