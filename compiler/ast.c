/* ast.c - node construction and the canonical dump behind --dump-ast. */
#include "ast.h"

#include <math.h>
#include <stdio.h>

static const char *kind_names[] = {
#define X(k, s) s,
    AST_KINDS(X)
#undef X
};

_Static_assert(sizeof kind_names / sizeof *kind_names == N_KIND_COUNT,
               "every node kind has a dump name");

const char *ast_kind_name(NodeKind k) { return kind_names[k]; }

Node *ast_new(Arena *a, NodeKind k, Span s) {
  Node *n = arena_alloc(a, sizeof *n);
  n->kind = k;
  n->span = s;
  return n;
}

Node *ast_add(Arena *a, Node *parent, Node *kid) {
  vec_push(a, &parent->kids, kid);
  return parent;
}

Node *ast_kid(const Node *n, int i) {
  return n && i >= 0 && i < n->kids.len ? n->kids.items[i] : NULL;
}

int ast_nkids(const Node *n) { return n ? n->kids.len : 0; }

static void dump_str(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", out);
    else if (c < 0x20 || c == 0x7f)
      fprintf(out, "\\x%02x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

static void dump(FILE *out, const Diag *d, const Node *n, int depth) {
  for (int i = 0; i < depth; i++) fputs("  ", out);
  if (!n) {
    fputs("-\n", out);
    return;
  }
  int line, col;
  diag_line_col(d, n->span, &line, &col);
  fprintf(out, "(%s", kind_names[n->kind]);
  switch (n->kind) {
  case N_INT:
    fprintf(out, " %lld", n->ival);
    break;
  case N_FLOAT:
    fprintf(out, " %.17g", n->num);
    break;
  case N_BOOL:
    fputs(n->ival ? " true" : " false", out);
    break;
  case N_STR:
    fputc(' ', out);
    dump_str(out, n->str);
    break;
  case N_STEP:
    fprintf(out, " %s %lld× %s", n->num != 0 ? "maximize" : "minimize", n->ival, n->str);
    break;
  case N_CALL:
    if (n->ival) fprintf(out, " bar=%lld", n->ival);
    break;
  case N_FN:
    fprintf(out, " %s %s", n->ival ? "net" : "fn", n->str);
    break;
  case N_ROLE:
    fprintf(out, " %s %s", n->str, n->str2);
    if (n->ival & ROLE_IMPLICIT) fputs(" implicit", out);
    if (n->ival & ROLE_AUTOREGRESSIVE) fputs(" autoregressive", out);
    break;
  default:
    if (n->str) fprintf(out, " %s", n->str);
    if (n->str2) fprintf(out, " %s", n->str2);
  }
  fprintf(out, " @%d:%d", line, col);
  if (!n->kids.len) {
    fputs(")\n", out);
    return;
  }
  fputc('\n', out);
  for (int i = 0; i < n->kids.len; i++) dump(out, d, n->kids.items[i], depth + 1);
  for (int i = 0; i < depth; i++) fputs("  ", out);
  fputs(")\n", out);
}

void ast_dump(FILE *out, const Diag *d, const Node *n) { dump(out, d, n, 0); }
