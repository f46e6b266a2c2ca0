/* model.c - look-ups in a checked model and the --dump-model printer. */
#include "model.h"

#include <string.h>

Var *model_var(const Model *m, const char *name) {
  for (int i = 0; i < m->vars.len; i++) {
    Var *v = m->vars.items[i];
    if (strcmp(v->name, name) == 0) return v;
  }
  return NULL;
}

Loss *model_loss(const Model *m, const char *name) {
  for (int i = 0; i < m->losses.len; i++) {
    Loss *l = m->losses.items[i];
    if (strcmp(l->name, name) == 0) return l;
  }
  return NULL;
}

int model_select(const Model *m, const char *g, char *mark) {
  size_t n = strlen(g);
  int count = 0;
  for (int i = 0; i < m->params.len; i++) {
    const char *name = ((Param *)m->params.items[i])->name;
    if (strncmp(name, g, n) == 0 && (name[n] == '\0' || name[n] == '.')) {
      mark[i] = 1;
      count++;
    }
  }
  return count;
}

static const char *var_list(Arena *a, const Vec *vars) {
  const char *s = "";
  for (int i = 0; i < vars->len; i++)
    s = arena_printf(a, "%s%s%s", s, i ? ", " : "", ((Var *)vars->items[i])->name);
  return s;
}

const char *role_signature(Arena *a, const Role *r) {
  if (r->conds.len)
    return arena_printf(a, "%s(%s | %s)", r->name, var_list(a, &r->targets), var_list(a, &r->conds));
  return arena_printf(a, "%s(%s)", r->name, var_list(a, &r->targets));
}

static const char *family_name(DistFamily f) {
  static const char *names[] = {"Normal", "Laplace", "Bernoulli", "Categorical", "flow"};
  return names[f];
}

static void dump_value(FILE *out, Arena *a, const Value *v) {
  switch (v->kind) {
  case V_INT: fprintf(out, "%lld", v->i); break;
  case V_FLOAT: fprintf(out, "%.9g", v->f); break;
  case V_BOOL: fputs(v->i ? "true" : "false", out); break;
  case V_STR: fprintf(out, "\"%s\"", v->s); break;
  case V_LIST:
    fputc('[', out);
    for (int i = 0; i < v->items.len; i++) {
      if (i) fputs(", ", out);
      dump_value(out, a, v->items.items[i]);
    }
    fputc(']', out);
    break;
  case V_TENSOR:
    fputs(shape_str(a, v->shape), out);
    if (v->classes) fprintf(out, " codes of %d", v->classes);
    break;
  case V_DIST:
    fprintf(out, "%s %s", family_name(v->dist->fam), shape_str(a, v->dist->shape));
    if (v->dist->fam == D_FLOW) fprintf(out, " of %s", family_name(v->dist->base->dist->fam));
    if (v->dist->classes) fprintf(out, " of %d classes", v->dist->classes);
    break;
  default: fputs(val_kind_name(v), out);
  }
}

static void dump_train(FILE *out, Arena *a, const Model *m, const Node *block, int depth) {
  char *mark = arena_alloc(a, (size_t)m->params.len + 1);
  for (int i = 0; i < ast_nkids(block); i++) {
    const Node *it = ast_kid(block, i);
    if (!it) continue;
    fprintf(out, "%*s", 2 * depth, "");
    switch (it->kind) {
    case N_STAGE:
      fprintf(out, "stage %s\n", it->str);
      dump_train(out, a, m, it, depth + 1);
      break;
    case N_SETTING:
      fprintf(out, "%s %s\n", it->str, ast_text(a, ast_kid(it, 0)));
      break;
    case N_STEP:
    case N_FREEZE: {
      const Node *groups = ast_kid(it, it->kind == N_STEP ? 1 : 0);
      memset(mark, 0, (size_t)m->params.len);
      for (int k = 0; k < ast_nkids(groups); k++) model_select(m, ast_kid(groups, k)->str, mark);
      int n = 0;
      for (int k = 0; k < m->params.len; k++) n += mark[k];
      if (it->kind == N_STEP)
        fprintf(out, "%lld× %s %s with %s over ", it->ival, it->num != 0 ? "maximize" : "minimize", it->str,
                ast_text(a, ast_kid(it, 0)));
      else
        fputs("freeze ", out);
      for (int k = 0; k < ast_nkids(groups); k++) fprintf(out, "%s%s", k ? ", " : "", ast_kid(groups, k)->str);
      fprintf(out, " (%d parameter tensor%s)\n", n, n == 1 ? "" : "s");
      break;
    }
    default:
      break;
    }
  }
}

void model_dump(FILE *out, Arena *a, const Diag *d, const Model *m) {
  (void)d;
  fprintf(out, "model %s\n", m->name);
  for (int i = 0; i < m->hypers.len; i++) {
    Hyper *h = m->hypers.items[i];
    fprintf(out, "  hyper %s = ", h->name);
    dump_value(out, a, h->value);
    fputs(h->overridden ? "  (-D)\n" : "\n", out);
  }
  for (int i = 0; i < m->vars.len; i++) {
    Var *v = m->vars.items[i];
    fprintf(out, "  %s %s : ", v->is_data ? "data" : "latent", v->name);
    if (v->is_data) fputs(v->domain, out);
    if (v->is_data && v->classes) fprintf(out, "(%d)", v->classes);
    fputs(v->shape_known ? shape_str(a, v->shape) : "[?]", out);
    if (!v->is_data && v->classes) fprintf(out, " codes of %d", v->classes);
    if (v->has_range) fprintf(out, " in [%g, %g]", v->lo, v->hi);
    fputc('\n', out);
  }
  long long total = 0;
  for (int i = 0; i < m->params.len; i++) {
    Param *p = m->params.items[i];
    fprintf(out, "  param %s %s %s\n", p->name, shape_str(a, p->shape), p->init);
    total += shape_size(p->shape);
  }
  fprintf(out, "  parameters: %d tensors, %lld numbers\n", m->params.len, total);
  for (int i = 0; i < m->roles.len; i++) {
    Role *r = m->roles.items[i];
    if (!strcmp(r->kind, "critic")) continue;
    fprintf(out, "  %s %s%s%s\n", r->kind, role_signature(a, r), r->implicit ? " implicit" : "",
            r->autoregressive ? " autoregressive" : "");
    for (int k = 0; k < r->targets.len; k++) {
      Var *v = r->targets.items[k];
      Value *p = r->produced.items[k];
      fprintf(out, "    %s %s ", v->name, p && p->kind == V_DIST ? "~" : "=");
      if (p)
        dump_value(out, a, p);
      else
        fputs("?", out);
      if (p && p->kind == V_DIST && v->shape_known && !shape_eq(p->dist->shape, v->shape))
        fprintf(out, " broadcast to %s", shape_str(a, v->shape));
      fputc('\n', out);
    }
  }
  for (int i = 0; i < m->nets.len; i++) {
    Net *n = m->nets.items[i];
    fprintf(out, "  %s %s: %d parameter tensor%s, shared by every call\n",
            n->fn->kind == N_ROLE ? "critic" : "network", n->name, n->nparams, n->nparams == 1 ? "" : "s");
  }
  for (int i = 0; i < m->losses.len; i++) {
    Loss *l = m->losses.items[i];
    fprintf(out, "  loss %s ", l->name);
    if (l->value)
      dump_value(out, a, l->value);
    else
      fputs("?", out);
    fputc('\n', out);
  }
  if (m->train) {
    fputs("  train\n", out);
    dump_train(out, a, m, m->train, 2);
  }
}
