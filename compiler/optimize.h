/* optimize.h - the passes that rewrite a lowered graph, in order:
 *   fold      constant folding (ops on constants become constants)
 *   simplify  algebraic simplification: x*1, x+0, --x, log(sigmoid(x)) -> -softplus(-x),
 *             log(1 - sigmoid(x)) -> -softplus(x), exp(log(x)) -> x, ...
 *   cse       common-subexpression elimination
 *   merge     sibling matmuls that share an input become one (a Gaussian head's
 *             mean and scale): matmul(x, [W1 W2]) then slices
 *   dce       dead-code elimination (what no output needs)
 *   fuse      elementwise chains grouped into single kernels (GNode.group)
 *   plan      static memory plan: buffers reused by liveness (GNode.buffer)
 * `vmc --dump-graph=PASS` prints the graph after a pass ("lower" before any). */
#ifndef VML_OPTIMIZE_H
#define VML_OPTIMIZE_H

#include "graph.h"

#define PASSES(X) X(fold) X(simplify) X(cse) X(merge) X(dce) X(fuse) X(plan)

/* 0 for "lower", k for the k-th pass above, -1 when unknown. */
int optimize_pass_index(const char *name);
const char *optimize_pass_list(void); /* "lower, fold, simplify, ..." */

/* Runs the passes 1..upto (every pass when upto is larger) on g.  Node ids
 * are renumbered densely in topological order; outputs follow. */
void optimize(Graph *g, int upto);

/* The memory plan's summary: number of buffers and their total size in
 * floats for a batch of one example (batched buffers scale with the batch). */
typedef struct {
  int nbuffers;
  long long batched_floats, fixed_floats; /* per example, and independent of the batch */
} Plan;
Plan optimize_plan_summary(const Graph *g);

#endif
