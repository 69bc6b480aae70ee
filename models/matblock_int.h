/*
** Private to the matrix-state block (matblock.c, matblock_grad.c): a layer's
** impl and the training ops.
*/
#ifndef SL_MATBLOCK_INT_H
#define SL_MATBLOCK_INT_H

#include "err.h"
#include "layer.h"
#include "matblock.h"

#define MB_MLSTM_EPS 1e-6    /* NX-AI's eps in the mLSTM denominator */
#define MB_L2_EPS 1e-6       /* fla's l2norm: x / sqrt(sum x^2 + eps) */

typedef struct mb_impl {
    sl_mb   p;
    int64_t ds, nS;                 /* state columns per head; H dk ds */
    int64_t cq, ck, cv, cc;         /* convolved channels (cc = total) */
    int64_t off_conv, off_pos, off_m;
    float  *conv_w, *conv_b;        /* concatenated [cc, conv_k], [cc] (owned) */
    double *log_gamma;              /* RetNet [H] (owned) */
    double *inv_freq;               /* RetNet rotary [dk/2] (owned) */
} mb_impl;

/* Training (matblock_grad.c): the families with gradients (sl_mb_trainable)
** get these three in their ops. */
int sl_mb_trainable(const sl_mb *p);
int sl_mb_backward(const sl_layer *L, const sl_bwd *b, sl_err *err);
int sl_mb_backward_f64(const sl_layer *L, const sl_bwd_f64 *b, sl_err *err);
int sl_mb_params_changed(sl_layer *L, sl_err *err);

#endif
