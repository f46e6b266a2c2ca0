/* elab.h - the elaborator's internals, shared by shape.c (running a model
 * at compile time over shapes, and over graph nodes when lowering) and
 * entry.c (which builds each entry point's graph).  Not a public header:
 * the module's interface is shape.h. */
#ifndef VML_ELAB_H
#define VML_ELAB_H

#include "builtin.h"
#include "import.h"
#include "lower.h"
#include "model.h"

typedef struct Binding {
  const char *name;
  Value *v;
  int *used; /* marks hypers, data and networks as used */
  struct Binding *next;
} Binding;

typedef struct Scope {
  Binding *head;
  struct Scope *parent;
} Scope;

typedef struct Frame {
  Module *mod;        /* free names resolve in this module */
  int in_model;       /* the model's hypers, params and networks are visible */
  Scope *scope;
  const char *prefix; /* parameter names start with it ("" at model level) */
  int reuse;          /* a later call of a shared network: parameters exist */
  Value *ret;
  int returned;
  Role *role;         /* elaborating this role's body */
  int in_loop;
  int loss;           /* a loss expression: log, KL, E and samples allowed */
  Node *body;         /* the function or role body being run */
  int failed;         /* an error in a function body: stop it there */
} Frame;

typedef struct {
  const char *key;
  int n;
} Counter;

typedef struct {
  Diag *d;
  Arena *a;
  Program *prog;
  Model *m;
  Scope model_scope;
  Vec counters;
  Vec names; /* pairs: the defining node, what it defines (claim()) */
  Vec early; /* names used before their definition (already reported) */
  Span last_note;
  int depth;
  int unrolled;
  /* lowering one entry point (L == NULL while only checking) */
  Lower *L;
  int *var_node;     /* per model variable: its node in this graph, or -1 */
  Value ***role_out; /* per role, per target: what it produced in this graph */
  int **role_sample; /* per role, per target: its sample node, or -1 */
  Scope **role_scope;
  char *role_state;  /* 0 not run, 1 running, 2 done */
} Elab;

void elab_bind(Elab *E, Scope *s, const char *name, Value *v, int *used);
Value *elab_eval(Elab *E, Frame *F, Node *n);
int elab_var_index(Elab *E, Var *v);
int elab_role_index(Elab *E, Role *r);
/* A variable as a tensor value (with its node when lowering). */
Value *elab_var_tensor(Elab *E, Var *v, Span at);
/* Lowering only: */
void elab_run_role(Elab *E, Role *r);          /* runs a role's body in the graph being built */
int elab_var_node(Elab *E, Var *v);            /* a variable's node: input, or from its encoder */
int elab_dref_node(Elab *E, Role *r, Var *only, int want, Span at); /* 0 log, 1 sample, 2 entropy, 3 mean */
int elab_role_draw(Elab *E, Role *r, int t, Span at);
void elab_restore_counters(Elab *E, const Vec *snap);
int elab_var_input(Elab *E, Var *v);           /* makes a variable an input of the graph */
void elab_loss_frame(Elab *E, Frame *F);       /* the frame losses are evaluated in */

#endif
