// mosix-restore IMAGE [--pages FILE] [--sockets FD]: turns this process into
// the one the image holds (or, given a tree's manifest, this process and
// forked ones into the tree's processes: tree.cpp). `mosix-restore --early FD
// --pages FILE` starts during a live migration's pre-copy and gets the image
// later (early.cpp). IMAGE "-" reads the image from standard input (see
// spool_stdin). FILE holds the pages of the image's pre-copied regions
// (kRegionPrecopied), each at its address: a live migration's target
// receives them while the process still runs at the source. FD is a unix
// socket the node daemon sends the image's forwarded sockets over
// (sockets.cpp, receive_forwarded).
//
// A static binary linked at kRestorerBase (reserved_range.h), far from anything a
// program maps, and with malloc kept to the brk heap next to it, so that the
// restorer's own memory never collides with the image's. It works in two
// phases:
//  1. Read the whole image, checking every checksum and record, and that it
//     can be restored here (CPU, kernel, files, offsets). Any problem: one
//     line on stderr and exit 2, with nothing touched.
//  2. Point of no return. Reopen the descriptors, switch to a stack in the
//     restorer's heap, unmap everything else, move the vDSO block to where
//     the program had it, map and fill every region, restore process state,
//     build one signal frame per thread on its own stack, clone the threads,
//     and leave through the trampoline (trampoline.S), which unmaps the
//     restorer and rt_sigreturns each thread into the program.
// The parts: image_load.cpp (reading), checks.cpp (phase 1's checks),
// files.cpp (descriptors and locks), memory.cpp (the address space),
// threads.cpp (process state, frames, timers, signals, the hand-over).
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <string>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/ckpt/restorer/reserved_range.h"
#include "runtime/ckpt/restorer/restorer.h"

extern "C" {
extern const std::ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));
}

namespace mosix::ckpt::restorer {

// A copy: argv lives on the stack that phase 2 unmaps.
char g_image_path[1024];

namespace {

constexpr std::size_t kPhaseTwoStack = 512 << 10;
constexpr std::uint32_t kRseqSig = 0x53053053;

// Phase 2, on a stack inside the restorer's heap. Never returns.
[[noreturn]] void phase_two(Plan* p) {
  // glibc registered an rseq area for this thread inside the restorer's TLS.
  // A thread has at most one registration, and the program's must replace
  // it; the restorer's memory also disappears at the end, and a registered
  // area that is unmapped gets the thread killed at its next preemption.
  if (&__rseq_size != nullptr && __rseq_size > 0) {
    std::uint64_t tp;
    asm("mov %%fs:0, %0" : "=r"(tp));
    syscall(SYS_rseq, tp + static_cast<std::uint64_t>(__rseq_offset), 32, 1 /* UNREGISTER */, kRseqSig);
  }
  load_memory(p);
  finish_tree(*p->img);
  set_mm_layout(*p->img);
  restore_process_state(*p->img);
  start_threads(p);
}

void call_on_stack(void (*fn)(Plan*), Plan* arg, void* top) {
  asm volatile(
      "mov %2, %%rsp\n\t"
      "call *%0\n\t"
      "ud2"
      :
      : "r"(fn), "D"(arg), "r"(top)
      : "memory");
  __builtin_unreachable();
}

}  // namespace

[[noreturn]] void refuse(const std::string& why) {
  std::string line = "mosix-restore: " + std::string(g_image_path) + ": " + why + "\n";
  ssize_t w = write(2, line.data(), line.size());
  (void)w;
  tree_refused();
  _exit(2);
}

// After the point of no return there is no process to go back to.
[[noreturn]] void die(const char* what, long err) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "mosix-restore: %s: restore failed after the point of no return: %s (%s)\n",
                   g_image_path, what, strerror(static_cast<int>(-err)));
  ssize_t w = write(2, buf, static_cast<std::size_t>(n));
  (void)w;
  syscall(SYS_exit_group, 2);
  __builtin_unreachable();
}

}  // namespace mosix::ckpt::restorer

int main(int argc, char** argv) {
  using namespace mosix::ckpt;
  using namespace mosix::ckpt::restorer;
  // All of malloc's memory from the brk heap, which sits right after the
  // restorer's image inside the reserved range: an mmap()ed chunk could land
  // where the program had memory.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  static std::string pages_path;
  int early_fd = -1;
  int first = 2;  // the first option after IMAGE (or after --early FD)
  bool usage = argc < 2;
  if (argc >= 3 && strcmp(argv[1], "--early") == 0) {
    char* end = nullptr;
    long v = strtol(argv[2], &end, 10);
    usage = end == argv[2] || *end != '\0' || v < 3 || v > 65535;
    early_fd = static_cast<int>(v);
    first = 3;
  }
  usage = usage || (argc - first) % 2 != 0;
  for (int i = first; !usage && i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--pages") == 0) {
      pages_path = argv[i + 1];
    } else if (strcmp(argv[i], "--sockets") == 0) {
      char* end = nullptr;
      long v = strtol(argv[i + 1], &end, 10);
      usage = end == argv[i + 1] || *end != '\0' || v < 3 || v > 65535;
      g_sockets_fd = static_cast<int>(v);
    } else {
      usage = true;
    }
  }
  usage = usage || (early_fd >= 0 && pages_path.empty());
  if (usage) {
    fprintf(stderr, "usage: mosix-restore IMAGE|- [--pages FILE] [--sockets FD]\n"
                    "       mosix-restore --early FD --pages FILE\n");
    return 2;
  }
  snprintf(g_image_path, sizeof g_image_path, "%s", argv[1]);
  auto heap = reinterpret_cast<std::uint64_t>(sbrk(0));
  if (heap < kRestorerBase || heap >= kReservedHigh)
    refuse("the restorer's heap at " + std::to_string(heap) + " is outside its reserved range");
  int fd;
  bool from_stdin = early_fd < 0 && strcmp(argv[1], "-") == 0;
  if (early_fd >= 0) {
    snprintf(g_image_path, sizeof g_image_path, "%s", "the migration's image");
    EarlyGo go = run_early(early_fd, pages_path);
    fd = go.image_fd;
    g_sockets_fd = go.sockets_fd;
  } else {
    if (from_stdin) snprintf(g_image_path, sizeof g_image_path, "%s", "standard input");
    fd = from_stdin ? spool_stdin() : open(argv[1], O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) refuse(strerror(errno));

  static Image img;
  if (!from_stdin && early_fd < 0 && is_tree_manifest(fd)) {
    if (argc != 2) refuse("a tree's image takes neither --pages nor --sockets");
    fd = start_tree(argv[1], fd, &img);
  } else {
    img = read_image(fd);
  }
  static OwnMaps own;
  read_own_maps(&own);
  check_restorable(img, own);
  for (const Region& g : img.regions) {
    if (!(g.rec.flags & kRegionPrecopied)) continue;
    if (pages_path.empty()) refuse("its region at " + hex(g.rec.start) + " was pre-copied, and no --pages file holds its pages");
    if (access(pages_path.c_str(), R_OK) != 0) refuse("cannot read the pre-copied pages " + pages_path + ": " + strerror(errno));
    break;
  }
  restore_session(img);
  int image_fd = place_files(img, fd);
  plan_file_maps(img);

  tree_barrier();
  // Point of no return.
  sigset_t all;
  sigfillset(&all);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, nullptr, 8);
  restore_pipes(img, image_fd);

  std::size_t tramp_code = static_cast<std::size_t>(mosix_tramp_end - mosix_tramp_begin);
  std::size_t code_len = (tramp_code + kPage - 1) & ~(kPage - 1);
  std::size_t data_len = kPage + ((img.threads.size() * sizeof(TrampThread) + kPage - 1) & ~(kPage - 1));
  void* t = mmap(reinterpret_cast<void*>(kTrampolineBase), code_len + data_len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (t == MAP_FAILED) die("mapping the trampoline", -errno);
  std::memcpy(t, mosix_tramp_begin, tramp_code);
  if (mprotect(t, code_len, PROT_READ | PROT_EXEC) != 0) die("mprotect of the trampoline", -errno);

  static Plan plan;
  plan.img = &img;
  plan.image_fd = image_fd;
  plan.pages_path = pages_path;
  plan.shared = reinterpret_cast<TrampShared*>(kTrampolineBase + code_len);
  plan.threads = reinterpret_cast<TrampThread*>(kTrampolineBase + code_len + kPage);
  std::size_t scratch_len = ReaderScratch::required_size();
  plan.scratch = new ReaderScratch;
  if (!plan.scratch->attach(aligned_alloc(64, (scratch_len + 63) & ~std::size_t{63}), scratch_len))
    die("allocating the reader's memory", -ENOMEM);
  auto* stack = static_cast<char*>(aligned_alloc(64, kPhaseTwoStack));
  // The snapshot must be the last thing before the switch: everything
  // outside the reserved range it lists is unmapped.
  read_own_maps(&plan.own);
  call_on_stack(phase_two, &plan, stack + kPhaseTwoStack - 64);
}
