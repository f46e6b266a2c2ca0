/* rng.c - Philox4x32-10 and the draws built on it (see rng.h). */
#include "rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u   /* golden ratio */
#define PHILOX_W1 0xBB67AE85u   /* sqrt(3) - 1 */

static void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
  uint64_t p = (uint64_t)a * b;
  *hi = (uint32_t)(p >> 32);
  *lo = (uint32_t)p;
}

void rng_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                       uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    if (r > 0) { /* the key is bumped between rounds, not before the first */
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(PHILOX_M0, c0, &hi0, &lo0);
    mulhilo(PHILOX_M1, c2, &hi1, &lo1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

uint64_t rng_stream(uint32_t node, uint64_t step) {
  return ((uint64_t)node << 32) | (step & 0xFFFFFFFFu);
}

/* The four words of block `block` of a stream. */
static void block_at(uint64_t seed, uint64_t stream, uint64_t block,
                     uint32_t out[4]) {
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32),
                     (uint32_t)stream, (uint32_t)(stream >> 32)};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  rng_philox4x32_10(ctr, key, out);
}

uint32_t rng_u32_at(uint64_t seed, uint64_t stream, uint64_t offset) {
  uint32_t w[4];
  block_at(seed, stream, offset >> 2, w);
  return w[offset & 3];
}

void rng_fill_u32(uint32_t *out, long n, uint64_t seed, uint64_t stream,
                  uint64_t offset) {
  long i = 0;
  while (i < n) {
    uint64_t e = offset + (uint64_t)i;
    uint32_t w[4];
    block_at(seed, stream, e >> 2, w);
    for (unsigned lane = (unsigned)(e & 3); lane < 4 && i < n; lane++)
      out[i++] = w[lane];
  }
}

static float u24(uint32_t w) {
  return (float)(w >> 8) * (1.0f / 16777216.0f);
}

void rng_fill_uniform(float *out, long n, uint64_t seed, uint64_t stream,
                      uint64_t offset) {
  long i = 0;
  while (i < n) {
    uint64_t e = offset + (uint64_t)i;
    uint32_t w[4];
    block_at(seed, stream, e >> 2, w);
    for (unsigned lane = (unsigned)(e & 3); lane < 4 && i < n; lane++)
      out[i++] = u24(w[lane]);
  }
}

/* Box-Muller on two words: u1 in (0, 1] so the log is finite. */
static void box_muller(uint32_t w1, uint32_t w2, double *z0, double *z1) {
  const double two32 = 4294967296.0;
  double u1 = ((double)w1 + 1.0) / two32;
  double u2 = (double)w2 / two32;
  double r = sqrt(-2.0 * log(u1));
  double t = 6.283185307179586476925 * u2;
  *z0 = r * cos(t);
  *z1 = r * sin(t);
}

void rng_fill_normal(float *out, long n, uint64_t seed, uint64_t stream,
                     uint64_t offset) {
  long i = 0;
  while (i < n) {
    uint64_t e = offset + (uint64_t)i;
    uint32_t w[4];
    block_at(seed, stream, e >> 2, w);
    double z[4];
    box_muller(w[0], w[1], &z[0], &z[1]);
    box_muller(w[2], w[3], &z[2], &z[3]);
    for (unsigned lane = (unsigned)(e & 3); lane < 4 && i < n; lane++)
      out[i++] = (float)z[lane];
  }
}

void rng_fill_bernoulli(float *out, const float *p, long n, uint64_t seed,
                        uint64_t stream, uint64_t offset) {
  long i = 0;
  while (i < n) {
    uint64_t e = offset + (uint64_t)i;
    uint32_t w[4];
    block_at(seed, stream, e >> 2, w);
    for (unsigned lane = (unsigned)(e & 3); lane < 4 && i < n; lane++, i++)
      out[i] = u24(w[lane]) < p[i] ? 1.0f : 0.0f;
  }
}

RngCursor rng_cursor(uint64_t seed, uint64_t stream) {
  RngCursor c = {seed, stream, 0};
  return c;
}

uint32_t rng_next_u32(RngCursor *c) {
  return rng_u32_at(c->seed, c->stream, c->next++);
}

double rng_next_double(RngCursor *c) {
  uint64_t hi = rng_next_u32(c) >> 5, lo = rng_next_u32(c) >> 6;
  return (double)((hi << 26) | lo) * (1.0 / 9007199254740992.0);
}

double rng_next_normal(RngCursor *c) {
  uint32_t w1 = rng_next_u32(c), w2 = rng_next_u32(c);
  double z0, z1;
  box_muller(w1, w2, &z0, &z1);
  return z0;
}

uint32_t rng_next_below(RngCursor *c, uint32_t bound) {
  uint64_t m = (uint64_t)rng_next_u32(c) * bound;
  uint32_t low = (uint32_t)m;
  if (low < bound) {
    /* 2^32 mod bound values of the low word would bias the result. */
    uint32_t t = (uint32_t)(-bound) % bound;
    while (low < t) {
      m = (uint64_t)rng_next_u32(c) * bound;
      low = (uint32_t)m;
    }
  }
  return (uint32_t)(m >> 32);
}

int rng_next_categorical(RngCursor *c, const float *p, int k) {
  double total = 0;
  for (int i = 0; i < k; i++) total += p[i];
  double u = rng_next_double(c) * total, acc = 0;
  for (int i = 0; i < k - 1; i++) {
    acc += p[i];
    if (u < acc) return i;
  }
  return k - 1;
}
