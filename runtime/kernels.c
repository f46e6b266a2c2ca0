/* kernels.c - the float32 kernels (see kernels.h).
 *
 * Numerics: softplus, sigmoid, logsumexp and softmax are computed in their
 * stable forms (no exp of a large positive number); softplus and sigmoid
 * with their own branch-free exp and log1p, within 4 ulp, so that they
 * vectorize (libm's are calls, one element at a time, and softplus was the
 * VAE's costliest elementwise op).  Reductions accumulate in double in a
 * fixed order.  Elementwise loops keep the switch on the op outside the
 * loop, so each loop is a plain vectorizable body (MAP). */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

static const float SELU_A = 1.6732632423543772f, SELU_S = 1.0507009873554805f;

/* ---------------------------------------------------------- elementwise */

/* y[i] = expr for i < n, written so that gcc and clang vectorize it at -O2
 * (gcc 12 vectorizes only loops of a constant trip count there): blocks of
 * VB computed into a local array (y may equal the operands) and copied
 * out, then a scalar tail.  expr must not branch: a conditional that the
 * compiler cannot turn into a select (one arm might trap, say a multiply)
 * keeps the block scalar, so selects pick between constants or plain
 * values, and the math below is written without branches. */
enum { VB = 16 };
#define MAP(n, i, expr)                                 \
  do {                                                  \
    long k_ = 0;                                        \
    for (; k_ + VB <= (n); k_ += VB) {                  \
      float t_[VB];                                     \
      for (int j_ = 0; j_ < VB; j_++) {                 \
        long i = k_ + j_;                               \
        t_[j_] = (expr);                                \
      }                                                 \
      memcpy(y + k_, t_, sizeof t_);                    \
    }                                                   \
    for (long i = k_; i < (n); i++) y[i] = (expr);      \
  } while (0)

static inline float from_bits(uint32_t w) {
  float f;
  memcpy(&f, &w, sizeof f);
  return f;
}
static inline uint32_t to_bits(float f) {
  uint32_t w;
  memcpy(&w, &f, sizeof w);
  return w;
}

/* e^-|x| (Cephes' expf: 2^k times a degree-6 polynomial, within 2 ulp;
 * denormal results to within a denormal ulp or two, 0 below -104, like
 * expf), NaN for NaN.  Without a branch: the argument is clamped on its
 * bits, and 2^k (k down to -150) is built as two normal factors. */
static inline float exp_negabs(float x) {
  uint32_t w = to_bits(x) | 0x80000000u, lim = 0xc2d00000u; /* -|x|, -104 */
  uint32_t below = 0u - (uint32_t)((w > lim) & (w <= 0xff800000u)); /* -inf .. -104, not NaN */
  float a = from_bits((lim & below) | (w & ~below));
  const float round = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  float t = a * 1.44269504088896341f + round, n = t - round;
  float r = a - n * 0.693359375f - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t k = (int32_t)(to_bits(t) - to_bits(round)), k1 = k / 2, k2 = k - k1;
  return p * from_bits((uint32_t)(k1 + 127) << 23) * from_bits((uint32_t)(k2 + 127) << 23);
}

/* log(1 + e) for e in [0, 1]: 2 atanh(f) with f = e / (2 + e) <= 1/3,
 * whose series f + f^3/3 + ... is within 2e-8 after f^13 / 13. */
static inline float log1p_unit(float e) {
  float f = e / (2.0f + e), z = f * f;
  float p = 1.0f / 13;
  p = p * z + 1.0f / 11;
  p = p * z + 1.0f / 9;
  p = p * z + 1.0f / 7;
  p = p * z + 1.0f / 5;
  p = p * z + 1.0f / 3;
  return 2.0f * (f + f * z * p);
}

/* max(x, 0) on the bits: 0 when the sign bit is set. */
static inline float pos_part(float x) {
  uint32_t w = to_bits(x);
  return from_bits(w & ((w >> 31) - 1u));
}

/* The stable forms, within 4 ulp of the exact values: softplus(x) =
 * max(x, 0) + log(1 + e^-|x|), sigmoid(x) = 1 / (1 + e^-x) or e^x / (1 +
 * e^x), whichever exponential is at most 1.  NaN gives NaN. */
static inline float softplusf(float x) { return pos_part(x) + log1p_unit(exp_negabs(x)); }
static inline float sigmoidf(float x) {
  float e = exp_negabs(x);
  return (x >= 0 ? 1.0f : e) / (1.0f + e);
}

void k_unary(Op op, float *y, const float *x, long n, float f) {
  switch (op) {
  case OP_NEG: MAP(n, i, -x[i]); break;
  case OP_EXP: for (long i = 0; i < n; i++) y[i] = expf(x[i]); break;
  case OP_LOG: for (long i = 0; i < n; i++) y[i] = logf(x[i]); break;
  case OP_SQRT: for (long i = 0; i < n; i++) y[i] = sqrtf(x[i]); break;
  case OP_ABS: MAP(n, i, fabsf(x[i])); break;
  case OP_SQUARE: MAP(n, i, x[i] * x[i]); break;
  case OP_RELU: MAP(n, i, x[i] > 0 ? x[i] : 0.0f); break;
  case OP_ELU: for (long i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : expm1f(x[i]); break;
  case OP_SELU: for (long i = 0; i < n; i++) y[i] = SELU_S * (x[i] > 0 ? x[i] : SELU_A * expm1f(x[i])); break;
  case OP_LEAKY_RELU: MAP(n, i, (x[i] > 0 ? x[i] : 0.0f) + f * (x[i] > 0 ? 0.0f : x[i])); break;
  case OP_TANH: for (long i = 0; i < n; i++) y[i] = tanhf(x[i]); break;
  case OP_SIGMOID: MAP(n, i, sigmoidf(x[i])); break;
  case OP_SOFTPLUS: MAP(n, i, softplusf(x[i])); break;
  case OP_STOP_GRAD: if (y != x) memmove(y, x, sizeof(float) * (size_t)n); break;
  case OP_STEP: MAP(n, i, x[i] > 0 ? 1.0f : 0.0f); break;
  case OP_SIGN: MAP(n, i, x[i] > 0 ? 1.0f : x[i] < 0 ? -1.0f : 0.0f); break;
  case OP_D_ELU: for (long i = 0; i < n; i++) y[i] = x[i] > 0 ? 1.0f : expf(x[i]); break;
  case OP_D_SELU: for (long i = 0; i < n; i++) y[i] = SELU_S * (x[i] > 0 ? 1.0f : SELU_A * expf(x[i])); break;
  case OP_D_LEAKY_RELU: MAP(n, i, x[i] > 0 ? 1.0f : f); break;
  default: for (long i = 0; i < n; i++) y[i] = NAN; break; /* not a unary op: a caller bug, made visible */
  }
}

void k_binary(Op op, float *y, const float *a, const float *b, long n) {
  switch (op) {
  case OP_ADD: MAP(n, i, a[i] + b[i]); break;
  case OP_SUB: MAP(n, i, a[i] - b[i]); break;
  case OP_MUL: MAP(n, i, a[i] * b[i]); break;
  case OP_DIV: MAP(n, i, a[i] / b[i]); break;
  default: for (long i = 0; i < n; i++) y[i] = NAN; break;
  }
}

/* ---------------------------------------------------------- broadcasting */

void k_view(KView *v, const long long *bd, int br, int bb, const long long *sd, int sr, int sb, long long B) {
  long long dim[K_MAX_DIMS], stride[K_MAX_DIMS];
  int r = 0;
  long long ssize = 1;
  for (int j = 0; j < sr; j++) ssize *= sd[j];
  if (bb) {
    dim[r] = B;
    stride[r] = sb ? ssize : 0;
    r++;
  }
  /* the small operand's row-major strides, aligned to the right */
  long long st = 1, sstr[K_MAX_DIMS];
  for (int j = sr - 1; j >= 0; j--) {
    sstr[j] = st;
    st *= sd[j];
  }
  for (int i = 0; i < br; i++) {
    int j = i - (br - sr);
    dim[r] = bd[i];
    stride[r] = j >= 0 && sd[j] != 1 ? sstr[j] : 0;
    r++;
  }
  /* drop dimensions of size 1, merge where the strides allow */
  v->rank = 0;
  for (int i = 0; i < r; i++) {
    if (dim[i] == 1) continue;
    if (v->rank > 0) {
      int l = v->rank - 1;
      if (v->stride[l] == stride[i] * dim[i]) {
        v->dim[l] *= dim[i];
        v->stride[l] = stride[i];
        continue;
      }
    }
    v->dim[v->rank] = dim[i];
    v->stride[v->rank] = stride[i];
    v->rank++;
  }
  if (v->rank == 0) {
    v->rank = 1;
    v->dim[0] = 1;
    v->stride[0] = 0;
  }
}

int k_view_kind(const KView *v) {
  if (v->rank == 1 && (v->stride[0] == 1 || v->dim[0] == 1)) return K_VIEW_CONTIG; /* one element: index 0 */
  for (int i = 0; i < v->rank; i++)
    if (v->stride[i]) return K_VIEW_GENERAL;
  return K_VIEW_SCALAR;
}

/* The multi-index of big element k and the small operand's offset. */
static long long unravel(const KView *v, long long k, long long *idx) {
  long long off = 0;
  for (int i = v->rank - 1; i >= 0; i--) {
    idx[i] = k % v->dim[i];
    k /= v->dim[i];
    off += idx[i] * v->stride[i];
  }
  return off;
}

/* Advances idx past the end of the innermost dimension (idx[last] ==
 * dim[last]), carrying; returns the new offset. */
static long long carry(const KView *v, long long *idx, long long off) {
  for (int i = v->rank - 1; i > 0 && idx[i] == v->dim[i]; i--) {
    off -= v->dim[i] * v->stride[i];
    idx[i] = 0;
    idx[i - 1]++;
    off += v->stride[i - 1];
  }
  return off;
}

void k_gather(float *y, const float *x, const KView *v, long long k0, long long n) {
  long long idx[K_MAX_DIMS], off = unravel(v, k0, idx), j = 0;
  int last = v->rank - 1;
  while (j < n) {
    long long run = v->dim[last] - idx[last], st = v->stride[last];
    if (run > n - j) run = n - j;
    if (st == 1) memcpy(y + j, x + off, sizeof(float) * (size_t)run);
    else if (st == 0) {
      float c = x[off];
      for (long long t = 0; t < run; t++) y[j + t] = c;
    } else
      for (long long t = 0; t < run; t++) y[j + t] = x[off + t * st];
    j += run;
    off += run * st;
    idx[last] += run;
    off = carry(v, idx, off);
  }
}

void k_reduce(float *y, const float *x, const KView *v, long long nbig, long long nsmall, double *acc) {
  for (long long i = 0; i < nsmall; i++) acc[i] = 0;
  long long idx[K_MAX_DIMS], off = unravel(v, 0, idx), k = 0;
  int last = v->rank - 1;
  while (k < nbig) {
    long long run = v->dim[last] - idx[last], st = v->stride[last];
    if (run > nbig - k) run = nbig - k;
    if (st == 0) {
      double s = acc[off];
      for (long long t = 0; t < run; t++) s += x[k + t];
      acc[off] = s;
    } else
      for (long long t = 0; t < run; t++) acc[off + t * st] += x[k + t];
    k += run;
    off += run * st;
    idx[last] += run;
    off = carry(v, idx, off);
  }
  for (long long i = 0; i < nsmall; i++) y[i] = (float)acc[i];
}

/* ------------------------------------------------------------ products */

/* OpenBLAS's own threads stay idle (openblas_set_num_threads(1)): its
 * threaded sgemm blocks the summed dimension differently for different
 * thread counts, so results would change in the last bits with --threads.
 * The products below are cut into tiles instead, fixed by the shape; each
 * tile is one single-threaded cblas_sgemm over the whole summed dimension,
 * so every output element is computed by the same call however many
 * threads share the tiles.  Weak: another CBLAS links too. */
extern void openblas_set_num_threads(int) __attribute__((weak));

void k_set_threads(int n) {
  pool_set_threads(n);
  k_blas_serial();
}

void k_blas_serial(void) {
  if (openblas_set_num_threads) openblas_set_num_threads(1);
}

static void sgemm(int ta, int tb, long M, long N, long K, const float *a, long lda, const float *b, long ldb, float beta,
                  float *c, long ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a,
              (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* Tiles are about TILE rows or columns wide, cut at multiples of 16 (64
 * bytes: in rows that start on a cache line, tiles do not share lines),
 * and come in an even number so that two threads share them evenly;
 * anything 64 or more wide is cut at least in two.  Every tile repacks the
 * operand it reads whole, which is what keeps tiles from being smaller: on
 * the VAE's products, tiles of 128 cost one thread 4% over uncut products,
 * and were the fastest of 64 to 256 (and of 2 tiles each) on two. */
enum { TILE = 128 };

static long tile_count(long d) {
  long nt = (d + TILE / 2) / TILE;
  if (nt < 2 && d >= 64) nt = 2;
  if (nt > 1 && nt % 2) nt++;
  return nt > 0 ? nt : 1;
}

/* The first row (column) of tile t of nt over d; t == nt gives d. */
static long tile_start(long d, long nt, long t) {
  if (t >= nt) return d;
  return ((d * t + nt / 2) / nt + 8) / 16 * 16;
}

/* A row-major C [M, N] = op(A) [M, K] op(B) [K, N] (+ bias[j] in every
 * row), cut into tiles along the larger of M and N: the operand every tile
 * reads whole is then the smaller one. */
typedef struct {
  int ta, tb;
  long M, N, K;
  const float *a, *b;
  long lda, ldb;
  float *c;
  long ldc;
  const float *bias; /* [N] or NULL */
  int by_rows; /* tiles are row ranges of C, else column ranges */
  long nt;
  int scan;        /* look for NaN and infinity in each tile, while in cache */
  atomic_int bad;  /* ... found */
} Gemm;

static void gemm_tile(void *ctx, long t, int slot) {
  (void)slot;
  Gemm *g = ctx;
  long d = g->by_rows ? g->M : g->N, lo = tile_start(d, g->nt, t), hi = tile_start(d, g->nt, t + 1);
  const float *a = g->a, *b = g->b;
  float *c = g->c;
  long m = g->M, n = g->N;
  const float *bias = g->bias;
  if (g->by_rows) {
    a += g->ta ? lo : lo * g->lda;
    c += lo * g->ldc;
    m = hi - lo;
  } else {
    b += g->tb ? lo * g->ldb : lo;
    c += lo;
    n = hi - lo;
    bias += bias ? lo : 0;
  }
  /* The bias goes in first and sgemm adds to it (beta 1), which saves
   * OpenBLAS's pass zeroing C (beta 0) as well as a pass adding it. */
  if (bias)
    for (long r = 0; r < m; r++) memcpy(c + r * g->ldc, bias, sizeof(float) * (size_t)n);
  sgemm(g->ta, g->tb, m, n, g->K, a, g->lda, b, g->ldb, bias ? 1.0f : 0.0f, c, g->ldc);
  if (g->scan)
    for (long r = 0; r < m; r++)
      if (k_any_nonfinite(c + r * g->ldc, n)) {
        atomic_store(&g->bad, 1);
        break;
      }
}

static int gemm_run(Gemm *g) {
  if (g->M <= 0 || g->N <= 0) return 0;
  if (g->K <= 0) {
    for (long r = 0; r < g->M; r++)
      if (g->bias) memcpy(g->c + r * g->ldc, g->bias, sizeof(float) * (size_t)g->N);
      else memset(g->c + r * g->ldc, 0, sizeof(float) * (size_t)g->N);
    return g->scan && g->bias && k_any_nonfinite(g->bias, g->N);
  }
  g->by_rows = g->M > g->N;
  g->nt = tile_count(g->by_rows ? g->M : g->N);
  atomic_init(&g->bad, 0);
  pool_run(g->nt, 0, gemm_tile, g);
  return atomic_load(&g->bad);
}

int k_matmul(float *y, const float *x, const float *w, const float *bias, long rows, long n, long m, int ta, int tb, int scan) {
  Gemm g = {.ta = ta, .tb = tb && !ta, .a = x, .b = w, .c = y, .ldc = m, .bias = ta ? NULL : bias, .scan = scan};
  if (!ta) {
    g.M = rows, g.N = m, g.K = n;
    g.lda = n, g.ldb = tb ? n : m;
  } else {
    g.M = n, g.N = m, g.K = rows;
    g.lda = n, g.ldb = m;
  }
  return gemm_run(&g);
}

/* col[r - r0][i ow + j] = img[c, i s - p + u d, j s - p + v d] for the rows
 * r = (c KH + u) KW + v in r0 .. r1 (0 outside the image): those rows of
 * the patches of a [ch, ih, iw] image under an (oh, ow) output grid. */
static void im2col(float *col, const float *img, long ih, long iw, long KH, long KW, long s, long p, long d, long oh, long ow,
                   long r0, long r1) {
  for (long r = r0; r < r1; r++) {
    long c = r / (KH * KW), u = r / KW % KH, v = r % KW;
    float *row = col + (r - r0) * oh * ow;
    for (long i = 0; i < oh; i++) {
      long hi = i * s - p + u * d;
      float *o = row + i * ow;
      if (hi < 0 || hi >= ih) {
        memset(o, 0, sizeof(float) * (size_t)ow);
        continue;
      }
      const float *src = img + (c * ih + hi) * iw;
      if (s == 1) {
        long off = -p + v * d; /* wi = j + off */
        long j0 = off < 0 ? -off : 0, j1 = iw - off < ow ? iw - off : ow;
        if (j1 < j0) j1 = j0;
        for (long j = 0; j < j0 && j < ow; j++) o[j] = 0;
        if (j1 > j0) memcpy(o + j0, src + j0 + off, sizeof(float) * (size_t)(j1 - j0));
        for (long j = j1 > j0 ? j1 : (j0 < ow ? j0 : ow); j < ow; j++) o[j] = 0;
      } else
        for (long j = 0; j < ow; j++) {
          long wi = j * s - p + v * d;
          o[j] = wi >= 0 && wi < iw ? src[wi] : 0.0f;
        }
    }
  }
}

/* The adjoint of im2col: img (zeroed first) gets every column entry added
 * at its pixel, in a fixed order. */
static void col2im(float *img, const float *col, long ch, long ih, long iw, long KH, long KW, long s, long p, long d, long oh,
                   long ow) {
  memset(img, 0, sizeof(float) * (size_t)(ch * ih * iw));
  for (long c = 0; c < ch; c++)
    for (long u = 0; u < KH; u++)
      for (long v = 0; v < KW; v++) {
        const float *row = col + ((c * KH + u) * KW + v) * oh * ow;
        for (long i = 0; i < oh; i++) {
          long hi = i * s - p + u * d;
          if (hi < 0 || hi >= ih) continue;
          float *dst = img + (c * ih + hi) * iw;
          const float *r = row + i * ow;
          for (long j = 0; j < ow; j++) {
            long wi = j * s - p + v * d;
            if (wi >= 0 && wi < iw) dst[wi] += r[j];
          }
        }
      }
}

static int pointwise(const KConv *c) { return c->KH == 1 && c->KW == 1 && c->s == 1 && c->p == 0; }

size_t k_conv_work(const KConv *c, int transposed) {
  if (!transposed) return (size_t)(c->C * c->KH * c->KW * c->OH * c->OW);
  return (size_t)(c->O * c->KH * c->KW * c->H * c->W);
}

/* The convolutions run one task per example (conv2d, conv2d_transpose) or
 * per column tile of the kernel gradient (the dw ops, which sum over the
 * examples in order), each with its thread's workspace. */
typedef struct {
  float *y;
  const float *x, *w;
  int xb, wb; /* the dw ops: whether x and dy have a batch axis */
  const KConv *c;
  long nb, nt;
  const KWork *work;
} Conv;

static float *work_of(const KWork *w, int slot) { return w->base + (size_t)slot * w->stride; }

static void conv2d_example(void *ctx, long b, int slot) {
  const Conv *k = ctx;
  const KConv *c = k->c;
  long ckk = c->C * c->KH * c->KW, ohw = c->OH * c->OW;
  const float *xb = k->x + b * c->C * c->H * c->W, *col = xb;
  if (!pointwise(c)) {
    float *work = work_of(k->work, slot);
    im2col(work, xb, c->H, c->W, c->KH, c->KW, c->s, c->p, c->d, c->OH, c->OW, 0, ckk);
    col = work;
  }
  sgemm(0, 0, c->O, ohw, ckk, k->w, ckk, col, ohw, 0.0f, k->y + b * c->O * ohw, ohw);
}

void k_conv2d(float *y, const float *x, const float *w, const KConv *c, long nb, const KWork *work) {
  Conv k = {.y = y, .x = x, .w = w, .c = c, .nb = nb, .work = work};
  pool_run(nb, work->n, conv2d_example, &k);
}

/* y [O, OH, OW] is the image side: columns [O KH KW, H W] = w^T x, then
 * scattered back (col2im) with the forward geometry OH x OW -> H x W. */
static void conv2d_t_example(void *ctx, long b, int slot) {
  const Conv *k = ctx;
  const KConv *c = k->c;
  long okk = c->O * c->KH * c->KW, hw = c->H * c->W;
  int pw = pointwise(c) && c->OH == c->H && c->OW == c->W;
  float *yb = k->y + b * c->O * c->OH * c->OW, *col = pw ? yb : work_of(k->work, slot);
  sgemm(1, 0, okk, hw, c->C, k->w, okk, k->x + b * c->C * hw, hw, 0.0f, col, hw);
  if (!pw) col2im(yb, col, c->O, c->OH, c->OW, c->KH, c->KW, c->s, c->p, c->d, c->H, c->W);
}

void k_conv2d_t(float *y, const float *x, const float *w, const KConv *c, long nb, const KWork *work) {
  Conv k = {.y = y, .x = x, .w = w, .c = c, .nb = nb, .work = work};
  pool_run(nb, work->n, conv2d_t_example, &k);
}

/* Columns lo .. hi of dW [O, C KH KW] = sum over the examples of dy [O, OH
 * OW] times the rows lo .. hi of x's columns, transposed. */
static void conv2d_dw_tile(void *ctx, long t, int slot) {
  const Conv *k = ctx;
  const KConv *c = k->c;
  long ckk = c->C * c->KH * c->KW, ohw = c->OH * c->OW;
  long lo = tile_start(ckk, k->nt, t), hi = tile_start(ckk, k->nt, t + 1);
  for (long b = 0; b < k->nb; b++) {
    const float *xe = k->x + (k->xb ? b : 0) * c->C * c->H * c->W, *de = k->w + (k->wb ? b : 0) * c->O * ohw;
    const float *col = xe + lo * ohw; /* pointwise: x itself, [C, H W] */
    if (!pointwise(c)) {
      float *work = work_of(k->work, slot);
      im2col(work, xe, c->H, c->W, c->KH, c->KW, c->s, c->p, c->d, c->OH, c->OW, lo, hi);
      col = work;
    }
    sgemm(0, 1, c->O, hi - lo, ohw, de, ohw, col, ohw, b ? 1.0f : 0.0f, k->y + lo, ckk);
  }
}

void k_conv2d_dw(float *dw, const float *x, int xb, const float *dy, int db, const KConv *c, long nb, const KWork *work) {
  long ckk = c->C * c->KH * c->KW;
  if (nb <= 0) {
    memset(dw, 0, sizeof(float) * (size_t)(c->O * ckk));
    return;
  }
  Conv k = {.y = dw, .x = x, .w = dy, .xb = xb, .wb = db, .c = c, .nb = nb, .nt = tile_count(ckk), .work = work};
  pool_run(k.nt, work->n, conv2d_dw_tile, &k);
}

/* Columns lo .. hi of dW [C, O KH KW] = sum over the examples of x [C, H W]
 * times the rows lo .. hi of dy's columns (under the forward geometry of
 * the transposed convolution), transposed. */
static void conv2d_t_dw_tile(void *ctx, long t, int slot) {
  const Conv *k = ctx;
  const KConv *c = k->c;
  long okk = c->O * c->KH * c->KW, hw = c->H * c->W;
  long lo = tile_start(okk, k->nt, t), hi = tile_start(okk, k->nt, t + 1);
  int pw = pointwise(c) && c->OH == c->H && c->OW == c->W;
  for (long b = 0; b < k->nb; b++) {
    const float *xe = k->x + (k->xb ? b : 0) * c->C * hw, *de = k->w + (k->wb ? b : 0) * c->O * c->OH * c->OW;
    const float *col = de + lo * hw;
    if (!pw) {
      float *work = work_of(k->work, slot);
      im2col(work, de, c->OH, c->OW, c->KH, c->KW, c->s, c->p, c->d, c->H, c->W, lo, hi);
      col = work;
    }
    sgemm(0, 1, c->C, hi - lo, hw, xe, hw, col, hw, b ? 1.0f : 0.0f, k->y + lo, okk);
  }
}

void k_conv2d_t_dw(float *dw, const float *x, int xb, const float *dy, int db, const KConv *c, long nb, const KWork *work) {
  long okk = c->O * c->KH * c->KW;
  if (nb <= 0) {
    memset(dw, 0, sizeof(float) * (size_t)(c->C * okk));
    return;
  }
  Conv k = {.y = dw, .x = x, .w = dy, .xb = xb, .wb = db, .c = c, .nb = nb, .nt = tile_count(okk), .work = work};
  pool_run(k.nt, work->n, conv2d_t_dw_tile, &k);
}

/* ---------------------------------------------------------- reductions */

void k_sum(float *y, const float *x, long nb, long n) {
  for (long b = 0; b < nb; b++) {
    double s = 0;
    const float *xb = x + b * n;
    for (long k = 0; k < n; k++) s += xb[k];
    y[b] = (float)s;
  }
}

void k_sum_axis(float *y, const float *x, long pre, long mid, long post, double *acc) {
  for (long i = 0; i < pre; i++) {
    for (long j = 0; j < post; j++) acc[j] = 0;
    for (long m = 0; m < mid; m++) {
      const float *r = x + (i * mid + m) * post;
      for (long j = 0; j < post; j++) acc[j] += r[j];
    }
    for (long j = 0; j < post; j++) y[i * post + j] = (float)acc[j];
  }
}

void k_logsumexp(float *y, const float *x, long nb, long K, long post) {
  for (long b = 0; b < nb; b++)
    for (long j = 0; j < post; j++) {
      const float *xc = x + b * K * post + j;
      float mx = -INFINITY;
      int nan = 0;
      for (long k = 0; k < K; k++) {
        float v = xc[k * post];
        if (v != v) nan = 1;
        if (v > mx) mx = v;
      }
      if (nan) {
        y[b * post + j] = NAN;
        continue;
      }
      if (isinf(mx)) { /* all -inf: -inf; any +inf: +inf */
        y[b * post + j] = mx;
        continue;
      }
      double s = 0;
      for (long k = 0; k < K; k++) s += exp((double)(xc[k * post] - mx));
      y[b * post + j] = (float)((double)mx + log(s));
    }
}

void k_softmax(float *y, const float *x, long nb, long K, long post) {
  for (long b = 0; b < nb; b++)
    for (long j = 0; j < post; j++) {
      const float *xc = x + b * K * post + j;
      float *yc = y + b * K * post + j;
      float mx = -INFINITY;
      for (long k = 0; k < K; k++)
        if (xc[k * post] > mx) mx = xc[k * post];
      double s = 0;
      for (long k = 0; k < K; k++) s += exp((double)(xc[k * post] - mx));
      for (long k = 0; k < K; k++) yc[k * post] = (float)(exp((double)(xc[k * post] - mx)) / s);
    }
}

/* Columns j0 .. j0 + w of k_sum_rows, w <= SUM_W.  The block of a constant
 * SUM_W columns is a separate loop so that the compiler vectorizes it. */
enum { SUM_W = 32 };

static void sum_block(float *y, const float *x, long rows, long cols, long j0, long w, double div) {
  double acc[SUM_W] = {0};
  if (w == SUM_W)
    for (long r = 0; r < rows; r++)
      for (int j = 0; j < SUM_W; j++) acc[j] += x[r * cols + j0 + j];
  else
    for (long r = 0; r < rows; r++)
      for (long j = 0; j < w; j++) acc[j] += x[r * cols + j0 + j];
  for (long j = 0; j < w; j++) y[j0 + j] = (float)(acc[j] / div);
}

void k_sum_rows(float *y, const float *x, long rows, long cols, long c0, long c1, double div) {
  for (long j0 = c0; j0 < c1; j0 += SUM_W) sum_block(y, x, rows, cols, j0, c1 - j0 < SUM_W ? c1 - j0 : SUM_W, div);
}

/* ---------------------------------------------------------------- codes */

/* A code as an index, or -1 when it is not one of 0..K-1. */
static inline long code(float c, long K) {
  if (!(c >= 0) || c >= (float)K) return -1;
  return (long)c;
}

int k_embed(float *y, const float *table, int tb, long K, long D, const float *codes, int cb, long rest, long nb, long *bad) {
  for (long b = 0; b < nb; b++) {
    const float *t = table + (tb ? b : 0) * K * D, *cs = codes + (cb ? b : 0) * rest;
    float *yb = y + b * D * rest;
    for (long r = 0; r < rest; r++) {
      long c = code(cs[r], K);
      if (c < 0) {
        *bad = (cb ? b : 0) * rest + r;
        return -1;
      }
      for (long j = 0; j < D; j++) yb[j * rest + r] = t[c * D + j];
    }
  }
  return 0;
}

int k_embed_dw(float *dt, const float *dy, int db, const float *codes, int cb, long K, long D, long rest, long nb, double *acc,
               long *bad) {
  for (long i = 0; i < K * D; i++) acc[i] = 0;
  for (long b = 0; b < nb; b++) {
    const float *d = dy + (db ? b : 0) * D * rest, *cs = codes + (cb ? b : 0) * rest;
    for (long r = 0; r < rest; r++) {
      long c = code(cs[r], K);
      if (c < 0) {
        *bad = (cb ? b : 0) * rest + r;
        return -1;
      }
      for (long j = 0; j < D; j++) acc[c * D + j] += d[j * rest + r];
    }
  }
  for (long i = 0; i < K * D; i++) dt[i] = (float)acc[i];
  return 0;
}

int k_onehot(float *y, const float *codes, long K, long rest, long nb, long *bad) {
  memset(y, 0, sizeof(float) * (size_t)(nb * K * rest));
  for (long b = 0; b < nb; b++)
    for (long r = 0; r < rest; r++) {
      long c = code(codes[b * rest + r], K);
      if (c < 0) {
        *bad = b * rest + r;
        return -1;
      }
      y[b * K * rest + c * rest + r] = 1;
    }
  return 0;
}

int k_pick(float *y, const float *x, int xb, long K, const float *codes, int cb, long rest, long nb, long *bad) {
  for (long b = 0; b < nb; b++) {
    const float *xe = x + (xb ? b : 0) * K * rest, *cs = codes + (cb ? b : 0) * rest;
    for (long r = 0; r < rest; r++) {
      long c = code(cs[r], K);
      if (c < 0) {
        *bad = (cb ? b : 0) * rest + r;
        return -1;
      }
      y[b * rest + r] = xe[c * rest + r];
    }
  }
  return 0;
}

int k_pick_dx(float *y, const float *dy, int db, const float *codes, int cb, long K, long rest, long nb, long *bad) {
  memset(y, 0, sizeof(float) * (size_t)(nb * K * rest));
  for (long b = 0; b < nb; b++) {
    const float *d = dy + (db ? b : 0) * rest, *cs = codes + (cb ? b : 0) * rest;
    for (long r = 0; r < rest; r++) {
      long c = code(cs[r], K);
      if (c < 0) {
        *bad = (cb ? b : 0) * rest + r;
        return -1;
      }
      y[b * K * rest + c * rest + r] = d[r];
    }
  }
  return 0;
}

void k_nearest(float *y, const float *z, long D, long rest, const float *book, long K, long nb) {
  for (long b = 0; b < nb; b++)
    for (long r = 0; r < rest; r++) {
      const float *zc = z + b * D * rest + r;
      double best = INFINITY;
      long arg = 0;
      for (long k = 0; k < K; k++) {
        double d2 = 0;
        for (long j = 0; j < D; j++) {
          double t = (double)zc[j * rest] - (double)book[k * D + j];
          d2 += t * t;
        }
        if (d2 < best) {
          best = d2;
          arg = k;
        }
      }
      y[b * rest + r] = (float)arg;
    }
}

/* ----------------------------------------------------- sources, draws */

/* Parses a comma list of integers into v (up to n of them); returns how
 * many, or -1 when malformed or too long; *end after it. */
static long parse_list(const char *s, long long *v, long n, const char **end) {
  long k = 0;
  if (*s == '|' || *s == '\0') {
    *end = s;
    return 0;
  }
  for (;;) {
    char *e;
    long long x = strtoll(s, &e, 10);
    if (e == s || k >= n) return -1;
    v[k++] = x;
    s = e;
    if (*s != ',') break;
    s++;
  }
  *end = s;
  return k;
}

int k_mask_degree(float *y, const char *spec, long rows, long cols) {
  if (!spec || rows < 0 || cols < 0) return -1;
  long long *din = malloc(sizeof(long long) * (size_t)(rows + 1)), *dout = malloc(sizeof(long long) * (size_t)(cols + 1));
  int ok = din && dout;
  const char *s = spec;
  if (ok) ok = parse_list(s, din, rows, &s) == rows && *s == '|';
  if (ok) ok = parse_list(s + 1, dout, cols, &s) == cols && *s == '|';
  int strict = 0;
  if (ok) {
    s++;
    if (!strcmp(s, "strict")) strict = 1;
    else ok = *s == '\0';
  }
  if (ok)
    for (long i = 0; i < rows; i++)
      for (long j = 0; j < cols; j++) y[i * cols + j] = (strict ? dout[j] > din[i] : dout[j] >= din[i]) ? 1.0f : 0.0f;
  free(din);
  free(dout);
  return ok ? 0 : -1;
}

int k_mask_conv(float *y, const char *type, long O, long C, long KH, long KW) {
  if (!type || (strcmp(type, "A") && strcmp(type, "B"))) return -1;
  int b = type[0] == 'B';
  long ch = KH / 2, cw = KW / 2, kk = KH * KW;
  for (long u = 0; u < KH; u++)
    for (long v = 0; v < KW; v++) y[u * KW + v] = u < ch || (u == ch && (v < cw || (b && v == cw))) ? 1.0f : 0.0f;
  for (long i = 1; i < O * C; i++) memcpy(y + i * kk, y, sizeof(float) * (size_t)kk);
  return 0;
}

void k_sample_bernoulli(float *y, const float *logits, const float *u, long n) {
  for (long i = 0; i < n; i++) {
    float p = sigmoidf(logits[i]);
    y[i] = u[i] < p ? 1.0f : 0.0f;
  }
}

void k_sample_categorical(float *y, const float *logits, const float *u, long nb, long K, long post) {
  for (long b = 0; b < nb; b++)
    for (long j = 0; j < post; j++) {
      const float *xc = logits + b * K * post + j;
      float mx = -INFINITY;
      for (long k = 0; k < K; k++)
        if (xc[k * post] > mx) mx = xc[k * post];
      double total = 0;
      for (long k = 0; k < K; k++) total += exp((double)(xc[k * post] - mx));
      double t = (double)u[b * post + j] * total, c = 0;
      long pick = K - 1;
      for (long k = 0; k < K; k++) {
        c += exp((double)(xc[k * post] - mx));
        if (t < c) {
          pick = k;
          break;
        }
      }
      y[b * post + j] = (float)pick;
    }
}

/* ---------------------------------------------------------------- checks */

/* Bit 31 of (exponent field + 1) is set exactly when the exponent is all
 * ones: NaN or infinity.  OR-ed over the array in four vectors of four
 * (GNU C vector extensions, which gcc and clang lower to whatever the
 * target has), a scan runs at about four floats a cycle: it checks the
 * products' tiles while they are in cache at a few percent of their
 * cost.  Plain C reaches a third of that at -O2. */
typedef uint32_t u32x4 __attribute__((vector_size(16)));

int k_any_nonfinite(const float *x, long n) {
  const u32x4 exp = {0x7f800000u, 0x7f800000u, 0x7f800000u, 0x7f800000u};
  const u32x4 one = {0x00800000u, 0x00800000u, 0x00800000u, 0x00800000u};
  u32x4 m0 = {0}, m1 = {0}, m2 = {0}, m3 = {0}, v0, v1, v2, v3; /* four chains: no loop-carried wait */
  long k = 0;
  for (; k + 16 <= n; k += 16) {
    memcpy(&v0, x + k, sizeof v0);
    memcpy(&v1, x + k + 4, sizeof v1);
    memcpy(&v2, x + k + 8, sizeof v2);
    memcpy(&v3, x + k + 12, sizeof v3);
    m0 |= (v0 & exp) + one;
    m1 |= (v1 & exp) + one;
    m2 |= (v2 & exp) + one;
    m3 |= (v3 & exp) + one;
  }
  u32x4 all = m0 | m1 | m2 | m3;
  uint32_t bits = all[0] | all[1] | all[2] | all[3];
  for (; k < n; k++) bits |= (to_bits(x[k]) & 0x7f800000u) + 0x00800000u;
  return (int)(bits >> 31);
}

long k_first_nonfinite(const float *x, long n) {
  const long blk = 1024;
  for (long k0 = 0; k0 < n; k0 += blk) {
    long len = n - k0 < blk ? n - k0 : blk;
    if (k_any_nonfinite(x + k0, len))
      for (long k = k0; k < k0 + len; k++)
        if (!isfinite(x[k])) return k;
  }
  return -1;
}
