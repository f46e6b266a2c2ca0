/* builtin.c - argument binding and the shape rule of every builtin. */
#include "builtin.h"

#include <limits.h>
#include <math.h>
#include <string.h>

typedef struct {
  const char *name, *params;
} BuiltinDef;

static const BuiltinDef defs[] = {
#define X(id, name, params) {name, params},
    BUILTINS(X)
#undef X
};
_Static_assert(sizeof defs / sizeof *defs == B_COUNT, "one definition per builtin");

enum { MAX_PARAMS = 8 };

int builtin_find(const char *name) {
  for (int i = 0; i < B_COUNT; i++)
    if (strcmp(defs[i].name, name) == 0) return i;
  return -1;
}

const char *builtin_name(int id) { return defs[id].name; }

/* The bound call: one slot per declared parameter. */
typedef struct {
  Diag *d;
  Arena *a;
  Node *call;
  const char *fname;
  const char *pname[MAX_PARAMS];
  int optional[MAX_PARAMS], variadic[MAX_PARAMS];
  int np;
  Arg *slot[MAX_PARAMS];
  Arg *rest[64];
  int nrest;
} Bound;

static int parse_params(Bound *b, const char *spec) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", spec);
  for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
    size_t n = strlen(tok);
    int i = b->np++;
    b->variadic[i] = tok[0] == '*';
    b->optional[i] = tok[n - 1] == '?';
    if (b->optional[i]) tok[n - 1] = '\0';
    b->pname[i] = arena_strdup(b->a, tok + b->variadic[i]);
  }
  return b->np;
}

static int bind(Bound *b, Arg *args, int nargs) {
  int pos = 0, ok = 1;
  for (int k = 0; k < nargs; k++) {
    Arg *g = &args[k];
    if (!g->name) {
      while (pos < b->np && b->slot[pos] && !b->variadic[pos]) pos++;
      if (pos < b->np && b->variadic[pos]) {
        if (b->nrest < 64) b->rest[b->nrest++] = g;
        continue;
      }
      if (pos >= b->np) {
        diag_error(b->d, g->node->span, "%s takes at most %d argument%s", b->fname, b->np,
                   b->np == 1 ? "" : "s");
        return 0;
      }
      b->slot[pos++] = g;
      continue;
    }
    int i;
    for (i = 0; i < b->np; i++)
      if (strcmp(b->pname[i], g->name) == 0 && !b->variadic[i]) break;
    if (i == b->np) {
      diag_error(b->d, g->node->span, "%s has no parameter named '%s'", b->fname, g->name);
      ok = 0;
    } else if (b->slot[i]) {
      diag_error(b->d, g->node->span, "parameter '%s' of %s is given twice", g->name, b->fname);
      ok = 0;
    } else {
      b->slot[i] = g;
    }
  }
  for (int i = 0; ok && i < b->np; i++)
    if (!b->slot[i] && !b->optional[i] && !b->variadic[i]) {
      diag_error(b->d, b->call->span, "%s needs an argument '%s'", b->fname, b->pname[i]);
      ok = 0;
    }
  return ok;
}

static Value *arg(Bound *b, int i) { return b->slot[i] ? b->slot[i]->value : NULL; }
static Span arg_span(Bound *b, int i) { return b->slot[i] ? b->slot[i]->node->span : b->call->span; }

static Value *need_tensor(Bound *b, int i) {
  Value *v = arg(b, i);
  if (!v) return NULL;
  if (v->kind == V_TENSOR) return v;
  if (val_is_number(v)) return val_tensor(b->a, shape_scalar(), v->span);
  diag_error(b->d, arg_span(b, i), "%s: '%s' must be a tensor, found %s", b->fname, b->pname[i],
             val_kind_name(v));
  return NULL;
}

static int need_int(Bound *b, int i, long long dflt, long long min, long long *out) {
  Value *v = arg(b, i);
  if (!v) {
    *out = dflt;
    return 1;
  }
  if (v->kind != V_INT) {
    diag_error(b->d, arg_span(b, i), "%s: '%s' must be an int, found %s", b->fname, b->pname[i],
               val_kind_name(v));
    return 0;
  }
  if (v->i < min) {
    diag_error(b->d, arg_span(b, i), "%s: '%s' must be at least %lld, found %lld", b->fname,
               b->pname[i], min, v->i);
    return 0;
  }
  *out = v->i;
  return 1;
}

static int need_int_list(Bound *b, int i, Vec **out) {
  Value *v = arg(b, i);
  int ok = v && v->kind == V_LIST;
  for (int k = 0; ok && k < v->items.len; k++) ok = ((Value *)v->items.items[k])->kind == V_INT;
  if (!ok) {
    const char *found = !v ? "nothing" : v->kind != V_LIST ? val_kind_name(v) : NULL;
    for (int k = 0; !found && k < v->items.len; k++)
      if (((Value *)v->items.items[k])->kind != V_INT)
        found = arena_printf(b->a, "a list holding %s", val_kind_name(v->items.items[k]));
    diag_error(b->d, arg_span(b, i), "%s: '%s' must be a list of ints, found %s", b->fname, b->pname[i], found);
    return 0;
  }
  *out = &v->items;
  return 1;
}

static Value *tensor_like(Bound *b, Value *x) {
  Value *r = val_tensor(b->a, x->shape, b->call->span);
  return r;
}

/* Elementwise functions also fold numbers at compile time. */
static Value *unary(Bound *b, BuiltinId id) {
  Value *x = arg(b, 0);
  if (val_is_number(x) && id != B_SG) {
    double v = val_number(x), r = v;
    switch (id) {
    case B_EXP: r = exp(v); break;
    case B_LOG:
      if (v <= 0) {
        diag_error(b->d, b->call->span, "log of %g is not a finite number", v);
        return NULL;
      }
      r = log(v);
      break;
    case B_SQRT:
      if (v < 0) {
        diag_error(b->d, b->call->span, "sqrt of the negative number %g", v);
        return NULL;
      }
      r = sqrt(v);
      break;
    case B_ABS: r = fabs(v); break;
    case B_SQUARE: r = v * v; break;
    case B_IDENTITY: return x;
    default: break;
    }
    if (id == B_EXP || id == B_LOG || id == B_SQRT || id == B_ABS || id == B_SQUARE)
      return val_float(b->a, r, b->call->span);
  }
  Value *t = need_tensor(b, 0);
  if (!t) return NULL;
  if (t->classes) {
    diag_error(b->d, arg_span(b, 0), "%s of integer codes: use embed(...) or onehot(...) first",
               b->fname);
    return NULL;
  }
  if (id == B_LEAKY_RELU && arg(b, 1) && !val_is_number(arg(b, 1))) {
    diag_error(b->d, arg_span(b, 1), "leaky_relu: 'slope' must be a number, found %s",
               val_kind_name(arg(b, 1)));
    return NULL;
  }
  Value *r = tensor_like(b, t);
  r->flags = t->flags & T_CONST;
  return r;
}

Value *builtin_binary(Diag *d, Arena *a, const char *op, Value *x, Value *y, Node *at) {
  int numx = val_is_number(x), numy = val_is_number(y);
  if (strcmp(op, "@") != 0 && numx && numy) {
    if (x->kind == V_INT && y->kind == V_INT) {
      long long p = x->i, q = y->i, r = 0;
      int over = 0;
      switch (op[0]) {
      case '+': over = __builtin_add_overflow(p, q, &r); break;
      case '-': over = __builtin_sub_overflow(p, q, &r); break;
      case '*': over = __builtin_mul_overflow(p, q, &r); break;
      default: over = q == -1 && p == LLONG_MIN; break;
      }
      if (over) {
        diag_error(d, at->span, "integer overflow: %lld %s %lld does not fit in 64 bits", p, op, q);
        return NULL;
      }
      switch (op[0]) {
      case '+':
      case '-':
      case '*': return val_int(a, r, at->span);
      case '%':
      case '/':
        if (q == 0) {
          diag_error(d, at->span, "division by zero");
          return NULL;
        }
        if (op[0] == '%') return val_int(a, p % q, at->span);
        if (p % q == 0) return val_int(a, p / q, at->span);
        return val_float(a, (double)p / (double)q, at->span);
      }
    }
    double p = val_number(x), q = val_number(y);
    switch (op[0]) {
    case '+': return val_float(a, p + q, at->span);
    case '-': return val_float(a, p - q, at->span);
    case '*': return val_float(a, p * q, at->span);
    case '/':
      if (q == 0) {
        diag_error(d, at->span, "division by zero");
        return NULL;
      }
      return val_float(a, p / q, at->span);
    case '%':
      diag_error(d, at->span, "%% needs two ints");
      return NULL;
    }
  }
  if (x->kind == V_LIST && y->kind == V_LIST && op[0] == '+') {
    Value *r = val_new(a, V_LIST, at->span);
    for (int i = 0; i < x->items.len; i++) vec_push(a, &r->items, x->items.items[i]);
    for (int i = 0; i < y->items.len; i++) vec_push(a, &r->items, y->items.items[i]);
    return r;
  }
  int tx = x->kind == V_TENSOR || numx, ty = y->kind == V_TENSOR || numy;
  if (!tx || !ty) {
    diag_error(d, at->span, "'%s' cannot combine %s", op, val_kind_name(x));
    Value *bad = tx ? y : x;
    if (bad != x) diag_note(d, bad->span, "with %s", val_kind_name(bad));
    return NULL;
  }
  Shape sx = numx ? shape_scalar() : x->shape, sy = numy ? shape_scalar() : y->shape;
  if ((!numx && x->classes) || (!numy && y->classes)) {
    diag_error(d, at->span, "'%s' on integer codes: use embed(...) or onehot(...) first", op);
    return NULL;
  }
  if (strcmp(op, "%") == 0) {
    diag_error(d, at->span, "%% is for ints, not tensors");
    return NULL;
  }
  if (strcmp(op, "@") == 0) {
    if (sx.rank < 1 || sx.rank > 2 || sy.rank != 2) {
      diag_error(d, at->span, "'@' multiplies [n] or [k, n] by [n, m]; found %s @ %s",
                 shape_str(a, sx), shape_str(a, sy));
      return NULL;
    }
    long long inner = sx.d[sx.rank - 1];
    if (inner != sy.d[0]) {
      diag_error(d, at->span, "'@' inner dimensions differ: %s @ %s (expected [%lld, ...] on the right, found [%lld, ...])",
                 shape_str(a, sx), shape_str(a, sy), inner, sy.d[0]);
      return NULL;
    }
    Shape r = sx;
    r.d[r.rank - 1] = sy.d[1];
    return val_tensor(a, r, at->span);
  }
  Shape r;
  if (!shape_broadcast(sx, sy, &r)) {
    diag_error(d, at->span, "'%s' cannot broadcast %s with %s", op, shape_str(a, sx), shape_str(a, sy));
    return NULL;
  }
  Value *v = val_tensor(a, r, at->span);
  v->flags = ((numx || (x->flags & T_CONST)) && (numy || (y->flags & T_CONST))) ? T_CONST : 0;
  return v;
}

static int normalize_axis(Bound *b, int slot, int rank, long long *axis) {
  if (!need_int(b, slot, 0, LLONG_MIN, axis)) return 0;
  if (*axis < 0 && *axis >= -rank) *axis += rank;
  if (*axis < 0 || *axis >= rank) {
    diag_error(b->d, arg_span(b, slot), "%s: axis %lld is out of range for rank %d", b->fname,
               *axis, rank);
    return 0;
  }
  return 1;
}

static Value *concat(Bound *b) {
  if (b->nrest == 0) {
    diag_error(b->d, b->call->span, "concat needs at least one tensor");
    return NULL;
  }
  Shape r = {0, {0}};
  for (int k = 0; k < b->nrest; k++) {
    Value *v = b->rest[k]->value;
    if (v->kind != V_TENSOR || v->shape.rank == 0) {
      diag_error(b->d, b->rest[k]->node->span, "concat: expected a tensor of rank 1 or more, found %s",
                 val_kind_name(v));
      return NULL;
    }
    if (k == 0) {
      r = v->shape;
      long long axis;
      if (!normalize_axis(b, 1, r.rank, &axis)) return NULL;
      continue;
    }
    long long axis;
    if (!normalize_axis(b, 1, r.rank, &axis)) return NULL;
    int same = v->shape.rank == r.rank;
    for (int i = 0; same && i < r.rank; i++) same = i == axis || v->shape.d[i] == r.d[i];
    if (!same) {
      diag_error(b->d, b->rest[k]->node->span,
                 "concat along axis %lld: expected a shape matching %s except on that axis, found %s",
                 axis, shape_str(b->a, r), shape_str(b->a, v->shape));
      return NULL;
    }
    r.d[axis] += v->shape.d[axis];
  }
  return val_tensor(b->a, r, b->call->span);
}

static Value *reshape(Bound *b) {
  Value *x = need_tensor(b, 0);
  Vec *dims;
  if (!x || !need_int_list(b, 1, &dims)) return NULL;
  if (dims->len > MAX_RANK) {
    diag_error(b->d, arg_span(b, 1), "reshape: at most %d dimensions", MAX_RANK);
    return NULL;
  }
  Shape r = {dims->len, {0}};
  for (int i = 0; i < dims->len; i++) r.d[i] = ((Value *)dims->items[i])->i;
  for (int i = 0; i < r.rank; i++)
    if (r.d[i] < 1) {
      diag_error(b->d, arg_span(b, 1), "reshape: dimension %d is %lld; dimensions must be positive", i, r.d[i]);
      return NULL;
    }
  if (shape_size(r) != shape_size(x->shape)) {
    diag_error(b->d, b->call->span, "reshape: %s has %lld elements, %s has %lld",
               shape_str(b->a, x->shape), shape_size(x->shape), shape_str(b->a, r), shape_size(r));
    return NULL;
  }
  return val_tensor(b->a, r, b->call->span);
}

static Value *reduce(Bound *b) {
  Value *x = need_tensor(b, 0);
  if (!x) return NULL;
  if (!arg(b, 1)) return val_tensor(b->a, shape_scalar(), b->call->span);
  long long axis;
  if (!normalize_axis(b, 1, x->shape.rank, &axis)) return NULL;
  Shape r = {0, {0}};
  for (int i = 0; i < x->shape.rank; i++)
    if (i != axis) r.d[r.rank++] = x->shape.d[i];
  return val_tensor(b->a, r, b->call->span);
}

/* Output size of a convolution along one axis; 0 when it would be empty. */
static long long conv_out(long long n, long long k, long long s, long long p, long long dl, int transposed,
                          long long op) {
  if (transposed) return (n - 1) * s - 2 * p + dl * (k - 1) + op + 1;
  long long span = n + 2 * p - dl * (k - 1) - 1;
  return span < 0 ? 0 : span / s + 1;
}

static Value *conv(Bound *b, int transposed) {
  Value *x = need_tensor(b, 0), *w = need_tensor(b, 1);
  if (!x || !w) return NULL;
  long long stride, pad, dil, opad = 0;
  int dslot = transposed ? 5 : 4;
  if (!need_int(b, 2, 1, 1, &stride) || !need_int(b, 3, 0, 0, &pad) ||
      !need_int(b, dslot, 1, 1, &dil) || (transposed && !need_int(b, 4, 0, 0, &opad)))
    return NULL;
  if (x->shape.rank != 3) {
    diag_error(b->d, arg_span(b, 0), "%s: expected an input [channels, height, width], found %s",
               b->fname, shape_str(b->a, x->shape));
    return NULL;
  }
  if (w->shape.rank != 4) {
    diag_error(b->d, arg_span(b, 1), "%s: expected a kernel [%s, kh, kw], found %s", b->fname,
               transposed ? "in, out" : "out, in", shape_str(b->a, w->shape));
    return NULL;
  }
  long long cin = transposed ? w->shape.d[0] : w->shape.d[1];
  long long cout = transposed ? w->shape.d[1] : w->shape.d[0];
  if (cin != x->shape.d[0]) {
    diag_error(b->d, b->call->span, "%s: the kernel expects %lld input channels, found %lld (input %s, kernel %s)",
               b->fname, cin, x->shape.d[0], shape_str(b->a, x->shape), shape_str(b->a, w->shape));
    return NULL;
  }
  long long h = conv_out(x->shape.d[1], w->shape.d[2], stride, pad, dil, transposed, opad);
  long long wd = conv_out(x->shape.d[2], w->shape.d[3], stride, pad, dil, transposed, opad);
  if (h < 1 || wd < 1) {
    diag_error(b->d, b->call->span, "%s: a %lldx%lld kernel leaves nothing of a %lldx%lld input (stride %lld, pad %lld)",
               b->fname, w->shape.d[2], w->shape.d[3], x->shape.d[1], x->shape.d[2], stride, pad);
    return NULL;
  }
  long long d[3] = {cout, h, wd};
  return val_tensor(b->a, shape_of(3, d), b->call->span);
}

static Value *nearest(Bound *b) {
  Value *z = need_tensor(b, 0), *e = need_tensor(b, 1);
  if (!z || !e) return NULL;
  if (e->shape.rank != 2) {
    diag_error(b->d, arg_span(b, 1), "nearest: expected a codebook [k, d], found %s", shape_str(b->a, e->shape));
    return NULL;
  }
  if (z->shape.rank < 1 || z->shape.d[0] != e->shape.d[1]) {
    diag_error(b->d, arg_span(b, 0), "nearest: expected vectors [%lld, ...] to match the codebook %s, found %s",
               e->shape.d[1], shape_str(b->a, e->shape), shape_str(b->a, z->shape));
    return NULL;
  }
  Shape r = {z->shape.rank - 1, {0}};
  for (int i = 1; i < z->shape.rank; i++) r.d[i - 1] = z->shape.d[i];
  Value *v = val_tensor(b->a, r, b->call->span);
  v->classes = (int)e->shape.d[0];
  return v;
}

static Value *codes_arg(Bound *b, int i) {
  Value *c = arg(b, i);
  if (c && c->kind == V_TENSOR && c->classes) return c;
  diag_error(b->d, arg_span(b, i), "%s: '%s' must be integer codes (from nearest, a Categorical draw or cat data), found %s",
             b->fname, b->pname[i], c ? val_kind_name(c) : "nothing");
  return NULL;
}

static Value *embed(Bound *b) {
  Value *t = need_tensor(b, 0), *c = codes_arg(b, 1);
  if (!t || !c) return NULL;
  if (t->shape.rank != 2) {
    diag_error(b->d, arg_span(b, 0), "embed: expected a table [k, d], found %s", shape_str(b->a, t->shape));
    return NULL;
  }
  if (c->classes != t->shape.d[0]) {
    diag_error(b->d, b->call->span, "embed: the codes take %d values but the table has %lld rows",
               c->classes, t->shape.d[0]);
    return NULL;
  }
  if (c->shape.rank + 1 > MAX_RANK) {
    diag_error(b->d, b->call->span, "embed: the result would have more than %d dimensions", MAX_RANK);
    return NULL;
  }
  Shape r = {c->shape.rank + 1, {t->shape.d[1]}};
  for (int i = 0; i < c->shape.rank; i++) r.d[i + 1] = c->shape.d[i];
  return val_tensor(b->a, r, b->call->span);
}

static Value *onehot(Bound *b) {
  Value *c = codes_arg(b, 0);
  long long k;
  if (!c || !need_int(b, 1, 0, 1, &k)) return NULL;
  if (k != c->classes) {
    diag_error(b->d, arg_span(b, 1), "onehot: the codes take %d values, not %lld", c->classes, k);
    return NULL;
  }
  if (c->shape.rank + 1 > MAX_RANK) {
    diag_error(b->d, b->call->span, "onehot: the result would have more than %d dimensions", MAX_RANK);
    return NULL;
  }
  Shape r = {c->shape.rank + 1, {k}};
  for (int i = 0; i < c->shape.rank; i++) r.d[i + 1] = c->shape.d[i];
  return val_tensor(b->a, r, b->call->span);
}

static Value *filled(Bound *b) {
  Vec *dims;
  if (!need_int_list(b, 0, &dims)) return NULL;
  if (dims->len > MAX_RANK) {
    diag_error(b->d, arg_span(b, 0), "%s: at most %d dimensions, found %d", b->fname, MAX_RANK, dims->len);
    return NULL;
  }
  Shape r = {dims->len, {0}};
  for (int i = 0; i < dims->len; i++) {
    r.d[i] = ((Value *)dims->items[i])->i;
    if (r.d[i] < 1 || r.d[i] > (1ll << 31)) {
      diag_error(b->d, arg_span(b, 0), "%s: a dimension must be between 1 and 2^31, found %lld", b->fname, r.d[i]);
      return NULL;
    }
  }
  Value *v = val_tensor(b->a, r, b->call->span);
  v->flags = T_CONST;
  return v;
}

static Value *degree_mask(Bound *b) {
  Vec *din, *dout;
  if (!need_int_list(b, 0, &din) || !need_int_list(b, 1, &dout)) return NULL;
  if (arg(b, 2) && arg(b, 2)->kind != V_BOOL) {
    diag_error(b->d, arg_span(b, 2), "degree_mask: 'strict' must be a bool, found %s", val_kind_name(arg(b, 2)));
    return NULL;
  }
  long long d[2] = {din->len, dout->len};
  Value *v = val_tensor(b->a, shape_of(2, d), b->call->span);
  v->flags = T_CONST;
  return v;
}

static Value *conv_mask(Bound *b) {
  long long o, c, k;
  if (!need_int(b, 0, 0, 1, &o) || !need_int(b, 1, 0, 1, &c) || !need_int(b, 2, 0, 1, &k)) return NULL;
  Value *t = arg(b, 3);
  if (t && (t->kind != V_STR || (strcmp(t->s, "A") != 0 && strcmp(t->s, "B") != 0))) {
    diag_error(b->d, arg_span(b, 3), "conv_mask: 'type' must be \"A\" or \"B\"");
    return NULL;
  }
  if (k % 2 == 0) {
    diag_error(b->d, arg_span(b, 2), "conv_mask: the kernel size must be odd to have a centre, found %lld", k);
    return NULL;
  }
  long long d[4] = {o, c, k, k};
  Value *v = val_tensor(b->a, shape_of(4, d), b->call->span);
  v->flags = T_CONST;
  return v;
}

static Value *int_list(Bound *b, long long from, long long n, long long (*f)(long long, long long), long long p) {
  if (n > 1000000) {
    diag_error(b->d, b->call->span, "%s: a list of %lld elements is too long", b->fname, n);
    return NULL;
  }
  Value *v = val_new(b->a, V_LIST, b->call->span);
  for (long long i = 0; i < n; i++) vec_push(b->a, &v->items, val_int(b->a, f(from + i, p), b->call->span));
  return v;
}

static long long plain(long long i, long long p) { (void)p; return i; }
static long long degree(long long i, long long d) { return i % (d > 1 ? d - 1 : 1) + 1; }

static Value *loss_pair(Bound *b, BuiltinId id) {
  Value *x = need_tensor(b, 0), *y = need_tensor(b, 1);
  if (!x || !y) return NULL;
  Shape r;
  if (!shape_broadcast(x->shape, y->shape, &r) || (id == B_BCE && !shape_eq(r, x->shape))) {
    diag_error(b->d, b->call->span, "%s: expected a target of shape %s, found %s", b->fname,
               shape_str(b->a, x->shape), shape_str(b->a, y->shape));
    return NULL;
  }
  return val_tensor(b->a, shape_scalar(), b->call->span);
}

static Value *distribution(Bound *b, BuiltinId id) {
  Dist *dist = arena_alloc(b->a, sizeof *dist);
  Value *v = val_new(b->a, V_DIST, b->call->span);
  v->dist = dist;
  if (id == B_NORMAL || id == B_LAPLACE) {
    dist->fam = id == B_NORMAL ? D_NORMAL : D_LAPLACE;
    Value *loc = need_tensor(b, 0), *scale = need_tensor(b, 1);
    if (!loc || !scale) return NULL;
    if (val_is_number(arg(b, 1)) && val_number(arg(b, 1)) <= 0) {
      diag_error(b->d, arg_span(b, 1), "%s: the scale must be positive, found %g", b->fname,
                 val_number(arg(b, 1)));
      return NULL;
    }
    if (!shape_broadcast(loc->shape, scale->shape, &dist->shape)) {
      diag_error(b->d, b->call->span, "%s: loc %s and scale %s do not broadcast", b->fname,
                 shape_str(b->a, loc->shape), shape_str(b->a, scale->shape));
      return NULL;
    }
    dist->arg[0] = arg(b, 0);
    dist->arg[1] = arg(b, 1);
    return v;
  }
  dist->fam = id == B_BERNOULLI ? D_BERNOULLI : D_CATEGORICAL;
  if (!arg(b, 0) == !arg(b, 1)) {
    diag_error(b->d, b->call->span, "%s needs exactly one of logits = ... or probs = ...", b->fname);
    return NULL;
  }
  dist->probs = arg(b, 0) == NULL;
  Value *p = need_tensor(b, dist->probs ? 1 : 0);
  if (!p) return NULL;
  dist->arg[0] = p;
  dist->shape = p->shape;
  if (id == B_CATEGORICAL) {
    if (p->shape.rank < 1 || p->shape.d[0] < 2) {
      diag_error(b->d, arg_span(b, dist->probs ? 1 : 0),
                 "Categorical: expected %s [classes, ...] with at least 2 classes, found %s",
                 dist->probs ? "probs" : "logits", shape_str(b->a, p->shape));
      return NULL;
    }
    dist->classes = (int)p->shape.d[0];
    Shape r = {p->shape.rank - 1, {0}};
    for (int i = 1; i < p->shape.rank; i++) r.d[i - 1] = p->shape.d[i];
    dist->shape = r;
  }
  return v;
}

static Value *apply(Bound *b, BuiltinId id) {
  switch (id) {
  case B_RELU: case B_ELU: case B_SELU: case B_LEAKY_RELU: case B_TANH: case B_SIGMOID:
  case B_SOFTPLUS: case B_EXP: case B_LOG: case B_SQRT: case B_ABS: case B_SQUARE:
  case B_IDENTITY: case B_SG: case B_SOFTMAX:
    return unary(b, id);
  case B_CONCAT: return concat(b);
  case B_RESHAPE: return reshape(b);
  case B_FLATTEN: {
    Value *x = need_tensor(b, 0);
    if (!x) return NULL;
    long long n = shape_size(x->shape);
    return val_tensor(b->a, shape_of(1, &n), b->call->span);
  }
  case B_SUM: case B_MEAN: return reduce(b);
  case B_LOGSUMEXP: {
    Value *x = need_tensor(b, 0);
    return x ? val_tensor(b->a, shape_scalar(), b->call->span) : NULL;
  }
  case B_CONV2D: return conv(b, 0);
  case B_CONV2D_T: return conv(b, 1);
  case B_NEAREST: return nearest(b);
  case B_EMBED: return embed(b);
  case B_ONEHOT: return onehot(b);
  case B_ZEROS: case B_ONES: return filled(b);
  case B_DEGREE_MASK: return degree_mask(b);
  case B_CONV_MASK: return conv_mask(b);
  case B_MADE_DEGREES: {
    long long d, n;
    if (!need_int(b, 0, 0, 1, &d) || !need_int(b, 1, 0, 0, &n)) return NULL;
    return int_list(b, 0, n, degree, d);
  }
  case B_RANGE: {
    long long lo, hi;
    if (!need_int(b, 0, 0, -(1ll << 53), &lo)) return NULL;
    if (!arg(b, 1)) return int_list(b, 0, lo < 0 ? 0 : lo, plain, 0);
    if (!need_int(b, 1, 0, -(1ll << 53), &hi)) return NULL;
    return int_list(b, lo, hi > lo ? hi - lo : 0, plain, 0);
  }
  case B_LEN: {
    Value *x = arg(b, 0);
    if (x->kind != V_LIST && x->kind != V_TUPLE) {
      diag_error(b->d, arg_span(b, 0), "len: expected a list, found %s", val_kind_name(x));
      return NULL;
    }
    return val_int(b->a, x->items.len, b->call->span);
  }
  case B_BCE: case B_MSE: return loss_pair(b, id);
  case B_NORMAL: case B_LAPLACE: case B_BERNOULLI: case B_CATEGORICAL: return distribution(b, id);
  case B_COUNT: break;
  }
  return NULL;
}

Value *builtin_apply(Diag *d, Arena *a, int id, Node *call, Arg *args, int nargs) {
  Bound b = {0};
  b.d = d;
  b.a = a;
  b.call = call;
  b.fname = defs[id].name;
  parse_params(&b, defs[id].params);
  if (!bind(&b, args, nargs)) return NULL;
  return apply(&b, (BuiltinId)id);
}
