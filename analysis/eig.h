/*
** Eigenvalues of a structured operator (sl_op), structure first (DESIGN.md):
**
**   DIAG     the entries;
**   CDIAG    each complex entry and its conjugate (the real 2n realisation);
**   BLOCKS   per block (LAPACK dgeev on bm x bm), a shared block solved once;
**            1x1 and triangular blocks read directly (HiPPO's LegS is lower
**            triangular and so far from normal that dgeev's rounding would
**            scatter its real eigenvalues into the complex plane);
**   DLR      M = diag(d) - c w w^T per block: constant d in closed form
**            (d with multiplicity bm - 1 and d - c|w|^2), pure diagonal read
**            off, otherwise the symmetric bm x bm block through LAPACK dsyev;
**   DENSE    triangular read off the diagonal, else LAPACK dgeev.
**
** Repeats that the structure implies (the value side kp of a Kronecker
** operator, blocks shared by all channels, closed-form multiplicities) are
** listed once with a multiplicity, so a DeltaNet head's d_k*d_v eigenvalues are
** two rows, not thousands. The multiplicities always sum to A's dimension.
*/
#ifndef SL_EIG_H
#define SL_EIG_H

#include <stdint.h>

#include "err.h"
#include "linsys.h"

typedef struct sl_eig {
    int64_t  n;          /* rows listed */
    double  *re, *im;
    int64_t *mult;       /* multiplicity of each row */
    int64_t *block;      /* block (channel/head) each row belongs to; -1 when shared by all */
    /* Right eigenvectors when asked, one per row, in the operator's own block
    ** coordinates: dim entries each (dim = A's size for DENSE, the block size bm
    ** for BLOCKS/DLR, 1 for DIAG, 2 for CDIAG), complex (vr + i vi). */
    int64_t  dim;
    double  *vr, *vi;
} sl_eig;

/* Eigenvalues (and eigenvectors when want_vectors) of the square operator A.
** out is overwritten; free with sl_eig_free. */
int  sl_op_eig(const sl_op *A, int want_vectors, sl_eig *out, sl_err *err);
void sl_eig_free(sl_eig *e);

/* Eigenvalues of a dense row-major n x n matrix through LAPACK dgeev (a is
** not modified). re, im have n entries. For tests and the DENSE path. */
int  sl_dense_eigvals(const double *a, int64_t n, double *re, double *im, sl_err *err);

#endif
