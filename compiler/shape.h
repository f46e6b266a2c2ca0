/* shape.h - elaboration: every model of the main file is evaluated at
 * compile time.  Hypers get their values (-D overrides applied), functions
 * are inlined per call, loops unrolled, parameters created under their
 * stable names, and every value gets its static per-example shape. */
#ifndef VML_SHAPE_H
#define VML_SHAPE_H

#include "import.h"
#include "model.h"

/* -D name=value from the command line. */
typedef struct {
  const char *name, *text;
  int used;
} Define;

/* Elaborates every model in prog->main; errors go to d.  Returns Model*s
 * (possibly incomplete when there were errors).  Reports -D names that
 * no model declares. */
Vec shape_program(Diag *d, Arena *a, Program *prog, Define *defs, int ndefs);

/* Lowers a checked model (no errors) to its entry points, each a Graph:
 * one per training step, then encode, decode, reconstruct, sample (and the
 * per-position steps of autoregressive and flow priors), elbo and iw when
 * every role has a density, logjoint when the generative side has. */
Vec shape_lower(Diag *d, Arena *a, Program *prog, Model *m);

#endif
