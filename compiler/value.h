/* value.h - compile-time values: numbers, lists, functions, and tensors and
 * distributions described by their static per-example shape. */
#ifndef VML_VALUE_H
#define VML_VALUE_H

#include "ast.h"

#define MAX_RANK 8

typedef struct {
  int rank;
  long long d[MAX_RANK];
} Shape;

typedef enum {
  V_INT, V_FLOAT, V_BOOL, V_STR, V_LIST, V_TUPLE,
  V_FUNC,   /* builtin (builtin >= 0) or user fn/net/critic (fn) */
  V_MODULE, /* an imported module, for nn.mlp */
  V_ROLE,   /* a role letter in a loss: q in q.h */
  V_TENSOR, V_DIST
} ValueKind;

typedef enum { D_NORMAL, D_LAPLACE, D_BERNOULLI, D_CATEGORICAL, D_FLOW } DistFamily;

typedef struct Value Value;
struct Module;

typedef struct {
  DistFamily fam;
  Value *arg[2];   /* loc, scale; or logits/probs in arg[0], arg[1] = NULL */
  int probs;       /* Bernoulli/Categorical given by probs rather than logits */
  Shape shape;     /* the shape of one sample */
  int classes;     /* Categorical: number of classes */
  Value *base, *eps, *logdet; /* D_FLOW */
} Dist;

/* TENSOR flags */
enum { T_CONST = 1, T_PARAM = 2 };

struct Value {
  ValueKind kind;
  Span span;
  long long i;       /* INT, BOOL */
  double f;          /* FLOAT */
  const char *s;     /* STR; FUNC and ROLE names */
  Vec items;         /* LIST, TUPLE */
  int builtin;       /* FUNC: builtin id, or -1 */
  Node *fn;          /* FUNC: N_FN or critic N_ROLE */
  struct Module *mod;/* FUNC: defining module; MODULE */
  Shape shape;       /* TENSOR */
  int classes;       /* TENSOR: > 0 for integer codes with that many classes */
  unsigned flags;    /* TENSOR */
  Dist *dist;        /* DIST */
  int node;          /* TENSOR, when lowering: its graph node (-1: none yet) */
};

Value *val_new(Arena *a, ValueKind k, Span s);
Value *val_int(Arena *a, long long i, Span s);
Value *val_float(Arena *a, double f, Span s);
Value *val_tensor(Arena *a, Shape sh, Span s);

int val_is_number(const Value *v);
double val_number(const Value *v);
const char *val_kind_name(const Value *v); /* "an int", "a tensor [784]" */

Shape shape_of(int rank, const long long *d);
Shape shape_scalar(void);
int shape_eq(Shape a, Shape b);
long long shape_size(Shape s);
/* numpy broadcasting; returns 0 when the shapes do not broadcast */
int shape_broadcast(Shape a, Shape b, Shape *out);
const char *shape_str(Arena *a, Shape s); /* "[1, 28, 28]" */

#endif
