/*
** The matrix products of backpropagation through time, with an AVX-512
** micro-kernel: see bptt.h (sl_bptt_gemm).
**
** All three products the backward pass needs have a right-hand side whose
** rows are contiguous (W_hh itself, W_hh transposed once per call, and the
** stacked previous hidden states), and a left-hand side read with arbitrary
** element strides (gate gradients by rows, or by columns for dW_hh). So one
** kernel serves them all without packing: an 8 x 32 tile of C in 16 zmm
** registers, per k two loads of B's row and eight broadcasts of A's column,
** sixteen FMAs; k in blocks that keep B's block in L2. Tiles are independent
** and each sums its k in order, so the result does not depend on the thread
** count. On CPUs without AVX-512 the
** products go to BLAS (sl_sgemm) instead.
*/
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "bptt.h"
#include "util.h"

#define MR 8
#define NR 32

__attribute__((target("avx512f"))) static inline __mmask16 tail_mask(int64_t n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* C[0..8, 0..nc) (+)= A[0..8, :] B[:, 0..nc), nc <= 32. */
__attribute__((target("avx512f"))) static void tile8(int64_t K, const float *A, int64_t am, int64_t ak, const float *B,
                                                      int64_t ldb, float *C, int64_t ldc, int add, int64_t nc)
{
    const __mmask16 m0 = tail_mask(nc), m1 = tail_mask(nc - 16);
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) { c0[i] = _mm512_setzero_ps(); c1[i] = _mm512_setzero_ps(); }
    for (int64_t k = 0; k < K; k++) {
        const float *b = B + k * ldb, *a = A + k * ak;
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            const __m512 x = _mm512_set1_ps(a[i * am]);
            c0[i] = _mm512_fmadd_ps(x, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(x, b1, c1[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        float *c = C + i * ldc;
        if (add) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, c));
            c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, c0[i]);
        _mm512_mask_storeu_ps(c + 16, m1, c1[i]);
    }
}

/* One row of C (the rows past the last multiple of 8). */
__attribute__((target("avx512f"))) static void tile1(int64_t K, const float *A, int64_t ak, const float *B, int64_t ldb,
                                                      float *C, int add, int64_t nc)
{
    const __mmask16 m0 = tail_mask(nc), m1 = tail_mask(nc - 16);
    __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        const float *b = B + k * ldb;
        const __m512 x = _mm512_set1_ps(A[k * ak]);
        c0 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m0, b), c0);
        c1 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m1, b + 16), c1);
    }
    if (add) {
        c0 = _mm512_add_ps(c0, _mm512_maskz_loadu_ps(m0, C));
        c1 = _mm512_add_ps(c1, _mm512_maskz_loadu_ps(m1, C + 16));
    }
    _mm512_mask_storeu_ps(C, m0, c0);
    _mm512_mask_storeu_ps(C + 16, m1, c1);
}

/* Tiles [ta, tb) of C (8 x 32 each, row-major over the tile grid), k in
** blocks small enough that B's block (kc x N) stays in L2 while every tile
** of C passes over it; within a block, tiles row by row so a tile's A
** (8 x kc) stays in L1. Blocks run in order of k and each element's sum runs
** in order within a block, so any split of the tiles gives the same C. */
static void gemm_tiles(int64_t M, int64_t N, int64_t K, const float *A, int64_t am, int64_t ak, const float *B,
                       int64_t ldb, int add, float *C, int64_t ldc, int64_t ta, int64_t tb)
{
    const int64_t nt = (N + NR - 1) / NR;
    const int64_t KB = SL_MAX(64, (int64_t)(64 * 1024) / SL_MAX(N, 1));
    for (int64_t k0 = 0; k0 < K; k0 += KB) {
        const int64_t kc = SL_MIN(KB, K - k0);
        const int addb = add || k0 > 0;
        const float *Ak = A + k0 * ak, *Bk = B + k0 * ldb;
        for (int64_t t = ta; t < tb; t++) {
            const int64_t im = t / nt, jn = t % nt;
            const int64_t j0 = jn * NR, i0 = im * MR, nc = SL_MIN(NR, N - j0);
            if (i0 + MR <= M) {
                tile8(kc, Ak + i0 * am, am, ak, Bk + j0, ldb, C + i0 * ldc + j0, ldc, addb, nc);
            } else {
                for (int64_t i = i0; i < M; i++) tile1(kc, Ak + i * am, ak, Bk + j0, ldb, C + i * ldc + j0, addb, nc);
            }
        }
    }
}

static void gemm_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t am, int64_t ak, const float *B,
                        int64_t ldb, int add, float *C, int64_t ldc)
{
    const int64_t tiles = ((M + MR - 1) / MR) * ((N + NR - 1) / NR);
    const int par = !omp_in_parallel() && (double)M * (double)N * (double)K >= 1e6;
    if (!par) {   /* no team of one: the fused LSTM backward calls this from its own threads, a chunk at a time */
        gemm_tiles(M, N, K, A, am, ak, B, ldb, add, C, ldc, 0, tiles);
        return;
    }
#pragma omp parallel
    {
        const int64_t th = omp_get_thread_num(), n = omp_get_num_threads();
        gemm_tiles(M, N, K, A, am, ak, B, ldb, add, C, ldc, tiles * th / n, tiles * (th + 1) / n);
    }
}

static int have_avx512(void)
{
    static int v = -1;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return v;
}

void sl_bptt_gemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t am, int64_t ak, const float *B, int64_t ldb,
                  int add, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!add)
            for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof *C);
        return;
    }
    if (have_avx512()) {
        gemm_avx512(M, N, K, A, am, ak, B, ldb, add, C, ldc);
    } else if (ak == 1) {
        sl_sgemm(0, 0, M, N, K, 1.0f, A, am, B, ldb, add ? 1.0f : 0.0f, C, ldc);
    } else if (am == 1) {
        sl_sgemm(1, 0, M, N, K, 1.0f, A, ak, B, ldb, add ? 1.0f : 0.0f, C, ldc);
    } else {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                float s = add ? C[i * ldc + j] : 0.0f;
                for (int64_t k = 0; k < K; k++) s += A[i * am + k * ak] * B[k * ldb + j];
                C[i * ldc + j] = s;
            }
    }
}

void sl_bptt_gemm_f64(int64_t M, int64_t N, int64_t K, const double *A, int64_t am, int64_t ak, const double *B,
                      int64_t ldb, int add, double *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    if (ak == 1) {
        sl_dgemm(0, 0, M, N, K, 1.0, A, am, B, ldb, add ? 1.0 : 0.0, C, ldc);
    } else if (am == 1) {
        sl_dgemm(1, 0, M, N, K, 1.0, A, ak, B, ldb, add ? 1.0 : 0.0, C, ldc);
    } else {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = add ? C[i * ldc + j] : 0.0;
                for (int64_t k = 0; k < K; k++) s += A[i * am + k * ak] * B[k * ldb + j];
                C[i * ldc + j] = s;
            }
    }
}
