/* diag.c - the file table, the line map and the caret printer. */
#include "diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const Span span_none = {-1, 0, 0};

void diag_init(Diag *d, FILE *out) {
  memset(d, 0, sizeof *d);
  d->out = out;
  d->max_errors = 20;
}

void diag_free(Diag *d) {
  for (int i = 0; i < d->nfiles; i++) {
    free(d->files[i].text);
    free(d->files[i].line_start);
    free((char *)d->files[i].path);
  }
  free(d->files);
  memset(d, 0, sizeof *d);
}

int diag_add_text(Diag *d, const char *path, const char *text, int len) {
  if (d->nfiles == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 8;
    d->files = realloc(d->files, sizeof *d->files * (size_t)d->cap);
    if (!d->files) abort();
  }
  SourceFile *f = &d->files[d->nfiles];
  f->path = strdup(path);
  f->text = malloc((size_t)len + 1);
  if (!f->path || !f->text) abort();
  memcpy(f->text, text, (size_t)len);
  f->text[len] = '\0';
  f->len = len;
  int n = 1;
  for (int i = 0; i < len; i++) n += text[i] == '\n';
  f->line_start = malloc(sizeof(int) * (size_t)n);
  if (!f->line_start) abort();
  f->nlines = 0;
  f->line_start[f->nlines++] = 0;
  for (int i = 0; i < len; i++)
    if (text[i] == '\n') f->line_start[f->nlines++] = i + 1;
  return d->nfiles++;
}

int diag_load_file(Diag *d, const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return -1;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (!buf) abort();
  size_t got;
  while ((got = fread(buf + len, 1, cap - len, fp)) > 0) {
    len += got;
    if (len == cap) {
      if (cap > (size_t)1 << 28) { /* a model file is never 256 MiB */
        free(buf);
        fclose(fp);
        errno = EFBIG;
        return -1;
      }
      cap *= 2;
      buf = realloc(buf, cap);
      if (!buf) abort();
    }
  }
  int err = ferror(fp);
  fclose(fp);
  if (err) {
    free(buf);
    errno = EIO;
    return -1;
  }
  int id = diag_add_text(d, path, buf, (int)len);
  free(buf);
  return id;
}

Span span_make(int file, int lo, int hi) {
  Span s = {file, lo, hi};
  return s;
}

Span span_join(Span a, Span b) {
  if (a.file < 0) return b;
  if (b.file < 0 || b.file != a.file) return a;
  Span s = {a.file, a.lo < b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi};
  return s;
}

static int line_of(const SourceFile *f, int off) {
  int lo = 0, hi = f->nlines - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (f->line_start[mid] <= off)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

void diag_line_col(const Diag *d, Span s, int *line, int *col) {
  *line = *col = 0;
  if (s.file < 0 || s.file >= d->nfiles) return;
  const SourceFile *f = &d->files[s.file];
  int l = line_of(f, s.lo);
  *line = l + 1;
  *col = s.lo - f->line_start[l] + 1;
}

/* The source line under the message, tabs kept so the caret lines up,
 * other control bytes shown as '?' so junk input cannot garble a terminal. */
static void print_excerpt(Diag *d, Span s) {
  const SourceFile *f = &d->files[s.file];
  int l = line_of(f, s.lo);
  int start = f->line_start[l], end = start;
  while (end < f->len && f->text[end] != '\n') end++;
  if (end - start > 200) end = start + 200;
  fputs("  ", d->out);
  for (int i = start; i < end; i++) {
    unsigned char c = (unsigned char)f->text[i];
    fputc(c == '\t' || c >= 0x20 ? c : '?', d->out);
  }
  fputs("\n  ", d->out);
  int lo = s.lo < end ? s.lo : end;
  for (int i = start; i < lo; i++) fputc(f->text[i] == '\t' ? '\t' : ' ', d->out);
  int hi = s.hi < end ? s.hi : end;
  fputc('^', d->out);
  for (int i = lo + 1; i < hi; i++) fputc('~', d->out);
  fputc('\n', d->out);
}

static void report(Diag *d, Span s, const char *kind, const char *fmt, va_list ap) {
  if (s.file >= 0 && s.file < d->nfiles) {
    int line, col;
    diag_line_col(d, s, &line, &col);
    fprintf(d->out, "%s:%d:%d: %s: ", d->files[s.file].path, line, col, kind);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    print_excerpt(d, s);
  } else {
    fprintf(d->out, "vmc: %s: ", kind);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
  }
}

void diag_error(Diag *d, Span s, const char *fmt, ...) {
  d->errors++;
  if (d->errors > d->max_errors) {
    d->suppressed++;
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  report(d, s, "error", fmt, ap);
  va_end(ap);
}

void diag_warning(Diag *d, Span s, const char *fmt, ...) {
  d->warnings++;
  if (d->errors > d->max_errors) return;
  va_list ap;
  va_start(ap, fmt);
  report(d, s, "warning", fmt, ap);
  va_end(ap);
}

void diag_note(Diag *d, Span s, const char *fmt, ...) {
  if (d->errors > d->max_errors) return;
  va_list ap;
  va_start(ap, fmt);
  report(d, s, "note", fmt, ap);
  va_end(ap);
}

int diag_errors(const Diag *d) { return d->errors; }

void diag_finish(Diag *d) {
  if (d->suppressed)
    fprintf(d->out, "vmc: %d more error%s not shown\n", d->suppressed,
            d->suppressed == 1 ? "" : "s");
}
