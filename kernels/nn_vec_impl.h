/*
** The vectorised row kernels (kernels/nn_vec.c) as a template: nn_vec.c
** includes this file once per instruction set inside a `#pragma GCC target`
** region, with VF, VI, VW, VFMA, VSPLAT and SFX defined (as rnn_fused.c and
** gemm.c do). Each function works on one row (or one row range); the
** OpenMP split over rows is nn_vec.c's.
*/

typedef float SFX(nv_vfu) __attribute__((vector_size(VW * 4), aligned(4)));   /* unaligned access */

static inline VF SFX(nv_ldu)(const float *p) { return *(const SFX(nv_vfu) *)p; }
static inline void SFX(nv_stu)(float *p, VF v) { *(SFX(nv_vfu) *)p = v; }

/* The first n lanes at p (the rest fill); n may be >= VW. */
static inline VF SFX(nv_ld)(const float *p, int64_t n, float fill)
{
    if (n >= VW) return SFX(nv_ldu)(p);
    float tmp[VW];
    for (int64_t i = 0; i < VW; i++) tmp[i] = i < n ? p[i] : fill;
    return SFX(nv_ldu)(tmp);
}

static inline void SFX(nv_st)(float *p, VF v, int64_t n)
{
    if (n >= VW) {
        SFX(nv_stu)(p, v);
    } else {
        float tmp[VW];
        SFX(nv_stu)(tmp, v);
        for (int64_t i = 0; i < n; i++) p[i] = tmp[i];
    }
}

static inline float SFX(nv_hsum)(VF v)
{
    float tmp[VW], s = 0.0f;
    SFX(nv_stu)(tmp, v);
    for (int i = 0; i < VW; i++) s += tmp[i];
    return s;
}

#include "vecmath.h"

/* One row of nh groups of d: RMSNorm (weight w or none), gated by silu(g). */
static void SFX(nv_rms_row)(int64_t nh, int64_t d, const float *x, const float *w, float eps, const float *g, float *y)
{
    for (int64_t h = 0; h < nh; h++, x += d, y += d, g = g ? g + d : NULL) {
        VF acc = VM_SPLAT(0.0f);
        for (int64_t j = 0; j < d; j += VW) {
            const VF v = SFX(nv_ld)(x + j, d - j, 0.0f);
            acc = VFMA(v, v, acc);
        }
        const VF rs = VM_SPLAT(1.0f / sqrtf(SFX(nv_hsum)(acc) / (float)d + eps));
        for (int64_t j = 0; j < d; j += VW) {
            VF o = SFX(nv_ld)(x + j, d - j, 0.0f) * rs;
            if (w) o *= SFX(nv_ld)(w + j, d - j, 0.0f);
            if (g) {
                const VF gv = SFX(nv_ld)(g + j, d - j, 0.0f);
                o *= gv * SFX(vsig)(gv);
            }
            SFX(nv_st)(y + j, o, d - j);
        }
    }
}

/* One row of nh groups of d, in place: x / sqrt(sum x^2 + eps). */
static void SFX(nv_l2_row)(int64_t nh, int64_t d, float *x, float eps)
{
    for (int64_t h = 0; h < nh; h++, x += d) {
        VF acc = VM_SPLAT(0.0f);
        for (int64_t j = 0; j < d; j += VW) {
            const VF v = SFX(nv_ld)(x + j, d - j, 0.0f);
            acc = VFMA(v, v, acc);
        }
        const VF r = VM_SPLAT(1.0f / sqrtf(SFX(nv_hsum)(acc) + eps));
        for (int64_t j = 0; j < d; j += VW) SFX(nv_st)(x + j, SFX(nv_ld)(x + j, d - j, 0.0f) * r, d - j);
    }
}

/* One row of n, in place (see sl_act_rows_f32). */
static void SFX(nv_act_row)(int kind, int64_t n, float *x, float a, float lo)
{
    const VF va = VM_SPLAT(a), vlo = VM_SPLAT(lo);
    for (int64_t j = 0; j < n; j += VW) {
        const VF v = SFX(nv_ld)(x + j, n - j, 0.0f);
        VF o;
        if (kind == SL_VACT_SILU) o = v * SFX(vsig)(v);
        else if (kind == SL_VACT_SIGMOID) o = va * SFX(vsig)(v);
        else o = SFX(vm_max)(SFX(vlogsig)(v) * va, vlo);
        SFX(nv_st)(x + j, o, n - j);
    }
}

/* SiLU on the lanes of s whose channel c + lane is in [s0, s1). */
static inline VF SFX(nv_silu_range)(VF s, int64_t c, int64_t s0, int64_t s1)
{
    if (c >= s0 && c + VW <= s1) return s * SFX(vsig)(s);
    if (c + VW <= s0 || c >= s1) return s;
    int32_t in[VW];
    for (int i = 0; i < VW; i++) in[i] = c + i >= s0 && c + i < s1 ? -1 : 0;
    VI m;
    memcpy(&m, in, sizeof m);
    return SFX(vm_select)(m, s * SFX(vsig)(s), s);
}

/* Output row (b, t) of the causal conv: C channels, k taps, SiLU on
** channels [s0, s1). The taps' source rows are found once (taps before the
** start with no history contribute nothing), then whole vectors of channels
** and a masked tail. */
static void SFX(nv_conv_row)(int64_t T, int64_t C, int64_t k, const float *x, int64_t ldx, const float *wt,
                             const float *bias, const float *hist, int64_t b, int64_t t, float *y, int64_t s0,
                             int64_t s1)
{
    enum { NTAP = 8 };
    const int64_t H = k - 1;
    for (int64_t j0 = 0; j0 < k; j0 += NTAP) {   /* taps in groups of NTAP (one group for k <= 8) */
        const float *src[NTAP], *w[NTAP];
        int nt = 0;
        for (int64_t j = j0; j < SL_MIN(k, j0 + NTAP); j++) {
            const int64_t tt = t - H + j;   /* input time of tap j */
            const float *r = tt >= 0 ? x + (b * T + tt) * ldx : hist ? hist + (b * H + H + tt) * C : NULL;
            if (r) { src[nt] = r; w[nt] = wt + j * C; nt++; }
        }
        const int first = j0 == 0, last = j0 + NTAP >= k;
        int64_t c = 0;
        for (; c + VW <= C; c += VW) {
            VF s = first ? (bias ? SFX(nv_ldu)(bias + c) : VM_SPLAT(0.0f)) : SFX(nv_ldu)(y + c);
            for (int j = 0; j < nt; j++) s = VFMA(SFX(nv_ldu)(src[j] + c), SFX(nv_ldu)(w[j] + c), s);
            if (last) s = SFX(nv_silu_range)(s, c, s0, s1);
            SFX(nv_stu)(y + c, s);
        }
        if (c < C) {
            const int64_t n = C - c;
            VF s = first ? (bias ? SFX(nv_ld)(bias + c, n, 0.0f) : VM_SPLAT(0.0f)) : SFX(nv_ld)(y + c, n, 0.0f);
            for (int j = 0; j < nt; j++) s = VFMA(SFX(nv_ld)(src[j] + c, n, 0.0f), SFX(nv_ld)(w[j] + c, n, 0.0f), s);
            if (last) s = SFX(nv_silu_range)(s, c, s0, s1);
            SFX(nv_st)(y + c, s, n);
        }
    }
}

#undef VM_SPLAT
