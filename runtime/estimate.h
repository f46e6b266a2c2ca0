/* estimate.h - estimators of log p(x) for vmrun eval (docs/vmrun.1):
 *
 *   --iw K         the importance-weighted bound (Burda, Grosse & Salakhutdinov
 *                  2016): log (1/K) sum_k exp(log w_k), w_k = p(x, z_k) /
 *                  q(z_k | x), z_k ~ q, from the `iw` entry point.  A lower
 *                  bound in expectation, tight as K grows.
 *   --ais          annealed importance sampling (Neal 2001) with HMC moves,
 *                  from the `logjoint` entry point, annealing from N(0, I)
 *                  to p(x, z) on a sigmoid schedule (Wu, Burda, Salakhutdinov
 *                  & Grosse 2017).  Needs no encoder density, so it is the
 *                  estimator for implicit encoders (AVB).
 *   --quadrature   log p(x) = log integral p(x, z) dz on a grid, for models
 *                  whose real-valued latents total at most 2 dimensions:
 *                  exact up to the grid's resolution and extent.
 *
 * Each gives one estimate per example; the result is their mean over the
 * examples and its standard error.  Every random draw is a function of the
 * seed and of fixed counters, so the same seed gives the same numbers for
 * any --threads: for --iw the graph run's number and the row (so --batch
 * matters too), for --ais the temperature, the example and the chain.
 * Errors (a model without the entry point, too many dimensions, a
 * non-finite value) exit through die() naming the model. */
#ifndef VML_ESTIMATE_H
#define VML_ESTIMATE_H

#include <stdint.h>
#include <stdio.h>

#include "session.h"

/* Defaults of the settings (0 in EstimateOpts means "the default"). */
#define ESTIMATE_BATCH 512          /* rows per graph run */
#define ESTIMATE_AIS_STEPS 500      /* temperatures */
#define ESTIMATE_CHAINS 16          /* AIS chains per example */
#define ESTIMATE_LEAPFROG 10        /* leapfrog steps per HMC move */
#define ESTIMATE_STEP_SIZE 0.05     /* initial leapfrog step size */
#define ESTIMATE_ACCEPT_TARGET 0.65 /* HMC acceptance the step size is adapted to */
#define ESTIMATE_PILOTS 2           /* AIS pilot chains per example, which adapt the step size */
#define ESTIMATE_GRID_1D 4001       /* quadrature points per dimension, 1 dimension */
#define ESTIMATE_GRID_2D 401        /* ... and 2 dimensions */
#define ESTIMATE_BOUND 8.0          /* the quadrature grid covers [-8, 8]^d */

typedef enum { ESTIMATE_IW, ESTIMATE_AIS, ESTIMATE_QUADRATURE } EstimateKind;

typedef struct {
  EstimateKind kind;
  long examples;    /* the split's first N (<= its size; eval has spread --examples over it) */
  long batch;       /* rows per graph run; 0: ESTIMATE_BATCH */
  uint64_t seed;    /* the random draws */
  uint64_t data_seed; /* the run's seed: dynamic binarization of the data */
  long k;           /* --iw K */
  long ais_steps, chains, leapfrog; /* 0: the defaults */
  double step_size; /* <= 0: the default */
  long grid;        /* points per dimension; 0: by dimension */
} EstimateOpts;

typedef struct {
  EstimateOpts o;   /* the settings used, defaults filled in */
  long n;           /* examples */
  double mean;      /* mean over the examples of the per-example estimate */
  double stderr_;   /* its standard error (sd over examples / sqrt(n)) */
  double seconds;
  double mean_logw; /* iw: the mean of every log w (a one-sample ELBO) */
  double acceptance; /* ais: mean HMC acceptance probability */
  long dims;        /* ais, quadrature: real latent dimensions */
  double grid_error; /* quadrature: max over examples of |N points - every other point| */
  double edge_mass; /* quadrature: largest share of an example's mass on the grid's border */
} Estimate;

/* Exits with a message naming the model when it cannot give the estimate
 * (no such entry point, an implicit encoder for --iw, a discrete latent,
 * more than 2 dimensions for --quadrature): before the checkpoint and the
 * data are read. */
void estimate_check(Session *s, EstimateKind kind);

/* Runs the estimator o->kind on the first o->examples examples of split k
 * (session s has its parameters and that split loaded). */
void estimate_run(Session *s, int k, const EstimateOpts *o, Estimate *out);

/* The name of the estimator: "iw", "ais", "quadrature". */
const char *estimate_name(EstimateKind kind);

/* ,"estimator":..,"log_likelihood":..,"stderr":..,(settings),"seconds":..
 * (to splice into a JSON object) */
void estimate_json(FILE *f, const Estimate *e);
/* One line for a reader: the estimate, its standard error and settings. */
void estimate_print(FILE *f, const Estimate *e);

#endif
