/* resolve.c - static name checks over the syntax tree of every module. */
#include "resolve.h"

#include <string.h>

#include "builtin.h"

/* Names a role or function body may use without defining them itself. */
static const char *const loss_words[] = {"mean", "sample", "entropy"};
static const char *const init_words[] = {"glorot", "he", "zeros", "ones", "normal", "uniform", "const"};

typedef struct {
  Diag *d;
  Arena *a;
  Module *mod;
  Node *model; /* the enclosing model, or NULL */
  Vec defined; /* names defined in the body being checked */
} Resolver;

static int in_vec(const Vec *v, const char *name) {
  for (int i = 0; i < v->len; i++)
    if (strcmp(v->items[i], name) == 0) return 1;
  return 0;
}

static int in_list(const char *const *list, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i], name) == 0) return 1;
  return 0;
}

/* Every name a statement list defines, anywhere in it (flow-insensitive:
 * the elaborator reports use before definition). */
static void collect_defs(Resolver *R, Node *n) {
  if (!n) return;
  switch (n->kind) {
  case N_ASSIGN:
    for (int i = 0; i < ast_nkids(ast_kid(n, 0)); i++) vec_push(R->a, &R->defined, (void *)ast_kid(ast_kid(n, 0), i)->str);
    break;
  case N_DRAW:
  case N_PARAMDECL:
  case N_FOR:
    vec_push(R->a, &R->defined, (void *)n->str);
    break;
  default:
    break;
  }
  if (n->kind == N_BLOCK || n->kind == N_FOR || n->kind == N_IF)
    for (int i = 0; i < ast_nkids(n); i++) collect_defs(R, ast_kid(n, i));
}

static int model_defines(Node *model, const char *name) {
  for (int i = 0; model && i < ast_nkids(model); i++) {
    Node *it = ast_kid(model, i);
    if (!it) continue;
    if ((it->kind == N_FN || it->kind == N_DATA || it->kind == N_PARAMDECL || it->kind == N_LOSS) &&
        strcmp(it->str, name) == 0)
      return 1;
    if (it->kind == N_ROLE) {
      if (strcmp(it->str2, name) == 0) return 1;
      for (int side = 0; side < 2; side++) {
        Node *l = ast_kid(it, side);
        if (l && l->kind == N_LIST)
          for (int k = 0; k < ast_nkids(l); k++)
            if (strcmp(ast_kid(l, k)->str, name) == 0) return 1;
      }
    }
    if (it->kind == N_HYPER)
      for (int k = 0; k < ast_nkids(it); k++)
        if (strcmp(ast_kid(it, k)->str, name) == 0) return 1;
  }
  return 0;
}

static int known(Resolver *R, const char *name) {
  if (in_vec(&R->defined, name) || builtin_find(name) >= 0) return 1;
  for (int i = 0; i < ast_nkids(R->mod->file); i++) {
    Node *it = ast_kid(R->mod->file, i);
    if (it && it->kind == N_FN && strcmp(it->str, name) == 0) return 1;
  }
  for (int i = 0; i < R->mod->imports.len; i++)
    if (strcmp(((ImportRef *)R->mod->imports.items[i])->alias, name) == 0) return 1;
  return model_defines(R->model, name);
}

static void check_names(Resolver *R, Node *n) {
  if (!n) return;
  switch (n->kind) {
  case N_NAME:
    if (!known(R, n->str)) diag_error(R->d, n->span, "unknown name '%s'", n->str);
    return;
  case N_MEMBER: /* only the object is a free name; modules are checked later */
    check_names(R, ast_kid(n, 0));
    return;
  case N_NAMEDARG:
    check_names(R, ast_kid(n, 0));
    return;
  case N_SAMPLEARG: /* z ~ q(z | x): the elaborator checks distribution references */
  case N_LOGP:
  case N_KL:
    return;
  case N_PARAMDECL: {
    check_names(R, ast_kid(n, 0));
    Node *init = ast_kid(n, 1);
    if (init && init->kind == N_NAME) return; /* an initializer's name: checked when elaborated */
    if (init && init->kind == N_CALL && ast_kid(init, 0)->kind == N_NAME &&
        in_list(init_words, 7, ast_kid(init, 0)->str)) {
      for (int i = 1; i < ast_nkids(init); i++) check_names(R, ast_kid(init, i));
      return;
    }
    check_names(R, init);
    return;
  }
  case N_CALL: {
    Node *c = ast_kid(n, 0);
    if (c->kind == N_NAME && in_list(loss_words, 3, c->str) && !known(R, c->str)) {
      for (int i = 1; i < ast_nkids(n); i++) check_names(R, ast_kid(n, i));
      return;
    }
    if (n->ival) return; /* p(x | z): a distribution reference */
    if (c->kind == N_NAME && in_list(loss_words, 3, c->str) && ast_nkids(n) == 2 &&
        ast_kid(n, 1)->kind == N_CALL)
      return; /* mean(p(z)) */
    break;
  }
  case N_FPARAM:
    check_names(R, ast_kid(n, 1)); /* the default; the pattern binds */
    return;
  case N_SHAPE:
    for (int i = 0; i < ast_nkids(n); i++) check_names(R, ast_kid(n, i));
    return;
  default:
    break;
  }
  for (int i = 0; i < ast_nkids(n); i++) check_names(R, ast_kid(n, i));
}

static void check_fn(Resolver *R, Node *fn) {
  R->defined.len = 0;
  Node *params = ast_kid(fn, 0);
  for (int i = 0; i < ast_nkids(params); i++) {
    Node *p = ast_kid(params, i);
    if (in_vec(&R->defined, p->str))
      diag_error(R->d, p->span, "parameter %s of %s is named twice", p->str, fn->kind == N_FN ? fn->str : fn->str2);
    vec_push(R->a, &R->defined, (void *)p->str);
    Node *pat = ast_kid(p, 0);
    for (int k = 0; k < ast_nkids(pat); k++)
      if (ast_kid(pat, k)->kind == N_NAME) vec_push(R->a, &R->defined, (void *)ast_kid(pat, k)->str);
  }
  Node *body = ast_kid(fn, fn->kind == N_FN ? 1 : 2);
  collect_defs(R, body);
  check_names(R, params);
  check_names(R, body);
}

static void check_role(Resolver *R, Node *role) {
  if (!strcmp(role->str, "critic")) {
    check_fn(R, role);
    return;
  }
  R->defined.len = 0;
  collect_defs(R, ast_kid(role, 2));
  check_names(R, ast_kid(role, 2));
}

static void check_unique(Resolver *R, Vec *seen, Node *item, const char *name, const char *what) {
  for (int i = 0; i < seen->len; i++) {
    Node *o = seen->items[i];
    const char *oname = o->kind == N_ROLE ? o->str2 : o->str;
    if (strcmp(oname, name) == 0) {
      diag_error(R->d, item->span, "%s %s is already defined", what, name);
      diag_note(R->d, o->span, "the first definition is here");
      return;
    }
  }
  vec_push(R->a, seen, item);
}

static void check_builtin_name(Resolver *R, Node *item, const char *name) {
  if (builtin_find(name) >= 0)
    diag_error(R->d, item->span, "%s is a builtin; give your %s another name", name,
               item->kind == N_FN ? (item->ival ? "network" : "function") : "definition");
}

static void check_model(Resolver *R, Node *model) {
  R->model = model;
  Vec seen = {0};
  for (int i = 0; i < ast_nkids(model); i++) {
    Node *it = ast_kid(model, i);
    if (!it) continue;
    switch (it->kind) {
    case N_FN:
      check_builtin_name(R, it, it->str);
      check_unique(R, &seen, it, it->str, it->ival ? "network" : "function");
      check_fn(R, it);
      break;
    case N_ROLE:
      if (!strcmp(it->str, "critic")) {
        check_builtin_name(R, it, it->str2);
        check_unique(R, &seen, it, it->str2, "critic");
      }
      check_role(R, it);
      break;
    case N_PARAMDECL:
      check_unique(R, &seen, it, it->str, "parameter");
      R->defined.len = 0;
      check_names(R, it);
      break;
    case N_LOSS:
    case N_DATA:
      R->defined.len = 0;
      if (it->kind == N_LOSS) {
        check_names(R, ast_kid(it, 0));
      } else {
        check_names(R, ast_kid(it, 0));
        check_names(R, ast_kid(it, 1));
        check_names(R, ast_kid(it, 2));
      }
      break;
    case N_HYPER:
      R->defined.len = 0;
      for (int k = 0; k < ast_nkids(it); k++) check_names(R, ast_kid(ast_kid(it, k), 0));
      break;
    default:
      break;
    }
  }
  R->model = NULL;
}

void resolve_program(Diag *d, Arena *a, Program *prog) {
  Resolver R = {d, a, NULL, NULL, {0}};
  for (int m = 0; m < prog->modules.len; m++) {
    R.mod = prog->modules.items[m];
    int is_main = R.mod == prog->main;
    Vec seen = {0};
    for (int i = 0; i < ast_nkids(R.mod->file); i++) {
      Node *it = ast_kid(R.mod->file, i);
      if (!it) continue;
      if (it->kind == N_MODEL) {
        if (!is_main) {
          diag_error(d, it->span, "module %s defines a model; a module may only define fn and net", R.mod->name);
          continue;
        }
        check_unique(&R, &seen, it, it->str, "model");
        check_model(&R, it);
      } else if (it->kind == N_FN) {
        check_builtin_name(&R, it, it->str);
        check_unique(&R, &seen, it, it->str, it->ival ? "network" : "function");
        check_fn(&R, it);
      }
    }
  }
}
