/*
** The Mamba block's backward pass, compiled twice by mamba.c (see the
** comment there). Expects REAL, MB(name), MB_DOUBLE, MB_BWD (sl_bwd /
** sl_bwd_f64), MB_GRAD (sl_grads_f32 / sl_grads_f64), MB_GEMM (sl_sgemm /
** sl_dgemm), MB_SSCAN (sl_sscan_bwd_f32 / _f64), MB_EXP and MB_LOG1P (expf,
** log1pf / exp, log1p).
*/

/* y[R, out] (ld ldy) = x[R, in] (ld ldx) W^T + b. */
static void MB(mb_linear)(int64_t R, int64_t in, int64_t out, const REAL *x, int64_t ldx, const REAL *W, const REAL *b,
                          REAL *y, int64_t ldy)
{
    for (int64_t r = 0; r < R; r++)
        for (int64_t o = 0; o < out; o++) y[r * ldy + o] = b ? b[o] : (REAL)0;
    MB_GEMM(0, 1, R, out, in, 1, x, ldx, W, in, 1, y, ldy);
}

/* gW [out, in] += dY^T X; gb [out] += column sums of dY (either may be NULL). */
static void MB(mb_linear_grads)(int64_t R, int64_t in, int64_t out, const REAL *X, int64_t ldx, const REAL *dY,
                                int64_t lddy, REAL *gW, REAL *gb)
{
    if (gW) MB_GEMM(1, 0, out, in, R, 1, dY, lddy, X, ldx, 1, gW, in);
    if (gb)
        for (int64_t r = 0; r < R; r++)
            for (int64_t o = 0; o < out; o++) gb[o] += dY[r * lddy + o];
}

/* A float tensor as REAL: the tensor itself (float) or a copy carved from *cur (double). */
static const REAL *MB(mb_weight)(const float *src, int64_t n, REAL **cur)
{
#if MB_DOUBLE
    if (!src) return NULL;
    REAL *d = *cur;
    *cur += n;
    for (int64_t i = 0; i < n; i++) d[i] = src[i];
    return d;
#else
    (void)n;
    (void)cur;
    return src;
#endif
}

static inline REAL MB(mb_sigmoid)(REAL v) { return (REAL)1 / ((REAL)1 + MB_EXP(-v)); }

static int MB(mamba_backward)(const sl_layer *L, const MB_BWD *b, sl_err *err)
{
    const mamba_layer *s = L->impl;
    const int64_t dm = s->dm, di = s->di, N = s->N, Rk = s->R, K = s->K, Hc = K - 1, W = Rk + 2 * N;
    const int64_t nc = L->n_carry, B = b->B, T = b->T, R = B * T;
    if (B == 0) return SL_OK;
    if (T == 0) {
        if (b->dcarry0) memset(b->dcarry0, 0, (size_t)(B * nc) * sizeof *b->dcarry0);
        return SL_OK;
    }
    /* Workspace: the weights as REAL (double only), A, the rows of the recomputed forward and of the
    ** gradients, the conv histories, dA and the scan's workspace. */
    const int64_t nw = MB_DOUBLE ? 2 * di * dm + 2 * di + W * di + di * Rk + di + di + dm * di : 0;
    const int64_t per_row = 2 * dm + 12 * di + 2 * W;
    const size_t need = ((size_t)(nw + di * N + R * per_row + 2 * B * Hc * di + di * N) +
                         sl_selective_scan_backward_ws(di, N, B) + 8) * sizeof(REAL);
    REAL *own = NULL, *ws = b->scratch ? sl_scratch_get(b->scratch, need) : (own = malloc(need));
    if (!ws) return sl_err_set(err, SL_ENOMEM, "out of memory for the backward pass");
    REAL *cur = ws;
    const REAL *in_w = MB(mb_weight)(s->in_w, 2 * di * dm, &cur), *in_b = MB(mb_weight)(s->in_b, 2 * di, &cur),
               *xp_w = MB(mb_weight)(s->xp_w, W * di, &cur), *dt_w = MB(mb_weight)(s->dt_w, di * Rk, &cur),
               *dt_b = MB(mb_weight)(s->dt_b, di, &cur), *Dp = MB(mb_weight)(s->Dp, di, &cur),
               *out_w = MB(mb_weight)(s->out_w, dm * di, &cur);
    REAL *A = cur;
    cur += di * N;
    for (int64_t i = 0; i < di * N; i++) A[i] = (REAL)-exp((double)s->A_log[i]);
    REAL *xn = cur, *proj = xn + R * dm, *xcp = proj + R * 2 * di, *xc = xcp + R * di, *dbc = xc + R * di,
         *dpre = dbc + R * W, *delta = dpre + R * di, *ys = delta + R * di, *dys = ys + R * di, *dxc = dys + R * di,
         *ddl = dxc + R * di, *dbcg = ddl + R * di, *dproj = dbcg + R * W, *dxn = dproj + R * 2 * di,
         *hist0 = dxn + R * dm, *dhist = hist0 + B * Hc * di, *dA = dhist + B * Hc * di, *sws = dA + di * N;
    const REAL *x = b->x;

    /* ---- the forward pass again, keeping every intermediate */
#if MB_DOUBLE
    for (int64_t r = 0; r < R; r++) sl_rmsnorm_f64(dm, x + r * dm, s->norm_w, s->eps, xn + r * dm);
#else
    sl_rmsnorm_f32(R, dm, x, s->norm_w, (float)s->eps, xn);
#endif
    MB(mb_linear)(R, dm, 2 * di, xn, dm, in_w, in_b, proj, 2 * di);
    for (int64_t bb = 0; bb < B; bb++)
        for (int64_t i = 0; i < Hc * di; i++)
            hist0[bb * Hc * di + i] = b->carry0 ? b->carry0[bb * nc + di * N + i] : (REAL)0;
    for (int64_t bb = 0; bb < B; bb++)
        for (int64_t t = 0; t < T; t++) {
            const int64_t r = bb * T + t;
            for (int64_t c = 0; c < di; c++) {
                REAL v = s->conv_b ? (REAL)s->conv_b[c] : (REAL)0;
                for (int64_t j = 0; j < K; j++) {
                    const int64_t tt = t - Hc + j;
                    const REAL in = tt >= 0 ? proj[(bb * T + tt) * 2 * di + c] : hist0[bb * Hc * di + (Hc + tt) * di + c];
                    v += (REAL)s->conv_w[c * K + j] * in;
                }
                xcp[r * di + c] = v;
                xc[r * di + c] = v * MB(mb_sigmoid)(v);
            }
        }
    MB(mb_linear)(R, di, W, xc, di, xp_w, NULL, dbc, W);
    MB(mb_linear)(R, Rk, di, dbc, W, dt_w, dt_b, dpre, di);
    for (int64_t i = 0; i < R * di; i++) delta[i] = dpre[i] > (REAL)20 ? dpre[i] : MB_LOG1P(MB_EXP(dpre[i]));
    for (int64_t r = 0; r < R; r++) {
        const REAL *Ct = dbc + r * W + Rk + N, *h = b->states + r * nc;
        for (int64_t c = 0; c < di; c++) {
            REAL pre = Dp[c] * xc[r * di + c];
            for (int64_t n = 0; n < N; n++) pre += Ct[n] * h[c * N + n];
            const REAL z = proj[r * 2 * di + di + c];
            ys[r * di + c] = pre * z * MB(mb_sigmoid)(z);
        }
    }

    /* ---- out_proj */
    MB(mb_linear_grads)(R, di, dm, ys, di, b->dy, dm, MB_GRAD(b->g, s->out_w), MB_GRAD(b->g, s->out_b));
    MB_GEMM(0, 0, R, di, dm, 1, b->dy, dm, out_w, di, 0, dys, di);

    /* ---- gate, selective scan, D */
    REAL *gA = MB_GRAD(b->g, s->A_log);
    if (gA) memset(dA, 0, (size_t)(di * N) * sizeof *dA);
    const MB_SSCAN sc = {
        .C = di, .N = N, .A = A, .D = Dp, .neg = s->neg, .nb = B, .T = T,
        .x = xc, .ldx = di, .dt = delta, .lddt = di, .Bm = dbc + Rk, .Cm = dbc + Rk + N, .ldbc = W,
        .z = proj + di, .ldz = 2 * di, .h0 = b->carry0, .ldh0 = nc, .hs = b->states, .ldhs = nc,
        .dy = dys, .lddy = di, .dx = dxc, .lddx = di, .ddt = ddl, .ldddt = di,
        .dB = dbcg + Rk, .dC = dbcg + Rk + N, .lddbc = W, .dz = dproj + di, .lddz = 2 * di,
        .dA = gA ? dA : NULL, .dD = MB_GRAD(b->g, s->Dp), .dh0 = b->dcarry0, .lddh0 = nc,
    };
    MB(sl_selective_scan_backward)(&sc, sws);
    if (gA)   /* A = -exp(A_log): dA/dA_log = A */
        for (int64_t i = 0; i < di * N; i++) gA[i] += dA[i] * A[i];

    /* ---- delta = softplus(dt_proj(dt)), x_proj */
    for (int64_t i = 0; i < R * di; i++)
        if (!(dpre[i] > (REAL)20)) ddl[i] *= MB(mb_sigmoid)(dpre[i]);
    MB(mb_linear_grads)(R, Rk, di, dbc, W, ddl, di, MB_GRAD(b->g, s->dt_w), MB_GRAD(b->g, s->dt_b));
    MB_GEMM(0, 0, R, Rk, di, 1, ddl, di, dt_w, Rk, 0, dbcg, W);
    MB(mb_linear_grads)(R, di, W, xc, di, dbcg, W, MB_GRAD(b->g, s->xp_w), NULL);
    MB_GEMM(0, 0, R, di, W, 1, dbcg, W, xp_w, di, 1, dxc, di);

    /* ---- silu, causal conv */
    for (int64_t i = 0; i < R * di; i++) {
        const REAL v = xcp[i], sg = MB(mb_sigmoid)(v);
        dxc[i] *= sg * ((REAL)1 + v * ((REAL)1 - sg));
    }
    MB(sl_causal_conv1d_backward)(B, T, di, K, proj, 2 * di, s->conv_w, hist0, dxc, di, dproj, 2 * di,
                                  MB_GRAD(b->g, s->conv_w), MB_GRAD(b->g, s->conv_b), b->dcarry0 ? dhist : NULL);
    if (b->dcarry0)
        for (int64_t bb = 0; bb < B; bb++)
            memcpy(b->dcarry0 + bb * nc + di * N, dhist + bb * Hc * di, (size_t)(Hc * di) * sizeof *dhist);

    /* ---- in_proj, RMSNorm, residual */
    MB(mb_linear_grads)(R, dm, 2 * di, xn, dm, dproj, 2 * di, MB_GRAD(b->g, s->in_w), MB_GRAD(b->g, s->in_b));
    MB_GEMM(0, 0, R, dm, 2 * di, 1, dproj, 2 * di, in_w, dm, 0, dxn, dm);
    MB(sl_rmsnorm_backward)(R, dm, x, s->norm_w, (REAL)s->eps, dxn, xn, MB_GRAD(b->g, s->norm_w));
    if (b->dx)
        for (int64_t i = 0; i < R * dm; i++) b->dx[i] = b->dy[i] + xn[i];
    free(own);
    return SL_OK;
}
