/*
** Analyses of the matrix-state linear systems that use their structure
** instead of expanding it (DESIGN.md: dense LAPACK is the fallback, not the
** default).
**
** sl_op_dlr_eigvals: eigenvalues of an SL_OP_DLR operator. Each block
** M_b = diag(d_b) - c_b w_b w_b^T is symmetric, so its bm eigenvalues are
** real; the full operator (each block (x) I_kp) has each of them kp times.
**   - constant d (linear attention, RetNet, DeltaNet, gated DeltaNet, mLSTM):
**     closed form, d with multiplicity bm - 1 and d - c ||w||^2 (the
**     eigenvector w); for I - beta k k^T that is 1 (bm - 1 times) and
**     1 - beta ||k||^2;
**   - no rank-1 part (GLA): the entries of d;
**   - otherwise: LAPACK dsyev on the bm x bm block, never the (bm kp)^2
**     expansion.
** ev receives nb * bm values, block by block, ascending within a block.
**
** sl_implicit_attention: the attention matrix a matrix-state layer computes
** implicitly. For head h, y_t = sum_{s<=t} M_{t,s} u_s (u_s the head's
** linear-system input, the values) with
**     M_{t,s} = c_t^T A_t A_{t-1} ... A_{s+1} b_s
** where b_s, c_t are the head's key-side factors of B_s = b_s (x) I and
** C_t = c_t^T (x) I, and the A are the head's DLR blocks, all from the
** layer's linear system along the trajectory of u_seq from a zero carry.
** For the softmax-free families this is exact: M V reproduces the heads'
** output before the output norm (for mLSTM: the numerator and, against a
** column of ones, the normaliser q.n, before the division).
*/
#ifndef SL_MATSYS_H
#define SL_MATSYS_H

#include <stdint.h>

#include "err.h"
#include "layer.h"
#include "linsys.h"

int sl_op_dlr_eigvals(const sl_op *op, double *ev, sl_err *err);

/* u_seq [T, L->n_in] (the layer inputs); M [T, T] row-major (zeros above the
** diagonal). The layer's linear system must be DLR / BLOCKS shaped (the
** matrix-state families); head in [0, nb). */
int sl_implicit_attention(const sl_layer *L, const double *u_seq, int64_t T, int head, double *M, sl_err *err);

#endif
