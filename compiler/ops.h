/* ops.h - the op table: every pass of the graph IR reads it.
 *
 * Columns: enum name, text name (as written in .vmx files), number of
 * inputs (-1: any), and the attributes it takes:
 *   i0..i4  integer attributes   (axis, stride, pad, dilation, ...)
 *   f0      a float attribute    (a constant's value, a slope)
 *   s       a string attribute   (a parameter's or input's name, a mask)
 * Shapes are per example; a node is "batched" when it has the implicit
 * batch axis in front.  Shape rules live in graph.c (graph_infer), gradient
 * rules in autodiff.c (one function per op), kernels in runtime/.  Adding
 * an op means one line here, its rule in each of those, and its kernel. */
#ifndef VML_OPS_H
#define VML_OPS_H

#define OPS(X)                                                                 \
  /* sources */                                                                \
  X(INPUT, "input", 0)           /* s: data or latent name; batched */         \
  X(PARAM, "param", 0)           /* s: parameter name; not batched */          \
  X(CONST, "const", 0)           /* f0: value; a scalar */                     \
  X(FILL, "fill", 0)             /* f0: value; shape from the node */          \
  X(MASK_DEGREE, "mask_degree", 0) /* s: "din|dout|strict": MADE mask */       \
  X(MASK_CONV, "mask_conv", 0)   /* s: "A" or "B"; shape [o, c, k, k] */       \
  X(BATCH_SIZE, "batch_size", 0) /* the run's batch size as a scalar */        \
  /* random draws from counter-based streams: i0 the stream */                 \
  X(RANDN, "randn", 0)           /* standard normal of the node's shape */     \
  X(RANDU, "randu", 0)           /* uniform on [0, 1) */                       \
  X(SAMPLE_BERNOULLI, "sample_bernoulli", 1) /* logits -> 0/1 */               \
  X(SAMPLE_CATEGORICAL, "sample_categorical", 1) /* logits [K, ...] -> codes */ \
  /* elementwise, one input */                                                 \
  X(NEG, "neg", 1)                                                             \
  X(EXP, "exp", 1)                                                             \
  X(LOG, "log", 1)                                                             \
  X(SQRT, "sqrt", 1)                                                           \
  X(ABS, "abs", 1)                                                             \
  X(SQUARE, "square", 1)                                                       \
  X(RELU, "relu", 1)                                                           \
  X(ELU, "elu", 1)                                                             \
  X(SELU, "selu", 1)                                                           \
  X(LEAKY_RELU, "leaky_relu", 1) /* f0: slope */                               \
  X(TANH, "tanh", 1)                                                           \
  X(SIGMOID, "sigmoid", 1)                                                     \
  X(SOFTPLUS, "softplus", 1)                                                   \
  X(STOP_GRAD, "stop_grad", 1)   /* identity; no gradient flows back */        \
  X(STEP, "step", 1)             /* 1 where x > 0, else 0 (relu') */           \
  X(SIGN, "sign", 1)             /* abs' */                                    \
  X(D_ELU, "d_elu", 1)           /* elu'(x) */                                 \
  X(D_SELU, "d_selu", 1)         /* selu'(x) */                                \
  X(D_LEAKY_RELU, "d_leaky_relu", 1) /* f0: slope */                           \
  /* elementwise, two inputs, numpy broadcasting */                            \
  X(ADD, "add", 2)                                                             \
  X(SUB, "sub", 2)                                                             \
  X(MUL, "mul", 2)                                                             \
  X(DIV, "div", 2)                                                             \
  /* linear algebra: [k?, n] x [n, m]; i0, i1: transpose flags */              \
  X(MATMUL, "matmul", 2)                                                       \
  /* reductions and shape */                                                   \
  X(SUM, "sum", 1)               /* over every per-example axis */             \
  X(SUM_AXIS, "sum_axis", 1)     /* i0: axis */                                \
  X(LOGSUMEXP, "logsumexp", 1)   /* over axis 0 */                             \
  X(SOFTMAX, "softmax", 1)       /* over axis 0 */                             \
  X(REDUCE_TO, "reduce_to", 1)   /* sums broadcast axes down to the node's shape (and the batch axis when the node is not batched) */ \
  X(EXPAND, "expand", 1)         /* broadcasts up to the node's shape (and batch) */ \
  X(BATCH_MEAN, "batch_mean", 1) /* mean over the batch: not batched */        \
  X(RESHAPE, "reshape", 1)                                                     \
  X(CONCAT, "concat", -1)        /* i0: axis */                                \
  X(SLICE, "slice", 1)           /* i0: axis, i1: start (length from shape) */ \
  /* convolutions on [c, h, w]: i0 stride, i1 pad, i2 dilation, i3 and i4 output pad of height and width */ \
  X(CONV2D, "conv2d", 2)         /* x, kernel [o, c, kh, kw] */                \
  X(CONV2D_T, "conv2d_transpose", 2) /* x, kernel [c, o, kh, kw] */            \
  X(CONV2D_DW, "conv2d_dw", 2)   /* x, dy -> d kernel of conv2d */             \
  X(CONV2D_T_DW, "conv2d_transpose_dw", 2) /* x, dy -> d kernel of conv2d_transpose */ \
  /* codes */                                                                  \
  X(NEAREST, "nearest", 2)       /* z [d, ...], codebook [k, d] -> codes */    \
  X(EMBED, "embed", 2)           /* table [k, d], codes -> [d, ...] */         \
  X(EMBED_DW, "embed_dw", 2)     /* dy [d, ...], codes -> d table [k, d] */    \
  X(ONEHOT, "onehot", 1)         /* codes -> [k, ...] */                       \
  X(PICK, "pick", 2)             /* x [k, ...], codes -> x[code, ...] */       \
  X(PICK_DX, "pick_dx", 2)       /* dy [...], codes -> [k, ...] */

typedef enum {
#define X(id, text, arity) OP_##id,
  OPS(X)
#undef X
      OP_COUNT
} Op;

const char *op_name(Op op);
int op_arity(Op op);
int op_from_name(const char *name); /* -1 when unknown */
int op_is_elementwise(Op op);       /* fusable into one kernel */

#endif
