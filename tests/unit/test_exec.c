/* test_exec.c - the runtime's executor and kernels (runtime/exec.c,
 * runtime/kernels.c) against a double-precision reference evaluator.
 *
 * The evaluator is test_autodiff.c's (the meaning of every op as graph_infer
 * and docs/IR.md give it), with the mask sources added.  Each case builds a
 * small graph, gives its sources random values (rounded to float, so both
 * sides see the same numbers), runs it through exec in float32 and compares
 * every node exec keeps against the reference:
 *   - every op, each attribute combination the stdlib uses, batched and not;
 *   - fusion groups (built by hand and by the optimizer) with broadcast,
 *     scalar and shared external inputs;
 *   - every graph of every shipped model, compiled with small -D sizes
 *     through the library as vmc does, written to a .vmx and read back as
 *     vmrun does, random draws held fixed on both sides;
 *   - random draws: the streams of runtime/rng.h as exec.h documents them;
 *   - determinism: the same run twice, another max_batch, another thread
 *     count (1, 2, 3 threads: the training graphs of every shipped model,
 *     sized so that products, groups and draws are cut in uneven pieces;
 *     products and convolutions alone, 1 to 4 threads) give identical
 *     bytes;
 *   - the first non-finite value is reported with its node, name and
 *     file:line:col (also a matmul computed with its bias add); unbound
 *     inputs and codes out of range are errors. */
#include <cblas.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "check.h"
#include "diag.h"
#include "exec.h"
#include "graph.h"
#include "import.h"
#include "kernels.h"
#include "model.h"
#include "optimize.h"
#include "resolve.h"
#include "rng.h"
#include "shape.h"
#include "value.h"
#include "vmx.h"

/* ------------------------------------------------------------ randomness */

static unsigned long long rng_state;
static void rng_seed(unsigned long long s) { rng_state = s * 2654435761ULL + 88172645463325252ULL; }
static double rng_unif(void) { /* [0, 1) */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double rng_normal(void) {
  double u = rng_unif(), v = rng_unif();
  return sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* ------------------------------------------- the reference evaluator
 * (copied from test_autodiff.c; mask_degree and mask_conv added) */

static const double SELU_A = 1.6732632423543772, SELU_S = 1.0507009873554805;

typedef struct {
  Graph *g;
  int B;
  int cap;
  double **val;
  double **fixed;
} Ev;

static long long nsize(const GNode *n, int B) { return shape_size(n->shape) * (n->batched ? B : 1); }

static void ev_grow(Ev *e) {
  int n = e->g->nodes.len;
  if (n <= e->cap) return;
  e->val = realloc(e->val, sizeof(double *) * (size_t)n);
  e->fixed = realloc(e->fixed, sizeof(double *) * (size_t)n);
  for (int i = e->cap; i < n; i++) e->val[i] = e->fixed[i] = NULL;
  e->cap = n;
}

static void ev_init(Ev *e, Graph *g, int B) {
  memset(e, 0, sizeof *e);
  e->g = g;
  e->B = B;
  ev_grow(e);
}

static void ev_clear(Ev *e) {
  ev_grow(e);
  for (int i = 0; i < e->cap; i++) {
    free(e->val[i]);
    e->val[i] = NULL;
  }
}

static void ev_free(Ev *e) {
  ev_clear(e);
  for (int i = 0; i < e->cap; i++) free(e->fixed[i]);
  free(e->val);
  free(e->fixed);
}

static double *ev_fix(Ev *e, int id, const double *v) {
  ev_grow(e);
  long long n = nsize(graph_node(e->g, id), e->B);
  free(e->fixed[id]);
  e->fixed[id] = calloc((size_t)(n ? n : 1), sizeof(double));
  if (v) memcpy(e->fixed[id], v, sizeof(double) * (size_t)n);
  return e->fixed[id];
}

static long long bmap(Shape so, Shape si, int ib, long long k) {
  long long so_n = shape_size(so), b = k / so_n, r = k % so_n;
  long long c[MAX_RANK];
  for (int i = so.rank - 1; i >= 0; i--) {
    c[i] = r % so.d[i];
    r /= so.d[i];
  }
  long long idx = 0;
  for (int j = 0; j < si.rank; j++) {
    int oj = j + so.rank - si.rank;
    idx = idx * si.d[j] + (si.d[j] == 1 ? 0 : c[oj]);
  }
  return (ib ? b : 0) * shape_size(si) + idx;
}

static double elu(double x) { return x > 0 ? x : expm1(x); }
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

static double unary(Op op, double x, double f) {
  switch (op) {
  case OP_NEG: return -x;
  case OP_EXP: return exp(x);
  case OP_LOG: return log(x);
  case OP_SQRT: return sqrt(x);
  case OP_ABS: return fabs(x);
  case OP_SQUARE: return x * x;
  case OP_RELU: return x > 0 ? x : 0;
  case OP_ELU: return elu(x);
  case OP_SELU: return SELU_S * (x > 0 ? x : SELU_A * expm1(x));
  case OP_LEAKY_RELU: return x > 0 ? x : f * x;
  case OP_TANH: return tanh(x);
  case OP_SIGMOID: return sigmoid(x);
  case OP_SOFTPLUS: return softplus(x);
  case OP_STOP_GRAD: return x;
  case OP_STEP: return x > 0 ? 1 : 0;
  case OP_SIGN: return x > 0 ? 1 : x < 0 ? -1 : 0;
  case OP_D_ELU: return x > 0 ? 1 : exp(x);
  case OP_D_SELU: return SELU_S * (x > 0 ? 1 : SELU_A * exp(x));
  case OP_D_LEAKY_RELU: return x > 0 ? 1 : f;
  default: ck_abort_msg("unary: %s", op_name(op)); return 0;
  }
}

static double binary(Op op, double x, double y) {
  switch (op) {
  case OP_ADD: return x + y;
  case OP_SUB: return x - y;
  case OP_MUL: return x * y;
  case OP_DIV: return x / y;
  default: ck_abort_msg("binary: %s", op_name(op)); return 0;
  }
}

static const double *ev(Ev *e, int id);

static void conv(const GNode *n, const GNode *xn, const double *x, const double *w, const Shape ws, double *y, int B) {
  long long s = n->i[0], p = n->i[1], dl = n->i[2];
  int t = n->op == OP_CONV2D_T;
  long long C = xn->shape.d[0], H = xn->shape.d[1], W = xn->shape.d[2];
  long long O = n->shape.d[0], OH = n->shape.d[1], OW = n->shape.d[2], KH = ws.d[2], KW = ws.d[3];
  int nb = xn->batched ? B : 1;
  for (int b = 0; b < nb; b++) {
    const double *xb = x + b * C * H * W;
    double *yb = y + b * O * OH * OW;
    if (!t) {
      for (long long o = 0; o < O; o++)
        for (long long i = 0; i < OH; i++)
          for (long long j = 0; j < OW; j++) {
            double acc = 0;
            for (long long c = 0; c < C; c++)
              for (long long u = 0; u < KH; u++)
                for (long long v = 0; v < KW; v++) {
                  long long hi = i * s - p + u * dl, wi = j * s - p + v * dl;
                  if (hi < 0 || hi >= H || wi < 0 || wi >= W) continue;
                  acc += xb[(c * H + hi) * W + wi] * w[((o * C + c) * KH + u) * KW + v];
                }
            yb[(o * OH + i) * OW + j] = acc;
          }
    } else {
      for (long long c = 0; c < C; c++)
        for (long long i = 0; i < H; i++)
          for (long long j = 0; j < W; j++)
            for (long long o = 0; o < O; o++)
              for (long long u = 0; u < KH; u++)
                for (long long v = 0; v < KW; v++) {
                  long long ho = i * s - p + u * dl, wo = j * s - p + v * dl;
                  if (ho < 0 || ho >= OH || wo < 0 || wo >= OW) continue;
                  yb[(o * OH + ho) * OW + wo] += xb[(c * H + i) * W + j] * w[((c * O + o) * KH + u) * KW + v];
                }
    }
  }
}

static void conv_dw(const GNode *n, const GNode *xn, const double *x, const GNode *dn, const double *dy, double *dw, int B) {
  long long s = n->i[0], p = n->i[1], dl = n->i[2];
  int t = n->op == OP_CONV2D_T_DW;
  long long C = xn->shape.d[0], H = xn->shape.d[1], W = xn->shape.d[2];
  long long O = dn->shape.d[0], OH = dn->shape.d[1], OW = dn->shape.d[2];
  long long KH = n->shape.d[2], KW = n->shape.d[3];
  int nb = xn->batched || dn->batched ? B : 1;
  for (int b = 0; b < nb; b++) {
    const double *xb = x + (xn->batched ? b : 0) * C * H * W;
    const double *db = dy + (dn->batched ? b : 0) * O * OH * OW;
    if (!t) {
      for (long long o = 0; o < O; o++)
        for (long long c = 0; c < C; c++)
          for (long long u = 0; u < KH; u++)
            for (long long v = 0; v < KW; v++)
              for (long long i = 0; i < OH; i++)
                for (long long j = 0; j < OW; j++) {
                  long long hi = i * s - p + u * dl, wi = j * s - p + v * dl;
                  if (hi < 0 || hi >= H || wi < 0 || wi >= W) continue;
                  dw[((o * C + c) * KH + u) * KW + v] += xb[(c * H + hi) * W + wi] * db[(o * OH + i) * OW + j];
                }
    } else {
      for (long long c = 0; c < C; c++)
        for (long long o = 0; o < O; o++)
          for (long long u = 0; u < KH; u++)
            for (long long v = 0; v < KW; v++)
              for (long long i = 0; i < H; i++)
                for (long long j = 0; j < W; j++) {
                  long long ho = i * s - p + u * dl, wo = j * s - p + v * dl;
                  if (ho < 0 || ho >= OH || wo < 0 || wo >= OW) continue;
                  dw[((c * O + o) * KH + u) * KW + v] += xb[(c * H + i) * W + j] * db[(o * OH + ho) * OW + wo];
                }
    }
  }
}

static void split_axis(Shape s, int axis, long long *pre, long long *mid, long long *post) {
  *pre = *post = 1;
  for (int i = 0; i < axis; i++) *pre *= s.d[i];
  *mid = s.d[axis];
  for (int i = axis + 1; i < s.rank; i++) *post *= s.d[i];
}

/* MADE and PixelCNN masks straight from docs/IR.md's words. */
static void ref_mask_degree(const char *s, double *y, long long rows, long long cols) {
  long long din[4096], dout[4096];
  long long nr = 0, nc = 0;
  const char *p = s;
  while (*p && *p != '|') {
    din[nr++] = strtoll(p, (char **)&p, 10);
    if (*p == ',') p++;
  }
  p++;
  while (*p && *p != '|') {
    dout[nc++] = strtoll(p, (char **)&p, 10);
    if (*p == ',') p++;
  }
  int strict = !strcmp(p, "|strict");
  ck_assert_int_eq(nr, rows);
  ck_assert_int_eq(nc, cols);
  for (long long i = 0; i < rows; i++)
    for (long long j = 0; j < cols; j++) y[i * cols + j] = strict ? dout[j] > din[i] : dout[j] >= din[i];
}

static void ref_mask_conv(const char *type, double *y, Shape s) {
  long long k = s.d[2], c = k / 2;
  for (long long o = 0; o < s.d[0]; o++)
    for (long long i = 0; i < s.d[1]; i++)
      for (long long u = 0; u < k; u++)
        for (long long v = 0; v < s.d[3]; v++) {
          int above = u < c, left = u == c && v < c, centre = u == c && v == c;
          y[((o * s.d[1] + i) * k + u) * s.d[3] + v] = above || left || (centre && type[0] == 'B');
        }
}

static double *compute(Ev *e, const GNode *n) {
  int B = e->B;
  long long size = nsize(n, B), per = shape_size(n->shape);
  double *y = calloc((size_t)(size ? size : 1), sizeof(double));
  const GNode *a = n->nin > 0 ? graph_node(e->g, n->in[0]) : NULL;
  const GNode *b = n->nin > 1 ? graph_node(e->g, n->in[1]) : NULL;
  const double *A = a ? ev(e, a->id) : NULL, *Bv = b ? ev(e, b->id) : NULL;
  int nb = n->batched ? B : 1;
  if (op_is_elementwise(n->op)) {
    for (long long k = 0; k < size; k++) {
      double x = A[bmap(n->shape, a->shape, a->batched, k)];
      y[k] = b ? binary(n->op, x, Bv[bmap(n->shape, b->shape, b->batched, k)]) : unary(n->op, x, n->f);
    }
    return y;
  }
  switch (n->op) {
  case OP_CONST:
    y[0] = n->f;
    break;
  case OP_FILL:
    for (long long k = 0; k < size; k++) y[k] = n->f;
    break;
  case OP_MASK_DEGREE:
    ref_mask_degree(n->s, y, n->shape.d[0], n->shape.d[1]);
    break;
  case OP_MASK_CONV:
    ref_mask_conv(n->s, y, n->shape);
    break;
  case OP_BATCH_SIZE:
    y[0] = B;
    break;
  case OP_MATMUL: {
    long long acols = a->shape.d[a->shape.rank - 1];
    long long arows = nsize(a, B) / acols;
    if (!n->i[0]) {
      int tb = (int)n->i[1];
      long long bn = tb ? b->shape.d[1] : b->shape.d[0], m = tb ? b->shape.d[0] : b->shape.d[1];
      for (long long r = 0; r < arows; r++)
        for (long long j = 0; j < m; j++) {
          double acc = 0;
          for (long long k = 0; k < bn; k++) acc += A[r * acols + k] * (tb ? Bv[j * bn + k] : Bv[k * m + j]);
          y[r * m + j] = acc;
        }
    } else {
      long long m = b->shape.d[b->shape.rank - 1];
      for (long long r = 0; r < arows; r++)
        for (long long i = 0; i < acols; i++)
          for (long long j = 0; j < m; j++) y[i * m + j] += A[r * acols + i] * Bv[r * m + j];
    }
    break;
  }
  case OP_SUM: {
    long long an = shape_size(a->shape);
    for (int bb = 0; bb < nb; bb++)
      for (long long k = 0; k < an; k++) y[bb] += A[bb * an + k];
    break;
  }
  case OP_SUM_AXIS: {
    long long pre, mid, post;
    split_axis(a->shape, (int)n->i[0], &pre, &mid, &post);
    for (int bb = 0; bb < nb; bb++)
      for (long long i = 0; i < pre; i++)
        for (long long m = 0; m < mid; m++)
          for (long long j = 0; j < post; j++) y[bb * per + i * post + j] += A[bb * pre * mid * post + (i * mid + m) * post + j];
    break;
  }
  case OP_LOGSUMEXP:
  case OP_SOFTMAX: {
    long long K = a->shape.d[0], post = shape_size(a->shape) / K;
    for (int bb = 0; bb < nb; bb++) {
      const double *x = A + bb * K * post;
      for (long long j = 0; j < post; j++) {
        double mx = -INFINITY, s = 0;
        for (long long k = 0; k < K; k++) mx = fmax(mx, x[k * post + j]);
        for (long long k = 0; k < K; k++) s += exp(x[k * post + j] - mx);
        if (n->op == OP_LOGSUMEXP)
          y[bb * post + j] = mx + log(s);
        else
          for (long long k = 0; k < K; k++) y[bb * K * post + k * post + j] = exp(x[k * post + j] - mx) / s;
      }
    }
    break;
  }
  case OP_REDUCE_TO:
    for (long long k = 0; k < nsize(a, B); k++) y[bmap(a->shape, n->shape, n->batched, k)] += A[k];
    break;
  case OP_EXPAND:
    for (long long k = 0; k < size; k++) y[k] = A[bmap(n->shape, a->shape, a->batched, k)];
    break;
  case OP_BATCH_MEAN:
    if (!a->batched) {
      memcpy(y, A, sizeof(double) * (size_t)per);
      break;
    }
    for (int bb = 0; bb < B; bb++)
      for (long long k = 0; k < per; k++) y[k] += A[bb * per + k] / B;
    break;
  case OP_RESHAPE:
    memcpy(y, A, sizeof(double) * (size_t)size);
    break;
  case OP_CONCAT: {
    int axis = (int)n->i[0];
    long long pre, mid, post, off = 0;
    split_axis(n->shape, axis, &pre, &mid, &post);
    for (int k = 0; k < n->nin; k++) {
      const GNode *x = graph_node(e->g, n->in[k]);
      const double *X = ev(e, x->id);
      long long xm = x->shape.d[axis];
      for (int bb = 0; bb < nb; bb++)
        for (long long i = 0; i < pre; i++)
          for (long long m = 0; m < xm; m++)
            for (long long j = 0; j < post; j++)
              y[bb * per + (i * mid + off + m) * post + j] = X[(x->batched ? bb : 0) * pre * xm * post + (i * xm + m) * post + j];
      off += xm;
    }
    break;
  }
  case OP_SLICE: {
    int axis = (int)n->i[0];
    long long pre, mid, post, am = a->shape.d[axis];
    split_axis(n->shape, axis, &pre, &mid, &post);
    for (int bb = 0; bb < nb; bb++)
      for (long long i = 0; i < pre; i++)
        for (long long m = 0; m < mid; m++)
          for (long long j = 0; j < post; j++)
            y[bb * per + (i * mid + m) * post + j] = A[bb * pre * am * post + (i * am + n->i[1] + m) * post + j];
    break;
  }
  case OP_CONV2D:
  case OP_CONV2D_T:
    conv(n, a, A, Bv, b->shape, y, B);
    break;
  case OP_CONV2D_DW:
  case OP_CONV2D_T_DW:
    conv_dw(n, a, A, b, Bv, y, B);
    break;
  case OP_EMBED: {
    long long D = a->shape.d[1], rest = shape_size(b->shape);
    for (int bb = 0; bb < nb; bb++)
      for (long long j = 0; j < D; j++)
        for (long long r = 0; r < rest; r++) {
          long long c = (long long)Bv[(b->batched ? bb : 0) * rest + r];
          y[bb * per + j * rest + r] = A[(a->batched ? bb : 0) * shape_size(a->shape) + c * D + j];
        }
    break;
  }
  case OP_EMBED_DW: {
    long long D = n->shape.d[1], rest = shape_size(b->shape);
    int mb = a->batched || b->batched ? B : 1;
    for (int bb = 0; bb < mb; bb++)
      for (long long j = 0; j < D; j++)
        for (long long r = 0; r < rest; r++) {
          long long c = (long long)Bv[(b->batched ? bb : 0) * rest + r];
          y[c * D + j] += A[(a->batched ? bb : 0) * D * rest + j * rest + r];
        }
    break;
  }
  case OP_ONEHOT: {
    long long rest = shape_size(a->shape);
    for (int bb = 0; bb < nb; bb++)
      for (long long r = 0; r < rest; r++) y[bb * per + (long long)A[bb * rest + r] * rest + r] = 1;
    break;
  }
  case OP_PICK: {
    long long rest = per, K = a->shape.d[0];
    for (int bb = 0; bb < nb; bb++)
      for (long long r = 0; r < rest; r++) {
        long long c = (long long)Bv[(b->batched ? bb : 0) * rest + r];
        y[bb * rest + r] = A[(a->batched ? bb : 0) * K * rest + c * rest + r];
      }
    break;
  }
  case OP_PICK_DX: {
    long long rest = shape_size(b->shape);
    for (int bb = 0; bb < nb; bb++)
      for (long long r = 0; r < rest; r++) {
        long long c = (long long)Bv[(b->batched ? bb : 0) * rest + r];
        y[bb * per + c * rest + r] = A[(a->batched ? bb : 0) * rest + r];
      }
    break;
  }
  case OP_NEAREST: {
    long long D = a->shape.d[0], K = b->shape.d[0], rest = per;
    for (int bb = 0; bb < nb; bb++)
      for (long long r = 0; r < rest; r++) {
        double best = INFINITY;
        for (long long k = 0; k < K; k++) {
          double d2 = 0;
          for (long long j = 0; j < D; j++) {
            double t = A[bb * D * rest + j * rest + r] - Bv[k * D + j];
            d2 += t * t;
          }
          if (d2 < best) best = d2, y[bb * rest + r] = (double)k;
        }
      }
    break;
  }
  default:
    ck_abort_msg("the evaluator has no value for %s (node %d): supply it", op_name(n->op), n->id);
  }
  return y;
}

static const double *ev(Ev *e, int id) {
  ev_grow(e);
  if (e->fixed[id]) return e->fixed[id];
  if (!e->val[id]) e->val[id] = compute(e, graph_node(e->g, id));
  return e->val[id];
}

/* --------------------------------------------------------- test harness */

typedef struct {
  Arena *a;
  Graph *g;
} T;

static T *t_new(void) {
  T *t = calloc(1, sizeof *t);
  t->a = arena_new();
  t->g = graph_new(t->a, "test");
  return t;
}

static void t_free(T *t) {
  arena_free(t->a);
  free(t);
}

static Shape S(int rank, long long d0, long long d1, long long d2, long long d3) {
  long long d[4] = {d0, d1, d2, d3};
  return shape_of(rank, d);
}
#define S0 shape_scalar()
#define S1(a) S(1, a, 0, 0, 0)
#define S2(a, b) S(2, a, b, 0, 0)
#define S3(a, b, c) S(3, a, b, c, 0)
#define S4(a, b, c, d) S(4, a, b, c, d)

/* Sources carry the kind of their random values in their name: "normal",
 * "away" (|x| in [0.2, 1.2], away from kinks), "pos" (in [0.5, 2]),
 * "bits" (0 or 1); codes get integers below their class count. */
static const char *const KIND[] = {"normal", "away", "pos", "bits"};
enum { R_NORMAL, R_AWAY, R_POS, R_BITS };

static int src(T *t, Op op, Shape s, int batched, int kind) {
  GNode *n = graph_begin(t->g, op, NULL, 0, span_none, KIND[kind]);
  n->shape = s;
  n->batched = batched;
  n->s = KIND[kind];
  int id = graph_end(t->g, n);
  ck_assert_int_ge(id, 0);
  return id;
}

static int codes(T *t, Shape s, int batched, int classes) {
  GNode *n = graph_begin(t->g, OP_INPUT, NULL, 0, span_none, "codes");
  n->shape = s;
  n->batched = batched;
  n->classes = classes;
  n->s = "codes";
  int id = graph_end(t->g, n);
  ck_assert_int_ge(id, 0);
  return id;
}

static int op1(T *t, Op op, int x) {
  int id = graph_add(t->g, op, &x, 1, span_none, NULL);
  ck_assert_msg(id >= 0, "%s rejected", op_name(op));
  return id;
}
static int op2(T *t, Op op, int x, int y) {
  int in[2] = {x, y};
  int id = graph_add(t->g, op, in, 2, span_none, NULL);
  ck_assert_msg(id >= 0, "%s rejected", op_name(op));
  return id;
}
static int opf(T *t, Op op, int x, double f) {
  GNode *n = graph_begin(t->g, op, &x, 1, span_none, NULL);
  n->f = f;
  int id = graph_end(t->g, n);
  ck_assert_int_ge(id, 0);
  return id;
}
static int opi(T *t, Op op, const int *in, int nin, long long i0, long long i1, long long i2, long long i3) {
  GNode *n = graph_begin(t->g, op, in, nin, span_none, NULL);
  n->i[0] = i0, n->i[1] = i1, n->i[2] = i2, n->i[3] = n->i[4] = i3;
  int id = graph_end(t->g, n);
  ck_assert_msg(id >= 0, "%s rejected", op_name(op));
  return id;
}
static int shaped(T *t, Op op, int x, Shape s, int batched) {
  GNode *n = graph_begin(t->g, op, &x, 1, span_none, NULL);
  n->shape = s;
  n->batched = batched;
  int id = graph_end(t->g, n);
  ck_assert_msg(id >= 0, "%s rejected", op_name(op));
  return id;
}
static int given(T *t, Op op, const int *in, int nin, Shape s, long long i0, long long i1, long long i2) {
  GNode *n = graph_begin(t->g, op, in, nin, span_none, NULL);
  n->shape = s;
  n->i[0] = i0, n->i[1] = i1, n->i[2] = i2;
  int id = graph_end(t->g, n);
  ck_assert_msg(id >= 0, "%s rejected", op_name(op));
  return id;
}

static int close_to(double x, double y, double rel) { return fabs(x - y) <= rel * fmax(1.0, fmax(fabs(x), fabs(y))); }

/* Nodes whose value the test supplies to both sides. */
static int supplied(const GNode *n) {
  return n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_RANDN || n->op == OP_RANDU || n->op == OP_SAMPLE_BERNOULLI ||
         n->op == OP_SAMPLE_CATEGORICAL;
}

typedef struct {
  const char *const *bits; /* input names holding 0/1 data */
  int nbits;
  int params_scaled;       /* parameters ~ N(0, 1/fan_in), as initialized */
} Gen;

static double gen_value(const GNode *n, const Gen *gen) {
  if (n->classes > 0 || n->op == OP_SAMPLE_CATEGORICAL) {
    long long k = n->classes ? n->classes : 2;
    return (double)(long long)(rng_unif() * (double)k);
  }
  if (n->op == OP_RANDU) return rng_unif();
  if (n->op == OP_SAMPLE_BERNOULLI) return rng_unif() < 0.4;
  int kind = R_NORMAL;
  for (int k = 0; k < 4; k++)
    if (n->s && !strcmp(n->s, KIND[k])) kind = k;
  for (int k = 0; gen && k < gen->nbits; k++)
    if (n->op == OP_INPUT && n->s && !strcmp(n->s, gen->bits[k])) kind = R_BITS;
  double u = rng_unif();
  switch (kind) {
  case R_AWAY: return (u < 0.5 ? -1 : 1) * (0.2 + rng_unif());
  case R_POS: return 0.5 + 1.5 * u;
  case R_BITS: return (double)(u < 0.5);
  default:
    if (gen && gen->params_scaled && n->op == OP_PARAM) {
      double fan = n->shape.rank < 2 ? 16 : (double)shape_size(n->shape) / (double)(n->shape.rank == 2 ? n->shape.d[1] : n->shape.d[0]);
      return rng_normal() / sqrt(fan);
    }
    return rng_normal();
  }
}

/* A graph run through exec at batch B with every supplied node random,
 * compared node by node with the reference. */
typedef struct {
  Ev e;
  Exec *ex;
  float **data;
  int n, B;
} Run;

static void run_prepare(Run *r, Graph *g, int B, int max_batch, unsigned long long seed, const Gen *gen) {
  r->n = g->nodes.len;
  r->B = B;
  ev_init(&r->e, g, B);
  r->ex = exec_new(g, max_batch);
  ck_assert_ptr_nonnull(r->ex);
  r->data = calloc((size_t)r->n, sizeof(float *));
  rng_seed(seed);
  for (int i = 0; i < r->n; i++) {
    const GNode *n = graph_node(g, i);
    if (!supplied(n)) continue;
    long long sz = nsize(n, B);
    double *v = ev_fix(&r->e, i, NULL);
    r->data[i] = calloc((size_t)(sz ? sz : 1), sizeof(float));
    for (long long k = 0; k < sz; k++) {
      r->data[i][k] = (float)gen_value(n, gen);
      v[k] = r->data[i][k];
    }
    exec_override(r->ex, i, r->data[i]);
  }
}

static void run_free(Run *r) {
  for (int i = 0; i < r->n; i++) free(r->data[i]);
  free(r->data);
  exec_free(r->ex);
  ev_free(&r->e);
}

/* Compares every node exec computes, as it is computed (a later node may
 * reuse its buffer); returns how many values were compared. */
typedef struct {
  Run *r;
  double tol;
  const char *what;
  long long compared;
} Cmp;

static void compare_node(void *ctx, int i, const float *v) {
  Cmp *c = ctx;
  Run *r = c->r;
  const GNode *n = graph_node(r->e.g, i);
  if (!v || supplied(n)) return;
  const double *ref = ev(&r->e, i);
  for (long long k = 0; k < nsize(n, r->B); k++) { /* asserting only on failure: each assertion costs Check a write */
    if (!close_to(v[k], ref[k], c->tol))
      ck_abort_msg("%s: node %%%d (%s%s%s) [%lld]: exec %.9g, reference %.12g", c->what, i, op_name(n->op), n->name ? " " : "",
                   n->name ? n->name : "", k, (double)v[k], ref[k]);
    c->compared++;
  }
}

static long long run_compare(Run *r, double tol, const char *what) {
  ExecError err;
  Cmp c = {r, tol, what, 0};
  exec_observe(r->ex, compare_node, &c);
  int rc = exec_run(r->ex, r->B, 7, 3, &err);
  exec_observe(r->ex, NULL, NULL);
  ck_assert_msg(rc == 0, "%s: exec_run failed: %s", what, err.msg);
  return c.compared;
}

static void check_graph_tol(T *t, int B, unsigned long long seed, double tol, const char *what) {
  Run r;
  run_prepare(&r, t->g, B, B, seed, NULL);
  ck_assert_int_gt(run_compare(&r, tol, what), 0);
  run_free(&r);
}

static void check_graph(T *t, int B, unsigned long long seed, const char *what) {
  Run r;
  run_prepare(&r, t->g, B, B, seed, NULL);
  ck_assert_int_gt(run_compare(&r, 1e-5, what), 0);
  run_free(&r);
}

/* The same graph once more after the optimizer (fusion, memory plan), with
 * the given outputs; the optimizer renumbers, so the sources are found by
 * kind again. */
static void check_optimized(T *t, const int *outs, int nouts, int B, unsigned long long seed, const char *what) {
  for (int k = 0; k < nouts; k++) {
    char *name = arena_printf(t->a, "out%d", k);
    graph_output(t->g, name, outs[k]);
  }
  optimize(t->g, 1 << 20);
  if (getenv("TEST_EXEC_DUMP")) graph_print(stderr, t->g, NULL);
  Run r;
  run_prepare(&r, t->g, B, B + 2, seed, NULL);
  ck_assert_int_gt(run_compare(&r, 1e-5, what), 0);
  run_free(&r);
}

/* ------------------------------------------------------------- per op */

START_TEST(op_unary) {
  static const Op ops[] = {OP_NEG,  OP_EXP,  OP_LOG,     OP_SQRT,      OP_ABS,   OP_SQUARE, OP_RELU,
                           OP_ELU,  OP_SELU, OP_LEAKY_RELU, OP_TANH,   OP_SIGMOID, OP_SOFTPLUS, OP_STOP_GRAD,
                           OP_STEP, OP_SIGN, OP_D_ELU,   OP_D_SELU,    OP_D_LEAKY_RELU};
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
    for (int batched = 0; batched < 2; batched++) {
      T *t = t_new();
      int pos = ops[i] == OP_LOG || ops[i] == OP_SQRT;
      int x = src(t, batched ? OP_INPUT : OP_PARAM, S2(3, 5), batched, pos ? R_POS : R_NORMAL);
      /* large arguments too: the stable forms of softplus and sigmoid */
      int big = src(t, OP_INPUT, S1(7), 1, R_NORMAL);
      int c = graph_source(t->g, OP_CONST, S0, 0, span_none, NULL);
      graph_node(t->g, c)->f = pos ? 1 : ops[i] == OP_EXP ? 3 : 30;
      int xb = op2(t, OP_MUL, big, c);
      double f = ops[i] == OP_LEAKY_RELU || ops[i] == OP_D_LEAKY_RELU ? 0.2 : 0;
      opf(t, ops[i], x, f);
      opf(t, ops[i], pos ? op1(t, OP_ABS, xb) : xb, f);
      char what[64];
      snprintf(what, sizeof what, "%s (%s)", op_name(ops[i]), batched ? "batched" : "unbatched");
      check_graph(t, 3, 100 + i, what);
      t_free(t);
    }
}
END_TEST

START_TEST(op_binary_broadcast) {
  static const Op ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV};
  struct { Shape a; int ab; Shape b; int bb; } cases[] = {
      {S2(2, 3), 1, S2(2, 3), 1}, {S2(2, 3), 1, S1(3), 0},    {S2(2, 1), 0, S2(1, 3), 1},
      {S0, 1, S2(2, 3), 1},       {S2(2, 3), 0, S0, 0},       {S1(3), 0, S2(2, 3), 0},
      {S2(2, 3), 0, S0, 1},       {S3(2, 1, 3), 1, S2(4, 1), 0}, {S3(4, 5, 6), 1, S3(4, 1, 1), 0},
      {S1(700), 1, S1(700), 0},   {S2(3, 700), 1, S2(3, 1), 1},
  };
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
      T *t = t_new();
      int a = src(t, cases[c].ab ? OP_INPUT : OP_PARAM, cases[c].a, cases[c].ab, R_AWAY);
      int b = src(t, cases[c].bb ? OP_INPUT : OP_PARAM, cases[c].b, cases[c].bb, ops[i] == OP_DIV ? R_POS : R_AWAY);
      op2(t, ops[i], a, b);
      op2(t, ops[i], b, a);
      op2(t, ops[i], a, a);
      char what[64];
      snprintf(what, sizeof what, "%s case %zu", op_name(ops[i]), c);
      check_graph(t, 3, 200 + 10 * i + c, what);
      t_free(t);
    }
}
END_TEST

/* Sums of n float products are good to about sqrt(n) float roundings of
 * the partial sums: the tolerance grows with the summed dimension. */
static void matmul_case(int ta, int tb, Shape as, int ab, Shape bs, int bb, int B, int seed) {
  T *t = t_new();
  int a = src(t, ab ? OP_INPUT : OP_PARAM, as, ab, R_NORMAL);
  int b = src(t, bb ? OP_INPUT : OP_PARAM, bs, bb, R_NORMAL);
  int in[2] = {a, b};
  opi(t, OP_MATMUL, in, 2, ta, tb, 0, 0);
  char what[64];
  snprintf(what, sizeof what, "matmul ta=%d tb=%d (seed %d)", ta, tb, seed);
  long long k = ta ? nsize(graph_node(t->g, a), B) / as.d[as.rank - 1] : as.d[as.rank - 1];
  check_graph_tol(t, B, (unsigned long long)seed, 1e-5 * fmax(1, sqrt((double)k) / 4), what);
  t_free(t);
}

START_TEST(op_matmul) {
  matmul_case(0, 0, S1(3), 1, S2(3, 4), 0, 3, 300);
  matmul_case(0, 0, S2(2, 3), 1, S2(3, 4), 0, 3, 301);
  matmul_case(0, 0, S1(3), 0, S2(3, 4), 0, 3, 302);
  matmul_case(0, 0, S2(2, 3), 0, S2(3, 4), 0, 3, 303);
  matmul_case(0, 1, S1(3), 1, S2(4, 3), 0, 3, 304);
  matmul_case(0, 1, S3(2, 2, 3), 1, S2(4, 3), 0, 3, 305);
  matmul_case(1, 0, S1(3), 1, S1(4), 1, 3, 306);
  matmul_case(1, 0, S2(2, 3), 1, S2(2, 4), 1, 3, 307);
  matmul_case(1, 0, S2(5, 3), 0, S2(5, 4), 0, 3, 308);
  /* the VAE's sizes: 784 -> 50, batch 17 */
  matmul_case(0, 0, S1(784), 1, S2(784, 50), 0, 17, 309);
  matmul_case(0, 1, S1(50), 1, S2(784, 50), 0, 17, 310);
  matmul_case(1, 0, S1(784), 1, S1(50), 1, 17, 311);
  matmul_case(1, 0, S1(1), 1, S1(1), 1, 1, 312);
}
END_TEST

START_TEST(op_reductions) {
  for (int batched = 0; batched < 2; batched++) {
    T *t = t_new();
    int x = src(t, batched ? OP_INPUT : OP_PARAM, S3(2, 3, 4), batched, R_NORMAL);
    op1(t, OP_SUM, x);
    for (int axis = 0; axis < 3; axis++) opi(t, OP_SUM_AXIS, &x, 1, axis, 0, 0, 0);
    op1(t, OP_LOGSUMEXP, x);
    op1(t, OP_SOFTMAX, x);
    int v = src(t, batched ? OP_INPUT : OP_PARAM, S1(5), batched, R_NORMAL);
    op1(t, OP_LOGSUMEXP, v);
    op1(t, OP_SOFTMAX, v);
    int w = src(t, batched ? OP_INPUT : OP_PARAM, S1(1000), batched, R_NORMAL);
    op1(t, OP_SUM, w);
    /* large logits: logsumexp and softmax stay finite */
    int c = graph_source(t->g, OP_CONST, S0, 0, span_none, NULL);
    graph_node(t->g, c)->f = 200;
    int big = op2(t, OP_MUL, x, c);
    op1(t, OP_LOGSUMEXP, big);
    op1(t, OP_SOFTMAX, big);
    check_graph(t, 3, 400 + batched, batched ? "reductions (batched)" : "reductions");
    t_free(t);
  }
}
END_TEST

START_TEST(op_reduce_expand_batch) {
  struct { Shape from; int fb; Shape to; int tb; } r[] = {
      {S2(2, 3), 1, S1(3), 0},       {S2(2, 3), 1, S2(1, 3), 1}, {S2(2, 3), 1, S0, 0},     {S2(2, 3), 0, S2(2, 1), 0},
      {S2(2, 3), 1, S2(2, 3), 0},    {S2(2, 3), 1, S2(2, 1), 1}, {S3(4, 5, 6), 1, S3(4, 1, 6), 0},
      {S3(4, 5, 6), 1, S3(1, 5, 1), 1}, {S1(784), 1, S1(784), 0}, {S2(2, 3), 1, S0, 1},
  };
  for (size_t c = 0; c < sizeof r / sizeof *r; c++) {
    T *t = t_new();
    int x = src(t, r[c].fb ? OP_INPUT : OP_PARAM, r[c].from, r[c].fb, R_NORMAL);
    shaped(t, OP_REDUCE_TO, x, r[c].to, r[c].tb);
    int y = src(t, r[c].tb ? OP_INPUT : OP_PARAM, r[c].to, r[c].tb, R_NORMAL);
    shaped(t, OP_EXPAND, y, r[c].from, r[c].fb);
    char what[64];
    snprintf(what, sizeof what, "reduce_to / expand case %zu", c);
    check_graph(t, 5, 500 + c, what);
    t_free(t);
  }
  T *t = t_new();
  int x = src(t, OP_INPUT, S2(2, 3), 1, R_NORMAL);
  op1(t, OP_BATCH_MEAN, x);
  int w = src(t, OP_PARAM, S2(2, 3), 0, R_NORMAL);
  op1(t, OP_BATCH_MEAN, w);
  shaped(t, OP_RESHAPE, x, S1(6), 0);
  shaped(t, OP_RESHAPE, x, S3(3, 1, 2), 0);
  shaped(t, OP_RESHAPE, w, S2(3, 2), 0);
  graph_source(t->g, OP_BATCH_SIZE, S0, 0, span_none, NULL);
  GNode *f = graph_begin(t->g, OP_FILL, NULL, 0, span_none, NULL);
  f->shape = S2(2, 2);
  f->batched = 1;
  f->f = -1.5;
  graph_end(t->g, f);
  check_graph(t, 4, 510, "batch_mean, reshape, batch_size, fill");
  t_free(t);
}
END_TEST

START_TEST(op_concat_slice) {
  for (int axis = 0; axis < 2; axis++)
    for (int mix = 0; mix < 2; mix++) {
      T *t = t_new();
      Shape s1 = axis ? S2(2, 1) : S2(1, 3), s2 = S2(2, 3), s3 = axis ? S2(2, 2) : S2(3, 3);
      int a = src(t, OP_INPUT, s1, 1, R_NORMAL);
      int b = src(t, mix ? OP_PARAM : OP_INPUT, s2, !mix, R_NORMAL);
      int c = src(t, OP_INPUT, s3, 1, R_NORMAL);
      int in[3] = {a, b, c};
      int y = opi(t, OP_CONCAT, in, 3, axis, 0, 0, 0);
      Shape sl = graph_node(t->g, y)->shape;
      sl.d[axis] = 2;
      given(t, OP_SLICE, &y, 1, sl, axis, 1, 0);
      int w = src(t, OP_PARAM, S2(4, 6), 0, R_NORMAL);
      int ws[2] = {w, w};
      opi(t, OP_CONCAT, ws, 2, axis, 0, 0, 0);
      given(t, OP_SLICE, &w, 1, axis ? S2(4, 3) : S2(2, 6), axis, 2, 0);
      char what[48];
      snprintf(what, sizeof what, "concat / slice axis %d%s", axis, mix ? " (unbatched part)" : "");
      check_graph(t, 3, 600 + 2 * axis + mix, what);
      t_free(t);
    }
}
END_TEST

/* conv2d / conv2d_transpose and their kernel gradients (x batched or not,
 * dy batched or not). */
static void conv_case_b(int transposed, Shape xs, long long o, long long k, long long s, long long p, long long dl, long long op,
                        int B, int seed) {
  for (int xbat = 0; xbat < 2; xbat++) {
    T *t = t_new();
    long long c = xs.d[0];
    int x = src(t, xbat ? OP_INPUT : OP_PARAM, xs, xbat, R_NORMAL);
    int w = src(t, OP_PARAM, transposed ? S4(c, o, k, k) : S4(o, c, k, k), 0, R_NORMAL);
    int in[2] = {x, w};
    int y = opi(t, transposed ? OP_CONV2D_T : OP_CONV2D, in, 2, s, p, dl, op);
    const GNode *yn = graph_node(t->g, y);
    /* the kernel gradient with dy batched, and with dy unbatched */
    for (int dbat = 0; dbat < 2; dbat++) {
      int dy = src(t, dbat ? OP_INPUT : OP_PARAM, yn->shape, dbat, R_NORMAL);
      int dwin[2] = {x, dy};
      given(t, transposed ? OP_CONV2D_T_DW : OP_CONV2D_DW, dwin, 2, graph_node(t->g, w)->shape, s, p, dl);
    }
    char what[128];
    snprintf(what, sizeof what, "%s x [%lld, %lld, %lld]%s k=%lld stride=%lld pad=%lld dilation=%lld output_pad=%lld",
             transposed ? "conv2d_transpose" : "conv2d", xs.d[0], xs.d[1], xs.d[2], xbat ? " batched" : "", k, s, p, dl, op);
    /* the kernel gradients of the bigger cases sum over 1000 and more
     * products, whose float rounding leaves more than 1e-5 of a result
     * that cancels down to about 1 */
    check_graph_tol(t, B, (unsigned long long)seed + 1000 * (unsigned)xbat, B > 3 ? 1e-4 : 1e-5, what);
    t_free(t);
  }
}

static void conv_case(int transposed, Shape xs, long long o, long long k, long long s, long long p, long long dl, long long op,
                      int seed) {
  conv_case_b(transposed, xs, o, k, s, p, dl, op, 3, seed);
}

START_TEST(op_conv2d) {
  conv_case(0, S3(2, 5, 5), 3, 1, 1, 0, 1, 0, 700); /* 1x1 */
  conv_case(0, S3(2, 5, 5), 3, 3, 1, 1, 1, 0, 701); /* masked_conv2d k=3 */
  conv_case(0, S3(1, 8, 8), 2, 4, 2, 1, 1, 0, 702); /* conv_encoder: 4x4 stride 2 pad 1 */
  conv_case(0, S3(2, 7, 7), 2, 4, 2, 1, 1, 0, 703);
  conv_case(0, S3(1, 6, 6), 2, 3, 2, 1, 1, 0, 704);
  conv_case(0, S3(1, 7, 7), 2, 3, 1, 0, 2, 0, 705); /* dilation 2 */
  conv_case(0, S3(1, 6, 6), 1, 3, 2, 0, 1, 0, 706);
  conv_case(0, S3(3, 9, 9), 4, 7, 1, 3, 1, 0, 707); /* masked_conv2d k=7 */
  conv_case(0, S3(1, 5, 5), 2, 3, 1, 2, 1, 0, 708); /* pad wider than the reach */
  /* several channels, non-square, stride 2 with pad 1, dilation (the
   * cases of test_autodiff's finite differences) */
  conv_case(0, S3(3, 6, 5), 2, 3, 2, 1, 1, 0, 721);
  conv_case(0, S3(2, 6, 8), 3, 4, 2, 1, 1, 0, 722);
  conv_case(0, S3(2, 9, 8), 2, 3, 2, 1, 2, 0, 723); /* dilation 2, stride 2, pad 1 */
  conv_case(0, S3(2, 5, 6), 2, 3, 1, 2, 2, 0, 724); /* dilation 2, pad 2 */
  conv_case(0, S3(3, 7, 6), 2, 3, 2, 2, 2, 0, 725);
  conv_case(0, S3(2, 6, 7), 2, 2, 3, 1, 3, 0, 726); /* an even kernel, stride 3, dilation 3 */
  /* the examples go in groups of about 512 output columns: with 200 or
   * 196 per example, groups of 3, the last one partial at a batch of 7
   * (the kernel gradients sum over several groups) */
  conv_case_b(0, S3(2, 20, 10), 3, 3, 1, 1, 1, 0, 7, 727);
  conv_case_b(0, S3(1, 28, 28), 4, 4, 2, 1, 1, 0, 7, 728); /* conv-vae's first layer */
  conv_case_b(0, S3(2, 15, 14), 3, 1, 1, 0, 1, 0, 7, 729); /* 1x1: one example at a time */
}
END_TEST

START_TEST(op_conv2d_transpose) {
  conv_case(1, S3(2, 4, 4), 3, 1, 1, 0, 1, 0, 710);
  conv_case(1, S3(2, 4, 4), 1, 4, 2, 1, 1, 0, 711); /* conv_decoder: 4x4 stride 2 pad 1 */
  conv_case(1, S3(1, 3, 3), 2, 4, 2, 1, 1, 1, 712); /* output_pad 1 */
  conv_case(1, S3(1, 3, 3), 2, 3, 2, 1, 1, 1, 713);
  conv_case(1, S3(2, 4, 4), 2, 3, 1, 1, 1, 0, 714);
  conv_case(1, S3(1, 3, 3), 1, 3, 1, 0, 2, 0, 715); /* dilation 2 */
  conv_case(1, S3(3, 3, 2), 2, 4, 2, 1, 1, 0, 730); /* non-square, several channels */
  conv_case(1, S3(2, 3, 4), 3, 3, 2, 1, 2, 1, 731); /* dilation 2, stride 2, pad 1, output_pad 1 */
  conv_case(1, S3(2, 4, 3), 2, 3, 1, 2, 2, 0, 733); /* dilation 2, pad 2 */
  conv_case(1, S3(2, 3, 4), 2, 2, 3, 1, 3, 2, 734); /* an even kernel, stride 3, dilation 3, output_pad 2 */
  /* groups of 3 examples (200 and 196 input columns each), the last partial */
  conv_case_b(1, S3(2, 10, 20), 3, 3, 1, 1, 1, 0, 7, 735);
  conv_case_b(1, S3(32, 14, 14), 1, 4, 2, 1, 1, 0, 7, 736); /* conv-vae's last layer */
  conv_case_b(1, S3(3, 14, 15), 2, 1, 1, 0, 1, 0, 7, 737); /* 1x1 */
}
END_TEST

START_TEST(op_conv2d_non_square) { /* output pads that differ in height and width */
  T *t = t_new();
  int x = src(t, OP_INPUT, S3(2, 3, 3), 1, R_NORMAL);
  int w = src(t, OP_PARAM, S4(2, 1, 3, 3), 0, R_NORMAL);
  int in[2] = {x, w};
  GNode *n = graph_begin(t->g, OP_CONV2D_T, in, 2, span_none, NULL);
  n->i[0] = 2, n->i[1] = 1, n->i[2] = 1, n->i[3] = 0, n->i[4] = 1;
  int y = graph_end(t->g, n);
  ck_assert_int_ge(y, 0);
  ck_assert_int_eq(graph_node(t->g, y)->shape.d[1], 5);
  ck_assert_int_eq(graph_node(t->g, y)->shape.d[2], 6);
  int xi = src(t, OP_INPUT, S3(1, 5, 6), 1, R_NORMAL);
  int w2 = src(t, OP_PARAM, S4(2, 1, 3, 3), 0, R_NORMAL);
  int in2[2] = {xi, w2};
  opi(t, OP_CONV2D, in2, 2, 2, 1, 1, 0);
  check_graph(t, 2, 720, "conv2d_transpose with output pads 0 and 1; conv2d [1, 5, 6]");
  t_free(t);
}
END_TEST

START_TEST(op_codes) {
  T *t = t_new();
  int table = src(t, OP_PARAM, S2(4, 3), 0, R_NORMAL);
  int c = codes(t, S2(2, 2), 1, 4);
  op2(t, OP_EMBED, table, c);
  int cu = codes(t, S2(2, 2), 0, 4);
  op2(t, OP_EMBED, table, cu);
  int tb = src(t, OP_INPUT, S2(4, 3), 1, R_NORMAL);
  op2(t, OP_EMBED, tb, cu);
  int dy = src(t, OP_INPUT, S3(3, 2, 2), 1, R_NORMAL);
  int dwin[2] = {dy, c};
  given(t, OP_EMBED_DW, dwin, 2, S2(4, 3), 0, 0, 0);
  int dyu = src(t, OP_PARAM, S3(3, 2, 2), 0, R_NORMAL);
  int dwin2[2] = {dyu, c};
  given(t, OP_EMBED_DW, dwin2, 2, S2(4, 3), 0, 0, 0);
  op1(t, OP_ONEHOT, c);
  op1(t, OP_ONEHOT, cu);
  int x = src(t, OP_INPUT, S2(4, 5), 1, R_NORMAL);
  int c5 = codes(t, S1(5), 1, 4);
  op2(t, OP_PICK, x, c5);
  int xu = src(t, OP_PARAM, S2(4, 5), 0, R_NORMAL);
  op2(t, OP_PICK, xu, c5);
  int d5 = src(t, OP_INPUT, S1(5), 1, R_NORMAL);
  op2(t, OP_PICK_DX, d5, c5);
  int d5u = src(t, OP_PARAM, S1(5), 0, R_NORMAL);
  op2(t, OP_PICK_DX, d5u, c5);
  int z = src(t, OP_INPUT, S3(3, 2, 2), 1, R_NORMAL);
  int book = src(t, OP_PARAM, S2(6, 3), 0, R_NORMAL);
  op2(t, OP_NEAREST, z, book);
  int z1 = src(t, OP_INPUT, S1(3), 1, R_NORMAL);
  op2(t, OP_NEAREST, z1, book);
  check_graph(t, 4, 800, "embed, embed_dw, onehot, pick, pick_dx, nearest");
  t_free(t);
}
END_TEST

START_TEST(op_masks) {
  T *t = t_new();
  GNode *m = graph_begin(t->g, OP_MASK_DEGREE, NULL, 0, span_none, NULL);
  m->shape = S2(3, 5);
  m->s = "1,2,3|1,2,3,1,2|";
  graph_end(t->g, m);
  m = graph_begin(t->g, OP_MASK_DEGREE, NULL, 0, span_none, NULL);
  m->shape = S2(5, 3);
  m->s = "1,2,3,1,2|1,2,3|strict";
  graph_end(t->g, m);
  const char *types[2] = {"A", "B"};
  long long ks[3] = {1, 3, 7};
  for (int ty = 0; ty < 2; ty++)
    for (int k = 0; k < 3; k++) {
      m = graph_begin(t->g, OP_MASK_CONV, NULL, 0, span_none, NULL);
      m->shape = S4(2, 3, ks[k], ks[k]);
      m->s = types[ty];
      graph_end(t->g, m);
    }
  check_graph(t, 2, 850, "mask_degree, mask_conv");
  /* spelled out: MADE degrees and the 3x3 masks */
  Exec *ex = exec_new(t->g, 2);
  ExecError err;
  ck_assert_int_eq(exec_run(ex, 1, 0, 0, &err), 0);
  const float *md = exec_value(ex, 1);
  static const float strict[15] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1};
  for (int k = 0; k < 15; k++) ck_assert_float_eq(md[k], strict[k]);
  static const float a3[9] = {1, 1, 1, 1, 0, 0, 0, 0, 0}, b3[9] = {1, 1, 1, 1, 1, 0, 0, 0, 0};
  const float *ma = exec_value(ex, 3), *mb = exec_value(ex, 6);
  for (int k = 0; k < 9 * 6; k++) {
    ck_assert_float_eq(ma[k], a3[k % 9]);
    ck_assert_float_eq(mb[k], b3[k % 9]);
  }
  ck_assert_float_eq(exec_value(ex, 2)[0], 0); /* 1x1 type A: nothing */
  ck_assert_float_eq(exec_value(ex, 5)[0], 1); /* 1x1 type B: the centre */
  exec_free(ex);
  t_free(t);
  /* a malformed description is an error naming the node */
  t = t_new();
  m = graph_begin(t->g, OP_MASK_DEGREE, NULL, 0, span_none, "bad.mask");
  m->shape = S2(2, 2);
  m->s = "1,2|1|";
  graph_end(t->g, m);
  ex = exec_new(t->g, 1);
  ck_assert_int_eq(exec_run(ex, 1, 0, 0, &err), -1);
  ck_assert_int_eq(err.node, 0);
  ck_assert_msg(strstr(err.msg, "bad.mask") && strstr(err.msg, "mask"), "%s", err.msg);
  exec_free(ex);
  t_free(t);
}
END_TEST

/* ------------------------------------------------------------ random draws */

START_TEST(draws) {
  T *t = t_new();
  GNode *n = graph_begin(t->g, OP_RANDN, NULL, 0, span_none, NULL);
  n->shape = S2(3, 5);
  n->batched = 1;
  n->i[0] = 4;
  int rn = graph_end(t->g, n);
  n = graph_begin(t->g, OP_RANDU, NULL, 0, span_none, NULL);
  n->shape = S1(7);
  n->batched = 1;
  n->i[0] = 5;
  int ru = graph_end(t->g, n);
  int l = src(t, OP_INPUT, S1(9), 1, R_NORMAL);
  n = graph_begin(t->g, OP_SAMPLE_BERNOULLI, &l, 1, span_none, NULL);
  n->i[0] = 6;
  int sb = graph_end(t->g, n);
  int lc = src(t, OP_INPUT, S2(4, 6), 1, R_NORMAL);
  n = graph_begin(t->g, OP_SAMPLE_CATEGORICAL, &lc, 1, span_none, NULL);
  n->i[0] = 7;
  int sc = graph_end(t->g, n);
  ck_assert_int_eq(graph_node(t->g, sc)->classes, 4);
  const int B = 5;
  float logits[9 * 5], clog[24 * 5], want[256];
  rng_seed(31);
  for (int k = 0; k < 45; k++) logits[k] = (float)(3 * rng_normal());
  for (int k = 0; k < 120; k++) clog[k] = (float)(2 * rng_normal());
  Exec *ex = exec_new(t->g, 8);
  exec_override(ex, l, logits);
  exec_override(ex, lc, clog);
  ExecError err;
  uint64_t seed = 1234, step = 17;
  ck_assert_msg(exec_run(ex, B, seed, step, &err) == 0, "%s", err.msg);
  /* randn and randu: the streams of rng.h, offset = the element index */
  rng_fill_normal(want, 15 * B, seed, rng_stream(4, step), 0);
  ck_assert_mem_eq(exec_value(ex, rn), want, sizeof(float) * 15 * B);
  rng_fill_uniform(want, 7 * B, seed, rng_stream(5, step), 0);
  ck_assert_mem_eq(exec_value(ex, ru), want, sizeof(float) * 7 * B);
  /* bernoulli: 1 where u < sigmoid(logit) */
  rng_fill_uniform(want, 9 * B, seed, rng_stream(6, step), 0);
  const float *v = exec_value(ex, sb);
  for (int k = 0; k < 9 * B; k++) {
    double p = sigmoid(logits[k]);
    if (fabs(want[k] - p) > 1e-6) ck_assert_float_eq(v[k], want[k] < p ? 1.0f : 0.0f);
  }
  /* categorical: the first class whose cumulative probability exceeds u */
  rng_fill_uniform(want, 6 * B, seed, rng_stream(7, step), 0);
  v = exec_value(ex, sc);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < 6; j++) {
      double p[4], tot = 0, mx = -INFINITY;
      for (int k = 0; k < 4; k++) mx = fmax(mx, clog[b * 24 + k * 6 + j]);
      for (int k = 0; k < 4; k++) tot += p[k] = exp(clog[b * 24 + k * 6 + j] - mx);
      double u = want[b * 6 + j], c = 0;
      int pick = 3;
      for (int k = 0; k < 4; k++) {
        c += p[k] / tot;
        if (u < c) {
          pick = k;
          break;
        }
      }
      ck_assert_float_eq(v[b * 6 + j], (float)pick);
    }
  /* a smaller batch gives the first examples the same draws; another
   * step, fresh ones */
  float first[15 * 5];
  memcpy(first, exec_value(ex, rn), sizeof first);
  ck_assert_int_eq(exec_run(ex, 2, seed, step, &err), 0);
  ck_assert_mem_eq(exec_value(ex, rn), first, sizeof(float) * 30);
  ck_assert_int_eq(exec_run(ex, B, seed, step + 1, &err), 0);
  ck_assert_int_ne(memcmp(exec_value(ex, rn), first, sizeof first), 0);
  /* moments of a larger draw */
  exec_free(ex);
  t_free(t);
  t = t_new();
  n = graph_begin(t->g, OP_RANDN, NULL, 0, span_none, NULL);
  n->shape = S1(1000);
  n->batched = 1;
  graph_end(t->g, n);
  n = graph_begin(t->g, OP_RANDU, NULL, 0, span_none, NULL);
  n->shape = S1(1000);
  n->batched = 1;
  n->i[0] = 1;
  graph_end(t->g, n);
  ex = exec_new(t->g, 20);
  ck_assert_int_eq(exec_run(ex, 20, 99, 0, &err), 0);
  double m1 = 0, m2 = 0, u1 = 0;
  for (int k = 0; k < 20000; k++) {
    m1 += exec_value(ex, 0)[k];
    m2 += exec_value(ex, 0)[k] * exec_value(ex, 0)[k];
    u1 += exec_value(ex, 1)[k];
    ck_assert(exec_value(ex, 1)[k] >= 0 && exec_value(ex, 1)[k] < 1);
  }
  ck_assert_msg(fabs(m1 / 20000) < 0.03 && fabs(m2 / 20000 - 1) < 0.05, "normal mean %g, second moment %g", m1 / 20000,
                m2 / 20000);
  ck_assert_msg(fabs(u1 / 20000 - 0.5) < 0.01, "uniform mean %g", u1 / 20000);
  exec_free(ex);
  t_free(t);
}
END_TEST

/* ------------------------------------------------------------ fusion groups */

START_TEST(fused_by_hand) {
  /* one group: external operands contiguous, broadcast over the batch, a
   * scalar constant, a [2, 1] column, one operand used twice; the members
   * have no storage; more elements than one chunk */
  for (int size = 0; size < 2; size++) {
    T *t = t_new();
    long long w = size ? 700 : 3;
    int x = src(t, OP_INPUT, S2(2, w), 1, R_AWAY);
    int b = src(t, OP_PARAM, S1(w), 0, R_AWAY);
    int col = src(t, OP_PARAM, S2(2, 1), 0, R_POS);
    int c = graph_source(t->g, OP_CONST, S0, 0, span_none, NULL);
    graph_node(t->g, c)->f = 0.5;
    int m1 = op2(t, OP_ADD, x, b);
    int m2 = op1(t, OP_SOFTPLUS, m1);
    int m3 = op2(t, OP_MUL, m2, c);
    int m4 = op2(t, OP_DIV, m3, col);
    int m5 = op2(t, OP_SUB, m4, x);
    int m6 = op2(t, OP_MUL, m5, m1);
    int members[6] = {m1, m2, m3, m4, m5, m6};
    for (int k = 0; k < 6; k++) graph_node(t->g, members[k])->group = 1;
    int s = op1(t, OP_SUM, m6);
    (void)s;
    Run r;
    run_prepare(&r, t->g, 3, 3, 900 + size, NULL);
    ck_assert_int_gt(run_compare(&r, 1e-5, "hand-made group"), 0);
    for (int k = 0; k < 5; k++) ck_assert_ptr_null(exec_value(r.ex, members[k]));
    ck_assert_ptr_nonnull(exec_value(r.ex, m6));
    run_free(&r);
    t_free(t);
  }
}
END_TEST

START_TEST(fused_by_optimizer) {
  T *t = t_new();
  int x = src(t, OP_INPUT, S1(600), 1, R_AWAY);
  int h = src(t, OP_INPUT, S1(600), 1, R_AWAY);
  int b = src(t, OP_PARAM, S1(600), 0, R_NORMAL);
  /* Bernoulli log-likelihood and its gradient shape: softplus, sigmoid */
  int l = op2(t, OP_ADD, h, b);
  int e = op2(t, OP_SUB, op2(t, OP_MUL, x, l), op1(t, OP_SOFTPLUS, l));
  int s = op1(t, OP_SUM, e);
  int g = op2(t, OP_SUB, x, op1(t, OP_SIGMOID, l));
  int r = shaped(t, OP_REDUCE_TO, g, S1(600), 0);
  int m = op1(t, OP_BATCH_MEAN, s);
  int outs[3] = {m, r, g};
  check_optimized(t, outs, 3, 9, 910, "optimized graph");
  int groups = 0;
  for (int i = 0; i < t->g->nodes.len; i++) groups += graph_node(t->g, i)->group > 0;
  ck_assert_int_ge(groups, 3);
  t_free(t);
}
END_TEST

/* ----------------------------------------------- the shipped models */

static const char *top(void) {
  const char *t = getenv("top_srcdir");
  if (t && *t) return t;
  t = getenv("srcdir");
  return t && *t ? t : ".";
}

typedef struct {
  Arena *a;
  Vmx *x;
  char path[256];
} TModel;

/* Compiles models/NAME.vm (or NAME, a path in the source tree, when it
 * has a slash) as vmc compile does, writes the .vmx to a temporary file
 * and reads it back as vmrun does. */
static TModel *load_model(const char *name, Define *defs, int ndefs) {
  static char stdlib_dir[4096];
  snprintf(stdlib_dir, sizeof stdlib_dir, "%s/stdlib", top());
  setenv("VML_STDLIB", stdlib_dir, 0);
  char path[4096];
  if (strchr(name, '/')) {
    snprintf(path, sizeof path, "%s/%s", top(), name);
    name = strrchr(name, '/') + 1;
  } else
    snprintf(path, sizeof path, "%s/models/%s.vm", top(), name);
  Arena *a = arena_new();
  Diag d;
  diag_init(&d, stderr);
  SearchPath sp = {{0}, NULL};
  Program *prog = imp_load(&d, a, path, &sp);
  ck_assert_ptr_nonnull(prog);
  resolve_program(&d, a, prog);
  ck_assert_int_eq(diag_errors(&d), 0);
  Vec models = shape_program(&d, a, prog, defs, ndefs);
  ck_assert_int_eq(models.len, 1);
  check_model(&d, a, models.items[0]);
  ck_assert_int_eq(diag_errors(&d), 0);
  Vec graphs = shape_lower(&d, a, prog, models.items[0]);
  ck_assert_int_eq(diag_errors(&d), 0);
  for (int k = 0; k < graphs.len; k++) optimize(graphs.items[k], 1 << 20);
  Vmx *x = vmx_from_model(a, &d, prog, models.items[0], graphs);
  TModel *m = calloc(1, sizeof *m);
  snprintf(m->path, sizeof m->path, "/tmp/test_exec_%s_%ld.vmx", name, (long)getpid());
  FILE *f = fopen(m->path, "w");
  ck_assert_ptr_nonnull(f);
  vmx_write(f, x);
  fclose(f);
  diag_free(&d);
  m->a = arena_new();
  char err[512];
  m->x = vmx_read(m->a, m->path, err, sizeof err);
  ck_assert_msg(m->x != NULL, "%s", err);
  arena_free(a);
  return m;
}

static void model_free(TModel *m) {
  unlink(m->path);
  arena_free(m->a);
  free(m);
}

static Graph *model_graph(TModel *m, const char *name) {
  for (int i = 0; i < m->x->graphs.len; i++)
    if (!strcmp(((Graph *)m->x->graphs.items[i])->name, name)) return m->x->graphs.items[i];
  return NULL;
}

static Gen model_gen(TModel *m, const char **bits) {
  Gen g = {bits, 0, 1};
  for (int i = 0; i < m->x->data.len && g.nbits < 8; i++) {
    VmxData *v = m->x->data.items[i];
    if (!strcmp(v->domain, "bit")) bits[g.nbits++] = v->name;
  }
  return g;
}

/* Every graph of the model through exec, every kept node against the
 * reference with the same inputs, parameters and draws. */
static void check_model_file(const char *name, Define *defs, int ndefs, int B, double tol, unsigned long long seed) {
  TModel *m = load_model(name, defs, ndefs);
  const char *bits[8];
  Gen gen = model_gen(m, bits);
  int ntrain = 0;
  for (int gi = 0; gi < m->x->graphs.len; gi++) {
    Graph *g = m->x->graphs.items[gi];
    ntrain += !strncmp(g->name, "train.", 6);
    Run r;
    run_prepare(&r, g, B, B + 1, seed + (unsigned long long)gi, &gen);
    char what[128];
    snprintf(what, sizeof what, "%s %s", name, g->name);
    long long n = run_compare(&r, tol, what);
    ck_assert_int_gt(n, 0);
    /* every output is there, with the reference's values */
    for (int k = 0; k < g->outputs.len; k++) {
      const GOutput *o = g->outputs.items[k];
      if (o->node < 0) continue;
      const float *v = exec_output(r.ex, o->name);
      ck_assert_msg(v != NULL, "%s: no output %s", what, o->name);
      const double *ref = ev(&r.e, o->node);
      for (long long j = 0; j < nsize(graph_node(g, o->node), B); j++)
        if (!close_to(v[j], ref[j], tol))
          ck_abort_msg("%s output %s[%lld]: %.9g, reference %.12g", what, o->name, j, (double)v[j], ref[j]);
    }
    run_free(&r);
  }
  ck_assert_int_ge(ntrain, 1);
  model_free(m);
}

START_TEST(model_vae) {
  Define defs[] = {{"latent", "2", 0}, {"hidden", "8", 0}};
  check_model_file("vae", defs, 2, 5, 1e-5, 1900);
}
END_TEST

START_TEST(model_conv_vae) { /* examples/mnist-conv-vae: conv2d and conv2d_transpose with stride 2, all four kernels */
  Define defs[] = {{"latent", "3", 0}};
  check_model_file("examples/mnist-conv-vae/conv-vae.vm", defs, 1, 3, 1e-5, 1920);
}
END_TEST

START_TEST(model_ae) {
  Define defs[] = {{"latent", "2", 0}, {"hidden", "8", 0}};
  check_model_file("ae", defs, 2, 3, 1e-5, 1910);
}
END_TEST

START_TEST(model_conjoint) {
  Define defs[] = {{"private", "2", 0}, {"shared", "2", 0}, {"hidden", "8", 0}};
  check_model_file("conjoint", defs, 3, 3, 1e-5, 1920);
}
END_TEST

START_TEST(model_vlae) {
  Define defs[] = {{"latent", "3", 0}, {"hidden", "8", 0}, {"made", "8", 0}};
  check_model_file("vlae", defs, 3, 2, 1e-5, 1930);
}
END_TEST

START_TEST(model_avb) {
  Define defs[] = {{"noise", "3", 0}, {"width", "4", 0}};
  check_model_file("avb", defs, 2, 2, 1e-5, 1940);
}
END_TEST

START_TEST(model_vqvae) {
  Define defs[] = {{"K", "4", 0}, {"D", "2", 0}};
  check_model_file("vqvae", defs, 2, 1, 1e-4, 1950);
}
END_TEST

/* -------------------------------------------------------- determinism */

/* Runs graph g of model m with its own draws (nothing overridden), inputs
 * and parameters from the same random stream every time; returns every
 * output's bytes, concatenated. */
static size_t graph_bytes(TModel *m, Graph *g, int max_batch, int B, uint64_t seed, unsigned char *out) {
  Exec *ex = exec_new(g, max_batch);
  ck_assert_ptr_nonnull(ex);
  rng_seed(77);
  const char *bits[8];
  Gen gen = model_gen(m, bits);
  gen.params_scaled = 1;
  float **data = calloc((size_t)g->nodes.len, sizeof *data);
  for (int i = 0; i < g->nodes.len; i++) {
    GNode *n = graph_node(g, i);
    if (n->op != OP_INPUT && n->op != OP_PARAM) continue;
    long long sz = nsize(n, B);
    data[i] = calloc((size_t)sz, sizeof(float));
    for (long long k = 0; k < sz; k++) data[i][k] = (float)gen_value(n, &gen);
    if (n->op == OP_INPUT) ck_assert_int_ge(exec_bind_input(ex, n->s, data[i]), 1);
    else ck_assert_int_ge(exec_bind_param(ex, n->s, data[i]), 1);
  }
  ExecError err;
  ck_assert_msg(exec_run(ex, B, seed, 5, &err) == 0, "%s: %s", g->name, err.msg);
  size_t len = 0;
  for (int k = 0; k < g->outputs.len; k++) {
    const GOutput *o = g->outputs.items[k];
    size_t sz = sizeof(float) * (size_t)nsize(graph_node(g, o->node), B);
    memcpy(out + len, exec_output(ex, o->name), sz);
    len += sz;
  }
  for (int i = 0; i < g->nodes.len; i++) free(data[i]);
  free(data);
  exec_free(ex);
  return len;
}

static size_t vae_bytes(TModel *m, int max_batch, int B, uint64_t seed, unsigned char *out) {
  Graph *g = model_graph(m, "train.0");
  ck_assert_ptr_nonnull(g);
  return graph_bytes(m, g, max_batch, B, seed, out);
}

START_TEST(determinism) {
  Define defs[] = {{"latent", "4", 0}, {"hidden", "64", 0}};
  TModel *m = load_model("vae", defs, 2);
  static unsigned char a[1 << 22], b[1 << 22];
  size_t na = vae_bytes(m, 32, 32, 11, a);
  size_t nb = vae_bytes(m, 32, 32, 11, b);
  ck_assert_uint_eq(na, nb);
  ck_assert_msg(!memcmp(a, b, na), "the same run twice differs");
  nb = vae_bytes(m, 100, 32, 11, b);
  ck_assert_msg(nb == na && !memcmp(a, b, na), "another max_batch changes the result");
  /* the thread count: threads_* below */
  nb = vae_bytes(m, 32, 32, 12, b);
  ck_assert_msg(memcmp(a, b, na), "another seed gives the same result");
  model_free(m);
}
END_TEST

/* ------------------------------------------------------ the thread count */

/* Every train.* graph of a shipped model run with 1, 2 and 3 threads on the
 * same inputs, parameters and seed (its own draws): the loss and every
 * gradient are the same bytes.  The sizes make the work split: hidden
 * layers of 300 cut into two tiles of 144 and 156 columns, 784-wide data
 * into six tiles (one 144 wide), the fused groups, draws and column sums of
 * a batch of 24 into pieces with a partial last one; 3 threads share an
 * even number of tiles unevenly. */
static void threads_model(const char *name, Define *defs, int ndefs, int B) {
  TModel *m = load_model(name, defs, ndefs);
  static unsigned char one[1 << 24], other[1 << 24];
  int ntrain = 0;
  for (int gi = 0; gi < m->x->graphs.len; gi++) {
    Graph *g = m->x->graphs.items[gi];
    if (strncmp(g->name, "train.", 6)) continue;
    ntrain++;
    exec_set_threads(1);
    size_t n1 = graph_bytes(m, g, B, B, 21, one);
    ck_assert_uint_gt(n1, 0);
    for (int t = 2; t <= 3; t++) {
      exec_set_threads(t);
      size_t nt = graph_bytes(m, g, B, B, 21, other);
      ck_assert_uint_eq(nt, n1);
      if (memcmp(one, other, n1)) { /* one assertion: each one costs Check a write */
        size_t k = 0;
        while (one[k] == other[k]) k++;
        ck_abort_msg("%s %s: %d threads differ from 1 at byte %zu", name, g->name, t, k);
      }
    }
  }
  exec_set_threads(0);
  ck_assert_int_ge(ntrain, 1);
  model_free(m);
}

START_TEST(threads_vae) {
  Define defs[] = {{"latent", "20", 0}, {"hidden", "300", 0}};
  threads_model("vae", defs, 2, 24);
}
END_TEST

START_TEST(threads_ae) {
  Define defs[] = {{"latent", "20", 0}, {"hidden", "300", 0}};
  threads_model("ae", defs, 2, 24);
}
END_TEST

START_TEST(threads_conjoint) {
  Define defs[] = {{"private", "2", 0}, {"shared", "2", 0}, {"hidden", "300", 0}};
  threads_model("conjoint", defs, 3, 24);
}
END_TEST

START_TEST(threads_vlae) {
  Define defs[] = {{"latent", "16", 0}, {"hidden", "300", 0}, {"made", "200", 0}};
  threads_model("vlae", defs, 3, 24);
}
END_TEST

START_TEST(threads_avb) {
  Define defs[] = {{"noise", "64", 0}, {"width", "200", 0}};
  threads_model("avb", defs, 2, 24);
}
END_TEST

START_TEST(threads_conv_vae) { /* examples in groups of 11 (7 x 7) and 3 (14 x 14), the last partial */
  Define defs[] = {{"latent", "8", 0}};
  threads_model("examples/mnist-conv-vae/conv-vae.vm", defs, 1, 25);
}
END_TEST

START_TEST(threads_vqvae) { /* convolutions: one task per group of examples; kernel gradients in column tiles */
  Define defs[] = {{"K", "8", 0}, {"D", "8", 0}};
  threads_model("vqvae", defs, 2, 5);
}
END_TEST

/* The kernels alone: products whose tiles are uneven, with a partial last
 * one, for every transpose, and convolutions whose kernel gradient is cut
 * in column tiles, give the same bytes for 1 to 4 threads. */
START_TEST(threads_kernels) {
  struct { long rows, n, m; int ta, tb; } mm[] = {
      {37, 53, 1000, 0, 0}, {37, 1000, 53, 0, 1}, {1000, 37, 301, 0, 0}, {45, 300, 785, 1, 0}, {45, 785, 300, 1, 0}, {3, 64, 65, 0, 1},
  };
  rng_seed(5);
  for (size_t c = 0; c < sizeof mm / sizeof *mm; c++) {
    long xs = mm[c].rows * mm[c].n, ws = mm[c].ta ? mm[c].rows * mm[c].m : mm[c].n * mm[c].m;
    long ys = mm[c].ta ? mm[c].n * mm[c].m : mm[c].rows * mm[c].m;
    float *x = malloc(sizeof(float) * (size_t)xs), *w = malloc(sizeof(float) * (size_t)ws);
    float *y1 = malloc(sizeof(float) * (size_t)ys), *yt = malloc(sizeof(float) * (size_t)ys);
    for (long k = 0; k < xs; k++) x[k] = (float)rng_normal();
    for (long k = 0; k < ws; k++) w[k] = (float)rng_normal();
    k_set_threads(1);
    ck_assert_int_eq(k_matmul(y1, x, w, NULL, mm[c].rows, mm[c].n, mm[c].m, mm[c].ta, mm[c].tb, 1), 0);
    for (int t = 2; t <= 4; t++) {
      k_set_threads(t);
      ck_assert_int_eq(k_matmul(yt, x, w, NULL, mm[c].rows, mm[c].n, mm[c].m, mm[c].ta, mm[c].tb, 1), 0);
      ck_assert_msg(!memcmp(y1, yt, sizeof(float) * (size_t)ys), "matmul case %zu: %d threads differ from 1", c, t);
    }
    if (!mm[c].ta) { /* with a bias: the same bytes for every thread count, the sum to rounding */
      float *bias = malloc(sizeof(float) * (size_t)mm[c].m), *yb = malloc(sizeof(float) * (size_t)ys);
      for (long k = 0; k < mm[c].m; k++) bias[k] = (float)rng_normal();
      k_set_threads(1);
      k_matmul(yb, x, w, bias, mm[c].rows, mm[c].n, mm[c].m, 0, mm[c].tb, 1);
      for (long k = 0; k < ys; k++)
        if (!close_to(yb[k], y1[k] + bias[k % mm[c].m], 1e-5 * sqrt((double)mm[c].n)))
          ck_abort_msg("matmul case %zu with a bias [%ld]: %g, want %g", c, k, (double)yb[k], (double)(y1[k] + bias[k % mm[c].m]));
      for (int t = 2; t <= 3; t++) {
        k_set_threads(t);
        k_matmul(yt, x, w, bias, mm[c].rows, mm[c].n, mm[c].m, 0, mm[c].tb, 1);
        ck_assert_msg(!memcmp(yb, yt, sizeof(float) * (size_t)ys), "matmul case %zu with a bias: %d threads differ from 1", c, t);
      }
      free(bias), free(yb);
    }
    x[xs / 2] = INFINITY; /* the scan finds it, in whichever tile */
    ck_assert_int_eq(k_matmul(yt, x, w, NULL, mm[c].rows, mm[c].n, mm[c].m, mm[c].ta, mm[c].tb, 1), 1);
    free(x), free(w), free(y1), free(yt);
  }
  /* conv2d_dw with 16 x 9 = 144 kernel columns: two tiles, of 80 and 64 */
  KConv cv = {.C = 16, .H = 9, .W = 9, .O = 5, .OH = 9, .OW = 9, .KH = 3, .KW = 3, .s = 1, .p = 1, .d = 1};
  long nb = 7, xs = nb * cv.C * cv.H * cv.W, ds = nb * cv.O * cv.OH * cv.OW, dws = cv.O * cv.C * cv.KH * cv.KW;
  float *x = malloc(sizeof(float) * (size_t)xs), *dy = malloc(sizeof(float) * (size_t)ds);
  float *dw1 = malloc(sizeof(float) * (size_t)dws), *dwt = malloc(sizeof(float) * (size_t)dws);
  for (long k = 0; k < xs; k++) x[k] = (float)rng_normal();
  for (long k = 0; k < ds; k++) dy[k] = (float)rng_normal();
  size_t per = k_conv_work(&cv, 0);
  float *work = malloc(sizeof(float) * per * 4);
  k_set_threads(1);
  KWork w1 = {work, per, 1};
  k_conv2d_dw(dw1, x, 1, dy, 1, &cv, nb, &w1);
  float *y1 = malloc(sizeof(float) * (size_t)ds), *yt = malloc(sizeof(float) * (size_t)ds);
  float *kern = malloc(sizeof(float) * (size_t)dws);
  for (long k = 0; k < dws; k++) kern[k] = (float)rng_normal();
  k_conv2d(y1, x, kern, &cv, nb, &w1);
  for (int t = 2; t <= 4; t++) {
    k_set_threads(t);
    KWork wt = {work, per, t};
    k_conv2d_dw(dwt, x, 1, dy, 1, &cv, nb, &wt);
    ck_assert_msg(!memcmp(dw1, dwt, sizeof(float) * (size_t)dws), "conv2d_dw: %d threads differ from 1", t);
    k_conv2d(yt, x, kern, &cv, nb, &wt);
    ck_assert_msg(!memcmp(y1, yt, sizeof(float) * (size_t)ds), "conv2d: %d threads differ from 1", t);
  }
  k_set_threads(0);
  free(x), free(dy), free(dw1), free(dwt), free(work), free(y1), free(yt), free(kern);
  /* all four convolution kernels with the examples in several groups (the
   * last one partial) and kernel gradients cut in column tiles: a conv2d
   * [16, 14, 14] -> [8, 7, 7] (49 columns an example: groups of 11; 256
   * kernel columns: two tiles) and the transposed one the other way */
  KConv g2 = {.C = 16, .H = 14, .W = 14, .O = 8, .OH = 7, .OW = 7, .KH = 4, .KW = 4, .s = 2, .p = 1, .d = 1};
  KConv gt = {.C = 8, .H = 7, .W = 7, .O = 16, .OH = 14, .OW = 14, .KH = 4, .KW = 4, .s = 2, .p = 1, .d = 1};
  nb = 25;
  for (int kind = 0; kind < 4; kind++) {
    const KConv *c = kind < 2 ? &g2 : &gt;
    int t_op = kind >= 2;
    long in = nb * c->C * c->H * c->W, out = nb * c->O * c->OH * c->OW, kn = c->O * c->C * c->KH * c->KW;
    long ys = kind % 2 ? kn : out;
    float *a = malloc(sizeof(float) * (size_t)in), *b = malloc(sizeof(float) * (size_t)(kind % 2 ? out : kn));
    float *r1 = malloc(sizeof(float) * (size_t)ys), *rt = malloc(sizeof(float) * (size_t)ys);
    for (long k = 0; k < in; k++) a[k] = (float)rng_normal();
    for (long k = 0; k < (kind % 2 ? out : kn); k++) b[k] = (float)rng_normal();
    size_t per2 = k_conv_work(c, t_op);
    float *wk = malloc(sizeof(float) * per2 * 4);
    for (int t = 1; t <= 4; t++) {
      k_set_threads(t);
      KWork wt = {wk, per2, t};
      float *r = t == 1 ? r1 : rt;
      switch (kind) {
      case 0: k_conv2d(r, a, b, c, nb, &wt); break;
      case 1: k_conv2d_dw(r, a, 1, b, 1, c, nb, &wt); break;
      case 2: k_conv2d_t(r, a, b, c, nb, &wt); break;
      default: k_conv2d_t_dw(r, a, 1, b, 1, c, nb, &wt); break;
      }
      if (t > 1)
        ck_assert_msg(!memcmp(r1, rt, sizeof(float) * (size_t)ys), "%s in groups: %d threads differ from 1",
                      (const char *[]){"conv2d", "conv2d_dw", "conv2d_transpose", "conv2d_transpose_dw"}[kind], t);
    }
    k_set_threads(0);
    free(a), free(b), free(r1), free(rt), free(wk);
  }
}
END_TEST

/* ------------------------------------------------------------- errors */

/* "@FILE:LINE:COL" of node %id as the .vmx text has it. */
static void where_in_file(const char *path, const char *graph, int id, char *buf, size_t len) {
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  char line[65536], head[64], want[64];
  snprintf(head, sizeof head, "graph %s\n", graph);
  snprintf(want, sizeof want, "  %%%d = ", id);
  int in = 0;
  buf[0] = '\0';
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "graph ", 6)) in = !strcmp(line, head);
    if (in && !strncmp(line, want, strlen(want))) {
      char *at = strstr(line, " @");
      if (at) {
        at[strcspn(at, "\n")] = '\0';
        snprintf(buf, len, "%s", at + 2);
      }
      break;
    }
  }
  fclose(f);
}

START_TEST(nonfinite_named) {
  Define defs[] = {{"latent", "2", 0}, {"hidden", "8", 0}};
  TModel *m = load_model("vae", defs, 2);
  Graph *g = model_graph(m, "train.0");
  const char *bits[8];
  Gen gen = model_gen(m, bits);
  Run r;
  run_prepare(&r, g, 3, 3, 1960, &gen);
  /* a NaN in one bias: reported at the first node reading it */
  int pid = -1, reader = -1;
  for (int i = 0; i < g->nodes.len; i++)
    if (graph_node(g, i)->op == OP_PARAM && !strcmp(graph_node(g, i)->s, "p.mlp0.dense0.b")) pid = i;
  ck_assert_int_ge(pid, 0);
  for (int i = pid + 1; i < g->nodes.len && reader < 0; i++)
    for (int k = 0; k < graph_node(g, i)->nin; k++)
      if (graph_node(g, i)->in[k] == pid) reader = i;
  r.data[pid][1] = NAN;
  ExecError err;
  ck_assert_int_eq(exec_run(r.ex, 3, 1, 0, &err), -1);
  char want[256];
  where_in_file(m->path, "train.0", reader, want, sizeof want);
  ck_assert_msg(want[0], "node %%%d has no position in the file", reader);
  ck_assert_int_eq(err.node, reader);
  ck_assert_int_eq(err.op, graph_node(g, reader)->op);
  ck_assert_str_eq(err.where, want);
  ck_assert_str_eq(err.name, graph_node(g, reader)->name);
  ck_assert_msg(strstr(err.msg, want) && strstr(err.msg, graph_node(g, reader)->name) && strstr(err.msg, "nan"), "message: %s",
                err.msg);
  ck_assert_int_eq(err.index, 1);
  r.data[pid][1] = 0;
  ck_assert_msg(exec_run(r.ex, 3, 1, 0, &err) == 0, "%s", err.msg);
  /* a NaN in the weights before it: reported at the matmul, which runs
   * with the bias add (no value of its own) */
  int wid = -1, mm = -1;
  for (int i = 0; i < g->nodes.len; i++)
    if (graph_node(g, i)->op == OP_PARAM && !strcmp(graph_node(g, i)->s, "p.mlp0.dense0.W")) wid = i;
  ck_assert_int_ge(wid, 0);
  for (int i = wid + 1; i < g->nodes.len && mm < 0; i++)
    for (int k = 0; k < graph_node(g, i)->nin; k++)
      if (graph_node(g, i)->in[k] == wid) mm = i;
  ck_assert_int_eq(graph_node(g, mm)->op, OP_MATMUL);
  ck_assert_ptr_null(exec_value(r.ex, mm));
  float w1 = r.data[wid][1];
  r.data[wid][1] = NAN;
  ck_assert_int_eq(exec_run(r.ex, 3, 1, 0, &err), -1);
  ck_assert_msg(err.node == mm && err.op == OP_MATMUL && err.index == 1, "%s", err.msg);
  r.data[wid][1] = w1;
  ck_assert_msg(exec_run(r.ex, 3, 1, 0, &err) == 0, "%s", err.msg);
  run_free(&r);
  model_free(m);

  T *t = t_new();
  int x = src(t, OP_INPUT, S1(1000), 1, R_POS);
  int y = src(t, OP_INPUT, S1(1000), 1, R_POS);
  int lg = op1(t, OP_LOG, x);
  int sq = op1(t, OP_SQUARE, lg);
  int s = op2(t, OP_ADD, sq, y);
  int q = op1(t, OP_SQRT, s);
  graph_node(t->g, lg)->group = graph_node(t->g, sq)->group = 1;
  graph_node(t->g, s)->group = graph_node(t->g, q)->group = 1;
  graph_node(t->g, lg)->name = "the.log";
  Run r2;
  run_prepare(&r2, t->g, 2, 2, 1970, NULL);
  r2.data[x][1500] = -1; /* log(-1): the member, in the second chunk of the second example */
  ck_assert_int_eq(exec_run(r2.ex, 2, 1, 0, &err), -1);
  ck_assert_msg(err.node == lg, "%s", err.msg);
  ck_assert_int_eq(err.index, 1500);
  ck_assert_msg(strstr(err.msg, "the.log") && strstr(err.msg, "log") && strstr(err.msg, "example 1"), "message: %s", err.msg);
  r2.data[x][1500] = 1;
  r2.data[y][3] = -10; /* sqrt(negative): the root */
  ck_assert_int_eq(exec_run(r2.ex, 2, 1, 0, &err), -1);
  ck_assert_int_eq(err.node, q);
  /* the check can be turned off */
  exec_set_check(r2.ex, 0);
  ck_assert_int_eq(exec_run(r2.ex, 2, 1, 0, &err), 0);
  run_free(&r2);
  t_free(t);
}
END_TEST

START_TEST(run_errors) {
  T *t = t_new();
  int x = src(t, OP_INPUT, S1(3), 1, R_NORMAL);
  int table = src(t, OP_PARAM, S2(4, 2), 0, R_NORMAL);
  int c = codes(t, S1(3), 1, 4);
  op2(t, OP_EMBED, table, c);
  op1(t, OP_EXP, x);
  Exec *ex = exec_new(t->g, 2);
  ExecError err;
  ck_assert_int_eq(exec_run(ex, 1, 0, 0, &err), -1);
  ck_assert_msg(strstr(err.msg, "not bound") && strstr(err.msg, "normal"), "%s", err.msg);
  float xv[6] = {0}, tv[8] = {0}, cv[6] = {0, 1, 2, 3, 4, 0};
  ck_assert_int_eq(exec_bind_input(ex, "normal", xv), 1);
  ck_assert_int_eq(exec_bind_param(ex, "normal", tv), 1);
  ck_assert_int_eq(exec_bind_input(ex, "codes", cv), 1);
  ck_assert_int_eq(exec_bind_input(ex, "nothing", cv), 0);
  ck_assert_int_eq(exec_run(ex, 1, 0, 0, &err), 0);
  ck_assert_int_eq(exec_run(ex, 2, 0, 0, &err), -1); /* code 4 of 4 classes */
  ck_assert_int_eq(err.node, 3);
  ck_assert_msg(strstr(err.msg, "code 4") && strstr(err.msg, "0..3"), "%s", err.msg);
  ck_assert_int_eq(exec_run(ex, 3, 0, 0, &err), -1); /* more than max_batch */
  ck_assert_int_eq(err.node, -1);
  ck_assert_int_eq(exec_run(ex, 0, 0, 0, NULL), -1);
  ck_assert_ptr_null(exec_output(ex, "loss"));
  exec_free(ex);
  t_free(t);
}
END_TEST

START_TEST(memory_plan) {
  /* the executor allocates the planned buffers, not one array per node */
  Define defs[] = {{"latent", "20", 0}, {"hidden", "500", 0}};
  TModel *m = load_model("vae", defs, 2);
  Graph *g = model_graph(m, "train.0");
  Plan p = optimize_plan_summary(g);
  Exec *ex = exec_new(g, 128);
  size_t plan = sizeof(float) * (size_t)(p.batched_floats * 128 + p.fixed_floats);
  size_t all = 0;
  for (int i = 0; i < g->nodes.len; i++)
    if (graph_node(g, i)->op != OP_INPUT && graph_node(g, i)->op != OP_PARAM)
      all += sizeof(float) * (size_t)nsize(graph_node(g, i), 128);
  ck_assert_msg(exec_bytes(ex) < plan + plan / 4 + 65536, "exec_new allocated %zu bytes, the plan needs %zu", exec_bytes(ex), plan);
  ck_assert_msg(exec_bytes(ex) < all, "exec_new allocated %zu bytes, one array per node would be %zu", exec_bytes(ex), all);
  exec_free(ex);
  model_free(m);
}
END_TEST

START_TEST(kernel_views) { /* k_view merges dimensions and classifies */
  KView v;
  long long big[2] = {2, 3}, row[1] = {3}, col[2] = {2, 1};
  k_view(&v, big, 2, 1, big, 2, 1, 4);
  ck_assert_int_eq(k_view_kind(&v), K_VIEW_CONTIG);
  k_view(&v, big, 2, 1, NULL, 0, 0, 4);
  ck_assert_int_eq(k_view_kind(&v), K_VIEW_SCALAR);
  k_view(&v, big, 2, 1, row, 1, 0, 4);
  ck_assert_int_eq(k_view_kind(&v), K_VIEW_GENERAL);
  ck_assert_int_eq(v.rank, 2);
  float x[2] = {1, 2}, y[24];
  k_view(&v, big, 2, 1, col, 2, 0, 4);
  k_gather(y, x, &v, 1, 23);
  for (int k = 1; k < 24; k++) ck_assert_float_eq(y[k - 1], x[(k % 6) / 3]);
  ck_assert_int_eq(k_first_nonfinite(x, 2), -1);
  float z[3000] = {0};
  z[2500] = INFINITY;
  ck_assert_int_eq(k_first_nonfinite(z, 3000), 2500);
}
END_TEST

static Suite *exec_suite(void) {
  Suite *s = suite_create("exec");
  TCase *o = tcase_create("ops");
  tcase_set_timeout(o, 60);
  tcase_add_test(o, op_unary);
  tcase_add_test(o, op_binary_broadcast);
  tcase_add_test(o, op_matmul);
  tcase_add_test(o, op_reductions);
  tcase_add_test(o, op_reduce_expand_batch);
  tcase_add_test(o, op_concat_slice);
  tcase_add_test(o, op_conv2d);
  tcase_add_test(o, op_conv2d_transpose);
  tcase_add_test(o, op_conv2d_non_square);
  tcase_add_test(o, op_codes);
  tcase_add_test(o, op_masks);
  tcase_add_test(o, draws);
  tcase_add_test(o, fused_by_hand);
  tcase_add_test(o, fused_by_optimizer);
  tcase_add_test(o, kernel_views);
  suite_add_tcase(s, o);
  TCase *m = tcase_create("models");
  tcase_set_timeout(m, 300);
  tcase_add_test(m, model_vae);
  tcase_add_test(m, model_conv_vae);
  tcase_add_test(m, model_ae);
  tcase_add_test(m, model_conjoint);
  tcase_add_test(m, model_vlae);
  tcase_add_test(m, model_avb);
  tcase_add_test(m, model_vqvae);
  suite_add_tcase(s, m);
  TCase *r = tcase_create("run");
  tcase_set_timeout(r, 120);
  tcase_add_test(r, determinism);
  tcase_add_test(r, threads_kernels);
  tcase_add_test(r, threads_vae);
  tcase_add_test(r, threads_ae);
  tcase_add_test(r, threads_conjoint);
  tcase_add_test(r, threads_vlae);
  tcase_add_test(r, threads_avb);
  tcase_add_test(r, threads_vqvae);
  tcase_add_test(r, threads_conv_vae);
  tcase_add_test(r, nonfinite_named);
  tcase_add_test(r, run_errors);
  tcase_add_test(r, memory_plan);
  suite_add_tcase(s, r);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(exec_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures ? 1 : 0;
}
