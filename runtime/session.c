/* session.c - a compiled model loaded with its parameters and data. */
#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "util.h"

char *session_find_vmx(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) die(2, "cannot read directory %s: %s", dir, strerror(errno));
  char *found = NULL;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!ends_with(e->d_name, ".vmx")) continue;
    if (!count++) found = xstrdup(e->d_name);
  }
  closedir(d);
  if (count == 0) die(2, "no .vmx file in %s (compile a model with 'vmc compile MODEL.vm', or name the file)", dir);
  if (count > 1) die(2, "several .vmx files in %s; name the one to use", dir);
  return found;
}

void session_load(Session *s, const char *path) {
  memset(s, 0, sizeof *s);
  char err[1024] = "";
  s->arena = arena_new();
  s->path = xstrdup(path);
  s->vmx = vmx_read(s->arena, path, err, sizeof err);
  if (!s->vmx) {
    fprintf(stderr, "%s\n", err);
    exit(2);
  }
  s->nparams = s->vmx->params.len;
  s->params = xmalloc(sizeof(RtParam) * (size_t)(s->nparams + 1));
  for (int i = 0; i < s->nparams; i++) {
    RtParam *p = &s->params[i];
    p->decl = s->vmx->params.items[i];
    p->n = (long)shape_size(p->decl->shape);
    p->data = xmalloc(sizeof(float) * (size_t)p->n);
  }
  s->data = xmalloc(sizeof(DataItem) * (size_t)(s->vmx->data.len + 1));
  s->batch = xmalloc(sizeof(float *) * (size_t)(s->vmx->data.len + 1));
  for (int i = 0; i < s->vmx->data.len; i++) {
    const VmxData *d = s->vmx->data.items[i];
    if (!strcmp(d->domain, "latent")) continue;
    DataItem *it = &s->data[s->ndata++];
    it->decl = d;
    for (int k = 0; k < SPLIT_COUNT; k++) data_init(&it->split[k]);
  }
}

void session_free(Session *s) {
  for (int i = 0; i < s->nparams; i++) free(s->params[i].data);
  for (int i = 0; i < s->ndata; i++) {
    source_free(&s->data[i]);
    free(s->batch[i]);
  }
  free(s->params);
  free(s->data);
  free(s->batch);
  free(s->path);
  if (s->arena) arena_free(s->arena);
  memset(s, 0, sizeof *s);
}

void session_load_data(Session *s, const char *dir_opt, const int want[SPLIT_COUNT], uint64_t seed) {
  if (s->ndata == 0) die(2, "%s: the model declares no data", s->path);
  for (int i = 0; i < s->ndata; i++) source_load(&s->data[i], dir_opt, want, seed);
  const DataItem *a = &s->data[0];
  for (int k = 0; k < SPLIT_COUNT; k++)
    for (int i = 1; i < s->ndata; i++) {
      const DataItem *b = &s->data[i];
      if (b->have[k] != a->have[k] || (b->have[k] && b->split[k].n != a->split[k].n))
        die(2, "data %s and %s have different %s splits (%s: %ld examples, %s: %ld)", a->decl->name, b->decl->name,
            split_names[k], a->file[k], a->split[k].n, b->file[k], b->split[k].n);
    }
}

long session_examples(const Session *s, int k) {
  return s->ndata && s->data[0].have[k] ? s->data[0].split[k].n : 0;
}

const Graph *session_graph(const Session *s, const char *name) {
  for (int i = 0; i < s->vmx->graphs.len; i++) {
    const Graph *g = s->vmx->graphs.items[i];
    if (!strcmp(g->name, name)) return g;
  }
  return NULL;
}

RtParam *session_param(Session *s, const char *name) {
  for (int i = 0; i < s->nparams; i++)
    if (!strcmp(s->params[i].decl->name, name)) return &s->params[i];
  return NULL;
}

void session_init_params(Session *s, uint64_t seed) {
  char err[1024];
  for (int i = 0; i < s->nparams; i++) {
    RtParam *p = &s->params[i];
    if (optim_init_param(p->data, p->decl->shape.d, p->decl->shape.rank, p->decl->init, p->decl->name, seed, err,
                         sizeof err))
      die(2, "%s: %s", s->path, err);
  }
}

void session_read_params(Session *s, const Ckpt *c) {
  char err[1024];
  if (ckpt_check_hash(c, s->vmx->source_hash, err, sizeof err)) die(2, "%s", err);
  for (int i = 0; i < s->nparams; i++) {
    RtParam *p = &s->params[i];
    if (ckpt_load(c, p->decl->name, p->decl->shape.d, p->decl->shape.rank, p->data, err, sizeof err))
      die(2, "%s", err);
  }
}

void session_bind_params(Session *s, Exec *ex) {
  for (int i = 0; i < s->nparams; i++) exec_bind_param(ex, s->params[i].decl->name, s->params[i].data);
}

Exec *session_exec(Session *s, const Graph *g, long rows) {
  Exec *ex = exec_new(g, (int)rows);
  if (!ex) die(1, "model %s: out of memory preparing graph %s for %ld rows (try a smaller --batch)", s->vmx->model,
               g->name, rows);
  session_bind_params(s, ex);
  return ex;
}

void session_bind(Session *s, Exec *ex, int k, const long *idx, long count, uint64_t seed, uint64_t epoch) {
  if (count > s->batch_cap) {
    for (int i = 0; i < s->ndata; i++) {
      free(s->batch[i]);
      s->batch[i] = xmalloc(sizeof(float) * (size_t)(count * s->data[i].split[k].dim));
    }
    s->batch_cap = count;
  }
  for (int i = 0; i < s->ndata; i++) {
    source_gather(&s->data[i], k, idx, count, seed, epoch, s->batch[i]);
    exec_bind_input(ex, s->data[i].decl->name, s->batch[i]);
  }
}
