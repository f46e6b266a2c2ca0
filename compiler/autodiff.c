/* autodiff.c - the gradient rule of every op. */
#include "autodiff.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  Graph *g;
  Diag *d;
  int *grad;      /* per node: its gradient so far, or -1 */
  char *needs;    /* per node: depends on something differentiated */
  const char *what;
  int failed;
} AD;

static GNode *N(AD *ad, int id) { return graph_node(ad->g, id); }

static int add2(AD *ad, Op op, int a, int b, const GNode *at) {
  int in[2] = {a, b};
  return graph_add(ad->g, op, in, 2, at->span, NULL);
}

static int add1(AD *ad, Op op, int a, const GNode *at) { return graph_add(ad->g, op, &a, 1, at->span, NULL); }

static int constant(AD *ad, double v, const GNode *at) {
  GNode *n = graph_begin(ad->g, OP_CONST, NULL, 0, at->span, NULL);
  n->f = v;
  return graph_end(ad->g, n);
}

/* The gradient dy of a broadcast result, summed back to x's shape. */
static int fit(AD *ad, int dy, const GNode *x) {
  GNode *g = N(ad, dy);
  if (dy < 0 || (shape_eq(g->shape, x->shape) && g->batched == x->batched)) return dy;
  GNode *n = graph_begin(ad->g, OP_REDUCE_TO, &dy, 1, x->span, NULL);
  n->shape = x->shape;
  n->batched = x->batched;
  return graph_end(ad->g, n);
}

static int expand_to(AD *ad, int dy, const GNode *x) {
  GNode *n = graph_begin(ad->g, OP_EXPAND, &dy, 1, x->span, NULL);
  n->shape = x->shape;
  n->batched = x->batched;
  return graph_end(ad->g, n);
}

static int reshape(AD *ad, int x, Shape s, const GNode *at) {
  GNode *n = graph_begin(ad->g, OP_RESHAPE, &x, 1, at->span, NULL);
  n->shape = s;
  return graph_end(ad->g, n);
}

static void accumulate(AD *ad, int id, int dx) {
  if (dx < 0 && ad->needs[id] && !ad->failed) { /* a rule built a node that does not fit */
    diag_error(ad->d, N(ad, id)->span, "internal error: no gradient could be built for this %s (of %s)",
               op_name(N(ad, id)->op), ad->what);
    ad->failed = 1;
  }
  if (dx < 0 || !ad->needs[id]) return;
  dx = fit(ad, dx, N(ad, id));
  ad->grad[id] = ad->grad[id] < 0 ? dx : add2(ad, OP_ADD, ad->grad[id], dx, N(ad, id));
}

/* dy * f(x) for elementwise derivatives given as ops of x. */
static int times_op(AD *ad, int dy, Op dop, const GNode *x, const GNode *at) {
  GNode *n = graph_begin(ad->g, dop, &x->id, 1, at->span, NULL);
  n->f = at->f;
  return add2(ad, OP_MUL, dy, graph_end(ad->g, n), at);
}

/* Codes carry no gradient.  When they come from a Categorical draw whose
 * logits are being differentiated, the gradient would have to pass through
 * the draw: straight-through when declared and the codes are one-hot coded
 * (backward as if onehot(c) were softmax(logits)), an error otherwise.
 * Codes from nearest() are the user's business (sg / straight-through). */
static void codes_gradient(AD *ad, const GNode *y, const GNode *codes, int dy) {
  if (!ad->needs[codes->id] || codes->op != OP_SAMPLE_CATEGORICAL) return;
  const GNode *logits = N(ad, codes->in[0]);
  if (codes->i[1] == 1 && y->op == OP_ONEHOT) { /* p * (dy - sum0(dy * p)) */
    int p = add1(ad, OP_SOFTMAX, logits->id, y);
    int dp = add2(ad, OP_MUL, dy, p, y);
    GNode *s0 = graph_begin(ad->g, OP_SUM_AXIS, &dp, 1, y->span, NULL);
    int s = graph_end(ad->g, s0);
    Shape sh = logits->shape;
    sh.d[0] = 1;
    int e = expand_to(ad, reshape(ad, s, sh, y), y);
    accumulate(ad, logits->id, add2(ad, OP_MUL, p, add2(ad, OP_SUB, dy, e, y), y));
    return;
  }
  if (ad->failed) return;
  if (codes->i[1] == 2) {
    diag_error(ad->d, codes->span, "the gradient of %s must pass through this draw: the score_function estimator "
               "is not implemented yet (straight_through is)", ad->what);
    ad->failed = 1;
    return;
  }
  diag_error(ad->d, codes->span,
             codes->i[1] == 1 ? "the gradient of %s must pass through this Categorical draw: its straight-through "
                                "estimator works through onehot(...) only"
                              : "the gradient of %s must pass through this Categorical draw, which cannot be "
                                "reparameterized: declare an estimator (estimator straight_through) and use onehot(...)",
             ad->what);
  ad->failed = 1;
}

static void rule(AD *ad, const GNode *y, int dy) {
  const GNode *a = y->nin > 0 ? N(ad, y->in[0]) : NULL;
  const GNode *b = y->nin > 1 ? N(ad, y->in[1]) : NULL;
  int ya = a ? a->id : -1, yb = b ? b->id : -1;
  switch (y->op) {
  case OP_NEG: accumulate(ad, ya, add1(ad, OP_NEG, dy, y)); break;
  case OP_EXP: accumulate(ad, ya, add2(ad, OP_MUL, dy, y->id, y)); break;
  case OP_LOG: accumulate(ad, ya, add2(ad, OP_DIV, dy, ya, y)); break;
  case OP_SQRT:
    accumulate(ad, ya, add2(ad, OP_DIV, add2(ad, OP_MUL, dy, constant(ad, 0.5, y), y), y->id, y));
    break;
  case OP_ABS: accumulate(ad, ya, times_op(ad, dy, OP_SIGN, a, y)); break;
  case OP_SQUARE:
    accumulate(ad, ya, add2(ad, OP_MUL, dy, add2(ad, OP_MUL, ya, constant(ad, 2, y), y), y));
    break;
  case OP_RELU: accumulate(ad, ya, times_op(ad, dy, OP_STEP, a, y)); break;
  case OP_ELU: accumulate(ad, ya, times_op(ad, dy, OP_D_ELU, a, y)); break;
  case OP_SELU: accumulate(ad, ya, times_op(ad, dy, OP_D_SELU, a, y)); break;
  case OP_LEAKY_RELU: accumulate(ad, ya, times_op(ad, dy, OP_D_LEAKY_RELU, a, y)); break;
  case OP_TANH: { /* 1 - y^2 */
    int one_minus = add2(ad, OP_SUB, constant(ad, 1, y), add1(ad, OP_SQUARE, y->id, y), y);
    accumulate(ad, ya, add2(ad, OP_MUL, dy, one_minus, y));
    break;
  }
  case OP_SIGMOID: { /* y (1 - y) */
    int d = add2(ad, OP_MUL, y->id, add2(ad, OP_SUB, constant(ad, 1, y), y->id, y), y);
    accumulate(ad, ya, add2(ad, OP_MUL, dy, d, y));
    break;
  }
  case OP_SOFTPLUS: accumulate(ad, ya, add2(ad, OP_MUL, dy, add1(ad, OP_SIGMOID, ya, y), y)); break;
  case OP_ADD:
    accumulate(ad, ya, dy);
    accumulate(ad, yb, dy);
    break;
  case OP_SUB:
    accumulate(ad, ya, dy);
    if (ad->needs[yb]) accumulate(ad, yb, add1(ad, OP_NEG, dy, y));
    break;
  case OP_MUL:
    if (ad->needs[ya]) accumulate(ad, ya, add2(ad, OP_MUL, dy, yb, y));
    if (ad->needs[yb]) accumulate(ad, yb, add2(ad, OP_MUL, dy, ya, y));
    break;
  case OP_DIV:
    if (ad->needs[ya]) accumulate(ad, ya, add2(ad, OP_DIV, dy, yb, y));
    if (ad->needs[yb]) /* -dy y / b */
      accumulate(ad, yb, add1(ad, OP_NEG, add2(ad, OP_DIV, add2(ad, OP_MUL, dy, y->id, y), yb, y), y));
    break;
  case OP_MATMUL: {
    int ta = (int)y->i[0], tb = (int)y->i[1];
    GNode *n;
    if (ad->needs[ya]) { /* da: dy b^T | dy b | b dy^T */
      int in[2] = {ta ? yb : dy, ta ? dy : yb};
      n = graph_begin(ad->g, OP_MATMUL, in, 2, y->span, NULL);
      n->i[1] = ta || !tb;
      accumulate(ad, ya, graph_end(ad->g, n));
    }
    if (ad->needs[yb]) { /* db: a^T dy | dy^T a | a dy */
      int in[2] = {tb ? dy : ya, tb ? ya : dy};
      n = graph_begin(ad->g, OP_MATMUL, in, 2, y->span, NULL);
      n->i[0] = !ta;
      accumulate(ad, yb, graph_end(ad->g, n));
    }
    break;
  }
  case OP_SUM: accumulate(ad, ya, expand_to(ad, dy, a)); break;
  case OP_SUM_AXIS: {
    Shape s = a->shape;
    s.d[y->i[0]] = 1;
    accumulate(ad, ya, expand_to(ad, reshape(ad, dy, s, y), a));
    break;
  }
  case OP_LOGSUMEXP: { /* dy softmax(a) */
    Shape s = a->shape;
    s.d[0] = 1;
    int e = expand_to(ad, reshape(ad, dy, s, y), a);
    accumulate(ad, ya, add2(ad, OP_MUL, e, add1(ad, OP_SOFTMAX, ya, y), y));
    break;
  }
  case OP_SOFTMAX: { /* y (dy - sum0(dy y)) */
    int p = add2(ad, OP_MUL, dy, y->id, y);
    GNode *s0 = graph_begin(ad->g, OP_SUM_AXIS, &p, 1, y->span, NULL);
    int s = graph_end(ad->g, s0);
    Shape sh = a->shape;
    sh.d[0] = 1;
    int e = expand_to(ad, reshape(ad, s, sh, y), a);
    accumulate(ad, ya, add2(ad, OP_MUL, y->id, add2(ad, OP_SUB, dy, e, y), y));
    break;
  }
  case OP_REDUCE_TO: accumulate(ad, ya, expand_to(ad, dy, a)); break;
  case OP_EXPAND: accumulate(ad, ya, dy); break; /* accumulate() sums it back */
  case OP_BATCH_MEAN: {
    if (!a->batched) { /* the mean of a value that is the same for every example */
      accumulate(ad, ya, dy);
      break;
    }
    int e = expand_to(ad, dy, a);
    int bs = graph_source(ad->g, OP_BATCH_SIZE, shape_scalar(), 0, y->span, NULL);
    accumulate(ad, ya, add2(ad, OP_DIV, e, bs, y));
    break;
  }
  case OP_RESHAPE: accumulate(ad, ya, reshape(ad, dy, a->shape, y)); break;
  case OP_CONCAT: {
    long long offset = 0;
    for (int k = 0; k < y->nin; k++) {
      const GNode *x = N(ad, y->in[k]);
      if (ad->needs[x->id]) {
        GNode *n = graph_begin(ad->g, OP_SLICE, &dy, 1, y->span, NULL);
        n->i[0] = y->i[0];
        n->i[1] = offset;
        n->shape = x->shape;
        accumulate(ad, x->id, graph_end(ad->g, n));
      }
      offset += x->shape.d[y->i[0]];
    }
    break;
  }
  case OP_CONV2D:
  case OP_CONV2D_T: {
    int t = y->op == OP_CONV2D_T;
    if (ad->needs[ya]) { /* the other direction, with the same kernel */
      int in[2] = {dy, yb};
      GNode *n = graph_begin(ad->g, t ? OP_CONV2D : OP_CONV2D_T, in, 2, y->span, NULL);
      n->i[0] = y->i[0];
      n->i[1] = y->i[1];
      n->i[2] = y->i[2];
      if (!t) /* output padding that restores the input's size, per axis */
        for (int ax = 0; ax < 2; ax++) {
          long long s = y->i[0], p = y->i[1], dl = y->i[2], k = b->shape.d[2 + ax];
          n->i[3 + ax] = a->shape.d[1 + ax] - ((y->shape.d[1 + ax] - 1) * s - 2 * p + dl * (k - 1) + 1);
        }
      accumulate(ad, ya, graph_end(ad->g, n));
    }
    if (ad->needs[yb]) {
      int in[2] = {ya, dy};
      GNode *n = graph_begin(ad->g, t ? OP_CONV2D_T_DW : OP_CONV2D_DW, in, 2, y->span, NULL);
      memcpy(n->i, y->i, sizeof n->i);
      n->shape = b->shape;
      accumulate(ad, yb, graph_end(ad->g, n));
    }
    break;
  }
  case OP_ONEHOT:
    codes_gradient(ad, y, a, dy);
    break;
  case OP_EMBED:
    codes_gradient(ad, y, b, dy);
    if (ad->needs[ya]) {
      int in[2] = {dy, yb};
      GNode *n = graph_begin(ad->g, OP_EMBED_DW, in, 2, y->span, NULL);
      n->shape = a->shape;
      accumulate(ad, ya, graph_end(ad->g, n));
    }
    break;
  case OP_PICK:
    codes_gradient(ad, y, b, dy);
    if (ad->needs[ya]) {
      int in[2] = {dy, yb};
      accumulate(ad, ya, graph_add(ad->g, OP_PICK_DX, in, 2, y->span, NULL));
    }
    break;
  case OP_SAMPLE_BERNOULLI:
    if (!ad->needs[ya]) break;
    if (y->i[1] == 1) { /* straight-through: the gradient of the mean, sigmoid(logits) */
      int s = add1(ad, OP_SIGMOID, ya, y);
      int d = add2(ad, OP_MUL, s, add2(ad, OP_SUB, constant(ad, 1, y), s, y), y);
      accumulate(ad, ya, add2(ad, OP_MUL, dy, d, y));
      break;
    }
    /* fall through */
  case OP_SAMPLE_CATEGORICAL:
    if (!ad->needs[ya]) break;
    if (y->i[1] == 2) {
      diag_error(ad->d, y->span, "the gradient of %s must pass through this draw: the score_function estimator "
                 "is not implemented yet (straight_through is)", ad->what);
      ad->failed = 1;
      break;
    }
    diag_error(ad->d, y->span,
               "the gradient of %s must pass through this %s draw, which cannot be reparameterized: "
               "declare an estimator (estimator straight_through%s)",
               ad->what, y->op == OP_SAMPLE_BERNOULLI ? "Bernoulli" : "Categorical",
               y->op == OP_SAMPLE_BERNOULLI ? "" : " is not yet supported for Categorical draws");
    ad->failed = 1;
    break;
  default: /* no gradient: sources, stop_grad, derivatives, codes */
    break;
  }
}

int autodiff(Graph *g, Diag *d, int of, const int *wrt, int nwrt, int *grads, const char *what) {
  int n = g->nodes.len;
  AD ad = {g, d, malloc(sizeof(int) * (size_t)n), calloc((size_t)n, 1), what, 0};
  if (!ad.grad || !ad.needs) abort();
  for (int i = 0; i < nwrt; i++) ad.needs[wrt[i]] = 1;
  for (int i = 0; i < n; i++) {
    GNode *x = graph_node(g, i);
    ad.grad[i] = -1;
    if (x->op == OP_STOP_GRAD) continue;
    for (int k = 0; k < x->nin && !ad.needs[i]; k++) ad.needs[i] = ad.needs[x->in[k]];
  }
  ad.grad[of] = graph_source(g, OP_CONST, shape_scalar(), 0, graph_node(g, of)->span, NULL);
  graph_node(g, ad.grad[of])->f = 1;
  /* rules add nodes past n; the walk only visits the forward part */
  int *grad = ad.grad;
  for (int i = of; i >= 0; i--) {
    if (grad[i] < 0 || !ad.needs[i]) continue;
    rule(&ad, graph_node(g, i), grad[i]);
  }
  for (int k = 0; k < nwrt; k++) grads[k] = grad[wrt[k]];
  free(ad.grad);
  free(ad.needs);
  return !ad.failed;
}
