/* test_data.c - runtime/data.c: the real MNIST files (skipped with a
 * message when ../shared/data is missing next to the source tree), the
 * synthetic sets' statistics, malformed IDX / .amat / CSV / NPY files
 * written to a temporary directory (each refused with the file and the
 * record), NPY and CSV round trips, splits, shuffling and transforms,
 * and the byte representation (IDX and 0/1 sets held as bytes, read
 * through data_at and data_gather, scaled, thresholded, sliced).
 * The data directory is found from $top_srcdir (set by make check), else
 * from the current directory. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"
#include "rng.h"

/* ------------------------------------------------------------ helpers */

static char tmpdir[64];

static void make_tmpdir(void) {
  strcpy(tmpdir, "/tmp/vml-test-data.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}

/* tmpdir/name in a static buffer (one of a few, so two can be live). */
static const char *tmp(const char *name) {
  static char bufs[4][256];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
  return b;
}

static const char *write_file(const char *name, const void *data, size_t n) {
  const char *p = tmp(name);
  FILE *f = fopen(p, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
  return p;
}

static const char *write_text(const char *name, const char *text) {
  return write_file(name, text, strlen(text));
}

static const char *write_gz(const char *name, const void *data, size_t n) {
  const char *p = tmp(name);
  gzFile f = gzopen(p, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(gzwrite(f, data, (unsigned)n), (int)n);
  ck_assert_int_eq(gzclose(f), Z_OK);
  return p;
}

static long file_size(const char *path) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fclose(f);
  return n;
}

/* a and b hold the same values (whatever their representations). */
static int same_values(const Dataset *a, const Dataset *b) {
  if (a->n != b->n || a->dim != b->dim) return 0;
  for (long i = 0; i < a->n * a->dim; i++)
    if (data_at(a, i) != data_at(b, i)) return 0;
  return 1;
}

/* An IDX image file: magic 0x00000803, count x rows x cols, then `nbytes`
 * bytes of pixels i % 256 (nbytes may differ from the header's size). */
static size_t idx_images(unsigned char *buf, long count, int rows, int cols,
                         size_t nbytes) {
  unsigned char h[16] = {0, 0, 8, 3};
  uint32_t d[3] = {(uint32_t)count, (uint32_t)rows, (uint32_t)cols};
  for (int i = 0; i < 3; i++)
    for (int b = 0; b < 4; b++) h[4 + 4 * i + b] = (unsigned char)(d[i] >> (24 - 8 * b));
  memcpy(buf, h, 16);
  for (size_t i = 0; i < nbytes; i++) buf[16 + i] = (unsigned char)(i % 256);
  return 16 + nbytes;
}

/* Load `path` with `load`, expect failure `st`, and a message containing
 * every one of the NULL-terminated fragments. */
typedef DataStatus (*LoadFn)(const char *, Dataset *, DataErr *);

static void expect_error(LoadFn load, const char *path, DataStatus st, ...) {
  Dataset ds;
  data_init(&ds);
  DataErr err = {{0}};
  DataStatus got = load(path, &ds, &err);
  ck_assert_msg(got == st, "%s: status %d, expected %d (%s)", path, got, st,
                err.msg);
  ck_assert_ptr_null(ds.x);
  ck_assert_ptr_null(ds.u8);
  ck_assert_int_eq(ds.n, 0);
  ck_assert_msg(strncmp(err.msg, path, strlen(path)) == 0,
                "message does not start with the file name: %s", err.msg);
  va_list ap;
  va_start(ap, st);
  for (const char *frag; (frag = va_arg(ap, const char *)) != NULL;)
    ck_assert_msg(strstr(err.msg, frag) != NULL,
                  "message '%s' lacks '%s'", err.msg, frag);
  va_end(ap);
}

/* ../shared/data next to the source tree, or NULL (and a message). */
static const char *shared_data(const char *need) {
  static char dir[4096];
  const char *top = getenv("top_srcdir");
  snprintf(dir, sizeof dir, "%s/../shared/data", top && *top ? top : ".");
  char file[4200];
  snprintf(file, sizeof file, "%s/%s", dir, need);
  if (access(file, R_OK) != 0) {
    printf("SKIP: %s not found (the shared data directory ../shared/data "
           "relative to the source tree is missing)\n", file);
    return NULL;
  }
  return dir;
}

/* ---------------------------------------------------------- real data */

START_TEST(test_binarized_mnist) {
  const char *dir = shared_data("binarized-mnist/test-images-idx3-ubyte.gz");
  if (!dir) return;
  char path[4200];
  snprintf(path, sizeof path, "%s/binarized-mnist/test-images-idx3-ubyte.gz",
           dir);
  Dataset ds;
  data_init(&ds);
  DataErr err;
  ck_assert_msg(data_load(path, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert_int_eq(ds.n, 10000);
  ck_assert_int_eq(ds.dim, 784);
  ck_assert_int_eq(ds.rank, 2);
  ck_assert_int_eq(ds.shape[0], 28);
  ck_assert_int_eq(ds.shape[1], 28);
  ck_assert_int_eq(ds.bytes, 1);
  /* held as bytes, a quarter of the floats' memory */
  ck_assert_ptr_null(ds.x);
  ck_assert_ptr_nonnull(ds.u8);
  /* no ck_assert in the big loops: each one costs Check a write */
  double ones = 0;
  long bad = 0;
  for (long i = 0; i < ds.n * ds.dim; i++) {
    float v = data_at(&ds, i);
    bad += !(v == 0.0f || v == 1.0f);
    ones += v;
  }
  ck_assert_msg(bad == 0, "%ld values other than 0 and 1", bad);
  /* about 13% of binarized MNIST pixels are on */
  double frac = ones / (double)(ds.n * ds.dim);
  ck_assert_msg(frac > 0.08 && frac < 0.2, "fraction of ones %g", frac);

  /* the split finder picks the same file */
  char found[4200], bdir[4200];
  snprintf(bdir, sizeof bdir, "%s/binarized-mnist", dir);
  ck_assert_msg(data_find_split(bdir, "test", found, sizeof found, &err) ==
                    DATA_OK, "%s", err.msg);
  ck_assert_str_eq(found, path);
  data_free(&ds);
}
END_TEST

START_TEST(test_mnist_labels) {
  const char *dir = shared_data("mnist/t10k-labels-idx1-ubyte.gz");
  if (!dir || !shared_data("mnist/t10k-images-idx3-ubyte.gz")) return;
  char images[4200], labels[4200];
  snprintf(images, sizeof images, "%s/mnist/t10k-images-idx3-ubyte.gz", dir);
  snprintf(labels, sizeof labels, "%s/mnist/t10k-labels-idx1-ubyte.gz", dir);
  Dataset ds;
  data_init(&ds);
  DataErr err;
  ck_assert_msg(data_load_idx(images, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert_int_eq(ds.n, 10000);
  ck_assert_int_eq(ds.dim, 784);
  ck_assert_msg(data_load_idx_labels(labels, &ds, &err) == DATA_OK, "%s",
                err.msg);
  long count[10] = {0}, bad = 0;
  for (long i = 0; i < ds.n; i++) {
    if (ds.labels[i] >= 0 && ds.labels[i] <= 9) count[ds.labels[i]]++;
    else bad++;
  }
  ck_assert_int_eq(bad, 0);
  for (int d = 0; d < 10; d++) ck_assert_int_gt(count[d], 800);
  ck_assert_int_eq(ds.labels[0], 7);   /* the first test digit is a 7 */

  /* grayscale: bytes up to 255; threshold > 127 gives 0/1 */
  float mx = 0;
  for (long i = 0; i < ds.n * ds.dim; i++) mx = fmaxf(mx, data_at(&ds, i));
  ck_assert(mx == 255.0f);
  data_threshold(&ds, 127);
  ck_assert_ptr_nonnull(ds.u8);
  for (long i = 0; i < ds.n * ds.dim; i++)
    bad += !(data_at(&ds, i) == 0.0f || data_at(&ds, i) == 1.0f);
  ck_assert_int_eq(bad, 0);

  /* the labels of a set of another size are refused */
  Dataset small;
  data_init(&small);
  ck_assert_int_eq(data_synth_four_frames(&small, 10, 1, &err), DATA_OK);
  ck_assert_int_eq(data_load_idx_labels(labels, &small, &err), DATA_EFORMAT);
  ck_assert_msg(strstr(err.msg, "10000 labels (expected 10,") != NULL, "%s",
                err.msg);
  data_free(&small);

  /* an image file is not a label file, and vice versa no images */
  ck_assert_int_eq(data_load_idx_labels(images, &ds, &err), DATA_EFORMAT);
  ck_assert_msg(strstr(err.msg, "expected a label file") != NULL, "%s",
                err.msg);
  data_free(&ds);
}
END_TEST

/* ---------------------------------------------------------- synthetic */

START_TEST(test_four_frames) {
  Dataset ds;
  data_init(&ds);
  DataErr err;
  ck_assert_int_eq(data_synth_four_frames(&ds, 4000, 17, &err), DATA_OK);
  ck_assert_int_eq(ds.dim, 4);
  ck_assert_int_eq(ds.rank, 2);
  long count[4] = {0}, bad = 0;
  for (long i = 0; i < ds.n; i++) {
    int on = -1, k = 0;
    for (int j = 0; j < 4; j++) {
      float v = data_at(&ds, 4 * i + j);
      bad += !(v == 0.0f || v == 1.0f);
      if (v == 1.0f) on = j, k++;
    }
    if (k != 1 || ds.labels[i] != on) bad++;
    else count[on]++;
  }
  ck_assert_int_eq(bad, 0);
  /* binomial std sqrt(4000 * 1/4 * 3/4) = 27: allow 5 of them */
  for (int j = 0; j < 4; j++)
    ck_assert_msg(labs(count[j] - 1000) < 137, "image %d appears %ld times",
                  j, count[j]);
  /* the same seed gives the same set, another seed another */
  Dataset again;
  data_init(&again);
  ck_assert_int_eq(data_synth_four_frames(&again, 4000, 17, &err), DATA_OK);
  ck_assert(same_values(&ds, &again));
  ck_assert_int_eq(data_synth_four_frames(&again, 4000, 18, &err), DATA_OK);
  ck_assert(!same_values(&ds, &again));
  data_free(&again);
  ck_assert_int_eq(data_synth_four_frames(&ds, 0, 1, &err), DATA_EARG);
  data_free(&ds);
}
END_TEST

START_TEST(test_nine_pixels) {
  Dataset ds;
  data_init(&ds);
  DataErr err;
  ck_assert_int_eq(data_synth_nine_pixels(&ds, 9000, 3, &err), DATA_OK);
  ck_assert_int_eq(ds.dim, 9);
  ck_assert_int_eq(ds.shape[0], 3);
  ck_assert_int_eq(ds.shape[1], 3);
  long count[9] = {0}, bad = 0;
  for (long i = 0; i < ds.n; i++) {
    float s = 0;
    for (int j = 0; j < 9; j++) s += data_at(&ds, 9 * i + j);
    if (s != 1.0f || ds.labels[i] < 0 || ds.labels[i] > 8 ||
        data_at(&ds, 9 * i + ds.labels[i]) != 1.0f)
      bad++;
    else
      count[ds.labels[i]]++;
  }
  ck_assert_int_eq(bad, 0);
  for (int j = 0; j < 9; j++)
    ck_assert_msg(labs(count[j] - 1000) < 150, "image %d appears %ld times",
                  j, count[j]);
  data_free(&ds);
}
END_TEST

static void moments(const Dataset *ds, double m[2], double c[3]) {
  m[0] = m[1] = c[0] = c[1] = c[2] = 0;
  for (long i = 0; i < ds->n; i++) {
    m[0] += data_at(ds, 2 * i);
    m[1] += data_at(ds, 2 * i + 1);
  }
  m[0] /= ds->n;
  m[1] /= ds->n;
  for (long i = 0; i < ds->n; i++) {
    double a = data_at(ds, 2 * i) - m[0], b = data_at(ds, 2 * i + 1) - m[1];
    c[0] += a * a;
    c[1] += a * b;
    c[2] += b * b;
  }
  for (int k = 0; k < 3; k++) c[k] /= ds->n - 1;
}

START_TEST(test_gaussian) {
  Dataset ds;
  data_init(&ds);
  DataErr err;
  double m[2], c[3];
  ck_assert_int_eq(data_synth_gaussian(&ds, 20000, 1, 11, &err), DATA_OK);
  ck_assert_int_eq(ds.dim, 2);
  ck_assert_ptr_null(ds.labels);
  moments(&ds, m, c);
  ck_assert_msg(fabs(m[0] - DATA_GAUSS_MEAN_X) < 0.05 &&
                fabs(m[1] - DATA_GAUSS_MEAN_Y) < 0.05, "mean %g %g", m[0],
                m[1]);
  ck_assert_msg(fabs(c[0] - 1) < 0.05 && fabs(c[1] - DATA_GAUSS_RHO) < 0.05 &&
                fabs(c[2] - 1) < 0.05, "full covariance [[%g, %g], [%g, %g]]",
                c[0], c[1], c[1], c[2]);
  ck_assert_int_eq(data_synth_gaussian(&ds, 20000, 0, 11, &err), DATA_OK);
  moments(&ds, m, c);
  ck_assert_msg(fabs(c[0] - 1) < 0.05 && fabs(c[1]) < 0.03 &&
                fabs(c[2] - DATA_GAUSS_DIAG_VAR_Y) < 0.02,
                "diag covariance [[%g, %g], [%g, %g]]", c[0], c[1], c[1],
                c[2]);
  data_free(&ds);
}
END_TEST

/* The seed's two sets (CS294-158 HW3): [1, 2] + (randn * [5, 1]) @ R45 and
 * [-1, 2] + (randn * [1, 5]) @ R45, covariances R diag(std^2) R^T:
 * [[13, 12], [12, 13]] and [[13, -12], [-12, 13]]. */
START_TEST(test_gaussian_axes) {
  Dataset ds;
  data_init(&ds);
  DataErr err;
  double m[2], c[3];
  const double mean1[2] = {1, 2}, std1[2] = {5, 1};
  ck_assert_int_eq(data_synth_gaussian_axes(&ds, 100000, mean1, std1, 45, 3, &err), DATA_OK);
  ck_assert_int_eq(ds.n, 100000);
  ck_assert_int_eq(ds.dim, 2);
  ck_assert_int_eq(ds.rank, 1);
  ck_assert_int_eq(ds.shape[0], 2);
  ck_assert_ptr_nonnull(ds.x);
  ck_assert_ptr_null(ds.labels);
  moments(&ds, m, c);
  ck_assert_msg(fabs(m[0] - 1) < 0.05 && fabs(m[1] - 2) < 0.05, "mean %g %g", m[0], m[1]);
  ck_assert_msg(fabs(c[0] - 13) < 0.3 && fabs(c[1] - 12) < 0.3 && fabs(c[2] - 13) < 0.3,
                "covariance [[%g, %g], [%g, %g]], expected [[13, 12], [12, 13]]", c[0], c[1], c[1], c[2]);
  const double mean2[2] = {-1, 2}, std2[2] = {1, 5};
  ck_assert_int_eq(data_synth_gaussian_axes(&ds, 100000, mean2, std2, 45, 3, &err), DATA_OK);
  moments(&ds, m, c);
  ck_assert_msg(fabs(m[0] + 1) < 0.05 && fabs(m[1] - 2) < 0.05, "mean %g %g", m[0], m[1]);
  ck_assert_msg(fabs(c[0] - 13) < 0.3 && fabs(c[1] + 12) < 0.3 && fabs(c[2] - 13) < 0.3,
                "covariance [[%g, %g], [%g, %g]], expected [[13, -12], [-12, 13]]", c[0], c[1], c[1], c[2]);

  /* the same axes turned by 135 degrees instead: the same distribution */
  ck_assert_int_eq(data_synth_gaussian_axes(&ds, 100000, mean2, std1, 135, 3, &err), DATA_OK);
  moments(&ds, m, c);
  ck_assert_msg(fabs(c[0] - 13) < 0.3 && fabs(c[1] + 12) < 0.3 && fabs(c[2] - 13) < 0.3,
                "covariance [[%g, %g], [%g, %g]] at 135 degrees", c[0], c[1], c[1], c[2]);

  /* axis-aligned: angle 0 and -360 give the same values, 90 swaps the
   * axes exactly (x = mean - v, y = mean + u) */
  Dataset a, b;
  data_init(&a);
  data_init(&b);
  const double zero[2] = {0, 0}, std3[2] = {2, 0.5};
  ck_assert_int_eq(data_synth_gaussian_axes(&a, 1000, zero, std3, 0, 8, &err), DATA_OK);
  ck_assert_int_eq(data_synth_gaussian_axes(&b, 1000, zero, std3, -360, 8, &err), DATA_OK);
  ck_assert_mem_eq(a.x, b.x, 2000 * sizeof(float));
  ck_assert_int_eq(data_synth_gaussian_axes(&b, 1000, zero, std3, 90, 8, &err), DATA_OK);
  for (long i = 0; i < 1000; i++) {
    ck_assert(b.x[2 * i] == -a.x[2 * i + 1]);
    ck_assert(b.x[2 * i + 1] == a.x[2 * i]);
  }
  /* the same seed, the same set; another seed, another */
  ck_assert_int_eq(data_synth_gaussian_axes(&b, 1000, zero, std3, 0, 8, &err), DATA_OK);
  ck_assert_mem_eq(a.x, b.x, 2000 * sizeof(float));
  ck_assert_int_eq(data_synth_gaussian_axes(&b, 1000, zero, std3, 0, 9, &err), DATA_OK);
  ck_assert_int_ne(memcmp(a.x, b.x, 2000 * sizeof(float)), 0);

  /* bad arguments: DATA_EARG and a message naming them, nothing allocated */
  const double bad_std[3][2] = {{1, 0}, {-1, 1}, {1, INFINITY}};
  for (int k = 0; k < 3; k++) {
    err.msg[0] = 0;
    ck_assert_int_eq(data_synth_gaussian_axes(&b, 10, zero, bad_std[k], 0, 1, &err), DATA_EARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "synthetic.gaussian: mean = [0, 0], std = ["));
    ck_assert_ptr_nonnull(strstr(err.msg, "expected finite numbers and std > 0"));
  }
  const double nan_mean[2] = {NAN, 0};
  ck_assert_int_eq(data_synth_gaussian_axes(&b, 10, nan_mean, std3, 0, 1, &err), DATA_EARG);
  ck_assert_int_eq(data_synth_gaussian_axes(&b, 10, zero, std3, INFINITY, 1, &err), DATA_EARG);
  ck_assert_int_eq(data_synth_gaussian_axes(&b, 0, zero, std3, 0, 1, &err), DATA_EARG);
  data_free(&a);
  data_free(&b);
  data_free(&ds);
}
END_TEST

START_TEST(test_mixture) {
  Dataset ds;
  data_init(&ds);
  DataErr err;
  ck_assert_int_eq(data_synth_mixture(&ds, 16000, 8, 2.0, 0.1, 5, &err),
                   DATA_OK);
  double sx[8] = {0}, sy[8] = {0};
  long cnt[8] = {0}, bad = 0;
  for (long i = 0; i < ds.n; i++) {
    int j = ds.labels[i];
    if (j < 0 || j >= 8) {
      bad++;
      continue;
    }
    sx[j] += data_at(&ds, 2 * i);
    sy[j] += data_at(&ds, 2 * i + 1);
    cnt[j]++;
  }
  ck_assert_int_eq(bad, 0);
  for (int j = 0; j < 8; j++) {
    ck_assert_msg(labs(cnt[j] - 2000) < 250, "component %d: %ld", j, cnt[j]);
    double a = 6.283185307179586 * j / 8;
    ck_assert_msg(fabs(sx[j] / cnt[j] - 2 * cos(a)) < 0.02 &&
                  fabs(sy[j] / cnt[j] - 2 * sin(a)) < 0.02,
                  "component %d centred at %g %g", j, sx[j] / cnt[j],
                  sy[j] / cnt[j]);
  }
  ck_assert_int_eq(data_synth_mixture(&ds, 10, 0, 2.0, 0.1, 5, &err),
                   DATA_EARG);
  ck_assert_int_eq(data_synth_mixture(&ds, 10, 3, 2.0, -1, 5, &err),
                   DATA_EARG);
  ck_assert_msg(strstr(err.msg, "std >= 0") != NULL, "%s", err.msg);
  data_free(&ds);
}
END_TEST

/* ---------------------------------------------------------- malformed */

START_TEST(test_idx_ok_plain_and_gz) {
  make_tmpdir();
  unsigned char buf[16 + 3 * 4];
  size_t n = idx_images(buf, 3, 2, 2, 12);
  const char *plain = write_file("a-idx3-ubyte", buf, n);
  const char *gz = write_gz("a-idx3-ubyte.gz", buf, n);
  for (int k = 0; k < 2; k++) {
    Dataset ds;
    data_init(&ds);
    DataErr err;
    ck_assert_msg(data_load(k ? gz : plain, &ds, &err) == DATA_OK, "%s",
                  err.msg);
    ck_assert_int_eq(ds.n, 3);
    ck_assert_int_eq(ds.dim, 4);
    ck_assert_ptr_null(ds.x);
    for (int i = 0; i < 12; i++) ck_assert(data_at(&ds, i) == (float)i);
    data_scale(&ds, -1, 1);
    ck_assert(fabsf(data_at(&ds, 0) + 1) < 1e-6f);
    ck_assert(fabsf(data_at(&ds, 11) - (-1 + 2 * 11 / 255.0f)) < 1e-6f);
    ck_assert_int_eq(ds.bytes, 0);
    data_free(&ds);
  }
  remove_tmpdir();
}
END_TEST

START_TEST(test_idx_malformed) {
  make_tmpdir();
  unsigned char buf[256];
  size_t n = idx_images(buf, 3, 2, 2, 12);

  /* bad magic */
  unsigned char bad[256];
  memcpy(bad, buf, n);
  bad[0] = 0x1f;
  expect_error(data_load_idx, write_file("magic", bad, n), DATA_EFORMAT,
               "header", "bad magic number 0x1f000803", NULL);
  memcpy(bad, buf, n);
  bad[2] = 0x0d;
  expect_error(data_load_idx, write_file("float", bad, n), DATA_EFORMAT,
               "element type 0x0d", NULL);
  memcpy(bad, buf, n);
  bad[7] = 0;   /* count 0 */
  expect_error(data_load_idx, write_file("zero", bad, n), DATA_EFORMAT,
               "dimension 0 is 0", NULL);

  /* short header */
  expect_error(data_load_idx, write_file("short", buf, 2), DATA_EFORMAT,
               "header", "after 2 of the 4 bytes", NULL);
  expect_error(data_load_idx, write_file("dims", buf, 10), DATA_EFORMAT,
               "header", "dimension sizes", NULL);

  /* truncated data: 10 of 12 bytes, the third image is cut */
  expect_error(data_load_idx, write_file("trunc", buf, 16 + 10),
               DATA_EFORMAT, "example 2 of 3", "after 2 of its 4 bytes",
               NULL);

  /* trailing data */
  n = idx_images(buf, 3, 2, 2, 13);
  expect_error(data_load_idx, write_file("long", buf, n), DATA_EFORMAT,
               "after example 2", "unexpected data", NULL);

  /* a gzip stream cut short: the decompressor notices */
  unsigned char big[16 + 64 * 64];
  n = idx_images(big, 64, 8, 8, 64 * 64);
  for (size_t i = 16; i < n; i++) big[i] = (unsigned char)(rand() & 0xff);
  const char *gz = write_gz("big.gz", big, n);
  long size = file_size(gz);
  FILE *f = fopen(gz, "rb");
  ck_assert_ptr_nonnull(f);
  unsigned char *whole = malloc((size_t)size);
  ck_assert_uint_eq(fread(whole, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  const char *cut = write_file("cut.gz", whole, (size_t)size / 2);
  expect_error(data_load_idx, cut, DATA_EFORMAT, "of 64", "truncated", NULL);
  /* a gzip stream missing only its trailer (CRC and length) */
  const char *notrail = write_file("notrail.gz", whole, (size_t)size - 4);
  Dataset ds;
  data_init(&ds);
  DataErr err;
  ck_assert_int_ne(data_load_idx(notrail, &ds, &err), DATA_OK);
  ck_assert_msg(strncmp(err.msg, notrail, strlen(notrail)) == 0, "%s",
                err.msg);
  free(whole);

  /* a missing file */
  expect_error(data_load_idx, tmp("nonexistent"), DATA_EIO, "cannot open",
               NULL);
  remove_tmpdir();
}
END_TEST

static char *amat_lines(int nlines, int short_line) {
  char *s = malloc((size_t)nlines * 784 * 2 + 16);
  ck_assert_ptr_nonnull(s);
  char *p = s;
  for (int l = 1; l <= nlines; l++) {
    int cnt = l == short_line ? 783 : 784;
    for (int j = 0; j < cnt; j++) {
      *p++ = (j + l) % 3 == 0 ? '1' : '0';
      *p++ = j == cnt - 1 ? '\n' : ' ';
    }
  }
  *p = '\0';
  return s;
}

START_TEST(test_amat) {
  make_tmpdir();
  char *text = amat_lines(5, 0);
  Dataset ds;
  data_init(&ds);
  DataErr err;
  const char *p = write_text("binarized_mnist_valid.amat", text);
  ck_assert_msg(data_load(p, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert_int_eq(ds.n, 5);
  ck_assert_int_eq(ds.dim, 784);
  long bad = 0;
  for (int l = 1; l <= 5; l++)
    for (int j = 0; j < 784; j++)
      bad += data_at(&ds, 784 * (l - 1) + j) !=
             ((j + l) % 3 == 0 ? 1.0f : 0.0f);
  ck_assert_int_eq(bad, 0);
  /* 0/1 text is held as bytes, without a float copy */
  ck_assert_ptr_null(ds.x);
  ck_assert_ptr_nonnull(ds.u8);
  ck_assert_int_eq(ds.bytes, 0);   /* nothing to scale or threshold */
  /* gzipped, the same */
  Dataset gz;
  data_init(&gz);
  p = write_gz("b.amat.gz", text, strlen(text));
  ck_assert_msg(data_load(p, &gz, &err) == DATA_OK, "%s", err.msg);
  ck_assert(gz.n == 5 && same_values(&gz, &ds));
  /* the same gzipped and cut in the middle of its stream */
  p = tmp("b.amat.gz");
  long size = file_size(p);
  FILE *f = fopen(p, "rb");
  ck_assert_ptr_nonnull(f);
  char *whole = malloc((size_t)size);
  ck_assert_uint_eq(fread(whole, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  expect_error(data_load_amat, write_file("cut.amat.gz", whole,
                                          (size_t)size - 6),
               DATA_EFORMAT, "cut.amat.gz:", "unexpected end of file", NULL);
  free(whole);
  data_free(&gz);
  data_free(&ds);
  free(text);

  text = amat_lines(5, 3);
  expect_error(data_load_amat, write_text("short.amat", text), DATA_EFORMAT,
               "short.amat:3: expected 784 values (as line 1), found 783",
               NULL);
  free(text);
  expect_error(data_load_amat, write_text("word.amat", "0 1\n0 x1\n"),
               DATA_EFORMAT, "word.amat:2:3: expected a number, found 'x1'",
               NULL);
  expect_error(data_load_amat, write_text("empty.amat", "\n  \n"),
               DATA_EFORMAT, "no examples", NULL);
  /* windows line ends and a missing last newline are fine */
  p = write_text("crlf.amat", "0 1\r\n1 0");
  ck_assert_msg(data_load_amat(p, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert(ds.n == 2 && ds.dim == 2 && data_at(&ds, 2) == 1.0f);
  /* a value other than 0 or 1 late in the file turns the set to floats,
   * keeping those before it */
  p = write_text("late.amat", "0 1\n1 0\n1 0.5\n");
  ck_assert_msg(data_load_amat(p, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert_ptr_nonnull(ds.x);
  ck_assert_ptr_null(ds.u8);
  const float late[6] = {0, 1, 1, 0, 1, 0.5f};
  for (int i = 0; i < 6; i++) ck_assert(data_at(&ds, i) == late[i]);
  /* -0 is not a bit: a byte could not give it back */
  p = write_text("neg.amat", "0 1\n-0 1\n");
  ck_assert_msg(data_load_amat(p, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert_ptr_nonnull(ds.x);
  ck_assert(signbit(data_at(&ds, 2)));
  data_free(&ds);
  remove_tmpdir();
}
END_TEST

START_TEST(test_csv) {
  make_tmpdir();
  Dataset ds;
  data_init(&ds);
  DataErr err;
  const char *p = write_text("h.csv", "x,y,z\n1,2.5,-3\n4, 5e1 ,6\n\n");
  ck_assert_msg(data_load(p, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert_int_eq(ds.n, 2);
  ck_assert_int_eq(ds.dim, 3);
  const float want[6] = {1, 2.5f, -3, 4, 50, 6};
  for (int i = 0; i < 6; i++) ck_assert(data_at(&ds, i) == want[i]);

  /* no header: the first line is data */
  p = write_text("n.csv", "1,2\n3,4\n");
  ck_assert_msg(data_load_csv(p, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert(ds.n == 2 && data_at(&ds, 0) == 1.0f);

  /* a round trip of random values printed with %.9g */
  float vals[40];
  rng_fill_normal(vals, 40, 1, 2, 3);
  char text[2048] = "a,b,c,d\n";
  for (int i = 0; i < 10; i++)
    for (int j = 0; j < 4; j++) {
      size_t l = strlen(text);
      snprintf(text + l, sizeof text - l, "%.9g%c", vals[4 * i + j],
               j == 3 ? '\n' : ',');
    }
  p = write_text("r.csv", text);
  ck_assert_msg(data_load_csv(p, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert(ds.n == 10 && ds.dim == 4);
  ck_assert_ptr_nonnull(ds.x);
  ck_assert(memcmp(ds.x, vals, sizeof vals) == 0);
  data_free(&ds);

  expect_error(data_load_csv, write_text("bad.csv", "a,b\n1,2\n3,oops\n"),
               DATA_EFORMAT, "bad.csv:3:3: expected a number, found 'oops'",
               NULL);
  expect_error(data_load_csv, write_text("cols.csv", "1,2\n3,4,5\n"),
               DATA_EFORMAT, "cols.csv:2: expected 2 columns (as line 1), "
               "found 3", NULL);
  expect_error(data_load_csv, write_text("hcols.csv", "a,b\n1,2,3\n"),
               DATA_EFORMAT, "hcols.csv:2: expected 2 columns", NULL);
  expect_error(data_load_csv, write_text("gap.csv", "1,,2\n"), DATA_EFORMAT,
               "gap.csv:1:3: expected a number, found ''", NULL);
  expect_error(data_load_csv, write_text("nan.csv", "1,2\n1,nan\n"),
               DATA_EFORMAT, "nan.csv:2:3", NULL);
  remove_tmpdir();
}
END_TEST

/* An NPY file by hand: version 1 or 2, the given dict, then raw data. */
static const char *write_npy(const char *name, int version, const char *dict,
                             const void *data, size_t n) {
  unsigned char buf[4096];
  size_t pre = version == 1 ? 10 : 12;
  size_t dl = strlen(dict);
  size_t hl = dl + 1 + (64 - (pre + dl + 1) % 64) % 64;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)version;
  buf[7] = 0;
  buf[8] = (unsigned char)hl;
  buf[9] = (unsigned char)(hl >> 8);
  if (version != 1) buf[10] = buf[11] = 0;
  memcpy(buf + pre, dict, dl);
  memset(buf + pre + dl, ' ', hl - dl - 1);
  buf[pre + hl - 1] = '\n';
  ck_assert_uint_lt(pre + hl + n, sizeof buf);
  memcpy(buf + pre + hl, data, n);
  return write_file(name, buf, pre + hl + n);
}

START_TEST(test_npy) {
  make_tmpdir();
  Dataset ds;
  data_init(&ds);
  DataErr err;

  /* float64, 3-D: 2 examples of 2 x 3, flattened per example */
  double d[12];
  for (int i = 0; i < 12; i++) d[i] = i * 0.5 - 1;
  const char *p = write_npy("d.npy", 1, "{'descr': '<f8', 'fortran_order': "
                            "False, 'shape': (2, 2, 3), }", d, sizeof d);
  ck_assert_msg(data_load(p, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert(ds.n == 2 && ds.dim == 6 && ds.rank == 2 && ds.shape[0] == 2 &&
            ds.shape[1] == 3);
  for (int i = 0; i < 12; i++) ck_assert(data_at(&ds, i) == (float)d[i]);

  /* uint8, version 2.0, 2-D */
  unsigned char u[6] = {0, 1, 2, 253, 254, 255};
  p = write_npy("u.npy", 2, "{'descr': '|u1', 'fortran_order': False, "
                "'shape': (3, 2), }", u, sizeof u);
  ck_assert_msg(data_load_npy(p, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert(ds.n == 3 && ds.dim == 2 && ds.bytes == 1);
  ck_assert(ds.x == NULL && ds.u8 != NULL);
  for (int i = 0; i < 6; i++) ck_assert(data_at(&ds, i) == (float)u[i]);

  /* float32, 1-D: one value per example */
  float f[5] = {1.5f, -2, 3, 4, 5};
  p = write_npy("f.npy", 1, "{'descr': '<f4', 'fortran_order': False, "
                "'shape': (5,), }", f, sizeof f);
  ck_assert_msg(data_load_npy(p, &ds, &err) == DATA_OK, "%s", err.msg);
  ck_assert(ds.n == 5 && ds.dim == 1 && ds.rank == 0 &&
            data_at(&ds, 0) == 1.5f);
  data_free(&ds);

  /* round trip through data_save_npy, then gzipped */
  Dataset src, back;
  data_init(&src);
  data_init(&back);
  ck_assert_int_eq(data_synth_gaussian(&src, 100, 1, 9, &err), DATA_OK);
  p = tmp("rt.npy");
  ck_assert_msg(data_save_npy(p, &src, &err) == DATA_OK, "%s", err.msg);
  ck_assert_int_eq(file_size(p) % 16, 0);   /* header padded: 128 + 800 */
  ck_assert_msg(data_load_npy(p, &back, &err) == DATA_OK, "%s", err.msg);
  ck_assert(back.n == 100 && back.dim == 2 && back.rank == 1);
  ck_assert(same_values(&src, &back));
  data_free(&back);
  ck_assert_int_eq(data_synth_four_frames(&src, 7, 9, &err), DATA_OK);
  p = tmp("ff.npy");
  ck_assert_int_eq(data_save_npy(p, &src, &err), DATA_OK);
  ck_assert_msg(data_load_npy(p, &back, &err) == DATA_OK, "%s", err.msg);
  ck_assert(back.n == 7 && back.rank == 2 && back.shape[1] == 2);
  ck_assert(same_values(&src, &back));
  /* a byte set is written as the floats it stands for */
  ck_assert_int_eq(data_compact(&src), 1);
  data_scale(&src, -1, 1);
  p = tmp("ffb.npy");
  ck_assert_int_eq(data_save_npy(p, &src, &err), DATA_OK);
  ck_assert_msg(data_load_npy(p, &back, &err) == DATA_OK, "%s", err.msg);
  ck_assert_ptr_nonnull(back.x);
  ck_assert(same_values(&src, &back));
  data_free(&src);
  data_free(&back);

  /* malformed */
  expect_error(data_load_npy, write_text("x.npy", "PK\3\4 not numpy"),
               DATA_EFORMAT, "not an NPY file", NULL);
  expect_error(data_load_npy,
               write_npy("i.npy", 1, "{'descr': '<i8', 'fortran_order': "
                         "False, 'shape': (1,), }", d, 8),
               DATA_EFORMAT, "dtype '<i8' is not supported", NULL);
  expect_error(data_load_npy,
               write_npy("be.npy", 1, "{'descr': '>f4', 'fortran_order': "
                         "False, 'shape': (1,), }", d, 4),
               DATA_EFORMAT, "dtype '>f4'", NULL);
  expect_error(data_load_npy,
               write_npy("fo.npy", 1, "{'descr': '<f4', 'fortran_order': "
                         "True, 'shape': (2, 2), }", d, 16),
               DATA_EFORMAT, "Fortran order", NULL);
  expect_error(data_load_npy,
               write_npy("sc.npy", 1, "{'descr': '<f4', 'fortran_order': "
                         "False, 'shape': (), }", d, 4),
               DATA_EFORMAT, "scalar", NULL);
  expect_error(data_load_npy,
               write_npy("tr.npy", 1, "{'descr': '<f8', 'fortran_order': "
                         "False, 'shape': (3, 4), }", d, 12 * 8 - 8),
               DATA_EFORMAT, "example 2 of 3", "after 24 of its 32 bytes",
               NULL);
  double inf = INFINITY;
  expect_error(data_load_npy,
               write_npy("inf.npy", 1, "{'descr': '<f8', 'fortran_order': "
                         "False, 'shape': (1,), }", &inf, 8),
               DATA_EFORMAT, "example 0, value 0: not a finite number", NULL);
  remove_tmpdir();
}
END_TEST

/* ------------------------------------------- splits, shuffle, transforms */

START_TEST(test_split_fraction) {
  Dataset tr, va;
  data_init(&tr);
  data_init(&va);
  DataErr err;
  ck_assert_int_eq(data_synth_mixture(&tr, 10, 5, 1, 0.1, 2, &err), DATA_OK);
  float x[20];
  int lab[10];
  memcpy(x, tr.x, sizeof x);
  memcpy(lab, tr.labels, sizeof lab);
  ck_assert_msg(data_split_fraction(&tr, 0.2, &va, &err) == DATA_OK, "%s",
                err.msg);
  ck_assert_int_eq(tr.n, 8);
  ck_assert_int_eq(va.n, 2);
  ck_assert(memcmp(tr.x, x, 16 * sizeof(float)) == 0);
  ck_assert(memcmp(va.x, x + 16, 4 * sizeof(float)) == 0);
  ck_assert(va.labels[0] == lab[8] && va.labels[1] == lab[9]);
  ck_assert(tr.labels[7] == lab[7]);
  /* fractions that leave an empty part, or are no fraction */
  ck_assert_int_eq(data_split_fraction(&tr, 0.01, &va, &err), DATA_EARG);
  ck_assert_msg(strstr(err.msg, "leaves 0 for validation") != NULL, "%s",
                err.msg);
  ck_assert_int_eq(data_split_fraction(&tr, 1.0, &va, &err), DATA_EARG);
  ck_assert_int_eq(data_split_fraction(&tr, NAN, &va, &err), DATA_EARG);
  ck_assert_int_eq(tr.n, 8);
  data_free(&tr);
  data_free(&va);
}
END_TEST

START_TEST(test_find_split) {
  make_tmpdir();
  char out[512];
  DataErr err;
  write_text("binarized_mnist_train.amat", "0 1\n");
  write_text("binarized_mnist_valid.amat", "0 1\n");
  write_text("train-labels-idx1-ubyte", "");
  write_text("trainer.txt", "");
  ck_assert_msg(data_find_split(tmpdir, "train", out, sizeof out, &err) ==
                DATA_OK, "%s", err.msg);
  ck_assert_str_eq(out, tmp("binarized_mnist_train.amat"));
  ck_assert_int_eq(data_find_split(tmpdir, "test", out, sizeof out, &err),
                   DATA_EARG);
  ck_assert_msg(strstr(err.msg, "no test file") != NULL, "%s", err.msg);
  write_text("valid-images-idx3-ubyte.gz", "");
  ck_assert_int_eq(data_find_split(tmpdir, "valid", out, sizeof out, &err),
                   DATA_EARG);
  ck_assert_msg(strstr(err.msg, "2 files for split valid "
                       "(binarized_mnist_valid.amat, "
                       "valid-images-idx3-ubyte.gz)") != NULL, "%s", err.msg);
  ck_assert_int_eq(data_find_split(tmpdir, "dev", out, sizeof out, &err),
                   DATA_EARG);
  ck_assert_int_eq(data_find_split(tmp("nodir"), "train", out, sizeof out,
                                   &err), DATA_EIO);
  remove_tmpdir();
}
END_TEST

START_TEST(test_shuffle) {
  enum { N = 1000 };
  long a[N], b[N];
  data_permutation(a, N, 42, 0);
  data_permutation(b, N, 42, 0);
  ck_assert(memcmp(a, b, sizeof a) == 0);
  char seen[N] = {0};
  long fixed = 0, bad = 0;
  for (long i = 0; i < N; i++) {
    if (a[i] < 0 || a[i] >= N || seen[a[i]]) {
      bad++;
      continue;
    }
    seen[a[i]] = 1;
    fixed += a[i] == i;
  }
  ck_assert_int_eq(bad, 0);
  ck_assert_int_lt(fixed, 10);
  data_permutation(b, N, 42, 1);
  ck_assert(memcmp(a, b, sizeof a) != 0);
  data_permutation(b, N, 43, 0);
  ck_assert(memcmp(a, b, sizeof a) != 0);
  /* element 0 lands uniformly over 3 places across epochs */
  long where[3] = {0};
  long p[3];
  for (uint64_t e = 0; e < 3000; e++) {
    data_permutation(p, 3, 7, e);
    for (int i = 0; i < 3; i++)
      if (p[i] == 0) where[i]++;
  }
  for (int i = 0; i < 3; i++)
    ck_assert_msg(labs(where[i] - 1000) < 130, "position %d: %ld", i,
                  where[i]);
  data_permutation(p, 1, 7, 0);
  ck_assert_int_eq(p[0], 0);

  /* gather follows the permutation */
  Dataset ds;
  data_init(&ds);
  DataErr err;
  ck_assert_int_eq(data_synth_four_frames(&ds, 3, 1, &err), DATA_OK);
  long perm[3] = {2, 0, 1};
  float out[12];
  data_gather(&ds, perm, 3, out);
  ck_assert(memcmp(out, ds.x + 8, 4 * sizeof(float)) == 0);
  ck_assert(memcmp(out + 4, ds.x, 4 * sizeof(float)) == 0);
  data_free(&ds);
}
END_TEST

START_TEST(test_binarize) {
  enum { N = 20000 };
  float *p = malloc(N * sizeof *p), *x = malloc(N * sizeof *x),
        *y = malloc(N * sizeof *y);
  ck_assert(p && x && y);
  for (long i = 0; i < N; i++) p[i] = (float)(i % 5) / 4;   /* 0 .. 1 */
  uint64_t stream = rng_stream(RNG_NODE_BINARIZE, 3);
  data_binarize_dynamic(p, x, N, 8, stream, 0);
  double s[5] = {0};
  long bad = 0;
  for (long i = 0; i < N; i++) {
    bad += !(x[i] == 0.0f || x[i] == 1.0f);
    s[i % 5] += x[i];
  }
  ck_assert_int_eq(bad, 0);
  ck_assert(s[0] == 0 && s[4] == N / 5);
  for (int k = 1; k < 4; k++)
    ck_assert_msg(fabs(s[k] / (N / 5) - k / 4.0) < 0.03, "p %g: mean %g",
                  k / 4.0, s[k] / (N / 5));
  /* per example, independent of the batch: example 7 of dim 10 alone */
  data_binarize_dynamic(p + 70, y, 10, 8, stream, 70);
  ck_assert(memcmp(y, x + 70, 10 * sizeof(float)) == 0);
  /* another epoch, another draw */
  data_binarize_dynamic(p, y, N, 8, rng_stream(RNG_NODE_BINARIZE, 4), 0);
  ck_assert(memcmp(x, y, N * sizeof(float)) != 0);
  free(p);
  free(x);
  free(y);

  /* threshold and scale on a byte set */
  make_tmpdir();
  unsigned char buf[16 + 256];
  size_t n = idx_images(buf, 1, 16, 16, 256);
  Dataset ds;
  data_init(&ds);
  DataErr err;
  ck_assert_int_eq(data_load_idx(write_file("b", buf, n), &ds, &err),
                   DATA_OK);
  data_threshold(&ds, 127);
  ck_assert(data_at(&ds, 127) == 0.0f && data_at(&ds, 128) == 1.0f &&
            data_at(&ds, 255) == 1.0f);
  ck_assert_int_eq(data_load_idx(tmp("b"), &ds, &err), DATA_OK);
  data_scale(&ds, 0, 1);
  ck_assert(data_at(&ds, 0) == 0.0f && data_at(&ds, 255) == 1.0f);
  data_free(&ds);
  remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------ byte sets */

/* A byte set of n 5x5 images from an IDX file: pixel j of image i is
 * (7 * i + 3 * j) % 256, so every example differs. */
static void load_bytes(Dataset *ds, long n) {
  unsigned char *buf = malloc(16 + (size_t)n * 25);
  ck_assert_ptr_nonnull(buf);
  size_t len = idx_images(buf, n, 5, 5, 0);
  for (long i = 0; i < n; i++)
    for (int j = 0; j < 25; j++)
      buf[len++] = (unsigned char)((7 * i + 3 * j) % 256);
  DataErr err;
  ck_assert_msg(data_load_idx(write_file("bytes-idx3-ubyte", buf, len), ds,
                              &err) == DATA_OK, "%s", err.msg);
  free(buf);
}

static float pixel(long i, int j) {
  return (float)((7 * i + 3 * j) % 256);
}

/* data_gather of perm agrees with data_at, value for value. */
static void check_gather(const Dataset *ds, const long *perm, long count) {
  float *out = malloc((size_t)(count * ds->dim) * sizeof(float));
  ck_assert_ptr_nonnull(out);
  data_gather(ds, perm, count, out);
  long bad = 0;
  for (long i = 0; i < count; i++)
    for (long j = 0; j < ds->dim; j++)
      bad += out[i * ds->dim + j] != data_at(ds, perm[i] * ds->dim + j);
  ck_assert_int_eq(bad, 0);
  free(out);
}

START_TEST(test_idx_bytes) {
  make_tmpdir();
  Dataset ds;
  data_init(&ds);
  load_bytes(&ds, 40);
  /* bytes, never floats: x stays NULL */
  ck_assert_ptr_null(ds.x);
  ck_assert_ptr_nonnull(ds.u8);
  ck_assert_int_eq(ds.bytes, 1);
  ck_assert(ds.offset == 0.0f && ds.scale == 1.0f);
  ck_assert(ds.n == 40 && ds.dim == 25);
  long bad = 0;
  for (long i = 0; i < 40; i++)
    for (int j = 0; j < 25; j++) bad += data_at(&ds, i * 25 + j) != pixel(i, j);
  ck_assert_int_eq(bad, 0);
  /* gather, the plain conversion: dim 25 has a block of 16 and a rest */
  long perm[40];
  data_permutation(perm, 40, 5, 0);
  check_gather(&ds, perm, 40);
  float out[2 * 25];
  long two[2] = {39, 3};
  data_gather(&ds, two, 2, out);
  for (int j = 0; j < 25; j++)
    ck_assert(out[j] == pixel(39, j) && out[25 + j] == pixel(3, j));

  /* scale: the bytes stay, the mapping changes; gathered as data_at */
  data_scale(&ds, -1, 1);
  ck_assert_ptr_null(ds.x);
  ck_assert_int_eq(ds.bytes, 0);
  float a = 2 / 255.0f;
  bad = 0;
  for (long i = 0; i < 40; i++)
    for (int j = 0; j < 25; j++)
      bad += data_at(&ds, i * 25 + j) != -1 + a * pixel(i, j);
  ck_assert_int_eq(bad, 0);
  check_gather(&ds, perm, 40);

  /* threshold after scale compares the scaled values, and rewrites the
   * bytes to 0/1 */
  data_threshold(&ds, 0.0f);
  ck_assert_ptr_null(ds.x);
  ck_assert(ds.offset == 0.0f && ds.scale == 1.0f);
  bad = 0;
  for (long i = 0; i < 40; i++)
    for (int j = 0; j < 25; j++) {
      bad += data_at(&ds, i * 25 + j) != (-1 + a * pixel(i, j) > 0.0f);
      bad += ds.u8[i * 25 + j] > 1;
    }
  ck_assert_int_eq(bad, 0);
  check_gather(&ds, perm, 40);
  data_free(&ds);
  remove_tmpdir();
}
END_TEST

START_TEST(test_byte_splits) {
  make_tmpdir();
  Dataset ds, part, va;
  data_init(&ds);
  data_init(&part);
  data_init(&va);
  DataErr err;
  load_bytes(&ds, 10);
  data_scale(&ds, 0, 1);
  /* a slice keeps the bytes and their mapping */
  ck_assert_msg(data_slice(&ds, 3, 4, &part, &err) == DATA_OK, "%s", err.msg);
  ck_assert(part.x == NULL && part.u8 != NULL);
  ck_assert(part.n == 4 && part.rank == 2 && part.shape[1] == 5);
  ck_assert(part.offset == ds.offset && part.scale == ds.scale);
  long bad = 0;
  for (long i = 0; i < 4 * 25; i++)
    bad += data_at(&part, i) != data_at(&ds, 3 * 25 + i);
  ck_assert_int_eq(bad, 0);
  ck_assert_int_eq(data_slice(&ds, 8, 3, &part, &err), DATA_EARG);

  /* split off the last 30% as bytes; train keeps the first 7 */
  Dataset whole;
  data_init(&whole);
  ck_assert_int_eq(data_slice(&ds, 0, 10, &whole, &err), DATA_OK);
  ck_assert_msg(data_split_fraction(&ds, 0.3, &va, &err) == DATA_OK, "%s",
                err.msg);
  ck_assert(ds.n == 7 && va.n == 3);
  ck_assert(ds.x == NULL && va.x == NULL && va.u8 != NULL);
  ck_assert(va.scale == whole.scale && va.offset == whole.offset);
  for (long i = 0; i < 7 * 25; i++)
    bad += data_at(&ds, i) != data_at(&whole, i);
  for (long i = 0; i < 3 * 25; i++)
    bad += data_at(&va, i) != data_at(&whole, 7 * 25 + i);
  ck_assert_int_eq(bad, 0);
  data_free(&whole);
  data_free(&ds);
  data_free(&part);
  data_free(&va);
  remove_tmpdir();
}
END_TEST

START_TEST(test_compact) {
  Dataset ds;
  data_init(&ds);
  DataErr err;
  /* 0/1 floats compact, and read and gather the same */
  ck_assert_int_eq(data_synth_four_frames(&ds, 50, 3, &err), DATA_OK);
  float before[200];
  long all[50];
  for (long i = 0; i < 50; i++) all[i] = i;
  data_gather(&ds, all, 50, before);
  ck_assert_int_eq(data_compact(&ds), 1);
  ck_assert(ds.x == NULL && ds.u8 != NULL);
  ck_assert_int_eq(ds.bytes, 0);
  for (int i = 0; i < 200; i++) ck_assert(data_at(&ds, i) == before[i]);
  float after[200];
  data_gather(&ds, all, 50, after);
  ck_assert(memcmp(before, after, sizeof before) == 0);
  ck_assert_int_eq(data_compact(&ds), 0);   /* already bytes */
  /* anything else stays floats */
  ck_assert_int_eq(data_synth_gaussian(&ds, 10, 1, 3, &err), DATA_OK);
  ck_assert_int_eq(data_compact(&ds), 0);
  ck_assert_ptr_nonnull(ds.x);
  /* a thresholded float set ends as bytes */
  data_threshold(&ds, 0.0f);
  ck_assert(ds.x == NULL && ds.u8 != NULL);
  for (int i = 0; i < 20; i++) ck_assert(data_at(&ds, i) <= 1.0f);
  data_free(&ds);
}
END_TEST

START_TEST(test_binarize_fixed) {
  make_tmpdir();
  Dataset ds, fl;
  data_init(&ds);
  data_init(&fl);
  DataErr err;
  load_bytes(&ds, 30);
  data_scale(&ds, 0, 1);
  /* the same draws from floats, example by example, as before bytes */
  float *p = malloc(30 * 25 * sizeof(float)),
        *want = malloc(30 * 25 * sizeof(float));
  ck_assert(p && want);
  for (long i = 0; i < 30 * 25; i++) p[i] = data_at(&ds, i);
  uint64_t stream = rng_stream(RNG_NODE_BINARIZE, 99);
  for (long i = 0; i < 30; i++)
    data_binarize_dynamic(p + i * 25, want + i * 25, 25, 4, stream,
                          (uint64_t)(i * 25));
  ck_assert_msg(data_binarize_fixed(&ds, 4, stream, &err) == DATA_OK, "%s",
                err.msg);
  ck_assert(ds.x == NULL && ds.u8 != NULL);
  ck_assert(ds.offset == 0.0f && ds.scale == 1.0f && ds.bytes == 0);
  long bad = 0, ones = 0;
  for (long i = 0; i < 30 * 25; i++) {
    bad += data_at(&ds, i) != want[i] || ds.u8[i] > 1;
    ones += ds.u8[i];
  }
  ck_assert_int_eq(bad, 0);
  ck_assert(ones > 0 && ones < 30 * 25);
  /* a float set of the same intensities gets the same draws, as floats */
  fl.n = 30;
  fl.dim = 25;
  fl.x = p;   /* data_free(&fl) frees it */
  ck_assert_int_eq(data_binarize_fixed(&fl, 4, stream, &err), DATA_OK);
  ck_assert(fl.x != NULL && memcmp(fl.x, want, 30 * 25 * sizeof(float)) == 0);
  free(want);
  data_free(&fl);
  data_free(&ds);
  remove_tmpdir();
}
END_TEST

static Suite *data_suite(void) {
  Suite *s = suite_create("data");
  TCase *tc = tcase_create("data");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_binarized_mnist);
  tcase_add_test(tc, test_mnist_labels);
  tcase_add_test(tc, test_four_frames);
  tcase_add_test(tc, test_nine_pixels);
  tcase_add_test(tc, test_gaussian);
  tcase_add_test(tc, test_gaussian_axes);
  tcase_add_test(tc, test_mixture);
  tcase_add_test(tc, test_idx_ok_plain_and_gz);
  tcase_add_test(tc, test_idx_malformed);
  tcase_add_test(tc, test_amat);
  tcase_add_test(tc, test_csv);
  tcase_add_test(tc, test_npy);
  tcase_add_test(tc, test_split_fraction);
  tcase_add_test(tc, test_find_split);
  tcase_add_test(tc, test_shuffle);
  tcase_add_test(tc, test_binarize);
  tcase_add_test(tc, test_idx_bytes);
  tcase_add_test(tc, test_byte_splits);
  tcase_add_test(tc, test_compact);
  tcase_add_test(tc, test_binarize_fixed);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(data_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures ? 1 : 0;
}
