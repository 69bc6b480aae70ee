/*
** Training of the matrix-state block (matblock.h): backpropagation through
** time for the families whose block sl_mb_trainable accepts (delta_net, with
** or without allow_neg_eigval, and gla).
**
** The forward pass keeps the carry after every step (sl_fwd.states): the
** matrix state S_t of every head and the short convolutions' history. From
** x and those states the backward rebuilds every per-token quantity over all
** B*T rows at once (attn_norm, the q/k/v projections as GEMMs, the causal
** convolution, activations, L2 norms, GLA's low-rank gate, beta, the output
** gate), reads each head's output o_t = scale S_t^T q_t straight off the kept
** state (no scan), and the block's tail (output norm, o_proj, residual,
** mlp_norm, SwiGLU MLP). Then, in reverse:
**
**   MLP       dM = dy W_down, SwiGLU, dhn -> mlp_norm backward, + dy (residual)
**   output    o_proj, the (gated) RMSNorm per head -> dL/do_t (and dL/d gate)
**   scan      kernels/matstate_backward.c, one reverse-time pass per (sequence,
**             head) over the kept states, in parallel: dq, dk, dv, dL/dbeta,
**             dL/dg (GLA, per key dimension)
**   gates     beta = sigmoid(b_proj xn) (x 2 with allow_neg_eigval); GLA's
**             g = logsigmoid(gk_proj.1(gk_proj.0 xn) + b) / 16 (0 where clamped)
**   q, k, v   L2 (or sum) norm, feature map, activation -> d(conv output)
**   conv      depthwise causal conv (kernels/nn_backward.c, over the
**             concatenated q|k|v channels): d(input), weights, bias, d(history)
**   input     the projections' dL/dxn, attn_norm backward (nn_backward.c),
**             + dL/dh (residual)
**
** Weight gradients are GEMMs over all rows (dW += dY^T X); per-channel sums
** (norm weights, conv weights, biases) run in row order, so results depend
** only on the inputs and the thread count. Memory: the kept states are
** O(B T H d_k d_v) (the tape holds them anyway); the workspace here is a few
** B*T x width buffers, from b->scratch (nothing allocated once warm).
**
** The double version (backward_f64, the reference the finite-difference tests
** check) is the same source, matblock_grad_impl.h, over the double states of
** the family's own step. params_changed refreshes the concatenated conv
** weights and the packed products the forward caches (sl_mb_pack).
*/
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "grad.h"
#include "kernels.h"
#include "matblock_int.h"
#include "matstate_backward.h"
#include "nn.h"

int sl_mb_trainable(const sl_mb *p)
{
    if (p->kind != SL_MB_DELTA && p->kind != SL_MB_GLA) return 0;
    if (p->rope || p->inner) return 0;
    if (p->onorm != SL_MB_ONORM_NONE && p->onorm != SL_MB_ONORM_RMS && p->onorm != SL_MB_ONORM_RMS_GATED) return 0;
    if (p->onorm == SL_MB_ONORM_RMS_GATED && !p->wg) return 0;
    if (p->kind == SL_MB_DELTA && p->beta_mode != SL_MB_BETA_SIGMOID && p->beta_mode != SL_MB_BETA_ONE) return 0;
    if (p->kind == SL_MB_GLA && (p->beta_mode != SL_MB_BETA_NONE || !p->gk0 || !p->gk1)) return 0;
    return 1;
}

static inline float logsigf(float x) { return sl_logsigmoidf(x); }

#define REAL float
#define MBG(n) mbg_##n##_f32
#define RGEMM sl_sgemm
#define RGRAD sl_grads_f32
#define MBG_BWD sl_bwd
#define MSB_SEQ sl_ms_bwd
#define MSB_FN sl_ms_backward
#define NBRMS sl_rmsnorm_backward_f32
#define NBCONV sl_causal_conv1d_backward_f32
#define REXP expf
#define RSQRT sqrtf
#define RLOGSIG logsigf
#define MBG_DOUBLE 0
#include "matblock_grad_impl.h"
#undef REAL
#undef MBG
#undef RGEMM
#undef RGRAD
#undef MBG_BWD
#undef MSB_SEQ
#undef MSB_FN
#undef NBRMS
#undef NBCONV
#undef REXP
#undef RSQRT
#undef RLOGSIG
#undef MBG_DOUBLE

#define REAL double
#define MBG(n) mbg_##n##_f64
#define RGEMM sl_dgemm
#define RGRAD sl_grads_f64
#define MBG_BWD sl_bwd_f64
#define MSB_SEQ sl_ms_bwd_f64
#define MSB_FN sl_ms_backward_f64
#define NBRMS sl_rmsnorm_backward_f64
#define NBCONV sl_causal_conv1d_backward_f64
#define REXP exp
#define RSQRT sqrt
#define RLOGSIG sl_logsigmoid
#define MBG_DOUBLE 1
#include "matblock_grad_impl.h"

int sl_mb_backward(const sl_layer *L, const sl_bwd *b, sl_err *err) { return mbg_backward_f32(L, b, err); }

int sl_mb_backward_f64(const sl_layer *L, const sl_bwd_f64 *b, sl_err *err) { return mbg_backward_f64(L, b, err); }

int sl_mb_params_changed(sl_layer *L, sl_err *err)
{
    mb_impl *im = L->impl;
    const sl_mb *p = &im->p;
    if (im->conv_w) {
        const int64_t ch[3] = { im->cq, im->ck, im->cv };
        int64_t c0 = 0;
        for (int s = 0; s < 3; s++) {
            memcpy(im->conv_w + c0 * p->conv_k, p->conv_w[s], (size_t)(ch[s] * p->conv_k) * sizeof(float));
            if (im->conv_b && p->conv_b[s]) memcpy(im->conv_b + c0, p->conv_b[s], (size_t)ch[s] * sizeof(float));
            c0 += ch[s];
        }
    }
    return sl_mb_pack(im, 1, err);
}
