/* source.h - a model's data, found and loaded from its `from` clause.
 *
 * A .vmx data line keeps the source as written ("files("binarized-mnist",
 * train = "...", valid = 0.1, binarize = 127)" or "synthetic.four_frames(n =
 * 5000)").  The directory is --data, else ./DIR, else ../shared/data/DIR.
 * Each split is checked against the declared domain and shape; every error
 * names the file, the record and what was expected, and exits (util.h).
 *
 * binarize = "dynamic" (bit data from byte pixels) keeps the training
 * split's intensities in [0, 1] and draws a fresh binarization each epoch
 * (source_gather); valid and test are binarized once, from a fixed stream,
 * so that evaluations compare.
 *
 * Byte pixels stay bytes (Dataset.u8) through all of this, and so do float
 * values that are all 0 or 1: the data are most of vmrun's memory. */
#ifndef VML_SOURCE_H
#define VML_SOURCE_H

#include <stdint.h>

#include "data.h"
#include "vmx.h"

enum { SPLIT_TRAIN, SPLIT_VALID, SPLIT_TEST, SPLIT_COUNT };
extern const char *const split_names[SPLIT_COUNT];
int split_index(const char *name); /* -1 if not train, valid or test */

typedef struct {
  const VmxData *decl;
  Dataset split[SPLIT_COUNT];
  int have[SPLIT_COUNT];
  char file[SPLIT_COUNT][1024]; /* where each split came from, for errors */
  int dynamic;                  /* binarize = "dynamic": see above */
} DataItem;

/* Loads the splits asked for (want[k]) that exist (and the training split
 * when the validation split is a fraction of it).  dir_opt
 * is --data or NULL; seed makes synthetic sets and binarizations. */
void source_load(DataItem *it, const char *dir_opt, const int want[SPLIT_COUNT], uint64_t seed);

/* Examples idx[0..count) of split k into out (count * dim floats); `epoch`
 * picks the dynamic binarization of the training split. */
void source_gather(const DataItem *it, int k, const long *idx, long count, uint64_t seed, uint64_t epoch,
                   float *out);

/* Labels for split k (1 when it has them): synthetic sets come with
 * theirs; an IDX image file gets those of the label file next to it, the
 * name with images-idx3 replaced by labels-idx1
 * (t10k-images-idx3-ubyte.gz: t10k-labels-idx1-ubyte.gz), when there is
 * one.  Exits on a malformed label file or a count that does not match. */
int source_labels(DataItem *it, int k);

/* Keeps n examples of split k (n < its size), spread evenly over it (example
 * i is the former i * size / n), in place: a file sorted by class still
 * gives every class. */
void source_spread(DataItem *it, int k, long n);

void source_free(DataItem *it);

#endif
