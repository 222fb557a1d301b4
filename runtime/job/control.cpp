#include "runtime/job/control.h"

#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <list>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/daemon/frame_socket.h"
#include "runtime/sys/runtime_dir.h"
#include "runtime/sys/write_all.h"

namespace mosix {

namespace asio = boost::asio;
using boost::system::error_code;

struct ControlServer::Impl {
  struct Client {
    std::unique_ptr<asio::posix::stream_descriptor> sd;
    std::array<char, 4096> buf{};
    std::string pending;
  };
  asio::io_context& io;
  AsyncControlHandler handler;
  std::unique_ptr<asio::posix::stream_descriptor> listen_sd;
  std::list<Client> clients;

  Impl(asio::io_context& io_context, AsyncControlHandler h) : io(io_context), handler(std::move(h)) {}

  void accept() {
    listen_sd->async_wait(asio::posix::stream_descriptor::wait_read, [this](error_code ec) {
      if (ec) return;
      int fd = ::accept4(listen_sd->native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        auto uid = peer_uid(fd);
        if (!uid || *uid != ::getuid()) {
          std::string no = nlohmann::json{{"ok", false},
                                          {"error", "this job belongs to another user (uid " +
                                                        std::to_string(::getuid()) + ")"}}
                               .dump() +
                           "\n";
          [[maybe_unused]] ssize_t n = ::send(fd, no.data(), no.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          ::close(fd);
        } else {
          clients.emplace_back();
          Client& c = clients.back();
          c.sd = std::make_unique<asio::posix::stream_descriptor>(io, fd);
          read(std::prev(clients.end()));
        }
      }
      accept();
    });
  }

  void read(std::list<Client>::iterator it) {
    it->sd->async_read_some(asio::buffer(it->buf), [this, it](error_code ec, size_t n) {
      if (n > 0) {
        it->pending.append(it->buf.data(), n);
        size_t nl;
        while ((nl = it->pending.find('\n')) != std::string::npos) {
          std::string line = it->pending.substr(0, nl);
          it->pending.erase(0, nl + 1);
          // The reply may come after the client is gone: it owns a copy of the fd.
          std::shared_ptr<int> fd(new int(::fcntl(it->sd->native_handle(), F_DUPFD_CLOEXEC, 0)), [](int* p) {
            if (*p >= 0) ::close(*p);
            delete p;
          });
          auto answered = std::make_shared<bool>(false);
          ControlReply reply = [fd, answered](const nlohmann::json& r) {
            if (*answered || *fd < 0) return;
            *answered = true;
            std::string out = r.dump() + "\n";
            sys::write_all(*fd, out.data(), out.size());
          };
          try {
            handler(nlohmann::json::parse(line), reply);
          } catch (const std::exception& e) {
            reply({{"ok", false}, {"error", std::string("bad request: ") + e.what()}});
          }
        }
      }
      if (ec || it->pending.size() > (1u << 20)) {
        clients.erase(it);
        return;
      }
      read(it);
    });
  }
};

ControlServer::ControlServer(std::unique_ptr<Impl> impl, std::string path)
    : impl_(std::move(impl)), path_(std::move(path)) {}

ControlServer::~ControlServer() { ::unlink(path_.c_str()); }

Expected<std::unique_ptr<ControlServer>> ControlServer::start(asio::io_context& io,
                                                              const std::string& path,
                                                              ControlHandler handler) {
  return start(io, path, AsyncControlHandler([handler = std::move(handler)](const nlohmann::json& r,
                                                                           ControlReply reply) {
                 reply(handler(r));
               }));
}

Expected<std::unique_ptr<ControlServer>> ControlServer::start(asio::io_context& io,
                                                              const std::string& path,
                                                              AsyncControlHandler handler) {
  auto fd = listen_unix(path);
  if (!fd) return fd.error();
  auto impl = std::make_unique<Impl>(io, std::move(handler));
  impl->listen_sd = std::make_unique<asio::posix::stream_descriptor>(io, *fd);
  impl->accept();
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl), path));
}

Expected<std::string> job_socket_dir(const std::string& job_id) {
  auto dir = sys::runtime_dir();
  if (!dir) return dir.error();
  std::string path = *dir + "/job-" + job_id;
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error("cannot create " + path + ": " + std::strerror(errno));
  }
  ::chmod(path.c_str(), 0700);
  return path;
}

Expected<nlohmann::json> control_request(const JobRecord& job, const nlohmann::json& request,
                                         int timeout_ms) {
  if (job.control_socket.empty()) {
    return make_error("job " + job.id + " has no control socket");
  }
  auto fd = connect_unix(job.control_socket);
  if (!fd) return make_error("cannot reach job " + job.id + ": " + fd.error().message);
  std::string line = request.dump() + "\n";
  sys::write_all(*fd, line.data(), line.size());
  std::string reply;
  char buf[4096];
  while (reply.find('\n') == std::string::npos) {
    pollfd p{*fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) {
      ::close(*fd);
      return make_error("job " + job.id + " did not answer within " + std::to_string(timeout_ms / 1000) + " s");
    }
    ssize_t n = ::read(*fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(*fd);
  if (reply.empty()) return make_error("job " + job.id + " closed the connection without answering");
  try {
    return nlohmann::json::parse(reply.substr(0, reply.find('\n')));
  } catch (const std::exception& e) {
    return make_error("job " + job.id + " answered garbage: " + e.what());
  }
}

namespace {

// The list under `key` of the reply to `cmd`, each entry read by `read`.
template <typename View, typename Read>
Expected<std::vector<View>> request_list(const JobRecord& job, const char* cmd, const char* key, Read read) {
  auto reply = control_request(job, {{"cmd", cmd}});
  if (!reply) return reply.error();
  if (!reply->is_object() || !reply->value("ok", false)) {
    std::string why = reply->is_object() ? reply->value("error", "") : "";
    return make_error("job " + job.id + " refused '" + cmd + "'" + (why.empty() ? "" : ": " + why));
  }
  const nlohmann::json& list = (*reply)[key];
  if (!list.is_array()) return make_error("job " + job.id + " answered '" + cmd + "' without a list of " + key);
  std::vector<View> out;
  out.reserve(list.size());
  for (const nlohmann::json& entry : list) {
    auto view = read(entry);
    if (!view) return view.error();
    out.push_back(std::move(*view));
  }
  return out;
}

}  // namespace

Expected<std::vector<GuestView>> request_guests(const JobRecord& job) {
  return request_list<GuestView>(job, "ps", "guests", guest_view_from_json);
}

Expected<std::vector<NodeView>> request_nodes(const JobRecord& job) {
  return request_list<NodeView>(job, "nodes", "nodes", node_view_from_json);
}

Expected<JobRecord> pick_job(const std::string& job_id) {
  std::vector<JobRecord> jobs = list_jobs();
  if (!job_id.empty()) {
    for (const JobRecord& j : jobs) {
      if (j.id == job_id) return j;
    }
    return make_error("no running job " + job_id + " of yours: see mosixctl status");
  }
  if (jobs.empty()) return make_error("no job of yours is running on this node");
  if (jobs.size() > 1) {
    std::string ids;
    for (const JobRecord& j : jobs) ids += (ids.empty() ? "" : ", ") + j.id;
    return make_error(std::to_string(jobs.size()) + " jobs are running (" + ids +
                      "): pick one with --job ID");
  }
  return jobs.front();
}

}  // namespace mosix
