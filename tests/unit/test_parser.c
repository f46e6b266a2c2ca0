/* test_parser.c - the grammar (grammar/vml.y) through parse_file: the tree
 * built for each construct (kinds, strings, child slots), spans, error
 * counts and recovery; and the diagnostics module (compiler/diag.c): the
 * line map, the caret printer, the error cap.
 *
 * Trees are compared as compact S-expressions written by sx() below (kind,
 * then str/str2/ival where they mean something, then children; '-' for an
 * absent child), so a test reads like the construct it checks. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "parse.h"

/* ------------------------------------------------------------ helpers */

typedef struct {
  Diag d;
  Arena *a;
  FILE *out;
  char *msgs;
  size_t msgs_len;
  Node *file;
} Parse;

static Parse *parse_n(const char *text, int len) {
  Parse *p = calloc(1, sizeof *p);
  ck_assert_ptr_nonnull(p);
  p->out = open_memstream(&p->msgs, &p->msgs_len);
  ck_assert_ptr_nonnull(p->out);
  diag_init(&p->d, p->out);
  p->a = arena_new();
  int f = diag_add_text(&p->d, "t.vm", text, len);
  p->file = parse_file(&p->d, p->a, f);
  fflush(p->out);
  ck_assert_ptr_nonnull(p->file);
  ck_assert_int_eq(p->file->kind, N_FILE);
  return p;
}

static Parse *parse(const char *text) { return parse_n(text, (int)strlen(text)); }

static void parse_free(Parse *p) {
  diag_free(&p->d);
  fclose(p->out);
  free(p->msgs);
  arena_free(p->a);
  free(p);
}

static const char *msgs(const Parse *p) { return p->msgs ? p->msgs : ""; }

/* Parses text that must be free of errors. */
static Parse *parse_ok(const char *text) {
  Parse *p = parse(text);
  ck_assert_msg(diag_errors(&p->d) == 0, "unexpected errors for:\n%s\n%s", text, msgs(p));
  return p;
}

/* Follows a path of child indexes: at(n, 2, 0, 1) = kid 1 of kid 0 of kid 2. */
static Node *at_path(Node *n, int depth, const int *path) {
  for (int i = 0; i < depth; i++) {
    ck_assert_msg(n != NULL, "path step %d reaches an absent child", i);
    ck_assert_msg(path[i] < ast_nkids(n), "path step %d: %s has %d children, not %d", i,
                  ast_kind_name(n->kind), ast_nkids(n), path[i] + 1);
    n = ast_kid(n, path[i]);
  }
  return n;
}
#define at(n, ...)                                                                  \
  at_path((n), (int)(sizeof(int[]){__VA_ARGS__} / sizeof(int)), (int[]){__VA_ARGS__})

typedef struct {
  char *buf;
  size_t len;
  FILE *f;
} Str;

static void sx_rec(FILE *f, const Node *n) {
  if (!n) {
    fputc('-', f);
    return;
  }
  fprintf(f, "(%s", ast_kind_name(n->kind));
  switch (n->kind) {
  case N_INT:
    fprintf(f, " %lld", n->ival);
    break;
  case N_FLOAT:
    fprintf(f, " %g", n->num);
    break;
  case N_BOOL:
    fputs(n->ival ? " true" : " false", f);
    break;
  case N_STR:
    fprintf(f, " \"%s\"", n->str);
    break;
  case N_STEP:
    fprintf(f, " %s %lld %s", n->num != 0 ? "max" : "min", n->ival, n->str);
    break;
  case N_CALL:
    if (n->ival) fprintf(f, " |%lld", n->ival);
    break;
  case N_FN:
    fprintf(f, " %s %s", n->ival ? "net" : "fn", n->str);
    break;
  case N_ROLE:
    fprintf(f, " %s %s", n->str, n->str2);
    if (n->ival & ROLE_IMPLICIT) fputs(" implicit", f);
    if (n->ival & ROLE_AUTOREGRESSIVE) fputs(" autoregressive", f);
    break;
  default:
    if (n->str) fprintf(f, " %s", n->str);
    if (n->str2) fprintf(f, " %s", n->str2);
  }
  for (int i = 0; i < n->kids.len; i++) {
    fputc(' ', f);
    sx_rec(f, n->kids.items[i]);
  }
  fputc(')', f);
}

/* The S-expression of a node, in a buffer owned by the parse's arena. */
static const char *sx(Parse *p, const Node *n) {
  Str s = {0};
  s.f = open_memstream(&s.buf, &s.len);
  sx_rec(s.f, n);
  fclose(s.f);
  char *r = arena_strdup(p->a, s.buf);
  free(s.buf);
  return r;
}

/* The expression of `fn f() = EXPR`, as an S-expression. */
static void expect_expr(const char *expr, const char *want) {
  char text[1024];
  snprintf(text, sizeof text, "fn f() = %s\n", expr);
  Parse *p = parse_ok(text);
  ck_assert_str_eq(sx(p, at(p->file, 0, 1)), want);
  parse_free(p);
}

/* The first item of `model m { ITEM }`, as an S-expression. */
static void expect_item(const char *item, const char *want) {
  char text[2048];
  snprintf(text, sizeof text, "model m {\n%s\n}\n", item);
  Parse *p = parse_ok(text);
  ck_assert_int_ge(ast_nkids(at(p->file, 0)), 1);
  ck_assert_str_eq(sx(p, at(p->file, 0, 0)), want);
  parse_free(p);
}

/* The body of `fn f() { STMTS }`, as an S-expression. */
static void expect_block(const char *stmts, const char *want) {
  char text[2048];
  snprintf(text, sizeof text, "fn f() {\n%s\n}\n", stmts);
  Parse *p = parse_ok(text);
  ck_assert_str_eq(sx(p, at(p->file, 0, 1)), want);
  parse_free(p);
}

static void expect_line_col(const Parse *p, const Node *n, int line, int col) {
  int l, c;
  diag_line_col(&p->d, n->span, &l, &c);
  ck_assert_msg(l == line && c == col, "%s at %d:%d, expected %d:%d", ast_kind_name(n->kind), l, c,
                line, col);
}

/* Parses text with errors; returns the parse for more checks. */
static Parse *parse_bad(const char *text, int errors) {
  Parse *p = parse(text);
  ck_assert_msg(diag_errors(&p->d) == errors, "%d errors, expected %d, for:\n%s\n%s",
                diag_errors(&p->d), errors, text, msgs(p));
  return p;
}

/* ------------------------------------------------------ top level */

START_TEST(empty_file) {
  Parse *p = parse_ok("");
  ck_assert_int_eq(ast_nkids(p->file), 0);
  parse_free(p);
  p = parse_ok("  # only a comment\n\n");
  ck_assert_int_eq(ast_nkids(p->file), 0);
  parse_free(p);
}
END_TEST

START_TEST(imports) {
  Parse *p = parse_ok("import nn\nimport nn as n\n");
  ck_assert_str_eq(sx(p, p->file), "(file (import nn) (import nn n))");
  Node *i = at(p->file, 1);
  ck_assert_str_eq(i->str, "nn");
  ck_assert_str_eq(i->str2, "n");
  ck_assert_ptr_null(at(p->file, 0)->str2);
  ck_assert_int_eq(i->span.lo, 10);
  ck_assert_int_eq(i->span.hi, 24);
  parse_free(p);
}
END_TEST

START_TEST(functions) {
  Parse *p = parse_ok("fn f(x: [n, 3], k, act = relu, y: [m] = z,) { return x }\n"
                      "net g() = 1\n");
  ck_assert_str_eq(sx(p, at(p->file, 0)),
                   "(fn fn f (params (param x (shape (name n) (int 3)) -) (param k - -) "
                   "(param act - (name relu)) (param y (shape (name m)) (name z))) "
                   "(block (return (name x))))");
  ck_assert_str_eq(sx(p, at(p->file, 1)), "(fn net g (params) (int 1))");
  ck_assert_int_eq(at(p->file, 1)->ival, 1);
  ck_assert_int_eq(at(p->file, 0)->ival, 0);
  parse_free(p);
}
END_TEST

START_TEST(model_and_fn_together) {
  Parse *p = parse_ok("import nn\nfn f(x) = x\nmodel a { }\nmodel b { ; ; }\n");
  ck_assert_int_eq(ast_nkids(p->file), 4);
  ck_assert_str_eq(sx(p, at(p->file, 2)), "(model a)");
  ck_assert_str_eq(sx(p, at(p->file, 3)), "(model b)");
  parse_free(p);
}
END_TEST

/* ------------------------------------------------------ model items */

START_TEST(hyper) {
  expect_item("hyper a = 1, b = 0.5, c = true, w = [1, 2]",
              "(hyper (bind a (int 1)) (bind b (float 0.5)) (bind c (bool true)) "
              "(bind w (list (int 1) (int 2))))");
}
END_TEST

START_TEST(data_forms) {
  /* [0] shape, [1] classes, [2] range, [3] source: always four slots. */
  expect_item("data x : bit[784] from files(\"mnist\")",
              "(data x bit (shape (int 784)) - - (call (name files) (str \"mnist\")))");
  expect_item("data y : cat(10)[] from files(\"y\")",
              "(data y cat (shape) (int 10) - (call (name files) (str \"y\")))");
  expect_item("data x : real[1, 28, 28] in [-1, 1] from synthetic.gaussian(n = 5)",
              "(data x real (shape (int 1) (int 28) (int 28)) - "
              "(list (unop - (int 1)) (int 1)) "
              "(call (member gaussian (name synthetic)) (namedarg n (int 5))))");
}
END_TEST

START_TEST(param_decl) {
  expect_item("param e : [K, D] init uniform(-1 / K, 1 / K)",
              "(paramdecl e (shape (name K) (name D)) (call (name uniform) "
              "(binop / (unop - (int 1)) (name K)) (binop / (int 1) (name K))))");
  expect_item("param b : [4]", "(paramdecl b (shape (int 4)) -)");
}
END_TEST

START_TEST(roles) {
  expect_item("encoder q(z | x) { z ~ Normal(0, 1) }",
              "(role encoder q (list (name z)) (list (name x)) "
              "(block (draw z (call (name Normal) (int 0) (int 1)) -)))");
  expect_item("decoder p(x | z, c) = f(z)",
              "(role decoder p (list (name x)) (list (name z) (name c)) (call (name f) (name z)))");
  expect_item("prior p(z) = Normal(0, 1)",
              "(role prior p (list (name z)) - (call (name Normal) (int 0) (int 1)))");
  expect_item("prior p(z2 | z1) = Normal(z1, 1)",
              "(role prior p (list (name z2)) (list (name z1)) (call (name Normal) (name z1) (int 1)))");
  expect_item("critic T(x, z) = g(x)",
              "(role critic T (params (param x - -) (param z - -)) - (call (name g) (name x)))");
  expect_item("encoder q(z | x) implicit { z = x }",
              "(role encoder q implicit (list (name z)) (list (name x)) "
              "(block (assign (list (name z)) (name x))))");
  expect_item("prior r(c) autoregressive = Categorical(logits = c)",
              "(role prior r autoregressive (list (name c)) - "
              "(call (name Categorical) (namedarg logits (name c))))");
  expect_item("prior p(z) = flow Normal(0, 1) through nn.made_af(z, [4])",
              "(role prior p (list (name z)) - (flow (call (name Normal) (int 0) (int 1)) "
              "(call (member made_af (name nn)) (name z) (list (int 4)))))");
}
END_TEST

START_TEST(role_flags) {
  Parse *p = parse_ok("model m { encoder q(z | x) implicit autoregressive = x }");
  Node *r = at(p->file, 0, 0);
  ck_assert_int_eq(r->kind, N_ROLE);
  ck_assert_int_eq(r->ival, ROLE_IMPLICIT | ROLE_AUTOREGRESSIVE);
  ck_assert_str_eq(r->str, "encoder");
  ck_assert_str_eq(r->str2, "q");
  ck_assert_int_eq(ast_nkids(r), 3);
  parse_free(p);
}
END_TEST

START_TEST(losses) {
  expect_item("loss elbo = E[log p(x | z)] - KL(q(z | x) || p(z))",
              "(loss elbo (binop - (expect (logp (call |2 (name p) (name x) (name z)))) "
              "(kl (call |2 (name q) (name z) (name x)) (call (name p) (name z)))))");
  expect_item("loss a = bce(T(x, z ~ q(z | x)), 1)",
              "(loss a (call (name bce) (call (name T) (name x) "
              "(samplearg z (call |2 (name q) (name z) (name x)))) (int 1)))");
}
END_TEST

START_TEST(train_block) {
  expect_item("train {\n"
              "  2 \xc3\x97 minimize adv with adam(lr = 1e-4) over T\n"
              "  maximize elbo with adam() over q.h.x, p\n"
              "  3 * maximize elbo with sgd(lr = 1) over q; batch 64\n"
              "  epochs 5\n"
              "}",
              "(train (step min 2 adv (call (name adam) (namedarg lr (float 0.0001))) "
              "(list (name T))) "
              "(step max 1 elbo (call (name adam)) (list (name q.h.x) (name p))) "
              "(step max 3 elbo (call (name sgd) (namedarg lr (int 1))) (list (name q))) "
              "(setting batch (int 64)) (setting epochs (int 5)))");
  expect_item("train { stage a { freeze q, e; minimize l with adam() over p; steps 10 } }",
              "(train (stage a (freeze (list (name q) (name e))) "
              "(step min 1 l (call (name adam)) (list (name p))) (setting steps (int 10))))");
}
END_TEST

START_TEST(step_fields) {
  Parse *p = parse_ok("model m { train { 7 \xc3\x97 maximize l with adam() over q } }");
  Node *s = at(p->file, 0, 0, 0);
  ck_assert_int_eq(s->kind, N_STEP);
  ck_assert_str_eq(s->str, "l");
  ck_assert_int_eq(s->ival, 7);
  ck_assert(s->num == 1);
  expect_line_col(p, s, 1, 19);
  parse_free(p);
}
END_TEST

START_TEST(local_fn_and_net_in_model) {
  expect_item("fn h(x) = x", "(fn fn h (params (param x - -)) (name x))");
  expect_item("net shared(x: [784]) { return x }",
              "(fn net shared (params (param x (shape (int 784)) -)) (block (return (name x))))");
}
END_TEST

/* ------------------------------------------------------ statements */

START_TEST(statements) {
  expect_block("a, b = g(x)", "(block (assign (list (name a) (name b)) (call (name g) (name x))))");
  expect_block("eps ~ Normal(0, 1) : [64]",
               "(block (draw eps (call (name Normal) (int 0) (int 1)) (shape (int 64))))");
  expect_block("c ~ Bernoulli(logits = y) estimator straight_through",
               "(block (draw c straight_through (call (name Bernoulli) (namedarg logits (name y))) -))");
  expect_block("for i in range(3) { y = i }",
               "(block (for i (call (name range) (int 3)) (block (assign (list (name y)) (name i)))))");
  expect_block("if a { } else if b { } else { x = 1 }",
               "(block (if (name a) (block) (if (name b) (block) "
               "(block (assign (list (name x)) (int 1))))))");
  expect_block("if a { }", "(block (if (name a) (block) -))");
  expect_block("param W : [2, 3] init glorot; return x, W",
               "(block (paramdecl W (shape (int 2) (int 3)) (name glorot)) "
               "(return (name x) (name W)))");
  expect_block("; ; x = 1 ;; y = 2", "(block (assign (list (name x)) (int 1)) "
                                     "(assign (list (name y)) (int 2)))");
}
END_TEST

/* ------------------------------------------------------ expressions */

START_TEST(precedence) {
  expect_expr("a + b * c", "(binop + (name a) (binop * (name b) (name c)))");
  expect_expr("a - b - c", "(binop - (binop - (name a) (name b)) (name c))");
  expect_expr("a * b @ c / d % e",
              "(binop % (binop / (binop @ (binop * (name a) (name b)) (name c)) (name d)) (name e))");
  expect_expr("-a @ b", "(binop @ (unop - (name a)) (name b))");
  expect_expr("- - a", "(unop - (unop - (name a)))");
  expect_expr("a or b and c", "(binop or (name a) (binop and (name b) (name c)))");
  expect_expr("not a == b", "(unop not (binop == (name a) (name b)))");
  expect_expr("not a and b", "(binop and (unop not (name a)) (name b))");
  expect_expr("a + 1 < b * 2", "(binop < (binop + (name a) (int 1)) (binop * (name b) (int 2)))");
  expect_expr("(a + b) * c", "(binop * (binop + (name a) (name b)) (name c))");
  expect_expr("a <= b", "(binop <= (name a) (name b))");
  expect_expr("a != b", "(binop != (name a) (name b))");
  expect_expr("a >= b", "(binop >= (name a) (name b))");
  expect_expr("a > b", "(binop > (name a) (name b))");
  expect_expr("2 \xc3\x97 3", "(binop * (int 2) (int 3))");
}
END_TEST

START_TEST(comparisons_do_not_chain) {
  /* %nonassoc: a < b < c is an error, not (a < b) < c. */
  Parse *p = parse_bad("fn f(a, b, c) = a < b < c\n", 1);
  ck_assert_str_eq(msgs(p), "t.vm:1:23: error: syntax error, unexpected '<'\n"
                            "  fn f(a, b, c) = a < b < c\n"
                            "                        ^\n");
  parse_free(p);
  p = parse_bad("fn f(a, b, c) = a == b != c\n", 1);
  parse_free(p);
}
END_TEST

START_TEST(postfix) {
  expect_expr("v[0].x(1)", "(call (member x (index (name v) (int 0))) (int 1))");
  expect_expr("nn.mlp(x, [1, 2,], act = relu)",
              "(call (member mlp (name nn)) (name x) (list (int 1) (int 2)) (namedarg act (name relu)))");
  expect_expr("f()(2)", "(call (call (name f)) (int 2))");
  expect_expr("[]", "(list)");
  expect_expr("[[1], []]", "(list (list (int 1)) (list))");
  expect_expr("\"s\"", "(str \"s\")");
  expect_expr("false", "(bool false)");
}
END_TEST

START_TEST(log_forms) {
  /* `log p(...)` is a log-density; `log(...)` the elementwise function. */
  expect_expr("log p(x | z)", "(logp (call |2 (name p) (name x) (name z)))");
  expect_expr("log p(z)", "(logp (call (name p) (name z)))");
  expect_expr("log(x)", "(call (name log) (name x))");
  expect_expr("log (x)", "(call (name log) (name x))");
  expect_expr("log(x, base = 2)", "(call (name log) (name x) (namedarg base (int 2)))");
  expect_expr("log p(x, y | z, w)", "(logp (call |3 (name p) (name x) (name y) (name z) (name w)))");
  expect_expr("-log p(x | z) + log(y)",
              "(binop + (unop - (logp (call |2 (name p) (name x) (name z)))) (call (name log) (name y)))");
  expect_expr("log(log(x))", "(call (name log) (call (name log) (name x)))");
}
END_TEST

START_TEST(log_density_needs_a_name) {
  Parse *p = parse_bad("fn f() = log nn.p(x | z)\n", 1);
  parse_free(p);
  p = parse_bad("fn f() = log(x | z)\n", 1);
  parse_free(p);
}
END_TEST

START_TEST(conditional_calls) {
  Parse *p = parse_ok("fn f() = q(z1, z2 | x, c = 1)\n");
  Node *c = at(p->file, 0, 1);
  ck_assert_int_eq(c->kind, N_CALL);
  ck_assert_int_eq(c->ival, 3); /* callee, z1, z2 | x, c */
  ck_assert_int_eq(ast_nkids(c), 5);
  ck_assert_str_eq(sx(p, c), "(call |3 (name q) (name z1) (name z2) (name x) (namedarg c (int 1)))");
  parse_free(p);
}
END_TEST

START_TEST(kl_expect_flow_sample) {
  expect_expr("KL(q(z | x) || p(z))",
              "(kl (call |2 (name q) (name z) (name x)) (call (name p) (name z)))");
  expect_expr("E[f(x) + 1]", "(expect (binop + (call (name f) (name x)) (int 1)))");
  expect_expr("T(x, z ~ p(z))", "(call (name T) (name x) (samplearg z (call (name p) (name z))))");
  expect_expr("flow Normal(0, 1) through t(z)",
              "(flow (call (name Normal) (int 0) (int 1)) (call (name t) (name z)))");
  expect_expr("mean(q.h)", "(call (name mean) (member h (name q)))");
}
END_TEST

/* ------------------------------------------------------ spans */

START_TEST(spans) {
  const char *text = "model vae {\n"
                     "  loss l = a + f(b, c)\n"
                     "  hyper h = 1\n"
                     "}\n";
  Parse *p = parse_ok(text);
  Node *m = at(p->file, 0);
  ck_assert_int_eq(m->span.lo, 0);
  ck_assert_int_eq(m->span.hi, (int)strlen(text) - 1);
  Node *loss = at(m, 0);
  expect_line_col(p, loss, 2, 3);
  ck_assert_int_eq(loss->span.hi - loss->span.lo, (int)strlen("loss l = a + f(b, c)"));
  Node *plus = at(loss, 0);
  expect_line_col(p, plus, 2, 12);
  ck_assert_int_eq(plus->span.hi, loss->span.hi);
  Node *call = at(plus, 1);
  expect_line_col(p, call, 2, 16);
  ck_assert_int_eq(call->span.hi - call->span.lo, (int)strlen("f(b, c)"));
  expect_line_col(p, at(call, 2), 2, 21);
  expect_line_col(p, at(m, 1), 3, 3);
  expect_line_col(p, at(m, 1, 0), 3, 9);
  parse_free(p);
}
END_TEST

START_TEST(every_span_inside_the_file) {
  const char *text = "import nn\nmodel m { hyper a = 1\n encoder q(z | x) { z ~ N(x) : [2] }\n"
                     " loss l = log p(x | z)\n train { 2 \xc3\x97 minimize l with s() over q } }\n";
  Parse *p = parse_ok(text);
  /* Walk the tree without recursion; spans nest in their parents'. */
  Node *stack[512];
  Node *parent[512];
  int n = 0;
  stack[n] = p->file;
  parent[n++] = NULL;
  while (n) {
    Node *x = stack[--n], *up = parent[n];
    ck_assert_int_eq(x->span.file, 0);
    ck_assert_int_le(0, x->span.lo);
    ck_assert_int_le(x->span.lo, x->span.hi);
    ck_assert_int_le(x->span.hi, (int)strlen(text));
    if (up) {
      ck_assert_msg(up->span.lo <= x->span.lo && x->span.hi <= up->span.hi,
                    "%s [%d,%d) outside its parent %s [%d,%d)", ast_kind_name(x->kind), x->span.lo,
                    x->span.hi, ast_kind_name(up->kind), up->span.lo, up->span.hi);
    }
    for (int i = 0; i < ast_nkids(x); i++)
      if (ast_kid(x, i)) {
        ck_assert_int_lt(n, 512);
        stack[n] = ast_kid(x, i);
        parent[n++] = x;
      }
  }
  parse_free(p);
}
END_TEST

/* ------------------------------------------------------ errors */

START_TEST(syntax_error_message) {
  Parse *p = parse_bad("model m {\n  data x bit[4] from s\n}\n", 1);
  ck_assert_str_eq(msgs(p), "t.vm:2:10: error: syntax error, unexpected identifier, expecting ':'\n"
                            "    data x bit[4] from s\n"
                            "           ^~~\n");
  parse_free(p);
}
END_TEST

START_TEST(recovery_keeps_later_items) {
  /* An error in one item: the items after it are still in the tree. */
  Parse *p = parse_bad("model m {\n"
                       "  hyper a = = 1\n"
                       "  loss l = 1\n"
                       "  loss k = (\n"
                       "  hyper b = 2\n"
                       "}\n"
                       "model n { hyper c = 3 }\n",
                       2);
  ck_assert_int_eq(ast_nkids(p->file), 2);
  ck_assert_str_eq(sx(p, at(p->file, 0)),
                   "(model m (loss l (int 1)) (hyper (bind b (int 2))))");
  ck_assert_str_eq(sx(p, at(p->file, 1)), "(model n (hyper (bind c (int 3))))");
  parse_free(p);
}
END_TEST

START_TEST(recovery_in_blocks_and_train) {
  Parse *p = parse_bad("fn f(x) {\n"
                       "  y = (x +)\n"
                       "  z = x\n"
                       "  return z\n"
                       "}\n"
                       "model m {\n"
                       "  train { minimize l over q; batch 4 }\n"
                       "}\n",
                       2);
  ck_assert_str_eq(sx(p, at(p->file, 0, 1)),
                   "(block (assign (list (name z)) (name x)) (return (name z)))");
  ck_assert_str_eq(sx(p, at(p->file, 1, 0)), "(train (setting batch (int 4)))");
  parse_free(p);
}
END_TEST

START_TEST(scanner_errors_count) {
  /* Scanner errors are counted even when the parser is recovering. */
  Parse *p = parse_bad("model m { hyper a = $ $ $ }\n", 3);
  parse_free(p);
}
END_TEST

START_TEST(top_level_junk) {
  Parse *p = parse_bad("x = 1\nmodel m { }\n", 1);
  ck_assert_str_eq(msgs(p), "t.vm:1:1: error: syntax error, unexpected identifier\n"
                            "  x = 1\n"
                            "  ^\n");
  ck_assert_int_eq(ast_nkids(p->file), 1);
  ck_assert_str_eq(sx(p, at(p->file, 0)), "(model m)");
  parse_free(p);
}
END_TEST

START_TEST(unexpected_end_of_file) {
  Parse *p = parse_bad("model m {\n  hyper a = 1\n", 1);
  ck_assert_ptr_nonnull(strstr(msgs(p), "error: syntax error, unexpected end of file\n"));
  parse_free(p);
}
END_TEST

START_TEST(ratio_must_be_an_integer) {
  Parse *p = parse_bad("model m { train { 2.5 \xc3\x97 minimize l with a() over q } }", 1);
  ck_assert_ptr_nonnull(strstr(msgs(p), "t.vm:1:19: error: syntax error, unexpected number\n"));
  parse_free(p);
}
END_TEST

START_TEST(deep_nesting) {
  int depth = 20000;
  char *text = malloc((size_t)depth * 2 + 32);
  int n = sprintf(text, "fn f() = ");
  for (int i = 0; i < depth; i++) text[n++] = '(';
  text[n++] = '1';
  for (int i = 0; i < depth; i++) text[n++] = ')';
  text[n++] = '\n';
  Parse *p = parse_n(text, n);
  ck_assert_int_ge(diag_errors(&p->d), 1);
  ck_assert_ptr_nonnull(strstr(msgs(p), "input nests too deeply"));
  parse_free(p);
  free(text);
}
END_TEST

START_TEST(nesting_within_the_limit) {
  int depth = 990; /* the parser refuses more than 1000 levels */
  char *text = malloc((size_t)depth * 2 + 32);
  int n = sprintf(text, "fn f() = ");
  for (int i = 0; i < depth; i++) text[n++] = '[';
  for (int i = 0; i < depth; i++) text[n++] = ']';
  Parse *p = parse_n(text, n);
  ck_assert_int_eq(diag_errors(&p->d), 0);
  Node *x = at(p->file, 0, 1);
  for (int i = 0; i < depth - 1; i++) {
    ck_assert_int_eq(x->kind, N_LIST);
    ck_assert_int_eq(ast_nkids(x), 1);
    x = ast_kid(x, 0);
  }
  ck_assert_int_eq(ast_nkids(x), 0);
  parse_free(p);
  free(text);
}
END_TEST

START_TEST(keywords_are_reserved) {
  Parse *p = parse_bad("model m { hyper in = 3 }", 1);
  ck_assert_ptr_nonnull(strstr(msgs(p), "unexpected in, expecting identifier"));
  parse_free(p);
}
END_TEST

/* ------------------------------------------------------ diagnostics */

typedef struct {
  Diag d;
  FILE *out;
  char *buf;
  size_t len;
} DiagOut;

static void dout_open(DiagOut *o) {
  o->out = open_memstream(&o->buf, &o->len);
  ck_assert_ptr_nonnull(o->out);
  diag_init(&o->d, o->out);
}

static const char *dout_text(DiagOut *o) {
  fflush(o->out);
  return o->buf ? o->buf : "";
}

static void dout_close(DiagOut *o) {
  diag_free(&o->d);
  fclose(o->out);
  free(o->buf);
}

START_TEST(line_col_map) {
  DiagOut o;
  dout_open(&o);
  const char *text = "ab\n\ncd\nlast";
  int f = diag_add_text(&o.d, "x.vm", text, (int)strlen(text));
  struct {
    int off, line, col;
  } want[] = {{0, 1, 1}, {1, 1, 2}, {2, 1, 3}, {3, 2, 1}, {4, 3, 1},
              {6, 3, 3}, {7, 4, 1}, {10, 4, 4}, {11, 4, 5}};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    int l, c;
    diag_line_col(&o.d, span_make(f, want[i].off, want[i].off), &l, &c);
    ck_assert_msg(l == want[i].line && c == want[i].col, "offset %d: %d:%d, expected %d:%d",
                  want[i].off, l, c, want[i].line, want[i].col);
  }
  int l = 9, c = 9;
  diag_line_col(&o.d, span_none, &l, &c);
  ck_assert_int_eq(l, 0);
  ck_assert_int_eq(c, 0);
  ck_assert_int_eq(o.d.files[f].nlines, 4);
  ck_assert_str_eq(o.d.files[f].path, "x.vm");
  dout_close(&o);
}
END_TEST

START_TEST(caret_printing) {
  DiagOut o;
  dout_open(&o);
  const char *text = "model m {\n\tloss l = a + bb\n}\n";
  int f = diag_add_text(&o.d, "x.vm", text, (int)strlen(text));
  int lo = (int)(strstr(text, "a + bb") - text);
  diag_error(&o.d, span_make(f, lo, lo + 6), "found %s", "[784]");
  diag_warning(&o.d, span_make(f, 0, 5), "unused model");
  diag_note(&o.d, span_make(f, lo + 4, lo + 6), "bb is here");
  diag_error(&o.d, span_none, "no location");
  ck_assert_str_eq(dout_text(&o), "x.vm:2:11: error: found [784]\n"
                                  "  \tloss l = a + bb\n"
                                  "  \t         ^~~~~~\n"
                                  "x.vm:1:1: warning: unused model\n"
                                  "  model m {\n"
                                  "  ^~~~~\n"
                                  "x.vm:2:15: note: bb is here\n"
                                  "  \tloss l = a + bb\n"
                                  "  \t             ^~\n"
                                  "vmc: error: no location\n");
  ck_assert_int_eq(diag_errors(&o.d), 2);
  ck_assert_int_eq(o.d.warnings, 1);
  dout_close(&o);
}
END_TEST

START_TEST(caret_spanning_lines_stops_at_line_end) {
  DiagOut o;
  dout_open(&o);
  const char *text = "ab cd\nef\n";
  int f = diag_add_text(&o.d, "x.vm", text, (int)strlen(text));
  diag_error(&o.d, span_make(f, 3, 8), "two lines");
  ck_assert_str_eq(dout_text(&o), "x.vm:1:4: error: two lines\n"
                                  "  ab cd\n"
                                  "     ^~\n");
  dout_close(&o);
}
END_TEST

START_TEST(caret_at_end_of_file) {
  DiagOut o;
  dout_open(&o);
  int f = diag_add_text(&o.d, "x.vm", "abc", 3);
  diag_error(&o.d, span_make(f, 3, 3), "at the end");
  ck_assert_str_eq(dout_text(&o), "x.vm:1:4: error: at the end\n"
                                  "  abc\n"
                                  "     ^\n");
  dout_close(&o);
}
END_TEST

START_TEST(control_bytes_in_excerpt) {
  DiagOut o;
  dout_open(&o);
  int f = diag_add_text(&o.d, "x.vm", "a\x01\x1b[31m\x02 b", 10);
  diag_error(&o.d, span_make(f, 9, 10), "b");
  ck_assert_str_eq(dout_text(&o), "x.vm:1:10: error: b\n"
                                  "  a??[31m? b\n"
                                  "           ^\n");
  dout_close(&o);
}
END_TEST

START_TEST(long_line_excerpt_is_cut) {
  DiagOut o;
  dout_open(&o);
  char text[501];
  memset(text, 'x', 500);
  text[500] = '\0';
  int f = diag_add_text(&o.d, "x.vm", text, 500);
  diag_error(&o.d, span_make(f, 10, 400), "long");
  const char *out = dout_text(&o);
  const char *l2 = strchr(out, '\n') + 1;
  const char *l3 = strchr(l2, '\n') + 1;
  ck_assert_int_eq((int)(l3 - l2), 2 + 200 + 1); /* indent, 200 bytes, newline */
  ck_assert_int_eq((int)strlen(l3), 2 + 200 + 1);
  ck_assert_int_eq(l3[12], '^');
  diag_error(&o.d, span_make(f, 450, 451), "beyond the cut");
  ck_assert_ptr_nonnull(strstr(dout_text(&o), "x.vm:1:451: error: beyond the cut\n"));
  dout_close(&o);
}
END_TEST

START_TEST(error_cap) {
  DiagOut o;
  dout_open(&o);
  int f = diag_add_text(&o.d, "x.vm", "e\n", 2);
  for (int i = 0; i < 25; i++) diag_error(&o.d, span_make(f, 0, 1), "error %d", i + 1);
  diag_warning(&o.d, span_make(f, 0, 1), "warning after the cap");
  diag_note(&o.d, span_make(f, 0, 1), "note after the cap");
  diag_finish(&o.d);
  const char *out = dout_text(&o);
  ck_assert_ptr_nonnull(strstr(out, "x.vm:1:1: error: error 20\n"));
  ck_assert_ptr_null(strstr(out, "error 21"));
  ck_assert_ptr_null(strstr(out, "after the cap"));
  const char *last = out + strlen(out) - strlen("vmc: 5 more errors not shown\n");
  ck_assert_str_eq(last, "vmc: 5 more errors not shown\n");
  ck_assert_int_eq(diag_errors(&o.d), 25);
  dout_close(&o);

  dout_open(&o);
  f = diag_add_text(&o.d, "x.vm", "e\n", 2);
  for (int i = 0; i < 21; i++) diag_error(&o.d, span_make(f, 0, 1), "e");
  diag_finish(&o.d);
  out = dout_text(&o);
  ck_assert_str_eq(out + strlen(out) - strlen("vmc: 1 more error not shown\n"),
                   "vmc: 1 more error not shown\n");
  dout_close(&o);

  dout_open(&o);
  f = diag_add_text(&o.d, "x.vm", "e\n", 2);
  for (int i = 0; i < 20; i++) diag_error(&o.d, span_make(f, 0, 1), "e");
  fflush(o.out);
  size_t before = o.len;
  diag_finish(&o.d); /* nothing suppressed: no summary line */
  fflush(o.out);
  ck_assert_uint_eq(o.len, before);
  dout_close(&o);
}
END_TEST

START_TEST(spans_join) {
  Span a = span_make(0, 5, 9), b = span_make(0, 2, 6), c = span_make(1, 0, 3);
  Span j = span_join(a, b);
  ck_assert_int_eq(j.file, 0);
  ck_assert_int_eq(j.lo, 2);
  ck_assert_int_eq(j.hi, 9);
  j = span_join(a, c); /* other file: the first wins */
  ck_assert_int_eq(j.lo, 5);
  ck_assert_int_eq(j.hi, 9);
  j = span_join(span_none, c);
  ck_assert_int_eq(j.file, 1);
  j = span_join(a, span_none);
  ck_assert_int_eq(j.file, 0);
  ck_assert_int_eq(j.lo, 5);
}
END_TEST

START_TEST(text_with_nul_bytes) {
  DiagOut o;
  dout_open(&o);
  int f = diag_add_text(&o.d, "x.vm", "a\0b\nc", 5);
  ck_assert_int_eq(o.d.files[f].len, 5);
  ck_assert_int_eq(o.d.files[f].nlines, 2);
  ck_assert_int_eq(o.d.files[f].text[5], '\0');
  int l, c;
  diag_line_col(&o.d, span_make(f, 4, 5), &l, &c);
  ck_assert_int_eq(l, 2);
  ck_assert_int_eq(c, 1);
  dout_close(&o);
}
END_TEST

/* ------------------------------------------------------ suite */

static Suite *parser_suite(void) {
  Suite *s = suite_create("parser");
  TCase *t = tcase_create("constructs");
  tcase_add_test(t, empty_file);
  tcase_add_test(t, imports);
  tcase_add_test(t, functions);
  tcase_add_test(t, model_and_fn_together);
  tcase_add_test(t, hyper);
  tcase_add_test(t, data_forms);
  tcase_add_test(t, param_decl);
  tcase_add_test(t, roles);
  tcase_add_test(t, role_flags);
  tcase_add_test(t, losses);
  tcase_add_test(t, train_block);
  tcase_add_test(t, step_fields);
  tcase_add_test(t, local_fn_and_net_in_model);
  tcase_add_test(t, statements);
  suite_add_tcase(s, t);

  TCase *e = tcase_create("expressions");
  tcase_add_test(e, precedence);
  tcase_add_test(e, comparisons_do_not_chain);
  tcase_add_test(e, postfix);
  tcase_add_test(e, log_forms);
  tcase_add_test(e, log_density_needs_a_name);
  tcase_add_test(e, conditional_calls);
  tcase_add_test(e, kl_expect_flow_sample);
  suite_add_tcase(s, e);

  TCase *sp = tcase_create("spans");
  tcase_add_test(sp, spans);
  tcase_add_test(sp, every_span_inside_the_file);
  suite_add_tcase(s, sp);

  TCase *err = tcase_create("errors");
  tcase_add_test(err, syntax_error_message);
  tcase_add_test(err, recovery_keeps_later_items);
  tcase_add_test(err, recovery_in_blocks_and_train);
  tcase_add_test(err, scanner_errors_count);
  tcase_add_test(err, top_level_junk);
  tcase_add_test(err, unexpected_end_of_file);
  tcase_add_test(err, ratio_must_be_an_integer);
  tcase_add_test(err, deep_nesting);
  tcase_add_test(err, nesting_within_the_limit);
  tcase_add_test(err, keywords_are_reserved);
  suite_add_tcase(s, err);

  TCase *d = tcase_create("diagnostics");
  tcase_add_test(d, line_col_map);
  tcase_add_test(d, caret_printing);
  tcase_add_test(d, caret_spanning_lines_stops_at_line_end);
  tcase_add_test(d, caret_at_end_of_file);
  tcase_add_test(d, control_bytes_in_excerpt);
  tcase_add_test(d, long_line_excerpt_is_cut);
  tcase_add_test(d, error_cap);
  tcase_add_test(d, spans_join);
  tcase_add_test(d, text_with_nul_bytes);
  suite_add_tcase(s, d);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(parser_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures ? 1 : 0;
}
