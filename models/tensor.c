/*
** Named float32 tensors: see tensor.h.
*/
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

sl_tensors *sl_tensors_new(void) { return calloc(1, sizeof(sl_tensors)); }

void sl_tensors_free(sl_tensors *ts)
{
    if (!ts) return;
    for (size_t i = 0; i < ts->n; i++) {
        free(ts->t[i].name);
        if (ts->t[i].owned) free(ts->t[i].data);
    }
    free(ts->t);
    for (size_t i = 0; i < ts->n_arenas; i++) free(ts->arenas[i]);
    free(ts->arenas);
    free(ts);
}

static int grow(sl_tensors *ts, sl_err *err)
{
    if (ts->n < ts->cap) return SL_OK;
    size_t cap = ts->cap ? 2 * ts->cap : 16;
    sl_tensor *t = realloc(ts->t, cap * sizeof *t);
    if (!t) return sl_err_set(err, SL_ENOMEM, "out of memory");
    ts->t = t;
    ts->cap = cap;
    return SL_OK;
}

sl_tensor *sl_tensors_find(const sl_tensors *ts, const char *name)
{
    for (size_t i = 0; i < ts->n; i++)
        if (strcmp(ts->t[i].name, name) == 0) return &ts->t[i];
    return NULL;
}

sl_tensor *sl_tensors_find_suffix(const sl_tensors *ts, const char *suffix, int *count)
{
    sl_tensor *hit = NULL;
    int c = 0;
    size_t ls = strlen(suffix);
    for (size_t i = 0; i < ts->n; i++) {
        const char *nm = ts->t[i].name;
        size_t ln = strlen(nm);
        if (ln < ls || strcmp(nm + ln - ls, suffix) != 0) continue;
        if (ln > ls && nm[ln - ls - 1] != '.') continue;
        if (strncmp(nm, "optim.", 6) == 0 && strncmp(suffix, "optim.", 6) != 0) continue;
        hit = &ts->t[i];
        c++;
    }
    if (count) *count = c;
    return c == 1 ? hit : NULL;
}

int sl_tensors_add(sl_tensors *ts, const char *name, int ndim, const int64_t *shape, const float *data,
                   sl_tensor **out, sl_err *err)
{
    if (ndim < 0 || ndim > SL_MAX_DIMS) return sl_err_set(err, SL_EINVAL, "tensor %s: bad rank %d", name, ndim);
    if (sl_tensors_find(ts, name)) return sl_err_set(err, SL_EINVAL, "duplicate tensor name %s", name);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || __builtin_mul_overflow(numel, shape[d], &numel))
            return sl_err_set(err, SL_EINVAL, "tensor %s: bad shape", name);
    }
    int rc = grow(ts, err);
    if (rc) return rc;
    sl_tensor *t = &ts->t[ts->n];
    memset(t, 0, sizeof *t);
    size_t bytes;
    if (sl_mul_size((size_t)numel, sizeof(float), &bytes)) return sl_err_set(err, SL_ENOMEM, "tensor %s too large", name);
    t->data = bytes ? malloc(bytes) : calloc(1, sizeof(float));
    t->name = sl_strdup(name);
    if (!t->data || !t->name) {
        free(t->data);
        free(t->name);
        return sl_err_set(err, SL_ENOMEM, "out of memory for tensor %s", name);
    }
    if (data) memcpy(t->data, data, bytes);
    else memset(t->data, 0, bytes);
    t->owned = 1;
    t->dtype = SL_DT_F32;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->numel = numel;
    ts->n++;
    if (out) *out = t;
    return SL_OK;
}

int sl_tensors_load(sl_tensors *ts, const sl_stfile *f, sl_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (sl_tensors_find(ts, f->entries[i].name))
            return sl_err_set(err, SL_EFORMAT, "tensor %s appears in more than one file", f->entries[i].name);
        total += (size_t)f->entries[i].numel;
    }
    size_t bytes;
    if (sl_mul_size(total ? total : 1, sizeof(float), &bytes)) return sl_err_set(err, SL_ENOMEM, "model too large");
    float **arenas = realloc(ts->arenas, (ts->n_arenas + 1) * sizeof *arenas);
    if (!arenas) return sl_err_set(err, SL_ENOMEM, "out of memory");
    ts->arenas = arenas;
    float *arena = malloc(bytes);
    if (!arena) return sl_err_set(err, SL_ENOMEM, "out of memory loading %zu parameters", total);
    ts->arenas[ts->n_arenas++] = arena;
    size_t pos = 0;
    for (size_t i = 0; i < f->n; i++) {
        const sl_st_entry *e = &f->entries[i];
        int rc = grow(ts, err);
        if (rc) return rc;
        sl_tensor *t = &ts->t[ts->n];
        memset(t, 0, sizeof *t);
        if (!(t->name = sl_strdup(e->name))) return sl_err_set(err, SL_ENOMEM, "out of memory");
        t->dtype = e->dtype;
        t->ndim = e->ndim;
        memcpy(t->shape, e->shape, sizeof t->shape);
        t->numel = e->numel;
        t->data = arena + pos;
        sl_stfile_read_f32(f, e, t->data);
        pos += (size_t)e->numel;
        ts->n++;
    }
    return SL_OK;
}

int64_t sl_tensors_numel(const sl_tensors *ts)
{
    int64_t n = 0;
    for (size_t i = 0; i < ts->n; i++) n += ts->t[i].numel;
    return n;
}

int sl_tensors_save(const sl_tensors *ts, const char *path, const json_t *metadata, sl_err *err)
{
    sl_st_tensor *w = calloc(ts->n ? ts->n : 1, sizeof *w);
    if (!w) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < ts->n; i++) {
        w[i].name = ts->t[i].name;
        w[i].dtype = SL_DT_F32;
        w[i].ndim = ts->t[i].ndim;
        w[i].shape = ts->t[i].shape;
        w[i].data = ts->t[i].data;
    }
    int rc = sl_st_write(path, w, ts->n, metadata, err);
    free(w);
    return rc;
}

const char *sl_shape_str(int ndim, const int64_t *shape, char *buf, size_t n)
{
    size_t pos = 0;
    pos += (size_t)snprintf(buf + pos, n - pos, "[");
    for (int d = 0; d < ndim && pos < n; d++)
        pos += (size_t)snprintf(buf + pos, n - pos, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (pos < n) snprintf(buf + pos, n - pos, "]");
    return buf;
}

int sl_tensor_expect(const sl_tensor *t, const char *name, int ndim, const int64_t *shape, sl_err *err)
{
    char a[128], b[128];
    if (!t) return sl_err_set(err, SL_EFORMAT, "tensor %s is missing (expected shape %s)", name,
                              sl_shape_str(ndim, shape, b, sizeof b));
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (!ok)
        return sl_err_set(err, SL_EFORMAT, "tensor %s has shape %s, expected %s", name,
                          sl_shape_str(t->ndim, t->shape, a, sizeof a), sl_shape_str(ndim, shape, b, sizeof b));
    return SL_OK;
}
