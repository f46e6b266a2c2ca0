/* optim.h - parameter initialization, optimizers (sgd, adam, adamw),
 * gradient clipping and learning-rate schedules for vmrun.
 *
 * Everything works on plain float arrays, so the runtime keeps its own
 * memory plan; the per-parameter optimizer state (m, v) is two more float
 * arrays of the parameter's length that the caller owns (zeroed before the
 * first step) and that a checkpoint saves.
 *
 * The update formulas are torch.optim's (PyTorch 1.13, the single-tensor
 * "for-loop" implementation that CPU tensors use), operation for operation,
 * with fused multiply-adds exactly where PyTorch's AVX2 CPU kernels have
 * them (add with alpha, addcmul): the results equal PyTorch's bit for bit
 * (tests/unit/test_optim.c).  The loops run 8 floats at a time with AVX2 when
 * the CPU has it, with identical results to the scalar loops.  optim.c must
 * not be compiled with floating-point contraction (it turns it off itself
 * for GCC and clang) or -ffast-math. */
#ifndef VML_OPTIM_H
#define VML_OPTIM_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ init */

/* Fan-in and fan-out of a parameter of shape d[0..rank-1], by the
 * conventions of vml's layers: [n, out] (a dense weight, x @ W) has
 * fan_in = n, fan_out = out; rank >= 3 is a conv kernel [o, c, k...] with
 * fan_in = c * prod(k), fan_out = o * prod(k); rank 1 [n] has both n; a
 * scalar has both 1. */
void optim_fans(const long long *d, int rank, double *fan_in, double *fan_out);

/* The random stream of a parameter: FNV-1a 64 of its name, so adding a
 * parameter does not change the initial values of the others. */
uint64_t optim_name_stream(const char *name);

/* Fills out[0..prod(d)-1] by the .vmx init text:
 *   glorot          U(-a, a), a = sqrt(6 / (fan_in + fan_out))
 *   he              N(0, 2 / fan_in)
 *   zeros | ones    0 | 1
 *   normal(std)     N(0, std^2)
 *   uniform(lo, hi) U(lo, hi)
 *   const(v)        v
 * Random values come from rng_fill_uniform / rng_fill_normal (runtime/rng.h)
 * with the given seed, stream optim_name_stream(name) and offset 0.
 * Returns 0, or -1 with "parameter NAME: ..." in err for an unknown or
 * malformed init text or an impossible fan. */
int optim_init_param(float *out, const long long *d, int rank, const char *init, const char *name,
                     uint64_t seed, char *err, size_t errlen);

/* ------------------------------------------------------------ optimizers */

typedef enum { OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW } OptimKind;

typedef struct {
  OptimKind kind;
  double lr;           /* base learning rate (before the schedule) */
  double momentum;     /* sgd */
  int nesterov;        /* sgd */
  double beta1, beta2, eps; /* adam, adamw */
  double weight_decay; /* sgd, adam: L2 added to the gradient; adamw: decoupled */
  int maximize;        /* ascend instead of descend (PyTorch's maximize=True) */
} OptimConfig;

/* Reads the `optimizer` line of a .vmx step: name "sgd" | "adam" | "adamw"
 * and npairs (name, value) pairs as strings, kv[2*i] = name, kv[2*i+1] =
 * value (VmxStep.args: pass (const char *const *)args.items, args.len / 2).
 * Missing arguments get the language's defaults; an unknown name, a bad
 * number or an out-of-range value is an error in err. maximize is 0. */
int optim_config_parse(OptimConfig *c, const char *name, const char *const *kv, size_t npairs,
                       char *err, size_t errlen);

/* How many state arrays (of the parameter's length) an update needs:
 * sgd without momentum 0, sgd with momentum 1 (m = momentum buffer),
 * adam/adamw 2 (m, v). */
int optim_state_arrays(const OptimConfig *c);

/* One update of one parameter, a single pass over its n floats:
 *   p      the parameter, updated in place
 *   g      its gradient (not modified); each g[i] is first multiplied by
 *          gscale (from optim_clip_scale; pass 1 for none)
 *   m, v   the state arrays (NULL when optim_state_arrays says so), zero
 *          before the first update
 *   lr     this update's learning rate (optim_lr)
 *   t      the number of this update, 1 for the first (PyTorch's
 *          state['step'] after its increment): Adam's bias correction, and
 *          sgd's momentum buffer is set (not decayed) when t == 1. */
void optim_update(const OptimConfig *c, double lr, long t, float gscale, float *p, const float *g,
                  float *m, float *v, long n);

/* ------------------------------------------------------------ clipping */

/* The L2 norm of k gradients together (g[j] of n[j] floats), accumulated in
 * double in a fixed order (eight interleaved partial sums per array, summed
 * in order), so it is the same on every run and thread count. */
double optim_global_norm(const float *const *g, const long *n, int k);

/* The factor the gradients are multiplied by for clip-by-global-norm to
 * max_norm (PyTorch's clip_grad_norm_: max_norm / (norm + 1e-6), applied only
 * when below 1): 1.0f when norm <= max_norm or max_norm <= 0 (no clip). */
float optim_clip_scale(double norm, double max_norm);

/* ------------------------------------------------------------ schedules */

typedef enum { LR_CONSTANT, LR_COSINE, LR_STEP, LR_EXPONENTIAL, LR_WARMUP } LrKind;

typedef struct {
  LrKind kind;
  double min;   /* cosine */
  double gamma; /* step, exponential */
  long every;   /* step: epochs */
  long steps;   /* warmup: optimizer steps */
} LrSchedule;

/* Parses the .vmx schedule text: "constant()", "cosine(min = 0)",
 * "step(every = 10, gamma = 0.5)", "exponential(gamma = 0.99)",
 * "warmup(steps = 1000)" (arguments by name, any order, spaces optional,
 * omitted ones defaulted as in the language; step needs every). */
int optim_schedule_parse(LrSchedule *s, const char *text, char *err, size_t errlen);

/* The learning rate of an update.  step: optimizer updates already made by
 * this optimizer step in the stage (0 for the first); epoch: completed
 * epochs of the stage (0 in the first); total: the number of updates the
 * stage will make (cosine's length; <= 0 means unknown: base_lr).
 *   constant     base
 *   cosine       min + (base - min) * (1 + cos(pi * min(step, total) / total)) / 2
 *   step         base * gamma^floor(epoch / every)
 *   exponential  base * gamma^epoch
 *   warmup       base * min(1, (step + 1) / steps): the first update uses
 *                base / steps, update number `steps` and later use base */
double optim_lr(const LrSchedule *s, double base_lr, long step, long epoch, long total);

/* codebook = ema(...): the .vmx's text "ema(decay=0.99,eps=1e-05)" into
 * decay in (0, 1) and eps > 0; -1 when malformed. */
int optim_ema_parse(const char *text, double *decay, double *eps);

/* One moving-average update of codebook e [K, D] from a batch's
 * assignments, as Sonnet's VectorQuantizerEMA (van den Oord et al. 2017,
 * appendix): count[k] positions took code k and sum[k] [D] is the sum of
 * their z; N [K] and m [K, D] are the averages, from zero, debiased by
 * 1 - decay^t (t: this update's number, from 1); N is Laplace-smoothed by
 * eps and e_k = m_k / N_k.  A code no batch has taken stays at the origin. */
void optim_ema_codebook(float *e, float *N, float *m, const float *count, const float *sum, long K, long D,
                        double decay, double eps, long t);

#endif
