/* latent.c - vmrun encode and vmrun plot: what the encoder makes of a
 * split, as a table (NPY or CSV) or a scatter plot, and a run's training
 * curves from its metrics.jsonl. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "session.h"
#include "util.h"
#include "vmrun.h"

/* ------------------------------------------------------------ the run */

typedef struct {
  char *run;
  Session s;
  const Graph *g;     /* encode */
  uint64_t data_seed; /* the run's: the same synthetic data and binarizations as in training */
  uint64_t seed;      /* the graph's draws: --seed, else the run's */
  int k;              /* the split */
  long n;             /* examples used: --examples spread over the split, or all */
} Run;

/* The run (--run or the newest) and its .vmx; nothing else yet. */
static void latent_open(const Opts *o, Run *r) {
  memset(r, 0, sizeof *r);
  r->run = o->run ? xstrdup(o->run) : vmrun_newest_run();
  char *path = o->file ? xstrdup(o->file) : vmrun_run_vmx(r->run);
  session_load(&r->s, path);
  free(path);
}

/* The splits data item `it` has, for an error message. */
static void splits_present(const DataItem *it, char *buf, size_t cap) {
  buf[0] = 0;
  for (int k = 0; k < SPLIT_COUNT; k++)
    if (it->have[k]) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? ", " : "", split_names[k]);
}

/* The encode graph, the checkpoint's parameters, and the split. */
static void latent_load(const Opts *o, Run *r) {
  latent_open(o, r);
  Session *s = &r->s;
  if (!(r->g = session_graph(s, "encode")))
    die(2, "%s: model %s has no encode entry point (no latent has an encoder)", s->path, s->vmx->model);
  char *cp = xprintf("%s/checkpoint.safetensors", r->run), err[1024];
  Ckpt c;
  if (ckpt_read(cp, &c, err, sizeof err)) die(2, "%s", err);
  free(cp);
  session_read_params(s, &c);
  if (ckpt_meta_u64(&c, CKPT_KEY_SEED, &r->data_seed, err, sizeof err)) die(2, "%s", err);
  r->seed = o->have_seed ? o->seed : r->data_seed;
  const char *data = ckpt_meta(&c, "vml.run.data");
  r->k = split_index(o->split);
  int want[SPLIT_COUNT] = {0, 0, 0};
  want[r->k] = 1;
  session_load_data(s, o->data ? o->data : data && *data ? data : NULL, want, r->data_seed);
  ckpt_free(&c);
  if (!s->ndata) die(2, "%s: model %s has no data to encode", s->path, s->vmx->model);
  if (!(r->n = session_examples(s, r->k))) {
    char have[64];
    splits_present(&s->data[0], have, sizeof have);
    die(2, "data %s has no %s split (it has: %s; choose one with --split)", s->data[0].decl->name, o->split,
        have[0] ? have : "none");
  }
  if (o->examples && o->examples < r->n) { /* spread over the split, labels in step */
    r->n = o->examples;
    for (int i = 0; i < s->ndata; i++) {
      source_labels(&s->data[i], r->k);
      source_spread(&s->data[i], r->k, r->n);
    }
  }
}

static void latent_close(Run *r) {
  session_free(&r->s);
  free(r->run);
}

/* The split's labels, from the first data item that has some; NULL. */
static const int *latent_labels(Run *r) {
  for (int i = 0; i < r->s.ndata; i++)
    if (source_labels(&r->s.data[i], r->k)) return r->s.data[i].split[r->k].labels;
  return NULL;
}

/* ------------------------------------------------------------ encoding */

/* One latent's columns: the encode output NAME.mean (or NAME.sample). */
typedef struct {
  const char *output; /* "z.mean" */
  char *name;         /* "z" */
  long dims;
  int drawn; /* the mean is the sample's node: an implicit encoder, whose "mean" is a draw */
} Latent;

/* The encoded examples: n rows of dim values, the latents side by side. */
typedef struct {
  Latent *lat;
  int nlat;
  long n, dim;
  float *z;
  int drawn; /* some column is a draw */
} Table;

static int output_node(const Graph *g, const char *name) {
  for (int i = 0; i < g->outputs.len; i++) {
    const GOutput *out = g->outputs.items[i];
    if (!strcmp(out->name, name)) return out->node;
  }
  return -1;
}

/* The latents with an output ending in `suffix`, in .vmx order. */
static void find_latents(const Graph *g, const char *suffix, Table *t) {
  memset(t, 0, sizeof *t);
  t->lat = xmalloc(sizeof(Latent) * (size_t)(g->outputs.len + 1));
  for (int i = 0; i < g->outputs.len; i++) {
    const GOutput *out = g->outputs.items[i];
    if (!ends_with(out->name, suffix) || strlen(out->name) == strlen(suffix)) continue;
    Latent *l = &t->lat[t->nlat++];
    l->output = out->name;
    l->name = xstrdup(out->name);
    l->name[strlen(out->name) - strlen(suffix)] = 0;
    l->dims = (long)shape_size(((const GNode *)g->nodes.items[out->node])->shape);
    char *sample = xprintf("%s.sample", l->name);
    l->drawn = !strcmp(suffix, ".mean") && output_node(g, sample) == out->node;
    free(sample);
    t->dim += l->dims;
    t->drawn |= l->drawn;
  }
  if (!t->nlat) die(2, "graph %s has no %s outputs: the model has no latent with an encoder", g->name, suffix);
}

static void table_free(Table *t) {
  for (int i = 0; i < t->nlat; i++) free(t->lat[i].name);
  free(t->lat);
  free(t->z);
  memset(t, 0, sizeof *t);
}

/* Runs the encode graph over the r->n examples kept of the split,
 * `passes` times (fresh draws each time: the step counter goes on), in
 * batches; row p * n + i is example i's encoding in pass p. */
static void encode_split(Run *r, long batch, long passes, Table *t) {
  long n = r->n;
  if (batch > n) batch = n;
  t->n = n * passes;
  t->z = xmalloc(sizeof(float) * (size_t)t->n * (size_t)t->dim);
  Exec *ex = session_exec(&r->s, r->g, batch);
  long *idx = xmalloc(sizeof(long) * (size_t)batch);
  uint64_t step = 0;
  for (long p = 0; p < passes; p++)
    for (long first = 0; first < n; first += batch) {
      long count = n - first < batch ? n - first : batch;
      for (long j = 0; j < count; j++) idx[j] = first + j;
      session_bind(&r->s, ex, r->k, idx, count, r->data_seed, 0);
      ExecError e;
      if (exec_run(ex, (int)count, r->seed, step++, &e)) die(1, "encode: %s", e.msg);
      long off = 0;
      for (int i = 0; i < t->nlat; i++) {
        const Latent *l = &t->lat[i];
        const float *v = exec_output(ex, l->output);
        for (long j = 0; j < count; j++)
          memcpy(t->z + (p * n + first + j) * t->dim + off, v + j * l->dims, sizeof(float) * (size_t)l->dims);
        off += l->dims;
      }
    }
  free(idx);
  exec_free(ex);
}

/* ------------------------------------------------------------ encode files */

/* "z" or "u1, u2, s" (outputs: "z.mean" ...): for what a command says. */
static void latent_list(const Table *t, int outputs, char *buf, size_t cap) {
  buf[0] = 0;
  for (int i = 0; i < t->nlat; i++)
    snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", i ? ", " : "", outputs ? t->lat[i].output : t->lat[i].name);
}

/* Column c's name: the latent's name and the index in it (z0, z1; u1_0
 * when the name ends in a digit). */
static void column_name(const Table *t, long c, int base, char *buf, size_t cap) {
  for (int i = 0; i < t->nlat; i++) {
    const Latent *l = &t->lat[i];
    if (c < l->dims) {
      size_t len = strlen(l->name);
      int digit = len && l->name[len - 1] >= '0' && l->name[len - 1] <= '9';
      snprintf(buf, cap, "%s%s%ld", l->name, digit ? "_" : "", c + base);
      return;
    }
    c -= l->dims;
  }
}

static void write_csv(const char *path, const Table *t, const int *labels) {
  FILE *f = out_open(path);
  char name[300];
  for (long c = 0; c < t->dim; c++) {
    column_name(t, c, 0, name, sizeof name);
    fprintf(f, "%s%s", c ? "," : "", name);
  }
  fputs(labels ? ",label\n" : "\n", f);
  for (long i = 0; i < t->n; i++) {
    for (long c = 0; c < t->dim; c++) fprintf(f, "%s%.9g", c ? "," : "", (double)t->z[i * t->dim + c]);
    if (labels) fprintf(f, ",%d", labels[i]);
    fputc('\n', f);
  }
  out_commit(f, path);
}

/* An NPY 1.0 header: descr '<f4' or '<i8', shape (n, cols), or (n,)
 * when cols is 0; padded so that the data starts 64-byte aligned. */
static void npy_header(FILE *f, const char *descr, long n, long cols) {
  char shape[64], dict[160];
  if (cols) snprintf(shape, sizeof shape, "(%ld, %ld)", n, cols);
  else snprintf(shape, sizeof shape, "(%ld,)", n);
  int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
  size_t pad = (64 - (10 + (size_t)len + 1) % 64) % 64;
  unsigned hl = (unsigned)len + (unsigned)pad + 1;
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  fputc((int)(hl & 0xff), f);
  fputc((int)(hl >> 8), f);
  fprintf(f, "%s%*s\n", dict, (int)pad, "");
}

/* Little-endian whatever the machine. */
static void put_le(FILE *f, uint64_t v, int bytes) {
  for (int b = 0; b < bytes; b++) fputc((int)((v >> (8 * b)) & 0xff), f);
}

/* FILE.npy: float32 (n, dim); the labels, when there are, in
 * FILE-labels.npy: int64 (n,) (NPY holds one array a file). */
static char *write_npy(const char *path, const Table *t, const int *labels) {
  FILE *f = out_open(path);
  npy_header(f, "<f4", t->n, t->dim);
  for (long i = 0; i < t->n * t->dim; i++) {
    uint32_t u;
    memcpy(&u, &t->z[i], sizeof u);
    put_le(f, u, 4);
  }
  out_commit(f, path);
  if (!labels) return NULL;
  char *lpath = xprintf("%.*s-labels.npy", (int)(strlen(path) - 4), path);
  f = out_open(lpath);
  npy_header(f, "<i8", t->n, 0);
  for (long i = 0; i < t->n; i++) put_le(f, (uint64_t)(int64_t)labels[i], 8);
  out_commit(f, lpath);
  return lpath;
}

int cmd_encode(const Opts *o) {
  int csv = ends_with(o->output, ".csv");
  if (!csv && !ends_with(o->output, ".npy"))
    die(2, "encode: -o %s: expected a file ending in .npy or .csv", o->output);
  Run r;
  latent_load(o, &r);
  vmrun_threads(o->threads);
  Table t;
  find_latents(r.g, o->sample ? ".sample" : ".mean", &t);
  encode_split(&r, o->batch ? o->batch : 128, 1, &t);
  const int *labels = latent_labels(&r);
  char *lpath = NULL;
  if (csv) write_csv(o->output, &t, labels);
  else lpath = write_npy(o->output, &t, labels);
  char what[512];
  latent_list(&t, 1, what, sizeof what);
  if (csv)
    printf("wrote %s: %ld examples of the %s split, %ld columns (%s)%s\n", o->output, t.n, o->split, t.dim, what,
           labels ? " and a label column" : "");
  else
    printf("wrote %s: %ld x %ld (%s, %s split)%s%s\n", o->output, t.n, t.dim, what, o->split,
           lpath ? "; labels in " : "", lpath ? lpath : "");
  free(lpath);
  table_free(&t);
  latent_close(&r);
  return 0;
}

/* ------------------------------------------------------------ principal axes */

/* The top eigenvector of the symmetric c (d x d, upper triangle used) in
 * v, orthogonal to `against` (NULL: none), by power iteration from the
 * axis e_start; returns its eigenvalue.  The iterations are bounded by
 * work: for a large d the result may stop short of convergence, still an
 * axis of large variance. */
static double power_iteration(const double *c, long d, long start, const double *against, double *v) {
  double *w = xmalloc(sizeof(double) * (size_t)d), lambda = 0;
  for (long i = 0; i < d; i++) v[i] = i == start ? 1.0 : 1e-3;
  long max_iter = (long)fmin(5000, fmax(100, 2e9 / ((double)d * (double)d)));
  for (long it = 0; it < max_iter; it++) {
    if (against) { /* deflation: stay orthogonal to the first axis */
      double dot = cblas_ddot((int)d, v, 1, against, 1);
      cblas_daxpy((int)d, -dot, against, 1, v, 1);
    }
    double norm = cblas_dnrm2((int)d, v, 1);
    if (norm == 0) break;
    cblas_dscal((int)d, 1 / norm, v, 1);
    cblas_dsymv(CblasRowMajor, CblasUpper, (int)d, 1.0, c, (int)d, v, 1, 0.0, w, 1);
    lambda = cblas_ddot((int)d, v, 1, w, 1);
    double change = 0, wn = cblas_dnrm2((int)d, w, 1);
    for (long i = 0; i < d && wn > 0; i++) change = fmax(change, fabs(w[i] / wn - v[i]));
    memcpy(v, w, sizeof(double) * (size_t)d);
    if (wn == 0 || change < 1e-10) break;
  }
  if (against) cblas_daxpy((int)d, -cblas_ddot((int)d, v, 1, against, 1), against, 1, v, 1);
  double norm = cblas_dnrm2((int)d, v, 1);
  if (norm > 0) cblas_dscal((int)d, 1 / norm, v, 1);
  long big = 0; /* a sign of its own: the largest component positive */
  for (long i = 1; i < d; i++)
    if (fabs(v[i]) > fabs(v[big])) big = i;
  if (v[big] < 0) cblas_dscal((int)d, -1, v, 1);
  free(w);
  return lambda;
}

/* The rows of t projected on their first two principal axes (xy: n pairs
 * of columns x, y); frac: each axis's share of the total variance. */
static void principal_axes(const Table *t, double *x, double *y, double frac[2]) {
  long n = t->n, d = t->dim, chunk = 256;
  double *mean = xmalloc(sizeof(double) * (size_t)d), *c = xmalloc(sizeof(double) * (size_t)(d * d));
  double *rows = xmalloc(sizeof(double) * (size_t)(chunk * d));
  for (long i = 0; i < n; i++)
    for (long j = 0; j < d; j++) mean[j] += t->z[i * d + j] / (double)n;
  /* the covariance, chunk by chunk: a large latent (a VQ-VAE's 3136 values) makes n x d doubles too many */
  for (long first = 0; first < n; first += chunk) {
    long m = n - first < chunk ? n - first : chunk;
    for (long i = 0; i < m; i++)
      for (long j = 0; j < d; j++) rows[i * d + j] = t->z[(first + i) * d + j] - mean[j];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)m, 1.0 / (double)n, rows, (int)d, 1.0, c, (int)d);
  }
  double total = 0, *v1 = xmalloc(sizeof(double) * (size_t)d), *v2 = xmalloc(sizeof(double) * (size_t)d);
  long big1 = 0, big2 = -1; /* start from the axes of largest variance */
  for (long j = 0; j < d; j++) {
    total += c[j * d + j];
    if (c[j * d + j] > c[big1 * d + big1]) big1 = j;
  }
  for (long j = 0; j < d; j++)
    if (j != big1 && (big2 < 0 || c[j * d + j] > c[big2 * d + big2])) big2 = j;
  frac[0] = power_iteration(c, d, big1, NULL, v1) / (total > 0 ? total : 1);
  frac[1] = power_iteration(c, d, big2, v1, v2) / (total > 0 ? total : 1);
  for (long i = 0; i < n; i++) {
    x[i] = y[i] = 0;
    for (long j = 0; j < d; j++) {
      double v = t->z[i * d + j] - mean[j];
      x[i] += v * v1[j];
      y[i] += v * v2[j];
    }
  }
  free(mean);
  free(c);
  free(rows);
  free(v1);
  free(v2);
}

/* ------------------------------------------------------------ colours */

#define MAX_PATTERNS 8

/* What the points are coloured by: group[i] for example i, with a legend
 * entry per group; ngroups 0: one colour. */
typedef struct {
  int *group;
  int ngroups;
  char *text[PLOT_COLORS];
} Groups;

static int row_cmp(const Dataset *ds, long a, long b) {
  for (long j = 0; j < ds->dim; j++) {
    float u = data_at(ds, a * ds->dim + j), v = data_at(ds, b * ds->dim + j);
    if (u != v) return u > v ? -1 : 1; /* descending: one-hot patterns come pixel 1 first */
  }
  return 0;
}

/* "pixel 2  □■/□□" for a one-hot bit pattern (the picture, row by row,
 * for a 2-D shape), else the values ("x = 0 1 1 0"). */
static char *pattern_text(const Dataset *ds, long row, const char *name) {
  long on = -1, ones = 0, bits = 1;
  for (long j = 0; j < ds->dim; j++) {
    float v = data_at(ds, row * ds->dim + j);
    bits &= v == 0.0f || v == 1.0f;
    if (v == 1.0f) on = j, ones++;
  }
  char buf[256] = "";
  size_t len = 0;
  if (bits && ones == 1) {
    len += (size_t)snprintf(buf, sizeof buf, "pixel %ld", on + 1);
    if (ds->rank == 2) {
      len += (size_t)snprintf(buf + len, sizeof buf - len, "  ");
      for (long j = 0; j < ds->dim; j++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", j && j % ds->shape[1] == 0 ? "/" : "",
                                j == on ? "\u25a0" : "\u25a1");
    }
  } else {
    len += (size_t)snprintf(buf, sizeof buf, "%s =", name);
    for (long j = 0; j < ds->dim && len < sizeof buf - 16; j++)
      len += (size_t)snprintf(buf + len, sizeof buf - len, " %g", (double)data_at(ds, row * ds->dim + j));
  }
  return xstrdup(buf);
}

/* Groups by input, when the first data item is a toy set (at most 16
 * values an example, so that a legend can show them) with at most
 * MAX_PATTERNS distinct examples among the n kept (4Frames: the four
 * images); 0 otherwise. */
static int group_by_input(const Run *r, Groups *gr) {
  const Dataset *ds = &r->s.data[0].split[r->k];
  long first[MAX_PATTERNS]; /* an example of each pattern */
  int np = 0;
  if (ds->dim > 16) return 0;
  for (long i = 0; i < r->n; i++) {
    int p = 0;
    while (p < np && row_cmp(ds, first[p], i)) p++;
    if (p < np) continue;
    if (np == MAX_PATTERNS) return 0;
    first[np++] = i;
  }
  for (int a = 1; a < np; a++) /* sorted, for a legend in a fixed order */
    for (int b = a; b > 0 && row_cmp(ds, first[b - 1], first[b]) > 0; b--) {
      long tmp = first[b];
      first[b] = first[b - 1];
      first[b - 1] = tmp;
    }
  gr->ngroups = np;
  for (long i = 0; i < r->n; i++)
    for (int p = 0; p < np; p++)
      if (!row_cmp(ds, first[p], i)) gr->group[i] = p;
  for (int p = 0; p < np; p++) gr->text[p] = pattern_text(ds, first[p], r->s.data[0].decl->name);
  return 1;
}

/* Groups by label, when there are at most PLOT_COLORS distinct ones
 * (MNIST's digits); 0 otherwise. */
static int group_by_label(const Run *r, const int *labels, Groups *gr) {
  int values[PLOT_COLORS], nv = 0;
  for (long i = 0; i < r->n; i++) {
    int v = 0;
    while (v < nv && values[v] != labels[i]) v++;
    if (v == nv && nv++ == PLOT_COLORS) return 0;
    values[v] = labels[i];
  }
  for (int a = 1; a < nv; a++)
    for (int b = a; b > 0 && values[b - 1] > values[b]; b--) {
      int tmp = values[b];
      values[b] = values[b - 1];
      values[b - 1] = tmp;
    }
  gr->ngroups = nv;
  for (long i = 0; i < r->n; i++)
    for (int v = 0; v < nv; v++)
      if (values[v] == labels[i]) gr->group[i] = v;
  for (int v = 0; v < nv; v++) gr->text[v] = xprintf("%d", values[v]);
  return 1;
}

static void groups_free(Groups *gr) {
  for (int i = 0; i < gr->ngroups; i++) free(gr->text[i]);
  free(gr->group);
}

/* ------------------------------------------------------------ plot latent */

/* Posterior samples drawn at least when an implicit encoder meets a few
 * distinct inputs: its posteriors are known only by their samples, and
 * the AVB paper's 4Frames picture needs a few hundred per input. */
#define IMPLICIT_POINTS 1000

static int plot_latent(const Opts *o) {
  Run r;
  latent_load(o, &r);
  vmrun_threads(o->threads);
  Table t;
  find_latents(r.g, o->sample ? ".sample" : ".mean", &t);
  if (o->sample) t.drawn = 1; /* posterior samples, as AVB's implicit encoder gives */
  if (t.dim < 2) die(2, "plot latent: the latent has one value; a scatter needs two (see vmrun encode)");
  Groups gr = {xmalloc(sizeof(int) * (size_t)r.n), 0, {0}};
  const int *labels = latent_labels(&r);
  int by_input = group_by_input(&r, &gr), by_label = !by_input && labels && group_by_label(&r, labels, &gr);
  long passes = t.drawn && by_input && r.n < IMPLICIT_POINTS ? (IMPLICIT_POINTS + r.n - 1) / r.n : 1;
  encode_split(&r, o->batch ? o->batch : 128, passes, &t);

  double *x = xmalloc(sizeof(double) * (size_t)t.n), *y = xmalloc(sizeof(double) * (size_t)t.n);
  char xl[320], yl[320], names[256], title[640];
  latent_list(&t, 0, names, sizeof names);
  if (t.dim == 2) {
    for (long i = 0; i < t.n; i++) x[i] = t.z[2 * i], y[i] = t.z[2 * i + 1];
    column_name(&t, 0, 1, xl, sizeof xl);
    column_name(&t, 1, 1, yl, sizeof yl);
  } else {
    double frac[2];
    principal_axes(&t, x, y, frac);
    snprintf(xl, sizeof xl, "PC1 (%.0f%% of the variance)", 100 * frac[0]);
    snprintf(yl, sizeof yl, "PC2 (%.0f%%)", 100 * frac[1]);
  }
  char sub[1400], from[1100] = "";
  const char *file = r.s.data[0].file[r.k], *slash = strrchr(file, '/');
  if (is_file(file)) snprintf(from, sizeof from, " (%s)", slash ? slash + 1 : file); /* which, after --data FILE */
  snprintf(title, sizeof title, "%s: %s %s%s", r.s.vmx->model, t.drawn ? "posterior samples of" : "encoder means of",
           names, t.dim > 2 ? " (PCA)" : "");
  snprintf(sub, sizeof sub, "%s split%s, %ld points", o->split, from, t.n);
  int *color = NULL;
  if (gr.ngroups) {
    color = xmalloc(sizeof(int) * (size_t)t.n);
    for (long i = 0; i < t.n; i++) color[i] = gr.group[i % r.n];
  }

  Plot *p = plot_begin(800, 800);
  /* a square frame, room on the right for the legend */
  int legend = gr.ngroups > 0;
  PlotAxes a = {.left = legend ? 0.14 : 0.15, .right = legend ? 0.72 : 0.90, .bottom = legend ? 0.21 : 0.12,
                .top = legend ? 0.79 : 0.87, .xlabel = xl, .ylabel = yl, .title = ""};
  plot_range_square(x, y, t.n, &a); /* distances read the same way across and up */
  plot_axes(p, &a);
  plot_title(p, a.top + 0.075, 1.1, title);
  plot_title(p, a.top + 0.035, 0.9, sub);
  plot_points(p, x, y, color, t.n, t.n <= 2000 ? 3.0 : t.n <= 10000 ? 2.0 : 1.5);
  if (legend) {
    int ids[PLOT_COLORS];
    for (int i = 0; i < gr.ngroups; i++) ids[i] = i;
    char *heading = by_input ? xprintf("input %s", r.s.data[0].decl->name) : xstrdup("label");
    plot_legend(p, heading, (const char *const *)gr.text, ids, gr.ngroups, PLOT_BOXES_OUTSIDE);
    free(heading);
  }
  plot_save(p, o->output);
  printf("wrote %s: %ld %s of %s (%s split)%s%s\n", o->output, t.n, t.drawn ? "posterior samples" : "encoder means",
         names, o->split, t.dim > 2 ? ", principal components" : "",
         by_input ? ", coloured by input" : by_label ? ", coloured by label" : "");
  free(color);
  free(x);
  free(y);
  groups_free(&gr);
  table_free(&t);
  latent_close(&r);
  return 0;
}

/* ------------------------------------------------------------ metrics.jsonl */

/* A small strict reader of one JSON line: the fields plotted are read,
 * every other value is checked and skipped. */
typedef struct {
  const char *s; /* the next character */
  const char *path;
  long line;
} Json;

static void json_bad(const Json *j, const char *what) __attribute__((noreturn));
static void json_bad(const Json *j, const char *what) {
  die(2, "%s:%ld: malformed metrics line: %s", j->path, j->line, what);
}

static void json_ws(Json *j) {
  while (*j->s == ' ' || *j->s == '\t' || *j->s == '\r' || *j->s == '\n') j->s++;
}

static void json_expect(Json *j, char c, const char *what) {
  json_ws(j);
  if (*j->s != c) json_bad(j, what);
  j->s++;
}

/* A string, escapes left as written (the keys compared have none). */
static void json_string(Json *j, const char **start, size_t *len) {
  json_expect(j, '"', "expected a string");
  const char *q = j->s;
  for (; *q != '"'; q++) {
    if ((unsigned char)*q < 0x20) json_bad(j, "unterminated string");
    if (*q == '\\' && (unsigned char)*++q < 0x20) json_bad(j, "bad escape in a string");
  }
  *start = j->s;
  *len = (size_t)(q - j->s);
  j->s = q + 1;
}

static int json_key_is(const char *key, size_t len, const char *want) {
  return strlen(want) == len && !memcmp(key, want, len);
}

static int digits(const char **q) {
  const char *start = *q;
  while (**q >= '0' && **q <= '9') ++*q;
  return *q > start;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static double json_number(Json *j) {
  json_ws(j);
  const char *q = j->s;
  if (*q == '-') q++;
  if (*q == '0') q++;
  else if (!digits(&q)) json_bad(j, "expected a number");
  if (*q == '.' && (q++, !digits(&q))) json_bad(j, "expected digits after '.'");
  if (*q == 'e' || *q == 'E') {
    q++;
    if (*q == '+' || *q == '-') q++;
    if (!digits(&q)) json_bad(j, "expected an exponent");
  }
  double v = strtod(j->s, NULL);
  j->s = q;
  return v;
}

static int json_word(Json *j, const char *w) {
  json_ws(j);
  size_t n = strlen(w);
  if (strncmp(j->s, w, n)) return 0;
  j->s += n;
  return 1;
}

/* A number, or NaN for null. */
static double json_number_or_null(Json *j) { return json_word(j, "null") ? NAN : json_number(j); }

/* Any value; containers call back for each member (fn NULL: skip it). */
static void json_skip(Json *j, int depth);

static void json_members(Json *j, int depth, void (*fn)(Json *, const char *, size_t, void *), void *ctx) {
  json_expect(j, '{', "expected '{'");
  json_ws(j);
  if (*j->s == '}') {
    j->s++;
    return;
  }
  for (;;) {
    const char *key;
    size_t len;
    json_string(j, &key, &len);
    json_expect(j, ':', "expected ':'");
    if (fn) fn(j, key, len, ctx);
    else json_skip(j, depth + 1);
    json_ws(j);
    if (*j->s != ',') break;
    j->s++;
  }
  json_expect(j, '}', "expected ',' or '}'");
}

static void json_skip(Json *j, int depth) {
  if (depth > 64) json_bad(j, "nested too deeply");
  json_ws(j);
  const char *key;
  size_t len;
  switch (*j->s) {
  case '{': json_members(j, depth, NULL, NULL); return;
  case '[':
    j->s++;
    json_ws(j);
    if (*j->s == ']') {
      j->s++;
      return;
    }
    for (;;) {
      json_skip(j, depth + 1);
      json_ws(j);
      if (*j->s != ',') break;
      j->s++;
    }
    json_expect(j, ']', "expected ',' or ']'");
    return;
  case '"': json_string(j, &key, &len); return;
  default:
    if (!json_word(j, "null") && !json_word(j, "true") && !json_word(j, "false")) json_number(j);
  }
}

/* ------------------------------------------------------------ plot metrics */

/* One quantity per report: a step's loss (by its graph, "train.0"), or a
 * held-out statistic of a latent of codes ("c.perplexity": `held_out`). */
typedef struct {
  char *graph;
  double *v; /* NaN: not reported (null, or absent from the line) */
  int held_out;
} Curve;

typedef struct {
  long n, cap;          /* reports */
  double *epoch, *step; /* step NaN when the run counts epochs */
  double *elbo;         /* the validation ELBO (else the training split's) */
  char elbo_split[8];   /* "valid" or "train": "" when never reported */
  Curve *loss;
  int nloss;
  long at;            /* the line being read */
  char latent[64];    /* the latent whose code statistics are being read */
} Metrics;

static double *grow(double *a, long n, long cap) {
  a = realloc(a, sizeof(double) * (size_t)cap);
  if (!a) die(1, "out of memory reading the metrics");
  for (long i = n; i < cap; i++) a[i] = NAN;
  return a;
}

static Curve *curve(Metrics *m, const char *graph, size_t len) {
  for (int i = 0; i < m->nloss; i++)
    if (json_key_is(graph, len, m->loss[i].graph)) return &m->loss[i];
  Curve *grown = realloc(m->loss, sizeof(Curve) * (size_t)(m->nloss + 1));
  if (!grown) die(1, "out of memory reading the metrics");
  m->loss = grown;
  Curve *c = &m->loss[m->nloss++];
  c->graph = xprintf("%.*s", (int)len, graph);
  c->v = grow(NULL, 0, m->cap);
  c->held_out = 0;
  return c;
}

static void loss_member(Json *j, const char *key, size_t len, void *ctx) {
  Metrics *m = ctx;
  curve(m, key, len)->v[m->at] = json_number_or_null(j);
}

/* "valid": {"codes": {"c": {"used": 70, "perplexity": 8.6, "nll": 47.6, ...}}}:
 * a VQ model's codebook usage, perplexity and prior NLL per latent. */
static void code_stat_member(Json *j, const char *key, size_t len, void *ctx) {
  Metrics *m = ctx;
  if (!json_key_is(key, len, "used") && !json_key_is(key, len, "perplexity") && !json_key_is(key, len, "nll")) {
    json_skip(j, 4);
    return;
  }
  char name[128];
  int n = snprintf(name, sizeof name, "%s.%.*s", m->latent, (int)len, key);
  Curve *c = curve(m, name, (size_t)n);
  c->held_out = 1;
  c->v[m->at] = json_number_or_null(j);
}

static void codes_member(Json *j, const char *key, size_t len, void *ctx) {
  Metrics *m = ctx;
  snprintf(m->latent, sizeof m->latent, "%.*s", (int)len, key);
  json_members(j, 3, code_stat_member, m);
}

static void valid_member(Json *j, const char *key, size_t len, void *ctx) {
  if (json_key_is(key, len, "codes")) json_members(j, 2, codes_member, ctx);
  else json_skip(j, 2);
}

static void line_member(Json *j, const char *key, size_t len, void *ctx) {
  Metrics *m = ctx;
  if (json_key_is(key, len, "epoch")) m->epoch[m->at] = json_number(j);
  else if (json_key_is(key, len, "step")) m->step[m->at] = json_number(j);
  else if (json_key_is(key, len, "loss")) json_members(j, 1, loss_member, m);
  else if (json_key_is(key, len, "valid")) json_members(j, 1, valid_member, m);
  else if (json_key_is(key, len, "valid_elbo") || json_key_is(key, len, "train_elbo")) {
    m->elbo[m->at] = json_number(j);
    snprintf(m->elbo_split, sizeof m->elbo_split, "%.5s", key);
  } else json_skip(j, 1);
}

static void read_line(Metrics *m, Json *j) {
  if (m->n == m->cap) {
    long cap = m->cap ? 2 * m->cap : 64;
    m->epoch = grow(m->epoch, m->n, cap);
    m->step = grow(m->step, m->n, cap);
    m->elbo = grow(m->elbo, m->n, cap);
    for (int i = 0; i < m->nloss; i++) m->loss[i].v = grow(m->loss[i].v, m->n, cap);
    m->cap = cap;
  }
  m->at = m->n;
  json_members(j, 0, line_member, m);
  json_ws(j);
  if (*j->s) json_bad(j, "text after the object");
  if (isnan(m->epoch[m->at])) json_bad(j, "no \"epoch\"");
  m->n++;
}

static void read_metrics(const char *path, Metrics *m) {
  memset(m, 0, sizeof *m);
  FILE *f = fopen(path, "r");
  if (!f) die(2, "cannot read %s: %s", path, strerror(errno));
  char *line = NULL; /* getline: a large model's KL per dimension makes long lines */
  size_t cap = 0;
  Json j = {NULL, path, 0};
  while (getline(&line, &cap, f) > 0) {
    j.s = line;
    j.line++;
    json_ws(&j);
    if (*j.s) read_line(m, &j);
  }
  free(line);
  fclose(f);
  if (!m->n) die(2, "%s: no metrics yet (the run has not reported)", path);
}

static void metrics_free(Metrics *m) {
  for (int i = 0; i < m->nloss; i++) {
    free(m->loss[i].graph);
    free(m->loss[i].v);
  }
  free(m->loss);
  free(m->epoch);
  free(m->step);
  free(m->elbo);
}

/* The x of each report: the step when every line has one (counted on
 * across stages, whose steps start again at 1), else the report number. */
static const char *x_axis(const Metrics *m, double *x) {
  for (long i = 0; i < m->n; i++)
    if (isnan(m->step[i])) {
      memcpy(x, m->epoch, sizeof(double) * (size_t)m->n);
      return "epoch";
    }
  double offset = 0;
  for (long i = 0; i < m->n; i++) {
    if (i && m->step[i] <= m->step[i - 1]) offset = x[i - 1];
    x[i] = offset + m->step[i];
  }
  return "step";
}

static const VmxStep *step_of(const Vmx *v, const char *graph) {
  for (int i = 0; i < v->steps.len; i++) {
    const VmxStep *st = v->steps.items[i];
    if (!strcmp(st->graph, graph)) return st;
  }
  return NULL;
}

/* One frame of the page: cell `i` of a grid of `cols` columns and `rows` rows. */
static void cell(int i, int cols, int rows, PlotAxes *a) {
  double w = 0.92 / cols, h = 0.88 / rows, x0 = 0.04 + (i % cols) * w, top = 0.92 - (i / cols) * h;
  a->left = x0 + 0.10;
  a->right = x0 + w - 0.02;
  a->bottom = top - h + 0.09;
  a->top = top - 0.05;
}

static void y_range(const double *a, const double *b, long n, PlotAxes *ax) {
  double *both = xmalloc(sizeof(double) * (size_t)(2 * n));
  memcpy(both, a, sizeof(double) * (size_t)n);
  for (long i = 0; i < n; i++) both[n + i] = b ? b[i] : NAN;
  plot_range(both, 2 * n, &ax->ymin, &ax->ymax);
  free(both);
}

static int plot_metrics(const Opts *o) {
  Run r;
  latent_open(o, &r);
  char *path = xprintf("%s/metrics.jsonl", r.run);
  Metrics m;
  read_metrics(path, &m);
  double *x = xmalloc(sizeof(double) * (size_t)m.n);
  const char *xlabel = x_axis(&m, x);
  /* the training ELBO estimate and the held-out ELBO share a panel: same quantity, same scale */
  int merged = -1;
  for (int i = 0; i < m.nloss && m.elbo_split[0]; i++) {
    const VmxStep *st = step_of(r.s.vmx, m.loss[i].graph);
    if (st && !strcmp(st->loss, "elbo") && merged < 0) merged = i;
  }
  int panels = m.nloss + (m.elbo_split[0] && merged < 0);
  if (!panels) die(2, "%s: no losses or ELBO to plot", path);
  int cols = panels > 3 ? 2 : 1, rows = (panels + cols - 1) / cols, dots = m.n <= 40;
  Plot *p = plot_begin(800, 800);
  char title[512], elbo_text[64], held[256];
  snprintf(title, sizeof title, "%s: training curves (%s)", r.s.vmx->model, r.run);
  snprintf(elbo_text, sizeof elbo_text, "ELBO on the %s split", m.elbo_split);
  for (int i = 0; i < panels; i++) {
    /* the x label under the bottom panel of each column: the panels above share it */
    PlotAxes a = {.xlabel = i + cols >= panels ? xlabel : "", .ylabel = "", .title = "", .title_scale = cols > 1 ? 0.7 : 0};
    cell(i, cols, rows, &a);
    plot_range(x, m.n, &a.xmin, &a.xmax);
    if (i < m.nloss && m.loss[i].held_out) { /* "c.perplexity": the held-out split's */
      const char *dot = strrchr(m.loss[i].graph, '.'), *what = dot + 1;
      snprintf(held, sizeof held, "%.*s: %s, held-out split", (int)(dot - m.loss[i].graph), m.loss[i].graph,
               !strcmp(what, "used") ? "codes used" : !strcmp(what, "nll") ? "the prior's -log r" : what);
      a.title = held;
      a.ylabel = what;
      y_range(m.loss[i].v, NULL, m.n, &a);
      plot_axes(p, &a);
      plot_line(p, x, m.loss[i].v, m.n, i, dots);
    } else if (i < m.nloss) {
      const VmxStep *st = step_of(r.s.vmx, m.loss[i].graph);
      const Graph *g = session_graph(&r.s, m.loss[i].graph);
      a.title = g && g->about ? g->about : m.loss[i].graph;
      a.ylabel = st ? st->loss : "loss";
      y_range(m.loss[i].v, i == merged ? m.elbo : NULL, m.n, &a);
      plot_axes(p, &a);
      plot_line(p, x, m.loss[i].v, m.n, i, dots);
      if (i == merged) {
        plot_line(p, x, m.elbo, m.n, m.nloss, dots);
        const char *text[2] = {"training batches", elbo_text};
        int colors[2] = {i, m.nloss};
        plot_legend(p, NULL, text, colors, 2, PLOT_LINES_INSIDE);
      }
    } else {
      a.title = elbo_text;
      a.ylabel = "elbo";
      y_range(m.elbo, NULL, m.n, &a);
      plot_axes(p, &a);
      plot_line(p, x, m.elbo, m.n, m.nloss, dots);
    }
  }
  plot_title(p, 1 - 28.0 / 800, 1.1, title);
  plot_save(p, o->output);
  printf("wrote %s: %d panel%s, %ld report%s by %s from %s\n", o->output, panels, panels > 1 ? "s" : "", m.n,
         m.n > 1 ? "s" : "", xlabel, path);
  free(x);
  free(path);
  metrics_free(&m);
  latent_close(&r);
  return 0;
}

int cmd_plot(const Opts *o) {
  if (!ends_with(o->output, ".png")) die(2, "plot: -o %s: expected a file ending in .png", o->output);
  return !strcmp(o->plot, "metrics") ? plot_metrics(o) : plot_latent(o);
}
