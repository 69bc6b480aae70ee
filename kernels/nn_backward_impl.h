/*
** Backward passes of nn.h's building blocks, compiled twice by
** nn_backward.c (REAL float or double, NB(name) the suffixed name).
*/

void NB(sl_rmsnorm_backward)(int64_t M, int64_t d, const REAL *x, const float *w, REAL eps, const REAL *dy, REAL *dx,
                             REAL *dw)
{
    /* y_j = x_j r w_j, r = (mean x^2 + eps)^(-1/2):
    ** dx_i = r w_i dy_i - r^3 x_i / d sum_j dy_j w_j x_j. */
    for (int64_t i = 0; i < M; i++) {
        const REAL *xi = x + i * d, *gi = dy + i * d;
        REAL ss = 0, dot = 0;
        for (int64_t j = 0; j < d; j++) ss += xi[j] * xi[j];
        const REAL r = (REAL)1 / NB_SQRT(ss / (REAL)d + eps);
        for (int64_t j = 0; j < d; j++) dot += gi[j] * (w ? (REAL)w[j] : (REAL)1) * xi[j];
        const REAL k = r * r * r * dot / (REAL)d;
        if (dx) {
            REAL *o = dx + i * d;
            for (int64_t j = 0; j < d; j++) o[j] = r * (w ? (REAL)w[j] : (REAL)1) * gi[j] - k * xi[j];
        }
        if (dw)
            for (int64_t j = 0; j < d; j++) dw[j] += gi[j] * xi[j] * r;
    }
}

void NB(sl_causal_conv1d_backward)(int64_t B, int64_t T, int64_t C, int64_t k, const REAL *x, int64_t ldx,
                                   const float *w, const REAL *hist, const REAL *dy, int64_t lddy, REAL *dx,
                                   int64_t lddx, REAL *dw, REAL *dbias, REAL *dhist)
{
    const int64_t H = k - 1;
    /* Output t reads input t - H + j through tap j: input s gets dy[s + H - j] w[j]. */
    for (int64_t b = 0; b < B; b++) {
        const REAL *xb = x + b * T * ldx, *gb = dy + b * T * lddy, *hb = hist ? hist + b * H * C : NULL;
        for (int64_t s = 0; s < T; s++) {
            REAL *o = dx + (b * T + s) * lddx;
            for (int64_t c = 0; c < C; c++) o[c] = 0;
            for (int64_t j = 0; j < k; j++) {
                const int64_t t = s + H - j;
                if (t >= T) continue;
                const REAL *gt = gb + t * lddy;
                for (int64_t c = 0; c < C; c++) o[c] += gt[c] * (REAL)w[c * k + j];
            }
        }
        if (dhist) {
            /* history slot i holds input time i - H, read by output t = i - j */
            REAL *dh = dhist + b * H * C;
            for (int64_t i = 0; i < H; i++) {
                REAL *o = dh + i * C;
                for (int64_t c = 0; c < C; c++) o[c] = 0;
                for (int64_t j = 0; j <= i; j++) {
                    const int64_t t = i - j;
                    if (t >= T) continue;
                    const REAL *gt = gb + t * lddy;
                    for (int64_t c = 0; c < C; c++) o[c] += gt[c] * (REAL)w[c * k + j];
                }
            }
        }
        for (int64_t t = 0; t < T; t++) {
            const REAL *gt = gb + t * lddy;
            if (dbias)
                for (int64_t c = 0; c < C; c++) dbias[c] += gt[c];
            if (!dw) continue;
            for (int64_t j = 0; j < k; j++) {
                const int64_t s = t - H + j;
                const REAL *in = s >= 0 ? xb + s * ldx : (hb ? hb + (H + s) * C : NULL);
                if (!in) continue;
                for (int64_t c = 0; c < C; c++) dw[c * k + j] += gt[c] * in[c];
            }
        }
    }
}
