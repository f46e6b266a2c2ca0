/* import.c - the module loader: search path, parsing, cycle detection. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "import.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parse.h"

#ifndef VML_STDLIBDIR
#define VML_STDLIBDIR "/usr/local/share/vml/stdlib"
#endif

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *dir_of(Arena *a, const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? arena_strndup(a, path, (size_t)(slash - path)) : ".";
}

/* Directories where the stdlib may sit relative to the program itself:
 * <bindir>/../share/vml/stdlib when installed, <builddir>/../stdlib when
 * run from the build tree (vmc lives in compiler/). */
static void exe_relative(Arena *a, const SearchPath *sp, Vec *out) {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  const char *exe = NULL;
  if (n > 0) {
    buf[n] = '\0';
    exe = buf;
  } else if (sp && sp->exe && strchr(sp->exe, '/')) {
    exe = sp->exe;
  }
  if (!exe) return;
  const char *dir = dir_of(a, exe);
  vec_push(a, out, arena_printf(a, "%s/../share/vml/stdlib", dir));
  vec_push(a, out, arena_printf(a, "%s/../stdlib", dir));
}

static void stdlib_dirs(Arena *a, const SearchPath *sp, Vec *out) {
  const char *env = getenv("VML_STDLIB");
  if (env && *env) vec_push(a, out, (void *)env);
  exe_relative(a, sp, out);
  vec_push(a, out, VML_STDLIBDIR);
}

const char *imp_stdlib_dir(Arena *a, const SearchPath *sp) {
  Vec dirs = {0};
  stdlib_dirs(a, sp, &dirs);
  for (int i = 0; i < dirs.len; i++) {
    const char *p = arena_printf(a, "%s/nn.vm", (char *)dirs.items[i]);
    if (is_file(p)) return dirs.items[i];
  }
  return VML_STDLIBDIR;
}

typedef struct {
  Diag *d;
  Arena *a;
  const SearchPath *sp;
  Program *prog;
} Loader;

static Module *load(Loader *L, const char *name, const char *path, Node *at);

static Module *find_loaded(Loader *L, const char *path) {
  char real[PATH_MAX];
  const char *key = realpath(path, real) ? real : path;
  for (int i = 0; i < L->prog->modules.len; i++) {
    Module *m = L->prog->modules.items[i];
    char r2[PATH_MAX];
    const char *k2 = realpath(m->path, r2) ? r2 : m->path;
    if (strcmp(key, k2) == 0) return m;
  }
  return NULL;
}

static void load_imports(Loader *L, Module *m) {
  const char *here = dir_of(L->a, m->path);
  for (int i = 0; i < ast_nkids(m->file); i++) {
    Node *item = ast_kid(m->file, i);
    if (item->kind != N_IMPORT) continue;
    Vec tried = {0};
    for (int k = 0; L->sp && k < L->sp->dirs.len; k++) vec_push(L->a, &tried, L->sp->dirs.items[k]);
    vec_push(L->a, &tried, (void *)here);
    stdlib_dirs(L->a, L->sp, &tried);
    const char *found = NULL;
    for (int k = 0; k < tried.len && !found; k++) {
      const char *dir = tried.items[k];
      const char *p = strcmp(dir, ".") == 0 ? arena_printf(L->a, "%s.vm", item->str)
                                            : arena_printf(L->a, "%s/%s.vm", dir, item->str);
      if (is_file(p)) found = p;
    }
    if (!found) {
      diag_error(L->d, item->span, "cannot find module '%s' (looked for %s.vm in -I directories, %s and the stdlib)",
                 item->str, item->str, here);
      continue;
    }
    Module *dep = find_loaded(L, found);
    if (dep && dep->loading) {
      diag_error(L->d, item->span, "import cycle: %s imports %s, which is still being loaded",
                 m->name, dep->name);
      continue;
    }
    if (!dep) dep = load(L, item->str, found, item);
    if (!dep) continue;
    ImportRef *ref = arena_alloc(L->a, sizeof *ref);
    ref->alias = item->str2 ? item->str2 : item->str;
    ref->module = dep;
    ref->node = item;
    for (int k = 0; k < m->imports.len; k++) {
      ImportRef *other = m->imports.items[k];
      if (strcmp(other->alias, ref->alias) == 0) {
        int line, col;
        diag_line_col(L->d, other->node->span, &line, &col);
        diag_error(L->d, item->span, "'%s' is already imported on line %d", ref->alias, line);
        ref = NULL;
        break;
      }
    }
    if (ref) vec_push(L->a, &m->imports, ref);
  }
}

static Module *load(Loader *L, const char *name, const char *path, Node *at) {
  int fid = diag_load_file(L->d, path);
  if (fid < 0) {
    diag_error(L->d, at->span, "cannot read module %s (%s): %s", name, path, strerror(errno));
    return NULL;
  }
  Module *m = arena_alloc(L->a, sizeof *m);
  m->name = arena_strdup(L->a, name);
  m->path = arena_strdup(L->a, path);
  vec_push(L->a, &L->prog->modules, m);
  m->file = parse_file(L->d, L->a, fid);
  m->loading = 1;
  load_imports(L, m);
  m->loading = 0;
  return m;
}

static Program *load_main(Diag *d, Arena *a, const char *path, int fid, const SearchPath *sp) {
  Loader L = {d, a, sp, arena_alloc(a, sizeof(Program))};
  Module *m = arena_alloc(a, sizeof *m);
  m->name = arena_strdup(a, path);
  m->path = arena_strdup(a, path);
  vec_push(a, &L.prog->modules, m);
  L.prog->main = m;
  m->file = parse_file(d, a, fid);
  m->loading = 1;
  load_imports(&L, m);
  m->loading = 0;
  return L.prog;
}

Program *imp_load(Diag *d, Arena *a, const char *path, const SearchPath *sp) {
  int fid = diag_load_file(d, path);
  if (fid < 0) {
    diag_error(d, span_none, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  return load_main(d, a, path, fid, sp);
}

Program *imp_load_text(Diag *d, Arena *a, const char *name, const char *text, int len, const SearchPath *sp) {
  return load_main(d, a, name, diag_add_text(d, name, text, len), sp);
}
