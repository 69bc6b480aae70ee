/*
** Vectorised row kernels of the block-structured families (see nn.h):
** RMSNorm over groups with an optional SiLU gate, fla's L2 norm, SiLU /
** sigmoid / log-sigmoid in place, and the causal depthwise conv with SiLU,
** all on rows with arbitrary strides, so the matrix-state block
** (models/matblock.c) runs them on the columns of its fused projection
** without copies.
**
** One template (nn_vec_impl.h) compiled for AVX-512, AVX2 + FMA and the
** x86-64-v2 baseline, chosen through sl_kernels_isa (kernels/rnn_fused.c);
** the transcendental functions are vecmath.h's (a few ulp). Rows are split
** over OpenMP threads when there are many (one thread inside a parallel
** region). Each *_ref function is the plain reference, in scalar float as
** nn.c computes, which tests/test_kernels.c holds the vectorised forms to.
*/
#include "nn.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

/* ------------------------------------------------------------ instances */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#define VW 16
#define SFX(n) n##_avx512
typedef float nvf_avx512 __attribute__((vector_size(64)));
typedef int32_t nvi_avx512 __attribute__((vector_size(64)));
#define VF nvf_avx512
#define VI nvi_avx512
#define VFMA(a, b, c) ((VF)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define VSPLAT(f) _mm512_set1_ps(f)
#include "nn_vec_impl.h"
#undef VW
#undef SFX
#undef VF
#undef VI
#undef VFMA
#undef VSPLAT
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define VW 8
#define SFX(n) n##_avx2
typedef float nvf_avx2 __attribute__((vector_size(32)));
typedef int32_t nvi_avx2 __attribute__((vector_size(32)));
#define VF nvf_avx2
#define VI nvi_avx2
#define VFMA(a, b, c) ((VF)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define VSPLAT(f) _mm256_set1_ps(f)
#include "nn_vec_impl.h"
#undef VW
#undef SFX
#undef VF
#undef VI
#undef VFMA
#undef VSPLAT
#pragma GCC pop_options

#define VW 4
#define SFX(n) n##_generic
typedef float nvf_generic __attribute__((vector_size(16)));
typedef int32_t nvi_generic __attribute__((vector_size(16)));
#define VF nvf_generic
#define VI nvi_generic
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VSPLAT(f) _mm_set1_ps(f)
#include "nn_vec_impl.h"
#undef VW
#undef SFX
#undef VF
#undef VI
#undef VFMA
#undef VSPLAT

typedef struct nv_isa {
    void (*rms)(int64_t, int64_t, const float *, const float *, float, const float *, float *);
    void (*l2)(int64_t, int64_t, float *, float);
    void (*act)(int, int64_t, float *, float, float);
    void (*conv)(int64_t, int64_t, int64_t, const float *, int64_t, const float *, const float *, const float *,
                 int64_t, int64_t, float *, int64_t, int64_t);
} nv_isa;

static const nv_isa nv_isas[] = {
    [SL_ISA_GENERIC] = { nv_rms_row_generic, nv_l2_row_generic, nv_act_row_generic, nv_conv_row_generic },
    [SL_ISA_AVX2] = { nv_rms_row_avx2, nv_l2_row_avx2, nv_act_row_avx2, nv_conv_row_avx2 },
    [SL_ISA_AVX512] = { nv_rms_row_avx512, nv_l2_row_avx512, nv_act_row_avx512, nv_conv_row_avx512 },
};

/* Split rows over threads from ~32k elements. */
#define NV_PAR(M, n) ((M) * (n) >= 32768)

/* ------------------------------------------------------------ vectorised */
void sl_rmsnorm_rows_f32(int64_t M, int64_t nh, int64_t d, const float *x, int64_t ldx, const float *w, float eps,
                         const float *g, int64_t ldg, float *y, int64_t ldy)
{
    const nv_isa *v = &nv_isas[sl_kernels_isa()];
#pragma omp parallel for schedule(static) if (NV_PAR(M, nh * d))
    for (int64_t r = 0; r < M; r++) v->rms(nh, d, x + r * ldx, w, eps, g ? g + r * ldg : NULL, y + r * ldy);
}

void sl_l2norm_rows_f32(int64_t M, int64_t nh, int64_t d, float *x, int64_t ldx, float eps)
{
    const nv_isa *v = &nv_isas[sl_kernels_isa()];
#pragma omp parallel for schedule(static) if (NV_PAR(M, nh * d))
    for (int64_t r = 0; r < M; r++) v->l2(nh, d, x + r * ldx, eps);
}

void sl_act_rows_f32(int kind, int64_t M, int64_t n, float *x, int64_t ldx, float a, float lo)
{
    const nv_isa *v = &nv_isas[sl_kernels_isa()];
#pragma omp parallel for schedule(static) if (NV_PAR(M, n))
    for (int64_t r = 0; r < M; r++) v->act(kind, n, x + r * ldx, a, lo);
}

/* The new history: the last k - 1 inputs, from x or (T < k - 1) from the old
** history shifted forward (read ahead of the write, so in place). */
static void conv_hist(int64_t B, int64_t T, int64_t C, int64_t k, const float *x, int64_t ldx, float *hist)
{
    const int64_t H = k - 1;
    for (int64_t b = 0; b < B; b++) {
        float *hb = hist + b * H * C;
        for (int64_t i = 0; i < H; i++) {
            const int64_t tt = T - H + i;
            memmove(hb + i * C, tt >= 0 ? x + (b * T + tt) * ldx : hb + (H + tt) * C, (size_t)C * sizeof *hb);
        }
    }
}

void sl_conv1d_rows_f32(int64_t B, int64_t T, int64_t C, int64_t k, const float *x, int64_t ldx, const float *wt,
                        const float *bias, float *hist, float *y, int64_t ldy, int64_t silu0, int64_t silu1)
{
    const nv_isa *v = &nv_isas[sl_kernels_isa()];
#pragma omp parallel for schedule(static) if (NV_PAR(B * T, C * k))
    for (int64_t r = 0; r < B * T; r++) v->conv(T, C, k, x, ldx, wt, bias, hist, r / T, r % T, y + r * ldy, silu0, silu1);
    if (hist && k > 1) conv_hist(B, T, C, k, x, ldx, hist);
}

/* ------------------------------------------------------------ references */
void sl_rmsnorm_rows_f32_ref(int64_t M, int64_t nh, int64_t d, const float *x, int64_t ldx, const float *w, float eps,
                             const float *g, int64_t ldg, float *y, int64_t ldy)
{
    for (int64_t r = 0; r < M; r++)
        for (int64_t h = 0; h < nh; h++) {
            const float *xr = x + r * ldx + h * d;
            float *yr = y + r * ldy + h * d;
            sl_rmsnorm_f32(1, d, xr, w, eps, yr);
            if (g)
                for (int64_t j = 0; j < d; j++) yr[j] *= sl_siluf(g[r * ldg + h * d + j]);
        }
}

void sl_l2norm_rows_f32_ref(int64_t M, int64_t nh, int64_t d, float *x, int64_t ldx, float eps)
{
    for (int64_t r = 0; r < M; r++)
        for (int64_t h = 0; h < nh; h++) {
            float *xr = x + r * ldx + h * d, s = 0.0f;
            for (int64_t j = 0; j < d; j++) s += xr[j] * xr[j];
            const float q = 1.0f / sqrtf(s + eps);
            for (int64_t j = 0; j < d; j++) xr[j] *= q;
        }
}

void sl_act_rows_f32_ref(int kind, int64_t M, int64_t n, float *x, int64_t ldx, float a, float lo)
{
    for (int64_t r = 0; r < M; r++)
        for (int64_t j = 0; j < n; j++) {
            float *p = x + r * ldx + j;
            if (kind == SL_VACT_SILU) *p = sl_siluf(*p);
            else if (kind == SL_VACT_SIGMOID) *p = a * sl_sigmoidf(*p);
            else *p = fmaxf(sl_logsigmoidf(*p) * a, lo);
        }
}

void sl_conv1d_rows_f32_ref(int64_t B, int64_t T, int64_t C, int64_t k, const float *x, int64_t ldx, const float *wt,
                            const float *bias, float *hist, float *y, int64_t ldy, int64_t silu0, int64_t silu1)
{
    const int64_t H = k - 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t c = 0; c < C; c++) {
                float s = bias ? bias[c] : 0.0f;
                for (int64_t j = 0; j < k; j++) {
                    const int64_t tt = t - H + j;
                    const float v = tt >= 0 ? x[(b * T + tt) * ldx + c] : (hist ? hist[(b * H + H + tt) * C + c] : 0.0f);
                    s += wt[j * C + c] * v;
                }
                y[(b * T + t) * ldy + c] = c >= silu0 && c < silu1 ? sl_siluf(s) : s;
            }
    if (hist && k > 1) conv_hist(B, T, C, k, x, ldx, hist);
}
