#include "runtime/ckpt/format/image_file.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace mosix::ckpt {

Status to_status(const ImageStatus& s) {
  if (s.ok()) return Status::Ok();
  return make_error(s.message());
}

Status to_status(const ImageStatus& s, const std::string& context) {
  if (s.ok()) return Status::Ok();
  return make_error(context + ": " + s.message());
}

Expected<ImageSummary> verify_image_file(const std::string& path) {
  ImageSummary summary;
  if (ImageStatus s = verify_image_path(path.c_str(), &summary); !s) return make_error(path + ": " + s.message());
  return summary;
}

namespace {

struct Following {
  int fd;
  const std::atomic<bool>* written;
};

// A read of the file being written: at its current end, waits for more
// unless the writer is done. `written` is read before the read, so a 0 after
// it was set is the true end.
std::int64_t following_read(void* context, void* buf, std::size_t len) {
  auto* f = static_cast<Following*>(context);
  for (;;) {
    bool done = f->written->load(std::memory_order_acquire);
    ssize_t n = ::read(f->fd, buf, len);
    if (n > 0) return n;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (done) return 0;
    timespec pause{0, 200 * 1000};
    nanosleep(&pause, nullptr);
  }
}

}  // namespace

ImageFollower::ImageFollower(const std::string& path) : path_(path), result_(make_error("not checked")) {
  thread_ = std::thread([this] {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      result_ = make_error(path_ + ": cannot open: " + std::string(std::strerror(errno)));
      return;
    }
    Following f{fd, &written_};
    ReaderScratch scratch;
    ImageSummary summary;
    ImageStatus s = scratch.map();
    if (s) s = verify_image(Source{&f, following_read}, &scratch, true, &summary);
    scratch.unmap();
    ::close(fd);
    if (!s) {
      result_ = make_error(path_ + ": " + s.message());
    } else {
      result_ = summary;
    }
  });
}

ImageFollower::~ImageFollower() {
  written_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

Expected<ImageSummary> ImageFollower::finish(std::uint64_t written_bytes) {
  written_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
  if (result_ && result_->bytes != written_bytes)
    return make_error(path_ + ": the image holds " + std::to_string(result_->bytes) + " bytes, the agent wrote " +
                      std::to_string(written_bytes));
  return result_;
}

std::string default_image_dir(const char* xdg_state_home, const char* home) {
  if (xdg_state_home && xdg_state_home[0] == '/') return std::string(xdg_state_home) + "/mosix";
  if (home && home[0] == '/') return std::string(home) + "/.local/state/mosix";
  return {};
}

}  // namespace mosix::ckpt
