/* diag.h - source files, spans and diagnostics printed like a C compiler's:
 *   file:line:col: error: message
 *     source line
 *     ^~~~
 * Every error of a run is counted and printed (up to a cap); the caller
 * decides from diag_errors() whether to go on.  Nothing here exits. */
#ifndef VML_DIAG_H
#define VML_DIAG_H

#include <stdio.h>

/* A byte range [lo, hi) of one loaded source file. */
typedef struct {
  int file; /* index in the Diag's file table; -1 for none */
  int lo, hi;
} Span;

typedef struct {
  const char *path; /* as the user named it */
  char *text;       /* NUL-terminated contents */
  int len;
  int *line_start; /* byte offset of each line */
  int nlines;
} SourceFile;

typedef struct {
  SourceFile *files;
  int nfiles, cap;
  int errors, warnings;
  int max_errors; /* printing stops after this many; counting goes on */
  int suppressed;
  FILE *out;
} Diag;

void diag_init(Diag *d, FILE *out);
void diag_free(Diag *d);

/* Reads a file into the table; returns its index, or -1 (errno set). */
int diag_load_file(Diag *d, const char *path);
/* Adds text under a name (used for -D values and tests). */
int diag_add_text(Diag *d, const char *path, const char *text, int len);

Span span_make(int file, int lo, int hi);
Span span_join(Span a, Span b);
extern const Span span_none;

void diag_line_col(const Diag *d, Span s, int *line, int *col);

void diag_error(Diag *d, Span s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_warning(Diag *d, Span s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A follow-up line attached to the previous diagnostic. */
void diag_note(Diag *d, Span s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int diag_errors(const Diag *d);
/* Prints "N errors generated." style summary if anything was suppressed. */
void diag_finish(Diag *d);

#endif
