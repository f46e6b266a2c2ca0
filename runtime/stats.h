/* stats.h - what a model's elbo entry point says about a split: the ELBO
 * and its terms, and the collapse diagnostics of each latent: KL per
 * dimension and active units (Burda et al. 2016: a unit is active when the
 * variance over the data of its encoder mean E[z_d | x] exceeds 0.01). */
#ifndef VML_STATS_H
#define VML_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "exec.h"
#include "session.h"

#define STATS_ACTIVE_THRESHOLD 0.01

typedef struct {
  const char *name; /* the latent: "z" */
  long dims;
  double *kl;       /* per dimension, mean over examples; NULL without a z.kl output */
  double *var;      /* variance of the encoder mean per dimension; NULL without z.mean */
  int active;       /* dimensions with var > STATS_ACTIVE_THRESHOLD */
} LatentStats;

typedef struct {
  long n;                   /* examples */
  double elbo, rec, kl;     /* means per example */
  LatentStats *latents;
  int nlatents;
} ElboStats;

/* Runs graph g (the elbo entry point) over split k in batches; 0, or -1
 * with err set when the run fails (a non-finite value). */
int stats_elbo(Session *s, const Graph *g, int k, long batch, uint64_t seed, ElboStats *out, ExecError *err);
void stats_free(ElboStats *st);

/* ,"elbo":..,"rec":..,"kl":..,"kl_dims":{"z":[...]},"active_units":{"z":n}
 * (to splice into a JSON object) */
void stats_json(FILE *f, const ElboStats *st);
/* The same for a reader, a line each. */
void stats_print(FILE *f, const ElboStats *st);

#endif
