/*
** The model file container: safetensors.
**
**   [8-byte little-endian header length N][N bytes of JSON][tensor data]
**
** The JSON object maps each tensor name to {"dtype", "shape", "data_offsets":
** [begin, end]} (offsets relative to the data area) and may hold
** "__metadata__", an object of strings. seqlab's own keys there are
** "seqlab.family" and "seqlab.config" (a JSON object as a string).
**
** Reading maps the file read-only and validates everything before any tensor
** is touched (see sl_stfile_open). Writing produces what Python's safetensors
** library loads: header padded with spaces to a multiple of 8, tensors packed
** in the order given, written to a temporary file and renamed.
*/
#ifndef SL_SAFETENSORS_H
#define SL_SAFETENSORS_H

#include <jansson.h>
#include <stdint.h>

#include "dtype.h"
#include "err.h"

#define SL_MAX_DIMS 8
/* Header lengths above this are refused (the reference library's limit). */
#define SL_ST_MAX_HEADER (100u * 1000u * 1000u)

typedef struct sl_st_entry {
    char    *name;
    sl_dtype dtype;
    int      ndim;
    int64_t  shape[SL_MAX_DIMS];
    int64_t  numel;
    uint64_t begin, end;          /* byte offsets inside the data area */
} sl_st_entry;

typedef struct sl_stfile {
    char          *path;
    const uint8_t *map;           /* whole file, mapped read-only */
    size_t         size;
    const uint8_t *data;          /* start of the data area */
    size_t         data_size;
    size_t         n;             /* entries, in header order */
    sl_st_entry   *entries;
    json_t        *metadata;      /* object of strings; never NULL once open */
} sl_stfile;

/* Map and validate path. Checks: file at least 8 bytes; header length at most
** SL_ST_MAX_HEADER and inside the file; header is JSON (no duplicate keys) and
** an object; each entry has a known dtype (F32, F64, F16, BF16; any other is
** named in the error), a shape of non-negative integers whose product (and
** product times the element size) does not overflow 64 bits, and two integer
** data_offsets with begin <= end and end - begin = numel * size; sorted by
** begin the entries tile the data area exactly (no overlap, no hole) and the
** data area ends at the end of the file; __metadata__ is an object of strings.
** On success *out owns the mapping; free with sl_stfile_close. */
int sl_stfile_open(const char *path, sl_stfile **out, sl_err *err);

/* Validate an in-memory image (not copied; must outlive the result). The
** result's map is not unmapped by sl_stfile_close. For tests and fuzzing. */
int sl_stfile_parse(const uint8_t *buf, size_t size, const char *label, sl_stfile **out, sl_err *err);

void sl_stfile_close(sl_stfile *f);

/* Entry by name, or NULL. */
const sl_st_entry *sl_stfile_find(const sl_stfile *f, const char *name);

/* Metadata string by key, or NULL. Borrowed from f. */
const char *sl_stfile_meta(const sl_stfile *f, const char *key);

/* Copy entry e's values, converted to float, into out[e->numel]. */
void sl_stfile_read_f32(const sl_stfile *f, const sl_st_entry *e, float *out);
/* Copy entry e's values, converted to double (exact for every dtype), into out[e->numel]. */
void sl_stfile_read_f64(const sl_stfile *f, const sl_st_entry *e, double *out);

/* One tensor to write: numel(shape) elements of dtype at data (little-endian,
** any alignment). Nothing is owned. */
typedef struct sl_st_tensor {
    const char    *name;
    sl_dtype       dtype;
    int            ndim;
    const int64_t *shape;
    const void    *data;
} sl_st_tensor;

/* Write n tensors and an optional metadata object (values must be strings)
** to path atomically. Names must be unique. */
int sl_st_write(const char *path, const sl_st_tensor *ts, size_t n, const json_t *metadata, sl_err *err);

#endif
