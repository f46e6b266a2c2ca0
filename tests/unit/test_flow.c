/* test_flow.c - the VLAE's MADE autoregressive flow prior (models/vlae.vm,
 * nn.made_af), through the graph the runtime runs: flow.p, which maps z to
 * eps and gives log |det d eps / dz|.
 *
 * The model is compiled with small -D sizes as vmc does, its parameters
 * drawn at random (large enough that every unit matters), and the graph run
 * in float32.  The Jacobian of eps with respect to z is taken by central
 * differences in z:
 *   - it is lower triangular with a positive diagonal: eps_i depends on
 *     z_1..z_i only (z_i through z_i sigma_i), exactly, not nearly, since
 *     a masked weight contributes an exact zero; and it is not diagonal:
 *     the masks let the earlier dimensions through;
 *   - log |det J|, from an LU factorization of the whole numerical Jacobian
 *     (not only its diagonal), agrees with the graph's logdet. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "check.h"
#include "diag.h"
#include "exec.h"
#include "graph.h"
#include "import.h"
#include "optimize.h"
#include "resolve.h"
#include "shape.h"

#define D 6     /* the latent's dimensions */
#define B 4     /* examples, each its own z */
#define H 1e-2f /* the difference step: MADE is piecewise linear, so no smaller is needed */

static const char *top(void) {
  const char *t = getenv("top_srcdir");
  if (t && *t) return t;
  t = getenv("srcdir");
  return t && *t ? t : ".";
}

/* Graph `name` of models/vlae.vm compiled with latent = D. */
static Graph *vlae_graph(Arena *a, const char *name) {
  static char stdlib_dir[4096], path[4096];
  snprintf(stdlib_dir, sizeof stdlib_dir, "%s/stdlib", top());
  setenv("VML_STDLIB", stdlib_dir, 0);
  snprintf(path, sizeof path, "%s/models/vlae.vm", top());
  Define defs[] = {{"latent", "6", 0}, {"hidden", "8", 0}, {"made", "24", 0}};
  Diag d;
  diag_init(&d, stderr);
  SearchPath sp = {{0}, NULL};
  Program *prog = imp_load(&d, a, path, &sp);
  ck_assert_ptr_nonnull(prog);
  resolve_program(&d, a, prog);
  Vec models = shape_program(&d, a, prog, defs, 3);
  ck_assert_int_eq(models.len, 1);
  check_model(&d, a, models.items[0]);
  Vec graphs = shape_lower(&d, a, prog, models.items[0]);
  ck_assert_int_eq(diag_errors(&d), 0);
  diag_free(&d);
  for (int k = 0; k < graphs.len; k++) {
    Graph *g = graphs.items[k];
    if (strcmp(g->name, name)) continue;
    optimize(g, 1 << 20);
    return g;
  }
  ck_abort_msg("vlae.vm has no graph %s", name);
  return NULL;
}

static unsigned long long state = 12345;
static float normal(void) { /* Box-Muller on a 64-bit LCG: fixed, independent of the runtime's streams */
  double u[2];
  for (int i = 0; i < 2; i++) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    u[i] = ((double)(state >> 11) + 0.5) / 9007199254740992.0;
  }
  return (float)(sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

typedef struct {
  Arena *a;
  Exec *ex;
  float *params[64];
  int nparams;
} Flow;

static void flow_open(Flow *f) {
  memset(f, 0, sizeof *f);
  f->a = arena_new();
  Graph *g = vlae_graph(f->a, "flow.p");
  f->ex = exec_new(g, B);
  ck_assert_ptr_nonnull(f->ex);
  for (int i = 0; i < g->nodes.len; i++) {
    const GNode *n = graph_node(g, i);
    if (n->op != OP_PARAM) continue;
    ck_assert_int_lt(f->nparams, 64);
    long long size = shape_size(n->shape);
    float *p = f->params[f->nparams++] = malloc(sizeof(float) * (size_t)size);
    for (long long k = 0; k < size; k++) p[k] = 0.5f * normal();
    ck_assert_int_ge(exec_bind_param(f->ex, n->s, p), 1);
  }
  ck_assert_int_gt(f->nparams, 0);
}

static void flow_close(Flow *f) {
  exec_free(f->ex);
  for (int i = 0; i < f->nparams; i++) free(f->params[i]);
  arena_free(f->a);
}

/* eps and logdet of the B examples z[B][D]. */
static void flow_run(Flow *f, const float *z, float *eps, float *logdet) {
  ExecError err;
  ck_assert_int_ge(exec_bind_input(f->ex, "z", z), 1);
  ck_assert_msg(exec_run(f->ex, B, 1, 0, &err) == 0, "%s", err.msg);
  memcpy(eps, exec_output(f->ex, "eps"), sizeof(float) * B * D);
  if (logdet) memcpy(logdet, exec_output(f->ex, "logdet"), sizeof(float) * B);
}

/* J[b][i][j] = d eps_i / d z_j of example b, by central differences. */
static void jacobian(Flow *f, const float *z, double J[B][D][D]) {
  float zp[B * D], zm[B * D], ep[B * D], em[B * D];
  for (int j = 0; j < D; j++) {
    memcpy(zp, z, sizeof zp);
    memcpy(zm, z, sizeof zm);
    for (int b = 0; b < B; b++) zp[b * D + j] += H, zm[b * D + j] -= H;
    flow_run(f, zp, ep, NULL);
    flow_run(f, zm, em, NULL);
    for (int b = 0; b < B; b++)
      for (int i = 0; i < D; i++) J[b][i][j] = ((double)ep[b * D + i] - em[b * D + i]) / (2.0 * H);
  }
}

/* log |det A| by LU with partial pivoting (A is overwritten). */
static double log_abs_det(double A[D][D]) {
  double s = 0;
  for (int c = 0; c < D; c++) {
    int p = c;
    for (int r = c + 1; r < D; r++)
      if (fabs(A[r][c]) > fabs(A[p][c])) p = r;
    for (int k = 0; k < D && p != c; k++) {
      double t = A[c][k];
      A[c][k] = A[p][k], A[p][k] = t;
    }
    ck_assert(A[c][c] != 0);
    s += log(fabs(A[c][c]));
    for (int r = c + 1; r < D; r++) {
      double m = A[r][c] / A[c][c];
      for (int k = c; k < D; k++) A[r][k] -= m * A[c][k];
    }
  }
  return s;
}

static void draw_z(float *z) {
  for (int k = 0; k < B * D; k++) z[k] = normal();
}

START_TEST(jacobian_is_triangular) {
  Flow f;
  flow_open(&f);
  float z[B * D];
  static double J[B][D][D];
  int below = 0;
  for (int trial = 0; trial < 3; trial++) {
    draw_z(z);
    jacobian(&f, z, J);
    for (int b = 0; b < B; b++)
      for (int i = 0; i < D; i++) {
        for (int j = i + 1; j < D; j++)
          ck_assert_msg(J[b][i][j] == 0, "d eps_%d / d z_%d = %g: eps_%d depends on a later dimension", i + 1, j + 1,
                        J[b][i][j], i + 1);
        ck_assert_msg(J[b][i][i] > 1e-4, "d eps_%d / d z_%d = %g: sigma must be positive", i + 1, i + 1, J[b][i][i]);
        for (int j = 0; j < i; j++) below += fabs(J[b][i][j]) > 1e-3;
      }
  }
  /* with random weights nearly every earlier dimension reaches eps_i */
  ck_assert_msg(below > 3 * B * D * (D - 1) / 2 / 2, "only %d of the Jacobians' lower entries are nonzero", below);
  flow_close(&f);
}
END_TEST

START_TEST(logdet_matches_numerical) {
  Flow f;
  flow_open(&f);
  float z[B * D], eps[B * D], logdet[B];
  static double J[B][D][D];
  for (int trial = 0; trial < 3; trial++) {
    draw_z(z);
    flow_run(&f, z, eps, logdet);
    jacobian(&f, z, J);
    for (int b = 0; b < B; b++) {
      double numeric = log_abs_det(J[b]);
      ck_assert_msg(fabs(numeric - logdet[b]) <= 1e-3 * (1 + fabs(numeric)),
                    "example %d: logdet %g, numerical log |det J| %g", b, (double)logdet[b], numeric);
    }
  }
  flow_close(&f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("flow");
  TCase *tc = tcase_create("made_af");
  tcase_add_test(tc, jacobian_is_triangular);
  tcase_add_test(tc, logdet_matches_numerical);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
