/*
** Private to the matrix-state block (matblock.c, matblock_grad.c): a layer's
** impl and the training ops.
*/
#ifndef SL_MATBLOCK_INT_H
#define SL_MATBLOCK_INT_H

#include "err.h"
#include "kernels.h"
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
    /* Packed for the forward (sl_mb_pack; owned) */
    sl_wpack *w_in, *w_gk1, *w_o, *w_mlp, *w_down;
    int64_t np, off_g, off_b, off_a, off_r;   /* w_in's output width and columns */
    float  *conv_wt;                /* [conv_k, cc] taps-major */
} mb_impl;

/* Pack (refill = 0) or refresh (1) the forward's products and conv weights. */
int sl_mb_pack(mb_impl *im, int refill, sl_err *err);

/* Training (matblock_grad.c): the families with gradients (sl_mb_trainable)
** get these three in their ops. */
int sl_mb_trainable(const sl_mb *p);
int sl_mb_backward(const sl_layer *L, const sl_bwd *b, sl_err *err);
int sl_mb_backward_f64(const sl_layer *L, const sl_bwd_f64 *b, sl_err *err);
int sl_mb_params_changed(sl_layer *L, sl_err *err);

#endif
