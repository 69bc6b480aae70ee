/*
** The linear system of a layer at one step — seqlab's one idea (DESIGN.md):
**
**     x_t = A_t x_{t-1} + B_t u_t          y_t = C_t x_t + D_t u_t
**
** in double precision, with the structure of each operator kept so analyses
** can exploit it (the eigenvalues of a diagonal A are its entries, those of
** I - b k k^T are known in closed form, a block-diagonal A is solved per
** block). Nothing here is expanded to a dense matrix unless an analysis asks
** for it with sl_op_to_dense.
**
** Operator kinds (sl_op), all acting on real vectors:
**   DENSE   rows x cols, row-major.
**   DIAG    square, one entry per row.
**   CDIAG   square, rows = 2n: n complex entries a[2j] + i a[2j+1], each acting
**           on the interleaved (re, im) pair (x[2j], x[2j+1]) of a complex
**           state (S4D, LRU). Its eigenvalues are the n entries and their
**           conjugates (the real 2n-dimensional realisation).
**   BLOCKS  block diagonal: nb blocks M_b of bm x bn (one block when shared),
**           each Kronecker with I_kp: rows = nb*bm*kp, cols = nb*bn*kp. The
**           vector is laid out (block, row, p): index (b*bm + i)*kp + p. With
**           kp = 1 this is an ordinary block-diagonal matrix (LSSL channels,
**           Mamba's per-channel B and C); with kp = d_v it is a per-head
**           operator on the key side of a d_k x d_v matrix state stored
**           row-major (B_t = k_t (x) I, C_t = q_t^T (x) I of linear attention).
**   DLR     block diagonal of square blocks M_b = diag(d_b) - c_b w_b w_b^T
**           (bm x bm), each (x) I_kp, laid out as BLOCKS: the transition of every
**           matrix-state family (1 for linear attention, gamma for RetNet,
**           diag(alpha) for GLA, I - beta k k^T for DeltaNet, alpha(I - beta k
**           k^T) for gated DeltaNet). w may be NULL (pure diagonal).
**
** Ownership: an sl_linsys owns every array inside it; sl_linsys_free releases
** them. Operators are built with the sl_op_* constructors, which allocate
** zeroed storage.
*/
#ifndef SL_LINSYS_H
#define SL_LINSYS_H

#include <stdint.h>

#include "err.h"

typedef enum sl_op_kind {
    SL_OP_NONE = 0,   /* not computed (not requested, or not defined) */
    SL_OP_ZERO,
    SL_OP_DENSE,
    SL_OP_DIAG,
    SL_OP_CDIAG,
    SL_OP_BLOCKS,
    SL_OP_DLR
} sl_op_kind;

typedef struct sl_op {
    sl_op_kind kind;
    int64_t rows, cols;
    int64_t nb, bm, bn, kp;   /* BLOCKS, DLR (DLR: bn == bm) */
    int     shared;           /* BLOCKS: one block stands for all nb */
    double *a;                /* DENSE rows*cols; DIAG rows; CDIAG rows (pairs); BLOCKS (shared?1:nb)*bm*bn */
    double *d, *c, *w;        /* DLR: d[nb*bm], c[nb], w[nb*bm] or NULL */
} sl_op;

/* Discretisation rule linking a continuous-time (A, B) and step Delta to the
** discrete operator. */
typedef enum sl_disc {
    SL_DISC_NONE = 0,
    SL_DISC_BILINEAR,   /* (I - dA/2)^-1 (I + dA/2) */
    SL_DISC_ZOH,        /* exp(dA) */
    SL_DISC_EULER,      /* I + dA */
    SL_DISC_EXP         /* Mamba: exp(dA) with B_bar = d B */
} sl_disc;

/* What to compute (bit mask for linsys calls). */
enum {
    SL_LS_A  = 1u << 0,
    SL_LS_B  = 1u << 1,
    SL_LS_C  = 1u << 2,
    SL_LS_D  = 1u << 3,
    SL_LS_CT = 1u << 4,    /* continuous-time A_ct, B_ct and dt where the family has them */
    SL_LS_E  = 1u << 5,    /* the affine offset e (computed by sl_layer_linsys from the step) */
    SL_LS_ALL = 0x3f
};

typedef struct sl_linsys {
    int64_t n_state;       /* A: n_state x n_state */
    int64_t n_in;          /* B: n_state x n_in */
    int64_t n_out;         /* C: n_out x n_state; D: n_out x n_in */
    sl_op   A, B, C, D;
    double *u;             /* the system's input at this point (n_in), or NULL */
    double *e;             /* offset with next state = A x + B u + e at this point (n_state), when
                              SL_LS_E was asked: zero for linear families, the Taylor remainder's
                              constant for nonlinear ones (exact inside a ReLU net's linear region) */
    const char *u_name;    /* what u is: "u" (the layer input), "x" (Mamba's conv output), "v" (values) */
    int     exact;         /* 1: the update is exactly A x + B u here (linear and selective
                              families); 0: A and B are Jacobians of a nonlinear update */
    /* Continuous-time form (LSSL, S4D, LMU, Mamba): A_ct has A's structure and
    ** row order, and dt[i] is the step of rows [i*rows/n_dt, (i+1)*rows/n_dt). */
    int     has_ct;
    sl_op   A_ct, B_ct;
    double *dt;
    int64_t n_dt;
    sl_disc disc;
} sl_linsys;

void sl_linsys_init(sl_linsys *ls);
void sl_linsys_free(sl_linsys *ls);   /* frees all arrays, leaves ls initialised */

/* Constructors: allocate zeroed storage; return SL_OK or SL_ENOMEM. */
int sl_op_zero(sl_op *op, int64_t rows, int64_t cols);
int sl_op_dense(sl_op *op, int64_t rows, int64_t cols);
int sl_op_diag(sl_op *op, int64_t n);
int sl_op_cdiag(sl_op *op, int64_t n_complex);
int sl_op_blocks(sl_op *op, int64_t nb, int64_t bm, int64_t bn, int64_t kp, int shared);
int sl_op_dlr(sl_op *op, int64_t nb, int64_t bm, int64_t kp, int with_w);
void sl_op_free(sl_op *op);

/* Pointer to block b of a BLOCKS operator (the shared block when shared). */
double *sl_op_block(const sl_op *op, int64_t b);

/* y = op * x; x has op->cols entries, y op->rows (must not alias x). */
void sl_op_apply(const sl_op *op, const double *x, double *y);

/* Expand to a dense row-major rows x cols matrix in out. For tests and for
** the dense fallback; analyses should use the structure instead. */
void sl_op_to_dense(const sl_op *op, double *out);

/* Deep copy (dst is overwritten, not freed). */
int sl_op_copy(sl_op *dst, const sl_op *src);

/* "dense", "diag", ... */
const char *sl_op_kind_name(sl_op_kind k);

#endif
