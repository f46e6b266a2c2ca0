/* kernels.c - the float32 kernels (see kernels.h).
 *
 * Numerics: softplus, sigmoid, logsumexp and softmax are computed in their
 * stable forms (no exp of a large positive number); reductions accumulate
 * in double in a fixed order.  Elementwise loops keep the switch on the op
 * outside the loop, so each loop is a plain vectorizable body. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const float SELU_A = 1.6732632423543772f, SELU_S = 1.0507009873554805f;

/* ---------------------------------------------------------- elementwise */

static inline float softplusf(float x) { return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)); }
static inline float sigmoidf(float x) {
  if (x >= 0) return 1 / (1 + expf(-x));
  float e = expf(x);
  return e / (1 + e);
}

void k_unary(Op op, float *y, const float *x, long n, float f) {
  long i;
  switch (op) {
  case OP_NEG: for (i = 0; i < n; i++) y[i] = -x[i]; break;
  case OP_EXP: for (i = 0; i < n; i++) y[i] = expf(x[i]); break;
  case OP_LOG: for (i = 0; i < n; i++) y[i] = logf(x[i]); break;
  case OP_SQRT: for (i = 0; i < n; i++) y[i] = sqrtf(x[i]); break;
  case OP_ABS: for (i = 0; i < n; i++) y[i] = fabsf(x[i]); break;
  case OP_SQUARE: for (i = 0; i < n; i++) y[i] = x[i] * x[i]; break;
  case OP_RELU: for (i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f; break;
  case OP_ELU: for (i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : expm1f(x[i]); break;
  case OP_SELU: for (i = 0; i < n; i++) y[i] = SELU_S * (x[i] > 0 ? x[i] : SELU_A * expm1f(x[i])); break;
  case OP_LEAKY_RELU: for (i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : f * x[i]; break;
  case OP_TANH: for (i = 0; i < n; i++) y[i] = tanhf(x[i]); break;
  case OP_SIGMOID: for (i = 0; i < n; i++) y[i] = sigmoidf(x[i]); break;
  case OP_SOFTPLUS: for (i = 0; i < n; i++) y[i] = softplusf(x[i]); break;
  case OP_STOP_GRAD: if (y != x) memmove(y, x, sizeof(float) * (size_t)n); break;
  case OP_STEP: for (i = 0; i < n; i++) y[i] = x[i] > 0 ? 1.0f : 0.0f; break;
  case OP_SIGN: for (i = 0; i < n; i++) y[i] = x[i] > 0 ? 1.0f : x[i] < 0 ? -1.0f : 0.0f; break;
  case OP_D_ELU: for (i = 0; i < n; i++) y[i] = x[i] > 0 ? 1.0f : expf(x[i]); break;
  case OP_D_SELU: for (i = 0; i < n; i++) y[i] = SELU_S * (x[i] > 0 ? 1.0f : SELU_A * expf(x[i])); break;
  case OP_D_LEAKY_RELU: for (i = 0; i < n; i++) y[i] = x[i] > 0 ? 1.0f : f; break;
  default: for (i = 0; i < n; i++) y[i] = NAN; break; /* not a unary op: a caller bug, made visible */
  }
}

void k_binary(Op op, float *y, const float *a, const float *b, long n) {
  long i;
  switch (op) {
  case OP_ADD: for (i = 0; i < n; i++) y[i] = a[i] + b[i]; break;
  case OP_SUB: for (i = 0; i < n; i++) y[i] = a[i] - b[i]; break;
  case OP_MUL: for (i = 0; i < n; i++) y[i] = a[i] * b[i]; break;
  case OP_DIV: for (i = 0; i < n; i++) y[i] = a[i] / b[i]; break;
  default: for (i = 0; i < n; i++) y[i] = NAN; break;
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

void k_matmul(float *y, const float *x, const float *w, long rows, long n, long m, int ta, int tb) {
  if (!ta) {
    if (rows <= 0 || m <= 0) return;
    if (n <= 0) {
      memset(y, 0, sizeof(float) * (size_t)rows * (size_t)m);
      return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)rows, (int)m, (int)n, 1.0f, x, (int)n, w,
                tb ? (int)n : (int)m, 0.0f, y, (int)m);
  } else {
    if (n <= 0 || m <= 0) return;
    if (rows <= 0) {
      memset(y, 0, sizeof(float) * (size_t)n * (size_t)m);
      return;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)m, (int)rows, 1.0f, x, (int)n, w, (int)m, 0.0f, y,
                (int)m);
  }
}

/* col[(c KH + u) KW + v][i ow + j] = img[c, i s - p + u d, j s - p + v d]
 * (0 outside the image): the patches of a [ch, ih, iw] image under an
 * (oh, ow) output grid. */
static void im2col(float *col, const float *img, long ch, long ih, long iw, long KH, long KW, long s, long p, long d, long oh,
                   long ow) {
  for (long c = 0; c < ch; c++)
    for (long u = 0; u < KH; u++)
      for (long v = 0; v < KW; v++) {
        float *row = col + ((c * KH + u) * KW + v) * oh * ow;
        for (long i = 0; i < oh; i++) {
          long hi = i * s - p + u * d;
          float *r = row + i * ow;
          if (hi < 0 || hi >= ih) {
            memset(r, 0, sizeof(float) * (size_t)ow);
            continue;
          }
          const float *src = img + (c * ih + hi) * iw;
          if (s == 1) {
            long off = -p + v * d; /* wi = j + off */
            long j0 = off < 0 ? -off : 0, j1 = iw - off < ow ? iw - off : ow;
            if (j1 < j0) j1 = j0;
            for (long j = 0; j < j0 && j < ow; j++) r[j] = 0;
            if (j1 > j0) memcpy(r + j0, src + j0 + off, sizeof(float) * (size_t)(j1 - j0));
            for (long j = j1 > j0 ? j1 : (j0 < ow ? j0 : ow); j < ow; j++) r[j] = 0;
          } else
            for (long j = 0; j < ow; j++) {
              long wi = j * s - p + v * d;
              r[j] = wi >= 0 && wi < iw ? src[wi] : 0.0f;
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

void k_conv2d(float *y, const float *x, const float *w, const KConv *c, long nb, float *work) {
  long ckk = c->C * c->KH * c->KW, ohw = c->OH * c->OW;
  for (long b = 0; b < nb; b++) {
    const float *xb = x + b * c->C * c->H * c->W;
    float *yb = y + b * c->O * ohw;
    const float *col = xb;
    if (!pointwise(c)) {
      im2col(work, xb, c->C, c->H, c->W, c->KH, c->KW, c->s, c->p, c->d, c->OH, c->OW);
      col = work;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c->O, (int)ohw, (int)ckk, 1.0f, w, (int)ckk, col, (int)ohw, 0.0f,
                yb, (int)ohw);
  }
}

/* y [O, OH, OW] is the image side: columns [O KH KW, H W] = w^T x, then
 * scattered back (col2im) with the forward geometry OH x OW -> H x W. */
void k_conv2d_t(float *y, const float *x, const float *w, const KConv *c, long nb, float *work) {
  long okk = c->O * c->KH * c->KW, hw = c->H * c->W;
  int pw = pointwise(c) && c->OH == c->H && c->OW == c->W;
  for (long b = 0; b < nb; b++) {
    const float *xb = x + b * c->C * hw;
    float *yb = y + b * c->O * c->OH * c->OW;
    float *col = pw ? yb : work;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)okk, (int)hw, (int)c->C, 1.0f, w, (int)okk, xb, (int)hw, 0.0f, col,
                (int)hw);
    if (!pw) col2im(yb, work, c->O, c->OH, c->OW, c->KH, c->KW, c->s, c->p, c->d, c->H, c->W);
  }
}

void k_conv2d_dw(float *dw, const float *x, int xb, const float *dy, int db, const KConv *c, long nb, float *work) {
  long ckk = c->C * c->KH * c->KW, ohw = c->OH * c->OW;
  if (nb <= 0) {
    memset(dw, 0, sizeof(float) * (size_t)(c->O * ckk));
    return;
  }
  for (long b = 0; b < nb; b++) {
    const float *xe = x + (xb ? b : 0) * c->C * c->H * c->W, *de = dy + (db ? b : 0) * c->O * ohw;
    const float *col = xe;
    if (!pointwise(c)) {
      im2col(work, xe, c->C, c->H, c->W, c->KH, c->KW, c->s, c->p, c->d, c->OH, c->OW);
      col = work;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->O, (int)ckk, (int)ohw, 1.0f, de, (int)ohw, col, (int)ohw,
                b ? 1.0f : 0.0f, dw, (int)ckk);
  }
}

void k_conv2d_t_dw(float *dw, const float *x, int xb, const float *dy, int db, const KConv *c, long nb, float *work) {
  long okk = c->O * c->KH * c->KW, hw = c->H * c->W;
  if (nb <= 0) {
    memset(dw, 0, sizeof(float) * (size_t)(c->C * okk));
    return;
  }
  int pw = pointwise(c) && c->OH == c->H && c->OW == c->W;
  for (long b = 0; b < nb; b++) {
    const float *xe = x + (xb ? b : 0) * c->C * hw, *de = dy + (db ? b : 0) * c->O * c->OH * c->OW;
    const float *col = de;
    if (!pw) {
      im2col(work, de, c->O, c->OH, c->OW, c->KH, c->KW, c->s, c->p, c->d, c->H, c->W);
      col = work;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->C, (int)okk, (int)hw, 1.0f, xe, (int)hw, col, (int)hw,
                b ? 1.0f : 0.0f, dw, (int)okk);
  }
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

void k_batch_mean(float *y, const float *x, long B, long n, double *acc) {
  for (long k = 0; k < n; k++) acc[k] = 0;
  for (long b = 0; b < B; b++) {
    const float *xb = x + b * n;
    for (long k = 0; k < n; k++) acc[k] += xb[k];
  }
  for (long k = 0; k < n; k++) y[k] = B > 0 ? (float)(acc[k] / (double)B) : 0.0f;
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

long k_first_nonfinite(const float *x, long n) {
  const long blk = 1024;
  for (long k0 = 0; k0 < n; k0 += blk) {
    long k1 = k0 + blk < n ? k0 + blk : n;
    uint32_t bad = 0;
    for (long k = k0; k < k1; k++) {
      uint32_t w;
      memcpy(&w, x + k, sizeof w);
      bad |= (uint32_t)((w & 0x7f800000u) == 0x7f800000u);
    }
    if (bad)
      for (long k = k0; k < k1; k++)
        if (!isfinite(x[k])) return k;
  }
  return -1;
}
