/* precopy_writers threads|churn|fork|hugepage DONE_FILE [MAX_SECONDS]: a guest whose memory
 * changes while a pre-copy moves it (docs/migration.md), checking its own
 * result at the end. Prints "precopy_writers ready", works until DONE_FILE
 * exists (looked for between steps), then checks and prints
 * "RESULT precopy_writers MODE OK" (exit 0) or "FAIL precopy_writers: ..."
 * (exit 1). After MAX_SECONDS (default 600) without DONE_FILE it fails too.
 *
 * threads: 4 threads each rewrite their own 8 MiB, page after page in
 * rounds, the first word of a page holding the pattern XOR the round that
 * wrote it; at any moment a thread's pages before its cursor hold its round
 * and the others the round before, which the check holds them to (a page a
 * move brought back stale fails it).
 * churn: one thread keeps replacing mappings (32 slots, each an mmap of 1 to
 * 256 pages filled with a pattern of the slot and its generation, published,
 * then the old one unmapped) and moving the program break up and down
 * (sbrk, the heap filled likewise), so regions appear, vanish and change
 * size between pre-copy rounds; the check reads every slot and the heap.
 * fork: threads, while the main thread forks a child every 20 ms that execs
 * /bin/true and is waited for: a fork makes every private page
 * copy-on-write in the parent, whose writers then copy the pages they
 * write. Each copy must count as written for the next round (the kernel's
 * write tracking follows the page through the copy), or a move brings the
 * page back stale; the check is the threads'.
 * hugepage: threads, and 32 MiB asked for transparent huge pages
 * (MADV_HUGEPAGE), filled once: after the moves it must hold its pattern and
 * at least half the huge pages it had before them (AnonHugePages in
 * /proc/self/smaps; a move that put its pages in 4 KiB pages fails it).
 * Where it had none to begin with (THP off), its RESULT line says "not
 * checked". */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_common.h"

#define NAME "precopy_writers"
#define PAGE 4096
#define PAGE_WORDS (PAGE / 8)
#define THREADS 4
#define THREAD_PAGES 2048
#define SLOTS 32
#define MAX_SLOT_PAGES 256
#define MAX_HEAP_PAGES 512
#define HUGE_BYTES (32u << 20)
#define HUGE_ALIGN (2u << 20)

static uint64_t pattern(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return (x ^ (x >> 31)) | 1;
}

static const char* g_done;
static atomic_int g_stop;

static int done_exists(void) {
  struct stat st;
  return stat(g_done, &st) == 0;
}

/* threads */
struct Writer {
  uint64_t* words;
  atomic_ullong round, cursor;
  pthread_t thread;
};
static struct Writer g_writers[THREADS];

static void* write_rounds(void* arg) {
  struct Writer* w = arg;
  uint64_t round = 1, cursor = 0;
  atomic_store(&w->round, round);
  while (!atomic_load(&g_stop)) {
    for (int i = 0; i < 64; ++i) {
      size_t at = cursor * PAGE_WORDS;
      w->words[at] = pattern((uint64_t)(w - g_writers), at) ^ round;
      if (++cursor == THREAD_PAGES) {
        cursor = 0;
        ++round;
      }
      atomic_store(&w->round, round);
      atomic_store(&w->cursor, cursor);
    }
    struct timespec pause = {0, 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return NULL;
}

static size_t check_writers(void) {
  size_t wrong = 0;
  for (int t = 0; t < THREADS; ++t) {
    struct Writer* w = &g_writers[t];
    uint64_t round = atomic_load(&w->round), cursor = atomic_load(&w->cursor);
    for (size_t i = 0; i < (size_t)THREAD_PAGES * PAGE_WORDS; ++i) {
      uint64_t want = pattern((uint64_t)t, i);
      if (i % PAGE_WORDS == 0) want ^= i / PAGE_WORDS < cursor ? round : round - 1;
      if (w->words[i] != want && wrong++ == 0)
        fprintf(stderr, "thread %d: word %zu is %016llx, expected %016llx\n", t, i, (unsigned long long)w->words[i],
                (unsigned long long)want);
    }
  }
  return wrong;
}

/* churn */
struct Slot {
  uint64_t* words;
  size_t pages;
  uint64_t generation;
};
static struct Slot g_slots[SLOTS];
static uint64_t* g_heap;
static size_t g_heap_pages;
static uint64_t g_heap_generation;

static void fill(uint64_t* words, size_t n, uint64_t a, uint64_t b) {
  for (size_t i = 0; i < n; ++i) words[i] = pattern(a, b + i);
}

static size_t check(const uint64_t* words, size_t n, uint64_t a, uint64_t b, const char* what) {
  size_t wrong = 0;
  for (size_t i = 0; i < n; ++i) {
    if (words[i] != pattern(a, b + i) && wrong++ == 0)
      fprintf(stderr, "%s: word %zu is %016llx, expected %016llx\n", what, i, (unsigned long long)words[i],
              (unsigned long long)pattern(a, b + i));
  }
  return wrong;
}

static void churn_step(uint64_t* rng) {
  int s = (int)(ckpt_next(rng) % SLOTS);
  size_t pages = 1 + (size_t)(ckpt_next(rng) % MAX_SLOT_PAGES);
  uint64_t* fresh = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (fresh == MAP_FAILED) ckpt_fail(NAME, "mmap: %s", strerror(errno));
  uint64_t generation = g_slots[s].generation + 1;
  fill(fresh, pages * PAGE_WORDS, (uint64_t)s, generation << 32);
  struct Slot old = g_slots[s];
  g_slots[s] = (struct Slot){fresh, pages, generation};
  if (old.words != NULL && munmap(old.words, old.pages * PAGE) != 0) ckpt_fail(NAME, "munmap: %s", strerror(errno));
  /* The break: up by some pages (filled), or back down. */
  size_t want = (size_t)(ckpt_next(rng) % MAX_HEAP_PAGES);
  if (want > g_heap_pages) {
    if (sbrk((intptr_t)((want - g_heap_pages) * PAGE)) == (void*)-1) ckpt_fail(NAME, "sbrk: %s", strerror(errno));
    ++g_heap_generation;
    fill(g_heap, want * PAGE_WORDS, 1000, g_heap_generation << 32);
  } else if (sbrk(-(intptr_t)((g_heap_pages - want) * PAGE)) == (void*)-1) {
    ckpt_fail(NAME, "sbrk: %s", strerror(errno));
  }
  g_heap_pages = want;
}

static size_t check_churn(void) {
  size_t wrong = 0;
  char what[32];
  for (int s = 0; s < SLOTS; ++s) {
    if (g_slots[s].words == NULL) continue;
    snprintf(what, sizeof what, "slot %d", s);
    wrong += check(g_slots[s].words, g_slots[s].pages * PAGE_WORDS, (uint64_t)s, g_slots[s].generation << 32, what);
  }
  return wrong + check(g_heap, g_heap_pages * PAGE_WORDS, 1000, g_heap_generation << 32, "heap");
}

/* hugepage */
static uint64_t* g_huge;

/* AnonHugePages of the mapping starting at g_huge, in kB. */
static long huge_kb(void) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == NULL) ckpt_fail(NAME, "/proc/self/smaps: %s", strerror(errno));
  char line[512];
  int in = 0;
  long kb = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long start, end;
    if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {  /* a mapping's line, not a field's */
      in = start == (unsigned long)g_huge;
    } else if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) {
      break;
    }
  }
  fclose(f);
  return kb;
}

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4 ||
      (strcmp(argv[1], "threads") != 0 && strcmp(argv[1], "churn") != 0 && strcmp(argv[1], "fork") != 0 &&
       strcmp(argv[1], "hugepage") != 0)) {
    fprintf(stderr, "usage: precopy_writers threads|churn|fork|hugepage DONE_FILE [MAX_SECONDS]\n");
    return 2;
  }
  int forks = strcmp(argv[1], "fork") == 0;
  int huge = strcmp(argv[1], "hugepage") == 0;
  int threads = forks || huge || strcmp(argv[1], "threads") == 0;
  long huge_before = 0;
  if (huge) {
    char* at = mmap(NULL, HUGE_BYTES + HUGE_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (at == MAP_FAILED) ckpt_fail(NAME, "mmap: %s", strerror(errno));
    char* aligned = (char*)(((uintptr_t)at + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1));
    if (aligned > at) munmap(at, (size_t)(aligned - at));
    munmap(aligned + HUGE_BYTES, (size_t)(at + HUGE_BYTES + HUGE_ALIGN - (aligned + HUGE_BYTES)));
    g_huge = (uint64_t*)aligned;
    madvise(g_huge, HUGE_BYTES, MADV_HUGEPAGE);
    fill(g_huge, HUGE_BYTES / 8, 100, 0);
    huge_before = huge_kb();
  }
  g_done = argv[2];
  long max_seconds = argc > 3 ? strtol(argv[3], NULL, 10) : 600;
  time_t start = time(NULL);
  uint64_t rng = 0x243f6a8885a308d3ULL;
  if (threads) {
    for (int t = 0; t < THREADS; ++t) {
      uint64_t* words = mmap(NULL, (size_t)THREAD_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (words == MAP_FAILED) ckpt_fail(NAME, "mmap: %s", strerror(errno));
      for (size_t i = 0; i < (size_t)THREAD_PAGES * PAGE_WORDS; ++i) words[i] = pattern((uint64_t)t, i);
      g_writers[t].words = words;
      if (pthread_create(&g_writers[t].thread, NULL, write_rounds, &g_writers[t]) != 0)
        ckpt_fail(NAME, "cannot start thread %d", t);
    }
  }
  /* Printed before the break is taken over: stdout's buffer comes from
   * malloc, which nothing calls after this. */
  ckpt_print("%s ready\n", NAME);
  if (!threads) g_heap = sbrk(0);
  while (!done_exists()) {
    if (time(NULL) - start > max_seconds) ckpt_fail(NAME, "no %s after %ld s", g_done, max_seconds);
    if (forks) {
      pid_t child = fork();
      if (child < 0) ckpt_fail(NAME, "fork: %s", strerror(errno));
      if (child == 0) {
        execl("/bin/true", "true", (char*)NULL);
        _exit(127);
      }
      int status = 0;
      if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        ckpt_fail(NAME, "the child did not end well (status %#x)", status);
      struct timespec pause = {0, 20 * 1000 * 1000};
      nanosleep(&pause, NULL);
    } else if (threads) {
      struct timespec pause = {0, 10 * 1000 * 1000};
      nanosleep(&pause, NULL);
    } else {
      churn_step(&rng);
      struct timespec pause = {0, 1000 * 1000};
      nanosleep(&pause, NULL);
    }
  }
  size_t wrong;
  if (threads) {
    atomic_store(&g_stop, 1);
    for (int t = 0; t < THREADS; ++t) pthread_join(g_writers[t].thread, NULL);
    wrong = check_writers();
    if (huge) wrong += check(g_huge, HUGE_BYTES / 8, 100, 0, "huge-page region");
  } else {
    wrong = check_churn();
  }
  if (wrong != 0) ckpt_fail(NAME, "%zu words wrong (the first on stderr)", wrong);
  if (huge) {
    long after = huge_kb();
    if (huge_before == 0) {
      ckpt_print("RESULT %s %s OK (no transparent huge pages here: not checked)\n", NAME, argv[1]);
      return 0;
    }
    if (after < huge_before / 2)
      ckpt_fail(NAME, "the huge-page region has %ld kB of huge pages after the moves, %ld before", after, huge_before);
    ckpt_print("RESULT %s %s OK (huge pages: %ld kB before the moves, %ld after)\n", NAME, argv[1], huge_before, after);
    return 0;
  }
  ckpt_print("RESULT %s %s OK\n", NAME, argv[1]);
  return 0;
}
