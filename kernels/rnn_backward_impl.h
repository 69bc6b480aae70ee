/*
** The body of the gated-recurrence backward pass, compiled twice by
** rnn_backward.c: for float (the training path) and for double (the
** reference). See train.h for the algorithm. Expects:
**   REAL        float or double
**   RB(name)    name with the precision's suffix
**   RGEMM       sl_sgemm or sl_dgemm (the products with the input, often one feature)
**   RB_MM       sl_bptt_gemm or sl_bptt_gemm_f64 (the recurrent products)
**   RTANHV, RSIGM  tanh and sigmoid (vectorisable for float, libm for double)
**   RB_CLONES   function attributes of the elementwise rows (ISA clones for float)
**   RB_DOUBLE   1 for the double instantiation
**   RB_GRADS    sl_rnn_grads or sl_rnn_grads_f64
**   RB_FN       the public function name, RB_WS_FN its workspace size function
*/


size_t RB_WS_FN(const sl_rnn_weights *w, int64_t B, int64_t T)
{
    const int64_t H = w->H, GH = sl_cell_gates(w->cell) * H, BT = B * T;
    size_t n = (size_t)((w->cell == SL_CELL_GRU ? 2 : 1) * BT * GH + BT * H + 4 * B * H + 3 * H + GH * H +
                        (2 + SL_MIN(w->in, 8)) * GH + 64);
#if RB_DOUBLE
    n += (size_t)(GH * w->in + GH * H);
#endif
    return n * sizeof(REAL);
}

/* The weights as REAL: the float tensors themselves, or a converted copy. */
static const REAL *RB(wload)(const float *src, int64_t n, REAL *dst)
{
#if RB_DOUBLE
    for (int64_t i = 0; i < n; i++) dst[i] = (REAL)src[i];
    return dst;
#else
    (void)n;
    (void)dst;
    return src;
#endif
}

/* The elementwise part of one step for one sequence: dL/dh_t (dh + dy) and
** dL/dc_t into the gate pre-activation gradients, written over the
** pre-activations in a (and hh for GRU's recurrent part); dn gets the direct
** part of dL/dh_{t-1}. This one is the LSTM's, from the gate activations (a
** holds i, f, g, o). */
RB_CLONES static void RB(row_lstm_act)(int64_t H, REAL *restrict a, const REAL *restrict c,
                                       const REAL *restrict cprev, const REAL *restrict dy, const REAL *restrict dh,
                                       REAL *restrict dc, REAL *restrict dn)
{
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
        REAL i = a[j], f = a[H + j], gg = a[2 * H + j], o = a[3 * H + j];
        REAL tc = RTANHV(c[j]);
        REAL dht = dh[j] + dy[j];
        REAL dct = dc[j] + dht * o * ((REAL)1 - tc * tc);
        a[j] = dct * gg * i * ((REAL)1 - i);
        a[H + j] = dct * cprev[j] * f * ((REAL)1 - f);
        a[2 * H + j] = dct * i * ((REAL)1 - gg * gg);
        a[3 * H + j] = dht * tc * o * ((REAL)1 - o);
        dc[j] = dct * f;
        dn[j] = 0;
    }
}

/* The same from the pre-activations (a holds them): the activations first,
** in place, then the cell's derivative (the same operations, the same bits). */
RB_CLONES static void RB(row_lstm)(int64_t H, REAL *restrict a, const REAL *restrict c, const REAL *restrict cprev,
                                   const REAL *restrict dy, const REAL *restrict dh, REAL *restrict dc,
                                   REAL *restrict dn)
{
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
        a[j] = RSIGM(a[j]);
        a[H + j] = RSIGM(a[H + j]);
        a[2 * H + j] = RTANHV(a[2 * H + j]);
        a[3 * H + j] = RSIGM(a[3 * H + j]);
    }
    RB(row_lstm_act)(H, a, c, cprev, dy, dh, dc, dn);
}

RB_CLONES static void RB(row_gru)(int64_t H, REAL *restrict a, REAL *restrict hh, const REAL *restrict hprev,
                                  const REAL *restrict dy, const REAL *restrict dh, REAL *restrict dn)
{
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
        REAL rr = RSIGM(a[j] + hh[j]), z = RSIGM(a[H + j] + hh[H + j]);
        REAL hn = hh[2 * H + j], n = RTANHV(a[2 * H + j] + rr * hn);
        REAL dht = dh[j] + dy[j];
        REAL dpn = dht * ((REAL)1 - z) * ((REAL)1 - n * n);
        REAL dpz = dht * (hprev[j] - n) * z * ((REAL)1 - z);
        REAL dpr = dpn * hn * rr * ((REAL)1 - rr);
        a[j] = dpr; a[H + j] = dpz; a[2 * H + j] = dpn;
        hh[j] = dpr; hh[H + j] = dpz; hh[2 * H + j] = dpn * rr;
        dn[j] = dht * z;
    }
}

RB_CLONES static void RB(row_rnn)(int64_t H, int relu, const REAL *restrict alpha, REAL *restrict a,
                                  const REAL *restrict hprev, const REAL *restrict dy, const REAL *restrict dh,
                                  REAL *restrict dn, REAL *restrict dal)
{
    if (relu) {
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            REAL p = a[j], act = p > 0 ? p : (REAL)0, der = p > 0 ? (REAL)1 : (REAL)0;
            REAL dht = dh[j] + dy[j], al = alpha ? alpha[j] : (REAL)1;
            a[j] = dht * al * der;
            dn[j] = dht * ((REAL)1 - al);
            if (alpha) dal[j] += dht * (act - hprev[j]);
        }
    } else {
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            REAL act = RTANHV(a[j]), der = (REAL)1 - act * act;
            REAL dht = dh[j] + dy[j], al = alpha ? alpha[j] : (REAL)1;
            a[j] = dht * al * der;
            dn[j] = dht * ((REAL)1 - al);
            if (alpha) dal[j] += dht * (act - hprev[j]);
        }
    }
}

int RB_FN(const sl_rnn_weights *w, int64_t B, int64_t T, const REAL *x, const REAL *carry0, const REAL *states,
          const REAL *gates, const REAL *dy, REAL *dx, REAL *dcarry0, const RB_GRADS *g, void *ws, size_t ws_size,
          sl_err *err)
{
    const int64_t H = w->H, in = w->in, G = sl_cell_gates(w->cell), GH = G * H, nc = sl_cell_carry(w->cell, H);
    const int64_t BT = B * T;
    const int gru = w->cell == SL_CELL_GRU, lstm = w->cell == SL_CELL_LSTM, relu = w->cell == SL_CELL_RNN_RELU;
    if (B == 0) return SL_OK;
    if (T == 0) {
        if (dcarry0) memset(dcarry0, 0, (size_t)(B * nc) * sizeof *dcarry0);
        return SL_OK;
    }
    if (ws_size < RB_WS_FN(w, B, T)) return sl_err_set(err, SL_EINTERNAL, "backward workspace too small");
    if (gates && !lstm) return sl_err_set(err, SL_EINVAL, "only the LSTM backward reads kept gates");
    REAL *A = ws;                       /* [BT, GH]: input pre-activations, then dL/d(input pre-activations) */
    REAL *Hh = gru ? A + BT * GH : A;   /* [BT, GH]: GRU's recurrent pre-activations, then their gradient */
    REAL *Hp = Hh + BT * GH;            /* [BT, H]: h_{t-1} of every step */
    REAL *dh = Hp + BT * H;             /* [B, H]: dL/dh_t from the steps after t */
    REAL *dn = dh + B * H;              /* [B, H]: dL/dh_{t-1}, direct part, then the full one */
    REAL *dc = dn + B * H;              /* [B, H]: dL/dc_t (LSTM) */
    REAL *dal = dc + B * H;             /* [B, H]: dL/dalpha per sequence (leaky RNN) */
    REAL *alpha = dal + B * H;          /* [H]: 1/tau */
    REAL *zrow = alpha + H;             /* [H]: zeros (c_{-1} without a start carry) */
    REAL *WT = zrow + H;                /* [H, GH]: W_hh transposed */
    REAL *brow = WT + GH * H;           /* [2, GH]: the bias rows of A and Hh */
    REAL *xacc = brow + 2 * GH;         /* [in <= 8, GH]: dW_ih transposed, for few inputs */
    REAL *wbuf = xacc + SL_MIN(in, 8) * GH;
    const int few = in <= 8;            /* few inputs (bits, symbols): loops instead of BLAS */
    const REAL *Wih = RB(wload)(w->w_ih, GH * in, wbuf);
    const REAL *Whh = RB(wload)(w->w_hh, GH * H, wbuf + GH * in);
    for (int64_t q = 0; !gates && q < GH; q++)   /* for the recomputed pre-activations */
        for (int64_t j = 0; j < H; j++) WT[j * GH + q] = (REAL)w->w_hh[q * H + j];
    const int leaky = w->tau != NULL;
    for (int64_t j = 0; leaky && j < H; j++)
#if RB_DOUBLE
        alpha[j] = 1.0 / (double)w->tau[j];
#else
        alpha[j] = w->alpha ? w->alpha[j] : 1.0f / w->tau[j];
#endif

    /* h_{t-1} for every (b, t). */
    for (int64_t b = 0; b < B; b++) {
        REAL *r = Hp + b * T * H;
        if (carry0) memcpy(r, carry0 + b * nc, (size_t)H * sizeof *r);
        else memset(r, 0, (size_t)H * sizeof *r);
        for (int64_t t = 1; t < T; t++) memcpy(r + t * H, states + (b * T + t - 1) * nc, (size_t)H * sizeof *r);
    }
    /* Pre-activations of all steps: A = X W_ih^T + b_ih, Hh = H_prev W_hh^T + b_hh
    ** (GRU keeps them apart for the reset gate; the others sum both into A). */
    for (int64_t k = 0; k < GH; k++) {
        brow[k] = (w->b_ih ? (REAL)w->b_ih[k] : (REAL)0) + (!gru && w->b_hh ? (REAL)w->b_hh[k] : (REAL)0);
        brow[GH + k] = w->b_hh ? (REAL)w->b_hh[k] : (REAL)0;
    }
    if (few) {
        /* xacc holds W_ih transposed here ([in, GH]); later dW_ih transposed. */
        for (int64_t q = 0; q < GH; q++)
            for (int64_t i = 0; i < in; i++) xacc[i * GH + q] = (REAL)w->w_ih[q * in + i];
    }
    for (int64_t r = 0; gates && r < BT; r++)   /* gates are time-major: row (t, b) at t * B + b */
        memcpy(A + r * GH, gates + ((r % T) * B + r / T) * GH, (size_t)GH * sizeof *A);
    for (int64_t r = 0; !gates && r < BT; r++) {
        REAL *ar = A + r * GH;
        memcpy(ar, brow, (size_t)GH * sizeof *ar);
        for (int64_t i = 0; few && i < in; i++) {
            const REAL xi = x[r * in + i], *wi = xacc + i * GH;
#pragma omp simd
            for (int64_t k = 0; k < GH; k++) ar[k] += xi * wi[k];
        }
        if (gru) memcpy(Hh + r * GH, brow + GH, (size_t)GH * sizeof *ar);
    }
    if (!few && !gates) RGEMM(0, 1, BT, GH, in, 1, x, in, Wih, in, 1, A, GH);
    if (!gates) RB_MM(BT, GH, H, Hp, H, 1, WT, GH, 1, gru ? Hh : A, GH);
    REAL *dG = gru ? Hh : A;            /* gradient of the recurrent pre-activations */

    memset(dh, 0, (size_t)(B * H) * sizeof *dh);
    memset(dc, 0, (size_t)(B * H) * sizeof *dc);
    memset(dal, 0, (size_t)(B * H) * sizeof *dal);
    memset(zrow, 0, (size_t)H * sizeof *zrow);
    for (int64_t t = T - 1; t >= 0; t--) {
#pragma omp parallel for if (B * GH >= 32768) schedule(static)
        for (int64_t b = 0; b < B; b++) {
            const int64_t r = b * T + t;
            REAL *a = A + r * GH, *hh = Hh + r * GH;
            const REAL *hprev = Hp + r * H, *st = states + r * nc, *dyt = dy + r * H;
            REAL *dhb = dh + b * H, *dnb = dn + b * H, *dcb = dc + b * H, *dab = dal + b * H;
            if (lstm) {
                const REAL *cprev = t ? states + (r - 1) * nc + H : (carry0 ? carry0 + b * nc + H : zrow);
                if (gates) RB(row_lstm_act)(H, a, st + H, cprev, dyt, dhb, dcb, dnb);
                else RB(row_lstm)(H, a, st + H, cprev, dyt, dhb, dcb, dnb);
            } else if (gru) {
                RB(row_gru)(H, a, hh, hprev, dyt, dhb, dnb);
            } else {
                RB(row_rnn)(H, relu, leaky ? alpha : NULL, a, hprev, dyt, dhb, dnb, dab);
            }
        }
        /* dL/dh_{t-1} = direct part + dG_t W_hh (rows of step t are T*GH apart). */
        RB_MM(B, H, GH, dG + t * GH, T * GH, 1, Whh, H, 1, dn, H);
        REAL *tmp = dh; dh = dn; dn = tmp;
    }
    if (dcarry0)
        for (int64_t b = 0; b < B; b++) {
            memcpy(dcarry0 + b * nc, dh + b * H, (size_t)H * sizeof *dcarry0);
            if (lstm) memcpy(dcarry0 + b * nc + H, dc + b * H, (size_t)H * sizeof *dcarry0);
        }

    /* Parameter gradients over all steps at once. */
    if (g->w_ih && few) {
        memset(xacc, 0, (size_t)(in * GH) * sizeof *xacc);
        for (int64_t r = 0; r < BT; r++)
            for (int64_t i = 0; i < in; i++) {
                const REAL xi = x[r * in + i], *ar = A + r * GH;
                REAL *acc = xacc + i * GH;
#pragma omp simd
                for (int64_t q = 0; q < GH; q++) acc[q] += ar[q] * xi;
            }
        for (int64_t q = 0; q < GH; q++)
            for (int64_t i = 0; i < in; i++) g->w_ih[q * in + i] += xacc[i * GH + q];
    } else if (g->w_ih) {
        RGEMM(1, 0, GH, in, BT, 1, A, GH, x, in, 1, g->w_ih, in);
    }
    if (g->w_hh) RB_MM(GH, H, BT, dG, 1, GH, Hp, H, 1, g->w_hh, H);
    /* Bias gradients: column sums (the recurrent ones equal the input ones
    ** except for GRU's candidate gate). */
    REAL *cs = dn;                      /* B * H >= GH is not guaranteed: sum in chunks of H */
    for (int64_t k0 = 0; k0 < GH && ((g->b_ih && w->b_ih) || (g->b_hh && w->b_hh)); k0 += H) {
        for (int pass = 0; pass < (gru ? 2 : 1); pass++) {
            const REAL *src = pass ? dG : A;
            memset(cs, 0, (size_t)H * sizeof *cs);
            for (int64_t r = 0; r < BT; r++) {
                const REAL *sr = src + r * GH + k0;
#pragma omp simd
                for (int64_t k = 0; k < H; k++) cs[k] += sr[k];
            }
            for (int64_t k = 0; k < H; k++) {
                if (!pass && g->b_ih && w->b_ih) g->b_ih[k0 + k] += cs[k];
                if ((pass || !gru) && g->b_hh && w->b_hh) g->b_hh[k0 + k] += cs[k];
            }
        }
    }
    if (g->tau && leaky)
        for (int64_t j = 0; j < H; j++) {
            REAL s = 0;
            for (int64_t b = 0; b < B; b++) s += dal[b * H + j];
            g->tau[j] += -s * alpha[j] * alpha[j];   /* dalpha/dtau = -1/tau^2 */
        }
    if (dx) RGEMM(0, 0, BT, in, GH, 1, A, GH, Wih, in, 0, dx, in);
    return SL_OK;
}
