/* util.h - what every vmrun command needs: fatal errors, allocation that
 * cannot fail, files and JSON strings.  A command either succeeds or exits
 * with a message; nothing here returns an error to check. */
#ifndef VML_UTIL_H
#define VML_UTIL_H

#include <stddef.h>
#include <stdio.h>

/* "vmrun: MESSAGE" on stderr, then exit(code): 2 for bad input or usage,
 * 1 for a failure while running. */
void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

void *xmalloc(size_t n); /* zeroed */
char *xstrdup(const char *s);
char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

double now_seconds(void); /* monotonic */
int is_dir(const char *path);
int is_file(const char *path);
int ends_with(const char *s, const char *suffix);

/* Copies a file; -1 with errno set on failure. */
int copy_file(const char *from, const char *to);

/* An output file that appears whole or not at all: out_open creates
 * PATH.tmp (exits when it cannot), out_commit closes, syncs and renames
 * it to path (exits, removing it, when any of that fails); out_abort
 * gives it up. */
FILE *out_open(const char *path);
void out_commit(FILE *f, const char *path);
void out_abort(FILE *f, const char *path); /* closes and removes PATH.tmp */

/* s as a JSON string, quoted and escaped. */
void json_str(FILE *f, const char *s);

#endif
