/* test_autodiff.c - the gradient rules of compiler/autodiff.c, checked
 * numerically.  A small double-precision reference evaluator for graphs
 * (below) gives every op the meaning graph_infer and ops.h describe: the
 * batch axis in front of batched nodes, numpy broadcasting, matmul with its
 * rows folded from the batch and leading axes, convolutions with stride,
 * pad, dilation and output pad.  The tests then
 *   (a) check gradients that are known exactly (d sum(x x) = 2x, ...),
 *   (b) compare, in one Check test per op of the op table, the gradient
 *       graph of every op that has a rule with central finite differences
 *       of the forward value, each attribute combination the stdlib and
 *       the lowering use (an op without a rule is listed, with its reason,
 *       and checked to have none), and
 *   (c) do the same for every training graph (and logjoint) of the models
 *       in models/, lowered through the library as vmc does, with small
 *       -D sizes and their random draws held fixed.
 * The "regressions" case holds reproducers of rules that were wrong once. */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "autodiff.h"
#include "check.h"
#include "diag.h"
#include "graph.h"
#include "import.h"
#include "model.h"
#include "resolve.h"
#include "shape.h"
#include "value.h"

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

/* ------------------------------------------------------------ evaluator */

static const double SELU_A = 1.6732632423543772, SELU_S = 1.0507009873554805;

typedef struct {
  Graph *g;
  int B;          /* the batch size */
  int cap;
  double **val;   /* per node, once computed */
  double **fixed; /* per node: values supplied by the test (sources, draws) */
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

/* Forget every computed value (the fixed ones stay). */
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

/* Supply a node's values; returns the buffer (owned by the evaluator). */
static double *ev_fix(Ev *e, int id, const double *v) {
  ev_grow(e);
  long long n = nsize(graph_node(e->g, id), e->B);
  free(e->fixed[id]);
  e->fixed[id] = calloc((size_t)n, sizeof(double));
  if (v) memcpy(e->fixed[id], v, sizeof(double) * (size_t)n);
  return e->fixed[id];
}

/* Index in a (broadcast) input of shape si, batched ib, for flat index k
 * of an output of shape so (batch axis in front when it has one). */
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

/* conv2d y[o,i,j] = sum x[c, i s - p + u dl, j s - p + v dl] W[o,c,u,v];
 * conv2d_transpose scatters the other way, W [c, o, kh, kw]. */
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

/* The kernel gradients: x is the op's input, dy its output's gradient. */
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
    if (!t) { /* dW[o,c,u,v] += x[c, i s - p + u dl, ...] dy[o,i,j] */
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
    } else { /* dW[c,o,u,v] += x[c,i,j] dy[o, i s - p + u dl, ...] */
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

/* [pre, axis, post] sizes of a shape around an axis */
static void split_axis(Shape s, int axis, long long *pre, long long *mid, long long *post) {
  *pre = *post = 1;
  for (int i = 0; i < axis; i++) *pre *= s.d[i];
  *mid = s.d[axis];
  for (int i = axis + 1; i < s.rank; i++) *post *= s.d[i];
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
  case OP_BATCH_MEAN: /* the mean over the batch; an unbatched value is its own mean */
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
  case OP_EMBED: { /* table [K, D], codes [...] -> [D, ...] */
    long long D = a->shape.d[1], rest = shape_size(b->shape);
    for (int bb = 0; bb < nb; bb++)
      for (long long j = 0; j < D; j++)
        for (long long r = 0; r < rest; r++) {
          long long c = (long long)Bv[(b->batched ? bb : 0) * rest + r];
          y[bb * per + j * rest + r] = A[(a->batched ? bb : 0) * shape_size(a->shape) + c * D + j];
        }
    break;
  }
  case OP_EMBED_DW: { /* dy [D, ...], codes -> [K, D] */
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
  case OP_PICK: { /* x [K, ...], codes [...] */
    long long rest = per, K = a->shape.d[0];
    for (int bb = 0; bb < nb; bb++)
      for (long long r = 0; r < rest; r++) {
        long long c = (long long)Bv[(b->batched ? bb : 0) * rest + r];
        y[bb * rest + r] = A[(a->batched ? bb : 0) * K * rest + c * rest + r];
      }
    break;
  }
  case OP_PICK_DX: { /* dy [...], codes -> [K, ...] */
    long long rest = shape_size(b->shape);
    for (int bb = 0; bb < nb; bb++)
      for (long long r = 0; r < rest; r++) {
        long long c = (long long)Bv[(b->batched ? bb : 0) * rest + r];
        y[bb * per + c * rest + r] = A[(a->batched ? bb : 0) * rest + r];
      }
    break;
  }
  case OP_NEAREST: { /* z [D, ...], codebook [K, D] */
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
  Diag d;
  Graph *g;
  Ev e;
} T;

static T *t_new(int B) {
  T *t = calloc(1, sizeof *t);
  t->a = arena_new();
  diag_init(&t->d, stderr);
  t->g = graph_new(t->a, "test");
  ev_init(&t->e, t->g, B);
  return t;
}

static void t_free(T *t) {
  ev_free(&t->e);
  diag_free(&t->d);
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

enum { R_NORMAL, R_AWAY, R_POS, R_BITS };

/* A source with random values: R_NORMAL, R_AWAY (|x| in [0.2, 1.2], away
 * from kinks), R_POS (in [0.5, 2]), R_BITS (0 or 1). */
static int src(T *t, Op op, Shape s, int batched, int kind) {
  int id = graph_source(t->g, op, s, batched, span_none, op == OP_PARAM ? "w" : "x");
  ck_assert_int_ge(id, 0);
  double *v = ev_fix(&t->e, id, NULL);
  for (long long k = 0; k < nsize(graph_node(t->g, id), t->e.B); k++) {
    double u = rng_unif();
    v[k] = kind == R_NORMAL ? rng_normal()
         : kind == R_AWAY   ? (u < 0.5 ? -1 : 1) * (0.2 + rng_unif())
         : kind == R_POS    ? 0.5 + 1.5 * u
                            : (double)(u < 0.5);
  }
  return id;
}

static int codes(T *t, Shape s, int batched, int classes) {
  GNode *n = graph_begin(t->g, OP_INPUT, NULL, 0, span_none, "c");
  n->shape = s;
  n->batched = batched;
  n->classes = classes;
  int id = graph_end(t->g, n);
  ck_assert_int_ge(id, 0);
  double *v = ev_fix(&t->e, id, NULL);
  for (long long k = 0; k < nsize(n, t->e.B); k++) v[k] = (double)(long long)(rng_unif() * classes);
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
  n->i[0] = i0, n->i[1] = i1, n->i[2] = i2, n->i[3] = i3;
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

/* A scalar objective sum(y * r) with r fixed and random, averaged over the
 * batch when y is batched: every element of y gets its own weight. */
static int objective(T *t, int y) {
  const GNode *n = graph_node(t->g, y);
  int r = src(t, OP_INPUT, n->shape, n->batched, R_NORMAL);
  int s = op1(t, OP_SUM, op2(t, OP_MUL, y, r));
  return graph_node(t->g, s)->batched ? op1(t, OP_BATCH_MEAN, s) : s;
}

static int grad_of(T *t, int of, int x) {
  int gr = -2;
  ck_assert_msg(autodiff(t->g, &t->d, of, &x, 1, &gr, "test"), "autodiff failed");
  return gr;
}

static double value_of(T *t, int of) {
  ev_clear(&t->e);
  return ev(&t->e, of)[0];
}

static int close_to(double x, double y, double rel) { return fabs(x - y) <= rel * fmax(1.0, fmax(fabs(x), fabs(y))); }

/* The op whose finite-difference cases run now (section (b)), and how many
 * of its cases compared gradients; every message of fd_check names it. */
static int fd_only = -1;
static int fd_ran;

/* Compares the gradient graph of `of` in each wrt node with central
 * differences of the value of `of_fd`: the same node for a true gradient,
 * or, for a straight-through estimator, the surrogate whose gradient it is
 * defined to be. */
static void fd_check2(T *t, int of, int of_fd, const int *wrt, int nwrt, const char *what) {
  int grads[16];
  ck_assert_int_le(nwrt, 16);
  if (fd_only >= 0) { /* the case really exercises its op */
    int found = 0;
    for (int i = 0; i <= of && !found; i++) found = graph_node(t->g, i)->op == (Op)fd_only;
    ck_assert_msg(found, "%s: the case's graph has no %s node", what, op_name((Op)fd_only));
  }
  ck_assert_msg(autodiff(t->g, &t->d, of, wrt, nwrt, grads, "test"), "%s: autodiff failed", what);
  ck_assert_int_eq(graph_node(t->g, of)->shape.rank, 0);
  ck_assert(!graph_node(t->g, of)->batched);
  ck_assert_int_eq(graph_node(t->g, of_fd)->shape.rank, 0);
  ck_assert(!graph_node(t->g, of_fd)->batched);
  for (int w = 0; w < nwrt; w++) {
    const GNode *x = graph_node(t->g, wrt[w]);
    long long n = nsize(x, t->e.B);
    char in[96];
    snprintf(in, sizeof in, "in%d (%s %s%s)", w, op_name(x->op), shape_str(t->a, x->shape), x->batched ? " batched" : "");
    ck_assert_msg(grads[w] >= 0, "%s: no gradient for %s", what, in);
    const GNode *gn = graph_node(t->g, grads[w]);
    ck_assert_msg(shape_eq(gn->shape, x->shape) && gn->batched == x->batched,
                  "%s: the gradient of %s is %s%s: wrong shape or batch flag", what, in, shape_str(t->a, gn->shape),
                  gn->batched ? " batched" : "");
    ev_clear(&t->e);
    double *ana = malloc(sizeof(double) * (size_t)n);
    memcpy(ana, ev(&t->e, grads[w]), sizeof(double) * (size_t)n);
    double *v = t->e.fixed[wrt[w]];
    ck_assert_ptr_nonnull(v);
    for (long long k = 0; k < n; k++) {
      double x0 = v[k], h = 1e-5 * fmax(1.0, fabs(x0));
      v[k] = x0 + h;
      double fp = value_of(t, of_fd);
      v[k] = x0 - h;
      double fm = value_of(t, of_fd);
      v[k] = x0;
      double fd = (fp - fm) / (2 * h);
      if (!close_to(ana[k], fd, 1e-6)) {
        double a = ana[k];
        free(ana);
        ck_abort_msg("%s: d/d %s differs at [%lld]: autodiff %.12g, finite differences %.12g", what, in, k, a, fd);
      }
    }
    free(ana);
  }
  fd_ran++;
}

static void fd_check(T *t, int of, const int *wrt, int nwrt, const char *what) { fd_check2(t, of, of, wrt, nwrt, what); }

/* "op: " and the case's description, for messages. */
static const char *fd_what(char *buf, size_t size, const char *fmt, va_list ap) {
  int k = snprintf(buf, size, "%s: ", fd_only >= 0 ? op_name((Op)fd_only) : "?");
  vsnprintf(buf + k, size - (size_t)k, fmt, ap);
  return buf;
}

/* The common case: one op's output weighted and summed, checked in its inputs. */
static void fd_op(T *t, int y, const int *wrt, int nwrt, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fd_op(T *t, int y, const int *wrt, int nwrt, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  fd_what(what, sizeof what, fmt, ap);
  va_end(ap);
  fd_check(t, objective(t, y), wrt, nwrt, what);
}

/* A straight-through estimator: the gradient of y (a draw) is checked
 * against finite differences of the surrogate, both weighted alike. */
static void fd_surrogate(T *t, int y, int surrogate, const int *wrt, int nwrt, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void fd_surrogate(T *t, int y, int surrogate, const int *wrt, int nwrt, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  fd_what(what, sizeof what, fmt, ap);
  va_end(ap);
  const GNode *n = graph_node(t->g, y);
  int r = src(t, OP_INPUT, n->shape, n->batched, R_NORMAL);
  int f = op1(t, OP_BATCH_MEAN, op1(t, OP_SUM, op2(t, OP_MUL, y, r)));
  int f_fd = op1(t, OP_BATCH_MEAN, op1(t, OP_SUM, op2(t, OP_MUL, surrogate, r)));
  fd_check2(t, f, f_fd, wrt, nwrt, what);
}

/* The gradient of y in wrt is an error (a draw without a usable estimator). */
static void expect_autodiff_error(T *t, int y, const int *wrt, int nwrt, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void expect_autodiff_error(T *t, int y, const int *wrt, int nwrt, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  fd_what(what, sizeof what, fmt, ap);
  va_end(ap);
  int f = objective(t, y), grads[16];
  FILE *sink = fopen("/dev/null", "w");
  ck_assert_ptr_nonnull(sink);
  t->d.out = sink;
  int errors = diag_errors(&t->d);
  int ok = autodiff(t->g, &t->d, f, wrt, nwrt, grads, "test");
  int more = diag_errors(&t->d) - errors;
  t->d.out = stderr;
  fclose(sink);
  ck_assert_msg(!ok && more >= 1, "%s: expected an error from autodiff, got %s", what, ok ? "a gradient" : "no message");
}

/* ------------------------------------------------- (a) exact gradients */

START_TEST(exact_sum_of_squares) { /* d sum(x x) / dx = 2x exactly, batched and not */
  for (int batched = 0; batched < 2; batched++) {
    T *t = t_new(3);
    rng_seed(1);
    int x = src(t, OP_INPUT, S2(2, 3), batched, R_NORMAL);
    int f = op1(t, OP_SUM, op2(t, OP_MUL, x, x));
    if (batched) f = op2(t, OP_MUL, op1(t, OP_BATCH_MEAN, f), graph_source(t->g, OP_BATCH_SIZE, S0, 0, span_none, NULL));
    int gr = grad_of(t, f, x);
    ck_assert_int_ge(gr, 0);
    const double *xv = ev(&t->e, x), *gv = ev(&t->e, gr);
    for (long long k = 0; k < nsize(graph_node(t->g, x), 3); k++) ck_assert_double_eq(gv[k], 2 * xv[k]);
    t_free(t);
  }
}
END_TEST

START_TEST(exact_matmul_outer_product) { /* f = sum(x @ W): dW[i, j] = sum over the batch of x[i] */
  T *t = t_new(3);
  rng_seed(2);
  int x = src(t, OP_INPUT, S1(3), 0, R_NORMAL);
  int W = src(t, OP_PARAM, S2(3, 4), 0, R_NORMAL);
  int f = op1(t, OP_SUM, op2(t, OP_MATMUL, x, W));
  int gr = grad_of(t, f, W);
  const double *xv = ev(&t->e, x), *gv = ev(&t->e, gr);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++) ck_assert_double_eq(gv[i * 4 + j], xv[i]);
  /* with a weight per output, dW = x^T dy, the outer product */
  T *u = t_new(2);
  int xb = src(u, OP_INPUT, S1(3), 1, R_NORMAL);
  int Wb = src(u, OP_PARAM, S2(3, 4), 0, R_NORMAL);
  int r = src(u, OP_INPUT, S1(4), 1, R_NORMAL);
  int y = op2(u, OP_MATMUL, xb, Wb);
  int fb = op1(u, OP_BATCH_MEAN, op1(u, OP_SUM, op2(u, OP_MUL, y, r)));
  int gb = grad_of(u, fb, Wb);
  const double *X = ev(&u->e, xb), *R = ev(&u->e, r), *G = ev(&u->e, gb);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++) ck_assert(close_to(G[i * 4 + j], (X[i] * R[j] + X[3 + i] * R[4 + j]) / 2, 1e-15));
  t_free(u);
  t_free(t);
}
END_TEST

START_TEST(exact_broadcast_counts) { /* sum(a + b): the broadcast operand's gradient is how often it was used */
  T *t = t_new(5);
  rng_seed(3);
  int a = src(t, OP_INPUT, S2(2, 3), 1, R_NORMAL);
  int b = src(t, OP_PARAM, S1(3), 0, R_NORMAL);
  int c = src(t, OP_PARAM, S2(2, 1), 0, R_NORMAL);
  int s = src(t, OP_PARAM, S0, 0, R_NORMAL);
  int y = op2(t, OP_ADD, op2(t, OP_ADD, op2(t, OP_ADD, a, b), c), s);
  int f = op1(t, OP_SUM, y);
  int total = graph_source(t->g, OP_BATCH_SIZE, S0, 0, span_none, NULL);
  f = op2(t, OP_MUL, op1(t, OP_BATCH_MEAN, f), total); /* the sum over the batch of 5 */
  int wrt[4] = {a, b, c, s}, g[4];
  ck_assert(autodiff(t->g, &t->d, f, wrt, 4, g, "test"));
  const double *ga = ev(&t->e, g[0]), *gb = ev(&t->e, g[1]), *gc = ev(&t->e, g[2]), *gs = ev(&t->e, g[3]);
  for (int k = 0; k < 30; k++) ck_assert(close_to(ga[k], 1, 1e-15));
  for (int k = 0; k < 3; k++) ck_assert(close_to(gb[k], 2 * 5, 1e-15));
  for (int k = 0; k < 2; k++) ck_assert(close_to(gc[k], 3 * 5, 1e-15));
  ck_assert(close_to(gs[0], 6 * 5, 1e-15));
  t_free(t);
}
END_TEST

START_TEST(exact_batch_mean) { /* d batch_mean(x) / dx = 1/B */
  T *t = t_new(4);
  rng_seed(4);
  int x = src(t, OP_INPUT, S0, 1, R_NORMAL);
  int gr = grad_of(t, op1(t, OP_BATCH_MEAN, x), x);
  const double *gv = ev(&t->e, gr);
  for (int k = 0; k < 4; k++) ck_assert_double_eq(gv[k], 0.25);
  t_free(t);
}
END_TEST

START_TEST(batch_mean_of_unbatched) {
  /* A loss that does not depend on the data (a pure regularizer such as
   * `loss reg = sum(square(e))` over a model parameter) is unbatched; its
   * batch mean is itself, so its gradient is 2w, not 2w/B.  The rule of
   * batch_mean divides by the batch size whether or not its input has the
   * batch axis. */
  T *t = t_new(4);
  rng_seed(5);
  int w = src(t, OP_PARAM, S1(3), 0, R_NORMAL);
  int f = op1(t, OP_BATCH_MEAN, op1(t, OP_SUM, op1(t, OP_SQUARE, w)));
  int gr = grad_of(t, f, w);
  const double *wv = ev(&t->e, w), *gv = ev(&t->e, gr);
  for (int k = 0; k < 3; k++)
    ck_assert_msg(close_to(gv[k], 2 * wv[k], 1e-12), "d batch_mean(sum(w^2))/dw[%d] = %g, expected 2w = %g", k, gv[k], 2 * wv[k]);
  t_free(t);
}
END_TEST

START_TEST(exact_stop_grad) {
  T *t = t_new(2);
  rng_seed(6);
  int x = src(t, OP_PARAM, S1(3), 0, R_NORMAL);
  int y = src(t, OP_PARAM, S1(3), 0, R_NORMAL);
  /* f = sum(sg(x) * y + square(sg(x))): nothing reaches x */
  int sx = op1(t, OP_STOP_GRAD, x);
  int f = op1(t, OP_SUM, op2(t, OP_ADD, op2(t, OP_MUL, sx, y), op1(t, OP_SQUARE, sx)));
  int wrt[2] = {x, y}, g[2];
  ck_assert(autodiff(t->g, &t->d, f, wrt, 2, g, "test"));
  ck_assert_int_eq(g[0], -1);
  ck_assert_int_ge(g[1], 0);
  const double *xv = ev(&t->e, x), *gy = ev(&t->e, g[1]);
  for (int k = 0; k < 3; k++) ck_assert_double_eq(gy[k], xv[k]);
  /* x both through stop_grad and directly: only the direct use counts */
  int f2 = op1(t, OP_SUM, op2(t, OP_MUL, sx, x));
  int g2 = grad_of(t, f2, x);
  ev_clear(&t->e);
  const double *gx = ev(&t->e, g2);
  for (int k = 0; k < 3; k++) ck_assert_double_eq(gx[k], xv[k]);
  t_free(t);
}
END_TEST

START_TEST(exact_used_twice) { /* f = sum(x * c + exp(x)) + sum(x): gradients of each use are summed */
  T *t = t_new(2);
  rng_seed(7);
  int x = src(t, OP_PARAM, S1(4), 0, R_NORMAL);
  int c = src(t, OP_PARAM, S1(4), 0, R_NORMAL);
  int f = op2(t, OP_ADD, op1(t, OP_SUM, op2(t, OP_ADD, op2(t, OP_MUL, x, c), op1(t, OP_EXP, x))), op1(t, OP_SUM, x));
  int gr = grad_of(t, f, x);
  const double *xv = ev(&t->e, x), *cv = ev(&t->e, c), *gv = ev(&t->e, gr);
  for (int k = 0; k < 4; k++) ck_assert(close_to(gv[k], cv[k] + exp(xv[k]) + 1, 1e-15));
  t_free(t);
}
END_TEST

START_TEST(exact_skips_what_does_not_depend) {
  T *t = t_new(2);
  rng_seed(8);
  int x = src(t, OP_PARAM, S1(3), 0, R_NORMAL);
  int u = src(t, OP_PARAM, S1(3), 0, R_NORMAL); /* not used by f */
  int k = codes(t, S1(3), 1, 4);                /* integer codes: never differentiated */
  int table = src(t, OP_PARAM, S2(4, 3), 0, R_NORMAL);
  int e = op2(t, OP_EMBED, table, k);
  int f = op1(t, OP_BATCH_MEAN, op1(t, OP_SUM, op2(t, OP_MUL, op1(t, OP_SUM_AXIS, e), x)));
  int before = t->g->nodes.len;
  int wrt[3] = {x, u, k}, g[3];
  ck_assert(autodiff(t->g, &t->d, f, wrt, 3, g, "test"));
  ck_assert_int_ge(g[0], 0);
  ck_assert_int_eq(g[1], -1);
  ck_assert_int_eq(g[2], -1);
  /* nothing is built for the table, which was not asked for */
  for (int i = before; i < t->g->nodes.len; i++) ck_assert_int_ne(graph_node(t->g, i)->op, OP_EMBED_DW);
  t_free(t);
}
END_TEST

START_TEST(straight_through_bernoulli) { /* estimator straight_through: d sample / d logits = sigmoid'(logits) */
  T *t = t_new(3);
  rng_seed(9);
  int l = src(t, OP_INPUT, S1(4), 1, R_NORMAL);
  GNode *n = graph_begin(t->g, OP_SAMPLE_BERNOULLI, &l, 1, span_none, NULL);
  n->i[1] = 1;
  int s = graph_end(t->g, n);
  ev_fix(&t->e, s, NULL); /* the draw itself does not matter */
  int r = src(t, OP_INPUT, S1(4), 1, R_NORMAL);
  int f = op1(t, OP_BATCH_MEAN, op1(t, OP_SUM, op2(t, OP_MUL, s, r)));
  int gr = grad_of(t, f, l);
  const double *lv = ev(&t->e, l), *rv = ev(&t->e, r), *gv = ev(&t->e, gr);
  for (int k = 0; k < 12; k++) {
    double sg = sigmoid(lv[k]);
    ck_assert(close_to(gv[k], rv[k] * sg * (1 - sg) / 3, 1e-14));
  }
  /* without an estimator: an error, not a gradient */
  T *u = t_new(3);
  FILE *sink = fopen("/dev/null", "w");
  u->d.out = sink;
  int l2 = src(u, OP_INPUT, S1(4), 1, R_NORMAL);
  int s2 = op1(u, OP_SAMPLE_BERNOULLI, l2);
  int f2 = op1(u, OP_BATCH_MEAN, op1(u, OP_SUM, s2));
  int g2;
  ck_assert(!autodiff(u->g, &u->d, f2, &l2, 1, &g2, "test"));
  ck_assert_int_ge(diag_errors(&u->d), 1);
  fclose(sink);
  u->d.out = stderr;
  t_free(u);
  t_free(t);
}
END_TEST

/* ------------------------------------- (b) finite differences, per op */

/* One Check test per op of the op table (the loop test fd_op_each): its
 * iteration for op runs every case below of that op.  The cases come in
 * families; each skips the cases of other ops before building anything.
 * An op with a gradient rule in autodiff.c must have a case, with every
 * attribute combination the stdlib and the lowering use; an op without
 * one is listed in `exempt` (further below) with its reason, and its
 * iteration checks that autodiff indeed builds no gradient through it. */

static int want(Op op) { return (int)op == fd_only; }

static void cases_unary(void) {
  static const Op ops[] = {OP_NEG, OP_EXP, OP_LOG, OP_SQRT, OP_ABS, OP_SQUARE, OP_RELU, OP_ELU,
                           OP_SELU, OP_LEAKY_RELU, OP_TANH, OP_SIGMOID, OP_SOFTPLUS};
  /* leaky_relu's slope: 0.01 is the default of the builtin */
  static const double slopes[] = {0.2, 0.01};
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
    if (!want(ops[i])) continue;
    int nslopes = ops[i] == OP_LEAKY_RELU ? 2 : 1;
    for (int sl = 0; sl < nslopes; sl++)
      for (int batched = 0; batched < 2; batched++) {
        T *t = t_new(2);
        rng_seed(100 + i + 50 * (unsigned long long)sl);
        int pos = ops[i] == OP_LOG || ops[i] == OP_SQRT;
        int x = src(t, batched ? OP_INPUT : OP_PARAM, S2(2, 3), batched, pos ? R_POS : R_AWAY);
        double f = ops[i] == OP_LEAKY_RELU ? slopes[sl] : 0;
        int y = opf(t, ops[i], x, f);
        if (ops[i] == OP_LEAKY_RELU)
          fd_op(t, y, &x, 1, "slope %g, x [2, 3] %s", f, batched ? "batched" : "unbatched");
        else
          fd_op(t, y, &x, 1, "x [2, 3] %s", batched ? "batched" : "unbatched");
        t_free(t);
      }
  }
}

static void cases_binary(void) {
  static const Op ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV};
  struct { Shape a; int ab; Shape b; int bb; } cases[] = {
      {S2(2, 3), 1, S2(2, 3), 1}, {S2(2, 3), 1, S1(3), 0},    {S2(2, 1), 0, S2(1, 3), 1},
      {S0, 1, S2(2, 3), 1},       {S2(2, 3), 0, S0, 0},       {S1(3), 0, S2(2, 3), 0},
      {S2(2, 3), 0, S0, 1},       {S3(2, 1, 3), 1, S2(4, 1), 0},
  };
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
    if (!want(ops[i])) continue;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
      T *t = t_new(2);
      rng_seed(200 + 10 * i + c);
      int a = src(t, cases[c].ab ? OP_INPUT : OP_PARAM, cases[c].a, cases[c].ab, R_AWAY);
      int b = src(t, cases[c].bb ? OP_INPUT : OP_PARAM, cases[c].b, cases[c].bb, ops[i] == OP_DIV ? R_POS : R_AWAY);
      int wrt[2] = {a, b};
      fd_op(t, op2(t, ops[i], a, b), wrt, 2, "case %zu: a %s%s, b %s%s", c, shape_str(t->a, cases[c].a),
            cases[c].ab ? " batched" : "", shape_str(t->a, cases[c].b), cases[c].bb ? " batched" : "");
      t_free(t);
    }
    /* one node as both operands */
    T *t = t_new(2);
    rng_seed(250 + i);
    int a = src(t, OP_INPUT, S1(3), 1, R_POS);
    fd_op(t, op2(t, ops[i], a, a), &a, 1, "x %s x", op_name(ops[i]));
    t_free(t);
  }
}

static void matmul_case(int ta, int tb, Shape as, int ab, Shape bs, int bb, int seed) {
  T *t = t_new(3);
  rng_seed((unsigned long long)seed);
  int a = src(t, ab ? OP_INPUT : OP_PARAM, as, ab, R_NORMAL);
  int b = src(t, bb ? OP_INPUT : OP_PARAM, bs, bb, R_NORMAL);
  int in[2] = {a, b}, wrt[2] = {a, b};
  int y = opi(t, OP_MATMUL, in, 2, ta, tb, 0, 0);
  fd_op(t, y, wrt, 2, "ta=%d tb=%d, a %s%s, b %s%s (seed %d)", ta, tb, shape_str(t->a, as), ab ? " batched" : "",
        shape_str(t->a, bs), bb ? " batched" : "", seed);
  t_free(t);
}

/* the lowering builds x @ W (ta = tb = 0); the rule's transposes are checked too */
static void cases_matmul(void) {
  if (!want(OP_MATMUL)) return;
  matmul_case(0, 0, S1(3), 1, S2(3, 4), 0, 300);          /* x @ W */
  matmul_case(0, 0, S2(2, 3), 1, S2(3, 4), 0, 301);       /* leading axis folded into rows */
  matmul_case(0, 0, S1(3), 0, S2(3, 4), 0, 302);          /* unbatched vector */
  matmul_case(0, 0, S2(2, 3), 0, S2(3, 4), 0, 303);       /* unbatched matrix */
  matmul_case(0, 1, S1(3), 1, S2(4, 3), 0, 304);          /* x @ W^T */
  matmul_case(0, 1, S3(2, 2, 3), 1, S2(4, 3), 0, 305);
  matmul_case(1, 0, S1(3), 1, S1(4), 1, 306);             /* x^T y over the batch */
  matmul_case(1, 0, S2(2, 3), 1, S2(2, 4), 1, 307);
  matmul_case(1, 0, S2(5, 3), 0, S2(5, 4), 0, 308);       /* unbatched a^T b */
}

/* sum(x) and mean(x); sum(x, axis) for every axis; logsumexp over axis 0
 * (the builtin flattens to [n] first; the categorical density keeps
 * [K, ...]); softmax over axis 0 */
static void cases_reductions(void) {
  for (int batched = 0; batched < 2; batched++) {
    T *t = t_new(2);
    rng_seed(400 + batched);
    const char *b = batched ? "batched" : "unbatched";
    int x = src(t, batched ? OP_INPUT : OP_PARAM, S3(2, 3, 4), batched, R_NORMAL);
    if (want(OP_SUM)) fd_op(t, op1(t, OP_SUM, x), &x, 1, "x [2, 3, 4] %s", b);
    if (want(OP_SUM_AXIS))
      for (int axis = 0; axis < 3; axis++) fd_op(t, opi(t, OP_SUM_AXIS, &x, 1, axis, 0, 0, 0), &x, 1, "axis %d, x [2, 3, 4] %s", axis, b);
    if (want(OP_LOGSUMEXP)) fd_op(t, op1(t, OP_LOGSUMEXP, x), &x, 1, "x [2, 3, 4] %s", b);
    if (want(OP_SOFTMAX)) fd_op(t, op1(t, OP_SOFTMAX, x), &x, 1, "x [2, 3, 4] %s", b);
    int v = src(t, batched ? OP_INPUT : OP_PARAM, S1(5), batched, R_NORMAL);
    if (want(OP_LOGSUMEXP)) fd_op(t, op1(t, OP_LOGSUMEXP, v), &v, 1, "x [5] %s", b);
    if (want(OP_SOFTMAX)) fd_op(t, op1(t, OP_SOFTMAX, v), &v, 1, "x [5] %s", b);
    t_free(t);
  }
}

static void cases_reduce_expand_batch(void) {
  struct { Shape from; int fb; Shape to; int tb; } r[] = {
      {S2(2, 3), 1, S1(3), 0}, {S2(2, 3), 1, S2(1, 3), 1}, {S2(2, 3), 1, S0, 0}, {S2(2, 3), 0, S2(2, 1), 0}, {S2(2, 3), 1, S2(2, 3), 0},
  };
  if (want(OP_REDUCE_TO) || want(OP_EXPAND))
    for (size_t c = 0; c < sizeof r / sizeof *r; c++) {
      T *t = t_new(3);
      rng_seed(500 + c);
      const char *from = shape_str(t->a, r[c].from), *to = shape_str(t->a, r[c].to);
      const char *fb = r[c].fb ? " batched" : "", *tb = r[c].tb ? " batched" : "";
      int x = src(t, r[c].fb ? OP_INPUT : OP_PARAM, r[c].from, r[c].fb, R_NORMAL);
      if (want(OP_REDUCE_TO)) fd_op(t, shaped(t, OP_REDUCE_TO, x, r[c].to, r[c].tb), &x, 1, "%s%s to %s%s", from, fb, to, tb);
      int y = src(t, r[c].tb ? OP_INPUT : OP_PARAM, r[c].to, r[c].tb, R_NORMAL);
      if (want(OP_EXPAND)) fd_op(t, shaped(t, OP_EXPAND, y, r[c].from, r[c].fb), &y, 1, "%s%s to %s%s", to, tb, from, fb);
      t_free(t);
    }
  if (want(OP_BATCH_MEAN) || want(OP_RESHAPE)) {
    T *t = t_new(3);
    rng_seed(510);
    int x = src(t, OP_INPUT, S2(2, 3), 1, R_NORMAL);
    if (want(OP_BATCH_MEAN)) fd_op(t, op1(t, OP_BATCH_MEAN, x), &x, 1, "x [2, 3] batched");
    if (want(OP_RESHAPE)) {
      fd_op(t, shaped(t, OP_RESHAPE, x, S1(6), 0), &x, 1, "[2, 3] batched to [6]");
      fd_op(t, shaped(t, OP_RESHAPE, x, S3(3, 1, 2), 0), &x, 1, "[2, 3] batched to [3, 1, 2]");
    }
    int w = src(t, OP_PARAM, S2(2, 3), 0, R_NORMAL);
    if (want(OP_RESHAPE)) fd_op(t, shaped(t, OP_RESHAPE, w, S2(3, 2), 0), &w, 1, "[2, 3] unbatched to [3, 2]");
    /* a loss that does not depend on the data (a regularizer) is unbatched: its batch mean is itself */
    if (want(OP_BATCH_MEAN)) fd_op(t, op1(t, OP_BATCH_MEAN, w), &w, 1, "w [2, 3] unbatched");
    t_free(t);
  }
}

static void cases_concat(void) {
  if (!want(OP_CONCAT)) return;
  for (int axis = 0; axis < 2; axis++)
    for (int mix = 0; mix < 2; mix++) {
      T *t = t_new(2);
      rng_seed(600 + 2 * axis + mix);
      Shape s1 = axis ? S2(2, 1) : S2(1, 3), s2 = axis ? S2(2, 3) : S2(2, 3), s3 = axis ? S2(2, 2) : S2(3, 3);
      int a = src(t, OP_INPUT, s1, 1, R_NORMAL);
      int b = src(t, mix ? OP_PARAM : OP_INPUT, s2, !mix, R_NORMAL);
      int c = src(t, OP_INPUT, s3, 1, R_NORMAL);
      int in[3] = {a, b, c};
      fd_op(t, opi(t, OP_CONCAT, in, 3, axis, 0, 0, 0), in, 3, "axis %d%s", axis, mix ? " (unbatched part)" : "");
      t_free(t);
    }
  T *t = t_new(2); /* a slice of a concat of one input used twice */
  rng_seed(610);
  int a = src(t, OP_INPUT, S1(3), 1, R_NORMAL);
  int in[2] = {a, a};
  fd_op(t, opi(t, OP_CONCAT, in, 2, 0, 0, 0, 0), &a, 1, "x with itself");
  t_free(t);
}

/* oph, opw: the output pad of height and width (the lowering sets both to
 * output_pad; the rule of conv2d computes each for its transpose). */
static void conv_case(int transposed, Shape xs, long long o, long long k, long long s, long long p, long long dl, long long oph,
                      long long opw, int seed) {
  T *t = t_new(2);
  rng_seed((unsigned long long)seed);
  long long c = xs.d[0];
  int x = src(t, OP_INPUT, xs, 1, R_NORMAL);
  int w = src(t, OP_PARAM, transposed ? S4(c, o, k, k) : S4(o, c, k, k), 0, R_NORMAL);
  int in[2] = {x, w}, wrt[2] = {x, w};
  GNode *n = graph_begin(t->g, transposed ? OP_CONV2D_T : OP_CONV2D, in, 2, span_none, NULL);
  n->i[0] = s, n->i[1] = p, n->i[2] = dl, n->i[3] = oph, n->i[4] = opw;
  int y = graph_end(t->g, n);
  ck_assert_msg(y >= 0, "%s rejected", transposed ? "conv2d_transpose" : "conv2d");
  fd_op(t, y, wrt, 2, "x %s, %lld outputs, k=%lld stride=%lld pad=%lld dilation=%lld output_pad=(%lld, %lld) -> %s",
        shape_str(t->a, xs), o, k, s, p, dl, oph, opw, shape_str(t->a, graph_node(t->g, y)->shape));
  t_free(t);
}

static void cases_conv2d(void) {
  if (!want(OP_CONV2D)) return;
  conv_case(0, S3(2, 5, 5), 3, 1, 1, 0, 1, 0, 0, 700); /* 1x1 (pixelcnn's output layers, conv_residual's second) */
  conv_case(0, S3(2, 5, 5), 3, 3, 1, 1, 1, 0, 0, 701); /* masked_conv2d k=3: size-preserving */
  conv_case(0, S3(1, 7, 7), 2, 7, 1, 3, 1, 0, 0, 707); /* masked_conv2d k=7 (pixelcnn's first layer) */
  conv_case(0, S3(1, 8, 8), 2, 4, 2, 1, 1, 0, 0, 702); /* conv_encoder: 4x4 stride 2 pad 1 */
  conv_case(0, S3(2, 7, 7), 2, 4, 2, 1, 1, 0, 0, 703); /* odd size: the transpose needs output_pad 1 */
  conv_case(0, S3(1, 6, 6), 2, 3, 2, 1, 1, 0, 0, 704);
  conv_case(0, S3(1, 7, 7), 2, 3, 1, 0, 2, 0, 0, 705); /* dilation 2 */
  conv_case(0, S3(1, 6, 6), 1, 3, 2, 0, 1, 0, 0, 706); /* stride 2 pad 0: rows left unread */
  /* h and w leaving different remainders under stride 2: the input
   * gradient needs output_pad 0 in h and 1 in w (a rule computing one
   * output pad from h only dropped this gradient) */
  conv_case(0, S3(1, 5, 6), 2, 3, 2, 1, 1, 0, 0, 720);
  /* several channels on non-square images; stride 2 with pad 1; dilation 2
   * alone, with pad, and with stride 2 (whose input gradient needs output
   * pads that differ in height and width: 9 and 8 leave remainders 0 and 1) */
  conv_case(0, S3(3, 6, 5), 2, 3, 2, 1, 1, 0, 0, 721);
  conv_case(0, S3(2, 6, 8), 3, 4, 2, 1, 1, 0, 0, 722); /* conv_encoder's layer on a non-square image */
  conv_case(0, S3(2, 9, 8), 2, 3, 2, 1, 2, 0, 0, 723); /* dilation 2, stride 2, pad 1 */
  conv_case(0, S3(2, 5, 6), 2, 3, 1, 2, 2, 0, 0, 724); /* dilation 2, pad 2: size-preserving */
  conv_case(0, S3(3, 7, 6), 2, 3, 2, 2, 2, 0, 0, 725); /* dilation 2, stride 2, pad 2 */
  conv_case(0, S3(2, 6, 7), 2, 2, 3, 1, 3, 0, 0, 726); /* an even kernel, stride 3, dilation 3 */
}

static void cases_conv2d_transpose(void) {
  if (!want(OP_CONV2D_T)) return;
  conv_case(1, S3(2, 4, 4), 3, 1, 1, 0, 1, 0, 0, 710);
  conv_case(1, S3(2, 4, 4), 1, 4, 2, 1, 1, 0, 0, 711); /* conv_decoder: 4x4 stride 2 pad 1 */
  conv_case(1, S3(1, 3, 3), 2, 4, 2, 1, 1, 1, 0, 712); /* output pad in h only */
  conv_case(1, S3(1, 3, 3), 2, 3, 2, 1, 1, 1, 0, 713);
  conv_case(1, S3(1, 3, 3), 2, 4, 2, 1, 1, 1, 1, 716); /* output_pad 1, as the builtin sets it */
  conv_case(1, S3(2, 3, 4), 2, 3, 2, 1, 1, 1, 1, 717); /* non-square */
  conv_case(1, S3(2, 4, 4), 2, 3, 1, 1, 1, 0, 0, 714);
  conv_case(1, S3(1, 3, 3), 1, 3, 1, 0, 2, 0, 0, 715); /* dilation 2 */
  /* several channels on non-square images; stride 2 with pad 1 and output
   * pads; dilation 2 alone, with pad, with stride 2 */
  conv_case(1, S3(3, 3, 2), 2, 4, 2, 1, 1, 0, 0, 730); /* conv_decoder's layer on a non-square image */
  conv_case(1, S3(2, 3, 4), 3, 3, 2, 1, 2, 1, 1, 731); /* dilation 2, stride 2, pad 1, output_pad 1 */
  conv_case(1, S3(2, 3, 4), 2, 3, 2, 1, 2, 0, 1, 732); /* ... output pads 0 and 1 */
  conv_case(1, S3(2, 4, 3), 2, 3, 1, 2, 2, 0, 0, 733); /* dilation 2, pad 2 */
  conv_case(1, S3(2, 3, 4), 2, 2, 3, 1, 3, 2, 1, 734); /* an even kernel, stride 3, dilation 3, output pads 2 and 1 */
}

/* The PixelCNN mask [o, c, k, k] as docs/LANGUAGE.md words it: 1 above the
 * centre row and left of the centre in its row; type B also the centre. */
static void ref_conv_mask(double *m, long long o, long long c, long long k, int type_b) {
  for (long long i = 0; i < o * c; i++)
    for (long long u = 0; u < k; u++)
      for (long long v = 0; v < k; v++)
        m[(i * k + u) * k + v] = u < k / 2 || (u == k / 2 && (v < k / 2 || (type_b && v == k / 2))) ? 1 : 0;
}

/* y = conv(x, W * conv_mask(type)) with the size-preserving pad of
 * nn.masked_conv2d; returns y, sets the mask node (its values fixed). */
static int masked_conv(T *t, int x, int w, long long k, int type_b, int *mask) {
  const GNode *wn = graph_node(t->g, w);
  *mask = graph_source(t->g, OP_MASK_CONV, wn->shape, 0, span_none, type_b ? "B" : "A");
  ck_assert_int_ge(*mask, 0);
  ref_conv_mask(ev_fix(&t->e, *mask, NULL), wn->shape.d[0], wn->shape.d[1], k, type_b);
  int in[2] = {x, op2(t, OP_MUL, w, *mask)};
  return opi(t, OP_CONV2D, in, 2, 1, (k - 1) / 2, 1, 0);
}

/* nn.masked_conv2d: the kernel times a type A or B mask (the kernel's
 * gradient is zero where the mask is), x and the kernel checked */
static void cases_masked_conv2d(void) {
  if (!want(OP_CONV2D)) return;
  struct { Shape x; long long o, k; } c[] = {{S3(2, 5, 6), 3, 3}, {S3(1, 4, 5), 2, 5}, {S3(2, 3, 3), 2, 1}};
  for (size_t i = 0; i < sizeof c / sizeof *c; i++)
    for (int type_b = 0; type_b < 2; type_b++) {
      if (c[i].k == 1 && !type_b) continue; /* a 1x1 type A mask is all zero: no dependence at all */
      T *t = t_new(2);
      rng_seed(740 + 2 * i + (unsigned long long)type_b);
      int x = src(t, OP_INPUT, c[i].x, 1, R_NORMAL);
      int w = src(t, OP_PARAM, S4(c[i].o, c[i].x.d[0], c[i].k, c[i].k), 0, R_NORMAL);
      int mask, wrt[2] = {x, w};
      int y = masked_conv(t, x, w, c[i].k, type_b, &mask);
      fd_op(t, y, wrt, 2, "masked (type %s) x %s, %lld outputs, k=%lld pad=%lld", type_b ? "B" : "A", shape_str(t->a, c[i].x),
            c[i].o, c[i].k, (c[i].k - 1) / 2);
      t_free(t);
    }
}

/* A masked convolution's output at position i (raster order) does not
 * depend on the input at positions j > i, nor, with type A, at i itself;
 * with type B it does at i.  Measured by changing one input element at a
 * time in the double evaluator. */
START_TEST(masked_conv_causal) {
  for (int type_b = 0; type_b < 2; type_b++)
    for (long long k = 3; k <= 5; k += 2) {
      T *t = t_new(1);
      rng_seed(30 + (unsigned long long)(2 * k + type_b));
      long long C = 2, H = 4, W = 5, O = 3, hw = H * W;
      int x = src(t, OP_INPUT, S3(C, H, W), 1, R_NORMAL);
      int w = src(t, OP_PARAM, S4(O, C, k, k), 0, R_NORMAL);
      int mask, y = masked_conv(t, x, w, k, type_b, &mask);
      double *y0 = malloc(sizeof(double) * (size_t)(O * hw));
      memcpy(y0, ev(&t->e, y), sizeof(double) * (size_t)(O * hw));
      double *xv = t->e.fixed[x];
      for (long long c = 0; c < C; c++)
        for (long long j = 0; j < hw; j++) {
          double x0 = xv[c * hw + j];
          xv[c * hw + j] = x0 + 1;
          ev_clear(&t->e);
          const double *y1 = ev(&t->e, y);
          int same_place = 0;
          for (long long o = 0; o < O; o++)
            for (long long i = 0; i < hw; i++) {
              int moved = y1[o * hw + i] != y0[o * hw + i];
              if (i < j || (i == j && !type_b))
                ck_assert_msg(!moved, "type %s k=%lld: output %lld (channel %lld) moved with input %lld (channel %lld)", type_b ? "B" : "A",
                              k, i, o, j, c);
              if (i == j) same_place |= moved;
            }
          if (type_b) ck_assert_msg(same_place, "type B k=%lld: output %lld does not depend on input %lld", k, j, j);
          xv[c * hw + j] = x0;
        }
      free(y0);
      t_free(t);
    }
}
END_TEST

/* A Categorical draw from logits l with the given estimator (0 none,
 * 1 straight_through, 2 score_function), its codes fixed at random. */
static int draw_categorical(T *t, int l, int estimator) {
  GNode *n = graph_begin(t->g, OP_SAMPLE_CATEGORICAL, &l, 1, span_none, NULL);
  n->i[1] = estimator;
  int c = graph_end(t->g, n);
  ck_assert_int_ge(c, 0);
  double *v = ev_fix(&t->e, c, NULL);
  for (long long k = 0; k < nsize(graph_node(t->g, c), t->e.B); k++) v[k] = (double)(long long)(rng_unif() * graph_node(t->g, c)->classes);
  return c;
}

static int draw_bernoulli(T *t, int l, int estimator) {
  GNode *n = graph_begin(t->g, OP_SAMPLE_BERNOULLI, &l, 1, span_none, NULL);
  n->i[1] = estimator;
  int s = graph_end(t->g, n);
  ck_assert_int_ge(s, 0);
  double *v = ev_fix(&t->e, s, NULL);
  for (long long k = 0; k < nsize(graph_node(t->g, s), t->e.B); k++) v[k] = (double)(rng_unif() < 0.5);
  return s;
}

static const char *const estimators[] = {"no estimator", "straight_through", "score_function"};

static void cases_codes(void) {
  if (want(OP_EMBED) || want(OP_PICK)) {
    T *t = t_new(3);
    rng_seed(800);
    int table = src(t, OP_PARAM, S2(4, 3), 0, R_NORMAL);
    int c = codes(t, S2(2, 2), 1, 4);
    if (want(OP_EMBED)) fd_op(t, op2(t, OP_EMBED, table, c), &table, 1, "table [4, 3], codes [2, 2] batched");
    int x = src(t, OP_INPUT, S2(4, 5), 1, R_NORMAL);
    int c5 = codes(t, S1(5), 1, 4);
    if (want(OP_PICK)) fd_op(t, op2(t, OP_PICK, x, c5), &x, 1, "x [4, 5] batched, codes [5] batched");
    int xu = src(t, OP_PARAM, S2(4, 5), 0, R_NORMAL);
    if (want(OP_PICK)) fd_op(t, op2(t, OP_PICK, xu, c5), &xu, 1, "x [4, 5] unbatched, codes [5] batched");
    /* the categorical log-density: pick(l, c) - logsumexp(l) */
    int l = src(t, OP_INPUT, S2(4, 2), 1, R_NORMAL);
    int c2 = codes(t, S1(2), 1, 4);
    if (want(OP_PICK)) fd_op(t, op2(t, OP_SUB, op2(t, OP_PICK, l, c2), op1(t, OP_LOGSUMEXP, l)), &l, 1, "categorical log-density");
    t_free(t);
  }
  /* codes drawn from logits being differentiated: only onehot passes a
   * (straight-through) gradient; embed and pick report an error */
  for (int est = 0; est < 3 && (want(OP_EMBED) || want(OP_PICK) || want(OP_ONEHOT)); est++) {
    T *t = t_new(2);
    rng_seed(810 + (unsigned long long)est);
    int l = src(t, OP_INPUT, S2(4, 2), 1, R_NORMAL);
    int c = draw_categorical(t, l, est);
    if (want(OP_EMBED)) {
      int table = src(t, OP_PARAM, S2(4, 3), 0, R_NORMAL);
      expect_autodiff_error(t, op2(t, OP_EMBED, table, c), &l, 1, "codes from a Categorical draw (%s)", estimators[est]);
    }
    if (want(OP_PICK)) {
      int x = src(t, OP_INPUT, S2(4, 2), 1, R_NORMAL);
      expect_autodiff_error(t, op2(t, OP_PICK, x, c), &l, 1, "codes from a Categorical draw (%s)", estimators[est]);
    }
    if (want(OP_ONEHOT) && est != 1)
      expect_autodiff_error(t, op1(t, OP_ONEHOT, c), &l, 1, "codes from a Categorical draw (%s)", estimators[est]);
    t_free(t);
  }
  /* onehot(c ~ Categorical(logits = l)), estimator straight_through: backward as if softmax(l) */
  if (want(OP_ONEHOT)) {
    struct { Shape s; int batched; } ls[] = {{S1(4), 1}, {S2(4, 3), 1}, {S2(3, 2), 0}};
    for (size_t i = 0; i < sizeof ls / sizeof *ls; i++) {
      T *t = t_new(3);
      rng_seed(820 + i);
      int l = src(t, ls[i].batched ? OP_INPUT : OP_PARAM, ls[i].s, ls[i].batched, R_NORMAL);
      int c = draw_categorical(t, l, 1);
      fd_surrogate(t, op1(t, OP_ONEHOT, c), op1(t, OP_SOFTMAX, l), &l, 1,
                   "straight_through Categorical draw from logits %s%s, against softmax(logits)", shape_str(t->a, ls[i].s),
                   ls[i].batched ? " batched" : "");
      t_free(t);
    }
  }
}

/* b ~ Bernoulli(logits = l): straight-through, backward as if sigmoid(l);
 * otherwise an error */
static void cases_bernoulli(void) {
  if (!want(OP_SAMPLE_BERNOULLI)) return;
  struct { Shape s; int batched; } ls[] = {{S1(4), 1}, {S2(2, 3), 1}, {S1(3), 0}};
  for (size_t i = 0; i < sizeof ls / sizeof *ls; i++) {
    T *t = t_new(3);
    rng_seed(830 + i);
    int l = src(t, ls[i].batched ? OP_INPUT : OP_PARAM, ls[i].s, ls[i].batched, R_NORMAL);
    fd_surrogate(t, draw_bernoulli(t, l, 1), op1(t, OP_SIGMOID, l), &l, 1,
                 "straight_through draw from logits %s%s, against sigmoid(logits)", shape_str(t->a, ls[i].s),
                 ls[i].batched ? " batched" : "");
    t_free(t);
  }
  for (int est = 0; est < 3; est += 2) {
    T *t = t_new(2);
    rng_seed(840 + (unsigned long long)est);
    int l = src(t, OP_INPUT, S1(4), 1, R_NORMAL);
    expect_autodiff_error(t, draw_bernoulli(t, l, est), &l, 1, "%s", estimators[est]);
    t_free(t);
  }
}

static void (*const fd_families[])(void) = {
    cases_unary,  cases_binary, cases_matmul,           cases_reductions, cases_reduce_expand_batch,
    cases_concat, cases_conv2d, cases_conv2d_transpose, cases_masked_conv2d, cases_codes, cases_bernoulli,
};

/* The ops without a gradient rule, each with its reason; how the
 * iteration checks it: a source has no inputs; through the others
 * autodiff builds no gradient (or, for a draw, reports an error). */
enum { X_SOURCE, X_NONE, X_ERROR };
static const struct {
  Op op;
  int kind;
  const char *reason;
} exempt[] = {
    {OP_INPUT, X_SOURCE, "a source (data or latents): differentiated with respect to, never through"},
    {OP_PARAM, X_SOURCE, "a source (a parameter): differentiated with respect to, never through"},
    {OP_CONST, X_SOURCE, "a source: a constant"},
    {OP_FILL, X_SOURCE, "a source: zeros or ones"},
    {OP_MASK_DEGREE, X_SOURCE, "a source: a constant 0/1 MADE mask"},
    {OP_MASK_CONV, X_SOURCE, "a source: a constant 0/1 PixelCNN mask"},
    {OP_BATCH_SIZE, X_SOURCE, "a source: the run's batch size"},
    {OP_RANDN, X_SOURCE, "a source: standard normal noise, reparameterized by ops after it"},
    {OP_RANDU, X_SOURCE, "a source: uniform noise, reparameterized by ops after it"},
    {OP_SAMPLE_CATEGORICAL, X_ERROR,
     "integer codes: no reparameterized gradient, autodiff reports an error whatever the estimator "
     "(straight-through is the rule of onehot, checked there)"},
    {OP_STOP_GRAD, X_NONE, "sg: the identity whose gradient is zero by definition"},
    {OP_STEP, X_NONE, "relu': piecewise constant (zero almost everywhere); built by the relu rule, and gradient graphs "
                      "are not differentiated again"},
    {OP_SIGN, X_NONE, "abs': piecewise constant (zero almost everywhere); built by the abs rule and by Laplace draws of "
                      "uniform noise"},
    {OP_D_ELU, X_NONE, "elu': built only by the elu rule; gradient graphs are not differentiated again"},
    {OP_D_SELU, X_NONE, "selu': built only by the selu rule; gradient graphs are not differentiated again"},
    {OP_D_LEAKY_RELU, X_NONE, "leaky_relu': piecewise constant; built only by the leaky_relu rule"},
    {OP_SLICE, X_NONE, "not in the language: built by the rule of concat and by the optimizer, after differentiation"},
    {OP_CONV2D_DW, X_NONE, "the kernel gradient of conv2d: built only by its rule"},
    {OP_CONV2D_T_DW, X_NONE, "the kernel gradient of conv2d_transpose: built only by its rule"},
    {OP_EMBED_DW, X_NONE, "the table gradient of embed: built only by its rule"},
    {OP_PICK_DX, X_NONE, "the gradient of pick: built only by its rule"},
    {OP_NEAREST, X_NONE, "integer codes, piecewise constant in z and the codebook (VQ-VAE's straight-through is "
                         "written with sg in the model)"},
};

/* An instance of an X_NONE op whose float inputs are sources, in wrt. */
static int exempt_instance(T *t, Op op, int *wrt, int *nwrt) {
  GNode *n;
  *nwrt = 1;
  switch (op) {
  case OP_STOP_GRAD: case OP_STEP: case OP_SIGN: case OP_D_ELU: case OP_D_SELU: case OP_D_LEAKY_RELU:
    wrt[0] = src(t, OP_INPUT, S2(2, 3), 1, R_AWAY);
    return opf(t, op, wrt[0], 0.2);
  case OP_SLICE:
    wrt[0] = src(t, OP_INPUT, S2(4, 3), 1, R_NORMAL);
    n = graph_begin(t->g, op, wrt, 1, span_none, NULL);
    n->shape = S2(2, 3);
    n->i[0] = 0, n->i[1] = 1;
    return graph_end(t->g, n);
  case OP_CONV2D_DW:
  case OP_CONV2D_T_DW: { /* conv2d: x [2, 5, 5], dy [3, 5, 5], k 3 pad 1; transposed: kernel [2, 3, 3, 3] */
    *nwrt = 2;
    wrt[0] = src(t, OP_INPUT, S3(2, 5, 5), 1, R_NORMAL);
    wrt[1] = src(t, OP_INPUT, S3(3, 5, 5), 1, R_NORMAL);
    n = graph_begin(t->g, op, wrt, 2, span_none, NULL);
    n->shape = op == OP_CONV2D_DW ? S4(3, 2, 3, 3) : S4(2, 3, 3, 3);
    n->i[0] = 1, n->i[1] = 1, n->i[2] = 1;
    return graph_end(t->g, n);
  }
  case OP_EMBED_DW: { /* dy [3, 2], codes [2] of 4 classes -> [4, 3] */
    wrt[0] = src(t, OP_INPUT, S2(3, 2), 1, R_NORMAL);
    int in[2] = {wrt[0], codes(t, S1(2), 1, 4)};
    n = graph_begin(t->g, op, in, 2, span_none, NULL);
    n->shape = S2(4, 3);
    return graph_end(t->g, n);
  }
  case OP_PICK_DX:
    wrt[0] = src(t, OP_INPUT, S1(5), 1, R_NORMAL);
    return op2(t, op, wrt[0], codes(t, S1(5), 1, 4));
  case OP_NEAREST:
    *nwrt = 2;
    wrt[0] = src(t, OP_INPUT, S2(3, 2), 1, R_NORMAL);
    wrt[1] = src(t, OP_PARAM, S2(4, 3), 0, R_NORMAL);
    return op2(t, op, wrt[0], wrt[1]);
  default:
    ck_abort_msg("%s: exempt, but no instance of it to check", op_name(op));
    return -1;
  }
}

static void check_exempt(Op op, int kind, const char *reason) {
  const char *name = op_name(op);
  ck_assert_msg(reason && *reason, "%s: exempt without a reason", name);
  if (kind == X_SOURCE) {
    ck_assert_msg(op_arity(op) == 0, "%s: exempt as a source, but takes inputs", name);
    return;
  }
  if (kind == X_ERROR) { /* a Categorical draw, the only one */
    for (int est = 0; est < 3; est++) {
      T *t = t_new(2);
      rng_seed(900 + (unsigned long long)est);
      int l = src(t, OP_INPUT, S2(4, 2), 1, R_NORMAL);
      int c = draw_categorical(t, l, est);
      int f = objective(t, c), g = -2;
      FILE *sink = fopen("/dev/null", "w");
      t->d.out = sink;
      int ok = autodiff(t->g, &t->d, f, &l, 1, &g, "test");
      t->d.out = stderr;
      fclose(sink);
      ck_assert_msg(!ok || g < 0, "%s has a gradient rule but no finite-difference case (with %s it built one; it is listed as exempt: %s)",
                    name, estimators[est], reason);
      ck_assert_msg(!ok && diag_errors(&t->d) >= 1, "%s (%s): a gradient through the draw must be an error", name, estimators[est]);
      t_free(t);
    }
    return;
  }
  T *t = t_new(2);
  rng_seed(910);
  int wrt[2], nwrt, grads[2] = {-2, -2};
  int y = exempt_instance(t, op, wrt, &nwrt);
  ck_assert_msg(y >= 0, "%s rejected", name);
  ck_assert_msg(autodiff(t->g, &t->d, objective(t, y), wrt, nwrt, grads, "test"), "%s: autodiff failed", name);
  for (int w = 0; w < nwrt; w++)
    ck_assert_msg(grads[w] < 0, "%s has a gradient rule but no finite-difference case (a gradient reached its input %d; it is "
                  "listed as exempt: %s)", name, w, reason);
  t_free(t);
}

START_TEST(fd_op_each) {
  Op op = (Op)_i;
  const char *name = op_name(op);
  int x = -1;
  for (size_t k = 0; k < sizeof exempt / sizeof *exempt; k++)
    if (exempt[k].op == op) {
      ck_assert_msg(x < 0, "%s: listed twice as exempt", name);
      x = (int)k;
    }
  fd_only = (int)op;
  fd_ran = 0;
  for (size_t f = 0; f < sizeof fd_families / sizeof *fd_families; f++) fd_families[f]();
  if (fd_ran) {
    ck_assert_msg(x < 0, "%s: has %d finite-difference cases, but is listed as exempt (%s)", name, fd_ran, exempt[x].reason);
    fd_only = -1;
    return;
  }
  ck_assert_msg(x >= 0, "%s: no finite-difference case, and not listed as exempt (an op with a gradient rule in "
                "autodiff.c needs a case; one without goes in `exempt`, with its reason)", name);
  check_exempt(op, exempt[x].kind, exempt[x].reason);
  fd_only = -1;
}
END_TEST

/* ------------------------------------------- (c) the whole VAE, lowered */

static const char *srcdir(void) {
  const char *s = getenv("srcdir");
  return s && *s ? s : ".";
}

/* Forgets the computed values of the nodes marked in dep. */
static void ev_clear_from(Ev *e, const char *dep) {
  for (int i = 0; i < e->cap; i++)
    if (dep[i]) {
      free(e->val[i]);
      e->val[i] = NULL;
    }
}

static int is_kink(Op op) {
  return op == OP_RELU || op == OP_ABS || op == OP_LEAKY_RELU || op == OP_SELU || op == OP_STEP || op == OP_SIGN ||
         op == OP_D_ELU || op == OP_D_SELU || op == OP_D_LEAKY_RELU;
}

/* Which side of its kink each input of relu, abs, ... lies on, hashed over
 * the nodes that depend on the perturbed one: a finite difference across
 * a kink measures nothing. */
static unsigned long long kink_hash(Ev *e, const char *dep, int upto) {
  unsigned long long h = 1469598103934665603ULL;
  for (int i = 0; i <= upto; i++) {
    const GNode *n = graph_node(e->g, i);
    if (!dep[i] || !is_kink(n->op) || !e->val[i]) continue;
    const double *x = ev(e, n->in[0]);
    for (long long k = 0; k < nsize(graph_node(e->g, n->in[0]), e->B); k++) h = (h ^ (unsigned long long)(x[k] > 0) ^ ((unsigned long long)(x[k] < 0) << 1)) * 1099511628211ULL;
  }
  return h;
}

static double batch_total(Ev *e, int id) {
  const double *v = ev(e, id);
  double t = 0;
  for (long long k = 0; k < nsize(graph_node(e->g, id), e->B); k++) t += v[k];
  return t;
}

/* Lowers models/NAME.vm with the defines, then checks every training
 * graph (and logjoint): the gradient outputs against central differences
 * of the reported loss (negated for a maximized one).  Random draws,
 * samples, masks and the data are fixed inputs, the same for every
 * evaluation; stop_grad and nearest are frozen at their values at the base
 * point, since they are constants to the gradient.  `per` elements of each
 * parameter (of every `every`-th one in a graph with more than 20 outputs)
 * are checked, spread over it; elements whose differences cross a kink
 * (relu, abs) are skipped, and may be no more than a tenth. */
static void check_model_file(const char *name, Define *defs, int ndefs, int B, int per, int every, unsigned long long seed) {
  char path[4096], stdlib_dir[4096];
  if (strchr(name, '/')) /* a path in the source tree */
    snprintf(path, sizeof path, "%s/%s", srcdir(), name);
  else
    snprintf(path, sizeof path, "%s/models/%s.vm", srcdir(), name);
  snprintf(stdlib_dir, sizeof stdlib_dir, "%s/stdlib", srcdir());
  setenv("VML_STDLIB", stdlib_dir, 0);
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
  int ntrain = 0;
  for (int gi = 0; gi < graphs.len; gi++) {
    Graph *g = graphs.items[gi];
    /* logjoint: grad:z is d log p(x, z) / dz per example, the derivative
     * of the batch's sum of the logjoint output */
    int lj = !strcmp(g->name, "logjoint");
    if (strncmp(g->name, "train.", 6) && !lj) continue;
    ntrain += !lj;
    const char *about = g->about, *colon = strstr(about, ": ");
    if (colon) about = colon + 2;
    double sign = !lj && !strncmp(about, "maximize", 8) ? -1 : 1; /* the gradients are of the objective */
    Ev e;
    ev_init(&e, g, B);
    rng_seed(seed + (unsigned long long)gi);
    for (int i = 0; i < g->nodes.len; i++) {
      GNode *n = graph_node(g, i);
      int codes_of = n->op == OP_SAMPLE_CATEGORICAL || n->classes > 0;
      if (n->op != OP_INPUT && n->op != OP_PARAM && n->op != OP_RANDN && n->op != OP_RANDU && n->op != OP_MASK_DEGREE &&
          n->op != OP_MASK_CONV && n->op != OP_SAMPLE_BERNOULLI && !(n->op == OP_SAMPLE_CATEGORICAL))
        continue;
      double *v = ev_fix(&e, i, NULL);
      for (long long k = 0; k < nsize(n, B); k++)
        v[k] = codes_of ? (double)(long long)(rng_unif() * n->classes)
             : n->op == OP_PARAM ? rng_normal() / sqrt((double)(n->shape.rank < 2 ? 16 : shape_size(n->shape) / (n->shape.rank == 2 ? n->shape.d[1] : n->shape.d[0])))
             : n->op == OP_RANDN || (lj && n->op == OP_INPUT) ? rng_normal()
             : n->op == OP_RANDU ? rng_unif()
                                 : (double)(rng_unif() < 0.4);
    }
    int loss = -1, checked = 0, skipped = 0;
    for (int i = 0; i < g->outputs.len; i++) {
      GOutput *o = g->outputs.items[i];
      if (!strcmp(o->name, lj ? "logjoint" : "loss")) loss = o->node;
    }
    ck_assert_int_ge(loss, 0);
    /* freeze what the gradient treats as constant */
    for (int i = 0; i < g->nodes.len; i++) {
      GNode *n = graph_node(g, i);
      if (n->op == OP_STOP_GRAD || n->op == OP_NEAREST) ev_fix(&e, i, ev(&e, i));
    }
    char *dep = malloc((size_t)g->nodes.len);
    /* every gradient at the base point first, in one evaluation */
    double **anas = calloc((size_t)g->outputs.len, sizeof(double *));
    for (int i = 0; i < g->outputs.len; i++) {
      GOutput *o = g->outputs.items[i];
      if (strncmp(o->name, "grad:", 5)) continue;
      long long n = nsize(graph_node(g, o->node), B);
      anas[i] = malloc(sizeof(double) * (size_t)n);
      memcpy(anas[i], ev(&e, o->node), sizeof(double) * (size_t)n);
    }
    for (int i = 0; i < g->outputs.len; i++) {
      GOutput *o = g->outputs.items[i];
      if (strncmp(o->name, "grad:", 5) || (i - 1) % (g->outputs.len > 20 ? every : 1)) continue;
      int pid = -1;
      for (int k = 0; k < g->nodes.len; k++) {
        GNode *n = graph_node(g, k);
        if (n->op == (lj ? OP_INPUT : OP_PARAM) && !strcmp(n->s, o->name + 5)) pid = k;
      }
      ck_assert_msg(pid >= 0, "%s %s: no parameter %s", name, g->name, o->name + 5);
      GNode *p = graph_node(g, pid);
      long long n = nsize(p, B);
      GNode *gn = graph_node(g, o->node);
      ck_assert_msg(shape_eq(gn->shape, p->shape) && gn->batched == p->batched, "%s %s %s: the gradient's shape differs from the parameter's",
                    name, g->name, o->name);
      memset(dep, 0, (size_t)g->nodes.len);
      for (int k = pid; k < g->nodes.len; k++) {
        GNode *x = graph_node(g, k);
        dep[k] = k == pid;
        for (int j = 0; j < x->nin && !dep[k]; j++) dep[k] = dep[x->in[j]];
      }
      const double *ana = anas[i];
      ev(&e, loss);
      unsigned long long base = kink_hash(&e, dep, loss);
      double *v = e.fixed[pid];
      long long stride = n > per ? n / per + 1 : 1;
      for (long long k = (pid * 7) % stride; k < n; k += stride) {
        double x0 = v[k], h = 1e-6;
        v[k] = x0 + h;
        ev_clear_from(&e, dep);
        double fp = batch_total(&e, loss);
        int moved = kink_hash(&e, dep, loss) != base;
        v[k] = x0 - h;
        ev_clear_from(&e, dep);
        double fm = batch_total(&e, loss);
        moved |= kink_hash(&e, dep, loss) != base;
        v[k] = x0;
        ev_clear_from(&e, dep);
        double fd = sign * (fp - fm) / (2 * h);
        if (moved) {
          skipped++;
          continue;
        }
        ck_assert_msg(close_to(ana[k], fd, 1e-5), "%s %s %s[%lld]: autodiff %.12g, finite differences %.12g", name, g->name,
                      o->name, k, ana[k], fd);
        checked++;
      }
    }
    for (int i = 0; i < g->outputs.len; i++) free(anas[i]);
    free(anas);
    free(dep);
    ck_assert_msg(checked >= 1 && skipped * 10 <= checked, "%s %s: %d elements checked, %d skipped at kinks", name, g->name,
                  checked, skipped);
    ev_free(&e);
  }
  ck_assert_int_ge(ntrain, 1);
  diag_free(&d);
  arena_free(a);
}

START_TEST(model_conv_vae) { /* examples/mnist-conv-vae: stride-2 convolutions and transposed ones, lowered */
  Define defs[] = {{"latent", "2", 0}};
  check_model_file("examples/mnist-conv-vae/conv-vae.vm", defs, 1, 2, 3, 1, 970);
}
END_TEST

/* Lowers the model of a .vm file as vmc does (one model in it); its
 * graphs, in the arena. */
static Vec lower_file(Arena *a, Diag *d, const char *path, Define *defs, int ndefs) {
  char stdlib_dir[4096];
  snprintf(stdlib_dir, sizeof stdlib_dir, "%s/stdlib", srcdir());
  setenv("VML_STDLIB", stdlib_dir, 0);
  SearchPath sp = {{0}, NULL};
  Program *prog = imp_load(d, a, path, &sp);
  ck_assert_ptr_nonnull(prog);
  resolve_program(d, a, prog);
  ck_assert_int_eq(diag_errors(d), 0);
  Vec models = shape_program(d, a, prog, defs, ndefs);
  ck_assert_int_eq(models.len, 1);
  check_model(d, a, models.items[0]);
  ck_assert_int_eq(diag_errors(d), 0);
  Vec graphs = shape_lower(d, a, prog, models.items[0]);
  ck_assert_int_eq(diag_errors(d), 0);
  return graphs;
}

/* nn.pixelcnn, as the stdlib writes it (embedding, a type-A masked conv,
 * residual blocks of type-B ones, 1x1 convs), on a 5 x 6 grid of codes:
 * the logits at position i (raster order) do not depend on the codes at
 * positions j >= i, and do on some before.  The prior of a small VQ-VAE,
 * lowered through the library; its codes are fixed, then changed one
 * position at a time in the double evaluator. */
START_TEST(pixelcnn_causal) {
  static const char text[] =
      "import nn\n"
      "model pc {\n"
      "  hyper K = 4, D = 2\n"
      "  data x : real[1, 20, 24] in [-1, 1] from files(\"none\")\n"
      "  param e : [K, D] init uniform(-1 / K, 1 / K)\n"
      "  encoder q(zq, c | x) {\n"
      "    ze = nn.conv_encoder(x, D, width = 2)\n"
      "    c = nearest(ze, e)\n"
      "    zq = ze + sg(embed(e, c) - ze)\n"
      "  }\n"
      "  decoder p(x | zq) { x ~ Normal(nn.conv_decoder(zq, 1, width = 2), 1) }\n"
      "  decoder p(zq | c) = embed(e, c)\n"
      "  prior r(c) autoregressive = Categorical(logits = nn.pixelcnn(c, K, dim = 8, blocks = 2, hidden = 16, kernel = 5))\n"
      "  loss vq = -log p(x | zq)\n"
      "  loss nll = -log r(c)\n"
      "  train {\n"
      "    stage autoencoder { minimize vq with adam(lr = 1e-3) over q, p, e }\n"
      "    stage prior { freeze q, p, e; minimize nll with adam(lr = 1e-3) over r }\n"
      "  }\n"
      "}\n";
  char path[256];
  snprintf(path, sizeof path, "/tmp/test_autodiff_pixelcnn_%ld.vm", (long)getpid());
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  Arena *a = arena_new();
  Diag d;
  diag_init(&d, stderr);
  Vec graphs = lower_file(a, &d, path, NULL, 0);
  unlink(path);
  int found = 0;
  for (int gi = 0; gi < graphs.len; gi++) {
    Graph *g = graphs.items[gi];
    int pick = -1;
    for (int i = 0; i < g->nodes.len; i++) {
      GNode *n = graph_node(g, i);
      if (n->op == OP_PICK && graph_node(g, n->in[1])->op == OP_NEAREST) pick = i;
    }
    if (pick < 0 || strncmp(g->name, "train.", 6)) continue;
    found++;
    int logits = graph_node(g, pick)->in[0], codes_id = graph_node(g, pick)->in[1];
    const GNode *ln = graph_node(g, logits);
    ck_assert_int_eq(ln->shape.rank, 3);
    long long K = ln->shape.d[0], hw = ln->shape.d[1] * ln->shape.d[2], w = ln->shape.d[2];
    ck_assert_int_eq(hw, 30);
    Ev e;
    ev_init(&e, g, 1);
    rng_seed(960);
    for (int i = 0; i < g->nodes.len; i++) {
      GNode *n = graph_node(g, i);
      if (n->op == OP_MASK_CONV) { /* the masks as the runtime makes them */
        ck_assert_int_eq(n->shape.d[2], n->shape.d[3]);
        ref_conv_mask(ev_fix(&e, i, NULL), n->shape.d[0], n->shape.d[1], n->shape.d[2], !strcmp(n->s, "B"));
      }
      if (n->op != OP_INPUT && n->op != OP_PARAM && n->op != OP_RANDN && n->op != OP_RANDU) continue;
      double *v = ev_fix(&e, i, NULL);
      for (long long k = 0; k < nsize(n, 1); k++)
        v[k] = n->op == OP_PARAM && n->shape.rank >= 2 ? rng_normal() / sqrt((double)shape_size(n->shape) / (double)n->shape.d[0])
                                                       : rng_normal();
    }
    double *c = ev_fix(&e, codes_id, NULL);
    for (long long k = 0; k < hw; k++) c[k] = (double)(long long)(rng_unif() * (double)K);
    double *base = malloc(sizeof(double) * (size_t)(K * hw));
    memcpy(base, ev(&e, logits), sizeof(double) * (size_t)(K * hw));
    int left = 0, above = 0;
    for (long long j = 0; j < hw; j++) {
      double c0 = c[j];
      c[j] = (double)(((long long)c0 + 1) % K);
      ev_clear(&e);
      const double *l = ev(&e, logits);
      long long first = -1;
      for (long long i = 0; i < hw; i++)
        for (long long k = 0; k < K; k++)
          if (l[k * hw + i] != base[k * hw + i]) {
            ck_assert_msg(i > j, "pixelcnn: the logits at position %lld moved with the code at %lld", i, j);
            if (first < 0) first = i;
            left += i == j + 1 && (j + 1) % w;
            above += i == j + w;
          }
      ck_assert_msg(j == hw - 1 || first > j, "pixelcnn: nothing after position %lld depends on its code", j);
      c[j] = c0;
    }
    /* the left neighbour and the one above, for most positions */
    ck_assert_msg(left >= 10 && above >= 10, "pixelcnn: %d left and %d upper neighbours seen", left, above);
    free(base);
    ev_free(&e);
  }
  ck_assert_int_eq(found, 1);
  diag_free(&d);
  arena_free(a);
}
END_TEST

START_TEST(model_vae) {
  Define defs[] = {{"latent", "2", 0}, {"hidden", "8", 0}};
  check_model_file("vae", defs, 2, 3, 24, 1, 900);
}
END_TEST

START_TEST(model_ae) {
  Define defs[] = {{"latent", "2", 0}, {"hidden", "8", 0}};
  check_model_file("ae", defs, 2, 3, 12, 1, 910);
}
END_TEST

START_TEST(model_conjoint) {
  Define defs[] = {{"private", "2", 0}, {"shared", "2", 0}, {"hidden", "8", 0}};
  check_model_file("conjoint", defs, 3, 2, 6, 1, 920);
}
END_TEST

START_TEST(model_vlae) {
  Define defs[] = {{"latent", "3", 0}, {"hidden", "8", 0}, {"made", "8", 0}};
  check_model_file("vlae", defs, 3, 2, 6, 1, 930);
}
END_TEST

START_TEST(model_avb) {
  Define defs[] = {{"noise", "3", 0}, {"width", "4", 0}};
  check_model_file("avb", defs, 2, 2, 3, 1, 940);
}
END_TEST

START_TEST(model_vqvae) {
  Define defs[] = {{"K", "4", 0}, {"D", "2", 0}};
  check_model_file("vqvae", defs, 2, 1, 2, 12, 950);
}
END_TEST

static Suite *autodiff_suite(void) {
  Suite *s = suite_create("autodiff");
  TCase *x = tcase_create("exact");
  tcase_add_test(x, exact_sum_of_squares);
  tcase_add_test(x, exact_matmul_outer_product);
  tcase_add_test(x, exact_broadcast_counts);
  tcase_add_test(x, exact_batch_mean);
  tcase_add_test(x, exact_stop_grad);
  tcase_add_test(x, exact_used_twice);
  tcase_add_test(x, exact_skips_what_does_not_depend);
  tcase_add_test(x, straight_through_bernoulli);
  tcase_add_test(x, masked_conv_causal);
  suite_add_tcase(s, x);
  /* one test per op of the op table */
  TCase *f = tcase_create("finite_differences");
  tcase_add_loop_test(f, fd_op_each, 0, OP_COUNT);
  suite_add_tcase(s, f);
  /* reproducers of rules that were wrong once */
  TCase *b = tcase_create("regressions");
  tcase_add_test(b, batch_mean_of_unbatched);
  suite_add_tcase(s, b);
  TCase *m = tcase_create("model");
  tcase_set_timeout(m, 120);
  tcase_add_test(m, model_vae);
  tcase_add_test(m, model_ae);
  tcase_add_test(m, model_conjoint);
  tcase_add_test(m, model_vlae);
  tcase_add_test(m, model_avb);
  tcase_add_test(m, model_vqvae);
  tcase_add_test(m, model_conv_vae);
  tcase_add_test(m, pixelcnn_causal);
  suite_add_tcase(s, m);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(autodiff_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures ? 1 : 0;
}
