/* ast.h - the syntax tree: one node shape for every construct.
 *
 * Grammar actions only build these nodes; every node carries the byte span
 * of the source that produced it.  The meaning of `str`, `str2`, `ival`,
 * `num` and of each child slot depends on the kind, as listed in the table.
 * Optional children are NULL. */
#ifndef VML_AST_H
#define VML_AST_H

#include "arena.h"
#include "diag.h"

/*        kind        dump name      children and fields */
#define AST_KINDS(X)                                                          \
  X(FILE, "file")           /* kids: items */                                 \
  X(IMPORT, "import")       /* str module, str2 alias or NULL */              \
  X(FN, "fn")               /* str name, [0] PARAMS, [1] BLOCK or expr; ival 1 = net */ \
  X(PARAMS, "params")       /* kids: FPARAM */                                \
  X(FPARAM, "param")        /* str name, [0] SHAPE pattern, [1] default */    \
  X(SHAPE, "shape")         /* kids: dimension exprs */                       \
  X(MODEL, "model")         /* str name, kids: items */                       \
  X(HYPER, "hyper")         /* kids: BIND */                                  \
  X(BIND, "bind")           /* str name, [0] expr */                          \
  X(DATA, "data")           /* str name, str2 domain, [0] SHAPE, [1] classes, [2] range LIST, [3] source */ \
  X(ROLE, "role")           /* str role, str2 name, [0] targets LIST or PARAMS, [1] conds LIST, [2] body; ival flags */ \
  X(PARAMDECL, "paramdecl") /* str name, [0] SHAPE, [1] init expr */          \
  X(LOSS, "loss")           /* str name, [0] expr */                          \
  X(TRAIN, "train")         /* kids: STEP, SETTING, STAGE, FREEZE */          \
  X(STAGE, "stage")         /* str name, kids: as TRAIN */                    \
  X(STEP, "step")           /* str loss, ival ratio, num 1 = maximize, [0] optimizer call, [1] groups LIST */ \
  X(SETTING, "setting")     /* str key, [0] expr */                           \
  X(FREEZE, "freeze")       /* [0] groups LIST */                             \
  X(BLOCK, "block")         /* kids: statements */                            \
  X(ASSIGN, "assign")       /* [0] targets LIST of NAME, [1] expr */          \
  X(DRAW, "draw")           /* str name, [0] distribution, [1] SHAPE, str2 estimator */ \
  X(FOR, "for")             /* str var, [0] iterable, [1] BLOCK */            \
  X(IF, "if")               /* [0] cond, [1] BLOCK, [2] BLOCK or IF */        \
  X(RETURN, "return")       /* kids: exprs */                                 \
  X(INT, "int")             /* ival */                                        \
  X(FLOAT, "float")         /* num; str the literal as written */            \
  X(STR, "str")             /* str */                                         \
  X(BOOL, "bool")           /* ival */                                        \
  X(NAME, "name")           /* str */                                         \
  X(MEMBER, "member")       /* [0] expr, str field */                         \
  X(CALL, "call")           /* [0] callee, then args; ival = index of first arg after '|' or 0 */ \
  X(NAMEDARG, "namedarg")   /* str name, [0] expr */                          \
  X(SAMPLEARG, "samplearg") /* str name, [0] CALL naming a distribution */    \
  X(INDEX, "index")         /* [0] expr, [1] index */                         \
  X(LIST, "list")           /* kids */                                        \
  X(BINOP, "binop")         /* str op, [0], [1] */                            \
  X(UNOP, "unop")           /* str op, [0] */                                 \
  X(LOGP, "logp")           /* [0] CALL naming a distribution */              \
  X(KL, "kl")               /* [0], [1] CALLs naming distributions */         \
  X(EXPECT, "expect")       /* [0] expr */                                    \
  X(FLOW, "flow")           /* [0] base distribution, [1] transform call */

typedef enum {
#define X(k, s) N_##k,
  AST_KINDS(X)
#undef X
      N_KIND_COUNT
} NodeKind;

/* ROLE flags */
enum { ROLE_IMPLICIT = 1, ROLE_AUTOREGRESSIVE = 2 };

typedef struct Node Node;
struct Node {
  NodeKind kind;
  Span span;
  const char *str, *str2;
  long long ival;
  double num;
  Vec kids;
};

Node *ast_new(Arena *a, NodeKind k, Span s);
Node *ast_add(Arena *a, Node *parent, Node *kid); /* returns parent */
Node *ast_kid(const Node *n, int i);               /* NULL when absent */
int ast_nkids(const Node *n);
const char *ast_kind_name(NodeKind k);

/* An expression written back as canonical source text: adam(lr = 0.001). */
const char *ast_text(Arena *a, const Node *n);

/* Canonical, deterministic dump (S-expressions with line:col). */
void ast_dump(FILE *out, const Diag *d, const Node *n);

#endif
