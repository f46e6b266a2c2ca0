/* checkpoint.c - see checkpoint.h. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* The header may not be larger than this (safetensors' own limit). */
#define CKPT_MAX_HEADER (100u * 1000u * 1000u)

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static int host_is_little(void) {
  const uint32_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

static void swap32(void *p, size_t n) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++, b += 4) {
    unsigned char t = b[0];
    b[0] = b[3];
    b[3] = t;
    t = b[1];
    b[1] = b[2];
    b[2] = t;
  }
}

/* prod(shape) with overflow detection: -1 when it does not fit. */
static long long shape_count(const long long *d, int rank) {
  long long n = 1;
  for (int i = 0; i < rank; i++) {
    if (d[i] < 0) return -1;
    if (d[i] && n > (long long)(((unsigned long long)1 << 60) / (unsigned long long)d[i])) return -1;
    n *= d[i];
  }
  return n;
}

static void shape_text(char *buf, size_t cap, const long long *d, int rank) {
  size_t len = 0;
  len += (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < rank && len < cap; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", d[i]);
  if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* ------------------------------------------------------------ writing */

typedef struct {
  char *s;
  size_t len, cap;
  int oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (b->len + n + 1 > cap) cap *= 2;
    char *ns = realloc(b->s, cap);
    if (!ns) {
      b->oom = 1;
      return;
    }
    b->s = ns;
    b->cap = cap;
  }
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

static void buf_puts(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_printf(Buf *b, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void buf_json_string(Buf *b, const char *s) {
  buf_puts(b, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"')
      buf_puts(b, "\\\"");
    else if (*p == '\\')
      buf_puts(b, "\\\\");
    else if (*p == '\n')
      buf_puts(b, "\\n");
    else if (*p == '\t')
      buf_puts(b, "\\t");
    else if (*p < 0x20)
      buf_printf(b, "\\u%04x", *p);
    else
      buf_put(b, (const char *)p, 1);
  }
  buf_puts(b, "\"");
}

static int write_all(int fd, const void *data, size_t n) {
  const char *p = data;
  while (n) {
    ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Writes n floats little-endian. */
static int write_floats(int fd, const float *x, size_t n) {
  if (host_is_little()) return write_all(fd, x, n * 4);
  float tmp[1024];
  while (n) {
    size_t k = n < 1024 ? n : 1024;
    memcpy(tmp, x, k * 4);
    swap32(tmp, k);
    if (write_all(fd, tmp, k * 4) < 0) return -1;
    x += k;
    n -= k;
  }
  return 0;
}

static int check_inputs(const char *path, const CkptTensor *t, size_t nt, const CkptMeta *meta, size_t nmeta,
                        char *err, size_t errlen) {
  for (size_t i = 0; i < nt; i++) {
    if (!t[i].name || !t[i].name[0] || !strcmp(t[i].name, "__metadata__")) {
      set_err(err, errlen, "%s: tensor %zu has no usable name ('%s')", path, i, t[i].name ? t[i].name : "");
      return -1;
    }
    if (t[i].rank < 0 || t[i].rank > CKPT_MAX_RANK || shape_count(t[i].shape, t[i].rank) < 0) {
      set_err(err, errlen, "%s: tensor '%s' has an invalid shape", path, t[i].name);
      return -1;
    }
    if (!t[i].data && shape_count(t[i].shape, t[i].rank) > 0) {
      set_err(err, errlen, "%s: tensor '%s' has no data", path, t[i].name);
      return -1;
    }
    for (size_t j = 0; j < i; j++)
      if (!strcmp(t[i].name, t[j].name)) {
        set_err(err, errlen, "%s: two tensors named '%s'", path, t[i].name);
        return -1;
      }
  }
  for (size_t i = 0; i < nmeta; i++) {
    if (!meta[i].key || !meta[i].value) {
      set_err(err, errlen, "%s: metadata entry %zu is incomplete", path, i);
      return -1;
    }
    for (size_t j = 0; j < i; j++)
      if (!strcmp(meta[i].key, meta[j].key)) {
        set_err(err, errlen, "%s: two metadata entries named '%s'", path, meta[i].key);
        return -1;
      }
  }
  return 0;
}

int ckpt_write(const char *path, const CkptTensor *t, size_t nt, const CkptMeta *meta, size_t nmeta,
               char *err, size_t errlen) {
  if (check_inputs(path, t, nt, meta, nmeta, err, errlen) < 0) return -1;

  /* the header */
  Buf h = {0};
  buf_puts(&h, "{");
  if (nmeta) {
    buf_puts(&h, "\"__metadata__\":{");
    for (size_t i = 0; i < nmeta; i++) {
      if (i) buf_puts(&h, ",");
      buf_json_string(&h, meta[i].key);
      buf_puts(&h, ":");
      buf_json_string(&h, meta[i].value);
    }
    buf_puts(&h, "}");
  }
  unsigned long long off = 0;
  for (size_t i = 0; i < nt; i++) {
    if (i || nmeta) buf_puts(&h, ",");
    buf_json_string(&h, t[i].name);
    buf_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
    for (int k = 0; k < t[i].rank; k++) buf_printf(&h, "%s%lld", k ? "," : "", t[i].shape[k]);
    unsigned long long bytes = 4ull * (unsigned long long)shape_count(t[i].shape, t[i].rank);
    buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", off, off + bytes);
    off += bytes;
  }
  buf_puts(&h, "}");
  while ((8 + h.len) % 8) buf_puts(&h, " ");
  if (h.oom) {
    free(h.s);
    set_err(err, errlen, "%s: out of memory for the header", path);
    return -1;
  }

  /* the temporary file, beside path */
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 32);
  char *dir = malloc(plen + 2);
  if (!tmp || !dir) {
    free(h.s);
    free(tmp);
    free(dir);
    set_err(err, errlen, "%s: out of memory", path);
    return -1;
  }
  const char *slash = strrchr(path, '/');
  if (slash) {
    size_t dl = (size_t)(slash - path);
    memcpy(dir, path, dl ? dl : 1);
    dir[dl ? dl : 1] = '\0';
    snprintf(tmp, plen + 32, "%.*s.%s.tmp-XXXXXX", (int)(slash - path + 1), path, slash + 1);
  } else {
    strcpy(dir, ".");
    snprintf(tmp, plen + 32, ".%s.tmp-XXXXXX", path);
  }
  int fd = mkstemp(tmp);
  if (fd < 0) {
    set_err(err, errlen, "%s: cannot create a temporary file in %s: %s", path, dir, strerror(errno));
    free(h.s);
    free(tmp);
    free(dir);
    return -1;
  }
  const char *what = NULL;
  unsigned char len8[8];
  unsigned long long hl = h.len;
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hl >> (8 * i));
  if (fchmod(fd, 0644) < 0)
    what = "cannot set the permissions of";
  else if (write_all(fd, len8, 8) < 0 || write_all(fd, h.s, h.len) < 0)
    what = "cannot write";
  for (size_t i = 0; !what && i < nt; i++)
    if (write_floats(fd, t[i].data, (size_t)shape_count(t[i].shape, t[i].rank)) < 0) what = "cannot write";
  if (!what && fsync(fd) < 0) what = "cannot sync";
  int saved = errno;
  if (close(fd) < 0 && !what) {
    what = "cannot close";
    saved = errno;
  }
  if (!what && rename(tmp, path) < 0) {
    what = "cannot rename";
    saved = errno;
  }
  free(h.s);
  if (what) {
    set_err(err, errlen, "%s: %s the temporary file %s: %s (the previous checkpoint, if any, is unchanged)",
            path, what, tmp, strerror(saved));
    unlink(tmp);
    free(tmp);
    free(dir);
    return -1;
  }
  free(tmp);
  /* make the rename itself durable */
  int dfd = open(dir, O_RDONLY);
  int rc = 0;
  if (dfd < 0 || (fsync(dfd) < 0 && errno != EINVAL && errno != EBADF)) {
    set_err(err, errlen, "%s: written, but cannot sync the directory %s: %s", path, dir, strerror(errno));
    rc = -1;
  }
  if (dfd >= 0) close(dfd);
  free(dir);
  return rc;
}

/* ------------------------------------------------------------ reading */

/* A strict reader for the JSON that safetensors headers use. */
typedef struct {
  const unsigned char *s;
  size_t n, i;
  const char *path;
  char *err;
  size_t errlen;
  int failed;
} Json;

static void jfail(Json *j, const char *fmt, ...) {
  if (j->failed) return;
  j->failed = 1;
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  set_err(j->err, j->errlen, "%s: bad safetensors header: %s at byte %zu of the file", j->path, what,
          j->i + 8);
}

static void jws(Json *j) {
  while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
    j->i++;
}

static int jpeek(Json *j) {
  jws(j);
  return j->i < j->n ? j->s[j->i] : -1;
}

static int jexpect(Json *j, char c) {
  if (j->failed) return 0;
  if (jpeek(j) != (unsigned char)c) {
    if (j->i >= j->n)
      jfail(j, "unexpected end of the header, expected '%c'", c);
    else
      jfail(j, "expected '%c', found '%c'", c, j->s[j->i]);
    return 0;
  }
  j->i++;
  return 1;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int read_hex4(Json *j, unsigned *out) {
  if (j->i + 4 > j->n) return 0;
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(j->s[j->i + (size_t)k]);
    if (h < 0) return 0;
    v = v * 16 + (unsigned)h;
  }
  j->i += 4;
  *out = v;
  return 1;
}

/* A string, decoded into a new malloc'd UTF-8 string. */
static char *jstring(Json *j) {
  if (!jexpect(j, '"')) return NULL;
  Buf b = {0};
  buf_puts(&b, "");
  while (!j->failed) {
    if (j->i >= j->n) {
      jfail(j, "unterminated string");
      break;
    }
    unsigned char c = j->s[j->i++];
    if (c == '"') break;
    if (c < 0x20) {
      j->i--;
      jfail(j, "control character in a string");
      break;
    }
    if (c != '\\') {
      buf_put(&b, (const char *)&c, 1);
      continue;
    }
    if (j->i >= j->n) {
      jfail(j, "unterminated string");
      break;
    }
    c = j->s[j->i++];
    const char *simple = strchr("\"\\/bfnrt", c);
    if (c && simple) {
      static const char out[] = "\"\\/\b\f\n\r\t";
      buf_put(&b, &out[simple - "\"\\/bfnrt"], 1);
      continue;
    }
    if (c != 'u') {
      j->i--;
      jfail(j, "invalid escape '\\%c'", c);
      break;
    }
    unsigned u;
    if (!read_hex4(j, &u)) {
      jfail(j, "invalid \\u escape");
      break;
    }
    if (u >= 0xD800 && u < 0xDC00) {
      unsigned lo;
      if (j->i + 2 > j->n || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u' || (j->i += 2, !read_hex4(j, &lo)) ||
          lo < 0xDC00 || lo >= 0xE000) {
        jfail(j, "unpaired surrogate in a \\u escape");
        break;
      }
      u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
    } else if (u >= 0xDC00 && u < 0xE000) {
      jfail(j, "unpaired surrogate in a \\u escape");
      break;
    }
    if (u == 0) {
      jfail(j, "\\u0000 in a string");
      break;
    }
    char enc[4];
    size_t k;
    if (u < 0x80)
      enc[0] = (char)u, k = 1;
    else if (u < 0x800)
      enc[0] = (char)(0xC0 | (u >> 6)), enc[1] = (char)(0x80 | (u & 0x3F)), k = 2;
    else if (u < 0x10000)
      enc[0] = (char)(0xE0 | (u >> 12)), enc[1] = (char)(0x80 | ((u >> 6) & 0x3F)),
      enc[2] = (char)(0x80 | (u & 0x3F)), k = 3;
    else
      enc[0] = (char)(0xF0 | (u >> 18)), enc[1] = (char)(0x80 | ((u >> 12) & 0x3F)),
      enc[2] = (char)(0x80 | ((u >> 6) & 0x3F)), enc[3] = (char)(0x80 | (u & 0x3F)), k = 4;
    buf_put(&b, enc, k);
  }
  if (b.oom && !j->failed) jfail(j, "out of memory");
  if (j->failed) {
    free(b.s);
    return NULL;
  }
  return b.s;
}

/* A non-negative integer (no sign, fraction or exponent). */
static int jinteger(Json *j, unsigned long long *out) {
  int c = jpeek(j);
  if (c < '0' || c > '9') {
    if (c < 0)
      jfail(j, "unexpected end of the header, expected an integer");
    else
      jfail(j, "expected a non-negative integer, found '%c'", c);
    return 0;
  }
  if (c == '0' && j->i + 1 < j->n && j->s[j->i + 1] >= '0' && j->s[j->i + 1] <= '9') {
    jfail(j, "an integer with a leading zero");
    return 0;
  }
  unsigned long long v = 0;
  while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
    unsigned d = j->s[j->i] - '0';
    if (v > (((unsigned long long)1 << 62) - d) / 10) {
      jfail(j, "integer too large");
      return 0;
    }
    v = v * 10 + d;
    j->i++;
  }
  if (j->i < j->n && (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
    jfail(j, "expected an integer, found a fraction or exponent");
    return 0;
  }
  *out = v;
  return 1;
}

/* Parsed tensor entry before the data is placed. */
typedef struct {
  char *name;
  int rank;
  long long shape[CKPT_MAX_RANK];
  unsigned long long begin, end;
} Entry;

static const char *const known_dtypes[] = {"F64", "F16", "BF16", "I64",  "I32",     "I16",     "I8", "U8",
                                           "U16", "U32", "U64",  "BOOL", "F8_E4M3", "F8_E5M2", NULL};

static int jtensor(Json *j, Entry *e) {
  if (!jexpect(j, '{')) return 0;
  int have_dtype = 0, have_shape = 0, have_off = 0;
  if (jpeek(j) == '}') {
    jfail(j, "tensor '%s' has an empty description", e->name);
    return 0;
  }
  while (!j->failed) {
    size_t key_at = j->i;
    char *key = jstring(j);
    if (!key || !jexpect(j, ':')) {
      free(key);
      return 0;
    }
    if (!strcmp(key, "dtype")) {
      if (have_dtype++) {
        j->i = key_at;
        jfail(j, "tensor '%s': dtype given twice", e->name);
      }
      size_t at = j->i;
      char *dt = jstring(j);
      if (dt && strcmp(dt, "F32")) {
        int known = 0;
        for (int k = 0; known_dtypes[k]; k++) known |= !strcmp(dt, known_dtypes[k]);
        j->i = at;
        jfail(j,
              known ? "tensor '%s' has dtype %s; vml checkpoints hold F32 only"
                    : "tensor '%s' has unknown dtype '%s'",
              e->name, dt);
      }
      free(dt);
    } else if (!strcmp(key, "shape")) {
      if (have_shape++) {
        j->i = key_at;
        jfail(j, "tensor '%s': shape given twice", e->name);
      }
      if (jexpect(j, '[') && jpeek(j) != ']') {
        for (;;) {
          unsigned long long d;
          if (!jinteger(j, &d)) break;
          if (e->rank == CKPT_MAX_RANK) {
            jfail(j, "tensor '%s' has more than %d dimensions", e->name, CKPT_MAX_RANK);
            break;
          }
          e->shape[e->rank++] = (long long)d;
          if (jpeek(j) != ',') break;
          j->i++;
        }
      }
      jexpect(j, ']');
    } else if (!strcmp(key, "data_offsets")) {
      if (have_off++) {
        j->i = key_at;
        jfail(j, "tensor '%s': data_offsets given twice", e->name);
      }
      if (jexpect(j, '[') && jinteger(j, &e->begin) && jexpect(j, ',') && jinteger(j, &e->end)) {
        if (jpeek(j) != ']') jfail(j, "tensor '%s': data_offsets must hold exactly two integers", e->name);
        jexpect(j, ']');
      }
    } else {
      j->i = key_at;
      jfail(j, "tensor '%s' has an unknown field '%s'", e->name, key);
    }
    free(key);
    if (j->failed) return 0;
    if (jpeek(j) == ',') {
      j->i++;
      continue;
    }
    if (!jexpect(j, '}')) return 0;
    break;
  }
  if (!j->failed && (!have_dtype || !have_shape || !have_off))
    jfail(j, "tensor '%s' lacks %s", e->name,
          !have_dtype   ? "its dtype"
          : !have_shape ? "its shape"
                        : "its data_offsets");
  return !j->failed;
}

static int jmetadata(Json *j, CkptMeta **meta, size_t *nmeta) {
  if (!jexpect(j, '{')) return 0;
  if (jpeek(j) == '}') {
    j->i++;
    return 1;
  }
  size_t cap = 0;
  while (!j->failed) {
    size_t at = j->i;
    char *k = jstring(j);
    if (!k) return 0;
    char *v = NULL;
    if (jexpect(j, ':')) {
      if (jpeek(j) != '"')
        jfail(j, "metadata '%s': values must be strings", k);
      else
        v = jstring(j);
    }
    for (size_t i = 0; v && i < *nmeta; i++)
      if (!strcmp((*meta)[i].key, k)) {
        j->i = at;
        jfail(j, "metadata key '%s' appears twice", k);
      }
    if (j->failed || !v) {
      free(k);
      free(v);
      return 0;
    }
    if (*nmeta == cap) {
      cap = cap ? 2 * cap : 8;
      CkptMeta *nm = realloc(*meta, cap * sizeof *nm);
      if (!nm) {
        free(k);
        free(v);
        jfail(j, "out of memory");
        return 0;
      }
      *meta = nm;
    }
    (*meta)[*nmeta].key = k;
    (*meta)[(*nmeta)++].value = v;
    if (jpeek(j) == ',') {
      j->i++;
      continue;
    }
    return jexpect(j, '}');
  }
  return 0;
}

static int cmp_entry(const void *a, const void *b) {
  const Entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

void ckpt_free(Ckpt *c) {
  if (!c) return;
  for (size_t i = 0; i < c->ntensors; i++) free((char *)c->tensors[i].name);
  for (size_t i = 0; i < c->nmeta; i++) {
    free((char *)c->meta[i].key);
    free((char *)c->meta[i].value);
  }
  free(c->tensors);
  free(c->meta);
  free(c->block);
  free(c->path);
  memset(c, 0, sizeof *c);
}

static int read_exact(FILE *f, void *buf, size_t n) { return fread(buf, 1, n, f) == n; }

int ckpt_read(const char *path, Ckpt *c, char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  FILE *f = fopen(path, "rb");
  if (!f) {
    set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
    set_err(err, errlen, "%s: not a regular file", path);
    fclose(f);
    return -1;
  }
  unsigned long long size = (unsigned long long)st.st_size;
  unsigned char len8[8];
  if (size < 8 || !read_exact(f, len8, 8)) {
    set_err(err, errlen, "%s: too short for a safetensors file (%llu bytes; the header length alone takes 8)",
            path, size);
    fclose(f);
    return -1;
  }
  unsigned long long hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | len8[i];
  if (hl < 2 || hl > CKPT_MAX_HEADER || hl > size - 8) {
    set_err(err, errlen, "%s: bad header length %llu (the file has %llu bytes after the length%s)", path, hl,
            size - 8, hl > CKPT_MAX_HEADER ? "; the limit is 100000000" : "");
    fclose(f);
    return -1;
  }
  unsigned char *hdr = malloc((size_t)hl);
  unsigned long long dsize = size - 8 - hl;
  void *block = malloc(dsize ? (size_t)dsize : 1);
  if (!hdr || !block) {
    set_err(err, errlen, "%s: out of memory reading %llu bytes", path, size);
    free(hdr);
    free(block);
    fclose(f);
    return -1;
  }
  if (!read_exact(f, hdr, (size_t)hl) || !read_exact(f, block, (size_t)dsize)) {
    set_err(err, errlen, "%s: read error: %s", path,
            ferror(f) ? strerror(errno) : "the file shrank while read");
    free(hdr);
    free(block);
    fclose(f);
    return -1;
  }
  fclose(f);

  Json j = {hdr, (size_t)hl, 0, path, err, errlen, 0};
  Entry *es = NULL;
  size_t ne = 0, cap = 0;
  CkptMeta *meta = NULL;
  size_t nmeta = 0;
  int have_meta = 0;
  if (j.n && j.s[0] != '{') jfail(&j, "the header must start with '{'");
  if (jexpect(&j, '{') && jpeek(&j) != '}') {
    while (!j.failed) {
      size_t at = j.i;
      char *name = jstring(&j);
      if (!name || !jexpect(&j, ':')) {
        free(name);
        break;
      }
      if (!strcmp(name, "__metadata__")) {
        free(name);
        if (have_meta++) {
          j.i = at;
          jfail(&j, "__metadata__ appears twice");
          break;
        }
        if (!jmetadata(&j, &meta, &nmeta)) break;
      } else {
        for (size_t i = 0; i < ne; i++)
          if (!strcmp(es[i].name, name)) {
            j.i = at;
            jfail(&j, "tensor '%s' appears twice", name);
          }
        if (!j.failed && ne == cap) {
          cap = cap ? 2 * cap : 16;
          Entry *n2 = realloc(es, cap * sizeof *n2);
          if (!n2)
            jfail(&j, "out of memory");
          else
            es = n2;
        }
        if (j.failed) {
          free(name);
          break;
        }
        memset(&es[ne], 0, sizeof es[ne]);
        es[ne].name = name;
        ne++;
        if (!jtensor(&j, &es[ne - 1])) break;
      }
      if (jpeek(&j) == ',') {
        j.i++;
        continue;
      }
      break;
    }
  }
  jexpect(&j, '}');
  if (!j.failed) {
    jws(&j);
    if (j.i < j.n) jfail(&j, "unexpected '%c' after the header's closing '}'", j.s[j.i]);
  }
  int ok = !j.failed;

  /* offsets: inside the data, the right length, no overlap, no holes */
  for (size_t i = 0; ok && i < ne; i++) {
    Entry *e = &es[i];
    long long cnt = shape_count(e->shape, e->rank);
    char sh[160];
    shape_text(sh, sizeof sh, e->shape, e->rank);
    if (e->begin > e->end) {
      set_err(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", path, e->name,
              e->begin, e->end);
      ok = 0;
    } else if (e->end > dsize) {
      set_err(err, errlen,
              "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data section (%llu bytes): "
              "the file is truncated or corrupt",
              path, e->name, e->begin, e->end, dsize);
      ok = 0;
    } else if (cnt < 0) {
      set_err(err, errlen, "%s: tensor '%s': shape %s is too large", path, e->name, sh);
      ok = 0;
    } else if (e->end - e->begin != 4ull * (unsigned long long)cnt) {
      set_err(err, errlen,
              "%s: tensor '%s': shape %s needs %llu bytes of F32, data_offsets [%llu, %llu] give %llu", path,
              e->name, sh, 4ull * (unsigned long long)cnt, e->begin, e->end, e->end - e->begin);
      ok = 0;
    }
  }
  if (ok && ne > 1) qsort(es, ne, sizeof *es, cmp_entry);
  unsigned long long pos = 0;
  for (size_t i = 0; ok && i < ne; i++) {
    if (es[i].begin < pos) {
      set_err(err, errlen, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", path,
              es[i - 1].name, es[i - 1].begin, es[i - 1].end, es[i].name, es[i].begin, es[i].end);
      ok = 0;
    } else if (es[i].begin > pos) {
      set_err(err, errlen, "%s: bytes %llu to %llu of the data section belong to no tensor", path, pos,
              es[i].begin);
      ok = 0;
    }
    pos = es[i].end;
  }
  if (ok && pos != dsize) {
    set_err(err, errlen, "%s: bytes %llu to %llu of the data section belong to no tensor", path, pos, dsize);
    ok = 0;
  }
  free(hdr);
  if (ok) {
    c->tensors = calloc(ne ? ne : 1, sizeof *c->tensors);
    c->path = malloc(strlen(path) + 1);
    if (!c->tensors || !c->path) {
      set_err(err, errlen, "%s: out of memory", path);
      free(c->tensors);
      free(c->path);
      c->tensors = NULL;
      c->path = NULL;
      ok = 0;
    }
  }
  if (!ok) {
    for (size_t i = 0; i < ne; i++) free(es[i].name);
    free(es);
    for (size_t i = 0; i < nmeta; i++) {
      free((char *)meta[i].key);
      free((char *)meta[i].value);
    }
    free(meta);
    free(block);
    return -1;
  }
  if (!host_is_little()) swap32(block, (size_t)(dsize / 4));
  strcpy(c->path, path);
  c->block = block;
  c->meta = meta;
  c->nmeta = nmeta;
  c->ntensors = ne;
  for (size_t i = 0; i < ne; i++) {
    CkptTensor *t = &c->tensors[i];
    t->name = es[i].name;
    t->rank = es[i].rank;
    memcpy(t->shape, es[i].shape, sizeof t->shape);
    t->data = (float *)((char *)block + es[i].begin);
  }
  free(es);
  return 0;
}

const CkptTensor *ckpt_tensor(const Ckpt *c, const char *name) {
  for (size_t i = 0; i < c->ntensors; i++)
    if (!strcmp(c->tensors[i].name, name)) return &c->tensors[i];
  return NULL;
}

const char *ckpt_meta(const Ckpt *c, const char *key) {
  for (size_t i = 0; i < c->nmeta; i++)
    if (!strcmp(c->meta[i].key, key)) return c->meta[i].value;
  return NULL;
}

int ckpt_load(const Ckpt *c, const char *name, const long long *shape, int rank, float *dst, char *err,
              size_t errlen) {
  const CkptTensor *t = ckpt_tensor(c, name);
  if (!t) {
    set_err(err, errlen, "%s: no tensor '%s'", c->path, name);
    return -1;
  }
  int same = t->rank == rank;
  for (int i = 0; same && i < rank; i++) same = t->shape[i] == shape[i];
  if (!same) {
    char have[160], want[160];
    shape_text(have, sizeof have, t->shape, t->rank);
    shape_text(want, sizeof want, shape, rank);
    set_err(err, errlen, "%s: tensor '%s' has shape %s, expected %s", c->path, name, have, want);
    return -1;
  }
  long long n = shape_count(shape, rank);
  if (n > 0) memcpy(dst, t->data, (size_t)n * sizeof(float));
  return 0;
}

int ckpt_meta_u64(const Ckpt *c, const char *key, uint64_t *out, char *err, size_t errlen) {
  const char *v = ckpt_meta(c, key);
  if (!v) {
    set_err(err, errlen, "%s: no metadata '%s'", c->path, key);
    return -1;
  }
  uint64_t x = 0;
  const char *p = v;
  if (!*p || (p[0] == '0' && p[1])) p = "";
  for (; *p; p++) {
    if (*p < '0' || *p > '9' || x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) break;
    x = x * 10 + (uint64_t)(*p - '0');
  }
  if (!*v || *p || (v[0] == '0' && v[1])) {
    set_err(err, errlen, "%s: metadata '%s' is '%s', expected an unsigned integer", c->path, key, v);
    return -1;
  }
  *out = x;
  return 0;
}

int ckpt_check_hash(const Ckpt *c, const char *vmx_hash, char *err, size_t errlen) {
  const char *h = ckpt_meta(c, CKPT_KEY_VMX_HASH);
  if (!h) {
    set_err(err, errlen, "%s: no %s in the metadata: not a vmrun checkpoint", c->path, CKPT_KEY_VMX_HASH);
    return -1;
  }
  if (strcmp(h, vmx_hash)) {
    set_err(err, errlen, "%s was written for a model with hash %s; this .vmx has hash %s", c->path, h,
            vmx_hash);
    return -1;
  }
  return 0;
}

int ckpt_state_name(char *buf, size_t cap, const char *graph, const char *param, const char *which) {
  return snprintf(buf, cap, CKPT_STATE_PREFIX "%s/%s/%s", graph, param, which);
}
