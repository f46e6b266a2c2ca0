/* builtin.h - the builtin functions of the language and their shape rules.
 * One table (BUILTINS) gives each builtin its name and parameter list; a
 * rule function per builtin checks the arguments and computes the result. */
#ifndef VML_BUILTIN_H
#define VML_BUILTIN_H

#include "value.h"

/* Parameter lists: space-separated names; a trailing '?' marks an optional
 * one, a leading '*' a variadic one (all remaining positional arguments). */
#define BUILTINS(X)                                   \
  X(RELU, "relu", "x")                                \
  X(ELU, "elu", "x")                                  \
  X(SELU, "selu", "x")                                \
  X(LEAKY_RELU, "leaky_relu", "x slope?")             \
  X(TANH, "tanh", "x")                                \
  X(SIGMOID, "sigmoid", "x")                          \
  X(SOFTPLUS, "softplus", "x")                        \
  X(EXP, "exp", "x")                                  \
  X(LOG, "log", "x")                                  \
  X(SQRT, "sqrt", "x")                                \
  X(ABS, "abs", "x")                                  \
  X(SQUARE, "square", "x")                            \
  X(IDENTITY, "identity", "x")                        \
  X(SG, "sg", "x")                                    \
  X(CONCAT, "concat", "*xs axis?")                    \
  X(RESHAPE, "reshape", "x shape")                    \
  X(FLATTEN, "flatten", "x")                          \
  X(SUM, "sum", "x axis?")                            \
  X(MEAN, "mean", "x axis?")                          \
  X(SOFTMAX, "softmax", "x")                          \
  X(LOGSUMEXP, "logsumexp", "x")                      \
  X(CONV2D, "conv", "x w stride? pad? dilation?")   \
  X(CONV2D_T, "conv_transpose", "x w stride? pad? output_pad? dilation?") \
  X(NEAREST, "nearest", "z codebook")                 \
  X(EMBED, "embed", "table codes")                    \
  X(ONEHOT, "onehot", "codes k")                      \
  X(ZEROS, "zeros", "shape")                          \
  X(ONES, "ones", "shape")                            \
  X(DEGREE_MASK, "degree_mask", "din dout strict?")   \
  X(CONV_MASK, "conv_mask", "out in k type?")         \
  X(MADE_DEGREES, "made_degrees", "d n")              \
  X(RANGE, "range", "a b?")                           \
  X(LEN, "len", "xs")                                 \
  X(BCE, "bce", "logits target")                      \
  X(MSE, "mse", "a b")                                \
  X(NORMAL, "Normal", "loc scale")                    \
  X(LAPLACE, "Laplace", "loc scale")                  \
  X(BERNOULLI, "Bernoulli", "logits? probs?")         \
  X(CATEGORICAL, "Categorical", "logits? probs?")

typedef enum {
#define X(id, name, params) B_##id,
  BUILTINS(X)
#undef X
      B_COUNT
} BuiltinId;

/* One argument as written at the call site. */
typedef struct {
  const char *name; /* NULL when positional */
  Value *value;
  Node *node;
} Arg;

int builtin_find(const char *name);          /* -1 when not a builtin */
const char *builtin_name(int id);

/* Binds the arguments to the builtin's parameters and applies its rule.
 * Returns NULL after reporting an error. */
Value *builtin_apply(Diag *d, Arena *a, int id, Node *call, Arg *args, int nargs);

/* Shared with the elaborator: elementwise arithmetic with broadcasting. */
Value *builtin_binary(Diag *d, Arena *a, const char *op, Value *x, Value *y, Node *at);

#endif
