// The names an MPI job publishes (MPI_Publish_name, PMIx_Publish), kept by
// the home node: a lookup finds them, or waits for them when asked to;
// a rank unpublishes its own. Pure: requests in, answers out.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/protocol.h"

namespace mosix {

// PMIx statuses the answers carry.
inline constexpr std::int32_t kNameNotFound = -46;   // PMIX_ERR_NOT_FOUND
inline constexpr std::int32_t kNameDuplicate = -53;  // PMIX_ERR_DUPLICATE_KEY

class PublishedNames {
 public:
  struct Answer {
    int node = 0;  // who asked
    NameReply reply;
  };

  // A publish from `node`: all its names, or none if one is taken (by
  // another rank). Answers it, and every waiting lookup it completes.
  std::vector<Answer> publish(int node, const NamePublish& request);
  // A lookup: answered now (every key found, or some not found and no
  // wait), or once the last key is published.
  std::vector<Answer> lookup(int node, const NameLookup& request);
  // `rank`'s names (those listed, or all) are gone. Someone else's, or a
  // name never published, is not found.
  Answer unpublish(int node, const NameUnpublish& request);
  // The node is gone: its waiting lookups are dropped.
  void node_lost(int node);

  std::size_t waiting() const { return waiting_.size(); }

 private:
  std::map<std::string, PublishedName> names_;
  std::vector<std::pair<int, NameLookup>> waiting_;
};

}  // namespace mosix
