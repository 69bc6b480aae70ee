/*
** The matrix-state scans (kernels/matstate.c) as a template: matstate.c
** includes this file once per instruction set inside a `#pragma GCC target`
** region, with SFX defined, so the `omp simd` loops (the exponentials of the
** decay masks, the triangular solve, the state updates) become zmm, ymm or
** xmm code chosen at run time (sl_kernels_isa). The chunks' products go
** through sl_gemm_f32 (kernels/gemm.c), which dispatches the same way. The
** algorithms are described in matstate.h and at the top of matstate.c.
*/

#pragma omp declare simd
static inline float SFX(ms_exp)(float x)
{
    const float lo = -87.0f, hi = 88.0f;
    float xc = x < lo ? lo : (x > hi ? hi : x);
    float n = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { float f; int32_t i; } u;
    u.i = ((int32_t)n + 127) << 23;
    return x < lo ? 0.0f : p * u.f;
}

/* ------------------------------------------------------------ recurrent */
static void SFX(recurrent)(const sl_ms_seq *s, float *tmp)
{
    const int64_t dk = s->dk, dv = s->dv;
    float *S = s->S;
    for (int64_t t = 0; t < s->T; t++) {
        const float *q = s->q + t * s->ldq, *k = s->k + t * s->ldk, *v = s->v + t * s->ldv;
        const float *g = s->g ? s->g + t * s->ldg : NULL;
        float *o = s->o + t * s->ldo;
        for (int64_t p = 0; p < dv; p++) o[p] = 0.0f;
        if (s->beta) {
            const float a = g ? SFX(ms_exp)(g[0]) : 1.0f, b = s->beta[t * s->ldb];
            for (int64_t p = 0; p < dv; p++) tmp[p] = 0.0f;
            for (int64_t i = 0; i < dk; i++) {
                const float ki = k[i], *Si = S + i * dv;
#pragma omp simd
                for (int64_t p = 0; p < dv; p++) tmp[p] += ki * Si[p];
            }
#pragma omp simd
            for (int64_t p = 0; p < dv; p++) tmp[p] = b * (v[p] - a * tmp[p]);
            for (int64_t i = 0; i < dk; i++) {
                const float ki = k[i], qi = q[i];
                float *Si = S + i * dv;
#pragma omp simd
                for (int64_t p = 0; p < dv; p++) {
                    float x = a * Si[p] + ki * tmp[p];
                    Si[p] = x;
                    o[p] += qi * x;
                }
            }
        } else {
            const float a0 = g ? SFX(ms_exp)(g[0]) : 1.0f;
            float *av = tmp + dv;
            if (g && s->gdim > 1) {
#pragma omp simd
                for (int64_t i = 0; i < dk; i++) av[i] = SFX(ms_exp)(g[i]);
            }
            for (int64_t i = 0; i < dk; i++) {
                const float ai = (g && s->gdim > 1) ? av[i] : a0, ki = k[i], qi = q[i];
                float *Si = S + i * dv;
#pragma omp simd
                for (int64_t p = 0; p < dv; p++) {
                    float x = ai * Si[p] + ki * v[p];
                    Si[p] = x;
                    o[p] += qi * x;
                }
            }
        }
#pragma omp simd
        for (int64_t p = 0; p < dv; p++) o[p] *= s->scale;
    }
}

/* Scalar or no gate, no delta rule. */
static void SFX(chunk_gated_scalar)(const sl_ms_seq *s, int64_t t0, int64_t n, ms_work *w)
{
    const int64_t dk = s->dk, dv = s->dv;
    const float *q = s->q + t0 * s->ldq, *k = s->k + t0 * s->ldk, *v = s->v + t0 * s->ldv;
    float *o = s->o + t0 * s->ldo, *A = w->A, *G = w->G;
    const int gated = s->g != NULL;
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (gated) acc += s->g[(t0 + i) * s->ldg];
        G[i] = acc;
    }
    ms_transpose(n, dk, k, s->ldk, w->KT);
    ms_mm(0, n, n, dk, 1.0f, q, s->ldq, w->KT, n, 0, A, n);
    for (int64_t i = 0; i < n; i++) {
        float *Ai = A + i * n;
        const float Gi = G[i];
        if (gated) {
#pragma omp simd
            for (int64_t j = 0; j <= i; j++) Ai[j] *= SFX(ms_exp)(Gi - G[j]);
        }
        for (int64_t j = i + 1; j < n; j++) Ai[j] = 0.0f;
    }
    ms_mm(0, n, dv, n, s->scale, A, n, v, s->ldv, 0, o, s->ldo);
    if (gated) {
        for (int64_t i = 0; i < n; i++) {
            const float e = SFX(ms_exp)(G[i]);
#pragma omp simd
            for (int64_t d = 0; d < dk; d++) w->Q1[i * dk + d] = e * q[i * s->ldq + d];
        }
        ms_mm(0, n, dv, dk, s->scale, w->Q1, dk, s->S, dv, 1, o, s->ldo);
    } else {
        ms_mm(0, n, dv, dk, s->scale, q, s->ldq, s->S, dv, 1, o, s->ldo);
    }
    if (gated) {
        const float Gl = G[n - 1], el = SFX(ms_exp)(Gl);
        for (int64_t i = 0; i < dk * dv; i++) s->S[i] *= el;
        for (int64_t j = 0; j < n; j++) {
            const float e = SFX(ms_exp)(Gl - G[j]);
#pragma omp simd
            for (int64_t d = 0; d < dk; d++) w->K1[j * dk + d] = e * k[j * s->ldk + d];
        }
        ms_mm(1, dk, dv, n, 1.0f, w->K1, dk, v, s->ldv, 1, s->S, dv);
    } else {
        ms_mm(1, dk, dv, n, 1.0f, k, s->ldk, v, s->ldv, 1, s->S, dv);
    }
}

/* Per-key-dimension gate (GLA), secondary chunking. With sub-chunks I, J of
** MS_SUB rows (or the whole chunk as one when its decay spans less than
** e^MS_MAX_SPAN), I0 the row before I's first and Je the last row of J:
**   exp(G_i - G_j) = exp(G_i - G_I0) * exp(G_I0 - G_Je) * exp(G_Je - G_j)
**                  =   Qh_i         *   D_IJ          *   Kh_j
** Qh and Kh are formed once per row (exponents <= 0), D once per pair of
** sub-chunks (<= 0 for J < I; for J = I it is the sub-chunk's own decay
** span, >= 0, used only while below MS_MAX_SPAN). The inter-chunk query and
** the state's key scaling reuse Qh and Kh with one exponential per sub-chunk. */
static void SFX(chunk_gated_vector)(const sl_ms_seq *s, int64_t t0, int64_t n, ms_work *w)
{
    const int64_t dk = s->dk, dv = s->dv;
    const float *q = s->q + t0 * s->ldq, *k = s->k + t0 * s->ldk, *v = s->v + t0 * s->ldv;
    float *o = s->o + t0 * s->ldo, *A = w->A, *G = w->G, *Qh = w->Q1, *Kh = w->K2, *KD = w->K1, *X = w->W;
    float *e = w->r;   /* dk floats */
    for (int64_t i = 0; i < n; i++) {
        const float *gi = s->g + (t0 + i) * s->ldg, *prev = i ? G + (i - 1) * dk : NULL;
        for (int64_t d = 0; d < dk; d++) G[i * dk + d] = gi[d] + (prev ? prev[d] : 0.0f);
    }
    /* One sub-chunk for the whole chunk when its decay allows, else MS_SUB rows. */
    float cspan = 0.0f;
    for (int64_t d = 0; d < dk; d++) cspan = fmaxf(cspan, -G[(n - 1) * dk + d]);
    const int64_t sub = cspan <= MS_MAX_SPAN ? n : MS_SUB;
    /* Qh, Kh per sub-chunk; X = q . exp(G_i) for the inter-chunk part. */
    for (int64_t i0 = 0; i0 < n; i0 += sub) {
        const int64_t i1 = SL_MIN(n, i0 + sub);
        const float *ref = i0 ? G + (i0 - 1) * dk : w->z, *Ge = G + (i1 - 1) * dk;
        for (int64_t i = i0; i < i1; i++) {
            const float *Gi = G + i * dk;
#pragma omp simd
            for (int64_t d = 0; d < dk; d++) {
                Qh[i * dk + d] = q[i * s->ldq + d] * SFX(ms_exp)(Gi[d] - ref[d]);
                Kh[i * dk + d] = k[i * s->ldk + d] * SFX(ms_exp)(Ge[d] - Gi[d]);
            }
        }
#pragma omp simd
        for (int64_t d = 0; d < dk; d++) e[d] = SFX(ms_exp)(ref[d]);
        for (int64_t i = i0; i < i1; i++) {
#pragma omp simd
            for (int64_t d = 0; d < dk; d++) X[i * dk + d] = Qh[i * dk + d] * e[d];
        }
    }
    ms_mm(0, n, dv, dk, s->scale, X, dk, s->S, dv, 0, o, s->ldo);
    /* Intra-chunk scores, one GEMM per row sub-chunk. */
    memset(A, 0, (size_t)(n * n) * sizeof *A);
    for (int64_t i0 = 0; i0 < n; i0 += sub) {
        const int64_t i1 = SL_MIN(n, i0 + sub), m = i1 - i0;
        const float *ref = i0 ? G + (i0 - 1) * dk : w->z, *Gie = G + (i1 - 1) * dk;
        float span = 0.0f;
        for (int64_t d = 0; d < dk; d++) span = fmaxf(span, ref[d] - Gie[d]);
        const int64_t jmax = span <= MS_MAX_SPAN ? i1 : i0;
        for (int64_t j0 = 0; j0 < jmax; j0 += sub) {
            const int64_t j1 = SL_MIN(n, j0 + sub);
            const float *Gje = G + (j1 - 1) * dk;
#pragma omp simd
            for (int64_t d = 0; d < dk; d++) e[d] = SFX(ms_exp)(ref[d] - Gje[d]);
            for (int64_t j = j0; j < j1; j++) {
#pragma omp simd
                for (int64_t d = 0; d < dk; d++) KD[j * dk + d] = Kh[j * dk + d] * e[d];
            }
        }
        if (jmax > 0) {
            ms_transpose(jmax, dk, KD, dk, w->KT);
            ms_mm(0, m, jmax, dk, 1.0f, Qh + i0 * dk, dk, w->KT, jmax, 0, A + i0 * n, n);
        }
        if (jmax == i0) {
            /* Decay too steep to factor: exp(G_i - G_j) directly. */
            for (int64_t i = i0; i < i1; i++)
                for (int64_t j = i0; j <= i; j++) {
                    float acc = 0.0f;
                    for (int64_t d = 0; d < dk; d++)
                        acc += q[i * s->ldq + d] * k[j * s->ldk + d] * SFX(ms_exp)(G[i * dk + d] - G[j * dk + d]);
                    A[i * n + j] = acc;
                }
        }
        for (int64_t i = i0; i < i1; i++)
            for (int64_t j = i + 1; j < i1; j++) A[i * n + j] = 0.0f;
    }
    ms_mm(0, n, dv, n, s->scale, A, n, v, s->ldv, 1, o, s->ldo);
    /* State: S = diag(exp(G_last)) S + (K . exp(G_last - G_j))^T V, with
    ** exp(G_last - G_j) = exp(G_last - G_Je) Kh_j. */
    const float *Gl = G + (n - 1) * dk;
    for (int64_t d = 0; d < dk; d++) {
        const float ed = SFX(ms_exp)(Gl[d]);
        float *Sd = s->S + d * dv;
#pragma omp simd
        for (int64_t p = 0; p < dv; p++) Sd[p] *= ed;
    }
    for (int64_t j0 = 0; j0 < n; j0 += sub) {
        const int64_t j1 = SL_MIN(n, j0 + sub);
        const float *Gje = G + (j1 - 1) * dk;
#pragma omp simd
        for (int64_t d = 0; d < dk; d++) e[d] = SFX(ms_exp)(Gl[d] - Gje[d]);
        for (int64_t j = j0; j < j1; j++) {
#pragma omp simd
            for (int64_t d = 0; d < dk; d++) KD[j * dk + d] = Kh[j * dk + d] * e[d];
        }
    }
    ms_mm(1, dk, dv, n, 1.0f, KD, dk, v, s->ldv, 1, s->S, dv);
}

/* Delta rule with an optional scalar gate: the WY / UT transform. */
static void SFX(chunk_delta)(const sl_ms_seq *s, int64_t t0, int64_t n, ms_work *w)
{
    const int64_t dk = s->dk, dv = s->dv;
    const float *q = s->q + t0 * s->ldq, *k = s->k + t0 * s->ldk, *v = s->v + t0 * s->ldv;
    const float *beta = s->beta + t0 * s->ldb;
    const int64_t lw = dv + dk;
    float *o = s->o + t0 * s->ldo, *G = w->G, *r = w->r;
    float *X = w->A, *A = w->A + n * n, *U = w->UW, *W = w->UW + dv;
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (s->g) acc += s->g[(t0 + i) * s->ldg];
        G[i] = acc;
    }
    /* X <- K K^T, A <- Q K^T. */
    ms_transpose(n, dk, k, s->ldk, w->KT);
    ms_mm(0, n, n, dk, 1.0f, k, s->ldk, w->KT, n, 0, X, n);
    ms_mm(0, n, n, dk, 1.0f, q, s->ldq, w->KT, n, 0, A, n);
    /* N_tj = beta_t gamma_t / gamma_j (k_t . k_j), j < t; X <- (I + N)^-1 row by row:
    ** x_t = e_t - sum_{m<t} N_tm x_m. The finished rows x_m have 1 on the
    ** diagonal and zeros after it, so each update runs over the whole row
    ** (fixed length n: one vector at n = 16). */
    for (int64_t t = 0; t < n; t++) {
        float *Xt = X + t * n;
        const float bt = beta[t * s->ldb], Gt = G[t];
        if (s->g) {
#pragma omp simd
            for (int64_t j = 0; j < t; j++) Xt[j] *= bt * SFX(ms_exp)(Gt - G[j]);
        } else {
            for (int64_t j = 0; j < t; j++) Xt[j] *= bt;
        }
        for (int64_t j = 0; j < n; j++) r[j] = 0.0f;
        for (int64_t m = 0; m < t; m++) {
            const float c = Xt[m], *Xm = X + m * n;
            if (c == 0.0f) continue;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) r[j] -= c * Xm[j];
        }
        for (int64_t j = 0; j < t; j++) Xt[j] = r[j];
        Xt[t] = 1.0f;
        for (int64_t j = t + 1; j < n; j++) Xt[j] = 0.0f;
    }
    /* VK = [beta . V | beta gamma . K]; [U | W] = X VK. */
    for (int64_t t = 0; t < n; t++) {
        const float bt = beta[t * s->ldb], bg = s->g ? bt * SFX(ms_exp)(G[t]) : bt;
        float *vk = w->VK + t * lw;
#pragma omp simd
        for (int64_t p = 0; p < dv; p++) vk[p] = bt * v[t * s->ldv + p];
#pragma omp simd
        for (int64_t d = 0; d < dk; d++) vk[dv + d] = bg * k[t * s->ldk + d];
    }
    ms_mm(0, n, lw, n, 1.0f, X, n, w->VK, lw, 0, w->UW, lw);
    /* U -= W S_0. */
    ms_mm(0, n, dv, dk, -1.0f, W, lw, s->S, dv, 1, U, lw);
    /* O = diag(gamma) Q S_0 + tril(Gamma . Q K^T) U. */
    for (int64_t t = 0; t < n; t++) {
        float *At = A + t * n;
        const float Gt = G[t];
        if (s->g) {
            const float e = SFX(ms_exp)(Gt);
#pragma omp simd
            for (int64_t d = 0; d < dk; d++) w->Q1[t * dk + d] = e * q[t * s->ldq + d];
#pragma omp simd
            for (int64_t j = 0; j <= t; j++) At[j] *= SFX(ms_exp)(Gt - G[j]);
        }
        for (int64_t j = t + 1; j < n; j++) At[j] = 0.0f;
    }
    if (s->g) ms_mm(0, n, dv, dk, s->scale, w->Q1, dk, s->S, dv, 0, o, s->ldo);
    else ms_mm(0, n, dv, dk, s->scale, q, s->ldq, s->S, dv, 0, o, s->ldo);
    ms_mm(0, n, dv, n, s->scale, A, n, U, lw, 1, o, s->ldo);
    /* S = gamma_n S_0 + (K . gamma_n / gamma_j)^T U. */
    const float Gl = G[n - 1], el = SFX(ms_exp)(Gl);
    if (s->g)
        for (int64_t i = 0; i < dk * dv; i++) s->S[i] *= el;
    if (s->g) {
        for (int64_t j = 0; j < n; j++) {
            const float e = SFX(ms_exp)(Gl - G[j]);
#pragma omp simd
            for (int64_t d = 0; d < dk; d++) w->K1[j * dk + d] = e * k[j * s->ldk + d];
        }
        ms_mm(1, dk, dv, n, 1.0f, w->K1, dk, U, lw, 1, s->S, dv);
    } else {
        ms_mm(1, dk, dv, n, 1.0f, k, s->ldk, U, lw, 1, s->S, dv);
    }
}

static void SFX(chunked)(const sl_ms_seq *s, int64_t C, ms_work *w)
{
    for (int64_t t0 = 0; t0 < s->T; t0 += C) {
        const int64_t n = SL_MIN(C, s->T - t0);
        if (s->beta) SFX(chunk_delta)(s, t0, n, w);
        else if (s->g && s->gdim > 1) SFX(chunk_gated_vector)(s, t0, n, w);
        else SFX(chunk_gated_scalar)(s, t0, n, w);
    }
}
