/* sgemm_peak: the machine's single-precision matrix-multiply rate through OpenBLAS.
 *
 *   cc -O2 bench/sgemm_peak.c $(pkg-config --cflags --libs openblas) -o sgemm_peak
 *   ./sgemm_peak [N [REPS [THREADS...]]]        defaults: 2048 5 1 2
 *
 * For each thread count: C = A B on N x N float matrices with cblas_sgemm, one
 * untimed warm-up call, then REPS timed calls; prints the best as GFLOP/s
 * (2 N^3 flops per call), one line each:
 *   sgemm n=2048 threads=1 gflops=97.3 best_seconds=0.1765 reps=5
 * and first a line with OpenBLAS's build configuration and the kernel it chose
 * (which OPENBLAS_CORETYPE overrides). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

char *openblas_get_config(void);
char *openblas_get_corename(void);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2048, reps = argc > 2 ? atoi(argv[2]) : 5;
  if (n < 1 || reps < 1) {
    fprintf(stderr, "usage: sgemm_peak [N [REPS [THREADS...]]]\n");
    return 2;
  }
  size_t len = (size_t)n * n;
  float *a = aligned_alloc(64, len * sizeof(float) + 64), *b = aligned_alloc(64, len * sizeof(float) + 64),
        *c = aligned_alloc(64, len * sizeof(float) + 64);
  if (!a || !b || !c) {
    fprintf(stderr, "sgemm_peak: out of memory\n");
    return 1;
  }
  srand(1);
  for (size_t i = 0; i < len; i++) {
    a[i] = (float)rand() / RAND_MAX - 0.5f;
    b[i] = (float)rand() / RAND_MAX - 0.5f;
    c[i] = 0;
  }
  printf("openblas %s; kernel %s\n", openblas_get_config(), openblas_get_corename());
  static char *dflt[] = {"1", "2"};
  char **tl = argc > 3 ? argv + 3 : dflt;
  int nt = argc > 3 ? argc - 3 : 2;
  for (int k = 0; k < nt; k++) {
    int t = atoi(tl[k]);
    openblas_set_num_threads(t);
    double best = 1e30;
    for (int r = 0; r <= reps; r++) { /* r == 0: warm-up */
      double t0 = now();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
      double s = now() - t0;
      if (r > 0 && s < best) best = s;
    }
    printf("sgemm n=%d threads=%d gflops=%.1f best_seconds=%.4f reps=%d\n", n, t, 2.0 * n * n * n / best * 1e-9,
           best, reps);
    fflush(stdout);
  }
  free(a);
  free(b);
  free(c);
  return 0;
}
