/* util.c - fatal errors, allocation, files, JSON strings (util.h). */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void die(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fflush(stdout);
  fputs("vmrun: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(code);
}

void *xmalloc(size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (!p) die(1, "out of memory (%zu bytes)", n);
  return p;
}

char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(xmalloc(n), s, n);
}

char *xprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

int copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb");
  if (!in) return -1;
  FILE *out = fopen(to, "wb");
  if (!out) {
    fclose(in);
    return -1;
  }
  char buf[65536];
  size_t n;
  int rc = 0;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) rc = -1;
  if (ferror(in)) rc = -1;
  fclose(in);
  if (fclose(out)) rc = -1;
  return rc;
}

void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
    else fputc(*s, f);
  }
  fputc('"', f);
}

/* ------------------------------------------------------------ output files */

FILE *out_open(const char *path) {
  char *tmp = xprintf("%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) die(2, "cannot write %s: %s", tmp, strerror(errno));
  free(tmp);
  return f;
}

void out_commit(FILE *f, const char *path) {
  char *tmp = xprintf("%s.tmp", path);
  int bad = fflush(f) || ferror(f) || fsync(fileno(f));
  int err = errno;
  if (fclose(f)) bad = 1, err = errno;
  if (!bad && rename(tmp, path)) bad = 1, err = errno;
  if (bad) {
    remove(tmp);
    die(1, "cannot write %s: %s", path, strerror(err));
  }
  free(tmp);
}

void out_abort(FILE *f, const char *path) {
  char *tmp = xprintf("%s.tmp", path);
  fclose(f);
  remove(tmp);
  free(tmp);
}
