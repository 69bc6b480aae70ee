/*
** The implicit attention of matrix-state layers, from their structured
** linear systems (never expanded). Eigenvalues of these systems come from
** sl_op_eig (analysis/eig.h), which reads DLR blocks in closed form.
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
#ifndef SL_ATTENTION_H
#define SL_ATTENTION_H

#include <stdint.h>

#include "err.h"
#include "layer.h"
#include "linsys.h"

/* u_seq [T, L->n_in] (the layer inputs); M [T, T] row-major (zeros above the
** diagonal). The layer's linear system must be DLR / BLOCKS shaped (the
** matrix-state families); head in [0, nb). */
int sl_implicit_attention(const sl_layer *L, const double *u_seq, int64_t T, int head, double *M, sl_err *err);

#endif
