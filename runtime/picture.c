/* picture.c - vmrun sample, reconstruct and interpolate: what a trained
 * model draws, how it reconstructs examples, and what its decoder makes of
 * the latent space between two examples, as PNG grids (image.h).
 *
 * Each example of the data item shown (D values) is drawn as an H x W
 * picture: H = W = sqrt(D) when D is a perfect square (MNIST's 784, the
 * 2 x 2 of 4Frames), else 1 x D.  The values become intensities: bit data
 * and Bernoulli means are probabilities already; real data declared
 * `in [lo, hi]` are mapped back from that range; real data without one
 * from the smallest to the largest value in the picture.  The rest is
 * clamped to [0, 1].  Data of two real values are points, not pictures:
 * sample draws them as a scatter over the training data (plot.h).  sample
 * -o FILE.csv or FILE.npy writes the draws as numbers instead.
 *
 * A model with several data items shows the first one (in the .vmx's
 * order) that has a decoder: one picture per example keeps the grid
 * readable, and the items need not even have the same shape.
 *
 * sample runs the sample graph; a latent it takes as an input comes from
 * an autoregressive prior (PixelCNN codes), which is drawn here one
 * position at a time through the prior's own graph (prior.R), or from a
 * flow prior, whose graph flow.R maps z to eps: a base draw is inverted
 * one dimension at a time (see picture_invert_flow).
 *
 * Every draw is reproducible: the graphs' random streams are keyed by
 * --seed (default: the run's seed), so the same options give the same
 * bytes.  The data themselves are loaded with the run's seed, as training
 * saw them (a synthetic set is generated from it). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "exec.h"
#include "image.h"
#include "plot.h"
#include "rng.h"
#include "session.h"
#include "util.h"
#include "vmrun.h"

#define PICTURE_MIN_CELL 64   /* pixels on a cell's longer side, at least: 32 per value of a 2 x 2 frame */
#define PICTURE_GAP 2         /* gray pixels between cells */
#define PICTURE_MAX_SIDE 16384 /* a larger PNG is more than any viewer wants */
#define PICTURE_BATCH 128     /* examples per graph run unless --batch */
#define PICTURE_COLUMNS 16    /* reconstruct: examples per row */

/* The stream of the runtime's draws from autoregressive priors: under
 * rng.h's reserved ids and above any graph's i0, so it shares no draws. */
#define PICTURE_RNG_PRIOR 0xFFFFFFE0u

typedef struct {
  char *run;         /* the run directory */
  Session s;
  uint64_t run_seed; /* the run's, for the data */
  uint64_t seed;     /* --seed, else the run's: for the draws */
  long batch;
} Picture;

/* The data item drawn, and how its values become pictures. */
typedef struct {
  const VmxData *decl;
  int item;                     /* its index in Session.data */
  char mean[256], sample[256];  /* its outputs: "x.mean", "x.sample" */
  long dim;                     /* values per example */
  int h, w;                     /* the picture of one example */
  int ranged;                   /* lo..hi known from the declaration */
  double lo, hi;
} PictureView;

/* An input or output of a graph for a whole run: count * dim floats. */
typedef struct {
  const char *name;
  float *data;
  long dim;
} PictureVar;

/* A latent the sample graph takes as an input: drawn by the runtime from
 * an autoregressive prior, one position at a time, or from a flow prior by
 * inverting its transform one dimension at a time. */
typedef struct {
  const GNode *in;    /* the sample graph's input node */
  const Graph *g;     /* the prior's graph: prior.R, or flow.R */
  int flow;
  char mean[256];     /* prior.R's output: "c.mean" */
  long positions;     /* values of the latent */
  long classes;       /* codes of a Categorical prior; 0: Bernoulli */
} PicturePrior;

/* ------------------------------------------------------------ graphs */

static const GNode *picture_node(const Graph *g, int id) {
  return g->nodes.items[id];
}

/* The per-example size of output `name`, -1 when g has none. */
static long picture_output_dim(const Graph *g, const char *name) {
  const GNode *n = graph_output_node(g, name);
  return n ? (long)shape_size(n->shape) : -1;
}

/* g's input nodes, one per name, in node order; how many. */
static int picture_inputs(const Graph *g, const GNode **out) {
  int n = 0;
  for (int i = 0; i < g->nodes.len; i++) {
    const GNode *x = picture_node(g, i);
    if (x->op != OP_INPUT) continue;
    int seen = 0;
    for (int j = 0; j < n; j++) seen |= !strcmp(out[j]->s, x->s);
    if (!seen) out[n++] = x;
  }
  return n;
}

static const Graph *picture_graph(const Picture *p, const char *cmd, const char *name, const char *why) {
  const Graph *g = session_graph(&p->s, name);
  if (!g) die(2, "%s: model %s has no %s entry point (%s)", cmd, p->s.vmx->model, name, why);
  return g;
}

/* ------------------------------------------------------------ the run */

static int picture_is_png(const char *path) {
  const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
  if (!dot || (slash && dot < slash) || strlen(dot) != 4) return 0;
  for (int i = 1; i < 4; i++)
    if (tolower((unsigned char)dot[i]) != "png"[i - 1]) return 0;
  return 1;
}

/* sample -o FILE.csv or FILE.npy: the samples as numbers. */
static int picture_is_numbers(const Opts *o) {
  return !strcmp(o->cmd, "sample") && (ends_with(o->output, ".csv") || ends_with(o->output, ".npy"));
}

/* Before any work: a picture nobody could save is better refused at once. */
static void picture_check_output(const Opts *o) {
  if (!picture_is_png(o->output) && !picture_is_numbers(o))
    die(2, "%s: -o %s: unknown extension; %s writes a PNG picture (-o FILE.png)%s", o->cmd, o->output, o->cmd,
        strcmp(o->cmd, "sample") ? "" : " or the samples as numbers (-o FILE.csv or FILE.npy)");
  const char *slash = strrchr(o->output, '/');
  if (!slash) return;
  char *dir = xstrdup(o->output);
  dir[slash == o->output ? 1 : slash - o->output] = '\0';
  if (!is_dir(dir)) die(2, "%s: -o %s: no directory %s", o->cmd, o->output, dir);
  free(dir);
}

/* The run and its .vmx; the parameters come later (picture_load), once the
 * model is known to have what the command needs. */
static void picture_open(Picture *p, const Opts *o) {
  memset(p, 0, sizeof *p);
  picture_check_output(o);
  p->run = o->run ? xstrdup(o->run) : vmrun_newest_run();
  char *path = o->file ? xstrdup(o->file) : vmrun_run_vmx(p->run);
  session_load(&p->s, path);
  free(path);
  p->batch = o->batch ? o->batch : PICTURE_BATCH;
}

/* The checkpoint's parameters and seed, and split k of the data (k < 0:
 * none) as the run saw it: from --data, else the run's --data, else the
 * model's own place. */
static void picture_load(Picture *p, const Opts *o, int k) {
  char *cp = xprintf("%s/checkpoint.safetensors", p->run), err[1024];
  Ckpt c;
  if (ckpt_read(cp, &c, err, sizeof err)) die(2, "%s", err);
  free(cp);
  session_read_params(&p->s, &c);
  if (ckpt_meta_u64(&c, CKPT_KEY_SEED, &p->run_seed, err, sizeof err)) die(2, "%s", err);
  p->seed = o->have_seed ? o->seed : p->run_seed;
  if (k >= 0) {
    const char *data = ckpt_meta(&c, "vml.run.data");
    int want[SPLIT_COUNT] = {0, 0, 0};
    want[k] = 1;
    session_load_data(&p->s, o->data ? o->data : data && *data ? data : NULL, want, p->run_seed);
    if (!session_examples(&p->s, k))
      die(2, "%s: data %s has no %s split (choose another with --split)", o->cmd, p->s.data[0].decl->name, o->split);
  }
  ckpt_free(&c);
  vmrun_threads(o->threads);
}

static void picture_close(Picture *p) {
  session_free(&p->s);
  free(p->run);
}

/* Refuses to take more examples than split k has. */
static void picture_need(const Picture *p, const Opts *o, int k, long n, const char *what) {
  long have = session_examples(&p->s, k);
  if (n > have) die(2, "%s: %s needs %ld examples, but the %s split has %ld", o->cmd, what, n, o->split, have);
}

/* Examples idx[0..count) of split k for every data item: the inputs of an
 * entry point that reads the data. */
static PictureVar *picture_gather(Picture *p, int k, const long *idx, long count) {
  PictureVar *v = xmalloc(sizeof *v * (size_t)(p->s.ndata + 1));
  for (int i = 0; i < p->s.ndata; i++) {
    const DataItem *it = &p->s.data[i];
    v[i].name = it->decl->name;
    v[i].dim = it->split[k].dim;
    v[i].data = xmalloc(sizeof(float) * (size_t)(count * v[i].dim));
    source_gather(it, k, idx, count, p->run_seed, 0, v[i].data);
  }
  return v;
}

static void picture_vars_free(PictureVar *v, int n) {
  for (int i = 0; i < n; i++) free(v[i].data);
  free(v);
}

/* count examples from the start of the split's shuffle under the seed:
 * drawn from the whole split (a file sorted by class shows more than one
 * class), and another --seed shows others. */
static long *picture_pick(const Picture *p, int k, long count) {
  long n = session_examples(&p->s, k), *perm = xmalloc(sizeof(long) * (size_t)n);
  data_permutation(perm, n, p->seed, 0);
  long *idx = xmalloc(sizeof(long) * (size_t)count);
  memcpy(idx, perm, sizeof(long) * (size_t)count);
  free(perm);
  return idx;
}

/* ------------------------------------------------------------ running */

static Exec *picture_exec(Picture *p, const Graph *g, long count) {
  return session_exec(&p->s, g, p->batch < count ? p->batch : count);
}

/* Runs g (prepared in ex) on count examples, batch after batch: each
 * input's rows of the batch are bound, each output's rows copied out.
 * Batch j draws at step j, so no two batches share draws. */
static void picture_run_exec(Picture *p, Exec *ex, const Graph *g, long count, const PictureVar *in, int nin,
                             PictureVar *out, int nout) {
  long batch = p->batch < count ? p->batch : count;
  uint64_t step = 0;
  ExecError e;
  for (long first = 0; first < count; first += batch) {
    long n = count - first < batch ? count - first : batch;
    for (int i = 0; i < nin; i++) exec_bind_input(ex, in[i].name, in[i].data + first * in[i].dim);
    if (exec_run(ex, (int)n, p->seed, step++, &e)) die(1, "%s: %s", g->name, e.msg);
    for (int i = 0; i < nout; i++) {
      const float *y = exec_output(ex, out[i].name);
      if (!y) die(1, "graph %s has no output %s", g->name, out[i].name);
      memcpy(out[i].data + first * out[i].dim, y, sizeof(float) * (size_t)(n * out[i].dim));
    }
  }
}

static void picture_run(Picture *p, const Graph *g, long count, const PictureVar *in, int nin, PictureVar *out,
                        int nout) {
  Exec *ex = picture_exec(p, g, count);
  picture_run_exec(p, ex, g, count, in, nin, out, nout);
  exec_free(ex);
}

/* ------------------------------------------------------------ pictures */

static void picture_view(PictureView *v, const Picture *p, const Graph *g, const char *cmd) {
  const Session *s = &p->s;
  memset(v, 0, sizeof *v);
  for (int i = 0; i < s->ndata && !v->decl; i++) {
    snprintf(v->mean, sizeof v->mean, "%s.mean", s->data[i].decl->name);
    if (picture_output_dim(g, v->mean) < 0) continue;
    v->decl = s->data[i].decl;
    v->item = i;
    snprintf(v->sample, sizeof v->sample, "%s.sample", v->decl->name);
  }
  if (!v->decl) die(2, "%s: model %s has no decoder for its data: nothing to draw", cmd, s->vmx->model);
  const VmxData *d = v->decl;
  if (!strcmp(d->domain, "cat"))
    die(2, "%s: data %s is categorical; %s draws bit and real data only", cmd, d->name, cmd);
  v->dim = (long)shape_size(d->shape);
  long got = picture_output_dim(g, v->mean);
  if (got != v->dim)
    die(2, "%s: %s gives %ld values per example, but data %s has %ld", cmd, v->mean, got, d->name, v->dim);
  long side = lround(sqrt((double)v->dim));
  v->h = side * side == v->dim ? (int)side : 1;
  v->w = (int)(v->dim / v->h);
  if (!strcmp(d->domain, "bit")) v->ranged = 1, v->lo = 0, v->hi = 1;
  else if (d->extra && sscanf(d->extra, "in [%lf, %lf]", &v->lo, &v->hi) == 2 && v->hi > v->lo) v->ranged = 1;
}

/* The grid of rows x cols pictures, refused when too large to look at. */
static ImageGrid picture_grid(const PictureView *v, long rows, long cols, const char *cmd) {
  ImageGrid g = {1, 1, v->h, v->w, image_zoom(v->h, v->w, PICTURE_MIN_CELL), PICTURE_GAP};
  long long w = PICTURE_MAX_SIDE + 1LL, h = w;
  if (rows <= PICTURE_MAX_SIDE && cols <= PICTURE_MAX_SIDE) { /* else the int fields could not hold them */
    g.rows = (int)rows;
    g.cols = (int)cols;
    image_grid_size(&g, &w, &h);
  }
  if (w > PICTURE_MAX_SIDE || h > PICTURE_MAX_SIDE)
    die(2, "%s: %ld x %ld pictures of %s make an image larger than %d pixels a side; ask for fewer (-n)", cmd, rows,
        cols, v->decl->name, PICTURE_MAX_SIDE);
  return g;
}

/* Values to intensities in [0, 1] (clamped later, when drawn). */
static void picture_intensities(const PictureView *v, float *x, long n) {
  double lo = v->lo, hi = v->hi;
  if (!v->ranged) { /* no declared range: the picture's own */
    lo = hi = x[0];
    for (long i = 1; i < n; i++) {
      if (x[i] < lo) lo = x[i];
      if (x[i] > hi) hi = x[i];
    }
    if (!(hi > lo)) hi = lo + 1;
  }
  if (lo == 0 && hi == 1) return;
  for (long i = 0; i < n; i++) x[i] = (float)((x[i] - lo) / (hi - lo));
}

/* Draws cells[i] (v->dim values each) at grid slot slot[i] (row-major; NULL:
 * slot i) and writes the PNG. */
static void picture_save(const PictureView *v, const ImageGrid *g, float *cells, long n, const long *slot,
                         const char *path) {
  picture_intensities(v, cells, n * v->dim);
  Image im = image_grid_new(g);
  for (long i = 0; i < n; i++) {
    long at = slot ? slot[i] : i;
    image_grid_put(&im, g, (int)(at / g->cols), (int)(at % g->cols), cells + i * v->dim);
  }
  image_save_png(&im, path);
  image_free(&im);
}

/* ------------------------------------------------------------ 2-D points */

#define PICTURE_POINTS 1000      /* sample: default draws of 2-D data */
#define PICTURE_POINTS_DATA 5000 /* training examples drawn behind them, at most */
#define PICTURE_MAX_POINTS 1000000 /* more dots are one blot, and slow to draw */

/* Real data of two values (declared real[2]) are points in the plane, not
 * pictures: sample draws them as a scatter. */
static int picture_is_points(const PictureView *v) {
  const VmxData *d = v->decl;
  return !strcmp(d->domain, "real") && d->shape.rank == 1 && d->shape.d[0] == 2;
}

/* Value c of data `name`: x0, x1, ...; x1_0 when the name ends in a digit. */
static void picture_column(const char *name, long c, char *buf, size_t cap) {
  size_t len = strlen(name);
  int digit = len && name[len - 1] >= '0' && name[len - 1] <= '9';
  snprintf(buf, cap, "%s%s%ld", name, digit ? "_" : "", c);
}

/* sample -o FILE.csv (a header naming the values, then a line per sample)
 * or FILE.npy (float32, shape (n, the data's shape)), whole or not at all. */
static void picture_save_numbers(const PictureView *v, const float *x, long n, const char *path) {
  FILE *f = out_open(path);
  if (ends_with(path, ".npy")) {
    Dataset ds;
    data_init(&ds);
    ds.n = n;
    ds.dim = v->dim;
    ds.rank = v->decl->shape.rank;
    for (int i = 0; i < ds.rank && i < DATA_MAX_RANK; i++) ds.shape[i] = (long)v->decl->shape.d[i];
    ds.x = (float *)x; /* only read */
    data_write_npy(f, &ds);
  } else {
    char name[300];
    for (long c = 0; c < v->dim; c++) {
      picture_column(v->decl->name, c, name, sizeof name);
      fprintf(f, "%s%s", c ? "," : "", name);
    }
    fputc('\n', f);
    for (long i = 0; i < n; i++)
      for (long c = 0; c < v->dim; c++) fprintf(f, "%.9g%c", (double)x[i * v->dim + c], c + 1 < v->dim ? ',' : '\n');
  }
  out_commit(f, path);
}

/* The n samples xy (2 values each) as dots (800 x 800 PNG), over up to
 * PICTURE_POINTS_DATA training examples in light gray (a seeded choice,
 * the same for samples and means), both axes on the same scale; returns
 * how many training examples it drew. */
static long picture_scatter(Picture *p, const PictureView *v, const Opts *o, const float *xy, long n) {
  long have = session_examples(&p->s, SPLIT_TRAIN), m = have < PICTURE_POINTS_DATA ? have : PICTURE_POINTS_DATA;
  long *idx = picture_pick(p, SPLIT_TRAIN, m);
  float *data = xmalloc(sizeof(float) * (size_t)(2 * m + 1));
  source_gather(&p->s.data[v->item], SPLIT_TRAIN, idx, m, p->run_seed, 0, data);
  double *x = xmalloc(sizeof(double) * (size_t)(m + n)), *y = xmalloc(sizeof(double) * (size_t)(m + n));
  for (long i = 0; i < m; i++) x[i] = data[2 * i], y[i] = data[2 * i + 1];
  for (long i = 0; i < n; i++) x[m + i] = xy[2 * i], y[m + i] = xy[2 * i + 1];

  const char *name = v->decl->name, *model = p->s.vmx->model;
  char xl[300], yl[300], title[600], sub[1400];
  picture_column(name, 0, xl, sizeof xl);
  picture_column(name, 1, yl, sizeof yl);
  if (o->no_noise) snprintf(title, sizeof title, "%s: decoder means of %s (no noise)", model, name);
  else snprintf(title, sizeof title, "%s: samples of %s", model, name);
  snprintf(sub, sizeof sub, "%ld draws (%s), seed %llu; gray: %ld of the %ld training examples", n,
           o->no_noise ? v->mean : v->sample, (unsigned long long)p->seed, m, have);
  Plot *pl = plot_begin(800, 800);
  PlotAxes a = {.left = 0.14, .right = 0.72, .bottom = 0.21, .top = 0.79, .xlabel = xl, .ylabel = yl, .title = ""};
  plot_range_square(x, y, m + n, &a);
  plot_axes(pl, &a);
  plot_title(pl, a.top + 0.075, 1.1, title);
  plot_title(pl, a.top + 0.035, 0.9, sub);
  int light = PLOT_LIGHT, ink = o->no_noise ? 1 : 0;
  int *color = xmalloc(sizeof(int) * (size_t)(n + 1));
  for (long i = 0; i < n; i++) color[i] = ink;
  int *gray = xmalloc(sizeof(int) * (size_t)(m + 1));
  for (long i = 0; i < m; i++) gray[i] = light;
  plot_points(pl, x, y, gray, m, 2.0);
  plot_points(pl, x + m, y + m, color, n, n <= 2000 ? 2.5 : 1.8);
  const char *text[2] = {"training data", o->no_noise ? "decoder means" : "samples"};
  int colors[2] = {light, ink};
  plot_legend(pl, NULL, text, colors, 2, PLOT_BOXES_OUTSIDE);
  plot_save(pl, o->output);
  free(gray);
  free(color);
  free(x);
  free(y);
  free(data);
  free(idx);
  return m;
}

/* ------------------------------------------------------------ sample */

/* The prior role that draws latent `var` (its text starts "var ~"). */
static const VmxRole *picture_prior_role(const Session *s, const char *var) {
  size_t n = strlen(var);
  for (int i = 0; i < s->vmx->roles.len; i++) {
    const VmxRole *r = s->vmx->roles.items[i];
    if (!strcmp(r->kind, "prior") && r->text && !strncmp(r->text, var, n) && !strncmp(r->text + n, " ~", 2))
      return r;
  }
  return NULL;
}

/* How latent `in` of the sample graph is drawn; exits for the priors not
 * drawn here. */
static void picture_prior(const Picture *p, const GNode *in, PicturePrior *pr) {
  const Session *s = &p->s;
  const char *model = s->vmx->model;
  const VmxRole *r = picture_prior_role(s, in->s);
  if (!r) die(2, "sample: model %s: the sample graph takes %s, which no prior draws", model, in->s);
  const char *paren = strchr(r->signature, '(');
  int len = paren ? (int)(paren - r->signature) : (int)strlen(r->signature);
  char *flow = xprintf("flow.%.*s", len, r->signature), *ar = xprintf("prior.%.*s", len, r->signature);
  memset(pr, 0, sizeof *pr);
  pr->in = in;
  pr->positions = (long)shape_size(in->shape);
  if ((pr->g = session_graph(s, flow))) {
    pr->flow = 1;
    if (picture_output_dim(pr->g, "eps") != pr->positions || picture_output_dim(pr->g, "eps.base") != pr->positions)
      die(2, "sample: model %s: graph %s does not give eps and eps.base of %ld values (recompile the model with "
          "this vmc)", model, flow, pr->positions);
    free(flow);
    free(ar);
    return;
  }
  pr->g = session_graph(s, ar);
  if (!pr->g) die(2, "sample: model %s: no %s graph to draw %s from its prior %s", model, ar, in->s, r->signature);
  const GNode **ins = xmalloc(sizeof *ins * (size_t)(pr->g->nodes.len + 1));
  int nin = picture_inputs(pr->g, ins);
  if (nin != 1 || strcmp(ins[0]->s, in->s))
    die(2, "sample: model %s: the autoregressive prior %s depends on other latents; sampling from such priors is "
        "not supported yet", model, r->signature);
  free(ins);
  snprintf(pr->mean, sizeof pr->mean, "%s.mean", in->s);
  pr->classes = in->classes;
  long want = pr->classes ? pr->classes * pr->positions : pr->positions;
  int bernoulli = strstr(r->text, " ~ Bernoulli ") != NULL;
  if (!pr->classes && !bernoulli)
    die(2, "sample: model %s: the autoregressive prior %s (%s): sample draws Categorical and Bernoulli "
        "autoregressive priors only", model, r->signature, r->text);
  if (picture_output_dim(pr->g, pr->mean) != want)
    die(2, "sample: model %s: graph %s does not give %s as %ld probabilities per example", model, ar, pr->mean, want);
  free(flow);
  free(ar);
}

/* Code u's class under probabilities p[0], p[stride], ... p[(k-1) stride]
 * (the inverse of their cumulative sum; rounding leaves the last). */
static float picture_categorical(const float *p, long stride, long k, float u) {
  double total = 0, c = 0;
  for (long j = 0; j < k; j++) total += p[j * stride] > 0 ? p[j * stride] : 0;
  double x = u * total;
  for (long j = 0; j < k - 1; j++) {
    c += p[j * stride] > 0 ? p[j * stride] : 0;
    if (x < c) return (float)j;
  }
  return (float)(k - 1);
}

/* Draws the latent for count examples position by position in raster
 * order.  Each pass of the prior's graph gives every position's
 * probabilities given the codes drawn so far; only the next position's are
 * used, which its masks make depend on the earlier positions alone.  Draw
 * (example b, position i) takes uniform b * positions + i of the stream:
 * the same seed, the same codes, whatever the batch. */
static void picture_draw_prior(Picture *p, const PicturePrior *pr, long count, uint64_t stream, float *codes) {
  long P = pr->positions, k = pr->classes ? pr->classes : 1, mdim = k * P;
  float *probs = xmalloc(sizeof(float) * (size_t)(count * mdim));
  PictureVar in = {pr->in->s, codes, P}, out = {pr->mean, probs, mdim};
  Exec *ex = picture_exec(p, pr->g, count);
  for (long i = 0; i < P; i++) {
    picture_run_exec(p, ex, pr->g, count, &in, 1, &out, 1);
    for (long b = 0; b < count; b++) {
      float u;
      rng_fill_uniform(&u, 1, p->seed, stream, (uint64_t)(b * P + i));
      const float *pb = probs + b * mdim + i;
      codes[b * P + i] = pr->classes ? picture_categorical(pb, P, k, u) : (float)(u < pb[0]);
    }
  }
  exec_free(ex);
  free(probs);
}

/* z for count examples of the flow eps = f(z), where eps_i is affine in z_i
 * given z_1..z_{i-1} (eps_i = z_i sigma_i + mu_i, as MADE's): eps is drawn
 * from the base (flow.R's eps.base), then for each i in turn two passes at
 * z_i = 0 and 1 give mu_i and sigma_i, and a third corrects z_i by the
 * residual, which float cancellation leaves when mu_i is large against
 * sigma_i.  A transform that is not of that form is caught by the final
 * check rather than sampled wrong. */
static void picture_invert_flow(Picture *p, const PicturePrior *pr, long count, float *z) {
  long d = pr->positions, n = count * d, bad = -1;
  float *target = xmalloc(sizeof(float) * (size_t)(2 * n + 2 * count)), *eps = target + n, *at0 = eps + n,
        *slope = at0 + count;
  PictureVar in = {pr->in->s, z, d}, out = {"eps", eps, d}, base = {"eps.base", target, d};
  Exec *ex = picture_exec(p, pr->g, count);
  memset(z, 0, sizeof(float) * (size_t)n);
  picture_run_exec(p, ex, pr->g, count, &in, 1, &base, 1);
  for (long i = 0; i < d && bad < 0; i++) {
    for (int pass = 0; pass < 3 && bad < 0; pass++) {
      if (pass < 2)
        for (long b = 0; b < count; b++) z[b * d + i] = (float)pass;
      picture_run_exec(p, ex, pr->g, count, &in, 1, &out, 1);
      for (long b = 0; b < count && bad < 0; b++) {
        long j = b * d + i;
        if (pass == 0) at0[b] = eps[j];
        else if (pass == 1 && !((slope[b] = eps[j] - at0[b]) != 0 && isfinite(slope[b]))) bad = j;
        else if (pass == 1) z[j] = (target[j] - at0[b]) / slope[b];
        else z[j] += (target[j] - eps[j]) / slope[b];
      }
    }
  }
  if (bad < 0) { /* the check: eps(z) is the base draw */
    picture_run_exec(p, ex, pr->g, count, &in, 1, &out, 1);
    for (long j = 0; j < n && bad < 0; j++)
      if (!(fabsf(eps[j] - target[j]) <= 1e-3f * (1 + fabsf(target[j])))) bad = j;
  }
  exec_free(ex);
  double e = bad < 0 ? 0 : eps[bad], t = bad < 0 ? 0 : target[bad];
  free(target);
  if (bad >= 0)
    die(2, "sample: the flow of %s does not invert at dimension %ld: eps is %g for the base draw %g (sampling "
        "needs eps_i = z_i sigma_i + mu_i, with sigma_i != 0 and mu_i depending on z_1..z_{i-1} only)",
        pr->g->name, bad % d + 1, e, t);
}

int cmd_sample(const Opts *o) {
  Picture p;
  picture_open(&p, o);
  const Graph *g = picture_graph(&p, o->cmd, "sample", "a latent without a prior");
  PictureView v;
  picture_view(&v, &p, g, o->cmd);
  const char *shown = o->no_noise ? v.mean : v.sample;
  if (picture_output_dim(g, shown) != v.dim) die(2, "sample: the sample graph gives no %s", shown);
  int points = picture_is_points(&v), numbers = picture_is_numbers(o); /* a scatter, or no picture */
  long n = o->n ? o->n : points ? PICTURE_POINTS : 64, cols = (long)ceil(sqrt((double)n)),
       rows = (n + cols - 1) / cols;
  ImageGrid grid = {0};
  if (!points && !numbers) grid = picture_grid(&v, rows, cols, o->cmd);
  if (points && !numbers && n > PICTURE_MAX_POINTS)
    die(2, "sample: %ld points of %s are more than a scatter can show (at most %d; -o FILE.csv or FILE.npy "
        "writes any number)", n, v.decl->name, PICTURE_MAX_POINTS);
  const GNode **ins = xmalloc(sizeof *ins * (size_t)(g->nodes.len + 1));
  int nin = picture_inputs(g, ins);
  PicturePrior *priors = xmalloc(sizeof *priors * (size_t)(nin + 1));
  for (int i = 0; i < nin; i++) picture_prior(&p, ins[i], &priors[i]);
  picture_load(&p, o, points && !numbers ? SPLIT_TRAIN : -1); /* a scatter shows the training data behind */

  PictureVar *drawn = xmalloc(sizeof *drawn * (size_t)(nin + 1));
  for (int i = 0; i < nin; i++) {
    drawn[i] = (PictureVar){ins[i]->s, xmalloc(sizeof(float) * (size_t)(n * priors[i].positions)), priors[i].positions};
    if (priors[i].flow) picture_invert_flow(&p, &priors[i], n, drawn[i].data);
    else picture_draw_prior(&p, &priors[i], n, rng_stream(PICTURE_RNG_PRIOR, (uint64_t)i), drawn[i].data);
  }
  PictureVar out = {shown, xmalloc(sizeof(float) * (size_t)(n * v.dim)), v.dim};
  picture_run(&p, g, n, drawn, nin, &out, 1);
  char behind[160] = "";
  if (numbers) picture_save_numbers(&v, out.data, n, o->output);
  else if (points)
    snprintf(behind, sizeof behind, ", drawn over %ld training examples",
             picture_scatter(&p, &v, o, out.data, n));
  else picture_save(&v, &grid, out.data, n, NULL, o->output);
  printf("wrote %s: %ld samples of %s (%s) from %s, seed %llu%s\n", o->output, n, v.decl->name, shown, p.run,
         (unsigned long long)p.seed, behind);

  free(out.data);
  picture_vars_free(drawn, nin);
  free(priors);
  free(ins);
  picture_close(&p);
  return 0;
}

/* ------------------------------------------------------------ reconstruct */

/* The first n examples of the split (with --seed: n picked by the seed) in
 * rows of up to PICTURE_COLUMNS, each row of originals directly above the
 * row of their reconstructions. */
int cmd_reconstruct(const Opts *o) {
  Picture p;
  picture_open(&p, o);
  const Graph *g = picture_graph(&p, o->cmd, "reconstruct", "no encoder");
  PictureView v;
  picture_view(&v, &p, g, o->cmd);
  long n = o->n ? o->n : 16, cols = n < PICTURE_COLUMNS ? n : PICTURE_COLUMNS;
  ImageGrid grid = picture_grid(&v, 2 * ((n + cols - 1) / cols), cols, o->cmd);
  int k = split_index(o->split);
  picture_load(&p, o, k);
  picture_need(&p, o, k, n, "-n");

  long *idx = o->have_seed ? picture_pick(&p, k, n) : xmalloc(sizeof(long) * (size_t)n);
  long *slot = xmalloc(sizeof(long) * (size_t)(2 * n));
  for (long i = 0; i < n && !o->have_seed; i++) idx[i] = i;
  PictureVar *data = picture_gather(&p, k, idx, n);
  float *cells = xmalloc(sizeof(float) * (size_t)(2 * n * v.dim)); /* originals, then reconstructions */
  memcpy(cells, data[v.item].data, sizeof(float) * (size_t)(n * v.dim));
  PictureVar out = {v.mean, cells + n * v.dim, v.dim};
  picture_run(&p, g, n, data, p.s.ndata, &out, 1);
  for (long i = 0; i < n; i++) {
    slot[i] = 2 * (i / cols) * cols + i % cols;
    slot[n + i] = slot[i] + cols;
  }
  /* one mapping for both halves: a real-valued model's originals and
   * reconstructions compare only on the same gray scale */
  picture_save(&v, &grid, cells, 2 * n, slot, o->output);
  printf("wrote %s: %s %ld examples of %s in the %s split above their reconstructions (%s) from %s\n", o->output,
         o->have_seed ? "a seeded choice of" : "the first", n, v.decl->name, o->split, v.mean, p.run);

  free(cells);
  picture_vars_free(data, p.s.ndata);
  free(slot);
  free(idx);
  picture_close(&p);
  return 0;
}

/* ------------------------------------------------------------ interpolate */

/* Spherical interpolation (Shoemake's slerp, as White 2016 recommends for
 * latent spaces with a Normal prior, where most of the mass lies near a
 * sphere): a straight line between two codes passes closer to the origin
 * than any typical code.  Nearly parallel codes fall back to the line. */
static void picture_slerp(const float *a, const float *b, long d, double t, float *out) {
  double ab = 0, aa = 0, bb = 0;
  for (long i = 0; i < d; i++) {
    ab += (double)a[i] * b[i];
    aa += (double)a[i] * a[i];
    bb += (double)b[i] * b[i];
  }
  double wa = 1 - t, wb = t;
  if (aa > 0 && bb > 0) {
    double c = ab / sqrt(aa * bb), omega = acos(c < -1 ? -1 : c > 1 ? 1 : c), so = sin(omega);
    if (so > 1e-6) wa = sin((1 - t) * omega) / so, wb = sin(t * omega) / so;
  }
  for (long i = 0; i < d; i++) out[i] = (float)(wa * a[i] + wb * b[i]);
}

/* The latents the decoder takes, each with its encoder mean: means[i] is
 * named "Z.mean" (an encode output), latents[i] "Z" (a decode input). */
static int picture_latents(const Picture *p, const Graph *enc, const Graph *dec, PictureVar **latents,
                           PictureVar **means) {
  const GNode **ins = xmalloc(sizeof *ins * (size_t)(dec->nodes.len + 1));
  int n = picture_inputs(dec, ins);
  *latents = xmalloc(sizeof **latents * (size_t)(n + 1));
  *means = xmalloc(sizeof **means * (size_t)(n + 1));
  for (int i = 0; i < n; i++) {
    const GNode *z = ins[i];
    char *mean = xprintf("%s.mean", z->s);
    long dim = (long)shape_size(z->shape);
    if (z->classes) die(2, "interpolate: model %s decodes from %s, codes of %d values: codes have nothing between them",
                        p->s.vmx->model, z->s, z->classes);
    if (picture_output_dim(enc, mean) != dim)
      die(2, "interpolate: model %s decodes from %s, which no encoder gives (encode has no %s)", p->s.vmx->model, z->s,
          mean);
    (*latents)[i] = (PictureVar){z->s, NULL, dim};
    (*means)[i] = (PictureVar){mean, NULL, dim};
  }
  free(ins);
  return n;
}

/* One row per pair of examples: the decoder's means along the slerp from
 * the first one's encoder mean to the second's, ends included. */
int cmd_interpolate(const Opts *o) {
  Picture p;
  picture_open(&p, o);
  const Graph *enc = picture_graph(&p, o->cmd, "encode", "no encoder");
  const Graph *dec = picture_graph(&p, o->cmd, "decode", "no decoder");
  PictureView v;
  picture_view(&v, &p, dec, o->cmd);
  long pairs = o->n ? o->n : 8, points = o->points ? o->points : 10, cells = pairs * points;
  ImageGrid grid = picture_grid(&v, pairs, points, o->cmd);
  PictureVar *latents, *means;
  int nz = picture_latents(&p, enc, dec, &latents, &means);
  int k = split_index(o->split);
  picture_load(&p, o, k);
  picture_need(&p, o, k, 2 * pairs, "-n (pairs of examples)");

  long *idx = picture_pick(&p, k, 2 * pairs); /* pair r: examples 2r and 2r + 1 */
  PictureVar *data = picture_gather(&p, k, idx, 2 * pairs);
  for (int i = 0; i < nz; i++) means[i].data = xmalloc(sizeof(float) * (size_t)(2 * pairs * means[i].dim));
  picture_run(&p, enc, 2 * pairs, data, p.s.ndata, means, nz);
  for (int i = 0; i < nz; i++) { /* each latent on its own sphere */
    long d = latents[i].dim;
    latents[i].data = xmalloc(sizeof(float) * (size_t)(cells * d));
    for (long r = 0; r < pairs; r++)
      for (long j = 0; j < points; j++)
        picture_slerp(means[i].data + 2 * r * d, means[i].data + (2 * r + 1) * d, d, (double)j / (double)(points - 1),
                      latents[i].data + (r * points + j) * d);
  }
  PictureVar out = {v.mean, xmalloc(sizeof(float) * (size_t)(cells * v.dim)), v.dim};
  picture_run(&p, dec, cells, latents, nz, &out, 1);
  picture_save(&v, &grid, out.data, cells, NULL, o->output);
  printf("wrote %s: %ld pairs of %s from the %s split, %ld points between their codes (%s) from %s, seed %llu\n",
         o->output, pairs, v.decl->name, o->split, points, v.mean, p.run, (unsigned long long)p.seed);

  free(out.data);
  for (int i = 0; i < nz; i++) free((char *)means[i].name);
  picture_vars_free(means, nz);
  picture_vars_free(latents, nz);
  picture_vars_free(data, p.s.ndata);
  free(idx);
  picture_close(&p);
  return 0;
}
