// Checks the MPI transport under a real mpirun; run by
// tests/integration/transport_mpi_test.sh. Usage:
//   transport_mpi_check every-type   rank 0 sends every message type to every
//                                    rank, which echoes it back unchanged
//   transport_mpi_check order        every rank sends numbered frames to every
//                                    rank, itself included; order per sender holds
//   transport_mpi_check large        64 MiB streamed 0->1 in 1 MiB ImageChunks
//                                    while the last rank sends one 64 MiB frame to 0
//   transport_mpi_check version R    rank R says Hello in protocol version+1;
//                                    rank 0 must refuse it and no other, and
//                                    prints its own version and the refusal
// Rank 0 prints "transport_mpi_check MODE: ok" on success. Any failure prints
// "FAIL: ..." and exits 1.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "runtime/transport/transport.h"

namespace mosix {
namespace {

[[noreturn]] void fail(const Transport& t, const std::string& what) {
  std::fprintf(stderr, "FAIL (rank %d): %s\n", t.rank(), what.c_str());
  std::exit(1);
}

void check(Transport& t, const Status& s, const char* what) {
  if (!s.ok()) fail(t, std::string(what) + ": " + s.error().message);
}

// Blocks until one frame arrives; keeps the rest for later calls.
class Inbox {
 public:
  explicit Inbox(Transport& t) : t_(t) {}
  Delivery next() {
    while (queue_.empty()) {
      auto in = receive_wait(t_, -1);
      if (!in) fail(t_, "receive: " + in.error().message);
      for (auto& d : *in) queue_.push_back(std::move(d));
    }
    Delivery d = std::move(queue_.front());
    queue_.erase(queue_.begin());
    return d;
  }
  Message next_message(int* source = nullptr) {
    Delivery d = next();
    if (source) *source = d.source;
    auto m = decode_delivery(d);
    if (!m) fail(t_, m.error().message);
    return std::move(*m);
  }

 private:
  Transport& t_;
  std::vector<Delivery> queue_;
};

std::vector<Message> every_message(int rank) {
  Bytes binary(100000);
  for (std::size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<std::uint8_t>(i * 13 + rank);
  return {
      Hello{kProtocolVersion, "0.1.0", "node-" + std::to_string(rank), static_cast<std::uint32_t>(rank),
            1.5, 8, 1ull << 34},
      HelloReject{"no"},
      LoadReport{{{0, 0.25, 1.0, 1ull << 30, 10}, {2, 3.5, 2.0, 0, 99999}}},
      SpawnGuest{rank, {"./app", "x y", ""}, {"A=1", "B="}, "/tmp", kSpawnStdin, 123, ""},
      GuestStarted{rank, 4242, 1},
      GuestOutput{rank, OutputStream::kStdout, binary},
      GuestStdin{0, Bytes{'a', 0, 'b'}, true},
      GuestSignal{kAllRanks, 10},
      GuestExited{rank, 3, 0},
      Shutdown{"bye"},
      ImageBegin{77, rank, 5},
      ImageChunk{77, 0, binary},
      ImageEnd{77, 5},
      NodeLost{3, {}},
  };
}

int every_type(Transport& t, Inbox& inbox) {
  if (t.rank() == 0) {
    for (int peer = 0; peer < t.size(); ++peer) {
      for (const Message& m : every_message(peer)) {
        check(t, send_message(t, peer, m), "send");
        int source = -1;
        Message echo = inbox.next_message(&source);
        if (source != peer) fail(t, "echo from rank " + std::to_string(source) + ", expected " + std::to_string(peer));
        if (echo != m) fail(t, std::string(message_type_name(message_type(m))) + " came back changed from rank " + std::to_string(peer));
      }
    }
    for (int peer = 1; peer < t.size(); ++peer) check(t, send_message(t, peer, Shutdown{"end"}), "send");
    return 0;
  }
  for (;;) {
    int source = -1;
    Message m = inbox.next_message(&source);
    if (source != 0) fail(t, "unexpected sender " + std::to_string(source));
    if (m == Message{Shutdown{"end"}}) return 0;
    check(t, send_message(t, 0, m), "echo");
  }
}

int order(Transport& t, Inbox& inbox) {
  constexpr int kCount = 2000;
  for (int seq = 0; seq < kCount; ++seq) {
    for (int dest = 0; dest < t.size(); ++dest) {
      // Varying sizes, so that small eager frames and large ones interleave.
      GuestOutput out{t.rank(), OutputStream::kStdout, Bytes(seq % 97 == 0 ? 200000 : seq % 7)};
      out.bytes.resize(out.bytes.size() + 4);
      for (int b = 0; b < 4; ++b) out.bytes[out.bytes.size() - 4 + b] = static_cast<std::uint8_t>(seq >> (8 * b));
      check(t, send_message(t, dest, out), "send");
    }
  }
  std::map<int, int> next;
  for (int received = 0; received < kCount * t.size(); ++received) {
    int source = -1;
    const Message m = inbox.next_message(&source);
    const auto& out = std::get<GuestOutput>(m);
    int seq = 0;
    for (int b = 0; b < 4; ++b) seq |= out.bytes[out.bytes.size() - 4 + b] << (8 * b);
    if (out.rank != source) fail(t, "frame claims rank " + std::to_string(out.rank) + " but came from " + std::to_string(source));
    if (seq != next[source]) {
      fail(t, "from rank " + std::to_string(source) + ": frame " + std::to_string(seq) + " arrived where " +
                  std::to_string(next[source]) + " was due");
    }
    ++next[source];
  }
  return 0;
}

std::uint8_t pattern(std::uint64_t offset) { return static_cast<std::uint8_t>((offset * 2654435761u) >> 13); }

int large(Transport& t, Inbox& inbox) {
  constexpr std::uint64_t kTotal = 64ull << 20;
  constexpr std::uint64_t kPiece = 1ull << 20;
  const int last = t.size() - 1;
  if (t.size() < 3) fail(t, "large needs 3 ranks");
  if (t.rank() == 0) {
    check(t, send_message(t, 1, ImageBegin{1, 0, kTotal}), "send");
    for (std::uint64_t off = 0; off < kTotal; off += kPiece) {
      ImageChunk chunk{1, off, Bytes(kPiece)};
      for (std::uint64_t i = 0; i < kPiece; ++i) chunk.bytes[i] = pattern(off + i);
      check(t, send_message(t, 1, chunk), "send");
    }
    check(t, send_message(t, 1, ImageEnd{1, kTotal}), "send");
    // Meanwhile `last` sends one 64 MiB frame; then 1 confirms its stream.
    bool got_big = false;
    bool got_confirm = false;
    while (!got_big || !got_confirm) {
      int source = -1;
      Message m = inbox.next_message(&source);
      if (source == last && std::holds_alternative<ImageChunk>(m)) {
        const auto& c = std::get<ImageChunk>(m);
        if (c.bytes.size() != kTotal) fail(t, "the single large frame has " + std::to_string(c.bytes.size()) + " bytes");
        for (std::uint64_t i = 0; i < kTotal; i += 4099) {
          if (c.bytes[i] != pattern(i + 5)) fail(t, "the single large frame differs at byte " + std::to_string(i));
        }
        got_big = true;
      } else if (source == 1 && std::holds_alternative<Shutdown>(m)) {
        if (std::get<Shutdown>(m).reason != "stream ok") fail(t, "rank 1: " + std::get<Shutdown>(m).reason);
        got_confirm = true;
      } else {
        fail(t, "unexpected " + std::string(message_type_name(message_type(m))) + " from rank " + std::to_string(source));
      }
    }
    return 0;
  }
  if (t.rank() == last) {
    ImageChunk big{2, 0, Bytes(kTotal)};
    for (std::uint64_t i = 0; i < kTotal; ++i) big.bytes[i] = pattern(i + 5);
    check(t, send_message(t, 0, big), "send");
  }
  if (t.rank() == 1) {
    Message first = inbox.next_message();
    if (!std::holds_alternative<ImageBegin>(first)) fail(t, "stream does not start with ImageBegin");
    std::uint64_t expected_offset = 0;
    std::string verdict = "stream ok";
    for (;;) {
      Message m = inbox.next_message();
      if (std::holds_alternative<ImageEnd>(m)) {
        if (expected_offset != kTotal) verdict = "stream ended after " + std::to_string(expected_offset) + " bytes";
        break;
      }
      const auto& c = std::get<ImageChunk>(m);
      if (c.offset != expected_offset) {
        verdict = "chunk at offset " + std::to_string(c.offset) + " where " + std::to_string(expected_offset) + " was due";
        break;
      }
      for (std::uint64_t i = 0; i < c.bytes.size(); ++i) {
        if (c.bytes[i] != pattern(c.offset + i)) {
          verdict = "stream differs at byte " + std::to_string(c.offset + i);
          break;
        }
      }
      expected_offset += c.bytes.size();
    }
    check(t, send_message(t, 0, Shutdown{verdict}), "send");
  }
  return 0;
}

int version(Transport& t, Inbox& inbox, int old_rank) {
  Hello hello{kProtocolVersion, "0.1.0", "node-" + std::to_string(t.rank()),
              static_cast<std::uint32_t>(t.rank()), 1.0, 2, 1ull << 30};
  if (t.rank() == old_rank) {
    hello.protocol_version = kProtocolVersion + 1;
    hello.mosix_version = "9.9.9";
    check(t, t.send(0, make_frame(MessageType::kHello, encode_payload(hello), kProtocolVersion + 1)), "send");
  } else {
    check(t, send_message(t, 0, hello), "send");
  }
  if (t.rank() == 0) {
    std::printf("this daemon speaks protocol version %d\n", kProtocolVersion);
    // Answer after every Hello is in: our own answer must not overtake a Hello.
    int refused = 0;
    std::vector<std::pair<int, Message>> answers;
    for (int i = 0; i < t.size(); ++i) {
      Delivery d = inbox.next();
      auto m = decode_delivery(d);
      if (m.ok() && !std::holds_alternative<Hello>(*m)) fail(t, "expected a Hello from rank " + std::to_string(d.source));
      Status verdict = m.ok() ? check_hello(std::get<Hello>(*m), "0.1.0") : Status(m.error());
      if (verdict.ok()) {
        answers.emplace_back(d.source, Shutdown{"welcome"});
        continue;
      }
      std::printf("refused rank %d: %s\n", d.source, verdict.error().message.c_str());
      if (d.source != old_rank) fail(t, "refused rank " + std::to_string(d.source) + ", which speaks our version");
      ++refused;
      answers.emplace_back(d.source, HelloReject{verdict.error().message});
    }
    if (refused != 1) fail(t, "rank " + std::to_string(old_rank) + " was not refused");
    for (const auto& [dest, answer] : answers) check(t, send_message(t, dest, answer), "send");
  }
  Message answer = inbox.next_message();
  const bool rejected = std::holds_alternative<HelloReject>(answer);
  if (rejected != (t.rank() == old_rank)) fail(t, rejected ? "rejected though current" : "accepted though old");
  return 0;
}

int run(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  auto made = make_transport({TransportKind::kMpi});
  if (!made) {
    std::fprintf(stderr, "FAIL: %s\n", made.error().message.c_str());
    return 1;
  }
  Transport& t = **made;
  Inbox inbox(t);
  int rc;
  if (mode == "every-type") rc = every_type(t, inbox);
  else if (mode == "order") rc = order(t, inbox);
  else if (mode == "large") rc = large(t, inbox);
  else if (mode == "version" && argc > 2) rc = version(t, inbox, std::atoi(argv[2]));
  else fail(t, "usage: transport_mpi_check every-type|order|large|version RANK");
  check(t, t.close(), "close");
  if (rc == 0 && t.rank() == 0) std::printf("transport_mpi_check %s: ok\n", mode.c_str());
  return rc;
}

}  // namespace
}  // namespace mosix

// Under AddressSanitizer: Open MPI's plugins leak at MPI_Finalize and are
// unloaded by then, so LeakSanitizer can neither blame nor suppress them.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }


int main(int argc, char** argv) { return mosix::run(argc, argv); }
