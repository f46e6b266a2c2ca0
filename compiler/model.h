/* model.h - a checked model: what elaboration (shape.c) found and the later
 * passes (check.c, the --dump-model printer, lowering) read. */
#ifndef VML_MODEL_H
#define VML_MODEL_H

#include "value.h"

typedef struct Role Role;

typedef struct {
  const char *name;
  Node *node;       /* N_BIND */
  Value *value;
  int used, overridden;
} Hyper;

/* A random variable: data (observed) or latent. */
typedef struct {
  const char *name;
  Node *decl;       /* N_DATA, or the role that first names a latent */
  int is_data;
  const char *domain; /* data: "bit", "real", "cat" */
  int classes;        /* cat(K) data, or latent codes */
  int has_range;
  double lo, hi;
  Shape shape;
  int shape_known;
  Role *encoder;      /* inference side */
  Role *generator;    /* prior or decoder producing it */
  int used;
} Var;

typedef struct {
  const char *name; /* q.h.dense0.W */
  Shape shape;
  const char *init; /* "glorot", "uniform(-0.0078125, 0.0078125)" */
  Span span;
  int frozen;       /* scratch for check.c */
} Param;

struct Role {
  Node *node;        /* N_ROLE */
  const char *kind;  /* encoder decoder prior critic */
  const char *name;  /* the letter */
  Vec targets;       /* Var* (critic: none) */
  Vec conds;         /* Var* */
  Vec produced;      /* per target: V_DIST, V_TENSOR (deterministic) or NULL */
  Vec draw_spans;    /* per target: Span* of the statement defining it */
  void *locals;      /* the body's scope, for q.h in losses */
  int implicit, autoregressive, self_reference;
  int first_param, nparams; /* its parameters are params[first_param ..] */
  int elaborated;
  Vec counters;      /* the naming counters when it was elaborated (lowering replays them) */
};

typedef struct {
  const char *name;
  Node *node;   /* N_LOSS */
  Value *value; /* its per-example value */
  int used;
  Vec counters; /* as for a role */
} Loss;

typedef struct {
  const char *name;
  Node *fn;     /* N_FN (net) or N_ROLE (critic) */
  int called, failed;
  int first_param, nparams;
  Vec arg_shapes; /* Value* of the first call's arguments */
} Net;

typedef struct {
  const char *name;
  Node *node;   /* N_MODEL */
  Vec hypers;   /* Hyper* */
  Vec vars;     /* Var* */
  Vec params;   /* Param* */
  Vec roles;    /* Role* */
  Vec losses;   /* Loss* */
  Vec nets;     /* Net* */
  Node *train;
  void *scope;  /* the elaborator's model scope, for lowering */
} Model;

Var *model_var(const Model *m, const char *name);
Loss *model_loss(const Model *m, const char *name);
/* Marks (one byte per parameter) those a group selects: the parameter
 * named g, and those named g.<anything>.  Returns how many it selected. */
int model_select(const Model *m, const char *group, char *mark);

/* "p(x | z)" */
const char *role_signature(Arena *a, const Role *r);

/* The readable dump behind vmc --dump-model. */
void model_dump(FILE *out, Arena *a, const Diag *d, const Model *m);

#endif
