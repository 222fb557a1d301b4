#include "runtime/daemon/node_seats_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <new>

#include "runtime/sys/errno_text.h"
#include "runtime/sys/shared_memory_dir.h"

namespace mosix {
namespace {

bool alive(std::int32_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

}  // namespace

Expected<std::unique_ptr<NodeSeatsFile>> NodeSeatsFile::create(int cores) {
  auto dir = sys::shared_memory_dir();
  if (!dir) return dir.error();
  std::string path = *dir + "/seats-" + std::to_string(::getpid());
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Error{"cannot create " + path + ": " + sys::errno_text(errno)};
  void* map = MAP_FAILED;
  if (::ftruncate(fd, sizeof(NodeSeats)) == 0) {
    map = ::mmap(nullptr, sizeof(NodeSeats), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  const int err = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    ::unlink(path.c_str());
    return Error{"cannot map " + path + ": " + sys::errno_text(err)};
  }
  auto* page = new (map) NodeSeats{};  // a new file reads as zeros: every seat free
  page->cores.store(cores, std::memory_order_relaxed);
  page->magic = kSeatsMagic;
  return std::unique_ptr<NodeSeatsFile>(new NodeSeatsFile(std::move(path), page));
}

NodeSeatsFile::~NodeSeatsFile() {
  ::munmap(page_, sizeof(NodeSeats));
  ::unlink(path_.c_str());
}

void NodeSeatsFile::set_cores(int cores) { page_->cores.store(cores, std::memory_order_release); }

void NodeSeatsFile::started(pid_t pid) { (void)give_seat(*page_, pid, alive); }

void NodeSeatsFile::probed(int runnable) { seats_probed(*page_, runnable, alive); }

}  // namespace mosix
