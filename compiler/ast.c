/* ast.c - node construction and the canonical dump behind --dump-ast. */
#include "ast.h"

#include <stdio.h>
#include <string.h>

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

static const char *join_kids(Arena *a, const Node *n, int from, int to, const char *sep) {
  const char *s = "";
  for (int i = from; i < to; i++) s = arena_printf(a, "%s%s%s", s, i > from ? sep : "", ast_text(a, ast_kid(n, i)));
  return s;
}

static int precedence(const Node *n) {
  if (n->kind == N_UNOP) return n->str[0] == 'n' ? 3 : 7;
  if (n->kind != N_BINOP) return 9;
  static const struct { const char *op; int level; } levels[] = {
      {"or", 1}, {"and", 2}, {"==", 4}, {"!=", 4}, {"<", 4}, {"<=", 4}, {">", 4}, {">=", 4},
      {"+", 5}, {"-", 5}, {"*", 6}, {"/", 6}, {"%", 6}, {"@", 6}};
  for (size_t i = 0; i < sizeof levels / sizeof *levels; i++)
    if (!strcmp(levels[i].op, n->str)) return levels[i].level;
  return 9;
}

/* The operand of an operator of level `outer`, parenthesized only when the
 * grammar needs it (a right operand of equal level keeps its parentheses:
 * a - (b - c)). */
static const char *operand(Arena *a, const Node *n, int outer, int right) {
  int level = precedence(n);
  const char *t = ast_text(a, n);
  return level < outer || (right && level == outer) ? arena_printf(a, "(%s)", t) : t;
}

const char *ast_text(Arena *a, const Node *n) {
  if (!n) return "";
  switch (n->kind) {
  case N_INT: return arena_printf(a, "%lld", n->ival);
  case N_FLOAT: return arena_printf(a, "%.9g", n->num);
  case N_BOOL: return n->ival ? "true" : "false";
  case N_STR: return arena_printf(a, "\"%s\"", n->str);
  case N_NAME: return n->str;
  case N_MEMBER: return arena_printf(a, "%s.%s", ast_text(a, ast_kid(n, 0)), n->str);
  case N_NAMEDARG: return arena_printf(a, "%s = %s", n->str, ast_text(a, ast_kid(n, 0)));
  case N_SAMPLEARG: return arena_printf(a, "%s ~ %s", n->str, ast_text(a, ast_kid(n, 0)));
  case N_LIST: return arena_printf(a, "[%s]", join_kids(a, n, 0, ast_nkids(n), ", "));
  case N_INDEX: return arena_printf(a, "%s[%s]", ast_text(a, ast_kid(n, 0)), ast_text(a, ast_kid(n, 1)));
  case N_BINOP:
    return arena_printf(a, "%s %s %s", operand(a, ast_kid(n, 0), precedence(n), 0), n->str,
                        operand(a, ast_kid(n, 1), precedence(n), 1));
  case N_UNOP:
    return arena_printf(a, "%s%s%s", n->str, n->str[0] == 'n' ? " " : "", operand(a, ast_kid(n, 0), precedence(n), 0));
  case N_LOGP: return arena_printf(a, "log %s", ast_text(a, ast_kid(n, 0)));
  case N_KL: return arena_printf(a, "KL(%s || %s)", ast_text(a, ast_kid(n, 0)), ast_text(a, ast_kid(n, 1)));
  case N_EXPECT: return arena_printf(a, "E[%s]", ast_text(a, ast_kid(n, 0)));
  case N_FLOW: return arena_printf(a, "flow %s through %s", ast_text(a, ast_kid(n, 0)), ast_text(a, ast_kid(n, 1)));
  case N_CALL:
    if (n->ival)
      return arena_printf(a, "%s(%s | %s)", ast_text(a, ast_kid(n, 0)), join_kids(a, n, 1, (int)n->ival, ", "),
                          join_kids(a, n, (int)n->ival, ast_nkids(n), ", "));
    return arena_printf(a, "%s(%s)", ast_text(a, ast_kid(n, 0)), join_kids(a, n, 1, ast_nkids(n), ", "));
  default: return ast_kind_name(n->kind);
  }
}
