/* An OSU-style ping-pong between two ranks, for bench_pingpong. For each
 * size (8 B, then 1 MiB): rank 0 sends a message to rank 1, which sends it
 * back; a number of warm-up round trips, then ITERS timed ones. Rank 0 then
 * prints one line per size:
 *   size BYTES latency_us US bandwidth_MBps MBPS
 * latency: half a round trip; bandwidth: BYTES over that time (MB = 10^6 B).
 * The data are checked: every byte of each warm-up round trip and of one
 * round trip after the timed ones, and in each timed one the iteration's
 * number stamped in the message's first and last 8 bytes and its length
 * (which cost the timing next to nothing). A mismatch is reported on stderr, the line is not
 * printed, and every rank exits 1.
 * Usage: pingpong [-s ITERS] [-l ITERS]: timed round trips of 8 B (default
 * 10000) and of 1 MiB (default 200); warm-up: a tenth of that, plus one.
 * A bad option, or a world of other than 2 ranks: exit 2. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { kStampBytes = 8 };
/* Stamps are iter ^ kStampMask: no zero byte, so a cleared buffer never
 * passes for a stamped one. */
static const uint64_t kStampMask = 0x5a5a5a5a5a5a5a5aULL;

static unsigned char pattern(size_t i, int size_index) {
  return (unsigned char)(i * 131 + (i >> 10) + (size_t)size_index * 29 + 7);
}

static void stamp(unsigned char* buf, size_t bytes, uint64_t iter) {
  uint64_t word = iter ^ kStampMask;
  memcpy(buf, &word, kStampBytes);
  memcpy(buf + bytes - kStampBytes, &word, kStampBytes);
}

static void fill(unsigned char* buf, size_t bytes, int size_index) {
  for (size_t i = 0; i < bytes; ++i) buf[i] = pattern(i, size_index);
}

/* 0 if both stamps of buf are iter's; otherwise reports and returns 1. */
static int check_stamp(const unsigned char* buf, size_t bytes, uint64_t iter, int rank) {
  uint64_t head = 0, tail = 0;
  memcpy(&head, buf, kStampBytes);
  memcpy(&tail, buf + bytes - kStampBytes, kStampBytes);
  head ^= kStampMask;
  tail ^= kStampMask;
  if (head == iter && tail == iter) return 0;
  fprintf(stderr, "pingpong: rank %d: %zu-byte message of round trip %llu carries round trip %llu/%llu\n", rank,
          bytes, (unsigned long long)iter, (unsigned long long)head, (unsigned long long)tail);
  return 1;
}

/* 0 if the message just received into status was bytes long; otherwise
 * reports and returns 1. */
static int check_length(const MPI_Status* status, size_t bytes, uint64_t iter, int rank) {
  int got = -1;
  MPI_Get_count(status, MPI_BYTE, &got);
  if (got == (int)bytes) return 0;
  fprintf(stderr, "pingpong: rank %d: %zu-byte message of round trip %llu came with %d bytes\n", rank, bytes,
          (unsigned long long)iter, got);
  return 1;
}

/* 0 if buf is the pattern of size_index stamped with iter; otherwise
 * reports the first wrong byte and returns 1. */
static int check_all(const unsigned char* buf, size_t bytes, int size_index, uint64_t iter, int rank) {
  if (check_stamp(buf, bytes, iter, rank)) return 1;
  for (size_t i = kStampBytes; i + kStampBytes < bytes; ++i) {
    if (buf[i] != pattern(i, size_index)) {
      fprintf(stderr, "pingpong: rank %d: %zu-byte message of round trip %llu: byte %zu is %u, expected %u\n", rank,
              bytes, (unsigned long long)iter, i, buf[i], pattern(i, size_index));
      return 1;
    }
  }
  return 0;
}

/* One round trip numbered iter. Rank 0 sends out and receives into in; rank
 * 1 receives into in and sends that back. full: clear in before and check
 * every byte after; otherwise the stamps only. Returns the mismatches. */
static int round_trip(unsigned char* out, unsigned char* in, size_t bytes, int size_index, uint64_t iter, int rank,
                      int full) {
  int count = (int)bytes;
  MPI_Status status;
  if (full) memset(in, 0, bytes);
  if (rank == 0) {
    stamp(out, bytes, iter);
    MPI_Send(out, count, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
    MPI_Recv(in, count, MPI_BYTE, 1, 0, MPI_COMM_WORLD, &status);
  } else {
    MPI_Recv(in, count, MPI_BYTE, 0, 0, MPI_COMM_WORLD, &status);
  }
  int bad = check_length(&status, bytes, iter, rank);
  bad += full ? check_all(in, bytes, size_index, iter, rank) : check_stamp(in, bytes, iter, rank);
  if (rank == 1) MPI_Send(in, count, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
  return bad;
}

/* Warm-up, timed round trips and a final checked one for one size. Returns
 * the mismatches; *seconds is the timed round trips' wall time (rank 0). */
static int measure(size_t bytes, int size_index, long iters, int rank, double* seconds) {
  unsigned char* out = malloc(bytes);
  unsigned char* in = malloc(bytes);
  if (!out || !in) {
    fprintf(stderr, "pingpong: rank %d: out of memory for two %zu-byte buffers\n", rank, bytes);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  fill(out, bytes, size_index);
  int bad = 0;
  uint64_t iter = 0;
  long warmup = iters / 10 + 1;
  for (long i = 0; i < warmup; ++i) bad += round_trip(out, in, bytes, size_index, ++iter, rank, 1);
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  for (long i = 0; i < iters; ++i) bad += round_trip(out, in, bytes, size_index, ++iter, rank, 0);
  *seconds = MPI_Wtime() - t0;
  bad += round_trip(out, in, bytes, size_index, ++iter, rank, 1);
  free(out);
  free(in);
  return bad;
}

static int parse_count(const char* text, long* value) {
  char* end = NULL;
  long v = strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v <= 0 || v > 100000000L) return 1;
  *value = v;
  return 0;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  long iters[2] = {10000, 200};
  const size_t sizes[2] = {8, (size_t)1 << 20};
  int usage = 0, opt;
  opterr = rank == 0; /* getopt's own message once, not once per rank */
  while ((opt = getopt(argc, argv, "s:l:")) != -1) {
    if (opt == 's' || opt == 'l') {
      if (parse_count(optarg, &iters[opt == 's' ? 0 : 1])) {
        if (rank == 0) fprintf(stderr, "pingpong: -%c %s: give a count from 1 to 100000000\n", opt, optarg);
        usage = 1;
      }
    } else {
      usage = 1;
    }
  }
  if (!usage && optind < argc) {
    if (rank == 0) fprintf(stderr, "pingpong: unexpected argument '%s'\n", argv[optind]);
    usage = 1;
  }
  if (!usage && world != 2) {
    if (rank == 0) fprintf(stderr, "pingpong: needs exactly 2 ranks, not %d (mpirun -np 2)\n", world);
    usage = 1;
  }
  if (usage) {
    if (rank == 0) fprintf(stderr, "usage: pingpong [-s ITERS_8B] [-l ITERS_1MIB]\n");
    MPI_Finalize();
    return 2;
  }

  int bad = 0;
  double seconds[2] = {0, 0};
  for (int s = 0; s < 2; ++s) bad += measure(sizes[s], s, iters[s], rank, &seconds[s]);
  int any_bad = 0;
  MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0 && any_bad == 0) {
    for (int s = 0; s < 2; ++s) {
      double latency_us = seconds[s] * 1e6 / (2.0 * (double)iters[s]);
      printf("size %zu latency_us %.3f bandwidth_MBps %.3f\n", sizes[s], latency_us,
             (double)sizes[s] / latency_us);
    }
  }
  if (rank == 0 && any_bad != 0) fprintf(stderr, "pingpong: %d message(s) were wrong\n", any_bad);
  MPI_Finalize();
  return any_bad == 0 ? 0 : 1;
}
