/* session.h - a compiled model loaded for running: the .vmx, its
 * parameters, and its data.  Every vmrun command starts here. */
#ifndef VML_SESSION_H
#define VML_SESSION_H

#include <stdint.h>

#include "arena.h"
#include "checkpoint.h"
#include "exec.h"
#include "source.h"
#include "vmx.h"

typedef struct {
  const VmxParam *decl;
  float *data;
  long n;
} RtParam;

typedef struct {
  Arena *arena;
  Vmx *vmx;
  char *path;
  RtParam *params;
  int nparams;
  DataItem *data; /* the observed variables (latent-domain data lines excluded) */
  int ndata;
  float **batch;  /* per data item, one batch of examples (session_bind) */
  long batch_cap; /* examples the buffers hold */
} Session;

/* The one .vmx in dir: exits with a clear error for none or several. */
char *session_find_vmx(const char *dir);

/* Reads the .vmx (exits naming the line of a malformed file). */
void session_load(Session *s, const char *path);
void session_free(Session *s);

/* Loads every data item's splits asked for (want[k]), checks that all
 * items have the same splits with the same sizes. */
void session_load_data(Session *s, const char *dir_opt, const int want[SPLIT_COUNT], uint64_t seed);
long session_examples(const Session *s, int split); /* 0 if the split is absent */

const Graph *session_graph(const Session *s, const char *name); /* NULL if absent */
RtParam *session_param(Session *s, const char *name);            /* NULL if absent */

/* Parameters from their initializers, seeded; or from a checkpoint (its
 * .vmx hash checked). */
void session_init_params(Session *s, uint64_t seed);
void session_read_params(Session *s, const Ckpt *c);

void session_bind_params(Session *s, Exec *ex);

/* Graph g prepared for up to `rows` rows a run, the parameters bound;
 * exits when the memory cannot be had. */
Exec *session_exec(Session *s, const Graph *g, long rows);

/* Gathers examples idx[0..count) of split k into the batch buffers and
 * binds them as ex's inputs (epoch: see source_gather). */
void session_bind(Session *s, Exec *ex, int k, const long *idx, long count, uint64_t seed, uint64_t epoch);

#endif
