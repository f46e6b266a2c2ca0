/* graph.h - the static computation graph: what vmc compile lowers a model
 * to, what the passes rewrite and what the .vmx file holds.
 *
 * A graph is a list of nodes in topological order (every input of a node
 * comes before it).  Shapes are per example; a node is `batched` when the
 * run's batch axis stands in front.  Node ids are indices in the list. */
#ifndef VML_GRAPH_H
#define VML_GRAPH_H

#include "ops.h"
#include "value.h"

#define GRAPH_NI 5 /* integer attributes per node */

typedef struct {
  Op op;
  int id;
  int *in;
  int nin;
  Shape shape;      /* per example */
  int batched;      /* has the batch axis in front */
  int classes;      /* > 0: integer codes with that many values */
  long long i[GRAPH_NI]; /* integer attributes, see ops.h */
  double f;         /* float attribute */
  const char *s;    /* string attribute */
  const char *name; /* readable, from the source: q.h.dense0.y */
  Span span;        /* the .vm construct that produced it */
  int group;        /* fusion group (0: none) */
  int buffer;       /* memory plan: the buffer it lives in (-1: none) */
} GNode;

typedef struct {
  const char *name; /* "loss", "grad:q.h.dense0.W", "z.mean" */
  int node;
} GOutput;

typedef struct {
  const char *name;  /* the entry point: "train.0", "encode", ... */
  const char *about; /* one line for readers: "maximize elbo over q, p" */
  Vec nodes;         /* GNode* */
  Vec outputs;       /* GOutput* */
  Arena *arena;
} Graph;

Graph *graph_new(Arena *a, const char *name);
GNode *graph_node(Graph *g, int id);

/* Adds a node; its shape and batch flag follow from the op's shape rule
 * (graph_infer).  Sources (inputs, params, fills, random draws) take the
 * shape given.  Returns the new node's id, or -1 when the shape rule
 * rejects the inputs (a bug in the caller: it reports it on stderr). */
int graph_add(Graph *g, Op op, const int *in, int nin, Span at, const char *name);
int graph_source(Graph *g, Op op, Shape shape, int batched, Span at, const char *name);
/* Adds a node with attributes set by the caller, then infers its shape. */
GNode *graph_begin(Graph *g, Op op, const int *in, int nin, Span at, const char *name);
int graph_end(Graph *g, GNode *n);

void graph_output(Graph *g, const char *name, int node);
/* The node of output `name`; NULL when g has none. */
const GNode *graph_output_node(const Graph *g, const char *name);

/* Recomputes a node's shape from its inputs; 0 when they do not fit. */
int graph_infer(const Graph *g, GNode *n);

/* One node line ("  %3 = add %1 %2 [500] batched ..."), with `where`
 * (file:line:col) at the end when given. */
void graph_print_node(FILE *out, const GNode *n, const char *where);

/* The text form used in .vmx files and by --dump-graph. */
void graph_print(FILE *out, const Graph *g, const Diag *d);
/* Graphviz. */
void graph_dot(FILE *out, const Graph *g);

#endif
