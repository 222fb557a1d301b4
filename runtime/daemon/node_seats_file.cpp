#include "runtime/daemon/node_seats_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <new>

#include "runtime/sys/errno_text.h"

namespace mosix {
namespace {

bool alive(std::int32_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

}  // namespace

// A memfd, named to the guests by its /proc path: it goes with the daemon,
// however the daemon ends (a file in /dev/shm would be left by a SIGKILL).
Expected<std::unique_ptr<NodeSeatsFile>> NodeSeatsFile::create(int cores) {
  const int fd = ::memfd_create("mosix-seats", MFD_CLOEXEC);
  if (fd < 0) return Error{"cannot make the seats page: memfd_create: " + sys::errno_text(errno)};
  void* map = MAP_FAILED;
  if (::ftruncate(fd, sizeof(NodeSeats)) == 0) {
    map = ::mmap(nullptr, sizeof(NodeSeats), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  if (map == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    return Error{"cannot map the seats page: " + sys::errno_text(err)};
  }
  auto* page = new (map) NodeSeats{};  // a new memfd reads as zeros: every seat free
  page->cores.store(cores, std::memory_order_relaxed);
  page->magic = kSeatsMagic;
  std::string path = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd);
  return std::unique_ptr<NodeSeatsFile>(new NodeSeatsFile(std::move(path), fd, page));
}

NodeSeatsFile::~NodeSeatsFile() {
  ::munmap(page_, sizeof(NodeSeats));
  ::close(fd_);
}

void NodeSeatsFile::started(pid_t pid) { (void)give_seat(*page_, pid, alive); }

void NodeSeatsFile::probed(int runnable) { seats_probed(*page_, runnable, alive); }

}  // namespace mosix
