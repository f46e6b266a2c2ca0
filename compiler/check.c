/* check.c - wiring, losses, the training schedule and unused definitions. */
#include "check.h"

#include <string.h>

typedef struct {
  Diag *d;
  Arena *a;
  Model *m;
  int clean; /* elaboration had no errors: an empty group is not a cascade */
  int clean_at_end; /* no errors at all: an uncalled network is really unused */
} Checker;

static const char *sig(Checker *C, Role *r) { return role_signature(C->a, r); }

/* ---- roles ------------------------------------------------------------ */

static Span target_span(Role *r, int i) {
  Span *s = r->draw_spans.items[i];
  return s ? *s : r->node->span;
}

static void check_domain(Checker *C, Role *r, int i, Var *v, Value *p) {
  if (p->kind != V_DIST || !v->is_data) return;
  Span at = target_span(r, i);
  DistFamily f = p->dist->fam;
  const char *dom = v->domain;
  if (f == D_BERNOULLI && !(strcmp(dom, "bit") == 0 || (v->has_range && v->lo >= 0 && v->hi <= 1)))
    diag_error(C->d, at, "a Bernoulli %s for %s, but %s is %s data%s; Bernoulli needs binary data or real data in [0, 1]",
               r->kind, v->name, v->name, dom,
               v->has_range ? arena_printf(C->a, " in [%g, %g]", v->lo, v->hi) : "");
  if (f == D_CATEGORICAL && strcmp(dom, "cat") != 0)
    diag_error(C->d, at, "a Categorical %s for %s, but %s is %s data; Categorical needs cat(K) data", r->kind,
               v->name, v->name, dom);
  if (f == D_CATEGORICAL && strcmp(dom, "cat") == 0 && p->dist->classes != v->classes)
    diag_error(C->d, at, "%s %s has %d classes, but data %s has %d", r->kind, sig(C, r), p->dist->classes,
               v->name, v->classes);
  if ((f == D_NORMAL || f == D_LAPLACE) && strcmp(dom, "cat") == 0)
    diag_error(C->d, at, "a continuous %s for categorical data %s; use Categorical", r->kind, v->name);
  if ((f == D_NORMAL || f == D_LAPLACE) && strcmp(dom, "bit") == 0)
    diag_warning(C->d, at, "a %s density for binary data %s; Bernoulli fits binary data",
                 f == D_NORMAL ? "Normal" : "Laplace", v->name);
}

static void check_produced(Checker *C, Role *r) {
  for (int i = 0; i < r->targets.len; i++) {
    Var *v = r->targets.items[i];
    Value *p = r->produced.items[i];
    if (!p || !v->shape_known) continue;
    Shape got = p->kind == V_DIST ? p->dist->shape : p->shape, joint;
    int fits = shape_eq(got, v->shape) ||
               (p->kind == V_DIST && shape_broadcast(got, v->shape, &joint) && shape_eq(joint, v->shape));
    const char *whose = v->is_data ? arena_printf(C->a, "data %s", v->name)
                        : v->encoder && v->encoder != r ? arena_printf(C->a, "%s from encoder %s", v->name, sig(C, v->encoder))
                                                        : v->name;
    if (!fits) {
      diag_error(C->d, target_span(r, i), "%s %s does not fit %s: expected %s, found %s", r->kind, sig(C, r), whose,
                 shape_str(C->a, v->shape), shape_str(C->a, got));
      continue;
    }
    int classes = p->kind == V_DIST ? p->dist->classes : p->classes;
    if (!v->is_data && classes != v->classes)
      diag_error(C->d, target_span(r, i), "%s %s gives %s as %s, but %s is %s", r->kind, sig(C, r), v->name,
                 classes ? arena_printf(C->a, "codes of %d classes", classes) : "real values", whose,
                 v->classes ? arena_printf(C->a, "codes of %d classes", v->classes) : "real");
    check_domain(C, r, i, v, p);
  }
}

static void check_latents(Checker *C) {
  for (int i = 0; i < C->m->vars.len; i++) {
    Var *v = C->m->vars.items[i];
    if (!v->is_data && !v->encoder && v->generator) /* with neither, its roles were reported */
      diag_error(C->d, v->generator ? v->generator->node->span : v->decl->span,
                 "latent %s has no encoder: infer it with encoder q(%s | ...)", v->name, v->name);
  }
}

static void check_role(Checker *C, Role *r) {
  Span at = r->node->span;
  int encoder = !strcmp(r->kind, "encoder");
  if (r->implicit && !encoder) {
    diag_error(C->d, at, "only an encoder can be implicit");
    return;
  }
  if (r->autoregressive && encoder) {
    diag_error(C->d, at, "an encoder cannot be autoregressive; a prior or a decoder can");
    return;
  }
  if (!strcmp(r->kind, "critic") || !r->elaborated) return;
  for (int i = 0; i < r->targets.len; i++) {
    Var *v = r->targets.items[i];
    if (!strcmp(r->kind, "encoder") && v->is_data)
      diag_error(C->d, at, "encoder %s infers %s, which is data; an encoder infers latents", sig(C, r), v->name);
    if (!strcmp(r->kind, "prior") && v->is_data)
      diag_error(C->d, at, "prior %s is over data %s; a prior is over latents, data comes from a decoder", sig(C, r),
                 v->name);
    Value *p = r->produced.items[i];
    if (r->implicit && p && p->kind == V_DIST)
      diag_error(C->d, target_span(r, i), "encoder %s is implicit, but draws %s from a distribution; define it with '=' or drop 'implicit'",
                 sig(C, r), v->name);
  }
  for (int i = 0; i < r->conds.len; i++) {
    Var *v = r->conds.items[i];
    if (!strcmp(r->kind, "prior") && v->is_data)
      diag_error(C->d, at, "prior %s depends on data %s; a prior only depends on latents", sig(C, r), v->name);
  }
  int is_flow = 0, complete = 1;
  for (int i = 0; i < r->produced.len; i++) {
    Value *p = r->produced.items[i];
    is_flow |= p && p->kind == V_DIST && p->dist->fam == D_FLOW;
    complete &= p != NULL;
  }
  if (r->self_reference && !r->autoregressive && !is_flow && complete)
    diag_error(C->d, at, "%s %s depends on its own variable; mark it autoregressive or make it a flow", r->kind,
               sig(C, r));
  if (r->autoregressive && !r->self_reference && complete)
    diag_warning(C->d, at, "%s %s is marked autoregressive but does not depend on its own variable", r->kind, sig(C, r));
  check_produced(C, r);
}

/* ---- losses ------------------------------------------------------------ */

static void check_loss(Checker *C, Loss *l) {
  Value *v = l->value;
  if (!v) return;
  Node *at = ast_kid(l->node, 0);
  if (val_is_number(v)) {
    diag_error(C->d, at->span, "loss %s is a constant; it must depend on the model", l->name);
    return;
  }
  if (v->kind != V_TENSOR) {
    diag_error(C->d, at->span, "loss %s must be a number per example, found %s", l->name, val_kind_name(v));
    return;
  }
  if (v->shape.rank > 1 || shape_size(v->shape) != 1)
    diag_error(C->d, at->span, "loss %s must be a scalar per example: expected [], found %s (sum(...) or mean(...) reduces it)",
               l->name, shape_str(C->a, v->shape));
}

/* ---- train ------------------------------------------------------------- */

/* Optimizer and schedule arguments are compile-time numbers: literals,
 * hypers and arithmetic on them. */
static Value *const_eval(Checker *C, Node *n) {
  switch (n->kind) {
  case N_INT: return val_int(C->a, n->ival, n->span);
  case N_FLOAT: return val_float(C->a, n->num, n->span);
  case N_BOOL: {
    Value *v = val_new(C->a, V_BOOL, n->span);
    v->i = n->ival;
    return v;
  }
  case N_STR: {
    Value *v = val_new(C->a, V_STR, n->span);
    v->s = n->str;
    return v;
  }
  case N_NAME:
    for (int i = 0; i < C->m->hypers.len; i++) {
      Hyper *h = C->m->hypers.items[i];
      if (strcmp(h->name, n->str) == 0) {
        h->used = 1;
        return h->value;
      }
    }
    diag_error(C->d, n->span, "unknown name '%s' (only hypers can be used here)", n->str);
    return NULL;
  case N_UNOP:
    if (n->str[0] == '-') {
      Value *x = const_eval(C, ast_kid(n, 0));
      if (!x) return NULL;
      if (x->kind == V_INT) return val_int(C->a, -x->i, n->span);
      if (x->kind == V_FLOAT) return val_float(C->a, -x->f, n->span);
    }
    break;
  case N_BINOP: {
    Value *x = const_eval(C, ast_kid(n, 0)), *y = x ? const_eval(C, ast_kid(n, 1)) : NULL;
    if (!y) return NULL;
    if (val_is_number(x) && val_is_number(y) && strchr("+-*/", n->str[0]) && !n->str[1]) {
      double p = val_number(x), q = val_number(y), r = 0;
      switch (n->str[0]) {
      case '+': r = p + q; break;
      case '-': r = p - q; break;
      case '*': r = p * q; break;
      case '/':
        if (q == 0) {
          diag_error(C->d, n->span, "division by zero");
          return NULL;
        }
        r = p / q;
        break;
      }
      if (x->kind == V_INT && y->kind == V_INT && n->str[0] != '/') return val_int(C->a, (long long)r, n->span);
      return val_float(C->a, r, n->span);
    }
    break;
  }
  default:
    break;
  }
  diag_error(C->d, n->span, "expected a number known at compile time");
  return NULL;
}

typedef struct {
  const char *name;
  double lo, hi;     /* allowed: lo < x (or lo <= x when closed_lo) and x < hi */
  int closed_lo, is_bool, is_int;
  const char *expect; /* the rule in words, for the message */
} ArgRule;

#define POSITIVE(n) {n, 0, 1e300, 0, 0, 0, "positive"}
#define NONNEG(n) {n, 0, 1e300, 1, 0, 0, "zero or positive"}
#define FRACTION(n) {n, 0, 1, 1, 0, 0, "in [0, 1)"}
#define COUNT(n) {n, 1, 1e15, 1, 0, 1, "a positive int"}
#define END {NULL, 0, 0, 0, 0, 0, NULL}

static const ArgRule sgd_args[] = {POSITIVE("lr"), FRACTION("momentum"), {"nesterov", 0, 0, 0, 1, 0, "true or false"},
                                   NONNEG("weight_decay"), END};
static const ArgRule adam_args[] = {POSITIVE("lr"), FRACTION("beta1"), FRACTION("beta2"), POSITIVE("eps"),
                                    NONNEG("weight_decay"), END};
static const ArgRule cosine_args[] = {NONNEG("min"), END};
static const ArgRule step_args[] = {COUNT("every"), {"gamma", 0, 1.0000001, 0, 0, 0, "in (0, 1]"}, END};
static const ArgRule exp_args[] = {{"gamma", 0, 1.0000001, 0, 0, 0, "in (0, 1]"}, END};
static const ArgRule warmup_args[] = {COUNT("steps"), END};
static const ArgRule ema_args[] = {{"decay", 0, 1, 0, 0, 0, "in (0, 1)"}, POSITIVE("eps"), END};
static const ArgRule no_args[] = {END};

static const char *rule_names(Checker *C, const ArgRule *rules) {
  const char *s = "";
  for (const ArgRule *r = rules; r->name; r++) s = arena_printf(C->a, "%s%s%s", s, *s ? ", " : "", r->name);
  return *s ? s : "no arguments";
}

static void check_schedule(Checker *C, Node *n);
static void check_codebook(Checker *C, Node *n);

/* Checks named arguments of an optimizer or schedule call against rules. */
static void check_args(Checker *C, Node *call, const char *what, const ArgRule *rules, int allow_schedule) {
  for (int i = 1; i < ast_nkids(call); i++) {
    Node *a = ast_kid(call, i);
    if (a->kind != N_NAMEDARG) {
      diag_error(C->d, a->span, "%s takes named arguments (%s)", what, rule_names(C, rules));
      continue;
    }
    for (int k = 1; k < i; k++)
      if (ast_kid(call, k)->kind == N_NAMEDARG && !strcmp(ast_kid(call, k)->str, a->str))
        diag_error(C->d, a->span, "%s: '%s' is given twice", what, a->str);
    if (allow_schedule && !strcmp(a->str, "schedule")) {
      check_schedule(C, ast_kid(a, 0));
      continue;
    }
    if (allow_schedule && !strcmp(a->str, "codebook")) {
      check_codebook(C, ast_kid(a, 0));
      continue;
    }
    const ArgRule *r = rules;
    while (r->name && strcmp(r->name, a->str)) r++;
    if (!r->name) {
      diag_error(C->d, a->span, "%s has no argument '%s' (it takes %s%s)", what, a->str, rule_names(C, rules),
                 allow_schedule ? ", schedule" : "");
      continue;
    }
    Value *v = const_eval(C, ast_kid(a, 0));
    if (!v) continue;
    int ok = r->is_bool ? v->kind == V_BOOL : val_is_number(v) && (!r->is_int || v->kind == V_INT);
    double x = ok && !r->is_bool ? val_number(v) : 0;
    if (ok && !r->is_bool) ok = (r->closed_lo ? x >= r->lo : x > r->lo) && x < r->hi;
    if (!ok)
      diag_error(C->d, a->span, "%s: '%s' must be %s, found %s", what, a->str, r->expect,
                 val_is_number(v) ? arena_printf(C->a, "%g", val_number(v)) : val_kind_name(v));
  }
}

static void check_schedule(Checker *C, Node *n) {
  static const struct { const char *name; const ArgRule *rules; } scheds[] = {
      {"constant", no_args}, {"cosine", cosine_args}, {"step", step_args}, {"exponential", exp_args},
      {"warmup", warmup_args}};
  if (n->kind == N_CALL && ast_kid(n, 0)->kind == N_NAME && !n->ival)
    for (size_t i = 0; i < sizeof scheds / sizeof *scheds; i++)
      if (!strcmp(ast_kid(n, 0)->str, scheds[i].name)) {
        check_args(C, n, scheds[i].name, scheds[i].rules, 0);
        if (!strcmp(scheds[i].name, "step") && ast_nkids(n) < 2)
          diag_error(C->d, n->span, "step needs every = N");
        return;
      }
  diag_error(C->d, n->span, "expected a schedule: constant(), cosine(min), step(every, gamma), exponential(gamma) or warmup(steps)");
}

/* codebook = ema(decay, eps): the step's codebooks follow the encoder by
 * exponential moving averages (entry.c finds them, vmrun updates them). */
static void check_codebook(Checker *C, Node *n) {
  if (n->kind == N_CALL && ast_kid(n, 0)->kind == N_NAME && !n->ival && !strcmp(ast_kid(n, 0)->str, "ema")) {
    check_args(C, n, "ema", ema_args, 0);
    return;
  }
  diag_error(C->d, n->span, "expected a codebook update: ema(decay = 0.99, eps = 1e-5)");
}

static void check_optimizer(Checker *C, Node *n) {
  static const struct { const char *name; const ArgRule *rules; } opts[] = {
      {"sgd", sgd_args}, {"adam", adam_args}, {"adamw", adam_args}};
  if (n->kind == N_CALL && ast_kid(n, 0)->kind == N_NAME && !n->ival)
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
      if (!strcmp(ast_kid(n, 0)->str, opts[i].name)) {
        check_args(C, n, opts[i].name, opts[i].rules, 1);
        return;
      }
  diag_error(C->d, n->span, "expected an optimizer: sgd(...), adam(...) or adamw(...)");
}

/* Marks the parameters of a group list in `mark` (one byte per param). */
static int select_groups(Checker *C, Node *groups, char *mark) {
  int ok = 1;
  for (int i = 0; i < ast_nkids(groups); i++) {
    Node *g = ast_kid(groups, i);
    if (model_select(C->m, g->str, mark)) continue;
    ok = 0;
    int exists = 0;
    for (int k = 0; k < C->m->roles.len && !exists; k++) exists = !strcmp(((Role *)C->m->roles.items[k])->name, g->str);
    for (int k = 0; k < C->m->nets.len && !exists; k++) exists = !strcmp(((Net *)C->m->nets.items[k])->name, g->str);
    if (exists && C->clean)
      diag_error(C->d, g->span, "group '%s' has no parameters to train", g->str);
    else if (!exists)
      diag_error(C->d, g->span, "no role, network or parameter is named '%s'", g->str);
  }
  return ok;
}

typedef struct {
  Node *step;
  char *mark;
} StepSel;

static const char *step_text(Checker *C, Node *step) {
  return arena_printf(C->a, "%s %s", step->num != 0 ? "maximize" : "minimize", step->str);
}

static const char *const setting_keys[] = {"batch", "epochs", "steps", "clip"};

/* batch, epochs, steps: positive ints; clip: a positive number.  `seen`
 * holds the settings met so far in the same block. */
static void check_setting(Checker *C, Node *it, Node **seen) {
  int k = 0;
  while (k < 4 && strcmp(setting_keys[k], it->str)) k++;
  if (k == 4) {
    diag_error(C->d, it->span, "unknown setting '%s'; expected batch, epochs, steps or clip", it->str);
    return;
  }
  if (seen[k]) {
    diag_error(C->d, it->span, "%s is set twice", it->str);
    return;
  }
  seen[k] = it;
  Value *v = const_eval(C, ast_kid(it, 0));
  if (!v) return;
  if (k < 3 && (v->kind != V_INT || v->i < 1))
    diag_error(C->d, ast_kid(it, 0)->span, "%s must be a positive int, found %s", it->str,
               v->kind == V_INT ? arena_printf(C->a, "%lld", v->i)
               : v->kind == V_FLOAT ? arena_printf(C->a, "%g", v->f) : val_kind_name(v));
  if (k == 3 && (!val_is_number(v) || val_number(v) <= 0))
    diag_error(C->d, ast_kid(it, 0)->span, "clip must be a positive number");
}

/* One stage (or a train block without stages): its steps, settings and freezes. */
static void check_stage(Checker *C, Node *stage) {
  int np = C->m->params.len;
  char *frozen = arena_alloc(C->a, (size_t)np + 1);
  Vec steps = {0};
  Node *seen[4] = {0};
  for (int i = 0; i < ast_nkids(stage); i++) {
    Node *it = ast_kid(stage, i);
    if (!it) continue;
    if (it->kind == N_FREEZE) {
      if (stage->kind != N_STAGE)
        diag_error(C->d, it->span, "freeze belongs in a stage: stage NAME { freeze ...; minimize ... }");
      select_groups(C, ast_kid(it, 0), frozen);
    } else if (it->kind == N_SETTING) {
      check_setting(C, it, seen);
    } else if (it->kind == N_STEP) {
      Loss *l = model_loss(C->m, it->str);
      if (!l) {
        const char *names = "";
        for (int k = 0; k < C->m->losses.len; k++)
          names = arena_printf(C->a, "%s%s%s", names, k ? ", " : "", ((Loss *)C->m->losses.items[k])->name);
        diag_error(C->d, it->span, "unknown loss '%s' (the model's losses: %s)", it->str, *names ? names : "none");
      } else {
        l->used = 1;
      }
      if (it->ival < 1) diag_error(C->d, it->span, "a step ratio must be at least 1");
      check_optimizer(C, ast_kid(it, 0));
      StepSel *s = arena_alloc(C->a, sizeof *s);
      s->step = it;
      s->mark = arena_alloc(C->a, (size_t)np + 1);
      if (select_groups(C, ast_kid(it, 1), s->mark)) vec_push(C->a, &steps, s);
    }
  }
  if (seen[1] && seen[2]) diag_error(C->d, seen[2]->span, "give epochs or steps, not both");
  int nsteps = 0;
  for (int i = 0; i < ast_nkids(stage); i++) nsteps += ast_kid(stage, i) && ast_kid(stage, i)->kind == N_STEP;
  if (!nsteps)
    diag_error(C->d, stage->span, "%s has no minimize or maximize step",
               stage->kind == N_STAGE ? arena_printf(C->a, "stage %s", stage->str) : "the train block");
  for (int i = 0; i < steps.len; i++) {
    StepSel *s = steps.items[i];
    for (int k = 0; k < np; k++)
      if (s->mark[k] && frozen[k]) {
        diag_error(C->d, s->step->span, "stage %s freezes %s, which this step trains", stage->str,
                   ((Param *)C->m->params.items[k])->name);
        break;
      }
    for (int j = 0; j < i; j++) {
      StepSel *o = steps.items[j];
      for (int k = 0; k < np; k++)
        if (s->mark[k] && o->mark[k]) {
          diag_error(C->d, s->step->span, "parameter %s is trained by two steps: %s and %s",
                     ((Param *)C->m->params.items[k])->name, step_text(C, o->step), step_text(C, s->step));
          break;
        }
    }
  }
}

static void check_train(Checker *C, Node *train) {
  if (!train) {
    diag_warning(C->d, C->m->node->span, "model %s has no train block", C->m->name);
    return;
  }
  int stages = 0;
  for (int i = 0; i < ast_nkids(train); i++) {
    Node *it = ast_kid(train, i);
    stages += it && it->kind == N_STAGE;
  }
  if (!stages) {
    check_stage(C, train);
    return;
  }
  for (int i = 0; i < ast_nkids(train); i++) {
    Node *it = ast_kid(train, i);
    if (it && (it->kind == N_STEP || it->kind == N_FREEZE)) {
      diag_error(C->d, it->span, "this train block has stages: put every step and freeze inside a stage");
      break;
    }
  }
  Vec names = {0};
  Node *seen[4] = {0}; /* settings outside the stages: defaults for each */
  for (int i = 0; i < ast_nkids(train); i++) {
    Node *it = ast_kid(train, i);
    if (!it) continue;
    if (it->kind == N_STAGE) {
      for (int k = 0; k < names.len; k++)
        if (!strcmp(names.items[k], it->str)) diag_error(C->d, it->span, "stage %s is defined twice", it->str);
      vec_push(C->a, &names, (void *)it->str);
      check_stage(C, it);
    } else if (it->kind == N_SETTING) {
      check_setting(C, it, seen);
    }
  }
}

/* ---- data sources -------------------------------------------------------- */

typedef struct {
  const char *name, *domain;
  int size;          /* elements per example */
  const char *args;  /* accepted named arguments */
} Synthetic;

static const Synthetic synthetics[] = {
    {"four_frames", "bit", 4, "n"},
    {"nine_pixels", "bit", 9, "n"},
    {"gaussian", "real", 2, "n cov mean std angle"},
    {"mixture", "real", 2, "n k radius std"},
};

static int word_in(const char *list, const char *w) {
  size_t n = strlen(w);
  for (const char *p = list; (p = strstr(p, w)); p += n)
    if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return 1;
  return 0;
}

/* synthetic.gaussian's mean = [x, y] and std = [s1, s2] (a list of two
 * numbers, written out or a list hyper) and angle = A (degrees). */
static void check_gaussian_arg(Checker *C, Node *a) {
  Node *e = ast_kid(a, 0);
  if (!strcmp(a->str, "angle")) {
    Value *v = const_eval(C, e);
    if (v && !val_is_number(v))
      diag_error(C->d, a->span, "gaussian: 'angle' must be a number: the degrees the axes of 'std' turn, "
                 "counterclockwise");
    return;
  }
  Value *item[2] = {NULL, NULL};
  int n = -1;
  if (e->kind == N_LIST) {
    n = ast_nkids(e);
    for (int i = 0; i < n && n == 2; i++)
      if (!(item[i] = const_eval(C, ast_kid(e, i)))) return;
  } else {
    Value *v = const_eval(C, e);
    if (!v) return;
    if (v->kind == V_LIST) {
      n = v->items.len;
      for (int i = 0; i < n && n == 2; i++) item[i] = v->items.items[i];
    }
  }
  int is_std = !strcmp(a->str, "std"), ok = n == 2;
  for (int i = 0; i < 2 && ok; i++) ok = val_is_number(item[i]) && (!is_std || val_number(item[i]) > 0);
  if (!ok && is_std)
    diag_error(C->d, a->span, "gaussian: 'std' must be a list of 2 positive numbers, [s1, s2]: the standard "
               "deviations along the two axes before they turn by 'angle'");
  else if (!ok)
    diag_error(C->d, a->span, "gaussian: 'mean' must be a list of 2 numbers, [x, y]");
}

static Node *named_arg(Node *call, const char *name) {
  for (int i = 1; i < ast_nkids(call); i++) {
    Node *a = ast_kid(call, i);
    if (a->kind == N_NAMEDARG && !strcmp(a->str, name)) return a;
  }
  return NULL;
}

/* Named arguments of a source: each known and a compile-time value. */
static void check_source_args(Checker *C, Node *call, const char *what, const char *known) {
  for (int i = 1; i < ast_nkids(call); i++) {
    Node *a = ast_kid(call, i);
    if (i == 1 && a->kind != N_NAMEDARG && !strcmp(what, "files")) continue;
    if (a->kind != N_NAMEDARG) {
      diag_error(C->d, a->span, "%s takes named arguments (%s)", what, known);
      continue;
    }
    if (!word_in(known, a->str)) {
      diag_error(C->d, a->span, "%s has no argument '%s' (it takes %s)", what, a->str, known);
      continue;
    }
    if (!strcmp(what, "gaussian") && (!strcmp(a->str, "mean") || !strcmp(a->str, "std") || !strcmp(a->str, "angle"))) {
      check_gaussian_arg(C, a);
      continue;
    }
    Value *v = const_eval(C, ast_kid(a, 0));
    if (!v) continue;
    if (!strcmp(a->str, "cov") && v->kind == V_STR && strcmp(v->s, "full") && strcmp(v->s, "diag")) {
      diag_error(C->d, a->span, "gaussian: 'cov' must be \"full\" (correlation 0.8) or \"diag\" (standard deviations "
                 "1 and 0.5), or give std = [s1, s2] and angle = A");
      continue;
    }
    int file_or_fraction = !strcmp(a->str, "valid") || !strcmp(a->str, "test");
    int ok = !strcmp(a->str, "train") || !strcmp(a->str, "labels") || !strcmp(a->str, "cov")
                 ? v->kind == V_STR
             : file_or_fraction ? v->kind == V_STR || (val_is_number(v) && val_number(v) > 0 && val_number(v) < 1)
             : !strcmp(a->str, "binarize") ? (val_is_number(v) && val_number(v) >= 0 && val_number(v) < 255) ||
                                                 (v->kind == V_STR && !strcmp(v->s, "dynamic"))
                                            : val_is_number(v) && val_number(v) > 0;
    if (!ok)
      diag_error(C->d, a->span, "%s: '%s' must be %s", what, a->str,
                 file_or_fraction ? "a file name or a fraction in (0, 1) of the training set"
                 : !strcmp(a->str, "binarize")
                     ? "a threshold in [0, 255) (pixels above it become 1) or \"dynamic\" (a fresh draw each epoch)"
                 : v->kind != V_STR && (!strcmp(a->str, "train") || !strcmp(a->str, "labels") || !strcmp(a->str, "cov"))
                     ? "a string"
                     : "a positive number");
  }
  if (!strcmp(what, "gaussian")) {
    Node *cov = named_arg(call, "cov"), *std = named_arg(call, "std"), *angle = named_arg(call, "angle");
    if (cov && (std || angle))
      diag_error(C->d, cov->span, "gaussian takes cov (one of two fixed shapes) or std and angle, not both");
    else if (angle && !std)
      diag_error(C->d, angle->span, "gaussian: 'angle' turns the axes of 'std'; give std = [s1, s2] too");
  }
}

static void check_data(Checker *C, Var *v) {
  Node *src = ast_kid(v->decl, 3);
  Node *call = src->kind == N_CALL ? src : NULL;
  Node *head = call ? ast_kid(call, 0) : src;
  if (call && call->ival) head = NULL;
  if (head && head->kind == N_NAME && !strcmp(head->str, "files") && call) {
    Node *dir = ast_kid(call, 1);
    if (!dir || dir->kind != N_STR) {
      diag_error(C->d, call->span, "files needs a directory or file name first: files(\"binarized-mnist\", ...)");
      return;
    }
    check_source_args(C, call, "files", "train valid test labels binarize");
    return;
  }
  if (head && head->kind == N_MEMBER && ast_kid(head, 0)->kind == N_NAME &&
      !strcmp(ast_kid(head, 0)->str, "synthetic")) {
    const Synthetic *s = NULL;
    for (size_t i = 0; i < sizeof synthetics / sizeof *synthetics; i++)
      if (!strcmp(synthetics[i].name, head->str)) s = &synthetics[i];
    if (!s) {
      diag_error(C->d, head->span, "unknown synthetic data set '%s'; expected four_frames, nine_pixels, gaussian or mixture",
                 head->str);
      return;
    }
    if (call) check_source_args(C, call, s->name, s->args);
    if (strcmp(v->domain, s->domain) != 0 || v->shape.rank != 1 || v->shape.d[0] != s->size) {
      long long size = s->size;
      diag_error(C->d, v->decl->span, "synthetic.%s gives %s%s, but data %s is declared %s%s", s->name, s->domain,
                 shape_str(C->a, shape_of(1, &size)), v->name, v->domain, shape_str(C->a, v->shape));
    }
    return;
  }
  diag_error(C->d, src->span, "expected a data source: files(\"DIR\", ...) or synthetic.NAME");
}

/* ---- unused ------------------------------------------------------------ */

static void check_unused(Checker *C) {
  for (int i = 0; i < C->m->hypers.len; i++) {
    Hyper *h = C->m->hypers.items[i];
    if (!h->used) diag_warning(C->d, h->node->span, "hyper %s is never used", h->name);
  }
  for (int i = 0; i < C->m->vars.len; i++) {
    Var *v = C->m->vars.items[i];
    if (v->is_data && !v->used) diag_warning(C->d, v->decl->span, "data %s is never used", v->name);
  }
  for (int i = 0; i < ast_nkids(C->m->node); i++) {
    Node *it = ast_kid(C->m->node, i);
    if (!it || !((it->kind == N_FN && it->ival) || (it->kind == N_ROLE && !strcmp(it->str, "critic")))) continue;
    int called = 0;
    for (int k = 0; k < C->m->nets.len; k++) called |= ((Net *)C->m->nets.items[k])->fn == it;
    if (!called && C->clean_at_end)
      diag_warning(C->d, it->span, "%s %s is never called", it->kind == N_FN ? "network" : "critic",
                   it->kind == N_FN ? it->str : it->str2);
  }
  if (C->m->train)
    for (int i = 0; i < C->m->losses.len; i++) {
      Loss *l = C->m->losses.items[i];
      if (!l->used) diag_warning(C->d, l->node->span, "loss %s is not used by any train step", l->name);
    }
}

void check_model(Diag *d, Arena *a, Model *m) {
  Checker C = {d, a, m, diag_errors(d) == 0, 0};
  for (int i = 0; i < m->vars.len; i++) {
    Var *v = m->vars.items[i];
    if (v->is_data && v->shape_known) check_data(&C, v);
  }
  check_latents(&C);
  for (int i = 0; i < m->roles.len; i++) check_role(&C, m->roles.items[i]);
  for (int i = 0; i < m->losses.len; i++) check_loss(&C, m->losses.items[i]);
  check_train(&C, m->train);
  C.clean_at_end = diag_errors(d) == 0;
  check_unused(&C);
}
