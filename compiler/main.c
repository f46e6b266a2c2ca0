/* main.c - the vmc command line: check, the dumps, -D and -I. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "graph.h"
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
  const char *pass; /* --dump-graph=PASS */
} Options;

static const char usage[] =
    "usage: vmc COMMAND [OPTIONS] FILE...\n"
    "\n"
    "Commands:\n"
    "  check FILE...        check models: syntax, names, shapes, wiring, training\n"
    "  help [COMMAND]       show help for a command\n"
    "\n"
    "Options:\n"
    "  --dump-ast           print the syntax tree of FILE (canonical, deterministic)\n"
    "  --dump-model         print each checked model: hypers, variables, parameters\n"
    "                       with shapes, roles and losses\n"
    "  -D NAME=VALUE        set a hyper (int, float or true/false), e.g. -D latent=32\n"
    "  -I DIR               look for imported modules in DIR first\n"
    "  --version            print the version\n"
    "  --help               print this help\n"
    "\n"
    "Exit status: 0 when every file checks, 1 when a model has errors, 2 on\n"
    "usage or I/O trouble.  Errors are printed as file:line:col with the source\n"
    "line and a caret.  See docs/LANGUAGE.md and vmc(1).\n";

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
    } else if (!strncmp(a, "--dump-graph", 12)) {
      o->dump = DUMP_GRAPH;
      o->pass = a[12] == '=' ? a + 13 : "final";
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

/* Runs the front end over one file; returns 0 when it has no errors. */
static int front_end(Options *o, const char *path) {
  Diag d;
  diag_init(&d, stderr);
  Arena *a = arena_new();
  int status = 0;
  Program *prog = imp_load(&d, a, path, &o->sp);
  if (!prog) {
    status = EXIT_TROUBLE;
  } else if (o->dump == DUMP_AST) {
    if (!diag_errors(&d)) ast_dump(stdout, &d, prog->main->file);
  } else if (!diag_errors(&d)) {
    resolve_program(&d, a, prog);
    if (!diag_errors(&d)) {
      Vec models = shape_program(&d, a, prog, o->defs, o->ndefs);
      for (int i = 0; i < models.len; i++) check_model(&d, a, models.items[i]);
      if (!diag_errors(&d) && o->dump == DUMP_MODEL)
        for (int i = 0; i < models.len; i++) model_dump(stdout, a, &d, models.items[i]);
      for (int i = 0; !diag_errors(&d) && o->dump == DUMP_GRAPH && i < models.len; i++) {
        Vec graphs = shape_lower(&d, a, prog, models.items[i]);
        for (int k = 0; !diag_errors(&d) && k < graphs.len; k++) graph_print(stdout, graphs.items[k], &d);
      }
    }
  }
  diag_finish(&d);
  if (!status && diag_errors(&d)) status = EXIT_MODEL;
  diag_free(&d);
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
    else return fail_usage("no help for '%s'", what);
    return 0;
  }
  if (!o.dump) {
    if (!o.command) return fail_usage("no command given%s", "");
    if (strcmp(o.command, "check") != 0) return fail_usage("unknown command '%s'", o.command);
  }
  if (!o.nfiles) return fail_usage("no input file%s", "");
  if (o.dump && o.nfiles > 1) return fail_usage("a dump takes one file%s", "");
  int status = 0;
  for (int i = 0; i < o.nfiles; i++) {
    int s = front_end(&o, o.files[i]);
    if (s > status) status = s;
  }
  return status;
}
