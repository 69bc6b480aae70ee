/*
** The body of the matrix-state block's backward pass, compiled twice by
** matblock_grad.c: float (the training path) and double (the reference).
** See matblock_grad.c for the algorithm. Expects
**   REAL         float or double
**   MBG(n)       n with the precision's suffix
**   RGEMM        sl_sgemm or sl_dgemm
**   RGRAD        sl_grads_f32 or sl_grads_f64
**   MBG_BWD      sl_bwd or sl_bwd_f64
**   MSB_SEQ, MSB_FN  the scan backward's arguments and function
**   NBRMS, NBCONV    nn.h's RMSNorm and causal conv backward in that precision
**   REXP, RSQRT, RLOGSIG  exp, sqrt, log-sigmoid
**   MBG_DOUBLE   1 for the double instantiation
*/

static inline REAL MBG(sigm)(REAL x) { return (REAL)1 / ((REAL)1 + REXP(-x)); }

/* An activation and its derivative at x. */
static inline REAL MBG(act)(int a, REAL x)
{
    switch (a) {
    case SL_MB_ACT_SILU: return x * MBG(sigm)(x);
    case SL_MB_ACT_RELU: return x > 0 ? x : 0;
    case SL_MB_ACT_ELU1: return x > 0 ? x + (REAL)1 : REXP(x);
    default: return x;
    }
}

static inline REAL MBG(dact)(int a, REAL x)
{
    switch (a) {
    case SL_MB_ACT_SILU: {
        const REAL s = MBG(sigm)(x);
        return s * ((REAL)1 + x * ((REAL)1 - s));
    }
    case SL_MB_ACT_RELU: return x > 0 ? (REAL)1 : (REAL)0;
    case SL_MB_ACT_ELU1: return x > 0 ? (REAL)1 : REXP(x);
    default: return (REAL)1;
    }
}

/* An activation's value at x and its derivative there (*d), one exponential. */
static inline REAL MBG(act_d)(int a, REAL x, REAL *d)
{
    switch (a) {
    case SL_MB_ACT_SILU: {
        const REAL s = MBG(sigm)(x);
        *d = s * ((REAL)1 + x * ((REAL)1 - s));
        return x * s;
    }
    case SL_MB_ACT_RELU: *d = x > 0 ? (REAL)1 : (REAL)0; return x > 0 ? x : 0;
    case SL_MB_ACT_ELU1: {
        if (x > 0) { *d = 1; return x + (REAL)1; }
        const REAL e = REXP(x);
        *d = e;
        return e;
    }
    default: *d = 1; return x;
    }
}

/* A weight as REAL: the float tensor itself, or (double) a converted copy
** carved from *pool. */
static const REAL *MBG(wload)(const float *src, int64_t n, REAL **pool)
{
    if (!src) return NULL;
#if MBG_DOUBLE
    REAL *d = *pool;
    *pool += n;
    for (int64_t i = 0; i < n; i++) d[i] = (REAL)src[i];
    return d;
#else
    (void)n;
    (void)pool;
    return src;
#endif
}

/* Y [M, out] (row stride ldy) = X [M, in] (ldx) W^T, W [out, in]; += with add. */
static void MBG(lin)(int64_t M, int64_t in, int64_t out, const REAL *X, int64_t ldx, const REAL *W, REAL *Y,
                     int64_t ldy, int add)
{
    RGEMM(0, 1, M, out, in, (REAL)1, X, ldx, W, in, add ? (REAL)1 : (REAL)0, Y, ldy);
}

/* gW [out, in] += dY^T X (when gW) and dX (+)= dY W (when dX). */
static void MBG(lin_bwd)(int64_t M, int64_t in, int64_t out, const REAL *X, int64_t ldx, const REAL *W, const REAL *dY,
                         int64_t ldd, REAL *gW, REAL *dX, int64_t lddx, int add)
{
    if (gW) RGEMM(1, 0, out, in, M, (REAL)1, dY, ldd, X, ldx, (REAL)1, gW, in);
    if (dX) RGEMM(0, 0, M, in, out, (REAL)1, dY, ldd, W, in, add ? (REAL)1 : (REAL)0, dX, lddx);
}

/* RMSNorm over rows of d: y = x / sqrt(mean(x^2) + eps) * w (the forward's sl_rmsnorm_f32). */
static void MBG(rms_fwd)(int64_t M, int64_t d, const REAL *x, const REAL *w, REAL eps, REAL *y)
{
#pragma omp parallel for if (M * d > 65536) schedule(static)
    for (int64_t i = 0; i < M; i++) {
        const REAL *xi = x + i * d;
        REAL *yi = y + i * d, ss = 0;
        for (int64_t j = 0; j < d; j++) ss += xi[j] * xi[j];
        const REAL ri = (REAL)1 / RSQRT(ss / (REAL)d + eps);
        for (int64_t j = 0; j < d; j++) yi[j] = xi[j] * ri * (w ? w[j] : (REAL)1);
    }
}

static int MBG(backward)(const sl_layer *L, const MBG_BWD *b, sl_err *err)
{
    const mb_impl *im = L->impl;
    const sl_mb *p = &im->p;
    const int64_t B = b->B, T = b->T, BT = B * T, H = p->H, dk = p->dk, dv = p->dv, hid = p->hid, I = p->inter;
    const int64_t nc = L->n_carry, cc = im->cc, cq = im->cq, ck = im->ck, wq = H * dk, wv = H * dv;
    const int64_t kk = p->conv_k, nh = kk > 1 ? kk - 1 : 0, rank = p->gk_rank;
    const int gla = p->kind == SL_MB_GLA, has_beta = p->beta_mode != SL_MB_BETA_NONE;
    const int gated = p->onorm == SL_MB_ONORM_RMS_GATED && p->wg, rmso = p->onorm == SL_MB_ONORM_RMS || gated;
    const REAL eps = (REAL)p->eps, scale = (REAL)1 / RSQRT((REAL)dk), bmul = p->neg_eig ? (REAL)2 : (REAL)1;
    const sl_grads *g = b->g;
    const REAL *c0 = b->carry0;
    const int c0_has_hist = c0 && nh > 0;
    if (!sl_mb_trainable(p)) return sl_err_set(err, SL_EUNSUP, "no backward pass for this configuration");
    if (b->dcarry0) memset(b->dcarry0, 0, (size_t)(B * nc) * sizeof(REAL));
    if (BT == 0) return SL_OK;

    /* ---- workspace */
    const int nt = sl_get_threads();
    const int64_t wsc = sl_ms_backward_ws(dk, dv);
    int64_t nw = 0;
#if MBG_DOUBLE
    nw = 2 * hid + 3 * I * hid + 2 * wq * hid + wv * hid + hid * wv + cc * (kk + 1) + rank * hid + wq * rank + wq +
         H * hid + wv * hid + dv;
#endif
    const int64_t conv_rows = kk > 0 ? BT * cc : 0, nhist = B * nh * cc;
    REAL *xn, *X3, *Y3, *Q, *K, *V, *nq, *nk, *Rr, *G0, *Gl, *dG, *dR, *Bl, *Bt, *dBt, *OG, *dOG, *O, *ro, *O2, *Hh,
         *Hn, *GA, *UP, *Mm, *dhn, *dh, *dO2, *dO, *dQ, *dK, *dV, *dY3, *dX3, *dxn, *hist, *dhist, *cdw, *cdb, *swork,
         *pool;
    const struct { REAL **p; int64_t n; } slots[] = {
        { &xn, BT * hid }, { &X3, BT * cc }, { &Y3, conv_rows }, { &Q, BT * wq }, { &K, BT * wq }, { &V, BT * wv },
        { &nq, BT * H }, { &nk, BT * H },
        { &Rr, gla ? BT * rank : 0 }, { &G0, gla ? BT * wq : 0 }, { &Gl, gla ? BT * wq : 0 }, { &dG, gla ? BT * wq : 0 },
        { &dR, gla ? BT * rank : 0 },
        { &Bl, has_beta ? BT * H : 0 }, { &Bt, has_beta ? BT * H : 0 }, { &dBt, has_beta ? BT * H : 0 },
        { &OG, gated ? BT * wv : 0 }, { &dOG, gated ? BT * wv : 0 },
        { &O, BT * wv }, { &ro, BT * H }, { &O2, BT * wv }, { &Hh, BT * hid }, { &Hn, BT * hid },
        { &GA, BT * I }, { &UP, BT * I }, { &Mm, BT * I },
        { &dhn, BT * hid }, { &dh, BT * hid }, { &dO2, BT * wv }, { &dO, BT * wv },
        { &dQ, BT * wq }, { &dK, BT * wq }, { &dV, BT * wv }, { &dY3, BT * cc }, { &dX3, conv_rows }, { &dxn, BT * hid },
        { &hist, c0_has_hist ? nhist : 0 }, { &dhist, b->dcarry0 ? nhist : 0 }, { &cdw, cc * kk }, { &cdb, kk ? cc : 0 },
        { &swork, nt * wsc }, { &pool, nw },
    };
    const size_t nslots = sizeof slots / sizeof slots[0];
    size_t total = 16;
    for (size_t i = 0; i < nslots; i++) total += (size_t)((slots[i].n + 7) / 8 * 8);   /* slots on 8-element bounds */
    sl_scratch own = { 0 }, *scr = b->scratch ? b->scratch : &own;
    REAL *wp = sl_scratch_get(scr, total * sizeof(REAL));
    if (!wp) return sl_err_set(err, SL_ENOMEM, "out of memory for the backward pass");
    for (size_t i = 0; i < nslots; i++) {
        *slots[i].p = wp;
        wp += (slots[i].n + 7) / 8 * 8;
    }
    if (kk == 0) {
        Y3 = X3;
        dX3 = dY3;
    }
    if (!c0_has_hist) hist = NULL;
    if (!b->dcarry0 || !nh) dhist = NULL;
    const REAL *an = MBG(wload)(p->attn_norm, hid, &pool), *mn = MBG(wload)(p->mlp_norm, hid, &pool);
    const REAL *Wgt = MBG(wload)(p->w_gate, I * hid, &pool), *Wup = MBG(wload)(p->w_up, I * hid, &pool),
               *Wdn = MBG(wload)(p->w_down, hid * I, &pool);
    const REAL *Wq = MBG(wload)(p->wq, wq * hid, &pool), *Wk = MBG(wload)(p->wk, wq * hid, &pool),
               *Wv = MBG(wload)(p->wv, wv * hid, &pool), *Wo = MBG(wload)(p->wo, hid * wv, &pool);
    const REAL *cw = MBG(wload)(im->conv_w, cc * kk, &pool), *cb = MBG(wload)(im->conv_b, cc, &pool);
    const REAL *Wg0 = gla ? MBG(wload)(p->gk0, rank * hid, &pool) : NULL,
               *Wg1 = gla ? MBG(wload)(p->gk1, wq * rank, &pool) : NULL,
               *bg1 = gla ? MBG(wload)(p->gk1_b, wq, &pool) : NULL;
    const REAL *Wb = p->beta_mode == SL_MB_BETA_SIGMOID ? MBG(wload)(p->wb, H * hid, &pool) : NULL;
    const REAL *Wgp = gated ? MBG(wload)(p->wg, wv * hid, &pool) : NULL, *onw = MBG(wload)(p->onorm_w, dv, &pool);
    const REAL *x = b->x, *St = b->states;

    /* ---- the forward quantities, recomputed over all B*T rows */
    MBG(rms_fwd)(BT, hid, x, an, eps, xn);
    MBG(lin)(BT, hid, cq, xn, hid, Wq, X3, cc, 0);
    MBG(lin)(BT, hid, ck, xn, hid, Wk, X3 + cq, cc, 0);
    MBG(lin)(BT, hid, wv, xn, hid, Wv, X3 + cq + ck, cc, 0);
    if (kk > 0) {
#pragma omp parallel for if (BT * cc * kk > 65536) schedule(static)
        for (int64_t bb = 0; bb < B; bb++) {
            const REAL *hb = c0 ? c0 + bb * nc + im->off_conv : NULL;
            for (int64_t t = 0; t < T; t++)
                for (int64_t c = 0; c < cc; c++) {
                    REAL s = cb ? cb[c] : (REAL)0;
                    for (int64_t j = 0; j < kk; j++) {
                        const int64_t tt = t - (kk - 1) + j;
                        const REAL v = tt >= 0 ? X3[(bb * T + tt) * cc + c] : (hb ? hb[(nh + tt) * cc + c] : (REAL)0);
                        s += cw[c * kk + j] * v;
                    }
                    Y3[(bb * T + t) * cc + c] = s;
                }
        }
    }
#pragma omp parallel for if (BT * cc > 65536) schedule(static)
    for (int64_t r = 0; r < BT; r++) {
        const REAL *y = Y3 + r * cc;
        for (int64_t i = 0; i < wq; i++) {
            Q[r * wq + i] = MBG(act)(p->fmap, MBG(act)(p->act[0], y[i]));
            K[r * wq + i] = MBG(act)(p->fmap, MBG(act)(p->act[1], y[cq + i]));
        }
        for (int64_t j = 0; j < wv; j++) V[r * wv + j] = MBG(act)(p->act[2], y[cq + ck + j]);
        for (int64_t h = 0; h < H; h++)
            for (int e = 0; e < 2; e++) {
                REAL *z = (e ? K : Q) + r * wq + h * dk, f = 1, s = 0;
                const int kind = e ? p->k_norm : p->q_norm;
                if (kind != SL_MB_NORM_NONE) {
                    for (int64_t i = 0; i < dk; i++) s += kind == SL_MB_NORM_L2 ? z[i] * z[i] : z[i];
                    f = kind == SL_MB_NORM_L2 ? (REAL)1 / RSQRT(s + (REAL)MB_L2_EPS)
                                              : kind == SL_MB_NORM_SUM ? (REAL)1 / s : (REAL)1 / (s + (REAL)1e-4);
                    for (int64_t i = 0; i < dk; i++) z[i] *= f;
                }
                (e ? nk : nq)[r * H + h] = f;
            }
    }
    if (gla) {
        const REAL nrm = (REAL)p->gk_normalizer, cmin = (REAL)p->clamp_min;
        MBG(lin)(BT, hid, rank, xn, hid, Wg0, Rr, rank, 0);
        for (int64_t r = 0; bg1 && r < BT; r++) memcpy(G0 + r * wq, bg1, (size_t)wq * sizeof(REAL));
        MBG(lin)(BT, rank, wq, Rr, rank, Wg1, G0, wq, bg1 != NULL);
        for (int64_t i = 0; i < BT * wq; i++) {
            const REAL gv = RLOGSIG(G0[i]) / nrm;
            Gl[i] = (p->has_clamp && gv < cmin) ? cmin : gv;
        }
    }
    if (has_beta) {
        if (Wb) {
            MBG(lin)(BT, hid, H, xn, hid, Wb, Bl, H, 0);
            for (int64_t i = 0; i < BT * H; i++) Bt[i] = bmul * MBG(sigm)(Bl[i]);
        } else {
            for (int64_t i = 0; i < BT * H; i++) Bt[i] = bmul;
        }
    }
    if (gated) MBG(lin)(BT, hid, wv, xn, hid, Wgp, OG, wv, 0);
    /* Heads' outputs from the kept states, output norm / gate. */
#pragma omp parallel for if (BT * wq * dv > 65536) schedule(static)
    for (int64_t r = 0; r < BT; r++)
        for (int64_t h = 0; h < H; h++) {
            const REAL *S = St + r * nc + h * dk * dv, *q = Q + r * wq + h * dk;
            REAL *o = O + r * wv + h * dv, *o2 = O2 + r * wv + h * dv;
            for (int64_t j = 0; j < dv; j++) o[j] = 0;
            for (int64_t i = 0; i < dk; i++) {
                const REAL qi = scale * q[i], *Si = S + i * dv;
                for (int64_t j = 0; j < dv; j++) o[j] += qi * Si[j];
            }
            if (rmso) {
                REAL ss = 0;
                for (int64_t j = 0; j < dv; j++) ss += o[j] * o[j];
                const REAL rr = (REAL)1 / RSQRT(ss / (REAL)dv + eps);
                ro[r * H + h] = rr;
                for (int64_t j = 0; j < dv; j++) {
                    o2[j] = o[j] * rr * (onw ? onw[j] : (REAL)1);
                    if (gated) {
                        const REAL z = OG[r * wv + h * dv + j];
                        o2[j] *= z * MBG(sigm)(z);
                    }
                }
            } else {
                for (int64_t j = 0; j < dv; j++) o2[j] = o[j];
            }
        }
    MBG(lin)(BT, wv, hid, O2, wv, Wo, Hh, hid, 0);
    for (int64_t i = 0; i < BT * hid; i++) Hh[i] += x[i];
    MBG(rms_fwd)(BT, hid, Hh, mn, eps, Hn);
    MBG(lin)(BT, hid, I, Hn, hid, Wgt, GA, I, 0);
    MBG(lin)(BT, hid, I, Hn, hid, Wup, UP, I, 0);
#pragma omp parallel for if (BT * I > 65536) schedule(static)
    for (int64_t i = 0; i < BT * I; i++) Mm[i] = GA[i] * MBG(sigm)(GA[i]) * UP[i];

    /* ---- backward: MLP half */
    const REAL *dy = b->dy;
    MBG(lin_bwd)(BT, I, hid, Mm, I, Wdn, dy, hid, RGRAD(g, p->w_down), Mm, I, 0);   /* Mm <- dM */
#pragma omp parallel for if (BT * I > 65536) schedule(static)
    for (int64_t i = 0; i < BT * I; i++) {
        const REAL a = GA[i], s = MBG(sigm)(a), dm = Mm[i];
        GA[i] = dm * UP[i] * s * ((REAL)1 + a * ((REAL)1 - s));
        UP[i] = dm * a * s;
    }
    MBG(lin_bwd)(BT, hid, I, Hn, hid, Wgt, GA, I, RGRAD(g, p->w_gate), dhn, hid, 0);
    MBG(lin_bwd)(BT, hid, I, Hn, hid, Wup, UP, I, RGRAD(g, p->w_up), dhn, hid, 1);
    NBRMS(BT, hid, Hh, p->mlp_norm, eps, dhn, dh, RGRAD(g, p->mlp_norm));
    for (int64_t i = 0; i < BT * hid; i++) dh[i] += dy[i];

    /* ---- attention half: o_proj, output norm / gate */
    MBG(lin_bwd)(BT, wv, hid, O2, wv, Wo, dh, hid, RGRAD(g, p->wo), dO2, wv, 0);
    REAL *gonw = rmso ? RGRAD(g, p->onorm_w) : NULL;
#pragma omp parallel for if (BT * wv > 65536) schedule(static)
    for (int64_t r = 0; r < BT; r++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t o0 = r * wv + h * dv;
            const REAL *o = O + o0;
            REAL *dn = dO2 + o0, *d = dO + o0;
            if (!rmso) {
                for (int64_t j = 0; j < dv; j++) d[j] = dn[j];
                continue;
            }
            const REAL rr = ro[r * H + h];
            if (gated)
                for (int64_t j = 0; j < dv; j++) {
                    const REAL z = OG[o0 + j], s = MBG(sigm)(z), n = o[j] * rr * (onw ? onw[j] : (REAL)1);
                    dOG[o0 + j] = dn[j] * n * s * ((REAL)1 + z * ((REAL)1 - s));
                    dn[j] *= z * s;   /* dO2 <- dL/d(normed o) */
                }
            REAL s = 0;
            for (int64_t j = 0; j < dv; j++) s += dn[j] * (onw ? onw[j] : (REAL)1) * o[j];
            const REAL c = rr * rr * rr * s / (REAL)dv;
            for (int64_t j = 0; j < dv; j++) d[j] = rr * (onw ? onw[j] : (REAL)1) * dn[j] - c * o[j];
        }
    if (gonw)
        for (int64_t r = 0; r < BT; r++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t j = 0; j < dv; j++)
                    gonw[j] += dO2[r * wv + h * dv + j] * O[r * wv + h * dv + j] * ro[r * H + h];

    /* ---- the scans, one per (sequence, head) */
#pragma omp parallel for num_threads(nt) schedule(dynamic) if (B * H > 1)
    for (int64_t bh = 0; bh < B * H; bh++) {
        const int64_t bb = bh / H, h = bh % H, r0 = bb * T;
        MSB_SEQ s = { .T = T, .dk = dk, .dv = dv, .q = Q + r0 * wq + h * dk, .k = K + r0 * wq + h * dk,
                      .v = V + r0 * wv + h * dv, .ldq = wq, .ldk = wq, .ldv = wv, .scale = scale,
                      .S0 = c0 ? c0 + bb * nc + h * dk * dv : NULL, .S = St + r0 * nc + h * dk * dv, .ldS = nc,
                      .dout = dO + r0 * wv + h * dv, .lddo = wv, .dq = dQ + r0 * wq + h * dk,
                      .dkk = dK + r0 * wq + h * dk, .dvv = dV + r0 * wv + h * dv, .lddq = wq, .lddk = wq, .lddv = wv,
                      .dS0 = b->dcarry0 ? b->dcarry0 + bb * nc + h * dk * dv : NULL };
        if (gla) {
            s.g = Gl + r0 * wq + h * dk; s.ldg = wq; s.gdim = dk;
            s.dg = dG + r0 * wq + h * dk; s.lddg = wq;
        }
        if (has_beta) {
            s.beta = Bt + r0 * H + h; s.ldb = H;
            s.dbeta = dBt + r0 * H + h; s.lddb = H;
        }
        MSB_FN(&s, swork + (int64_t)omp_get_thread_num() * wsc);
    }

    /* ---- gates, beta, output gate -> dxn */
    memset(dxn, 0, (size_t)(BT * hid) * sizeof(REAL));
    if (gla) {
        const REAL nrm = (REAL)p->gk_normalizer, cmin = (REAL)p->clamp_min;
        for (int64_t i = 0; i < BT * wq; i++) {
            const REAL gv = RLOGSIG(G0[i]) / nrm;
            dG[i] = (p->has_clamp && gv < cmin) ? (REAL)0 : dG[i] * MBG(sigm)(-G0[i]) / nrm;
        }
        MBG(lin_bwd)(BT, rank, wq, Rr, rank, Wg1, dG, wq, RGRAD(g, p->gk1), dR, rank, 0);
        REAL *gb = RGRAD(g, p->gk1_b);
        for (int64_t r = 0; gb && r < BT; r++)
            for (int64_t i = 0; i < wq; i++) gb[i] += dG[r * wq + i];
        MBG(lin_bwd)(BT, hid, rank, xn, hid, Wg0, dR, rank, RGRAD(g, p->gk0), dxn, hid, 1);
    }
    if (Wb) {
        for (int64_t i = 0; i < BT * H; i++) {
            const REAL s = MBG(sigm)(Bl[i]);
            dBt[i] *= bmul * s * ((REAL)1 - s);
        }
        MBG(lin_bwd)(BT, hid, H, xn, hid, Wb, dBt, H, RGRAD(g, p->wb), dxn, hid, 1);
    }
    if (gated) MBG(lin_bwd)(BT, hid, wv, xn, hid, Wgp, dOG, wv, RGRAD(g, p->wg), dxn, hid, 1);

    /* ---- q, k, v: norms, feature maps, activations -> dY3 */
#pragma omp parallel for if (BT * cc > 65536) schedule(static)
    for (int64_t r = 0; r < BT; r++) {
        const REAL *y = Y3 + r * cc;
        REAL *dy3 = dY3 + r * cc;
        for (int64_t h = 0; h < H; h++)
            for (int e = 0; e < 2; e++) {
                const int kind = e ? p->k_norm : p->q_norm;
                const REAL *z = (e ? K : Q) + r * wq + h * dk, f = (e ? nk : nq)[r * H + h];
                REAL *dz = (e ? dK : dQ) + r * wq + h * dk, s = 0;
                if (kind == SL_MB_NORM_L2) {
                    for (int64_t i = 0; i < dk; i++) s += z[i] * dz[i];
                    for (int64_t i = 0; i < dk; i++) dz[i] = f * (dz[i] - z[i] * s);
                } else if (kind != SL_MB_NORM_NONE) {
                    for (int64_t i = 0; i < dk; i++) s += z[i] * dz[i];
                    for (int64_t i = 0; i < dk; i++) dz[i] = f * (dz[i] - s);
                }
                const int64_t c0i = e ? cq : 0;
                const int a = p->act[e];
                for (int64_t i = 0; i < dk; i++) {
                    REAL d1, d2;
                    const REAL a1 = MBG(act_d)(a, y[c0i + h * dk + i], &d1);
                    if (p->fmap != SL_MB_ACT_NONE) MBG(act_d)(p->fmap, a1, &d2);
                    else d2 = 1;
                    dy3[c0i + h * dk + i] = dz[i] * d1 * d2;
                }
            }
        for (int64_t j = 0; j < wv; j++) dy3[cq + ck + j] = dV[r * wv + j] * MBG(dact)(p->act[2], y[cq + ck + j]);
    }

    /* ---- short convolutions (kernels/nn_backward.c on the concatenated q|k|v
    ** channels; the weight gradient then goes to the three tensors) */
    if (kk > 0) {
        for (int64_t bb = 0; hist && bb < B; bb++)
            memcpy(hist + bb * nh * cc, c0 + bb * nc + im->off_conv, (size_t)(nh * cc) * sizeof(REAL));
        memset(cdw, 0, (size_t)(cc * kk) * sizeof(REAL));
        memset(cdb, 0, (size_t)cc * sizeof(REAL));
        NBCONV(B, T, cc, kk, X3, cc, im->conv_w, hist, dY3, cc, dX3, cc, cdw, im->conv_b ? cdb : NULL, dhist);
        for (int64_t bb = 0; dhist && bb < B; bb++)
            memcpy(b->dcarry0 + bb * nc + im->off_conv, dhist + bb * nh * cc, (size_t)(nh * cc) * sizeof(REAL));
        const int64_t ch[3] = { cq, ck, wv };
        int64_t c0c = 0;
        for (int sidx = 0; sidx < 3; c0c += ch[sidx], sidx++) {
            REAL *gw = RGRAD(g, p->conv_w[sidx]), *gb = RGRAD(g, p->conv_b[sidx]);
            for (int64_t i = 0; gw && i < ch[sidx] * kk; i++) gw[i] += cdw[c0c * kk + i];
            for (int64_t i = 0; gb && i < ch[sidx]; i++) gb[i] += cdb[c0c + i];
        }
    }

    /* ---- q, k, v projections, attn_norm, residual */
    MBG(lin_bwd)(BT, hid, cq, xn, hid, Wq, dX3, cc, RGRAD(g, p->wq), dxn, hid, 1);
    MBG(lin_bwd)(BT, hid, ck, xn, hid, Wk, dX3 + cq, cc, RGRAD(g, p->wk), dxn, hid, 1);
    MBG(lin_bwd)(BT, hid, wv, xn, hid, Wv, dX3 + cq + ck, cc, RGRAD(g, p->wv), dxn, hid, 1);
    NBRMS(BT, hid, x, p->attn_norm, eps, dxn, b->dx, RGRAD(g, p->attn_norm));
    for (int64_t i = 0; b->dx && i < BT * hid; i++) b->dx[i] += dh[i];
    sl_scratch_free(&own);
    return SL_OK;
}
