// The state of one PVM task under mosixrun (compat/pvm): its link to its
// node daemon's guest socket, its message buffers and the messages that
// arrived for it but were not received yet. One per process; the PVM API
// (libpvm.cpp, groups.cpp) is single-threaded, as PVM 3.4's is. The link
// survives checkpoints and moves: the agent carries it as a new socket at
// the same number, and the task attaches again to the node it runs on then
// (Task::reattach, docs/pvm.md "Checkpoints and moves").
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compat/pvm/order.h"
#include "compat/pvm/pack.h"
#include "runtime/core/protocol.h"

namespace mosix::pvm {

// Task -> task through the node daemons, which pass it on as any message:
// a TCP link to the sender is offered (remote.cpp; docs/pvm.md "Direct
// links"). Not a daemon message: only the two libraries read it.
inline constexpr std::uint32_t kTcpOffer = 0xffff0101u;

struct Buffer {
  Encoding enc = Encoding::kDefault;
  std::vector<std::uint8_t> data;
  std::size_t pos = 0;  // where the next unpack reads
  int src = -1;         // a received message's sender tid
  int tag = -1;
};

struct Arrived {
  int src = 0;  // tid (PVM's pvmd tid for a notification)
  int tag = 0;
  Encoding enc = Encoding::kDefault;
  std::vector<std::uint8_t> bytes;
  int bufid = 0;  // once pvm_probe made it a buffer
};

class Task {
 public:
  // Attaches to the node daemon (MOSIX_GUEST_SOCKET) on first use; a PVM
  // error code if this process is no guest of a job.
  int enroll();
  bool enrolled() const { return fd_ >= 0; }
  int tid() const { return tid_of_rank(rank_); }
  int rank() const { return rank_; }
  int parent() const { return parent_tid_; }
  const std::vector<int>& siblings() const { return siblings_; }
  const std::vector<std::string>& hosts() const { return hosts_; }
  int host_of_node(const std::string& name) const;
  void leave();
  // pvm_exit: what went on links to other nodes' tasks and was not
  // acknowledged goes again through the node daemon (the receiver drops
  // what it has), then leave().
  void exit();

  // Buffers: ids > 0.
  int new_buffer(Encoding enc);
  Buffer* buffer(int id);
  bool free_buffer(int id);
  int sbuf = 0, rbuf = 0;

  // Messages.
  bool send(int dest_rank, int tag, const Buffer& b);
  bool ask_home(std::uint32_t kind, int tag, std::vector<std::uint8_t> bytes = {});
  // The first waiting message matching (tid -1: any, tag -1: any); waits up
  // to `timeout_ms` for one (-1 forever, 0 not at all). Index into inbox.
  std::optional<std::size_t> match(int tid, int tag, int timeout_ms);
  std::deque<Arrived> inbox;
  // The home's answers.
  std::optional<GuestSpawnReply> spawn(const GuestSpawn& request);
  std::optional<GuestMessage> group_answer(std::uint32_t op, const std::string& name, int arg);
  // The home's next answer to this task (a group's or pvm_tasks'): one is asked at a time.
  std::optional<GuestMessage> home_answer();
  // pvm_notify(PvmTaskExit): the tag to deliver when `rank` ends.
  void watch_exit(int rank, int tag);
  // pvm_notify(PvmHostDelete): a message with `tag` from the pvmd tid and
  // the host's tid in it when node `node` (a pvm_config index) is lost.
  void watch_node(int node, int tag);
  // The job's running copies and spawned tasks, as the home knows them
  // (pvm_tasks); nothing if the home cannot be asked.
  struct Info {
    int rank, parent, node, pid;  // parent -1: a copy; node: a pvm_config index
    std::string name;
  };
  std::optional<std::vector<Info>> tasks();

 private:
  bool write_frame(const Frame& frame);
  bool reattach();
  // Reads what is there (waiting up to timeout_ms for something, or until
  // `out_fd` has room to write when it is >= 0); false once the link is gone.
  bool pump(int timeout_ms, int out_fd = -1);
  // Bytes read from the link: whole frames are taken; false (and the link
  // left) on garbage.
  bool take_bytes(const std::uint8_t* bytes, std::size_t n);
  struct InLink;
  // Whole frames at the start of `in` are taken (a direct link's, from
  // rank `from`, if it is >= 0; `link` counts what it took) and removed;
  // false on garbage.
  bool take_frames(std::vector<std::uint8_t>& in, int from, InLink* link = nullptr);
  void take(Message message);

  // Direct links to and from tasks of the same node (direct.cpp, docs/pvm.md
  // "Direct links"): one way each, a socketpair end the node daemon passed.
  // Between nodes a TCP connection the two tasks made (remote.cpp): the
  // sender keeps what it wrote there until the receiver acknowledges it,
  // and sends it again through the node daemons when the link ends.
  // A message goes on one when there is one, else through the node daemon;
  // the receiver orders both routes by the message numbers.
  struct OutLink {
    int fd = -1;
    bool ready = false;  // the receiver said it has its end (one byte back)
    bool tcp = false;
    std::deque<std::pair<std::uint64_t, Frame>> kept;  // (number, frame) not acknowledged yet
    std::vector<std::uint8_t> acks;                    // an acknowledgement read in part
  };
  struct InLink {
    int fd = -1;
    int from = -1;  // the sender's rank
    std::vector<std::uint8_t> in;
    bool tcp = false;
    std::uint64_t next = 0;  // the number after the last message taken from it
    std::uint64_t unacked = 0, unacked_bytes = 0;
  };
  // A listening TCP socket offered to a task of another node (kTcpOffer).
  struct Offer {
    int fd = -1;
    std::uint64_t nonce = 0;
    int taken = -1;  // a connection accepted whose hello has not come whole yet
  };
  // True if the frame went whole on a direct link to dest_rank (then a TCP
  // link keeps it: `frame` is moved from).
  bool send_direct(int dest_rank, Frame& frame, std::uint64_t seq);
  // Links to tasks of other nodes (remote.cpp).
  void offer_tcp(int dest_rank);
  void tcp_offered(const GuestMessage& m);
  bool accept_offer(int dest_rank);
  void close_offer(int dest_rank);
  void read_acks(int rank);
  // False if the link must end (an acknowledgement went in part).
  bool ack(InLink& l, bool now);
  std::map<int, Offer> offers_;
  void ask_direct(int dest_rank);
  void direct_offered(const GuestMessage& m);
  // Reads the link (recvmsg): descriptors that come with it wait in passed_fds_.
  ssize_t read_link(std::uint8_t* buf, std::size_t cap, int flags);
  int claim_passed(std::uint64_t ino);
  // Reads every direct link that poll found readable (revents[i] for in_links_[i]).
  void read_in_links(const std::vector<short>& revents);
  void close_out(int rank);
  void close_links();
  std::map<int, OutLink> out_links_;       // by receiver rank
  std::map<int, std::uint64_t> ask_after_;  // receiver rank -> messages to it before asking again
  std::vector<InLink> in_links_;
  std::deque<int> passed_fds_;

  int fd_ = -1;
  std::string socket_path_;  // the guest socket attached to
  int reattaches_ = 0;       // since the last byte read or frame written
  int rank_ = -1;
  int parent_tid_ = -23;  // PvmNoParent
  std::vector<int> siblings_;
  std::vector<std::string> hosts_;
  std::map<int, Buffer> buffers_;
  int next_buffer_ = 1;
  std::vector<std::uint8_t> in_;
  std::uint64_t next_request_ = 1;
  std::deque<GuestSpawnReply> spawn_replies_;
  std::deque<GuestMessage> group_answers_;
  std::map<int, std::vector<int>> exit_tags_;
  std::map<int, std::vector<int>> node_tags_;  // node -> tags of PvmHostDelete notifies
  // Order per sender: every message to a rank carries the sender's count of
  // messages to it so far; one that overtook an earlier one waits in order_.
  std::map<int, std::uint64_t> sent_to_;
  PerSenderOrder<Arrived> order_;
};

Task& task();

}  // namespace mosix::pvm
