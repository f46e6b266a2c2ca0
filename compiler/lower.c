/* lower.c - builtins, arithmetic and distributions as graph nodes. */
#include "lower.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

static const double LOG_2PI = 1.8378770664093454836;

static int op1(Lower *L, Op op, int a, Span at) { return graph_add(L->g, op, &a, 1, at, NULL); }

static int op2(Lower *L, Op op, int a, int b, Span at) {
  int in[2] = {a, b};
  return graph_add(L->g, op, in, 2, at, NULL);
}

static int constant(Lower *L, double v, Span at) {
  GNode *n = graph_begin(L->g, OP_CONST, NULL, 0, at, NULL);
  n->f = v;
  return graph_end(L->g, n);
}

int lower_value(Lower *L, Value *v, Span at) {
  if (!v) return -1;
  if (v->kind == V_TENSOR) return v->node;
  if (val_is_number(v)) return constant(L, val_number(v), at);
  return -1;
}

int lower_param(Lower *L, const Param *p, Span at) {
  for (int i = 0; i < L->params.len; i += 2)
    if (!strcmp(L->params.items[i], p->name)) return (int)(intptr_t)L->params.items[i + 1];
  GNode *n = graph_begin(L->g, OP_PARAM, NULL, 0, at, p->name);
  n->s = p->name;
  n->shape = p->shape;
  int id = graph_end(L->g, n);
  vec_push(L->a, &L->params, (void *)p->name);
  vec_push(L->a, &L->params, (void *)(intptr_t)id);
  return id;
}

/* Sums an elementwise term over a variable of `shape`, expanding it first
 * when its own shape is smaller (a constant-parameter distribution). */
static int expand_to(Lower *L, int t, Shape shape, Span at) {
  GNode *n = graph_node(L->g, t);
  if (shape_eq(n->shape, shape)) return t;
  GNode *e = graph_begin(L->g, OP_EXPAND, &t, 1, at, NULL);
  e->shape = shape;
  e->batched = n->batched;
  return graph_end(L->g, e);
}

static int sum_over(Lower *L, int t, Shape shape, Span at) {
  return op1(L, OP_SUM, expand_to(L, t, shape, at), at);
}

static int reshape_to(Lower *L, int x, Shape s, Span at) {
  GNode *n = graph_begin(L->g, OP_RESHAPE, &x, 1, at, NULL);
  n->shape = s;
  return graph_end(L->g, n);
}

static const char *list_text(Lower *L, const Value *list) {
  size_t cap = (size_t)list->items.len * 21 + 1, n = 0;
  char *s = arena_alloc(L->a, cap);
  for (int i = 0; i < list->items.len; i++)
    n += (size_t)snprintf(s + n, cap - n, "%s%lld", i ? "," : "", ((Value *)list->items.items[i])->i);
  return s;
}

static Value *argv_(Arg *args, int nargs, const char *name, int pos) {
  int seen = 0;
  for (int k = 0; k < nargs; k++) {
    if (args[k].name && !strcmp(args[k].name, name)) return args[k].value;
    if (!args[k].name && seen++ == pos) return args[k].value;
  }
  return NULL;
}

void lower_builtin(Lower *L, int id, Node *call, Arg *args, int nargs, Value *r) {
  Span at = call->span;
  if (!r || r->kind != V_TENSOR) return; /* compile-time values and distributions */
  Value *x = nargs ? args[0].value : NULL;
  int a = x ? lower_value(L, x, at) : -1;
  GNode *n;
  switch ((BuiltinId)id) {
  case B_RELU: r->node = op1(L, OP_RELU, a, at); return;
  case B_ELU: r->node = op1(L, OP_ELU, a, at); return;
  case B_SELU: r->node = op1(L, OP_SELU, a, at); return;
  case B_LEAKY_RELU: {
    Value *slope = argv_(args, nargs, "slope", 1);
    n = graph_begin(L->g, OP_LEAKY_RELU, &a, 1, at, NULL);
    n->f = slope ? val_number(slope) : 0.01;
    r->node = graph_end(L->g, n);
    return;
  }
  case B_TANH: r->node = op1(L, OP_TANH, a, at); return;
  case B_SIGMOID: r->node = op1(L, OP_SIGMOID, a, at); return;
  case B_SOFTPLUS: r->node = op1(L, OP_SOFTPLUS, a, at); return;
  case B_EXP: r->node = op1(L, OP_EXP, a, at); return;
  case B_LOG: r->node = op1(L, OP_LOG, a, at); return;
  case B_SQRT: r->node = op1(L, OP_SQRT, a, at); return;
  case B_ABS: r->node = op1(L, OP_ABS, a, at); return;
  case B_SQUARE: r->node = op1(L, OP_SQUARE, a, at); return;
  case B_IDENTITY: r->node = a; return;
  case B_SG: r->node = op1(L, OP_STOP_GRAD, a, at); return;
  case B_SOFTMAX: r->node = op1(L, OP_SOFTMAX, a, at); return;
  case B_CONCAT: {
    int in[64], k = 0;
    for (int i = 0; i < nargs && k < 64; i++)
      if (!args[i].name) in[k++] = lower_value(L, args[i].value, at);
    Value *axis = argv_(args, nargs, "axis", 1000);
    n = graph_begin(L->g, OP_CONCAT, in, k, at, NULL);
    n->i[0] = axis ? (axis->i < 0 ? axis->i + r->shape.rank : axis->i) : 0;
    r->node = graph_end(L->g, n);
    return;
  }
  case B_RESHAPE: case B_FLATTEN: r->node = reshape_to(L, a, r->shape, at); return;
  case B_SUM: case B_MEAN: {
    Value *axis = argv_(args, nargs, "axis", 1);
    long long count = shape_size(x->kind == V_TENSOR ? x->shape : shape_scalar());
    if (axis) {
      long long k = axis->i < 0 ? axis->i + x->shape.rank : axis->i;
      n = graph_begin(L->g, OP_SUM_AXIS, &a, 1, at, NULL);
      n->i[0] = k;
      r->node = graph_end(L->g, n);
      count = x->shape.d[k];
    } else {
      r->node = op1(L, OP_SUM, a, at);
    }
    if (id == B_MEAN) r->node = op2(L, OP_MUL, r->node, constant(L, 1.0 / (double)count, at), at);
    return;
  }
  case B_LOGSUMEXP: {
    long long size = shape_size(x->shape);
    r->node = op1(L, OP_LOGSUMEXP, reshape_to(L, a, shape_of(1, &size), at), at);
    return;
  }
  case B_CONV2D: case B_CONV2D_T: {
    Value *s = argv_(args, nargs, "stride", 2), *p = argv_(args, nargs, "pad", 3);
    Value *dl = argv_(args, nargs, "dilation", id == B_CONV2D ? 4 : 5);
    Value *op = id == B_CONV2D_T ? argv_(args, nargs, "output_pad", 4) : NULL;
    int in[2] = {a, lower_value(L, args[1].value, at)};
    n = graph_begin(L->g, id == B_CONV2D ? OP_CONV2D : OP_CONV2D_T, in, 2, at, NULL);
    n->i[0] = s ? s->i : 1;
    n->i[1] = p ? p->i : 0;
    n->i[2] = dl ? dl->i : 1;
    n->i[3] = n->i[4] = op ? op->i : 0; /* output padding of height and width */
    r->node = graph_end(L->g, n);
    return;
  }
  case B_NEAREST: r->node = op2(L, OP_NEAREST, a, lower_value(L, args[1].value, at), at); return;
  case B_EMBED: r->node = op2(L, OP_EMBED, a, lower_value(L, args[1].value, at), at); return;
  case B_ONEHOT: r->node = op1(L, OP_ONEHOT, a, at); return;
  case B_ZEROS: case B_ONES:
    n = graph_begin(L->g, OP_FILL, NULL, 0, at, NULL);
    n->shape = r->shape;
    n->f = id == B_ONES;
    r->node = graph_end(L->g, n);
    return;
  case B_DEGREE_MASK: {
    Value *strict = argv_(args, nargs, "strict", 2);
    n = graph_begin(L->g, OP_MASK_DEGREE, NULL, 0, at, NULL);
    n->shape = r->shape;
    n->s = arena_printf(L->a, "%s|%s|%s", list_text(L, argv_(args, nargs, "din", 0)),
                        list_text(L, argv_(args, nargs, "dout", 1)), strict && strict->i ? "strict" : "");
    r->node = graph_end(L->g, n);
    return;
  }
  case B_CONV_MASK: {
    Value *type = argv_(args, nargs, "type", 3);
    n = graph_begin(L->g, OP_MASK_CONV, NULL, 0, at, NULL);
    n->shape = r->shape;
    n->s = type ? type->s : "A";
    r->node = graph_end(L->g, n);
    return;
  }
  case B_BCE: { /* -[t log s(l) + (1 - t) log(1 - s(l))] = softplus(l) - t l */
    int t = lower_value(L, args[1].value, at);
    int e = op2(L, OP_SUB, op1(L, OP_SOFTPLUS, a, at), op2(L, OP_MUL, t, a, at), at);
    r->node = sum_over(L, e, x->shape, at);
    return;
  }
  case B_MSE: {
    int b = lower_value(L, args[1].value, at);
    Shape sh;
    Value *y = args[1].value;
    shape_broadcast(x->kind == V_TENSOR ? x->shape : shape_scalar(), y->kind == V_TENSOR ? y->shape : shape_scalar(), &sh);
    int e = sum_over(L, op1(L, OP_SQUARE, op2(L, OP_SUB, a, b, at), at), sh, at);
    r->node = op2(L, OP_MUL, e, constant(L, 1.0 / (double)shape_size(sh), at), at);
    return;
  }
  default:
    return;
  }
}

void lower_binary(Lower *L, const char *op, Value *x, Value *y, Value *r, Node *at) {
  if (!r || r->kind != V_TENSOR) return;
  int a = lower_value(L, x, at->span), b = lower_value(L, y, at->span);
  if (!strcmp(op, "@")) {
    r->node = op2(L, OP_MATMUL, a, b, at->span);
    return;
  }
  Op o = op[0] == '+' ? OP_ADD : op[0] == '-' ? OP_SUB : op[0] == '*' ? OP_MUL : OP_DIV;
  r->node = op2(L, o, a, b, at->span);
}

void lower_neg(Lower *L, Value *x, Value *r, Node *at) {
  if (r && r->kind == V_TENSOR) r->node = op1(L, OP_NEG, lower_value(L, x, at->span), at->span);
}

static int random_source(Lower *L, Op op, Shape shape, Span at, const char *name) {
  GNode *n = graph_begin(L->g, op, NULL, 0, at, name);
  n->shape = shape;
  n->batched = 1;
  n->i[0] = L->streams++;
  return graph_end(L->g, n);
}

int lower_sample(Lower *L, const Dist *d, Shape shape, int estimator, Span at, const char *name) {
  int p0 = lower_value(L, d->arg[0], at);
  switch (d->fam) {
  case D_NORMAL: {
    int eps = random_source(L, OP_RANDN, shape, at, NULL);
    return op2(L, OP_ADD, p0, op2(L, OP_MUL, lower_value(L, d->arg[1], at), eps, at), at);
  }
  case D_LAPLACE: { /* loc - scale sign(u) log(1 - 2|u|), u uniform on [-1/2, 1/2) */
    int u = op2(L, OP_SUB, random_source(L, OP_RANDU, shape, at, NULL), constant(L, 0.5, at), at);
    int t = op1(L, OP_LOG, op2(L, OP_SUB, constant(L, 1, at), op2(L, OP_MUL, constant(L, 2, at), op1(L, OP_ABS, u, at), at), at), at);
    int s = op2(L, OP_MUL, lower_value(L, d->arg[1], at), op2(L, OP_MUL, op1(L, OP_SIGN, u, at), t, at), at);
    return op2(L, OP_SUB, p0, s, at);
  }
  case D_BERNOULLI:
  case D_CATEGORICAL: {
    int logits = p0;
    if (d->probs && d->fam == D_BERNOULLI) /* log p - log(1 - p) */
      logits = op2(L, OP_SUB, op1(L, OP_LOG, p0, at), op1(L, OP_LOG, op2(L, OP_SUB, constant(L, 1, at), p0, at), at), at);
    else if (d->probs)
      logits = op1(L, OP_LOG, p0, at);
    GNode *n = graph_begin(L->g, d->fam == D_BERNOULLI ? OP_SAMPLE_BERNOULLI : OP_SAMPLE_CATEGORICAL, &logits, 1, at, name);
    n->i[0] = L->streams++;
    n->i[1] = estimator;
    return graph_end(L->g, n);
  }
  case D_FLOW:
    break;
  }
  return -1; /* flows are sampled by the runtime, inverting the transform */
}

static int bernoulli_logits(Lower *L, const Dist *d, Span at) {
  int p = lower_value(L, d->arg[0], at);
  if (!d->probs) return p;
  return op2(L, OP_SUB, op1(L, OP_LOG, p, at), op1(L, OP_LOG, op2(L, OP_SUB, constant(L, 1, at), p, at), at), at);
}

/* log p(x) element by element, before the sum, for the families that
 * factorize over elements; -1 for the others. */
static int logpdf_terms(Lower *L, const Dist *d, int x, Span at) {
  switch (d->fam) {
  case D_NORMAL: { /* -((x - mu) / s)^2 / 2 - log s - log(2 pi) / 2 */
    int s = lower_value(L, d->arg[1], at);
    int r = op2(L, OP_DIV, op2(L, OP_SUB, x, lower_value(L, d->arg[0], at), at), s, at);
    int t = op2(L, OP_MUL, op1(L, OP_SQUARE, r, at), constant(L, -0.5, at), at);
    return op2(L, OP_SUB, t, op2(L, OP_ADD, op1(L, OP_LOG, s, at), constant(L, 0.5 * LOG_2PI, at), at), at);
  }
  case D_LAPLACE: { /* -|x - mu| / b - log(2 b) */
    int b = lower_value(L, d->arg[1], at);
    int t = op2(L, OP_DIV, op1(L, OP_ABS, op2(L, OP_SUB, x, lower_value(L, d->arg[0], at), at), at), b, at);
    return op2(L, OP_SUB, op1(L, OP_NEG, t, at), op1(L, OP_LOG, op2(L, OP_MUL, constant(L, 2, at), b, at), at), at);
  }
  case D_BERNOULLI: { /* x l - softplus(l): log sigmoid written stably */
    int l = bernoulli_logits(L, d, at);
    return op2(L, OP_SUB, op2(L, OP_MUL, x, l, at), op1(L, OP_SOFTPLUS, l, at), at);
  }
  default: return -1;
  }
}

int lower_logpdf(Lower *L, const Dist *d, int x, Shape shape, Span at) {
  switch (d->fam) {
  case D_NORMAL:
  case D_LAPLACE:
  case D_BERNOULLI: return sum_over(L, logpdf_terms(L, d, x, at), shape, at);
  case D_CATEGORICAL: { /* logits[x] - logsumexp(logits) */
    int l = lower_value(L, d->arg[0], at);
    if (d->probs) return sum_over(L, op1(L, OP_LOG, op2(L, OP_PICK, l, x, at), at), shape, at);
    int t = op2(L, OP_SUB, op2(L, OP_PICK, l, x, at), op1(L, OP_LOGSUMEXP, l, at), at);
    return sum_over(L, t, shape, at);
  }
  case D_FLOW: { /* log p(z) = log p_base(eps) + log |det d eps / dz| */
    int base = lower_logpdf(L, d->base->dist, d->eps->node, shape, at);
    return op2(L, OP_ADD, base, op1(L, OP_SUM, d->logdet->node, at), at);
  }
  }
  return -1;
}

int lower_entropy(Lower *L, const Dist *d, Shape shape, Span at) {
  switch (d->fam) {
  case D_NORMAL: /* log s + (1 + log 2 pi) / 2 */
    return sum_over(L, op2(L, OP_ADD, op1(L, OP_LOG, lower_value(L, d->arg[1], at), at), constant(L, 0.5 * (1 + LOG_2PI), at), at), shape, at);
  case D_LAPLACE: /* 1 + log 2b */
    return sum_over(L, op2(L, OP_ADD, constant(L, 1, at), op1(L, OP_LOG, op2(L, OP_MUL, constant(L, 2, at), lower_value(L, d->arg[1], at), at), at), at), shape, at);
  case D_BERNOULLI: { /* softplus(l) - l sigmoid(l) */
    int l = bernoulli_logits(L, d, at);
    return sum_over(L, op2(L, OP_SUB, op1(L, OP_SOFTPLUS, l, at), op2(L, OP_MUL, l, op1(L, OP_SIGMOID, l, at), at), at), shape, at);
  }
  case D_CATEGORICAL: { /* -sum p log p over classes */
    int l = lower_value(L, d->arg[0], at);
    if (d->probs) l = op1(L, OP_LOG, l, at);
    int lse = op1(L, OP_LOGSUMEXP, l, at);
    Shape s1 = graph_node(L->g, l)->shape;
    s1.d[0] = 1;
    GNode *e = graph_begin(L->g, OP_EXPAND, (int[]){reshape_to(L, lse, s1, at)}, 1, at, NULL);
    e->shape = graph_node(L->g, l)->shape;
    e->batched = graph_node(L->g, l)->batched;
    int logp = op2(L, OP_SUB, l, graph_end(L->g, e), at);
    int t = op2(L, OP_MUL, op1(L, OP_EXP, logp, at), logp, at);
    return op1(L, OP_NEG, op1(L, OP_SUM, t, at), at);
  }
  case D_FLOW:
    break;
  }
  return -1;
}

/* KL(q || p) element by element where it has a closed form; -1 otherwise. */
static int kl_terms(Lower *L, const Dist *q, const Dist *p, Span at) {
  if (q->fam == D_NORMAL && p->fam == D_NORMAL) {
    /* log s2 - log s1 + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2 */
    int m1 = lower_value(L, q->arg[0], at), s1 = lower_value(L, q->arg[1], at);
    int m2 = lower_value(L, p->arg[0], at), s2 = lower_value(L, p->arg[1], at);
    int num = op2(L, OP_ADD, op1(L, OP_SQUARE, s1, at), op1(L, OP_SQUARE, op2(L, OP_SUB, m1, m2, at), at), at);
    int frac = op2(L, OP_DIV, num, op2(L, OP_MUL, constant(L, 2, at), op1(L, OP_SQUARE, s2, at), at), at);
    int t = op2(L, OP_SUB, op1(L, OP_LOG, s2, at), op1(L, OP_LOG, s1, at), at);
    return op2(L, OP_SUB, op2(L, OP_ADD, t, frac, at), constant(L, 0.5, at), at);
  }
  if (q->fam == D_LAPLACE && p->fam == D_LAPLACE) {
    /* log(b2 / b1) + |m1 - m2| / b2 + (b1 / b2) exp(-|m1 - m2| / b1) - 1 */
    int m1 = lower_value(L, q->arg[0], at), b1 = lower_value(L, q->arg[1], at);
    int m2 = lower_value(L, p->arg[0], at), b2 = lower_value(L, p->arg[1], at);
    int dm = op1(L, OP_ABS, op2(L, OP_SUB, m1, m2, at), at);
    int t = op2(L, OP_SUB, op1(L, OP_LOG, b2, at), op1(L, OP_LOG, b1, at), at);
    t = op2(L, OP_ADD, t, op2(L, OP_DIV, dm, b2, at), at);
    int e = op1(L, OP_EXP, op1(L, OP_NEG, op2(L, OP_DIV, dm, b1, at), at), at);
    t = op2(L, OP_ADD, t, op2(L, OP_MUL, op2(L, OP_DIV, b1, b2, at), e, at), at);
    return op2(L, OP_SUB, t, constant(L, 1, at), at);
  }
  return -1;
}

int lower_kl(Lower *L, const Dist *q, const Dist *p, int zq, Shape shape, Span at) {
  int t = kl_terms(L, q, p, at);
  if (t >= 0) return sum_over(L, t, shape, at);
  /* Monte Carlo with the sample of q: log q(z) - log p(z) */
  return op2(L, OP_SUB, lower_logpdf(L, q, zq, shape, at), lower_logpdf(L, p, zq, shape, at), at);
}

int lower_kl_dims(Lower *L, const Dist *q, const Dist *p, int zq, Shape shape, Span at) {
  int t = kl_terms(L, q, p, at);
  if (t >= 0) return expand_to(L, t, shape, at);
  int a = logpdf_terms(L, q, zq, at);
  int b = a >= 0 ? logpdf_terms(L, p, zq, at) : -1;
  if (b < 0) return -1;
  return op2(L, OP_SUB, expand_to(L, a, shape, at), expand_to(L, b, shape, at), at);
}

int lower_mean(Lower *L, const Dist *d, Shape shape, Span at) {
  int m;
  switch (d->fam) {
  case D_NORMAL:
  case D_LAPLACE: m = lower_value(L, d->arg[0], at); break;
  case D_BERNOULLI: m = d->probs ? lower_value(L, d->arg[0], at) : op1(L, OP_SIGMOID, lower_value(L, d->arg[0], at), at); break;
  case D_CATEGORICAL: return d->probs ? lower_value(L, d->arg[0], at) : op1(L, OP_SOFTMAX, lower_value(L, d->arg[0], at), at);
  default: return -1;
  }
  if (m < 0) return -1;
  GNode *n = graph_node(L->g, m);
  if (shape_eq(n->shape, shape)) return m;
  GNode *e = graph_begin(L->g, OP_EXPAND, &m, 1, at, NULL);
  e->shape = shape;
  e->batched = n->batched;
  return graph_end(L->g, e);
}
