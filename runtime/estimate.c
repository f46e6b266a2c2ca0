/* estimate.c - log p(x) by the importance-weighted bound, annealed
 * importance sampling and quadrature (estimate.h).
 *
 * All three run a graph on batches of "rows": each example is repeated over
 * several consecutive rows (its K draws, its chains, its grid points), so
 * that a few examples still fill a batch.  Sums over many terms are kept in
 * double as streaming log-sum-exps (a running maximum and the sum scaled by
 * it): memory does not grow with K, the chains or the grid. */
#include "estimate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rng.h"
#include "util.h"

/* The runtime's own streams for AIS: below rng.h's reserved ids and far
 * above any graph's i0.  Their offsets are global (example * rows per
 * example + row) * dimensions, so a chain's draws do not depend on the
 * batch. */
#define STREAM_AIS_INIT 0xFFFFFFE0u     /* z ~ N(0, I) at the start, step 0 */
#define STREAM_AIS_MOMENTUM 0xFFFFFFE1u /* step = the temperature */
#define STREAM_AIS_ACCEPT 0xFFFFFFE2u   /* step = the temperature */

#define LOG_2PI 1.8378770664093453
#define SIGMOID_RADIUS 4.0 /* the schedule is sigmoid(t) for t in [-4, 4] (Wu et al. 2017) */
#define ADAPT_RATE 0.05    /* log step size += rate * (acceptance - target), per move */
#define STEP_MIN 1e-4
#define STEP_MAX 1.0
#define GRID_ERROR_WARN 1e-3 /* nats */
#define EDGE_MASS_WARN 1e-6

/* ------------------------------------------------------------ helpers */

/* A streaming log-sum-exp: log(sum) + max is log sum_i exp(v_i). */
typedef struct {
  double max, sum;
} Lse;

static const Lse LSE_EMPTY = {-INFINITY, 0.0};

static void lse_add(Lse *a, double v) {
  if (!(v > -INFINITY)) return; /* -inf and NaN weigh nothing */
  if (a->sum == 0) {
    a->max = v;
    a->sum = 1;
  } else if (v > a->max) {
    a->sum = a->sum * exp(a->max - v) + 1;
    a->max = v;
  } else {
    a->sum += exp(v - a->max);
  }
}

static double lse_value(const Lse *a) {
  return a->sum > 0 ? a->max + log(a->sum) : -INFINITY;
}

static long min_long(long a, long b) {
  return a < b ? a : b;
}

/* On a terminal, a line on stderr saying how far a long estimate is;
 * done == total erases it. */
static void progress(const char *what, long done, long total, double t0) {
  static int tty = -1;
  static int shown = 0; /* a line is up */
  static double last = 0;
  if (tty < 0) tty = isatty(2);
  double now = now_seconds();
  if (!tty || (done < total && now - last < 0.5)) return;
  last = now;
  if (done < total) fprintf(stderr, "\r%s: %ld/%ld examples, %.0f s ", what, done, total, now - t0);
  else if (shown) fprintf(stderr, "\r%*s\r", 60, "");
  shown = done < total;
  fflush(stderr);
}

/* Binds examples first .. first + count - 1 of split k, each on `reps`
 * consecutive rows (idx holds count * reps). */
static void bind_rows(Session *s, Exec *ex, int k, long first, long count, long reps, uint64_t data_seed,
                      long *idx) {
  for (long j = 0; j < count; j++)
    for (long r = 0; r < reps; r++) idx[j * reps + r] = first + j;
  session_bind(s, ex, k, idx, count * reps, data_seed, 0);
}

static const float *output(Session *s, const Exec *ex, const Graph *g, const char *name) {
  const float *v = exec_output(ex, name);
  if (!v) die(2, "%s: graph %s of model %s has no output %s", s->path, g->name, s->vmx->model, name);
  return v;
}

/* ------------------------------------------------------------ iw */

/* Per example, log (1/K) sum_k exp(log w_k): each example fills `reps` rows
 * of a run, and the runs repeat until K draws are in; each run is a fresh
 * random step.  Draws past K in the last run are left out. */
static const Graph *iw_graph(Session *s) {
  const Graph *g = session_graph(s, "iw");
  if (g) return g;
  if (session_graph(s, "logjoint"))
    die(2, "%s: model %s has no iw entry point: its encoder has no density (an implicit encoder), so the "
           "importance-weighted bound cannot be computed; estimate log p(x) with --ais (or --quadrature for at most "
           "2 latent dimensions)", s->path, s->vmx->model);
  die(2, "%s: model %s has no iw entry point (it needs an encoder and a generative side with densities)", s->path,
      s->vmx->model);
}

static void run_iw(Session *s, int k, Estimate *E, double *per) {
  const Graph *g = iw_graph(s);
  long K = E->o.k, B = E->o.batch, n = E->n;
  long reps = min_long(K, B), per_run = B / reps;
  long runs = (n + per_run - 1) / per_run * ((K + reps - 1) / reps);
  if ((unsigned long)runs >= 0xFFFFFFFFul) die(2, "--iw %ld on %ld examples needs too many runs; use fewer", K, n);
  Exec *ex = session_exec(s, g, per_run * reps);
  Lse *acc = xmalloc(sizeof(Lse) * (size_t)per_run);
  long *idx = xmalloc(sizeof(long) * (size_t)(per_run * reps));
  uint64_t step = 0;
  double sum_logw = 0, t0 = now_seconds();
  ExecError err;
  for (long first = 0; first < n; first += per_run) {
    long count = min_long(per_run, n - first);
    bind_rows(s, ex, k, first, count, reps, E->o.data_seed, idx);
    for (long j = 0; j < count; j++) acc[j] = LSE_EMPTY;
    for (long done = 0; done < K; done += reps) {
      if (exec_run(ex, (int)(count * reps), E->o.seed, step++, &err))
        die(1, "model %s, --iw on examples %ld..%ld: %s", s->vmx->model, first, first + count - 1, err.msg);
      const float *logw = output(s, ex, g, "logw");
      long use = min_long(reps, K - done);
      for (long j = 0; j < count; j++)
        for (long r = 0; r < use; r++) {
          lse_add(&acc[j], logw[j * reps + r]);
          sum_logw += logw[j * reps + r];
        }
    }
    for (long j = 0; j < count; j++) per[first + j] = lse_value(&acc[j]) - log((double)K);
    progress("--iw", first + count, n, t0);
  }
  E->mean_logw = sum_logw / ((double)n * (double)K);
  free(idx);
  free(acc);
  exec_free(ex);
}

/* ------------------------------------------------------------ logjoint */

/* A real-valued latent: an input of the logjoint graph that is not data. */
typedef struct {
  const char *name;
  long dim, off; /* its elements, and where they start among a row's D */
  float *in;     /* [rows, dim], bound as the graph's input */
  char *grad;    /* "grad:NAME" */
} Latent;

/* The logjoint entry point on `rows` rows, with the latents of a row laid
 * end to end as one vector of D values (z in the comments). */
typedef struct {
  Session *s;
  const Graph *g;
  Exec *ex;
  Latent *lat;
  int nlat;
  long D, rows;
} Joint;

static int is_data(const Session *s, const char *name) {
  for (int i = 0; i < s->ndata; i++)
    if (!strcmp(s->data[i].decl->name, name)) return 1;
  return 0;
}

static int has_latent(const Joint *J, const char *name) {
  for (int i = 0; i < J->nlat; i++)
    if (!strcmp(J->lat[i].name, name)) return 1;
  return 0;
}

/* `why` names the option for messages; need_grad: the grad:Z outputs too.
 * rows = 0: only finds the latents (and exits when there are none). */
static void joint_open(Joint *J, Session *s, long rows, const char *why, int need_grad) {
  memset(J, 0, sizeof *J);
  J->s = s;
  J->rows = rows;
  J->g = session_graph(s, "logjoint");
  if (!J->g)
    die(2, "%s: model %s has no logjoint entry point (its generative side needs a density for every variable), "
           "which %s needs", s->path, s->vmx->model, why);
  const Graph *g = J->g;
  J->lat = xmalloc(sizeof(Latent) * (size_t)(g->nodes.len + 1));
  for (int i = 0; i < g->nodes.len; i++) {
    const GNode *nd = g->nodes.items[i];
    if (nd->op != OP_INPUT || !nd->s || is_data(s, nd->s) || has_latent(J, nd->s)) continue;
    if (nd->classes > 0)
      die(2, "%s: model %s: latent %s is discrete (%d codes); %s integrates over real-valued latents only", s->path,
          s->vmx->model, nd->s, nd->classes, why);
    Latent *l = &J->lat[J->nlat++];
    l->name = nd->s;
    l->dim = (long)shape_size(nd->shape);
    l->off = J->D;
    J->D += l->dim;
    l->grad = xprintf("grad:%s", nd->s);
    if (need_grad && !graph_output_node(g, l->grad))
      die(2, "%s: model %s: the logjoint graph has no output %s, which %s needs", s->path, s->vmx->model, l->grad,
          why);
  }
  if (!J->D) die(2, "%s: model %s: the logjoint graph has no real-valued latent to integrate over", s->path,
                 s->vmx->model);
  if (!rows) return;
  J->ex = session_exec(s, g, rows);
  for (int i = 0; i < J->nlat; i++) {
    Latent *l = &J->lat[i];
    l->in = xmalloc(sizeof(float) * (size_t)(rows * l->dim));
    exec_bind_input(J->ex, l->name, l->in);
  }
}

static void joint_close(Joint *J) {
  for (int i = 0; i < J->nlat; i++) {
    free(J->lat[i].in);
    free(J->lat[i].grad);
  }
  free(J->lat);
  if (J->ex) exec_free(J->ex);
  memset(J, 0, sizeof *J);
}

/* log p(x, z) of `rows` rows at z ([rows, D]) into lp, and its gradient in
 * z into grad (unless NULL).  The data are bound already. */
static void joint_eval(Joint *J, long rows, const double *z, double *lp, double *grad, const char *why) {
  long D = J->D;
  for (int i = 0; i < J->nlat; i++) {
    const Latent *l = &J->lat[i];
    for (long r = 0; r < rows; r++)
      for (long d = 0; d < l->dim; d++) l->in[r * l->dim + d] = (float)z[r * D + l->off + d];
  }
  ExecError err;
  if (exec_run(J->ex, (int)rows, 0, 0, &err)) die(1, "model %s, %s: %s", J->s->vmx->model, why, err.msg);
  const float *v = output(J->s, J->ex, J->g, "logjoint");
  for (long r = 0; r < rows; r++) lp[r] = v[r];
  if (!grad) return;
  for (int i = 0; i < J->nlat; i++) {
    const Latent *l = &J->lat[i];
    const float *gv = output(J->s, J->ex, J->g, l->grad);
    for (long r = 0; r < rows; r++)
      for (long d = 0; d < l->dim; d++) grad[r * D + l->off + d] = gv[r * l->dim + d];
  }
}

/* ------------------------------------------------------------ ais */

/* The AIS state of one batch of rows, z and the gradients [R, D].  Each
 * example has S = C + P consecutive rows: its C chains, then P pilot
 * chains.  f_b(z) = q0(z)^(1-b) p(x, z)^b, q0 = N(0, I).
 *
 * Why pilots: a step size adapted on a chain's own path makes its next
 * move depend on where it has been, and the AIS weights are then no longer
 * exactly unbiased (they could overestimate log p(x)).  The pilots adapt
 * their step sizes to the acceptance target, and at every temperature the
 * example's chains use the pilots' (geometric) mean step size: the chains'
 * moves depend on the pilots' paths only, never on their own, so their
 * weights stay unbiased.  The pilots' weights are not used. */
typedef struct {
  Joint J;
  const EstimateOpts *o;
  long D, L, C, P, S;
  double *z, *g, *lp;    /* every row: position, grad log p(x, z), log p(x, z) */
  double *zp, *gp, *lpp; /* the proposal */
  double *p, *h0, *eps;  /* momentum, starting energy, step size */
  double *w;             /* accumulated log weights */
  float *draw;           /* [R, D] draws */
  double accept_sum;     /* over the chains, not the pilots */
  long accept_n;
} Ais;

static double log_q0(const double *z, long D) {
  double s = 0;
  for (long d = 0; d < D; d++) s += z[d] * z[d];
  return -0.5 * s - 0.5 * (double)D * LOG_2PI;
}

static double sq_norm(const double *v, long D) {
  double s = 0;
  for (long d = 0; d < D; d++) s += v[d] * v[d];
  return s;
}

/* The sigmoid schedule: b_t for t = 0..T, from exactly 0 to exactly 1,
 * denser near both ends where the intermediate distributions change
 * fastest (Wu, Burda, Salakhutdinov & Grosse 2017, after Grosse's code). */
static double *sigmoid_schedule(long T) {
  double *b = xmalloc(sizeof(double) * (size_t)(T + 1));
  double lo = 1 / (1 + exp(SIGMOID_RADIUS)), hi = 1 / (1 + exp(-SIGMOID_RADIUS));
  for (long t = 0; t <= T; t++) {
    double x = SIGMOID_RADIUS * (2.0 * (double)t / (double)T - 1);
    b[t] = (1 / (1 + exp(-x)) - lo) / (hi - lo);
  }
  b[0] = 0;
  b[T] = 1;
  return b;
}

/* The chains of each example take the geometric mean of its pilots' step
 * sizes (with no pilot, they keep the initial one). */
static void chain_steps(Ais *A, long count) {
  if (!A->P) return;
  for (long j = 0; j < count; j++) {
    double *e = A->eps + j * A->S, m = 0;
    for (long q = A->C; q < A->S; q++) m += log(e[q]);
    m = exp(m / (double)A->P);
    for (long c = 0; c < A->C; c++) e[c] = m;
  }
}

/* p += scale * eps * grad log f_b at (z, g), row by row. */
static void kick(Ais *A, long R, double b, const double *z, const double *g, double scale) {
  long D = A->D;
  for (long r = 0; r < R; r++) {
    double e = scale * A->eps[r];
    for (long d = 0; d < D; d++) {
      long i = r * D + d;
      A->p[i] += e * (b * g[i] - (1 - b) * z[i]);
    }
  }
}

/* One HMC move leaving f_b invariant, for every row: fresh momentum, L
 * leapfrog steps, then accept or reject; a proposal whose log-joint is not
 * finite is rejected.  The pilots' step sizes then move toward the target
 * acceptance.  row0: the first row's global number (for the draws). */
static void hmc_move(Ais *A, long count, double b, uint64_t t, uint64_t row0) {
  long D = A->D, R = count * A->S;
  const EstimateOpts *o = A->o;
  chain_steps(A, count);
  rng_fill_normal(A->draw, R * D, o->seed, rng_stream(STREAM_AIS_MOMENTUM, t), row0 * (uint64_t)D);
  for (long i = 0; i < R * D; i++) A->p[i] = A->draw[i];
  for (long r = 0; r < R; r++)
    A->h0[r] = -((1 - b) * log_q0(A->z + r * D, D) + b * A->lp[r]) + 0.5 * sq_norm(A->p + r * D, D);
  memcpy(A->zp, A->z, sizeof(double) * (size_t)(R * D));
  kick(A, R, b, A->z, A->g, 0.5);
  for (long l = 1; l <= A->L; l++) {
    for (long r = 0; r < R; r++)
      for (long d = 0; d < D; d++) A->zp[r * D + d] += A->eps[r] * A->p[r * D + d];
    joint_eval(&A->J, R, A->zp, A->lpp, A->gp, "--ais");
    kick(A, R, b, A->zp, A->gp, l < A->L ? 1.0 : 0.5);
  }
  rng_fill_uniform(A->draw, R, o->seed, rng_stream(STREAM_AIS_ACCEPT, t), row0);
  for (long r = 0; r < R; r++) {
    double h1 = -((1 - b) * log_q0(A->zp + r * D, D) + b * A->lpp[r]) + 0.5 * sq_norm(A->p + r * D, D);
    double a = h1 <= A->h0[r] ? 1.0 : exp(A->h0[r] - h1);
    if (!(a >= 0) || !isfinite(A->lpp[r])) a = 0; /* NaN energies, diverged proposals */
    if (A->draw[r] < a) {
      memcpy(A->z + r * D, A->zp + r * D, sizeof(double) * (size_t)D);
      memcpy(A->g + r * D, A->gp + r * D, sizeof(double) * (size_t)D);
      A->lp[r] = A->lpp[r];
    }
    if (r % A->S < A->C) {
      A->accept_sum += a;
      A->accept_n++;
      continue;
    }
    /* A pilot adapts on its acceptance probability, smoother than the
     * accept/reject outcome. */
    double e = A->eps[r] * exp(ADAPT_RATE * (a - ESTIMATE_ACCEPT_TARGET));
    A->eps[r] = e < STEP_MIN ? STEP_MIN : e > STEP_MAX ? STEP_MAX : e;
  }
}

/* Examples first .. first + count - 1, S rows each: z0 ~ q0, then for
 * t = 1..T: w += (b_t - b_(t-1)) (log p(x, z) - log q0(z)) and (but after
 * the last) an HMC move at b_t.  per[e] = log-mean-exp over the example's
 * C chains of w. */
static void ais_batch(Ais *A, int k, long first, long count, const double *beta, long *idx, double *per) {
  const EstimateOpts *o = A->o;
  long S = A->S, R = count * S, D = A->D, T = o->ais_steps;
  uint64_t row0 = (uint64_t)first * (uint64_t)S;
  bind_rows(A->J.s, A->J.ex, k, first, count, S, o->data_seed, idx);
  rng_fill_normal(A->draw, R * D, o->seed, rng_stream(STREAM_AIS_INIT, 0), row0 * (uint64_t)D);
  for (long i = 0; i < R * D; i++) A->z[i] = A->draw[i];
  joint_eval(&A->J, R, A->z, A->lp, A->g, "--ais");
  for (long r = 0; r < R; r++) {
    A->w[r] = 0;
    A->eps[r] = o->step_size;
  }
  for (long t = 1; t <= T; t++) {
    double db = beta[t] - beta[t - 1];
    for (long r = 0; r < R; r++) A->w[r] += db * (A->lp[r] - log_q0(A->z + r * D, D));
    if (t < T) hmc_move(A, count, beta[t], (uint64_t)t, row0);
  }
  for (long j = 0; j < count; j++) {
    Lse a = LSE_EMPTY;
    for (long c = 0; c < A->C; c++) lse_add(&a, A->w[j * S + c]);
    per[first + j] = lse_value(&a) - log((double)A->C);
  }
}

static void run_ais(Session *s, int k, Estimate *E, double *per) {
  Ais A;
  memset(&A, 0, sizeof A);
  A.o = &E->o;
  A.L = E->o.leapfrog;
  A.C = E->o.chains;
  A.P = ESTIMATE_PILOTS;
  A.S = A.C + A.P;
  long per_run = E->o.batch / A.S;
  if (per_run < 1) per_run = 1; /* more chains than rows: one example per run */
  long rows = per_run * A.S;
  joint_open(&A.J, s, rows, "--ais", 1);
  /* HMC wanders far at times: a non-finite log-joint rejects the proposal
   * instead of stopping the run (rows do not mix, so others are unharmed). */
  exec_set_check(A.J.ex, 0);
  long D = A.D = A.J.D;
  E->dims = D;
  size_t rd = sizeof(double) * (size_t)(rows * D), r1 = sizeof(double) * (size_t)rows;
  A.z = xmalloc(rd), A.g = xmalloc(rd), A.zp = xmalloc(rd), A.gp = xmalloc(rd), A.p = xmalloc(rd);
  A.lp = xmalloc(r1), A.lpp = xmalloc(r1), A.h0 = xmalloc(r1), A.eps = xmalloc(r1), A.w = xmalloc(r1);
  A.draw = xmalloc(sizeof(float) * (size_t)(rows * D));
  long *idx = xmalloc(sizeof(long) * (size_t)rows);
  double *beta = sigmoid_schedule(E->o.ais_steps);
  double t0 = now_seconds();
  for (long first = 0; first < E->n; first += per_run) {
    ais_batch(&A, k, first, min_long(per_run, E->n - first), beta, idx, per);
    progress("--ais", min_long(first + per_run, E->n), E->n, t0);
  }
  E->acceptance = A.accept_n ? A.accept_sum / (double)A.accept_n : 1.0;
  free(beta);
  free(idx);
  double *arrays[] = {A.z, A.g, A.zp, A.gp, A.p, A.lp, A.lpp, A.h0, A.eps, A.w};
  for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) free(arrays[i]);
  free(A.draw);
  joint_close(&A.J);
}

/* ------------------------------------------------------------ quadrature */

/* Grid point p (0 .. N^D - 1) as D indices, the last varying fastest. */
static void grid_index(long p, long N, long D, long *ix) {
  for (long d = D - 1; d >= 0; d--) {
    ix[d] = p % N;
    p /= N;
  }
}

/* The latent dimensions, at most 2. */
static long quadrature_dims(Session *s) {
  Joint J;
  joint_open(&J, s, 0, "--quadrature", 0);
  long D = J.D;
  joint_close(&J);
  if (D > 2)
    die(2, "%s: model %s has %ld latent dimensions; --quadrature integrates over at most 2 (use --ais or --iw)",
        s->path, s->vmx->model, D);
  return D;
}

/* Per example, log of the sum over the grid of p(x, z) times the cell
 * volume h^D (N points per dimension on [-bound, bound], spacing h).  The
 * same sum over every other point (spacing 2h) shows how far the result
 * is from converged; the share of the mass on the grid's border shows
 * whether the grid is wide enough. */
static void run_quadrature(Session *s, int k, Estimate *E, double *per) {
  Joint J;
  long D = E->dims = quadrature_dims(s);
  if (!E->o.grid) E->o.grid = D == 1 ? ESTIMATE_GRID_1D : ESTIMATE_GRID_2D;
  long N = E->o.grid, P = D == 1 ? N : N * N;
  double h = 2 * ESTIMATE_BOUND / (double)(N - 1), log_cell = (double)D * log(h);
  long rows = min_long(P, E->o.batch);
  joint_open(&J, s, rows, "--quadrature", 0);
  double *z = xmalloc(sizeof(double) * (size_t)(rows * D)), *lp = xmalloc(sizeof(double) * (size_t)rows);
  long *idx = xmalloc(sizeof(long) * (size_t)rows), ix[2];
  E->grid_error = 0;
  E->edge_mass = 0;
  double t0 = now_seconds();
  for (long e = 0; e < E->n; e++) {
    bind_rows(s, J.ex, k, e, 1, rows, E->o.data_seed, idx);
    Lse all = LSE_EMPTY, coarse = LSE_EMPTY, edge = LSE_EMPTY;
    for (long p0 = 0; p0 < P; p0 += rows) {
      long cnt = min_long(rows, P - p0);
      for (long r = 0; r < cnt; r++) {
        grid_index(p0 + r, N, D, ix);
        for (long d = 0; d < D; d++) z[r * D + d] = -ESTIMATE_BOUND + (double)ix[d] * h;
      }
      joint_eval(&J, cnt, z, lp, NULL, "--quadrature");
      for (long r = 0; r < cnt; r++) {
        grid_index(p0 + r, N, D, ix);
        int even = 1, border = 0;
        for (long d = 0; d < D; d++) {
          even &= ix[d] % 2 == 0;
          border |= ix[d] == 0 || ix[d] == N - 1;
        }
        lse_add(&all, lp[r]);
        if (even) lse_add(&coarse, lp[r]);
        if (border) lse_add(&edge, lp[r]);
      }
    }
    per[e] = lse_value(&all) + log_cell;
    double rough = lse_value(&coarse) + (double)D * log(2 * h), err = fabs(per[e] - rough);
    double share = exp(lse_value(&edge) - lse_value(&all));
    if (err > E->grid_error) E->grid_error = err;
    if (share > E->edge_mass) E->edge_mass = share;
    progress("--quadrature", e + 1, E->n, t0);
  }
  free(idx);
  free(lp);
  free(z);
  joint_close(&J);
}

/* ------------------------------------------------------------ driver */

const char *estimate_name(EstimateKind kind) {
  return kind == ESTIMATE_IW ? "iw" : kind == ESTIMATE_AIS ? "ais" : "quadrature";
}

static void fill_defaults(EstimateOpts *o) {
  if (o->batch <= 0) o->batch = ESTIMATE_BATCH;
  if (o->batch > 1L << 24) die(2, "--batch: expected at most %ld rows per run, got %ld", 1L << 24, o->batch);
  if (o->kind == ESTIMATE_AIS) {
    if (!o->ais_steps) o->ais_steps = ESTIMATE_AIS_STEPS;
    if (!o->chains) o->chains = ESTIMATE_CHAINS;
    if (!o->leapfrog) o->leapfrog = ESTIMATE_LEAPFROG;
    if (!(o->step_size > 0)) o->step_size = ESTIMATE_STEP_SIZE;
    /* The temperature is the random streams' step (rng.h: below 2^32). */
    if (o->ais_steps >= 0xFFFFFFFFl) die(2, "--ais-steps: expected fewer than 2^32 temperatures");
    if (o->chains > 1L << 24) die(2, "--chains: expected at most %ld, got %ld", 1L << 24, o->chains);
  }
}

/* The mean over the examples and its standard error. */
static void summarize(const Session *s, Estimate *E, const double *per) {
  double sum = 0, sq = 0;
  for (long i = 0; i < E->n; i++) {
    if (!isfinite(per[i]))
      die(1, "model %s: the --%s estimate of example %ld is %g (every weight is zero or not a number)",
          s->vmx->model, estimate_name(E->o.kind), i, per[i]);
    sum += per[i];
  }
  E->mean = sum / (double)E->n;
  for (long i = 0; i < E->n; i++) sq += (per[i] - E->mean) * (per[i] - E->mean);
  E->stderr_ = E->n > 1 ? sqrt(sq / (double)(E->n - 1) / (double)E->n) : 0;
}

void estimate_check(Session *s, EstimateKind kind) {
  Joint J;
  switch (kind) {
  case ESTIMATE_IW: iw_graph(s); break;
  case ESTIMATE_AIS:
    joint_open(&J, s, 0, "--ais", 1);
    joint_close(&J);
    break;
  case ESTIMATE_QUADRATURE: quadrature_dims(s); break;
  }
}

void estimate_run(Session *s, int k, const EstimateOpts *o, Estimate *out) {
  memset(out, 0, sizeof *out);
  out->o = *o;
  fill_defaults(&out->o);
  out->n = o->examples;
  if (out->n < 1) die(2, "model %s: no examples to evaluate", s->vmx->model);
  double t0 = now_seconds();
  double *per = xmalloc(sizeof(double) * (size_t)out->n);
  switch (o->kind) {
  case ESTIMATE_IW: run_iw(s, k, out, per); break;
  case ESTIMATE_AIS: run_ais(s, k, out, per); break;
  case ESTIMATE_QUADRATURE: run_quadrature(s, k, out, per); break;
  }
  summarize(s, out, per);
  free(per);
  out->seconds = now_seconds() - t0;
  if (o->kind != ESTIMATE_QUADRATURE) return;
  if (out->grid_error > GRID_ERROR_WARN)
    fprintf(stderr, "vmrun: warning: model %s: the quadrature moves by %.2g nats from every other point to all %ld "
                    "points per dimension; its error may be as large: try a larger --grid\n",
            s->vmx->model, out->grid_error, out->o.grid);
  if (out->edge_mass > EDGE_MASS_WARN)
    fprintf(stderr, "vmrun: warning: model %s: %.2g of an example's probability mass lies on the border of "
                    "[-%g, %g]^%ld; the estimate misses what lies beyond\n",
            s->vmx->model, out->edge_mass, ESTIMATE_BOUND, ESTIMATE_BOUND, out->dims);
}

/* ------------------------------------------------------------ output */

void estimate_json(FILE *f, const Estimate *e) {
  const EstimateOpts *o = &e->o;
  fprintf(f, ",\"estimator\":\"%s\",\"log_likelihood\":%.9g,\"stderr\":%.9g", estimate_name(o->kind), e->mean,
          e->stderr_);
  switch (o->kind) {
  case ESTIMATE_IW: fprintf(f, ",\"k\":%ld,\"mean_logw\":%.9g", o->k, e->mean_logw); break;
  case ESTIMATE_AIS:
    fprintf(f, ",\"ais_steps\":%ld,\"chains\":%ld,\"leapfrog\":%ld,\"step_size\":%.9g,\"schedule\":\"sigmoid\","
               "\"pilots\":%d,\"dims\":%ld,\"acceptance\":%.6f",
            o->ais_steps, o->chains, o->leapfrog, o->step_size, ESTIMATE_PILOTS, e->dims, e->acceptance);
    break;
  case ESTIMATE_QUADRATURE:
    fprintf(f, ",\"grid\":%ld,\"bound\":%g,\"dims\":%ld,\"grid_error\":%.3g,\"edge_mass\":%.3g", o->grid,
            ESTIMATE_BOUND, e->dims, e->grid_error, e->edge_mass);
    break;
  }
  if (o->kind != ESTIMATE_QUADRATURE) fprintf(f, ",\"seed\":%llu", (unsigned long long)o->seed);
  fprintf(f, ",\"batch\":%ld,\"seconds\":%.3f", o->batch, e->seconds);
}

void estimate_print(FILE *f, const Estimate *e) {
  const EstimateOpts *o = &e->o;
  switch (o->kind) {
  case ESTIMATE_IW:
    fprintf(f, "  log p(x) >= %.4f (stderr %.4f)  importance-weighted bound, K = %ld, seed %llu; mean log w %.4f "
               "(%.1f s)\n",
            e->mean, e->stderr_, o->k, (unsigned long long)o->seed, e->mean_logw, e->seconds);
    break;
  case ESTIMATE_AIS:
    fprintf(f, "  log p(x) ~ %.4f (stderr %.4f)  AIS, %ld steps, %ld chains, %ld leapfrog, step size %g, seed %llu; "
               "acceptance %.2f (%.1f s)\n",
            e->mean, e->stderr_, o->ais_steps, o->chains, o->leapfrog, o->step_size, (unsigned long long)o->seed,
            e->acceptance, e->seconds);
    break;
  case ESTIMATE_QUADRATURE:
    fprintf(f, "  log p(x) = %.4f (stderr %.4f)  quadrature, %ld points per dimension on [-%g, %g]^%ld; grid "
               "error %.1e (%.1f s)\n",
            e->mean, e->stderr_, o->grid, ESTIMATE_BOUND, ESTIMATE_BOUND, e->dims, e->grid_error, e->seconds);
    break;
  }
}
