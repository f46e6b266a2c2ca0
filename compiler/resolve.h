/* resolve.h - name resolution before elaboration: duplicate definitions,
 * what a module may contain, builtins shadowed, and every free name in
 * every function body (also those no model calls) defined somewhere. */
#ifndef VML_RESOLVE_H
#define VML_RESOLVE_H

#include "import.h"

void resolve_program(Diag *d, Arena *a, Program *prog);

#endif
