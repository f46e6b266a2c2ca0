/* test_rng.c - runtime/rng.c: Philox4x32-10 against the published
 * known-answer vectors (Random123's kat_vectors), the stream layout, the
 * independence of a value from how a fill is split, and the moments of the
 * uniform, normal, Bernoulli and bounded-integer draws. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static void kat(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                uint32_t k0, uint32_t k1, uint32_t e0, uint32_t e1,
                uint32_t e2, uint32_t e3) {
  uint32_t ctr[4] = {c0, c1, c2, c3}, key[2] = {k0, k1}, out[4];
  rng_philox4x32_10(ctr, key, out);
  ck_assert_msg(out[0] == e0 && out[1] == e1 && out[2] == e2 && out[3] == e3,
                "philox4x32-10: got %08x %08x %08x %08x, expected "
                "%08x %08x %08x %08x",
                out[0], out[1], out[2], out[3], e0, e1, e2, e3);
}

START_TEST(test_kat_zero) {
  kat(0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8);
}
END_TEST

START_TEST(test_kat_ones) {
  kat(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
      0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd);
}
END_TEST

START_TEST(test_kat_pi) {
  kat(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
      0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);
}
END_TEST

/* The counter is (offset / 4, stream) and the key the seed, so word 0 of
 * seed 0, stream 0 is the zero KAT's first word. */
START_TEST(test_layout) {
  ck_assert_uint_eq(rng_u32_at(0, 0, 0), 0x6627e8d5u);
  ck_assert_uint_eq(rng_u32_at(0, 0, 3), 0x9b00dbd8u);
  /* offset 4 * 5 + 2: block 5, lane 2; stream and seed low word first */
  uint32_t ctr[4] = {5, 0, 0x13198a2e, 0x03707344};
  uint32_t key[2] = {0xa4093822, 0x299f31d0}, w[4];
  rng_philox4x32_10(ctr, key, w);
  uint64_t seed = ((uint64_t)0x299f31d0 << 32) | 0xa4093822u;
  uint64_t stream = ((uint64_t)0x03707344 << 32) | 0x13198a2eu;
  ck_assert_uint_eq(rng_u32_at(seed, stream, 4 * 5 + 2), w[2]);
  ck_assert_uint_eq(rng_stream(7, 5), ((uint64_t)7 << 32) | 5);
  /* different streams and seeds differ */
  ck_assert_uint_ne(rng_u32_at(1, 0, 0), rng_u32_at(2, 0, 0));
  ck_assert_uint_ne(rng_u32_at(1, rng_stream(0, 0), 0),
                    rng_u32_at(1, rng_stream(0, 1), 0));
  ck_assert_uint_ne(rng_u32_at(1, rng_stream(0, 0), 0),
                    rng_u32_at(1, rng_stream(1, 0), 0));
}
END_TEST

typedef void (*FillFn)(float *, long, uint64_t, uint64_t, uint64_t);

/* Filling [0, n) at once equals filling it in two pieces cut anywhere, and
 * a fill starting at an odd offset (mid-block, mid-pair). */
static void check_split(FillFn fill, const char *what) {
  enum { N = 103 };
  float whole[N], parts[N];
  fill(whole, N, 42, rng_stream(3, 9), 0);
  for (long cut = 0; cut <= N; cut++) {
    fill(parts, cut, 42, rng_stream(3, 9), 0);
    fill(parts + cut, N - cut, 42, rng_stream(3, 9), (uint64_t)cut);
    ck_assert_msg(memcmp(whole, parts, sizeof whole) == 0,
                  "%s: fill split at %ld differs", what, cut);
  }
  float one;
  for (long i = 0; i < N; i++) {
    fill(&one, 1, 42, rng_stream(3, 9), (uint64_t)i);
    ck_assert_msg(one == whole[i], "%s: element %ld alone differs", what, i);
  }
}

START_TEST(test_split_uniform) { check_split(rng_fill_uniform, "uniform"); }
END_TEST

START_TEST(test_split_normal) { check_split(rng_fill_normal, "normal"); }
END_TEST

START_TEST(test_uniform_moments) {
  enum { N = 200000 };
  float *u = malloc(N * sizeof *u);
  ck_assert_ptr_nonnull(u);
  rng_fill_uniform(u, N, 1234, rng_stream(0, 0), 0);
  double s = 0, s2 = 0;
  long bad = 0;   /* no ck_assert in big loops: each costs Check a write */
  for (long i = 0; i < N; i++) {
    bad += !(u[i] >= 0.0f && u[i] < 1.0f);
    s += u[i];
    s2 += (double)u[i] * u[i];
  }
  ck_assert_int_eq(bad, 0);
  double m = s / N, v = s2 / N - m * m;
  ck_assert_msg(fabs(m - 0.5) < 0.005, "uniform mean %g", m);
  ck_assert_msg(fabs(v - 1.0 / 12) < 0.002, "uniform variance %g", v);
  free(u);
}
END_TEST

START_TEST(test_normal_moments) {
  enum { N = 200000 };
  float *z = malloc(N * sizeof *z);
  ck_assert_ptr_nonnull(z);
  rng_fill_normal(z, N, 99, rng_stream(1, 0), 0);
  double s = 0, s2 = 0, s4 = 0, lag = 0;
  long bad = 0;
  for (long i = 0; i < N; i++) {
    bad += !isfinite(z[i]);
    s += z[i];
    s2 += (double)z[i] * z[i];
    s4 += (double)z[i] * z[i] * z[i] * z[i];
    if (i > 0) lag += (double)z[i] * z[i - 1];
  }
  ck_assert_int_eq(bad, 0);
  double m = s / N, v = s2 / N - m * m;
  ck_assert_msg(fabs(m) < 0.01, "normal mean %g", m);
  ck_assert_msg(fabs(v - 1) < 0.02, "normal variance %g", v);
  ck_assert_msg(fabs(s4 / N - 3) < 0.1, "normal 4th moment %g", s4 / N);
  /* the two halves of a Box-Muller pair are uncorrelated */
  ck_assert_msg(fabs(lag / N) < 0.01, "lag-1 correlation %g", lag / N);
  free(z);
}
END_TEST

START_TEST(test_bernoulli) {
  enum { N = 100000 };
  float *p = malloc(N * sizeof *p), *x = malloc(N * sizeof *x);
  ck_assert(p && x);
  for (long i = 0; i < N; i++) p[i] = 0.3f;
  rng_fill_bernoulli(x, p, N, 5, rng_stream(2, 1), 0);
  double s = 0;
  long bad = 0;
  for (long i = 0; i < N; i++) {
    bad += !(x[i] == 0.0f || x[i] == 1.0f);
    s += x[i];
  }
  ck_assert_int_eq(bad, 0);
  ck_assert_msg(fabs(s / N - 0.3) < 0.01, "bernoulli mean %g", s / N);
  for (long i = 0; i < N; i++) p[i] = (i & 1) ? 1.0f : 0.0f;
  rng_fill_bernoulli(x, p, N, 5, rng_stream(2, 1), 0);
  for (long i = 0; i < N; i++) bad += x[i] != p[i];
  ck_assert_int_eq(bad, 0);
  free(p);
  free(x);
}
END_TEST

START_TEST(test_below_and_categorical) {
  RngCursor c = rng_cursor(7, rng_stream(RNG_NODE_SHUFFLE, 0));
  long count[7] = {0}, bad = 0;
  for (int i = 0; i < 70000; i++) {
    uint32_t v = rng_next_below(&c, 7);
    if (v < 7) count[v]++;
    else bad++;
  }
  ck_assert_int_eq(bad, 0);
  for (int k = 0; k < 7; k++)
    ck_assert_msg(labs(count[k] - 10000) < 500, "value %d drawn %ld times", k,
                  count[k]);
  ck_assert_uint_eq(rng_next_below(&c, 1), 0);
  const float p[3] = {1, 0, 3};
  long cat[3] = {0};
  for (int i = 0; i < 40000; i++) cat[rng_next_categorical(&c, p, 3)]++;
  ck_assert_int_eq(cat[1], 0);
  ck_assert_msg(labs(cat[0] - 10000) < 500, "category 0 drawn %ld times",
                cat[0]);
  /* a cursor replays */
  RngCursor a = rng_cursor(3, 4), b = rng_cursor(3, 4);
  for (int i = 0; i < 10; i++) ck_assert_uint_eq(rng_next_u32(&a), rng_next_u32(&b));
  ck_assert_uint_eq(rng_cursor(3, 4).next, 0);
  RngCursor d = rng_cursor(3, 4);
  for (int i = 0; i < 1000; i++) {
    double u = rng_next_double(&d);
    bad += !(u >= 0 && u < 1);
  }
  ck_assert_int_eq(bad, 0);
}
END_TEST

static Suite *rng_suite(void) {
  Suite *s = suite_create("rng");
  TCase *tc = tcase_create("rng");
  tcase_add_test(tc, test_kat_zero);
  tcase_add_test(tc, test_kat_ones);
  tcase_add_test(tc, test_kat_pi);
  tcase_add_test(tc, test_layout);
  tcase_add_test(tc, test_split_uniform);
  tcase_add_test(tc, test_split_normal);
  tcase_add_test(tc, test_uniform_moments);
  tcase_add_test(tc, test_normal_moments);
  tcase_add_test(tc, test_bernoulli);
  tcase_add_test(tc, test_below_and_categorical);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(rng_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures ? 1 : 0;
}
