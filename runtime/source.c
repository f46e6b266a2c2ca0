/* source.c - finding, loading and checking a model's data (source.h). */
#include "source.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "util.h"

const char *const split_names[SPLIT_COUNT] = {"train", "valid", "test"};

int split_index(const char *name) {
  for (int i = 0; i < SPLIT_COUNT; i++)
    if (!strcmp(split_names[i], name)) return i;
  return -1;
}

/* ------------------------------------------------------------ the clause */

/* A source's arguments: files("DIR", train = "F", valid = 0.1). */
typedef struct {
  char kind[64]; /* files, synthetic.four_frames, ... */
  char *pos;     /* first positional argument, unquoted */
  char *key[16], *val[16];
  int nargs;
} Source;

static void clause_parse(Source *s, const char *text, const char *dataname) {
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
    char key[64] = ""; /* one argument: [name =] value */
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
    } else { /* up to the next comma or parenthesis outside brackets: a list stays whole */
      int depth = 0;
      while (*p && (depth > 0 || (*p != ',' && *p != ')')) && n + 1 < sizeof val) {
        depth += *p == '[' ? 1 : *p == ']' && depth > 0 ? -1 : 0;
        val[n++] = *p++;
      }
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

static void clause_free(Source *s) {
  free(s->pos);
  for (int i = 0; i < s->nargs; i++) {
    free(s->key[i]);
    free(s->val[i]);
  }
}

static const char *clause_arg(const Source *s, const char *key) {
  for (int i = 0; i < s->nargs; i++)
    if (!strcmp(s->key[i], key)) return s->val[i];
  return NULL;
}

static int is_number(const char *v, double *x) {
  char *end;
  *x = strtod(v, &end);
  return !*end && end != v;
}

static double clause_num(const Source *s, const char *key, double dflt, const char *dataname) {
  const char *v = clause_arg(s, key);
  double x;
  if (!v) return dflt;
  if (!is_number(v, &x)) die(2, "data %s: argument %s = %s is not a number", dataname, key, v);
  return x;
}

/* A list of two numbers, "[1, -2.5]", into x[0..1]; 1 when it is one. */
static int is_pair(const char *v, double x[2]) {
  char *end;
  while (*v == ' ') v++;
  if (*v++ != '[') return 0;
  for (int i = 0; i < 2; i++) {
    x[i] = strtod(v, &end);
    if (end == v) return 0;
    for (v = end; *v == ' '; v++) {}
    if (*v++ != (i ? ']' : ',')) return 0;
  }
  while (*v == ' ') v++;
  return !*v;
}

/* Argument `key` as a list of two numbers (the default when absent); 1
 * when it was given. */
static int clause_pair(const Source *s, const char *key, double x[2], const char *dataname) {
  const char *v = clause_arg(s, key);
  if (!v) return 0;
  if (!is_pair(v, x)) die(2, "data %s: argument %s = %s is not a list of two numbers ([x, y])", dataname, key, v);
  return 1;
}

/* synthetic.gaussian: cov = "full" or "diag" (LANGUAGE.md §7.2), or its
 * principal axes std = [s1, s2] rotated by angle = A degrees; either moved
 * to mean = [x, y]. */
static DataStatus load_gaussian(Dataset *ds, const Source *s, long n, uint64_t seed, const char *dataname,
                                DataErr *err) {
  const char *cov = clause_arg(s, "cov");
  double mean[2] = {0, 0}, std[2] = {1, 1};
  int have_mean = clause_pair(s, "mean", mean, dataname), have_std = clause_pair(s, "std", std, dataname);
  int have_angle = clause_arg(s, "angle") != NULL;
  double angle = clause_num(s, "angle", 0, dataname);
  if (cov && strcmp(cov, "full") && strcmp(cov, "diag"))
    die(2, "data %s: synthetic.gaussian: cov = \"%s\": expected \"full\" or \"diag\"", dataname, cov);
  if (cov && (have_std || have_angle))
    die(2, "data %s: synthetic.gaussian takes cov or std and angle, not both", dataname);
  if (have_angle && !have_std) die(2, "data %s: synthetic.gaussian: angle needs std (the axes it turns)", dataname);
  if (have_std) return data_synth_gaussian_axes(ds, n, mean, std, angle, seed, err);
  DataStatus st = data_synth_gaussian(ds, n, !cov || strcmp(cov, "diag"), seed, err);
  if (st == DATA_OK && have_mean) {
    if (!isfinite(mean[0]) || !isfinite(mean[1]))
      die(2, "data %s: synthetic.gaussian: mean = [%g, %g] is not finite", dataname, mean[0], mean[1]);
    for (long i = 0; i < n; i++) {
      ds->x[2 * i] += (float)mean[0];
      ds->x[2 * i + 1] += (float)mean[1];
    }
  }
  return st;
}

static void check_status(DataStatus st, const DataErr *err) {
  if (st != DATA_OK) die(2, "%s", err->msg);
}

/* ------------------------------------------------------------ checking */

static void check_shape(const DataItem *it, int k) {
  const Dataset *ds = &it->split[k];
  const VmxData *d = it->decl;
  long long want = shape_size(d->shape);
  if (ds->dim == want) return;
  char got[256] = "";
  size_t off = 0;
  for (int i = 0; i < ds->rank && off < sizeof got - 24; i++)
    off += (size_t)snprintf(got + off, sizeof got - off, "%s%ld", i ? ", " : "", ds->shape[i]);
  die(2, "%s: examples have shape [%s] (%ld values), but data %s is declared %s with %lld values", it->file[k], got,
      ds->dim, d->name, d->domain, want);
}

static void check_bits(const DataItem *it, int k) {
  const Dataset *ds = &it->split[k];
  for (long i = 0; i < ds->n * ds->dim; i++) {
    float v = data_at(ds, i);
    if (v != 0.0f && v != 1.0f)
      die(2, "%s: example %ld, value %ld is %g, but data %s is bit (0 or 1; byte pixels are thresholded at 127)",
          it->file[k], i / ds->dim, i % ds->dim, (double)v, it->decl->name);
  }
}

static int all_binary(const Dataset *ds) {
  for (long i = 0; i < ds->n * ds->dim; i++) {
    float v = data_at(ds, i);
    if (v != 0.0f && v != 1.0f) return 0;
  }
  return 1;
}

/* Transforms split k by the declared domain, then checks its values. */
static void finish_split(DataItem *it, int k, double threshold, uint64_t seed) {
  Dataset *ds = &it->split[k];
  const VmxData *d = it->decl;
  check_shape(it, k);
  if (!strcmp(d->domain, "bit")) {
    if (it->dynamic) {
      if (!ds->bytes)
        die(2, "%s: binarize = \"dynamic\" needs byte pixels (0..255), as in IDX files", it->file[k]);
      data_scale(ds, 0.0f, 1.0f); /* a byte set: only its mapping changes */
      if (k != SPLIT_TRAIN) {       /* a fixed binarization, so that evaluations compare */
        DataErr err = {{0}};
        uint64_t stream = rng_stream(RNG_NODE_BINARIZE, UINT64_MAX - (uint64_t)k);
        if (data_binarize_fixed(ds, seed, stream, &err) != DATA_OK) die(2, "%s: %s", it->file[k], err.msg);
      }
      return;
    }
    if (threshold >= 0) data_threshold(ds, (float)threshold);
    else if (ds->bytes && !all_binary(ds)) data_threshold(ds, 127.0f);
    check_bits(it, k);
  } else if (!strcmp(d->domain, "real")) {
    double lo, hi;
    if (d->extra && sscanf(d->extra, "in [%lf, %lf]", &lo, &hi) == 2 && ds->bytes) data_scale(ds, (float)lo, (float)hi);
  } else if (!strcmp(d->domain, "cat")) {
    for (long i = 0; i < ds->n * ds->dim; i++) {
      float v = data_at(ds, i);
      if (v < 0 || v >= (float)d->classes || v != floorf(v))
        die(2, "%s: example %ld, value %ld is %g, not a code 0..%d of data %s", it->file[k], i / ds->dim,
            i % ds->dim, (double)v, d->classes - 1, d->name);
    }
  }
  /* float values that are all 0 or 1 (synthetic bit sets, float NPY or CSV
   * files) are kept as bytes: a quarter of the memory, the same batches */
  data_compact(ds);
}

/* ------------------------------------------------------------ loading */

static void load_synthetic(DataItem *it, const Source *s, uint64_t seed) {
  const VmxData *d = it->decl;
  const char *set = s->kind + strlen("synthetic.");
  long n = (long)clause_num(s, "n", 1000, d->name);
  if (n < 1) die(2, "data %s: n must be >= 1", d->name);
  Dataset *ds = &it->split[SPLIT_TRAIN];
  DataErr err = {{0}};
  DataStatus st;
  if (!strcmp(set, "four_frames")) st = data_synth_four_frames(ds, n, seed, &err);
  else if (!strcmp(set, "nine_pixels")) st = data_synth_nine_pixels(ds, n, seed, &err);
  else if (!strcmp(set, "gaussian")) st = load_gaussian(ds, s, n, seed, d->name, &err);
  else if (!strcmp(set, "mixture"))
    st = data_synth_mixture(ds, n, (int)clause_num(s, "k", 8, d->name), clause_num(s, "radius", 2, d->name),
                            clause_num(s, "std", 0.1, d->name), seed, &err);
  else die(2, "data %s: unknown synthetic set '%s'", d->name, set);
  if (st != DATA_OK) die(2, "data %s: %s", d->name, err.msg);
  it->have[SPLIT_TRAIN] = 1;
  snprintf(it->file[SPLIT_TRAIN], sizeof it->file[SPLIT_TRAIN], "%s", s->kind);
  finish_split(it, SPLIT_TRAIN, -1, seed);
}

static void find_dir(char *dir, size_t cap, const char *dir_opt, const Source *s, const char *name) {
  if (dir_opt) {
    snprintf(dir, cap, "%s", dir_opt);
    if (!is_dir(dir) && !is_file(dir)) die(2, "--data %s: no such directory or file", dir_opt);
    return;
  }
  snprintf(dir, cap, "%s", s->pos);
  if (is_dir(dir) || is_file(dir)) return;
  snprintf(dir, cap, "../shared/data/%s", s->pos);
  if (!is_dir(dir) && !is_file(dir))
    die(2, "data %s: cannot find the data directory '%s' (tried ./%s and ../shared/data/%s; give it with --data DIR)",
        name, s->pos, s->pos, s->pos);
}

static void load_files(DataItem *it, const Source *s, const char *dir_opt, const int want[SPLIT_COUNT],
                       uint64_t seed) {
  const VmxData *d = it->decl;
  if (!s->pos) die(2, "data %s: files(...) names no directory", d->name);
  char dir[512];
  find_dir(dir, sizeof dir, dir_opt, s, d->name);
  const char *binarize = clause_arg(s, "binarize");
  double threshold = -1, frac = 0;
  if (binarize && !strcmp(binarize, "dynamic")) it->dynamic = 1;
  else if (binarize && !is_number(binarize, &threshold))
    die(2, "data %s: binarize = %s: expected a threshold in [0, 255) or \"dynamic\"", d->name, binarize);
  const char *valid = clause_arg(s, "valid");
  int valid_frac = valid && is_number(valid, &frac);
  DataErr err = {{0}};
  for (int k = 0; k < SPLIT_COUNT; k++) {
    int needed = want[k] || (k == SPLIT_TRAIN && valid_frac && want[SPLIT_VALID]);
    if (!needed || (k == SPLIT_VALID && valid_frac)) continue;
    const char *named = clause_arg(s, split_names[k]);
    if (is_file(dir)) {
      if (k != SPLIT_TRAIN) continue;
      snprintf(it->file[k], sizeof it->file[k], "%s", dir);
    } else if (named)
      snprintf(it->file[k], sizeof it->file[k], "%s/%.500s", dir, named);
    else if (data_find_split(dir, split_names[k], it->file[k], (long)sizeof it->file[k], &err) != DATA_OK) {
      if (k == SPLIT_TRAIN) die(2, "%s", err.msg);
      continue; /* no such split: the caller says when it needs one */
    }
    check_status(data_load(it->file[k], &it->split[k], &err), &err);
    it->have[k] = 1;
  }
  if (valid_frac && want[SPLIT_VALID]) {
    check_status(data_split_fraction(&it->split[SPLIT_TRAIN], frac, &it->split[SPLIT_VALID], &err), &err);
    it->have[SPLIT_VALID] = 1;
    snprintf(it->file[SPLIT_VALID], sizeof it->file[SPLIT_VALID], "%.900s (valid = %.60s)", it->file[SPLIT_TRAIN],
             valid);
  }
  for (int k = 0; k < SPLIT_COUNT; k++)
    if (it->have[k]) finish_split(it, k, threshold, seed);
}

void source_load(DataItem *it, const char *dir_opt, const int want[SPLIT_COUNT], uint64_t seed) {
  const VmxData *d = it->decl;
  const char *from = d->extra ? strstr(d->extra, "from ") : NULL;
  if (!from) die(2, "data %s has no source", d->name);
  Source s;
  clause_parse(&s, from + 5, d->name);
  if (!strncmp(s.kind, "synthetic.", 10)) load_synthetic(it, &s, seed);
  else if (!strcmp(s.kind, "files")) load_files(it, &s, dir_opt, want, seed);
  else die(2, "data %s: unknown source '%s'", d->name, from + 5);
  clause_free(&s);
}

void source_gather(const DataItem *it, int k, const long *idx, long count, uint64_t seed, uint64_t epoch,
                   float *out) {
  const Dataset *ds = &it->split[k];
  data_gather(ds, idx, count, out);
  if (!it->dynamic || k != SPLIT_TRAIN) return;
  /* an example's draw depends on the example and the epoch, not on its batch */
  uint64_t stream = rng_stream(RNG_NODE_BINARIZE, epoch);
  for (long i = 0; i < count; i++)
    data_binarize_dynamic(out + i * ds->dim, out + i * ds->dim, ds->dim, seed, stream, (uint64_t)(idx[i] * ds->dim));
}

int source_labels(DataItem *it, int k) {
  Dataset *ds = &it->split[k];
  if (ds->labels) return 1;
  const char *file = it->file[k], *slash = strrchr(file, '/');
  const char *at = strstr(slash ? slash + 1 : file, "images-idx3");
  if (!it->have[k] || !at || !is_file(file)) return 0; /* (a valid = 0.1 split has no file of its own) */
  char path[sizeof it->file[k] + 8];
  snprintf(path, sizeof path, "%.*slabels-idx1%s", (int)(at - file), file, at + strlen("images-idx3"));
  if (!is_file(path)) return 0;
  DataErr err = {{0}};
  check_status(data_load_idx_labels(path, ds, &err), &err);
  return 1;
}

void source_spread(DataItem *it, int k, long n) {
  Dataset *ds = &it->split[k];
  if (n >= ds->n) return;
  for (long i = 0; i < n; i++) { /* row i <- row i * N / n: never a row still to be read, as i * N / n >= i */
    long from = (long)((double)i * (double)ds->n / (double)n);
    if (ds->x) memmove(ds->x + i * ds->dim, ds->x + from * ds->dim, sizeof(float) * (size_t)ds->dim);
    else memmove(ds->u8 + i * ds->dim, ds->u8 + from * ds->dim, (size_t)ds->dim);
    if (ds->labels) ds->labels[i] = ds->labels[from];
  }
  ds->n = n;
}

void source_free(DataItem *it) {
  for (int k = 0; k < SPLIT_COUNT; k++) data_free(&it->split[k]);
}
