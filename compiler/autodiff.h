/* autodiff.h - reverse-mode differentiation as a graph-to-graph pass.
 *
 * Walks the graph backwards from a scalar, unbatched node, applies each
 * op's gradient rule (which adds nodes), sums the gradients of values used
 * more than once, honours stop_grad, and skips what does not depend on the
 * requested nodes.  The gradients are added to the same graph. */
#ifndef VML_AUTODIFF_H
#define VML_AUTODIFF_H

#include "graph.h"

/* Fills grads[k] with the node holding d(of)/d(wrt[k]) (-1 when it does
 * not depend on it).  Returns 0 after reporting an error to d, e.g. a
 * gradient that must pass through a draw with no estimator. */
int autodiff(Graph *g, Diag *d, int of, const int *wrt, int nwrt, int *grads, const char *what);

#endif
