/* A 2-D stencil with halo exchange, as a simulation code is written: an
 * N x N grid (N = 96) split over a Cartesian grid of ranks (MPI_Dims_create,
 * MPI_Cart_create), 60 Jacobi sweeps of the 5-point average with a fixed
 * hot edge, each sweep exchanging one-cell halos with the four neighbours
 * (MPI_Sendrecv, a column through an MPI_Type_vector). Rank 0 sums every
 * rank's block in rank order (so the bits do not depend on a reduction's
 * order) and prints "stencil 96x96 on PxQ ranks: checksum C". */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

enum { kN = 96, kSweeps = 60 };

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int size = 0, rank = 0, dims[2] = {0, 0}, periods[2] = {0, 0}, coords[2];
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Dims_create(size, 2, dims);
  MPI_Comm grid;
  MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &grid);
  MPI_Comm_rank(grid, &rank);
  MPI_Cart_coords(grid, rank, 2, coords);
  int up, down, left, right;
  MPI_Cart_shift(grid, 0, 1, &up, &down);
  MPI_Cart_shift(grid, 1, 1, &left, &right);
  /* This rank's rows [r0, r0 + rows) and columns [c0, c0 + cols). */
  const int rows = kN / dims[0] + (coords[0] < kN % dims[0]);
  const int cols = kN / dims[1] + (coords[1] < kN % dims[1]);
  const int r0 = coords[0] * (kN / dims[0]) + (coords[0] < kN % dims[0] ? coords[0] : kN % dims[0]);
  const int w = cols + 2;
  double* a = calloc((size_t)(rows + 2) * w, sizeof *a);
  double* b = calloc((size_t)(rows + 2) * w, sizeof *b);
  MPI_Datatype column;
  MPI_Type_vector(rows, 1, w, MPI_DOUBLE, &column);
  MPI_Type_commit(&column);
  for (int s = 0; s < kSweeps; ++s) {
    MPI_Sendrecv(&a[1 * w + 1], cols, MPI_DOUBLE, up, 0, &a[(rows + 1) * w + 1], cols, MPI_DOUBLE, down, 0, grid,
                 MPI_STATUS_IGNORE);
    MPI_Sendrecv(&a[rows * w + 1], cols, MPI_DOUBLE, down, 1, &a[0 * w + 1], cols, MPI_DOUBLE, up, 1, grid,
                 MPI_STATUS_IGNORE);
    MPI_Sendrecv(&a[1 * w + 1], 1, column, left, 2, &a[1 * w + cols + 1], 1, column, right, 2, grid,
                 MPI_STATUS_IGNORE);
    MPI_Sendrecv(&a[1 * w + cols], 1, column, right, 3, &a[1 * w + 0], 1, column, left, 3, grid, MPI_STATUS_IGNORE);
    if (up == MPI_PROC_NULL) {
      for (int j = 0; j < w; ++j) a[j] = 100.0; /* the hot edge: row -1 of the grid */
    }
    for (int i = 1; i <= rows; ++i) {
      for (int j = 1; j <= cols; ++j) {
        b[i * w + j] = 0.25 * (a[(i - 1) * w + j] + a[(i + 1) * w + j] + a[i * w + j - 1] + a[i * w + j + 1]);
      }
    }
    double* t = a;
    a = b;
    b = t;
  }
  double mine = 0;
  for (int i = 1; i <= rows; ++i) {
    for (int j = 1; j <= cols; ++j) mine += a[i * w + j] * (1.0 + 1e-3 * (r0 + i - 1));
  }
  double* all = rank == 0 ? malloc(sizeof *all * (size_t)size) : NULL;
  MPI_Gather(&mine, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, 0, grid);
  if (rank == 0) {
    double sum = 0;
    for (int r = 0; r < size; ++r) sum += all[r];
    printf("stencil %dx%d on %dx%d ranks: checksum %.9f\n", kN, kN, dims[0], dims[1], sum);
  }
  MPI_Type_free(&column);
  MPI_Comm_free(&grid);
  free(a);
  free(b);
  free(all);
  MPI_Finalize();
  return 0;
}
