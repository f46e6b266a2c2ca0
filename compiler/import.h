/* import.h - loading a model file and, transitively, the modules it imports.
 *
 * `import nn` finds nn.vm in, in order: each -I directory, the importing
 * file's directory, $VML_STDLIB, the stdlib beside the running vmc (build
 * tree or relocated install), and the configured install directory. */
#ifndef VML_IMPORT_H
#define VML_IMPORT_H

#include "ast.h"

typedef struct Module Module;
struct Module {
  const char *name; /* "nn"; the main file's is its path */
  const char *path;
  Node *file;       /* N_FILE */
  Vec imports;      /* ImportRef* */
  int loading;      /* set while its imports load: a cycle finds it set */
};

typedef struct {
  const char *alias; /* the name used in the importing file */
  Module *module;
  Node *node;        /* the import statement */
  int used;
} ImportRef;

typedef struct {
  Vec dirs;          /* const char*: -I directories */
  const char *exe;   /* argv[0], to find the stdlib beside the program */
} SearchPath;

typedef struct {
  Module *main;
  Vec modules;       /* every module loaded, main first */
} Program;

/* Loads and parses the file and its imports.  Errors go to d; returns NULL
 * only when the main file cannot be read (reported as "vmc: error: ..."). */
Program *imp_load(Diag *d, Arena *a, const char *path, const SearchPath *sp);

/* The same for source text in memory (tests, the fuzzer); imports are
 * looked for relative to `name`. */
Program *imp_load_text(Diag *d, Arena *a, const char *name, const char *text, int len, const SearchPath *sp);

/* The stdlib directory vmc would use without -I (for --help and tests). */
const char *imp_stdlib_dir(Arena *a, const SearchPath *sp);

#endif
