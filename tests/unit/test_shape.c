/* test_shape.c - elaboration (compiler/shape.c) and the shape helpers of
 * compiler/value.c: parameter names and shapes by the naming rule, -D
 * overrides, variable shapes inferred through functions, shared networks,
 * and shape errors.  Each case writes its source to a temporary directory
 * and runs imp_load, resolve_program, shape_program and check_model on it
 * as vmc does; the sources define their own small networks, so no stdlib
 * is needed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "check.h"
#include "diag.h"
#include "import.h"
#include "model.h"
#include "resolve.h"
#include "shape.h"
#include "value.h"

/* dense and mlp as in stdlib/nn.vm, so the names match the models'. */
#define NETS                                                                \
  "fn dense(x: [n], out) {\n"                                               \
  "  param W : [n, out] init glorot\n"                                      \
  "  param b : [out] init zeros\n"                                          \
  "  return x @ W + b\n"                                                    \
  "}\n"                                                                     \
  "fn mlp(x, widths, act = relu) {\n"                                       \
  "  y = x\n"                                                               \
  "  for i in range(len(widths)) {\n"                                       \
  "    y = dense(y, widths[i])\n"                                           \
  "    if i < len(widths) - 1 { y = act(y) }\n"                             \
  "  }\n"                                                                   \
  "  return y\n"                                                            \
  "}\n"

#define VAE                                                                 \
  NETS                                                                      \
  "model vae {\n"                                                           \
  "  hyper latent = 20, hidden = 500\n"                                     \
  "  data x : bit[784] from files(\"binarized-mnist\")\n"                   \
  "  encoder q(z | x) {\n"                                                  \
  "    h = mlp(x, [hidden, hidden])\n"                                      \
  "    z ~ Normal(dense(h, latent), softplus(dense(h, latent)))\n"          \
  "  }\n"                                                                   \
  "  prior p(z) = Normal(0, 1)\n"                                           \
  "  decoder p(x | z) {\n"                                                  \
  "    x ~ Bernoulli(logits = mlp(z, [hidden, hidden, 784]))\n"             \
  "  }\n"                                                                   \
  "  loss elbo = E[log p(x | z)] - KL(q(z | x) || p(z))\n"                  \
  "  train { maximize elbo with adam(lr = 1e-3) over q, p; batch 128; epochs 1 }\n" \
  "}\n"

typedef struct {
  Diag d;
  Arena *a;
  FILE *out;
  char *msgs;
  size_t msgs_len;
  char dir[64];
  char path[96];
  Vec models;
} Elab;

static Elab *elaborate_with(const char *src, Define *defs, int ndefs) {
  Elab *e = calloc(1, sizeof *e);
  ck_assert_ptr_nonnull(e);
  strcpy(e->dir, "/tmp/vml-test-shape.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(e->dir));
  snprintf(e->path, sizeof e->path, "%s/t.vm", e->dir);
  FILE *f = fopen(e->path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(src, f);
  fclose(f);

  e->out = open_memstream(&e->msgs, &e->msgs_len);
  diag_init(&e->d, e->out);
  e->a = arena_new();
  SearchPath sp = {{0}, NULL};
  Program *prog = imp_load(&e->d, e->a, e->path, &sp);
  ck_assert_ptr_nonnull(prog);
  if (!diag_errors(&e->d)) resolve_program(&e->d, e->a, prog);
  if (!diag_errors(&e->d)) {
    e->models = shape_program(&e->d, e->a, prog, defs, ndefs);
    for (int i = 0; i < e->models.len; i++) check_model(&e->d, e->a, e->models.items[i]);
  }
  fflush(e->out);
  return e;
}

static Elab *elaborate(const char *src) { return elaborate_with(src, NULL, 0); }

static const char *msgs(const Elab *e) { return e->msgs ? e->msgs : ""; }

static void elab_free(Elab *e) {
  unlink(e->path);
  rmdir(e->dir);
  diag_free(&e->d);
  fclose(e->out);
  free(e->msgs);
  arena_free(e->a);
  free(e);
}

static Model *only_model(Elab *e) {
  ck_assert_msg(diag_errors(&e->d) == 0, "unexpected errors:\n%s", msgs(e));
  ck_assert_int_eq(e->models.len, 1);
  return e->models.items[0];
}

static Param *param(const Model *m, const char *name) {
  for (int i = 0; i < m->params.len; i++) {
    Param *p = m->params.items[i];
    if (strcmp(p->name, name) == 0) return p;
  }
  return NULL;
}

static void expect_param(Elab *e, const Model *m, const char *name, const char *shape,
                         const char *init) {
  Param *p = param(m, name);
  ck_assert_msg(p != NULL, "no parameter %s", name);
  ck_assert_str_eq(shape_str(e->a, p->shape), shape);
  if (init) ck_assert_str_eq(p->init, init);
}

static void expect_var(Elab *e, const Model *m, const char *name, const char *shape) {
  Var *v = model_var(m, name);
  ck_assert_msg(v != NULL, "no variable %s", name);
  ck_assert_msg(v->shape_known, "the shape of %s is not known", name);
  ck_assert_str_eq(shape_str(e->a, v->shape), shape);
}

static void expect_error(Elab *e, const char *part) {
  ck_assert_msg(diag_errors(&e->d) > 0, "no error, expected one with \"%s\"", part);
  ck_assert_msg(strstr(msgs(e), part) != NULL, "no \"%s\" in:\n%s", part, msgs(e));
}

/* ------------------------------------------------------ naming rule */

START_TEST(vae_parameter_names) {
  Elab *e = elaborate(VAE);
  Model *m = only_model(e);
  static const char *const want[][3] = {
      {"q.h.dense0.W", "[784, 500]", "glorot"}, {"q.h.dense0.b", "[500]", "zeros"},
      {"q.h.dense1.W", "[500, 500]", "glorot"}, {"q.h.dense1.b", "[500]", "zeros"},
      {"q.dense0.W", "[500, 20]", "glorot"},    {"q.dense0.b", "[20]", "zeros"},
      {"q.dense1.W", "[500, 20]", "glorot"},    {"q.dense1.b", "[20]", "zeros"},
      {"p.mlp0.dense0.W", "[20, 500]", NULL},   {"p.mlp0.dense0.b", "[500]", NULL},
      {"p.mlp0.dense1.W", "[500, 500]", NULL},  {"p.mlp0.dense1.b", "[500]", NULL},
      {"p.mlp0.dense2.W", "[500, 784]", NULL},  {"p.mlp0.dense2.b", "[784]", NULL},
  };
  int n = (int)(sizeof want / sizeof *want);
  ck_assert_int_eq(m->params.len, n);
  for (int i = 0; i < n; i++) {
    Param *p = m->params.items[i];
    ck_assert_str_eq(p->name, want[i][0]); /* in creation order */
    expect_param(e, m, want[i][0], want[i][1], want[i][2]);
  }
  expect_var(e, m, "x", "[784]");
  expect_var(e, m, "z", "[20]");
  elab_free(e);
}
END_TEST

START_TEST(roles_and_variables) {
  Elab *e = elaborate(VAE);
  Model *m = only_model(e);
  ck_assert_str_eq(m->name, "vae");
  ck_assert_int_eq(m->roles.len, 3);
  int encoders = 0, priors = 0, decoders = 0;
  for (int i = 0; i < m->roles.len; i++) {
    Role *r = m->roles.items[i];
    const char *sig = role_signature(e->a, r);
    if (!strcmp(r->kind, "encoder")) {
      encoders++;
      ck_assert_str_eq(sig, "q(z | x)");
    } else if (!strcmp(r->kind, "prior")) {
      priors++;
      ck_assert_str_eq(sig, "p(z)");
    } else if (!strcmp(r->kind, "decoder")) {
      decoders++;
      ck_assert_str_eq(sig, "p(x | z)");
    }
  }
  ck_assert_int_eq(encoders + priors + decoders, 3);
  ck_assert_int_eq(encoders, 1);
  Var *x = model_var(m, "x"), *z = model_var(m, "z");
  ck_assert(x->is_data);
  ck_assert(!z->is_data);
  ck_assert_str_eq(x->domain, "bit");
  ck_assert_ptr_nonnull(z->encoder);
  ck_assert_ptr_nonnull(x->generator);
  ck_assert_ptr_nonnull(model_loss(m, "elbo"));
  ck_assert_ptr_null(model_loss(m, "nope"));
  ck_assert_ptr_nonnull(m->train);
  elab_free(e);
}
END_TEST

START_TEST(model_level_param_and_role_body_names) {
  Elab *e = elaborate(NETS "model m {\n"
                           "  hyper K = 8, D = 4\n"
                           "  data x : real[4] from files(\"d\")\n"
                           "  param e : [K, D] init uniform(-1 / K, 1 / K)\n"
                           "  encoder q(z | x) { z = dense(x, D) }\n"
                           "  decoder p(x | z) = dense(z, 4)\n"
                           "}\n");
  Model *m = only_model(e);
  expect_param(e, m, "e", "[8, 4]", NULL);
  /* `z = dense(...)` names the call z; a whole `= expr` body adds nothing */
  expect_param(e, m, "q.z.W", "[4, 4]", "glorot");
  expect_param(e, m, "p.W", "[4, 4]", NULL);
  ck_assert_int_eq(m->params.len, 5);
  elab_free(e);
}
END_TEST

START_TEST(shared_network_has_one_set_of_weights) {
  Elab *e = elaborate("model m {\n"
                      "  data x : real[4] from files(\"d\")\n"
                      "  net g(v: [4]) {\n"
                      "    param W : [4, 4] init glorot\n"
                      "    return v @ W\n"
                      "  }\n"
                      "  encoder q(z | x) { z = g(g(x)) }\n"
                      "  decoder p(x | z) = g(z)\n"
                      "}\n");
  Model *m = only_model(e);
  ck_assert_int_eq(m->params.len, 1);
  expect_param(e, m, "g.W", "[4, 4]", NULL);
  elab_free(e);
}
END_TEST

/* ------------------------------------------------------ -D */

START_TEST(define_overrides_a_hyper) {
  Define defs[] = {{"latent", "32", 0}};
  Elab *e = elaborate_with(VAE, defs, 1);
  Model *m = only_model(e);
  ck_assert_int_eq(defs[0].used, 1);
  expect_param(e, m, "q.dense0.W", "[500, 32]", NULL);
  expect_var(e, m, "z", "[32]");
  Hyper *h = NULL;
  for (int i = 0; i < m->hypers.len; i++)
    if (!strcmp(((Hyper *)m->hypers.items[i])->name, "latent")) h = m->hypers.items[i];
  ck_assert_ptr_nonnull(h);
  ck_assert(h->overridden);
  ck_assert_int_eq(h->value->kind, V_INT);
  ck_assert_int_eq(h->value->i, 32);
  elab_free(e);
}
END_TEST

START_TEST(define_errors) {
  Define unknown[] = {{"latnet", "32", 0}};
  Elab *e = elaborate_with(VAE, unknown, 1);
  expect_error(e, "latnet");
  elab_free(e);

  Define bad[] = {{"latent", "abc", 0}};
  e = elaborate_with(VAE, bad, 1);
  expect_error(e, "abc");
  elab_free(e);

  Define kind[] = {{"latent", "true", 0}};
  e = elaborate_with(VAE, kind, 1);
  ck_assert_int_ge(diag_errors(&e->d), 1);
  elab_free(e);
}
END_TEST

/* ------------------------------------------------------ shape inference */

START_TEST(matmul_and_broadcast_shapes) {
  Elab *e = elaborate("model m {\n"
                      "  data x : real[3] from files(\"d\")\n"
                      "  param A : [3, 5]\n"
                      "  param B : [2, 3]\n"
                      "  encoder q(z | x) { z = x @ A }\n"
                      "  encoder r(w | x) { w = B @ A + x @ A }\n"
                      "}\n");
  Model *m = only_model(e);
  expect_var(e, m, "z", "[5]");
  expect_var(e, m, "w", "[2, 5]");
  elab_free(e);
}
END_TEST

START_TEST(conv_shapes) {
  /* h' = (h + 2 pad - dilation (kh - 1) - 1) / stride + 1 */
  Elab *e = elaborate("model m {\n"
                      "  data x : real[1, 28, 28] from files(\"d\")\n"
                      "  param W : [8, 1, 3, 3]\n"
                      "  param V : [8, 2, 4, 4]\n"
                      "  encoder q(z | x) { z = conv(x, W, stride = 2, pad = 1) }\n"
                      "  encoder r(u | x) { u = conv_transpose(conv(x, W, stride = 2, pad = 1), V, stride = 2, pad = 1) }\n"
                      "  encoder s(f | x) { f = flatten(conv(x, W)) }\n"
                      "}\n");
  Model *m = only_model(e);
  expect_var(e, m, "z", "[8, 14, 14]");
  expect_var(e, m, "u", "[2, 28, 28]");
  expect_var(e, m, "f", "[5408]");
  elab_free(e);
}
END_TEST

START_TEST(shape_pattern_binds_dimensions) {
  Elab *e = elaborate("fn f(x: [n, k]) {\n"
                      "  param W : [k, n] init zeros\n"
                      "  return x @ W\n"
                      "}\n"
                      "model m {\n"
                      "  data x : real[2, 3] from files(\"d\")\n"
                      "  encoder q(z | x) { z = f(x) }\n"
                      "}\n");
  Model *m = only_model(e);
  expect_param(e, m, "q.z.W", "[3, 2]", "zeros");
  expect_var(e, m, "z", "[2, 2]");
  elab_free(e);
}
END_TEST

START_TEST(shape_pattern_mismatch) {
  Elab *e = elaborate("fn f(x: [n, 3]) = x\n"
                      "model m {\n"
                      "  data x : real[4, 4] from files(\"d\")\n"
                      "  encoder q(z | x) { z = f(x) }\n"
                      "}\n");
  ck_assert_int_ge(diag_errors(&e->d), 1);
  ck_assert_ptr_nonnull(strstr(msgs(e), "t.vm:4:"));
  elab_free(e);
}
END_TEST

START_TEST(matmul_mismatch) {
  Elab *e = elaborate("model m {\n"
                      "  data x : real[3] from files(\"d\")\n"
                      "  param A : [4, 5]\n"
                      "  encoder q(z | x) { z = x @ A }\n"
                      "}\n");
  expect_error(e, "t.vm:4:");
  expect_error(e, "[3]");
  expect_error(e, "[4, 5]");
  elab_free(e);
}
END_TEST

START_TEST(decoder_shape_against_data) {
  Elab *e = elaborate(NETS "model m {\n"
                           "  data x : bit[784] from files(\"d\")\n"
                           "  encoder q(z | x) { z ~ Normal(dense(x, 2), 1) }\n"
                           "  prior p(z) = Normal(0, 1)\n"
                           "  decoder p(x | z) {\n"
                           "    x ~ Bernoulli(logits = mlp(z, [8, 500]))\n"
                           "  }\n"
                           "}\n");
  expect_error(e, "[784]");
  expect_error(e, "[500]");
  expect_error(e, "t.vm:19:5: error: "); /* at the draw, in the decoder */
  elab_free(e);
}
END_TEST

START_TEST(loop_unrolling_names) {
  Elab *e = elaborate(NETS "model m {\n"
                           "  data x : real[4] from files(\"d\")\n"
                           "  encoder q(z | x) {\n"
                           "    h = x\n"
                           "    for w in [3, 5, 7] { h = dense(h, w) }\n"
                           "    z = h\n"
                           "  }\n"
                           "}\n");
  Model *m = only_model(e);
  /* each h = dense(...) in the loop names its call h: the counter keeps them apart */
  ck_assert_int_eq(m->params.len, 6);
  expect_var(e, m, "z", "[7]");
  elab_free(e);
}
END_TEST

/* ------------------------------------------------------ value.c shapes */

START_TEST(broadcasting) {
  Arena *a = arena_new();
  struct {
    Shape x, y;
    int ok;
    const char *out;
  } cases[] = {
      {shape_of(1, (long long[]){3}), shape_of(1, (long long[]){3}), 1, "[3]"},
      {shape_of(1, (long long[]){3}), shape_scalar(), 1, "[3]"},
      {shape_of(2, (long long[]){2, 3}), shape_of(1, (long long[]){3}), 1, "[2, 3]"},
      {shape_of(2, (long long[]){2, 1}), shape_of(2, (long long[]){1, 5}), 1, "[2, 5]"},
      {shape_of(3, (long long[]){4, 1, 6}), shape_of(2, (long long[]){5, 1}), 1, "[4, 5, 6]"},
      {shape_of(1, (long long[]){3}), shape_of(1, (long long[]){4}), 0, NULL},
      {shape_of(2, (long long[]){2, 3}), shape_of(1, (long long[]){2}), 0, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    Shape out;
    int ok = shape_broadcast(cases[i].x, cases[i].y, &out);
    ck_assert_msg(ok == cases[i].ok, "case %zu: broadcast %s and %s gives %d", i,
                  shape_str(a, cases[i].x), shape_str(a, cases[i].y), ok);
    if (ok) ck_assert_str_eq(shape_str(a, out), cases[i].out);
    Shape back;
    ck_assert_int_eq(shape_broadcast(cases[i].y, cases[i].x, &back), ok); /* symmetric */
    if (ok) ck_assert(shape_eq(out, back));
  }
  arena_free(a);
}
END_TEST

START_TEST(shape_helpers) {
  Arena *a = arena_new();
  Shape s = shape_of(3, (long long[]){1, 28, 28});
  ck_assert_str_eq(shape_str(a, s), "[1, 28, 28]");
  ck_assert_str_eq(shape_str(a, shape_scalar()), "[]");
  ck_assert_int_eq(shape_size(s), 784);
  ck_assert_int_eq(shape_size(shape_scalar()), 1);
  ck_assert(shape_eq(s, shape_of(3, (long long[]){1, 28, 28})));
  ck_assert(!shape_eq(s, shape_of(2, (long long[]){28, 28})));
  ck_assert(!shape_eq(shape_of(1, (long long[]){1}), shape_scalar()));
  arena_free(a);
}
END_TEST

static Suite *shape_suite(void) {
  Suite *s = suite_create("shape");
  TCase *n = tcase_create("names");
  tcase_add_test(n, vae_parameter_names);
  tcase_add_test(n, roles_and_variables);
  tcase_add_test(n, model_level_param_and_role_body_names);
  tcase_add_test(n, shared_network_has_one_set_of_weights);
  tcase_add_test(n, loop_unrolling_names);
  suite_add_tcase(s, n);
  TCase *d = tcase_create("defines");
  tcase_add_test(d, define_overrides_a_hyper);
  tcase_add_test(d, define_errors);
  suite_add_tcase(s, d);
  TCase *i = tcase_create("inference");
  tcase_add_test(i, matmul_and_broadcast_shapes);
  tcase_add_test(i, conv_shapes);
  tcase_add_test(i, shape_pattern_binds_dimensions);
  tcase_add_test(i, shape_pattern_mismatch);
  tcase_add_test(i, matmul_mismatch);
  tcase_add_test(i, decoder_shape_against_data);
  suite_add_tcase(s, i);
  TCase *v = tcase_create("values");
  tcase_add_test(v, broadcasting);
  tcase_add_test(v, shape_helpers);
  suite_add_tcase(s, v);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(shape_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures ? 1 : 0;
}
