/* rng.h - counter-based random numbers: Philox4x32-10 (Salmon, Moraes,
 * Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
 *
 * Why counter-based: a draw is a pure function of (seed, stream, index), so
 * there is no generator state to save, split or advance.  A run is
 * reproducible from --seed alone, whatever the thread count or batch split:
 *
 *   key     = the run's 64-bit seed (--seed);
 *   stream  = rng_stream(node, step): each random graph node (randn, randu,
 *             sample_*) draws from its own stream, its `i0` attribute in the
 *             .vmx, and the step counter makes every execution fresh;
 *   offset  = the element index within the node's output.
 *
 * The 128-bit Philox counter is (offset / 4 as 64 bits, stream as 64 bits);
 * each counter value yields four 32-bit words, word (offset % 4) belongs to
 * element `offset`.  So element i of a stream always gets the same value,
 * however a fill is cut into pieces.  The data pipeline uses the reserved
 * node ids RNG_NODE_* below, above any graph's i0.
 *
 * A checkpoint needs only the seed and the step count to resume the streams
 * bit-identically. */
#ifndef VML_RNG_H
#define VML_RNG_H

#include <stdint.h>

/* Reserved stream node ids for the runtime's own draws (graph i0 values are
 * small non-negative ints, far below these). */
#define RNG_NODE_SHUFFLE 0xFFFFFFF0u   /* epoch permutations, step = epoch */
#define RNG_NODE_BINARIZE 0xFFFFFFF1u  /* dynamic binarization, step = epoch */
#define RNG_NODE_SYNTH 0xFFFFFFF2u     /* synthetic data sets */

/* One Philox4x32-10 block: out = philox(ctr, key).  Exposed for the
 * known-answer tests. */
void rng_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                       uint32_t out[4]);

/* The stream of graph node `node` (its i0) at execution `step`.
 * step must be < 2^32. */
uint64_t rng_stream(uint32_t node, uint64_t step);

/* Word `offset` of stream `stream` under `seed`. */
uint32_t rng_u32_at(uint64_t seed, uint64_t stream, uint64_t offset);

/* out[i] = 32-bit word (offset + i) of the stream. */
void rng_fill_u32(uint32_t *out, long n, uint64_t seed, uint64_t stream,
                  uint64_t offset);

/* out[i] uniform in [0, 1): the 24 high bits of word (offset + i), times
 * 2^-24, so every value is exact in float and 1.0f is never produced. */
void rng_fill_uniform(float *out, long n, uint64_t seed, uint64_t stream,
                      uint64_t offset);

/* out[i] standard normal for element (offset + i).  Box-Muller on pairs:
 * elements 2j and 2j+1 are the cosine and sine halves computed from words
 * 2j and 2j+1 (in double precision), so element i depends only on
 * (seed, stream, i), not on where the fill starts or ends. */
void rng_fill_normal(float *out, long n, uint64_t seed, uint64_t stream,
                     uint64_t offset);

/* out[i] = 1 when uniform element (offset + i) < p[i], else 0. */
void rng_fill_bernoulli(float *out, const float *p, long n, uint64_t seed,
                        uint64_t stream, uint64_t offset);

/* A cursor for sequential consumers whose number of draws is not fixed in
 * advance (rejection sampling in Fisher-Yates, synthetic data): it walks
 * the words of one stream from `next`. */
typedef struct {
  uint64_t seed, stream, next;
} RngCursor;

RngCursor rng_cursor(uint64_t seed, uint64_t stream);
uint32_t rng_next_u32(RngCursor *c);
/* Uniform in [0, 1) with 53 random bits. */
double rng_next_double(RngCursor *c);
/* Standard normal (Box-Muller, one value per two words). */
double rng_next_normal(RngCursor *c);
/* Uniform integer in [0, bound), bound >= 1, exactly unbiased (Lemire's
 * multiply-and-reject). */
uint32_t rng_next_below(RngCursor *c, uint32_t bound);
/* A draw from the categorical distribution p[0..k-1] (non-negative, not
 * necessarily normalized; all zero gives k - 1). */
int rng_next_categorical(RngCursor *c, const float *p, int k);

#endif
