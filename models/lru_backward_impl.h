/*
** The LRU layer's backward pass, compiled twice by lru.c (see the comment
** there): REAL, LB(name), LB_BWD (sl_bwd / sl_bwd_f64), LB_GRAD
** (sl_grads_f32 / sl_grads_f64), LB_GEMM, LB_ARR(s, name) (the derived array
** of that precision).
*/

static int LB(lru_backward)(const sl_layer *L, const LB_BWD *b, sl_err *err)
{
    const lru_layer *s = L->impl;
    const int64_t H = s->H, N = s->N, n2 = 2 * N, nc = L->n_carry, B = b->B, T = b->T, R = B * T;
    if (B == 0) return SL_OK;
    if (T == 0) {
        if (b->dcarry0) memset(b->dcarry0, 0, (size_t)(B * nc) * sizeof *b->dcarry0);
        return SL_OK;
    }
    const REAL *lam = LB_ARR(s, lam), *Bd = LB_ARR(s, Bd), *Cd = LB_ARR(s, Cd), *Dv = LB_ARR(s, D);
    const size_t need = (size_t)(R * n2 + 2 * n2 * H + n2 + 1) * sizeof(REAL);
    REAL *own = NULL, *G = b->scratch ? sl_scratch_get(b->scratch, need) : (own = malloc(need));
    if (!G) return sl_err_set(err, SL_ENOMEM, "out of memory for the backward pass");
    REAL *dBd = G + R * n2, *dCd = dBd + n2 * H, *dlam = dCd + H * n2;

    /* dL/dx_t: its direct part dY C, then the recurrence. */
    LB_GEMM(0, 0, R, n2, H, 1, b->dy, H, Cd, n2, 0, G, n2);
    memset(dlam, 0, (size_t)n2 * sizeof *dlam);
    LB(sl_cdiag_recur_backward)(N, lam, B, T, G, n2, b->carry0, nc, b->states, nc, dlam, b->dcarry0, nc);
    if (b->dx) {
        for (int64_t r = 0; r < R; r++)
            for (int64_t h = 0; h < H; h++) b->dx[r * H + h] = Dv[h] * b->dy[r * H + h];
        LB_GEMM(0, 0, R, H, n2, 1, G, n2, Bd, H, 1, b->dx, H);
    }

    REAL *gnu = LB_GRAD(b->g, s->nu_log), *gth = LB_GRAD(b->g, s->theta_log), *gga = LB_GRAD(b->g, s->gamma_log),
         *gBr = LB_GRAD(b->g, s->B_re), *gBi = LB_GRAD(b->g, s->B_im), *gCr = LB_GRAD(b->g, s->C_re),
         *gCi = LB_GRAD(b->g, s->C_im), *gD = LB_GRAD(b->g, s->Dp);
    if (gBr || gBi || gga) LB_GEMM(1, 0, n2, H, R, 1, G, n2, b->x, H, 0, dBd, H);
    if (gCr || gCi) LB_GEMM(1, 0, H, n2, R, 1, b->dy, H, b->states, nc, 0, dCd, n2);
    if (gD)
        for (int64_t r = 0; r < R; r++)
            for (int64_t h = 0; h < H; h++) gD[h] += b->dy[r * H + h] * b->x[r * H + h];
    const int want_b = gBr || gBi || gga;
    for (int64_t j = 0; j < N; j++) {
        const double g = exp((double)s->gamma_log[j]);
        double sg = 0;
        for (int64_t k = 0; want_b && k < H; k++) {
            const double dr = dBd[(2 * j) * H + k], di = dBd[(2 * j + 1) * H + k];
            if (gBr) gBr[j * H + k] += (REAL)(g * dr);
            if (gBi) gBi[j * H + k] += (REAL)(g * di);
            sg += dr * (double)s->B_re[j * H + k] + di * (double)s->B_im[j * H + k];
        }
        if (gga) gga[j] += (REAL)(g * sg);
        /* lambda = exp(a): da = conj(lambda) dlambda; Re a = -exp(nu), Im a = exp(theta). */
        const double lr = s->lam[2 * j], li = s->lam[2 * j + 1], pr = dlam[2 * j], pi = dlam[2 * j + 1];
        const double ar = lr * pr + li * pi, ai = lr * pi - li * pr;
        if (gnu) gnu[j] += (REAL)(ar * s->Act[2 * j]);
        if (gth) gth[j] += (REAL)(ai * s->Act[2 * j + 1]);
    }
    for (int64_t h = 0; h < H; h++)
        for (int64_t j = 0; j < N; j++) {
            if (gCr) gCr[h * N + j] += dCd[h * n2 + 2 * j];
            if (gCi) gCi[h * N + j] -= dCd[h * n2 + 2 * j + 1];
        }
    free(own);
    return SL_OK;
}
