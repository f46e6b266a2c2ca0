/* shape.c - elaboration and static shape inference.
 *
 * The model is run at compile time over shapes instead of numbers: each
 * function call is inlined with its own frame, `for` loops are unrolled,
 * `param` statements create parameters named by the call path (see
 * docs/LANGUAGE.md, "Parameter names"), and roles are elaborated in the
 * order their variables become known.  What comes out is a Model. */
#include "shape.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elab.h"

enum { MAX_DEPTH = 64, MAX_ARGS = 64, MAX_UNROLL = 100000 };

/* Binding, Scope, Frame, Counter and Elab are in elab.h. */

/* Bound to a name whose definition failed: later uses stay silent, so one
 * mistake gives one error. */
static Value poison;
static void exec_block(Elab *E, Frame *F, Node *block);
static Value *eval_call(Elab *E, Frame *F, Node *call, const char *hint);
static int eval_args(Elab *E, Frame *F, Node *call, Arg *args);
static int claim(Elab *E, const char *name, Node *at, const char *what);

/* ---- scopes ---------------------------------------------------------- */

int elab_role_index(Elab *E, Role *r) {
  for (int i = 0; i < E->m->roles.len; i++)
    if (E->m->roles.items[i] == r) return i;
  return -1;
}

int elab_var_index(Elab *E, Var *v) {
  for (int i = 0; i < E->m->vars.len; i++)
    if (E->m->vars.items[i] == v) return i;
  return -1;
}


void elab_bind(Elab *E, Scope *s, const char *name, Value *v, int *used) {
  for (Binding *b = s->head; b; b = b->next)
    if (strcmp(b->name, name) == 0) {
      b->v = v;
      b->used = used;
      return;
    }
  Binding *b = arena_alloc(E->a, sizeof *b);
  b->name = name;
  b->v = v;
  b->used = used;
  b->next = s->head;
  s->head = b;
}

static Binding *find_in(Scope *s, const char *name) {
  for (; s; s = s->parent)
    for (Binding *b = s->head; b; b = b->next)
      if (strcmp(b->name, name) == 0) return b;
  return NULL;
}

static Node *find_fn(Node *items, const char *name) {
  for (int i = 0; i < ast_nkids(items); i++) {
    Node *it = ast_kid(items, i);
    if (it && it->kind == N_FN && strcmp(it->str, name) == 0) return it;
  }
  return NULL;
}

static Value *func_value(Elab *E, Node *fn, Module *mod, int model_local, Span at) {
  Value *v = val_new(E->a, V_FUNC, at);
  v->fn = fn;
  v->mod = mod;
  v->s = fn->kind == N_ROLE ? fn->str2 : fn->str;
  v->i = model_local;
  return v;
}

/* Free names: locals, then the model, then the module, its imports and
 * the builtins. */
static Value *lookup(Elab *E, Frame *F, const char *name, Span at) {
  Binding *b = find_in(F->scope, name);
  if (!b && F->in_model) b = find_in(&E->model_scope, name);
  if (b) {
    if (b->used) *b->used = 1;
    return b->v;
  }
  Node *fn = find_fn(F->mod->file, name);
  if (fn) return func_value(E, fn, F->mod, 0, at);
  for (int i = 0; i < F->mod->imports.len; i++) {
    ImportRef *r = F->mod->imports.items[i];
    if (strcmp(r->alias, name) == 0) {
      r->used = 1;
      Value *v = val_new(E->a, V_MODULE, at);
      v->mod = r->module;
      v->s = r->alias;
      return v;
    }
  }
  int id = builtin_find(name);
  if (id >= 0) {
    Value *v = val_new(E->a, V_FUNC, at);
    v->builtin = id;
    v->s = builtin_name(id);
    return v;
  }
  return NULL;
}

/* Whether a statement list defines `name` anywhere (for a clearer message
 * than "unknown name" when it is used first). */
static int defines(Node *n, const char *name) {
  if (!n) return 0;
  switch (n->kind) {
  case N_ASSIGN:
    for (int i = 0; i < ast_nkids(ast_kid(n, 0)); i++)
      if (!strcmp(ast_kid(ast_kid(n, 0), i)->str, name)) return 1;
    return 0;
  case N_DRAW:
  case N_PARAMDECL:
    return !strcmp(n->str, name);
  case N_FOR:
    return !strcmp(n->str, name) || defines(ast_kid(n, 1), name);
  case N_IF:
    return defines(ast_kid(n, 1), name) || defines(ast_kid(n, 2), name);
  case N_BLOCK:
    for (int i = 0; i < ast_nkids(n); i++)
      if (defines(ast_kid(n, i), name)) return 1;
    return 0;
  case N_HYPER:
    for (int i = 0; i < ast_nkids(n); i++)
      if (!strcmp(ast_kid(n, i)->str, name)) return 1;
    return 0;
  default:
    return 0;
  }
}

/* ---- parameters ------------------------------------------------------ */

static const char *join(Elab *E, const char *prefix, const char *name) {
  return *prefix ? arena_printf(E->a, "%s.%s", prefix, name) : name;
}

static int next_count(Elab *E, const char *prefix, const char *fname) {
  const char *key = arena_printf(E->a, "%s/%s", prefix, fname);
  for (int i = 0; i < E->counters.len; i++) {
    Counter *c = E->counters.items[i];
    if (strcmp(c->key, key) == 0) return c->n++;
  }
  Counter *c = arena_alloc(E->a, sizeof *c);
  c->key = key;
  c->n = 1;
  vec_push(E->a, &E->counters, c);
  return 0;
}

static void reset_counters(Elab *E, const char *prefix) {
  size_t n = strlen(prefix);
  for (int i = 0; i < E->counters.len; i++) {
    Counter *c = E->counters.items[i];
    if (strncmp(c->key, prefix, n) == 0 && (c->key[n] == '/' || c->key[n] == '.')) c->n = 0;
  }
}

static Param *find_param(Model *m, const char *name) {
  for (int i = 0; i < m->params.len; i++) {
    Param *p = m->params.items[i];
    if (strcmp(p->name, name) == 0) return p;
  }
  return NULL;
}

static int eval_shape(Elab *E, Frame *F, Node *shape, Shape *out) {
  if (ast_nkids(shape) > MAX_RANK) {
    diag_error(E->d, shape->span, "a shape has at most %d dimensions, found %d", MAX_RANK, ast_nkids(shape));
    return 0;
  }
  out->rank = ast_nkids(shape);
  for (int i = 0; i < out->rank; i++) {
    Node *dn = ast_kid(shape, i);
    Value *v = elab_eval(E, F, dn);
    if (!v) return 0;
    if (v->kind != V_INT) {
      diag_error(E->d, dn->span, "a dimension must be an int, found %s", val_kind_name(v));
      return 0;
    }
    if (v->i < 1 || v->i > (1ll << 31)) {
      diag_error(E->d, dn->span, "a dimension must be between 1 and 2^31, found %lld", v->i);
      return 0;
    }
    out->d[i] = v->i;
  }
  return 1;
}

static const char *number_text(Elab *E, Value *v) {
  if (v->kind == V_INT) return arena_printf(E->a, "%lld", v->i);
  return arena_printf(E->a, "%.9g", v->f);
}

/* glorot | he | zeros | ones | normal(std) | uniform(lo, hi) | const(v) */
static const char *eval_init(Elab *E, Frame *F, Node *n, Shape sh) {
  if (!n) return sh.rank >= 2 ? "glorot" : "zeros";
  static const char *plain[] = {"glorot", "he", "zeros", "ones"};
  static const struct {
    const char *name;
    int nargs;
    const char *params[2], *usage;
  } calls[] = {{"normal", 1, {"std", NULL}, "one number: normal(std)"},
               {"uniform", 2, {"lo", "hi"}, "two numbers: uniform(lo, hi)"},
               {"const", 1, {"v", NULL}, "one number: const(v)"}};
  if (n->kind == N_NAME)
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
      if (strcmp(n->str, plain[i]) == 0) return plain[i];
  if (n->kind == N_CALL && ast_kid(n, 0)->kind == N_NAME && !n->ival) {
    const char *f = ast_kid(n, 0)->str;
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
      if (strcmp(f, calls[i].name) != 0) continue;
      Arg args[MAX_ARGS];
      int nargs = eval_args(E, F, n, args);
      if (nargs < 0) return NULL;
      /* bind like a call: positional, then by name */
      Value *bound[2] = {NULL, NULL};
      int pos = 0;
      for (int k = 0; k < nargs; k++) {
        int slot = args[k].name ? -1 : pos++;
        for (int j = 0; args[k].name && j < calls[i].nargs; j++)
          if (!strcmp(args[k].name, calls[i].params[j])) slot = j;
        if (slot < 0 || slot >= calls[i].nargs || bound[slot]) {
          diag_error(E->d, args[k].node->span, "initializer %s takes %s", f, calls[i].usage);
          return NULL;
        }
        if (!val_is_number(args[k].value)) {
          diag_error(E->d, args[k].node->span, "initializer %s: expected a number, found %s", f,
                     val_kind_name(args[k].value));
          return NULL;
        }
        bound[slot] = args[k].value;
      }
      if (!bound[0] || (calls[i].nargs == 2 && !bound[1])) {
        diag_error(E->d, n->span, "initializer %s takes %s", f, calls[i].usage);
        return NULL;
      }
      if (calls[i].nargs == 2)
        return arena_printf(E->a, "%s(%s, %s)", f, number_text(E, bound[0]), number_text(E, bound[1]));
      return arena_printf(E->a, "%s(%s)", f, number_text(E, bound[0]));
    }
  }
  diag_error(E->d, n->span,
             "expected an initializer: glorot, he, zeros, ones, normal(std), uniform(lo, hi) or const(v)");
  return NULL;
}

static Value *declare_param(Elab *E, Frame *F, Node *decl) {
  Shape sh;
  if (!eval_shape(E, F, ast_kid(decl, 0), &sh)) return NULL;
  const char *name = join(E, F->prefix, decl->str);
  Param *p = find_param(E->m, name);
  if (p && (F->reuse || E->L)) {
    Value *v = val_tensor(E->a, p->shape, decl->span);
    v->flags = T_PARAM;
    if (E->L) v->node = lower_param(E->L, p, decl->span);
    return v;
  }
  if (E->L) {
    diag_error(E->d, decl->span, "internal error: parameter %s was not created when the model was checked", name);
    return NULL;
  }
  if (p) {
    diag_error(E->d, decl->span, "parameter %s is defined twice", name);
    diag_note(E->d, p->span, "first defined here");
    return NULL;
  }
  const char *init = eval_init(E, F, ast_kid(decl, 1), sh);
  if (!init) return NULL;
  p = arena_alloc(E->a, sizeof *p);
  p->name = name;
  p->shape = sh;
  p->init = init;
  p->span = decl->span;
  vec_push(E->a, &E->m->params, p);
  Value *v = val_tensor(E->a, sh, decl->span);
  v->flags = T_PARAM;
  return v;
}

/* ---- calls ----------------------------------------------------------- */

static Net *net_of(Elab *E, Node *fn) {
  for (int i = 0; i < E->m->nets.len; i++) {
    Net *n = E->m->nets.items[i];
    if (n->fn == fn) return n;
  }
  Net *n = arena_alloc(E->a, sizeof *n);
  n->fn = fn;
  n->name = fn->kind == N_ROLE ? fn->str2 : fn->str;
  vec_push(E->a, &E->m->nets, n);
  return n;
}

static int same_value_shape(Value *a, Value *b) {
  if (a->kind != b->kind) return val_is_number(a) && val_is_number(b);
  if (a->kind == V_TENSOR) return shape_eq(a->shape, b->shape) && a->classes == b->classes;
  return 1;
}

/* Matches an argument against a pattern like [c, h, w]: names bind to the
 * argument's dimensions, other entries must equal them. */
static int match_shape(Elab *E, Frame *callee, Node *pat, Value *v, const char *pname, const char *fname, Span at) {
  if (v->kind != V_TENSOR) {
    diag_error(E->d, at, "argument %s of %s: expected a tensor of rank %d, found %s", pname, fname,
               ast_nkids(pat), val_kind_name(v));
    return 0;
  }
  if (v->shape.rank != ast_nkids(pat)) {
    const char *want = "[";
    for (int i = 0; i < ast_nkids(pat); i++) {
      Node *dn = ast_kid(pat, i);
      const char *t = dn->kind == N_NAME ? dn->str : dn->kind == N_INT ? arena_printf(E->a, "%lld", dn->ival) : "_";
      want = arena_printf(E->a, "%s%s%s", want, i ? ", " : "", t);
    }
    diag_error(E->d, at, "argument %s of %s: expected %s], found %s", pname, fname, want,
               shape_str(E->a, v->shape));
    return 0;
  }
  for (int i = 0; i < v->shape.rank; i++) {
    Node *dn = ast_kid(pat, i);
    if (dn->kind == N_NAME) {
      Binding *b = find_in(callee->scope, dn->str);
      if (!b || b->v->kind != V_INT || b->v->span.lo != pat->span.lo) {
        Value *d = val_int(E->a, v->shape.d[i], pat->span);
        elab_bind(E, callee->scope, dn->str, d, NULL);
        continue;
      }
      if (b->v->i != v->shape.d[i]) {
        diag_error(E->d, at, "argument %s of %s: dimension %s is %lld here but %lld before (shape %s)", pname,
                   fname, dn->str, v->shape.d[i], b->v->i, shape_str(E->a, v->shape));
        return 0;
      }
      continue;
    }
    Value *want = elab_eval(E, callee, dn);
    if (!want) return 0;
    if (want->kind != V_INT || want->i != v->shape.d[i]) {
      diag_error(E->d, at, "argument %s of %s: expected dimension %d to be %s, found %s", pname, fname, i,
                 want->kind == V_INT ? arena_printf(E->a, "%lld", want->i) : "an int",
                 shape_str(E->a, v->shape));
      return 0;
    }
  }
  return 1;
}

static Value *call_user(Elab *E, Frame *F, Value *callee, Node *call, Arg *args, int nargs, const char *hint) {
  Node *fn = callee->fn;
  int critic = fn->kind == N_ROLE;
  int shared = critic || fn->ival == 1;
  Node *params = ast_kid(fn, 0);
  Node *body = critic ? ast_kid(fn, 2) : ast_kid(fn, 1);
  const char *fname = callee->s;
  if (E->depth >= MAX_DEPTH) {
    diag_error(E->d, call->span, "calls nested more than %d deep (is %s recursive?)", MAX_DEPTH, fname);
    return NULL;
  }
  Frame G = {0};
  G.mod = callee->mod;
  G.in_model = callee->i;
  G.scope = arena_alloc(E->a, sizeof(Scope));
  Net *net = NULL;
  G.reuse = F->reuse;
  if (shared && E->L) {
    G.prefix = fname;
    G.reuse = 1;
    reset_counters(E, fname);
  } else if (shared) {
    net = net_of(E, fn);
    if (net->failed) return NULL;
    G.prefix = fname;
    G.reuse = net->called;
    if (!net->called) net->first_param = E->m->params.len;
    reset_counters(E, fname); /* every call names its parameters alike */
  } else {
    G.prefix = hint ? hint : join(E, F->prefix, arena_printf(E->a, "%s%d", fname, next_count(E, F->prefix, fname)));
  }

  /* bind arguments: positional first, then by name, then defaults */
  int np = ast_nkids(params);
  Value **bound = arena_alloc(E->a, sizeof(Value *) * (size_t)(np + 1));
  Span *where = arena_alloc(E->a, sizeof(Span) * (size_t)(np + 1));
  int pos = 0, ok = 1;
  for (int k = 0; k < nargs; k++) {
    int slot = -1;
    if (!args[k].name) {
      if (pos >= np) {
        diag_error(E->d, args[k].node->span, "%s takes %d argument%s, found more", fname, np, np == 1 ? "" : "s");
        return NULL;
      }
      slot = pos++;
    } else {
      for (int i = 0; i < np; i++)
        if (strcmp(ast_kid(params, i)->str, args[k].name) == 0) slot = i;
      if (slot < 0) {
        diag_error(E->d, args[k].node->span, "%s has no parameter named '%s'", fname, args[k].name);
        ok = 0;
        continue;
      }
      if (bound[slot]) {
        diag_error(E->d, args[k].node->span, "parameter '%s' of %s is given twice", args[k].name, fname);
        ok = 0;
        continue;
      }
    }
    bound[slot] = args[k].value;
    where[slot] = args[k].node->span;
  }
  if (!ok) return NULL;
  E->depth++;
  for (int i = 0; i < np && ok; i++) {
    Node *p = ast_kid(params, i);
    if (!bound[i]) {
      if (!ast_kid(p, 1)) {
        diag_error(E->d, call->span, "%s needs an argument '%s'", fname, p->str);
        ok = 0;
        break;
      }
      bound[i] = elab_eval(E, &G, ast_kid(p, 1));
      where[i] = call->span;
      if (!bound[i]) {
        ok = 0;
        break;
      }
    }
    if (ast_kid(p, 0) && !match_shape(E, &G, ast_kid(p, 0), bound[i], p->str, fname, where[i])) ok = 0;
    elab_bind(E, G.scope, p->str, bound[i], NULL);
  }
  if (ok && net) {
    if (!net->called) {
      for (int i = 0; i < np; i++) vec_push(E->a, &net->arg_shapes, bound[i]);
    } else {
      for (int i = 0; i < np && ok; i++)
        if (!same_value_shape(net->arg_shapes.items[i], bound[i])) {
          const char *first = arena_strdup(E->a, val_kind_name(net->arg_shapes.items[i]));
          const char *now = arena_strdup(E->a, val_kind_name(bound[i]));
          diag_error(E->d, where[i], "%s shares its weights between calls, so argument %s must keep its shape: first %s, now %s",
                     fname, ast_kid(params, i)->str, first, now);
          ok = 0;
        }
    }
  }
  Value *result = NULL;
  int errors = diag_errors(E->d);
  G.body = body;
  if (ok) {
    if (body->kind == N_BLOCK) {
      exec_block(E, &G, body);
      result = G.failed ? NULL : G.ret;
      if (!G.returned && !G.failed)
        diag_error(E->d, fn->span, "%s ends without a return statement", fname);
    } else if (body->kind == N_CALL && shared) {
      /* `net f(x) = g(x)`: g's parameters sit directly under f */
      result = eval_call(E, &G, body, G.prefix);
    } else {
      result = elab_eval(E, &G, body);
    }
  }
  E->depth--;
  if (diag_errors(E->d) > errors && (call->span.lo != E->last_note.lo || call->span.file != E->last_note.file)) {
    E->last_note = call->span; /* a recursive call gets one note, not one per level */
    Node *cn = ast_kid(call, 0);
    const char *shown = cn->kind == N_MEMBER && ast_kid(cn, 0)->kind == N_NAME
                            ? arena_printf(E->a, "%s.%s", ast_kid(cn, 0)->str, cn->str)
                            : fname;
    diag_note(E->d, call->span, "in this call of %s", shown);
    result = NULL;
  }
  if (net && !net->called) {
    net->called = 1; /* even when it failed: later calls stay silent */
    net->failed = result == NULL;
    net->nparams = E->m->params.len - net->first_param;
  }
  if (result && critic && result->kind != V_TENSOR) {
    diag_error(E->d, body->span, "critic %s must compute a tensor, found %s", fname, val_kind_name(result));
    return NULL;
  }
  return result;
}

static Value *dref_value(Elab *E, Frame *F, Node *call, int want);

static int eval_args(Elab *E, Frame *F, Node *call, Arg *args) {
  int n = ast_nkids(call) - 1;
  if (n > MAX_ARGS) {
    diag_error(E->d, call->span, "a call takes at most %d arguments", MAX_ARGS);
    return -1;
  }
  for (int k = 0; k < n; k++) {
    Node *an = ast_kid(call, k + 1);
    args[k].node = an;
    args[k].name = NULL;
    if (an->kind == N_NAMEDARG) {
      args[k].name = an->str;
      args[k].value = elab_eval(E, F, ast_kid(an, 0));
    } else if (an->kind == N_SAMPLEARG) {
      args[k].value = dref_value(E, F, an, 1);
    } else {
      args[k].value = elab_eval(E, F, an);
    }
    if (!args[k].value) return -1;
  }
  return n;
}

static const char *dref_text(Elab *E, Node *call);

static Value *eval_call(Elab *E, Frame *F, Node *call, const char *hint) {
  Node *cn = ast_kid(call, 0);
  if (call->ival) {
    diag_error(E->d, call->span, "%s names a distribution, not a value: use log %s, KL(...), mean(...), sample(...) or entropy(...)",
               dref_text(E, call), dref_text(E, call));
    return NULL;
  }
  /* mean/sample/entropy of a distribution reference in a loss */
  if (cn->kind == N_NAME && ast_nkids(call) == 2 && ast_kid(call, 1)->kind == N_CALL &&
      (strcmp(cn->str, "mean") == 0 || strcmp(cn->str, "sample") == 0 || strcmp(cn->str, "entropy") == 0)) {
    Node *inner = ast_kid(call, 1);
    Node *ic = ast_kid(inner, 0);
    int is_ref = inner->ival > 0;
    Binding *b = ic->kind == N_NAME ? find_in(F->scope, ic->str) : NULL;
    if (!is_ref && ic->kind == N_NAME && (!b || b->v->kind == V_ROLE))
      for (int i = 0; i < E->m->roles.len && !is_ref; i++) {
        Role *r = E->m->roles.items[i];
        is_ref = strcmp(r->kind, "critic") != 0 && strcmp(r->name, ic->str) == 0;
      }
    if (is_ref) {
      int want = strcmp(cn->str, "entropy") == 0 ? 2 : strcmp(cn->str, "mean") == 0 ? 3 : 1;
      return dref_value(E, F, inner, want);
    }
  }
  if (strcmp(cn->kind == N_NAME ? cn->str : "", "sample") == 0 ||
      strcmp(cn->kind == N_NAME ? cn->str : "", "entropy") == 0) {
    if (!lookup(E, F, cn->str, cn->span)) {
      diag_error(E->d, call->span, "%s(...) takes a distribution of the model, like %s(q(z | x))", cn->str, cn->str);
      return NULL;
    }
  }
  Value *callee = elab_eval(E, F, cn);
  if (!callee) return NULL;
  if (callee->kind != V_FUNC) {
    diag_error(E->d, cn->span, "%s is not a function", val_kind_name(callee));
    return NULL;
  }
  Arg args[MAX_ARGS];
  int n = eval_args(E, F, call, args);
  if (n < 0) return NULL;
  if (callee->builtin >= 0) {
    Value *r = builtin_apply(E->d, E->a, callee->builtin, call, args, n);
    if (r && E->L) lower_builtin(E->L, callee->builtin, call, args, n, r);
    return r;
  }
  return call_user(E, F, callee, call, args, n, hint);
}

/* ---- distributions in losses ------------------------------------------ */

static const char *dref_text(Elab *E, Node *call) {
  const char *s = arena_printf(E->a, "%s(", ast_kid(call, 0)->kind == N_NAME ? ast_kid(call, 0)->str : "?");
  for (int i = 1; i < ast_nkids(call); i++) {
    Node *a = ast_kid(call, i);
    const char *sep = i == 1 ? "" : i == call->ival ? " | " : ", ";
    s = arena_printf(E->a, "%s%s%s", s, sep, a->kind == N_NAME ? a->str : "?");
  }
  return arena_printf(E->a, "%s)", s);
}

static const char *known_drefs(Elab *E) {
  const char *s = "";
  for (int i = 0; i < E->m->roles.len; i++) {
    Role *r = E->m->roles.items[i];
    if (strcmp(r->kind, "critic") == 0) continue;
    s = arena_printf(E->a, "%s%s%s", s, *s ? ", " : "", role_signature(E->a, r));
  }
  return *s ? s : "none";
}

static int var_in(Vec *vars, const char *name) {
  for (int i = 0; i < vars->len; i++)
    if (strcmp(((Var *)vars->items[i])->name, name) == 0) return 1;
  return 0;
}

/* p(x | z) -> the role declaring exactly that distribution. */
static Role *resolve_dref(Elab *E, Frame *F, Node *call) {
  if (call->kind != N_CALL || ast_kid(call, 0)->kind != N_NAME) {
    diag_error(E->d, call->span, "expected a distribution of the model, like p(x | z)");
    return NULL;
  }
  if (!F->loss) {
    diag_error(E->d, call->span, "%s can only be used in a loss", dref_text(E, call));
    return NULL;
  }
  int nt = call->ival ? (int)call->ival - 1 : ast_nkids(call) - 1;
  for (int i = 1; i < ast_nkids(call); i++) {
    Node *a = ast_kid(call, i);
    if (a->kind != N_NAME || !model_var(E->m, a->str)) {
      diag_error(E->d, a->span, "expected a variable of the model in %s", dref_text(E, call));
      return NULL;
    }
  }
  const char *letter = ast_kid(call, 0)->str;
  for (int i = 0; i < E->m->roles.len; i++) {
    Role *r = E->m->roles.items[i];
    if (strcmp(r->name, letter) != 0 || strcmp(r->kind, "critic") == 0) continue;
    if (r->targets.len != nt || r->conds.len != ast_nkids(call) - 1 - nt) continue;
    int same = 1;
    for (int k = 1; k < ast_nkids(call) && same; k++)
      same = var_in(k <= nt ? &r->targets : &r->conds, ast_kid(call, k)->str);
    if (same) return r;
  }
  diag_error(E->d, call->span, "the model declares no distribution %s (it has: %s)", dref_text(E, call),
             known_drefs(E));
  return NULL;
}

static int has_density(Elab *E, Role *r, Node *at, const char *what) {
  if (r->implicit && !strcmp(r->kind, "encoder")) {
    diag_error(E->d, at->span, "%s: %s %s is implicit and has no density", what, r->kind, role_signature(E->a, r));
    return 0;
  }
  for (int i = 0; i < r->produced.len; i++) {
    Value *v = r->produced.items[i];
    if (v && v->kind != V_DIST) {
      diag_error(E->d, at->span, "%s: %s %s is deterministic and has no density", what, r->kind,
                 role_signature(E->a, r));
      return 0;
    }
  }
  return 1;
}


/* The node of a draw of target t of role r in the graph being built. */
int elab_role_draw(Elab *E, Role *r, int t, Span at) {
  int ri = elab_role_index(E, r);
  Var *v = r->targets.items[t];
  if (!strcmp(r->kind, "encoder")) return elab_var_node(E, v);
  elab_run_role(E, r);
  if (E->role_sample[ri][t] < 0) {
    Value *p = E->role_out[ri][t];
    if (!p) return -1;
    E->role_sample[ri][t] = p->kind == V_DIST ? lower_sample(E->L, p->dist, v->shape, 0, at, NULL) : p->node;
  }
  return E->role_sample[ri][t];
}

/* Lowers log p(..), entropy(..), mean(..) or a sample of a role. */
int elab_dref_node(Elab *E, Role *r, Var *only, int want, Span at) {
  int ri = elab_role_index(E, r);
  elab_run_role(E, r);
  int total = -1;
  for (int t = 0; t < r->targets.len; t++) {
    Var *v = r->targets.items[t];
    if (only && v != only) continue;
    Value *p = E->role_out[ri][t];
    if (!p) return -1;
    int x;
    if (want == 1) return elab_role_draw(E, r, t, at);
    if (want == 3) return p->kind == V_DIST ? lower_mean(E->L, p->dist, v->shape, at) : p->node;
    if (want == 0)
      x = lower_logpdf(E->L, p->dist, elab_var_node(E, v), v->shape, at);
    else
      x = lower_entropy(E->L, p->dist, v->shape, at);
    if (x < 0) return -1;
    int in[2] = {total, x};
    total = total < 0 ? x : graph_add(E->L->g, OP_ADD, in, 2, at, NULL);
  }
  return total;
}

/* want: 0 log-density, 1 a sample, 2 entropy, 3 mean */
static Value *dref_value(Elab *E, Frame *F, Node *n, int want) {
  Node *call = n->kind == N_SAMPLEARG ? ast_kid(n, 0) : n;
  Role *r = resolve_dref(E, F, call);
  if (!r) return NULL;
  if (n->kind == N_SAMPLEARG && !var_in(&r->targets, n->str)) {
    diag_error(E->d, n->span, "%s does not draw %s", role_signature(E->a, r), n->str);
    return NULL;
  }
  if (want == 0 || want == 2) {
    if (!has_density(E, r, call, want == 0 ? "log" : "entropy")) return NULL;
    Value *t = val_tensor(E->a, shape_scalar(), n->span);
    if (E->L && (t->node = elab_dref_node(E, r, NULL, want, n->span)) < 0) {
      diag_error(E->d, n->span, "the %s of %s has no closed form", want ? "entropy" : "density", role_signature(E->a, r));
      return NULL;
    }
    return t;
  }
  Var *v = n->kind == N_SAMPLEARG ? model_var(E->m, n->str) : r->targets.items[0];
  if (r->targets.len != 1 && n->kind != N_SAMPLEARG) {
    const char *first = ((Var *)r->targets.items[0])->name;
    if (want == 1)
      diag_error(E->d, call->span, "%s has several variables; name one as in sample(%s ~ %s)", role_signature(E->a, r),
                 first, role_signature(E->a, r));
    else
      diag_error(E->d, call->span, "mean(%s) is ambiguous: it has several variables", role_signature(E->a, r));
    return NULL;
  }
  if (!v || !v->shape_known) return NULL;
  Value *t = val_tensor(E->a, v->shape, n->span);
  t->classes = v->classes;
  if (E->L && (t->node = elab_dref_node(E, r, v, want, n->span)) < 0) {
    diag_error(E->d, n->span, "the %s of %s has no closed form", want == 3 ? "mean" : "sample", role_signature(E->a, r));
    return NULL;
  }
  return t;
}

/* ---- expressions ------------------------------------------------------- */

static Value *member(Elab *E, Frame *F, Node *n) {
  Value *obj = elab_eval(E, F, ast_kid(n, 0));
  if (!obj) return NULL;
  if (obj->kind == V_MODULE) {
    Node *fn = find_fn(obj->mod->file, n->str);
    if (!fn) {
      diag_error(E->d, n->span, "module %s has no function or network '%s'", obj->s, n->str);
      return NULL;
    }
    return func_value(E, fn, obj->mod, 0, n->span);
  }
  if (obj->kind == V_ROLE) {
    Value *found = NULL;
    for (int i = 0; i < E->m->roles.len; i++) {
      Role *r = E->m->roles.items[i];
      if (strcmp(r->name, obj->s) != 0 || !r->locals) continue;
      Binding *b = find_in(r->locals, n->str);
      if (b && E->L) { /* the same local, in this graph */
        elab_run_role(E, r);
        b = find_in(E->role_scope[i], n->str);
      }
      if (b && found) {
        diag_error(E->d, n->span, "%s.%s is ambiguous: several roles named %s define %s", obj->s, n->str,
                   obj->s, n->str);
        return NULL;
      }
      if (b) found = b->v;
    }
    if (!found) diag_error(E->d, n->span, "role %s has no local value '%s'", obj->s, n->str);
    return found;
  }
  diag_error(E->d, n->span, "%s has no member '%s'", val_kind_name(obj), n->str);
  return NULL;
}

Value *elab_eval(Elab *E, Frame *F, Node *n) {
  switch (n->kind) {
  case N_INT: return val_int(E->a, n->ival, n->span);
  case N_FLOAT: return val_float(E->a, n->num, n->span);
  case N_BOOL: {
    Value *v = val_new(E->a, V_BOOL, n->span);
    v->i = n->ival;
    return v;
  }
  case N_STR: {
    Value *v = val_new(E->a, V_STR, n->span);
    v->s = n->str;
    return v;
  }
  case N_NAME: {
    Value *v = lookup(E, F, n->str, n->span);
    if (v == &poison) return NULL;
    if (v && E->L && v->kind == V_TENSOR && (v->flags & T_PARAM) && v->node < 0) { /* a model-level param */
      Param *p = find_param(E->m, n->str);
      Value *t = val_tensor(E->a, v->shape, n->span);
      t->flags = T_PARAM;
      t->node = p ? lower_param(E->L, p, n->span) : -1;
      return t;
    }
    if (!v) {
      Var *var = model_var(E->m, n->str);
      int later = defines(F->body, n->str);
      for (int i = 0; !later && F->in_model && i < ast_nkids(E->m->node); i++) {
        Node *it = ast_kid(E->m->node, i);
        later = it && it->kind == N_HYPER && defines(it, n->str);
      }
      if (later) {
        diag_error(E->d, n->span, "'%s' is used before it is defined", n->str);
        vec_push(E->a, &E->early, (void *)n->str);
      }
      else if (var && F->role)
        diag_error(E->d, n->span, "%s %s cannot read %s: it is not among its conditions", F->role->kind,
                   role_signature(E->a, F->role), n->str);
      else if (var && F->in_model)
        diag_error(E->d, n->span, "%s is a variable of the model; it can only be read in a role or a loss", n->str);
      else
        diag_error(E->d, n->span, "unknown name '%s'", n->str);
    }
    return v;
  }
  case N_MEMBER: return member(E, F, n);
  case N_LIST: {
    Value *v = val_new(E->a, V_LIST, n->span);
    for (int i = 0; i < ast_nkids(n); i++) {
      Value *x = elab_eval(E, F, ast_kid(n, i));
      if (!x) return NULL;
      vec_push(E->a, &v->items, x);
    }
    return v;
  }
  case N_INDEX: {
    Value *l = elab_eval(E, F, ast_kid(n, 0)), *i = l ? elab_eval(E, F, ast_kid(n, 1)) : NULL;
    if (!i) return NULL;
    if (l->kind != V_LIST && l->kind != V_TUPLE) {
      diag_error(E->d, n->span, "only lists can be indexed, found %s", val_kind_name(l));
      return NULL;
    }
    if (i->kind != V_INT) {
      diag_error(E->d, ast_kid(n, 1)->span, "an index must be an int, found %s", val_kind_name(i));
      return NULL;
    }
    long long k = i->i < 0 ? i->i + l->items.len : i->i;
    if (k < 0 || k >= l->items.len) {
      diag_error(E->d, ast_kid(n, 1)->span, "index %lld is out of range for a list of %d", i->i, l->items.len);
      return NULL;
    }
    return l->items.items[k];
  }
  case N_BINOP: {
    Value *x = elab_eval(E, F, ast_kid(n, 0));
    Value *y = x ? elab_eval(E, F, ast_kid(n, 1)) : NULL;
    if (!y) return NULL;
    const char *op = n->str;
    if (!strcmp(op, "and") || !strcmp(op, "or")) {
      if (x->kind != V_BOOL || y->kind != V_BOOL) {
        diag_error(E->d, n->span, "'%s' needs two bools, found %s", op, val_kind_name(x->kind != V_BOOL ? x : y));
        return NULL;
      }
      Value *v = val_new(E->a, V_BOOL, n->span);
      v->i = op[0] == 'a' ? (x->i && y->i) : (x->i || y->i);
      return v;
    }
    if (!strcmp(op, "==") || !strcmp(op, "!=") || op[0] == '<' || op[0] == '>') {
      int eq;
      double p, q;
      if (val_is_number(x) && val_is_number(y)) {
        p = val_number(x), q = val_number(y);
        eq = p == q;
      } else if (x->kind == y->kind && (x->kind == V_BOOL || x->kind == V_STR) && op[1] == '=' &&
                 (op[0] == '=' || op[0] == '!')) {
        eq = x->kind == V_BOOL ? x->i == y->i : strcmp(x->s, y->s) == 0;
        p = q = 0;
      } else {
        diag_error(E->d, n->span, "'%s' cannot compare %s", op, val_kind_name(x));
        return NULL;
      }
      Value *v = val_new(E->a, V_BOOL, n->span);
      v->i = !strcmp(op, "==") ? eq : !strcmp(op, "!=") ? !eq : !strcmp(op, "<") ? p < q
           : !strcmp(op, "<=") ? p <= q : !strcmp(op, ">") ? p > q : p >= q;
      return v;
    }
    Value *r = builtin_binary(E->d, E->a, op, x, y, n);
    if (r && E->L) lower_binary(E->L, op, x, y, r, n);
    return r;
  }
  case N_UNOP: {
    Value *x = elab_eval(E, F, ast_kid(n, 0));
    if (!x) return NULL;
    if (n->str[0] == 'n') {
      if (x->kind != V_BOOL) {
        diag_error(E->d, n->span, "'not' needs a bool, found %s", val_kind_name(x));
        return NULL;
      }
      Value *v = val_new(E->a, V_BOOL, n->span);
      v->i = !x->i;
      return v;
    }
    if (x->kind == V_INT && x->i == LLONG_MIN) {
      diag_error(E->d, n->span, "integer overflow: -(%lld) does not fit in 64 bits", x->i);
      return NULL;
    }
    if (x->kind == V_INT) return val_int(E->a, -x->i, n->span);
    if (x->kind == V_FLOAT) return val_float(E->a, -x->f, n->span);
    if (x->kind == V_TENSOR && !x->classes) {
      Value *v = val_tensor(E->a, x->shape, n->span);
      v->flags = x->flags & T_CONST;
      if (E->L) lower_neg(E->L, x, v, n);
      return v;
    }
    diag_error(E->d, n->span, "cannot negate %s", val_kind_name(x));
    return NULL;
  }
  case N_CALL: return eval_call(E, F, n, NULL);
  case N_LOGP: return dref_value(E, F, ast_kid(n, 0), 0);
  case N_KL: {
    Role *p = resolve_dref(E, F, ast_kid(n, 0));
    Role *q = p ? resolve_dref(E, F, ast_kid(n, 1)) : NULL;
    if (!q) return NULL;
    int same = p->targets.len == q->targets.len;
    for (int i = 0; same && i < p->targets.len; i++)
      same = var_in(&q->targets, ((Var *)p->targets.items[i])->name);
    if (!same) {
      diag_error(E->d, n->span, "KL compares two distributions of the same variables; found %s and %s",
                 role_signature(E->a, p), role_signature(E->a, q));
      return NULL;
    }
    if (!has_density(E, p, ast_kid(n, 0), "KL") || !has_density(E, q, ast_kid(n, 1), "KL")) return NULL;
    Value *kl = val_tensor(E->a, shape_scalar(), n->span);
    if (E->L) { /* KL(first || second), summed over the variables */
      elab_run_role(E, p);
      elab_run_role(E, q);
      int ri = elab_role_index(E, p), qi = elab_role_index(E, q);
      for (int t = 0; t < p->targets.len; t++) {
        Var *v = p->targets.items[t];
        int k = 0;
        while (((Var *)q->targets.items[k]) != v) k++;
        Value *dp = E->role_out[ri][t], *dq = E->role_out[qi][k];
        if (!dp || !dq) return NULL;
        int x = lower_kl(E->L, dp->dist, dq->dist, elab_role_draw(E, p, t, n->span), v->shape, n->span);
        int in[2] = {kl->node, x};
        kl->node = kl->node < 0 ? x : graph_add(E->L->g, OP_ADD, in, 2, n->span, NULL);
      }
    }
    return kl;
  }
  case N_EXPECT: {
    if (!F->loss) {
      diag_error(E->d, n->span, "E[...] can only be used in a loss");
      return NULL;
    }
    Value *v = elab_eval(E, F, ast_kid(n, 0));
    if (v && v->kind != V_TENSOR && !val_is_number(v)) {
      diag_error(E->d, n->span, "E[...] needs a tensor, found %s", val_kind_name(v));
      return NULL;
    }
    return v;
  }
  case N_FLOW: {
    Value *base = elab_eval(E, F, ast_kid(n, 0));
    Value *t = base ? elab_eval(E, F, ast_kid(n, 1)) : NULL;
    if (!t) return NULL;
    if (base->kind != V_DIST || base->dist->fam == D_FLOW) {
      diag_error(E->d, ast_kid(n, 0)->span, "flow needs a base distribution, found %s", val_kind_name(base));
      return NULL;
    }
    if (t->kind != V_TUPLE || t->items.len != 2 || ((Value *)t->items.items[0])->kind != V_TENSOR ||
        ((Value *)t->items.items[1])->kind != V_TENSOR) {
      diag_error(E->d, ast_kid(n, 1)->span,
                 "a flow's transform must return two tensors (eps, logdet), found %s", val_kind_name(t));
      return NULL;
    }
    Value *eps = t->items.items[0], *logdet = t->items.items[1];
    if (shape_size(logdet->shape) != 1) {
      diag_error(E->d, ast_kid(n, 1)->span, "a flow's log-determinant must be a scalar, found %s",
                 shape_str(E->a, logdet->shape));
      return NULL;
    }
    Shape r;
    if (!shape_broadcast(base->dist->shape, eps->shape, &r) || !shape_eq(r, eps->shape)) {
      diag_error(E->d, n->span, "the flow's base distribution %s does not fit eps %s",
                 shape_str(E->a, base->dist->shape), shape_str(E->a, eps->shape));
      return NULL;
    }
    Dist *d = arena_alloc(E->a, sizeof *d);
    d->fam = D_FLOW;
    d->base = base;
    d->eps = eps;
    d->logdet = logdet;
    d->shape = eps->shape;
    Value *v = val_new(E->a, V_DIST, n->span);
    v->dist = d;
    return v;
  }
  case N_NAMEDARG:
  case N_SAMPLEARG:
    diag_error(E->d, n->span, "this form is only allowed as a call argument");
    return NULL;
  default:
    diag_error(E->d, n->span, "expected an expression");
    return NULL;
  }
}

/* ---- statements ------------------------------------------------------ */

static int role_target(Frame *F, const char *name) {
  return F->role && var_in(&F->role->targets, name);
}

static void define_target(Elab *E, Frame *F, const char *name, Value *v, Span at) {
  Role *r = F->role;
  for (int i = 0; i < r->targets.len; i++) {
    Var *var = r->targets.items[i];
    if (strcmp(var->name, name) != 0) continue;
    if (E->L) { /* lowering: remember what this graph's run produced */
      int ri = elab_role_index(E, r);
      E->role_out[ri][i] = v;
      int node = v->kind == V_TENSOR ? v->node : -1;
      if (node >= 0) E->role_sample[ri][i] = node;
      if (!strcmp(r->kind, "encoder") && node >= 0) E->var_node[elab_var_index(E, var)] = node;
      return;
    }
    if (r->produced.items[i]) {
      diag_error(E->d, at, "%s %s defines %s twice", r->kind, role_signature(E->a, r), name);
      return;
    }
    r->produced.items[i] = v;
    Span *s = arena_alloc(E->a, sizeof *s);
    *s = at;
    r->draw_spans.items[i] = s;
  }
}

static void exec_draw(Elab *E, Frame *F, Node *st) {
  Value *dv = elab_eval(E, F, ast_kid(st, 0));
  elab_bind(E, F->scope, st->str, &poison, NULL);
  if (!dv) return;
  if (dv->kind != V_DIST) {
    diag_error(E->d, ast_kid(st, 0)->span, "expected a distribution after '~', found %s", val_kind_name(dv));
    return;
  }
  Shape sh = dv->dist->shape;
  if (ast_kid(st, 1)) {
    Shape want, r;
    if (!eval_shape(E, F, ast_kid(st, 1), &want)) return;
    if (!shape_broadcast(sh, want, &r) || !shape_eq(r, want)) {
      diag_error(E->d, st->span, "the distribution has shape %s, which does not broadcast to %s",
                 shape_str(E->a, sh), shape_str(E->a, want));
      return;
    }
    sh = want;
    Dist *d = arena_alloc(E->a, sizeof *d);
    *d = *dv->dist;
    d->shape = want;
    dv = val_new(E->a, V_DIST, dv->span);
    dv->dist = d;
  }
  if (st->str2) {
    static const char *known[] = {"straight_through", "score_function"};
    int ok = 0;
    for (size_t i = 0; i < 2; i++) ok |= strcmp(st->str2, known[i]) == 0;
    if (!ok) {
      diag_error(E->d, st->span, "unknown estimator '%s'; expected straight_through or score_function", st->str2);
      return;
    }
    if (dv->dist->fam != D_BERNOULLI && dv->dist->fam != D_CATEGORICAL) {
      diag_error(E->d, st->span, "an estimator is only needed for Bernoulli or Categorical draws; this one is reparameterized");
      return;
    }
  }
  Value *sample = val_tensor(E->a, sh, st->span);
  sample->classes = dv->dist->classes;
  if (E->L) {
    int estimator = !st->str2 ? 0 : !strcmp(st->str2, "straight_through") ? 1 : 2; /* 2: score_function */
    sample->node = lower_sample(E->L, dv->dist, sh, estimator, st->span, join(E, F->prefix, st->str));
    if (sample->node >= 0) graph_node(E->L->g, sample->node)->name = join(E, F->prefix, st->str);
  }
  if (role_target(F, st->str)) {
    define_target(E, F, st->str, dv, st->span);
    if (E->L && sample->node >= 0) { /* the draw, for the variable's users */
      int ri = elab_role_index(E, F->role);
      for (int i = 0; i < F->role->targets.len; i++)
        if (!strcmp(((Var *)F->role->targets.items[i])->name, st->str)) {
          E->role_sample[ri][i] = sample->node;
          if (!strcmp(F->role->kind, "encoder")) E->var_node[elab_var_index(E, F->role->targets.items[i])] = sample->node;
        }
    }
  }
  elab_bind(E, F->scope, st->str, sample, NULL);
}

static void exec_assign(Elab *E, Frame *F, Node *st) {
  Node *targets = ast_kid(st, 0), *expr = ast_kid(st, 1);
  Value *v;
  int first = E->L ? E->L->g->nodes.len : 0; /* nodes made by this statement */
  if (F->role && !F->in_loop && ast_nkids(targets) == 1 && expr->kind == N_CALL)
    v = eval_call(E, F, expr, join(E, F->prefix, ast_kid(targets, 0)->str));
  else
    v = elab_eval(E, F, expr);
  int n = ast_nkids(targets);
  if (!v) {
    for (int i = 0; i < n; i++) elab_bind(E, F->scope, ast_kid(targets, i)->str, &poison, NULL);
    return;
  }
  if (n > 1) {
    if (v->kind != V_TUPLE || v->items.len != n) {
      diag_error(E->d, st->span, "%d names on the left, but the right gives %s", n,
                 v->kind == V_TUPLE ? val_kind_name(v) : "one value");
      return;
    }
  } else if (v->kind == V_TUPLE) {
    diag_error(E->d, st->span, "the right gives %s; name each: a, b = ...", val_kind_name(v));
    return;
  }
  for (int i = 0; i < n; i++) {
    Node *t = ast_kid(targets, i);
    Value *x = n > 1 ? v->items.items[i] : v;
    if (E->L && x->kind == V_TENSOR && x->node >= first) { /* the node gets the name it has in the source */
      GNode *g = graph_node(E->L->g, x->node);
      if (!g->name) g->name = join(E, F->prefix, t->str);
    }
    if (role_target(F, t->str)) {
      if (x->kind != V_TENSOR && x->kind != V_DIST) {
        diag_error(E->d, t->span, "%s must be a tensor, found %s", t->str, val_kind_name(x));
        continue;
      }
      define_target(E, F, t->str, x, st->span);
    }
    elab_bind(E, F->scope, t->str, x, NULL);
  }
}

static void exec_stmt(Elab *E, Frame *F, Node *st) {
  switch (st->kind) {
  case N_ASSIGN: exec_assign(E, F, st); break;
  case N_DRAW: exec_draw(E, F, st); break;
  case N_PARAMDECL: {
    Value *v = declare_param(E, F, st);
    elab_bind(E, F->scope, st->str, v ? v : &poison, NULL);
    break;
  }
  case N_FOR: {
    Value *it = elab_eval(E, F, ast_kid(st, 0));
    if (!it) break;
    if (it->kind != V_LIST) {
      diag_error(E->d, ast_kid(st, 0)->span, "for needs a list to iterate over, found %s", val_kind_name(it));
      break;
    }
    int in_loop = F->in_loop;
    F->in_loop = 1;
    for (int i = 0; i < it->items.len && !F->returned; i++) {
      if (++E->unrolled > MAX_UNROLL) {
        diag_error(E->d, st->span, "loops unroll to more than %d iterations", MAX_UNROLL);
        break;
      }
      elab_bind(E, F->scope, st->str, it->items.items[i], NULL);
      int errors = diag_errors(E->d);
      exec_block(E, F, ast_kid(st, 1));
      if (diag_errors(E->d) > errors) break; /* one report, not one per iteration */
    }
    F->in_loop = in_loop;
    break;
  }
  case N_IF: {
    Value *c = elab_eval(E, F, ast_kid(st, 0));
    if (!c) break;
    if (c->kind != V_BOOL) {
      diag_error(E->d, ast_kid(st, 0)->span, "if needs a bool, found %s", val_kind_name(c));
      break;
    }
    Node *branch = c->i ? ast_kid(st, 1) : ast_kid(st, 2);
    if (!branch) break;
    if (branch->kind == N_IF)
      exec_stmt(E, F, branch);
    else
      exec_block(E, F, branch);
    break;
  }
  case N_RETURN: {
    if (F->role) {
      diag_error(E->d, st->span, "return belongs in a function; a role defines its variables with '~' or '='");
      break;
    }
    if (ast_nkids(st) == 1) {
      F->ret = elab_eval(E, F, ast_kid(st, 0));
    } else {
      Value *t = val_new(E->a, V_TUPLE, st->span);
      for (int i = 0; i < ast_nkids(st); i++) {
        Value *x = elab_eval(E, F, ast_kid(st, i));
        if (!x) return;
        vec_push(E->a, &t->items, x);
      }
      F->ret = t;
    }
    F->returned = 1;
    break;
  }
  default:
    diag_error(E->d, st->span, "expected a statement");
  }
}

static void exec_block(Elab *E, Frame *F, Node *block) {
  for (int i = 0; i < ast_nkids(block) && !F->returned && !F->failed; i++) {
    int errors = diag_errors(E->d);
    exec_stmt(E, F, ast_kid(block, i));
    /* in a function, later statements would only repeat the mistake */
    if (!F->role && diag_errors(E->d) > errors) F->failed = 1;
  }
}

/* ---- the model ---------------------------------------------------------- */

static Value *parse_define(Elab *E, Define *def, Hyper *h) {
  const char *t = def->text;
  Value *v = NULL;
  if (!strcmp(t, "true") || !strcmp(t, "false")) {
    v = val_new(E->a, V_BOOL, span_none);
    v->i = t[0] == 't';
  } else if (*t) {
    char *end;
    errno = 0;
    long long i = strtoll(t, &end, 10);
    if (!*end && !errno) {
      v = val_int(E->a, i, span_none);
    } else if (strspn(t, "0123456789.eE+-") == strlen(t)) { /* decimal only: no hex, inf or nan */
      double f = strtod(t, &end);
      if (!*end && !errno && isfinite(f)) v = val_float(E->a, f, span_none);
    }
  }
  if (!v) {
    diag_error(E->d, span_none, "-D %s=%s: expected an int, a float, true or false", def->name, t);
    return NULL;
  }
  ValueKind want = h->value->kind;
  if (want == V_FLOAT && v->kind == V_INT) return val_float(E->a, (double)v->i, span_none);
  if (want != v->kind) {
    diag_error(E->d, span_none, "-D %s=%s: hyper %s is %s, the value is %s", def->name, t, h->name,
               val_kind_name(h->value), val_kind_name(v));
    diag_note(E->d, h->node->span, "%s is declared here", h->name);
    return NULL;
  }
  return v;
}

static void add_hyper(Elab *E, Frame *F, Node *bindn, Define *defs, int ndefs) {
  for (int i = 0; i < E->m->hypers.len; i++) {
    Hyper *o = E->m->hypers.items[i];
    if (strcmp(o->name, bindn->str) == 0) {
      diag_error(E->d, bindn->span, "hyper %s is declared twice", bindn->str);
      return;
    }
  }
  Value *v = elab_eval(E, F, ast_kid(bindn, 0));
  if (v && v->kind != V_INT && v->kind != V_FLOAT && v->kind != V_BOOL && v->kind != V_LIST && v->kind != V_STR) {
    diag_error(E->d, ast_kid(bindn, 0)->span, "a hyper must be an int, a float, a bool, a string or a list; found %s",
               val_kind_name(v));
    v = NULL;
  }
  if (!v) {
    elab_bind(E, &E->model_scope, bindn->str, &poison, NULL);
    return;
  }
  if (!claim(E, bindn->str, bindn, "a hyper")) return;
  Hyper *h = arena_alloc(E->a, sizeof *h);
  h->name = bindn->str;
  h->node = bindn;
  h->value = v;
  for (int i = 0; i < ndefs; i++) {
    if (strcmp(defs[i].name, h->name) != 0) continue;
    defs[i].used = 1;
    if (v->kind == V_LIST || v->kind == V_STR) {
      diag_error(E->d, span_none, "-D %s: only int, float and bool hypers can be set from the command line", h->name);
      continue;
    }
    Value *o = parse_define(E, &defs[i], h);
    if (o) {
      h->value = o;
      h->overridden = 1;
    }
  }
  for (int i = 0; i < E->early.len; i++)
    if (!strcmp(E->early.items[i], h->name)) h->used = 1; /* reported once already */
  vec_push(E->a, &E->m->hypers, h);
  elab_bind(E, &E->model_scope, h->name, h->value, &h->used);
}

/* One name, one meaning, across a model's hypers, data, parameters,
 * functions, networks and critics. */
static int claim(Elab *E, const char *name, Node *at, const char *what) {
  for (int i = 0; i < E->names.len; i += 2) {
    Node *o = E->names.items[i];
    const char *oname = o->kind == N_ROLE ? o->str2 : o->str;
    if (strcmp(oname, name) == 0) {
      diag_error(E->d, at->span, "%s is already defined in model %s as %s", name, E->m->name,
                 (const char *)E->names.items[i + 1]);
      diag_note(E->d, o->span, "the first definition is here");
      return 0;
    }
  }
  vec_push(E->a, &E->names, at);
  vec_push(E->a, &E->names, (void *)what);
  return 1;
}

static Var *add_var(Elab *E, const char *name, Node *decl, int is_data) {
  Var *v = arena_alloc(E->a, sizeof *v);
  v->name = name;
  v->decl = decl;
  v->is_data = is_data;
  vec_push(E->a, &E->m->vars, v);
  return v;
}

static void add_data(Elab *E, Frame *F, Node *n) {
  if (!claim(E, n->str, n, "data")) return;
  Var *v = add_var(E, n->str, n, 1);
  v->domain = n->str2;
  int cat = !strcmp(n->str2, "cat");
  if (strcmp(n->str2, "bit") && strcmp(n->str2, "real") && !cat) {
    diag_error(E->d, n->span, "unknown domain '%s'; expected bit, real or cat(K)", n->str2);
    return;
  }
  if (cat != (ast_kid(n, 1) != NULL)) {
    diag_error(E->d, n->span, cat ? "cat needs its number of classes: cat(K)" : "only cat takes a number of classes");
    return;
  }
  if (ast_kid(n, 2) && strcmp(n->str2, "real")) {
    diag_error(E->d, ast_kid(n, 2)->span, "only real data takes a range");
    return;
  }
  if (!eval_shape(E, F, ast_kid(n, 0), &v->shape)) return;
  v->shape_known = 1;
  if (cat) {
    Value *k = elab_eval(E, F, ast_kid(n, 1));
    if (!k) return;
    if (k->kind != V_INT || k->i < 2) {
      diag_error(E->d, ast_kid(n, 1)->span, "cat(K) needs an int K of at least 2, found %s",
                 k->kind == V_INT ? arena_printf(E->a, "%lld", k->i) : val_kind_name(k));
      return;
    }
    v->classes = (int)k->i;
  }
  if (ast_kid(n, 2)) {
    Value *lo = elab_eval(E, F, ast_kid(ast_kid(n, 2), 0)), *hi = lo ? elab_eval(E, F, ast_kid(ast_kid(n, 2), 1)) : NULL;
    if (!hi) return;
    if (!val_is_number(lo) || !val_is_number(hi) || val_number(lo) >= val_number(hi)) {
      diag_error(E->d, ast_kid(n, 2)->span, "a range needs two numbers lo < hi");
      return;
    }
    v->has_range = 1;
    v->lo = val_number(lo);
    v->hi = val_number(hi);
  }
}

static void collect_roles(Elab *E, Node *model) {
  for (int i = 0; i < ast_nkids(model); i++) {
    Node *it = ast_kid(model, i);
    if (!it || it->kind != N_ROLE) continue;
    Role *r = arena_alloc(E->a, sizeof *r);
    r->node = it;
    r->kind = it->str;
    r->name = it->str2;
    r->implicit = (it->ival & ROLE_IMPLICIT) != 0;
    r->autoregressive = (it->ival & ROLE_AUTOREGRESSIVE) != 0;
    vec_push(E->a, &E->m->roles, r);
    if (!strcmp(r->kind, "critic")) continue;
    for (int side = 0; side < 2; side++) {
      Node *list = ast_kid(it, side);
      for (int k = 0; k < ast_nkids(list); k++) {
        Node *nm = ast_kid(list, k);
        Var *v = model_var(E->m, nm->str);
        if (!v) v = add_var(E, nm->str, it, 0);
        if (var_in(side ? &r->conds : &r->targets, v->name) || (side && var_in(&r->targets, v->name))) {
          diag_error(E->d, nm->span, "%s is named twice in %s %s", v->name, r->kind, r->name);
          continue;
        }
        vec_push(E->a, side ? &r->conds : &r->targets, v);
        v->used = 1;
        if (!side) {
          vec_push(E->a, &r->produced, NULL);
          vec_push(E->a, &r->draw_spans, NULL);
        }
      }
    }
  }
}


/* A variable's node in the graph being built: data are inputs, latents come
 * from their encoder (or are inputs when the entry point gives them). */
int elab_var_node(Elab *E, Var *v) {
  int i = elab_var_index(E, v);
  if (E->var_node[i] >= 0) return E->var_node[i];
  if (!v->is_data && v->encoder && E->role_state[elab_role_index(E, v->encoder)] == 0) elab_run_role(E, v->encoder);
  if (E->var_node[i] >= 0) return E->var_node[i];
  return elab_var_input(E, v);
}

/* Makes a variable an input of the graph being built. */
int elab_var_input(Elab *E, Var *v) {
  GNode *n = graph_begin(E->L->g, OP_INPUT, NULL, 0, v->decl->span, v->name);
  n->s = v->name;
  n->shape = v->shape;
  n->batched = 1;
  n->classes = v->classes;
  return E->var_node[elab_var_index(E, v)] = graph_end(E->L->g, n);
}

Value *elab_var_tensor(Elab *E, Var *v, Span at) {
  Value *t = val_tensor(E->a, v->shape, at);
  t->classes = v->classes;
  if (E->L) t->node = elab_var_node(E, v);
  return t;
}

/* Naming counters are replayed when lowering, so that every graph calls a
 * parameter by the name the check gave it. */
static Vec snapshot_counters(Elab *E) {
  Vec v = {0};
  for (int i = 0; i < E->counters.len; i++) {
    Counter *c = arena_alloc(E->a, sizeof *c);
    *c = *(Counter *)E->counters.items[i];
    vec_push(E->a, &v, c);
  }
  return v;
}

void elab_restore_counters(Elab *E, const Vec *snap) {
  E->counters.len = 0;
  for (int i = 0; i < snap->len; i++) {
    Counter *c = arena_alloc(E->a, sizeof *c);
    *c = *(Counter *)snap->items[i];
    vec_push(E->a, &E->counters, c);
  }
}

static int role_ready(Role *r) {
  for (int i = 0; i < r->conds.len; i++)
    if (!((Var *)r->conds.items[i])->shape_known) return 0;
  if (strcmp(r->kind, "encoder") == 0) return 1;
  for (int i = 0; i < r->targets.len; i++) {
    Var *v = r->targets.items[i];
    if (v->encoder && !v->encoder->elaborated) return 0;
  }
  return 1;
}

static void elaborate_role(Elab *E, Role *r) {
  Frame F = {0};
  F.mod = E->prog->main;
  F.in_model = 1;
  F.scope = arena_alloc(E->a, sizeof(Scope));
  F.prefix = r->name;
  F.role = r;
  F.body = ast_kid(r->node, 2);
  r->first_param = E->m->params.len;
  r->counters = snapshot_counters(E);
  for (int i = 0; i < r->conds.len; i++) {
    Var *v = r->conds.items[i];
    v->used = 1;
    elab_bind(E, F.scope, v->name, elab_var_tensor(E, v, r->node->span), NULL);
  }
  /* a generative role sees its own variables: only flows and
   * autoregressive roles may use them, which check.c verifies */
  Scope *own = NULL;
  if (strcmp(r->kind, "encoder") != 0) {
    own = arena_alloc(E->a, sizeof(Scope));
    for (int i = 0; i < r->targets.len; i++) {
      Var *v = r->targets.items[i];
      elab_bind(E, own, v->name, v->shape_known ? elab_var_tensor(E, v, r->node->span) : &poison, &r->self_reference);
    }
    own->parent = NULL;
    F.scope->parent = own;
  }
  Node *body = ast_kid(r->node, 2);
  if (body->kind == N_BLOCK) {
    exec_block(E, &F, body);
  } else {
    Value *v = body->kind == N_CALL ? eval_call(E, &F, body, r->name) : elab_eval(E, &F, body);
    if (v && r->targets.len != 1) {
      diag_error(E->d, body->span, "%s %s has several variables; define each in a block with '~' or '='", r->kind,
                 role_signature(E->a, r));
    } else if (v && v->kind != V_DIST && v->kind != V_TENSOR) {
      diag_error(E->d, body->span, "%s %s must be a distribution or a tensor, found %s", r->kind,
                 role_signature(E->a, r), val_kind_name(v));
    } else if (v) {
      r->produced.items[0] = v;
      Span *s = arena_alloc(E->a, sizeof *s);
      *s = body->span;
      r->draw_spans.items[0] = s;
    }
  }
  r->locals = F.scope;
  r->nparams = E->m->params.len - r->first_param;
  r->elaborated = 1;
  for (int i = 0; i < r->targets.len; i++) {
    Var *v = r->targets.items[i];
    Value *p = r->produced.items[i];
    if (!p) {
      if (diag_errors(E->d) == 0)
        diag_error(E->d, r->node->span, "%s %s never defines %s (use '%s ~ ...' or '%s = ...')", r->kind,
                   role_signature(E->a, r), v->name, v->name, v->name);
      continue;
    }
    if (v->shape_known) continue;
    Shape sh = p->kind == V_DIST ? p->dist->shape : p->shape;
    int numbers_only = p->kind == V_DIST && p->dist->fam != D_FLOW;
    for (int k = 0; k < 2 && numbers_only; k++)
      numbers_only = !p->dist->arg[k] || val_is_number(p->dist->arg[k]);
    if (numbers_only && sh.rank == 0) {
      diag_error(E->d, *(Span *)r->draw_spans.items[i],
                 "cannot tell the shape of %s: give it, as in %s ~ Normal(0, 1) : [d]", v->name, v->name);
      continue;
    }
    v->shape = sh;
    v->classes = p->kind == V_DIST ? p->dist->classes : p->classes;
    v->shape_known = 1;
  }
}

/* Runs a role's body again inside the graph being built. */
void elab_run_role(Elab *E, Role *r) {
  int ri = elab_role_index(E, r);
  if (E->role_state[ri]) return;
  E->role_state[ri] = 1;
  Vec saved = snapshot_counters(E);
  elab_restore_counters(E, &r->counters);
  Frame F = {0};
  F.mod = E->prog->main;
  F.in_model = 1;
  F.scope = arena_alloc(E->a, sizeof(Scope));
  F.prefix = r->name;
  F.role = r;
  F.body = ast_kid(r->node, 2);
  for (int i = 0; i < r->conds.len; i++) {
    Var *v = r->conds.items[i];
    elab_bind(E, F.scope, v->name, elab_var_tensor(E, v, r->node->span), NULL);
  }
  if (strcmp(r->kind, "encoder") != 0 && r->self_reference) { /* flows, autoregressive roles */
    Scope *own = arena_alloc(E->a, sizeof(Scope));
    for (int i = 0; i < r->targets.len; i++) {
      Var *v = r->targets.items[i];
      elab_bind(E, own, v->name, elab_var_tensor(E, v, r->node->span), NULL);
    }
    F.scope->parent = own;
  }
  Node *body = ast_kid(r->node, 2);
  if (body->kind == N_BLOCK) {
    exec_block(E, &F, body);
  } else {
    Value *v = body->kind == N_CALL ? eval_call(E, &F, body, r->name) : elab_eval(E, &F, body);
    if (v) define_target(E, &F, ((Var *)r->targets.items[0])->name, v, body->span);
  }
  E->role_scope[ri] = F.scope;
  E->role_state[ri] = 2;
  elab_restore_counters(E, &saved);
}

static void elaborate_roles(Elab *E) {
  for (int i = 0; i < E->m->roles.len; i++) {
    Role *r = E->m->roles.items[i];
    if (!strcmp(r->kind, "critic")) continue;
    for (int k = 0; k < r->targets.len; k++) {
      Var *v = r->targets.items[k];
      if (!strcmp(r->kind, "encoder")) {
        if (v->encoder) {
          diag_error(E->d, r->node->span, "%s has two encoders: %s and %s", v->name,
                     role_signature(E->a, v->encoder), role_signature(E->a, r));
          continue;
        }
        v->encoder = r;
      } else {
        if (v->generator) {
          diag_error(E->d, r->node->span, "%s is generated twice: by %s and by %s", v->name,
                     role_signature(E->a, v->generator), role_signature(E->a, r));
          continue;
        }
        v->generator = r;
      }
    }
  }
  for (;;) {
    int progress = 0, left = 0;
    for (int i = 0; i < E->m->roles.len; i++) {
      Role *r = E->m->roles.items[i];
      if (!strcmp(r->kind, "critic") || r->elaborated) continue;
      if (role_ready(r)) {
        elaborate_role(E, r);
        progress = 1;
      } else {
        left++;
      }
    }
    if (!left) break;
    if (!progress) {
      for (int i = 0; i < E->m->roles.len; i++) {
        Role *r = E->m->roles.items[i];
        if (!strcmp(r->kind, "critic") || r->elaborated) continue;
        for (int k = 0; k < r->conds.len; k++) {
          Var *v = r->conds.items[k];
          int failed = (v->encoder && v->encoder->elaborated) || (v->generator && v->generator->elaborated);
          if (!v->shape_known && !failed && diag_errors(E->d) == 0) {
            diag_error(E->d, r->node->span, "%s %s depends on %s, which %s", r->kind, role_signature(E->a, r),
                       v->name, v->encoder || v->generator ? "is only defined in terms of it (a cycle)"
                                                           : "no data declaration or role defines");
            break;
          }
        }
      }
      break;
    }
  }
}

/* The frame a loss is evaluated in: role letters (for q.h and p(x | z))
 * and every variable of the model. */
void elab_loss_frame(Elab *E, Frame *F) {
  memset(F, 0, sizeof *F);
  F->mod = E->prog->main;
  F->in_model = 1;
  F->scope = arena_alloc(E->a, sizeof(Scope));
  F->prefix = "";
  F->loss = 1;
  for (int i = 0; i < E->m->roles.len; i++) {
    Role *r = E->m->roles.items[i];
    if (strcmp(r->kind, "critic") == 0) continue;
    Value *v = val_new(E->a, V_ROLE, r->node->span);
    v->s = r->name;
    elab_bind(E, F->scope, r->name, v, NULL);
  }
  for (int i = 0; i < E->m->vars.len; i++) {
    Var *v = E->m->vars.items[i];
    elab_bind(E, F->scope, v->name, v->shape_known ? elab_var_tensor(E, v, v->decl->span) : &poison, &v->used);
  }
}

static void elaborate_losses(Elab *E, Node *model) {
  Frame F;
  elab_loss_frame(E, &F);
  for (int i = 0; i < ast_nkids(model); i++) {
    Node *it = ast_kid(model, i);
    if (!it || it->kind != N_LOSS) continue;
    if (model_loss(E->m, it->str)) {
      diag_error(E->d, it->span, "loss %s is defined twice", it->str);
      continue;
    }
    Loss *l = arena_alloc(E->a, sizeof *l);
    l->name = it->str;
    l->node = it;
    l->counters = snapshot_counters(E);
    l->value = elab_eval(E, &F, ast_kid(it, 0));
    vec_push(E->a, &E->m->losses, l);
  }
}

static Model *elaborate_model(Elab *E, Node *model, Define *defs, int ndefs) {
  Model *m = arena_alloc(E->a, sizeof *m);
  m->name = model->str;
  m->node = model;
  E->m = m;
  E->model_scope.head = NULL;
  E->counters.len = 0;
  E->names.len = 0;
  E->unrolled = 0;
  Frame F = {0};
  F.mod = E->prog->main;
  F.in_model = 1;
  F.scope = arena_alloc(E->a, sizeof(Scope));
  F.prefix = "";
  /* hypers first: everything else may use them */
  for (int i = 0; i < ast_nkids(model); i++) {
    Node *it = ast_kid(model, i);
    if (it && it->kind == N_HYPER)
      for (int k = 0; k < ast_nkids(it); k++) add_hyper(E, &F, ast_kid(it, k), defs, ndefs);
  }
  for (int i = 0; i < ast_nkids(model); i++) {
    Node *it = ast_kid(model, i);
    if (!it) continue;
    if (it->kind == N_FN || (it->kind == N_ROLE && !strcmp(it->str, "critic"))) {
      const char *name = it->kind == N_FN ? it->str : it->str2;
      if (!claim(E, name, it, it->kind == N_ROLE ? "a critic" : it->ival ? "a network" : "a function")) continue;
      Value *fv = func_value(E, it, E->prog->main, 1, it->span);
      elab_bind(E, &E->model_scope, name, fv, NULL);
    }
  }
  for (int i = 0; i < ast_nkids(model); i++) {
    Node *it = ast_kid(model, i);
    if (!it) continue;
    if (it->kind == N_DATA) add_data(E, &F, it);
    if (it->kind == N_PARAMDECL) {
      Value *v = declare_param(E, &F, it);
      if (claim(E, it->str, it, "a parameter")) elab_bind(E, &E->model_scope, it->str, v ? v : &poison, NULL);
    }
    if (it->kind == N_TRAIN) {
      if (m->train) {
        diag_error(E->d, it->span, "model %s has two train blocks", m->name);
        diag_note(E->d, m->train->span, "the first is here");
      } else {
        m->train = it;
      }
    }
  }
  collect_roles(E, model);
  elaborate_roles(E);
  elaborate_losses(E, model);
  Scope *keep = arena_alloc(E->a, sizeof *keep);
  *keep = E->model_scope;
  m->scope = keep;
  return m;
}

Vec shape_program(Diag *d, Arena *a, Program *prog, Define *defs, int ndefs) {
  Elab E = {0};
  E.d = d;
  E.a = a;
  E.prog = prog;
  Vec models = {0};
  for (int i = 0; i < ast_nkids(prog->main->file); i++) {
    Node *it = ast_kid(prog->main->file, i);
    if (it && it->kind == N_MODEL) vec_push(a, &models, elaborate_model(&E, it, defs, ndefs));
  }
  for (int i = 0; i < prog->main->imports.len && diag_errors(d) == 0; i++) {
    ImportRef *r = prog->main->imports.items[i];
    if (!r->used) diag_warning(d, r->node->span, "module %s is imported but never used", r->alias);
  }
  for (int i = 0; i < ndefs; i++)
    if (!defs[i].used) diag_error(d, span_none, "-D %s: no model declares a hyper named %s", defs[i].name, defs[i].name);
  return models;
}

