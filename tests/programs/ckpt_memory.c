/* ckpt_memory [STEPS]: rewrites many kinds of mappings step by step and checks
 * their contents against what it wrote: malloc blocks of many sizes (brk heap
 * and malloc's own mmaps), a big anonymous mapping with never-touched and
 * MADV_DONTNEED pages, PROT_NONE guard pages (they must still fault), a
 * MAP_GROWSDOWN region that keeps growing downwards, a 2 MiB-aligned region,
 * a private file mapping modified in memory (the file must stay unchanged), and
 * read-only mappings (they must still refuse writes). Prints ten progress lines
 * and "RESULT ckpt_memory <checksum> OK". Scratch file in $CKPT_TMPDIR.
 * Default 12000 steps. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "ckpt_common.h"

#define NAME "ckpt_memory"
#define PAGE 4096UL
#define WORDS_PER_PAGE (PAGE / 8)

#define BIG_PAGES 8192UL /* 32 MiB */
#define HEAP_BLOCKS 600
#define GUARD_PAGES 16UL
#define GROW_INITIAL (16 * PAGE)
#define GROW_STEP (16 * PAGE)
#define GROW_ROOM (768UL << 10)
#define GROW_RESERVE (2UL << 20)
#define HUGE_SIZE (2UL << 20)
#define FILE_PAGES 256UL
#define RO_PAGES 16UL

static uint64_t pattern_word(uint64_t region, uint64_t unit, uint64_t gen, uint64_t i) {
  uint64_t x = region * 0x9e3779b97f4a7c15ULL ^ unit * 0xc2b2ae3d27d4eb4fULL ^
               gen * 0x165667b19e3779f9ULL ^ i * 0xff51afd7ed558ccdULL;
  x ^= x >> 31;
  return x;
}

static void fill_words(uint64_t* w, size_t n, uint64_t region, uint64_t unit, uint64_t gen) {
  for (size_t i = 0; i < n; ++i) w[i] = pattern_word(region, unit, gen, i);
}

static int check_words(const uint64_t* w, size_t n, uint64_t region, uint64_t unit, uint64_t gen) {
  for (size_t i = 0; i < n; ++i)
    if (w[i] != pattern_word(region, unit, gen, i)) return 0;
  return 1;
}

static void fill_bytes(unsigned char* p, size_t n, uint64_t unit, uint64_t gen) {
  uint64_t s = unit * 0x9e3779b97f4a7c15ULL + gen + 1;
  for (size_t i = 0; i < n; ++i) p[i] = (unsigned char)(s >> ((i & 7) * 8)) ^ (unsigned char)i;
}

static int check_bytes(const unsigned char* p, size_t n, uint64_t unit, uint64_t gen) {
  uint64_t s = unit * 0x9e3779b97f4a7c15ULL + gen + 1;
  for (size_t i = 0; i < n; ++i)
    if (p[i] != ((unsigned char)(s >> ((i & 7) * 8)) ^ (unsigned char)i)) return 0;
  return 1;
}

/* Probing an address: a SIGSEGV while probing_ is set jumps back. */
static sigjmp_buf probe_env_;
static volatile sig_atomic_t probing_ = 0;

static void on_segv(int sig) {
  if (probing_) siglongjmp(probe_env_, 1);
  signal(sig, SIG_DFL);
  raise(sig);
}

static int can_read(const volatile unsigned char* p) {
  if (sigsetjmp(probe_env_, 1)) {
    probing_ = 0;
    return 0;
  }
  probing_ = 1;
  unsigned char c = *p;
  (void)c;
  probing_ = 0;
  return 1;
}

static int can_write(volatile unsigned char* p, unsigned char value) {
  if (sigsetjmp(probe_env_, 1)) {
    probing_ = 0;
    return 0;
  }
  probing_ = 1;
  *p = value;
  probing_ = 0;
  return 1;
}

struct Block {
  unsigned char* p;
  size_t size;
  uint64_t gen;
};

static struct Block heap_[HEAP_BLOCKS];
static uint64_t* big_;
static uint32_t big_gen_[BIG_PAGES]; /* 0: zero page (never written or dropped) */
static unsigned char* guard_;
static unsigned char* grow_top_; /* one past the end of the growsdown region */
static unsigned char* grow_low_; /* lowest address written so far */
static uint64_t* huge_;
static uint32_t huge_gen_[HUGE_SIZE / PAGE];
static unsigned char* fmap_;
static const unsigned char* fmap_ro_;
static uint32_t fmap_gen_[FILE_PAGES]; /* 0: still the file's bytes */
static int file_fd_;
static char file_path_[4096];
static const uint64_t* ro_;

static int guard_is_none(unsigned long page) { return page % 3 == 2; }

static size_t heap_size_for(uint64_t r) {
  static const size_t sizes[] = {1, 8, 24, 40, 100, 255, 1000, 4096, 5000, 12000, 40000, 70000};
  return sizes[r % (sizeof sizes / sizeof sizes[0])] + (size_t)(r >> 32) % 64;
}

static void heap_setup(uint64_t* rng) {
  for (int i = 0; i < HEAP_BLOCKS; ++i) {
    /* A few blocks above malloc's mmap threshold, kept for the whole run. */
    size_t size = (i % 100 == 7) ? (256UL << 10) + (size_t)i * 8 : heap_size_for(ckpt_next(rng));
    heap_[i].p = malloc(size);
    if (heap_[i].p == NULL) ckpt_fail(NAME, "malloc(%zu) failed", size);
    heap_[i].size = size;
    heap_[i].gen = 1;
    fill_bytes(heap_[i].p, size, (uint64_t)i, 1);
  }
}

static void heap_step(uint64_t* rng) {
  for (int k = 0; k < 8; ++k) {
    int i = (int)(ckpt_next(rng) % HEAP_BLOCKS);
    if (!check_bytes(heap_[i].p, heap_[i].size, (uint64_t)i, heap_[i].gen))
      ckpt_fail(NAME, "heap block %d (%zu bytes) lost its contents", i, heap_[i].size);
    heap_[i].gen++;
    if (i % 100 != 7) {
      free(heap_[i].p);
      size_t size = heap_size_for(ckpt_next(rng));
      heap_[i].p = malloc(size);
      if (heap_[i].p == NULL) ckpt_fail(NAME, "malloc(%zu) failed", size);
      heap_[i].size = size;
    }
    fill_bytes(heap_[i].p, heap_[i].size, (uint64_t)i, heap_[i].gen);
  }
}

static void big_step(uint64_t* rng, long step) {
  for (int k = 0; k < 48; ++k) {
    unsigned long page = ckpt_next(rng) % BIG_PAGES;
    if (page % 4 == 3) continue; /* never touched: must stay zero */
    uint64_t* w = big_ + page * WORDS_PER_PAGE;
    if (big_gen_[page] != 0 && !check_words(w, WORDS_PER_PAGE, 1, page, big_gen_[page]))
      ckpt_fail(NAME, "big mapping page %lu lost its contents", page);
    big_gen_[page]++;
    fill_words(w, WORDS_PER_PAGE, 1, page, big_gen_[page]);
  }
  if (step % 97 == 0) {
    /* Drop a run of pages: they must read back as zero. */
    unsigned long first = ckpt_next(rng) % (BIG_PAGES - 8);
    if (madvise(big_ + first * WORDS_PER_PAGE, 8 * PAGE, MADV_DONTNEED) != 0)
      ckpt_fail(NAME, "madvise(MADV_DONTNEED): %s", strerror(errno));
    for (unsigned long p = first; p < first + 8; ++p) big_gen_[p] = 0;
  }
}

static void huge_step(uint64_t* rng) {
  for (int k = 0; k < 4; ++k) {
    unsigned long page = ckpt_next(rng) % (HUGE_SIZE / PAGE);
    uint64_t* w = huge_ + page * WORDS_PER_PAGE;
    if (!check_words(w, WORDS_PER_PAGE, 2, page, huge_gen_[page]))
      ckpt_fail(NAME, "2 MiB-aligned region page %lu lost its contents", page);
    huge_gen_[page]++;
    fill_words(w, WORDS_PER_PAGE, 2, page, huge_gen_[page]);
  }
}

static unsigned char file_byte(size_t offset) { return (unsigned char)((offset * 131) ^ (offset >> 9)); }

static void fmap_step(uint64_t* rng) {
  unsigned long page = ckpt_next(rng) % FILE_PAGES;
  if (page % 3 != 0) return; /* the others keep the file's bytes */
  unsigned char* p = fmap_ + page * PAGE;
  if (fmap_gen_[page] != 0 && !check_bytes(p, PAGE, 1000 + page, fmap_gen_[page]))
    ckpt_fail(NAME, "private file mapping page %lu lost its contents", page);
  fmap_gen_[page]++;
  fill_bytes(p, PAGE, 1000 + page, fmap_gen_[page]);
}

static void guard_setup(void) {
  guard_ = mmap(NULL, GUARD_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (guard_ == MAP_FAILED) ckpt_fail(NAME, "mmap guard region: %s", strerror(errno));
  for (unsigned long p = 0; p < GUARD_PAGES; ++p) {
    if (guard_is_none(p)) {
      if (mprotect(guard_ + p * PAGE, PAGE, PROT_NONE) != 0)
        ckpt_fail(NAME, "mprotect(PROT_NONE): %s", strerror(errno));
    } else {
      fill_bytes(guard_ + p * PAGE, PAGE, 2000 + p, 1);
    }
  }
}

static void guard_check(void) {
  for (unsigned long p = 0; p < GUARD_PAGES; ++p) {
    unsigned char* a = guard_ + p * PAGE + 17;
    if (guard_is_none(p)) {
      if (can_read(a)) ckpt_fail(NAME, "guard page %lu is readable, expected PROT_NONE", p);
    } else if (!check_bytes(guard_ + p * PAGE, PAGE, 2000 + p, 1)) {
      ckpt_fail(NAME, "page %lu between guard pages lost its contents", p);
    }
  }
}

/* The growsdown region grows into GROW_ROOM of free space below it, and
 * below that lies a PROT_NONE placeholder. The room is smaller than the
 * kernel's stack guard gap (1 MiB), so no later mmap can land in it, and the
 * gap is not enforced against an inaccessible neighbour, so growth may use
 * all of it. */
static void grow_setup(void) {
  unsigned char* base = mmap(NULL, GROW_RESERVE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) ckpt_fail(NAME, "mmap placeholder: %s", strerror(errno));
  unsigned char* top = base + GROW_RESERVE;
  unsigned char* g = mmap(top - GROW_INITIAL, GROW_INITIAL, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
  if (g == MAP_FAILED) ckpt_fail(NAME, "mmap(MAP_GROWSDOWN): %s", strerror(errno));
  if (munmap(g - GROW_ROOM, GROW_ROOM) != 0) ckpt_fail(NAME, "munmap growth room: %s", strerror(errno));
  grow_top_ = top;
  grow_low_ = g;
  for (unsigned char* p = grow_low_; p < grow_top_; p += PAGE)
    fill_bytes(p, PAGE, 3000 + (uint64_t)(grow_top_ - p) / PAGE, 1);
}

static int has_growsdown_flag(const void* addr) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == NULL) ckpt_fail(NAME, "open /proc/self/smaps: %s", strerror(errno));
  char line[512];
  int inside = 0, found = 0;
  uintptr_t a = (uintptr_t)addr;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      inside = a >= lo && a < hi;
    } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
      found = strstr(line, " gd") != NULL;
      break;
    }
  }
  fclose(f);
  return found;
}

static void grow_more(void) {
  unsigned char* low = grow_low_ - GROW_STEP;
  if (grow_top_ - low > (ptrdiff_t)(GROW_INITIAL + GROW_ROOM)) return;
  for (unsigned char* p = grow_low_ - PAGE; p >= low; p -= PAGE) {
    if (!can_write(p, 1)) ckpt_fail(NAME, "MAP_GROWSDOWN region did not grow below %zu KiB",
                                    (size_t)(grow_top_ - p - PAGE) / 1024);
    fill_bytes(p, PAGE, 3000 + (uint64_t)(grow_top_ - p) / PAGE, 1);
  }
  grow_low_ = low;
  if (!has_growsdown_flag(grow_low_)) ckpt_fail(NAME, "region lost its MAP_GROWSDOWN flag (no 'gd' in smaps)");
}

static void grow_check(void) {
  for (unsigned char* p = grow_low_; p < grow_top_; p += PAGE)
    if (!check_bytes(p, PAGE, 3000 + (uint64_t)(grow_top_ - p) / PAGE, 1))
      ckpt_fail(NAME, "MAP_GROWSDOWN page %zu KiB below the top lost its contents",
                (size_t)(grow_top_ - p) / 1024);
}

static void file_setup(void) {
  snprintf(file_path_, sizeof file_path_, "%s/ckpt_memory.XXXXXX", ckpt_tmpdir());
  file_fd_ = mkstemp(file_path_);
  if (file_fd_ < 0) ckpt_fail(NAME, "mkstemp in %s: %s", ckpt_tmpdir(), strerror(errno));
  unsigned char buf[PAGE];
  for (unsigned long p = 0; p < FILE_PAGES; ++p) {
    for (size_t i = 0; i < PAGE; ++i) buf[i] = file_byte(p * PAGE + i);
    if (write(file_fd_, buf, PAGE) != (ssize_t)PAGE) ckpt_fail(NAME, "write %s: %s", file_path_, strerror(errno));
  }
  fmap_ = mmap(NULL, FILE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, file_fd_, 0);
  if (fmap_ == MAP_FAILED) ckpt_fail(NAME, "mmap private file: %s", strerror(errno));
  fmap_ro_ = mmap(NULL, 64 * PAGE, PROT_READ, MAP_PRIVATE, file_fd_, 32 * PAGE);
  if (fmap_ro_ == MAP_FAILED) ckpt_fail(NAME, "mmap read-only file: %s", strerror(errno));
  /* The descriptor is closed: the mappings alone keep the file in use. */
  close(file_fd_);
}

static void file_check(void) {
  for (unsigned long p = 0; p < FILE_PAGES; ++p) {
    const unsigned char* m = fmap_ + p * PAGE;
    if (fmap_gen_[p] != 0) {
      if (!check_bytes(m, PAGE, 1000 + p, fmap_gen_[p]))
        ckpt_fail(NAME, "private file mapping page %lu lost its in-memory changes", p);
    } else {
      for (size_t i = 0; i < PAGE; ++i)
        if (m[i] != file_byte(p * PAGE + i))
          ckpt_fail(NAME, "private file mapping page %lu differs from the file", p);
    }
  }
  for (size_t i = 0; i < 64 * PAGE; ++i)
    if (fmap_ro_[i] != file_byte(32 * PAGE + i)) ckpt_fail(NAME, "read-only file mapping differs from the file");
  if (can_write((unsigned char*)fmap_ro_ + 5, 0)) ckpt_fail(NAME, "read-only file mapping accepted a write");
  int fd = open(file_path_, O_RDONLY);
  if (fd < 0) ckpt_fail(NAME, "reopen %s: %s", file_path_, strerror(errno));
  unsigned char buf[PAGE];
  for (unsigned long p = 0; p < FILE_PAGES; ++p) {
    if (pread(fd, buf, PAGE, (off_t)(p * PAGE)) != (ssize_t)PAGE) ckpt_fail(NAME, "read %s", file_path_);
    for (size_t i = 0; i < PAGE; ++i)
      if (buf[i] != file_byte(p * PAGE + i))
        ckpt_fail(NAME, "the file under a private mapping changed at page %lu", p);
  }
  close(fd);
}

static void ro_setup(void) {
  uint64_t* w = mmap(NULL, RO_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (w == MAP_FAILED) ckpt_fail(NAME, "mmap read-only region: %s", strerror(errno));
  for (unsigned long p = 0; p < RO_PAGES; ++p) fill_words(w + p * WORDS_PER_PAGE, WORDS_PER_PAGE, 4, p, 1);
  if (mprotect(w, RO_PAGES * PAGE, PROT_READ) != 0) ckpt_fail(NAME, "mprotect(PROT_READ): %s", strerror(errno));
  ro_ = w;
}

static void ro_check(void) {
  for (unsigned long p = 0; p < RO_PAGES; ++p)
    if (!check_words(ro_ + p * WORDS_PER_PAGE, WORDS_PER_PAGE, 4, p, 1))
      ckpt_fail(NAME, "read-only page %lu lost its contents", p);
  if (can_write((unsigned char*)ro_ + PAGE + 3, 0)) ckpt_fail(NAME, "read-only mapping accepted a write");
}

static void full_check(void) {
  for (int i = 0; i < HEAP_BLOCKS; ++i)
    if (!check_bytes(heap_[i].p, heap_[i].size, (uint64_t)i, heap_[i].gen))
      ckpt_fail(NAME, "heap block %d lost its contents", i);
  for (unsigned long p = 0; p < BIG_PAGES; ++p) {
    const uint64_t* w = big_ + p * WORDS_PER_PAGE;
    if (big_gen_[p] == 0) {
      for (size_t i = 0; i < WORDS_PER_PAGE; ++i)
        if (w[i] != 0) ckpt_fail(NAME, "big mapping page %lu should be zero", p);
    } else if (!check_words(w, WORDS_PER_PAGE, 1, p, big_gen_[p])) {
      ckpt_fail(NAME, "big mapping page %lu lost its contents", p);
    }
  }
  for (unsigned long p = 0; p < HUGE_SIZE / PAGE; ++p)
    if (!check_words(huge_ + p * WORDS_PER_PAGE, WORDS_PER_PAGE, 2, p, huge_gen_[p]))
      ckpt_fail(NAME, "2 MiB-aligned region page %lu lost its contents", p);
  if (((uintptr_t)huge_ & (HUGE_SIZE - 1)) != 0) ckpt_fail(NAME, "2 MiB-aligned region moved");
  guard_check();
  grow_check();
  file_check();
  ro_check();
}

static uint64_t state_sum(void) {
  uint64_t h = 0;
  for (int i = 0; i < HEAP_BLOCKS; ++i) h = ckpt_mix_bytes(ckpt_mix(h, heap_[i].size), heap_[i].p, heap_[i].size);
  h = ckpt_mix_bytes(h, big_, BIG_PAGES * PAGE);
  h = ckpt_mix_bytes(h, huge_, HUGE_SIZE);
  h = ckpt_mix_bytes(h, fmap_, FILE_PAGES * PAGE);
  h = ckpt_mix_bytes(h, grow_low_, (size_t)(grow_top_ - grow_low_));
  h = ckpt_mix_bytes(h, ro_, RO_PAGES * PAGE);
  return h;
}

int main(int argc, char** argv) {
  long steps = ckpt_steps(NAME, argc, argv, 12000);
  ckpt_print("%s start steps=%ld\n", NAME, steps);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_segv;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) != 0) ckpt_fail(NAME, "sigaction(SIGSEGV): %s", strerror(errno));

  uint64_t rng = 0x1234567887654321ULL;
  heap_setup(&rng);

  big_ = mmap(NULL, BIG_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (big_ == MAP_FAILED) ckpt_fail(NAME, "mmap big region: %s", strerror(errno));

  unsigned char* raw = mmap(NULL, 2 * HUGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) ckpt_fail(NAME, "mmap 4 MiB: %s", strerror(errno));
  unsigned char* aligned = (unsigned char*)(((uintptr_t)raw + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1));
  if (aligned > raw) munmap(raw, (size_t)(aligned - raw));
  if (aligned + HUGE_SIZE < raw + 2 * HUGE_SIZE)
    munmap(aligned + HUGE_SIZE, (size_t)(raw + 2 * HUGE_SIZE - aligned - HUGE_SIZE));
  madvise(aligned, HUGE_SIZE, MADV_HUGEPAGE);
  huge_ = (uint64_t*)aligned;
  for (unsigned long p = 0; p < HUGE_SIZE / PAGE; ++p) {
    huge_gen_[p] = 1;
    fill_words(huge_ + p * WORDS_PER_PAGE, WORDS_PER_PAGE, 2, p, 1);
  }

  guard_setup();
  file_setup();
  ro_setup();
  grow_setup();

  for (long step = 1; step <= steps; ++step) {
    heap_step(&rng);
    big_step(&rng, step);
    huge_step(&rng);
    fmap_step(&rng);
    if (ckpt_is_tenth(step, steps)) {
      grow_more();
      guard_check();
      ro_check();
      ckpt_print("%s step %ld/%ld sum=%016llx\n", NAME, step, steps, (unsigned long long)state_sum());
    }
  }
  full_check();
  uint64_t sum = state_sum();
  unlink(file_path_);
  ckpt_result(NAME, sum);
  return 0;
}
