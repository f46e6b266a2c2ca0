/* stats.c - the ELBO, its terms, KL per dimension and active units; for
 * latents of codes, codebook usage, perplexity, the prior's -log r(c) and
 * the reconstruction error. */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static LatentStats *latent(ElboStats *st, const char *name, long dims) {
  for (int i = 0; i < st->nlatents; i++)
    if (!strcmp(st->latents[i].name, name)) return &st->latents[i];
  LatentStats *l = &st->latents[st->nlatents++];
  l->name = name;
  l->dims = dims;
  return l;
}

/* The latents named by the outputs "Z.kl" and "Z.mean". */
static void find_latents(const Graph *g, ElboStats *st) {
  st->latents = xmalloc(sizeof(LatentStats) * (size_t)(g->outputs.len + 1));
  for (int i = 0; i < g->outputs.len; i++) {
    const GOutput *o = g->outputs.items[i];
    const char *dot = strrchr(o->name, '.');
    if (!dot || (strcmp(dot, ".kl") && strcmp(dot, ".mean"))) continue;
    char *name = xmalloc((size_t)(dot - o->name) + 1);
    memcpy(name, o->name, (size_t)(dot - o->name));
    LatentStats *l = latent(st, name, (long)shape_size(((const GNode *)g->nodes.items[o->node])->shape));
    if (l->name != name) free(name);
    if (!strcmp(dot, ".kl")) l->kl = xmalloc(sizeof(double) * (size_t)l->dims);
    else l->var = xmalloc(sizeof(double) * (size_t)l->dims);
  }
}

/* Sums over one batch; mean sums the encoder means, var their squares. */
static void accumulate(const Exec *ex, LatentStats *l, long count, double *mean) {
  char key[256];
  snprintf(key, sizeof key, "%s.kl", l->name);
  const float *kl = l->kl ? exec_output(ex, key) : NULL;
  snprintf(key, sizeof key, "%s.mean", l->name);
  const float *mu = l->var ? exec_output(ex, key) : NULL;
  for (long j = 0; j < count; j++)
    for (long d = 0; d < l->dims; d++) {
      if (kl) l->kl[d] += kl[j * l->dims + d];
      if (mu) {
        double v = mu[j * l->dims + d];
        mean[d] += v;
        l->var[d] += v * v;
      }
    }
}

int stats_elbo(Session *s, const Graph *g, int k, long batch, uint64_t seed, ElboStats *st, ExecError *err) {
  memset(st, 0, sizeof *st);
  long n = session_examples(s, k);
  st->n = n;
  if (batch > n) batch = n;
  find_latents(g, st);
  double **mean = xmalloc(sizeof(double *) * (size_t)(st->nlatents + 1));
  for (int i = 0; i < st->nlatents; i++) mean[i] = xmalloc(sizeof(double) * (size_t)st->latents[i].dims);
  Exec *ex = session_exec(s, g, batch);
  long *idx = xmalloc(sizeof(long) * (size_t)batch);
  double sum[3] = {0, 0, 0};
  const char *terms[3] = {"elbo", "rec", "kl"};
  int rc = 0;
  uint64_t step = 0;
  for (long first = 0; first < n && !rc; first += batch) {
    long count = n - first < batch ? n - first : batch;
    for (long j = 0; j < count; j++) idx[j] = first + j;
    session_bind(s, ex, k, idx, count, seed, 0);
    if (exec_run(ex, (int)count, seed, step++, err)) {
      rc = -1;
      break;
    }
    for (int t = 0; t < 3; t++) {
      const float *v = exec_output(ex, terms[t]);
      for (long j = 0; v && j < count; j++) sum[t] += v[j];
    }
    for (int i = 0; i < st->nlatents; i++) accumulate(ex, &st->latents[i], count, mean[i]);
  }
  st->elbo = sum[0] / (double)n;
  st->rec = sum[1] / (double)n;
  st->kl = sum[2] / (double)n;
  for (int i = 0; i < st->nlatents; i++) {
    LatentStats *l = &st->latents[i];
    for (long d = 0; d < l->dims; d++) {
      if (l->kl) l->kl[d] /= (double)n;
      if (!l->var) continue;
      double m = mean[i][d] / (double)n;
      l->var[d] = l->var[d] / (double)n - m * m;
      l->active += l->var[d] > STATS_ACTIVE_THRESHOLD;
    }
    free(mean[i]);
  }
  free(mean);
  free(idx);
  exec_free(ex);
  return rc;
}

void stats_free(ElboStats *st) {
  for (int i = 0; i < st->nlatents; i++) {
    free((char *)st->latents[i].name);
    free(st->latents[i].kl);
    free(st->latents[i].var);
  }
  free(st->latents);
  memset(st, 0, sizeof *st);
}

void stats_json(FILE *f, const ElboStats *st) {
  fprintf(f, ",\"elbo\":%.9g,\"rec\":%.9g,\"kl\":%.9g", st->elbo, st->rec, st->kl);
  fputs(",\"kl_dims\":{", f);
  int first = 1;
  for (int i = 0; i < st->nlatents; i++) {
    const LatentStats *l = &st->latents[i];
    if (!l->kl) continue;
    fprintf(f, "%s", first ? "" : ",");
    json_str(f, l->name);
    fputs(":[", f);
    for (long d = 0; d < l->dims; d++) fprintf(f, "%s%.6g", d ? "," : "", l->kl[d]);
    fputc(']', f);
    first = 0;
  }
  fputs("},\"active_units\":{", f);
  first = 1;
  for (int i = 0; i < st->nlatents; i++) {
    const LatentStats *l = &st->latents[i];
    if (!l->var) continue;
    fprintf(f, "%s", first ? "" : ",");
    json_str(f, l->name);
    fprintf(f, ":%d", l->active);
    first = 0;
  }
  fputc('}', f);
}

void stats_print(FILE *f, const ElboStats *st) {
  fprintf(f, "  elbo   %.4f\n  rec    %.4f   (E log p(x | z))\n  kl     %.4f\n", st->elbo, st->rec, st->kl);
  for (int i = 0; i < st->nlatents; i++) {
    const LatentStats *l = &st->latents[i];
    if (l->var) fprintf(f, "  %s: %d of %ld units active (variance of E[%s|x] > %g)\n", l->name, l->active, l->dims,
                        l->name, STATS_ACTIVE_THRESHOLD);
    if (!l->kl) continue;
    fprintf(f, "  %s: KL per dimension", l->name);
    for (long d = 0; d < l->dims; d++) fprintf(f, "%s%.3f", d % 10 ? " " : "\n    ", l->kl[d]);
    fputc('\n', f);
  }
}

/* ------------------------------------------------------------ codes */

static const GNode *stats_node(const Graph *g, int id) { return g->nodes.items[id]; }

/* The code latent's autoregressive prior: a graph prior.R whose one input
 * is the latent and whose output C.mean holds K probabilities per code. */
static const Graph *stats_prior_graph(const Session *s, const char *latent, int classes, long positions) {
  char mean[256];
  snprintf(mean, sizeof mean, "%s.mean", latent);
  for (int i = 0; i < s->vmx->graphs.len; i++) {
    const Graph *g = s->vmx->graphs.items[i];
    if (strncmp(g->name, "prior.", 6)) continue;
    const GNode *m = graph_output_node(g, mean);
    if (!m || (long)shape_size(m->shape) != classes * positions) continue;
    int ok = 1, inputs = 0;
    for (int j = 0; j < g->nodes.len && ok; j++) {
      const GNode *x = stats_node(g, j);
      if (x->op != OP_INPUT) continue;
      inputs++;
      ok = !strcmp(x->s, latent);
    }
    if (ok && inputs) return g;
  }
  return NULL;
}

int stats_has_codes(const Session *s) {
  const Graph *g = session_graph(s, "encode");
  for (int i = 0; g && i < g->outputs.len; i++) {
    const GOutput *o = g->outputs.items[i];
    const char *dot = strrchr(o->name, '.');
    if (dot && !strcmp(dot, ".sample") && stats_node(g, o->node)->classes > 0) return 1;
  }
  return 0;
}

int stats_prior_uses(const Session *s, const char *param) {
  for (int i = 0; i < s->vmx->graphs.len; i++) {
    const Graph *g = s->vmx->graphs.items[i];
    if (strncmp(g->name, "prior.", 6)) continue;
    for (int j = 0; j < g->nodes.len; j++) {
      const GNode *x = stats_node(g, j);
      if (x->op == OP_PARAM && !strcmp(x->s, param)) return 1;
    }
  }
  return 0;
}

/* The code latents of encode, each with its prior graph (with STATS_PRIOR). */
static const Graph **find_codes(const Session *s, const Graph *enc, int flags, CodeStats *st) {
  st->codes = xmalloc(sizeof(CodeLatentStats) * (size_t)(enc->outputs.len + 1));
  const Graph **priors = xmalloc(sizeof(Graph *) * (size_t)(enc->outputs.len + 1));
  for (int i = 0; i < enc->outputs.len; i++) {
    const GOutput *o = enc->outputs.items[i];
    const GNode *x = stats_node(enc, o->node);
    const char *dot = strrchr(o->name, '.');
    if (!dot || strcmp(dot, ".sample") || x->classes <= 0) continue;
    CodeLatentStats *c = &st->codes[st->ncodes];
    memset(c, 0, sizeof *c);
    c->name = xmalloc((size_t)(dot - o->name) + 1);
    memcpy(c->name, o->name, (size_t)(dot - o->name));
    c->name[dot - o->name] = '\0';
    c->classes = x->classes;
    c->positions = (long)shape_size(x->shape);
    c->count = xmalloc(sizeof(long) * (size_t)c->classes);
    memset(c->count, 0, sizeof(long) * (size_t)c->classes);
    const Graph *pg = stats_prior_graph(s, c->name, c->classes, c->positions);
    priors[st->ncodes] = flags & STATS_PRIOR ? pg : NULL;
    if (pg) c->prior = xstrdup(pg->name);
    st->ncodes++;
  }
  return priors;
}

/* The data item reconstruct draws: the first with an X.mean output of its size. */
static int find_reconstructed(const Session *s, const Graph *rec) {
  for (int i = 0; rec && i < s->ndata; i++) {
    char mean[256];
    snprintf(mean, sizeof mean, "%s.mean", s->data[i].decl->name);
    const GNode *m = graph_output_node(rec, mean);
    if (m && (long)shape_size(m->shape) == (long)shape_size(s->data[i].decl->shape)) return i;
  }
  return -1;
}

int stats_codes(Session *s, int k, long batch, uint64_t seed, int flags, CodeStats *st, ExecError *err) {
  memset(st, 0, sizeof *st);
  const Graph *enc = session_graph(s, "encode"), *rec = session_graph(s, "reconstruct");
  long n = session_examples(s, k);
  st->n = n;
  if (!enc || n == 0) return 0;
  if (batch > n) batch = n;
  const Graph **priors = find_codes(s, enc, flags, st);
  int item = find_reconstructed(s, rec);
  if (item >= 0) st->data = xstrdup(s->data[item].decl->name);
  Exec *ex = session_exec(s, enc, batch), *rx = item >= 0 ? session_exec(s, rec, batch) : NULL;
  Exec **px = xmalloc(sizeof(Exec *) * (size_t)(st->ncodes + 1));
  for (int i = 0; i < st->ncodes; i++) px[i] = priors[i] ? session_exec(s, priors[i], batch) : NULL;
  long *idx = xmalloc(sizeof(long) * (size_t)batch);
  double *nll = xmalloc(sizeof(double) * (size_t)(st->ncodes + 1)), sq = 0;
  for (int i = 0; i < st->ncodes; i++) nll[i] = 0;
  int rc = 0;
  uint64_t step = 0;
  for (long first = 0; first < n && !rc; first += batch, step++) {
    long count = n - first < batch ? n - first : batch;
    for (long j = 0; j < count; j++) idx[j] = first + j;
    session_bind(s, ex, k, idx, count, seed, 0);
    if ((rc = exec_run(ex, (int)count, seed, step, err))) break;
    for (int i = 0; i < st->ncodes && !rc; i++) {
      CodeLatentStats *c = &st->codes[i];
      char key[300];
      snprintf(key, sizeof key, "%s.sample", c->name);
      const float *codes = exec_output(ex, key);
      for (long j = 0; j < count * c->positions; j++) {
        long v = lrintf(codes[j]);
        if (v >= 0 && v < c->classes) c->count[v]++;
      }
      if (!px[i]) continue;
      exec_bind_input(px[i], c->name, codes); /* read before the next run of encode */
      if ((rc = exec_run(px[i], (int)count, seed, step, err))) break;
      snprintf(key, sizeof key, "%s.mean", c->name);
      const float *p = exec_output(px[i], key);
      long P = c->positions, K = c->classes;
      for (long j = 0; j < count; j++)
        for (long t = 0; t < P; t++) {
          long v = lrintf(codes[j * P + t]);
          double q = v >= 0 && v < K ? p[(j * K + v) * P + t] : 0;
          nll[i] -= log(q > 1e-30 ? q : 1e-30);
        }
    }
    if (rc || !rx) continue;
    session_bind(s, rx, k, idx, count, seed, 0);
    if ((rc = exec_run(rx, (int)count, seed, step, err))) break;
    char key[300];
    snprintf(key, sizeof key, "%s.mean", st->data);
    const float *m = exec_output(rx, key), *x = s->batch[item];
    long dim = s->data[item].split[k].dim;
    for (long j = 0; j < count * dim; j++) sq += ((double)x[j] - m[j]) * ((double)x[j] - m[j]);
  }
  if (item >= 0) st->mse = sq / ((double)n * (double)s->data[item].split[k].dim);
  for (int i = 0; i < st->ncodes; i++) {
    CodeLatentStats *c = &st->codes[i];
    double total = (double)n * (double)c->positions, h = 0;
    for (int v = 0; v < c->classes; v++) {
      if (!c->count[v]) continue;
      double q = (double)c->count[v] / total;
      h -= q * log(q);
      c->used++;
    }
    c->perplexity = exp(h);
    c->have_nll = px[i] != NULL;
    c->nll = nll[i] / (double)n;
    if (px[i]) exec_free(px[i]);
  }
  free(nll);
  free(idx);
  free(px);
  free(priors);
  if (rx) exec_free(rx);
  exec_free(ex);
  return rc ? -1 : 0;
}

void stats_codes_free(CodeStats *st) {
  for (int i = 0; i < st->ncodes; i++) {
    free(st->codes[i].name);
    free(st->codes[i].count);
    free(st->codes[i].prior);
  }
  free(st->codes);
  free(st->data);
  memset(st, 0, sizeof *st);
}

void stats_codes_json(FILE *f, const CodeStats *st) {
  fputs(",\"codes\":{", f);
  for (int i = 0; i < st->ncodes; i++) {
    const CodeLatentStats *c = &st->codes[i];
    fputs(i ? "," : "", f);
    json_str(f, c->name);
    fprintf(f, ":{\"classes\":%d,\"used\":%d,\"usage\":%.6g,\"perplexity\":%.9g", c->classes, c->used,
            (double)c->used / c->classes, c->perplexity);
    if (c->have_nll) fprintf(f, ",\"nll\":%.9g", c->nll);
    fputc('}', f);
  }
  fputc('}', f);
  if (!st->data) return;
  fputs(",\"rec_mse\":{", f);
  json_str(f, st->data);
  fprintf(f, ":%.9g}", st->mse);
}

void stats_codes_print(FILE *f, const CodeStats *st) {
  for (int i = 0; i < st->ncodes; i++) {
    const CodeLatentStats *c = &st->codes[i];
    fprintf(f, "  %s: %d of %d codes used (%.1f%%), perplexity %.2f\n", c->name, c->used, c->classes,
            100.0 * c->used / c->classes, c->perplexity);
    if (c->have_nll)
      fprintf(f, "  %s: -log %s(%s) %.4f nats per example (%.4f bits per code) under its prior\n", c->name,
              c->prior + 6, c->name, c->nll, c->nll / (double)c->positions / log(2.0));
  }
  if (st->data) fprintf(f, "  %s: reconstruction mean squared error %.6f per value\n", st->data, st->mse);
}
