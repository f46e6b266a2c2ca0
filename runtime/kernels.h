/* kernels.h - the float32 kernels of the runtime: one function per kind of
 * op of compiler/ops.h (docs/IR.md §6 gives every op's meaning).  They work
 * on plain row-major float arrays; runtime/exec.c maps graph nodes onto
 * them.  Nothing here allocates: callers pass any workspace.
 *
 * Threads and determinism: the kernels split their work into tasks fixed
 * by the shape of the problem, never by the number of threads, and run
 * them on the runtime's threads (runtime/pool.h).  Matrix products are
 * cut into tiles of the output, each one single-threaded cblas_sgemm over
 * the whole summed dimension (OpenBLAS's own threads stay idle); every
 * other reduction (sums, logsumexp, softmax, reduce_to, batch_mean, the
 * table gradients) runs in a fixed sequential order with double
 * accumulators.  So a result never depends on the thread count.
 *
 * Integer codes (codes=K nodes) are stored as floats holding 0..K-1. */
#ifndef VML_KERNELS_H
#define VML_KERNELS_H

#include <stddef.h>

#include "ops.h"

/* ---------------------------------------------------------- elementwise */

/* y[i] = op(x[i]) for the one-input elementwise ops; f is the slope of
 * leaky_relu and d_leaky_relu.  y may equal x. */
void k_unary(Op op, float *y, const float *x, long n, float f);

/* y[i] = a[i] op b[i] for add, sub, mul, div.  y may equal a or b. */
void k_binary(Op op, float *y, const float *a, const float *b, long n);

/* Broadcasting: a view of a smaller operand over the index space of a
 * bigger one.  dim[] are the big array's dimensions (the batch axis first
 * when it has one), stride[] the small operand's element stride along
 * each (0 where it is broadcast).  Adjacent dimensions are merged when
 * their strides allow, so most views end up with one or two dimensions. */
#define K_MAX_DIMS 10
typedef struct {
  int rank;
  long long dim[K_MAX_DIMS];
  long long stride[K_MAX_DIMS];
} KView;

/* The view of `small` (per-example shape sd[0..sr), with a batch axis in
 * front when sb) over `big` (bd[0..br), batch axis when bb) for a batch of
 * B, numpy rules: trailing dimensions align, a dimension of 1 broadcasts.
 * When the big array is batched and the small one is not, the small one
 * repeats for every example.  When the small one is batched and the big
 * one is not (reduce_to to an unbatched target: the roles swapped), pass
 * the batched operand as `big`. */
void k_view(KView *v, const long long *bd, int br, int bb, const long long *sd, int sr, int sb, long long B);

/* Kind of a view: K_VIEW_CONTIG when the small operand is laid out like
 * the big one (index k maps to k), K_VIEW_SCALAR when every index maps to
 * element 0, K_VIEW_GENERAL otherwise. */
enum { K_VIEW_CONTIG, K_VIEW_SCALAR, K_VIEW_GENERAL };
int k_view_kind(const KView *v);

/* y[j] = x[index of big element k0 + j] for j < n. */
void k_gather(float *y, const float *x, const KView *v, long long k0, long long n);

/* reduce_to: y[index of k] += x[k] over all big elements k in order
 * (nbig of them), accumulated in acc (nsmall doubles), then stored in y. */
void k_reduce(float *y, const float *x, const KView *v, long long nbig, long long nsmall, double *acc);

/* ------------------------------------------------------------- threads */

/* The number of threads the kernels use, the caller's included (n < 1:
 * the number of online CPUs, the default); also k_blas_serial(). */
void k_set_threads(int n);
/* Makes OpenBLAS single-threaded (the kernels thread its products
 * themselves).  Idempotent and cheap. */
void k_blas_serial(void);

/* Per-thread workspace: n areas of `stride` floats, one per thread; a
 * kernel given one uses at most n threads. */
typedef struct {
  float *base;
  size_t stride;
  int n;
} KWork;

/* ------------------------------------------------------------ products */

/* matmul with the batch axis and leading axes folded into `rows`:
 *   ta = 0: y[rows, m] = x[rows, n] @ (tb ? w[m, n]^T : w[n, m]) (+ bias)
 *   ta = 1: y[n, m]    = x[rows, n]^T @ w[rows, m]   (tb must be 0)
 * Transposes are sgemm flags; nothing is copied.  bias [m] (ta = 0 only;
 * NULL for none) is added to every row, on the way: the dense layer's
 * matmul and add in one pass.  With scan, each tile is checked for NaN and
 * infinity as soon as it is computed (while in cache); returns 1 when one
 * was found, else 0. */
int k_matmul(float *y, const float *x, const float *w, const float *bias, long rows, long n, long m, int ta, int tb, int scan);

/* Convolution geometry: image [C, H, W], kernel KH x KW, output
 * [O, OH, OW] of the forward convolution; s stride, p padding, d
 * dilation.  For the transposed ops the roles are swapped: the
 * transposed convolution maps [C, H, W] (the forward op's output side) to
 * [O, OH, OW] (its input side); see kernels.c. */
typedef struct {
  long C, H, W;    /* input image per example */
  long O, OH, OW;  /* output image per example */
  long KH, KW;
  long s, p, d;
} KConv;

/* Floats of workspace per thread the conv kernels below need (im2col
 * columns). */
size_t k_conv_work(const KConv *c, int transposed);

/* conv2d: x [nb, C, H, W] (xb: batched, else one image), w [O, C, KH, KW]
 * -> y [nb, O, OH, OW]. */
void k_conv2d(float *y, const float *x, const float *w, const KConv *c, long nb, const KWork *work);
/* conv2d_transpose: x [nb, C, H, W], w [C, O, KH, KW] -> y [nb, O, OH, OW]
 * with OH = (H - 1)s - 2p + d(KH - 1) + outpad + 1. */
void k_conv2d_t(float *y, const float *x, const float *w, const KConv *c, long nb, const KWork *work);
/* conv2d_dw: dW [O, C, KH, KW] = sum over the batch of the kernel gradient
 * of conv2d with input x [C, H, W] and output gradient dy [O, OH, OW].
 * nb examples; xb / db say which operand has a batch axis. */
void k_conv2d_dw(float *dw, const float *x, int xb, const float *dy, int db, const KConv *c, long nb, const KWork *work);
/* conv2d_transpose_dw: dW [C, O, KH, KW]; x [C, H, W], dy [O, OH, OW]. */
void k_conv2d_t_dw(float *dw, const float *x, int xb, const float *dy, int db, const KConv *c, long nb, const KWork *work);

/* ---------------------------------------------------------- reductions */

/* y[b] = sum of x[b, 0..n) for b < nb. */
void k_sum(float *y, const float *x, long nb, long n);
/* y[i, j] = sum over m of x[i, m, j]: pre x mid x post, acc post doubles. */
void k_sum_axis(float *y, const float *x, long pre, long mid, long post, double *acc);
/* Over axis 0 of [K, post], for each of nb blocks: y[j] = log sum_k exp
 * x[k, j] (stable: the maximum taken out). */
void k_logsumexp(float *y, const float *x, long nb, long K, long post);
/* y[k, j] = softmax over k of x[., j]; y may not alias x. */
void k_softmax(float *y, const float *x, long nb, long K, long post);
/* Columns c0 .. c1 of the sums over the rows of x [rows, cols], rows in
 * order, in double, divided by div: y[j] = (sum_r x[r, j]) / div.  The
 * column ranges of one array can be computed in any order or at once. */
void k_sum_rows(float *y, const float *x, long rows, long cols, long c0, long c1, double div);

/* ---------------------------------------------------------------- codes */

/* Each returns 0, or -1 when a code is outside 0..K-1 (*bad gets its
 * position).  nb examples; tb / cb say whether table / x / codes are
 * batched (unbatched operands repeat). */
int k_embed(float *y, const float *table, int tb, long K, long D, const float *codes, int cb, long rest, long nb, long *bad);
int k_embed_dw(float *dt, const float *dy, int db, const float *codes, int cb, long K, long D, long rest, long nb,
               double *acc, long *bad);
int k_onehot(float *y, const float *codes, long K, long rest, long nb, long *bad);
int k_pick(float *y, const float *x, int xb, long K, const float *codes, int cb, long rest, long nb, long *bad);
int k_pick_dx(float *y, const float *dy, int db, const float *codes, int cb, long K, long rest, long nb, long *bad);
/* z [nb, D, rest], codebook [K, D] -> codes [nb, rest]: the nearest row
 * (squared distance, lowest index on ties). */
void k_nearest(float *y, const float *z, long D, long rest, const float *book, long K, long nb);

/* ----------------------------------------------------- sources, draws */

/* MADE mask from "DIN|DOUT|strict" (comma lists; "strict" or empty):
 * y[i, j] = 1 if dout[j] >= din[i] (> when strict).  Returns -1 when the
 * text is malformed or the lists are not rows x cols long. */
int k_mask_degree(float *y, const char *spec, long rows, long cols);
/* PixelCNN mask [O, C, KH, KW], the same for every (o, c): with the centre
 * (ch, cw) = (KH / 2, KW / 2), y = 1 at (u, v) when u < ch, or u == ch and
 * v < cw; type B also at the centre (u, v) = (ch, cw); 0 elsewhere (the
 * rest of the centre row and every row below it).  Returns -1 unless the
 * type is "A" or "B". */
int k_mask_conv(float *y, const char *type, long O, long C, long KH, long KW);
/* y = 1 where u < sigmoid(logits), else 0. */
void k_sample_bernoulli(float *y, const float *logits, const float *u, long n);
/* logits [nb, K, post], one uniform per position u [nb, post] -> codes
 * [nb, post]: the first k with u < cumulative softmax (in the order k =
 * 0..K-1, in double), K - 1 when rounding leaves u above the total. */
void k_sample_categorical(float *y, const float *logits, const float *u, long nb, long K, long post);

/* ---------------------------------------------------------------- checks */

/* 1 when x[0..n) holds a NaN or an infinity, else 0 (at memory speed). */
int k_any_nonfinite(const float *x, long n);
/* The index of the first NaN or infinity in x[0..n), or -1. */
long k_first_nonfinite(const float *x, long n);

#endif
