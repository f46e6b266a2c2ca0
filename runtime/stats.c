/* stats.c - the ELBO, its terms, KL per dimension and active units. */
#include "stats.h"

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
  Exec *ex = exec_new(g, (int)batch);
  if (!ex) die(1, "out of memory preparing graph %s", g->name);
  session_bind_params(s, ex);
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
