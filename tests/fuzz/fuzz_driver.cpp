// Runs a fuzz function without libFuzzer (for g++ builds): over every file in
// CORPUS_DIR, then over COUNT random mutations of them drawn from a fixed
// seed, so that a failure is reproducible. A crash, a sanitizer report or an
// abort() in the fuzz function fails the test. Built once per target, with
// MOSIX_FUZZ_REPAIR naming the function that repairs an input's checksums
// (declared in the header MOSIX_FUZZ_REPAIR_HEADER) so that mutations reach
// the decoders.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include MOSIX_FUZZ_REPAIR_HEADER

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes mutate(const Bytes& in, std::mt19937_64& rng) {
  Bytes b = in;
  auto pick = [&](std::size_t n) { return n ? static_cast<std::size_t>(rng() % n) : 0; };
  int ops = 1 + static_cast<int>(rng() % 4);
  for (int k = 0; k < ops; ++k) {
    switch (rng() % 7) {
      case 0:  // flip a bit
        if (!b.empty()) b[pick(b.size())] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        break;
      case 1:  // set a byte to an interesting value
        if (!b.empty()) b[pick(b.size())] = std::array<std::uint8_t, 5>{0, 1, 0x7f, 0x80, 0xff}[rng() % 5];
        break;
      case 2:  // truncate
        b.resize(pick(b.size() + 1));
        break;
      case 3: {  // insert random bytes
        std::size_t at = pick(b.size() + 1);
        Bytes extra(1 + pick(16));
        for (auto& x : extra) x = static_cast<std::uint8_t>(rng());
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), extra.begin(), extra.end());
        break;
      }
      case 4: {  // duplicate a range
        if (b.empty()) break;
        std::size_t from = pick(b.size());
        std::size_t len = 1 + pick(std::min<std::size_t>(b.size() - from, 64));
        Bytes piece(b.begin() + static_cast<std::ptrdiff_t>(from), b.begin() + static_cast<std::ptrdiff_t>(from + len));
        std::size_t at = pick(b.size() + 1);
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), piece.begin(), piece.end());
        break;
      }
      case 5: {  // overwrite a 32-bit little-endian field with a boundary value
        if (b.size() < 4) break;
        std::size_t at = pick(b.size() - 3);
        std::uint32_t v = std::array<std::uint32_t, 6>{0, 1, 0xffffffff, 0x80000000, 4096, 1u << 20}[rng() % 6];
        for (int i = 0; i < 4; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
        break;
      }
      case 6:  // repair checksums so the decoders see the mutation
        MOSIX_FUZZ_REPAIR(b);
        break;
    }
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR COUNT SEED\n", argv[0]);
    return 2;
  }
  std::vector<Bytes> corpus;
  for (const auto& e : std::filesystem::directory_iterator(argv[1])) {
    std::ifstream f(e.path(), std::ios::binary);
    corpus.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "%s: no seeds in %s\n", argv[0], argv[1]);
    return 1;
  }
  long count = std::strtol(argv[2], nullptr, 10);
  std::mt19937_64 rng(std::strtoull(argv[3], nullptr, 10));
  for (const Bytes& b : corpus) LLVMFuzzerTestOneInput(b.data(), b.size());
  for (long i = 0; i < count; ++i) {
    Bytes b = mutate(corpus[rng() % corpus.size()], rng);
    LLVMFuzzerTestOneInput(b.data(), b.size());
  }
  std::printf("%s: %zu seeds and %ld mutations, no failure\n", argv[0], corpus.size(), count);
  return 0;
}
