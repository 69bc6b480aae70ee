/*
** Structure-first eigenvalues: see eig.h. LAPACK is the fallback, reached only
** for dense matrices and for genuinely dense blocks.
*/
#include "eig.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

void sl_eig_free(sl_eig *e)
{
    free(e->re);
    free(e->im);
    free(e->mult);
    free(e->block);
    free(e->vr);
    free(e->vi);
    memset(e, 0, sizeof *e);
}

static int eig_alloc(sl_eig *e, int64_t n, int64_t dim, int vectors, sl_err *err)
{
    memset(e, 0, sizeof *e);
    size_t m = (size_t)(n > 0 ? n : 1);
    e->re = calloc(m, sizeof *e->re);
    e->im = calloc(m, sizeof *e->im);
    e->mult = calloc(m, sizeof *e->mult);
    e->block = calloc(m, sizeof *e->block);
    e->dim = dim;
    if (vectors) {
        size_t nv;
        if (sl_mul_size(m, (size_t)(dim > 0 ? dim : 1), &nv)) return sl_err_set(err, SL_ENOMEM, "eigenvectors too large");
        e->vr = calloc(nv, sizeof *e->vr);
        e->vi = calloc(nv, sizeof *e->vi);
    }
    if (!e->re || !e->im || !e->mult || !e->block || (vectors && (!e->vr || !e->vi))) {
        sl_eig_free(e);
        return sl_err_set(err, SL_ENOMEM, "out of memory for %lld eigenvalues", (long long)n);
    }
    return SL_OK;
}

/* dgeev on an n x n row-major matrix; vectors (n x n, column k = vector k,
** LAPACK's packed real form) into vr_out when not NULL. */
static int geev(const double *a, int64_t n, double *re, double *im, double *vr_out, sl_err *err)
{
    double *w = malloc((size_t)(n * n) * sizeof *w);
    double *vr = vr_out ? malloc((size_t)(n * n) * sizeof *vr) : NULL;
    if (!w || (vr_out && !vr)) { free(w); free(vr); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    memcpy(w, a, (size_t)(n * n) * sizeof *w);
    for (int64_t i = 0; i < n * n; i++)
        if (!isfinite(w[i])) {
            free(w); free(vr);
            return sl_err_set(err, SL_ENUMERIC, "matrix has a non-finite entry at (%lld, %lld)", (long long)(i / n),
                              (long long)(i % n));
        }
    /* A large dense problem may use every thread inside LAPACK. */
    const int par = n >= 256 ? sl_blas_threads_begin() : 0;
    /* Without vectors the row-major matrix is handed over as column-major, that
    ** is as its transpose, which has the same eigenvalues: LAPACKE then skips
    ** its transposed copy (n^2 doubles written and read, ~1% of a 2048 x 2048
    ** problem). Right vectors need the matrix itself. */
    lapack_int info = LAPACKE_dgeev(vr_out ? LAPACK_ROW_MAJOR : LAPACK_COL_MAJOR, 'N', vr_out ? 'V' : 'N',
                                    (lapack_int)n, w, (lapack_int)n, re, im, NULL, 1, vr, (lapack_int)n);
    sl_blas_threads_end(par);
    free(w);
    if (info != 0) {
        free(vr);
        return sl_err_set(err, SL_ENUMERIC, "LAPACK dgeev failed (info %d)", (int)info);
    }
    if (vr_out) {
        memcpy(vr_out, vr, (size_t)(n * n) * sizeof *vr);
        free(vr);
    }
    return SL_OK;
}

int sl_dense_eigvals(const double *a, int64_t n, double *re, double *im, sl_err *err)
{
    return geev(a, n, re, im, NULL, err);
}

/* Unpack LAPACK's real-form eigenvectors (column k, pairs for complex) into
** complex row vectors of length n. */
static void unpack_vectors(const double *vr, int64_t n, const double *im, double *outr, double *outi)
{
    for (int64_t k = 0; k < n; k++) {
        if (im[k] != 0.0 && k + 1 < n && im[k] == -im[k + 1]) {
            for (int64_t i = 0; i < n; i++) {
                outr[k * n + i] = vr[i * n + k];
                outi[k * n + i] = vr[i * n + k + 1];
                outr[(k + 1) * n + i] = vr[i * n + k];
                outi[(k + 1) * n + i] = -vr[i * n + k + 1];
            }
            k++;
        } else {
            for (int64_t i = 0; i < n; i++) {
                outr[k * n + i] = vr[i * n + k];
                outi[k * n + i] = 0.0;
            }
        }
    }
}

/* 1 when the n x n matrix is triangular (exact zeros on one side): its
** eigenvalues are its diagonal. HiPPO's LegS and LegT and their bilinear and
** ZOH discretisations are; they are also so far from normal that dgeev's
** rounding errors scatter their real eigenvalues into complex loops. */
static int triangular(const double *M, int64_t n)
{
    int upper_zero = 1, lower_zero = 1;
    for (int64_t i = 0; i < n && (upper_zero || lower_zero); i++)
        for (int64_t j = 0; j < n; j++) {
            if (j > i && M[i * n + j] != 0.0) upper_zero = 0;
            if (j < i && M[i * n + j] != 0.0) lower_zero = 0;
        }
    return upper_zero || lower_zero;
}

static int eig_dense(const sl_op *A, int vectors, sl_eig *e, sl_err *err)
{
    const int64_t n = A->rows;
    int rc = eig_alloc(e, n, n, vectors, err);
    if (rc) return rc;
    if (!vectors && triangular(A->a, n)) {
        for (int64_t i = 0; i < n; i++) {
            e->re[i] = A->a[i * n + i];
            e->mult[i] = 1;
            e->block[i] = -1;
        }
        e->n = n;
        return SL_OK;
    }
    double *vr = vectors ? malloc((size_t)(n * n) * sizeof *vr) : NULL;
    if (vectors && !vr) { sl_eig_free(e); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    rc = geev(A->a, n, e->re, e->im, vr, err);
    if (!rc && vectors) unpack_vectors(vr, n, e->im, e->vr, e->vi);
    free(vr);
    if (rc) { sl_eig_free(e); return rc; }
    e->n = n;
    for (int64_t i = 0; i < n; i++) { e->mult[i] = 1; e->block[i] = -1; }
    return SL_OK;
}

static int eig_blocks(const sl_op *A, int vectors, sl_eig *e, sl_err *err)
{
    const int64_t bm = A->bm, nsolve = A->shared ? 1 : A->nb;
    int rc = eig_alloc(e, nsolve * bm, bm, vectors, err);
    if (rc) return rc;
    double *vr = vectors ? malloc((size_t)(bm * bm) * sizeof *vr) : NULL;
    if (vectors && !vr) { sl_eig_free(e); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    for (int64_t b = 0; b < nsolve && !rc; b++) {
        const double *M = sl_op_block(A, b);
        double *re = e->re + b * bm, *im = e->im + b * bm;
        if (bm == 1) {
            re[0] = M[0];
            im[0] = 0.0;
            if (vectors) { e->vr[b] = 1.0; e->vi[b] = 0.0; }
        } else if (!vectors && triangular(M, bm)) {
            for (int64_t i = 0; i < bm; i++) { re[i] = M[i * bm + i]; im[i] = 0.0; }
        } else {
            rc = geev(M, bm, re, im, vr, err);
            if (!rc && vectors) unpack_vectors(vr, bm, im, e->vr + b * bm * bm, e->vi + b * bm * bm);
        }
        for (int64_t i = 0; i < bm; i++) {
            e->mult[b * bm + i] = A->kp * (A->shared ? A->nb : 1);
            e->block[b * bm + i] = A->shared ? -1 : b;
        }
    }
    free(vr);
    if (rc) { sl_eig_free(e); return rc; }
    e->n = nsolve * bm;
    return SL_OK;
}

static int eig_dlr(const sl_op *A, int vectors, sl_eig *e, sl_err *err)
{
    const int64_t m = A->bm, nb = A->nb, kp = A->kp;
    int rc = eig_alloc(e, nb * m, m, vectors, err);
    if (rc) return rc;
    double *blk = malloc((size_t)(m * m) * sizeof *blk), *wv = malloc((size_t)m * sizeof *wv);
    if (!blk || !wv) { free(blk); free(wv); sl_eig_free(e); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    int64_t n = 0;
    for (int64_t b = 0; b < nb && !rc; b++) {
        const double *d = A->d + b * m, *w = A->w ? A->w + b * m : NULL;
        const double c = A->c[b];
        int constd = 1;
        for (int64_t i = 1; i < m; i++) constd &= d[i] == d[0];
        const int rank1 = w && c != 0.0;
        if (!rank1) {
            /* Pure diagonal: the gate entries, unit eigenvectors. */
            for (int64_t i = 0; i < m; i++, n++) {
                e->re[n] = d[i];
                e->mult[n] = kp;
                e->block[n] = b;
                if (vectors) e->vr[n * m + i] = 1.0;
            }
        } else if (constd && !vectors) {
            /* d I - c w w^T: d on w's orthogonal complement (m - 1 times), and
            ** d - c |w|^2 along w. */
            double ww = 0;
            for (int64_t i = 0; i < m; i++) ww += w[i] * w[i];
            e->re[n] = d[0] - c * ww;
            e->mult[n] = kp;
            e->block[n++] = b;
            if (m > 1) {
                e->re[n] = d[0];
                e->mult[n] = (m - 1) * kp;
                e->block[n++] = b;
            }
        } else {
            /* General (or eigenvectors wanted): the symmetric block through dsyev. */
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < m; j++) blk[i * m + j] = (i == j ? d[i] : 0.0) - c * w[i] * w[j];
            lapack_int info = LAPACKE_dsyev(LAPACK_ROW_MAJOR, vectors ? 'V' : 'N', 'U', (lapack_int)m, blk,
                                            (lapack_int)m, wv);
            if (info != 0) { rc = sl_err_set(err, SL_ENUMERIC, "LAPACK dsyev failed (info %d)", (int)info); break; }
            for (int64_t k = 0; k < m; k++, n++) {
                e->re[n] = wv[k];
                e->mult[n] = kp;
                e->block[n] = b;
                if (vectors)
                    for (int64_t i = 0; i < m; i++) e->vr[n * m + i] = blk[i * m + k];
            }
        }
    }
    free(blk);
    free(wv);
    if (rc) { sl_eig_free(e); return rc; }
    e->n = n;
    return SL_OK;
}

int sl_op_eig(const sl_op *A, int want_vectors, sl_eig *e, sl_err *err)
{
    memset(e, 0, sizeof *e);
    if (A->rows != A->cols) return sl_err_set(err, SL_EINVAL, "eigenvalues of a non-square operator (%lld x %lld)",
                                              (long long)A->rows, (long long)A->cols);
    const int64_t n = A->rows;
    int rc;
    switch (A->kind) {
    case SL_OP_DENSE:
        return eig_dense(A, want_vectors, e, err);
    case SL_OP_DIAG:
        if ((rc = eig_alloc(e, n, 1, want_vectors, err))) return rc;
        for (int64_t i = 0; i < n; i++) {
            e->re[i] = A->a[i];
            e->mult[i] = 1;
            e->block[i] = i;
            if (want_vectors) e->vr[i] = 1.0;
        }
        e->n = n;
        return SL_OK;
    case SL_OP_CDIAG:
        if ((rc = eig_alloc(e, n, 2, want_vectors, err))) return rc;
        for (int64_t j = 0; j < n / 2; j++) {
            e->re[2 * j] = e->re[2 * j + 1] = A->a[2 * j];
            e->im[2 * j] = A->a[2 * j + 1];
            e->im[2 * j + 1] = -A->a[2 * j + 1];
            e->mult[2 * j] = e->mult[2 * j + 1] = 1;
            e->block[2 * j] = e->block[2 * j + 1] = j;
            if (want_vectors) {
                /* [1, -i] / sqrt2 for lambda = a + ib acting as [[a, -b], [b, a]]; conjugate for conj. */
                const double s = 1.0 / sqrt(2.0);
                e->vr[4 * j] = s; e->vi[4 * j + 1] = -s;
                e->vr[4 * j + 2] = s; e->vi[4 * j + 3] = s;
            }
        }
        e->n = n;
        return SL_OK;
    case SL_OP_BLOCKS:
        if (A->bm != A->bn) return sl_err_set(err, SL_EINVAL, "eigenvalues of non-square blocks");
        return eig_blocks(A, want_vectors, e, err);
    case SL_OP_DLR:
        return eig_dlr(A, want_vectors, e, err);
    case SL_OP_ZERO:
        if ((rc = eig_alloc(e, 1, 1, 0, err))) return rc;
        e->mult[0] = n;
        e->block[0] = -1;
        e->n = n > 0 ? 1 : 0;
        return SL_OK;
    default:
        return sl_err_set(err, SL_EINVAL, "no transition to take eigenvalues of (operator not computed)");
    }
}
