/* checkpoint.h - checkpoints as safetensors files, written atomically and
 * read with every offset checked.
 *
 * The format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON header
 *   {"__metadata__": {"key": "value", ...},
 *    "NAME": {"dtype": "F32", "shape": [d0, ...], "data_offsets": [begin, end]}, ...}
 * padded with spaces so that the data starts at a multiple of 8, then the
 * data section: the tensors' floats, little-endian, at their offsets
 * (relative to the data section; end - begin = 4 * prod(shape); the tensors
 * cover the section exactly, no overlap and no holes).  Python reads it with
 * safetensors.numpy/torch.load_file, or with the plain json + struct reader
 * of tests/python/check_safetensors.py.
 *
 * vmrun's layout: ONE file, so that a single rename replaces parameters and
 * training state together (two files could be caught half-updated):
 *   tensors    NAME                    every parameter, named as in the .vmx
 *              optim/GRAPH/NAME/m      optimizer state of step GRAPH
 *              optim/GRAPH/NAME/v      (ckpt_state_name; '/' never occurs
 *                                      in a .vmx name, so no clash)
 *   metadata   vml.checkpoint = "1", vml.vmx_hash = the .vmx hash line,
 *              vml.seed, vml.rng_step, vml.epoch (shuffles drawn),
 *              vml.position (in the current shuffle), vml.stage,
 *              vml.round and vml.stage_epoch (progress in that stage),
 *              vml.report (metrics lines written),
 *              vml.optim.GRAPH.t and vml.optim.GRAPH.stage_t = updates
 *              made by step GRAPH, and the options the run was started
 *              with, vml.run.batch|epochs|steps|lr|data (empty: the
 *              model's own); everything vmrun train --resume needs to
 *              continue bit-identically (the CKPT_KEY_* names below;
 *              numbers are decimal strings).
 * A loader that wants only the model takes the names without a '/'. */
#ifndef VML_CHECKPOINT_H
#define VML_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_MAX_RANK 8

#define CKPT_KEY_VERSION "vml.checkpoint"
#define CKPT_KEY_VMX_HASH "vml.vmx_hash"
#define CKPT_KEY_SEED "vml.seed"
#define CKPT_KEY_RNG_STEP "vml.rng_step"
#define CKPT_KEY_EPOCH "vml.epoch"
#define CKPT_KEY_POSITION "vml.position"
#define CKPT_KEY_STAGE "vml.stage"
#define CKPT_KEY_ROUND "vml.round"
#define CKPT_KEY_STAGE_EPOCH "vml.stage_epoch"
#define CKPT_KEY_REPORT "vml.report"
#define CKPT_STATE_PREFIX "optim/"

typedef struct {
  const char *name;
  int rank;
  long long shape[CKPT_MAX_RANK];
  float *data; /* prod(shape) floats (a scalar, rank 0, has one) */
} CkptTensor;

typedef struct {
  const char *key, *value;
} CkptMeta;

/* A checkpoint read into memory; everything is owned by it (ckpt_free). */
typedef struct {
  char *path;
  CkptTensor *tensors; /* in data-offset order */
  size_t ntensors;
  CkptMeta *meta;      /* in file order */
  size_t nmeta;
  void *block;         /* internal: the data section */
} Ckpt;

/* Writes nt tensors and nmeta metadata pairs to path, atomically: a
 * temporary file in the same directory, written, flushed and fsync'd, then
 * renamed over path, then the directory fsync'd.  On any failure the
 * temporary file is removed and path is left as it was; returns -1 with
 * "PATH: what failed" in err.  Tensor names must be unique, non-empty and
 * not "__metadata__"; metadata keys unique. */
int ckpt_write(const char *path, const CkptTensor *t, size_t nt, const CkptMeta *meta, size_t nmeta,
               char *err, size_t errlen);

/* Reads and validates a safetensors file: the header length, the header
 * JSON (strict: objects, arrays, strings, non-negative integers), each
 * tensor's dtype (F32 only), shape and data_offsets (inside the data
 * section, length = 4 * prod(shape), no overlaps, no holes).  Returns 0, or
 * -1 with "PATH: what was wrong" in err (c is then empty). */
int ckpt_read(const char *path, Ckpt *c, char *err, size_t errlen);

void ckpt_free(Ckpt *c);

/* Lookups: NULL when absent. */
const CkptTensor *ckpt_tensor(const Ckpt *c, const char *name);
const char *ckpt_meta(const Ckpt *c, const char *key);

/* Copies tensor `name` into dst after checking it exists with exactly this
 * shape; else -1 with "PATH: tensor 'q.W' has shape [784, 400], expected
 * [784, 500]" or "PATH: no tensor 'q.W'". */
int ckpt_load(const Ckpt *c, const char *name, const long long *shape, int rank, float *dst, char *err,
              size_t errlen);

/* A metadata value as an unsigned decimal integer (strict); -1 with an
 * error naming the file and key when absent or malformed. */
int ckpt_meta_u64(const Ckpt *c, const char *key, uint64_t *out, char *err, size_t errlen);

/* Checks vml.vmx_hash against the loaded .vmx's hash: -1 with "PATH was
 * written for a model with hash X; this .vmx has hash Y" otherwise. */
int ckpt_check_hash(const Ckpt *c, const char *vmx_hash, char *err, size_t errlen);

/* "optim/GRAPH/PARAM/WHICH" into buf (cap bytes); the length it needs
 * (as snprintf). */
int ckpt_state_name(char *buf, size_t cap, const char *graph, const char *param, const char *which);

#endif
