/* optimize.c - the graph passes of optimize.h, in order:
 *
 *   fold      ops whose inputs are all constants (CONST scalars, FILLs)
 *             become a CONST (an unbatched scalar) or a FILL of the result
 *   simplify  algebraic identities (see simplify_rule), constants folded too
 *   cse       nodes computing the same thing are merged (never random draws)
 *   merge     sibling matmuls x @ W1, x @ W2 (unbatched parameters) become
 *             one x @ concat(W1, W2) and slices
 *   dce       nodes no output needs are removed
 *   fuse      elementwise trees of one shape become fusion groups (GNode.group)
 *   plan      buffers by liveness, shared when live ranges do not overlap
 *             (GNode.buffer)
 *
 * The rewriting passes share one mechanism (Rw): nodes are visited in
 * topological order with their inputs already redirected to their
 * replacements; a rule returns the node that replaces the visited one
 * (an existing node or one it creates), and new nodes are appended to the
 * graph for the moment.  `rebuild` then drops replaced nodes, puts new
 * nodes where the node that created them was (hoisting their inputs if
 * needed: a stable topological order) and renumbers everything densely.
 * Every pass is deterministic: orders come from node positions only. */
#include "optimize.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const pass_names[] = {"lower",
#define X(name) #name,
                                         PASSES(X)
#undef X
};

int optimize_pass_index(const char *name) {
  for (size_t i = 0; i < sizeof pass_names / sizeof *pass_names; i++)
    if (!strcmp(pass_names[i], name)) return (int)i;
  return -1;
}

const char *optimize_pass_list(void) { return "lower, fold, simplify, cse, merge, dce, fuse, plan"; }

/* ------------------------------------------------------------------ helpers */

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) {
    fputs("vmc: out of memory\n", stderr);
    exit(3);
  }
  return p;
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) {
    fputs("vmc: out of memory\n", stderr);
    exit(3);
  }
  return p;
}

static GNode *nd(const Graph *g, int id) { return g->nodes.items[id]; }
static int count(const Graph *g) { return g->nodes.len; }

static int is_source(Op op) {
  switch (op) {
  case OP_INPUT: case OP_PARAM: case OP_CONST: case OP_FILL: case OP_MASK_DEGREE:
  case OP_MASK_CONV: case OP_BATCH_SIZE: case OP_RANDN: case OP_RANDU:
    return 1;
  default:
    return 0;
  }
}

/* Random draws: each reads its own stream, so two are never the same. */
static int is_random(Op op) {
  return op == OP_RANDN || op == OP_RANDU || op == OP_SAMPLE_BERNOULLI || op == OP_SAMPLE_CATEGORICAL;
}

/* Same per-example shape, batch flag and codes: one may stand for the other. */
static int same_form(const GNode *a, const GNode *b) {
  return shape_eq(a->shape, b->shape) && a->batched == b->batched && a->classes == b->classes;
}

/* A node whose every element is one known number: a CONST or a FILL. */
static int const_value(const GNode *n, double *v) {
  if ((n->op != OP_CONST && n->op != OP_FILL) || n->classes) return 0;
  *v = n->f;
  return 1;
}

static int is_value(const Graph *g, int id, double v) {
  double x;
  return const_value(nd(g, id), &x) && x == v;
}

/* ------------------------------------------------------------ rewriting */

typedef struct Rw Rw;
typedef int (*Rule)(Rw *R, GNode *n);

struct Rw {
  Graph *g;
  int *repl;  /* per node: itself, or the node replacing it */
  int *major; /* per node: the position it takes (its creation site's) */
  int cap;
  int site;   /* the node being rewritten: new nodes take its place */
  int depth;  /* nesting of rules applied to created nodes */
  int changed;
  Rule rule;  /* applied to created nodes too (NULL: none) */
  void *ctx;
};

static void rw_grow(Rw *R) {
  int n = count(R->g);
  if (n <= R->cap && R->repl) return;
  int cap = R->cap ? R->cap : 64;
  while (cap < n) cap *= 2;
  R->repl = xrealloc(R->repl, sizeof(int) * (size_t)cap);
  R->major = xrealloc(R->major, sizeof(int) * (size_t)cap);
  for (int i = R->cap; i < cap; i++) {
    R->repl[i] = i;
    R->major[i] = i;
  }
  R->cap = cap;
}

static void rw_init(Rw *R, Graph *g, Rule rule, void *ctx) {
  memset(R, 0, sizeof *R);
  R->g = g;
  R->rule = rule;
  R->ctx = ctx;
  rw_grow(R);
}

static void rw_free(Rw *R) {
  free(R->repl);
  free(R->major);
}

static int resolve(Rw *R, int id) {
  int r = id;
  while (R->repl[r] != r) r = R->repl[r];
  while (R->repl[id] != r) { /* path compression */
    int next = R->repl[id];
    R->repl[id] = r;
    id = next;
  }
  return r;
}

static void replace(Rw *R, int id, int by) {
  by = resolve(R, by);
  if (by == id) return;
  R->repl[id] = by;
  R->changed = 1;
}

/* Finishes a node begun with graph_begin: it takes the place of the node
 * being rewritten, and the pass's rule is applied to it at once, so that
 * what a rule creates is itself simplified.  Returns the node standing for
 * it (never -1: a shape mismatch here is a bug in a rule). */
static int rw_end(Rw *R, GNode *n) {
  for (int k = 0; k < n->nin; k++) n->in[k] = resolve(R, n->in[k]);
  int id = graph_end(R->g, n);
  if (id < 0) {
    fprintf(stderr, "vmc: internal error: a rewrite of graph %s built an ill-formed %s\n", R->g->name,
            op_name(n->op));
    abort();
  }
  rw_grow(R);
  R->major[id] = R->major[R->site];
  R->changed = 1;
  if (R->rule && R->depth < 16) {
    R->depth++;
    int r = R->rule(R, n);
    R->depth--;
    if (r >= 0 && r != id) replace(R, id, r);
  }
  return resolve(R, id);
}

static int mk1(Rw *R, Op op, int a, const GNode *like) {
  return rw_end(R, graph_begin(R->g, op, &a, 1, like->span, NULL));
}

static int mk2(Rw *R, Op op, int a, int b, const GNode *like) {
  int in[2] = {a, b};
  return rw_end(R, graph_begin(R->g, op, in, 2, like->span, NULL));
}

/* A node of like's shape and batch flag holding v everywhere: a CONST when
 * that is an unbatched scalar, else a FILL.  It keeps like's name. */
static int constant_like(Rw *R, const GNode *like, double v) {
  int scalar = like->shape.rank == 0 && !like->batched;
  GNode *n = graph_begin(R->g, scalar ? OP_CONST : OP_FILL, NULL, 0, like->span, like->name);
  n->f = v;
  n->shape = like->shape;
  n->batched = like->batched;
  return rw_end(R, n);
}

typedef struct {
  int major, id;
} Key;

static int key_cmp(const void *x, const void *y) {
  const Key *a = x, *b = y;
  if (a->major != b->major) return a->major < b->major ? -1 : 1;
  return (a->id > b->id) - (a->id < b->id);
}

/* Drops replaced nodes (and those `keep` rejects, when given), orders the
 * rest by their sites with every input first, and renumbers densely. */
static void rebuild(Rw *R, const char *keep) {
  Graph *g = R->g;
  int n = count(g);
  rw_grow(R);
  char *live = xcalloc((size_t)n, 1);
  Key *order = xcalloc((size_t)n, sizeof *order);
  int nk = 0;
  for (int i = 0; i < n; i++) {
    live[i] = R->repl[i] == i && (!keep || keep[i]);
    if (!live[i]) continue;
    GNode *x = nd(g, i);
    for (int k = 0; k < x->nin; k++) x->in[k] = resolve(R, x->in[k]);
    order[nk].major = R->major[i];
    order[nk].id = i;
    nk++;
  }
  for (int i = 0; i < g->outputs.len; i++) {
    GOutput *o = g->outputs.items[i];
    if (o->node >= 0) o->node = resolve(R, o->node); /* -1: lowering made none */
  }
  qsort(order, (size_t)nk, sizeof *order, key_cmp);
  /* emission: a depth-first walk that puts a node's inputs before it */
  int *newid = xcalloc((size_t)n, sizeof(int));
  char *state = xcalloc((size_t)n, 1); /* 0 new, 1 on the stack, 2 placed */
  int *stack = xcalloc((size_t)n + 1, sizeof(int));
  Vec nodes = {0};
  for (int j = 0; j < nk; j++) {
    if (state[order[j].id]) continue;
    int sp = 0;
    stack[sp++] = order[j].id;
    state[order[j].id] = 1;
    while (sp) {
      GNode *t = nd(g, stack[sp - 1]);
      int pushed = 0;
      for (int k = 0; k < t->nin && !pushed; k++) {
        int p = t->in[k];
        if (!live[p]) {
          fprintf(stderr, "vmc: internal error: graph %s: node %d needs the removed node %d\n", g->name, t->id, p);
          abort();
        }
        if (state[p] == 0) {
          state[p] = 1;
          stack[sp++] = p;
          pushed = 1;
        }
      }
      if (pushed) continue;
      sp--;
      state[t->id] = 2;
      newid[t->id] = nodes.len;
      vec_push(g->arena, &nodes, t);
    }
  }
  for (int i = 0; i < nodes.len; i++) {
    GNode *x = nodes.items[i];
    x->id = i;
    for (int k = 0; k < x->nin; k++) x->in[k] = newid[x->in[k]];
  }
  for (int i = 0; i < g->outputs.len; i++) {
    GOutput *o = g->outputs.items[i];
    if (o->node < 0) continue;
    if (!live[o->node]) {
      fprintf(stderr, "vmc: internal error: graph %s: output %s lost its node\n", g->name, o->name);
      abort();
    }
    o->node = newid[o->node];
  }
  g->nodes = nodes;
  free(live);
  free(order);
  free(newid);
  free(state);
  free(stack);
  /* the graph changed under R: start afresh */
  for (int i = 0; i < R->cap; i++) {
    R->repl[i] = i;
    R->major[i] = i;
  }
}

/* One sweep of `rule` over the graph in order, then a rebuild.  Returns
 * whether anything changed. */
static int sweep(Graph *g, Rule rule, void *ctx) {
  Rw R;
  rw_init(&R, g, rule, ctx);
  int n0 = count(g);
  for (int i = 0; i < n0; i++) {
    if (R.repl[i] != i) continue;
    GNode *x = nd(g, i);
    for (int k = 0; k < x->nin; k++) x->in[k] = resolve(&R, x->in[k]);
    R.site = i;
    int r = rule(&R, x);
    if (r < 0 || r == i) continue;
    r = resolve(&R, r);
    if (r >= n0 && !nd(g, r)->name) nd(g, r)->name = x->name; /* what a rule built keeps the name */
    replace(&R, i, r);
  }
  int changed = R.changed;
  rebuild(&R, NULL);
  rw_free(&R);
  return changed;
}

/* ------------------------------------------------------------------ fold */

static const double SELU_ALPHA = 1.6732632423543772848170429916717;
static const double SELU_SCALE = 1.0507009873554804934193349852946;

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

/* The value of a one-input elementwise op (f: its attribute). */
static double eval1(Op op, double f, double x) {
  switch (op) {
  case OP_NEG: return -x;
  case OP_EXP: return exp(x);
  case OP_LOG: return log(x);
  case OP_SQRT: return sqrt(x);
  case OP_ABS: return fabs(x);
  case OP_SQUARE: return x * x;
  case OP_RELU: return x > 0 ? x : 0;
  case OP_ELU: return x > 0 ? x : expm1(x);
  case OP_SELU: return SELU_SCALE * (x > 0 ? x : SELU_ALPHA * expm1(x));
  case OP_LEAKY_RELU: return x > 0 ? x : f * x;
  case OP_TANH: return tanh(x);
  case OP_SIGMOID: return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
  case OP_SOFTPLUS: return softplus(x);
  case OP_STOP_GRAD: return x;
  case OP_STEP: return x > 0;
  case OP_SIGN: return x > 0 ? 1 : x < 0 ? -1 : x; /* sign(0) = 0, sign(NaN) = NaN */
  case OP_D_ELU: return x > 0 ? 1 : exp(x);
  case OP_D_SELU: return SELU_SCALE * (x > 0 ? 1 : SELU_ALPHA * exp(x));
  case OP_D_LEAKY_RELU: return x > 0 ? 1 : f;
  default: return NAN; /* not reached: callers pass elementwise ops */
  }
}

static double eval2(Op op, double x, double y) {
  switch (op) {
  case OP_ADD: return x + y;
  case OP_SUB: return x - y;
  case OP_MUL: return x * y;
  case OP_DIV: return x / y;
  default: return NAN;
  }
}

/* Ops whose inputs are all constants become a constant of the result's
 * shape: elementwise ops, and the shape ops and reductions whose result is
 * again one number everywhere.  Reductions over the batch (a REDUCE_TO to
 * an unbatched node, or a MATMUL a^T b) depend on the batch size and are
 * left alone unless the value is 0.  Codes are never folded. */
static int fold_rule(Rw *R, GNode *n) {
  double v[2] = {0, 0}, r;
  if (n->nin == 0 || n->classes || is_random(n->op)) return -1;
  for (int k = 0; k < n->nin; k++)
    if (!const_value(nd(R->g, n->in[k]), &v[k < 2 ? k : 1])) return -1;
  const GNode *a = nd(R->g, n->in[0]);
  if (op_is_elementwise(n->op)) {
    r = n->nin == 1 ? eval1(n->op, n->f, v[0]) : eval2(n->op, v[0], v[1]);
    return constant_like(R, n, r);
  }
  switch (n->op) {
  case OP_EXPAND: case OP_RESHAPE: case OP_SLICE:
    return constant_like(R, n, v[0]);
  case OP_BATCH_MEAN: /* the mean of a constant */
    return constant_like(R, n, v[0]);
  case OP_CONCAT: /* every piece the same number */
    for (int k = 1; k < n->nin; k++)
      if (nd(R->g, n->in[k])->f != v[0] || isnan(v[0])) return -1;
    return constant_like(R, n, v[0]);
  case OP_SUM:
    return constant_like(R, n, v[0] * (double)shape_size(a->shape));
  case OP_SUM_AXIS:
    return constant_like(R, n, v[0] * (double)a->shape.d[n->i[0]]);
  case OP_REDUCE_TO: /* the broadcast axes summed: size(a) / size(n) terms each */
    if ((a->batched && !n->batched && v[0] != 0) || shape_size(n->shape) < 1) return -1;
    return constant_like(R, n, v[0] * (double)(shape_size(a->shape) / shape_size(n->shape)));
  case OP_LOGSUMEXP:
    return constant_like(R, n, v[0] + log((double)a->shape.d[0]));
  case OP_SOFTMAX:
    return constant_like(R, n, 1.0 / (double)a->shape.d[0]);
  case OP_MATMUL: { /* [.., k] x [k, m]: k products each */
    if (n->i[0]) return -1;
    const GNode *b = nd(R->g, n->in[1]);
    long long k = n->i[1] ? b->shape.d[1] : b->shape.d[0];
    return constant_like(R, n, v[0] * v[1] * (double)k);
  }
  default:
    return -1;
  }
}

static void pass_fold(Graph *g) {
  for (int round = 0; round < 8 && sweep(g, fold_rule, NULL); round++) {
  }
}

/* -------------------------------------------------------------- simplify */

/* Algebraic identities.  A rule that replaces a node by one of its inputs
 * only applies when that input has the node's very shape, batch flag and
 * codes: a broadcast must not be lost.
 *
 *   x * 1, 1 * x, x + 0, 0 + x, x - 0, x / 1      -> x
 *   x * 0, 0 * x, x - x                           -> a zero FILL (or CONST)
 *   0 - x, x * -1, -1 * x, x / -1                 -> neg(x)
 *   x + neg(y), neg(y) + x                        -> x - y
 *   x - neg(y)                                    -> x + y
 *   neg(neg(x)), exp(log(x)), log(exp(x))         -> x
 *   log(sigmoid(x))                               -> neg(softplus(neg(x)))
 *   log(1 - sigmoid(x))                           -> neg(softplus(x))
 *   stop_grad(x)                                  -> x (autodiff already ran
 *                                                    when lowering: it is an
 *                                                    identity from now on)
 *   expand, reduce_to, reshape, slice to x's own shape, concat of one,
 *   sum of a scalar, batch_mean of an unbatched x -> x
 *   reshape(reshape(x)), expand(expand(x))        -> one reshape / expand
 *
 * The two log-sigmoid rules turn a hand-written Bernoulli density into the
 * stable softplus form.  The Bernoulli log-density lowered from
 * `log p(x | z)` with logits is already written stably by lower.c as
 * x * l - softplus(l), so it needs nothing here.  x * 0 and x - x assume x
 * is finite (NaN * 0 is NaN): the usual choice of compilers for graphs.
 * Constants are folded too (fold_rule), so what a rule creates folds. */
static int simplify_rule(Rw *R, GNode *n) {
  Graph *g = R->g;
  int r = fold_rule(R, n);
  if (r >= 0) return r;
  int ia = n->nin > 0 ? n->in[0] : -1, ib = n->nin > 1 ? n->in[1] : -1;
  GNode *a = ia >= 0 ? nd(g, ia) : NULL, *b = ib >= 0 ? nd(g, ib) : NULL;
  switch (n->op) {
  case OP_STOP_GRAD:
    return ia;
  case OP_NEG:
    if (a->op == OP_NEG && same_form(nd(g, a->in[0]), n)) return a->in[0];
    return -1;
  case OP_LOG:
    if (a->op == OP_EXP && same_form(nd(g, a->in[0]), n)) return a->in[0];
    if (a->op == OP_SIGMOID) return mk1(R, OP_NEG, mk1(R, OP_SOFTPLUS, mk1(R, OP_NEG, a->in[0], n), n), n);
    if (a->op == OP_SUB && is_value(g, a->in[0], 1) && nd(g, a->in[1])->op == OP_SIGMOID) {
      int x = nd(g, a->in[1])->in[0];
      if (same_form(nd(g, x), n)) return mk1(R, OP_NEG, mk1(R, OP_SOFTPLUS, x, n), n);
    }
    return -1;
  case OP_EXP:
    if (a->op == OP_LOG && same_form(nd(g, a->in[0]), n)) return a->in[0];
    return -1;
  case OP_ADD:
    if (is_value(g, ib, 0) && same_form(a, n)) return ia;
    if (is_value(g, ia, 0) && same_form(b, n)) return ib;
    if (b->op == OP_NEG) return mk2(R, OP_SUB, ia, b->in[0], n);
    if (a->op == OP_NEG) return mk2(R, OP_SUB, ib, a->in[0], n);
    return -1;
  case OP_SUB:
    if (is_value(g, ib, 0) && same_form(a, n)) return ia;
    if (is_value(g, ia, 0) && same_form(b, n)) return mk1(R, OP_NEG, ib, n);
    if (ia == ib) return constant_like(R, n, 0);
    if (b->op == OP_NEG) return mk2(R, OP_ADD, ia, b->in[0], n);
    return -1;
  case OP_MUL:
    if (is_value(g, ia, 0) || is_value(g, ib, 0)) return constant_like(R, n, 0);
    if (is_value(g, ib, 1) && same_form(a, n)) return ia;
    if (is_value(g, ia, 1) && same_form(b, n)) return ib;
    if (is_value(g, ib, -1) && same_form(a, n)) return mk1(R, OP_NEG, ia, n);
    if (is_value(g, ia, -1) && same_form(b, n)) return mk1(R, OP_NEG, ib, n);
    return -1;
  case OP_DIV:
    if (is_value(g, ib, 1) && same_form(a, n)) return ia;
    if (is_value(g, ib, -1) && same_form(a, n)) return mk1(R, OP_NEG, ia, n);
    return -1;
  case OP_EXPAND:
    if (same_form(a, n)) return ia;
    if (a->op == OP_EXPAND) {
      GNode *e = graph_begin(g, OP_EXPAND, &a->in[0], 1, n->span, n->name);
      e->shape = n->shape;
      e->batched = n->batched;
      return rw_end(R, e);
    }
    return -1;
  case OP_REDUCE_TO:
  case OP_SLICE:
    return same_form(a, n) ? ia : -1;
  case OP_RESHAPE:
    if (same_form(a, n)) return ia;
    if (a->op == OP_RESHAPE) {
      GNode *e = graph_begin(g, OP_RESHAPE, &a->in[0], 1, n->span, n->name);
      e->shape = n->shape;
      return rw_end(R, e);
    }
    return -1;
  case OP_CONCAT:
    return n->nin == 1 && same_form(a, n) ? ia : -1;
  case OP_SUM:
    return a->shape.rank == 0 && same_form(a, n) ? ia : -1;
  case OP_BATCH_MEAN:
    return !a->batched && same_form(a, n) ? ia : -1;
  default:
    return -1;
  }
}

static void pass_simplify(Graph *g) {
  for (int round = 0; round < 8 && sweep(g, simplify_rule, NULL); round++) {
  }
}

/* ------------------------------------------------------------------- cse */

typedef struct {
  int *slot; /* node ids, -1 empty */
  int cap;
} Table;

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdULL;
}

static uint64_t f_bits(double f) {
  uint64_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* The inputs as compared: ADD and MUL commute, so theirs are sorted. */
static int cse_input(const GNode *n, int k) {
  if ((n->op == OP_ADD || n->op == OP_MUL) && n->nin == 2 && n->in[0] > n->in[1]) return n->in[1 - k];
  return n->in[k];
}

static uint64_t cse_hash(const GNode *n) {
  uint64_t h = mix(0, (uint64_t)n->op);
  h = mix(h, (uint64_t)n->nin);
  for (int k = 0; k < n->nin; k++) h = mix(h, (uint64_t)cse_input(n, k));
  for (int k = 0; k < GRAPH_NI; k++) h = mix(h, (uint64_t)n->i[k]);
  h = mix(h, f_bits(n->f));
  if (n->s)
    for (const char *p = n->s; *p; p++) h = mix(h, (unsigned char)*p);
  h = mix(h, (uint64_t)n->shape.rank);
  for (int k = 0; k < n->shape.rank; k++) h = mix(h, (uint64_t)n->shape.d[k]);
  h = mix(h, (uint64_t)n->batched);
  return mix(h, (uint64_t)n->classes);
}

static int cse_equal(const GNode *a, const GNode *b) {
  if (a->op != b->op || a->nin != b->nin || !same_form(a, b)) return 0;
  for (int k = 0; k < a->nin; k++)
    if (cse_input(a, k) != cse_input(b, k)) return 0;
  for (int k = 0; k < GRAPH_NI; k++)
    if (a->i[k] != b->i[k]) return 0;
  if (f_bits(a->f) != f_bits(b->f)) return 0;
  if (!a->s != !b->s || (a->s && strcmp(a->s, b->s))) return 0;
  return 1;
}

/* The first of equal nodes stays; a later one is replaced by it (and
 * lends it its name when it has none).  Random draws are never merged:
 * each has its own stream.  Inputs and parameters of the same name merge. */
static int cse_rule(Rw *R, GNode *n) {
  Table *t = R->ctx;
  if (is_random(n->op)) return -1;
  uint64_t h = cse_hash(n);
  int mask = t->cap - 1;
  for (int j = (int)(h & (uint64_t)mask);; j = (j + 1) & mask) {
    int m = t->slot[j];
    if (m < 0) {
      t->slot[j] = n->id;
      return -1;
    }
    GNode *first = nd(R->g, m);
    if (cse_equal(first, n)) {
      if (!first->name) first->name = n->name;
      return m;
    }
  }
}

static void pass_cse(Graph *g) {
  Table t;
  t.cap = 64;
  while (t.cap < 2 * count(g) + 2) t.cap *= 2;
  t.slot = xrealloc(NULL, sizeof(int) * (size_t)t.cap);
  for (int i = 0; i < t.cap; i++) t.slot[i] = -1;
  sweep(g, cse_rule, &t); /* inputs are looked up after their own merging: one sweep suffices */
  free(t.slot);
}

/* ----------------------------------------------------------------- merge */

/* What the outputs need: marks every node they depend on. */
static char *needed(const Graph *g) {
  int n = count(g);
  char *live = xcalloc((size_t)n, 1);
  for (int i = 0; i < g->outputs.len; i++) {
    int o = ((GOutput *)g->outputs.items[i])->node;
    if (o >= 0) live[o] = 1;
  }
  for (int i = n - 1; i >= 0; i--) {
    if (!live[i]) continue;
    const GNode *x = nd(g, i);
    for (int k = 0; k < x->nin; k++) live[x->in[k]] = 1;
  }
  return live;
}

/* x @ W with W an unbatched [n, m] parameter, no transposes, needed. */
static int head(const Graph *g, const GNode *n, const char *live) {
  if (n->op != OP_MATMUL || n->i[0] || n->i[1] || !live[n->id]) return 0;
  const GNode *w = nd(g, n->in[1]);
  return w->op == OP_PARAM && !w->batched && w->shape.rank == 2;
}

/* Sibling matmuls x @ W1, ..., x @ Wk of the same x (a Gaussian head's mean
 * and scale) become one x @ concat(W1, ..., Wk, axis 1) and k slices along
 * the result's last axis.  Every user of the old products, gradient nodes
 * included, reads the slices.  The concat is computed at each step (the
 * parameters change): a copy of the weights, cheaper than a second pass
 * over x.  Matmuls no output needs are left to dce. */
static void pass_merge(Graph *g) {
  int n = count(g);
  char *live = needed(g), *done = xcalloc((size_t)n, 1);
  int *sib = xcalloc((size_t)n, sizeof(int)), *ws = xcalloc((size_t)n, sizeof(int));
  Rw R;
  rw_init(&R, g, NULL, NULL);
  for (int i = 0; i < n; i++) {
    GNode *m = nd(g, i);
    if (done[i] || !head(g, m, live)) continue;
    int k = 0;
    for (int j = i; j < n; j++) {
      GNode *o = nd(g, j);
      if (done[j] || !head(g, o, live) || o->in[0] != m->in[0]) continue;
      int dup = 0;
      for (int t = 0; t < k; t++) dup |= ws[t] == o->in[1];
      if (dup) continue;
      sib[k] = j;
      ws[k++] = o->in[1];
    }
    if (k < 2) continue;
    R.site = i;
    GNode *c = graph_begin(g, OP_CONCAT, ws, k, m->span, NULL);
    c->i[0] = 1;
    int cat = rw_end(&R, c);
    int in[2] = {m->in[0], cat};
    int mm = rw_end(&R, graph_begin(g, OP_MATMUL, in, 2, m->span, NULL));
    long long offset = 0;
    for (int t = 0; t < k; t++) {
      GNode *o = nd(g, sib[t]);
      done[sib[t]] = 1;
      R.site = sib[t];
      GNode *s = graph_begin(g, OP_SLICE, &mm, 1, o->span, o->name);
      s->i[0] = o->shape.rank - 1;
      s->i[1] = offset;
      s->shape = o->shape;
      replace(&R, sib[t], rw_end(&R, s));
      offset += o->shape.d[o->shape.rank - 1];
    }
  }
  rebuild(&R, NULL);
  rw_free(&R);
  free(live);
  free(done);
  free(sib);
  free(ws);
}

/* ------------------------------------------------------------------- dce */

static void pass_dce(Graph *g) {
  char *live = needed(g);
  Rw R;
  rw_init(&R, g, NULL, NULL);
  rebuild(&R, live);
  rw_free(&R);
  free(live);
}

/* ------------------------------------------------------------------ fuse */

typedef struct {
  int *start, *list; /* users of node i: list[start[i] .. start[i + 1]) */
  char *is_output;
} Users;

static Users users_of(const Graph *g) {
  int n = count(g);
  Users u;
  u.start = xcalloc((size_t)n + 1, sizeof(int));
  u.is_output = xcalloc((size_t)n, 1);
  int total = 0;
  for (int i = 0; i < n; i++) total += nd(g, i)->nin;
  u.list = xcalloc((size_t)total + 1, sizeof(int));
  for (int i = 0; i < n; i++)
    for (int k = 0; k < nd(g, i)->nin; k++) u.start[nd(g, i)->in[k] + 1]++;
  for (int i = 0; i < n; i++) u.start[i + 1] += u.start[i];
  int *fill = xcalloc((size_t)n + 1, sizeof(int));
  for (int i = 0; i < n; i++)
    for (int k = 0; k < nd(g, i)->nin; k++) {
      int p = nd(g, i)->in[k];
      u.list[u.start[p] + fill[p]++] = i;
    }
  free(fill);
  for (int i = 0; i < g->outputs.len; i++) {
    int o = ((GOutput *)g->outputs.items[i])->node;
    if (o >= 0) u.is_output[o] = 1;
  }
  return u;
}

static void users_free(Users *u) {
  free(u->start);
  free(u->list);
  free(u->is_output);
}

/* Groups grow from a root (the last node, in reverse order) back through
 * inputs: an input joins when it is elementwise, of the root's shape, batch
 * flag and codes, in no group yet, not an output, and every one of its
 * users is already in the group.  Visiting candidates from the highest id
 * down makes that test final: users come after their inputs.  Groups of
 * one node are dropped; groups are numbered by their first node. */
static void pass_fuse(Graph *g) {
  int n = count(g);
  Users u = users_of(g);
  int *group = xcalloc((size_t)n, sizeof(int));
  char *cand = xcalloc((size_t)n, 1);
  int next = 0;
  for (int r = n - 1; r >= 0; r--) {
    GNode *root = nd(g, r);
    if (group[r] || !op_is_elementwise(root->op)) continue;
    int k = ++next, size = 0, low = r;
    cand[r] = 1;
    for (int i = r; i >= low; i--) {
      if (!cand[i]) continue;
      cand[i] = 0;
      GNode *x = nd(g, i);
      if (i != r) {
        if (group[i] || !op_is_elementwise(x->op) || !same_form(x, root) || u.is_output[i]) continue;
        int inside = 1;
        for (int j = u.start[i]; j < u.start[i + 1] && inside; j++) inside = group[u.list[j]] == k;
        if (!inside) continue;
      }
      group[i] = k;
      size++;
      for (int t = 0; t < x->nin; t++) {
        cand[x->in[t]] = 1;
        if (x->in[t] < low) low = x->in[t];
      }
    }
    if (size < 2)
      for (int i = low; i <= r; i++)
        if (group[i] == k) group[i] = 0;
  }
  int *number = xcalloc((size_t)next + 1, sizeof(int));
  int ngroups = 0;
  for (int i = 0; i < n; i++) {
    int k = group[i];
    if (k && !number[k]) number[k] = ++ngroups;
    nd(g, i)->group = k ? number[k] : 0;
  }
  free(number);
  free(group);
  free(cand);
  users_free(&u);
}

/* ------------------------------------------------------------------ plan */

static long long floats(const GNode *n) { return shape_size(n->shape); }

/* Every value computed at run time gets a buffer, except the sources the
 * runtime holds anyway (inputs, parameters, constants) and the
 * intermediates of fusion groups (computed in registers: buffer -1).  A
 * node is live from its definition to its last use; a use by a fused node
 * happens at its group's root, where the kernel runs; outputs live to the
 * end.  Best fit in topological order: a buffer whose last value is dead
 * before the node's definition, of the same batch flag, the smallest that
 * holds it, else the largest (grown), else a new one. */
static void pass_plan(Graph *g) {
  int n = count(g), ngroups = 0;
  for (int i = 0; i < n; i++)
    if (nd(g, i)->group > ngroups) ngroups = nd(g, i)->group;
  int *root = xcalloc((size_t)ngroups + 1, sizeof(int));
  for (int i = 0; i < n; i++)
    if (nd(g, i)->group) root[nd(g, i)->group] = i; /* the last member */
  int *last = xcalloc((size_t)n, sizeof(int));
  for (int i = 0; i < n; i++) last[i] = i;
  for (int i = 0; i < n; i++) {
    GNode *x = nd(g, i);
    int at = x->group ? root[x->group] : i;
    for (int k = 0; k < x->nin; k++)
      if (last[x->in[k]] < at) last[x->in[k]] = at;
  }
  for (int i = 0; i < g->outputs.len; i++) {
    int o = ((GOutput *)g->outputs.items[i])->node;
    if (o >= 0) last[o] = n;
  }
  long long *size = xcalloc((size_t)n + 1, sizeof(long long));
  int *busy = xcalloc((size_t)n + 1, sizeof(int)), *batched = xcalloc((size_t)n + 1, sizeof(int));
  int nbuf = 0;
  for (int i = 0; i < n; i++) {
    GNode *x = nd(g, i);
    x->buffer = -1;
    if (x->op == OP_INPUT || x->op == OP_PARAM || x->op == OP_CONST) continue;
    if (x->group && root[x->group] != i) continue;
    long long need = floats(x);
    int best = -1;
    for (int b = 0; b < nbuf; b++) {
      if (busy[b] >= i || batched[b] != x->batched) continue;
      if (best < 0) {
        best = b;
        continue;
      }
      int fits = size[b] >= need, bfits = size[best] >= need;
      if (fits && (!bfits || size[b] < size[best])) best = b;
      else if (!fits && !bfits && size[b] > size[best]) best = b;
    }
    if (best < 0) {
      best = nbuf++;
      size[best] = 0;
      batched[best] = x->batched;
    }
    if (size[best] < need) size[best] = need;
    busy[best] = last[i];
    x->buffer = best;
  }
  free(root);
  free(last);
  free(size);
  free(busy);
  free(batched);
}

Plan optimize_plan_summary(const Graph *g) {
  Plan p = {0, 0, 0};
  int n = count(g);
  long long *size = xcalloc((size_t)n + 1, sizeof(long long));
  int *batched = xcalloc((size_t)n + 1, sizeof(int));
  for (int i = 0; i < n; i++) {
    const GNode *x = nd(g, i);
    if (x->buffer < 0 || x->buffer >= n) continue;
    if (x->buffer >= p.nbuffers) p.nbuffers = x->buffer + 1;
    if (floats(x) > size[x->buffer]) size[x->buffer] = floats(x);
    batched[x->buffer] = x->batched;
  }
  for (int b = 0; b < p.nbuffers; b++) {
    if (batched[b]) p.batched_floats += size[b];
    else p.fixed_floats += size[b];
  }
  free(size);
  free(batched);
  return p;
}

/* ----------------------------------------------------------------- check */

/* The graph is well formed: ids are positions, inputs come first, shapes
 * are what the op's rule gives, fusion groups and buffers hold what the
 * passes promise.  A violation is a bug in a pass: it is reported and vmc
 * stops.  Linear in the graph's size. */
static void check_graph(const Graph *g, const char *after) {
  int n = count(g), bad = 0;
  for (int i = 0; i < n && !bad; i++) {
    const GNode *x = nd(g, i);
    const char *why = NULL;
    if (x->id != i) why = "id is not its position";
    for (int k = 0; k < x->nin && !why; k++)
      if (x->in[k] < 0 || x->in[k] >= i) why = "an input does not come before it";
    if (!why && op_arity(x->op) >= 0 && x->nin != op_arity(x->op)) why = "wrong number of inputs";
    if (!why && !is_source(x->op)) {
      GNode t = *x;
      if (!graph_infer(g, &t)) why = "its inputs do not fit its op";
      else if (!same_form(&t, x)) why = "its shape is not what its op gives";
    }
    if (!why && x->group && (!op_is_elementwise(x->op) || x->group < 0)) why = "a fusion group holds a non-elementwise op";
    if (why) {
      fprintf(stderr, "vmc: internal error after %s: graph %s, node %%%d (%s): %s\n", after, g->name, i,
              op_name(x->op), why);
      bad = 1;
    }
  }
  for (int i = 0; i < g->outputs.len && !bad; i++) {
    const GOutput *o = g->outputs.items[i];
    if (o->node < -1 || o->node >= n) { /* -1: an output lowering could not make (left as it is) */
      fprintf(stderr, "vmc: internal error after %s: graph %s, output %s: no such node\n", after, g->name, o->name);
      bad = 1;
    }
  }
  if (bad) abort();
}

/* ---------------------------------------------------------------- driver */

void optimize(Graph *g, int upto) {
  static void (*const pass[])(Graph *) = {
#define X(name) pass_##name,
      PASSES(X)
#undef X
  };
  int npasses = (int)(sizeof pass / sizeof *pass);
  for (int k = 1; k <= upto && k <= npasses; k++) {
    pass[k - 1](g);
    check_graph(g, pass_names[k]);
  }
}
