/*
** Structured linear operators and the linear system: see linsys.h.
**
** sl_op_apply and sl_op_to_dense are the definitions of what each structure
** means; tests compare every family's structured system, expanded here,
** against finite differences and against LAPACK.
*/
#include "linsys.h"

#include <stdlib.h>
#include <string.h>

void sl_linsys_init(sl_linsys *ls) { memset(ls, 0, sizeof *ls); }

void sl_op_free(sl_op *op)
{
    free(op->a);
    free(op->d);
    free(op->c);
    free(op->w);
    memset(op, 0, sizeof *op);
}

void sl_linsys_free(sl_linsys *ls)
{
    sl_op_free(&ls->A);
    sl_op_free(&ls->B);
    sl_op_free(&ls->C);
    sl_op_free(&ls->D);
    sl_op_free(&ls->A_ct);
    sl_op_free(&ls->B_ct);
    free(ls->u);
    free(ls->e);
    free(ls->dt);
    sl_linsys_init(ls);
}

static int op_alloc(double **p, int64_t n)
{
    *p = calloc(n > 0 ? (size_t)n : 1, sizeof(double));
    return *p ? SL_OK : SL_ENOMEM;
}

int sl_op_zero(sl_op *op, int64_t rows, int64_t cols)
{
    memset(op, 0, sizeof *op);
    op->kind = SL_OP_ZERO;
    op->rows = rows;
    op->cols = cols;
    return SL_OK;
}

int sl_op_dense(sl_op *op, int64_t rows, int64_t cols)
{
    memset(op, 0, sizeof *op);
    op->kind = SL_OP_DENSE;
    op->rows = rows;
    op->cols = cols;
    return op_alloc(&op->a, rows * cols);
}

int sl_op_diag(sl_op *op, int64_t n)
{
    memset(op, 0, sizeof *op);
    op->kind = SL_OP_DIAG;
    op->rows = op->cols = n;
    return op_alloc(&op->a, n);
}

int sl_op_cdiag(sl_op *op, int64_t n_complex)
{
    memset(op, 0, sizeof *op);
    op->kind = SL_OP_CDIAG;
    op->rows = op->cols = 2 * n_complex;
    return op_alloc(&op->a, 2 * n_complex);
}

int sl_op_blocks(sl_op *op, int64_t nb, int64_t bm, int64_t bn, int64_t kp, int shared)
{
    memset(op, 0, sizeof *op);
    op->kind = SL_OP_BLOCKS;
    op->nb = nb;
    op->bm = bm;
    op->bn = bn;
    op->kp = kp;
    op->shared = shared;
    op->rows = nb * bm * kp;
    op->cols = nb * bn * kp;
    return op_alloc(&op->a, (shared ? 1 : nb) * bm * bn);
}

int sl_op_dlr(sl_op *op, int64_t nb, int64_t bm, int64_t kp, int with_w)
{
    memset(op, 0, sizeof *op);
    op->kind = SL_OP_DLR;
    op->nb = nb;
    op->bm = op->bn = bm;
    op->kp = kp;
    op->rows = op->cols = nb * bm * kp;
    if (op_alloc(&op->d, nb * bm) || op_alloc(&op->c, nb) || (with_w && op_alloc(&op->w, nb * bm))) {
        sl_op_free(op);
        return SL_ENOMEM;
    }
    return SL_OK;
}

double *sl_op_block(const sl_op *op, int64_t b)
{
    return op->a + (op->shared ? 0 : b * op->bm * op->bn);
}

void sl_op_apply(const sl_op *op, const double *x, double *y)
{
    switch (op->kind) {
    case SL_OP_NONE:
    case SL_OP_ZERO:
        memset(y, 0, (size_t)op->rows * sizeof *y);
        break;
    case SL_OP_DENSE:
        for (int64_t i = 0; i < op->rows; i++) {
            const double *r = op->a + i * op->cols;
            double s = 0;
            for (int64_t j = 0; j < op->cols; j++) s += r[j] * x[j];
            y[i] = s;
        }
        break;
    case SL_OP_DIAG:
        for (int64_t i = 0; i < op->rows; i++) y[i] = op->a[i] * x[i];
        break;
    case SL_OP_CDIAG:
        for (int64_t j = 0; j < op->rows / 2; j++) {
            double ar = op->a[2 * j], ai = op->a[2 * j + 1], xr = x[2 * j], xi = x[2 * j + 1];
            y[2 * j] = ar * xr - ai * xi;
            y[2 * j + 1] = ar * xi + ai * xr;
        }
        break;
    case SL_OP_BLOCKS: {
        const int64_t kp = op->kp;
        for (int64_t b = 0; b < op->nb; b++) {
            const double *M = sl_op_block(op, b);
            const double *xb = x + b * op->bn * kp;
            double *yb = y + b * op->bm * kp;
            for (int64_t i = 0; i < op->bm; i++)
                for (int64_t p = 0; p < kp; p++) {
                    double s = 0;
                    for (int64_t j = 0; j < op->bn; j++) s += M[i * op->bn + j] * xb[j * kp + p];
                    yb[i * kp + p] = s;
                }
        }
        break;
    }
    case SL_OP_DLR: {
        const int64_t kp = op->kp, m = op->bm;
        for (int64_t b = 0; b < op->nb; b++) {
            const double *d = op->d + b * m, *w = op->w ? op->w + b * m : NULL;
            const double *xb = x + b * m * kp;
            double *yb = y + b * m * kp;
            for (int64_t i = 0; i < m; i++)
                for (int64_t p = 0; p < kp; p++) yb[i * kp + p] = d[i] * xb[i * kp + p];
            if (!w || op->c[b] == 0) continue;
            for (int64_t p = 0; p < kp; p++) {
                double s = 0;   /* w^T x[:, p] */
                for (int64_t j = 0; j < m; j++) s += w[j] * xb[j * kp + p];
                for (int64_t i = 0; i < m; i++) yb[i * kp + p] -= op->c[b] * w[i] * s;
            }
        }
        break;
    }
    }
}

void sl_op_to_dense(const sl_op *op, double *out)
{
    const int64_t R = op->rows, Cn = op->cols;
    memset(out, 0, (size_t)(R * Cn) * sizeof *out);
    switch (op->kind) {
    case SL_OP_NONE:
    case SL_OP_ZERO:
        break;
    case SL_OP_DENSE:
        memcpy(out, op->a, (size_t)(R * Cn) * sizeof *out);
        break;
    case SL_OP_DIAG:
        for (int64_t i = 0; i < R; i++) out[i * Cn + i] = op->a[i];
        break;
    case SL_OP_CDIAG:
        for (int64_t j = 0; j < R / 2; j++) {
            int64_t r = 2 * j;
            out[r * Cn + r] = op->a[2 * j];
            out[r * Cn + r + 1] = -op->a[2 * j + 1];
            out[(r + 1) * Cn + r] = op->a[2 * j + 1];
            out[(r + 1) * Cn + r + 1] = op->a[2 * j];
        }
        break;
    case SL_OP_BLOCKS:
        for (int64_t b = 0; b < op->nb; b++) {
            const double *M = sl_op_block(op, b);
            for (int64_t i = 0; i < op->bm; i++)
                for (int64_t j = 0; j < op->bn; j++)
                    for (int64_t p = 0; p < op->kp; p++) {
                        int64_t r = (b * op->bm + i) * op->kp + p, c = (b * op->bn + j) * op->kp + p;
                        out[r * Cn + c] = M[i * op->bn + j];
                    }
        }
        break;
    case SL_OP_DLR:
        for (int64_t b = 0; b < op->nb; b++) {
            const int64_t m = op->bm;
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < m; j++) {
                    double v = (i == j ? op->d[b * m + i] : 0.0);
                    if (op->w) v -= op->c[b] * op->w[b * m + i] * op->w[b * m + j];
                    for (int64_t p = 0; p < op->kp; p++) {
                        int64_t r = (b * m + i) * op->kp + p, c = (b * m + j) * op->kp + p;
                        out[r * Cn + c] = v;
                    }
                }
        }
        break;
    }
}

static int dup_array(double **dst, const double *src, int64_t n)
{
    *dst = NULL;
    if (!src) return SL_OK;
    if (op_alloc(dst, n)) return SL_ENOMEM;
    memcpy(*dst, src, (size_t)n * sizeof **dst);
    return SL_OK;
}

int sl_op_copy(sl_op *dst, const sl_op *src)
{
    *dst = *src;
    dst->a = dst->d = dst->c = dst->w = NULL;
    int64_t na = 0;
    switch (src->kind) {
    case SL_OP_DENSE: na = src->rows * src->cols; break;
    case SL_OP_DIAG:
    case SL_OP_CDIAG: na = src->rows; break;
    case SL_OP_BLOCKS: na = (src->shared ? 1 : src->nb) * src->bm * src->bn; break;
    default: break;
    }
    int rc = dup_array(&dst->a, src->a, na);
    if (!rc && src->kind == SL_OP_DLR) {
        rc = dup_array(&dst->d, src->d, src->nb * src->bm);
        if (!rc) rc = dup_array(&dst->c, src->c, src->nb);
        if (!rc) rc = dup_array(&dst->w, src->w, src->nb * src->bm);
    }
    if (rc) sl_op_free(dst);
    return rc;
}

const char *sl_op_kind_name(sl_op_kind k)
{
    switch (k) {
    case SL_OP_NONE: return "none";
    case SL_OP_ZERO: return "zero";
    case SL_OP_DENSE: return "dense";
    case SL_OP_DIAG: return "diag";
    case SL_OP_CDIAG: return "complex-diag";
    case SL_OP_BLOCKS: return "blocks";
    case SL_OP_DLR: return "diag-minus-rank-1";
    }
    return "?";
}
