/*
** Backpropagation through time for the gated recurrent layers: see train.h.
** One source (rnn_backward_impl.h) compiled for float and for double, so the
** training path and the reference the finite-difference tests check are the
** same algorithm.
*/
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bptt.h"
#include "util.h"

/* The float rows below must vectorise: with the default -ftrapping-math GCC
** will not if-convert the selects of the polynomial exp/tanh. Nothing here
** reads floating-point exception flags, so this file drops the guarantee. */
#pragma GCC optimize("no-trapping-math")

/* ------------------------------------------------------------ float math
** Branch-free exp, tanh and sigmoid that compilers vectorise (Cephes'
** single-precision polynomials: expf to about 1 ulp after range reduction
** by ln 2; tanhf as an odd polynomial below 0.625 and 1 - 2/(e^{2x} + 1)
** above, about 2 ulp). The backward pass recomputes every gate from its
** pre-activation, and scalar libm calls would dominate its time. */
static inline float bw_expf(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    x = x - n * 0.693359375f + n * 2.12194440e-4f;
    float z = x * x;
    float y = ((((1.9875691500e-4f * x + 1.3981999507e-3f) * x + 8.3334519073e-3f) * x + 4.1665795894e-2f) * x +
               1.6666665459e-1f) * x + 5.0000001201e-1f;
    y = y * z + x + 1.0f;
    union { int32_t i; float f; } s = { .i = ((int32_t)n + 127) << 23 };
    return y * s.f;
}

static inline float bw_sigmoidf(float x) { return 1.0f / (1.0f + bw_expf(-x)); }

static inline float bw_tanhf(float x)
{
    float ax = __builtin_fabsf(x);
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
                   3.33332819422e-1f) * z * x + x;
    float big = 1.0f - 2.0f / (bw_expf(2.0f * ax) + 1.0f);
    big = x < 0 ? -big : big;
    return ax < 0.625f ? small : big;
}

static inline double bw_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

#define REAL float
#define RB(n) n##_f32
#define RGEMM sl_sgemm
#define RB_MM sl_bptt_gemm
#define RTANHV bw_tanhf
#define RSIGM bw_sigmoidf
#define RB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define RB_DOUBLE 0
#define RB_GRADS sl_rnn_grads
#define RB_FN sl_rnn_backward_plain
#define RB_WS_FN sl_rnn_backward_plain_ws
#include "rnn_backward_impl.h"
#undef REAL
#undef RB
#undef RGEMM
#undef RB_MM
#undef RTANHV
#undef RSIGM
#undef RB_CLONES
#undef RB_DOUBLE
#undef RB_GRADS
#undef RB_FN
#undef RB_WS_FN

#define REAL double
#define RB(n) n##_f64
#define RGEMM sl_dgemm
#define RB_MM sl_bptt_gemm_f64
#define RTANHV tanh
#define RSIGM bw_sigmoid
#define RB_CLONES
#define RB_DOUBLE 1
#define RB_GRADS sl_rnn_grads_f64
#define RB_FN sl_rnn_backward_f64
#define RB_WS_FN sl_rnn_backward_f64_ws
#include "rnn_backward_impl.h"

/* ------------------------------------------------------------ dispatch */
/* The fused LSTM backward (lstm_bptt.c) where it applies, else the plain one. */
size_t sl_rnn_backward_ws(const sl_rnn_weights *w, int64_t B, int64_t T)
{
    size_t n = sl_rnn_backward_plain_ws(w, B, T);
    if (sl_lstm_bptt_available(w)) n = SL_MAX(n, sl_lstm_bptt_ws(w, B, T));
    return n;
}

int sl_rnn_backward(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, const float *carry0,
                    const float *states, const float *gates, const float *dy, float *dx, float *dcarry0,
                    const sl_rnn_grads *g, void *ws, size_t ws_size, sl_err *err)
{
    if (gates && sl_lstm_bptt_available(w))
        return sl_lstm_bptt(w, B, T, x, carry0, states, gates, dy, dx, dcarry0, g, ws, ws_size, err);
    return sl_rnn_backward_plain(w, B, T, x, carry0, states, gates, dy, dx, dcarry0, g, ws, ws_size, err);
}
