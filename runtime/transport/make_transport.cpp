// The one place that chooses a Transport implementation.
#include <unistd.h>

#include <cstdlib>

#include "runtime/transport/local/local_transport.h"
#include "runtime/transport/socket/socket_transport.h"
#include "runtime/transport/transport.h"
#ifdef MOSIX_WITH_MPI
#include "runtime/transport/mpi/mpi_transport.h"
#endif

namespace mosix {
namespace {

bool started_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

}  // namespace

Expected<std::vector<int>> listen_for_socket_group(const std::string& dir, int size) {
  std::vector<int> fds;
  for (int rank = 0; rank + 1 < size; ++rank) {
    auto fd = SocketTransport::listen_socket(dir, rank, size);
    if (!fd) {
      for (int open : fds) ::close(open);
      return fd.error();
    }
    fds.push_back(*fd);
  }
  fds.push_back(-1);
  return fds;
}

void remove_socket_group(const std::string& dir, int size) {
  for (int rank = 0; rank + 1 < size; ++rank) ::unlink(SocketTransport::socket_path(dir, rank).c_str());
}

Expected<std::unique_ptr<Transport>> make_transport(const TransportOptions& options) {
  TransportKind kind = options.kind;
  if (kind == TransportKind::kAuto) kind = started_by_mpirun() ? TransportKind::kMpi : TransportKind::kLocal;
  if (kind == TransportKind::kLocal) {
    auto group = LocalTransport::create_group(1);
    if (!group) return group.error();
    return std::unique_ptr<Transport>(std::move(group->front()));
  }
  if (kind == TransportKind::kSocket) {
    auto sockets = SocketTransport::create(SocketTransport::Options{
        options.rank, options.size, options.socket_dir, options.listen_fd});
    if (!sockets) return sockets.error();
    return std::unique_ptr<Transport>(std::move(*sockets));
  }
#ifdef MOSIX_WITH_MPI
  auto mpi = MpiTransport::create();
  if (!mpi) return mpi.error();
  return std::unique_ptr<Transport>(std::move(*mpi));
#else
  return make_error("this mosixrun was built without Open MPI (MOSIX_MPI=OFF): it can run jobs "
                    "on the home node only; rebuild with -DMOSIX_MPI=ON for a cluster");
#endif
}

}  // namespace mosix
