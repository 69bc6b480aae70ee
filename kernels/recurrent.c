/*
** The plain reference forward pass of the gated recurrent families (rnn, lstm,
** gru): one sequence, one step, one gate row at a time, libm's tanhf/expf,
** no packing, no threads. It is what the optimised kernels of rnn_fused.c are
** tested against (tests/test_kernels.c) and what SL_ALGO_REFERENCE runs.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

int sl_cell_gates(sl_cell_kind cell)
{
    switch (cell) {
    case SL_CELL_LSTM: return 4;
    case SL_CELL_GRU: return 3;
    default: return 1;
    }
}

int64_t sl_cell_carry(sl_cell_kind cell, int64_t H) { return cell == SL_CELL_LSTM ? 2 * H : H; }

/* One fused cell update for one sequence: gx (input part, biases folded in),
** gh (W_hh h), h/c updated in place. bhn: GRU's b_hn (inside r * (...)). */
static inline void cell_update(const sl_rnn_weights *w, const float *gx, const float *gh, const float *bhn,
                               float *h, float *c)
{
    const int64_t H = w->H;
    switch (w->cell) {
    case SL_CELL_RNN_TANH:
    case SL_CELL_RNN_RELU: {
        const int relu = w->cell == SL_CELL_RNN_RELU;
        for (int64_t j = 0; j < H; j++) {
            float p = gx[j] + gh[j];
            float a = relu ? (p > 0.0f ? p : 0.0f) : tanhf(p);
            h[j] = w->alpha ? (1.0f - w->alpha[j]) * h[j] + w->alpha[j] * a : a;
        }
        break;
    }
    case SL_CELL_LSTM:
        for (int64_t j = 0; j < H; j++) {
            float i = sl_sigmoidf(gx[j] + gh[j]);
            float f = sl_sigmoidf(gx[H + j] + gh[H + j]);
            float g = tanhf(gx[2 * H + j] + gh[2 * H + j]);
            float o = sl_sigmoidf(gx[3 * H + j] + gh[3 * H + j]);
            float cn = f * c[j] + i * g;
            c[j] = cn;
            h[j] = o * tanhf(cn);
        }
        break;
    case SL_CELL_GRU:
        for (int64_t j = 0; j < H; j++) {
            float r = sl_sigmoidf(gx[j] + gh[j]);
            float z = sl_sigmoidf(gx[H + j] + gh[H + j]);
            float hn = gh[2 * H + j] + (bhn ? bhn[j] : 0.0f);
            float n = tanhf(gx[2 * H + j] + r * hn);
            h[j] = (1.0f - z) * n + z * h[j];
        }
        break;
    }
}

int sl_rnn_forward_ref(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, float *y, float *carry,
                       float *states, sl_err *err)
{
    const int64_t H = w->H, G = sl_cell_gates(w->cell), GH = G * H, nc = sl_cell_carry(w->cell, H), in = w->in;
    float *gx = malloc((size_t)GH * sizeof *gx), *gh = malloc((size_t)GH * sizeof *gh),
          *own = carry ? NULL : calloc((size_t)(B * nc) + 1, sizeof(float));
    if (!gx || !gh || (!carry && !own)) {
        free(gx); free(gh); free(own);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    float *cr = carry ? carry : own;
    for (int64_t b = 0; b < B; b++) {
        float *h = cr + b * nc;
        for (int64_t t = 0; t < T; t++) {
            const float *u = x + (b * T + t) * in;
            for (int64_t k = 0; k < GH; k++) {
                float sx = w->b_ih ? w->b_ih[k] : 0.0f, sh = w->b_hh ? w->b_hh[k] : 0.0f;
                for (int64_t j = 0; j < in; j++) sx += w->w_ih[k * in + j] * u[j];
                for (int64_t j = 0; j < H; j++) sh += w->w_hh[k * H + j] * h[j];
                gx[k] = sx;
                gh[k] = sh;
            }
            if (w->cell == SL_CELL_GRU) {
                cell_update(w, gx, gh, NULL, h, NULL);   /* b_hn already inside gh */
            } else {
                for (int64_t k = 0; k < GH; k++) { gx[k] += gh[k]; gh[k] = 0.0f; }
                cell_update(w, gx, gh, NULL, h, w->cell == SL_CELL_LSTM ? h + H : NULL);
            }
            if (y) memcpy(y + (b * T + t) * H, h, (size_t)H * sizeof *y);
            if (states) memcpy(states + (b * T + t) * nc, h, (size_t)nc * sizeof *states);
        }
    }
    free(gx);
    free(gh);
    free(own);
    return SL_OK;
}
