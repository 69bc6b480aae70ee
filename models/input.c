/*
** Input sequences: see input.h.
*/
#include "input.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int sl_input_load(const char *path, const char *name, sl_input *in, sl_err *err)
{
    memset(in, 0, sizeof *in);
    if (!name) name = "u";
    sl_stfile *f;
    int rc = sl_stfile_open(path, &f, err);
    if (rc) return rc;
    const sl_st_entry *e = sl_stfile_find(f, name);
    if (!e) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: no tensor named \"%s\" (an input file holds u [B, T, features])", path, name);
        goto done;
    }
    if (e->ndim != 2 && e->ndim != 3) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: tensor %s has %d dimensions, expected [B, T, features] or [T, features]",
                        path, name, e->ndim);
        goto done;
    }
    in->B = e->ndim == 3 ? e->shape[0] : 1;
    in->T = e->shape[e->ndim - 2];
    in->F = e->shape[e->ndim - 1];
    if (in->B == 0 || in->T == 0 || in->F == 0) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: tensor %s is empty", path, name);
        goto done;
    }
    in->u = malloc((size_t)e->numel * sizeof *in->u);
    if (!in->u) { rc = sl_err_set(err, SL_ENOMEM, "out of memory for %s", name); goto done; }
    sl_stfile_read_f32(f, e, in->u);
    for (int64_t i = 0; i < e->numel; i++) {
        if (!isfinite(in->u[i])) {
            int64_t b = i / (in->T * in->F), t = (i / in->F) % in->T, k = i % in->F;
            rc = sl_err_set(err, SL_EFORMAT, "%s: tensor %s has a non-finite value (%g) at [%lld, %lld, %lld]", path, name,
                            (double)in->u[i], (long long)b, (long long)t, (long long)k);
            goto done;
        }
    }
done:
    sl_stfile_close(f);
    if (rc) sl_input_free(in);
    return rc;
}

void sl_input_free(sl_input *in)
{
    free(in->u);
    memset(in, 0, sizeof *in);
}
