/* conv_bench: the speed of the runtime's convolution kernels on the layers of
 * examples/mnist-conv-vae/conv-vae.vm (batch 128), forward and backward, as a
 * training step runs them.
 *
 *   cc -O2 -I runtime -I compiler bench/conv_bench.c runtime/libvmlrt.a \
 *      $(pkg-config --cflags --libs openblas) -lpthread -lm -o conv_bench
 *   ./conv_bench [REPS [THREADS...]]          defaults: 20 1 2
 *   CONV_BENCH_PIXELCNN=1 ./conv_bench ...     the PixelCNN's layers instead
 *
 * (from a build tree: runtime/libvmlrt.a of that build).  For each thread
 * count, every kernel call of one training step's convolutions (the
 * encoder's two stride-2 4x4 convolutions, the decoder's two transposed
 * ones; their input gradients, but none for the data; their kernel
 * gradients) is timed, best of REPS after a warm-up, and printed with its
 * GFLOP/s and the best CPU time of the process (all its threads: at one
 * thread, the figure that other jobs on the machine disturb least); then
 * the sums, and examples/s of the convolutions alone. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* CPU time of the process, all threads: on a machine shared with other
 * jobs, the figure of one thread that waiting does not inflate */
static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

enum { FWD, FWD_T, DW, DW_T };

typedef struct {
  const char *what;
  int kind;
  KConv c; /* the geometry as exec.c builds it for that op */
} Call;

static float *randv(size_t n) {
  float *v = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) v[i] = (float)rand() / RAND_MAX - 0.5f;
  return v;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 20;
  long nb = 128;
  /* conv2d: C H W -> O OH OW; conv2d_transpose: C H W -> O OH OW (the
   * geometry names the transposed op's own input and output) */
  KConv e1 = {1, 28, 28, 32, 14, 14, 4, 4, 2, 1, 1};   /* encoder conv 1 */
  KConv e2 = {32, 14, 14, 64, 7, 7, 4, 4, 2, 1, 1};    /* encoder conv 2 */
  KConv d1 = {64, 7, 7, 32, 14, 14, 4, 4, 2, 1, 1};    /* decoder transposed conv 1 */
  KConv d2 = {32, 14, 14, 1, 28, 28, 4, 4, 2, 1, 1};   /* decoder transposed conv 2 */
  /* the input gradient of a conv2d is a conv2d_transpose from its output
   * side, and the other way round */
  KConv e2x = {64, 7, 7, 32, 14, 14, 4, 4, 2, 1, 1};
  KConv d1x = {32, 14, 14, 64, 7, 7, 4, 4, 2, 1, 1};
  KConv d2x = {1, 28, 28, 32, 14, 14, 4, 4, 2, 1, 1};
  Call vae[] = {
      {"enc1 conv2d       fwd", FWD, e1},   {"enc2 conv2d       fwd", FWD, e2},
      {"dec1 conv2d_t     fwd", FWD_T, d1}, {"dec2 conv2d_t     fwd", FWD_T, d2},
      {"dec2 conv2d       dx ", FWD, d2x},  {"dec2 conv2d_t_dw  dW ", DW_T, d2},
      {"dec1 conv2d       dx ", FWD, d1x},  {"dec1 conv2d_t_dw  dW ", DW_T, d1},
      {"enc2 conv2d_t     dx ", FWD_T, e2x}, {"enc2 conv2d_dw    dW ", DW, e2},
      {"enc1 conv2d_dw    dW ", DW, e1},
  };
  /* models/vqvae.vm's PixelCNN prior on its 7 x 7 codes (dim 64, hidden
   * 512, K 128): one residual block's 3x3 and 1x1 convolutions and the
   * output 1x1 ones, forward, input and kernel gradients */
  KConv r3 = {64, 7, 7, 64, 7, 7, 3, 3, 1, 1, 1}, r1 = {64, 7, 7, 64, 7, 7, 1, 1, 1, 0, 1};
  KConv h1 = {64, 7, 7, 512, 7, 7, 1, 1, 1, 0, 1}, h2 = {512, 7, 7, 128, 7, 7, 1, 1, 1, 0, 1};
  KConv h2x = {128, 7, 7, 512, 7, 7, 1, 1, 1, 0, 1}, h1x = {512, 7, 7, 64, 7, 7, 1, 1, 1, 0, 1};
  Call pixelcnn[] = {
      {"res 3x3 conv2d    fwd", FWD, r3},  {"res 3x3 conv2d_t  dx ", FWD_T, r3}, {"res 3x3 conv2d_dw dW ", DW, r3},
      {"res 1x1 conv2d    fwd", FWD, r1},  {"res 1x1 conv2d_t  dx ", FWD_T, r1}, {"res 1x1 conv2d_dw dW ", DW, r1},
      {"out 64->512       fwd", FWD, h1},  {"out 64->512       dx ", FWD_T, h1x}, {"out 64->512       dW ", DW, h1},
      {"out 512->128      fwd", FWD, h2},  {"out 512->128      dx ", FWD_T, h2x}, {"out 512->128      dW ", DW, h2},
  };
  int pix = getenv("CONV_BENCH_PIXELCNN") != NULL;
  Call *calls = pix ? pixelcnn : vae;
  int ncalls = pix ? (int)(sizeof pixelcnn / sizeof *pixelcnn) : (int)(sizeof vae / sizeof *vae);
  int threads[8] = {1, 2}, nth = 2;
  if (argc > 2) {
    nth = 0;
    for (int a = 2; a < argc && nth < 8; a++) threads[nth++] = atoi(argv[a]);
  }
  printf("conv_bench: %s, batch %ld, best of %d; OPENBLAS_CORETYPE=%s\n", pix ? "vqvae's pixelcnn" : "conv-vae", nb, reps,
         getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset");
  for (int ti = 0; ti < nth; ti++) {
    k_set_threads(threads[ti]);
    double total = 0, total_flops = 0, total_cpu = 0;
    printf("threads %d\n", threads[ti]);
    for (int k = 0; k < ncalls; k++) {
      const KConv *c = &calls[k].c;
      int t = calls[k].kind == FWD_T || calls[k].kind == DW_T;
      size_t per = k_conv_work(c, t);
      KWork w = {malloc(sizeof(float) * per * 8 + 64), per, 8};
      size_t xin = (size_t)(nb * c->C * c->H * c->W), yout = (size_t)(nb * c->O * c->OH * c->OW);
      size_t kn = (size_t)(c->O * c->C * c->KH * c->KW);
      float *x = randv(xin), *y = randv(yout), *kw = randv(kn);
      /* multiply-adds: forward conv2d O OH OW C KH KW per example; the
       * transposed one C H W O KH KW; the kernel gradients the same as
       * their forward op */
      double flops = 2.0 * nb * (double)kn * (t ? c->H * c->W : c->OH * c->OW);
      double best = 1e30, best_cpu = 1e30;
      for (int r = 0; r <= reps; r++) {
        double t0 = now(), c0 = cpu();
        switch (calls[k].kind) {
        case FWD: k_conv2d(y, x, kw, c, nb, &w); break;
        case FWD_T: k_conv2d_t(y, x, kw, c, nb, &w); break;
        case DW: k_conv2d_dw(kw, x, 1, y, 1, c, nb, &w); break;
        case DW_T: k_conv2d_t_dw(kw, x, 1, y, 1, c, nb, &w); break;
        }
        double dt = now() - t0, dc = cpu() - c0;
        if (r && dt < best) best = dt; /* r = 0: the warm-up */
        if (r && dc < best_cpu) best_cpu = dc;
      }
      printf("  %s  %8.3f ms  %6.1f GFLOP/s   cpu %8.3f ms\n", calls[k].what, 1e3 * best, flops / best * 1e-9, 1e3 * best_cpu);
      total += best;
      total_cpu += best_cpu;
      total_flops += flops;
      free(x), free(y), free(kw), free(w.base);
    }
    printf("  all convolutions of a step: %.3f ms, %.1f GFLOP/s, %.0f examples/s; cpu %.3f ms\n", 1e3 * total,
           total_flops / total * 1e-9, nb / total, 1e3 * total_cpu);
  }
  return 0;
}
