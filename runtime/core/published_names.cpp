#include "runtime/core/published_names.h"

#include <algorithm>

namespace mosix {
namespace {

// The names of `keys`, or nothing if one is missing.
bool find_all(const std::map<std::string, PublishedName>& names, const std::vector<std::string>& keys,
              std::vector<PublishedName>& found) {
  found.clear();
  for (const std::string& k : keys) {
    auto it = names.find(k);
    if (it == names.end()) return false;
    found.push_back(it->second);
  }
  return true;
}

}  // namespace

std::vector<PublishedNames::Answer> PublishedNames::publish(int node, const NamePublish& request) {
  std::vector<Answer> out;
  for (const PublishedName& n : request.names) {
    auto it = names_.find(n.key);
    if (it != names_.end() && it->second.rank != n.rank) {
      out.push_back({node, NameReply{request.request_id, kNameDuplicate, {}}});
      return out;
    }
  }
  for (const PublishedName& n : request.names) names_[n.key] = n;
  out.push_back({node, NameReply{request.request_id, 0, {}}});
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    std::vector<PublishedName> found;
    if (find_all(names_, it->second.keys, found)) {
      out.push_back({it->first, NameReply{it->second.request_id, 0, std::move(found)}});
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<PublishedNames::Answer> PublishedNames::lookup(int node, const NameLookup& request) {
  std::vector<PublishedName> found;
  if (find_all(names_, request.keys, found)) return {{node, NameReply{request.request_id, 0, std::move(found)}}};
  if (request.wait) {
    waiting_.emplace_back(node, request);
    return {};
  }
  // What was found of a partial lookup goes back with the status (as PMIx does).
  found.clear();
  for (const std::string& k : request.keys) {
    if (auto it = names_.find(k); it != names_.end()) found.push_back(it->second);
  }
  return {{node, NameReply{request.request_id, found.empty() ? kNameNotFound : 0, std::move(found)}}};
}

PublishedNames::Answer PublishedNames::unpublish(int node, const NameUnpublish& request) {
  Answer a{node, NameReply{request.request_id, 0, {}}};
  if (request.keys.empty()) {
    std::erase_if(names_, [&](const auto& kv) { return kv.second.rank == request.rank; });
    return a;
  }
  for (const std::string& k : request.keys) {
    auto it = names_.find(k);
    if (it == names_.end() || it->second.rank != request.rank) {
      a.reply.status = kNameNotFound;
      continue;
    }
    names_.erase(it);
  }
  return a;
}

void PublishedNames::node_lost(int node) {
  std::erase_if(waiting_, [node](const auto& w) { return w.first == node; });
}

}  // namespace mosix
