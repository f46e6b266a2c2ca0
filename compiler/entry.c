/* entry.c - the entry points of a checked model, each lowered to a graph:
 * one per training step (forward, loss, gradients of its parameter group,
 * and for codebooks updated by moving averages what the batch assigned),
 * encode, decode, reconstruct, sample (and the one-position steps of
 * autoregressive and flow priors), elbo, iw and logjoint.  The model is run
 * again by the elaborator (shape.c) with lowering on (elab.h). */
#include <stdint.h>
#include <string.h>

#include "autodiff.h"
#include "elab.h"
#include "lower.h"
#include "shape.h"


static void begin_graph(Elab *E, Graph *g) {
  Lower *L = arena_alloc(E->a, sizeof *L);
  L->g = g;
  L->d = E->d;
  L->a = E->a;
  E->L = L;
  int nv = E->m->vars.len, nr = E->m->roles.len;
  E->var_node = arena_alloc(E->a, sizeof(int) * (size_t)(nv + 1));
  for (int i = 0; i < nv; i++) E->var_node[i] = -1;
  E->role_out = arena_alloc(E->a, sizeof(Value **) * (size_t)(nr + 1));
  E->role_sample = arena_alloc(E->a, sizeof(int *) * (size_t)(nr + 1));
  E->role_scope = arena_alloc(E->a, sizeof(Scope *) * (size_t)(nr + 1));
  E->role_state = arena_alloc(E->a, (size_t)nr + 1);
  for (int i = 0; i < nr; i++) {
    Role *r = E->m->roles.items[i];
    E->role_out[i] = arena_alloc(E->a, sizeof(Value *) * (size_t)(r->targets.len + 1));
    E->role_sample[i] = arena_alloc(E->a, sizeof(int) * (size_t)(r->targets.len + 1));
    for (int t = 0; t < r->targets.len; t++) E->role_sample[i][t] = -1;
  }
}

static int scalar_node(Elab *E, int x, Span at) {
  GNode *n = graph_node(E->L->g, x);
  return n->shape.rank ? graph_add(E->L->g, OP_SUM, &x, 1, at, NULL) : x;
}

/* A loss's per-example value, as a scalar node. */
static int loss_node(Elab *E, Loss *l) {
  elab_restore_counters(E, &l->counters);
  Frame F;
  elab_loss_frame(E, &F);
  Value *v = elab_eval(E, &F, ast_kid(l->node, 0));
  if (!v) return -1;
  if (v->kind != V_TENSOR || v->node < 0) {
    diag_error(E->d, l->node->span, "loss %s has nothing to differentiate", l->name);
    return -1;
  }
  return scalar_node(E, v->node, l->node->span);
}

static int add2(Elab *E, Op op, int a, int b, Span at) {
  int in[2] = {a, b};
  return graph_add(E->L->g, op, in, 2, at, NULL);
}

/* The codebook = ema(...) argument of a step's optimizer, or NULL. */
static Node *step_codebook(Node *step) {
  Node *opt = ast_kid(step, 0);
  for (int i = 1; opt && opt->kind == N_CALL && i < ast_nkids(opt); i++) {
    Node *a = ast_kid(opt, i);
    if (a && a->kind == N_NAMEDARG && !strcmp(a->str, "codebook")) return a;
  }
  return NULL;
}

/* A codebook updated by EMA gets, instead of its gradient, what the batch
 * assigned to each code: over every nearest(z, e) of the graph with e the
 * parameter node pid, *count [K, 1] the positions that took each code and
 * *sum [K, D] the sum of their z.  0 when no nearest() uses e. */
static int codebook_stats(Elab *E, Graph *g, const Param *p, int pid, Span at, int *count, int *sum) {
  *count = *sum = -1;
  int nodes = g->nodes.len;
  for (int i = 0; i < nodes; i++) {
    GNode *n = graph_node(g, i);
    if (n->op != OP_NEAREST || n->in[1] != pid) continue;
    GNode *ones = graph_begin(g, OP_FILL, NULL, 0, at, NULL); /* one per position, the same for every example */
    ones->shape = graph_node(g, n->in[0])->shape;
    ones->shape.d[0] = 1;
    ones->f = 1;
    int in[2][2] = {{graph_end(g, ones), i}, {n->in[0], i}}, got[2];
    for (int k = 0; k < 2; k++) {
      GNode *s = graph_begin(g, OP_EMBED_DW, in[k], 2, at, NULL);
      s->shape = p->shape;
      if (!k) s->shape.d[1] = 1;
      got[k] = graph_end(g, s);
    }
    *count = *count < 0 ? got[0] : add2(E, OP_ADD, *count, got[0], at);
    *sum = *sum < 0 ? got[1] : add2(E, OP_ADD, *sum, got[1], at);
  }
  return *sum >= 0;
}

static void train_graph(Elab *E, Vec *out, Node *step, const char *stage) {
  Graph *g = graph_new(E->a, arena_printf(E->a, "train.%d", out->len));
  const char *groups = "";
  for (int k = 0; k < ast_nkids(ast_kid(step, 1)); k++)
    groups = arena_printf(E->a, "%s%s%s", groups, k ? ", " : "", ast_kid(ast_kid(step, 1), k)->str);
  g->about = arena_printf(E->a, "%s%s%s%s %s over %s", stage ? "stage " : "", stage ? stage : "", stage ? ": " : "",
                          step->num != 0 ? "maximize" : "minimize", step->str, groups);
  begin_graph(E, g);
  Loss *l = model_loss(E->m, step->str);
  int x = l ? loss_node(E, l) : -1;
  if (x < 0) return;
  Span at = step->span;
  int reported = graph_add(g, OP_BATCH_MEAN, &x, 1, at, NULL);
  int objective = step->num != 0 ? graph_add(g, OP_NEG, &reported, 1, at, NULL) : reported;
  char *mark = arena_alloc(E->a, (size_t)E->m->params.len + 1);
  for (int k = 0; k < ast_nkids(ast_kid(step, 1)); k++) model_select(E->m, ast_kid(ast_kid(step, 1), k)->str, mark);
  /* codebook = ema(...): the codebooks among them are no gradient's business */
  Node *cb = step_codebook(step);
  int *ema = arena_alloc(E->a, sizeof(int) * 2 * (size_t)(E->m->params.len + 1)), nema = 0;
  for (int i = 0; i < E->m->params.len; i++) {
    ema[2 * i] = ema[2 * i + 1] = -1;
    if (cb && mark[i]) {
      Param *p = E->m->params.items[i];
      nema += codebook_stats(E, g, p, lower_param(E->L, p, at), at, &ema[2 * i], &ema[2 * i + 1]);
    }
  }
  if (cb && !nema) {
    diag_error(E->d, cb->span, "codebook = ema(...): no parameter this step trains is the codebook e of a nearest(z, e) "
               "in loss %s", step->str);
    return;
  }
  Vec wrt = {0};
  for (int i = 0; i < E->m->params.len; i++)
    if (mark[i] && ema[2 * i] < 0) vec_push(E->a, &wrt, (void *)(intptr_t)lower_param(E->L, E->m->params.items[i], at));
  int *ids = arena_alloc(E->a, sizeof(int) * (size_t)(wrt.len + 1));
  int *grads = arena_alloc(E->a, sizeof(int) * (size_t)(wrt.len + 1));
  for (int i = 0; i < wrt.len; i++) ids[i] = (int)(intptr_t)wrt.items[i];
  if (!autodiff(g, E->d, objective, ids, wrt.len, grads, arena_printf(E->a, "loss %s", l->name))) return;
  graph_output(g, "loss", reported);
  for (int i = 0, k = 0; i < E->m->params.len; i++) {
    if (!mark[i]) continue;
    Param *p = E->m->params.items[i];
    if (ema[2 * i] >= 0) {
      graph_output(g, arena_printf(E->a, "ema.count:%s", p->name), ema[2 * i]);
      graph_output(g, arena_printf(E->a, "ema.sum:%s", p->name), ema[2 * i + 1]);
      continue;
    }
    int gk = grads[k++];
    if (gk < 0) { /* the loss does not depend on it */
      GNode *z = graph_begin(g, OP_FILL, NULL, 0, at, NULL);
      z->shape = p->shape;
      gk = graph_end(g, z);
    }
    graph_output(g, arena_printf(E->a, "grad:%s", p->name), gk);
  }
  vec_push(E->a, out, g);
}

static void train_graphs(Elab *E, Vec *out, Node *block, const char *stage) {
  for (int i = 0; i < ast_nkids(block); i++) {
    Node *it = ast_kid(block, i);
    if (it && it->kind == N_STEP) train_graph(E, out, it, stage);
    if (it && it->kind == N_STAGE) train_graphs(E, out, it, it->str);
  }
}

static int has_densities(Model *m, int generative, int inference) {
  for (int i = 0; i < m->roles.len; i++) {
    Role *r = m->roles.items[i];
    int enc = !strcmp(r->kind, "encoder");
    if (!strcmp(r->kind, "critic") || (enc && !inference) || (!enc && !generative)) continue;
    if (r->implicit) return 0;
    for (int t = 0; t < r->produced.len; t++) {
      Value *p = r->produced.items[t];
      if (!p || p->kind != V_DIST) return 0;
    }
  }
  return 1;
}

/* Sum of the log-densities of every role of one side. */
static int log_side(Elab *E, int encoders, Span at) {
  int total = -1;
  for (int i = 0; i < E->m->roles.len; i++) {
    Role *r = E->m->roles.items[i];
    if (!strcmp(r->kind, "critic") || (!strcmp(r->kind, "encoder")) != encoders) continue;
    int x = elab_dref_node(E, r, NULL, 0, at);
    total = total < 0 ? x : add2(E, OP_ADD, total, x, at);
  }
  return total;
}

static Graph *entry(Elab *E, Vec *out, const char *name, const char *about) {
  Graph *g = graph_new(E->a, name);
  g->about = about;
  begin_graph(E, g);
  vec_push(E->a, out, g);
  return g;
}

static void inference_graphs(Elab *E, Vec *out) {
  Model *m = E->m;
  Span at = m->node->span;
  Graph *g = entry(E, out, "encode", "x -> each latent's mean and a sample");
  for (int i = 0; i < m->vars.len; i++) {
    Var *v = m->vars.items[i];
    if (v->is_data || !v->encoder) continue;
    graph_output(g, arena_printf(E->a, "%s.sample", v->name), elab_var_node(E, v));
    int t = 0;
    while (v->encoder->targets.items[t] != v) t++;
    graph_output(g, arena_printf(E->a, "%s.mean", v->name), elab_dref_node(E, v->encoder, v, 3, at));
  }
  for (int pass = 0; pass < 2; pass++) { /* decode: latents given; reconstruct: latents at their means */
    g = entry(E, out, pass ? "reconstruct" : "decode",
              pass ? "x -> the decoders' means at the encoders' means" : "latents -> the decoders' means");
    for (int i = 0; i < m->vars.len; i++) {
      Var *v = m->vars.items[i];
      if (v->is_data || !v->encoder) continue;
      if (pass && !v->classes) { /* codes keep their draw: a mean of codes is no code */
        int mean = elab_dref_node(E, v->encoder, v, 3, at);
        E->var_node[elab_var_index(E, v)] = mean;
      }
    }
    for (int i = 0; i < m->vars.len; i++) {
      Var *v = m->vars.items[i];
      if (!v->is_data || !v->generator) continue;
      if (!pass) /* the decoder's conditions are this entry's inputs */
        for (int k = 0; k < v->generator->conds.len; k++) {
          Var *c = v->generator->conds.items[k];
          if (E->var_node[elab_var_index(E, c)] >= 0) continue;
          elab_var_input(E, c);
        }
      graph_output(g, arena_printf(E->a, "%s.mean", v->name), elab_dref_node(E, v->generator, v, 3, at));
    }
  }
}

static void generative_graphs(Elab *E, Vec *out) {
  Model *m = E->m;
  Span at = m->node->span;
  for (int i = 0; i < m->vars.len; i++) { /* without a prior for every latent there is nothing to sample */
    Var *v = m->vars.items[i];
    if (!v->is_data && !v->generator) return;
  }
  Graph *g = entry(E, out, "sample", "ancestral sampling: priors, then decoders");
  for (int done = 0, progress = 1; progress;) {
    progress = 0;
    for (int i = 0; i < m->vars.len; i++) {
      Var *v = m->vars.items[i];
      if (v->is_data || E->var_node[i] >= 0) continue;
      Role *r = v->generator;
      int ready = 1;
      for (int k = 0; k < r->conds.len; k++) ready &= E->var_node[elab_var_index(E, r->conds.items[k])] >= 0;
      if (!ready) continue;
      int t = 0;
      while (r->targets.items[t] != v) t++;
      Value *p = r->produced.items[t];
      if (r->autoregressive || (p && p->kind == V_DIST && p->dist->fam == D_FLOW)) {
        /* drawn by the runtime, one position at a time (prior.<role>, flow.<role>) */
        elab_var_input(E, v);
      } else if ((E->var_node[i] = elab_role_draw(E, r, t, at)) < 0) {
        diag_error(E->d, r->node->span, "cannot draw %s from %s", v->name, role_signature(E->a, r));
        return;
      }
      progress = 1;
      done++;
    }
  }
  for (int i = 0; i < m->vars.len; i++) {
    Var *v = m->vars.items[i];
    if (!v->is_data || !v->generator) continue;
    int t = 0;
    while (v->generator->targets.items[t] != v) t++;
    graph_output(g, arena_printf(E->a, "%s.mean", v->name), elab_dref_node(E, v->generator, v, 3, at));
    graph_output(g, arena_printf(E->a, "%s.sample", v->name), elab_role_draw(E, v->generator, t, at));
  }
  for (int i = 0; i < m->vars.len; i++) {
    Var *v = m->vars.items[i];
    if (v->is_data) continue;
    graph_output(g, arena_printf(E->a, "%s.sample", v->name), E->var_node[i]);
  }
  /* the one-position steps the runtime iterates for autoregressive and flow priors */
  for (int i = 0; i < m->roles.len; i++) {
    Role *r = m->roles.items[i];
    if (strcmp(r->kind, "prior") || r->produced.len != 1) continue;
    Value *p = r->produced.items[0];
    int flow = p && p->kind == V_DIST && p->dist->fam == D_FLOW;
    if (!r->autoregressive && !flow) continue;
    g = entry(E, out, arena_printf(E->a, "%s.%s", flow ? "flow" : "prior", r->name),
              flow ? "z -> eps of the flow and a base draw (the runtime inverts eps one dimension at a time)"
                   : "codes -> the autoregressive prior's probabilities at every position");
    Var *v = r->targets.items[0];
    elab_var_input(E, v);
    elab_run_role(E, r);
    Value *q = E->role_out[i][0];
    if (!q || q->kind != V_DIST) continue;
    if (flow) { /* eps and log |det d eps / dz| at the z fed in; a base draw for the runtime to invert */
      graph_output(g, "eps", q->dist->eps->node);
      graph_output(g, "logdet", q->dist->logdet->node);
      graph_output(g, "eps.base", lower_sample(E->L, q->dist->base->dist, v->shape, 0, at, NULL));
    } else
      graph_output(g, arena_printf(E->a, "%s.mean", v->name), lower_mean(E->L, q->dist, v->shape, at));
  }
}

static Value *role_dist(Elab *E, Role *r, Var *v) {
  int t = 0;
  while (r->targets.items[t] != v) t++;
  elab_run_role(E, r);
  Value *d = E->role_out[elab_role_index(E, r)][t];
  return d && d->kind == V_DIST ? d : NULL;
}

/* The ELBO as reconstruction minus KL.  Each latent also gives its KL per
 * element (analytic where both sides have one) and its encoder mean, from
 * which the runtime reports KL per dimension and active units. */
static void elbo_graph(Elab *E, Vec *out, Span at) {
  Model *m = E->m;
  Graph *g = entry(E, out, "elbo", "x -> a one-sample estimate of the ELBO, its terms, each latent's KL and mean");
  int kl = -1, rec = -1;
  for (int i = 0; i < m->vars.len; i++) {
    Var *v = m->vars.items[i];
    if (v->is_data || !v->encoder || !v->generator) continue;
    int z = elab_var_node(E, v);
    Value *q = role_dist(E, v->encoder, v), *p = role_dist(E, v->generator, v);
    int dims = q && p ? lower_kl_dims(E->L, q->dist, p->dist, z, v->shape, at) : -1;
    int k;
    if (dims >= 0) {
      graph_output(g, arena_printf(E->a, "%s.kl", v->name), dims);
      k = graph_add(g, OP_SUM, &dims, 1, at, NULL);
    } else
      k = add2(E, OP_SUB, elab_dref_node(E, v->encoder, v, 0, at), elab_dref_node(E, v->generator, v, 0, at), at);
    kl = kl < 0 ? k : add2(E, OP_ADD, kl, k, at);
    if (!v->classes) graph_output(g, arena_printf(E->a, "%s.mean", v->name), elab_dref_node(E, v->encoder, v, 3, at));
  }
  for (int i = 0; i < m->vars.len; i++) {
    Var *v = m->vars.items[i];
    if (!v->is_data || !v->generator) continue;
    int x = elab_dref_node(E, v->generator, v, 0, at);
    rec = rec < 0 ? x : add2(E, OP_ADD, rec, x, at);
  }
  if (kl < 0 || rec < 0) { /* no latent or no data: no bound */
    out->len--;
    return;
  }
  graph_output(g, "elbo", add2(E, OP_SUB, rec, kl, at));
  graph_output(g, "rec", rec);
  graph_output(g, "kl", kl);
}

static void bound_graphs(Elab *E, Vec *out) {
  Model *m = E->m;
  Span at = m->node->span;
  if (has_densities(m, 1, 1)) {
    elbo_graph(E, out, at);
    Graph *g = entry(E, out, "iw", "x -> log p(x, z) - log q(z | x) for one z ~ q: the runtime averages exp over k draws");
    int pz = log_side(E, 0, at), qz = log_side(E, 1, at);
    if (pz < 0 || qz < 0) /* no latent or no data: no bound */
      out->len--;
    else
      graph_output(g, "logw", add2(E, OP_SUB, pz, qz, at));
  }
  if (!has_densities(m, 1, 0)) return;
  Graph *g = entry(E, out, "logjoint", "x, latents -> log p(x, z) and its gradient in each latent");
  Vec wrt = {0};
  for (int i = 0; i < m->vars.len; i++) {
    Var *v = m->vars.items[i];
    if (v->is_data || v->classes) continue;
    elab_var_input(E, v);
    vec_push(E->a, &wrt, v);
  }
  int lj = log_side(E, 0, at);
  if (lj < 0) {
    out->len--;
    return;
  }
  graph_output(g, "logjoint", lj);
  int sum = graph_add(g, OP_BATCH_MEAN, &lj, 1, at, NULL);
  int *ids = arena_alloc(E->a, sizeof(int) * (size_t)(wrt.len + 1));
  int *grads = arena_alloc(E->a, sizeof(int) * (size_t)(wrt.len + 1));
  for (int i = 0; i < wrt.len; i++) ids[i] = E->var_node[elab_var_index(E, wrt.items[i])];
  if (!autodiff(g, E->d, sum, ids, wrt.len, grads, "the log-joint")) return;
  int bs = graph_source(g, OP_BATCH_SIZE, shape_scalar(), 0, at, NULL);
  for (int i = 0; i < wrt.len; i++) /* d mean / dz is d logjoint / dz over the batch size */
    if (grads[i] >= 0)
      graph_output(g, arena_printf(E->a, "grad:%s", ((Var *)wrt.items[i])->name), add2(E, OP_MUL, grads[i], bs, at));
}

Vec shape_lower(Diag *d, Arena *a, Program *prog, Model *m) {
  Elab E = {0};
  E.d = d;
  E.a = a;
  E.prog = prog;
  E.m = m;
  E.model_scope = *(Scope *)m->scope;
  Vec out = {0};
  if (m->train) train_graphs(&E, &out, m->train, NULL);
  inference_graphs(&E, &out);
  generative_graphs(&E, &out);
  bound_graphs(&E, &out);
  return out;
}
