/* vmx.c - the .vmx writer and reader (being written: see vmx.h). */
#include "vmx.h"

#include <string.h>

Vmx *vmx_from_model(Arena *a, const Diag *d, const Program *prog, const Model *m, Vec graphs) {
  (void)d;
  (void)prog;
  Vmx *x = arena_alloc(a, sizeof *x);
  x->version = VMX_VERSION;
  x->model = m->name;
  x->graphs = graphs;
  return x;
}

void vmx_write(FILE *out, const Vmx *x) { fprintf(out, "vmx %d\nmodel %s\n", x->version, x->model); }

Vmx *vmx_read(Arena *a, const char *path, char *err, size_t errlen) {
  (void)a;
  snprintf(err, errlen, "%s: reading .vmx files is not written yet", path);
  return NULL;
}
