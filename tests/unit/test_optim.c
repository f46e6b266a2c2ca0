/* test_optim.c - runtime/optim.c: optimizer updates against hand-computed
 * values and against PyTorch (bit for bit), learning-rate schedules and their
 * parsing, gradient clipping, and parameter initialization (bounds,
 * statistics, determinism). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "rng.h"

static OptimConfig config(const char *name, const char *const *kv, size_t npairs) {
  OptimConfig c;
  char err[256] = "";
  int rc = optim_config_parse(&c, name, kv, npairs, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  return c;
}

/* ---------------------------------------------------------- hand values */

START_TEST(test_sgd_hand) {
  OptimConfig c = config("sgd", (const char *const[]){"lr", "0.1"}, 1);
  float p[2] = {1.0f, -2.0f};
  const float g[2] = {0.5f, -1.0f};
  optim_update(&c, c.lr, 1, 1.0f, p, g, NULL, NULL, 2);
  ck_assert_float_eq(p[0], 1.0f - 0.1f * 0.5f);
  ck_assert_float_eq(p[1], -2.0f + 0.1f);

  /* momentum 0.9: t=1 buf = g; t=2 buf = 0.9 buf + g */
  c = config("sgd", (const char *const[]){"lr", "0.1", "momentum", "0.9"}, 2);
  ck_assert_int_eq(optim_state_arrays(&c), 1);
  float q[1] = {1.0f}, m[1] = {0.0f};
  const float one[1] = {1.0f};
  optim_update(&c, c.lr, 1, 1.0f, q, one, m, NULL, 1);
  ck_assert_float_eq_tol(q[0], 0.9, 1e-7);
  ck_assert_float_eq(m[0], 1.0f);
  optim_update(&c, c.lr, 2, 1.0f, q, one, m, NULL, 1);
  ck_assert_float_eq_tol(m[0], 1.9, 1e-7);
  ck_assert_float_eq_tol(q[0], 0.71, 1e-7);

  /* nesterov: d = g + 0.9 buf = 1.9 at t=1 */
  c = config("sgd", (const char *const[]){"lr", "0.1", "momentum", "0.9", "nesterov", "true"}, 3);
  q[0] = 1.0f;
  m[0] = 0.0f;
  optim_update(&c, c.lr, 1, 1.0f, q, one, m, NULL, 1);
  ck_assert_float_eq_tol(q[0], 0.81, 1e-7);

  /* weight decay as L2: d = g + wd p = 0 + 0.5 * 2 */
  c = config("sgd", (const char *const[]){"lr", "0.1", "weight_decay", "0.5"}, 2);
  q[0] = 2.0f;
  const float zero[1] = {0.0f};
  optim_update(&c, c.lr, 1, 1.0f, q, zero, NULL, NULL, 1);
  ck_assert_float_eq_tol(q[0], 1.9, 1e-7);
}
END_TEST

START_TEST(test_adam_hand) {
  /* step 1: m = 0.1 g, v = 0.001 g^2, m^ = g, sqrt(v^) = |g|:
   * p -= lr g / (|g| + eps) */
  OptimConfig c = config("adam", NULL, 0);
  ck_assert_int_eq(optim_state_arrays(&c), 2);
  ck_assert(c.lr == 1e-3 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8 && c.weight_decay == 0);
  float p[1] = {1.0f}, m[1] = {0}, v[1] = {0};
  const float g[1] = {0.5f};
  optim_update(&c, c.lr, 1, 1.0f, p, g, m, v, 1);
  ck_assert_float_eq_tol(m[0], 0.05, 1e-8);
  ck_assert_float_eq_tol(v[0], 0.00025, 1e-10);
  ck_assert_float_eq_tol(p[0], 1.0 - 1e-3 * 0.5 / (0.5 + 1e-8), 1e-7);
  /* step 2, same gradient: m^ = g and v^ = g^2 again */
  optim_update(&c, c.lr, 2, 1.0f, p, g, m, v, 1);
  ck_assert_float_eq_tol(m[0], 0.095, 1e-8);
  ck_assert_float_eq_tol(p[0], 0.998, 2e-7);

  /* eps outside the square root: with g = 0, v = 0, denom = eps */
  c = config("adam", (const char *const[]){"lr", "0.1", "eps", "0.5"}, 2);
  p[0] = 1.0f;
  m[0] = 0.2f; /* as if left by earlier steps */
  v[0] = 0.0f;
  const float z[1] = {0.0f};
  optim_update(&c, c.lr, 1, 1.0f, p, z, m, v, 1);
  /* m = 0.18, m^ = 1.8, p = 1 - 0.1 * 1.8 / 0.5 */
  ck_assert_float_eq_tol(p[0], 1.0 - 0.1 * 1.8 / 0.5, 1e-6);

  /* adamw: p *= 1 - lr wd first, then the Adam step (~ lr sign g) */
  c = config("adamw", (const char *const[]){"lr", "0.1"}, 1);
  ck_assert(c.weight_decay == 0.01);
  p[0] = 1.0f;
  m[0] = v[0] = 0.0f;
  optim_update(&c, c.lr, 1, 1.0f, p, g, m, v, 1);
  ck_assert_float_eq_tol(p[0], 0.999 - 0.1, 1e-6);
  /* adam with weight decay: L2 in the gradient, g' = 0 + 0.5 * 1 */
  c = config("adam", (const char *const[]){"lr", "0.1", "weight_decay", "0.5"}, 2);
  p[0] = 1.0f;
  m[0] = v[0] = 0.0f;
  optim_update(&c, c.lr, 1, 1.0f, p, z, m, v, 1);
  ck_assert_float_eq_tol(m[0], 0.05, 1e-8);
  ck_assert_float_eq_tol(p[0], 0.9, 1e-6);
}
END_TEST

START_TEST(test_config_parse) {
  char err[256];
  OptimConfig c;
  const char *kv[] = {"lr", "0.05", "momentum", "0", "nesterov", "false", "weight_decay", "0"};
  ck_assert_int_eq(optim_config_parse(&c, "sgd", kv, 4, err, sizeof err), 0);
  ck_assert(c.kind == OPTIM_SGD && c.lr == 0.05 && !c.nesterov);
  const char *kw[] = {"lr", "0.001", "beta1", "0.9", "beta2", "0.999", "eps", "1e-08", "weight_decay", "0.01"};
  ck_assert_int_eq(optim_config_parse(&c, "adamw", kw, 5, err, sizeof err), 0);
  ck_assert(c.kind == OPTIM_ADAMW && c.eps == 1e-8 && c.weight_decay == 0.01);

  ck_assert_int_eq(optim_config_parse(&c, "rmsprop", NULL, 0, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "unknown optimizer 'rmsprop'"));
  ck_assert_int_eq(optim_config_parse(&c, "adam", (const char *const[]){"momentum", "0.9"}, 1, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "unknown argument 'momentum'"));
  ck_assert_int_eq(optim_config_parse(&c, "adam", (const char *const[]){"lr", "0.1x"}, 1, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "expected a number"));
  ck_assert_int_eq(optim_config_parse(&c, "adam", (const char *const[]){"beta2", "1"}, 1, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "beta2"));
  ck_assert_int_eq(optim_config_parse(&c, "sgd", (const char *const[]){"lr", "0"}, 1, err, sizeof err), -1);
  ck_assert_ptr_nonnull(strstr(err, "lr > 0"));
  ck_assert_int_eq(optim_config_parse(&c, "sgd", (const char *const[]){"nesterov", "yes"}, 1, err, sizeof err), -1);
}
END_TEST

/* ---------------------------------------------------------- PyTorch */

/* Produced by `/usr/bin/python3 tests/python/torch_optim_reference.py` with
 * Debian bookworm python3-torch 1.13.1+dfsg-4 (torch 1.13.0a0), x86-64 with
 * AVX2/FMA; pasted unchanged.  The inputs are defined the same way below. */
static const float torch_sgd_plain[37] = {-0x1.1e147a0000000p-1f, 0x1.1f5c280000000p-1f, 0x1.007ae20000000p-1f, 0x1.c333320000000p-2f, 0x1.7e147a0000000p-2f, 0x1.4051ec0000000p-2f, 0x1.028f5c0000000p-2f, 0x1.7ae1480000000p-3f, 0x1.feb8520000000p-4f, 0x1.07ae140000000p-4f, -0x1.9999980000000p-9f, -0x1.03d70a0000000p-4f, -0x1.fae14a0000000p-4f, -0x1.87ae140000000p-3f, -0x1.01999a0000000p-2f, -0x1.3f5c280000000p-2f, -0x1.7d1eb80000000p-2f, -0x1.c23d700000000p-2f, -0x1.0000000000000p-1f, -0x1.1ee1460000000p-1f, 0x1.1e8f5c0000000p-1f, 0x1.ff5c280000000p-2f, 0x1.c1999a0000000p-2f, 0x1.83d70a0000000p-2f, 0x1.3eb8500000000p-2f, 0x1.00f5c20000000p-2f, 0x1.8666660000000p-3f, 0x1.f851ee0000000p-4f, 0x1.0147ae0000000p-4f, 0x1.47ae140000000p-9f, -0x1.0a3d700000000p-4f, -0x1.00a3d80000000p-3f, -0x1.7c28f60000000p-3f, -0x1.0333320000000p-2f, -0x1.40f5c20000000p-2f, -0x1.7eb8500000000p-2f, -0x1.c3d70a0000000p-2f};
static const float torch_sgd_momentum_wd[37] = {-0x1.cece500000000p-2f, 0x1.05948c0000000p-1f, 0x1.1aa4920000000p-1f, 0x1.e1d59e0000000p-2f, 0x1.8031780000000p-2f, 0x1.2cbdf40000000p-2f, 0x1.14b3660000000p-2f, 0x1.de991c0000000p-4f, 0x1.7e6ee40000000p-4f, 0x1.1377880000000p-3f, -0x1.55efcc0000000p-4f, -0x1.5adf400000000p-5f, -0x1.fb3db00000000p-4f, -0x1.c0e7260000000p-3f, -0x1.33e7160000000p-2f, -0x1.4bf1a60000000p-2f, -0x1.21d19a0000000p-2f, -0x1.0084a80000000p-1f, -0x1.d6e9480000000p-2f, -0x1.152e660000000p-1f, 0x1.1697160000000p-1f, 0x1.d9baa80000000p-2f, 0x1.c1b01c0000000p-2f, 0x1.ebd0260000000p-2f, 0x1.0c986e0000000p-2f, 0x1.36b87a0000000p-2f, 0x1.c689ec0000000p-3f, 0x1.03419a0000000p-3f, 0x1.716a540000000p-5f, 0x1.622bc60000000p-6f, -0x1.0dd4c20000000p-3f, -0x1.3de9e00000000p-3f, -0x1.d353900000000p-4f, -0x1.540c9c0000000p-2f, -0x1.29ec900000000p-2f, -0x1.7d60140000000p-2f, -0x1.df043c0000000p-2f};
static const float torch_sgd_nesterov[37] = {-0x1.fb3fe40000000p-2f, 0x1.11a0260000000p-1f, 0x1.0f0ec00000000p-1f, 0x1.e058100000000p-2f, 0x1.777ae20000000p-2f, 0x1.39b5740000000p-2f, 0x1.16c3ca0000000p-2f, 0x1.2625ae0000000p-3f, 0x1.c084b60000000p-4f, 0x1.abf9700000000p-4f, -0x1.b40b780000000p-5f, -0x1.dd22000000000p-5f, -0x1.e5a6b60000000p-4f, -0x1.c48dba0000000p-3f, -0x1.200c4a0000000p-2f, -0x1.42fdf40000000p-2f, -0x1.4820c60000000p-2f, -0x1.e9a0900000000p-2f, -0x1.eec3620000000p-2f, -0x1.1644660000000p-1f, 0x1.154d020000000p-1f, 0x1.ecd4940000000p-2f, 0x1.c9e2ec0000000p-2f, 0x1.c4c01c0000000p-2f, 0x1.2340500000000p-2f, 0x1.1e1d7e0000000p-2f, 0x1.c0b0220000000p-3f, 0x1.ddeb820000000p-4f, 0x1.cdaba00000000p-5f, 0x1.6c3ca00000000p-6f, -0x1.b3b4a20000000p-4f, -0x1.1fbda40000000p-3f, -0x1.2a03460000000p-3f, -0x1.36816e0000000p-2f, -0x1.3ba4420000000p-2f, -0x1.7969ae0000000p-2f, -0x1.e246dc0000000p-2f};
static const float torch_adam[37] = {-0x1.1ec7160000000p-1f, 0x1.1ef6fe0000000p-1f, 0x1.00f1d40000000p-1f, 0x1.bfe4780000000p-2f, 0x1.80f4f00000000p-2f, 0x1.3f21080000000p-2f, 0x1.0101420000000p-2f, 0x1.7ca5fc0000000p-3f, 0x1.f889760000000p-4f, 0x1.0875340000000p-4f, -0x1.3250c00000000p-9f, -0x1.f580320000000p-5f, -0x1.012fa00000000p-3f, -0x1.7faa8a0000000p-3f, -0x1.016d540000000p-2f, -0x1.409b680000000p-2f, -0x1.7db39c0000000p-2f, -0x1.c23efe0000000p-2f, -0x1.fe60b80000000p-2f, -0x1.202aea0000000p-1f, 0x1.2047ec0000000p-1f, 0x1.fed87a0000000p-2f, 0x1.c0b0000000000p-2f, 0x1.8271d00000000p-2f, 0x1.3dedfc0000000p-2f, 0x1.01e3a60000000p-2f, 0x1.7fc8ee0000000p-3f, 0x1.01e9e20000000p-3f, 0x1.f908420000000p-5f, 0x1.01420e0000000p-10f, -0x1.06b4060000000p-4f, -0x1.03bb460000000p-3f, -0x1.7bc5680000000p-3f, -0x1.0264a00000000p-2f, -0x1.3eb0080000000p-2f, -0x1.8097ce0000000p-2f, -0x1.bfd5460000000p-2f};
static const float torch_adam_wd[37] = {-0x1.12ddb00000000p-1f, 0x1.14311e0000000p-1f, 0x1.072a680000000p-1f, 0x1.bbaf020000000p-2f, 0x1.84be600000000p-2f, 0x1.3484140000000p-2f, 0x1.076f760000000p-2f, 0x1.5beb0e0000000p-3f, 0x1.b225a00000000p-4f, 0x1.5296560000000p-4f, -0x1.7e394a0000000p-6f, -0x1.9271a40000000p-5f, -0x1.09a9300000000p-3f, -0x1.781d680000000p-3f, -0x1.0c0ab80000000p-2f, -0x1.3928020000000p-2f, -0x1.675cd80000000p-2f, -0x1.d3df520000000p-2f, -0x1.ebc9b00000000p-2f, -0x1.1fbdac0000000p-1f, 0x1.1f70fc0000000p-1f, 0x1.f044000000000p-2f, 0x1.aec2200000000p-2f, 0x1.9693120000000p-2f, 0x1.2995d80000000p-2f, 0x1.10b4400000000p-2f, 0x1.7b3fce0000000p-3f, 0x1.0fe4020000000p-3f, 0x1.b6365c0000000p-5f, 0x1.4029bc0000000p-7f, -0x1.40e2280000000p-4f, -0x1.236b9e0000000p-3f, -0x1.538ecc0000000p-3f, -0x1.16bb640000000p-2f, -0x1.2fdd120000000p-2f, -0x1.82d79a0000000p-2f, -0x1.b8d8780000000p-2f};
static const float torch_adam_maximize[37] = {-0x1.29bfb80000000p-1f, 0x1.295e320000000p-1f, 0x1.f358f20000000p-2f, 0x1.bce08a0000000p-2f, 0x1.7d52fc0000000p-2f, 0x1.4421020000000p-2f, 0x1.eb44da0000000p-3f, 0x1.98f0840000000p-3f, 0x1.2165520000000p-3f, 0x1.858d6a0000000p-5f, 0x1.6023920000000p-6f, -0x1.19553e0000000p-4f, -0x1.fa5a7a0000000p-4f, -0x1.7653220000000p-3f, -0x1.ec5f240000000p-3f, -0x1.3b481e0000000p-2f, -0x1.9196ae0000000p-2f, -0x1.ab82d00000000p-2f, -0x1.04d40e0000000p-1f, -0x1.2083f80000000p-1f, 0x1.20990e0000000p-1f, 0x1.037e0c0000000p-1f, 0x1.b87f180000000p-2f, 0x1.6c80900000000p-2f, 0x1.52bc620000000p-2f, 0x1.e6b1ea0000000p-3f, 0x1.79c1160000000p-3f, 0x1.f54bf00000000p-4f, 0x1.1084040000000p-4f, -0x1.4bb25c0000000p-7f, -0x1.9c3df00000000p-5f, -0x1.bd35600000000p-4f, -0x1.9e9ca60000000p-3f, -0x1.d3fb8e0000000p-3f, -0x1.46554e0000000p-2f, -0x1.7e96a00000000p-2f, -0x1.bb29900000000p-2f};
static const float torch_adamw[37] = {-0x1.13b1260000000p-1f, 0x1.1590260000000p-1f, 0x1.095e400000000p-1f, 0x1.becaae0000000p-2f, 0x1.89734c0000000p-2f, 0x1.3732400000000p-2f, 0x1.09f8820000000p-2f, 0x1.5e5f960000000p-3f, 0x1.b53a480000000p-4f, 0x1.547d5c0000000p-4f, -0x1.7ed8a80000000p-6f, -0x1.96dff60000000p-5f, -0x1.0bc7a00000000p-3f, -0x1.7c8cda0000000p-3f, -0x1.0e31060000000p-2f, -0x1.45f94c0000000p-2f, -0x1.68e74c0000000p-2f, -0x1.d652bc0000000p-2f, -0x1.efa0840000000p-2f, -0x1.2196d20000000p-1f, 0x1.22b8d00000000p-1f, 0x1.f44e000000000p-2f, 0x1.c6bd3a0000000p-2f, 0x1.9853f80000000p-2f, 0x1.2b33f40000000p-2f, 0x1.12d02a0000000p-2f, 0x1.7dbcb20000000p-3f, 0x1.130dea0000000p-3f, 0x1.ba2f520000000p-5f, 0x1.4185800000000p-7f, -0x1.42f22a0000000p-4f, -0x1.253b880000000p-3f, -0x1.559a000000000p-3f, -0x1.17d9e00000000p-2f, -0x1.32c8560000000p-2f, -0x1.85d0280000000p-2f, -0x1.be32c20000000p-2f};
static const float torch_adamw_wd[37] = {-0x1.1bb11a0000000p-1f, 0x1.1c2e680000000p-1f, 0x1.01f4620000000p-1f, 0x1.bec20a0000000p-2f, 0x1.816a800000000p-2f, 0x1.3cdad20000000p-2f, 0x1.0250160000000p-2f, 0x1.7578520000000p-3f, 0x1.e8ae8e0000000p-4f, 0x1.174d800000000p-4f, -0x1.c3543c0000000p-8f, -0x1.e26f360000000p-5f, -0x1.0236ec0000000p-3f, -0x1.7eb75a0000000p-3f, -0x1.03491a0000000p-2f, -0x1.40e0b40000000p-2f, -0x1.7860740000000p-2f, -0x1.c566060000000p-2f, -0x1.fa272e0000000p-2f, -0x1.1f92040000000p-1f, 0x1.1fdc820000000p-1f, 0x1.fb7a980000000p-2f, 0x1.c0e3ae0000000p-2f, 0x1.8606e40000000p-2f, 0x1.390d960000000p-2f, 0x1.04998a0000000p-2f, 0x1.7ee5aa0000000p-3f, 0x1.0436900000000p-3f, 0x1.ec5cce0000000p-5f, 0x1.806ec80000000p-9f, -0x1.124c380000000p-4f, -0x1.0a472a0000000p-3f, -0x1.72f7b00000000p-3f, -0x1.065c8a0000000p-2f, -0x1.3b9d1e0000000p-2f, -0x1.806ab00000000p-2f, -0x1.beaae60000000p-2f};

#define TN 37

static float ref_p0(int i) { return (float)(((i * 37) % 19 - 9) / 16.0); }
static float ref_g(int k, int i) { return (float)(((i * 13 + k * 7) % 23 - 11) / 32.0); }

static uint32_t bits(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
}

static long ulps(float a, float b) {
  int32_t ia = (int32_t)bits(a), ib = (int32_t)bits(b);
  if (ia < 0) ia = (int32_t)(0x80000000u - (uint32_t)ia);
  if (ib < 0) ib = (int32_t)(0x80000000u - (uint32_t)ib);
  return labs((long)ia - (long)ib);
}

static void run_case(const char *what, const char *name, const char *const *kv, size_t npairs, int maximize,
                     const float *expect) {
  OptimConfig c = config(name, kv, npairs);
  c.maximize = maximize;
  float p[TN], g[TN], m[TN] = {0}, v[TN] = {0};
  for (int i = 0; i < TN; i++) p[i] = ref_p0(i);
  for (int k = 0; k < 3; k++) {
    for (int i = 0; i < TN; i++) g[i] = ref_g(k, i);
    optim_update(&c, c.lr, k + 1, 1.0f, p, g, m, v, TN);
  }
  long worst = 0;
  int at = 0;
  for (int i = 0; i < TN; i++)
    if (ulps(p[i], expect[i]) > worst) worst = ulps(p[i], expect[i]), at = i;
  ck_assert_msg(worst == 0, "%s: element %d is %a, PyTorch has %a (%ld ulps)", what, at, (double)p[at],
                (double)expect[at], worst);
}

START_TEST(test_torch_reference) {
  run_case("sgd", "sgd", (const char *const[]){"lr", "0.01"}, 1, 0, torch_sgd_plain);
  run_case("sgd momentum", "sgd", (const char *const[]){"lr", "0.1", "momentum", "0.9", "weight_decay", "0.01"},
           3, 0, torch_sgd_momentum_wd);
  run_case("sgd nesterov", "sgd", (const char *const[]){"lr", "0.05", "momentum", "0.9", "nesterov", "true"}, 3,
           0, torch_sgd_nesterov);
  run_case("adam", "adam", NULL, 0, 0, torch_adam);
  run_case("adam wd", "adam", (const char *const[]){"lr", "0.01", "weight_decay", "0.1"}, 2, 0, torch_adam_wd);
  run_case("adam maximize", "adam",
           (const char *const[]){"lr", "0.01", "beta1", "0.5", "beta2", "0.99", "eps", "0.001"}, 4, 1,
           torch_adam_maximize);
  run_case("adamw", "adamw", (const char *const[]){"lr", "0.01"}, 1, 0, torch_adamw);
  run_case("adamw wd", "adamw",
           (const char *const[]){"lr", "0.003", "beta1", "0.8", "beta2", "0.95", "eps", "1e-06", "weight_decay",
                                 "0.3"},
           5, 0, torch_adamw_wd);
}
END_TEST

/* ---------------------------------------------------------- clipping */

START_TEST(test_clip) {
  const float a[2] = {3.0f, 4.0f}, b[1] = {12.0f};
  const float *gs[2] = {a, b};
  const long ns[2] = {2, 1};
  double norm = optim_global_norm(gs, ns, 2);
  ck_assert(norm == 13.0);
  ck_assert(optim_clip_scale(norm, 20.0) == 1.0f);
  ck_assert(optim_clip_scale(norm, 13.0) == 1.0f);
  ck_assert(optim_clip_scale(norm, 0.0) == 1.0f);
  float s = optim_clip_scale(norm, 6.5);
  ck_assert(s == (float)(6.5 / (13.0 + 1e-6)));

  /* the scale enters the fused update: p -= lr * g * s */
  OptimConfig c = config("sgd", (const char *const[]){"lr", "1"}, 1);
  float p[2] = {0, 0};
  optim_update(&c, 1.0, 1, s, p, a, NULL, NULL, 2);
  ck_assert_float_eq(p[0], -(3.0f * s));
  ck_assert_float_eq(p[1], -(4.0f * s));

  /* a long vector (the interleaved sums and the tail): same as a plain
   * double sum up to rounding, and the same bits every time */
  enum { L = 1001 };
  static float big[L];
  double plain = 0;
  for (int i = 0; i < L; i++) {
    big[i] = (float)sin(i * 0.37) * 3.0f;
    plain += (double)big[i] * big[i];
  }
  const float *one[1] = {big};
  const long nl[1] = {L};
  double n1 = optim_global_norm(one, nl, 1), n2 = optim_global_norm(one, nl, 1);
  ck_assert(n1 == n2);
  ck_assert_double_eq_tol(n1, sqrt(plain), 1e-9);
  ck_assert(optim_global_norm(NULL, NULL, 0) == 0.0);
}
END_TEST

/* ---------------------------------------------------------- schedules */

static LrSchedule sched(const char *text) {
  LrSchedule s;
  char err[256] = "";
  ck_assert_msg(optim_schedule_parse(&s, text, err, sizeof err) == 0, "%s: %s", text, err);
  return s;
}

static void sched_error(const char *text, const char *part) {
  LrSchedule s;
  char err[256] = "";
  ck_assert_int_eq(optim_schedule_parse(&s, text, err, sizeof err), -1);
  ck_assert_msg(strstr(err, part) != NULL, "no \"%s\" in \"%s\"", part, err);
}

START_TEST(test_schedules) {
  LrSchedule s = sched("constant()");
  ck_assert(s.kind == LR_CONSTANT);
  ck_assert(optim_lr(&s, 0.1, 500, 7, 1000) == 0.1);

  s = sched("cosine(min = 0)");
  ck_assert(s.kind == LR_COSINE && s.min == 0);
  ck_assert(optim_lr(&s, 0.1, 0, 0, 100) == 0.1);
  ck_assert_double_eq_tol(optim_lr(&s, 0.1, 50, 0, 100), 0.05, 1e-15);
  ck_assert_double_eq_tol(optim_lr(&s, 0.1, 25, 0, 100), 0.05 * (1 + sqrt(0.5)), 1e-15);
  ck_assert_double_eq_tol(optim_lr(&s, 0.1, 100, 0, 100), 0.0, 1e-18);
  ck_assert_double_eq_tol(optim_lr(&s, 0.1, 150, 0, 100), 0.0, 1e-18);
  ck_assert(optim_lr(&s, 0.1, 50, 0, 0) == 0.1); /* unknown length */
  s = sched("cosine(min = 1e-05)");
  ck_assert_double_eq_tol(optim_lr(&s, 1e-3, 1000, 0, 1000), 1e-5, 1e-18);
  ck_assert_double_eq_tol(optim_lr(&s, 1e-3, 500, 0, 1000), (1e-3 + 1e-5) / 2, 1e-15);

  s = sched("step(every = 10, gamma = 0.5)");
  ck_assert(s.kind == LR_STEP && s.every == 10 && s.gamma == 0.5);
  ck_assert(optim_lr(&s, 0.1, 0, 9, 0) == 0.1);
  ck_assert(optim_lr(&s, 0.1, 0, 10, 0) == 0.05);
  ck_assert(optim_lr(&s, 0.1, 0, 25, 0) == 0.025);
  s = sched("step(gamma=0.1,every=3)");
  ck_assert(s.every == 3 && s.gamma == 0.1);

  s = sched("exponential(gamma = 0.99)");
  ck_assert(s.kind == LR_EXPONENTIAL);
  ck_assert(optim_lr(&s, 1.0, 123, 0, 0) == 1.0);
  ck_assert_double_eq_tol(optim_lr(&s, 1.0, 0, 2, 0), 0.9801, 1e-15);
  s = sched("exponential()");
  ck_assert(s.gamma == 0.99);

  s = sched("warmup(steps = 4)");
  ck_assert(s.kind == LR_WARMUP && s.steps == 4);
  ck_assert(optim_lr(&s, 1.0, 0, 0, 0) == 0.25);
  ck_assert(optim_lr(&s, 1.0, 1, 0, 0) == 0.5);
  ck_assert(optim_lr(&s, 1.0, 3, 0, 0) == 1.0);
  ck_assert(optim_lr(&s, 1.0, 1000, 5, 0) == 1.0);
  ck_assert(sched("warmup()").steps == 1000);

  sched_error("linear(steps = 3)", "unknown schedule 'linear'");
  sched_error("cosine(min = 0", "expected name(key = value, ...)");
  sched_error("cosine(min = 0) x", "expected name(key = value, ...)");
  sched_error("cosine(max = 0)", "unexpected or repeated argument 'max'");
  sched_error("cosine(min = 0, min = 1)", "repeated argument 'min'");
  sched_error("step(gamma = 0.5)", "step needs every");
  sched_error("step(every = 2.5)", "every must be a positive integer");
  sched_error("exponential(gamma = 1.5)", "0 < gamma <= 1");
  sched_error("warmup(steps = 0)", "positive integer");
  sched_error("cosine(min = -1)", "min >= 0");
  sched_error("", "expected name");
}
END_TEST

/* ---------------------------------------------------------- init */

static void stats(const float *x, long n, double *mean, double *sd, double *lo, double *hi) {
  double s = 0, s2 = 0;
  *lo = INFINITY;
  *hi = -INFINITY;
  for (long i = 0; i < n; i++) {
    s += x[i];
    s2 += (double)x[i] * x[i];
    if (x[i] < *lo) *lo = x[i];
    if (x[i] > *hi) *hi = x[i];
  }
  *mean = s / n;
  *sd = sqrt(s2 / n - *mean * *mean);
}

static float *init(const long long *d, int rank, const char *text, const char *name, uint64_t seed) {
  long n = 1;
  for (int i = 0; i < rank; i++) n *= (long)d[i];
  float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
  ck_assert_ptr_nonnull(x);
  char err[256] = "";
  ck_assert_msg(optim_init_param(x, d, rank, text, name, seed, err, sizeof err) == 0, "%s", err);
  return x;
}

START_TEST(test_fans) {
  double fi, fo;
  optim_fans((const long long[]){784, 500}, 2, &fi, &fo);
  ck_assert(fi == 784 && fo == 500);
  optim_fans((const long long[]){32, 16, 3, 3}, 4, &fi, &fo);
  ck_assert(fi == 16 * 9 && fo == 32 * 9);
  optim_fans((const long long[]){20}, 1, &fi, &fo);
  ck_assert(fi == 20 && fo == 20);
  optim_fans(NULL, 0, &fi, &fo);
  ck_assert(fi == 1 && fo == 1);
}
END_TEST

START_TEST(test_init_glorot) {
  const long long d[2] = {784, 500};
  long n = 784 * 500;
  float *x = init(d, 2, "glorot", "q.h.dense0.W", 42);
  double mean, sd, lo, hi, a = sqrt(6.0 / (784 + 500));
  stats(x, n, &mean, &sd, &lo, &hi);
  ck_assert_msg(lo >= -a && hi <= a, "glorot outside +-%g: [%g, %g]", a, lo, hi);
  ck_assert_msg(lo < -0.999 * a && hi > 0.999 * a, "glorot does not fill +-%g: [%g, %g]", a, lo, hi);
  ck_assert_double_eq_tol(mean, 0.0, 0.01 * a);
  ck_assert_double_eq_tol(sd, a / sqrt(3.0), 0.01 * a / sqrt(3.0));

  /* determinism: same seed and name, same bits; another seed or name differs */
  float *y = init(d, 2, "glorot", "q.h.dense0.W", 42);
  ck_assert(memcmp(x, y, sizeof(float) * (size_t)n) == 0);
  free(y);
  y = init(d, 2, "glorot", "q.h.dense0.W", 43);
  ck_assert(memcmp(x, y, sizeof(float) * (size_t)n) != 0);
  free(y);
  y = init(d, 2, "glorot", "q.h.dense1.W", 42);
  ck_assert(memcmp(x, y, sizeof(float) * (size_t)n) != 0);
  free(y);
  /* the stream is the name's: a smaller parameter of the same name starts
   * with the same values (nothing else shifts them) */
  y = init((const long long[]){784, 500}, 2, "uniform(0, 1)", "q.h.dense0.W", 42);
  float u[10];
  rng_fill_uniform(u, 10, 42, optim_name_stream("q.h.dense0.W"), 0);
  ck_assert(memcmp(y, u, sizeof u) == 0);
  free(y);
  free(x);

  /* conv kernel fans */
  const long long k[4] = {32, 16, 3, 3};
  x = init(k, 4, "glorot", "c.W", 1);
  stats(x, 32 * 16 * 9, &mean, &sd, &lo, &hi);
  a = sqrt(6.0 / (16 * 9 + 32 * 9));
  ck_assert(lo >= -a && hi <= a && hi > 0.99 * a);
  free(x);
}
END_TEST

START_TEST(test_init_normal) {
  const long long d[2] = {400, 250};
  long n = 400 * 250;
  double mean, sd, lo, hi;
  float *x = init(d, 2, "normal(0.5)", "e", 7);
  stats(x, n, &mean, &sd, &lo, &hi);
  ck_assert_double_eq_tol(mean, 0.0, 0.01);
  ck_assert_double_eq_tol(sd, 0.5, 0.01);
  free(x);

  x = init((const long long[]){64, 32, 5, 5}, 4, "he", "c.W", 7);
  stats(x, 64 * 32 * 25, &mean, &sd, &lo, &hi);
  double want = sqrt(2.0 / (32 * 25));
  ck_assert_double_eq_tol(sd, want, 0.02 * want);
  ck_assert_double_eq_tol(mean, 0.0, 0.02 * want);
  free(x);

  x = init(d, 2, "uniform(-0.0078125, 0.0078125)", "e", 7);
  stats(x, n, &mean, &sd, &lo, &hi);
  ck_assert(lo >= -0.0078125 && hi < 0.0078125);
  ck_assert_double_eq_tol(sd, 0.0078125 / sqrt(3.0), 1e-4);
  free(x);

  x = init((const long long[]){5}, 1, "zeros", "b", 7);
  for (int i = 0; i < 5; i++) ck_assert(x[i] == 0.0f);
  free(x);
  x = init((const long long[]){5}, 1, "ones", "b", 7);
  for (int i = 0; i < 5; i++) ck_assert(x[i] == 1.0f);
  free(x);
  x = init((const long long[]){5}, 1, "const(-2.5)", "b", 7);
  for (int i = 0; i < 5; i++) ck_assert(x[i] == -2.5f);
  free(x);
  x = init(NULL, 0, "const(3)", "s", 7);
  ck_assert(x[0] == 3.0f);
  free(x);
}
END_TEST

START_TEST(test_init_errors) {
  float x[4];
  char err[256];
  const long long d[1] = {4};
  const char *bad[] = {"xavier", "normal()", "normal(1, 2)", "uniform(1)", "uniform(2, 1)", "const(x)",
                       "normal(-1)", "glorot()", "zeros(1)", "normal(1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    err[0] = '\0';
    ck_assert_msg(optim_init_param(x, d, 1, bad[i], "p.W", 1, err, sizeof err) == -1, "accepted %s", bad[i]);
    ck_assert_msg(strstr(err, "parameter p.W") != NULL, "%s", err);
  }
  ck_assert_int_eq(optim_init_param(x, (const long long[]){0}, 1, "zeros", "p.W", 1, err, sizeof err), -1);
}
END_TEST

static Suite *optim_suite(void) {
  Suite *s = suite_create("optim");
  TCase *t = tcase_create("optimizers");
  tcase_add_test(t, test_sgd_hand);
  tcase_add_test(t, test_adam_hand);
  tcase_add_test(t, test_config_parse);
  tcase_add_test(t, test_torch_reference);
  tcase_add_test(t, test_clip);
  suite_add_tcase(s, t);
  TCase *l = tcase_create("schedules");
  tcase_add_test(l, test_schedules);
  suite_add_tcase(s, l);
  TCase *i = tcase_create("init");
  tcase_add_test(i, test_fans);
  tcase_add_test(i, test_init_glorot);
  tcase_add_test(i, test_init_normal);
  tcase_add_test(i, test_init_errors);
  suite_add_tcase(s, i);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(optim_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
