/*
** Layer interface wrappers: see layer.h. They check that a family implements
** what is asked and add the layer's position to errors.
*/
#include "layer.h"

#include <stdlib.h>
#include <string.h>

int sl_layer_forward(const sl_layer *L, const sl_fwd *f, sl_err *err)
{
    if (!L->ops->forward) return sl_err_set(err, SL_EUNSUP, "layer %d (%s): no forward pass", L->index, L->kind);
    if (f->B < 0 || f->T < 0) return sl_err_set(err, SL_EINVAL, "negative batch or length");
    int rc;
    if (f->device != SL_DEVICE_CPU) {
        /* Build, then family, then device: the first missing one is the reason. */
        if (!sl_device_built(f->device)) return sl_device_check(f->device, err);
        if (!(L->flags & SL_LAYER_CUDA))
            return sl_err_set(err, SL_EUNSUP, "layer %d (%s): the %s family has no CUDA path (use --device cpu)",
                              L->index, L->kind, L->kind);
        if ((rc = sl_device_check(f->device, err))) return rc;
    }
    rc = L->ops->forward(L, f, err);
    if (rc) sl_err_prefix(err, "layer %d (%s)", L->index, L->kind);
    return rc;
}

int sl_layer_step(const sl_layer *L, const double *carry, const double *u, double *carry_next, double *y,
                  sl_err *err)
{
    if (!L->ops->step) return sl_err_set(err, SL_EUNSUP, "layer %d (%s): no reference step", L->index, L->kind);
    int rc = L->ops->step(L, carry, u, carry_next, y, err);
    if (rc) sl_err_prefix(err, "layer %d (%s)", L->index, L->kind);
    return rc;
}

/* e = next - A x - B u, from the reference step. */
static int linsys_offset(const sl_layer *L, const double *carry, const double *u, sl_linsys *ls, sl_err *err)
{
    double *next = malloc((size_t)L->n_carry * sizeof *next), *ax = malloc((size_t)ls->n_state * sizeof *ax);
    ls->e = calloc((size_t)(ls->n_state ? ls->n_state : 1), sizeof *ls->e);
    int rc = (!next || !ax || !ls->e) ? sl_err_set(err, SL_ENOMEM, "out of memory") : SL_OK;
    if (!rc) rc = sl_layer_step(L, carry, u, next, NULL, err);
    if (!rc) {
        sl_op_apply(&ls->A, carry, ax);
        for (int64_t i = 0; i < ls->n_state; i++) ls->e[i] = next[i] - ax[i];
        sl_op_apply(&ls->B, ls->u, ax);
        for (int64_t i = 0; i < ls->n_state; i++) ls->e[i] -= ax[i];
    }
    free(next);
    free(ax);
    return rc;
}

int sl_layer_linsys(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                    sl_err *err)
{
    if (!L->ops->linsys) return sl_err_set(err, SL_EUNSUP, "layer %d (%s): no linear system", L->index, L->kind);
    if (what & SL_LS_E) what |= SL_LS_A | SL_LS_B;
    int rc = L->ops->linsys(L, carry, u, what, ls, err);
    if (!rc && (what & SL_LS_E)) rc = linsys_offset(L, carry, u, ls, err);
    if (rc) {
        sl_linsys_free(ls);
        sl_err_prefix(err, "layer %d (%s)", L->index, L->kind);
    }
    return rc;
}

void sl_layer_free(sl_layer *L)
{
    if (!L) return;
    if (L->ops && L->ops->free) L->ops->free(L);
    free(L);
}

void sl_layer_add_block(sl_layer *L, const char *name, int64_t offset, int ndim, const int64_t *shape)
{
    if (L->n_blocks >= SL_MAX_BLOCKS) return;
    sl_state_block *b = &L->blocks[L->n_blocks++];
    b->name = name;
    b->offset = offset;
    b->ndim = ndim;
    b->size = 1;
    for (int d = 0; d < ndim && d < 4; d++) {
        b->shape[d] = shape[d];
        b->size *= shape[d];
    }
}
