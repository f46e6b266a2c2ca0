/* value.c - constructors and shape arithmetic for compile-time values. */
#include "value.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

Value *val_new(Arena *a, ValueKind k, Span s) {
  Value *v = arena_alloc(a, sizeof *v);
  v->kind = k;
  v->span = s;
  v->builtin = -1;
  v->node = -1;
  return v;
}

Value *val_int(Arena *a, long long i, Span s) {
  Value *v = val_new(a, V_INT, s);
  v->i = i;
  return v;
}

Value *val_float(Arena *a, double f, Span s) {
  Value *v = val_new(a, V_FLOAT, s);
  v->f = f;
  return v;
}

Value *val_tensor(Arena *a, Shape sh, Span s) {
  Value *v = val_new(a, V_TENSOR, s);
  v->shape = sh;
  return v;
}

int val_is_number(const Value *v) { return v && (v->kind == V_INT || v->kind == V_FLOAT); }

double val_number(const Value *v) { return v->kind == V_INT ? (double)v->i : v->f; }

const char *val_kind_name(const Value *v) {
  static _Thread_local char buf[160];
  switch (v->kind) {
  case V_INT: return "an int";
  case V_FLOAT: return "a float";
  case V_BOOL: return "a bool";
  case V_STR: return "a string";
  case V_LIST: return "a list";
  case V_TUPLE: snprintf(buf, sizeof buf, "%d values", v->items.len); return buf;
  case V_FUNC: return "a function";
  case V_MODULE: return "a module";
  case V_ROLE: return "a role";
  case V_DIST: return "a distribution";
  case V_TENSOR: {
    int n = snprintf(buf, sizeof buf, "a %s [", v->classes ? "code grid" : "tensor");
    for (int i = 0; i < v->shape.rank && n < 140; i++)
      n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%lld", i ? ", " : "", v->shape.d[i]);
    snprintf(buf + n, sizeof buf - (size_t)n, "]");
    return buf;
  }
  }
  return "a value";
}

Shape shape_of(int rank, const long long *d) {
  Shape s = {rank, {0}};
  for (int i = 0; i < rank; i++) s.d[i] = d[i];
  return s;
}

Shape shape_scalar(void) {
  Shape s = {0, {0}};
  return s;
}

int shape_eq(Shape a, Shape b) {
  if (a.rank != b.rank) return 0;
  for (int i = 0; i < a.rank; i++)
    if (a.d[i] != b.d[i]) return 0;
  return 1;
}

long long shape_size(Shape s) {
  long long n = 1;
  for (int i = 0; i < s.rank; i++)
    if (__builtin_mul_overflow(n, s.d[i], &n)) return LLONG_MAX; /* saturates */
  return n;
}

int shape_broadcast(Shape a, Shape b, Shape *out) {
  Shape r = {a.rank > b.rank ? a.rank : b.rank, {0}};
  for (int i = 0; i < r.rank; i++) {
    int ia = a.rank - r.rank + i, ib = b.rank - r.rank + i;
    long long da = ia >= 0 ? a.d[ia] : 1, db = ib >= 0 ? b.d[ib] : 1;
    if (da != db && da != 1 && db != 1) return 0;
    r.d[i] = da == 1 ? db : da;
  }
  *out = r;
  return 1;
}

const char *shape_str(Arena *a, Shape s) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "[");
  for (int i = 0; i < s.rank; i++)
    n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%lld", i ? ", " : "", s.d[i]);
  snprintf(buf + n, sizeof buf - (size_t)n, "]");
  return arena_strdup(a, buf);
}
