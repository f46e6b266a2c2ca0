/* diff.c - vmc diff (being written: see diff.h). */
#include "diff.h"

#include <string.h>

int diff_models(FILE *out, const Vmx *a, const Vmx *b, const char *name_a, const char *name_b) {
  (void)name_a;
  (void)name_b;
  int same = !strcmp(a->model, b->model);
  if (!same) fprintf(out, "model %s -> %s\n", a->model, b->model);
  return !same;
}
