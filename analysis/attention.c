/*
** The implicit attention of matrix-state layers: see attention.h. Built
** from the per-step factors of the structured linear system, head by head,
** so nothing of size (d_k d_v)^2 ever exists.
*/
#include "attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int sl_implicit_attention(const sl_layer *L, const double *u_seq, int64_t T, int head, double *M, sl_err *err)
{
    const int64_t nc = L->n_carry;
    double *carry = calloc((size_t)nc, sizeof *carry), *next = malloc((size_t)nc * sizeof *next);
    double *fac = NULL;   /* per step: d [m], w [m], c, b [m], q [m] */
    int64_t m = 0;
    int rc = (!carry || !next) ? sl_err_set(err, SL_ENOMEM, "out of memory") : SL_OK;
    for (int64_t t = 0; t < T && !rc; t++) {
        sl_linsys ls;
        sl_linsys_init(&ls);
        if ((rc = sl_layer_linsys(L, carry, u_seq + t * L->n_in, SL_LS_A | SL_LS_B | SL_LS_C, &ls, err))) break;
        if (ls.A.kind != SL_OP_DLR || ls.B.kind != SL_OP_BLOCKS || ls.C.kind != SL_OP_BLOCKS || ls.B.bn != 1 ||
            ls.C.bm != 1 || head < 0 || head >= ls.A.nb) {
            sl_linsys_free(&ls);
            rc = sl_err_set(err, SL_EUNSUP, "implicit attention: layer %d (%s) has no per-head key-side system%s",
                            L->index, L->kind, head < 0 ? "" : " (or no such head)");
            break;
        }
        if (!fac) {
            m = ls.A.bm;
            if (!(fac = calloc((size_t)(T * (4 * m + 1)), sizeof *fac))) {
                sl_linsys_free(&ls);
                rc = sl_err_set(err, SL_ENOMEM, "out of memory");
                break;
            }
        }
        double *f = fac + t * (4 * m + 1);
        memcpy(f, ls.A.d + head * m, (size_t)m * sizeof *f);
        if (ls.A.w) memcpy(f + m, ls.A.w + head * m, (size_t)m * sizeof *f);
        f[2 * m] = ls.A.w ? ls.A.c[head] : 0.0;
        memcpy(f + 2 * m + 1, sl_op_block(&ls.B, head), (size_t)m * sizeof *f);
        memcpy(f + 3 * m + 1, sl_op_block(&ls.C, head), (size_t)m * sizeof *f);
        sl_linsys_free(&ls);
        if ((rc = sl_layer_step(L, carry, u_seq + t * L->n_in, next, NULL, err))) break;
        memcpy(carry, next, (size_t)nc * sizeof *carry);
    }
    double *x = rc ? NULL : malloc((size_t)(m ? m : 1) * sizeof *x);
    if (!rc && !x) rc = sl_err_set(err, SL_ENOMEM, "out of memory");
    if (!rc) {
        memset(M, 0, (size_t)(T * T) * sizeof *M);
        /* Column s: x = b_s, then x <- A_t x for t > s; M[t, s] = c_t . x. */
        for (int64_t s = 0; s < T; s++) {
            memcpy(x, fac + s * (4 * m + 1) + 2 * m + 1, (size_t)m * sizeof *x);
            for (int64_t t = s; t < T; t++) {
                const double *f = fac + t * (4 * m + 1);
                if (t > s) {
                    double wx = 0;
                    for (int64_t i = 0; i < m; i++) wx += f[m + i] * x[i];
                    for (int64_t i = 0; i < m; i++) x[i] = f[i] * x[i] - f[2 * m] * f[m + i] * wx;
                }
                double y = 0;
                for (int64_t i = 0; i < m; i++) y += f[3 * m + 1 + i] * x[i];
                M[t * T + s] = y;
            }
        }
    }
    free(x);
    free(fac);
    free(carry);
    free(next);
    return rc;
}
