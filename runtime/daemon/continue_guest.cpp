#include "runtime/daemon/continue_guest.h"

#include <signal.h>

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>

#include "runtime/daemon/proc_stat_file.h"

namespace mosix {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

void watch_for_stop(std::shared_ptr<asio::steady_timer> timer, pid_t pid, int left) {
  timer->expires_after(std::chrono::milliseconds(10));
  timer->async_wait([timer, pid, left](error_code ec) {
    if (ec) return;
    const char state = process_state(pid);
    if (state == '?' || state == 'Z' || state == 'X') return;  // it ended
    if (state == 'T') ::kill(-pid, SIGCONT);
    if (left > 1) watch_for_stop(timer, pid, left - 1);
  });
}

}  // namespace

void continue_after_move(asio::io_context& io, pid_t pid) {
  ::kill(-pid, SIGCONT);
  watch_for_stop(std::make_shared<asio::steady_timer>(io), pid, 200);
}

}  // namespace mosix
