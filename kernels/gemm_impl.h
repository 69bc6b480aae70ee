/*
** The packed-weight GEMM (kernels/gemm.c) as a template: gemm.c includes this
** file once per instruction set inside a `#pragma GCC target` region, with
** VF, VI, VW, VFMA, VSPLAT, SFX, GM_MR (rows of a register tile) and GM_NVE
** (its vectors: a multiple of 4 and of 32 / VW) defined, as
** kernels/rnn_fused_impl.h is. A register tile is GM_MR rows x GM_CW columns
** (64 for AVX-512, 32 otherwise); tail tiles are cut to whole quarters. The
** design is at the top of gemm.c.
*/

#define GM_CW (GM_NVE * VW)   /* columns of a register tile */
#define GM_Q (GM_NVE / 4)     /* vectors of a quarter tile */

typedef float SFX(gm_vfu) __attribute__((vector_size(VW * 4), aligned(4)));   /* unaligned access */

static inline VF SFX(gm_ldu)(const float *p) { return *(const SFX(gm_vfu) *)p; }
static inline void SFX(gm_stu)(float *p, VF v) { *(SFX(gm_vfu) *)p = v; }

/* The first n lanes at p (the rest 0); n may be >= VW. */
static inline VF SFX(gm_ld_part)(const float *p, int64_t n)
{
    if (n >= VW) return SFX(gm_ldu)(p);
    float tmp[VW] = { 0 };
    for (int64_t i = 0; i < n; i++) tmp[i] = p[i];
    return SFX(gm_ldu)(tmp);
}

/* Store the first n lanes of v at p; n may be >= VW. */
static inline void SFX(gm_st_part)(float *p, VF v, int64_t n)
{
    if (n >= VW) {
        SFX(gm_stu)(p, v);
    } else {
        float tmp[VW];
        SFX(gm_stu)(tmp, v);
        for (int64_t i = 0; i < n; i++) p[i] = tmp[i];
    }
}

#include "vecmath.h"

/* One register tile: rows [0, MR) of A (row stride lda) times NVE vectors of
** packed columns starting at Bp (row stride SL_GEMM_PW), K deep, each element
** summed over k in order. Epilogue:
**   plain   y[m, j] = acc + bias[j] (+ r[m, j]) for the columns j < nvalid;
**   swiglu  per 32 packed columns (16 gate, then the 16 matching up):
**           y[m, j] = silu(gate + bias) * (up + bias) for the 16 outputs j
**           of the group, j < nvalid (nvalid counts outputs). */
static inline __attribute__((always_inline)) void SFX(gm_tile)(const int MR, const int NVE, const int swiglu, int64_t K,
                                                               const float *A, int64_t lda, const float *Bp,
                                                               const float *bias, const float *R, int64_t ldr,
                                                               float *Y, int64_t ldy, int64_t nvalid)
{
    VF acc[GM_MR][GM_NVE];
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 8
        for (int v = 0; v < NVE; v++) acc[m][v] = VM_SPLAT(0.0f);
    for (int64_t k = 0; k < K; k++) {
        const float *b = Bp + k * SL_GEMM_PW;
        VF wv[GM_NVE];
#pragma GCC unroll 8
        for (int v = 0; v < NVE; v++) wv[v] = *(const VF *)(b + v * VW);
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++) {
            const VF a = VM_SPLAT(A[m * lda + k]);
#pragma GCC unroll 8
            for (int v = 0; v < NVE; v++) acc[m][v] = VFMA(a, wv[v], acc[m][v]);
        }
    }
    if (swiglu) {
        enum { E = 16 / VW };   /* vectors per 16 columns */
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++)
#pragma GCC unroll 4
            for (int g = 0; g < NVE / (2 * E); g++)
#pragma GCC unroll 4
                for (int e = 0; e < E; e++) {
                    const int vg = g * 2 * E + e, vu = vg + E;
                    const VF gt = acc[m][vg] + *(const VF *)(bias + vg * VW);
                    const VF up = acc[m][vu] + *(const VF *)(bias + vu * VW);
                    const int64_t j = g * 16 + e * VW;
                    if (j < nvalid) SFX(gm_st_part)(Y + m * ldy + j, gt * SFX(vsig)(gt) * up, nvalid - j);
                }
        return;
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 8
        for (int v = 0; v < NVE; v++) {
            const int64_t j = v * VW;
            if (j < nvalid) {
                VF o = acc[m][v] + *(const VF *)(bias + j);
                if (R) o += SFX(gm_ld_part)(R + m * ldr + j, nvalid - j);
                SFX(gm_st_part)(Y + m * ldy + j, o, nvalid - j);
            }
        }
}

typedef void (*SFX(gm_fn))(int64_t, const float *, int64_t, const float *, const float *, const float *, int64_t,
                           float *, int64_t, int64_t);
/* Instances by quarters of a tile: gm_MR_Q_SW has Q * GM_Q vectors. */
#define GM_DEFQ(MR, Q, SW)                                                                                     \
    static void SFX(gm_##MR##_##Q##_##SW)(int64_t K, const float *A, int64_t lda, const float *Bp,              \
                                          const float *bias, const float *R, int64_t ldr, float *Y, int64_t ldy, \
                                          int64_t nvalid)                                                       \
    {                                                                                                           \
        SFX(gm_tile)(MR, Q * GM_Q, SW, K, A, lda, Bp, bias, R, ldr, Y, ldy, nvalid);                            \
    }
#define GM_DEF_MR(MR) GM_DEFQ(MR, 1, 0) GM_DEFQ(MR, 2, 0) GM_DEFQ(MR, 3, 0) GM_DEFQ(MR, 4, 0) GM_DEFQ(MR, 4, 1)
#define GM_ROW(MR) { SFX(gm_##MR##_1_0), SFX(gm_##MR##_2_0), SFX(gm_##MR##_3_0), SFX(gm_##MR##_4_0), SFX(gm_##MR##_4_1) }

GM_DEF_MR(1)
#if GM_MR >= 2
GM_DEF_MR(2)
#endif
#if GM_MR >= 6
GM_DEF_MR(3) GM_DEF_MR(4) GM_DEF_MR(5) GM_DEF_MR(6)
#endif

/* [MR][0..3]: plain tiles of 1..4 quarters; [MR][4]: the swiglu tile. */
static const SFX(gm_fn) SFX(gm_tab)[GM_MR + 1][5] = {
    { NULL }, GM_ROW(1),
#if GM_MR >= 2
    GM_ROW(2),
#endif
#if GM_MR >= 6
    GM_ROW(3), GM_ROW(4), GM_ROW(5), GM_ROW(6),
#endif
};
#undef GM_DEFQ
#undef GM_DEF_MR
#undef GM_ROW

/* Rows [r0, r1) of y. Tiles are taken in groups whose packed weights fit in
** about 512 KB (half an L2 of this Zen 5; 64 .. 4096 KB measured within
** noise at K = 256, N = 768) and, inside a group, block of rows by block of rows, so
** a block's A rows (MR x K) stay in L1 across the group's tiles. */
static void SFX(gm_rows)(const sl_wpack *w, int64_t r0, int64_t r1, const float *x, int64_t ldx, const float *R,
                         int64_t ldr, float *y, int64_t ldy)
{
    const int64_t K = w->K, Np = w->Np, nout = w->N, ntile = Np / GM_CW;
    const int sw = w->swiglu;
    int64_t group = (int64_t)(512 * 1024) / (K * GM_CW * 4);
    group = SL_MAX(1, SL_MIN(group, ntile));
    for (int64_t t0 = 0; t0 < ntile; t0 += group) {
        const int64_t t1 = SL_MIN(ntile, t0 + group);
        /* (tiles wholly in the padding past the last output are skipped) */
        for (int64_t i = r0; i < r1; i += GM_MR) {
            const int mr = (int)SL_MIN(GM_MR, r1 - i);
            for (int64_t t = t0; t < t1; t++) {
                const int64_t c = t * GM_CW;   /* first packed column */
                const float *Bp = w->w + (c / SL_GEMM_PW) * K * SL_GEMM_PW + c % SL_GEMM_PW;
                if (sw) {
                    const int64_t j = c / 2;   /* first output */
                    if (j >= nout) break;
                    SFX(gm_tab)[mr][4](K, x + i * ldx, ldx, Bp, w->bias + c, NULL, 0, y + i * ldy + j, ldy, nout - j);
                } else {
                    const int64_t nv = SL_MIN(GM_CW, nout - c);
                    if (nv <= 0) break;
                    const int nq = (int)((nv + GM_Q * VW - 1) / (GM_Q * VW));
                    SFX(gm_tab)[mr][nq - 1](K, x + i * ldx, ldx, Bp, w->bias + c, R ? R + i * ldr + c : NULL, ldr,
                                             y + i * ldy + c, ldy, nv);
                }
            }
        }
    }
}


/* ------------------------------------------------------------ strided, unpacked */
/* One register tile of C = (add ? C : 0) + alpha A B: rows [0, MR) with A's
** element (m, k) at A[m am + k ak], NVE vectors of B's row-major columns
** (row stride ldb; only the first nvalid columns read or written). */
static inline __attribute__((always_inline)) void SFX(gs_tile)(const int MR, const int NVE, int64_t K, float alpha,
                                                               const float *A, int64_t am, int64_t ak, const float *B,
                                                               int64_t ldb, int add, float *C, int64_t ldc,
                                                               int64_t nvalid)
{
    VF acc[GM_MR][GM_NVE];
    /* vectors [0, nfull) whole; the rest masked (possibly to nothing) */
    const int nfull = (int)SL_MIN((int64_t)NVE, nvalid / VW);
#define GS_N(v) SL_MAX((int64_t)0, nvalid - (int64_t)(v) * VW)
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 8
        for (int v = 0; v < NVE; v++) acc[m][v] = VM_SPLAT(0.0f);
    for (int64_t k = 0; k < K; k++) {
        const float *b = B + k * ldb;
        VF wv[GM_NVE];
#pragma GCC unroll 8
        for (int v = 0; v < NVE; v++) wv[v] = v < nfull ? SFX(gm_ldu)(b + v * VW) : GM_LDM(b + v * VW, GS_N(v));
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++) {
            const VF a = VM_SPLAT(A[m * am + k * ak]);
#pragma GCC unroll 8
            for (int v = 0; v < NVE; v++) acc[m][v] = VFMA(a, wv[v], acc[m][v]);
        }
    }
    const VF va = VM_SPLAT(alpha);
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 8
        for (int v = 0; v < NVE; v++) {
            float *c = C + m * ldc + v * VW;
            VF o = acc[m][v] * va;
            if (v < nfull) {
                if (add) o += SFX(gm_ldu)(c);
                SFX(gm_stu)(c, o);
            } else if (GS_N(v) > 0) {
                if (add) o += GM_LDM(c, GS_N(v));
                GM_STM(c, o, GS_N(v));
            }
        }
#undef GS_N
}

#define GS_DEF(MR, NV)                                                                                         \
    static void SFX(gs_##MR##_##NV)(int64_t K, float alpha, const float *A, int64_t am, int64_t ak,             \
                                    const float *B, int64_t ldb, int add, float *C, int64_t ldc, int64_t nvalid) \
    {                                                                                                           \
        SFX(gs_tile)(MR, NV * GM_Q, K, alpha, A, am, ak, B, ldb, add, C, ldc, nvalid);                          \
    }
typedef void (*SFX(gs_fn))(int64_t, float, const float *, int64_t, int64_t, const float *, int64_t, int, float *,
                           int64_t, int64_t);
#define GS_DEF_MR(MR) GS_DEF(MR, 1) GS_DEF(MR, 2) GS_DEF(MR, 3) GS_DEF(MR, 4)
#define GS_ROW(MR) { SFX(gs_##MR##_1), SFX(gs_##MR##_2), SFX(gs_##MR##_3), SFX(gs_##MR##_4) }
GS_DEF_MR(1)
#if GM_MR >= 2
GS_DEF_MR(2)
#endif
#if GM_MR >= 6
GS_DEF_MR(3) GS_DEF_MR(4) GS_DEF_MR(5) GS_DEF_MR(6)
#endif
/* [MR][quarters - 1] (tiles cut to whole quarters; the last vector masked) */
static const SFX(gs_fn) SFX(gs_tab)[GM_MR + 1][4] = {
    { NULL }, GS_ROW(1),
#if GM_MR >= 2
    GS_ROW(2),
#endif
#if GM_MR >= 6
    GS_ROW(3), GS_ROW(4), GS_ROW(5), GS_ROW(6),
#endif
};
#undef GS_DEF
#undef GS_DEF_MR
#undef GS_ROW

static void SFX(gs_run)(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t am, int64_t ak,
                        const float *B, int64_t ldb, int add, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i += GM_MR) {
        const int mr = (int)SL_MIN(GM_MR, M - i);
        for (int64_t j = 0; j < N; j += GM_CW) {
            const int64_t nv = SL_MIN(GM_CW, N - j);
            const int nq = (int)((nv + GM_Q * VW - 1) / (GM_Q * VW));
            SFX(gs_tab)[mr][nq - 1](K, alpha, A + i * am, am, ak, B + j, ldb, add, C + i * ldc + j, ldc, nv);
        }
    }
}

#undef GM_CW
#undef GM_Q
#undef VM_SPLAT
