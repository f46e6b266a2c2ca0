/* graph.c - graph construction, the shape rule of every op, printing. */
#include "graph.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  int arity;
} op_table[] = {
#define X(id, text, arity) {text, arity},
    OPS(X)
#undef X
};
_Static_assert(sizeof op_table / sizeof *op_table == OP_COUNT, "one row per op");

const char *op_name(Op op) { return op_table[op].name; }
int op_arity(Op op) { return op_table[op].arity; }

int op_from_name(const char *name) {
  for (int i = 0; i < OP_COUNT; i++)
    if (strcmp(op_table[i].name, name) == 0) return i;
  return -1;
}

int op_is_elementwise(Op op) {
  switch (op) {
  case OP_NEG: case OP_EXP: case OP_LOG: case OP_SQRT: case OP_ABS: case OP_SQUARE:
  case OP_RELU: case OP_ELU: case OP_SELU: case OP_LEAKY_RELU: case OP_TANH:
  case OP_SIGMOID: case OP_SOFTPLUS: case OP_STOP_GRAD: case OP_STEP: case OP_SIGN:
  case OP_D_ELU: case OP_D_SELU: case OP_D_LEAKY_RELU:
  case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV:
    return 1;
  default:
    return 0;
  }
}

Graph *graph_new(Arena *a, const char *name) {
  Graph *g = arena_alloc(a, sizeof *g);
  g->name = name;
  g->arena = a;
  return g;
}

GNode *graph_node(Graph *g, int id) { return g->nodes.items[id]; }

static const GNode *in_node(const Graph *g, const GNode *n, int k) { return g->nodes.items[n->in[k]]; }

/* Does `small` broadcast up to `big` (numpy rules)? */
static int broadcasts_to(Shape small, Shape big) {
  Shape r;
  return shape_broadcast(small, big, &r) && shape_eq(r, big);
}

static Shape drop_axis(Shape s, int axis) {
  Shape r = {0, {0}};
  for (int i = 0; i < s.rank; i++)
    if (i != axis) r.d[r.rank++] = s.d[i];
  return r;
}

/* axis 0: height (output pad i3), axis 1: width (output pad i4) */
static long long conv_size(long long n, long long k, const GNode *c, int transposed, int axis) {
  long long s = c->i[0], p = c->i[1], dl = c->i[2], op = c->i[3 + axis];
  if (transposed) return (n - 1) * s - 2 * p + dl * (k - 1) + op + 1;
  long long span = n + 2 * p - dl * (k - 1) - 1;
  return span < 0 ? 0 : span / s + 1;
}

int graph_infer(const Graph *g, GNode *n) {
  const GNode *a = n->nin > 0 ? in_node(g, n, 0) : NULL;
  const GNode *b = n->nin > 1 ? in_node(g, n, 1) : NULL;
  if (op_arity(n->op) >= 0 && n->nin != op_arity(n->op)) return 0;
  if (op_is_elementwise(n->op)) {
    if (!b) {
      n->shape = a->shape;
      n->batched = a->batched;
      return 1;
    }
    n->batched = a->batched || b->batched;
    return shape_broadcast(a->shape, b->shape, &n->shape);
  }
  switch (n->op) {
  case OP_INPUT: case OP_PARAM: case OP_CONST: case OP_FILL: case OP_MASK_DEGREE:
  case OP_MASK_CONV: case OP_BATCH_SIZE: case OP_RANDN: case OP_RANDU:
    return 1; /* sources: the shape was given */
  case OP_SAMPLE_BERNOULLI: /* a draw per example, even from shared logits */
    n->shape = a->shape;
    n->batched = 1;
    return 1;
  case OP_SAMPLE_CATEGORICAL:
    if (a->shape.rank < 1) return 0;
    n->classes = (int)a->shape.d[0];
    n->shape = drop_axis(a->shape, 0);
    n->batched = 1;
    return 1;
  case OP_MATMUL: {
    /* operands are viewed as matrices: the batch axis and the leading
     * per-example axes fold into rows */
    int ta = (int)n->i[0], tb = (int)n->i[1];
    if (a->shape.rank < 1 || b->shape.rank < 1) return 0;
    long long acols = a->shape.d[a->shape.rank - 1];
    if (!ta) {
      if (b->batched || b->shape.rank != 2) return 0;
      long long bk = tb ? b->shape.d[1] : b->shape.d[0], bm = tb ? b->shape.d[0] : b->shape.d[1];
      if (bk != acols) return 0;
      n->shape = a->shape;
      n->shape.d[n->shape.rank - 1] = bm;
      n->batched = a->batched;
      return 1;
    }
    /* a^T b: a and b must have the same rows (batch included) */
    if (tb || a->batched != b->batched || a->shape.rank != b->shape.rank) return 0;
    for (int i = 0; i + 1 < a->shape.rank; i++)
      if (a->shape.d[i] != b->shape.d[i]) return 0;
    long long d[2] = {acols, b->shape.d[b->shape.rank - 1]};
    n->shape = shape_of(2, d);
    n->batched = 0;
    return 1;
  }
  case OP_SUM:
    n->shape = shape_scalar();
    n->batched = a->batched;
    return 1;
  case OP_SUM_AXIS:
    if (n->i[0] < 0 || n->i[0] >= a->shape.rank) return 0;
    n->shape = drop_axis(a->shape, (int)n->i[0]);
    n->batched = a->batched;
    return 1;
  case OP_LOGSUMEXP:
    if (a->shape.rank < 1) return 0;
    n->shape = drop_axis(a->shape, 0);
    n->batched = a->batched;
    return 1;
  case OP_SOFTMAX:
    n->shape = a->shape;
    n->batched = a->batched;
    return a->shape.rank >= 1;
  case OP_REDUCE_TO: /* shape and batched were given: the target */
    return broadcasts_to(n->shape, a->shape) && (a->batched || !n->batched);
  case OP_EXPAND:
    return broadcasts_to(a->shape, n->shape) && (n->batched || !a->batched);
  case OP_BATCH_MEAN:
    n->shape = a->shape;
    n->batched = 0;
    return 1;
  case OP_RESHAPE:
    n->batched = a->batched;
    return shape_size(n->shape) == shape_size(a->shape);
  case OP_CONCAT: {
    int axis = (int)n->i[0];
    if (n->nin < 1 || axis < 0 || axis >= a->shape.rank) return 0;
    n->shape = a->shape;
    n->batched = 0;
    for (int k = 0; k < n->nin; k++) {
      const GNode *x = in_node(g, n, k);
      if (x->shape.rank != a->shape.rank) return 0;
      for (int i = 0; i < x->shape.rank; i++)
        if (i != axis && x->shape.d[i] != a->shape.d[i]) return 0;
      if (k) n->shape.d[axis] += x->shape.d[axis];
      n->batched |= x->batched;
    }
    return 1;
  }
  case OP_SLICE: { /* shape given: the slice */
    int axis = (int)n->i[0];
    n->batched = a->batched;
    if (n->shape.rank != a->shape.rank || axis < 0 || axis >= a->shape.rank) return 0;
    return n->i[1] >= 0 && n->i[1] + n->shape.d[axis] <= a->shape.d[axis];
  }
  case OP_CONV2D:
  case OP_CONV2D_T: {
    int t = n->op == OP_CONV2D_T;
    if (a->shape.rank != 3 || b->shape.rank != 4 || b->batched) return 0;
    if ((t ? b->shape.d[0] : b->shape.d[1]) != a->shape.d[0]) return 0;
    long long d[3] = {t ? b->shape.d[1] : b->shape.d[0], conv_size(a->shape.d[1], b->shape.d[2], n, t, 0),
                      conv_size(a->shape.d[2], b->shape.d[3], n, t, 1)};
    if (d[1] < 1 || d[2] < 1) return 0;
    n->shape = shape_of(3, d);
    n->batched = a->batched;
    return 1;
  }
  case OP_CONV2D_DW:
  case OP_CONV2D_T_DW: /* shape given: the kernel's */
    n->batched = 0;
    return a->shape.rank == 3 && b->shape.rank == 3 && n->shape.rank == 4;
  case OP_NEAREST:
    if (b->shape.rank != 2 || a->shape.rank < 1 || a->shape.d[0] != b->shape.d[1]) return 0;
    n->shape = drop_axis(a->shape, 0);
    n->classes = (int)b->shape.d[0];
    n->batched = a->batched;
    return 1;
  case OP_EMBED:
    if (a->shape.rank != 2 || !b->classes || b->shape.rank + 1 > MAX_RANK) return 0;
    n->shape.rank = b->shape.rank + 1;
    n->shape.d[0] = a->shape.d[1];
    for (int i = 0; i < b->shape.rank; i++) n->shape.d[i + 1] = b->shape.d[i];
    n->batched = a->batched || b->batched;
    return 1;
  case OP_EMBED_DW: /* shape given: the table's */
    n->batched = 0;
    return n->shape.rank == 2 && b->classes == n->shape.d[0];
  case OP_ONEHOT:
    if (!a->classes || a->shape.rank + 1 > MAX_RANK) return 0;
    n->shape.rank = a->shape.rank + 1;
    n->shape.d[0] = a->classes;
    for (int i = 0; i < a->shape.rank; i++) n->shape.d[i + 1] = a->shape.d[i];
    n->batched = a->batched;
    return 1;
  case OP_PICK:
    if (a->shape.rank != b->shape.rank + 1 || !b->classes || a->shape.d[0] != b->classes) return 0;
    n->shape = b->shape;
    n->batched = a->batched || b->batched;
    return 1;
  case OP_PICK_DX:
    if (!b->classes) return 0;
    n->shape.rank = b->shape.rank + 1;
    n->shape.d[0] = b->classes;
    for (int i = 0; i < b->shape.rank; i++) n->shape.d[i + 1] = b->shape.d[i];
    n->batched = a->batched || b->batched;
    return 1;
  default:
    return 0;
  }
}

GNode *graph_begin(Graph *g, Op op, const int *in, int nin, Span at, const char *name) {
  GNode *n = arena_alloc(g->arena, sizeof *n);
  n->op = op;
  n->id = g->nodes.len;
  n->nin = nin;
  n->in = arena_alloc(g->arena, sizeof(int) * (size_t)(nin + 1));
  for (int k = 0; k < nin; k++) n->in[k] = in[k];
  n->span = at;
  n->name = name;
  n->buffer = -1;
  return n;
}

int graph_end(Graph *g, GNode *n) {
  for (int k = 0; k < n->nin; k++)
    if (n->in[k] < 0 || n->in[k] >= g->nodes.len) return -1;
  if (!graph_infer(g, n)) {
    fprintf(stderr, "vmc: internal error: %s does not fit its inputs (node %s)\n", op_name(n->op),
            n->name ? n->name : "?");
    return -1;
  }
  vec_push(g->arena, &g->nodes, n);
  return n->id;
}

int graph_add(Graph *g, Op op, const int *in, int nin, Span at, const char *name) {
  return graph_end(g, graph_begin(g, op, in, nin, at, name));
}

int graph_source(Graph *g, Op op, Shape shape, int batched, Span at, const char *name) {
  GNode *n = graph_begin(g, op, NULL, 0, at, name);
  n->shape = shape;
  n->batched = batched;
  return graph_end(g, n);
}

void graph_output(Graph *g, const char *name, int node) {
  GOutput *o = arena_alloc(g->arena, sizeof *o);
  o->name = name;
  o->node = node;
  vec_push(g->arena, &g->outputs, o);
}

const GNode *graph_output_node(const Graph *g, const char *name) {
  for (int i = 0; i < g->outputs.len; i++) {
    const GOutput *o = g->outputs.items[i];
    if (!strcmp(o->name, name)) return g->nodes.items[o->node];
  }
  return NULL;
}

static void print_shape(FILE *out, Shape s) {
  fputc('[', out);
  for (int i = 0; i < s.rank; i++) fprintf(out, "%s%lld", i ? ", " : "", s.d[i]);
  fputc(']', out);
}

void graph_print_node(FILE *out, const GNode *n, const char *where) {
  fprintf(out, "  %%%d = %s", n->id, op_name(n->op));
  for (int k = 0; k < n->nin; k++) fprintf(out, " %%%d", n->in[k]);
  fputc(' ', out);
  print_shape(out, n->shape);
  if (n->batched) fputs(" batched", out);
  if (n->classes) fprintf(out, " codes=%d", n->classes);
  for (int k = 0; k < GRAPH_NI; k++)
    if (n->i[k]) fprintf(out, " i%d=%lld", k, n->i[k]);
  if (n->f != 0 || n->op == OP_CONST || n->op == OP_FILL) fprintf(out, " f=%.9g", n->f);
  if (n->s) fprintf(out, " s=\"%s\"", n->s);
  if (n->group) fprintf(out, " group=%d", n->group);
  if (n->buffer >= 0) fprintf(out, " buf=%d", n->buffer);
  if (n->name) fprintf(out, " name=%s", n->name);
  if (where) fprintf(out, " @%s", where);
  fputc('\n', out);
}

void graph_print(FILE *out, const Graph *g, const Diag *d) {
  fprintf(out, "graph %s\n", g->name);
  if (g->about) fprintf(out, "  # %s\n", g->about);
  for (int i = 0; i < g->nodes.len; i++) {
    const GNode *n = g->nodes.items[i];
    char where[300];
    where[0] = '\0';
    if (d && n->span.file >= 0 && n->span.file < d->nfiles) {
      int line, col;
      diag_line_col(d, n->span, &line, &col);
      const char *path = d->files[n->span.file].path, *base = strrchr(path, '/');
      snprintf(where, sizeof where, "%s:%d:%d", base ? base + 1 : path, line, col); /* base name: the same on any machine */
    }
    graph_print_node(out, n, where[0] ? where : NULL);
  }
  for (int i = 0; i < g->outputs.len; i++) {
    const GOutput *o = g->outputs.items[i];
    fprintf(out, "  output %s %%%d\n", o->name, o->node);
  }
}

void graph_dot(FILE *out, const Graph *g) {
  fprintf(out, "digraph \"%s\" {\n  node [shape=box, fontname=monospace];\n", g->name);
  for (int i = 0; i < g->nodes.len; i++) {
    const GNode *n = g->nodes.items[i];
    fprintf(out, "  n%d [label=\"%s", n->id, op_name(n->op));
    if (n->name) fprintf(out, "\\n%s", n->name);
    fputs("\\n", out);
    print_shape(out, n->shape);
    fputs("\"];\n", out);
    for (int k = 0; k < n->nin; k++) fprintf(out, "  n%d -> n%d;\n", n->in[k], n->id);
  }
  for (int i = 0; i < g->outputs.len; i++) {
    const GOutput *o = g->outputs.items[i];
    fprintf(out, "  out%d [label=\"%s\", shape=ellipse];\n  n%d -> out%d;\n", i, o->name, o->node, i);
  }
  fputs("}\n", out);
}
