/* data.h - data sets for the runtime: loaders (IDX, .amat, NPY, CSV),
 * transforms (byte scaling, threshold and dynamic binarization), splits,
 * seeded shuffling and the synthetic sets of LANGUAGE.md §7.2.
 *
 * A Dataset holds n examples of `dim` values each, row-major, plus
 * optional integer labels.  The values are floats (x), or, when they come
 * from bytes or are all 0 or 1, bytes (u8) read as offset + scale * byte:
 * a quarter of the memory, which for MNIST-sized sets is most of vmrun's.
 * Read them with data_at (one value) or data_gather (rows of floats).
 *
 * Every loader checks the file as it reads it: a malformed or truncated
 * file is refused with DATA_EFORMAT (DATA_EIO when it cannot be opened or
 * read) and a message naming the file, the record (example index, or line
 * and column for text formats) and what was expected.  Nothing here exits
 * or aborts on bad input.
 *
 * Files ending in .gz are read through zlib; zlib reads plain files as they
 * are, so IDX, NPY, .amat and CSV all accept either. */
#ifndef VML_DATA_H
#define VML_DATA_H

#include <stdint.h>
#include <stdio.h>

#include "rng.h"

#define DATA_MAX_RANK 8
#define DATA_MSG_LEN 512

typedef enum {
  DATA_OK = 0,
  DATA_EIO,      /* cannot open or read the file (errno's reason) */
  DATA_EFORMAT,  /* the file is not what it claims: malformed or truncated */
  DATA_ENOMEM,
  DATA_EARG      /* a bad argument: unknown split, fraction out of range... */
} DataStatus;

/* The message of the last failure: "FILE: RECORD: reason". */
typedef struct {
  char msg[DATA_MSG_LEN];
} DataErr;

typedef struct {
  long n;                     /* examples */
  long dim;                   /* values per example = product of shape */
  int rank;                   /* per-example shape, as stored in the file */
  long shape[DATA_MAX_RANK];  /* (an IDX 28x28 image: rank 2, {28, 28}) */
  float *x;                   /* n * dim floats, example i at x + i * dim;
                                 NULL when the values are held as bytes */
  unsigned char *u8;          /* else n * dim bytes, each standing for
                                 offset + scale * byte */
  float offset, scale;        /* 0 and 1 as loaded; see data_scale */
  int *labels;                /* n labels, or NULL */
  int bytes;                  /* 1: the values are raw bytes 0..255 (IDX,
                                 NPY uint8), to be scaled or thresholded;
                                 0 once transformed, or for other sources
                                 even when u8 holds them */
} Dataset;

void data_init(Dataset *ds);
void data_free(Dataset *ds);   /* and re-initialize */

/* Value i of the n * dim (example i / dim, position i % dim), whichever
 * the representation.  Inline: the checks call it once per value. */
static inline float data_at(const Dataset *ds, long i) {
  return ds->x ? ds->x[i] : ds->offset + ds->scale * (float)ds->u8[i];
}

/* A float set whose values are all exactly 0 or 1 moves to bytes (offset
 * 0, scale 1) and frees its floats; 1 when it did.  Out of memory leaves
 * it as it was: this is an economy, not a transform. */
int data_compact(Dataset *ds);

/* ---------------------------------------------------------------- loaders
 * Each fills *ds (which it first frees) or leaves it empty on failure. */

/* IDX of unsigned bytes: magic 0x0000080D with D = 1..4 dimensions
 * (0x00000803 images N x rows x cols, 0x00000801 labels N), big-endian
 * dimension sizes, then exactly N x dims bytes.  Held as bytes (u8). */
DataStatus data_load_idx(const char *path, Dataset *ds, DataErr *err);

/* Labels for ds from an IDX label file (magic 0x00000801): as many as ds
 * has examples; replaces ds->labels. */
DataStatus data_load_idx_labels(const char *path, Dataset *ds, DataErr *err);

/* Text, one example per line, values separated by spaces or tabs
 * (binarized MNIST .amat: 784 0/1 values a line).  Every line must have as
 * many values as the first; blank lines are skipped.  The text formats
 * hold their values as bytes while they are all 0 or 1, as floats once
 * one is not (bytes = 0 either way: nothing to scale). */
DataStatus data_load_amat(const char *path, Dataset *ds, DataErr *err);

/* NPY version 1.0 / 2.0 (3.0 too: only the header's encoding differs):
 * dtype float32, float64 or uint8 (little-endian or byte-order free),
 * C order, shape (N,) (dim 1), (N, D) or (N, d1, d2, ...) flattened per
 * example.  uint8 (and bool) is held as bytes, the others as floats. */
DataStatus data_load_npy(const char *path, Dataset *ds, DataErr *err);

/* CSV of numbers, one example per line, comma-separated.  A first line
 * with a field that is not a number (nor empty) is a header and skipped
 * (its column count still binds the others); every line
 * must have the same number of columns.  Errors give LINE:COLUMN. */
DataStatus data_load_csv(const char *path, Dataset *ds, DataErr *err);

/* By the name: *.amat[.gz], *.npy[.gz], *.csv[.gz], else IDX. */
DataStatus data_load(const char *path, Dataset *ds, DataErr *err);

/* Write ds as NPY 1.0, float32, shape (n, shape...) (for encodings,
 * samples, and the tests), whichever the representation. */
DataStatus data_save_npy(const char *path, const Dataset *ds, DataErr *err);

/* The same bytes to a stream opened for writing (vmrun's out_open, which
 * makes the file appear whole or not at all); the caller checks the
 * stream's errors when it closes it. */
void data_write_npy(FILE *f, const Dataset *ds);

/* The file of split `split` ("train", "valid" or "test") in `dir`, when the
 * model names none: the one regular file whose name has `split` as a
 * whole word — at the start, or after '_', '-' or '.', and followed by
 * '_', '-', '.' or the end (train-images-idx3-ubyte.gz,
 * binarized_mnist_train.amat) — and is not a label file (a name containing
 * "labels").  None, or several, is an error naming the directory.  The
 * path is written to out (DIR/NAME). */
DataStatus data_find_split(const char *dir, const char *split, char *out,
                           long outlen, DataErr *err);

/* ------------------------------------------------------------- transforms */

/* `real ... in [lo, hi]`: bytes 0..255 mapped linearly onto [lo, hi].
 * A byte set only changes its offset and scale. */
void data_scale(Dataset *ds, float lo, float hi);

/* binarize = t: 1 where the value is > t, else 0.  The set ends as bytes
 * 0/1 (offset 0, scale 1): a float set is compacted. */
void data_threshold(Dataset *ds, float t);

/* Dynamic binarization of one batch: out[i] = 1 with probability p[i]
 * (intensities in [0, 1], e.g. after data_scale(ds, 0, 1)).  So that an
 * example's binarization does not depend on which batch it lands in, the
 * runtime passes stream = rng_stream(RNG_NODE_BINARIZE, epoch) and
 * offset = example index * dim, one call per example. */
void data_binarize_dynamic(const float *p, float *out, long n, uint64_t seed,
                           uint64_t stream, uint64_t offset);

/* Binarizes the whole set once, in place, with the draws of
 * data_binarize_dynamic on `stream` (example i at offset i * dim): a fixed
 * binarization, for the splits that are evaluated.  A byte set stays bytes
 * (0/1, offset 0, scale 1); only a row of floats is used on the way. */
DataStatus data_binarize_fixed(Dataset *ds, uint64_t seed, uint64_t stream,
                               DataErr *err);

/* ----------------------------------------------------------------- splits */

/* valid = the LAST round(fraction * n) examples of train, which keeps the
 * first ones: deterministic, no shuffling.  0 < fraction < 1 and both
 * parts non-empty, else DATA_EARG. */
DataStatus data_split_fraction(Dataset *train, double fraction,
                               Dataset *valid, DataErr *err);

/* A copy of examples [first, first + count), in the same representation. */
DataStatus data_slice(const Dataset *src, long first, long count,
                      Dataset *out, DataErr *err);

/* perm = a permutation of 0..n-1 for epoch `epoch` of a run seeded `seed`:
 * Fisher-Yates with unbiased draws from the stream
 * rng_stream(RNG_NODE_SHUFFLE, epoch).  n <= 2^32. */
void data_permutation(long *perm, long n, uint64_t seed, uint64_t epoch);

/* Gather examples perm[0..count) of ds into out (count * dim floats);
 * byte sets are converted on the way (every training step: kept tight). */
void data_gather(const Dataset *ds, const long *perm, long count, float *out);

/* -------------------------------------------------------------- synthetic
 * Generated from `seed` on the stream rng_stream(RNG_NODE_SYNTH, 0); the
 * same seed gives the same set.  Labels are the generating component. */

/* four_frames: the AVB paper's 4Frames, the four 2x2 binary images with
 * exactly one pixel on, each with probability 1/4.  dim 4, shape {2, 2};
 * label = the index of the pixel on (row-major). */
DataStatus data_synth_four_frames(Dataset *ds, long n, uint64_t seed,
                                  DataErr *err);

/* nine_pixels: the 3x3 analogue (seed 001's "9 pixel" set, whose generator
 * is not in the seed): the nine 3x3 binary images with exactly one pixel
 * on, each with probability 1/9.  dim 9, shape {3, 3}. */
DataStatus data_synth_nine_pixels(Dataset *ds, long n, uint64_t seed,
                                  DataErr *err);

/* gaussian: 2-D, mean DATA_GAUSS_MEAN and covariance
 *   full: [[1, 0.8], [0.8, 1]]   (correlation 0.8, unit variances)
 *   diag: [[1, 0], [0, 0.25]]    (std 1 and 0.5, axis-aligned)
 * drawn as mean + L z with L the Cholesky factor. */
#define DATA_GAUSS_MEAN_X 0.0
#define DATA_GAUSS_MEAN_Y 0.0
#define DATA_GAUSS_RHO 0.8
#define DATA_GAUSS_DIAG_VAR_Y 0.25
DataStatus data_synth_gaussian(Dataset *ds, long n, int full, uint64_t seed,
                               DataErr *err);

/* gaussian with principal axes: mean + R(angle) diag(std) z, z standard
 * normal and R(angle) the counterclockwise rotation by `angle` degrees:
 * standard deviation std[0] along the direction at `angle` degrees from
 * the first axis, std[1] perpendicular to it; covariance
 * R diag(std[0]^2, std[1]^2) R^T.  The seed's 2-D sets (CS294-158 HW3)
 *   [1, 2] + (randn(n, 2) * [5, 1]) @ [[s, s], [-s, s]],  s = sqrt(2) / 2
 * are mean (1, 2), std (5, 1), angle 45 (the long axis at 45 degrees) and
 * mean (-1, 2), std (1, 5), angle 45 (the long axis at 135 degrees).
 * Finite mean and angle, finite std > 0, else DATA_EARG. */
DataStatus data_synth_gaussian_axes(Dataset *ds, long n, const double mean[2],
                                    const double std[2], double angle,
                                    uint64_t seed, DataErr *err);

/* mixture: k 2-D isotropic Gaussians of std `std`, centred at
 * radius * (cos 2 pi j / k, sin 2 pi j / k), j = 0..k-1, equally likely;
 * label = j.  k >= 1, radius >= 0, std >= 0. */
DataStatus data_synth_mixture(Dataset *ds, long n, int k, double radius,
                              double std, uint64_t seed, DataErr *err);

#endif
