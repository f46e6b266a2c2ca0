/* diff.h - vmc diff: a semantic diff of two models (.vm or .vmx) that a
 * reviewer can read: hypers, parameters added / removed / reshaped, roles
 * and losses changed, the training schedule changed; then whether a
 * checkpoint of A can be loaded into B. */
#ifndef VML_DIFF_H
#define VML_DIFF_H

#include <stdio.h>

#include "vmx.h"

/* Prints the differences of a and b to out; returns 0 when they are the
 * same model, 1 when they differ (the exit status of vmc diff). */
int diff_models(FILE *out, const Vmx *a, const Vmx *b, const char *name_a, const char *name_b);

#endif
