/* optim.c - see optim.h. */
#include "optim.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* Every float operation below rounds on its own, as in PyTorch; the fused
 * multiply-adds are written out as fmaf().  So no contraction of a * b + c
 * (clang contracts by default, and GCC does in its GNU modes). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------ init */

void optim_fans(const long long *d, int rank, double *fan_in, double *fan_out) {
  if (rank <= 0) {
    *fan_in = *fan_out = 1;
  } else if (rank == 1) {
    *fan_in = *fan_out = (double)d[0];
  } else if (rank == 2) {
    *fan_in = (double)d[0];
    *fan_out = (double)d[1];
  } else {
    double rf = 1;
    for (int i = 2; i < rank; i++) rf *= (double)d[i];
    *fan_in = (double)d[1] * rf;
    *fan_out = (double)d[0] * rf;
  }
}

uint64_t optim_name_stream(const char *name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    h ^= *p;
    h *= 0x100000001b3ULL;
  }
  return h;
}

/* Reads "word(n1, n2...)" with exactly nargs numbers; returns 1 if text has
 * that form. */
static int init_call(const char *text, const char *word, int nargs, double *out) {
  size_t wl = strlen(word);
  if (strncmp(text, word, wl) != 0 || text[wl] != '(') return 0;
  const char *p = text + wl + 1;
  for (int i = 0; i < nargs; i++) {
    while (*p == ' ') p++;
    char *end;
    errno = 0;
    out[i] = strtod(p, &end);
    if (end == p || errno == ERANGE || !isfinite(out[i])) return 0;
    p = end;
    while (*p == ' ') p++;
    if (i + 1 < nargs) {
      if (*p != ',') return 0;
      p++;
    }
  }
  return p[0] == ')' && p[1] == '\0';
}

int optim_init_param(float *out, const long long *d, int rank, const char *init, const char *name,
                     uint64_t seed, char *err, size_t errlen) {
  long n = 1;
  for (int i = 0; i < rank; i++) {
    if (d[i] <= 0) {
      set_err(err, errlen, "parameter %s: dimension %d is %lld", name, i, d[i]);
      return -1;
    }
    n *= (long)d[i];
  }
  uint64_t stream = optim_name_stream(name);
  double a[2];
  if (!strcmp(init, "zeros") || !strcmp(init, "ones")) {
    float v = init[0] == 'o' ? 1.0f : 0.0f;
    for (long i = 0; i < n; i++) out[i] = v;
  } else if (!strcmp(init, "glorot")) {
    double fi, fo;
    optim_fans(d, rank, &fi, &fo);
    double bound = sqrt(6.0 / (fi + fo));
    rng_fill_uniform(out, n, seed, stream, 0);
    for (long i = 0; i < n; i++) out[i] = (float)((2.0 * out[i] - 1.0) * bound);
  } else if (!strcmp(init, "he")) {
    double fi, fo;
    optim_fans(d, rank, &fi, &fo);
    double sd = sqrt(2.0 / fi);
    rng_fill_normal(out, n, seed, stream, 0);
    for (long i = 0; i < n; i++) out[i] = (float)(sd * out[i]);
  } else if (init_call(init, "normal", 1, a)) {
    if (a[0] < 0) {
      set_err(err, errlen, "parameter %s: init %s: the standard deviation is negative", name, init);
      return -1;
    }
    rng_fill_normal(out, n, seed, stream, 0);
    for (long i = 0; i < n; i++) out[i] = (float)(a[0] * out[i]);
  } else if (init_call(init, "uniform", 2, a)) {
    if (a[1] < a[0]) {
      set_err(err, errlen, "parameter %s: init %s: hi is below lo", name, init);
      return -1;
    }
    rng_fill_uniform(out, n, seed, stream, 0);
    for (long i = 0; i < n; i++) out[i] = (float)(a[0] + (a[1] - a[0]) * out[i]);
  } else if (init_call(init, "const", 1, a)) {
    float v = (float)a[0];
    for (long i = 0; i < n; i++) out[i] = v;
  } else {
    set_err(err, errlen,
            "parameter %s: unknown initializer '%s' (expected glorot, he, zeros, ones, normal(std), "
            "uniform(lo, hi) or const(v))",
            name, init);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------ optimizers */

int optim_state_arrays(const OptimConfig *c) {
  if (c->kind == OPTIM_SGD) return c->momentum != 0 ? 1 : 0;
  return 2;
}

static int parse_number(const char *s, double *out) {
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  return end != s && *end == '\0' && errno != ERANGE && isfinite(*out);
}

int optim_config_parse(OptimConfig *c, const char *name, const char *const *kv, size_t npairs,
                       char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  static const char *const sgd_keys[] = {"lr", "momentum", "nesterov", "weight_decay", NULL};
  static const char *const adam_keys[] = {"lr", "beta1", "beta2", "eps", "weight_decay", NULL};
  const char *const *keys;
  if (!strcmp(name, "sgd")) {
    c->kind = OPTIM_SGD;
    c->lr = 0.01;
    keys = sgd_keys;
  } else if (!strcmp(name, "adam") || !strcmp(name, "adamw")) {
    c->kind = name[4] ? OPTIM_ADAMW : OPTIM_ADAM;
    c->lr = 1e-3;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->weight_decay = c->kind == OPTIM_ADAMW ? 0.01 : 0;
    keys = adam_keys;
  } else {
    set_err(err, errlen, "unknown optimizer '%s' (expected sgd, adam or adamw)", name);
    return -1;
  }
  for (size_t i = 0; i < npairs; i++) {
    const char *k = kv[2 * i], *val = kv[2 * i + 1];
    int known = 0;
    for (int j = 0; keys[j]; j++) known |= !strcmp(k, keys[j]);
    if (!known) {
      set_err(err, errlen, "optimizer %s: unknown argument '%s'", name, k);
      return -1;
    }
    if (!strcmp(k, "nesterov")) {
      if (strcmp(val, "true") && strcmp(val, "false")) {
        set_err(err, errlen, "optimizer %s: nesterov must be true or false, not '%s'", name, val);
        return -1;
      }
      c->nesterov = val[0] == 't';
      continue;
    }
    double x;
    if (!parse_number(val, &x)) {
      set_err(err, errlen, "optimizer %s: %s: expected a number, found '%s'", name, k, val);
      return -1;
    }
    if (!strcmp(k, "lr")) c->lr = x;
    else if (!strcmp(k, "momentum")) c->momentum = x;
    else if (!strcmp(k, "beta1")) c->beta1 = x;
    else if (!strcmp(k, "beta2")) c->beta2 = x;
    else if (!strcmp(k, "eps")) c->eps = x;
    else c->weight_decay = x;
  }
  const char *bad = NULL;
  if (!(c->lr > 0)) bad = "lr > 0";
  else if (c->kind != OPTIM_SGD && !(c->eps > 0)) bad = "eps > 0";
  else if (c->kind != OPTIM_SGD && !(c->beta1 >= 0 && c->beta1 < 1)) bad = "0 <= beta1 < 1";
  else if (c->kind != OPTIM_SGD && !(c->beta2 >= 0 && c->beta2 < 1)) bad = "0 <= beta2 < 1";
  else if (!(c->momentum >= 0 && c->momentum < 1)) bad = "0 <= momentum < 1";
  else if (!(c->weight_decay >= 0)) bad = "weight_decay >= 0";
  if (bad) {
    set_err(err, errlen, "optimizer %s: needs %s", name, bad);
    return -1;
  }
  return 0;
}

/* The formulas, as torch/optim/{sgd,adam,adamw}.py of PyTorch 1.13
 * (_single_tensor_*), with every Python float scalar converted to float as
 * ATen does (value.to<float>()), and each tensor op one rounding in float:
 *
 * SGD (dampening 0):
 *   d = g                              (-g when maximize)
 *   d = d + wd * p                     d_p.add(param, alpha=wd)       [fma]
 *   if momentum != 0:
 *     t == 1: buf = d                  torch.clone(d_p)
 *     else:   buf = buf * mom + d      buf.mul_(mom).add_(d_p, alpha=1)
 *     d = nesterov ? d + mom * buf     d_p.add(buf, alpha=mom)        [fma]
 *                  : buf
 *   p = p + (-lr) * d                  param.add_(d_p, alpha=-lr)     [fma]
 *
 * Adam:
 *   g = g + wd * p                     grad.add(param, alpha=wd)      [fma]
 *   m = m * b1 + (1 - b1) * g          exp_avg.mul_(b1).add_(grad, alpha=1-b1)  [fma]
 *   v = v * b2 + ((1 - b2) * g) * g    exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1-b2)
 *                                                                         [fma]
 *   bc1 = 1 - b1^t, bc2 = 1 - b2^t     (double)
 *   step_size = lr / bc1               (double)
 *   denom = sqrt(v) / sqrt(bc2) + eps  (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps):
 *                                      eps outside the square root
 *   p = p + ((-step_size) * m) / denom param.addcdiv_(exp_avg, denom, value=-step_size)
 *
 * AdamW: p = p * (1 - lr * wd) first (param.mul_), then Adam without the
 * L2 term.
 *
 * [fma]: ATen's add(self, other, alpha) is vec::fmadd(other, alpha, self) in
 * its vectorized CPU kernel (ATen/native/ufunc/add.h), a fused multiply-add;
 * its addcmul kernel, self + value * t1 * t2, is compiled with contraction
 * into fma(value * t1, t2, self) on AVX2 builds (measured: Debian's torch
 * 1.13 gives exactly that).  fmaf() computes a fused multiply-add, one
 * rounding.  addcdiv, self + (value * t1) / t2, has nothing to fuse.
 * (PyTorch >= 2.0 writes Adam's first moment as exp_avg.lerp_(grad, 1 - b1),
 * which can differ in the last bit from 1.13's mul_/add_ used here.)
 * tests/unit/test_optim.c checks all three against PyTorch, bit for bit. */

#define SGD_BODY(FMA, START)                                                   \
  do {                                                                         \
    for (long i = (START); i < n; i++) {                                     \
      float d = g[i];                                                          \
      if (gscale != 1.0f) d *= gscale;                                         \
      if (maximize) d = -d;                                                    \
      if (wd != 0.0f) d = FMA(p[i], wd, d);                                    \
      if (mom != 0.0f) {                                                       \
        float b = first ? d : m[i] * mom + d;                                  \
        m[i] = b;                                                              \
        d = nesterov ? FMA(b, mom, d) : b;                                     \
      }                                                                        \
      p[i] = FMA(d, neg_lr, p[i]);                                             \
    }                                                                          \
  } while (0)

#define ADAM_BODY(FMA, START)                                                  \
  do {                                                                         \
    for (long i = (START); i < n; i++) {                                     \
      float gi = g[i];                                                         \
      if (gscale != 1.0f) gi *= gscale;                                        \
      if (maximize) gi = -gi;                                                  \
      float pi = p[i];                                                         \
      if (decoupled) pi = pi * decay;                                          \
      else if (wd != 0.0f) gi = FMA(pi, wd, gi);                               \
      float mi = FMA(gi, omb1, m[i] * b1);                                     \
      float vi = FMA(omb2 * gi, gi, v[i] * b2);                                \
      float denom = sqrtf(vi) / bc2s + eps;                                    \
      m[i] = mi;                                                               \
      v[i] = vi;                                                               \
      p[i] = pi + (nss * mi) / denom;                                          \
    }                                                                          \
  } while (0)

#define SGD_ARGS                                                                          \
  float *restrict p, const float *restrict g, float *restrict m, long n, float gscale,     \
      int maximize, float wd, float mom, int first, int nesterov, float neg_lr
#define ADAM_ARGS                                                                        \
  float *restrict p, const float *restrict g, float *restrict m, float *restrict v, long n, \
      float gscale, int maximize, int decoupled, float decay, float wd, float b1, float omb1, \
      float b2, float omb2, float bc2s, float eps, float nss

static void sgd_generic(SGD_ARGS) { SGD_BODY(fmaf, 0); }
static void adam_generic(ADAM_ARGS) { ADAM_BODY(fmaf, 0); }

/* On x86-64 the same loops with AVX2 + FMA, chosen at run time when the
 * CPU has them: eight floats at a time with the same operations in the same
 * order (sqrt and division are correctly rounded in both, fmaf is exact
 * either way), so the results are identical to the generic loops, bit for
 * bit; the tail goes through the scalar body. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(OPTIM_NO_SIMD)
#include <immintrin.h>
#define OPTIM_SIMD 1
#define OPTIM_TARGET __attribute__((target("avx2,fma")))

OPTIM_TARGET static void sgd_avx2(SGD_ARGS) {
  const __m256 vs = _mm256_set1_ps(gscale), vwd = _mm256_set1_ps(wd), vmom = _mm256_set1_ps(mom),
               vlr = _mm256_set1_ps(neg_lr), sign = _mm256_set1_ps(-0.0f);
  long k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 d = _mm256_loadu_ps(g + k), pi = _mm256_loadu_ps(p + k);
    if (gscale != 1.0f) d = _mm256_mul_ps(d, vs);
    if (maximize) d = _mm256_xor_ps(d, sign);
    if (wd != 0.0f) d = _mm256_fmadd_ps(pi, vwd, d);
    if (mom != 0.0f) {
      __m256 b = first ? d : _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + k), vmom), d);
      _mm256_storeu_ps(m + k, b);
      d = nesterov ? _mm256_fmadd_ps(b, vmom, d) : b;
    }
    _mm256_storeu_ps(p + k, _mm256_fmadd_ps(d, vlr, pi));
  }
  SGD_BODY(__builtin_fmaf, k);
}

OPTIM_TARGET static void adam_avx2(ADAM_ARGS) {
  const __m256 vs = _mm256_set1_ps(gscale), vdecay = _mm256_set1_ps(decay), vwd = _mm256_set1_ps(wd),
               vb1 = _mm256_set1_ps(b1), vomb1 = _mm256_set1_ps(omb1), vb2 = _mm256_set1_ps(b2),
               vomb2 = _mm256_set1_ps(omb2), vbc2s = _mm256_set1_ps(bc2s), veps = _mm256_set1_ps(eps),
               vnss = _mm256_set1_ps(nss), sign = _mm256_set1_ps(-0.0f);
  long k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 gi = _mm256_loadu_ps(g + k), pi = _mm256_loadu_ps(p + k);
    if (gscale != 1.0f) gi = _mm256_mul_ps(gi, vs);
    if (maximize) gi = _mm256_xor_ps(gi, sign);
    if (decoupled) pi = _mm256_mul_ps(pi, vdecay);
    else if (wd != 0.0f) gi = _mm256_fmadd_ps(pi, vwd, gi);
    __m256 mi = _mm256_fmadd_ps(gi, vomb1, _mm256_mul_ps(_mm256_loadu_ps(m + k), vb1));
    __m256 vi = _mm256_fmadd_ps(_mm256_mul_ps(vomb2, gi), gi, _mm256_mul_ps(_mm256_loadu_ps(v + k), vb2));
    __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), vbc2s), veps);
    _mm256_storeu_ps(m + k, mi);
    _mm256_storeu_ps(v + k, vi);
    _mm256_storeu_ps(p + k, _mm256_add_ps(pi, _mm256_div_ps(_mm256_mul_ps(vnss, mi), denom)));
  }
  ADAM_BODY(__builtin_fmaf, k);
}

static int have_simd(void) {
  static int cached = -1;
  if (cached < 0) {
    __builtin_cpu_init();
    cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
  }
  return cached;
}
#endif

void optim_update(const OptimConfig *c, double lr, long t, float gscale, float *p, const float *g,
                  float *m, float *v, long n) {
  int maximize = c->maximize != 0;
  if (c->kind == OPTIM_SGD) {
    float wd = (float)c->weight_decay, mom = (float)c->momentum, neg_lr = (float)(-lr);
    int first = t <= 1, nesterov = c->nesterov != 0;
#ifdef OPTIM_SIMD
    if (have_simd()) {
      sgd_avx2(p, g, m, n, gscale, maximize, wd, mom, first, nesterov, neg_lr);
      return;
    }
#endif
    sgd_generic(p, g, m, n, gscale, maximize, wd, mom, first, nesterov, neg_lr);
    return;
  }
  int decoupled = c->kind == OPTIM_ADAMW;
  double b1 = c->beta1, b2 = c->beta2;
  double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
  double step_size = lr / bc1;
  float decay = (float)(1.0 - lr * c->weight_decay);
  float wd = (float)c->weight_decay;
  float fb1 = (float)b1, omb1 = (float)(1.0 - b1), fb2 = (float)b2, omb2 = (float)(1.0 - b2);
  float bc2s = (float)sqrt(bc2), eps = (float)c->eps, nss = (float)(-step_size);
#ifdef OPTIM_SIMD
  if (have_simd()) {
    adam_avx2(p, g, m, v, n, gscale, maximize, decoupled, decay, wd, fb1, omb1, fb2, omb2, bc2s, eps,
              nss);
    return;
  }
#endif
  adam_generic(p, g, m, v, n, gscale, maximize, decoupled, decay, wd, fb1, omb1, fb2, omb2, bc2s, eps,
               nss);
}

/* ------------------------------------------------------------ clipping */

double optim_global_norm(const float *const *g, const long *n, int k) {
  double total = 0;
  for (int j = 0; j < k; j++) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const float *x = g[j];
    long i = 0, len = n[j];
    for (; i + 8 <= len; i += 8)
      for (int l = 0; l < 8; l++) s[l] += (double)x[i + l] * (double)x[i + l];
    for (int l = 0; i < len; i++, l++) s[l] += (double)x[i] * (double)x[i];
    total += ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  }
  return sqrt(total);
}

float optim_clip_scale(double norm, double max_norm) {
  if (!(max_norm > 0) || !(norm > max_norm)) return 1.0f;
  double coef = max_norm / (norm + 1e-6);
  return coef < 1.0 ? (float)coef : 1.0f;
}

/* ------------------------------------------------------------ schedules */

/* "name(key = value, ...)": fills up to 4 (key, value) pairs. */
static int sched_args(const char *text, char *fname, size_t fcap, char keys[][16], double *vals,
                      int *nk) {
  const char *p = text;
  size_t i = 0;
  while ((*p >= 'a' && *p <= 'z') && i + 1 < fcap) fname[i++] = *p++;
  fname[i] = '\0';
  if (!i || *p != '(') return 0;
  p++;
  *nk = 0;
  while (*p == ' ') p++;
  if (*p == ')') return p[1] == '\0';
  for (;;) {
    if (*nk == 4) return 0;
    size_t k = 0;
    while (((*p >= 'a' && *p <= 'z') || *p == '_') && k + 1 < 16) keys[*nk][k++] = *p++;
    keys[*nk][k] = '\0';
    if (!k) return 0;
    while (*p == ' ') p++;
    if (*p != '=') return 0;
    p++;
    while (*p == ' ') p++;
    char *end;
    errno = 0;
    vals[*nk] = strtod(p, &end);
    if (end == p || errno == ERANGE || !isfinite(vals[*nk])) return 0;
    (*nk)++;
    p = end;
    while (*p == ' ') p++;
    if (*p == ')') return p[1] == '\0';
    if (*p != ',') return 0;
    p++;
    while (*p == ' ') p++;
  }
}

int optim_schedule_parse(LrSchedule *s, const char *text, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  char fname[16], keys[4][16];
  double vals[4];
  int nk = 0;
  if (!sched_args(text, fname, sizeof fname, keys, vals, &nk)) {
    set_err(err, errlen, "schedule '%s': expected name(key = value, ...)", text);
    return -1;
  }
  static const struct {
    const char *name;
    LrKind kind;
    const char *keys[2];
  } forms[] = {{"constant", LR_CONSTANT, {NULL, NULL}},
               {"cosine", LR_COSINE, {"min", NULL}},
               {"step", LR_STEP, {"every", "gamma"}},
               {"exponential", LR_EXPONENTIAL, {"gamma", NULL}},
               {"warmup", LR_WARMUP, {"steps", NULL}}};
  int f = -1;
  for (int i = 0; i < (int)(sizeof forms / sizeof *forms); i++)
    if (!strcmp(fname, forms[i].name)) f = i;
  if (f < 0) {
    set_err(err, errlen,
            "schedule '%s': unknown schedule '%s' (expected constant, cosine, step, exponential or "
            "warmup)",
            text, fname);
    return -1;
  }
  s->kind = forms[f].kind;
  s->gamma = s->kind == LR_STEP ? 0.5 : 0.99;
  s->steps = 1000;
  int have_every = 0;
  for (int i = 0; i < nk; i++) {
    int known = 0;
    for (int j = 0; j < 2; j++) known |= forms[f].keys[j] && !strcmp(keys[i], forms[f].keys[j]);
    for (int j = 0; j < i; j++)
      if (!strcmp(keys[i], keys[j])) known = 0;
    if (!known) {
      set_err(err, errlen, "schedule '%s': unexpected or repeated argument '%s'", text, keys[i]);
      return -1;
    }
    double x = vals[i];
    const char *bad = NULL;
    if (!strcmp(keys[i], "min")) {
      s->min = x;
      if (!(x >= 0)) bad = "min >= 0";
    } else if (!strcmp(keys[i], "gamma")) {
      s->gamma = x;
      if (!(x > 0 && x <= 1)) bad = "0 < gamma <= 1";
    } else {
      if (!(x >= 1 && x == floor(x) && x < 1e15)) bad = "a positive integer";
      if (!strcmp(keys[i], "every")) {
        s->every = (long)x;
        have_every = 1;
      } else {
        s->steps = (long)x;
      }
    }
    if (bad) {
      set_err(err, errlen, "schedule '%s': %s must be %s", text, keys[i], bad);
      return -1;
    }
  }
  if (s->kind == LR_STEP && !have_every) {
    set_err(err, errlen, "schedule '%s': step needs every", text);
    return -1;
  }
  return 0;
}

double optim_lr(const LrSchedule *s, double base_lr, long step, long epoch, long total) {
  if (step < 0) step = 0;
  if (epoch < 0) epoch = 0;
  switch (s->kind) {
  case LR_CONSTANT:
    return base_lr;
  case LR_COSINE: {
    if (total <= 0) return base_lr;
    double t = step >= total ? 1.0 : (double)step / (double)total;
    return s->min + (base_lr - s->min) * (1.0 + cos(M_PI * t)) / 2.0;
  }
  case LR_STEP:
    return base_lr * pow(s->gamma, (double)(epoch / (s->every > 0 ? s->every : 1)));
  case LR_EXPONENTIAL:
    return base_lr * pow(s->gamma, (double)epoch);
  case LR_WARMUP:
    if (s->steps <= 0 || step + 1 >= s->steps) return base_lr;
    return base_lr * (double)(step + 1) / (double)s->steps;
  }
  return base_lr;
}

/* ------------------------------------------------------------ codebooks */

int optim_ema_parse(const char *text, double *decay, double *eps) {
  char rest[8];
  if (sscanf(text, "ema(decay=%lf,eps=%lf%7s", decay, eps, rest) != 3 || strcmp(rest, ")")) return -1;
  return *decay > 0 && *decay < 1 && *eps > 0 ? 0 : -1;
}

void optim_ema_codebook(float *e, float *N, float *m, const float *count, const float *sum, long K, long D,
                        double decay, double eps, long t) {
  double g = decay, debias = 1 - pow(g, (double)t), total = 0;
  for (long k = 0; k < K; k++) {
    N[k] = (float)(g * N[k] + (1 - g) * count[k]);
    total += N[k] / debias;
  }
  for (long i = 0; i < K * D; i++) m[i] = (float)(g * m[i] + (1 - g) * sum[i]);
  if (!(total > 0)) return;
  for (long k = 0; k < K; k++) {
    double n = (N[k] / debias + eps) / (total + (double)K * eps) * total;
    for (long d = 0; d < D; d++) e[k * D + d] = (float)(m[k * D + d] / debias / n);
  }
}
