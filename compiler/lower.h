/* lower.h - from elaborated values to graph nodes.
 *
 * While shape.c runs a model to build an entry point, every tensor value it
 * computes gets a node here: builtins and arithmetic become ops,
 * distributions become the nodes of their samples, log-densities,
 * entropies, means and KL divergences. */
#ifndef VML_LOWER_H
#define VML_LOWER_H

#include "builtin.h"
#include "graph.h"
#include "model.h"

typedef struct {
  Graph *g;
  Diag *d;
  Arena *a;
  Vec params;  /* pairs: parameter name, node id (as intptr_t) */
  int streams; /* random streams handed out */
} Lower;

/* The node of a tensor, or a constant for a number; -1 for anything else. */
int lower_value(Lower *L, Value *v, Span at);
int lower_param(Lower *L, const Param *p, Span at);

/* Set result->node for a builtin applied to args, for x op y, for -x. */
void lower_builtin(Lower *L, int id, Node *call, Arg *args, int nargs, Value *result);
void lower_binary(Lower *L, const char *op, Value *x, Value *y, Value *result, Node *at);
void lower_neg(Lower *L, Value *x, Value *result, Node *at);

/* A draw of the given shape from a distribution (reparameterized where it
 * can be; `estimator`: 0 none, 1 straight-through, 2 score function). */
int lower_sample(Lower *L, const Dist *d, Shape shape, int estimator, Span at, const char *name);
/* Per-example scalars over a variable of the given shape. */
int lower_logpdf(Lower *L, const Dist *d, int x, Shape shape, Span at);
int lower_entropy(Lower *L, const Dist *d, Shape shape, Span at);
int lower_kl(Lower *L, const Dist *q, const Dist *p, int zq, Shape shape, Span at);
/* KL(q || p) per element of the variable (shape), analytic where it can be,
 * else log q(z) - log p(z) at the sample zq; -1 when a side does not
 * factorize over elements. */
int lower_kl_dims(Lower *L, const Dist *q, const Dist *p, int zq, Shape shape, Span at);
/* The distribution's mean (probabilities for Bernoulli and Categorical). */
int lower_mean(Lower *L, const Dist *d, Shape shape, Span at);

#endif
