/* test_lexer.c - the scanner (grammar/vml.l) on its own: token kinds,
 * values and byte spans of small inputs, and its error messages.  The
 * scanner is driven through the flex API (vml.lex.h) with the token codes
 * of the parser (vml.tab.h); diagnostics go to a memory stream. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "diag.h"
#include "parse.h"
#include "vml.tab.h"
#include "vml.lex.h"

#define MAXTOK 64

typedef struct {
  int kind;
  Span span;
  YYSTYPE val;
} Tok;

/* One scan of a text: the tokens up to end of file and the messages. */
typedef struct {
  Diag d;
  Arena *a;
  char *msgs;
  size_t msgs_len;
  FILE *out;
  Tok tok[MAXTOK];
  int n;
} Scan;

static Scan *scan_n(const char *text, int len) {
  Scan *s = calloc(1, sizeof *s);
  ck_assert_ptr_nonnull(s);
  s->out = open_memstream(&s->msgs, &s->msgs_len);
  ck_assert_ptr_nonnull(s->out);
  diag_init(&s->d, s->out);
  s->a = arena_new();
  int file = diag_add_text(&s->d, "t.vm", text, len);
  struct Lexer lx = {&s->d, s->a, file, 0, NULL};
  yyscan_t scanner;
  ck_assert_int_eq(yylex_init_extra(&lx, &scanner), 0);
  YY_BUFFER_STATE buf = yy_scan_bytes(s->d.files[file].text, len, scanner);
  for (;;) {
    ck_assert_int_lt(s->n, MAXTOK);
    Tok *t = &s->tok[s->n];
    t->kind = yylex(&t->val, &t->span, scanner);
    if (t->kind == YYEOF) break;
    s->n++;
  }
  yy_delete_buffer(buf, scanner);
  yylex_destroy(scanner);
  fflush(s->out);
  return s;
}

static Scan *scan(const char *text) { return scan_n(text, (int)strlen(text)); }

static void scan_free(Scan *s) {
  diag_free(&s->d);
  fclose(s->out);
  free(s->msgs);
  arena_free(s->a);
  free(s);
}

/* Token i has this kind and spans bytes [lo, hi). */
static void expect_tok(const Scan *s, int i, int kind, int lo, int hi) {
  ck_assert_int_lt(i, s->n);
  ck_assert_msg(s->tok[i].kind == kind, "token %d: kind %d, expected %d", i, s->tok[i].kind, kind);
  ck_assert_msg(s->tok[i].span.lo == lo && s->tok[i].span.hi == hi,
                "token %d: span [%d, %d), expected [%d, %d)", i, s->tok[i].span.lo,
                s->tok[i].span.hi, lo, hi);
  ck_assert_int_eq(s->tok[i].span.file, 0);
}

static void expect_msgs(const Scan *s, int errors, const char *text) {
  ck_assert_int_eq(diag_errors(&s->d), errors);
  ck_assert_str_eq(s->msgs ? s->msgs : "", text);
}

START_TEST(keywords) {
  static const struct {
    const char *text;
    int kind;
  } kw[] = {
      {"import", IMPORT},     {"as", AS},
      {"model", MODEL},       {"fn", FN},
      {"net", NET},           {"hyper", HYPER},
      {"data", DATA},         {"from", FROM},
      {"in", IN},             {"encoder", ENCODER},
      {"decoder", DECODER},   {"prior", PRIOR},
      {"critic", CRITIC},     {"implicit", IMPLICIT},
      {"autoregressive", AUTOREGRESSIVE},
      {"param", PARAM},       {"init", INIT},
      {"loss", LOSS},         {"train", TRAIN},
      {"stage", STAGE},       {"minimize", MINIMIZE},
      {"maximize", MAXIMIZE}, {"with", WITH},
      {"over", OVER},         {"freeze", FREEZE},
      {"for", FOR},           {"if", IF},
      {"else", ELSE},         {"return", RETURN},
      {"log", LOG},           {"KL", KL},
      {"E", EXPECT},          {"flow", FLOW},
      {"through", THROUGH},   {"estimator", ESTIMATOR},
      {"true", TRUE},         {"false", FALSE},
      {"and", AND},           {"or", OR},
      {"not", NOT},
  };
  for (size_t i = 0; i < sizeof kw / sizeof *kw; i++) {
    Scan *s = scan(kw[i].text);
    ck_assert_int_eq(s->n, 1);
    expect_tok(s, 0, kw[i].kind, 0, (int)strlen(kw[i].text));
    expect_msgs(s, 0, "");
    scan_free(s);
  }
}
END_TEST

START_TEST(keyword_prefixes_are_identifiers) {
  /* The longest match wins: keywords are whole words, case matters. */
  Scan *s = scan("models Ex e kl logp Model in_ iff _E");
  ck_assert_int_eq(s->n, 9);
  const char *names[] = {"models", "Ex", "e", "kl", "logp", "Model", "in_", "iff", "_E"};
  for (int i = 0; i < 9; i++) {
    ck_assert_int_eq(s->tok[i].kind, IDENT);
    ck_assert_str_eq(s->tok[i].val.str, names[i]);
  }
  expect_tok(s, 0, IDENT, 0, 6);
  expect_tok(s, 8, IDENT, 34, 36);
  scan_free(s);
}
END_TEST

START_TEST(identifiers_and_spans) {
  Scan *s = scan("  ab\t_x1 \n A_b9 ");
  ck_assert_int_eq(s->n, 3);
  expect_tok(s, 0, IDENT, 2, 4);
  expect_tok(s, 1, IDENT, 5, 8);
  expect_tok(s, 2, IDENT, 11, 15);
  ck_assert_str_eq(s->tok[0].val.str, "ab");
  ck_assert_str_eq(s->tok[1].val.str, "_x1");
  ck_assert_str_eq(s->tok[2].val.str, "A_b9");
  scan_free(s);
}
END_TEST

START_TEST(integers) {
  Scan *s = scan("0 42 007 9007199254740992");
  ck_assert_int_eq(s->n, 4);
  expect_tok(s, 0, INTEGER, 0, 1);
  ck_assert_int_eq(s->tok[0].val.ival, 0);
  ck_assert_int_eq(s->tok[1].val.ival, 42);
  ck_assert_int_eq(s->tok[2].val.ival, 7);
  expect_tok(s, 3, INTEGER, 9, 25);
  ck_assert(s->tok[3].val.ival == 9007199254740992LL);
  expect_msgs(s, 0, "");
  scan_free(s);
}
END_TEST

START_TEST(integer_too_large) {
  Scan *s = scan("9007199254740993 99999999999999999999999");
  ck_assert_int_eq(s->n, 2);
  expect_tok(s, 0, INTEGER, 0, 16);
  ck_assert_int_eq(s->tok[0].val.ival, 0);
  expect_tok(s, 1, INTEGER, 17, 40);
  expect_msgs(s, 2,
              "t.vm:1:1: error: integer literal 9007199254740993 is too large (the limit is 2^53)\n"
              "  9007199254740993 99999999999999999999999\n"
              "  ^~~~~~~~~~~~~~~~\n"
              "t.vm:1:18: error: integer literal 99999999999999999999999 is too large (the limit is 2^53)\n"
              "  9007199254740993 99999999999999999999999\n"
              "                   ^~~~~~~~~~~~~~~~~~~~~~~\n");
  scan_free(s);
}
END_TEST

START_TEST(floats) {
  Scan *s = scan("0.5 .5 1e-3 2. 1E+2 3e0 1.5e308 1e-999");
  ck_assert_int_eq(s->n, 8);
  double want[] = {0.5, 0.5, 1e-3, 2.0, 100.0, 3.0, 1.5e308, 0.0};
  for (int i = 0; i < 8; i++) {
    ck_assert_int_eq(s->tok[i].kind, NUMBER);
    ck_assert_double_eq(s->tok[i].val.num, want[i]); /* strtod: exactly the C literal */
  }
  expect_tok(s, 0, NUMBER, 0, 3);
  expect_tok(s, 1, NUMBER, 4, 6);
  expect_tok(s, 2, NUMBER, 7, 11);
  expect_tok(s, 3, NUMBER, 12, 14);
  expect_msgs(s, 0, ""); /* an underflow is not an error: it is 0 */
  scan_free(s);
}
END_TEST

START_TEST(float_out_of_range) {
  Scan *s = scan("x = 1e999");
  ck_assert_int_eq(s->n, 3);
  expect_tok(s, 2, NUMBER, 4, 9);
  ck_assert_double_eq(s->tok[2].val.num, 0.0);
  expect_msgs(s, 1,
              "t.vm:1:5: error: number 1e999 is out of range for a float\n"
              "  x = 1e999\n"
              "      ^~~~~\n");
  scan_free(s);
}
END_TEST

START_TEST(number_boundaries) {
  /* 1.5.2 is 1.5 then .2; 1e is 1 then e; 1x is 1 then x; -1 is '-' 1. */
  Scan *s = scan("1.5.2 1e 1x -1");
  ck_assert_int_eq(s->n, 8);
  expect_tok(s, 0, NUMBER, 0, 3);
  expect_tok(s, 1, NUMBER, 3, 5);
  expect_tok(s, 2, INTEGER, 6, 7);
  expect_tok(s, 3, IDENT, 7, 8);
  expect_tok(s, 4, INTEGER, 9, 10);
  expect_tok(s, 5, IDENT, 10, 11);
  expect_tok(s, 6, '-', 12, 13);
  expect_tok(s, 7, INTEGER, 13, 14);
  scan_free(s);
}
END_TEST

START_TEST(operators) {
  Scan *s = scan("|| == != <= >= + - * / % @ < > = ~ : , ; . ( ) [ ] { } |");
  int want[] = {OROR, EQ, NE, LE, GE, '+', '-', '*', '/', '%', '@', '<', '>',
                '=', '~', ':', ',', ';', '.', '(', ')', '[', ']', '{', '}', '|'};
  int n = (int)(sizeof want / sizeof *want);
  ck_assert_int_eq(s->n, n);
  for (int i = 0; i < n; i++) ck_assert_int_eq(s->tok[i].kind, want[i]);
  expect_tok(s, 0, OROR, 0, 2);
  expect_tok(s, 25, '|', 55, 56);
  scan_free(s);
}
END_TEST

START_TEST(operator_longest_match) {
  Scan *s = scan("||| === a||b <==");
  int want[] = {OROR, '|', EQ, '=', IDENT, OROR, IDENT, LE, '='};
  ck_assert_int_eq(s->n, 9);
  for (int i = 0; i < 9; i++) ck_assert_int_eq(s->tok[i].kind, want[i]);
  scan_free(s);
}
END_TEST

START_TEST(times_sign) {
  /* U+00D7 is two bytes and the same token as '*'. */
  Scan *s = scan("2 \xc3\x97 minimize");
  ck_assert_int_eq(s->n, 3);
  expect_tok(s, 0, INTEGER, 0, 1);
  expect_tok(s, 1, '*', 2, 4);
  expect_tok(s, 2, MINIMIZE, 5, 13);
  expect_msgs(s, 0, "");
  scan_free(s);
}
END_TEST

START_TEST(strings) {
  Scan *s = scan("\"\" \"abc\" \"a\\\"b\\\\c\\nd\\te\"");
  ck_assert_int_eq(s->n, 3);
  expect_tok(s, 0, STRING, 0, 2);
  ck_assert_str_eq(s->tok[0].val.str, "");
  expect_tok(s, 1, STRING, 3, 8);
  ck_assert_str_eq(s->tok[1].val.str, "abc");
  expect_tok(s, 2, STRING, 9, 24);
  ck_assert_str_eq(s->tok[2].val.str, "a\"b\\c\nd\te");
  expect_msgs(s, 0, "");
  scan_free(s);
}
END_TEST

START_TEST(string_keeps_hash_and_keywords) {
  Scan *s = scan("\"# not a comment model\" x");
  ck_assert_int_eq(s->n, 2);
  ck_assert_str_eq(s->tok[0].val.str, "# not a comment model");
  expect_tok(s, 1, IDENT, 24, 25);
  scan_free(s);
}
END_TEST

START_TEST(unknown_escape) {
  Scan *s = scan("f(\"a\\qb\")");
  ck_assert_int_eq(s->n, 4);
  expect_tok(s, 2, STRING, 2, 8);
  expect_msgs(s, 1,
              "t.vm:1:5: error: unknown escape '\\q' in string\n"
              "  f(\"a\\qb\")\n"
              "      ^~\n");
  scan_free(s);
}
END_TEST

START_TEST(unterminated_string) {
  /* The string stops at the end of the line; the next line scans normally. */
  Scan *s = scan("a = \"abc\nb");
  ck_assert_int_eq(s->n, 4);
  expect_tok(s, 2, STRING, 4, 8);
  ck_assert_str_eq(s->tok[2].val.str, "");
  expect_tok(s, 3, IDENT, 9, 10);
  expect_msgs(s, 1,
              "t.vm:1:5: error: unterminated string\n"
              "  a = \"abc\n"
              "      ^~~~\n");
  scan_free(s);
}
END_TEST

START_TEST(unterminated_string_backslash_at_eof) {
  Scan *s = scan("\"abc\\");
  ck_assert_int_eq(s->n, 1);
  expect_tok(s, 0, STRING, 0, 5);
  ck_assert_int_eq(diag_errors(&s->d), 1);
  ck_assert_ptr_nonnull(strstr(s->msgs, "t.vm:1:1: error: unterminated string\n"));
  scan_free(s);
}
END_TEST

START_TEST(comments_and_white_space) {
  Scan *s = scan("# a comment ( [ \"\n\tx # another\r\n;# last, no newline");
  ck_assert_int_eq(s->n, 2);
  expect_tok(s, 0, IDENT, 19, 20);
  expect_tok(s, 1, ';', 32, 33);
  expect_msgs(s, 0, "");
  scan_free(s);
}
END_TEST

START_TEST(unexpected_character) {
  Scan *s = scan("a $ b");
  ck_assert_int_eq(s->n, 3);
  expect_tok(s, 0, IDENT, 0, 1);
  expect_tok(s, 1, YYerror, 2, 3);
  expect_tok(s, 2, IDENT, 4, 5);
  expect_msgs(s, 1,
              "t.vm:1:3: error: unexpected character '$'\n"
              "  a $ b\n"
              "    ^\n");
  scan_free(s);
}
END_TEST

START_TEST(unexpected_bytes) {
  /* NUL, a control byte, a lone UTF-8 lead byte, 0xff: one error each;
   * the excerpt shows control bytes as '?'. */
  Scan *s = scan_n("\x00\x01\xc3 \xff", 5);
  ck_assert_int_eq(s->n, 4);
  expect_tok(s, 0, YYerror, 0, 1);
  expect_tok(s, 3, YYerror, 4, 5);
  expect_msgs(s, 4,
              "t.vm:1:1: error: unexpected byte 0x00\n"
              "  ??\xc3 \xff\n"
              "  ^\n"
              "t.vm:1:2: error: unexpected byte 0x01\n"
              "  ??\xc3 \xff\n"
              "   ^\n"
              "t.vm:1:3: error: unexpected byte 0xc3\n"
              "  ??\xc3 \xff\n"
              "    ^\n"
              "t.vm:1:5: error: unexpected byte 0xff\n"
              "  ??\xc3 \xff\n"
              "      ^\n");
  scan_free(s);
}
END_TEST

START_TEST(identifier_length_limit) {
  char text[600];
  memset(text, 'a', 256);
  text[256] = ' ';
  memset(text + 257, 'b', 257);
  text[514] = '\0';
  Scan *s = scan(text);
  ck_assert_int_eq(s->n, 2);
  expect_tok(s, 0, IDENT, 0, 256);
  expect_tok(s, 1, IDENT, 257, 514);
  ck_assert_int_eq((int)strlen(s->tok[0].val.str), 256);
  ck_assert_int_eq((int)strlen(s->tok[1].val.str), 256); /* cut to the limit */
  ck_assert_int_eq(diag_errors(&s->d), 1);
  ck_assert_ptr_nonnull(
      strstr(s->msgs, "t.vm:1:258: error: identifier is 257 characters long; the limit is 256\n"));
  scan_free(s);
}
END_TEST

START_TEST(empty_input) {
  Scan *s = scan("");
  ck_assert_int_eq(s->n, 0);
  expect_msgs(s, 0, "");
  scan_free(s);
}
END_TEST

static Suite *lexer_suite(void) {
  Suite *s = suite_create("lexer");
  TCase *t = tcase_create("tokens");
  tcase_add_test(t, keywords);
  tcase_add_test(t, keyword_prefixes_are_identifiers);
  tcase_add_test(t, identifiers_and_spans);
  tcase_add_test(t, integers);
  tcase_add_test(t, floats);
  tcase_add_test(t, number_boundaries);
  tcase_add_test(t, operators);
  tcase_add_test(t, operator_longest_match);
  tcase_add_test(t, times_sign);
  tcase_add_test(t, strings);
  tcase_add_test(t, string_keeps_hash_and_keywords);
  tcase_add_test(t, comments_and_white_space);
  tcase_add_test(t, empty_input);
  suite_add_tcase(s, t);
  TCase *e = tcase_create("errors");
  tcase_add_test(e, integer_too_large);
  tcase_add_test(e, float_out_of_range);
  tcase_add_test(e, unknown_escape);
  tcase_add_test(e, unterminated_string);
  tcase_add_test(e, unterminated_string_backslash_at_eof);
  tcase_add_test(e, unexpected_character);
  tcase_add_test(e, unexpected_bytes);
  tcase_add_test(e, identifier_length_limit);
  suite_add_tcase(s, e);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(lexer_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures ? 1 : 0;
}
