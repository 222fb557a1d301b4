/* ckpt_files [STEPS]: works through descriptors whose state a checkpoint must
 * carry. It creates a scratch directory in $CKPT_TMPDIR holding a 4 MiB input
 * file, then each step reads the input sequentially (the descriptor's offset)
 * and at a computed offset (lseek + read), appends a record to an O_APPEND
 * file, writes at a computed offset of a normal file (lseek + write), creates
 * a file through a directory descriptor, writes /dev/null, reads /dev/zero and
 * /dev/urandom, and reads a record that a second thread wrote into a pipe
 * (the pipe is kept full, so that thread is usually blocked in write). At the
 * end it checks offsets, descriptor flags and every file's contents. Ten
 * progress lines, then "RESULT ckpt_files <checksum> OK". Default 25000 steps. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ckpt_common.h"

#define NAME "ckpt_files"
#define INPUT_SIZE (4UL << 20)
#define SEQ_CHUNK 4096
#define RAND_CHUNK 512
#define RECORD 96
#define PIPE_RECORD 64
#define OUT_SIZE (1UL << 20)
#define OUT_CHUNK 64

static long steps_;
static int pipe_[2];
static char dir_[4096];

static unsigned char input_byte(uint64_t offset) {
  uint64_t x = (offset >> 3) * 0x9e3779b97f4a7c15ULL;
  return (unsigned char)((x >> 29) ^ (x >> ((offset & 7) * 8)));
}

static void pipe_record(long step, unsigned char* rec) {
  uint64_t s = (uint64_t)step * 0xd1342543de82ef95ULL + 7;
  for (int i = 0; i < PIPE_RECORD; ++i) rec[i] = (unsigned char)(ckpt_next(&s) >> 56);
}

static void append_record(long step, const unsigned char* seq, char* rec) {
  memset(rec, ' ', RECORD);
  int n = snprintf(rec, RECORD, "step %08ld seq %02x%02x%02x%02x", step, seq[0], seq[1], seq[2], seq[3]);
  rec[n] = ' ';
  rec[RECORD - 1] = '\n';
}

static void read_full(int fd, void* buf, size_t size, const char* what) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = read(fd, (char*)buf + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ckpt_fail(NAME, "read %s: %s", what, n == 0 ? "unexpected end of file" : strerror(errno));
    done += (size_t)n;
  }
}

static void write_full(int fd, const void* buf, size_t size, const char* what) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, (const char*)buf + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ckpt_fail(NAME, "write %s: %s", what, strerror(errno));
    done += (size_t)n;
  }
}

static void* pipe_writer(void* arg) {
  (void)arg;
  unsigned char rec[PIPE_RECORD];
  for (long step = 1; step <= steps_; ++step) {
    pipe_record(step, rec);
    write_full(pipe_[1], rec, sizeof rec, "pipe");
  }
  close(pipe_[1]);
  return NULL;
}

static int open_in_dir(int dirfd, const char* name, int flags) {
  int fd = openat(dirfd, name, flags, 0600);
  if (fd < 0) ckpt_fail(NAME, "open %s/%s: %s", dir_, name, strerror(errno));
  return fd;
}

static void check_same_file(int fd, int dirfd, const char* name) {
  struct stat a, b;
  if (fstat(fd, &a) != 0 || fstatat(dirfd, name, &b, 0) != 0)
    ckpt_fail(NAME, "stat %s/%s: %s", dir_, name, strerror(errno));
  if (a.st_ino != b.st_ino || a.st_dev != b.st_dev)
    ckpt_fail(NAME, "descriptor for %s no longer refers to that file", name);
}

int main(int argc, char** argv) {
  steps_ = ckpt_steps(NAME, argc, argv, 25000);
  ckpt_print("%s start steps=%ld\n", NAME, steps_);

  snprintf(dir_, sizeof dir_, "%s/ckpt_files.XXXXXX", ckpt_tmpdir());
  if (mkdtemp(dir_) == NULL) ckpt_fail(NAME, "mkdtemp in %s: %s", ckpt_tmpdir(), strerror(errno));
  int dirfd = open(dir_, O_RDONLY | O_DIRECTORY);
  if (dirfd < 0) ckpt_fail(NAME, "open directory %s: %s", dir_, strerror(errno));

  {
    int fd = open_in_dir(dirfd, "input", O_WRONLY | O_CREAT | O_TRUNC);
    unsigned char buf[SEQ_CHUNK];
    for (uint64_t off = 0; off < INPUT_SIZE; off += SEQ_CHUNK) {
      for (int i = 0; i < SEQ_CHUNK; ++i) buf[i] = input_byte(off + (uint64_t)i);
      write_full(fd, buf, sizeof buf, "input");
    }
    close(fd);
  }
  int in_seq = open_in_dir(dirfd, "input", O_RDONLY);
  int in_rand = open_in_dir(dirfd, "input", O_RDONLY | O_CLOEXEC);
  int out_append = open_in_dir(dirfd, "append.out", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND);
  int out_rand = open_in_dir(dirfd, "random.out", O_RDWR | O_CREAT | O_TRUNC);
  if (ftruncate(out_rand, OUT_SIZE) != 0) ckpt_fail(NAME, "ftruncate: %s", strerror(errno));
  int dev_null = open("/dev/null", O_WRONLY);
  int dev_zero = open("/dev/zero", O_RDONLY);
  int dev_urandom = open("/dev/urandom", O_RDONLY);
  if (dev_null < 0 || dev_zero < 0 || dev_urandom < 0) ckpt_fail(NAME, "open /dev/*: %s", strerror(errno));
  if (pipe2(pipe_, O_CLOEXEC) != 0) ckpt_fail(NAME, "pipe2: %s", strerror(errno));

  unsigned char* shadow = calloc(1, OUT_SIZE);
  if (shadow == NULL) ckpt_fail(NAME, "out of memory");

  pthread_t writer;
  int rc = pthread_create(&writer, NULL, pipe_writer, NULL);
  if (rc != 0) ckpt_fail(NAME, "pthread_create: %s", strerror(rc));

  uint64_t sum = 0, seq_offset = 0, urandom_or = 0, rng = 0x0123456789abcdefULL;
  unsigned char seq[SEQ_CHUNK], chunk[RAND_CHUNK], zero[SEQ_CHUNK], rec[PIPE_RECORD], want[PIPE_RECORD];
  char line[RECORD];
  for (long step = 1; step <= steps_; ++step) {
    if (seq_offset == INPUT_SIZE) {
      if (lseek(in_seq, 0, SEEK_SET) != 0) ckpt_fail(NAME, "lseek input: %s", strerror(errno));
      seq_offset = 0;
    }
    read_full(in_seq, seq, sizeof seq, "input (sequential)");
    for (int i = 0; i < SEQ_CHUNK; ++i)
      if (seq[i] != input_byte(seq_offset + (uint64_t)i))
        ckpt_fail(NAME, "sequential read at offset %llu got wrong bytes", (unsigned long long)seq_offset);
    seq_offset += SEQ_CHUNK;
    for (int pass = 0; pass < 48; ++pass) sum = ckpt_mix_bytes(sum, seq, sizeof seq);

    uint64_t off = ckpt_next(&rng) % (INPUT_SIZE - RAND_CHUNK);
    if (lseek(in_rand, (off_t)off, SEEK_SET) != (off_t)off) ckpt_fail(NAME, "lseek input: %s", strerror(errno));
    read_full(in_rand, chunk, sizeof chunk, "input (at offset)");
    for (int i = 0; i < RAND_CHUNK; ++i)
      if (chunk[i] != input_byte(off + (uint64_t)i))
        ckpt_fail(NAME, "read at offset %llu got wrong bytes", (unsigned long long)off);
    sum = ckpt_mix_bytes(sum, chunk, sizeof chunk);

    append_record(step, seq, line);
    write_full(out_append, line, sizeof line, "append.out");

    uint64_t out_off = ckpt_next(&rng) % (OUT_SIZE / OUT_CHUNK) * OUT_CHUNK;
    if (lseek(out_rand, (off_t)out_off, SEEK_SET) != (off_t)out_off) ckpt_fail(NAME, "lseek random.out");
    memcpy(shadow + out_off, chunk, OUT_CHUNK);
    write_full(out_rand, chunk, OUT_CHUNK, "random.out");

    read_full(pipe_[0], rec, sizeof rec, "pipe");
    pipe_record(step, want);
    if (memcmp(rec, want, sizeof rec) != 0) ckpt_fail(NAME, "pipe record %ld is wrong", step);
    sum = ckpt_mix_bytes(sum, rec, sizeof rec);

    write_full(dev_null, seq, 256, "/dev/null");
    if (step % 16 == 0) {
      read_full(dev_zero, zero, sizeof zero, "/dev/zero");
      for (int i = 0; i < SEQ_CHUNK; ++i)
        if (zero[i] != 0) ckpt_fail(NAME, "/dev/zero gave a nonzero byte");
      uint64_t r = 0;
      read_full(dev_urandom, &r, sizeof r, "/dev/urandom");
      urandom_or |= r;
    }

    if (ckpt_is_tenth(step, steps_)) {
      int fd = open_in_dir(dirfd, "marker", O_WRONLY | O_CREAT | O_TRUNC);
      write_full(fd, &step, sizeof step, "marker");
      close(fd);
      if ((uint64_t)lseek(in_seq, 0, SEEK_CUR) != seq_offset) ckpt_fail(NAME, "the sequential input offset moved");
      check_same_file(in_seq, dirfd, "input");
      check_same_file(out_append, dirfd, "append.out");
      check_same_file(out_rand, dirfd, "random.out");
      ckpt_print("%s step %ld/%ld sum=%016llx\n", NAME, step, steps_, (unsigned long long)sum);
    }
  }
  pthread_join(writer, NULL);
  if (read(pipe_[0], rec, 1) != 0) ckpt_fail(NAME, "the pipe holds more than was written");

  int fl = fcntl(out_append, F_GETFL);
  if (fl < 0 || !(fl & O_APPEND) || (fl & O_ACCMODE) != O_WRONLY) ckpt_fail(NAME, "append.out lost O_APPEND or O_WRONLY");
  fl = fcntl(out_rand, F_GETFL);
  if (fl < 0 || (fl & O_ACCMODE) != O_RDWR || (fl & O_APPEND)) ckpt_fail(NAME, "random.out lost O_RDWR");
  if (!(fcntl(in_rand, F_GETFD) & FD_CLOEXEC) || (fcntl(in_seq, F_GETFD) & FD_CLOEXEC))
    ckpt_fail(NAME, "FD_CLOEXEC flags changed");
  if (urandom_or == 0 && steps_ >= 64) ckpt_fail(NAME, "/dev/urandom gave only zeros");

  struct stat st;
  if (fstat(out_append, &st) != 0 || st.st_size != (off_t)(steps_ * RECORD))
    ckpt_fail(NAME, "append.out has %lld bytes, expected %ld", (long long)st.st_size, steps_ * RECORD);
  {
    /* Read append.out back and replay what each step wrote. */
    int fd = open_in_dir(dirfd, "append.out", O_RDONLY);
    uint64_t off = 0;
    for (long step = 1; step <= steps_; ++step) {
      read_full(fd, line, sizeof line, "append.out");
      if (off == INPUT_SIZE) off = 0;
      unsigned char first[4];
      for (int i = 0; i < 4; ++i) first[i] = input_byte(off + (uint64_t)i);
      off += SEQ_CHUNK;
      char expect[RECORD];
      append_record(step, first, expect);
      if (memcmp(line, expect, RECORD) != 0) ckpt_fail(NAME, "append.out record %ld is wrong", step);
      sum = ckpt_mix_bytes(sum, line, sizeof line);
    }
    close(fd);
  }
  if (lseek(out_rand, 0, SEEK_SET) != 0) ckpt_fail(NAME, "lseek random.out");
  unsigned char* back = malloc(OUT_SIZE);
  if (back == NULL) ckpt_fail(NAME, "out of memory");
  read_full(out_rand, back, OUT_SIZE, "random.out");
  if (memcmp(back, shadow, OUT_SIZE) != 0) ckpt_fail(NAME, "random.out differs from what was written");
  sum = ckpt_mix_bytes(sum, back, OUT_SIZE);

  close(in_seq);
  close(in_rand);
  close(out_append);
  close(out_rand);
  static const char* const names[] = {"input", "append.out", "random.out", "marker"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) unlinkat(dirfd, names[i], 0);
  close(dirfd);
  rmdir(dir_);
  free(back);
  free(shadow);
  ckpt_result(NAME, sum);
  return 0;
}
