// ckpt_cxx [ROUNDS]: C++ runtime state a checkpoint must carry. Each round a
// pool of three std::threads runs twelve tasks; each task builds text from
// words, counts them in a std::map<std::string, int>, sorts a std::vector,
// formats through std::ostringstream and parses back through
// std::istringstream, and throws and catches exceptions along the way (one
// task per round lets its exception travel through its std::future to main).
// Workers keep a thread_local std::string that they check every task. Main
// combines the results in task order, so the output does not depend on
// scheduling. One line per round on std::cout, then
// "RESULT ckpt_cxx <checksum> OK". Default 24 rounds.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <future>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ckpt_common.h"

namespace {

constexpr const char* kName = "ckpt_cxx";
constexpr int kTasks = 12;
constexpr int kWorkers = 3;
constexpr int kWords = 25000;

class ParseError : public std::runtime_error {
 public:
  ParseError(const std::string& word, int code) : std::runtime_error("cannot parse " + word), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

class TaskFailed : public std::logic_error {
 public:
  explicit TaskFailed(int task) : std::logic_error("task " + std::to_string(task) + " failed on purpose") {}
};

// Runs tasks in the order they were submitted, on kWorkers threads.
class Pool {
 public:
  Pool() {
    for (int i = 0; i < kWorkers; ++i) threads_.emplace_back([this, i] { run(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  std::future<uint64_t> submit(std::function<uint64_t()> fn) {
    std::packaged_task<uint64_t()> task(std::move(fn));
    auto result = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(task));
    }
    wake_.notify_one();
    return result;
  }

 private:
  void run(int id);

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::packaged_task<uint64_t()>> queue_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

thread_local std::string worker_name;
thread_local int worker_tasks = 0;

void Pool::run(int id) {
  worker_name = "worker-" + std::to_string(id) + std::string(40, '.');
  const std::string expected = worker_name;
  const std::string* where = &worker_name;
  for (;;) {
    std::packaged_task<uint64_t()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
    ++worker_tasks;
    if (worker_name != expected || &worker_name != where)
      ckpt_fail(kName, "thread_local string of worker %d changed", id);
  }
}

std::string make_word(uint64_t* rng) {
  static const char* const syllables[] = {"ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "xe", "du", "vo"};
  std::string w;
  const int n = 1 + static_cast<int>(ckpt_next(rng) % 4);
  for (int i = 0; i < n; ++i) w += syllables[ckpt_next(rng) % 11];
  return w;
}

int parse_word(const std::string& w) {
  if (w.size() == 6 && w.find("xe") != std::string::npos) throw ParseError(w, static_cast<int>(w[0]));
  int v = 0;
  for (char c : w) v = v * 31 + c;
  return v;
}

uint64_t run_task(long round, int task) {
  uint64_t rng = ckpt_mix(static_cast<uint64_t>(round), static_cast<uint64_t>(task)) | 1;
  std::string text;
  for (int i = 0; i < kWords; ++i) {
    if (i) text += ' ';
    text += make_word(&rng);
  }
  std::map<std::string, int> counts;
  std::istringstream words(text);
  std::string w;
  uint64_t h = 0;
  int caught = 0;
  while (words >> w) {
    ++counts[w];
    try {
      h = ckpt_mix(h, static_cast<uint64_t>(parse_word(w)));
    } catch (const ParseError& e) {
      ++caught;
      h = ckpt_mix(h, static_cast<uint64_t>(e.code()) + std::string(e.what()).size());
    }
  }
  std::vector<std::pair<int, std::string>> by_count;
  for (const auto& [word, n] : counts) by_count.emplace_back(-n, word);
  std::sort(by_count.begin(), by_count.end());
  std::ostringstream out;
  for (size_t i = 0; i < by_count.size() && i < 50; ++i)
    out << std::setw(12) << by_count[i].second << ' ' << std::hex << -by_count[i].first << std::dec << '\n';
  std::istringstream back(out.str());
  std::string word;
  int n = 0;
  size_t lines = 0;
  while (back >> word >> std::hex >> n >> std::dec) {
    if (word != by_count[lines].second || n != -by_count[lines].first)
      ckpt_fail(kName, "round %ld task %d: formatted line %zu did not parse back", round, task, lines);
    h = ckpt_mix(h, std::hash<std::string>{}(word) + static_cast<uint64_t>(n));
    ++lines;
  }
  h = ckpt_mix(ckpt_mix(h, counts.size()), static_cast<uint64_t>(caught));
  if (task == static_cast<int>(round % kTasks)) throw TaskFailed(task);
  return h;
}

// Exceptions thrown and caught in a loop on the main thread, nested and
// rethrown; returns how many were caught.
int exception_loop(long round) {
  int caught = 0;
  for (int i = 0; i < 300; ++i) {
    try {
      try {
        if (i % 3 == 0) throw ParseError("x" + std::to_string(i), i);
        if (i % 3 == 1) throw std::out_of_range(std::to_string(round));
        std::vector<int> v(3);
        (void)v.at(static_cast<size_t>(i));
      } catch (const std::out_of_range&) {
        ++caught;
        std::throw_with_nested(std::runtime_error("outer"));
      }
    } catch (const ParseError& e) {
      caught += e.code() == i ? 1 : 1000;
    } catch (const std::runtime_error& e) {
      try {
        std::rethrow_if_nested(e);
      } catch (const std::exception&) {
        ++caught;
      }
    }
  }
  return caught;
}

}  // namespace

int main(int argc, char** argv) {
  const long rounds = ckpt_steps(kName, argc, argv, 24);
  std::cout << kName << " start rounds=" << rounds << std::endl;
  uint64_t total = 0;
  {
    Pool pool;
    for (long r = 1; r <= rounds; ++r) {
      std::vector<std::future<uint64_t>> results;
      for (int t = 0; t < kTasks; ++t) results.push_back(pool.submit([r, t] { return run_task(r, t); }));
      const int caught = exception_loop(r);
      if (caught != 498) ckpt_fail(kName, "round %ld: exception loop caught %d, expected 498", r, caught);
      uint64_t round_sum = 0;
      int failed = 0;
      for (int t = 0; t < kTasks; ++t) {
        try {
          round_sum = ckpt_mix(round_sum, results[static_cast<size_t>(t)].get());
        } catch (const TaskFailed& e) {
          ++failed;
          round_sum = ckpt_mix(round_sum, std::string(e.what()).size());
        }
      }
      if (failed != 1) ckpt_fail(kName, "round %ld: %d tasks failed, expected 1", r, failed);
      total = ckpt_mix(total, round_sum);
      std::cout << kName << " round " << r << '/' << rounds << " sum=" << std::hex << std::setw(16)
                << std::setfill('0') << round_sum << std::dec << std::setfill(' ') << std::endl;
    }
  }
  std::ostringstream line;
  line << "RESULT " << kName << ' ' << std::hex << std::setw(16) << std::setfill('0') << total << " OK";
  std::cout << line.str() << std::endl;
  return 0;
}
