/*
** Building blocks for block-structured families: see nn.h.
*/
#include "nn.h"

#include <stdlib.h>
#include <string.h>

#include "kernels.h"

void sl_linear_f32(int64_t M, int64_t in, int64_t out, const float *x, const float *W, const float *b, float *y)
{
    if (b)
        for (int64_t i = 0; i < M; i++) memcpy(y + i * out, b, (size_t)out * sizeof *y);
    sl_sgemm(0, 1, M, out, in, 1.0f, x, in, W, in, b ? 1.0f : 0.0f, y, out);
}

void sl_linear_f64(int64_t in, int64_t out, const double *x, const float *W, const float *b, double *y)
{
    for (int64_t o = 0; o < out; o++) {
        const float *r = W + o * in;
        double s = b ? b[o] : 0.0;
        for (int64_t j = 0; j < in; j++) s += (double)r[j] * x[j];
        y[o] = s;
    }
}

void sl_rmsnorm_f32(int64_t M, int64_t d, const float *x, const float *w, float eps, float *y)
{
#pragma omp parallel for if (M * d > 65536) schedule(static)
    for (int64_t i = 0; i < M; i++) {
        const float *xi = x + i * d;
        float *yi = y + i * d;
        float ss = 0.0f;
        for (int64_t j = 0; j < d; j++) ss += xi[j] * xi[j];
        float r = 1.0f / sqrtf(ss / (float)d + eps);
        for (int64_t j = 0; j < d; j++) yi[j] = xi[j] * r * (w ? w[j] : 1.0f);
    }
}

void sl_rmsnorm_f64(int64_t d, const double *x, const float *w, double eps, double *y)
{
    double ss = 0.0;
    for (int64_t j = 0; j < d; j++) ss += x[j] * x[j];
    double r = 1.0 / sqrt(ss / (double)d + eps);
    for (int64_t j = 0; j < d; j++) y[j] = x[j] * r * (w ? (double)w[j] : 1.0);
}

void sl_l2norm_f32(int64_t M, int64_t d, float *x, float eps)
{
    for (int64_t i = 0; i < M; i++) {
        float *xi = x + i * d, ss = 0.0f;
        for (int64_t j = 0; j < d; j++) ss += xi[j] * xi[j];
        float n = sqrtf(ss);
        float r = 1.0f / (n > eps ? n : eps);
        for (int64_t j = 0; j < d; j++) xi[j] *= r;
    }
}

void sl_l2norm_f64(int64_t d, double *x, double eps)
{
    double ss = 0.0;
    for (int64_t j = 0; j < d; j++) ss += x[j] * x[j];
    double n = sqrt(ss);
    double r = 1.0 / (n > eps ? n : eps);
    for (int64_t j = 0; j < d; j++) x[j] *= r;
}

void sl_causal_conv1d_f32(int64_t B, int64_t T, int64_t C, int64_t k, const float *x, const float *w, const float *bias,
                          float *hist, float *y)
{
    const int64_t H = k - 1;
#pragma omp parallel for if (B * T * C > 65536) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * T * C;
        const float *hb = hist ? hist + b * H * C : NULL;
        float *yb = y + b * T * C;
        for (int64_t t = 0; t < T; t++)
            for (int64_t c = 0; c < C; c++) {
                float s = bias ? bias[c] : 0.0f;
                for (int64_t j = 0; j < k; j++) {
                    int64_t tt = t - H + j;   /* input time of tap j */
                    float v = tt >= 0 ? xb[tt * C + c] : (hb ? hb[(H + tt) * C + c] : 0.0f);
                    s += w[c * k + j] * v;
                }
                yb[t * C + c] = s;
            }
    }
    if (!hist || H == 0) return;
    /* New history: the last H inputs (from x, or from the old history when T < H). */
    float *tmp = malloc((size_t)(H * C) * sizeof *tmp);
    if (!tmp) return;
    for (int64_t b = 0; b < B; b++) {
        float *hb = hist + b * H * C;
        for (int64_t i = 0; i < H; i++) {
            int64_t tt = T - H + i;
            memcpy(tmp + i * C, tt >= 0 ? x + (b * T + tt) * C : hb + (H + tt) * C, (size_t)C * sizeof *tmp);
        }
        memcpy(hb, tmp, (size_t)(H * C) * sizeof *tmp);
    }
    free(tmp);
}

void sl_causal_conv1d_step_f64(int64_t C, int64_t k, const double *hist, const double *x, const float *w,
                               const float *bias, double *y, double *hist_next)
{
    const int64_t H = k - 1;
    for (int64_t c = 0; c < C; c++) {
        double s = bias ? bias[c] : 0.0;
        for (int64_t j = 0; j < H; j++) s += (double)w[c * k + j] * hist[j * C + c];
        s += (double)w[c * k + H] * x[c];
        y[c] = s;
    }
    if (!hist_next || H == 0) return;
    for (int64_t i = 0; i + 1 < H; i++) memcpy(hist_next + i * C, hist + (i + 1) * C, (size_t)C * sizeof *hist_next);
    memcpy(hist_next + (H - 1) * C, x, (size_t)C * sizeof *hist_next);
}
