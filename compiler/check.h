/* check.h - role and wiring checks on an elaborated model: each role's
 * variables against their declarations (shape, domain, classes), losses
 * are scalars, the train schedule (losses, optimizers, groups, settings,
 * stages) is well formed, and unused hypers, data and networks warned. */
#ifndef VML_CHECK_H
#define VML_CHECK_H

#include "model.h"

void check_model(Diag *d, Arena *a, Model *m);

#endif
