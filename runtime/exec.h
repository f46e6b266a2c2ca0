/* exec.h - executing one graph of a .vmx file (an entry point, docs/IR.md
 * §5-§7) in float32 on batches of up to max_batch examples.
 *
 *   Exec *ex = exec_new(graph, 128);          allocates everything, once
 *   exec_bind_param(ex, "q.h.dense0.W", W);   by pointer, never copied
 *   exec_bind_input(ex, "x", batch_data);     [batch, per-example shape]
 *   if (exec_run(ex, batch, seed, step, &err)) ... err.msg
 *   const float *loss = exec_output(ex, "loss");
 *
 * Memory: exec_new allocates the compiled memory plan (GNode.buffer): one
 * array per buffer, as large as the largest node assigned to it (floats per
 * example x max_batch for batched nodes).  Inputs and parameters are read
 * where the caller keeps them.  const, fill and mask nodes are computed
 * once, in exec_new: in their buffer when no other node shares it, else in
 * a private array.  A fusion group's members without a buffer are computed
 * inside the group's kernel, at its root (the last member).  A dense
 * layer's matmul whose only reader adds a bias vector (a parameter) is
 * computed by that add, in one pass, and keeps no value of its own
 * (exec_value gives NULL).  A reshape is a view of its input when nothing
 * overwrites that input's buffer while the reshape is live, else a copy.
 * A node without a buffer that needs one (a graph that was never planned,
 * as in the unit tests) gets a private array.  Nothing is allocated by
 * exec_run.
 *
 * Random nodes (randn, randu, sample_bernoulli, sample_categorical) draw
 * from runtime/rng.h's counter-based streams: key = the seed, stream =
 * rng_stream(i0, step) (i0 the node's stream attribute, step the caller's
 * execution counter), offset = the element's flat index in the node's
 * value, batch axis included (example b, element k: b * size + k;
 * sample_categorical uses one uniform per output position).  So example b
 * gets the same draws whatever max_batch or the thread count, and a run is
 * reproducible from (seed, step).
 *
 * Threads: exec_run spreads products, convolutions, large fused groups,
 * draws and sums over the runtime's threads (exec_set_threads; they start
 * at the first run that needs them) in pieces fixed by the shapes, so
 * results are bitwise identical for any thread count.
 *
 * Non-finite values: after each node (after each fused group) its value is
 * scanned; the first NaN or infinity stops the run and exec_run reports the
 * node (for a fusion group, the first member whose value is not finite at
 * the first bad element), its op, its name and its source position.
 * Products and groups scan each piece as they compute it, on its thread,
 * while it is still in cache: the scan costs about 2% of a VAE training
 * step.  Inputs and parameters are not
 * scanned: a NaN there is reported at the first node that reads it.
 * exec_set_check(ex, 0) turns the scan off. */
#ifndef VML_EXEC_H
#define VML_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"

typedef struct Exec Exec;

typedef struct {
  int node;          /* the node id (%N), -1 when the error is about no node */
  Op op;             /* its op */
  const char *name;  /* its readable name (q.h.dense0.y), or NULL */
  char where[256];   /* its source position "nn.vm:14:7", or "" */
  long long index;   /* the first bad element (flat, batch axis included), -1 */
  char msg[1024];    /* one line, e.g. "node %41 (softplus, q.z) at vae.vm:15:37:
                        non-finite value nan at element 3 (example 0)" */
} ExecError;

/* Prepares g (as vmx_read gives it) for batches of 1..max_batch examples.
 * The graph must outlive the Exec.  NULL when out of memory. */
Exec *exec_new(const Graph *g, int max_batch);
void exec_free(Exec *ex);

/* Binds every input node whose `s` is name (data or latent, batched:
 * [batch] + its shape) or every param node of that parameter name to the
 * caller's array; returns the number of nodes bound (0: no such name).
 * Rebind before a run whenever the data moves. */
int exec_bind_input(Exec *ex, const char *name, const float *data);
int exec_bind_param(Exec *ex, const char *name, const float *data);

/* Runs the graph's nodes in order on a batch of `batch` examples (1 ..
 * max_batch).  Returns 0, or -1 with err filled (an unbound input, a code
 * out of range, a malformed mask, the first non-finite value).  err may be
 * NULL. */
int exec_run(Exec *ex, int batch, uint64_t seed, uint64_t step, ExecError *err);

/* An output of the last run by name ("loss", "grad:q.h.dense0.W"):
 * [batch] + shape when batched; NULL when the graph has no such output.
 * Valid until the next run. */
const float *exec_output(const Exec *ex, const char *name);
/* Any node's value after a run (NULL for a fused member without storage). */
const float *exec_value(const Exec *ex, int node);

/* Replaces a node's computed value with the caller's array (random draws
 * fixed by a test, a latent supplied by the caller); NULL undoes it. */
void exec_override(Exec *ex, int node, const float *data);

/* Calls fn(ctx, node, value) after every node is computed during a run
 * (a fusion group: once, for its root), before the next one may reuse its
 * buffer; for tracing and the tests.  NULL removes it. */
typedef void ExecObserver(void *ctx, int node, const float *value);
void exec_observe(Exec *ex, ExecObserver *fn, void *ctx);

/* Turns the non-finite scan on (the default) or off. */
void exec_set_check(Exec *ex, int on);

/* The number of threads exec_run uses, the caller's included; n < 1: the
 * number of online CPUs (the default).  For the whole process (vmrun
 * --threads N); results do not depend on it.  Fused groups and
 * convolutions use per-thread workspace, allocated by exec_new for the
 * setting of the time: set it first.  OpenBLAS is kept single-threaded. */
void exec_set_threads(int n);

/* Bytes allocated by exec_new (buffers, private arrays, workspace). */
size_t exec_bytes(const Exec *ex);

/* A node's source position as written in the .vmx ("nn.vm:14:7"), or ""
 * when it has none. */
void exec_where(const GNode *n, char *buf, size_t len);

#endif
