/* vmx.c - the .vmx file: gathering a compiled model (vmx_from_model), the
 * text writer and the reader.  The format is documented field by field in
 * docs/IR.md; the writer and the reader below follow it line by line.
 *
 * Determinism: every number is printed with a fixed format (%lld, %.9g),
 * file names are base names, nothing depends on pointers, time or the
 * machine.  vmx_from_model and vmx_read give the same structure for the
 * same model (vmc diff of a .vm against its .vmx relies on it), and
 * vmx_write(vmx_read(f)) reproduces f byte for byte.
 *
 * Source positions.  The graphs handed to vmx_from_model carry spans into
 * the compiler's Diag, which is gone by the time the file is written, and a
 * .vmx file has no Diag at all.  So the Vmx holds copies of the graphs whose
 * spans are positions already resolved: span.file indexes a process-wide
 * table of interned base names ("nn.vm"), span.lo is the line and span.hi
 * the column.  Both vmx_from_model and vmx_read produce spans of that kind,
 * and the writer prints them as graph_print would (@nn.vm:13:3). */
#include "vmx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "optimize.h"

/* ---- interned base names of source files -------------------------------- */

static char **where_files;
static int where_nfiles, where_cap;

static int where_intern(const char *base, size_t n) {
  for (int i = 0; i < where_nfiles; i++)
    if (strlen(where_files[i]) == n && !memcmp(where_files[i], base, n)) return i;
  if (where_nfiles == where_cap) {
    int cap = where_cap ? 2 * where_cap : 16;
    char **f = realloc(where_files, sizeof *f * (size_t)cap);
    if (!f) return -1;
    where_files = f;
    where_cap = cap;
  }
  char *s = malloc(n + 1);
  if (!s) return -1;
  memcpy(s, base, n);
  s[n] = '\0';
  where_files[where_nfiles] = s;
  return where_nfiles++;
}

static const char *base_name(const char *path) {
  const char *b = strrchr(path, '/');
  return b ? b + 1 : path;
}

/* ---- canonical text of values ------------------------------------------- */

static const char *str_quoted(Arena *a, const char *s) {
  size_t n = 2;
  for (const char *p = s; *p; p++) n += (*p == '"' || *p == '\\' || *p == '\n' || *p == '\t') ? 2 : 1;
  char *out = arena_alloc(a, n + 1), *q = out;
  *q++ = '"';
  for (const char *p = s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      *q++ = '\\';
      *q++ = *p;
    } else if (*p == '\n') {
      *q++ = '\\';
      *q++ = 'n';
    } else if (*p == '\t') {
      *q++ = '\\';
      *q++ = 't';
    } else {
      *q++ = *p;
    }
  }
  *q++ = '"';
  *q = '\0';
  return out;
}

static const char *value_text(Arena *a, const Value *v) {
  switch (v->kind) {
  case V_INT: return arena_printf(a, "%lld", v->i);
  case V_FLOAT: return arena_printf(a, "%.9g", v->f);
  case V_BOOL: return v->i ? "true" : "false";
  case V_STR: return str_quoted(a, v->s);
  case V_LIST:
  case V_TUPLE: {
    const char *s = "";
    for (int i = 0; i < v->items.len; i++) s = arena_printf(a, "%s%s%s", s, i ? ", " : "", value_text(a, v->items.items[i]));
    return arena_printf(a, v->kind == V_LIST ? "[%s]" : "(%s)", s);
  }
  default: return val_kind_name(v);
  }
}

static const char *value_type(const Value *v) {
  switch (v->kind) {
  case V_INT: return "int";
  case V_FLOAT: return "float";
  case V_BOOL: return "bool";
  case V_STR: return "string";
  default: return "list";
  }
}

static const char *shape_text(Arena *a, Shape s) { return shape_str(a, s); }

/* Compile-time numbers of the train block: literals, hypers, - and + - * /
 * on them, as check.c evaluates them.  NULL when it is anything else. */
static Value *const_value(Arena *a, const Model *m, const Node *n) {
  if (!n) return NULL;
  switch (n->kind) {
  case N_INT: return val_int(a, n->ival, n->span);
  case N_FLOAT: return val_float(a, n->num, n->span);
  case N_BOOL: {
    Value *v = val_new(a, V_BOOL, n->span);
    v->i = n->ival;
    return v;
  }
  case N_STR: {
    Value *v = val_new(a, V_STR, n->span);
    v->s = n->str;
    return v;
  }
  case N_NAME:
    for (int i = 0; i < m->hypers.len; i++) {
      Hyper *h = m->hypers.items[i];
      if (!strcmp(h->name, n->str)) return h->value;
    }
    return NULL;
  case N_UNOP: {
    Value *x = n->str[0] == '-' ? const_value(a, m, ast_kid(n, 0)) : NULL;
    if (x && x->kind == V_INT) return val_int(a, -x->i, n->span);
    if (x && x->kind == V_FLOAT) return val_float(a, -x->f, n->span);
    return NULL;
  }
  case N_BINOP: {
    Value *x = const_value(a, m, ast_kid(n, 0)), *y = const_value(a, m, ast_kid(n, 1));
    if (!x || !y || !val_is_number(x) || !val_is_number(y) || !strchr("+-*/", n->str[0]) || n->str[1]) return NULL;
    double p = val_number(x), q = val_number(y), r = 0;
    switch (n->str[0]) {
    case '+': r = p + q; break;
    case '-': r = p - q; break;
    case '*': r = p * q; break;
    default:
      if (q == 0) return NULL;
      r = p / q;
    }
    if (x->kind == V_INT && y->kind == V_INT && n->str[0] != '/') return val_int(a, (long long)r, n->span);
    return val_float(a, r, n->span);
  }
  default:
    return NULL;
  }
}

/* A number as an argument value: ints as ints, the rest with %.9g. */
static const char *const_text(Arena *a, const Model *m, const Node *n) {
  Value *v = const_value(a, m, n);
  return v ? value_text(a, v) : ast_text(a, n);
}

/* A data source as the runtime reads it: the call with each argument's
 * compile-time value, hypers replaced (files("d", valid = V) is written
 * valid = 0.1), lists item by item. */
static const char *source_text(Arena *a, const Model *m, const Node *n) {
  if (!n) return "";
  if (n->kind == N_CALL && !n->ival) {
    const char *s = "";
    for (int i = 1; i < ast_nkids(n); i++)
      s = arena_printf(a, "%s%s%s", s, i > 1 ? ", " : "", source_text(a, m, ast_kid(n, i)));
    return arena_printf(a, "%s(%s)", ast_text(a, ast_kid(n, 0)), s);
  }
  if (n->kind == N_NAMEDARG) return arena_printf(a, "%s = %s", n->str, source_text(a, m, ast_kid(n, 0)));
  if (n->kind == N_LIST) {
    const char *s = "";
    for (int i = 0; i < ast_nkids(n); i++)
      s = arena_printf(a, "%s%s%s", s, i ? ", " : "", source_text(a, m, ast_kid(n, i)));
    return arena_printf(a, "[%s]", s);
  }
  return const_text(a, m, n);
}

/* ---- vmx_from_model ------------------------------------------------------ */

static const char *where_text(Arena *a, const Diag *d, Span s) {
  if (!d || s.file < 0 || s.file >= d->nfiles) return NULL;
  int line, col;
  diag_line_col(d, s, &line, &col);
  return arena_printf(a, "%s:%d:%d", base_name(d->files[s.file].path), line, col);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static const char *source_hash(Arena *a, const Diag *d, const Program *prog) {
  uint64_t h = 0xcbf29ce484222325ULL;
  static const char zero = 0;
  for (int i = 0; prog && i < prog->modules.len; i++) {
    const Module *mod = prog->modules.items[i];
    int fid = mod->file ? mod->file->span.file : -1;
    if (d && (fid < 0 || fid >= d->nfiles))
      for (int k = 0; k < d->nfiles; k++)
        if (!strcmp(d->files[k].path, mod->path)) fid = k;
    const char *base = base_name(mod->path);
    h = fnv1a(h, base, strlen(base));
    h = fnv1a(h, &zero, 1);
    if (d && fid >= 0 && fid < d->nfiles) h = fnv1a(h, d->files[fid].text, (size_t)d->files[fid].len);
    h = fnv1a(h, &zero, 1);
  }
  return arena_printf(a, "%016" PRIx64, h);
}

static const char *dist_text(Arena *a, const Value *v) {
  static const char *names[] = {"Normal", "Laplace", "Bernoulli", "Categorical", "flow"};
  if (v->kind == V_TENSOR)
    return arena_printf(a, "%s%s", shape_text(a, v->shape), v->classes ? arena_printf(a, " codes of %d", v->classes) : "");
  if (v->kind != V_DIST) return val_kind_name(v);
  const Dist *d = v->dist;
  const char *s = arena_printf(a, "%s %s", names[d->fam], shape_text(a, d->shape));
  if (d->fam == D_FLOW && d->base && d->base->dist) s = arena_printf(a, "%s of %s", s, names[d->base->dist->fam]);
  if (d->classes) s = arena_printf(a, "%s of %d classes", s, d->classes);
  return s;
}

static const char *role_text(Arena *a, const Role *r) {
  const char *s = "";
  for (int k = 0; k < r->targets.len; k++) {
    const Var *v = r->targets.items[k];
    const Value *p = k < r->produced.len ? r->produced.items[k] : NULL;
    const char *t = arena_printf(a, "%s %s %s", v->name, p && p->kind == V_DIST ? "~" : "=", p ? dist_text(a, p) : "?");
    if (p && p->kind == V_DIST && v->shape_known && !shape_eq(p->dist->shape, v->shape))
      t = arena_printf(a, "%s broadcast to %s", t, shape_text(a, v->shape));
    s = arena_printf(a, "%s%s%s", s, *s ? "; " : "", t);
  }
  if (r->implicit) s = arena_printf(a, "%s%simplicit", s, *s ? "; " : "");
  if (r->autoregressive) s = arena_printf(a, "%s%sautoregressive", s, *s ? "; " : "");
  return s;
}

static const char *critic_signature(Arena *a, const Role *r) {
  const Node *params = ast_kid(r->node, 0);
  const char *s = "";
  for (int i = 0; i < ast_nkids(params); i++) {
    const Node *p = ast_kid(params, i);
    s = arena_printf(a, "%s%s%s", s, i ? ", " : "", p && p->str ? p->str : "?");
  }
  return arena_printf(a, "%s(%s)", r->name, s);
}

static void push_pair(Arena *a, Vec *v, const char *k, const char *x) {
  vec_push(a, v, (void *)k);
  vec_push(a, v, (void *)x);
}

/* The parameter names a group list selects (in parameter order) into out. */
static void select_names(Arena *a, const Model *m, const char *mark, Vec *out) {
  for (int i = 0; i < m->params.len; i++)
    if (mark[i]) vec_push(a, out, (void *)((Param *)m->params.items[i])->name);
}

static void mark_groups(const Model *m, const Node *groups, char *mark) {
  for (int k = 0; k < ast_nkids(groups); k++)
    if (ast_kid(groups, k) && ast_kid(groups, k)->str) model_select(m, ast_kid(groups, k)->str, mark);
}

typedef struct {
  const char *name;
  const char *dflt; /* NULL: none (must be given) */
} ArgDefault;

static const ArgDefault sgd_defaults[] = {{"lr", "0.01"}, {"momentum", "0"}, {"nesterov", "false"}, {"weight_decay", "0"}, {0, 0}};
static const ArgDefault adam_defaults[] = {{"lr", "0.001"}, {"beta1", "0.9"}, {"beta2", "0.999"}, {"eps", "1e-08"},
                                           {"weight_decay", "0"}, {0, 0}};
static const ArgDefault adamw_defaults[] = {{"lr", "0.001"}, {"beta1", "0.9"}, {"beta2", "0.999"}, {"eps", "1e-08"},
                                            {"weight_decay", "0.01"}, {0, 0}};
static const ArgDefault constant_defaults[] = {{0, 0}};
static const ArgDefault cosine_defaults[] = {{"min", "0"}, {0, 0}};
static const ArgDefault step_defaults[] = {{"every", NULL}, {"gamma", "0.5"}, {0, 0}};
static const ArgDefault exp_defaults[] = {{"gamma", "0.99"}, {0, 0}};
static const ArgDefault warmup_defaults[] = {{"steps", "1000"}, {0, 0}};

static const Node *named_arg(const Node *call, const char *name) {
  for (int i = 1; i < ast_nkids(call); i++) {
    const Node *a = ast_kid(call, i);
    if (a && a->kind == N_NAMEDARG && !strcmp(a->str, name)) return ast_kid(a, 0);
  }
  return NULL;
}

static const char *call_name(const Node *call) {
  const Node *h = call && call->kind == N_CALL ? ast_kid(call, 0) : NULL;
  return h && h->kind == N_NAME ? h->str : NULL;
}

/* A schedule call with every argument given, defaults filled in. */
static const char *schedule_text(Arena *a, const Model *m, const Node *call) {
  static const struct { const char *name; const ArgDefault *args; } scheds[] = {
      {"constant", constant_defaults}, {"cosine", cosine_defaults}, {"step", step_defaults},
      {"exponential", exp_defaults},   {"warmup", warmup_defaults}};
  if (!call) return "constant()";
  const char *name = call_name(call);
  for (size_t i = 0; name && i < sizeof scheds / sizeof *scheds; i++) {
    if (strcmp(scheds[i].name, name)) continue;
    const char *s = "";
    for (const ArgDefault *d = scheds[i].args; d->name; d++) {
      const Node *v = named_arg(call, d->name);
      const char *t = v ? const_text(a, m, v) : d->dflt;
      if (t) s = arena_printf(a, "%s%s%s = %s", s, *s ? ", " : "", d->name, t);
    }
    return arena_printf(a, "%s(%s)", name, s);
  }
  return ast_text(a, call);
}

static void fill_step(Arena *a, const Model *m, VmxStep *s, const Node *step) {
  const Node *opt = ast_kid(step, 0);
  const char *name = call_name(opt);
  const ArgDefault *defs = !name                    ? NULL
                           : !strcmp(name, "sgd")   ? sgd_defaults
                           : !strcmp(name, "adam")  ? adam_defaults
                           : !strcmp(name, "adamw") ? adamw_defaults
                                                    : NULL;
  s->optimizer = name ? name : ast_text(a, opt);
  for (const ArgDefault *d = defs; d && d->name; d++) {
    const Node *v = named_arg(opt, d->name);
    const char *t = v ? const_text(a, m, v) : d->dflt;
    if (t) push_pair(a, &s->args, d->name, t);
  }
  s->schedule = schedule_text(a, m, named_arg(opt, "schedule"));
  const Node *cb = named_arg(opt, "codebook"); /* ema(decay, eps), one word: codebook=ema(decay=0.99,eps=1e-05) */
  if (cb && call_name(cb) && !strcmp(call_name(cb), "ema")) {
    const Node *decay = named_arg(cb, "decay"), *eps = named_arg(cb, "eps");
    push_pair(a, &s->args, "codebook",
              arena_printf(a, "ema(decay=%s,eps=%s)", decay ? const_text(a, m, decay) : "0.99",
                           eps ? const_text(a, m, eps) : "1e-05"));
  }
}

static const char *const setting_order[] = {"batch", "epochs", "steps", "clip"};

/* Settings of a block as written, keyed by their index in setting_order. */
static void block_settings(Arena *a, const Model *m, const Node *block, const char **val, int *known) {
  for (int i = 0; i < ast_nkids(block); i++) {
    const Node *it = ast_kid(block, i);
    if (!it || it->kind != N_SETTING) continue;
    for (int k = 0; k < 4; k++)
      if (!strcmp(it->str, setting_order[k])) {
        val[k] = const_text(a, m, ast_kid(it, 0));
        known[k] = 1;
      }
  }
}

static void schedule_block(Arena *a, const Model *m, Vmx *x, const Node *block, const char *stage, const char **inherited,
                           int *steps_done) {
  VmxStage *st = arena_alloc(a, sizeof *st);
  st->stage = stage;
  const char *val[4] = {0};
  int known[4] = {0};
  block_settings(a, m, block, val, known);
  if (stage && inherited) { /* settings outside the stages are defaults for each */
    int sets_length = known[1] || known[2];
    for (int k = 0; k < 4; k++)
      if (!known[k] && inherited[k] && !(sets_length && (k == 1 || k == 2))) val[k] = inherited[k];
  }
  for (int k = 0; k < 4; k++)
    if (val[k]) push_pair(a, &st->settings, setting_order[k], val[k]);
  char *frozen = arena_alloc(a, (size_t)m->params.len + 1);
  for (int i = 0; i < ast_nkids(block); i++) {
    const Node *it = ast_kid(block, i);
    if (it && it->kind == N_FREEZE) mark_groups(m, ast_kid(it, 0), frozen);
  }
  select_names(a, m, frozen, &st->frozen);
  vec_push(a, &x->stages, st);
  const char *mine[4] = {0};
  for (int k = 0; k < 4; k++) mine[k] = val[k];
  for (int i = 0; i < ast_nkids(block); i++) {
    const Node *it = ast_kid(block, i);
    if (!it) continue;
    if (it->kind == N_STEP) {
      VmxStep *s = arena_alloc(a, sizeof *s);
      s->stage = stage;
      s->graph = arena_printf(a, "train.%d", (*steps_done)++);
      s->loss = it->str;
      s->maximize = it->num != 0;
      s->ratio = (int)it->ival;
      fill_step(a, m, s, it);
      char *mark = arena_alloc(a, (size_t)m->params.len + 1);
      mark_groups(m, ast_kid(it, 1), mark);
      select_names(a, m, mark, &s->params);
      vec_push(a, &x->steps, s);
    } else if (it->kind == N_STAGE) {
      schedule_block(a, m, x, it, it->str, mine, steps_done);
    }
  }
}

/* Copies of the graphs with spans resolved to (base name, line, column)
 * and float attributes rounded to the 9 digits the file holds. */
static Graph *copy_graph(Arena *a, const Diag *d, const Graph *g) {
  Graph *c = graph_new(a, g->name);
  c->about = g->about;
  for (int i = 0; i < g->nodes.len; i++) {
    const GNode *n = g->nodes.items[i];
    GNode *k = arena_alloc(a, sizeof *k);
    *k = *n;
    k->in = arena_alloc(a, sizeof(int) * (size_t)(n->nin + 1));
    for (int j = 0; j < n->nin; j++) k->in[j] = n->in[j];
    char num[64];
    snprintf(num, sizeof num, "%.9g", n->f);
    k->f = strtod(num, NULL);
    k->span = span_none;
    if (d && n->span.file >= 0 && n->span.file < d->nfiles) {
      int line, col;
      diag_line_col(d, n->span, &line, &col);
      const char *base = base_name(d->files[n->span.file].path);
      int f = where_intern(base, strlen(base));
      if (f >= 0) k->span = span_make(f, line, col);
    }
    vec_push(a, &c->nodes, k);
  }
  for (int i = 0; i < g->outputs.len; i++) {
    const GOutput *o = g->outputs.items[i];
    graph_output(c, o->name, o->node);
  }
  return c;
}

Vmx *vmx_from_model(Arena *a, const Diag *d, const Program *prog, const Model *m, Vec graphs) {
  Vmx *x = arena_alloc(a, sizeof *x);
  x->version = VMX_VERSION;
  x->model = m->name;
  x->source = prog && prog->main ? base_name(prog->main->path) : "";
  x->source_hash = source_hash(a, d, prog);
  for (int i = 0; i < m->hypers.len; i++) {
    const Hyper *h = m->hypers.items[i];
    VmxHyper *o = arena_alloc(a, sizeof *o);
    o->name = h->name;
    o->type = h->value ? value_type(h->value) : "int";
    o->value = h->value ? value_text(a, h->value) : "?";
    vec_push(a, &x->hypers, o);
  }
  for (int i = 0; i < m->vars.len; i++) {
    const Var *v = m->vars.items[i];
    VmxData *o = arena_alloc(a, sizeof *o);
    o->name = v->name;
    o->domain = v->is_data ? v->domain : "latent";
    o->shape = v->shape;
    o->classes = v->classes;
    if (v->is_data) {
      const char *e = "";
      if (v->has_range) e = arena_printf(a, "in [%.9g, %.9g]", v->lo, v->hi);
      const Node *src = v->decl ? ast_kid(v->decl, 3) : NULL;
      if (src) e = arena_printf(a, "%s%sfrom %s", e, *e ? " " : "", source_text(a, m, src));
      o->extra = *e ? e : NULL;
    }
    vec_push(a, &x->data, o);
  }
  for (int i = 0; i < m->params.len; i++) {
    const Param *p = m->params.items[i];
    VmxParam *o = arena_alloc(a, sizeof *o);
    o->name = p->name;
    o->shape = p->shape;
    o->init = p->init;
    o->where = where_text(a, d, p->span);
    vec_push(a, &x->params, o);
  }
  for (int i = 0; i < m->roles.len; i++) {
    const Role *r = m->roles.items[i];
    VmxRole *o = arena_alloc(a, sizeof *o);
    int critic = !strcmp(r->kind, "critic");
    o->kind = r->kind;
    o->signature = critic ? critic_signature(a, r) : role_signature(a, r);
    o->text = role_text(a, r);
    vec_push(a, &x->roles, o);
  }
  for (int i = 0; i < m->losses.len; i++) {
    const Loss *l = m->losses.items[i];
    VmxLoss *o = arena_alloc(a, sizeof *o);
    o->name = l->name;
    o->text = ast_text(a, ast_kid(l->node, 0));
    vec_push(a, &x->losses, o);
  }
  if (m->train) {
    int steps = 0;
    schedule_block(a, m, x, m->train, NULL, NULL, &steps);
  }
  for (int i = 0; i < graphs.len; i++) vec_push(a, &x->graphs, copy_graph(a, d, graphs.items[i]));
  return x;
}

/* ---- vmx_write ------------------------------------------------------------ */

static void put_shape(FILE *out, Shape s) {
  fputc('[', out);
  for (int i = 0; i < s.rank; i++) fprintf(out, "%s%lld", i ? ", " : "", s.d[i]);
  fputc(']', out);
}

/* One node, exactly as graph_print prints it. */
static void put_node(FILE *out, const GNode *n) {
  char where[300];
  int known = n->span.file >= 0 && n->span.file < where_nfiles;
  if (known) snprintf(where, sizeof where, "%s:%d:%d", where_files[n->span.file], n->span.lo, n->span.hi);
  graph_print_node(out, n, known ? where : NULL);
}

static void put_graph(FILE *out, const Graph *g) {
  fprintf(out, "graph %s\n", g->name);
  if (g->about) fprintf(out, "  # %s\n", g->about);
  for (int i = 0; i < g->nodes.len; i++) put_node(out, g->nodes.items[i]);
  for (int i = 0; i < g->outputs.len; i++) {
    const GOutput *o = g->outputs.items[i];
    fprintf(out, "  output %s %%%d\n", o->name, o->node);
  }
  Plan p = optimize_plan_summary(g);
  fprintf(out, "  plan buffers=%d batched=%lld fixed=%lld\n", p.nbuffers, p.batched_floats, p.fixed_floats);
}

void vmx_write(FILE *out, const Vmx *x) {
  fprintf(out, "vmx %d\n", x->version);
  fprintf(out, "model %s\n", x->model);
  fprintf(out, "source %s\n", x->source ? x->source : "");
  fprintf(out, "hash %s\n", x->source_hash ? x->source_hash : "0000000000000000");
  for (int i = 0; i < x->hypers.len; i++) {
    const VmxHyper *h = x->hypers.items[i];
    fprintf(out, "hyper %s %s %s\n", h->name, h->type, h->value);
  }
  for (int i = 0; i < x->data.len; i++) {
    const VmxData *v = x->data.items[i];
    fprintf(out, "data %s %s ", v->name, v->domain);
    put_shape(out, v->shape);
    if (v->classes) fprintf(out, " classes=%d", v->classes);
    if (v->extra) fprintf(out, " %s", v->extra);
    fputc('\n', out);
  }
  for (int i = 0; i < x->params.len; i++) {
    const VmxParam *p = x->params.items[i];
    fprintf(out, "param %s ", p->name);
    put_shape(out, p->shape);
    fprintf(out, " %s", p->init ? p->init : "?");
    if (p->where) fprintf(out, " @%s", p->where);
    fputc('\n', out);
  }
  for (int i = 0; i < x->roles.len; i++) {
    const VmxRole *r = x->roles.items[i];
    fprintf(out, "role %s %s", r->kind, r->signature);
    if (r->text && *r->text) fprintf(out, " : %s", r->text);
    fputc('\n', out);
  }
  for (int i = 0; i < x->losses.len; i++) {
    const VmxLoss *l = x->losses.items[i];
    fprintf(out, "loss %s %s\n", l->name, l->text);
  }
  for (int i = 0; i < x->stages.len; i++) {
    const VmxStage *s = x->stages.items[i];
    fprintf(out, "stage %s\n", s->stage ? s->stage : "-");
    for (int k = 0; k + 1 < s->settings.len; k += 2)
      fprintf(out, "  set %s %s\n", (const char *)s->settings.items[k], (const char *)s->settings.items[k + 1]);
    for (int k = 0; k < s->frozen.len; k++) fprintf(out, "  freeze %s\n", (const char *)s->frozen.items[k]);
  }
  for (int i = 0; i < x->steps.len; i++) {
    const VmxStep *s = x->steps.items[i];
    fprintf(out, "step %s %s %s %s ratio=%d\n", s->graph, s->stage ? s->stage : "-", s->maximize ? "maximize" : "minimize",
            s->loss, s->ratio);
    fprintf(out, "  optimizer %s", s->optimizer);
    for (int k = 0; k + 1 < s->args.len; k += 2)
      fprintf(out, " %s=%s", (const char *)s->args.items[k], (const char *)s->args.items[k + 1]);
    fputc('\n', out);
    fprintf(out, "  schedule %s\n", s->schedule ? s->schedule : "constant()");
    for (int k = 0; k < s->params.len; k++) fprintf(out, "  over %s\n", (const char *)s->params.items[k]);
  }
  for (int i = 0; i < x->graphs.len; i++) put_graph(out, x->graphs.items[i]);
  fputs("end\n", out);
}

/* ---- vmx_read ------------------------------------------------------------- */

typedef struct {
  Arena *a;
  const char *path;
  char *err;
  size_t errlen;
  char **lines;
  int nlines, at; /* at: the next line, 0-based */
  int failed;
} Reader;

/* A token of the offending text, for "found ...". */
static const char *found(Reader *R, const char *s) {
  if (!s) return "end of file";
  size_t n = strlen(s);
  if (n == 0) return "an empty line";
  if (n > 60) return arena_printf(R->a, "'%.57s...'", s);
  return arena_printf(R->a, "'%s'", s);
}

static void fail_at(Reader *R, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_at(Reader *R, int line, const char *fmt, ...) {
  if (R->failed) return;
  R->failed = 1;
  int n = snprintf(R->err, R->errlen, "%s:%d: ", R->path, line);
  if (n < 0 || (size_t)n >= R->errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(R->err + n, R->errlen - (size_t)n, fmt, ap);
  va_end(ap);
}

/* "expected WHAT, found ..." about the current line. */
static void expected(Reader *R, const char *what, const char *token) {
  if (R->at >= R->nlines)
    fail_at(R, R->nlines + 1, "expected %s, found end of file (the file is truncated: it has no 'end' line)", what);
  else
    fail_at(R, R->at + 1, "expected %s, found %s", what, found(R, token ? token : R->lines[R->at]));
}

static const char *peek(Reader *R) { return R->at < R->nlines ? R->lines[R->at] : NULL; }

/* The rest of the current line after "WORD " when it starts so. */
static const char *after(const char *line, const char *word) {
  size_t n = strlen(word);
  if (!line || strncmp(line, word, n)) return NULL;
  if (line[n] == ' ') return line + n + 1;
  return NULL;
}

static int is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
         c == '-';
}

/* A word of name characters at *p; advances past it. */
static const char *word(Reader *R, const char **p) {
  const char *s = *p;
  while (is_name_char(**p)) (*p)++;
  if (*p == s) return NULL;
  return arena_strndup(R->a, s, (size_t)(*p - s));
}

static int parse_ll(const char **p, long long *out) {
  char *end;
  errno = 0;
  if (!(**p == '-' || (**p >= '0' && **p <= '9'))) return 0;
  long long v = strtoll(*p, &end, 10);
  if (end == *p || errno) return 0;
  *out = v;
  *p = end;
  return 1;
}

static int parse_int(const char **p, int *out) {
  long long v;
  if (!parse_ll(p, &v) || v < -2147483647LL || v > 2147483647LL) return 0;
  *out = (int)v;
  return 1;
}

static int parse_shape(const char **p, Shape *s) {
  const char *q = *p;
  if (*q++ != '[') return 0;
  s->rank = 0;
  if (*q == ']') {
    *p = q + 1;
    return 1;
  }
  for (;;) {
    long long d;
    if (s->rank == MAX_RANK || !parse_ll(&q, &d) || d < 0) return 0;
    s->d[s->rank++] = d;
    if (*q == ']') break;
    if (q[0] != ',' || q[1] != ' ') return 0;
    q += 2;
  }
  *p = q + 1;
  return 1;
}

static int eat(const char **p, const char *lit) {
  size_t n = strlen(lit);
  if (strncmp(*p, lit, n)) return 0;
  *p += n;
  return 1;
}

/* Parses "file:line:col" into an interned span. */
static int parse_where(const char *s, Span *out) {
  const char *c2 = strrchr(s, ':');
  if (!c2 || c2 == s) return 0;
  const char *c1 = c2 - 1;
  while (c1 > s && *c1 != ':') c1--;
  if (*c1 != ':' || c1 == s) return 0;
  const char *q = c1 + 1;
  int line, col;
  if (!parse_int(&q, &line) || q != c2 || line < 1) return 0;
  q = c2 + 1;
  if (!parse_int(&q, &col) || *q || col < 1) return 0;
  for (const char *b = s; b < c1; b++)
    if (*b == ' ' || *b == '/') return 0;
  int f = where_intern(s, (size_t)(c1 - s));
  if (f < 0) return 0;
  *out = span_make(f, line, col);
  return 1;
}

static int read_node(Reader *R, Graph *g, const char *line) {
  const char *p = line + 2, *start;
  GNode *n = arena_alloc(R->a, sizeof *n);
  n->buffer = -1;
  n->span = span_none;
  int id;
  if (!eat(&p, "%") || !parse_int(&p, &id) || !eat(&p, " = ")) {
    expected(R, "a node '%ID = OP ...'", NULL);
    return 0;
  }
  if (id != g->nodes.len) {
    fail_at(R, R->at + 1, "expected node %%%d, found %%%d (nodes are numbered in order)", g->nodes.len, id);
    return 0;
  }
  n->id = id;
  start = p;
  while (*p && *p != ' ') p++;
  char *opname = arena_strndup(R->a, start, (size_t)(p - start));
  int op = op_from_name(opname);
  if (op < 0) {
    expected(R, "an op name (see docs/IR.md)", opname);
    return 0;
  }
  n->op = (Op)op;
  int ins[1024], nin = 0;
  while (p[0] == ' ' && p[1] == '%') {
    const char *tok = p + 1;
    p += 2;
    int k;
    if (!parse_int(&p, &k) || k < 0 || k >= id) {
      const char *e = strchr(tok, ' ');
      fail_at(R, R->at + 1, "expected an input %%K with K < %d, found %s", id,
              found(R, arena_strndup(R->a, tok, e ? (size_t)(e - tok) : strlen(tok))));
      return 0;
    }
    if (nin == 1024) {
      fail_at(R, R->at + 1, "too many inputs");
      return 0;
    }
    ins[nin++] = k;
  }
  if (op_arity(n->op) >= 0 && nin != op_arity(n->op)) {
    fail_at(R, R->at + 1, "expected %d input%s for %s, found %d", op_arity(n->op), op_arity(n->op) == 1 ? "" : "s",
            opname, nin);
    return 0;
  }
  n->nin = nin;
  n->in = arena_alloc(R->a, sizeof(int) * (size_t)(nin + 1));
  for (int k = 0; k < nin; k++) n->in[k] = ins[k];
  if (!eat(&p, " ") || !parse_shape(&p, &n->shape)) {
    expected(R, "a shape such as [784] or [] after the inputs", p);
    return 0;
  }
  if (eat(&p, " batched")) n->batched = 1;
  int ok = 1;
  if (ok && eat(&p, " codes=")) ok = parse_int(&p, &n->classes) && n->classes > 0;
  for (int k = 0; ok && k < GRAPH_NI; k++) {
    char key[8];
    snprintf(key, sizeof key, " i%d=", k);
    if (eat(&p, key)) ok = parse_ll(&p, &n->i[k]);
  }
  int has_f = 0;
  if (ok && eat(&p, " f=")) {
    char *end;
    n->f = strtod(p, &end);
    ok = end != p;
    p = end;
    has_f = 1;
  }
  if (ok && (n->op == OP_CONST || n->op == OP_FILL) && !has_f) {
    fail_at(R, R->at + 1, "expected f=VALUE for %s, found %s", opname, found(R, *p ? p + 1 : p));
    return 0;
  }
  if (ok && eat(&p, " s=\"")) {
    const char *q = strchr(p, '"');
    if (!q) ok = 0;
    else {
      n->s = arena_strndup(R->a, p, (size_t)(q - p));
      p = q + 1;
    }
  }
  if (ok && eat(&p, " group=")) ok = parse_int(&p, &n->group) && n->group > 0;
  if (ok && eat(&p, " buf=")) ok = parse_int(&p, &n->buffer) && n->buffer >= 0;
  if (ok && eat(&p, " name=")) ok = (n->name = word(R, &p)) != NULL;
  if (ok && eat(&p, " @")) {
    ok = parse_where(p, &n->span);
    if (ok) p += strlen(p);
  }
  if (!ok || *p) {
    expected(R, "node attributes in the order: batched codes= i0..i3= f= s= group= buf= name= @file:line:col",
             *p == ' ' ? p + 1 : p);
    return 0;
  }
  /* the shape rule must agree with what the file says */
  GNode check = *n;
  int fits = graph_infer(g, &check);
  if (!fits || !shape_eq(check.shape, n->shape) || check.batched != n->batched || check.classes != n->classes) {
    fail_at(R, R->at + 1, "node %%%d (%s) does not fit its inputs: the shape rule gives %s%s", id, opname,
            fits ? shape_str(R->a, check.shape) : "no shape", fits && check.batched ? " batched" : "");
    return 0;
  }
  vec_push(R->a, &g->nodes, n);
  return 1;
}

static Graph *read_graph(Reader *R) {
  const char *name = after(peek(R), "graph");
  Graph *g = graph_new(R->a, arena_strdup(R->a, name));
  R->at++;
  const char *l = peek(R);
  if (l && !strncmp(l, "  # ", 4)) {
    g->about = arena_strdup(R->a, l + 4);
    R->at++;
  }
  while ((l = peek(R)) && !strncmp(l, "  %", 3)) {
    if (!read_node(R, g, l)) return NULL;
    R->at++;
  }
  while ((l = peek(R)) && !strncmp(l, "  output ", 9)) {
    const char *p = l + 9;
    const char *oname = word(R, &p);
    int node;
    if (!oname || !eat(&p, " %") || !parse_int(&p, &node) || *p) {
      expected(R, "'output NAME %N'", NULL);
      return NULL;
    }
    if (node < 0 || node >= g->nodes.len) {
      fail_at(R, R->at + 1, "expected an output node below %%%d, found %%%d", g->nodes.len, node);
      return NULL;
    }
    graph_output(g, oname, node);
    R->at++;
  }
  const char *p = peek(R);
  int nb;
  long long bf, ff;
  if (!p || !eat(&p, "  plan buffers=") || !parse_int(&p, &nb) || !eat(&p, " batched=") || !parse_ll(&p, &bf) ||
      !eat(&p, " fixed=") || !parse_ll(&p, &ff) || *p) {
    expected(R, g->nodes.len || g->outputs.len ? "a node, an output or 'plan buffers=N batched=N fixed=N'"
                                               : "a node '%ID = OP ...'",
             NULL);
    return NULL;
  }
  R->at++;
  return g;
}

/* "key=value" words into a pair list. */
static int read_pairs(Reader *R, const char *p, Vec *out) {
  while (*p) {
    if (!eat(&p, " ")) return 0;
    const char *k = p;
    while (*p && *p != '=' && *p != ' ') p++;
    if (*p != '=' || p == k) return 0;
    const char *key = arena_strndup(R->a, k, (size_t)(p - k));
    const char *v = ++p;
    while (*p && *p != ' ') p++;
    if (p == v) return 0;
    push_pair(R->a, out, key, arena_strndup(R->a, v, (size_t)(p - v)));
  }
  return 1;
}

static int read_body(Reader *R, Vmx *x) {
  const char *l, *p;
  /* header: vmx, model, source, hash */
  if (!(p = after(peek(R), "vmx"))) {
    expected(R, "'vmx 1' (is this a .vmx file?)", NULL);
    return 0;
  }
  int version;
  if (!parse_int(&p, &version) || *p) {
    expected(R, "'vmx 1'", NULL);
    return 0;
  }
  if (version != VMX_VERSION) {
    fail_at(R, 1, "this is vmx version %d; this vmc reads version %d", version, VMX_VERSION);
    return 0;
  }
  x->version = version;
  R->at++;
  if (!(p = after(peek(R), "model")) || !(x->model = word(R, &p)) || *p) {
    expected(R, "'model NAME'", NULL);
    return 0;
  }
  R->at++;
  if (!(p = after(peek(R), "source")) || !*p || strchr(p, ' ') || strchr(p, '/')) {
    expected(R, "'source FILE' (a base name)", NULL);
    return 0;
  }
  x->source = arena_strdup(R->a, p);
  R->at++;
  p = after(peek(R), "hash");
  if (!p || strlen(p) != 16 || strspn(p, "0123456789abcdef") != 16) {
    expected(R, "'hash' and 16 hex digits", NULL);
    return 0;
  }
  x->source_hash = arena_strdup(R->a, p);
  R->at++;
  while ((p = after(peek(R), "hyper"))) {
    VmxHyper *h = arena_alloc(R->a, sizeof *h);
    const char *type;
    if (!(h->name = word(R, &p)) || !eat(&p, " ") || !(type = word(R, &p)) || !eat(&p, " ") || !*p) {
      expected(R, "'hyper NAME TYPE VALUE'", NULL);
      return 0;
    }
    if (strcmp(type, "int") && strcmp(type, "float") && strcmp(type, "bool") && strcmp(type, "string") &&
        strcmp(type, "list")) {
      expected(R, "a hyper type (int, float, bool, string or list)", type);
      return 0;
    }
    h->type = type;
    h->value = arena_strdup(R->a, p);
    vec_push(R->a, &x->hypers, h);
    R->at++;
  }
  while ((p = after(peek(R), "data"))) {
    VmxData *v = arena_alloc(R->a, sizeof *v);
    if (!(v->name = word(R, &p)) || !eat(&p, " ") || !(v->domain = word(R, &p)) || !eat(&p, " ") ||
        !parse_shape(&p, &v->shape)) {
      expected(R, "'data NAME DOMAIN SHAPE ...'", NULL);
      return 0;
    }
    if (strcmp(v->domain, "bit") && strcmp(v->domain, "real") && strcmp(v->domain, "cat") && strcmp(v->domain, "latent")) {
      expected(R, "a domain (bit, real, cat or latent)", v->domain);
      return 0;
    }
    if (eat(&p, " classes=") && (!parse_int(&p, &v->classes) || v->classes < 1)) {
      expected(R, "classes=K with K > 0", NULL);
      return 0;
    }
    if (*p && (!eat(&p, " ") || !*p)) {
      expected(R, "the data's range and source after its shape", NULL);
      return 0;
    }
    v->extra = *p ? arena_strdup(R->a, p) : NULL;
    vec_push(R->a, &x->data, v);
    R->at++;
  }
  while ((p = after(peek(R), "param"))) {
    VmxParam *q = arena_alloc(R->a, sizeof *q);
    if (!(q->name = word(R, &p)) || !eat(&p, " ") || !parse_shape(&p, &q->shape) || !eat(&p, " ") || !*p) {
      expected(R, "'param NAME SHAPE INIT @FILE:LINE:COL'", NULL);
      return 0;
    }
    const char *at = strstr(p, " @");
    Span sp;
    if (at && !parse_where(at + 2, &sp)) {
      expected(R, "'@FILE:LINE:COL' at the end of the param line", at + 1);
      return 0;
    }
    q->init = arena_strndup(R->a, p, at ? (size_t)(at - p) : strlen(p));
    q->where = at ? arena_strdup(R->a, at + 2) : NULL;
    vec_push(R->a, &x->params, q);
    R->at++;
  }
  while ((p = after(peek(R), "role"))) {
    VmxRole *r = arena_alloc(R->a, sizeof *r);
    if (!(r->kind = word(R, &p)) || !eat(&p, " ") || !*p) {
      expected(R, "'role KIND SIGNATURE : TEXT'", NULL);
      return 0;
    }
    const char *colon = strstr(p, " : ");
    r->signature = arena_strndup(R->a, p, colon ? (size_t)(colon - p) : strlen(p));
    r->text = colon ? arena_strdup(R->a, colon + 3) : "";
    vec_push(R->a, &x->roles, r);
    R->at++;
  }
  while ((p = after(peek(R), "loss"))) {
    VmxLoss *o = arena_alloc(R->a, sizeof *o);
    if (!(o->name = word(R, &p)) || !eat(&p, " ") || !*p) {
      expected(R, "'loss NAME TEXT'", NULL);
      return 0;
    }
    o->text = arena_strdup(R->a, p);
    vec_push(R->a, &x->losses, o);
    R->at++;
  }
  while ((p = after(peek(R), "stage"))) {
    VmxStage *s = arena_alloc(R->a, sizeof *s);
    const char *name = word(R, &p);
    if (!name || *p) {
      expected(R, "'stage NAME' or 'stage -'", NULL);
      return 0;
    }
    s->stage = strcmp(name, "-") ? name : NULL;
    R->at++;
    while ((p = after(peek(R), "  set"))) {
      const char *k = word(R, &p);
      if (!k || !eat(&p, " ") || !*p || strchr(p, ' ')) {
        expected(R, "'set KEY VALUE'", NULL);
        return 0;
      }
      push_pair(R->a, &s->settings, k, arena_strdup(R->a, p));
      R->at++;
    }
    while ((p = after(peek(R), "  freeze"))) {
      const char *k = word(R, &p);
      if (!k || *p) {
        expected(R, "'freeze PARAM'", NULL);
        return 0;
      }
      vec_push(R->a, &s->frozen, (void *)k);
      R->at++;
    }
    vec_push(R->a, &x->stages, s);
  }
  while ((p = after(peek(R), "step"))) {
    VmxStep *s = arena_alloc(R->a, sizeof *s);
    const char *stage, *dir;
    if (!(s->graph = word(R, &p)) || !eat(&p, " ") || !(stage = word(R, &p)) || !eat(&p, " ") || !(dir = word(R, &p)) ||
        (strcmp(dir, "minimize") && strcmp(dir, "maximize")) || !eat(&p, " ") || !(s->loss = word(R, &p)) ||
        !eat(&p, " ratio=") || !parse_int(&p, &s->ratio) || s->ratio < 1 || *p) {
      expected(R, "'step GRAPH STAGE minimize|maximize LOSS ratio=N'", NULL);
      return 0;
    }
    s->stage = strcmp(stage, "-") ? stage : NULL;
    s->maximize = !strcmp(dir, "maximize");
    R->at++;
    if (!(p = after(peek(R), "  optimizer")) || !(s->optimizer = word(R, &p)) || !read_pairs(R, p, &s->args)) {
      expected(R, "'optimizer NAME KEY=VALUE...'", NULL);
      return 0;
    }
    R->at++;
    if (!(p = after(peek(R), "  schedule")) || !*p) {
      expected(R, "'schedule TEXT'", NULL);
      return 0;
    }
    s->schedule = arena_strdup(R->a, p);
    R->at++;
    while ((p = after(peek(R), "  over"))) {
      const char *k = word(R, &p);
      if (!k || *p) {
        expected(R, "'over PARAM'", NULL);
        return 0;
      }
      vec_push(R->a, &s->params, (void *)k);
      R->at++;
    }
    vec_push(R->a, &x->steps, s);
  }
  while ((l = peek(R)) && after(l, "graph")) {
    p = after(l, "graph");
    const char *q = p;
    if (!word(R, &q) || *q) {
      expected(R, "'graph NAME'", NULL);
      return 0;
    }
    Graph *g = read_graph(R);
    if (!g) return 0;
    vec_push(R->a, &x->graphs, g);
  }
  l = peek(R);
  if (!l || strcmp(l, "end")) {
    expected(R, x->graphs.len ? "'graph NAME' or 'end'" : "a section line (hyper, data, param, role, loss, stage, step, graph) or 'end'",
             NULL);
    return 0;
  }
  R->at++;
  if (R->at < R->nlines) {
    fail_at(R, R->at + 1, "expected nothing after 'end', found %s", found(R, R->lines[R->at]));
    return 0;
  }
  return 1;
}

Vmx *vmx_read(Arena *a, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  for (size_t got; buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
    len += got;
    if (cap - len - 1 == 0) {
      char *b = realloc(buf, cap * 2);
      if (!b) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = b;
      cap *= 2;
    }
  }
  int bad = !buf || ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    snprintf(err, errlen, "cannot read %s", path);
    return NULL;
  }
  buf[len] = '\0';
  Reader R = {a, path, err, errlen, NULL, 0, 0, 0};
  if (memchr(buf, '\0', len)) {
    int line = 1;
    for (const char *q = buf; *q; q++) line += *q == '\n';
    fail_at(&R, line, "expected text, found a NUL byte");
    free(buf);
    return NULL;
  }
  /* split into lines; a last line without '\n' is a truncated file */
  int n = 0;
  for (size_t i = 0; i < len; i++) n += buf[i] == '\n';
  int partial = len > 0 && buf[len - 1] != '\n';
  R.lines = arena_alloc(a, sizeof(char *) * (size_t)(n + 2));
  char *s = buf;
  for (int i = 0; i < n + partial; i++) {
    char *e = strchr(s, '\n');
    size_t k = e ? (size_t)(e - s) : strlen(s);
    R.lines[i] = arena_strndup(a, s, k);
    s += k + 1;
  }
  free(buf);
  R.nlines = n + partial;
  if (partial && strcmp(R.lines[R.nlines - 1], "end")) R.nlines--; /* cut in the middle of a line */
  Vmx *x = arena_alloc(a, sizeof *x);
  return read_body(&R, x) ? x : NULL;
}
