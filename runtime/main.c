/* main.c - vmrun: trains and evaluates a compiled model (.vmx).
 *
 *   vmrun train [FILE.vmx] [--data DIR] [--epochs N] [--steps N] [--batch N]
 *               [--lr X] [--seed N] [--out DIR] [--threads N]
 *   vmrun eval [FILE.vmx] [--run DIR] [--data DIR] [--split test] [--json]
 *               [--batch N] [--threads N]
 *
 * First cut of issue 4: no --resume yet, no KL per dimension. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "checkpoint.h"
#include "data.h"
#include "exec.h"
#include "optim.h"
#include "vmx.h"

void openblas_set_num_threads(int);

/* ------------------------------------------------------------ helpers */

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("vmrun: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(code);
}

static void *xmalloc(size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (!p) die(1, "out of memory");
  return p;
}

static char *xstrdup(const char *s) {
  char *p = xmalloc(strlen(s) + 1);
  memcpy(p, s, strlen(s) + 1);
  return p;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long long shape_numel(const Shape *s) {
  long long n = 1;
  for (int i = 0; i < s->rank; i++) n *= s->d[i];
  return n;
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

/* The one .vmx in dir; exits with a clear error for none or several. */
static char *find_vmx(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) die(2, "cannot read directory %s: %s", dir, strerror(errno));
  char *found = NULL;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!ends_with(e->d_name, ".vmx")) continue;
    count++;
    if (!found) found = xstrdup(e->d_name);
  }
  closedir(d);
  if (count == 0) die(2, "no .vmx file in %s (compile a model with 'vmc compile MODEL.vm', or name the file)", dir);
  if (count > 1) die(2, "several .vmx files in %s; name the one to use", dir);
  return found;
}

static int copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb");
  if (!in) return -1;
  FILE *out = fopen(to, "wb");
  if (!out) {
    fclose(in);
    return -1;
  }
  char buf[65536];
  size_t n;
  int rc = 0;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) rc = -1;
  if (ferror(in)) rc = -1;
  fclose(in);
  if (fclose(out)) rc = -1;
  return rc;
}

/* ------------------------------------------------------------ options */

typedef struct {
  const char *cmd, *file, *data, *out, *run, *split;
  long epochs, steps, batch, threads;
  double lr;
  uint64_t seed;
  int json;
} Opts;

static long parse_long(const char *opt, const char *v, long min) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || *end || end == v || x < min) die(2, "%s: expected an integer >= %ld, got '%s'", opt, min, v);
  return x;
}

static void usage(FILE *f) {
  fputs("usage: vmrun train [FILE.vmx] [--data DIR] [--epochs N] [--steps N] [--batch N]\n"
        "                   [--lr X] [--seed N] [--out DIR] [--threads N]\n"
        "       vmrun eval [FILE.vmx] [--run DIR] [--data DIR] [--split test] [--json]\n"
        "                  [--batch N] [--threads N]\n",
        f);
}

static void parse_opts(Opts *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->seed = 0;
  o->lr = -1;
  o->split = "test";
  if (argc < 2) {
    usage(stderr);
    exit(2);
  }
  o->cmd = argv[1];
  if (!strcmp(o->cmd, "--help") || !strcmp(o->cmd, "-h")) {
    usage(stdout);
    exit(0);
  }
  if (strcmp(o->cmd, "train") && strcmp(o->cmd, "eval")) {
    fprintf(stderr, "vmrun: unknown command '%s'\n", o->cmd);
    usage(stderr);
    exit(2);
  }
  int train = !strcmp(o->cmd, "train");
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || !a[1]) {
      if (o->file) die(2, "more than one file given ('%s' and '%s')", o->file, a);
      o->file = a;
      continue;
    }
    if (!strcmp(a, "--json") && !train) {
      o->json = 1;
      continue;
    }
    if (!strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    }
    if (i + 1 >= argc) die(2, "%s needs a value", a);
    const char *v = argv[++i];
    if (!strcmp(a, "--data")) o->data = v;
    else if (!strcmp(a, "--batch")) o->batch = parse_long(a, v, 1);
    else if (!strcmp(a, "--threads")) o->threads = parse_long(a, v, 1);
    else if (train && !strcmp(a, "--epochs")) o->epochs = parse_long(a, v, 1);
    else if (train && !strcmp(a, "--steps")) o->steps = parse_long(a, v, 1);
    else if (train && !strcmp(a, "--seed")) {
      char *end;
      errno = 0;
      unsigned long long s = strtoull(v, &end, 10);
      if (errno || *end || end == v || v[0] == '-') die(2, "--seed: expected a non-negative integer, got '%s'", v);
      o->seed = s;
    } else if (train && !strcmp(a, "--lr")) {
      char *end;
      o->lr = strtod(v, &end);
      if (*end || end == v || !(o->lr > 0) || !isfinite(o->lr)) die(2, "--lr: expected a positive number, got '%s'", v);
    } else if (train && !strcmp(a, "--out")) o->out = v;
    else if (!train && !strcmp(a, "--run")) o->run = v;
    else if (!train && !strcmp(a, "--split")) {
      if (strcmp(v, "train") && strcmp(v, "valid") && strcmp(v, "test"))
        die(2, "--split: expected train, valid or test, got '%s'", v);
      o->split = v;
    } else die(2, "unknown option '%s' for %s (see vmrun --help)", a, o->cmd);
  }
}

/* ------------------------------------------------------------ data sources */

/* A source's arguments: "files("DIR", train = "F", valid = 0.1)". */
typedef struct {
  char kind[64];   /* files, synthetic.four_frames, ... */
  char *pos;       /* first positional argument (unquoted) */
  char *key[16], *val[16];
  int nargs;
} Source;

static void source_parse(Source *s, const char *text, const char *dataname) {
  memset(s, 0, sizeof *s);
  const char *p = text;
  size_t k = 0;
  while (*p && *p != '(' && *p != ' ' && k + 1 < sizeof s->kind) s->kind[k++] = *p++;
  s->kind[k] = 0;
  while (*p == ' ') p++;
  if (*p != '(') return;
  p++;
  for (;;) {
    while (*p == ' ') p++;
    if (*p == ')' || !*p) break;
    /* one argument: [name =] value */
    char key[64] = "";
    const char *q = p;
    while (*q && (*q == '_' || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9')))
      q++;
    const char *r = q;
    while (*r == ' ') r++;
    if (*r == '=' && q > p && (size_t)(q - p) < sizeof key) {
      memcpy(key, p, (size_t)(q - p));
      key[q - p] = 0;
      p = r + 1;
      while (*p == ' ') p++;
    }
    char val[1024];
    size_t n = 0;
    if (*p == '"') {
      p++;
      while (*p && *p != '"' && n + 1 < sizeof val) {
        if (*p == '\\' && p[1]) p++;
        val[n++] = *p++;
      }
      if (*p == '"') p++;
    } else {
      while (*p && *p != ',' && *p != ')' && n + 1 < sizeof val) val[n++] = *p++;
      while (n > 0 && val[n - 1] == ' ') n--;
    }
    val[n] = 0;
    if (!key[0] && !s->pos) s->pos = xstrdup(val);
    else if (s->nargs < 16) {
      s->key[s->nargs] = xstrdup(key);
      s->val[s->nargs] = xstrdup(val);
      s->nargs++;
    } else die(2, "data %s: too many source arguments", dataname);
    while (*p == ' ') p++;
    if (*p == ',') p++;
  }
}

static const char *source_arg(const Source *s, const char *key) {
  for (int i = 0; i < s->nargs; i++)
    if (!strcmp(s->key[i], key)) return s->val[i];
  return NULL;
}

static double source_num(const Source *s, const char *key, double dflt, const char *dataname) {
  const char *v = source_arg(s, key);
  if (!v) return dflt;
  char *end;
  double x = strtod(v, &end);
  if (*end || end == v) die(2, "data %s: argument %s = %s is not a number", dataname, key, v);
  return x;
}

/* One data item's splits. */
typedef struct {
  const VmxData *decl;
  Dataset split[3]; /* train valid test */
  int have[3];
  char file[3][1024];
} DataItem;

static const char *split_names[3] = {"train", "valid", "test"};

static int split_index(const char *name) {
  for (int i = 0; i < 3; i++)
    if (!strcmp(split_names[i], name)) return i;
  return 0;
}

static void check_status(DataStatus st, const DataErr *err) {
  if (st != DATA_OK) die(2, "%s", err->msg);
}

/* Transforms by the domain, then checks the shape and the values. */
static void finish_split(DataItem *it, int k, double threshold) {
  Dataset *ds = &it->split[k];
  const VmxData *d = it->decl;
  const char *file = it->file[k];
  long long want = shape_numel(&d->shape);
  if (ds->dim != want) {
    char got[256] = "";
    size_t off = 0;
    for (int i = 0; i < ds->rank && off < sizeof got - 24; i++)
      off += (size_t)snprintf(got + off, sizeof got - off, "%s%ld", i ? ", " : "", ds->shape[i]);
    die(2, "%s: examples have shape [%s] (%ld values), but data %s is declared %s with %lld values", file, got, ds->dim,
        d->name, d->domain, want);
  }
  if (!strcmp(d->domain, "bit")) {
    if (threshold >= 0) data_threshold(ds, (float)threshold);
    else if (ds->bytes) {
      int binary = 1;
      for (long i = 0; i < ds->n * ds->dim && binary; i++) binary = ds->x[i] == 0.0f || ds->x[i] == 1.0f;
      if (!binary) data_threshold(ds, 127.0f);
    }
    for (long i = 0; i < ds->n * ds->dim; i++)
      if (ds->x[i] != 0.0f && ds->x[i] != 1.0f)
        die(2, "%s: example %ld, value %ld is %g, but data %s is bit (0 or 1; bytes are thresholded at 127)", file,
            i / ds->dim, i % ds->dim, (double)ds->x[i], d->name);
  } else if (!strcmp(d->domain, "real")) {
    const char *e = d->extra;
    double lo, hi;
    if (e && sscanf(e, "in [%lf, %lf]", &lo, &hi) == 2 && ds->bytes) data_scale(ds, (float)lo, (float)hi);
  } else if (!strcmp(d->domain, "cat")) {
    for (long i = 0; i < ds->n * ds->dim; i++) {
      float v = ds->x[i];
      if (v < 0 || v >= (float)d->classes || v != floorf(v))
        die(2, "%s: example %ld, value %ld is %g, not a code 0..%d of data %s", file, i / ds->dim, i % ds->dim,
            (double)v, d->classes - 1, d->name);
    }
  }
}

static void source_free(Source *s) {
  free(s->pos);
  for (int i = 0; i < s->nargs; i++) {
    free(s->key[i]);
    free(s->val[i]);
  }
}

static void load_data(DataItem *it, const Opts *o, uint64_t seed) {
  const VmxData *d = it->decl;
  const char *from = d->extra ? strstr(d->extra, "from ") : NULL;
  if (!from) die(2, "data %s has no source", d->name);
  Source s;
  source_parse(&s, from + 5, d->name);
  DataErr err;
  memset(&err, 0, sizeof err);
  if (!strncmp(s.kind, "synthetic.", 10)) {
    const char *set = s.kind + 10;
    long n = (long)source_num(&s, "n", 1000, d->name);
    if (n < 1) die(2, "data %s: n must be >= 1", d->name);
    DataStatus st;
    Dataset *ds = &it->split[0];
    if (!strcmp(set, "four_frames")) st = data_synth_four_frames(ds, n, seed, &err);
    else if (!strcmp(set, "nine_pixels")) st = data_synth_nine_pixels(ds, n, seed, &err);
    else if (!strcmp(set, "gaussian")) {
      const char *cov = source_arg(&s, "cov");
      st = data_synth_gaussian(ds, n, !cov || strcmp(cov, "diag"), seed, &err);
    } else if (!strcmp(set, "mixture"))
      st = data_synth_mixture(ds, n, (int)source_num(&s, "k", 8, d->name), source_num(&s, "radius", 2, d->name),
                              source_num(&s, "std", 0.1, d->name), seed, &err);
    else die(2, "data %s: unknown synthetic set '%s'", d->name, set);
    check_status(st, &err);
    it->have[0] = 1;
    snprintf(it->file[0], sizeof it->file[0], "%s", s.kind);
    finish_split(it, 0, -1);
    source_free(&s);
    return;
  }
  if (strcmp(s.kind, "files")) die(2, "data %s: unknown source '%s'", d->name, from + 5);
  if (!s.pos) die(2, "data %s: files(...) names no directory", d->name);
  char dir[512];
  if (o->data) {
    snprintf(dir, sizeof dir, "%s", o->data);
    if (!is_dir(dir) && !is_file(dir)) die(2, "--data %s: no such directory or file", o->data);
  } else {
    snprintf(dir, sizeof dir, "%s", s.pos);
    if (!is_dir(dir) && !is_file(dir)) {
      snprintf(dir, sizeof dir, "../shared/data/%s", s.pos);
      if (!is_dir(dir) && !is_file(dir))
        die(2, "data %s: cannot find the data directory '%s' (tried ./%s and ../shared/data/%s; give it with --data DIR)",
            d->name, s.pos, s.pos, s.pos);
    }
  }
  double threshold = source_num(&s, "binarize", -1, d->name);
  for (int k = 0; k < 3; k++) {
    const char *named = source_arg(&s, split_names[k]);
    char *end = NULL;
    double frac = named ? strtod(named, &end) : 0;
    if (named && end && !*end && end != named) continue; /* a fraction, below */
    if (is_file(dir)) {
      if (k) continue;
      snprintf(it->file[k], sizeof it->file[k], "%s", dir);
    } else if (named) {
      snprintf(it->file[k], sizeof it->file[k], "%s/%.500s", dir, named);
    } else {
      if (data_find_split(dir, split_names[k], it->file[k], (long)sizeof it->file[k], &err) != DATA_OK) {
        if (k == 0) die(2, "%s", err.msg);
        continue; /* no valid or test split */
      }
    }
    check_status(data_load(it->file[k], &it->split[k], &err), &err);
    it->have[k] = 1;
    (void)frac;
  }
  const char *v = source_arg(&s, "valid");
  if (v) {
    char *end;
    double frac = strtod(v, &end);
    if (!*end && end != v) {
      check_status(data_split_fraction(&it->split[0], frac, &it->split[1], &err), &err);
      it->have[1] = 1;
      snprintf(it->file[1], sizeof it->file[1], "%.900s (valid = %.60s)", it->file[0], v);
    }
  }
  for (int k = 0; k < 3; k++)
    if (it->have[k]) finish_split(it, k, threshold);
  source_free(&s);
}

/* ------------------------------------------------------------ the model */

typedef struct {
  const VmxParam *decl;
  float *data;
  long n;
} RtParam;

typedef struct {
  Arena *arena;
  Vmx *vmx;
  const char *path;
  RtParam *params;
  int nparams;
  DataItem *data;
  int ndata;
} RtModel;

static const Graph *find_graph(const Vmx *x, const char *name) {
  for (int i = 0; i < x->graphs.len; i++) {
    const Graph *g = x->graphs.items[i];
    if (!strcmp(g->name, name)) return g;
  }
  return NULL;
}

static RtParam *find_param(RtModel *m, const char *name) {
  for (int i = 0; i < m->nparams; i++)
    if (!strcmp(m->params[i].decl->name, name)) return &m->params[i];
  return NULL;
}

static void model_load(RtModel *m, const char *path) {
  char err[1024] = "";
  m->arena = arena_new();
  m->path = path;
  m->vmx = vmx_read(m->arena, path, err, sizeof err);
  if (!m->vmx) {
    fprintf(stderr, "%s\n", err);
    exit(2);
  }
  m->nparams = m->vmx->params.len;
  m->params = xmalloc(sizeof(RtParam) * (size_t)(m->nparams + 1));
  for (int i = 0; i < m->nparams; i++) {
    RtParam *p = &m->params[i];
    p->decl = m->vmx->params.items[i];
    p->n = (long)shape_numel(&p->decl->shape);
    p->data = xmalloc(sizeof(float) * (size_t)p->n);
  }
  m->ndata = 0;
  m->data = xmalloc(sizeof(DataItem) * (size_t)(m->vmx->data.len + 1));
  for (int i = 0; i < m->vmx->data.len; i++) {
    const VmxData *d = m->vmx->data.items[i];
    if (!strcmp(d->domain, "latent")) continue;
    DataItem *it = &m->data[m->ndata++];
    it->decl = d;
    for (int k = 0; k < 3; k++) data_init(&it->split[k]);
  }
}

static void model_free(RtModel *m) {
  for (int i = 0; i < m->nparams; i++) free(m->params[i].data);
  free(m->params);
  for (int i = 0; i < m->ndata; i++)
    for (int k = 0; k < 3; k++) data_free(&m->data[i].split[k]);
  free(m->data);
  if (m->arena) arena_free(m->arena);
  memset(m, 0, sizeof *m);
}

static void model_load_data(RtModel *m, const Opts *o, uint64_t seed) {
  for (int i = 0; i < m->ndata; i++) load_data(&m->data[i], o, seed);
  for (int k = 0; k < 3; k++)
    for (int i = 1; i < m->ndata; i++)
      if (m->data[i].have[k] != m->data[0].have[k] ||
          (m->data[i].have[k] && m->data[i].split[k].n != m->data[0].split[k].n))
        die(2, "data %s and %s have different %s splits (%s: %ld examples, %s: %ld)", m->data[0].decl->name,
            m->data[i].decl->name, split_names[k], m->data[0].file[k], m->data[0].split[k].n, m->data[i].file[k],
            m->data[i].split[k].n);
}

/* Per data item: a batch buffer. */
typedef struct {
  float **buf;
  int nbuf;
} Batches;

static void batches_init(Batches *b, const RtModel *m, long batch) {
  b->nbuf = m->ndata;
  b->buf = xmalloc(sizeof(float *) * (size_t)(m->ndata + 1));
  for (int i = 0; i < m->ndata; i++) b->buf[i] = xmalloc(sizeof(float) * (size_t)(batch * m->data[i].split[0].dim + 1));
}

/* Gathers examples perm[first..first+count) of split k and binds them. */
static void bind_batch(Exec *ex, const RtModel *m, Batches *b, int k, const long *perm, long count) {
  for (int i = 0; i < m->ndata; i++) {
    data_gather(&m->data[i].split[k], perm, count, b->buf[i]);
    exec_bind_input(ex, m->data[i].decl->name, b->buf[i]);
  }
}

static void bind_params(Exec *ex, RtModel *m) {
  for (int i = 0; i < m->nparams; i++) exec_bind_param(ex, m->params[i].decl->name, m->params[i].data);
}

/* Mean elbo, log_joint, log_q over split k; -1 on a run error. */
static int eval_elbo(RtModel *m, const Graph *g, int k, long batch, uint64_t seed, double out[3], ExecError *err) {
  long n = m->data[0].split[k].n;
  if (batch > n) batch = n;
  Exec *ex = exec_new(g, (int)batch);
  if (!ex) die(1, "out of memory preparing graph %s", g->name);
  bind_params(ex, m);
  Batches b;
  batches_init(&b, m, batch);
  long *idx = xmalloc(sizeof(long) * (size_t)batch);
  double sum[3] = {0, 0, 0};
  const char *names[3] = {"elbo", "log_joint", "log_q"};
  int rc = 0;
  uint64_t step = 0;
  for (long first = 0; first < n; first += batch) {
    long count = n - first < batch ? n - first : batch;
    for (long j = 0; j < count; j++) idx[j] = first + j;
    bind_batch(ex, m, &b, k, idx, count);
    if (exec_run(ex, (int)count, seed, step++, err)) {
      rc = -1;
      break;
    }
    for (int t = 0; t < 3; t++) {
      const float *v = exec_output(ex, names[t]);
      if (!v) continue;
      for (long j = 0; j < count; j++) sum[t] += v[j];
    }
  }
  for (int t = 0; t < 3; t++) out[t] = sum[t] / (double)n;
  for (int i = 0; i < b.nbuf; i++) free(b.buf[i]);
  free(b.buf);
  free(idx);
  exec_free(ex);
  return rc;
}

/* ------------------------------------------------------------ training */

typedef struct {
  const VmxStep *decl;
  const Graph *graph;
  Exec *ex;
  OptimConfig cfg;
  LrSchedule sched;
  RtParam **params;
  float **m, **v;
  const float **grads;
  long *lens;
  int np;
  long t;          /* updates made (over the whole run) */
  long stage_t;    /* updates made in the current stage */
  double loss_sum; /* since the last report */
  long loss_count;
} Step;

typedef struct {
  const VmxStage *decl;
  long batch, epochs, steps;
  double clip;
} StageRun;

static const char *setting(const VmxStage *s, const char *key) {
  for (int i = 0; i + 1 < s->settings.len; i += 2)
    if (!strcmp(s->settings.items[i], key)) return s->settings.items[i + 1];
  return NULL;
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

static void write_checkpoint(const char *outdir, RtModel *m, Step *steps, int nsteps, uint64_t seed, uint64_t rng_step,
                             long epoch, long position) {
  size_t cap = (size_t)m->nparams;
  for (int s = 0; s < nsteps; s++) cap += 2 * (size_t)steps[s].np;
  CkptTensor *t = xmalloc(sizeof(CkptTensor) * (cap + 1));
  char **names = xmalloc(sizeof(char *) * (cap + 1));
  size_t nt = 0;
  for (int i = 0; i < m->nparams; i++) {
    CkptTensor *c = &t[nt++];
    c->name = m->params[i].decl->name;
    c->rank = m->params[i].decl->shape.rank;
    for (int r = 0; r < c->rank; r++) c->shape[r] = m->params[i].decl->shape.d[r];
    c->data = m->params[i].data;
  }
  size_t nnames = 0;
  for (int s = 0; s < nsteps; s++) {
    for (int j = 0; j < steps[s].np; j++) {
      for (int w = 0; w < 2; w++) {
        float *arr = w ? steps[s].v[j] : steps[s].m[j];
        if (!arr) continue;
        const char *which = w ? "v" : "m";
        int len = ckpt_state_name(NULL, 0, steps[s].graph->name, steps[s].params[j]->decl->name, which);
        char *nm = xmalloc((size_t)len + 1);
        ckpt_state_name(nm, (size_t)len + 1, steps[s].graph->name, steps[s].params[j]->decl->name, which);
        names[nnames++] = nm;
        CkptTensor *c = &t[nt++];
        c->name = nm;
        c->rank = steps[s].params[j]->decl->shape.rank;
        for (int r = 0; r < c->rank; r++) c->shape[r] = steps[s].params[j]->decl->shape.d[r];
        c->data = arr;
      }
    }
  }
  CkptMeta meta[64];
  char vals[64][64];
  char keys[64][160];
  size_t nm = 0;
  meta[nm++] = (CkptMeta){CKPT_KEY_VERSION, "1"};
  meta[nm++] = (CkptMeta){CKPT_KEY_VMX_HASH, m->vmx->source_hash};
  snprintf(vals[0], sizeof vals[0], "%llu", (unsigned long long)seed);
  meta[nm++] = (CkptMeta){CKPT_KEY_SEED, vals[0]};
  snprintf(vals[1], sizeof vals[1], "%llu", (unsigned long long)rng_step);
  meta[nm++] = (CkptMeta){CKPT_KEY_RNG_STEP, vals[1]};
  snprintf(vals[2], sizeof vals[2], "%ld", epoch);
  meta[nm++] = (CkptMeta){CKPT_KEY_EPOCH, vals[2]};
  snprintf(vals[3], sizeof vals[3], "%ld", position);
  meta[nm++] = (CkptMeta){CKPT_KEY_POSITION, vals[3]};
  for (int s = 0; s < nsteps && nm < 60; s++) {
    snprintf(keys[s], sizeof keys[s], "vml.optim.%s.t", steps[s].graph->name);
    snprintf(vals[4 + s], sizeof vals[4 + s], "%ld", steps[s].t);
    meta[nm++] = (CkptMeta){keys[s], vals[4 + s]};
  }
  char path[2048], err[1024];
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", outdir);
  if (ckpt_write(path, t, nt, meta, nm, err, sizeof err)) die(1, "%s", err);
  for (size_t i = 0; i < nnames; i++) free(names[i]);
  free(names);
  free(t);
}

static char *make_outdir(const Opts *o, const RtModel *m) {
  char *dir;
  if (o->out) {
    dir = xstrdup(o->out);
    if (mkdir(dir, 0777) && errno != EEXIST) die(2, "cannot create %s: %s", dir, strerror(errno));
    if (!is_dir(dir)) die(2, "%s is not a directory", dir);
  } else {
    if (mkdir("runs", 0777) && errno != EEXIST) die(2, "cannot create runs: %s", strerror(errno));
    size_t cap = strlen(m->vmx->model) + 64;
    dir = xmalloc(cap);
    for (long n = 1;; n++) {
      snprintf(dir, cap, "runs/%s-%ld", m->vmx->model, n);
      if (mkdir(dir, 0777) == 0) break;
      if (errno != EEXIST) die(2, "cannot create %s: %s", dir, strerror(errno));
    }
  }
  const char *base = strrchr(m->path, '/');
  base = base ? base + 1 : m->path;
  char to[4096];
  snprintf(to, sizeof to, "%s/%s", dir, base);
  if (copy_file(m->path, to)) die(2, "cannot copy %s to %s: %s", m->path, to, strerror(errno));
  return dir;
}

static int cmd_train(const Opts *o) {
  RtModel m;
  memset(&m, 0, sizeof m);
  char *path = o->file ? xstrdup(o->file) : find_vmx(".");
  model_load(&m, path);
  Vmx *x = m.vmx;
  if (x->steps.len == 0) die(2, "%s: the model has no train block (no step to run)", path);
  if (m.ndata == 0) die(2, "%s: the model declares no data", path);
  uint64_t seed = o->seed;
  model_load_data(&m, o, seed);
  long ntrain = m.data[0].split[0].n;

  char err[1024];
  for (int i = 0; i < m.nparams; i++) {
    RtParam *p = &m.params[i];
    if (optim_init_param(p->data, p->decl->shape.d, p->decl->shape.rank, p->decl->init, p->decl->name, seed, err,
                         sizeof err))
      die(2, "%s: %s", path, err);
  }

  int nsteps = x->steps.len;
  Step *steps = xmalloc(sizeof(Step) * (size_t)nsteps);
  for (int s = 0; s < nsteps; s++) {
    Step *st = &steps[s];
    st->decl = x->steps.items[s];
    st->graph = find_graph(x, st->decl->graph);
    if (!st->graph) die(2, "%s: no graph %s for the step", path, st->decl->graph);
    if (optim_config_parse(&st->cfg, st->decl->optimizer, (const char *const *)st->decl->args.items,
                           (size_t)st->decl->args.len / 2, err, sizeof err))
      die(2, "%s: step %s: %s", path, st->decl->graph, err);
    if (o->lr > 0) st->cfg.lr = o->lr;
    if (optim_schedule_parse(&st->sched, st->decl->schedule ? st->decl->schedule : "constant()", err, sizeof err))
      die(2, "%s: step %s: %s", path, st->decl->graph, err);
    st->np = st->decl->params.len;
    st->params = xmalloc(sizeof(RtParam *) * (size_t)(st->np + 1));
    st->m = xmalloc(sizeof(float *) * (size_t)(st->np + 1));
    st->v = xmalloc(sizeof(float *) * (size_t)(st->np + 1));
    st->grads = xmalloc(sizeof(float *) * (size_t)(st->np + 1));
    st->lens = xmalloc(sizeof(long) * (size_t)(st->np + 1));
    int nstate = optim_state_arrays(&st->cfg);
    for (int j = 0; j < st->np; j++) {
      st->params[j] = find_param(&m, st->decl->params.items[j]);
      if (!st->params[j]) die(2, "%s: step %s updates unknown parameter %s", path, st->decl->graph,
                              (const char *)st->decl->params.items[j]);
      st->lens[j] = st->params[j]->n;
      if (nstate >= 1) st->m[j] = xmalloc(sizeof(float) * (size_t)st->lens[j]);
      if (nstate >= 2) st->v[j] = xmalloc(sizeof(float) * (size_t)st->lens[j]);
    }
  }

  if (o->threads > 0) openblas_set_num_threads((int)o->threads);
  char *outdir = make_outdir(o, &m);
  char mpath[4096];
  snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", outdir);
  FILE *metrics = fopen(mpath, "a");
  if (!metrics) die(2, "cannot open %s: %s", mpath, strerror(errno));
  int tty = isatty(1);
  const Graph *elbo_graph = find_graph(x, "elbo");
  printf("training %s (%s) on %ld examples, seed %llu, output in %s\n", x->model, path, ntrain,
         (unsigned long long)seed, outdir);
  fflush(stdout);

  long *perm = xmalloc(sizeof(long) * (size_t)ntrain);
  uint64_t rng_step = 0;
  long global_epoch = 0; /* permutations drawn */
  long cursor = ntrain;  /* position in the current permutation; ntrain: draw a new one */
  long report_no = 0;
  double t_start = now_seconds();
  int failed = 0;

  for (int si = 0; si < x->stages.len && !failed; si++) {
    const VmxStage *sd = x->stages.items[si];
    int first = -1, last = -1;
    for (int s = 0; s < nsteps; s++) {
      const char *a = steps[s].decl->stage, *b = sd->stage;
      if ((!a && !b) || (a && b && !strcmp(a, b))) {
        if (first < 0) first = s;
        last = s;
      }
    }
    if (first < 0) continue;
    StageRun sr = {sd, 128, 0, 0, 0};
    const char *v;
    if ((v = setting(sd, "batch"))) sr.batch = atol(v);
    if ((v = setting(sd, "epochs"))) sr.epochs = atol(v);
    if ((v = setting(sd, "steps"))) sr.steps = atol(v);
    if ((v = setting(sd, "clip"))) sr.clip = atof(v);
    if (o->batch) sr.batch = o->batch;
    if (o->steps) sr.steps = o->steps, sr.epochs = 0;
    else if (o->epochs) sr.epochs = o->epochs, sr.steps = 0;
    if (!sr.epochs && !sr.steps) sr.epochs = 1;
    if (sr.batch > ntrain) sr.batch = ntrain;
    Batches b;
    batches_init(&b, &m, sr.batch);
    int round_len = 0;
    for (int s = first; s <= last; s++) {
      Step *st = &steps[s];
      st->ex = exec_new(st->graph, (int)sr.batch);
      if (!st->ex) die(1, "out of memory preparing graph %s", st->graph->name);
      bind_params(st->ex, &m);
      st->stage_t = 0;
      st->loss_sum = 0;
      st->loss_count = 0;
      round_len += st->decl->ratio > 0 ? st->decl->ratio : 1;
    }
    long batches_per_epoch = (ntrain + sr.batch - 1) / sr.batch;
    long total_rounds = sr.steps ? sr.steps : (batches_per_epoch * sr.epochs + round_len - 1) / round_len;
    long report_every = sr.steps ? (sr.steps >= 10 ? sr.steps / 10 : 1) : 0;
    long stage_epoch = 0, examples = 0;
    double t_report = now_seconds();
    if (sr.epochs) cursor = ntrain; /* epochs start on a fresh permutation */
    for (long round = 0; round < total_rounds && !failed; round++) {
      int epoch_done = 0;
      for (int s = first; s <= last && !failed && !epoch_done; s++) {
        Step *st = &steps[s];
        int ratio = st->decl->ratio > 0 ? st->decl->ratio : 1;
        for (int r = 0; r < ratio && !failed && !epoch_done; r++) {
          if (cursor >= ntrain) {
            data_permutation(perm, ntrain, seed, (uint64_t)global_epoch++);
            cursor = 0;
          }
          long count = ntrain - cursor < sr.batch ? ntrain - cursor : sr.batch;
          bind_batch(st->ex, &m, &b, 0, perm + cursor, count);
          cursor += count;
          examples += count;
          ExecError e;
          if (exec_run(st->ex, (int)count, seed, rng_step++, &e)) {
            if (tty) fputc('\n', stdout);
            fflush(stdout);
            fprintf(stderr, "vmrun: %s: %s\n", st->graph->name, e.msg);
            failed = 1;
            break;
          }
          const float *loss = exec_output(st->ex, "loss");
          if (loss) {
            st->loss_sum += loss[0];
            st->loss_count++;
          }
          for (int j = 0; j < st->np; j++) {
            char gname[1024];
            snprintf(gname, sizeof gname, "grad:%s", st->params[j]->decl->name);
            st->grads[j] = exec_output(st->ex, gname);
            if (!st->grads[j]) die(1, "graph %s has no output %s", st->graph->name, gname);
          }
          float gscale = 1.0f;
          if (sr.clip > 0) gscale = optim_clip_scale(optim_global_norm(st->grads, st->lens, st->np), sr.clip);
          long total_updates = sr.steps ? sr.steps * ratio : total_rounds * ratio;
          double lr = optim_lr(&st->sched, st->cfg.lr, st->stage_t, stage_epoch, total_updates);
          st->t++;
          st->stage_t++;
          for (int j = 0; j < st->np; j++)
            optim_update(&st->cfg, lr, st->t, gscale, st->params[j]->data, st->grads[j], st->m[j], st->v[j],
                         st->lens[j]);
          if (sr.epochs && cursor >= ntrain) epoch_done = 1;
        }
      }
      if (failed) break;
      int report = sr.steps ? ((round + 1) % report_every == 0 || round + 1 == total_rounds) : epoch_done;
      if (!sr.steps && round + 1 == total_rounds && !epoch_done) report = 1;
      if (tty && !report) {
        long done = sr.steps ? (round + 1) % report_every : cursor;
        long of = sr.steps ? report_every : ntrain;
        int width = 30, fill = (int)(width * done / (of ? of : 1));
        printf("\r[%.*s%*s] %ld/%ld", fill, "==============================", width - fill, "", done, of);
        fflush(stdout);
      }
      if (!report) continue;
      stage_epoch += epoch_done;
      report_no++;
      double tnow = now_seconds();
      double secs = tnow - t_report;
      double rate = secs > 0 ? examples / secs : 0;
      if (tty) fputs("\r\033[K", stdout);
      if (sr.steps) printf("step %ld/%ld", round + 1, sr.steps);
      else printf("epoch %ld/%ld", stage_epoch, sr.epochs);
      if (sd->stage) printf(" [%s]", sd->stage);
      fprintf(metrics, "{\"epoch\":%ld", report_no);
      if (sr.steps) fprintf(metrics, ",\"step\":%ld", round + 1);
      if (sd->stage) {
        fputs(",\"stage\":", metrics);
        json_str(metrics, sd->stage);
      }
      fputs(",\"loss\":{", metrics);
      for (int s = first; s <= last; s++) {
        Step *st = &steps[s];
        double mean = st->loss_count ? st->loss_sum / st->loss_count : NAN;
        printf("  %s %s %.6g", st->graph->name, st->decl->loss, mean);
        fprintf(metrics, "%s\"%s\":", s > first ? "," : "", st->graph->name);
        if (st->loss_count) fprintf(metrics, "%.9g", mean);
        else fputs("null", metrics);
        st->loss_sum = 0;
        st->loss_count = 0;
      }
      fputc('}', metrics);
      if (elbo_graph && m.data[0].have[1]) {
        double ev[3];
        ExecError e;
        if (eval_elbo(&m, elbo_graph, 1, sr.batch, seed, ev, &e) == 0) {
          printf("  valid elbo %.6g", ev[0]);
          fprintf(metrics, ",\"valid_elbo\":%.9g", ev[0]);
        } else {
          printf("\n");
          fprintf(stderr, "vmrun: elbo on the valid split: %s\n", e.msg);
          failed = 1;
        }
      }
      printf("  %.0f examples/s\n", rate);
      fflush(stdout);
      fprintf(metrics, ",\"seconds\":%.3f}\n", tnow - t_start);
      fflush(metrics);
      if (failed) break;
      write_checkpoint(outdir, &m, steps, nsteps, seed, rng_step, report_no, cursor);
      examples = 0;
      t_report = now_seconds();
    }
    for (int s = first; s <= last; s++) {
      exec_free(steps[s].ex);
      steps[s].ex = NULL;
    }
    for (int i = 0; i < b.nbuf; i++) free(b.buf[i]);
    free(b.buf);
  }
  fclose(metrics);
  int rc = 0;
  if (failed) {
    char cp[4096];
    snprintf(cp, sizeof cp, "%s/checkpoint.safetensors", outdir);
    if (is_file(cp)) fprintf(stderr, "vmrun: training stopped; the last good checkpoint is %s\n", cp);
    else fprintf(stderr, "vmrun: training stopped before the first checkpoint\n");
    rc = 1;
  } else printf("done in %.1f s; checkpoint %s/checkpoint.safetensors\n", now_seconds() - t_start, outdir);
  for (int s = 0; s < nsteps; s++) {
    Step *st = &steps[s];
    if (st->ex) exec_free(st->ex);
    for (int j = 0; j < st->np; j++) {
      free(st->m[j]);
      free(st->v[j]);
    }
    free(st->params);
    free(st->m);
    free(st->v);
    free(st->grads);
    free(st->lens);
  }
  free(steps);
  free(perm);
  free(outdir);
  model_free(&m);
  free(path);
  return rc;
}

/* ------------------------------------------------------------ eval */

/* The newest run under runs/ (by its checkpoint's modification time). */
static char *newest_run(void) {
  DIR *d = opendir("runs");
  if (!d) die(2, "no runs/ directory here; train first or name a run with --run DIR");
  char *best = NULL;
  struct timespec bt = {0, 0};
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[4096];
    snprintf(p, sizeof p, "runs/%s/checkpoint.safetensors", e->d_name);
    struct stat st;
    if (stat(p, &st)) continue;
    if (!best || st.st_mtim.tv_sec > bt.tv_sec || (st.st_mtim.tv_sec == bt.tv_sec && st.st_mtim.tv_nsec > bt.tv_nsec)) {
      free(best);
      size_t cap = strlen(e->d_name) + 8;
      best = xmalloc(cap);
      snprintf(best, cap, "runs/%s", e->d_name);
      bt = st.st_mtim;
    }
  }
  closedir(d);
  if (!best) die(2, "no run with a checkpoint under runs/; train first or name a run with --run DIR");
  return best;
}

static int cmd_eval(const Opts *o) {
  char *run = o->run ? xstrdup(o->run) : newest_run();
  char *path;
  if (o->file) path = xstrdup(o->file);
  else {
    /* the run's own copy of the .vmx, else the one here */
    DIR *d = opendir(run);
    path = NULL;
    if (d) {
      struct dirent *e;
      while ((e = readdir(d)))
        if (ends_with(e->d_name, ".vmx")) {
          size_t cap = strlen(run) + strlen(e->d_name) + 2;
          path = xmalloc(cap);
          snprintf(path, cap, "%s/%s", run, e->d_name);
          break;
        }
      closedir(d);
    }
    if (!path) path = find_vmx(".");
  }
  RtModel m;
  memset(&m, 0, sizeof m);
  model_load(&m, path);
  const Graph *g = find_graph(m.vmx, "elbo");
  if (!g) die(2, "%s: model %s has no elbo entry point (a role without a density)", path, m.vmx->model);
  char cp[4096], err[1024];
  snprintf(cp, sizeof cp, "%s/checkpoint.safetensors", run);
  Ckpt c;
  if (ckpt_read(cp, &c, err, sizeof err)) die(2, "%s", err);
  if (ckpt_check_hash(&c, m.vmx->source_hash, err, sizeof err)) die(2, "%s", err);
  uint64_t seed = 0;
  if (ckpt_meta_u64(&c, CKPT_KEY_SEED, &seed, err, sizeof err)) die(2, "%s", err);
  for (int i = 0; i < m.nparams; i++)
    if (ckpt_load(&c, m.params[i].decl->name, m.params[i].decl->shape.d, m.params[i].decl->shape.rank,
                  m.params[i].data, err, sizeof err))
      die(2, "%s", err);
  ckpt_free(&c);
  if (m.ndata == 0) die(2, "%s: the model declares no data", path);
  model_load_data(&m, o, seed);
  int k = split_index(o->split);
  if (!m.data[0].have[k]) die(2, "data %s has no %s split", m.data[0].decl->name, o->split);
  if (o->threads > 0) openblas_set_num_threads((int)o->threads);
  double ev[3];
  ExecError e;
  long batch = o->batch ? o->batch : 128;
  if (eval_elbo(&m, g, k, batch, seed, ev, &e)) die(1, "elbo: %s", e.msg);
  if (o->json) {
    printf("{\"run\":");
    json_str(stdout, run);
    printf(",\"split\":\"%s\",\"examples\":%ld,\"elbo\":%.9g,\"log_joint\":%.9g,\"log_q\":%.9g}\n", o->split,
           m.data[0].split[k].n, ev[0], ev[1], ev[2]);
  } else {
    printf("%s on %s (%ld examples, %s)\n", m.vmx->model, o->split, m.data[0].split[k].n, run);
    printf("  elbo       %.6f\n  log_joint  %.6f\n  log_q      %.6f\n", ev[0], ev[1], ev[2]);
  }
  model_free(&m);
  free(path);
  free(run);
  return 0;
}

int main(int argc, char **argv) {
  Opts o;
  parse_opts(&o, argc, argv);
  if (!strcmp(o.cmd, "train")) return cmd_train(&o);
  return cmd_eval(&o);
}
