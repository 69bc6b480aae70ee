/*
** Named float32 tensors: the parameters of a model, in memory.
**
** An sl_tensors set owns its tensors. Tensors loaded from a file live in one
** arena allocation (llm.c's "one allocation per model"); tensors added later
** (seqlab init, training) own their own buffer. Either way sl_tensors_free
** releases everything. Each tensor remembers the dtype it had on file.
*/
#ifndef SL_TENSOR_H
#define SL_TENSOR_H

#include <jansson.h>
#include <stdint.h>
#include <stddef.h>

#include "dtype.h"
#include "err.h"
#include "safetensors.h"

typedef struct sl_tensor {
    char    *name;
    sl_dtype dtype;                 /* dtype on file (data is always float) */
    int      ndim;
    int64_t  shape[SL_MAX_DIMS];
    int64_t  numel;
    float   *data;
    int      owned;                 /* data is a separate malloc (not the arena) */
} sl_tensor;

typedef struct sl_tensors {
    size_t     n, cap;
    sl_tensor *t;                   /* in file (or insertion) order */
    float    **arenas;              /* data of loaded tensors, one block per loaded file */
    size_t     n_arenas;
} sl_tensors;

sl_tensors *sl_tensors_new(void);
void sl_tensors_free(sl_tensors *ts);

/* Add a tensor named name with the given shape; data (numel floats) is copied,
** or the tensor is zeroed when data is NULL. *out (optional) points at the new
** tensor, valid until the next add. Errors on a duplicate name. */
int sl_tensors_add(sl_tensors *ts, const char *name, int ndim, const int64_t *shape, const float *data,
                   sl_tensor **out, sl_err *err);

/* Tensor by exact name, or NULL. */
sl_tensor *sl_tensors_find(const sl_tensors *ts, const char *name);
/* Tensor whose name ends with suffix (after a '.' or at the start): exactly one
** match is returned; none or several give NULL (*count says how many). A
** training checkpoint's optimiser state (names starting "optim.") matches only
** a suffix that itself starts with "optim.". */
sl_tensor *sl_tensors_find_suffix(const sl_tensors *ts, const char *suffix, int *count);

/* Load every entry of f (converted to float) into ts, in one new arena.
** Names already in ts are an error. */
int sl_tensors_load(sl_tensors *ts, const sl_stfile *f, sl_err *err);

/* Total number of elements. */
int64_t sl_tensors_numel(const sl_tensors *ts);

/* Write all tensors as F32 with metadata (object of strings, may be NULL). */
int sl_tensors_save(const sl_tensors *ts, const char *path, const json_t *metadata, sl_err *err);

/* Check that t exists with exactly the given shape; message names both. */
int sl_tensor_expect(const sl_tensor *t, const char *name, int ndim, const int64_t *shape, sl_err *err);

/* "[3,4]" into buf. */
const char *sl_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

#endif
