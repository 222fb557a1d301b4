// The home node's end of guest output: bytes of (rank, stream) go to our own
// stdout or stderr, byte-exact, with mpirun's `[1,RANK]<stdout>:` prefix at
// each line start when tagging (whole lines only, so copies never mix within
// a line), and into DIR/1/rank.N/{stdout,stderr} for --output-filename.
// A PVM task's lines always get pvm's `[t40002] ` prefix, on our stdout.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "runtime/core/expected.h"
#include "runtime/sys/write_all.h"

namespace mosix {

class OutputRelay {
 public:
  OutputRelay(bool tag_output, std::string output_dir)
      : tag_(tag_output), output_dir_(std::move(output_dir)) {}
  ~OutputRelay();
  OutputRelay(const OutputRelay&) = delete;
  OutputRelay& operator=(const OutputRelay&) = delete;

  // Creates the --output-filename files of `rank` (no-op without it).
  Status open_files(int rank);
  // `is_stderr` selects the stream.
  void deliver(int rank, bool is_stderr, const char* data, size_t size);
  // The rank's streams ended: an unfinished tagged line is written as it is
  // (a PVM task's with a newline, and its `EOF` line under catchout).
  void finish(int rank);
  // Tags `rank`'s lines as mpirun tags process `vpid` of job `job`
  // ([job,vpid]): MPI_Comm_spawn's children are job 2, 3, ... (default: [1,rank]).
  void set_tag(int rank, int job, int vpid) { tags_[rank] = "[" + std::to_string(job) + "," + std::to_string(vpid) + "]"; }
  // `rank` is PVM task `tid`: each line of its output is written to our
  // stdout as `[t40002] line`, as pvm shows a task's output (the pvm
  // console, pvm_catchout). `catchout`: its spawner called pvm_catchout, so
  // `[t40002] BEGIN` comes now and `[t40002] EOF` after its last line.
  void set_pvm_task(int rank, int tid, bool catchout);

 private:
  struct Stream {
    std::string pending;  // unfinished line, when tagging
    int file_fd = -1;
  };
  Stream& stream(int rank, bool is_stderr) { return streams_[{rank, is_stderr}]; }
  void flush_line(int rank, bool is_stderr, Stream& s);

  bool tag_;
  std::string output_dir_;
  std::map<std::pair<int, bool>, Stream> streams_;
  std::map<int, std::string> tags_;
  struct PvmTask {
    std::string prefix;  // "[t40002] "
    bool catchout = false;
  };
  std::map<int, PvmTask> pvm_tasks_;
};

// If `fd` is a pipe that holds less than `size` bytes, make it hold `size`
// (F_SETPIPE_SZ; nothing happens where the system refuses).
void widen_pipe(int fd, size_t size);

}  // namespace mosix
