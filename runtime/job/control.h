// A job's control socket: mosixctl asks a running job (mosixrun) questions
// and gives it orders, one JSON object per line each way. The socket lives in
// the user's 0700 runtime directory; a process of another user is refused
// (SO_PEERCRED) and told so.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/core/expected.h"
#include "runtime/job/job_registry.h"
#include "runtime/job/job_view.h"

namespace mosix {

// Answers one request; the reply should carry "ok": true/false and, when
// false, "error": a sentence for the user.
using ControlHandler = std::function<nlohmann::json(const nlohmann::json& request)>;
// For requests that take a while (a migration): the handler answers by
// calling the reply function once, now or later, from the job's io_context.
using ControlReply = std::function<void(const nlohmann::json& reply)>;
using AsyncControlHandler = std::function<void(const nlohmann::json& request, ControlReply reply)>;

class ControlServer {
 public:
  // Listens on `path` inside the io_context of the job.
  static Expected<std::unique_ptr<ControlServer>> start(boost::asio::io_context& io,
                                                        const std::string& path,
                                                        ControlHandler handler);
  static Expected<std::unique_ptr<ControlServer>> start(boost::asio::io_context& io,
                                                        const std::string& path,
                                                        AsyncControlHandler handler);
  ~ControlServer();
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  explicit ControlServer(std::unique_ptr<Impl> impl, std::string path);
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

// The directory for a job's sockets: <runtime dir>/job-<id>, created 0700.
Expected<std::string> job_socket_dir(const std::string& job_id);

// Sends one request to a job and waits for its reply, up to timeout_ms.
Expected<nlohmann::json> control_request(const JobRecord& job, const nlohmann::json& request,
                                         int timeout_ms = 30000);

// The job's guests (`ps`) and nodes (`nodes`), read into their views. A reply
// that says no is an error with the job's own sentence.
Expected<std::vector<GuestView>> request_guests(const JobRecord& job);
Expected<std::vector<NodeView>> request_nodes(const JobRecord& job);

// The job mosixctl should talk to: the one named by `job_id`, or the only
// running one. Errors say what to do (no job running; several: use --job).
Expected<JobRecord> pick_job(const std::string& job_id);

}  // namespace mosix
