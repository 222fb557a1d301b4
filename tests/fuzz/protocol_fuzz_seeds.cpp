// Writes the protocol fuzz target's seed corpus into DIR: one real encoded
// frame of every message type (filled-in values: negative numbers, empty and
// long strings, binary bytes), a GuestOutput from the zero-copy encoder, and
// a stream of all of them back to back. Fails if a message type has no seed.
#include <sys/stat.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "runtime/core/protocol.h"

namespace {

using namespace mosix;

bool write_file(const std::string& path, const std::vector<std::uint8_t>& data) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  return std::fclose(f) == 0 && ok;
}

std::vector<Message> every_message() {
  Bytes binary(3000);
  for (std::size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<std::uint8_t>(i * 13 + 1);
  return {
      Hello{kProtocolVersion, "0.1.0", "vnode2", 2, 0.5, 8, 1ull << 34},
      HelloReject{"node vnode2 runs mosix 0.0.9"},
      LoadReport{{{0, 1.5, 1.0, 1ull << 30, 20, 4, -1.0}, {7, 0.0, 2.5, 0, 0, 1, 88.5}}},
      SpawnGuest{-3, {"/bin/prog", "", "two words"}, {"A=1", "MOSIX_RANK=3"}, "/work", kSpawnStdin | kSpawnRestore, 1ull << 20, ""},
      SpawnGuest{7, {"cc", "-c", "x.c"}, {"A=1"}, "/work", kSpawnBody | kSpawnStdin, 0, "/usr/bin/gcc-12"},
      GuestStarted{4, 99999, 1},
      GuestOutput{1, OutputStream::kStderr, Bytes{'o', 0, 'k', '\n'}},
      GuestStdin{0, binary, true},
      GuestSignal{kAllRanks, 10},
      GuestExited{2, 3, 0},
      Shutdown{""},
      ImageBegin{0x1122334455667788ull, 5, 1ull << 26},
      ImageChunk{0x1122334455667788ull, 4096, binary},
      ImageEnd{0x1122334455667788ull, 1ull << 26, false},
      ImageEnd{0x1122334455667788ull, 0, true},
      NodeLost{3, {{0, 1}, {6, 2}}},
      MigrateRequest{77, 6, 1, kSpawnPinned, 12.5},
      MigrateResult{77, 6, true, false, "", 0, 1, 4242, 1ull << 22, 350},
      OutputCredit{1, 65536},
      BalanceReport{1, {{0, "moving", "load 3.00 > 1.00"}, {2, "", ""}}},
      MigrateProgress{77, 6, MigratePhase::kRestore, 1 << 20, 1 << 22},
      OutputFds{2},
      MpiJobMap{{0, 0, 1, 2}, {"home", "vnode1", "node-07"}},
      FenceContribution{3, {0, 2, 5}, Bytes{98, 0, 1}},
      FenceRelease{3, {}, -1, {}},
      ModexRequest{0x0102030405060708ull, 6},
      ModexReply{0x0102030405060708ull, 0, {1, 2, 3}},
      NamePublish{9, {{"ocean", "tag#0$port", 2}, {"", "", 0}}},
      NameLookup{10, {"ocean", "sky"}, true},
      NameUnpublish{11, 2, {}},
      NameReply{10, -46, {{"ocean", "tag#0$port", 2}}},
      GuestAttach{4, 7},
      GuestSpawn{12, 3, 2, {"hello_other", "-v"}, {"PATH=/usr/bin"}, "/tmp", "vnode2", 0, ""},
      GuestSpawn{1ull << 63, 0, 1, {"povray", "+Ia.pov"}, {"PATH=/usr/bin"}, "/tmp", "", kGuestSpawnDeputy, "/usr/bin/povray"},
      GuestSpawnReply{12, 3, -2, "no such program", {5, 6}, {2, 1}},
      GuestMessage{5, 0, 7, -3, binary},
      StdinCredit{5, 65536},
      PtyResize{0, 50, 132},
      PrecopyPages{0x1122334455667788ull, 0x7ffff7a00000ull, binary, 0},
      PrecopyPages{0x1122334455667788ull, 0x7ffff7a00000ull, {}, 1ull << 30},
      SocketForward{2, 0, 1, 0, -1, false, true, 0, binary, {}},
      SocketForward{5, 3, (1ull << 63) | 9, 1, -1, false, false, 0, Bytes{2, 0, 0x1f, 0x90, 127, 0, 0, 1}, {}},
      PrecopyTaken{0x1122334455667788ull, 512ull << 20},
      HomeKill{7, 4, 2, -1234, 10, false, 0},
      HomeKill{7, 4, 2, 99999, 0, true, 3},
      HomeKill{7, 4, 2, 1234, 34, false, 0, 1240, true, -1, 0xfeedface},
      MpiSpawn{13, 0, {{3, {"worker", "-x"}, {"OMPI_PARENT_PORT=1.0:77"}, "/tmp", ""}, {1, {"other"}, {}, "", "vnode1"}}, {"PARENT_ROOT_PORT_NAME=tag#0$"}},
      MpiSpawnReply{13, -46, "no such program", "mosix.42.1"},
      MpiNamespace{"mosix.42.1", 4, {1, 2, 1, 0}, {3, 1}, 0, kSpawnPmi, {"PARENT_ROOT_PORT_NAME=tag#0$"}},
  };
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: protocol_fuzz_seeds DIR\n");
    return 2;
  }
  std::string dir = argv[1];
  mkdir(dir.c_str(), 0700);
  std::vector<std::uint8_t> stream;
  std::set<std::size_t> kinds;
  for (const Message& m : every_message()) {
    Frame f = encode_frame(m);
    kinds.insert(m.index());
    std::string name(message_type_name(message_type(m)));
    if (!write_file(dir + "/" + name + ".frame", f)) {
      std::fprintf(stderr, "protocol_fuzz_seeds: cannot write %s/%s.frame\n", dir.c_str(), name.c_str());
      return 1;
    }
    stream.insert(stream.end(), f.begin(), f.end());
  }
  if (kinds.size() != std::variant_size_v<Message>) {
    std::fprintf(stderr, "protocol_fuzz_seeds: %zu of %zu message types have a seed\n", kinds.size(),
                 std::variant_size_v<Message>);
    return 1;
  }
  const std::uint8_t out[] = {'h', 'i', '\n'};
  if (!write_file(dir + "/GuestOutput-view.frame", encode_guest_output(3, OutputStream::kStdout, out)) ||
      !write_file(dir + "/stream.frames", stream)) {
    std::fprintf(stderr, "protocol_fuzz_seeds: cannot write into %s\n", dir.c_str());
    return 1;
  }
  return 0;
}
