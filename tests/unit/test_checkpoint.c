/* test_checkpoint.c - runtime/checkpoint.c: safetensors round trips (bytes
 * and values), the exact layout, corrupt files refused with clear errors
 * (every truncation, bad header lengths, overlapping or out-of-range
 * offsets, wrong dtypes, malformed JSON), and atomic writing (a failed write
 * leaves the previous file intact and no temporary file behind).
 *
 * `test_checkpoint --write-sample FILE` writes the sample checkpoint that
 * tests/python/check_safetensors.py reads with Python. */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"

static char dir[64];

static void make_dir(void) {
  strcpy(dir, "/tmp/vml-test-ckpt.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  closedir(d);
  rmdir(dir);
}

static int count_entries(void) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static char *path_in(const char *name) {
  static char p[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
  return p[k];
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)len + 1);
  ck_assert_ptr_nonnull(b);
  ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  *n = (size_t)len;
  return b;
}

static void spit(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

/* A file with this header (unpadded) and n data bytes of 0x11. */
static void raw_file(const char *path, const char *header, size_t n) {
  size_t hl = strlen(header);
  unsigned char *b = malloc(8 + hl + n + 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((unsigned long long)hl >> (8 * i));
  memcpy(b + 8, header, hl);
  memset(b + 8 + hl, 0x11, n);
  spit(path, b, 8 + hl + n);
  free(b);
}

/* The sample: the VAE-like parameters and Adam state of one step. */
enum { NW = 6 * 4, NB = 4 };
static float W[NW], B[NB], M[NW], V[NW], S = 2.5f;

static void sample_values(void) {
  for (int i = 0; i < NW; i++) {
    W[i] = (float)(i - 11) / 8.0f;
    M[i] = (float)i / 1024.0f;
    V[i] = (float)(i * i) / 65536.0f;
  }
  for (int i = 0; i < NB; i++) B[i] = -(float)i / 4.0f;
}

static int write_sample(const char *path, char *err, size_t errlen) {
  sample_values();
  char mname[64], vname[64];
  ckpt_state_name(mname, sizeof mname, "train.0", "q.W", "m");
  ckpt_state_name(vname, sizeof vname, "train.0", "q.W", "v");
  const CkptTensor t[] = {
      {"q.W", 2, {6, 4}, W}, {"q.b", 1, {4}, B}, {"p.s", 0, {0}, &S},
      {mname, 2, {6, 4}, M}, {vname, 2, {6, 4}, V},
  };
  const CkptMeta meta[] = {
      {CKPT_KEY_VERSION, "1"},       {CKPT_KEY_VMX_HASH, "caff02660fdc00ce"}, {CKPT_KEY_SEED, "42"},
      {CKPT_KEY_RNG_STEP, "1234"},   {CKPT_KEY_EPOCH, "3"},                   {CKPT_KEY_POSITION, "640"},
      {"vml.optim.train.0.t", "17"}, {"note", "a \"quoted\" \\ line\nand a tab\t, caf\xc3\xa9"},
  };
  return ckpt_write(path, t, sizeof t / sizeof *t, meta, sizeof meta / sizeof *meta, err, errlen);
}

/* ---------------------------------------------------------- round trip */

START_TEST(test_round_trip) {
  make_dir();
  char err[512] = "";
  const char *p = path_in("ckpt.safetensors");
  ck_assert_msg(write_sample(p, err, sizeof err) == 0, "%s", err);
  ck_assert_int_eq(count_entries(), 1); /* no temporary file left */

  size_t n;
  unsigned char *b = slurp(p, &n);
  unsigned long long hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
  ck_assert_uint_eq((8 + hl) % 8, 0);        /* data aligned to 8 */
  ck_assert_int_eq(b[8], '{');
  ck_assert_uint_eq(n, 8 + hl + 4 * (NW + NB + 1 + NW + NW));
  free(b);

  Ckpt c;
  ck_assert_msg(ckpt_read(p, &c, err, sizeof err) == 0, "%s", err);
  ck_assert_uint_eq(c.ntensors, 5);
  ck_assert_uint_eq(c.nmeta, 8);
  const CkptTensor *t = ckpt_tensor(&c, "q.W");
  ck_assert_ptr_nonnull(t);
  ck_assert(t->rank == 2 && t->shape[0] == 6 && t->shape[1] == 4);
  ck_assert(memcmp(t->data, W, sizeof W) == 0);
  t = ckpt_tensor(&c, "p.s");
  ck_assert(t && t->rank == 0 && t->data[0] == 2.5f);
  t = ckpt_tensor(&c, "optim/train.0/q.W/v");
  ck_assert(t && memcmp(t->data, V, sizeof V) == 0);
  ck_assert_ptr_null(ckpt_tensor(&c, "q"));

  float w[NW], bb[NB];
  ck_assert_int_eq(ckpt_load(&c, "q.W", (const long long[]){6, 4}, 2, w, err, sizeof err), 0);
  ck_assert(memcmp(w, W, sizeof W) == 0);
  ck_assert_int_eq(ckpt_load(&c, "q.b", (const long long[]){4}, 1, bb, err, sizeof err), 0);
  ck_assert(memcmp(bb, B, sizeof B) == 0);
  ck_assert_int_eq(ckpt_load(&c, "q.W", (const long long[]){6, 5}, 2, w, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "tensor 'q.W' has shape [6, 4], expected [6, 5]") && strstr(err, p), "%s", err);
  ck_assert_int_eq(ckpt_load(&c, "p.V", (const long long[]){4}, 1, w, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "no tensor 'p.V'"), "%s", err);

  ck_assert_str_eq(ckpt_meta(&c, "note"), "a \"quoted\" \\ line\nand a tab\t, caf\xc3\xa9");
  uint64_t u;
  ck_assert_int_eq(ckpt_meta_u64(&c, CKPT_KEY_RNG_STEP, &u, err, sizeof err), 0);
  ck_assert_uint_eq(u, 1234);
  ck_assert_int_eq(ckpt_meta_u64(&c, "vml.optim.train.0.t", &u, err, sizeof err), 0);
  ck_assert_uint_eq(u, 17);
  ck_assert_int_eq(ckpt_meta_u64(&c, "note", &u, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "expected an unsigned integer"), "%s", err);
  ck_assert_int_eq(ckpt_meta_u64(&c, "vml.nothing", &u, err, sizeof err), -1);
  ck_assert_int_eq(ckpt_check_hash(&c, "caff02660fdc00ce", err, sizeof err), 0);
  ck_assert_int_eq(ckpt_check_hash(&c, "0123456789abcdef", err, sizeof err), -1);
  ck_assert_msg(strstr(err, "hash caff02660fdc00ce; this .vmx has hash 0123456789abcdef"), "%s", err);
  ckpt_free(&c);

  /* writing the same checkpoint twice gives the same bytes; overwriting works */
  size_t n1, n2;
  unsigned char *b1 = slurp(p, &n1);
  ck_assert_int_eq(write_sample(p, err, sizeof err), 0);
  unsigned char *b2 = slurp(p, &n2);
  ck_assert(n1 == n2 && memcmp(b1, b2, n1) == 0);
  free(b1);
  free(b2);

  /* no tensors, no metadata: "{}" padded */
  const char *e = path_in("empty.safetensors");
  ck_assert_int_eq(ckpt_write(e, NULL, 0, NULL, 0, err, sizeof err), 0);
  b = slurp(e, &n);
  ck_assert_uint_eq(n, 16);
  ck_assert(memcmp(b, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
  free(b);
  ck_assert_int_eq(ckpt_read(e, &c, err, sizeof err), 0);
  ck_assert(c.ntensors == 0 && c.nmeta == 0);
  ckpt_free(&c);
  remove_dir();
}
END_TEST

START_TEST(test_exact_layout) {
  make_dir();
  char err[512];
  const char *p = path_in("x.safetensors");
  float a[2] = {1.0f, -2.0f};
  const CkptTensor t[] = {{"a", 1, {2}, a}};
  const CkptMeta m[] = {{"k", "v"}};
  ck_assert_int_eq(ckpt_write(p, t, 1, m, 1, err, sizeof err), 0);
  size_t n;
  unsigned char *b = slurp(p, &n);
  const char *hdr = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  size_t hl = strlen(hdr);
  size_t padded = hl + (8 - (8 + hl) % 8) % 8;
  ck_assert_uint_eq(n, 8 + padded + 8);
  ck_assert_uint_eq(b[0] | (b[1] << 8), padded);
  ck_assert(memcmp(b + 8, hdr, hl) == 0);
  for (size_t i = 8 + hl; i < 8 + padded; i++) ck_assert_int_eq(b[i], ' ');
  /* little-endian float32: 1.0 = 00 00 80 3f, -2.0 = 00 00 00 c0 */
  ck_assert(memcmp(b + 8 + padded, "\x00\x00\x80\x3f\x00\x00\x00\xc0", 8) == 0);
  free(b);
  remove_dir();
}
END_TEST

/* ---------------------------------------------------------- corruption */

static void expect_refused(const char *path, const char *part) {
  Ckpt c;
  char err[512] = "";
  ck_assert_msg(ckpt_read(path, &c, err, sizeof err) == -1, "accepted a file that should fail with \"%s\"", part);
  ck_assert_msg(strstr(err, part) != NULL, "no \"%s\" in \"%s\"", part, err);
  ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "the error does not name the file: %s", err);
  ck_assert_ptr_null(c.tensors);
}

START_TEST(test_truncated) {
  make_dir();
  char err[512];
  const char *p = path_in("ckpt.safetensors"), *q = path_in("cut.safetensors");
  ck_assert_int_eq(write_sample(p, err, sizeof err), 0);
  size_t n;
  unsigned char *b = slurp(p, &n);
  /* every proper prefix is refused (and nothing crashes) */
  for (size_t k = 0; k < n; k++) {
    spit(q, b, k);
    Ckpt c;
    ck_assert_msg(ckpt_read(q, &c, err, sizeof err) == -1, "accepted the first %zu of %zu bytes", k, n);
    ck_assert_msg(strstr(err, q) == err, "%s", err);
  }
  spit(q, b, 5);
  expect_refused(q, "too short for a safetensors file");
  spit(q, b, n - 4);
  expect_refused(q, "run past the end of the data section");
  spit(q, b, 40);
  expect_refused(q, "bad header length");
  /* one byte too many is refused too */
  unsigned char *b2 = malloc(n + 1);
  memcpy(b2, b, n);
  b2[n] = 0;
  spit(q, b2, n + 1);
  expect_refused(q, "belong to no tensor");
  free(b2);
  free(b);
  expect_refused(path_in("missing.safetensors"), "cannot open");
  remove_dir();
}
END_TEST

START_TEST(test_bad_header_length) {
  make_dir();
  const char *p = path_in("h.safetensors");
  unsigned char b[24] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
  spit(p, b, sizeof b);
  expect_refused(p, "bad header length 18446744073709551615");
  memset(b, 0, 8);
  spit(p, b, sizeof b);
  expect_refused(p, "bad header length 0");
  b[0] = 17; /* one past the end */
  spit(p, b, sizeof b);
  expect_refused(p, "bad header length 17");
  b[0] = 0;
  b[4] = 1; /* 4 GiB */
  spit(p, b, sizeof b);
  expect_refused(p, "bad header length");
  remove_dir();
}
END_TEST

START_TEST(test_bad_offsets) {
  make_dir();
  const char *p = path_in("o.safetensors");
  raw_file(p,
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
           12);
  expect_refused(p, "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
  raw_file(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  expect_refused(p, "overlap");
  raw_file(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
  expect_refused(p, "tensor 'a': shape [3] needs 12 bytes of F32, data_offsets [0, 8] give 8");
  raw_file(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);
  expect_refused(p, "end before they begin");
  raw_file(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4);
  expect_refused(p, "run past the end of the data section (4 bytes)");
  raw_file(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
  expect_refused(p, "bytes 0 to 4 of the data section belong to no tensor");
  raw_file(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12);
  expect_refused(p, "bytes 8 to 12 of the data section belong to no tensor");
  raw_file(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999,4],\"data_offsets\":[0,0]}}", 0);
  expect_refused(p, "integer too large");
  raw_file(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1152921504606846976,16],\"data_offsets\":[0,0]}}", 0);
  expect_refused(p, "is too large");
  raw_file(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,16]}}", 16);
  expect_refused(p, "exactly two integers");
  /* a valid hand-made file for contrast: scalar, empty tensor, padding */
  raw_file(p, "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
              "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]}}   ", 4);
  Ckpt c;
  char err[512];
  ck_assert_msg(ckpt_read(p, &c, err, sizeof err) == 0, "%s", err);
  ck_assert_uint_eq(c.ntensors, 2);
  ckpt_free(&c);
  remove_dir();
}
END_TEST

START_TEST(test_bad_dtype_and_json) {
  make_dir();
  const char *p = path_in("j.safetensors");
  static const struct {
    const char *header, *part;
  } cases[] = {
      {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", "tensor 'a' has dtype F16; vml checkpoints hold F32 only"},
      {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", "dtype F64"},
      {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype 'Q4'"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "lacks its data_offsets"},
      {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "lacks its dtype"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", "unknown field 'x'"},
      {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "dtype given twice"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "tensor 'a' appears twice"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "expected a non-negative integer, found '-'"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", "fraction or exponent"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", "leading zero"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", "expected '\"'"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", "unexpected end of the header"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", "unexpected 'x' after the header"},
      {" {}", "must start with '{'"},
      {"[]", "must start with '{'"},
      {"{\"__metadata__\":{\"k\":1}}", "metadata 'k': values must be strings"},
      {"{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", "metadata key 'k' appears twice"},
      {"{\"__metadata__\":{},\"__metadata__\":{}}", "__metadata__ appears twice"},
      {"{\"a\\q\":{}}", "invalid escape"},
      {"{\"a\\ud800\":{}}", "unpaired surrogate"},
      {"{\"a\nb\":{}}", "control character"},
      {"{\"a\":{}}", "empty description"},
      {"{\"a\":null}", "expected '{'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    raw_file(p, cases[i].header, 8);
    expect_refused(p, cases[i].part);
  }
  /* escapes that are valid decode to UTF-8 */
  raw_file(p, "{\"__metadata__\":{\"k\\u00e9\\ud83d\\ude00\":\"\\\"\\/\\n\"}}", 0);
  Ckpt c;
  char err[512];
  ck_assert_msg(ckpt_read(p, &c, err, sizeof err) == 0, "%s", err);
  ck_assert_str_eq(ckpt_meta(&c, "k\xc3\xa9\xf0\x9f\x98\x80"), "\"/\n");
  ckpt_free(&c);
  remove_dir();
}
END_TEST

/* ---------------------------------------------------------- atomicity */

START_TEST(test_atomic) {
  make_dir();
  char err[512] = "";
  const char *p = path_in("ckpt.safetensors");
  ck_assert_int_eq(write_sample(p, err, sizeof err), 0);
  size_t n0;
  unsigned char *before = slurp(p, &n0);

  /* a write that fails halfway (the file size limit, as a full disk would) */
  enum { BIG = 1 << 16 };
  float *big = calloc(BIG, sizeof(float));
  ck_assert_ptr_nonnull(big);
  const CkptTensor t[] = {{"q.W", 1, {BIG}, big}};
  struct rlimit old, lim;
  ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = 4096;
  signal(SIGXFSZ, SIG_IGN);
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
  int rc = ckpt_write(p, t, 1, NULL, 0, err, sizeof err);
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
  ck_assert_int_eq(rc, -1);
  ck_assert_msg(strstr(err, "cannot write") && strstr(err, "previous checkpoint") && strstr(err, p) == err, "%s",
                err);
  size_t n1;
  unsigned char *after = slurp(p, &n1);
  ck_assert(n0 == n1 && memcmp(before, after, n0) == 0);
  free(after);
  ck_assert_int_eq(count_entries(), 1); /* the temporary file is gone */

  /* invalid input: refused before anything is written */
  const CkptTensor dup[] = {{"a", 1, {1}, big}, {"a", 1, {1}, big}};
  ck_assert_int_eq(ckpt_write(p, dup, 2, NULL, 0, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "two tensors named 'a'"), "%s", err);
  const CkptTensor meta_name[] = {{"__metadata__", 1, {1}, big}};
  ck_assert_int_eq(ckpt_write(p, meta_name, 1, NULL, 0, err, sizeof err), -1);
  const CkptMeta dm[] = {{"k", "1"}, {"k", "2"}};
  ck_assert_int_eq(ckpt_write(p, NULL, 0, dm, 2, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "two metadata entries named 'k'"), "%s", err);
  after = slurp(p, &n1);
  ck_assert(n0 == n1 && memcmp(before, after, n0) == 0);
  free(after);
  ck_assert_int_eq(count_entries(), 1);

  /* a directory that does not exist */
  char missing[300];
  snprintf(missing, sizeof missing, "%s/no/such/dir/c.safetensors", dir);
  ck_assert_int_eq(ckpt_write(missing, t, 1, NULL, 0, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "cannot create a temporary file"), "%s", err);

  /* and a good write replaces it whole */
  ck_assert_int_eq(ckpt_write(p, t, 1, NULL, 0, err, sizeof err), 0);
  Ckpt c;
  ck_assert_int_eq(ckpt_read(p, &c, err, sizeof err), 0);
  ck_assert(c.ntensors == 1 && c.tensors[0].shape[0] == BIG);
  ckpt_free(&c);
  free(big);
  free(before);
  remove_dir();
}
END_TEST

START_TEST(test_relative_path) {
  /* a bare file name writes its temporary file in the current directory */
  make_dir();
  char cwd[512], err[512];
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  ck_assert_int_eq(chdir(dir), 0);
  int rc = write_sample("c.safetensors", err, sizeof err);
  Ckpt c;
  int rd = ckpt_read("c.safetensors", &c, err, sizeof err);
  ck_assert_int_eq(chdir(cwd), 0);
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(rd, 0);
  ckpt_free(&c);
  ck_assert_int_eq(count_entries(), 1);
  remove_dir();
}
END_TEST

static Suite *checkpoint_suite(void) {
  Suite *s = suite_create("checkpoint");
  TCase *t = tcase_create("format");
  tcase_add_test(t, test_round_trip);
  tcase_add_test(t, test_exact_layout);
  tcase_add_test(t, test_relative_path);
  suite_add_tcase(s, t);
  TCase *b = tcase_create("corrupt");
  tcase_add_test(b, test_truncated);
  tcase_add_test(b, test_bad_header_length);
  tcase_add_test(b, test_bad_offsets);
  tcase_add_test(b, test_bad_dtype_and_json);
  suite_add_tcase(s, b);
  TCase *a = tcase_create("atomic");
  tcase_add_test(a, test_atomic);
  suite_add_tcase(s, a);
  return s;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--write-sample")) {
    char err[512];
    if (write_sample(argv[2], err, sizeof err) < 0) {
      fprintf(stderr, "%s\n", err);
      return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
  }
  SRunner *sr = srunner_create(checkpoint_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
