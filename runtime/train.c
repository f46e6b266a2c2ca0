/* train.c - vmrun train: the stages of a model's train block, step by step,
 * with metrics, checkpoints and bit-identical resumption.
 *
 * A run is a directory (runs/MODEL-N or --out) holding a copy of the .vmx,
 * metrics.jsonl (one line per report) and checkpoint.safetensors (written
 * atomically at each report).  Everything that decides what happens next
 * -- parameters, optimizer state, step counters, the data shuffle and
 * cursor, the random step, the position in the schedule -- is in the
 * checkpoint, so `--resume RUN` continues exactly where the last report
 * left off: 2 epochs equal 1 epoch, a resume and 1 more, byte for byte. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "optim.h"
#include "pool.h"
#include "rng.h"
#include "session.h"
#include "stats.h"
#include "util.h"
#include "vmrun.h"

typedef struct {
  const VmxStep *decl;
  const Graph *graph;
  Exec *ex;
  OptimConfig cfg;
  LrSchedule sched;
  RtParam **params;
  float **state[2];  /* optimizer state m, v per parameter (NULL when unused) */
  char **state_name[2]; /* their checkpoint names, optim/GRAPH/PARAM/m|v */
  char **grad_name;  /* the graph outputs grad:PARAM */
  const float **grads;
  long *lens;
  /* codebook = ema(...): per parameter, 1 when it is a codebook the step
   * updates by exponential moving averages (its graph gives ema.count:P and
   * ema.sum:P instead of grad:P); state[0] is then N [K], state[1] m [K, D] */
  int *ema;
  char **ema_name[2]; /* the outputs ema.count:P, ema.sum:P */
  double ema_decay, ema_eps;
  int np;
  long t;          /* updates made over the whole run */
  long stage_t;    /* updates made in the current stage */
  double loss_sum; /* since the last report */
  long loss_count;
} Step;

/* Where the run is; saved in every checkpoint. */
typedef struct {
  long stage;       /* index of the .vmx stage being run */
  long round;       /* rounds done in it (a round: each step of the stage, ratio times) */
  long stage_epoch; /* epochs done in it */
  long shuffles;    /* permutations of the training set drawn so far */
  long cursor;      /* position in the current permutation; n: draw a new one */
  uint64_t rng_step;
  long report;      /* metrics lines written */
} Progress;

/* What the run was started with: the model's settings unless overridden. */
typedef struct {
  long batch, epochs, steps;
  double lr;
  char *data;
} RunOpts;

typedef struct {
  Session s;
  Step *steps;
  int nsteps;
  Progress at;
  RunOpts ro;
  uint64_t seed;
  char *dir;
  FILE *metrics;
  double seconds0; /* training seconds of earlier processes (resume) */
  double t_start;
  long *perm;
  long ntrain;
} Trainer;

/* A stage as it runs: its settings after the command-line overrides. */
typedef struct {
  const VmxStage *decl;
  int first, last; /* its steps */
  int round_len;   /* updates per round */
  long batch, epochs, steps;
  double clip;
  long rounds;       /* in all */
  long report_every; /* rounds, for --steps; 0: at each epoch end */
} StageRun;

/* ------------------------------------------------------------ steps */

static void steps_init(Trainer *T) {
  const Vmx *x = T->s.vmx;
  char err[1024];
  T->nsteps = x->steps.len;
  T->steps = xmalloc(sizeof(Step) * (size_t)T->nsteps);
  for (int i = 0; i < T->nsteps; i++) {
    Step *st = &T->steps[i];
    st->decl = x->steps.items[i];
    st->graph = session_graph(&T->s, st->decl->graph);
    if (!st->graph) die(2, "%s: no graph %s for the step", T->s.path, st->decl->graph);
    const char **kv = xmalloc(sizeof(char *) * (size_t)(st->decl->args.len + 1));
    size_t nkv = 0;
    st->ema_decay = 0;
    for (int k = 0; k + 1 < st->decl->args.len; k += 2) { /* codebook=ema(...) is no optimizer argument */
      const char *key = st->decl->args.items[k], *val = st->decl->args.items[k + 1];
      if (strcmp(key, "codebook")) {
        kv[nkv++] = key;
        kv[nkv++] = val;
      } else if (optim_ema_parse(val, &st->ema_decay, &st->ema_eps))
        die(2, "%s: step %s: codebook=%s: expected ema(decay=D,eps=E) with 0 < D < 1 and E > 0", T->s.path,
            st->decl->graph, val);
    }
    if (optim_config_parse(&st->cfg, st->decl->optimizer, kv, nkv / 2, err, sizeof err))
      die(2, "%s: step %s: %s", T->s.path, st->decl->graph, err);
    free(kv);
    if (T->ro.lr > 0) st->cfg.lr = T->ro.lr;
    if (optim_schedule_parse(&st->sched, st->decl->schedule ? st->decl->schedule : "constant()", err, sizeof err))
      die(2, "%s: step %s: %s", T->s.path, st->decl->graph, err);
    st->np = st->decl->params.len;
    st->params = xmalloc(sizeof(RtParam *) * (size_t)(st->np + 1));
    for (int w = 0; w < 2; w++) {
      st->state[w] = xmalloc(sizeof(float *) * (size_t)(st->np + 1));
      st->state_name[w] = xmalloc(sizeof(char *) * (size_t)(st->np + 1));
    }
    st->grad_name = xmalloc(sizeof(char *) * (size_t)(st->np + 1));
    st->grads = xmalloc(sizeof(float *) * (size_t)(st->np + 1));
    st->lens = xmalloc(sizeof(long) * (size_t)(st->np + 1));
    st->ema = xmalloc(sizeof(int) * (size_t)(st->np + 1));
    for (int w = 0; w < 2; w++) st->ema_name[w] = xmalloc(sizeof(char *) * (size_t)(st->np + 1));
    int nstate = optim_state_arrays(&st->cfg), nema = 0;
    for (int j = 0; j < st->np; j++) {
      const char *name = st->decl->params.items[j];
      if (!(st->params[j] = session_param(&T->s, name)))
        die(2, "%s: step %s updates unknown parameter %s", T->s.path, st->decl->graph, name);
      st->lens[j] = st->params[j]->n;
      st->grad_name[j] = xprintf("grad:%s", name);
      st->ema_name[0][j] = xprintf("ema.count:%s", name);
      st->ema_name[1][j] = xprintf("ema.sum:%s", name);
      st->ema[j] = graph_output_node(st->graph, st->ema_name[0][j]) != NULL;
      nema += st->ema[j];
      if (st->ema[j] && (!st->ema_decay || st->params[j]->decl->shape.rank != 2 ||
                         !graph_output_node(st->graph, st->ema_name[1][j])))
        die(2, "%s: step %s: %s needs codebook=ema(...), a codebook [K, D] and %s", T->s.path, st->decl->graph,
            st->ema_name[0][j], st->ema_name[1][j]);
      const char *const which[2][2] = {{"m", "v"}, {"ema_count", "ema_sum"}};
      for (int w = 0; w < (st->ema[j] ? 2 : nstate < 2 ? nstate : 2); w++) {
        long n = st->ema[j] && !w ? (long)st->params[j]->decl->shape.d[0] : st->lens[j];
        st->state[w][j] = xmalloc(sizeof(float) * (size_t)n); /* zeros */
        int len = ckpt_state_name(NULL, 0, st->graph->name, name, which[st->ema[j]][w]);
        st->state_name[w][j] = xmalloc((size_t)len + 1);
        ckpt_state_name(st->state_name[w][j], (size_t)len + 1, st->graph->name, name, which[st->ema[j]][w]);
      }
    }
    if (st->ema_decay && !nema)
      die(2, "%s: step %s has codebook=ema(...) but its graph updates no codebook (no ema.count: output)", T->s.path,
          st->decl->graph);
  }
}

static void steps_free(Trainer *T) {
  for (int i = 0; i < T->nsteps; i++) {
    Step *st = &T->steps[i];
    if (st->ex) exec_free(st->ex);
    for (int j = 0; j < st->np; j++) {
      free(st->grad_name[j]);
      for (int w = 0; w < 2; w++) {
        free(st->state[w][j]);
        free(st->state_name[w][j]);
        free(st->ema_name[w][j]);
      }
    }
    for (int w = 0; w < 2; w++) {
      free(st->state[w]);
      free(st->state_name[w]);
      free(st->ema_name[w]);
    }
    free(st->ema);
    free(st->grad_name);
    free(st->params);
    free(st->grads);
    free(st->lens);
  }
  free(T->steps);
}

/* ------------------------------------------------------------ checkpoints */

typedef struct {
  CkptMeta *meta; /* keys and values owned (meta_free) */
  size_t n, cap;
} Meta;

static void meta_add(Meta *m, char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void meta_add(Meta *m, char *key, const char *fmt, ...) {
  if (m->n == m->cap) {
    m->cap = m->cap ? 2 * m->cap : 32;
    if (!(m->meta = realloc(m->meta, sizeof(CkptMeta) * m->cap))) die(1, "out of memory");
  }
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *value = xmalloc((size_t)len + 1);
  va_start(ap, fmt);
  vsnprintf(value, (size_t)len + 1, fmt, ap);
  va_end(ap);
  m->meta[m->n++] = (CkptMeta){key, value};
}

static void meta_free(Meta *m) {
  for (size_t i = 0; i < m->n; i++) {
    free((char *)m->meta[i].key);
    free((char *)m->meta[i].value);
  }
  free(m->meta);
}

static char *ckpt_path(const char *dir) { return xprintf("%s/checkpoint.safetensors", dir); }

static void add_tensor(CkptTensor *c, const char *name, const VmxParam *p, float *data) {
  c->name = name;
  c->rank = p->shape.rank;
  for (int r = 0; r < c->rank; r++) c->shape[r] = p->shape.d[r];
  c->data = data;
}

static void save_checkpoint(Trainer *T) {
  size_t cap = (size_t)T->s.nparams, nt = 0;
  for (int i = 0; i < T->nsteps; i++) cap += 2 * (size_t)T->steps[i].np;
  CkptTensor *t = xmalloc(sizeof(CkptTensor) * (cap + 1));
  for (int i = 0; i < T->s.nparams; i++) {
    const RtParam *p = &T->s.params[i];
    add_tensor(&t[nt++], p->decl->name, p->decl, p->data);
  }
  for (int i = 0; i < T->nsteps; i++) {
    Step *st = &T->steps[i];
    for (int j = 0; j < st->np; j++)
      for (int w = 0; w < 2; w++) {
        if (!st->state[w][j]) continue;
        add_tensor(&t[nt], st->state_name[w][j], st->params[j]->decl, st->state[w][j]);
        if (st->ema[j] && !w) t[nt].shape[1] = 1; /* N: [K, 1], as ema.count: */
        nt++;
      }
  }
  Meta m = {0};
  meta_add(&m, xstrdup(CKPT_KEY_VERSION), "1");
  meta_add(&m, xstrdup(CKPT_KEY_VMX_HASH), "%s", T->s.vmx->source_hash);
  meta_add(&m, xstrdup(CKPT_KEY_SEED), "%llu", (unsigned long long)T->seed);
  meta_add(&m, xstrdup(CKPT_KEY_RNG_STEP), "%llu", (unsigned long long)T->at.rng_step);
  meta_add(&m, xstrdup(CKPT_KEY_EPOCH), "%ld", T->at.shuffles);
  meta_add(&m, xstrdup(CKPT_KEY_POSITION), "%ld", T->at.cursor);
  meta_add(&m, xstrdup(CKPT_KEY_STAGE), "%ld", T->at.stage);
  meta_add(&m, xstrdup(CKPT_KEY_ROUND), "%ld", T->at.round);
  meta_add(&m, xstrdup(CKPT_KEY_STAGE_EPOCH), "%ld", T->at.stage_epoch);
  meta_add(&m, xstrdup(CKPT_KEY_REPORT), "%ld", T->at.report);
  meta_add(&m, xstrdup("vml.run.batch"), "%ld", T->ro.batch);
  meta_add(&m, xstrdup("vml.run.epochs"), "%ld", T->ro.epochs);
  meta_add(&m, xstrdup("vml.run.steps"), "%ld", T->ro.steps);
  meta_add(&m, xstrdup("vml.run.lr"), "%.17g", T->ro.lr);
  meta_add(&m, xstrdup("vml.run.data"), "%s", T->ro.data ? T->ro.data : "");
  for (int i = 0; i < T->nsteps; i++) {
    const Step *st = &T->steps[i];
    meta_add(&m, xprintf("vml.optim.%s.t", st->graph->name), "%ld", st->t);
    meta_add(&m, xprintf("vml.optim.%s.stage_t", st->graph->name), "%ld", st->stage_t);
  }
  char *path = ckpt_path(T->dir), err[1024];
  if (ckpt_write(path, t, nt, m.meta, m.n, err, sizeof err)) die(1, "%s", err);
  free(path);
  meta_free(&m);
  free(t);
}

static long meta_long(const Ckpt *c, const char *key) {
  uint64_t v;
  char err[1024];
  if (ckpt_meta_u64(c, key, &v, err, sizeof err)) die(2, "%s", err);
  return (long)v;
}

/* The state of run T->dir, from its checkpoint, into a loaded trainer. */
static void restore(Trainer *T, const Ckpt *c) {
  char err[1024];
  session_read_params(&T->s, c);
  T->at.rng_step = (uint64_t)meta_long(c, CKPT_KEY_RNG_STEP);
  T->at.shuffles = meta_long(c, CKPT_KEY_EPOCH);
  T->at.cursor = meta_long(c, CKPT_KEY_POSITION);
  T->at.stage = meta_long(c, CKPT_KEY_STAGE);
  T->at.round = meta_long(c, CKPT_KEY_ROUND);
  T->at.stage_epoch = meta_long(c, CKPT_KEY_STAGE_EPOCH);
  T->at.report = meta_long(c, CKPT_KEY_REPORT);
  if (T->at.cursor > T->ntrain || (T->at.cursor < T->ntrain && T->at.shuffles < 1))
    die(2, "%s: data position %ld does not fit the %ld training examples", c->path, T->at.cursor, T->ntrain);
  if (T->at.cursor < T->ntrain) data_permutation(T->perm, T->ntrain, T->seed, (uint64_t)(T->at.shuffles - 1));
  for (int i = 0; i < T->nsteps; i++) {
    Step *st = &T->steps[i];
    char *key = xprintf("vml.optim.%s.t", st->graph->name);
    st->t = meta_long(c, key);
    free(key);
    key = xprintf("vml.optim.%s.stage_t", st->graph->name);
    st->stage_t = meta_long(c, key);
    free(key);
    for (int j = 0; j < st->np; j++)
      for (int w = 0; w < 2; w++) {
        const VmxParam *p = st->params[j]->decl;
        long long shape[2] = {p->shape.rank ? p->shape.d[0] : 1, 1};
        const long long *d = st->ema[j] && !w ? shape : p->shape.d; /* N: [K, 1] */
        if (st->state[w][j] && ckpt_load(c, st->state_name[w][j], d, p->shape.rank, st->state[w][j], err, sizeof err))
          die(2, "%s", err);
      }
  }
}

/* Keeps the metrics lines of the reports the checkpoint has seen (a crash
 * between a metrics line and its checkpoint would otherwise repeat one),
 * and returns the training seconds they account for. */
static double trim_metrics(const char *path, long reports) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char *tmp = xprintf("%s.tmp", path);
  FILE *out = fopen(tmp, "w");
  if (!out) die(1, "cannot write %s: %s", tmp, strerror(errno));
  char *line = NULL; /* getline: a line with a large model's KL per dimension is long */
  size_t cap = 0;
  long kept = 0;
  double seconds = 0;
  while (kept < reports && getline(&line, &cap, f) > 0) {
    fputs(line, out);
    kept++;
    const char *s = strstr(line, "\"seconds\":");
    if (s) seconds = atof(s + 10);
  }
  free(line);
  fclose(f);
  if (fclose(out) || rename(tmp, path)) die(1, "cannot rewrite %s: %s", path, strerror(errno));
  free(tmp);
  return seconds;
}

/* ------------------------------------------------------------ one stage */

static const char *setting(const VmxStage *s, const char *key) {
  for (int i = 0; i + 1 < s->settings.len; i += 2)
    if (!strcmp(s->settings.items[i], key)) return s->settings.items[i + 1];
  return NULL;
}

static int same_stage(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

/* The stage's steps and settings; 0 when it has no step. */
static int stage_plan(Trainer *T, long si, StageRun *sr) {
  const VmxStage *sd = T->s.vmx->stages.items[si];
  memset(sr, 0, sizeof *sr);
  sr->decl = sd;
  sr->first = sr->last = -1;
  for (int i = 0; i < T->nsteps; i++)
    if (same_stage(T->steps[i].decl->stage, sd->stage)) {
      if (sr->first < 0) sr->first = i;
      sr->last = i;
      sr->round_len += T->steps[i].decl->ratio > 0 ? T->steps[i].decl->ratio : 1;
    }
  if (sr->first < 0) return 0;
  const char *v;
  sr->batch = (v = setting(sd, "batch")) ? atol(v) : 128;
  sr->epochs = (v = setting(sd, "epochs")) ? atol(v) : 0;
  sr->steps = (v = setting(sd, "steps")) ? atol(v) : 0;
  sr->clip = (v = setting(sd, "clip")) ? atof(v) : 0;
  if (T->ro.batch) sr->batch = T->ro.batch;
  if (T->ro.steps) sr->steps = T->ro.steps, sr->epochs = 0;
  else if (T->ro.epochs) sr->epochs = T->ro.epochs, sr->steps = 0;
  if (!sr->epochs && !sr->steps) sr->epochs = 1;
  if (sr->batch > T->ntrain) sr->batch = T->ntrain;
  long per_epoch = (T->ntrain + sr->batch - 1) / sr->batch;
  sr->rounds = sr->steps ? sr->steps : (per_epoch * sr->epochs + sr->round_len - 1) / sr->round_len;
  sr->report_every = sr->steps ? (sr->steps >= 10 ? sr->steps / 10 : 1) : 0;
  return 1;
}

/* The parameter update in pieces on the runtime's threads: optim_update
 * is elementwise, so any cut gives the same bytes. */
enum { UPDATE_PIECE = 16384 };

typedef struct {
  Step *st;
  double lr;
  float gscale;
  long *first; /* the first piece of each parameter; first[np]: all */
} Update;

static void update_piece(void *ctx, long t, int slot) {
  (void)slot;
  const Update *u = ctx;
  Step *st = u->st;
  int j = 0;
  while (t >= u->first[j + 1]) j++;
  long off = (t - u->first[j]) * UPDATE_PIECE, n = st->lens[j] - off < UPDATE_PIECE ? st->lens[j] - off : UPDATE_PIECE;
  float *m = st->state[0][j], *v = st->state[1][j];
  optim_update(&st->cfg, u->lr, st->t, u->gscale, st->params[j]->data + off, st->grads[j] + off, m ? m + off : NULL,
               v ? v + off : NULL, n);
}

static void update_params(Step *st, double lr, float gscale) {
  long *first = xmalloc(sizeof(long) * (size_t)(st->np + 1));
  for (int j = 0; j < st->np; j++) /* a codebook updated by EMA has no piece */
    first[j + 1] = first[j] + (st->ema[j] ? 0 : (st->lens[j] + UPDATE_PIECE - 1) / UPDATE_PIECE);
  Update u = {st, lr, gscale, first};
  pool_run(first[st->np], 0, update_piece, &u);
  free(first);
}

/* One update of step st on the next batch; -1 when the run fails. */
static int update(Trainer *T, const StageRun *sr, Step *st) {
  if (T->at.cursor >= T->ntrain) {
    data_permutation(T->perm, T->ntrain, T->seed, (uint64_t)T->at.shuffles++);
    T->at.cursor = 0;
  }
  long count = T->ntrain - T->at.cursor < sr->batch ? T->ntrain - T->at.cursor : sr->batch;
  session_bind(&T->s, st->ex, SPLIT_TRAIN, T->perm + T->at.cursor, count, T->seed, (uint64_t)(T->at.shuffles - 1));
  T->at.cursor += count;
  ExecError e;
  if (exec_run(st->ex, (int)count, T->seed, T->at.rng_step++, &e)) {
    fflush(stdout);
    fprintf(stderr, "\nvmrun: %s: %s\n", st->graph->name, e.msg);
    return -1;
  }
  const float *loss = exec_output(st->ex, "loss");
  if (loss) {
    st->loss_sum += loss[0];
    st->loss_count++;
  }
  int ng = 0; /* the gradients, in front of st->grads; clipping is theirs */
  for (int j = 0; j < st->np; j++) {
    if (st->ema[j]) continue;
    if (!(st->grads[j] = exec_output(st->ex, st->grad_name[j])))
      die(1, "graph %s has no output %s", st->graph->name, st->grad_name[j]);
    ng++;
  }
  float gscale = 1.0f;
  if (sr->clip > 0) {
    const float **g = xmalloc(sizeof(float *) * (size_t)(ng + 1));
    long *n = xmalloc(sizeof(long) * (size_t)(ng + 1));
    for (int j = 0, i = 0; j < st->np; j++)
      if (!st->ema[j]) g[i] = st->grads[j], n[i++] = st->lens[j];
    gscale = optim_clip_scale(optim_global_norm(g, n, ng), sr->clip);
    free(g);
    free(n);
  }
  int ratio = st->decl->ratio > 0 ? st->decl->ratio : 1;
  double lr = optim_lr(&st->sched, st->cfg.lr, st->stage_t, T->at.stage_epoch, sr->rounds * ratio);
  st->t++;
  st->stage_t++;
  update_params(st, lr, gscale);
  for (int j = 0; j < st->np; j++) {
    if (!st->ema[j]) continue;
    const float *taken = exec_output(st->ex, st->ema_name[0][j]), *sum = exec_output(st->ex, st->ema_name[1][j]);
    if (!taken || !sum) die(1, "graph %s has no output %s or %s", st->graph->name, st->ema_name[0][j], st->ema_name[1][j]);
    const VmxParam *p = st->params[j]->decl;
    optim_ema_codebook(st->params[j]->data, st->state[0][j], st->state[1][j], taken, sum, (long)p->shape.d[0],
                       (long)p->shape.d[1], st->ema_decay, st->ema_eps, st->t);
  }
  return 0;
}

static void progress_bar(const Trainer *T, const StageRun *sr, long examples, double secs) {
  long done = sr->steps ? T->at.round % sr->report_every : T->at.cursor;
  long of = sr->steps ? sr->report_every : T->ntrain;
  int width = 24, fill = (int)(width * done / (of ? of : 1));
  printf("\r[%.*s%*s] %ld/%ld", fill, "========================", width - fill, "", done, of);
  for (int i = sr->first; i <= sr->last; i++) {
    const Step *st = &T->steps[i];
    if (st->loss_count) printf("  %s %.5g", st->decl->loss, st->loss_sum / st->loss_count);
  }
  if (secs > 0) printf("  %.0f ex/s", examples / secs);
  printf("\033[K");
  fflush(stdout);
}

/* Whether a step of this stage or of an earlier one trains a parameter of
 * an autoregressive prior over codes: before, the prior's -log r(c) says
 * nothing and is not computed. */
static int prior_trained(const Trainer *T, const StageRun *sr) {
  for (int i = 0; i <= sr->last; i++) {
    const VmxStep *d = T->steps[i].decl;
    for (int j = 0; j < d->params.len; j++)
      if (stats_prior_uses(&T->s, d->params.items[j])) return 1;
  }
  return 0;
}

/* The end of an epoch (or of report_every rounds): a line on stdout and in
 * metrics.jsonl, then the checkpoint.  The metrics line is written whole or
 * not at all.  -1 when evaluating fails. */
static int report(Trainer *T, const StageRun *sr, long examples, double secs) {
  const VmxStage *sd = sr->decl;
  char *line = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&line, &len);
  if (!f) die(1, "out of memory");
  long no = T->at.report + 1;
  if (isatty(1)) fputs("\r\033[K", stdout);
  if (sr->steps) printf("step %ld/%ld", T->at.round, sr->steps);
  else printf("epoch %ld/%ld", T->at.stage_epoch, sr->epochs);
  if (sd->stage) printf(" [%s]", sd->stage);
  fprintf(f, "{\"epoch\":%ld", no);
  if (sr->steps) fprintf(f, ",\"step\":%ld", T->at.round);
  if (sd->stage) {
    fputs(",\"stage\":", f);
    json_str(f, sd->stage);
  }
  fputs(",\"loss\":{", f);
  for (int i = sr->first; i <= sr->last; i++) {
    Step *st = &T->steps[i];
    double mean = st->loss_count ? st->loss_sum / st->loss_count : NAN;
    printf("  %s %.6g", st->decl->loss, mean);
    fprintf(f, "%s\"%s\":", i > sr->first ? "," : "", st->graph->name);
    if (st->loss_count) fprintf(f, "%.9g", mean);
    else fputs("null", f);
    st->loss_sum = 0;
    st->loss_count = 0;
  }
  fputc('}', f);
  const Graph *elbo = session_graph(&T->s, "elbo");
  int k = session_examples(&T->s, SPLIT_VALID) ? SPLIT_VALID : SPLIT_TRAIN;
  int rc = 0, codes = stats_has_codes(&T->s);
  ElboStats es;
  CodeStats cs;
  ExecError e;
  memset(&es, 0, sizeof es);
  memset(&cs, 0, sizeof cs);
  if (elbo && stats_elbo(&T->s, elbo, k, sr->batch, T->seed, &es, &e)) {
    fprintf(stderr, "\nvmrun: elbo on the %s split: %s\n", split_names[k], e.msg);
    rc = -1;
  }
  if (!rc && codes &&
      stats_codes(&T->s, k, sr->batch, T->seed, prior_trained(T, sr) ? STATS_PRIOR : 0, &cs, &e)) {
    fprintf(stderr, "\nvmrun: codes on the %s split: %s\n", split_names[k], e.msg);
    rc = -1;
  }
  if (!rc && (elbo || codes)) {
    if (elbo) {
      printf("  %s elbo %.6g", split_names[k], es.elbo);
      for (int i = 0; i < es.nlatents; i++)
        if (es.latents[i].var)
          printf("  active %s %d/%ld", es.latents[i].name, es.latents[i].active, es.latents[i].dims);
      fprintf(f, ",\"%s_elbo\":%.9g", split_names[k], es.elbo);
    }
    for (int i = 0; i < cs.ncodes; i++) {
      const CodeLatentStats *c = &cs.codes[i];
      printf("  %s %s: %d/%d codes, perplexity %.4g", split_names[k], c->name, c->used, c->classes, c->perplexity);
      if (c->have_nll) printf(", -log %s %.6g", c->prior + 6, c->nll);
    }
    fprintf(f, ",\"%s\":{\"examples\":%ld", split_names[k], session_examples(&T->s, k));
    if (elbo) stats_json(f, &es);
    if (codes) stats_codes_json(f, &cs);
    fputc('}', f);
  }
  stats_free(&es);
  stats_codes_free(&cs);
  double rate = secs > 0 ? examples / secs : 0;
  fprintf(f, ",\"examples_per_second\":%.1f,\"seconds\":%.3f}\n", rate, T->seconds0 + now_seconds() - T->t_start);
  fclose(f);
  if (!rc) {
    printf("  %.0f examples/s\n", rate);
    fflush(stdout);
    if (fputs(line, T->metrics) == EOF || fflush(T->metrics)) die(1, "cannot write metrics.jsonl: %s", strerror(errno));
    T->at.report = no;
    save_checkpoint(T);
  }
  free(line);
  return rc;
}

/* Runs stage si from round T->at.round on; -1 when the run fails. */
static int run_stage(Trainer *T, long si) {
  StageRun sr;
  if (!stage_plan(T, si, &sr)) return 0;
  int rc = 0;
  if (T->at.round == 0) { /* a fresh stage: its epochs start on a fresh shuffle */
    T->at.stage_epoch = 0;
    if (sr.epochs) T->at.cursor = T->ntrain;
    for (int i = sr.first; i <= sr.last; i++) T->steps[i].stage_t = 0;
  }
  for (int i = sr.first; i <= sr.last; i++) {
    Step *st = &T->steps[i];
    if (!(st->ex = exec_new(st->graph, (int)sr.batch))) die(1, "out of memory preparing graph %s", st->graph->name);
    session_bind_params(&T->s, st->ex);
  }
  int tty = isatty(1);
  long examples = 0;
  double t_report = now_seconds(), t_bar = 0;
  while (T->at.round < sr.rounds && !rc) {
    int epoch_done = 0;
    for (int i = sr.first; i <= sr.last && !rc && !epoch_done; i++) {
      Step *st = &T->steps[i];
      int ratio = st->decl->ratio > 0 ? st->decl->ratio : 1;
      for (int r = 0; r < ratio && !rc && !epoch_done; r++) {
        long before = T->at.cursor >= T->ntrain ? 0 : T->at.cursor;
        rc = update(T, &sr, st);
        examples += T->at.cursor - before;
        if (sr.epochs && T->at.cursor >= T->ntrain) epoch_done = 1;
      }
    }
    if (rc) break;
    T->at.round++;
    T->at.stage_epoch += epoch_done;
    int due = sr.steps ? T->at.round % sr.report_every == 0 || T->at.round == sr.rounds
                       : epoch_done || T->at.round == sr.rounds;
    double t = now_seconds();
    if (due) {
      rc = report(T, &sr, examples, t - t_report);
      examples = 0;
      t_report = now_seconds();
    } else if (tty && t - t_bar > 0.1) {
      progress_bar(T, &sr, examples, t - t_report);
      t_bar = t;
    }
  }
  for (int i = sr.first; i <= sr.last; i++) {
    exec_free(T->steps[i].ex);
    T->steps[i].ex = NULL;
  }
  return rc;
}

/* ------------------------------------------------------------ the command */

static char *new_run_dir(const Opts *o, const Session *s) {
  char *dir;
  if (o->out) {
    dir = xstrdup(o->out);
    if (mkdir(dir, 0777) && errno != EEXIST) die(2, "cannot create %s: %s", dir, strerror(errno));
    if (!is_dir(dir)) die(2, "%s is not a directory", dir);
  } else {
    if (mkdir("runs", 0777) && errno != EEXIST) die(2, "cannot create runs: %s", strerror(errno));
    for (long n = 1;; n++) {
      dir = xprintf("runs/%s-%ld", s->vmx->model, n);
      if (mkdir(dir, 0777) == 0) break;
      if (errno != EEXIST) die(2, "cannot create %s: %s", dir, strerror(errno));
      free(dir);
    }
  }
  const char *base = strrchr(s->path, '/');
  char *to = xprintf("%s/%s", dir, base ? base + 1 : s->path);
  if (copy_file(s->path, to)) die(2, "cannot copy %s to %s: %s", s->path, to, strerror(errno));
  free(to);
  return dir;
}

static void refuse_with_resume(const Opts *o) {
  const char *bad = o->file ? o->file : o->batch ? "--batch" : o->lr > 0 ? "--lr" : o->have_seed ? "--seed"
                    : o->out   ? "--out"
                               : NULL;
  if (bad)
    die(2, "%s cannot be given with --resume: a resumed run keeps its model, batch, learning rate, seed and directory",
        bad);
}

/* Loads what a resumed run needs; returns the open checkpoint. */
static void open_resumed(Trainer *T, const Opts *o, Ckpt *c) {
  refuse_with_resume(o);
  T->dir = xstrdup(o->resume);
  if (!is_dir(T->dir)) die(2, "--resume %s: no such run directory", T->dir);
  char *path = vmrun_run_vmx(T->dir), *cp = ckpt_path(T->dir), err[1024];
  session_load(&T->s, path);
  free(path);
  if (ckpt_read(cp, c, err, sizeof err)) die(2, "%s", err);
  free(cp);
  uint64_t seed;
  if (ckpt_meta_u64(c, CKPT_KEY_SEED, &seed, err, sizeof err)) die(2, "%s", err);
  T->seed = seed;
  T->ro.batch = meta_long(c, "vml.run.batch");
  T->ro.epochs = meta_long(c, "vml.run.epochs");
  T->ro.steps = meta_long(c, "vml.run.steps");
  const char *lr = ckpt_meta(c, "vml.run.lr"), *data = ckpt_meta(c, "vml.run.data");
  T->ro.lr = lr ? atof(lr) : -1;
  T->ro.data = o->data ? xstrdup(o->data) : data && *data ? xstrdup(data) : NULL;
  if (o->steps) T->ro.steps = o->steps, T->ro.epochs = 0;
  else if (o->epochs) T->ro.epochs = o->epochs, T->ro.steps = 0;
}

int cmd_train(const Opts *o) {
  Trainer T;
  memset(&T, 0, sizeof T);
  Ckpt c;
  memset(&c, 0, sizeof c);
  if (o->resume) open_resumed(&T, o, &c);
  else {
    char *cp = o->out ? ckpt_path(o->out) : NULL;
    if (cp && is_file(cp))
      die(2, "%s already holds a run; continue it with --resume %s, or choose another --out", o->out, o->out);
    free(cp);
    char *path = o->file ? xstrdup(o->file) : session_find_vmx(".");
    session_load(&T.s, path);
    free(path);
    T.seed = o->seed;
    T.ro = (RunOpts){o->batch, o->epochs, o->steps, o->lr, o->data ? xstrdup(o->data) : NULL};
  }
  const Vmx *x = T.s.vmx;
  if (x->steps.len == 0) die(2, "%s: the model has no train block (no step to run)", T.s.path);
  const int want[SPLIT_COUNT] = {1, 1, 0};
  session_load_data(&T.s, T.ro.data, want, T.seed);
  T.ntrain = session_examples(&T.s, SPLIT_TRAIN);
  T.perm = xmalloc(sizeof(long) * (size_t)T.ntrain);
  T.at.cursor = T.ntrain;
  steps_init(&T);
  vmrun_threads(o->threads);
  char *mpath;
  if (o->resume) {
    restore(&T, &c);
    ckpt_free(&c);
    mpath = xprintf("%s/metrics.jsonl", T.dir);
    T.seconds0 = trim_metrics(mpath, T.at.report);
  } else {
    session_init_params(&T.s, T.seed);
    T.dir = new_run_dir(o, &T.s);
    mpath = xprintf("%s/metrics.jsonl", T.dir);
  }
  if (!(T.metrics = fopen(mpath, "a"))) die(2, "cannot open %s: %s", mpath, strerror(errno));
  free(mpath);
  printf("%s %s (%s) on %ld examples, seed %llu, in %s\n", o->resume ? "resuming" : "training", x->model, T.s.path,
         T.ntrain, (unsigned long long)T.seed, T.dir);
  fflush(stdout);
  T.t_start = now_seconds();
  int rc = 0;
  for (; T.at.stage < x->stages.len && !rc; T.at.stage++, T.at.round = 0)
    rc = run_stage(&T, T.at.stage);
  fclose(T.metrics);
  char *cp = ckpt_path(T.dir);
  if (rc) {
    if (is_file(cp)) fprintf(stderr, "vmrun: training stopped; the last good checkpoint is %s\n", cp);
    else fprintf(stderr, "vmrun: training stopped before the first checkpoint\n");
  } else printf("done in %.1f s; checkpoint %s\n", now_seconds() - T.t_start, cp);
  free(cp);
  steps_free(&T);
  session_free(&T.s);
  free(T.perm);
  free(T.dir);
  free(T.ro.data);
  return rc ? 1 : 0;
}
