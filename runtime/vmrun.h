/* vmrun.h - the vmrun program: its options and commands.
 *
 *   vmrun train [FILE.vmx] [--data DIR] [--epochs N | --steps N] [--batch N]
 *               [--lr X] [--seed N] [--out DIR] [--threads N]
 *   vmrun train --resume RUN [--epochs N | --steps N] [--data DIR] [--threads N]
 *   vmrun eval [FILE.vmx] [--run DIR] [--data DIR] [--split test] [--json]
 *              [--batch N] [--threads N]
 *
 * See docs/vmrun.1. */
#ifndef VML_VMRUN_H
#define VML_VMRUN_H

#include <stdint.h>

/* Every command's options; 0 or NULL: not given. */
typedef struct {
  const char *cmd, *file, *data, *out, *run, *split, *resume;
  long epochs, steps, batch, threads;
  double lr; /* <= 0: not given */
  uint64_t seed;
  int have_seed, json;
  long examples;               /* eval, encode, plot: only the split's first N */
  long iw;                     /* eval --iw K */
  int ais, quadrature;         /* eval --ais, --quadrature */
  long ais_steps, chains, leapfrog, grid;
  double step_size;            /* <= 0: not given */
  long n, points;              /* sample/reconstruct/interpolate: how many */
  const char *output;          /* -o FILE */
  int no_noise, sample;        /* sample --no-noise, encode --sample */
  const char *plot;            /* plot latent|metrics */
} Opts;

int cmd_train(const Opts *o);       /* train.c */
int cmd_eval(const Opts *o);        /* main.c */
int cmd_sample(const Opts *o);      /* picture.c */
int cmd_reconstruct(const Opts *o); /* picture.c */
int cmd_interpolate(const Opts *o); /* picture.c */
int cmd_encode(const Opts *o);      /* latent.c */
int cmd_plot(const Opts *o);        /* latent.c */

/* Sets the runtime's and the BLAS's threads (0: as many as CPUs). */
void vmrun_threads(long n);

/* The newest run under runs/ of the current directory (by the time of its
 * checkpoint); exits when there is none. */
char *vmrun_newest_run(void);

/* The .vmx a run was trained with (its copy in the run directory). */
char *vmrun_run_vmx(const char *run);

#endif
