/* data.c - data sets: loaders, transforms, splits, shuffling, synthetic
 * sets (see data.h).  All file input goes through zlib's gzFile, which
 * reads gzip and plain files alike. */
#include "data.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* ------------------------------------------------------------- basics */

static DataStatus fail(DataErr *err, DataStatus st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static DataStatus fail(DataErr *err, DataStatus st, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return st;
}

void data_init(Dataset *ds) {
  memset(ds, 0, sizeof *ds);
  ds->scale = 1.0f;
}

void data_free(Dataset *ds) {
  free(ds->x);
  free(ds->u8);
  free(ds->labels);
  data_init(ds);
}

/* n * dim floats, or bytes when `bytes` (and n labels when `labels`), with
 * the sizes checked so that n * dim * sizeof(float) cannot overflow. */
static DataStatus alloc_ds(Dataset *ds, long n, long dim, int bytes,
                           int labels, const char *what, DataErr *err) {
  data_free(ds);
  if (n <= 0 || dim <= 0)
    return fail(err, DATA_EARG, "%s: %ld examples of %ld values: expected "
                "at least one of each", what, n, dim);
  if ((size_t)n > SIZE_MAX / sizeof(float) / (size_t)dim)
    return fail(err, DATA_EFORMAT, "%s: %ld examples of %ld values is too "
                "large", what, n, dim);
  size_t total = (size_t)n * (size_t)dim;
  void *v;
  if (bytes) v = ds->u8 = malloc(total);
  else v = ds->x = malloc(total * sizeof(float));
  if (labels) ds->labels = calloc((size_t)n, sizeof(int));
  if (!v || (labels && !ds->labels)) {
    data_free(ds);
    return fail(err, DATA_ENOMEM, "%s: out of memory for %ld x %ld values",
                what, n, dim);
  }
  ds->n = n;
  ds->dim = dim;
  return DATA_OK;
}

static DataStatus open_gz(const char *path, gzFile *f, DataErr *err) {
  errno = 0;
  *f = gzopen(path, "rb");
  if (!*f)
    return fail(err, DATA_EIO, "%s: cannot open: %s", path,
                errno ? strerror(errno) : "out of memory");
  return DATA_OK;
}

/* Read up to n bytes; returns how many were read (short at the end of the
 * data or on an error, told apart by gz_reason). */
static size_t read_full(gzFile f, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    size_t chunk = n - got > (1u << 30) ? (1u << 30) : n - got;
    int r = gzread(f, (char *)buf + got, (unsigned)chunk);
    if (r <= 0) break;
    got += (size_t)r;
  }
  return got;
}

/* Why a read came up short: zlib's error (a corrupt or truncated gzip
 * stream), or simply the end of the file. */
static const char *gz_reason(gzFile f, const char *path) {
  int code = Z_OK;
  const char *m = gzerror(f, &code);
  if (code == Z_OK || code == Z_STREAM_END || !m || !*m) return "end of file";
  /* zlib prefixes its message with the path, which ours already names */
  size_t lp = strlen(path);
  if (strncmp(m, path, lp) == 0 && strncmp(m + lp, ": ", 2) == 0)
    m += lp + 2;
  return m;
}

/* Trailing bytes after the records the header announced mean the header
 * lies about the size. */
static DataStatus check_end(gzFile f, const char *path, long n,
                            const char *unit, DataErr *err) {
  char extra;
  if (gzread(f, &extra, 1) > 0)
    return fail(err, DATA_EFORMAT, "%s: after %s %ld: unexpected data past "
                "the %ld %ss the header announces", path, unit, n - 1, n,
                unit);
  int code = Z_OK;
  gzerror(f, &code);
  if (code != Z_OK && code != Z_STREAM_END)
    return fail(err, DATA_EFORMAT, "%s: after %s %ld: %s", path, unit, n - 1,
                gz_reason(f, path));
  return DATA_OK;
}

static uint32_t be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         b[3];
}

static int ends_with(const char *s, const char *suffix) {
  size_t ls = strlen(s), lx = strlen(suffix);
  return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* ---------------------------------------------------------------- IDX */

typedef struct {
  int ndims;
  long count;                 /* first dimension: examples */
  long dims[4];
} IdxHeader;

static DataStatus idx_header(gzFile f, const char *path, IdxHeader *h,
                             DataErr *err) {
  unsigned char b[16];
  size_t got = read_full(f, b, 4);
  if (got < 4)
    return fail(err, DATA_EFORMAT, "%s: header: %s after %zu of the 4 bytes "
                "of the magic number", path, gz_reason(f, path), got);
  uint32_t magic = be32(b);
  if (b[0] != 0 || b[1] != 0 || b[3] < 1 || b[3] > 4)
    return fail(err, DATA_EFORMAT, "%s: header: bad magic number 0x%08x "
                "(expected an IDX file: 0x00000801 labels, 0x00000803 "
                "images)", path, magic);
  if (b[2] != 0x08)
    return fail(err, DATA_EFORMAT, "%s: header: magic number 0x%08x: element "
                "type 0x%02x is not supported (expected 0x08, unsigned "
                "bytes)", path, magic, b[2]);
  h->ndims = b[3];
  got = read_full(f, b, 4 * (size_t)h->ndims);
  if (got < 4 * (size_t)h->ndims)
    return fail(err, DATA_EFORMAT, "%s: header: %s after %zu of the %d bytes "
                "of the dimension sizes", path, gz_reason(f, path), got,
                4 * h->ndims);
  for (int i = 0; i < h->ndims; i++) {
    uint32_t d = be32(b + 4 * i);
    if (d == 0 || d > INT32_MAX)
      return fail(err, DATA_EFORMAT, "%s: header: dimension %d is %lu "
                  "(expected 1 to 2^31 - 1)", path, i, (unsigned long)d);
    h->dims[i] = (long)d;
  }
  h->count = h->dims[0];
  return DATA_OK;
}

DataStatus data_load_idx(const char *path, Dataset *ds, DataErr *err) {
  data_free(ds);
  gzFile f;
  DataStatus st = open_gz(path, &f, err);
  if (st) return st;
  IdxHeader h;
  if ((st = idx_header(f, path, &h, err))) goto done;
  long dim = 1;
  for (int i = 1; i < h.ndims; i++) {
    if (dim > INT32_MAX / h.dims[i]) {
      st = fail(err, DATA_EFORMAT, "%s: header: an example of more than "
                "2^31 values", path);
      goto done;
    }
    dim *= h.dims[i];
  }
  /* straight into the bytes: a float copy, even briefly, would be the
   * largest allocation of a run */
  if ((st = alloc_ds(ds, h.count, dim, 1, 0, path, err))) goto done;
  ds->rank = h.ndims - 1;
  for (int i = 1; i < h.ndims; i++) ds->shape[i - 1] = h.dims[i];
  ds->bytes = 1;
  const char *unit = h.ndims == 1 ? "label" : "example";
  size_t want = (size_t)h.count * (size_t)dim;
  size_t got = read_full(f, ds->u8, want);
  if (got < want) {
    st = fail(err, DATA_EFORMAT, "%s: %s %zu of %ld: %s after %zu of its "
              "%ld bytes (the file is truncated)", path, unit,
              got / (size_t)dim, h.count, gz_reason(f, path),
              got % (size_t)dim, dim);
    goto done;
  }
  st = check_end(f, path, h.count, unit, err);
done:
  gzclose(f);
  if (st) data_free(ds);
  return st;
}

DataStatus data_load_idx_labels(const char *path, Dataset *ds, DataErr *err) {
  gzFile f;
  DataStatus st = open_gz(path, &f, err);
  if (st) return st;
  IdxHeader h;
  unsigned char *buf = NULL;
  int *labels = NULL;
  if ((st = idx_header(f, path, &h, err))) goto done;
  if (h.ndims != 1) {
    st = fail(err, DATA_EFORMAT, "%s: header: magic number 0x%08x: %d "
              "dimensions (expected a label file, 0x00000801)", path,
              0x800u | (unsigned)h.ndims, h.ndims);
    goto done;
  }
  if (h.count != ds->n) {
    st = fail(err, DATA_EFORMAT, "%s: header: %ld labels (expected %ld, one "
              "per example)", path, h.count, ds->n);
    goto done;
  }
  buf = malloc((size_t)h.count);
  labels = malloc((size_t)h.count * sizeof *labels);
  if (!buf || !labels) {
    st = fail(err, DATA_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  size_t got = read_full(f, buf, (size_t)h.count);
  if (got < (size_t)h.count) {
    st = fail(err, DATA_EFORMAT, "%s: label %zu of %ld: %s (the file is "
              "truncated)", path, got, h.count, gz_reason(f, path));
    goto done;
  }
  if ((st = check_end(f, path, h.count, "label", err))) goto done;
  for (long i = 0; i < h.count; i++) labels[i] = buf[i];
  free(ds->labels);
  ds->labels = labels;
  labels = NULL;
done:
  free(buf);
  free(labels);
  gzclose(f);
  return st;
}

/* --------------------------------------------------------- text lines */

typedef struct {
  gzFile f;
  const char *path;
  char *buf;
  size_t cap;
  long lineno;
} Lines;

/* The next line without its "\n" / "\r\n" in r->buf: 1, or 0 at the end,
 * or -1 on a read error (message in err). */
static int next_line(Lines *r, DataErr *err) {
  size_t len = 0;
  for (;;) {
    if (r->cap - len < 2) {
      size_t ncap = r->cap ? r->cap * 2 : 4096;
      if (ncap > INT_MAX) {
        fail(err, DATA_EFORMAT, "%s:%ld: line longer than %d bytes", r->path,
             r->lineno + 1, INT_MAX / 2);
        return -1;
      }
      char *nb = realloc(r->buf, ncap);
      if (!nb) {
        fail(err, DATA_ENOMEM, "%s:%ld: out of memory", r->path,
             r->lineno + 1);
        return -1;
      }
      r->buf = nb;
      r->cap = ncap;
    }
    if (!gzgets(r->f, r->buf + len, (int)(r->cap - len))) {
      int code = Z_OK;
      gzerror(r->f, &code);
      if (code != Z_OK && code != Z_STREAM_END) {
        fail(err, DATA_EFORMAT, "%s:%ld: %s", r->path, r->lineno + 1,
             gz_reason(r->f, r->path));
        return -1;
      }
      if (len == 0) return 0;
      break;
    }
    len += strlen(r->buf + len);
    if (len > 0 && r->buf[len - 1] == '\n') break;
  }
  while (len > 0 && (r->buf[len - 1] == '\n' || r->buf[len - 1] == '\r'))
    r->buf[--len] = '\0';
  r->lineno++;
  return 1;
}

/* Exactly 0 or 1 (not -0: a byte could not give it back). */
static int is_bit(float v) {
  return v == 1.0f || (v == 0.0f && !signbit(v));
}

/* A growable array of a text file's values: bytes while every value is 0
 * or 1 (the binarized MNIST .amat: a quarter of the memory, and never a
 * float copy), floats (f) from the first value that is not. */
typedef struct {
  unsigned char *u8;
  float *f;
  size_t len, cap;
} Values;

static int values_to_floats(Values *a) {
  size_t cap = a->cap ? a->cap : 1;
  if (cap > SIZE_MAX / sizeof(float)) return -1;
  float *f = malloc(cap * sizeof(float));
  if (!f) return -1;
  for (size_t i = 0; i < a->len; i++) f[i] = a->u8[i];
  free(a->u8);
  a->u8 = NULL;
  a->f = f;
  return 0;
}

static int values_push(Values *a, float x) {
  if (!a->f && !is_bit(x) && values_to_floats(a)) return -1;
  if (a->len == a->cap) {
    size_t ncap = a->cap ? a->cap * 2 : 1024;
    size_t size = a->f ? sizeof(float) : 1;
    if (ncap > SIZE_MAX / size) return -1;
    void *nv = realloc(a->f ? (void *)a->f : (void *)a->u8, ncap * size);
    if (!nv) return -1;
    if (a->f) a->f = nv;
    else a->u8 = nv;
    a->cap = ncap;
  }
  if (a->f) a->f[a->len++] = x;
  else a->u8[a->len++] = (unsigned char)x;
  return 0;
}

/* Parse a whole number field [s, end); 1 when it is one, finite. */
static int parse_number(const char *s, const char *end, double *out) {
  while (s < end && (*s == ' ' || *s == '\t')) s++;
  while (end > s && (end[-1] == ' ' || end[-1] == '\t')) end--;
  if (s == end) return 0;
  char tmp[64];
  size_t n = (size_t)(end - s);
  if (n >= sizeof tmp) return 0;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  char *stop;
  errno = 0;
  double v = strtod(tmp, &stop);
  if (*stop != '\0' || errno == ERANGE || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

/* The field [s, end) shortened for a message. */
static void quote_field(const char *s, const char *end, char *q, size_t qlen) {
  size_t n = (size_t)(end - s);
  if (n > 24) n = 24;
  snprintf(q, qlen, "%.*s%s", (int)n, s, (size_t)(end - s) > n ? "..." : "");
}

/* The text formats share everything but the separator and the header:
 * .amat splits on blanks, CSV on commas and may start with a header. */
static DataStatus load_text(const char *path, int csv, Dataset *ds,
                            DataErr *err) {
  data_free(ds);
  Lines r = {NULL, path, NULL, 0, 0};
  DataStatus st = open_gz(path, &r.f, err);
  if (st) return st;
  Values vals = {NULL, NULL, 0, 0};
  long cols = -1, rows = 0, first_line = 0;
  int rc;
  while ((rc = next_line(&r, err)) == 1) {
    const char *line = r.buf;
    if (strspn(line, " \t") == strlen(line)) continue;   /* blank */
    size_t start = vals.len;
    long ncols = 0;
    int header = 0;
    const char *p = line;
    for (;;) {
      const char *s, *e;
      if (csv) {
        s = p;
        e = strchr(p, ',');
        if (!e) e = p + strlen(p);
      } else {
        s = p + strspn(p, " \t");
        if (!*s) break;
        e = s + strcspn(s, " \t");
      }
      double v;
      if (!parse_number(s, e, &v)) {
        int blank = strspn(s, " \t") >= (size_t)(e - s);
        if (csv && rows == 0 && !header && first_line == 0 && !blank) {
          header = 1;   /* keep counting its columns */
        } else if (!header) {
          char q[40];
          quote_field(s, e, q, sizeof q);
          st = fail(err, DATA_EFORMAT, "%s:%ld:%ld: expected a number, found "
                    "'%s'", path, r.lineno, (long)(s - line) + 1, q);
          goto done;
        }
      } else if (!header && values_push(&vals, (float)v)) {
        st = fail(err, DATA_ENOMEM, "%s:%ld: out of memory", path, r.lineno);
        goto done;
      }
      ncols++;
      if (csv) {
        if (!*e) break;
        p = e + 1;
      } else {
        p = e;
      }
    }
    if (header) {
      /* a header that had numbers before its first name pushed nothing */
      vals.len = start;
      first_line = r.lineno;
      cols = ncols;
      continue;
    }
    if (cols < 0) {
      cols = ncols;
      first_line = r.lineno;
    } else if (ncols != cols) {
      st = fail(err, DATA_EFORMAT, "%s:%ld: expected %ld %s (as line %ld), "
                "found %ld", path, r.lineno, cols, csv ? "columns" : "values",
                first_line, ncols);
      goto done;
    }
    if (first_line == 0) first_line = r.lineno;
    rows++;
  }
  if (rc < 0) {
    st = DATA_EFORMAT;
    goto done;
  }
  if (rows == 0) {
    st = fail(err, DATA_EFORMAT, "%s:%ld: no examples (expected one line of "
              "numbers per example)", path, r.lineno);
    goto done;
  }
  ds->n = rows;
  ds->dim = cols;
  ds->rank = 1;
  ds->shape[0] = cols;
  ds->x = vals.f;
  ds->u8 = vals.f ? NULL : vals.u8;
  vals.f = NULL;
  vals.u8 = NULL;
done:
  free(vals.f);
  free(vals.u8);
  free(r.buf);
  gzclose(r.f);
  if (st) data_free(ds);
  return st;
}

DataStatus data_load_amat(const char *path, Dataset *ds, DataErr *err) {
  return load_text(path, 0, ds, err);
}

DataStatus data_load_csv(const char *path, Dataset *ds, DataErr *err) {
  return load_text(path, 1, ds, err);
}

/* ---------------------------------------------------------------- NPY */

/* The value of key `key` in the header dict: a pointer just past the ':'
 * and blanks, or NULL. */
static const char *npy_value(const char *hdr, const char *key) {
  char k1[32], k2[32];
  snprintf(k1, sizeof k1, "'%s'", key);
  snprintf(k2, sizeof k2, "\"%s\"", key);
  const char *p = strstr(hdr, k1);
  if (!p) p = strstr(hdr, k2);
  if (!p) return NULL;
  p += strlen(k1);
  p += strspn(p, " \t");
  if (*p != ':') return NULL;
  p++;
  return p + strspn(p, " \t");
}

typedef enum { NPY_F4, NPY_F8, NPY_U1 } NpyType;

static DataStatus npy_parse_header(const char *path, const char *hdr,
                                   NpyType *type, int *ndim, long *shape,
                                   DataErr *err) {
  const char *d = npy_value(hdr, "descr");
  if (!d || (*d != '\'' && *d != '"'))
    return fail(err, DATA_EFORMAT, "%s: header: no 'descr' (expected a "
                "dtype such as '<f4')", path);
  char descr[16];
  size_t dl = strcspn(d + 1, "'\"");
  if (dl >= sizeof descr) dl = sizeof descr - 1;
  memcpy(descr, d + 1, dl);
  descr[dl] = '\0';
  if (!strcmp(descr, "<f4") || !strcmp(descr, "=f4")) *type = NPY_F4;
  else if (!strcmp(descr, "<f8") || !strcmp(descr, "=f8")) *type = NPY_F8;
  else if (!strcmp(descr, "|u1") || !strcmp(descr, "<u1") ||
           !strcmp(descr, "=u1") || !strcmp(descr, ">u1") ||
           !strcmp(descr, "|b1"))
    *type = NPY_U1;
  else
    return fail(err, DATA_EFORMAT, "%s: header: dtype '%s' is not supported "
                "(expected float32 '<f4', float64 '<f8' or uint8 '|u1')",
                path, descr);
  const char *fo = npy_value(hdr, "fortran_order");
  if (!fo)
    return fail(err, DATA_EFORMAT, "%s: header: no 'fortran_order'", path);
  if (strncmp(fo, "False", 5) != 0)
    return fail(err, DATA_EFORMAT, "%s: header: Fortran order (expected C "
                "order: save with numpy.ascontiguousarray)", path);
  const char *s = npy_value(hdr, "shape");
  if (!s || *s != '(')
    return fail(err, DATA_EFORMAT, "%s: header: no 'shape' tuple", path);
  s++;
  *ndim = 0;
  for (;;) {
    s += strspn(s, " \t");
    if (*s == ')') break;
    char *stop;
    errno = 0;
    long v = strtol(s, &stop, 10);
    if (stop == s || errno || v < 0 || v > INT32_MAX)
      return fail(err, DATA_EFORMAT, "%s: header: bad 'shape' (expected a "
                  "tuple of sizes 0 to 2^31 - 1)", path);
    if (*ndim == DATA_MAX_RANK + 1)
      return fail(err, DATA_EFORMAT, "%s: header: more than %d dimensions",
                  path, DATA_MAX_RANK + 1);
    shape[(*ndim)++] = v;
    s = stop + strspn(stop, " \t");
    if (*s == ',') s++;
    else if (*s != ')')
      return fail(err, DATA_EFORMAT, "%s: header: bad 'shape' (expected ',' "
                  "or ')')", path);
  }
  if (*ndim == 0)
    return fail(err, DATA_EFORMAT, "%s: header: shape () is a scalar "
                "(expected at least one dimension, the examples)", path);
  return DATA_OK;
}

/* A float of a float file (uint8 is read as bytes, not through here). */
static float npy_value_at(const unsigned char *b, NpyType t) {
  switch (t) {
  case NPY_U1:
    return b[0];
  case NPY_F4: {
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                 (uint32_t)b[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
  }
  case NPY_F8: {
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = u << 8 | b[i];
    double v;
    memcpy(&v, &u, sizeof v);
    return (float)v;
  }
  }
  return 0;
}

DataStatus data_load_npy(const char *path, Dataset *ds, DataErr *err) {
  data_free(ds);
  gzFile f;
  DataStatus st = open_gz(path, &f, err);
  if (st) return st;
  char *hdr = NULL;
  unsigned char *buf = NULL;
  unsigned char pre[12];
  size_t got = read_full(f, pre, 10);
  if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    st = fail(err, DATA_EFORMAT, "%s: header: not an NPY file (expected the "
              "magic string \\x93NUMPY and a version)", path);
    goto done;
  }
  size_t hlen;
  if (pre[6] == 1) {
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
  } else if (pre[6] == 2 || pre[6] == 3) {
    if (read_full(f, pre + 10, 2) < 2) {
      st = fail(err, DATA_EFORMAT, "%s: header: %s in the header length",
                path, gz_reason(f, path));
      goto done;
    }
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
           (size_t)pre[11] << 24;
  } else {
    st = fail(err, DATA_EFORMAT, "%s: header: NPY version %d.%d (expected "
              "1.0, 2.0 or 3.0)", path, pre[6], pre[7]);
    goto done;
  }
  if (hlen > (1u << 24)) {
    st = fail(err, DATA_EFORMAT, "%s: header: length %zu is implausible",
              path, hlen);
    goto done;
  }
  hdr = malloc(hlen + 1);
  if (!hdr) {
    st = fail(err, DATA_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  got = read_full(f, hdr, hlen);
  if (got < hlen) {
    st = fail(err, DATA_EFORMAT, "%s: header: %s after %zu of its %zu bytes",
              path, gz_reason(f, path), got, hlen);
    goto done;
  }
  hdr[hlen] = '\0';
  NpyType type = NPY_F4;
  int ndim = 0;
  long shape[DATA_MAX_RANK + 1] = {0};
  if ((st = npy_parse_header(path, hdr, &type, &ndim, shape, err))) goto done;
  long dim = 1;
  for (int i = 1; i < ndim; i++) {
    if (shape[i] == 0 || dim > INT32_MAX / shape[i]) {
      st = fail(err, DATA_EFORMAT, "%s: header: examples of %s values "
                "(expected 1 to 2^31 - 1)", path, shape[i] ? "too many" : "0");
      goto done;
    }
    dim *= shape[i];
  }
  /* uint8 goes straight into the bytes, never through floats */
  if ((st = alloc_ds(ds, shape[0], dim, type == NPY_U1, 0, path, err)))
    goto done;
  ds->rank = ndim - 1;
  for (int i = 1; i < ndim; i++) ds->shape[i - 1] = shape[i];
  ds->bytes = type == NPY_U1;
  size_t esize = type == NPY_F8 ? 8 : type == NPY_F4 ? 4 : 1;
  size_t rec = esize * (size_t)dim;
  if (type != NPY_U1 && !(buf = malloc(rec))) {
    st = fail(err, DATA_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  for (long i = 0; i < ds->n; i++) {
    unsigned char *to = type == NPY_U1 ? ds->u8 + i * dim : buf;
    got = read_full(f, to, rec);
    if (got < rec) {
      st = fail(err, DATA_EFORMAT, "%s: example %ld of %ld: %s after %zu of "
                "its %zu bytes (the file is truncated)", path, i, ds->n,
                gz_reason(f, path), got, rec);
      goto done;
    }
    if (type == NPY_U1) continue;
    float *x = ds->x + i * dim;
    for (long j = 0; j < dim; j++) {
      x[j] = npy_value_at(buf + (size_t)j * esize, type);
      if (!isfinite(x[j])) {
        st = fail(err, DATA_EFORMAT, "%s: example %ld, value %ld: not a "
                  "finite number", path, i, j);
        goto done;
      }
    }
  }
  st = check_end(f, path, ds->n, "example", err);
done:
  free(hdr);
  free(buf);
  gzclose(f);
  if (st) data_free(ds);
  return st;
}

void data_write_npy(FILE *f, const Dataset *ds) {
  char dict[256];
  int len = snprintf(dict, sizeof dict,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld",
                     ds->n);
  for (int i = 0; i < ds->rank; i++)
    len += snprintf(dict + len, sizeof dict - (size_t)len, ", %ld",
                    ds->shape[i]);
  len += snprintf(dict + len, sizeof dict - (size_t)len, "%s), }",
                  ds->rank == 0 ? "," : "");
  /* pad with spaces and a newline so the data starts 64-byte aligned */
  size_t total = 10 + (size_t)len + 1;
  size_t pad = (64 - total % 64) % 64;
  unsigned hl = (unsigned)(len + (int)pad + 1);
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  fputc((int)(hl & 0xff), f);
  fputc((int)(hl >> 8), f);
  fwrite(dict, 1, (size_t)len, f);
  for (size_t i = 0; i < pad; i++) fputc(' ', f);
  fputc('\n', f);
  for (long i = 0; i < ds->n * ds->dim; i++) {
    float v = data_at(ds, i);
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8),
                          (unsigned char)(u >> 16), (unsigned char)(u >> 24)};
    fwrite(b, 1, 4, f);
  }
}

DataStatus data_save_npy(const char *path, const Dataset *ds, DataErr *err) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return fail(err, DATA_EIO, "%s: cannot create: %s", path,
                strerror(errno));
  data_write_npy(f, ds);
  int bad = ferror(f);
  if (fclose(f) != 0 || bad)
    return fail(err, DATA_EIO, "%s: write error: %s", path, strerror(errno));
  return DATA_OK;
}

DataStatus data_load(const char *path, Dataset *ds, DataErr *err) {
  size_t n = strlen(path);
  char base[4096];
  if (n >= sizeof base)
    return fail(err, DATA_EARG, "%.64s...: path too long", path);
  memcpy(base, path, n + 1);
  if (ends_with(base, ".gz")) base[n - 3] = '\0';
  if (ends_with(base, ".amat") || ends_with(base, ".txt"))
    return data_load_amat(path, ds, err);
  if (ends_with(base, ".npy")) return data_load_npy(path, ds, err);
  if (ends_with(base, ".csv")) return data_load_csv(path, ds, err);
  return data_load_idx(path, ds, err);
}

/* ---------------------------------------------------------- find split */

static int is_sep(char c) {
  return c == '_' || c == '-' || c == '.';
}

/* `split` occurs in `name` as a word (see data.h). */
static int names_split(const char *name, const char *split) {
  size_t ls = strlen(split);
  for (const char *p = strstr(name, split); p; p = strstr(p + 1, split)) {
    if ((p == name || is_sep(p[-1])) && (p[ls] == '\0' || is_sep(p[ls])))
      return 1;
  }
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

DataStatus data_find_split(const char *dir, const char *split, char *out,
                           long outlen, DataErr *err) {
  if (strcmp(split, "train") && strcmp(split, "valid") && strcmp(split, "test"))
    return fail(err, DATA_EARG, "%s: unknown split '%s' (expected train, "
                "valid or test)", dir, split);
  DIR *d = opendir(dir);
  if (!d)
    return fail(err, DATA_EIO, "%s: cannot open the directory: %s", dir,
                strerror(errno));
  char *found[8];
  int nfound = 0, total = 0;
  DataStatus st = DATA_OK;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *name = e->d_name;
    if (name[0] == '.' || !names_split(name, split) || strstr(name, "labels"))
      continue;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
      continue;
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
    total++;
    if (nfound < 8) {
      found[nfound] = strdup(name);
      if (!found[nfound]) {
        st = fail(err, DATA_ENOMEM, "%s: out of memory", dir);
        break;
      }
      nfound++;
    }
  }
  closedir(d);
  if (!st) {
    qsort(found, (size_t)nfound, sizeof *found, cmp_str);
    if (total == 0) {
      st = fail(err, DATA_EARG, "%s: no %s file (expected a file named like "
                "%s-images-idx3-ubyte.gz or *_%s.amat)", dir, split, split,
                split);
    } else if (total > 1) {
      char list[256] = "";
      for (int i = 0; i < nfound; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", found[i]);
      }
      st = fail(err, DATA_EARG, "%s: %d files for split %s (%s%s); name the "
                "one to use", dir, total, split, list,
                total > nfound ? ", ..." : "");
    } else if (snprintf(out, (size_t)outlen, "%s/%s", dir, found[0]) >=
               outlen) {
      st = fail(err, DATA_EARG, "%s/%s: path too long", dir, found[0]);
    }
  }
  for (int i = 0; i < nfound; i++) free(found[i]);
  return st;
}

/* ---------------------------------------------------------- transforms */

int data_compact(Dataset *ds) {
  if (!ds->x) return 0;
  size_t total = (size_t)ds->n * (size_t)ds->dim;
  for (size_t i = 0; i < total; i++)
    if (!is_bit(ds->x[i])) return 0;
  unsigned char *u8 = malloc(total ? total : 1);
  if (!u8) return 0;
  for (size_t i = 0; i < total; i++) u8[i] = ds->x[i] == 1.0f;
  free(ds->x);
  ds->x = NULL;
  ds->u8 = u8;
  ds->offset = 0.0f;
  ds->scale = 1.0f;
  return 1;
}

void data_scale(Dataset *ds, float lo, float hi) {
  float a = (hi - lo) / 255.0f;
  ds->bytes = 0;
  if (!ds->x) {
    /* lo + a * (offset + scale * b); from the loader's mapping (0, 1)
     * this is exactly lo + a * b, as the float path computes */
    ds->offset = lo + a * ds->offset;
    ds->scale = a * ds->scale;
    return;
  }
  long total = ds->n * ds->dim;
  for (long i = 0; i < total; i++) ds->x[i] = lo + a * ds->x[i];
}

void data_threshold(Dataset *ds, float t) {
  ds->bytes = 0;
  if (!ds->x) {
    /* 256 possible values: decide each once */
    unsigned char bit[256];
    for (int b = 0; b < 256; b++)
      bit[b] = ds->offset + ds->scale * (float)b > t;
    long total = ds->n * ds->dim;
    for (long i = 0; i < total; i++) ds->u8[i] = bit[ds->u8[i]];
    ds->offset = 0.0f;
    ds->scale = 1.0f;
    return;
  }
  long total = ds->n * ds->dim;
  for (long i = 0; i < total; i++) ds->x[i] = ds->x[i] > t ? 1.0f : 0.0f;
  data_compact(ds);
}

void data_binarize_dynamic(const float *p, float *out, long n, uint64_t seed,
                           uint64_t stream, uint64_t offset) {
  rng_fill_bernoulli(out, p, n, seed, stream, offset);
}

DataStatus data_binarize_fixed(Dataset *ds, uint64_t seed, uint64_t stream,
                               DataErr *err) {
  float *row = malloc((size_t)(ds->dim > 0 ? ds->dim : 1) * sizeof(float));
  if (!row)
    return fail(err, DATA_ENOMEM, "binarization: out of memory for an "
                "example of %ld values", ds->dim);
  for (long i = 0; i < ds->n; i++) {
    /* the probabilities as floats, exactly as a gathered batch has them */
    data_gather(ds, &i, 1, row);
    data_binarize_dynamic(row, row, ds->dim, seed, stream,
                          (uint64_t)(i * ds->dim));
    if (ds->x) {
      memcpy(ds->x + i * ds->dim, row, (size_t)ds->dim * sizeof(float));
    } else {
      unsigned char *u = ds->u8 + i * ds->dim;
      for (long j = 0; j < ds->dim; j++) u[j] = row[j] != 0.0f;
    }
  }
  free(row);
  /* only now: the rows above were read through the old mapping */
  ds->offset = 0.0f;
  ds->scale = 1.0f;
  ds->bytes = 0;
  return DATA_OK;
}

/* --------------------------------------------------------------- splits */

DataStatus data_slice(const Dataset *src, long first, long count,
                      Dataset *out, DataErr *err) {
  if (first < 0 || count <= 0 || first > src->n - count)
    return fail(err, DATA_EARG, "examples %ld..%ld of a set of %ld", first,
                first + count - 1, src->n);
  DataStatus st = alloc_ds(out, count, src->dim, src->x == NULL,
                           src->labels != NULL, "slice", err);
  if (st) return st;
  out->rank = src->rank;
  memcpy(out->shape, src->shape, sizeof out->shape);
  out->bytes = src->bytes;
  out->offset = src->offset;
  out->scale = src->scale;
  size_t total = (size_t)count * (size_t)src->dim;
  if (src->x) memcpy(out->x, src->x + first * src->dim, total * sizeof(float));
  else memcpy(out->u8, src->u8 + first * src->dim, total);
  if (src->labels)
    memcpy(out->labels, src->labels + first, (size_t)count * sizeof(int));
  return DATA_OK;
}

DataStatus data_split_fraction(Dataset *train, double fraction,
                               Dataset *valid, DataErr *err) {
  if (!(fraction > 0 && fraction < 1))
    return fail(err, DATA_EARG, "valid = %g: expected a fraction strictly "
                "between 0 and 1", fraction);
  long nv = (long)floor(fraction * (double)train->n + 0.5);
  if (nv < 1 || nv >= train->n)
    return fail(err, DATA_EARG, "valid = %g of %ld examples leaves %ld for "
                "validation and %ld for training (expected at least 1 each)",
                fraction, train->n, nv, train->n - nv);
  DataStatus st = data_slice(train, train->n - nv, nv, valid, err);
  if (st) return st;
  /* shrink in place; keeping the larger block is harmless if realloc fails */
  train->n -= nv;
  size_t total = (size_t)train->n * (size_t)train->dim;
  if (train->x) {
    float *x = realloc(train->x, total * sizeof(float));
    if (x) train->x = x;
  } else {
    unsigned char *u8 = realloc(train->u8, total);
    if (u8) train->u8 = u8;
  }
  if (train->labels) {
    int *l = realloc(train->labels, (size_t)train->n * sizeof(int));
    if (l) train->labels = l;
  }
  return DATA_OK;
}

void data_permutation(long *perm, long n, uint64_t seed, uint64_t epoch) {
  assert(n >= 0 && (uint64_t)n <= ((uint64_t)1 << 32));
  for (long i = 0; i < n; i++) perm[i] = i;
  RngCursor c = rng_cursor(seed, rng_stream(RNG_NODE_SHUFFLE, epoch));
  for (long i = n - 1; i > 0; i--) {
    long j = (long)rng_next_below(&c, (uint32_t)(i + 1));
    long t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

/* Blocks of a fixed 16 values, which the compiler vectorizes even at -O2
 * (a loop of unknown length it would leave scalar), then the rest. */
#define GATHER_BLOCK 16

static void bytes_to_floats(float *restrict out,
                            const unsigned char *restrict in, long n) {
  long j = 0;
  for (; j + GATHER_BLOCK <= n; j += GATHER_BLOCK)
    for (int k = 0; k < GATHER_BLOCK; k++) out[j + k] = (float)in[j + k];
  for (; j < n; j++) out[j] = (float)in[j];
}

/* offset + scale * byte, as data_at computes it */
static void bytes_to_floats_mapped(float *restrict out,
                                   const unsigned char *restrict in, long n,
                                   float offset, float scale) {
  long j = 0;
  for (; j + GATHER_BLOCK <= n; j += GATHER_BLOCK)
    for (int k = 0; k < GATHER_BLOCK; k++)
      out[j + k] = offset + scale * (float)in[j + k];
  for (; j < n; j++) out[j] = offset + scale * (float)in[j];
}

void data_gather(const Dataset *ds, const long *perm, long count, float *out) {
  long dim = ds->dim;
  if (ds->x) {
    size_t row = (size_t)dim * sizeof(float);
    for (long i = 0; i < count; i++)
      memcpy(out + i * dim, ds->x + perm[i] * dim, row);
  } else if (ds->offset == 0.0f && ds->scale == 1.0f) {
    for (long i = 0; i < count; i++)
      bytes_to_floats(out + i * dim, ds->u8 + perm[i] * dim, dim);
  } else {
    for (long i = 0; i < count; i++)
      bytes_to_floats_mapped(out + i * dim, ds->u8 + perm[i] * dim, dim,
                             ds->offset, ds->scale);
  }
}

/* ------------------------------------------------------------ synthetic */

/* n examples, each one pixel on out of side x side, uniformly. */
static DataStatus one_hot_images(Dataset *ds, long n, int side, uint64_t seed,
                                 const char *name, DataErr *err) {
  int k = side * side;
  DataStatus st = alloc_ds(ds, n, k, 0, 1, name, err);
  if (st) return st;
  ds->rank = 2;
  ds->shape[0] = ds->shape[1] = side;
  RngCursor c = rng_cursor(seed, rng_stream(RNG_NODE_SYNTH, 0));
  for (long i = 0; i < n; i++) {
    int on = (int)rng_next_below(&c, (uint32_t)k);
    float *x = ds->x + i * k;
    for (int j = 0; j < k; j++) x[j] = j == on ? 1.0f : 0.0f;
    ds->labels[i] = on;
  }
  return DATA_OK;
}

DataStatus data_synth_four_frames(Dataset *ds, long n, uint64_t seed,
                                  DataErr *err) {
  return one_hot_images(ds, n, 2, seed, "synthetic.four_frames", err);
}

DataStatus data_synth_nine_pixels(Dataset *ds, long n, uint64_t seed,
                                  DataErr *err) {
  return one_hot_images(ds, n, 3, seed, "synthetic.nine_pixels", err);
}

DataStatus data_synth_gaussian(Dataset *ds, long n, int full, uint64_t seed,
                               DataErr *err) {
  DataStatus st = alloc_ds(ds, n, 2, 0, 0, "synthetic.gaussian", err);
  if (st) return st;
  ds->rank = 1;
  ds->shape[0] = 2;
  /* Cholesky factors: full [[1, 0], [rho, sqrt(1 - rho^2)]],
   * diag [[1, 0], [0, sqrt(var_y)]]. */
  double l10 = full ? DATA_GAUSS_RHO : 0.0;
  double l11 = full ? sqrt(1.0 - DATA_GAUSS_RHO * DATA_GAUSS_RHO)
                    : sqrt(DATA_GAUSS_DIAG_VAR_Y);
  RngCursor c = rng_cursor(seed, rng_stream(RNG_NODE_SYNTH, 0));
  for (long i = 0; i < n; i++) {
    double z0 = rng_next_normal(&c), z1 = rng_next_normal(&c);
    ds->x[2 * i] = (float)(DATA_GAUSS_MEAN_X + z0);
    ds->x[2 * i + 1] = (float)(DATA_GAUSS_MEAN_Y + l10 * z0 + l11 * z1);
  }
  return DATA_OK;
}

DataStatus data_synth_gaussian_axes(Dataset *ds, long n, const double mean[2],
                                    const double std[2], double angle,
                                    uint64_t seed, DataErr *err) {
  if (!isfinite(mean[0]) || !isfinite(mean[1]) || !isfinite(angle) ||
      !(std[0] > 0) || !(std[1] > 0) || !isfinite(std[0]) ||
      !isfinite(std[1]))
    return fail(err, DATA_EARG, "synthetic.gaussian: mean = [%g, %g], "
                "std = [%g, %g], angle = %g (expected finite numbers and "
                "std > 0)", mean[0], mean[1], std[0], std[1], angle);
  DataStatus st = alloc_ds(ds, n, 2, 0, 0, "synthetic.gaussian", err);
  if (st) return st;
  ds->rank = 1;
  ds->shape[0] = 2;
  /* exact for the multiples of 90 degrees (cos 90 is 6e-17 otherwise) */
  double a = fmod(angle, 360.0), c, s;
  if (a < 0) a += 360.0;
  if (a == 0) c = 1, s = 0;
  else if (a == 90) c = 0, s = 1;
  else if (a == 180) c = -1, s = 0;
  else if (a == 270) c = 0, s = -1;
  else {
    double r = a * (3.14159265358979323846 / 180.0);
    c = cos(r);
    s = sin(r);
  }
  RngCursor cur = rng_cursor(seed, rng_stream(RNG_NODE_SYNTH, 0));
  for (long i = 0; i < n; i++) {
    double u = std[0] * rng_next_normal(&cur), v = std[1] * rng_next_normal(&cur);
    ds->x[2 * i] = (float)(mean[0] + c * u - s * v);
    ds->x[2 * i + 1] = (float)(mean[1] + s * u + c * v);
  }
  return DATA_OK;
}

DataStatus data_synth_mixture(Dataset *ds, long n, int k, double radius,
                              double std, uint64_t seed, DataErr *err) {
  if (k < 1 || !(radius >= 0) || !(std >= 0) || !isfinite(radius) ||
      !isfinite(std))
    return fail(err, DATA_EARG, "synthetic.mixture: k = %d, radius = %g, "
                "std = %g (expected k >= 1, radius >= 0, std >= 0)", k,
                radius, std);
  DataStatus st = alloc_ds(ds, n, 2, 0, 1, "synthetic.mixture", err);
  if (st) return st;
  ds->rank = 1;
  ds->shape[0] = 2;
  RngCursor c = rng_cursor(seed, rng_stream(RNG_NODE_SYNTH, 0));
  const double two_pi = 6.283185307179586476925;
  for (long i = 0; i < n; i++) {
    int j = (int)rng_next_below(&c, (uint32_t)k);
    double a = two_pi * j / k;
    double z0 = rng_next_normal(&c), z1 = rng_next_normal(&c);
    ds->x[2 * i] = (float)(radius * cos(a) + std * z0);
    ds->x[2 * i + 1] = (float)(radius * sin(a) + std * z1);
    ds->labels[i] = j;
  }
  return DATA_OK;
}
