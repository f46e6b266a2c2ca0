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

typedef struct {
  const char *cmd, *file, *data, *out, *run, *split, *resume;
  long epochs, steps, batch, threads; /* 0: not given */
  double lr;                          /* <= 0: not given */
  uint64_t seed;
  int have_seed, json;
} Opts;

int cmd_train(const Opts *o);
int cmd_eval(const Opts *o);

/* Sets the runtime's and the BLAS's threads (0: as many as CPUs). */
void vmrun_threads(long n);

/* The newest run under runs/ of the current directory (by the time of its
 * checkpoint); exits when there is none. */
char *vmrun_newest_run(void);

/* The .vmx a run was trained with (its copy in the run directory). */
char *vmrun_run_vmx(const char *run);

#endif
