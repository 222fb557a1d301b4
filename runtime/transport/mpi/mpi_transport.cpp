#include "runtime/transport/mpi/mpi_transport.h"

#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <thread>

namespace mosix {
namespace {

constexpr int kTag = 0x4d53;  // every frame travels with this tag on our own communicator
constexpr std::chrono::microseconds kFirstSleep{10};

std::atomic<bool> mpi_used{false};  // MPI can be initialized once per process

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<std::size_t>(len));
}

struct PendingSend {
  int dest;
  Frame frame;
};

}  // namespace

struct MpiTransport::State {
  Options options;
  int rank = 0;
  int size = 0;
  int event_fd = -1;
  std::thread thread;

  // Shared between the caller and the progress thread.
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<PendingSend> outbox;
  std::deque<Delivery> inbox;
  std::string failure;  // non-empty once broken
  bool stopping = false;
  bool closed = false;
  std::atomic<std::size_t> pending_bytes{0};
  std::vector<char> forgotten;  // forgotten[r]: rank r is gone (forget())

  // Progress thread only: sends to a forgotten rank never complete; their
  // requests and buffers are set aside here (MPI may still hold the buffer)
  // until MPI is finalized.
  std::vector<MPI_Request> abandoned;
  std::vector<Frame> abandoned_buffers;
  std::vector<int> in_flight_dest;

  // Progress thread only.
  MPI_Comm comm = MPI_COMM_NULL;
  std::vector<MPI_Request> requests;
  std::vector<Frame> in_flight;  // in_flight[i] is the buffer of requests[i]

  void signal() {
    const std::uint64_t one = 1;
    while (::write(event_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

  void fail(std::string message) {
    spdlog::error("MPI transport: {}", message);
    std::lock_guard lock(mutex);
    if (failure.empty()) failure = std::move(message);
    signal();
  }

  void deliver(int source, Frame frame) {
    std::lock_guard lock(mutex);
    const bool was_empty = inbox.empty();
    inbox.push_back(Delivery{source, std::move(frame)});
    if (was_empty) signal();
  }

  // One round: post queued sends, reap completed ones, receive what has come.
  // Returns false on an MPI failure; `progressed` says whether anything moved.
  bool round(bool& progressed) {
    std::deque<PendingSend> batch;
    {
      std::lock_guard lock(mutex);
      batch.swap(outbox);
    }
    for (auto& p : batch) {
      MPI_Request request;
      const int rc = MPI_Isend(p.frame.data(), static_cast<int>(p.frame.size()), MPI_BYTE, p.dest,
                               kTag, comm, &request);
      if (rc != MPI_SUCCESS) {
        fail("sending to rank " + std::to_string(p.dest) + " failed: " + mpi_error(rc));
        return false;
      }
      requests.push_back(request);
      in_flight.push_back(std::move(p.frame));
      in_flight_dest.push_back(p.dest);
      progressed = true;
    }
    if (!requests.empty()) {
      std::vector<int> done(requests.size());
      int count = 0;
      const int rc = MPI_Testsome(static_cast<int>(requests.size()), requests.data(), &count,
                                  done.data(), MPI_STATUSES_IGNORE);
      if (rc != MPI_SUCCESS) {
        fail("completing a send failed: " + mpi_error(rc));
        return false;
      }
      if (count > 0 && count != MPI_UNDEFINED) {
        progressed = true;
        std::size_t freed = 0;
        for (int i = 0; i < count; ++i) {
          auto& buffer = in_flight[static_cast<std::size_t>(done[static_cast<std::size_t>(i)])];
          freed += buffer.size();
          buffer = Frame{};
        }
        pending_bytes -= freed;
        // The completed (now MPI_REQUEST_NULL) slots go.
        keep_sends_if([this](std::size_t i) { return requests[i] != MPI_REQUEST_NULL; });
      }
    }
    abandon_sends_to_forgotten();
    for (;;) {
      int flag = 0;
      MPI_Message message;
      MPI_Status status;
      int rc = MPI_Improbe(MPI_ANY_SOURCE, kTag, comm, &flag, &message, &status);
      if (rc != MPI_SUCCESS) {
        fail("probing for messages failed: " + mpi_error(rc));
        return false;
      }
      if (!flag) break;
      int count = 0;
      MPI_Get_count(&status, MPI_BYTE, &count);
      Frame frame(static_cast<std::size_t>(count));
      rc = MPI_Mrecv(frame.data(), count, MPI_BYTE, &message, &status);
      if (rc != MPI_SUCCESS) {
        fail("receiving from rank " + std::to_string(status.MPI_SOURCE) + " failed: " + mpi_error(rc));
        return false;
      }
      deliver(status.MPI_SOURCE, std::move(frame));
      progressed = true;
    }
    return true;
  }

  // Sends to a rank that is gone would wait forever: out of the way.
  void abandon_sends_to_forgotten() {
    std::vector<char> gone;
    {
      std::lock_guard lock(mutex);
      gone = forgotten;
    }
    if (std::find(gone.begin(), gone.end(), 1) == gone.end()) return;
    std::size_t dropped = 0;
    keep_sends_if([&](std::size_t i) {
      if (!gone[static_cast<std::size_t>(in_flight_dest[i])]) return true;
      dropped += in_flight[i].size();
      abandoned.push_back(requests[i]);
      abandoned_buffers.push_back(std::move(in_flight[i]));
      return false;
    });
    pending_bytes -= dropped;
  }

  // Keeps the sends in flight for which keep(i) is true, in their order.
  template <typename Keep>
  void keep_sends_if(Keep keep) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      if (!keep(i)) continue;
      if (kept != i) {  // never self-move: that would free a buffer MPI still reads
        requests[kept] = requests[i];
        in_flight[kept] = std::move(in_flight[i]);
        in_flight_dest[kept] = in_flight_dest[i];
      }
      ++kept;
    }
    requests.resize(kept);
    in_flight.resize(kept);
    in_flight_dest.resize(kept);
  }

  // The communicator of the ranks still there: the job's, or, once some are
  // forgotten, a new one without them (collective over the survivors only;
  // every survivor forgot the same ranks).
  MPI_Comm survivors() {
    std::vector<int> gone;
    {
      std::lock_guard lock(mutex);
      for (int r = 0; r < size; ++r) {
        if (forgotten[static_cast<std::size_t>(r)]) gone.push_back(r);
      }
    }
    if (gone.empty()) return comm;
    MPI_Group all, alive;
    MPI_Comm_group(comm, &all);
    MPI_Group_excl(all, static_cast<int>(gone.size()), gone.data(), &alive);
    MPI_Comm out = MPI_COMM_NULL;
    const int rc = MPI_Comm_create_group(comm, alive, kTag + 1, &out);
    MPI_Group_free(&alive);
    MPI_Group_free(&all);
    if (rc != MPI_SUCCESS || out == MPI_COMM_NULL) {
      spdlog::warn("MPI transport: no communicator without the lost ranks ({}); closing without a barrier",
                   mpi_error(rc));
      return MPI_COMM_NULL;
    }
    return out;
  }

  // Wait for something to do: sleep an eighth of the time things have been
  // quiet (so a peer answering within t costs about t/8 more), at least
  // kFirstSleep, at most idle_poll_max; wake at once on a send. No spinning:
  // on a busy machine it starves the threads that do the copying.
  void idle(std::chrono::steady_clock::time_point quiet_since) {
    std::chrono::microseconds pause = options.idle_poll_max;
    if (!options.fixed_period) {
      const auto quiet = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - quiet_since);
      pause = std::clamp(quiet / 8, kFirstSleep, options.idle_poll_max);
    }
    std::unique_lock lock(mutex);
    wake.wait_for(lock, pause, [&] { return !outbox.empty() || stopping; });
  }

  void run() {
    auto quiet_since = std::chrono::steady_clock::now();
    for (;;) {
      bool progressed = false;
      if (!round(progressed)) return;
      bool stop;
      {
        std::lock_guard lock(mutex);
        stop = stopping && outbox.empty() && requests.empty();
      }
      if (stop) break;
      if (progressed) {
        quiet_since = std::chrono::steady_clock::now();
        continue;
      }
      // Sends in flight get the same backoff; each completion resets it.
      idle(quiet_since);
    }
    // Everyone's sends are complete once everyone has entered the barrier;
    // until then, keep receiving so that peers' sends can complete.
    MPI_Comm alive = survivors();
    MPI_Request barrier = MPI_REQUEST_NULL;
    int rc = alive == MPI_COMM_NULL ? MPI_SUCCESS : MPI_Ibarrier(alive, &barrier);
    if (rc != MPI_SUCCESS) return fail("closing: barrier failed: " + mpi_error(rc));
    for (quiet_since = std::chrono::steady_clock::now();;) {
      int done = 0;
      rc = MPI_Test(&barrier, &done, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) return fail("closing: barrier failed: " + mpi_error(rc));
      if (done) break;
      bool progressed = false;
      if (!round(progressed)) return;
      if (progressed) quiet_since = std::chrono::steady_clock::now();
      else idle(quiet_since);
    }
    bool progressed = false;
    if (!round(progressed)) return;  // what arrived just before the barrier closed
    if (alive != comm && alive != MPI_COMM_NULL) {
      // Open MPI 4.1's MPI_Finalize waits for every rank, the lost ones too
      // (seen hanging forever after sends to a lost rank were abandoned):
      // with a rank gone, the survivors' barrier above is the end; the
      // process exits without finalizing (mpirun, with --enable-recovery,
      // lets it).
      MPI_Comm_free(&alive);
      return;
    }
    MPI_Comm_free(&comm);
    rc = MPI_Finalize();
    if (rc != MPI_SUCCESS) fail("MPI_Finalize failed: " + mpi_error(rc));
  }

  // The progress thread's whole life: start MPI, report, run, finalize.
  void main(std::promise<std::string>& started) {
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return started.set_value("MPI_Init_thread failed: " + mpi_error(rc));
    if (provided < MPI_THREAD_FUNNELED) {
      return started.set_value("this MPI library offers no thread support (level " +
                               std::to_string(provided) + "); rebuild Open MPI with threads");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    if (rc != MPI_SUCCESS) return started.set_value("MPI_Comm_dup failed: " + mpi_error(rc));
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    forgotten.assign(static_cast<std::size_t>(size), 0);  // before the caller can send
    started.set_value("");
    run();
  }
};

Expected<std::unique_ptr<MpiTransport>> MpiTransport::create(const Options& options) {
  if (mpi_used.exchange(true)) {
    return make_error("an MPI transport was already created in this process; MPI starts once per "
                      "process: create one transport and share it");
  }
  auto state = std::make_unique<State>();
  state->options = options;
  state->event_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (state->event_fd < 0) {
    return make_error(std::string("MPI transport: cannot create an eventfd: ") + std::strerror(errno));
  }
  std::promise<std::string> started;
  auto result = started.get_future();
  // The progress thread takes no signals: the daemon's loop handles them.
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  State* s = state.get();
  state->thread = std::thread([s, &started] { s->main(started); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  const std::string error = result.get();
  if (!error.empty()) {
    state->thread.join();
    ::close(state->event_fd);
    return make_error("MPI transport: " + error);
  }
  spdlog::debug("MPI transport: rank {} of {}", state->rank, state->size);
  return std::unique_ptr<MpiTransport>(new MpiTransport(std::move(state)));
}

MpiTransport::MpiTransport(std::unique_ptr<State> state) : state_(std::move(state)) {}

MpiTransport::~MpiTransport() {
  if (!state_) return;
  (void)close();
  ::close(state_->event_fd);
}

int MpiTransport::rank() const { return state_->rank; }
int MpiTransport::size() const { return state_->size; }
int MpiTransport::event_fd() const { return state_->event_fd; }
std::size_t MpiTransport::pending_bytes() const { return state_->pending_bytes; }

Status MpiTransport::send(int dest, Frame frame) {
  if (dest < 0 || dest >= state_->size) {
    return make_error("send to rank " + std::to_string(dest) + ": no such rank (this job has ranks 0.." +
                      std::to_string(state_->size - 1) + ")");
  }
  if (frame.size() > kFrameHeaderSize + kMaxPayloadSize) {
    return make_error("send to rank " + std::to_string(dest) + ": frame of " +
                      std::to_string(frame.size()) + " bytes exceeds the limit; send large data in pieces");
  }
  {
    std::lock_guard lock(state_->mutex);
    if (!state_->failure.empty()) return make_error("MPI transport: " + state_->failure);
    if (state_->stopping) return make_error("send to rank " + std::to_string(dest) + ": the transport is closed");
    if (state_->forgotten[static_cast<std::size_t>(dest)]) return Status::Ok();  // gone: dropped
    state_->pending_bytes += frame.size();
    state_->outbox.push_back(PendingSend{dest, std::move(frame)});
  }
  state_->wake.notify_one();
  return Status::Ok();
}

Expected<std::vector<Delivery>> MpiTransport::receive() {
  std::uint64_t count;
  while (::read(state_->event_fd, &count, sizeof count) < 0 && errno == EINTR) {
  }
  std::lock_guard lock(state_->mutex);
  std::vector<Delivery> out(std::make_move_iterator(state_->inbox.begin()),
                            std::make_move_iterator(state_->inbox.end()));
  state_->inbox.clear();
  if (!state_->failure.empty()) {
    // Stays readable: the failure is permanent, and a caller handed frames
    // now must still hear of it on its next call.
    state_->signal();
    if (out.empty()) return make_error("MPI transport: " + state_->failure);
  }
  return out;
}

void MpiTransport::forget(int rank) {
  if (rank < 0 || rank >= state_->size || rank == state_->rank) return;
  {
    std::lock_guard lock(state_->mutex);
    state_->forgotten[static_cast<std::size_t>(rank)] = 1;
  }
  state_->wake.notify_one();
}

Status MpiTransport::close() {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->closed) return Status::Ok();
    state_->closed = true;
    state_->stopping = true;
  }
  state_->wake.notify_one();
  if (state_->thread.joinable()) state_->thread.join();
  std::lock_guard lock(state_->mutex);
  if (!state_->failure.empty()) return make_error("MPI transport: " + state_->failure);
  return Status::Ok();
}

}  // namespace mosix
