/* stats.h - what a model's elbo entry point says about a split: the ELBO
 * and its terms, and the collapse diagnostics of each latent: KL per
 * dimension and active units (Burda et al. 2016: a unit is active when the
 * variance over the data of its encoder mean E[z_d | x] exceeds 0.01).
 * For a model with latents of discrete codes (VQ-VAE), what its encode,
 * prior.R and reconstruct entry points say: codebook usage and perplexity,
 * the prior's negative log-likelihood of the codes, the reconstruction
 * error. */
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

/* A latent of integer codes (an encode output C.sample with classes=K). */
typedef struct {
  char *name;         /* the latent: "c" */
  int classes;        /* K */
  long positions;     /* codes per example */
  long *count;        /* [K]: occurrences of each code over the split */
  int used;           /* codes that occur at least once */
  double perplexity;  /* exp(entropy of the average code distribution count / (n positions)) */
  char *prior;        /* the autoregressive prior's graph ("prior.r"); NULL without one */
  double nll;         /* -log r(c) per example, mean over the split, nats (when prior and asked for) */
  int have_nll;
} CodeLatentStats;

typedef struct {
  long n;                  /* examples */
  CodeLatentStats *codes;
  int ncodes;
  char *data;              /* the data item reconstructed ("x"); NULL without a reconstruct output */
  double mse;              /* mean over examples and values of (x - reconstruct's x.mean)^2 */
} CodeStats;

#define STATS_PRIOR 1 /* stats_codes: also the prior's -log r(c) */

/* Whether the model's encode entry point gives codes (stats_codes has something to say). */
int stats_has_codes(const Session *s);
/* Whether graph prior.R exists for a code latent, and names parameter `param`. */
int stats_prior_uses(const Session *s, const char *param);
/* Runs encode (and, with STATS_PRIOR in flags, each code latent's prior.R
 * on the codes; and reconstruct) over split k in batches; 0, or -1 with err
 * set when a run fails. */
int stats_codes(Session *s, int k, long batch, uint64_t seed, int flags, CodeStats *out, ExecError *err);
void stats_codes_free(CodeStats *st);
/* ,"codes":{"c":{"classes":K,"used":N,"usage":F,"perplexity":P[,"nll":X]}}[,"rec_mse":{"x":M}] */
void stats_codes_json(FILE *f, const CodeStats *st);
void stats_codes_print(FILE *f, const CodeStats *st);

#endif
