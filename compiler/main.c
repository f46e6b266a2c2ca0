/* main.c - the vmc command line: check, the dumps, -D and -I. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "diff.h"
#include "graph.h"
#include "optimize.h"
#include "vmx.h"
#include "import.h"
#include "resolve.h"
#include "shape.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

enum { EXIT_MODEL = 1, EXIT_TROUBLE = 2 };

typedef enum { DUMP_NONE, DUMP_AST, DUMP_MODEL, DUMP_GRAPH } Dump;

typedef struct {
  const char *command;
  Dump dump;
  SearchPath sp;
  Define defs[64];
  int ndefs;
  const char *files[256];
  int nfiles;
  Arena *arena; /* lives as long as the process */
  int upto;            /* --dump-graph=PASS: the passes to run */
  int emit_dot;        /* compile --emit=dot */
  const char *output;  /* compile -o */
} Options;

static const char usage[] =
    "usage: vmc COMMAND [OPTIONS] FILE...\n"
    "\n"
    "Commands:\n"
    "  check FILE...        check models: syntax, names, shapes, wiring, training\n"
    "  compile FILE         write MODEL.vmx: the compiled graphs (see docs/IR.md)\n"
    "  diff A B             what changed between two models (.vm or .vmx)\n"
    "  help [COMMAND]       show help for a command\n"
    "\n"
    "Options:\n"
    "  --dump-ast           print the syntax tree of FILE (canonical, deterministic)\n"
    "  --dump-model         print each checked model: hypers, variables, parameters\n"
    "                       with shapes, roles, losses and the training schedule\n"
    "  --dump-graph[=PASS]  print every entry point's graph after PASS (lower, fold,\n"
    "                       simplify, cse, merge, dce, fuse, plan; all by default)\n"
    "  -o OUT               compile: write OUT instead of MODEL.vmx\n"
    "  --emit=dot           compile: also write MODEL.dot (Graphviz)\n"
    "  -D NAME=VALUE        set a hyper (int, float or true/false), e.g. -D latent=32\n"
    "  -I DIR               look for imported modules in DIR first\n"
    "  --version            print the version\n"
    "  --help               print this help\n"
    "\n"
    "Exit status: 0 when every file checks, 1 when a model has errors, 2 on\n"
    "usage or I/O trouble.  Errors are printed as file:line:col with the source\n"
    "line and a caret.  See docs/LANGUAGE.md and vmc(1).\n";

static const char help_compile[] =
    "usage: vmc compile [-D NAME=VALUE]... [-I DIR]... [-o OUT] [--emit=dot] FILE\n"
    "\n"
    "Checks FILE, lowers each model to its entry points (every training step,\n"
    "encode, decode, reconstruct, sample, elbo, iw, logjoint), differentiates,\n"
    "optimizes, plans memory and writes MODEL.vmx in the current directory (or\n"
    "OUT).  Nothing is written when there is an error.  --emit=dot also writes\n"
    "MODEL.dot for Graphviz.  The format is documented in docs/IR.md.\n";

static const char help_diff[] =
    "usage: vmc diff A B\n"
    "\n"
    "Compares two models, each a .vm file (compiled on the fly) or a .vmx file:\n"
    "hypers, parameters added, removed or reshaped, roles and losses, the\n"
    "training schedule, then whether a checkpoint of A loads into B.  Exit\n"
    "status as diff(1): 0 the same, 1 different, 2 trouble.\n";

static const char help_check[] =
    "usage: vmc check [-D NAME=VALUE]... [-I DIR]... FILE...\n"
    "\n"
    "Parses each FILE and the modules it imports, resolves names, elaborates\n"
    "every model (hypers, shapes of every value, parameter names) and checks\n"
    "its roles, losses and train block.  Prints every error and warning, at\n"
    "most 20 errors per run, and exits 1 if there was any error.\n";

static int fail_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "vmc: error: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see vmc --help)\n");
  return EXIT_TROUBLE;
}

static int add_define(Options *o, const char *text) {
  const char *eq = strchr(text, '=');
  if (!eq || eq == text) return fail_usage("-D expects NAME=VALUE, found '%s'", text);
  if (o->ndefs == 64) return fail_usage("too many -D options%s", "");
  Define *d = &o->defs[o->ndefs++];
  d->name = strndup(text, (size_t)(eq - text));
  d->text = eq + 1;
  d->used = 0;
  return 0;
}

static int parse_args(Options *o, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(usage, stdout);
      exit(0);
    } else if (!strcmp(a, "--version")) {
      printf("vmc %s\n", PACKAGE_VERSION);
      exit(0);
    } else if (!strcmp(a, "--dump-ast")) {
      o->dump = DUMP_AST;
    } else if (!strcmp(a, "--dump-model")) {
      o->dump = DUMP_MODEL;
    } else if (!strncmp(a, "--dump-graph", 12) && (a[12] == '=' || !a[12])) {
      o->dump = DUMP_GRAPH;
      o->upto = a[12] == '=' ? optimize_pass_index(a + 13) : 1 << 20;
    } else if (!strcmp(a, "--emit=dot")) {
      o->emit_dot = 1;
    } else if (!strcmp(a, "-o")) {
      if (i + 1 >= argc) return fail_usage("-o needs a file name%s", "");
      o->output = argv[++i];
    } else if (!strncmp(a, "-D", 2)) {
      const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v) return fail_usage("-D needs NAME=VALUE%s", "");
      if (add_define(o, v)) return EXIT_TROUBLE;
    } else if (!strncmp(a, "-I", 2)) {
      const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v) return fail_usage("-I needs a directory%s", "");
      vec_push(o->arena, &o->sp.dirs, (void *)v);
    } else if (a[0] == '-' && a[1]) {
      return fail_usage("unknown option '%s'", a);
    } else if (!o->command && !o->nfiles && (!o->dump || !strcmp(a, "check") || !strcmp(a, "help"))) {
      o->command = a;
    } else {
      if (o->nfiles == 255) return fail_usage("too many files%s", "");
      o->files[o->nfiles++] = a;
    }
  }
  return 0;
}

/* The front end and, when asked, lowering, for one file.  Fills `out` with
 * one Vmx per model when compiling (`upto` passes run).  Returns 0, or
 * EXIT_MODEL after printing the model's errors, or EXIT_TROUBLE. */
static int front_end(Options *o, const char *path, Arena *a, Vec *out) {
  Diag d;
  diag_init(&d, stderr);
  int status = 0;
  Program *prog = imp_load(&d, a, path, &o->sp);
  if (!prog) {
    status = EXIT_TROUBLE;
  } else if (o->dump == DUMP_AST) {
    if (!diag_errors(&d)) ast_dump(stdout, &d, prog->main->file);
  } else if (!diag_errors(&d)) {
    resolve_program(&d, a, prog);
    Vec models = {0};
    if (!diag_errors(&d)) models = shape_program(&d, a, prog, o->defs, o->ndefs);
    for (int i = 0; i < models.len; i++) check_model(&d, a, models.items[i]);
    if (!diag_errors(&d) && o->dump == DUMP_MODEL)
      for (int i = 0; i < models.len; i++) model_dump(stdout, a, &d, models.items[i]);
    int lowering = o->dump == DUMP_GRAPH || out;
    for (int i = 0; lowering && !diag_errors(&d) && i < models.len; i++) {
      Vec graphs = shape_lower(&d, a, prog, models.items[i]);
      for (int k = 0; !diag_errors(&d) && k < graphs.len; k++) {
        optimize(graphs.items[k], o->dump == DUMP_GRAPH ? o->upto : 1 << 20);
        if (o->dump == DUMP_GRAPH) graph_print(stdout, graphs.items[k], &d);
      }
      if (out && !diag_errors(&d)) vec_push(a, out, vmx_from_model(a, &d, prog, models.items[i], graphs));
    }
  }
  diag_finish(&d);
  if (!status && diag_errors(&d)) status = EXIT_MODEL;
  diag_free(&d);
  return status;
}

/* Writes path atomically: a temporary file beside it, flushed and synced,
 * then renamed over it; nothing is left behind on failure. */
static int write_atomically(const char *path, void (*write)(FILE *, const void *), const void *what) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    fprintf(stderr, "vmc: error: cannot write %s: %s\n", path, strerror(errno));
    return EXIT_TROUBLE;
  }
  mode_t mask = umask(0); /* mkstemp made it 0600: give it the mode a new file gets */
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  FILE *f = fdopen(fd, "w");
  if (f) write(f, what);
  int ok = f && fflush(f) == 0 && !ferror(f) && fsync(fd) == 0;
  if (f ? fclose(f) != 0 : close(fd) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    fprintf(stderr, "vmc: error: cannot write %s: %s\n", path, strerror(errno));
    unlink(tmp);
    return EXIT_TROUBLE;
  }
  return 0;
}

static void write_vmx(FILE *f, const void *x) { vmx_write(f, x); }

static void write_dot(FILE *f, const void *x) {
  const Vmx *v = x;
  for (int i = 0; i < v->graphs.len; i++) graph_dot(f, v->graphs.items[i]);
}

static int compile(Options *o) {
  if (o->nfiles != 1) return fail_usage("compile takes one model file%s", "");
  Arena *a = arena_new();
  Vec out = {0};
  int status = front_end(o, o->files[0], a, &out);
  if (!status && out.len == 0) {
    fprintf(stderr, "vmc: error: %s defines no model\n", o->files[0]);
    status = EXIT_MODEL;
  }
  if (!status && o->output && out.len > 1) status = fail_usage("-o names one file, but %s defines several models", o->files[0]);
  for (int i = 0; !status && i < out.len; i++) {
    Vmx *x = out.items[i];
    const char *dot = o->emit_dot ? arena_printf(a, "%s.dot", x->model) : NULL;
    const char *path = o->output ? o->output : arena_printf(a, "%s.vmx", x->model);
    status = write_atomically(path, write_vmx, x);
    if (!status && dot) status = write_atomically(dot, write_dot, x);
  }
  arena_free(a);
  return status;
}

/* A side of vmc diff: a .vmx file as it is, or a .vm file compiled now. */
static Vmx *diff_side(Options *o, Arena *a, const char *path, int *status) {
  size_t n = strlen(path);
  if (n > 4 && !strcmp(path + n - 4, ".vmx")) {
    char err[512];
    Vmx *x = vmx_read(a, path, err, sizeof err);
    if (!x) {
      fprintf(stderr, "vmc: error: %s\n", err);
      *status = EXIT_TROUBLE;
    }
    return x;
  }
  Vec out = {0};
  if (front_end(o, path, a, &out) || out.len != 1) {
    if (out.len > 1) fprintf(stderr, "vmc: error: %s defines several models; diff compares one with one\n", path);
    *status = EXIT_TROUBLE;
    return NULL;
  }
  return out.items[0];
}

static int diff(Options *o) {
  if (o->nfiles != 2) return fail_usage("diff takes two files: vmc diff A B%s", "");
  Arena *a = arena_new();
  int status = 0;
  Vmx *x = diff_side(o, a, o->files[0], &status);
  Vmx *y = x ? diff_side(o, a, o->files[1], &status) : NULL;
  if (x && y) status = diff_models(stdout, x, y, o->files[0], o->files[1]);
  arena_free(a);
  return status;
}

int main(int argc, char **argv) {
  static Options o;
  o.sp.exe = argv[0];
  o.arena = arena_new();
  int rc = parse_args(&o, argc, argv);
  if (rc) return rc;
  if (o.dump && o.command && strcmp(o.command, "check") && strcmp(o.command, "help")) {
    /* vmc FILE --dump-ast: the first word was the file */
    memmove(o.files + 1, o.files, sizeof *o.files * (size_t)o.nfiles);
    o.files[0] = o.command;
    o.nfiles++;
    o.command = NULL;
  }
  if (o.command && !strcmp(o.command, "help")) {
    const char *what = o.nfiles ? o.files[0] : NULL;
    if (!what) fputs(usage, stdout);
    else if (!strcmp(what, "check")) fputs(help_check, stdout);
    else if (!strcmp(what, "compile")) fputs(help_compile, stdout);
    else if (!strcmp(what, "diff")) fputs(help_diff, stdout);
    else return fail_usage("no help for '%s'", what);
    return 0;
  }
  if (o.dump == DUMP_GRAPH && o.upto < 0) return fail_usage("--dump-graph=PASS: PASS is one of %s", optimize_pass_list());
  if (!o.dump) {
    if (!o.command) return fail_usage("no command given%s", "");
    if (!strcmp(o.command, "compile")) return compile(&o);
    if (!strcmp(o.command, "diff")) return diff(&o);
    if (strcmp(o.command, "check") != 0) return fail_usage("unknown command '%s'", o.command);
  }
  if (!o.nfiles) return fail_usage("no input file%s", "");
  if (o.dump && o.nfiles > 1) return fail_usage("a dump takes one file%s", "");
  int status = 0;
  for (int i = 0; i < o.nfiles; i++) {
    Arena *a = arena_new();
    int s = front_end(&o, o.files[i], a, NULL);
    arena_free(a);
    if (s > status) status = s;
  }
  return status;
}
