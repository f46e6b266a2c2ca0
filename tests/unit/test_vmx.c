/* test_vmx.c - the .vmx writer and reader (compiler/vmx.c).
 *
 * Every shipped model (models/NAME.vm) is compiled through the library API as
 * vmc does (imp_load, resolve_program, shape_program, check_model,
 * shape_lower, optimize, vmx_from_model) and then:
 *   - the text is deterministic: a second compilation gives the same bytes;
 *   - each graph appears in it exactly as graph_print prints it;
 *   - the reader gives back the same structure, field by field, and
 *     writing what it read reproduces the file byte for byte;
 *   - damaged copies (truncated, another version, a bad line) are refused
 *     with a file:line message.
 * The models are found under $top_srcdir (set by make check) or ".", the
 * stdlib through $VML_STDLIB or $top_srcdir/stdlib. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "check.h"
#include "diag.h"
#include "graph.h"
#include "import.h"
#include "model.h"
#include "optimize.h"
#include "resolve.h"
#include "shape.h"
#include "vmx.h"

static const char *top(void) {
  const char *t = getenv("top_srcdir");
  return t && *t ? t : ".";
}

static void setup_stdlib(void) {
  if (getenv("VML_STDLIB")) return;
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/stdlib", top());
  setenv("VML_STDLIB", buf, 1);
}

typedef struct {
  Arena *a;
  Diag d;
  Vmx *x;
  char *text;       /* vmx_write of x */
  char *graphs;     /* graph_print of every original graph, concatenated */
  size_t text_len, graphs_len;
} Compiled;

/* Compiles the one model of path as vmc compile does. */
static Compiled *compile_file(const char *path, Define *defs, int ndefs) {
  Compiled *c = calloc(1, sizeof *c);
  ck_assert_ptr_nonnull(c);
  c->a = arena_new();
  FILE *msgs = tmpfile();
  diag_init(&c->d, msgs);
  SearchPath sp = {{0}, NULL};
  Program *prog = imp_load(&c->d, c->a, path, &sp);
  ck_assert_msg(prog != NULL, "cannot load %s", path);
  resolve_program(&c->d, c->a, prog);
  ck_assert_int_eq(diag_errors(&c->d), 0);
  Vec models = shape_program(&c->d, c->a, prog, defs, ndefs);
  ck_assert_int_eq(diag_errors(&c->d), 0);
  ck_assert_int_eq(models.len, 1);
  check_model(&c->d, c->a, models.items[0]);
  ck_assert_msg(diag_errors(&c->d) == 0, "%s has errors", path);
  Vec graphs = shape_lower(&c->d, c->a, prog, models.items[0]);
  ck_assert_int_eq(diag_errors(&c->d), 0);
  FILE *gp = open_memstream(&c->graphs, &c->graphs_len);
  for (int k = 0; k < graphs.len; k++) {
    optimize(graphs.items[k], 1 << 20);
    graph_print(gp, graphs.items[k], &c->d);
  }
  fclose(gp);
  c->x = vmx_from_model(c->a, &c->d, prog, models.items[0], graphs);
  ck_assert_ptr_nonnull(c->x);
  diag_free(&c->d); /* as vmc does: the Vmx must not need the Diag any more */
  fclose(msgs);
  FILE *out = open_memstream(&c->text, &c->text_len);
  vmx_write(out, c->x);
  fclose(out);
  return c;
}

static void compiled_free(Compiled *c) {
  free(c->text);
  free(c->graphs);
  arena_free(c->a);
  free(c);
}

static char *write_text(const Vmx *x) {
  char *s = NULL;
  size_t n = 0;
  FILE *out = open_memstream(&s, &n);
  vmx_write(out, x);
  fclose(out);
  return s;
}

static char tmpdir[64];

static const char *save(const char *name, const char *text, size_t len) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  fwrite(text, 1, len, f);
  fclose(f);
  return path;
}

/* ---- structural equality ----------------------------------------------- */

static int str_same(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static void same_strs(const Vec *a, const Vec *b, const char *what) {
  ck_assert_msg(a->len == b->len, "%s: %d vs %d entries", what, a->len, b->len);
  for (int i = 0; i < a->len; i++)
    ck_assert_msg(str_same(a->items[i], b->items[i]), "%s[%d]: %s vs %s", what, i, (char *)a->items[i],
                  (char *)b->items[i]);
}

static void same_vmx(const Vmx *a, const Vmx *b) {
  ck_assert_int_eq(a->version, b->version);
  ck_assert_str_eq(a->model, b->model);
  ck_assert_str_eq(a->source, b->source);
  ck_assert_str_eq(a->source_hash, b->source_hash);
  ck_assert_int_eq(a->hypers.len, b->hypers.len);
  for (int i = 0; i < a->hypers.len; i++) {
    const VmxHyper *p = a->hypers.items[i], *q = b->hypers.items[i];
    ck_assert(str_same(p->name, q->name) && str_same(p->type, q->type) && str_same(p->value, q->value));
  }
  ck_assert_int_eq(a->data.len, b->data.len);
  for (int i = 0; i < a->data.len; i++) {
    const VmxData *p = a->data.items[i], *q = b->data.items[i];
    ck_assert(str_same(p->name, q->name) && str_same(p->domain, q->domain) && str_same(p->extra, q->extra));
    ck_assert(shape_eq(p->shape, q->shape) && p->classes == q->classes);
  }
  ck_assert_int_eq(a->params.len, b->params.len);
  for (int i = 0; i < a->params.len; i++) {
    const VmxParam *p = a->params.items[i], *q = b->params.items[i];
    ck_assert(str_same(p->name, q->name) && str_same(p->init, q->init) && str_same(p->where, q->where));
    ck_assert(shape_eq(p->shape, q->shape));
  }
  ck_assert_int_eq(a->roles.len, b->roles.len);
  for (int i = 0; i < a->roles.len; i++) {
    const VmxRole *p = a->roles.items[i], *q = b->roles.items[i];
    ck_assert(str_same(p->signature, q->signature) && str_same(p->kind, q->kind) && str_same(p->text, q->text));
  }
  ck_assert_int_eq(a->losses.len, b->losses.len);
  for (int i = 0; i < a->losses.len; i++) {
    const VmxLoss *p = a->losses.items[i], *q = b->losses.items[i];
    ck_assert(str_same(p->name, q->name) && str_same(p->text, q->text));
  }
  ck_assert_int_eq(a->stages.len, b->stages.len);
  for (int i = 0; i < a->stages.len; i++) {
    const VmxStage *p = a->stages.items[i], *q = b->stages.items[i];
    ck_assert(str_same(p->stage, q->stage));
    same_strs(&p->settings, &q->settings, "settings");
    same_strs(&p->frozen, &q->frozen, "frozen");
  }
  ck_assert_int_eq(a->steps.len, b->steps.len);
  for (int i = 0; i < a->steps.len; i++) {
    const VmxStep *p = a->steps.items[i], *q = b->steps.items[i];
    ck_assert(str_same(p->stage, q->stage) && str_same(p->graph, q->graph) && str_same(p->loss, q->loss));
    ck_assert(p->maximize == q->maximize && p->ratio == q->ratio);
    ck_assert(str_same(p->optimizer, q->optimizer) && str_same(p->schedule, q->schedule));
    same_strs(&p->args, &q->args, "args");
    same_strs(&p->params, &q->params, "params");
  }
  ck_assert_int_eq(a->graphs.len, b->graphs.len);
  for (int i = 0; i < a->graphs.len; i++) {
    const Graph *g = a->graphs.items[i], *h = b->graphs.items[i];
    ck_assert(str_same(g->name, h->name) && str_same(g->about, h->about));
    ck_assert_int_eq(g->nodes.len, h->nodes.len);
    for (int k = 0; k < g->nodes.len; k++) {
      const GNode *m = g->nodes.items[k], *n = h->nodes.items[k];
      ck_assert_msg(m->op == n->op && m->id == n->id && m->nin == n->nin && shape_eq(m->shape, n->shape) &&
                        m->batched == n->batched && m->classes == n->classes && m->f == n->f &&
                        str_same(m->s, n->s) && str_same(m->name, n->name) && m->group == n->group &&
                        m->buffer == n->buffer && m->span.file == n->span.file && m->span.lo == n->span.lo &&
                        m->span.hi == n->span.hi,
                    "graph %s node %d differs", g->name, k);
      for (int j = 0; j < 4; j++) ck_assert(m->i[j] == n->i[j]);
      for (int j = 0; j < m->nin; j++) ck_assert_int_eq(m->in[j], n->in[j]);
    }
    ck_assert_int_eq(g->outputs.len, h->outputs.len);
    for (int k = 0; k < g->outputs.len; k++) {
      const GOutput *o = g->outputs.items[k], *p = h->outputs.items[k];
      ck_assert(str_same(o->name, p->name) && o->node == p->node);
    }
  }
}

/* ---- the shipped models --------------------------------------------------- */

static int nmodels;
static char models[32][4400];

static void find_models(void) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/models", top());
  DIR *d = opendir(dir);
  ck_assert_msg(d != NULL, "no directory %s (set top_srcdir)", dir);
  struct dirent *e;
  nmodels = 0;
  while ((e = readdir(d)) && nmodels < 32) {
    size_t n = strlen(e->d_name);
    if (n > 3 && !strcmp(e->d_name + n - 3, ".vm")) snprintf(models[nmodels++], sizeof models[0], "%s/%s", dir, e->d_name);
  }
  closedir(d);
  ck_assert_int_ge(nmodels, 6);
}

static void setup(void) {
  setup_stdlib();
  find_models();
  strcpy(tmpdir, "/tmp/vml-test-vmx.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
}

START_TEST(models_are_deterministic) {
  for (int i = 0; i < nmodels; i++) {
    Compiled *a = compile_file(models[i], NULL, 0), *b = compile_file(models[i], NULL, 0);
    ck_assert_msg(a->text_len == b->text_len && !memcmp(a->text, b->text, a->text_len), "%s: two compilations differ",
                  models[i]);
    ck_assert_msg(!strncmp(a->text, "vmx 1\n", 6), "%s: no header", models[i]);
    ck_assert_msg(a->text_len > 4 && !strcmp(a->text + a->text_len - 4, "end\n"), "%s: no end line", models[i]);
    ck_assert_msg(!strstr(a->text, "/work") && !strstr(a->text, "/tmp") && !strstr(a->text, "0x"),
                  "%s: machine-dependent text", models[i]);
    compiled_free(a);
    compiled_free(b);
  }
}
END_TEST

/* graph_print's text of each graph, "plan" lines aside, is in the file. */
START_TEST(graphs_are_printed_as_graph_print_does) {
  for (int i = 0; i < nmodels; i++) {
    Compiled *c = compile_file(models[i], NULL, 0);
    /* drop the plan lines from the file's text, then compare the graphs part */
    char *g = strstr(c->text, "\ngraph ");
    ck_assert_ptr_nonnull(g);
    g++;
    size_t n = 0;
    char *stripped = malloc(strlen(g) + 1);
    for (char *line = g; *line;) {
      char *e = strchr(line, '\n');
      size_t len = e ? (size_t)(e - line + 1) : strlen(line);
      if (strncmp(line, "  plan ", 7) && strncmp(line, "end\n", 4)) {
        memcpy(stripped + n, line, len);
        n += len;
      }
      line += len;
    }
    stripped[n] = '\0';
    ck_assert_msg(n == c->graphs_len && !memcmp(stripped, c->graphs, n), "%s: graphs differ from graph_print's",
                  models[i]);
    free(stripped);
    compiled_free(c);
  }
}
END_TEST

START_TEST(read_gives_the_same_structure_and_bytes) {
  for (int i = 0; i < nmodels; i++) {
    Compiled *c = compile_file(models[i], NULL, 0);
    const char *path = save("m.vmx", c->text, c->text_len);
    Arena *a = arena_new();
    char err[512] = "";
    Vmx *x = vmx_read(a, path, err, sizeof err);
    ck_assert_msg(x != NULL, "%s: %s", models[i], err);
    same_vmx(c->x, x);
    char *again = write_text(x);
    ck_assert_msg(strlen(again) == c->text_len && !memcmp(again, c->text, c->text_len),
                  "%s: write(read(f)) != f", models[i]);
    free(again);
    arena_free(a);
    compiled_free(c);
  }
}
END_TEST

START_TEST(defines_change_the_hypers_not_the_hash) {
  char path[600];
  snprintf(path, sizeof path, "%s/models/vae.vm", top());
  Define def = {"latent", "32", 0};
  Compiled *a = compile_file(path, NULL, 0), *b = compile_file(path, &def, 1);
  ck_assert_str_eq(a->x->source_hash, b->x->source_hash);
  ck_assert_ptr_nonnull(strstr(a->text, "hyper latent int 20\n"));
  ck_assert_ptr_nonnull(strstr(b->text, "hyper latent int 32\n"));
  ck_assert_ptr_nonnull(strstr(b->text, "data z latent [32]\n"));
  ck_assert_ptr_nonnull(strstr(b->text, "param q.dense0.W [500, 32] glorot"));
  compiled_free(a);
  compiled_free(b);
}
END_TEST

/* ---- damaged files --------------------------------------------------------- */

static const char *read_error(const char *text, size_t len) {
  static char err[512];
  const char *path = save("bad.vmx", text, len);
  Arena *a = arena_new();
  err[0] = '\0';
  Vmx *x = vmx_read(a, path, err, sizeof err);
  arena_free(a);
  ck_assert_msg(x == NULL, "accepted a damaged file:\n%.200s", text);
  ck_assert_msg(!strncmp(err, path, strlen(path)), "the message does not name the file: %s", err);
  return err + strlen(path);
}

static Compiled *vae(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/models/vae.vm", top());
  return compile_file(path, NULL, 0);
}

START_TEST(truncated_files_are_refused) {
  Compiled *c = vae();
  for (size_t cut = 0; cut + 1 < c->text_len; cut += c->text_len / 97 + 1) {
    const char *e = read_error(c->text, cut);
    ck_assert_msg(strstr(e, "expected") != NULL, "cut at %zu: %s", cut, e);
  }
  const char *e = read_error(c->text, c->text_len - 4); /* the end line is missing */
  ck_assert_msg(strstr(e, "found end of file (the file is truncated: it has no 'end' line)") != NULL, "%s", e);
  compiled_free(c);
}
END_TEST

START_TEST(other_versions_are_refused) {
  const char *e = read_error("vmx 7\nmodel m\n", 14);
  ck_assert_str_eq(e, ":1: this is vmx version 7; this vmc reads version 1");
  e = read_error("model m\n", 8);
  ck_assert_str_eq(e, ":1: expected 'vmx 1' (is this a .vmx file?), found 'model m'");
  e = read_error("", 0);
  ck_assert_msg(strstr(e, ":1: expected 'vmx 1'") != NULL, "%s", e);
}
END_TEST

/* Replaces the first occurrence of `from` in c->text by `to` and reads it. */
static const char *damaged(Compiled *c, const char *from, const char *to) {
  char *p = strstr(c->text, from);
  ck_assert_msg(p != NULL, "no %s in the file", from);
  size_t n = c->text_len - strlen(from) + strlen(to);
  char *s = malloc(n + 1);
  size_t k = (size_t)(p - c->text);
  memcpy(s, c->text, k);
  strcpy(s + k, to);
  strcpy(s + k + strlen(to), p + strlen(from));
  static char err[512];
  snprintf(err, sizeof err, "%s", read_error(s, n));
  free(s);
  return err;
}

START_TEST(bad_lines_are_refused) {
  Compiled *c = vae();
  const char *e;
  e = damaged(c, "hash ", "hash 12\nhush ");
  ck_assert_msg(strstr(e, ":4: expected 'hash' and 16 hex digits, found 'hash 12'"), "%s", e);
  e = damaged(c, "= matmul %0 %1", "= matmul %0 %9");
  ck_assert_msg(strstr(e, "expected an input %K with K < 2, found '%9'"), "%s", e);
  e = damaged(c, "= matmul %0 %1", "= matmal %0 %1");
  ck_assert_msg(strstr(e, "expected an op name (see docs/IR.md), found 'matmal'"), "%s", e);
  e = damaged(c, "= matmul %0 %1", "= matmul %0");
  ck_assert_msg(strstr(e, "expected 2 inputs for matmul, found 1"), "%s", e);
  e = damaged(c, "= matmul %0 %1 [500]", "= matmul %0 %1 [501]");
  ck_assert_msg(strstr(e, "does not fit its inputs: the shape rule gives [500] batched"), "%s", e);
  e = damaged(c, " batched s=\"x\"", " batched s=\"x\" bogus=1");
  ck_assert_msg(strstr(e, "expected node attributes in the order"), "%s", e);
  e = damaged(c, "%1 = ", "%2 = ");
  ck_assert_msg(strstr(e, "expected node %1, found %2"), "%s", e);
  e = damaged(c, "  output loss", "  output loss %999\n  output loss");
  ck_assert_msg(strstr(e, "expected an output node below"), "%s", e);
  e = damaged(c, "data x bit", "data x blob");
  ck_assert_msg(strstr(e, ":7: expected a domain (bit, real, cat or latent), found 'blob'"), "%s", e);
  e = damaged(c, "end\n", "end\nmore\n");
  ck_assert_msg(strstr(e, "expected nothing after 'end', found 'more'"), "%s", e);
  e = damaged(c, "  schedule constant()\n", "");
  ck_assert_msg(strstr(e, "expected 'schedule TEXT'"), "%s", e);
  compiled_free(c);
}
END_TEST

static Suite *vmx_suite(void) {
  Suite *s = suite_create("vmx");
  TCase *t = tcase_create("models");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 120);
  tcase_add_test(t, models_are_deterministic);
  tcase_add_test(t, graphs_are_printed_as_graph_print_does);
  tcase_add_test(t, read_gives_the_same_structure_and_bytes);
  tcase_add_test(t, defines_change_the_hypers_not_the_hash);
  suite_add_tcase(s, t);
  TCase *e = tcase_create("errors");
  tcase_add_checked_fixture(e, setup, teardown);
  tcase_set_timeout(e, 120);
  tcase_add_test(e, truncated_files_are_refused);
  tcase_add_test(e, other_versions_are_refused);
  tcase_add_test(e, bad_lines_are_refused);
  suite_add_tcase(s, e);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(vmx_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures ? 1 : 0;
}
