/* fuzz_frontend.c - libFuzzer harness for the vml front end.
 *
 * Each input is loaded as a source file (diag_add_text), parsed
 * (parse_file) and dumped (ast_dump), with diagnostics going to /dev/null;
 * an input that parses also goes through resolution, elaboration, the
 * checks, lowering and the graph passes.
 * Besides crashes, sanitizer reports and leaks, it checks the invariants
 * the later passes rely on: a tree always comes back, every span lies
 * inside the file with lo <= hi, and a parse without errors has no holes
 * where the grammar has no optional child.
 *
 *   CC=clang ./configure --enable-fuzz && make tests/fuzz/fuzz_frontend
 *   tests/fuzz/make-corpus.sh /tmp/vml-corpus
 *   tests/fuzz/fuzz_frontend -dict=tests/fuzz/vml.dict /tmp/vml-corpus tests/fuzz/corpus
 *
 * Built with -DVML_FUZZ_MAIN (any compiler, no libFuzzer) it instead runs
 * once on each file named on the command line.
 *
 * Only the parser is exercised: the later passes (import, resolve, shape,
 * check) read files through imp_load; they join when the compiler offers
 * an entry point that takes a source text. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "parse.h"
#include "check.h"
#include "import.h"
#include "optimize.h"
#include "resolve.h"
#include "shape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Walks the tree with an explicit stack (a chain like a + a + ... + a is
 * as deep as it is long); returns its depth. */
static int check_spans(const Node *root, int file, int len, int errors) {
  typedef struct {
    const Node *n;
    int depth;
  } Item;
  int cap = 1024, top = 0, deepest = 0;
  Item *stack = malloc(sizeof *stack * (size_t)cap);
  if (!stack) abort();
  stack[top++] = (Item){root, 1};
  while (top) {
    Item it = stack[--top];
    const Node *n = it.n;
    if (it.depth > deepest) deepest = it.depth;
    if (n->span.file != file || n->span.lo < 0 || n->span.lo > n->span.hi || n->span.hi > len) {
      fprintf(stderr, "fuzz_frontend: %s node with bad span {%d, %d, %d} (file %d, length %d)\n",
              ast_kind_name(n->kind), n->span.file, n->span.lo, n->span.hi, file, len);
      abort();
    }
    /* Optional children are NULL only in these slots (ast.h). */
    int may_be_null = n->kind == N_FPARAM || n->kind == N_DATA || n->kind == N_ROLE ||
                      n->kind == N_PARAMDECL || n->kind == N_DRAW || n->kind == N_IF;
    for (int i = 0; i < n->kids.len; i++) {
      const Node *k = n->kids.items[i];
      if (!k) {
        if (!may_be_null && !errors) {
          fprintf(stderr, "fuzz_frontend: NULL child %d of a %s node\n", i, ast_kind_name(n->kind));
          abort();
        }
        continue;
      }
      if (top == cap) {
        stack = realloc(stack, sizeof *stack * (size_t)(cap *= 2));
        if (!stack) abort();
      }
      stack[top++] = (Item){k, it.depth + 1};
    }
  }
  free(stack);
  return deepest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *sink;
  if (!sink && !(sink = fopen("/dev/null", "w"))) abort();
  if (size > (1u << 20)) return 0; /* larger inputs only slow the search */

  Diag d;
  diag_init(&d, sink);
  Arena *a = arena_new();
  int f = diag_add_text(&d, "fuzz.vm", (const char *)data, (int)size);
  Node *file = parse_file(&d, a, f);
  if (!file || file->kind != N_FILE) {
    fprintf(stderr, "fuzz_frontend: parse_file returned no file node\n");
    abort();
  }
  int depth = check_spans(file, f, (int)size, diag_errors(&d));
  /* ast_dump recurses once per level: past the parser's own nesting limit
   * (a long a + a + ... chain) it would test the stack size, not the dump. */
  if (depth <= 10000) ast_dump(sink, &d, file);
  if (!diag_errors(&d)) { /* a valid parse: the rest of the compiler too */
    Program *prog = imp_load_text(&d, a, "fuzz.vm", (const char *)data, (int)size, NULL);
    if (prog && !diag_errors(&d)) resolve_program(&d, a, prog);
    Vec models = {0};
    if (prog && !diag_errors(&d)) models = shape_program(&d, a, prog, NULL, 0);
    for (int i = 0; i < models.len && !diag_errors(&d); i++) check_model(&d, a, models.items[i]);
    for (int i = 0; i < models.len && !diag_errors(&d); i++) {
      Vec graphs = shape_lower(&d, a, prog, models.items[i]);
      for (int k = 0; k < graphs.len && !diag_errors(&d); k++) optimize(graphs.items[k], 1 << 20);
    }
  }
  diag_finish(&d);
  arena_free(a);
  diag_free(&d);
  return 0;
}

#ifdef VML_FUZZ_MAIN
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    FILE *fp = fopen(argv[i], "rb");
    if (!fp) {
      perror(argv[i]);
      return 2;
    }
    size_t cap = 1 << 16, len = 0, got;
    uint8_t *buf = malloc(cap);
    while (buf && (got = fread(buf + len, 1, cap - len, fp)) > 0)
      if ((len += got) == cap) buf = realloc(buf, cap *= 2);
    fclose(fp);
    if (!buf) return 2;
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
  }
  return 0;
}
#endif
