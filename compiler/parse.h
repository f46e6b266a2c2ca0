/* parse.h - the parser's entry point (grammar/vml.y, grammar/vml.l). */
#ifndef VML_PARSE_H
#define VML_PARSE_H

#include "arena.h"
#include "ast.h"
#include "diag.h"

/* Scanner and parser state for one file. */
struct Lexer {
  Diag *diag;
  Arena *arena;
  int file;   /* index in diag's file table */
  int offset; /* bytes consumed so far */
  Node *result;
};

/* Parses a loaded file; syntax errors go to diag.  Returns the N_FILE node,
 * possibly partial when there were errors (check diag_errors()). */
Node *parse_file(Diag *d, Arena *a, int file);

#endif
