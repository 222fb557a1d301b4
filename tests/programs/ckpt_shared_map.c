/* ckpt_shared_map [STEPS]: a MAP_SHARED file mapping updated in a loop. The
 * 8 MiB file in $CKPT_TMPDIR is mapped whole (view A) and its second half a
 * second time (view B), and a private copy in malloc'ed memory says what the
 * file must hold. Each step writes words through both views and checks that
 * each write shows through the other view (they must share pages, not hold
 * copies); each tenth of the run compares a window of the file, read with
 * pread(), to the copy. At the end the views are unmapped and the whole file
 * is read() back and compared. Ten progress lines, then
 * "RESULT ckpt_shared_map <checksum> OK". Default 120000 steps. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>

#include "ckpt_common.h"

#define NAME "ckpt_shared_map"
#define FILE_SIZE (8UL << 20)
#define HALF (FILE_SIZE / 2)
#define WORDS (FILE_SIZE / 8)
#define WINDOW (64UL << 10)

int main(int argc, char** argv) {
  long steps = ckpt_steps(NAME, argc, argv, 120000);
  ckpt_print("%s start steps=%ld\n", NAME, steps);

  char path[4096];
  snprintf(path, sizeof path, "%s/ckpt_shared_map.XXXXXX", ckpt_tmpdir());
  int fd = mkstemp(path);
  if (fd < 0) ckpt_fail(NAME, "mkstemp in %s: %s", ckpt_tmpdir(), strerror(errno));
  if (ftruncate(fd, FILE_SIZE) != 0) ckpt_fail(NAME, "ftruncate %s: %s", path, strerror(errno));
  uint64_t* a = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  uint64_t* b = mmap(NULL, HALF, PROT_READ | PROT_WRITE, MAP_SHARED, fd, HALF);
  if (a == MAP_FAILED || b == MAP_FAILED) ckpt_fail(NAME, "mmap(MAP_SHARED) %s: %s", path, strerror(errno));
  /* The mappings keep the file; reads go through a descriptor of their own. */
  close(fd);
  int rfd = open(path, O_RDONLY);
  if (rfd < 0) ckpt_fail(NAME, "open %s: %s", path, strerror(errno));

  uint64_t* copy = calloc(WORDS, sizeof *copy);
  unsigned char* window = malloc(WINDOW);
  if (copy == NULL || window == NULL) ckpt_fail(NAME, "out of memory");

  uint64_t rng = 0x6a09e667f3bcc909ULL;
  for (long step = 1; step <= steps; ++step) {
    for (int k = 0; k < 2000; ++k) {
      uint64_t r = ckpt_next(&rng);
      size_t i = (size_t)(r % WORDS);
      uint64_t v = ckpt_mix(r, (uint64_t)step);
      if (copy[i] != a[i]) ckpt_fail(NAME, "word %zu of view A lost its value", i);
      if (i >= HALF / 8 && (r >> 60) & 1) {
        b[i - HALF / 8] = v;
        if (a[i] != v) ckpt_fail(NAME, "a write through view B did not show in view A (word %zu)", i);
      } else {
        a[i] = v;
        if (i >= HALF / 8 && b[i - HALF / 8] != v)
          ckpt_fail(NAME, "a write through view A did not show in view B (word %zu)", i);
      }
      copy[i] = v;
    }
    if (step % 500 == 0 && msync(a, FILE_SIZE, MS_ASYNC) != 0) ckpt_fail(NAME, "msync: %s", strerror(errno));
    if (ckpt_is_tenth(step, steps)) {
      off_t off = (off_t)(ckpt_next(&rng) % (FILE_SIZE / WINDOW) * WINDOW);
      if (pread(rfd, window, WINDOW, off) != (ssize_t)WINDOW) ckpt_fail(NAME, "pread %s: %s", path, strerror(errno));
      if (memcmp(window, (unsigned char*)copy + off, WINDOW) != 0)
        ckpt_fail(NAME, "the file at offset %lld differs from what was written through the mapping", (long long)off);
      ckpt_print("%s step %ld/%ld sum=%016llx\n", NAME, step, steps,
                 (unsigned long long)ckpt_mix_bytes(0, copy, FILE_SIZE));
    }
  }

  if (munmap(a, FILE_SIZE) != 0 || munmap(b, HALF) != 0) ckpt_fail(NAME, "munmap: %s", strerror(errno));
  uint64_t sum = 0;
  for (size_t off = 0; off < FILE_SIZE; off += WINDOW) {
    size_t done = 0;
    while (done < WINDOW) {
      ssize_t n = read(rfd, window + done, WINDOW - done);
      if (n <= 0) ckpt_fail(NAME, "read %s at %zu: %s", path, off + done, n == 0 ? "end of file" : strerror(errno));
      done += (size_t)n;
    }
    if (memcmp(window, (unsigned char*)copy + off, WINDOW) != 0)
      ckpt_fail(NAME, "the file at offset %zu differs from what was written through the mapping", off);
    sum = ckpt_mix_bytes(sum, window, WINDOW);
  }
  close(rfd);
  unlink(path);
  free(window);
  free(copy);
  ckpt_result(NAME, sum);
  return 0;
}
