/* vmx.h - the .vmx file: a compiled model as deterministic, versioned text
 * (documented field by field in docs/IR.md).  vmc writes it; vmc diff and
 * vmrun read it. */
#ifndef VML_VMX_H
#define VML_VMX_H

#include <stdio.h>

#include "graph.h"
#include "import.h"
#include "model.h"

#define VMX_VERSION 1

typedef struct {
  const char *name, *type, *value; /* type: int float bool string list */
} VmxHyper;

typedef struct {
  const char *name, *domain; /* bit real cat latent */
  Shape shape;
  int classes;
  const char *extra; /* range and source, as canonical text */
} VmxData;

typedef struct {
  const char *name;
  Shape shape;
  const char *init;
  const char *where; /* file:line:col of the param statement */
} VmxParam;

typedef struct {
  const char *signature; /* "p(x | z)" */
  const char *kind;      /* encoder decoder prior critic */
  const char *text;      /* per target: "x ~ Bernoulli [784]" joined by "; " */
} VmxRole;

typedef struct {
  const char *name, *text; /* canonical source text of the loss */
} VmxLoss;

/* One optimizer step of the schedule, as data. */
typedef struct {
  const char *stage;     /* NULL outside stages */
  const char *graph;     /* its entry point: "train.0" */
  const char *loss;
  int maximize, ratio;
  const char *optimizer; /* sgd adam adamw */
  Vec args;              /* const char* pairs: name, value (canonical numbers) */
  const char *schedule;  /* canonical text, "constant()" by default */
  Vec params;            /* const char*: the parameter names it updates */
} VmxStep;

typedef struct {
  const char *stage;     /* NULL for the train block's own settings */
  Vec settings;          /* const char* pairs: batch 128, epochs 20, ... */
  Vec frozen;            /* const char*: parameter names */
} VmxStage;

typedef struct {
  int version;
  const char *model;
  const char *source;       /* the main file as named on the command line */
  const char *source_hash;  /* 16 hex digits: FNV-1a 64 of the source and its modules */
  Vec hypers, data, params, roles, losses, stages, steps; /* Vmx* of each kind */
  Vec graphs;               /* Graph* */
} Vmx;

/* Gathers everything about a checked model and its optimized graphs. */
Vmx *vmx_from_model(Arena *a, const Diag *d, const Program *prog, const Model *m, Vec graphs);

/* Writes the text form; deterministic: same Vmx, same bytes. */
void vmx_write(FILE *out, const Vmx *x);

/* Reads a .vmx file.  On a malformed or truncated file, or a version it does
 * not know, returns NULL and puts "file:line: what was expected" in err. */
Vmx *vmx_read(Arena *a, const char *path, char *err, size_t errlen);

#endif
