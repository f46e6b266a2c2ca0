/* diff.c - vmc diff: a semantic diff of two compiled models (see diff.h).
 *
 * Things are matched by name: hypers, data and latents, parameters and losses
 * by name, roles by signature ("p(x | z)"), stages by name and the steps of a
 * stage by position, graphs by entry point.  Source positions, the source
 * path and its hash are not compared: a copy of a model with a comment
 * changed is the same model, and the same models print nothing (status 0).
 * Otherwise the output is a header naming both sides, one section per kind of
 * thing that changed (hypers, data, parameters, roles, losses, training), and
 * the verdict on checkpoints.  Parameters are shown one line per layer (the
 * tensors that share a prefix), removed, then reshaped, then added, with a
 * count of the unchanged; a part of a role or network with 4 layers or more
 * that only one side has is summed up on one line, and past 6 lines of one
 * kind the rest are counted.  Steps show the optimizer arguments that differ
 * from its defaults (and lr), and their parameters as groups ("q, p").  The
 * graphs are compared node by node (source spans aside) and get a one-line
 * note only when nothing else tells the models apart.  The verdict:
 *
 *   loads exactly    every parameter of B is in A with the same shape (A may
 *                    hold others, which B does not use)
 *   loads partially  no parameter the two share changed shape, some of B's
 *                    are new (they start from their initializers), and at
 *                    least one comes from A
 *   does not load    a shared parameter changed shape, or B shares none of
 *                    A's parameters
 */
#include "diff.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define WIDTH 100     /* a change longer than this goes on two lines */
#define SHOWN 6       /* lines per kind of parameter change before summing up */
#define NAMED 3       /* names listed in a one-line summary */

typedef struct {
  Arena *a;
  Vec lines;           /* char*: the body, after the header */
  const char *section; /* a title to print before the section's first line */
} Diff;

/* --- small helpers ------------------------------------------------------- */

static const char *S(const char *s) { return s ? s : ""; }
static int same(const char *x, const char *y) { return !strcmp(S(x), S(y)); }

static char *vfmt(Arena *a, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  char *s = arena_alloc(a, (size_t)n + 1);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

static void line(Diff *D, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(Diff *D, const char *fmt, ...) {
  if (D->section) {
    vec_push(D->a, &D->lines, (void *)D->section);
    D->section = NULL;
  }
  va_list ap;
  va_start(ap, fmt);
  vec_push(D->a, &D->lines, vfmt(D->a, fmt, ap));
  va_end(ap);
}

/* "  label: from -> to", or on two lines with the arrow under the colon when
 * it would be long. */
static void change(Diff *D, const char *label, const char *from, const char *to) {
  if (strlen(label) + strlen(from) + strlen(to) + 8 <= WIDTH) {
    line(D, "  %s: %s -> %s", label, from, to);
  } else {
    line(D, "  %s: %s", label, from);
    line(D, "%*s-> %s", (int)strlen(label) + 1, "", to);
  }
}

/* A growable string in the arena. */
typedef struct {
  Arena *a;
  char *s;
  size_t len, cap;
} Buf;

static void add(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(Buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *t = vfmt(b->a, fmt, ap);
  va_end(ap);
  size_t n = strlen(t);
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap < b->len + n + 1) cap *= 2;
    char *s = arena_alloc(b->a, cap);
    if (b->len) memcpy(s, b->s, b->len);
    b->s = s;
    b->cap = cap;
  }
  memcpy(b->s + b->len, t, n + 1);
  b->len += n;
}

static const char *text(Buf *b) { return b->s ? b->s : ""; }

/* Every Vmx item kind starts with its key (name or signature). */
static const char *key(const void *item) { return *(const char *const *)item; }

static int find(const Vec *v, const char *k) {
  for (int i = 0; i < v->len; i++)
    if (same(key(v->items[i]), k)) return i;
  return -1;
}

static void *at(const Vec *v, int i) { return i >= 0 && i < v->len ? v->items[i] : NULL; }

/* The value of a setting in a list of name, value pairs; NULL when absent. */
static const char *pair(const Vec *v, const char *name) {
  for (int i = 0; i + 1 < v->len; i += 2)
    if (same(v->items[i], name)) return v->items[i + 1];
  return NULL;
}

/* Names in a summary: "a, b, c and 4 more". */
static const char *some_names(Arena *a, const Vec *names) {
  Buf b = {a, 0, 0, 0};
  for (int i = 0; i < names->len && i < NAMED; i++) add(&b, "%s%s", i ? ", " : "", (const char *)names->items[i]);
  if (names->len > NAMED) add(&b, " and %d more", names->len - NAMED);
  return text(&b);
}

static const char *plural(int n, const char *one, const char *many) { return n == 1 ? one : many; }

/* --- parameter names and groups ----------------------------------------- */

/* name is prefix or starts with prefix followed by a dot */
static int under(const char *name, const char *prefix, size_t n) {
  return !strncmp(name, prefix, n) && (name[n] == 0 || name[n] == '.');
}

static size_t top_len(const char *name) {
  const char *dot = strchr(name, '.');
  return dot ? (size_t)(dot - name) : strlen(name);
}

static int count_under(const Vec *params, const char *prefix, size_t n) {
  int c = 0;
  for (int i = 0; i < params->len; i++)
    if (under(key(params->items[i]), prefix, n)) c++;
  return c;
}

static int count_names_under(const Vec *names, const char *prefix, size_t n) {
  int c = 0;
  for (int i = 0; i < names->len; i++)
    if (under(names->items[i], prefix, n)) c++;
  return c;
}

static int has_name(const Vec *names, const char *name) {
  for (int i = 0; i < names->len; i++)
    if (same(names->items[i], name)) return 1;
  return 0;
}

/* The parameter names of a step or a freeze, as groups the way a source would
 * write them: "q, p", "q.h", "T (3 of 24)". */
static const char *groups(Arena *a, const Vec *names, const Vec *params) {
  if (!names->len) return "nothing";
  Buf b = {a, 0, 0, 0};
  for (int i = 0; i < names->len; i++) {
    const char *n = names->items[i];
    size_t t = top_len(n);
    int seen = 0;
    for (int j = 0; j < i && !seen; j++) seen = under(names->items[j], n, t) && top_len(names->items[j]) == t;
    if (seen) continue;
    int covered = count_names_under(names, n, t);
    size_t len = t;
    if (covered != count_under(params, n, t)) {
      /* the longest dotted prefix the covered names share */
      len = strlen(n);
      for (int j = i + 1; j < names->len; j++) {
        const char *m = names->items[j];
        if (!under(m, n, t)) continue;
        size_t k = 0;
        while (k < len && m[k] && n[k] == m[k]) k++;
        if (k == len && (m[k] == 0 || m[k] == '.')) continue;
        if (k > 0) k--; /* back to a dot both names have */
        while (k > 0 && n[k] != '.') k--;
        len = k;
      }
      if (len < t) len = t;
    }
    int total = count_under(params, n, len);
    add(&b, "%s%.*s", b.len ? ", " : "", (int)len, n);
    if (covered != total) add(&b, " (%d of %d)", covered, total);
  }
  return text(&b);
}

/* --- hypers, data, roles, losses ---------------------------------------- */

static void hypers(Diff *D, const Vmx *x, const Vmx *y) {
  D->section = "hypers:";
  for (int i = 0; i < x->hypers.len; i++) {
    const VmxHyper *h = x->hypers.items[i], *k = at(&y->hypers, find(&y->hypers, h->name));
    if (!k) {
      line(D, "  - %s = %s", h->name, S(h->value));
    } else if (!same(h->type, k->type)) {
      change(D, h->name, arena_printf(D->a, "%s (%s)", S(h->value), S(h->type)),
             arena_printf(D->a, "%s (%s)", S(k->value), S(k->type)));
    } else if (!same(h->value, k->value)) {
      change(D, h->name, S(h->value), S(k->value));
    }
  }
  for (int i = 0; i < y->hypers.len; i++) {
    const VmxHyper *k = y->hypers.items[i];
    if (find(&x->hypers, k->name) < 0) line(D, "  + %s = %s", k->name, S(k->value));
  }
}

static int is_latent(const VmxData *d) { return same(d->domain, "latent"); }

static const char *data_text(Arena *a, const VmxData *d, int say_kind) {
  const char *sh = shape_str(a, d->shape);
  Buf b = {a, 0, 0, 0};
  if (is_latent(d)) {
    add(&b, "%s%s", say_kind ? "latent " : "", sh);
    if (d->classes > 0) add(&b, " codes of %d", d->classes);
  } else if (same(d->domain, "cat")) {
    add(&b, "%scat(%d)%s", say_kind ? "data " : "", d->classes, sh);
  } else {
    add(&b, "%s%s%s", say_kind ? "data " : "", S(d->domain), sh);
  }
  if (d->extra && *d->extra) add(&b, " %s", d->extra);
  return text(&b);
}

static void data(Diff *D, const Vmx *x, const Vmx *y) {
  D->section = "data:";
  for (int i = 0; i < x->data.len; i++) {
    const VmxData *d = x->data.items[i], *e = at(&y->data, find(&y->data, d->name));
    if (!e) {
      line(D, "  - %s%s: %s", is_latent(d) ? "latent " : "", d->name, data_text(D->a, d, 0));
      continue;
    }
    int kinds = is_latent(d) != is_latent(e);
    const char *s = data_text(D->a, d, kinds), *t = data_text(D->a, e, kinds);
    if (!same(s, t)) change(D, arena_printf(D->a, "%s%s", !kinds && is_latent(d) ? "latent " : "", d->name), s, t);
  }
  for (int i = 0; i < y->data.len; i++) {
    const VmxData *e = y->data.items[i];
    if (find(&x->data, e->name) < 0)
      line(D, "  + %s%s: %s", is_latent(e) ? "latent " : "", e->name, data_text(D->a, e, 0));
  }
}

static void roles(Diff *D, const Vmx *x, const Vmx *y) {
  D->section = "roles:";
  for (int i = 0; i < x->roles.len; i++) {
    const VmxRole *r = x->roles.items[i], *s = at(&y->roles, find(&y->roles, r->signature));
    if (!s) {
      line(D, "  - %s %s%s%s", S(r->kind), r->signature, r->text && *r->text ? ": " : "", S(r->text));
    } else if (!same(r->kind, s->kind)) {
      change(D, r->signature, arena_printf(D->a, "%s %s", S(r->kind), S(r->text)),
             arena_printf(D->a, "%s %s", S(s->kind), S(s->text)));
    } else if (!same(r->text, s->text)) {
      change(D, arena_printf(D->a, "%s %s", S(r->kind), r->signature), S(r->text), S(s->text));
    }
  }
  for (int i = 0; i < y->roles.len; i++) {
    const VmxRole *s = y->roles.items[i];
    if (find(&x->roles, s->signature) < 0)
      line(D, "  + %s %s%s%s", S(s->kind), s->signature, s->text && *s->text ? ": " : "", S(s->text));
  }
}

/* A loss as written: without parentheses around the whole. */
static const char *bare(Arena *a, const char *s) {
  size_t n = strlen(S(s));
  if (n < 2 || s[0] != '(' || s[n - 1] != ')') return S(s);
  int depth = 0;
  for (size_t i = 0; i < n; i++) {
    depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
    if (depth == 0 && i + 1 < n) return s; /* "(a) + (b)" */
  }
  return arena_strndup(a, s + 1, n - 2);
}

static void losses(Diff *D, const Vmx *x, const Vmx *y) {
  D->section = "losses:";
  for (int i = 0; i < x->losses.len; i++) {
    const VmxLoss *l = x->losses.items[i], *m = at(&y->losses, find(&y->losses, l->name));
    if (!m) line(D, "  - %s = %s", l->name, bare(D->a, l->text));
    else if (!same(l->text, m->text)) change(D, l->name, bare(D->a, l->text), bare(D->a, m->text));
  }
  for (int i = 0; i < y->losses.len; i++) {
    const VmxLoss *m = y->losses.items[i];
    if (find(&x->losses, m->name) < 0) line(D, "  + %s = %s", m->name, bare(D->a, m->text));
  }
}

/* --- parameters and the checkpoint verdict ------------------------------- */

enum { P_SAME, P_GONE, P_CHANGED, P_NEW };

typedef struct {
  const VmxParam *p, *q; /* in A and in B (NULL when absent) */
  int kind;
} PItem;

typedef struct {
  PItem *items;
  int n;
  int same, gone, reshaped, renewed, fresh; /* renewed: init only */
} Params;

static Params match_params(const Vmx *x, const Vmx *y) {
  Params P = {0};
  P.items = calloc((size_t)(x->params.len + y->params.len) + 1, sizeof *P.items);
  for (int i = 0; i < x->params.len; i++) {
    const VmxParam *p = x->params.items[i], *q = at(&y->params, find(&y->params, p->name));
    int kind = !q ? P_GONE : !shape_eq(p->shape, q->shape) || !same(p->init, q->init) ? P_CHANGED : P_SAME;
    P.items[P.n++] = (PItem){p, q, kind};
    if (kind == P_GONE) P.gone++;
    else if (kind == P_SAME) P.same++;
    else if (!shape_eq(p->shape, q->shape)) P.reshaped++;
    else P.renewed++;
  }
  for (int i = 0; i < y->params.len; i++) {
    const VmxParam *q = y->params.items[i];
    if (find(&x->params, q->name) < 0) {
      P.items[P.n++] = (PItem){q, q, P_NEW};
      P.fresh++;
    }
  }
  return P;
}

static size_t prefix_len(const char *name) {
  const char *dot = strrchr(name, '.');
  return dot ? (size_t)(dot - name) : 0;
}

static const char *member(Arena *a, const PItem *it, int first) {
  const char *name = it->p->name;
  if (!first) name += prefix_len(name);
  const char *s = shape_str(a, it->p->shape);
  if (it->kind != P_CHANGED) return arena_printf(a, "%s %s", name, s);
  Buf b = {a, 0, 0, 0};
  add(&b, "%s %s", name, s);
  if (!shape_eq(it->p->shape, it->q->shape)) add(&b, " -> %s", shape_str(a, it->q->shape));
  if (!same(it->p->init, it->q->init)) add(&b, " (init %s -> %s)", S(it->p->init), S(it->q->init));
  return text(&b);
}

static long long numbers(const Vec *params) {
  long long n = 0;
  for (int i = 0; i < params->len; i++) n += shape_size(((const VmxParam *)params->items[i])->shape);
  return n;
}

/* One kind of change: a whole role or network that only one side has on one
 * line ("+ T.*: 24 tensors, 265217 numbers"), then a line per layer (the
 * parameters that share a prefix: "q.h.dense0.W [784, 500], .b [500]"), the
 * last ones summed up.  other: the side without the parameters gone or new. */
static void param_kind(Diff *D, const Params *P, int kind, const char *sigil, const Vec *other) {
  char *whole = calloc((size_t)P->n + 1, 1);
  for (int i = 0; kind != P_CHANGED && i < P->n; i++) {
    const PItem *it = &P->items[i];
    if (it->kind != kind || whole[i]) continue;
    const char *n = it->p->name;
    size_t last = prefix_len(n);
    for (size_t t = top_len(n); t < last; t += 1 + top_len(n + t + 1)) {
      if (count_under(other, n, t)) continue; /* the other side has some of it */
      int tensors = 0, layers = 0;
      long long numbers = 0;
      const char *prev = NULL;
      for (int j = i; j < P->n; j++) {
        const PItem *jt = &P->items[j];
        if (jt->kind != kind || !under(jt->p->name, n, t)) continue;
        tensors++, numbers += shape_size(jt->p->shape);
        size_t l = prefix_len(jt->p->name);
        if (!prev || l != prefix_len(prev) || strncmp(prev, jt->p->name, l)) layers++;
        prev = jt->p->name;
      }
      if (layers >= 4) {
        for (int j = i; j < P->n; j++)
          if (P->items[j].kind == kind && under(P->items[j].p->name, n, t)) whole[j] = 1;
        line(D, "  %s %.*s.*: %d layers, %d tensors, %lld numbers", sigil, (int)t, n, layers, tensors, numbers);
      }
      break; /* a smaller part has fewer layers */
    }
  }
  /* groups: [start, end) runs of this kind sharing a prefix */
  int ngroups = 0;
  int *start = calloc((size_t)P->n + 1, sizeof *start);
  const PItem *prev = NULL;
  for (int i = 0; i < P->n; i++) {
    const PItem *it = &P->items[i];
    if (it->kind != kind || whole[i]) continue;
    size_t n = prefix_len(it->p->name);
    if (!prev || !n || n != prefix_len(prev->p->name) || strncmp(prev->p->name, it->p->name, n)) start[ngroups++] = i;
    prev = it;
  }
  int shown = ngroups <= SHOWN ? ngroups : SHOWN - 1;
  for (int g = 0; g < shown; g++) {
    int end = g + 1 < ngroups ? start[g + 1] : P->n;
    Buf b = {D->a, 0, 0, 0};
    for (int i = start[g], first = 1; i < end; i++) {
      if (P->items[i].kind != kind || whole[i]) continue;
      add(&b, "%s%s", first ? "" : ", ", member(D->a, &P->items[i], first));
      first = 0;
    }
    line(D, "  %s %s", sigil, text(&b));
  }
  if (shown < ngroups) {
    int tensors = 0;
    Vec tops = {0};
    for (int i = start[shown]; i < P->n; i++) {
      if (P->items[i].kind != kind || whole[i]) continue;
      tensors++;
      const char *n = P->items[i].p->name;
      size_t t = top_len(n);
      int seen = 0;
      for (int j = 0; j < tops.len && !seen; j++) seen = strlen(tops.items[j]) == t && !strncmp(tops.items[j], n, t);
      if (!seen) vec_push(D->a, &tops, arena_strndup(D->a, n, t));
    }
    line(D, "  %s ... %d more %s (%d %s) under %s", sigil, ngroups - shown, plural(ngroups - shown, "layer", "layers"),
         tensors, plural(tensors, "tensor", "tensors"), some_names(D->a, &tops));
  }
  free(start);
  free(whole);
}

static void parameters(Diff *D, const Vmx *x, const Vmx *y, const Params *P) {
  if (P->gone + P->reshaped + P->renewed + P->fresh == 0) return;
  long long nx = numbers(&x->params), ny = numbers(&y->params);
  Buf t = {D->a, 0, 0, 0};
  add(&t, "parameters: ");
  if (x->params.len != y->params.len) add(&t, "%d -> %d tensors", x->params.len, y->params.len);
  else add(&t, "%d tensors", x->params.len);
  if (nx != ny) add(&t, ", %lld -> %lld numbers", nx, ny);
  else add(&t, ", %lld numbers", nx);
  D->section = text(&t);
  param_kind(D, P, P_GONE, "-", &y->params);
  param_kind(D, P, P_CHANGED, "~", NULL);
  param_kind(D, P, P_NEW, "+", &x->params);
  if (P->same) line(D, "  (%d unchanged)", P->same);
}

static void checkpoint(Diff *D, const Params *P) {
  Buf b = {D->a, 0, 0, 0};
  int loaded = P->same + P->renewed;
  add(&b, "checkpoint: a checkpoint of A ");
  if (P->reshaped) {
    add(&b, "does not load into B: %d %s %s shape", P->reshaped, plural(P->reshaped, "parameter", "parameters"),
        plural(P->reshaped, "changes", "change"));
  } else if (!loaded && P->fresh) {
    add(&b, "does not load into B: B has none of its parameters");
  } else if (!P->fresh) {
    add(&b, "loads into B exactly (%d %s, same shapes)", loaded, plural(loaded, "parameter", "parameters"));
  } else {
    add(&b, "loads into B partially: %d of B's %d parameters come from it, %d new %s start from %s %s", loaded,
        loaded + P->fresh, P->fresh, plural(P->fresh, "one", "ones"), plural(P->fresh, "its", "their"),
        plural(P->fresh, "initializer", "initializers"));
  }
  if (P->reshaped) {
    if (P->gone) add(&b, "; %d of A's %s not in B", P->gone, plural(P->gone, "is", "are"));
    if (P->fresh) add(&b, "%s %d of B's %s new", P->gone ? "," : ";", P->fresh, plural(P->fresh, "is", "are"));
  } else if (P->gone && (loaded || !P->fresh)) {
    add(&b, "; %d of A's %s not used", P->gone, plural(P->gone, "is", "are"));
  }
  vec_push(D->a, &D->lines, (void *)text(&b));
}

/* --- training ------------------------------------------------------------ */

/* The optimizers' defaults (as vmx.c fills them in): a step shows the
 * arguments that differ from them, and lr always, the way a source would. */
static const char *const optimizer_defaults[][11] = {
    {"sgd", "lr", "0.01", "momentum", "0", "nesterov", "false", "weight_decay", "0", NULL, NULL},
    {"adam", "lr", "0.001", "beta1", "0.9", "beta2", "0.999", "eps", "1e-08", "weight_decay", "0"},
    {"adamw", "lr", "0.001", "beta1", "0.9", "beta2", "0.999", "eps", "1e-08", "weight_decay", "0.01"},
};

static int is_default(const char *optimizer, const char *arg, const char *value) {
  for (size_t i = 0; i < sizeof optimizer_defaults / sizeof *optimizer_defaults; i++) {
    const char *const *d = optimizer_defaults[i];
    if (!same(d[0], optimizer)) continue;
    for (int j = 1; j + 1 < 11 && d[j]; j += 2)
      if (same(d[j], arg)) return same(d[j + 1], value);
  }
  return 0;
}

static const char *step_text(Arena *a, const VmxStep *s, const Vmx *x) {
  Buf b = {a, 0, 0, 0};
  if (s->ratio > 1) add(&b, "%d\xc3\x97 ", s->ratio);
  add(&b, "%s %s with %s(", s->maximize ? "maximize" : "minimize", S(s->loss), S(s->optimizer));
  int n = 0;
  for (int i = 0; i + 1 < s->args.len; i += 2) {
    const char *k = s->args.items[i], *v = s->args.items[i + 1];
    if (!same(k, "lr") && is_default(s->optimizer, k, v)) continue;
    add(&b, "%s%s = %s", n++ ? ", " : "", k, v);
  }
  if (s->schedule && !same(s->schedule, "constant()") && !pair(&s->args, "schedule"))
    add(&b, "%sschedule = %s", n ? ", " : "", s->schedule);
  add(&b, ") over %s", groups(a, &s->params, &x->params));
  return text(&b);
}

static const VmxStage *stage_of(const Vmx *x, const char *name) {
  for (int i = 0; i < x->stages.len; i++) {
    const VmxStage *s = x->stages.items[i];
    if (name ? s->stage && !strcmp(s->stage, name) : !s->stage) return s;
  }
  return NULL;
}

static int in_stage(const char *stage, const char *name) { return name ? stage && !strcmp(stage, name) : !stage; }

static void stage_steps(const Vmx *x, const char *name, Vec *out, Arena *a) {
  for (int i = 0; i < x->steps.len; i++) {
    VmxStep *s = x->steps.items[i];
    if (in_stage(s->stage, name)) vec_push(a, out, s);
  }
}

static int has_stage(const Vmx *x, const char *name) {
  if (stage_of(x, name)) return 1;
  for (int i = 0; i < x->steps.len; i++)
    if (in_stage(((const VmxStep *)x->steps.items[i])->stage, name)) return 1;
  return 0;
}

static const char *settings_text(Arena *a, const VmxStage *st) {
  Buf b = {a, 0, 0, 0};
  if (st)
    for (int i = 0; i + 1 < st->settings.len; i += 2)
      add(&b, "%s%s %s", i ? ", " : "", (const char *)st->settings.items[i], (const char *)st->settings.items[i + 1]);
  return text(&b);
}

/* A stage only one side has, on one line. */
static const char *stage_summary(Arena *a, const Vmx *x, const char *name) {
  Buf b = {a, 0, 0, 0};
  Vec steps = {0};
  stage_steps(x, name, &steps, a);
  const VmxStage *st = stage_of(x, name);
  for (int i = 0; i < steps.len; i++) add(&b, "%s%s", i ? "; " : "", step_text(a, steps.items[i], x));
  if (st && st->frozen.len) add(&b, "; freeze %s", groups(a, &st->frozen, &x->params));
  const char *set = settings_text(a, st);
  if (*set) add(&b, "; %s", set);
  return text(&b);
}

/* Parameters both models have that one list holds and the other does not. */
static void membership(Diff *D, const char *label, const char *verb, const Vec *u, const Vec *v, const Vmx *x,
                       const Vmx *y) {
  Vec more = {0}, less = {0};
  for (int i = 0; i < x->params.len; i++) {
    const char *n = key(x->params.items[i]);
    if (find(&y->params, n) < 0) continue;
    int in_u = has_name(u, n), in_v = has_name(v, n);
    if (in_v && !in_u) vec_push(D->a, &more, (void *)n);
    if (in_u && !in_v) vec_push(D->a, &less, (void *)n);
  }
  if (more.len) line(D, "  %s now also %s %s", label, verb, some_names(D->a, &more));
  if (less.len) line(D, "  %s no longer %s %s", label, verb, some_names(D->a, &less));
}

static void stage_diff(Diff *D, const Vmx *x, const Vmx *y, const char *name) {
  const char *pre = name ? arena_printf(D->a, "stage %s ", name) : "";
  Vec sx = {0}, sy = {0};
  stage_steps(x, name, &sx, D->a);
  stage_steps(y, name, &sy, D->a);
  int n = sx.len > sy.len ? sx.len : sy.len;
  for (int i = 0; i < n; i++) {
    const VmxStep *s = at(&sx, i), *t = at(&sy, i);
    const char *label = arena_printf(D->a, "%sstep %d", pre, i + 1);
    if (!t) {
      line(D, "  - %s: %s", label, step_text(D->a, s, x));
    } else if (!s) {
      line(D, "  + %s: %s", label, step_text(D->a, t, y));
    } else {
      const char *a = step_text(D->a, s, x), *b = step_text(D->a, t, y);
      if (!same(a, b)) change(D, label, a, b);
      else membership(D, label, "updates", &s->params, &t->params, x, y);
    }
  }
  const VmxStage *gx = stage_of(x, name), *gy = stage_of(y, name);
  Vec none = {0};
  const Vec *fx = gx ? &gx->frozen : &none, *fy = gy ? &gy->frozen : &none;
  const char *a = fx->len ? groups(D->a, fx, &x->params) : "nothing";
  const char *b = fy->len ? groups(D->a, fy, &y->params) : "nothing";
  const char *label = arena_printf(D->a, "%sfreeze", pre);
  if (!same(a, b)) change(D, label, a, b);
  else membership(D, label, "freezes", fx, fy, x, y);
  const Vec *vx = gx ? &gx->settings : &none, *vy = gy ? &gy->settings : &none;
  for (int i = 0; i + 1 < vx->len; i += 2) {
    const char *k = vx->items[i], *v = vx->items[i + 1], *w = pair(vy, k);
    if (!w) line(D, "  - %s%s %s", pre, k, v);
    else if (!same(v, w)) change(D, arena_printf(D->a, "%s%s", pre, k), v, w);
  }
  for (int i = 0; i + 1 < vy->len; i += 2) {
    const char *k = vy->items[i];
    if (!pair(vx, k)) line(D, "  + %s%s %s", pre, k, (const char *)vy->items[i + 1]);
  }
}

static void stage_names(const Vmx *x, Vec *names, Arena *a) {
  for (int i = 0; i < x->stages.len; i++) {
    const char *s = ((const VmxStage *)x->stages.items[i])->stage;
    if (s && !has_name(names, s)) vec_push(a, names, (void *)s);
  }
  for (int i = 0; i < x->steps.len; i++) {
    const char *s = ((const VmxStep *)x->steps.items[i])->stage;
    if (s && !has_name(names, s)) vec_push(a, names, (void *)s);
  }
}

static void training(Diff *D, const Vmx *x, const Vmx *y) {
  D->section = "training:";
  stage_diff(D, x, y, NULL);
  Vec names = {0};
  stage_names(x, &names, D->a);
  stage_names(y, &names, D->a);
  for (int i = 0; i < names.len; i++) {
    const char *n = names.items[i];
    int hx = has_stage(x, n), hy = has_stage(y, n);
    if (hx && !hy) line(D, "  - stage %s: %s", n, stage_summary(D->a, x, n));
    else if (!hx && hy) line(D, "  + stage %s: %s", n, stage_summary(D->a, y, n));
    else stage_diff(D, x, y, n);
  }
  /* the order of the stages both have */
  Vec ox = {0}, oy = {0};
  stage_names(x, &ox, D->a);
  stage_names(y, &oy, D->a);
  Vec cx = {0}, cy = {0};
  for (int i = 0; i < ox.len; i++)
    if (has_name(&oy, ox.items[i])) vec_push(D->a, &cx, ox.items[i]);
  for (int i = 0; i < oy.len; i++)
    if (has_name(&ox, oy.items[i])) vec_push(D->a, &cy, oy.items[i]);
  int moved = 0;
  for (int i = 0; i < cx.len; i++) moved |= !same(cx.items[i], cy.items[i]);
  if (moved) {
    Buf a = {D->a, 0, 0, 0}, b = {D->a, 0, 0, 0};
    for (int i = 0; i < cx.len; i++) add(&a, "%s%s", i ? ", " : "", (const char *)cx.items[i]);
    for (int i = 0; i < cy.len; i++) add(&b, "%s%s", i ? ", " : "", (const char *)cy.items[i]);
    change(D, "stage order", text(&a), text(&b));
  }
}

/* --- graphs -------------------------------------------------------------- */

static int node_eq(const GNode *m, const GNode *n) {
  if (m->op != n->op || m->nin != n->nin || !shape_eq(m->shape, n->shape) || m->batched != n->batched ||
      m->classes != n->classes || m->group != n->group || m->buffer != n->buffer || memcmp(&m->f, &n->f, sizeof m->f) ||
      !same(m->s, n->s) || !same(m->name, n->name))
    return 0;
  for (int i = 0; i < m->nin; i++)
    if (m->in[i] != n->in[i]) return 0;
  for (int i = 0; i < 4; i++)
    if (m->i[i] != n->i[i]) return 0;
  return 1;
}

static int graph_eq(const Graph *g, const Graph *h) {
  if (!same(g->about, h->about) || g->nodes.len != h->nodes.len || g->outputs.len != h->outputs.len) return 0;
  for (int i = 0; i < g->nodes.len; i++)
    if (!node_eq(g->nodes.items[i], h->nodes.items[i])) return 0;
  for (int i = 0; i < g->outputs.len; i++) {
    const GOutput *o = g->outputs.items[i], *p = h->outputs.items[i];
    if (!same(o->name, p->name) || o->node != p->node) return 0;
  }
  return 1;
}

static int find_graph(const Vec *v, const char *name) {
  for (int i = 0; i < v->len; i++)
    if (same(((const Graph *)v->items[i])->name, name)) return i;
  return -1;
}

/* How the ops of two graphs differ: "relu 8 -> 0, elu 0 -> 8". */
static const char *op_delta(Arena *a, const Graph *g, const Graph *h) {
  int cg[OP_COUNT] = {0}, ch[OP_COUNT] = {0};
  for (int i = 0; i < g->nodes.len; i++) {
    Op op = ((const GNode *)g->nodes.items[i])->op;
    if ((int)op >= 0 && op < OP_COUNT) cg[op]++;
  }
  for (int i = 0; i < h->nodes.len; i++) {
    Op op = ((const GNode *)h->nodes.items[i])->op;
    if ((int)op >= 0 && op < OP_COUNT) ch[op]++;
  }
  Buf b = {a, 0, 0, 0};
  int shown = 0, more = 0;
  for (int op = 0; op < OP_COUNT; op++) {
    if (cg[op] == ch[op]) continue;
    if (shown < 4) add(&b, "%s%s %d -> %d", shown ? ", " : "", op_name((Op)op), cg[op], ch[op]);
    else more++;
    shown++;
  }
  if (more) add(&b, ", %d more", more);
  return text(&b);
}

static void graphs(Diff *D, const Vmx *x, const Vmx *y) {
  Vec changed = {0}, gone = {0}, fresh = {0};
  const Graph *first = NULL, *first_b = NULL;
  for (int i = 0; i < x->graphs.len; i++) {
    const Graph *g = x->graphs.items[i], *h = at(&y->graphs, find_graph(&y->graphs, g->name));
    if (!h) {
      vec_push(D->a, &gone, (void *)S(g->name));
    } else if (!graph_eq(g, h)) {
      if (!first) first = g, first_b = h;
      else vec_push(D->a, &changed, (void *)S(g->name));
    }
  }
  for (int i = 0; i < y->graphs.len; i++) {
    const Graph *h = y->graphs.items[i];
    if (find_graph(&x->graphs, h->name) < 0) vec_push(D->a, &fresh, (void *)S(h->name));
  }
  if (!first && !gone.len && !fresh.len) return;
  Buf b = {D->a, 0, 0, 0};
  add(&b, "graphs:");
  if (first) {
    add(&b, " %s changed: ", S(first->name));
    if (first->nodes.len != first_b->nodes.len) add(&b, "%d -> %d nodes", first->nodes.len, first_b->nodes.len);
    else add(&b, "%d nodes", first->nodes.len);
    const char *ops = op_delta(D->a, first, first_b);
    add(&b, ", %s", *ops ? ops : "the same ops otherwise connected or set");
    if (changed.len) add(&b, "; also changed: %s", some_names(D->a, &changed));
  }
  if (gone.len) add(&b, "%s gone: %s", first ? ";" : "", some_names(D->a, &gone));
  if (fresh.len) add(&b, "%s new: %s", first || gone.len ? ";" : "", some_names(D->a, &fresh));
  vec_push(D->a, &D->lines, (void *)text(&b));
}

/* --- the whole ----------------------------------------------------------- */

int diff_models(FILE *out, const Vmx *a, const Vmx *b, const char *name_a, const char *name_b) {
  Diff D = {arena_new(), {0}, NULL};
  hypers(&D, a, b);
  data(&D, a, b);
  Params P = match_params(a, b);
  parameters(&D, a, b, &P);
  roles(&D, a, b);
  losses(&D, a, b);
  training(&D, a, b);
  D.section = NULL;
  int body = D.lines.len;
  if (!body) graphs(&D, a, b); /* a note when nothing else tells the models apart */
  int differ = D.lines.len > 0 || !same(a->model, b->model);
  if (differ) {
    if (!body && D.lines.len == 0) vec_push(D.a, &D.lines, "the models differ only in name");
    checkpoint(&D, &P);
    fprintf(out, "--- %s (model %s)\n+++ %s (model %s)\n", S(name_a), S(a->model), S(name_b), S(b->model));
    for (int i = 0; i < D.lines.len; i++) fprintf(out, "%s\n", (const char *)D.lines.items[i]);
  }
  free(P.items);
  arena_free(D.a);
  return differ;
}
