/*
** The scans' backward passes, compiled twice by scan_backward.c: for float
** (the training path) and for double (the reference). See scan_backward.h.
** Expects:
**   REAL        float or double
**   SB(name)    name with the precision's suffix
**   SB_EXP      exp of the forward (sl_expf_vec for float, exp for double)
**   SB_EXPS     scalar exp (expf, exp)
**   SB_CDIAG    sl_cdiag_f32 or sl_cdiag_f64
**   SB_SSCAN    sl_sscan_bwd_f32 or sl_sscan_bwd_f64
*/

/* ------------------------------------------------------------ S4D */
int SB(sl_cdiag_scan_backward)(const SB_CDIAG *s, int64_t nb, int64_t T, const REAL *u, int64_t ldu, const REAL *x0,
                                int64_t ldx0, const REAL *xs, int64_t ldxs, const REAL *dy, int64_t lddy, REAL *du,
                                int64_t lddu, REAL *dx0, int64_t lddx0, REAL *dlam, REAL *dbb, REAL *dcc, REAL *dd)
{
    const int64_t H = s->H, M = s->M;
    const double work = (double)nb * (double)H * (double)T * (double)M * 16.0;
    int failed = 0;
    /* One thread per channel h: every accumulator of h belongs to it. */
#pragma omp parallel if (work > SL_SCAN_PAR_MIN && H > 1)
    {
        /* g: the state gradient carried back in time (split re/im); la, cr, ci, br, bi: lam, cc, bb split;
        ** acc: dlam, dbb, dcc of the channel (split re/im). */
        REAL *buf = malloc((size_t)(14 * M + 1) * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
        REAL *gr = buf, *gi = buf + M, *lr = buf + 2 * M, *li = buf + 3 * M, *cr = buf + 4 * M, *ci = buf + 5 * M,
             *br = buf + 6 * M, *bi = buf + 7 * M, *alr = buf + 8 * M, *ali = buf + 9 * M, *abr = buf + 10 * M,
             *abi = buf + 11 * M, *acr = buf + 12 * M, *aci = buf + 13 * M;
#pragma omp for schedule(dynamic, 1)
        for (int64_t h = 0; h < H; h++) {
            if (!buf) continue;
            for (int64_t m = 0; m < M; m++) {
                const int64_t k = 2 * (h * M + m);
                lr[m] = s->lam[k]; li[m] = s->lam[k + 1];
                cr[m] = s->cc[k]; ci[m] = s->cc[k + 1];
                br[m] = s->bb[k]; bi[m] = s->bb[k + 1];
                alr[m] = ali[m] = abr[m] = abi[m] = acr[m] = aci[m] = 0;
            }
            const REAL dh = s->d ? s->d[h] : (REAL)0;
            REAL add = 0;
            for (int64_t b = 0; b < nb; b++) {
                for (int64_t m = 0; m < M; m++) gr[m] = gi[m] = 0;
                for (int64_t t = T - 1; t >= 0; t--) {
                    const int64_t r = b * T + t;
                    const REAL dyt = dy[r * lddy + h], ut = u[r * ldu + h];
                    const REAL *xt = xs + r * ldxs + 2 * h * M;
                    const REAL *xp = t ? xs + (r - 1) * ldxs + 2 * h * M : (x0 ? x0 + b * ldx0 + 2 * h * M : NULL);
                    REAL dut = dh * dyt;
                    add += dyt * ut;
                    for (int64_t m = 0; m < M; m++) {
                        /* y += cr x.re - ci x.im */
                        acr[m] += dyt * xt[2 * m];
                        aci[m] -= dyt * xt[2 * m + 1];
                        const REAL g0 = gr[m] + dyt * cr[m], g1 = gi[m] - dyt * ci[m];
                        const REAL pr = xp ? xp[2 * m] : (REAL)0, pi = xp ? xp[2 * m + 1] : (REAL)0;
                        alr[m] += g0 * pr + g1 * pi;
                        ali[m] += g1 * pr - g0 * pi;
                        abr[m] += g0 * ut;
                        abi[m] += g1 * ut;
                        dut += g0 * br[m] + g1 * bi[m];
                        gr[m] = lr[m] * g0 + li[m] * g1;
                        gi[m] = lr[m] * g1 - li[m] * g0;
                    }
                    if (du) du[r * lddu + h] = dut;
                }
                if (dx0)
                    for (int64_t m = 0; m < M; m++) {
                        dx0[b * lddx0 + 2 * (h * M + m)] = gr[m];
                        dx0[b * lddx0 + 2 * (h * M + m) + 1] = gi[m];
                    }
            }
            for (int64_t m = 0; m < M; m++) {
                const int64_t k = 2 * (h * M + m);
                if (dlam) { dlam[k] += alr[m]; dlam[k + 1] += ali[m]; }
                if (dbb) { dbb[k] += abr[m]; dbb[k + 1] += abi[m]; }
                if (dcc) { dcc[k] += acr[m]; dcc[k + 1] += aci[m]; }
            }
            if (dd) dd[h] += add;
        }
        free(buf);
    }
    return failed ? SL_ENOMEM : SL_OK;
}

/* ------------------------------------------------------------ LRU */
void SB(sl_cdiag_recur_backward)(int64_t n, const REAL *lam, int64_t nb, int64_t T, REAL *g, int64_t ldg,
                                 const REAL *x0, int64_t ldx0, const REAL *xs, int64_t ldxs, REAL *dlam, REAL *dx0,
                                 int64_t lddx0)
{
    /* Blocks of entries per task: each entry's recurrence and lam's sum are its own. */
    const int64_t BS = 64, nblk = (n + BS - 1) / BS;
    const double work = (double)nb * (double)T * (double)n * 8.0;
#pragma omp parallel for schedule(dynamic, 1) if (work > SL_SCAN_PAR_MIN && nblk > 1)
    for (int64_t p = 0; p < nblk; p++) {
        const int64_t j0 = p * BS, j1 = SL_MIN(n, j0 + BS);
        for (int64_t j = j0; j < j1; j++) {
            const REAL lr = lam[2 * j], li = lam[2 * j + 1];
            REAL sr = 0, si = 0;
            for (int64_t b = 0; b < nb; b++) {
                REAL cr = 0, ci = 0;    /* conj(lam) g_{t+1} */
                for (int64_t t = T - 1; t >= 0; t--) {
                    REAL *gt = g + (b * T + t) * ldg + 2 * j;
                    const REAL g0 = gt[0] + cr, g1 = gt[1] + ci;
                    gt[0] = g0;
                    gt[1] = g1;
                    const REAL *xp = t ? xs + (b * T + t - 1) * ldxs + 2 * j : (x0 ? x0 + b * ldx0 + 2 * j : NULL);
                    if (xp) {
                        sr += g0 * xp[0] + g1 * xp[1];
                        si += g1 * xp[0] - g0 * xp[1];
                    }
                    cr = lr * g0 + li * g1;
                    ci = lr * g1 - li * g0;
                }
                if (dx0) {
                    dx0[b * lddx0 + 2 * j] = cr;
                    dx0[b * lddx0 + 2 * j + 1] = ci;
                }
            }
            if (dlam) {
                dlam[2 * j] += sr;
                dlam[2 * j + 1] += si;
            }
        }
    }
}

/* ------------------------------------------------------------ Mamba */
void SB(sl_selective_scan_backward)(const SB_SSCAN *s, REAL *work)
{
    const int64_t C = s->C, N = s->N, nb = s->nb, T = s->T, CN = C * N, per = SB_SSCAN_WS_PER(C, N);
    const REAL two = s->neg ? (REAL)2 : (REAL)1, negf = s->neg ? (REAL)1 : (REAL)0;
    const double wk = (double)nb * (double)T * (double)CN * 16.0;
    /* work per sequence: gh [C N] (dL/dh carried back), dA partial [C N], zeros [C N] (h_{-1} without a
    ** start state), dD partial [C], ds [C] (dL/d(pre-gate output) of the step), vx, vd [N] (terms of
    ** the sums over n). */
#pragma omp parallel for schedule(dynamic, 1) if (wk > SL_SCAN_PAR_MIN && nb > 1)
    for (int64_t b = 0; b < nb; b++) {
        REAL *gh = work + b * per, *pA = gh + CN, *zero = pA + CN, *pD = zero + CN, *dsv = pD + C;
        REAL *restrict vx = dsv + C, *restrict vd = vx + N;
        memset(gh, 0, (size_t)per * sizeof *gh);
        for (int64_t t = T - 1; t >= 0; t--) {
            const int64_t r = b * T + t;
            const REAL *restrict Bt = s->Bm + r * s->ldbc, *restrict Ct = s->Cm + r * s->ldbc,
                       *restrict xr = s->x + r * s->ldx, *restrict dr = s->dt + r * s->lddt,
                       *restrict dyr = s->dy + r * s->lddy, *restrict hr = s->hs + r * s->ldhs;
            const REAL *restrict hp = t ? s->hs + (r - 1) * s->ldhs : (s->h0 ? s->h0 + b * s->ldh0 : zero);
            REAL *restrict dBr = s->dB + r * s->lddbc, *restrict dCr = s->dC + r * s->lddbc;
            /* The gate: y = pre silu(z), pre = C_t.h_t + D x recomputed from the state. */
            if (s->z) {
                const REAL *restrict zr = s->z + r * s->ldz;
                REAL *restrict dzr = s->dz + r * s->lddz;
                for (int64_t c = 0; c < C; c++) {
                    const REAL *restrict hc = hr + c * N;
                    REAL pre = s->D ? s->D[c] * xr[c] : (REAL)0;
                    for (int64_t n = 0; n < N; n++) pre += Ct[n] * hc[n];
                    dsv[c] = pre;
                }
#pragma omp simd
                for (int64_t c = 0; c < C; c++) {
                    const REAL zc = zr[c], sg = (REAL)1 / ((REAL)1 + SB_EXP(-zc));
                    dzr[c] = dyr[c] * dsv[c] * sg * ((REAL)1 + zc * ((REAL)1 - sg));
                    dsv[c] = dyr[c] * zc * sg;
                }
            } else {
                for (int64_t c = 0; c < C; c++) dsv[c] = dyr[c];
            }
            if (s->D)
                for (int64_t c = 0; c < C; c++) pD[c] += dsv[c] * xr[c];
            for (int64_t n = 0; n < N; n++) dBr[n] = dCr[n] = 0;
            for (int64_t c = 0; c < C; c++) {
                const REAL xc = xr[c], dl = dr[c], ds = dsv[c], dx1 = dl * xc;
                const REAL *restrict Ac = s->A + c * N, *restrict hc = hr + c * N, *restrict hpc = hp + c * N;
                REAL *restrict ghc = gh + c * N, *restrict pAc = pA + c * N;
                /* The sums over n go through vx, vd (the loop then vectorises without a reduction). */
#pragma omp simd
                for (int64_t n = 0; n < N; n++) {
                    const REAL a = SB_EXP(dl * Ac[n]), ab = a * two - negf;
                    const REAL g = ghc[n] + ds * Ct[n];
                    const REAL da = g * hpc[n] * two * a;      /* dL/d(dl A) */
                    dCr[n] += ds * hc[n];
                    dBr[n] += g * dx1;
                    vx[n] = g * Bt[n];
                    vd[n] = da * Ac[n];
                    pAc[n] += da * dl;
                    ghc[n] = g * ab;
                }
                REAL sx = 0, sd = 0;
                for (int64_t n = 0; n < N; n++) {
                    sx += vx[n];
                    sd += vd[n];
                }
                s->dx[r * s->lddx + c] = (s->D ? ds * s->D[c] : (REAL)0) + sx * dl;
                s->ddt[r * s->ldddt + c] = sd + sx * xc;
            }
        }
        if (s->dh0) memcpy(s->dh0 + b * s->lddh0, gh, (size_t)CN * sizeof *gh);
    }
    for (int64_t b = 0; b < nb; b++) {
        const REAL *pA = work + b * per + CN, *pD = pA + 2 * CN;
        if (s->dA)
            for (int64_t i = 0; i < CN; i++) s->dA[i] += pA[i];
        if (s->dD)
            for (int64_t c = 0; c < C; c++) s->dD[c] += pD[c];
    }
}
