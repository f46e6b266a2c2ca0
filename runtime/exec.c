/* exec.c - running one graph: the memory plan, node by node dispatch onto
 * runtime/kernels.c, fused elementwise groups, random draws and the
 * non-finite check (see exec.h). */
#include "exec.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pool.h"
#include "rng.h"
#include "vmx.h"

/* Elements of a fused group evaluated together: every member's values for
 * one chunk stay in L1.  A group runs in tasks of TASK_CHUNKS chunks on
 * the runtime's threads (elementwise: any split gives the same values);
 * smaller groups run on the calling thread, where a task would cost more
 * to hand out than to compute. */
enum { CHUNK = 512, TASK_CHUNKS = 8 };

/* How a node runs. */
enum {
  H_BOUND,  /* input, param: the caller's array */
  H_FIXED,  /* const, fill, mask_*: computed in exec_new */
  H_MEMBER, /* a fused member computed at its group's root */
  H_GROUP,  /* the root of a fusion group (or a lone elementwise node) */
  H_VIEW,   /* a reshape read in place */
  H_INTO,   /* a matmul computed by its bias add (fuse_dense) */
  H_OP      /* everything else */
};

/* A fusion group: members in node order, the root last.  ref[2m + k] is
 * member m's input k: >= 0 another member's index, < 0 external -(e+1). */
typedef struct {
  int nm, next;
  int *members, *ref, *ext;
} Group;

struct Exec {
  const Graph *g;
  int n, max_batch, check;
  int nslots;          /* threads it may use: per-thread workspace */
  GNode **nd;
  long long *per;      /* floats per example */
  char *how;           /* H_* */
  int *grp;            /* a root's group index, else -1 */
  int *into;           /* a bias add's matmul, computed with it; else -1 */
  float **store;       /* where a node's value is written */
  const float **cur;   /* where it is read during a run */
  const float **bound; /* inputs and params as bound */
  const float **over;  /* overrides */
  char *bad;           /* a source that could not be built (malformed mask) */
  Group *groups;
  int ngroups;
  float **bufs;
  int nbufs;
  float **priv;
  int npriv;
  float *scratch;       /* per thread: fused groups' chunks */
  size_t scratch_stride;
  KWork work;           /* per thread: im2col columns */
  double *acc;
  size_t bytes;
  ExecObserver *observer;
  void *observer_ctx;
  /* per run */
  KView *views;
  const float **eptr; /* per thread: maxext + 1 */
  int *vkind, maxext;
};

/* ---------------------------------------------------------------- helpers */

static long long nsize(const Exec *ex, int i, long long B) { return ex->per[i] * (ex->nd[i]->batched ? B : 1); }

static void *xcalloc(Exec *ex, size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (p) ex->bytes += (n ? n : 1) * size;
  return p;
}

static float *private_array(Exec *ex, size_t n) {
  float *p = xcalloc(ex, n, sizeof(float));
  if (!p) return NULL;
  float **list = realloc(ex->priv, sizeof *list * (size_t)(ex->npriv + 1));
  if (!list) {
    free(p);
    return NULL;
  }
  ex->priv = list;
  ex->priv[ex->npriv++] = p;
  return p;
}

static int is_source(Op op) { return op == OP_INPUT || op == OP_PARAM; }
static int is_fixed(Op op) { return op == OP_CONST || op == OP_FILL || op == OP_MASK_DEGREE || op == OP_MASK_CONV; }

void exec_where(const GNode *n, char *buf, size_t len) {
  /* The .vmx reader keeps positions as (interned base name, line, column)
   * with the name table private to vmx.c; the writer prints them.  So the
   * node is written as a one-node graph of an otherwise empty Vmx and its
   * " @FILE:LINE:COL" read back.  Only on an error path. */
  if (!len) return;
  buf[0] = '\0';
  if (!n || n->span.file < 0) return;
  char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  if (!f) return;
  void *items[1] = {(void *)n};
  Graph g;
  memset(&g, 0, sizeof g);
  g.name = "where";
  g.nodes.items = items;
  g.nodes.len = g.nodes.cap = 1;
  Vmx x;
  memset(&x, 0, sizeof x);
  x.version = VMX_VERSION;
  x.model = "where";
  void *graphs[1] = {&g};
  x.graphs.items = graphs;
  x.graphs.len = x.graphs.cap = 1;
  vmx_write(f, &x);
  fclose(f);
  const char *line = text ? strstr(text, "\n  %") : NULL;
  if (line) {
    const char *eol = strchr(line + 1, '\n'), *at = NULL;
    for (const char *p = line + 1; p && p < eol; p++)
      if (p[0] == ' ' && p[1] == '@') at = p + 2;
    if (at && eol) snprintf(buf, len, "%.*s", (int)(eol - at), at);
  }
  free(text);
}

/* --------------------------------------------------------------- creation */

static int build_fixed(Exec *ex, int i, float *y, long long count) {
  const GNode *n = ex->nd[i];
  switch (n->op) {
  case OP_CONST:
    for (long long k = 0; k < count; k++) y[k] = (float)n->f;
    return 0;
  case OP_FILL:
    for (long long k = 0; k < count; k++) y[k] = (float)n->f;
    return 0;
  case OP_MASK_DEGREE:
    if (n->shape.rank != 2) return -1;
    return k_mask_degree(y, n->s, (long)n->shape.d[0], (long)n->shape.d[1]);
  case OP_MASK_CONV:
    if (n->shape.rank != 4) return -1;
    return k_mask_conv(y, n->s, (long)n->shape.d[0], (long)n->shape.d[1], (long)n->shape.d[2], (long)n->shape.d[3]);
  default:
    return -1;
  }
}

static KConv conv_geometry(const GNode *x, const GNode *a, const GNode *b) {
  KConv c;
  c.s = (long)x->i[0];
  c.p = (long)x->i[1];
  c.d = (long)(x->i[2] ? x->i[2] : 1);
  switch (x->op) {
  case OP_CONV2D: case OP_CONV2D_T: /* a image, b kernel */
    c.C = (long)a->shape.d[0], c.H = (long)a->shape.d[1], c.W = (long)a->shape.d[2];
    c.O = (long)x->shape.d[0], c.OH = (long)x->shape.d[1], c.OW = (long)x->shape.d[2];
    c.KH = (long)b->shape.d[2], c.KW = (long)b->shape.d[3];
    break;
  default: /* the dw ops: a image x, b output gradient */
    c.C = (long)a->shape.d[0], c.H = (long)a->shape.d[1], c.W = (long)a->shape.d[2];
    c.O = (long)b->shape.d[0], c.OH = (long)b->shape.d[1], c.OW = (long)b->shape.d[2];
    c.KH = (long)x->shape.d[2], c.KW = (long)x->shape.d[3];
    break;
  }
  return c;
}

static int make_groups(Exec *ex) {
  int maxg = 0, nlone = 0;
  for (int i = 0; i < ex->n; i++) {
    if (ex->nd[i]->group > maxg) maxg = ex->nd[i]->group;
    if (!ex->nd[i]->group && op_is_elementwise(ex->nd[i]->op)) nlone++;
  }
  ex->groups = xcalloc(ex, (size_t)(maxg + nlone), sizeof(Group));
  int *index = xcalloc(ex, (size_t)maxg + 1, sizeof(int)), *count = xcalloc(ex, (size_t)maxg + 1, sizeof(int));
  if (!ex->groups || !index || !count) return -1;
  for (int i = 0; i < ex->n; i++)
    if (ex->nd[i]->group) count[ex->nd[i]->group]++;
  int ng = 0;
  for (int i = 0; i < ex->n; i++) {
    const GNode *x = ex->nd[i];
    if (!op_is_elementwise(x->op)) continue;
    Group *G;
    if (x->group) {
      if (!index[x->group]) {
        index[x->group] = ++ng;
        G = &ex->groups[ng - 1];
        G->members = xcalloc(ex, (size_t)count[x->group], sizeof(int));
        G->ref = xcalloc(ex, 2 * (size_t)count[x->group], sizeof(int));
        G->ext = xcalloc(ex, 2 * (size_t)count[x->group], sizeof(int));
        if (!G->members || !G->ref || !G->ext) return -1;
      }
      G = &ex->groups[index[x->group] - 1];
    } else {
      G = &ex->groups[ng++];
      G->members = xcalloc(ex, 1, sizeof(int));
      G->ref = xcalloc(ex, 2, sizeof(int));
      G->ext = xcalloc(ex, 2, sizeof(int));
      if (!G->members || !G->ref || !G->ext) return -1;
    }
    int m = G->nm++;
    G->members[m] = i;
    for (int k = 0; k < x->nin && k < 2; k++) {
      int in = x->in[k], r = -1;
      for (int j = 0; j < m; j++)
        if (G->members[j] == in) r = j;
      if (r < 0) {
        int e = -1;
        for (int j = 0; j < G->next; j++)
          if (G->ext[j] == in) e = j;
        if (e < 0) G->ext[e = G->next++] = in;
        r = -(e + 1);
      }
      G->ref[2 * m + k] = r;
    }
  }
  ex->ngroups = ng;
  /* members: all but the last; the root runs the group */
  for (int k = 0; k < ng; k++) {
    Group *G = &ex->groups[k];
    for (int m = 0; m + 1 < G->nm; m++) ex->how[G->members[m]] = H_MEMBER;
    int root = G->members[G->nm - 1];
    ex->how[root] = H_GROUP;
    ex->grp[root] = k;
    if (G->next > ex->maxext) ex->maxext = G->next;
  }
  free(index);
  free(count);
  return 0;
}

/* The last node that reads node i (a fused reader reads at its root), or
 * n for an output. */
static void last_uses(const Exec *ex, int *last) {
  int n = ex->n;
  for (int i = 0; i < n; i++) last[i] = i;
  for (int i = 0; i < n; i++) {
    int at = i;
    if (ex->how[i] == H_MEMBER)
      for (int j = i + 1; j < n; j++)
        if (ex->nd[j]->group == ex->nd[i]->group && ex->how[j] == H_GROUP) {
          at = j;
          break;
        }
    for (int k = 0; k < ex->nd[i]->nin; k++)
      if (last[ex->nd[i]->in[k]] < at) last[ex->nd[i]->in[k]] = at;
  }
  for (int k = 0; k < ex->g->outputs.len; k++) {
    const GOutput *o = ex->g->outputs.items[k];
    if (o->node >= 0 && o->node < n) last[o->node] = n;
  }
}

/* The bias operand of node r if r is a lone add of matmul m and a
 * parameter or constant vector of m's row length, else -1. */
static int bias_operand(const Exec *ex, int r, int m) {
  const GNode *x = ex->nd[r], *mm = ex->nd[m];
  if (x->op != OP_ADD || ex->how[r] != H_GROUP || ex->groups[ex->grp[r]].nm != 1) return -1;
  int b = x->in[0] == m ? x->in[1] : x->in[1] == m ? x->in[0] : -1;
  if (b < 0 || b == m || (ex->how[b] != H_BOUND && ex->how[b] != H_FIXED)) return -1;
  const GNode *v = ex->nd[b];
  if (v->batched || v->shape.rank != 1 || mm->shape.rank < 1 || v->shape.d[0] != mm->shape.d[mm->shape.rank - 1]) return -1;
  return x->batched == mm->batched && shape_eq(x->shape, mm->shape) ? b : -1;
}

/* Whether matmul m can run at r, its reader, into r's storage: nothing
 * but sources between them (m's inputs are still there at r) and r's
 * storage none of its inputs'. */
static int can_run_at(const Exec *ex, int m, int r) {
  for (int j = m + 1; j < r; j++)
    if (ex->how[j] != H_BOUND && ex->how[j] != H_FIXED) return 0;
  for (int k = 0; k < ex->nd[m]->nin; k++) {
    int base = ex->nd[m]->in[k];
    while (ex->how[base] == H_VIEW) base = ex->nd[base]->in[0];
    if (ex->how[base] != H_BOUND && ex->how[base] != H_FIXED && ex->store[base] == ex->store[r]) return 0;
  }
  return 1;
}

/* A dense layer: a matmul whose only reader adds a bias vector is computed
 * by that add, in one pass (k_matmul with the bias; the add's value
 * unchanged up to rounding), and keeps no value of its own. */
static int fuse_dense(Exec *ex) {
  int *readers = calloc((size_t)ex->n, sizeof(int));
  if (!readers) return -1;
  for (int i = 0; i < ex->n; i++)
    for (int k = 0; k < ex->nd[i]->nin; k++) readers[ex->nd[i]->in[k]]++;
  for (int k = 0; k < ex->g->outputs.len; k++) {
    const GOutput *o = ex->g->outputs.items[k];
    if (o->node >= 0 && o->node < ex->n) readers[o->node]++;
  }
  for (int r = 0; r < ex->n; r++)
    for (int k = 0; k < ex->nd[r]->nin && k < 2; k++) {
      int m = ex->nd[r]->in[k];
      if (ex->nd[m]->op != OP_MATMUL || ex->nd[m]->i[0] || ex->how[m] != H_OP || readers[m] != 1) continue;
      if (bias_operand(ex, r, m) < 0 || !can_run_at(ex, m, r)) continue;
      ex->into[r] = m;
      ex->how[m] = H_INTO;
      ex->store[m] = NULL;
      break;
    }
  free(readers);
  return 0;
}

Exec *exec_new(const Graph *g, int max_batch) {
  if (!g || max_batch < 1) return NULL;
  Exec *ex = calloc(1, sizeof *ex);
  if (!ex) return NULL;
  ex->g = g;
  ex->n = g->nodes.len;
  ex->max_batch = max_batch;
  ex->check = 1;
  ex->nslots = pool_threads();
  k_blas_serial();
  int n = ex->n;
  ex->nd = xcalloc(ex, (size_t)n, sizeof *ex->nd);
  ex->per = xcalloc(ex, (size_t)n, sizeof *ex->per);
  ex->how = xcalloc(ex, (size_t)n, 1);
  ex->grp = xcalloc(ex, (size_t)n, sizeof(int));
  ex->into = xcalloc(ex, (size_t)n, sizeof(int));
  ex->store = xcalloc(ex, (size_t)n, sizeof *ex->store);
  ex->cur = xcalloc(ex, (size_t)n, sizeof *ex->cur);
  ex->bound = xcalloc(ex, (size_t)n, sizeof *ex->bound);
  ex->over = xcalloc(ex, (size_t)n, sizeof *ex->over);
  ex->bad = xcalloc(ex, (size_t)n, 1);
  int *last = xcalloc(ex, (size_t)n, sizeof(int));
  if (!ex->nd || !ex->per || !ex->how || !ex->grp || !ex->into || !ex->store || !ex->cur || !ex->bound || !ex->over || !ex->bad || !last) goto fail;
  int nbufs = 0;
  for (int i = 0; i < n; i++) {
    GNode *x = g->nodes.items[i];
    ex->nd[i] = x;
    ex->per[i] = shape_size(x->shape);
    ex->grp[i] = ex->into[i] = -1;
    ex->how[i] = is_source(x->op) ? H_BOUND : is_fixed(x->op) ? H_FIXED : H_OP;
    if (x->buffer >= nbufs) nbufs = x->buffer + 1;
  }
  if (make_groups(ex)) goto fail;
  /* buffer sizes and users */
  long long *bsize = xcalloc(ex, (size_t)nbufs + 1, sizeof(long long));
  int *busers = xcalloc(ex, (size_t)nbufs + 1, sizeof(int));
  if (!bsize || !busers) {
    free(bsize);
    free(busers);
    goto fail;
  }
  for (int i = 0; i < n; i++) {
    int b = ex->nd[i]->buffer;
    if (b < 0 || ex->how[i] == H_BOUND || ex->how[i] == H_MEMBER) continue;
    long long need = nsize(ex, i, max_batch);
    if (need > bsize[b]) bsize[b] = need;
    busers[b]++;
  }
  ex->nbufs = nbufs;
  ex->bufs = xcalloc(ex, (size_t)nbufs + 1, sizeof(float *));
  if (!ex->bufs) {
    free(bsize);
    free(busers);
    goto fail;
  }
  for (int b = 0; b < nbufs; b++)
    if (busers[b] && !(ex->bufs[b] = xcalloc(ex, (size_t)bsize[b], sizeof(float)))) {
      free(bsize);
      free(busers);
      goto fail;
    }
  /* storage: the planned buffer, or a private array for fixed nodes in a
   * shared buffer and for nodes the plan did not place */
  for (int i = 0; i < n; i++) {
    const GNode *x = ex->nd[i];
    if (ex->how[i] == H_BOUND || ex->how[i] == H_MEMBER) continue;
    int b = x->buffer;
    size_t need = (size_t)nsize(ex, i, max_batch);
    if (b >= 0 && !(ex->how[i] == H_FIXED && busers[b] > 1)) ex->store[i] = ex->bufs[b];
    else if (!(ex->store[i] = private_array(ex, need))) {
      free(bsize);
      free(busers);
      goto fail;
    }
    ex->cur[i] = ex->store[i];
    if (ex->how[i] == H_FIXED && build_fixed(ex, i, ex->store[i], (long long)need)) ex->bad[i] = 1;
  }
  free(bsize);
  free(busers);
  /* reshapes read in place when nothing overwrites their input's storage
   * while they are live */
  last_uses(ex, last);
  for (int i = 0; i < n; i++) {
    const GNode *x = ex->nd[i];
    if (x->op != OP_RESHAPE) continue;
    int base = x->in[0];
    while (ex->how[base] == H_VIEW) base = ex->nd[base]->in[0];
    int safe = 1;
    if (ex->how[base] != H_BOUND && ex->how[base] != H_FIXED) {
      int b = ex->nd[base]->buffer;
      if (b >= 0)
        for (int j = i + 1; j <= last[i] && j < n && safe; j++)
          if (ex->nd[j]->buffer == b && ex->how[j] != H_MEMBER) safe = 0;
    }
    if (safe) ex->how[i] = H_VIEW;
  }
  if (fuse_dense(ex)) goto fail;
  /* workspaces */
  size_t scratch = 0, work = 0, acc = 1;
  for (int k = 0; k < ex->ngroups; k++) {
    size_t need = (size_t)(ex->groups[k].nm + ex->groups[k].next) * CHUNK;
    if (need > scratch) scratch = need;
  }
  for (int i = 0; i < n; i++) {
    const GNode *x = ex->nd[i];
    const GNode *a = x->nin > 0 ? ex->nd[x->in[0]] : NULL;
    size_t need = 0;
    switch (x->op) {
    case OP_CONV2D: case OP_CONV2D_DW: case OP_CONV2D_T: case OP_CONV2D_T_DW: {
      KConv c = conv_geometry(x, a, ex->nd[x->in[1]]);
      need = k_conv_work(&c, x->op == OP_CONV2D_T || x->op == OP_CONV2D_T_DW);
      if (need > work) work = need;
      break;
    }
    case OP_SUM_AXIS: case OP_EMBED_DW:
      if ((size_t)ex->per[i] > acc) acc = (size_t)ex->per[i];
      break;
    case OP_REDUCE_TO:
      if ((size_t)nsize(ex, i, max_batch) > acc) acc = (size_t)nsize(ex, i, max_batch);
      break;
    default:
      break;
    }
  }
  size_t slots = (size_t)ex->nslots;
  ex->scratch_stride = scratch;
  ex->scratch = xcalloc(ex, scratch * slots, sizeof(float));
  ex->work = (KWork){xcalloc(ex, work * slots, sizeof(float)), work, ex->nslots};
  ex->acc = xcalloc(ex, acc, sizeof(double));
  ex->views = xcalloc(ex, (size_t)ex->maxext + 1, sizeof(KView));
  ex->vkind = xcalloc(ex, (size_t)ex->maxext + 1, sizeof(int));
  ex->eptr = xcalloc(ex, ((size_t)ex->maxext + 1) * slots, sizeof(float *));
  if (!ex->scratch || !ex->work.base || !ex->acc || !ex->views || !ex->vkind || !ex->eptr) goto fail;
  free(last);
  return ex;
fail:
  free(last);
  exec_free(ex);
  return NULL;
}

void exec_free(Exec *ex) {
  if (!ex) return;
  for (int k = 0; k < ex->ngroups; k++) {
    free(ex->groups[k].members);
    free(ex->groups[k].ref);
    free(ex->groups[k].ext);
  }
  free(ex->groups);
  for (int b = 0; b < ex->nbufs; b++) free(ex->bufs[b]);
  free(ex->bufs);
  for (int k = 0; k < ex->npriv; k++) free(ex->priv[k]);
  free(ex->priv);
  free(ex->nd);
  free(ex->per);
  free(ex->how);
  free(ex->grp);
  free(ex->into);
  free(ex->store);
  free(ex->cur);
  free(ex->bound);
  free(ex->over);
  free(ex->bad);
  free(ex->scratch);
  free(ex->work.base);
  free(ex->acc);
  free(ex->views);
  free(ex->vkind);
  free((void *)ex->eptr);
  free(ex);
}

/* ---------------------------------------------------------------- binding */

static int bind(Exec *ex, Op op, const char *name, const float *data) {
  int count = 0;
  for (int i = 0; i < ex->n; i++)
    if (ex->nd[i]->op == op && ex->nd[i]->s && !strcmp(ex->nd[i]->s, name)) {
      ex->bound[i] = data;
      count++;
    }
  return count;
}

int exec_bind_input(Exec *ex, const char *name, const float *data) { return bind(ex, OP_INPUT, name, data); }
int exec_bind_param(Exec *ex, const char *name, const float *data) { return bind(ex, OP_PARAM, name, data); }

void exec_override(Exec *ex, int node, const float *data) {
  if (node < 0 || node >= ex->n) return;
  ex->over[node] = data;
}

void exec_set_check(Exec *ex, int on) { ex->check = on; }

void exec_set_threads(int n) { k_set_threads(n); }

void exec_observe(Exec *ex, ExecObserver *fn, void *ctx) {
  ex->observer = fn;
  ex->observer_ctx = ctx;
}
size_t exec_bytes(const Exec *ex) { return ex->bytes; }

const float *exec_value(const Exec *ex, int node) {
  if (node < 0 || node >= ex->n) return NULL;
  return ex->cur[node];
}

const float *exec_output(const Exec *ex, const char *name) {
  for (int k = 0; k < ex->g->outputs.len; k++) {
    const GOutput *o = ex->g->outputs.items[k];
    if (!strcmp(o->name, name)) return exec_value(ex, o->node);
  }
  return NULL;
}

/* ------------------------------------------------------------------ errors */

static int fail(Exec *ex, ExecError *err, int node, long long index, long long B, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int fail(Exec *ex, ExecError *err, int node, long long index, long long B, const char *fmt, ...) {
  if (!err) return -1;
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  err->node = node;
  err->index = index;
  err->where[0] = '\0';
  err->name = NULL;
  err->op = OP_INPUT;
  if (node < 0) {
    snprintf(err->msg, sizeof err->msg, "%s", what);
    return -1;
  }
  const GNode *x = ex->nd[node];
  err->op = x->op;
  err->name = x->name;
  exec_where(x, err->where, sizeof err->where);
  char at[300] = "";
  if (err->where[0]) snprintf(at, sizeof at, " at %s", err->where);
  char pos[96] = "";
  if (index >= 0 && x->batched && ex->per[node] > 0 && B > 0)
    snprintf(pos, sizeof pos, " at element %lld (example %lld, element %lld)", index, index / ex->per[node],
             index % ex->per[node]);
  else if (index >= 0)
    snprintf(pos, sizeof pos, " at element %lld", index);
  snprintf(err->msg, sizeof err->msg, "node %%%d (%s%s%s)%s: %s%s", node, op_name(x->op), x->name ? ", " : "",
           x->name ? x->name : "", at, what, pos);
  return -1;
}

/* ------------------------------------------------------------ fused groups */

/* Computes the group's values for elements k0 .. k0 + len of the root;
 * the root's into out + k0, the other members' into the scratch of the
 * thread in `slot`. */
static void group_chunk(Exec *ex, const Group *G, int slot, long long k0, long long len, float *out) {
  float *ext = ex->scratch + (size_t)slot * ex->scratch_stride, *mem = ext + (size_t)G->next * CHUNK;
  const float **e = ex->eptr + (size_t)slot * ((size_t)ex->maxext + 1);
  for (int j = 0; j < G->next; j++) {
    const float *src = ex->cur[G->ext[j]];
    switch (ex->vkind[j]) {
    case K_VIEW_CONTIG: e[j] = src + k0; break;
    case K_VIEW_SCALAR: e[j] = ext + (size_t)j * CHUNK; break; /* filled once per run */
    default:
      k_gather(ext + (size_t)j * CHUNK, src, &ex->views[j], k0, len);
      e[j] = ext + (size_t)j * CHUNK;
    }
  }
  for (int m = 0; m < G->nm; m++) {
    const GNode *x = ex->nd[G->members[m]];
    float *dst = m == G->nm - 1 ? out + k0 : mem + (size_t)m * CHUNK;
    int r0 = G->ref[2 * m], r1 = G->ref[2 * m + 1];
    const float *a = r0 >= 0 ? mem + (size_t)r0 * CHUNK : e[-r0 - 1];
    if (x->nin == 1) k_unary(x->op, dst, a, (long)len, (float)x->f);
    else {
      const float *b = r1 >= 0 ? mem + (size_t)r1 * CHUNK : e[-r1 - 1];
      k_binary(x->op, dst, a, b, (long)len);
    }
  }
}

/* One run of a group, as the tasks see it. */
typedef struct {
  Exec *ex;
  const Group *G;
  long long total;
  float *out;
  atomic_int bad; /* a task found a non-finite value in the root */
} GroupRun;

static void group_task(void *ctx, long t, int slot) {
  GroupRun *r = ctx;
  long long k1 = (t + 1) * (long long)TASK_CHUNKS * CHUNK;
  if (k1 > r->total) k1 = r->total;
  for (long long k0 = t * (long long)TASK_CHUNKS * CHUNK; k0 < k1; k0 += CHUNK) {
    long long len = k1 - k0 < CHUNK ? k1 - k0 : CHUNK;
    group_chunk(r->ex, r->G, slot, k0, len, r->out);
    if (r->ex->check && k_any_nonfinite(r->out + k0, (long)len)) atomic_store(&r->bad, 1);
  }
}

/* The views of the group's external inputs over the root; scalars are
 * spread over a chunk of every thread's scratch once. */
static void group_views(Exec *ex, const Group *G, const GNode *r, long long B) {
  for (int j = 0; j < G->next; j++) {
    const GNode *x = ex->nd[G->ext[j]];
    k_view(&ex->views[j], r->shape.d, r->shape.rank, r->batched, x->shape.d, x->shape.rank, x->batched, B);
    ex->vkind[j] = k_view_kind(&ex->views[j]);
    if (ex->vkind[j] != K_VIEW_SCALAR) continue;
    float v = ex->cur[G->ext[j]][0];
    for (int s = 0; s < ex->nslots; s++) {
      float *dst = ex->scratch + (size_t)s * ex->scratch_stride + (size_t)j * CHUNK;
      for (int t = 0; t < CHUNK; t++) dst[t] = v;
    }
  }
}

/* The first member that is not finite at the root's first bad element,
 * found by computing that element's chunk again. */
static int group_fail(Exec *ex, const Group *G, int root, long long B, ExecError *err) {
  long long total = nsize(ex, root, B);
  float *out = ex->store[root];
  long bad = k_first_nonfinite(out, (long)total);
  if (bad < 0) return fail(ex, err, root, -1, B, "non-finite value");
  long long k0 = bad / CHUNK * CHUNK;
  group_chunk(ex, G, 0, k0, total - k0 < CHUNK ? total - k0 : CHUNK, out);
  const float *mem = ex->scratch + (size_t)G->next * CHUNK;
  for (int m = 0; m < G->nm; m++) {
    float v = m == G->nm - 1 ? out[bad] : mem[(size_t)m * CHUNK + (size_t)(bad - k0)];
    if (!isfinite(v))
      return fail(ex, err, G->members[m], bad, B, "non-finite value %s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
  }
  return fail(ex, err, root, bad, B, "non-finite value");
}

static int run_group(Exec *ex, int root, long long B, ExecError *err) {
  const Group *G = &ex->groups[ex->grp[root]];
  GroupRun r = {.ex = ex, .G = G, .total = nsize(ex, root, B), .out = ex->store[root]};
  atomic_init(&r.bad, 0);
  group_views(ex, G, ex->nd[root], B);
  long per_task = (long)TASK_CHUNKS * CHUNK;
  pool_run((long)((r.total + per_task - 1) / per_task), ex->nslots, group_task, &r);
  return atomic_load(&r.bad) ? group_fail(ex, G, root, B, err) : 0;
}

/* ------------------------------------------------------- nodes in pieces */

/* Nodes whose work splits into independent pieces, fixed by the shape, run
 * them on the runtime's threads: draws (counter-based: element k's value
 * does not depend on where a fill starts), expand, the sum of each example,
 * and the sums over the rows of reduce_to and batch_mean, by columns.
 * Every output element is computed as it would be in one piece, so the
 * thread count changes nothing.  PIECE: floats of work per piece, enough
 * to outweigh handing it to a thread. */
enum { PIECE = 8192 };

typedef struct {
  const GNode *x;
  float *y;
  const float *a;
  long long total, grain; /* units (elements, examples or columns); per piece */
  uint64_t seed, stream;  /* draws */
  KView view;             /* expand */
  long per;               /* sum: floats per example */
  long rows, cols;        /* column sums */
  double div;
} Pieces;

static void piece(void *ctx, long t, int slot) {
  (void)slot;
  const Pieces *p = ctx;
  long long k0 = t * p->grain, n = p->total - k0 < p->grain ? p->total - k0 : p->grain;
  switch (p->x->op) {
  case OP_RANDN: rng_fill_normal(p->y + k0, (long)n, p->seed, p->stream, (uint64_t)k0); break;
  case OP_RANDU: rng_fill_uniform(p->y + k0, (long)n, p->seed, p->stream, (uint64_t)k0); break;
  case OP_SAMPLE_BERNOULLI:
    rng_fill_uniform(p->y + k0, (long)n, p->seed, p->stream, (uint64_t)k0);
    k_sample_bernoulli(p->y + k0, p->a + k0, p->y + k0, (long)n);
    break;
  case OP_EXPAND: k_gather(p->y + k0, p->a, &p->view, k0, n); break;
  case OP_SUM: k_sum(p->y + k0, p->a + k0 * p->per, (long)n, p->per); break;
  default: k_sum_rows(p->y, p->a, p->rows, p->cols, (long)k0, (long)(k0 + n), p->div); break;
  }
}

static void run_pieces(Pieces *p, long long total, long long grain) {
  p->total = total;
  p->grain = grain;
  pool_run((long)((total + grain - 1) / grain), 0, piece, p);
}

/* y[j] = (sum over the rows of a [rows, cols]) / div, by column pieces. */
static void sum_columns(const GNode *x, float *y, const float *a, long rows, long cols, double div) {
  Pieces p = {.x = x, .y = y, .a = a, .rows = rows, .cols = cols, .div = div};
  long long grain = 32 * (PIECE / (32 * (long long)(rows ? rows : 1)) + 1); /* whole blocks of k_sum_rows */
  run_pieces(&p, cols, grain);
}

/* ------------------------------------------------------------ other nodes */

static void split_axis(Shape s, int axis, long *pre, long *mid, long *post) {
  *pre = *post = 1;
  for (int i = 0; i < axis; i++) *pre *= (long)s.d[i];
  *mid = (long)s.d[axis];
  for (int i = axis + 1; i < s.rank; i++) *post *= (long)s.d[i];
}

/* Matmul node i into y, plus the bias vector when not NULL; with scan,
 * whether a value came out non-finite. */
static int matmul(Exec *ex, int i, long long B, float *y, const float *bias, int scan) {
  const GNode *x = ex->nd[i], *a = ex->nd[x->in[0]], *b = ex->nd[x->in[1]];
  long acols = (long)a->shape.d[a->shape.rank - 1];
  long rows = acols ? (long)(nsize(ex, x->in[0], B) / acols) : 0;
  long m = (long)(x->i[0] ? b->shape.d[b->shape.rank - 1] : x->i[1] ? b->shape.d[0] : b->shape.d[1]);
  return k_matmul(y, ex->cur[x->in[0]], ex->cur[x->in[1]], bias, rows, acols, m, (int)x->i[0], (int)(x->i[1] && !x->i[0]),
                  scan);
}

/* Runs node i.  A kernel that scans its own output for non-finite values
 * (while it is in cache) sets *scanned: 0 clean, 1 not; else it stays -1. */
static int run_node(Exec *ex, int i, long long B, uint64_t seed, uint64_t step, int *scanned, ExecError *err) {
  const GNode *x = ex->nd[i];
  const GNode *a = x->nin > 0 ? ex->nd[x->in[0]] : NULL, *b = x->nin > 1 ? ex->nd[x->in[1]] : NULL;
  const float *A = a ? ex->cur[x->in[0]] : NULL, *Bv = b ? ex->cur[x->in[1]] : NULL;
  float *y = ex->store[i];
  long long size = nsize(ex, i, B), per = ex->per[i];
  long nb = x->batched ? (long)B : 1, bad = -1;
  switch (x->op) {
  case OP_BATCH_SIZE:
    y[0] = (float)B;
    break;
  case OP_RANDN: case OP_RANDU: case OP_SAMPLE_BERNOULLI: {
    Pieces p = {.x = x, .y = y, .a = A, .stream = rng_stream((uint32_t)x->i[0], step), .seed = seed};
    run_pieces(&p, size, 1024); /* a draw costs tens of ns */
    break;
  }
  case OP_SAMPLE_CATEGORICAL:
    rng_fill_uniform(y, (long)size, seed, rng_stream((uint32_t)x->i[0], step), 0);
    k_sample_categorical(y, A, y, nb, (long)a->shape.d[0], (long)per);
    break;
  case OP_MATMUL:
    *scanned = matmul(ex, i, B, y, NULL, ex->check);
    break;
  case OP_SUM: {
    Pieces p = {.x = x, .y = y, .a = A, .per = (long)ex->per[x->in[0]]};
    run_pieces(&p, nb, PIECE / (p.per ? p.per : 1) + 1);
    break;
  }
  case OP_SUM_AXIS: {
    long pre, mid, post;
    split_axis(a->shape, (int)x->i[0], &pre, &mid, &post);
    k_sum_axis(y, A, pre * nb, mid, post, ex->acc);
    break;
  }
  case OP_LOGSUMEXP:
    k_logsumexp(y, A, nb, (long)a->shape.d[0], (long)per);
    break;
  case OP_SOFTMAX:
    k_softmax(y, A, nb, (long)a->shape.d[0], (long)(per / (a->shape.d[0] ? a->shape.d[0] : 1)));
    break;
  case OP_REDUCE_TO: {
    KView v;
    k_view(&v, a->shape.d, a->shape.rank, a->batched, x->shape.d, x->shape.rank, x->batched, B);
    if (v.rank == 2 && v.stride[0] == 0 && v.stride[1] == 1) /* [rows, cols] -> [cols] */
      sum_columns(x, y, A, (long)v.dim[0], (long)v.dim[1], 1.0);
    else
      k_reduce(y, A, &v, nsize(ex, x->in[0], B), size, ex->acc);
    break;
  }
  case OP_EXPAND: {
    Pieces p = {.x = x, .y = y, .a = A};
    k_view(&p.view, x->shape.d, x->shape.rank, x->batched, a->shape.d, a->shape.rank, a->batched, B);
    run_pieces(&p, size, PIECE);
    break;
  }
  case OP_BATCH_MEAN:
    if (a->batched) sum_columns(x, y, A, (long)B, (long)per, (double)B);
    else memcpy(y, A, sizeof(float) * (size_t)per);
    break;
  case OP_RESHAPE:
    memcpy(y, A, sizeof(float) * (size_t)size);
    break;
  case OP_CONCAT: {
    long pre, mid, post, off = 0;
    split_axis(x->shape, (int)x->i[0], &pre, &mid, &post);
    for (int k = 0; k < x->nin; k++) {
      const GNode *in = ex->nd[x->in[k]];
      const float *X = ex->cur[x->in[k]];
      long xm = (long)in->shape.d[x->i[0]];
      for (long bb = 0; bb < nb; bb++)
        for (long r = 0; r < pre; r++)
          memcpy(y + bb * per + (r * mid + off) * post, X + (in->batched ? bb : 0) * pre * xm * post + r * xm * post,
                 sizeof(float) * (size_t)(xm * post));
      off += xm;
    }
    break;
  }
  case OP_SLICE: {
    long pre, mid, post, am = (long)a->shape.d[x->i[0]];
    split_axis(x->shape, (int)x->i[0], &pre, &mid, &post);
    for (long bb = 0; bb < nb; bb++)
      for (long r = 0; r < pre; r++)
        memcpy(y + bb * per + r * mid * post, A + bb * pre * am * post + (r * am + (long)x->i[1]) * post,
               sizeof(float) * (size_t)(mid * post));
    break;
  }
  case OP_CONV2D: {
    KConv c = conv_geometry(x, a, b);
    k_conv2d(y, A, Bv, &c, nb, &ex->work);
    break;
  }
  case OP_CONV2D_T: {
    KConv c = conv_geometry(x, a, b);
    k_conv2d_t(y, A, Bv, &c, nb, &ex->work);
    break;
  }
  case OP_CONV2D_DW: case OP_CONV2D_T_DW: {
    KConv c = conv_geometry(x, a, b);
    long n2 = a->batched || b->batched ? (long)B : 1;
    if (x->op == OP_CONV2D_DW) k_conv2d_dw(y, A, a->batched, Bv, b->batched, &c, n2, &ex->work);
    else k_conv2d_t_dw(y, A, a->batched, Bv, b->batched, &c, n2, &ex->work);
    break;
  }
  case OP_NEAREST:
    k_nearest(y, A, (long)a->shape.d[0], (long)per, Bv, (long)b->shape.d[0], nb);
    break;
  case OP_EMBED:
    if (k_embed(y, A, a->batched, (long)a->shape.d[0], (long)a->shape.d[1], Bv, b->batched, (long)ex->per[x->in[1]], nb, &bad))
      return fail(ex, err, i, -1, B, "code %g of input %%%d at element %ld is not in 0..%lld", (double)Bv[bad], x->in[1], bad,
                  a->shape.d[0] - 1);
    break;
  case OP_EMBED_DW: {
    long n2 = a->batched || b->batched ? (long)B : 1;
    if (k_embed_dw(y, A, a->batched, Bv, b->batched, (long)x->shape.d[0], (long)x->shape.d[1], (long)ex->per[x->in[1]], n2,
                   ex->acc, &bad))
      return fail(ex, err, i, -1, B, "code %g of input %%%d at element %ld is not in 0..%lld", (double)Bv[bad], x->in[1], bad,
                  x->shape.d[0] - 1);
    break;
  }
  case OP_ONEHOT:
    if (k_onehot(y, A, (long)x->shape.d[0], (long)ex->per[x->in[0]], nb, &bad))
      return fail(ex, err, i, -1, B, "code %g of input %%%d at element %ld is not in 0..%lld", (double)A[bad], x->in[0], bad,
                  x->shape.d[0] - 1);
    break;
  case OP_PICK:
    if (k_pick(y, A, a->batched, (long)a->shape.d[0], Bv, b->batched, (long)per, nb, &bad))
      return fail(ex, err, i, -1, B, "code %g of input %%%d at element %ld is not in 0..%lld", (double)Bv[bad], x->in[1], bad,
                  a->shape.d[0] - 1);
    break;
  case OP_PICK_DX:
    if (k_pick_dx(y, A, a->batched, Bv, b->batched, (long)x->shape.d[0], (long)ex->per[x->in[1]], nb, &bad))
      return fail(ex, err, i, -1, B, "code %g of input %%%d at element %ld is not in 0..%lld", (double)Bv[bad], x->in[1], bad,
                  x->shape.d[0] - 1);
    break;
  default:
    return fail(ex, err, i, -1, B, "the runtime has no kernel for this op");
  }
  return 0;
}

/* -------------------------------------------------------------------- run */

/* The non-finite check of node i's value in y (0: all finite). */
static int check_values(Exec *ex, int i, const float *y, long long B, ExecError *err) {
  long bad = k_first_nonfinite(y, (long)nsize(ex, i, B));
  if (bad < 0) return 0;
  float v = y[bad];
  return fail(ex, err, i, bad, B, "non-finite value %s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

static int check_node(Exec *ex, int i, long long B, ExecError *err) { return check_values(ex, i, ex->store[i], B, err); }

/* A bias add r with its matmul (fuse_dense).  When a value comes out
 * non-finite, the matmul alone is computed again, into r's storage, to
 * tell whose value it is. */
static int run_dense(Exec *ex, int r, long long B, ExecError *err) {
  int m = ex->into[r], bi = ex->nd[r]->in[0] == m ? ex->nd[r]->in[1] : ex->nd[r]->in[0];
  float *y = ex->store[r];
  if (!matmul(ex, m, B, y, ex->cur[bi], ex->check)) return 0;
  if (matmul(ex, m, B, y, NULL, 1)) return check_values(ex, m, y, B, err);
  matmul(ex, m, B, y, ex->cur[bi], 0);
  return check_values(ex, r, y, B, err);
}

int exec_run(Exec *ex, int batch, uint64_t seed, uint64_t step, ExecError *err) {
  if (err) {
    err->node = -1;
    err->index = -1;
    err->msg[0] = err->where[0] = '\0';
    err->name = NULL;
  }
  if (batch < 1 || batch > ex->max_batch)
    return fail(ex, err, -1, -1, 0, "batch of %d examples: the graph %s was prepared for 1 to %d", batch, ex->g->name,
                ex->max_batch);
  long long B = batch;
  for (int i = 0; i < ex->n; i++)
    ex->cur[i] = ex->over[i] ? ex->over[i] : ex->how[i] == H_BOUND ? ex->bound[i] : ex->store[i];
  for (int i = 0; i < ex->n; i++) {
    const GNode *x = ex->nd[i];
    if (ex->over[i]) continue;
    switch (ex->how[i]) {
    case H_BOUND:
      if (!ex->cur[i])
        return fail(ex, err, i, -1, B, "the %s %s is not bound", x->op == OP_INPUT ? "input" : "parameter", x->s ? x->s : "?");
      continue;
    case H_FIXED:
      if (ex->bad[i]) return fail(ex, err, i, -1, B, "malformed mask description \"%s\"", x->s ? x->s : "");
      if (ex->observer) ex->observer(ex->observer_ctx, i, ex->cur[i]);
      continue;
    case H_MEMBER: case H_INTO:
      continue;
    case H_VIEW:
      ex->cur[i] = ex->cur[x->in[0]];
      if (ex->observer) ex->observer(ex->observer_ctx, i, ex->cur[i]);
      continue;
    case H_GROUP:
      if (ex->into[i] >= 0 && !ex->over[ex->into[i]] ? run_dense(ex, i, B, err) : run_group(ex, i, B, err)) return -1;
      if (ex->observer) ex->observer(ex->observer_ctx, i, ex->cur[i]);
      continue;
    default:
      break;
    }
    int scanned = -1;
    if (run_node(ex, i, B, seed, step, &scanned, err)) return -1;
    if (ex->check && scanned != 0 && check_node(ex, i, B, err)) return -1;
    if (ex->observer) ex->observer(ex->observer_ctx, i, ex->cur[i]);
  }
  return 0;
}
