/*
** Matrix-state scans: see matstate.h for the recurrences and the chunked
** algorithms.
**
** Layout of the chunked workspace (floats, for chunk length C):
**   A  [C, C], X [C, C]   scores; the delta rule: X = K K^T, then (I + N)^-1 in
**                         place, and A = Q K^T (its rows C apart: [X; A] is one block)
**   G  [C, dk]            cumulative log decay inside the chunk (scalar gates use C)
**   Q1, K1, K2, W [C, dk] decayed queries and keys (GLA: Qh, KD, Kh, X)
**   KT [dk, C]            keys transposed: the right-hand side of the score products
**   U, V1 [C, dv]         spare
**   VK, UW [C, dv + dk]   delta rule: [beta . V | beta gamma . K] and
**                         [U | W] = X VK, so one GEMM gives both
**   r  [max(C, dk)]       a row of the triangular inverse; GLA: a decay vector
**   z  [dk]               zeros (GLA: the log decay before the first row)
** Exponentials go through ms_exp, a vectorisable expf (Cephes' polynomial,
** within 2 ulp of expf, 0 below -87; the file is built without trapping math
** so its clamps if-convert) and the decay masks cost little beside the GEMMs.
**
** The recurrent and chunked forms are compiled once per instruction set
** (matstate_impl.h: AVX-512, AVX2 + FMA, the x86-64-v2 baseline; chosen by
** sl_kernels_isa), so those loops run on the widest vectors the CPU has; the
** chunks' products go through sl_gemm_f32 (kernels/gemm.c, one thread, no
** packing: a call into OpenBLAS cost more than the arithmetic at these
** sizes, C x dk x dv = 16 x 64 x 64).
*/
/* Float compares may not trap here (nothing reads the FP exception flags), so
** GCC can if-convert ms_exp's clamps and vectorise the exponential loops. */
#pragma GCC optimize("no-trapping-math")

#include "matstate.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

#define MS_SUB 16          /* secondary chunk of the vector-gated form */
#define MS_MAX_SPAN 60.0f  /* largest in-sub-chunk decay factored as two exponentials */

int64_t sl_ms_workspace(int64_t C, int64_t dk, int64_t dv)
{
    return 2 * C * C + 6 * C * dk + 2 * C * dv + 2 * C * (dk + dv) + SL_MAX(C, dk) + dk + 16;
}

/* ------------------------------------------------------------ reference */
void sl_ms_reference(const sl_ms_seq *s)
{
    const int64_t dk = s->dk, dv = s->dv;
    float *S = s->S;
    double *u = malloc((size_t)(dv > 0 ? dv : 1) * sizeof *u);
    if (!u) return;
    for (int64_t t = 0; t < s->T; t++) {
        const float *q = s->q + t * s->ldq, *k = s->k + t * s->ldk, *v = s->v + t * s->ldv;
        const float *g = s->g ? s->g + t * s->ldg : NULL;
        if (s->beta) {
            const double a = g ? exp((double)g[0]) : 1.0, b = s->beta[t * s->ldb];
            for (int64_t p = 0; p < dv; p++) {
                double ks = 0;
                for (int64_t i = 0; i < dk; i++) ks += (double)k[i] * S[i * dv + p];
                u[p] = b * ((double)v[p] - a * ks);
            }
            for (int64_t i = 0; i < dk; i++)
                for (int64_t p = 0; p < dv; p++) S[i * dv + p] = (float)(a * S[i * dv + p] + (double)k[i] * u[p]);
        } else {
            for (int64_t i = 0; i < dk; i++) {
                double a = g ? exp((double)g[s->gdim > 1 ? i : 0]) : 1.0;
                for (int64_t p = 0; p < dv; p++) S[i * dv + p] = (float)(a * S[i * dv + p] + (double)k[i] * v[p]);
            }
        }
        for (int64_t p = 0; p < dv; p++) {
            double acc = 0;
            for (int64_t i = 0; i < dk; i++) acc += (double)q[i] * S[i * dv + p];
            s->o[t * s->ldo + p] = (float)(s->scale * acc);
        }
    }
    free(u);
}

/* ------------------------------------------------------------ chunked */
typedef struct ms_work {
    float *A, *X, *G, *Q1, *K1, *K2, *W, *KT, *U, *V1, *VK, *UW, *r, *z;
} ms_work;

static ms_work ms_carve(float *w, int64_t C, int64_t dk, int64_t dv)
{
    ms_work m;
    m.A = w; w += C * C;
    m.X = w; w += C * C;
    m.G = w; w += C * dk;
    m.Q1 = w; w += C * dk;
    m.K1 = w; w += C * dk;
    m.K2 = w; w += C * dk;
    m.W = w; w += C * dk;
    m.KT = w; w += C * dk;
    m.U = w; w += C * dv;
    m.V1 = w; w += C * dv;
    m.VK = w; w += C * (dk + dv);
    m.UW = w; w += C * (dk + dv);
    m.r = w; w += SL_MAX(C, dk);
    m.z = w;
    memset(m.z, 0, (size_t)dk * sizeof *m.z);
    return m;
}

/* The chunk's small products, one thread (kernels/gemm.c):
** C = (add ? C : 0) + alpha A B, A [M, K] row-major (lda) or, with ta, stored
** transposed ([K, M], lda), B row-major [K, N]. */
static inline void ms_mm(int ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                         const float *B, int64_t ldb, int add, float *C, int64_t ldc)
{
    sl_gemm_f32(M, N, K, alpha, A, ta ? 1 : lda, ta ? lda : 1, B, ldb, add, C, ldc);
}

/* dst [d, n] = src^T, src n rows of d (row stride lds): the key side of a
** product against keys (Q K^T) as a row-major right-hand side. */
static void ms_transpose(int64_t n, int64_t d, const float *src, int64_t lds, float *dst)
{
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < d; i++) dst[i * n + j] = src[j * lds + i];
}

/* ------------------------------------------------------------ instances */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,prefer-vector-width=512")
#define SFX(n) n##_avx512
#include "matstate_impl.h"
#undef SFX
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define SFX(n) n##_avx2
#include "matstate_impl.h"
#undef SFX
#pragma GCC pop_options

#define SFX(n) n##_generic
#include "matstate_impl.h"
#undef SFX

void sl_ms_recurrent(const sl_ms_seq *s, float *tmp)
{
    switch (sl_kernels_isa()) {
    case SL_ISA_AVX512: recurrent_avx512(s, tmp); break;
    case SL_ISA_AVX2: recurrent_avx2(s, tmp); break;
    default: recurrent_generic(s, tmp); break;
    }
}

void sl_ms_chunked(const sl_ms_seq *s, int64_t C, float *work)
{
    if (C < 1) C = 64;
    ms_work w = ms_carve(work, C, s->dk, s->dv);
    switch (sl_kernels_isa()) {
    case SL_ISA_AVX512: chunked_avx512(s, C, &w); break;
    case SL_ISA_AVX2: chunked_avx2(s, C, &w); break;
    default: chunked_generic(s, C, &w); break;
    }
}
