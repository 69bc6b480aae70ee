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

/* Output row (b, t) of the causal conv: C channels, k taps, SiLU on
** channels [s0, s1). */
static void SFX(nv_conv_row)(int64_t T, int64_t C, int64_t k, const float *x, int64_t ldx, const float *wt,
                             const float *bias, const float *hist, int64_t b, int64_t t, float *y, int64_t s0,
                             int64_t s1)
{
    const int64_t H = k - 1;
    int32_t iota[VW];
    for (int i = 0; i < VW; i++) iota[i] = i;
    VI lane;
    memcpy(&lane, iota, sizeof lane);
    for (int64_t c = 0; c < C; c += VW) {
        const int64_t n = C - c;
        VF s = bias ? SFX(nv_ld)(bias + c, n, 0.0f) : VM_SPLAT(0.0f);
        for (int64_t j = 0; j < k; j++) {
            const int64_t tt = t - H + j;   /* input time of tap j */
            const float *src = tt >= 0 ? x + (b * T + tt) * ldx : hist ? hist + (b * H + H + tt) * C : NULL;
            if (src) s = VFMA(SFX(nv_ld)(src + c, n, 0.0f), SFX(nv_ld)(wt + j * C + c, n, 0.0f), s);
        }
        if (c + VW > s0 && c < s1) {
            const VI ci = lane + ((VI){ 0 } + (int32_t)c);
            const VI m = (ci >= ((VI){ 0 } + (int32_t)s0)) & (ci < ((VI){ 0 } + (int32_t)s1));
            s = SFX(vm_select)(m, s * SFX(vsig)(s), s);
        }
        SFX(nv_st)(y + c, s, n);
    }
}

#undef VM_SPLAT
