// mosixctl checkpoint --tree: the image of a process and all its descendants,
// taken together (runtime/ckpt/tree_request.h), printed as the manifest's
// path and size, one line per member after it, or as JSON.
#include <iostream>

#include <nlohmann/json.hpp>

#include "launcher/mosixctl/commands.h"
#include "runtime/ckpt/tree_request.h"

namespace mosix::ctl {

void run_tree_checkpoint(const ckpt::TreeCheckpointRequest& r, bool json) {
  auto result = ckpt::request_tree_checkpoint(r);
  if (!result) throw CommandError(result.error().message);
  if (json) {
    nlohmann::json out = {{"version", 1},
                          {"image", result->manifest_path},
                          {"bytes", result->bytes},
                          {"zombies", result->zombies},
                          {"members", nlohmann::json::array()}};
    for (const ckpt::TreeMemberImage& m : result->members)
      out["members"].push_back(
          {{"pid", m.pid}, {"vpid", m.vpid}, {"parent", m.parent}, {"image", m.image_path}, {"bytes", m.bytes}});
    std::cout << out.dump() << "\n";
    return;
  }
  std::cout << result->manifest_path << " " << result->bytes << " bytes, " << result->members.size()
            << (result->members.size() == 1 ? " process" : " processes");
  if (result->zombies > 0) std::cout << " and " << result->zombies << " ended, not waited for";
  std::cout << "\n";
  for (const ckpt::TreeMemberImage& m : result->members)
    std::cout << "  " << m.pid << " " << m.image_path << " " << m.bytes << " bytes\n";
}

}  // namespace mosix::ctl
