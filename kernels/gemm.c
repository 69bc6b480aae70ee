/*
** The packed-weight GEMM of the linear layers: y = x W^T + b over many rows,
** with the weights packed once (at model build) and the stage after the
** product fused into its epilogue. Used by the matrix-state block
** (models/matblock.c) for its projections, output projection and MLP.
**
** It generalises the projection micro-kernel of kernels/rnn_fused.c (packed
** column tiles, an MR-row register block, one template compiled per ISA and
** chosen at run time through sl_kernels_isa):
**
** Packing (sl_wpack_new). W is given as parts stacked along the output
** dimension (q, k, v, ... projections of one input become one GEMM), each
** [rows, K] in PyTorch's [out, in] layout with an optional bias. Columns are
** stored in panels of SL_GEMM_PW = 64: [panel][k][64], zero-padded past N,
** 64-byte aligned, so a register tile reads its weights as aligned,
** contiguous vectors. The biases are packed in the same column order (zeros
** where absent). A swiglu pack takes two parts of equal rows (gate, up) and
** interleaves them by 16 columns: packed columns 32 g .. 32 g + 15 are gate
** outputs 16 g .. 16 g + 15, the next 16 the matching up outputs, so one
** register tile holds both halves of its outputs.
**
** Micro-kernel (gemm_impl.h): MR rows x 4 vectors (AVX-512: 6 x 64, 24 zmm
** accumulators; AVX2 + FMA: 2 x 32; SSE baseline: 1 x 32), per k one broadcast of
** A per row and 4 aligned weight loads. Each output is summed over k in order
** by one tile, whatever the threads or row blocks: the result depends on the
** ISA only. Epilogues on the registers: bias, a residual r added (r may be y
** itself), or swiglu's silu(gate) * up (vecmath.h's sigmoid), so the MLP's
** [rows, 2 inter] intermediate is never stored.
**
** Threads: rows split evenly over sl_get_threads() OpenMP threads (the
** weights, at most a few MB, are read by every thread from its own L2/L3);
** inside an OpenMP region, or below ~1 MFLOP, one thread. BLAS is not used.
**
** sl_gemm_f32 is the same micro-kernel on unpacked operands, one thread, for
** the small products inside a thread's own work (the matrix-state scans'
** chunks): A read with any element strides (rows or columns of a row-major
** matrix, as kernels/bptt_gemm.c's contract), B row-major, its tail columns
** through masked loads.
**
** sl_gemm_wpack_ref and sl_gemm_f32_ref are the plain references (double accumulation, from the
** original weights): tests/test_kernels.c holds the two together on every ISA
** the CPU has.
*/
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

struct sl_wpack {
    int64_t K, N, Np;      /* input size, outputs, packed columns (a multiple of SL_GEMM_PW) */
    int swiglu;
    int nparts;
    sl_wpart parts[SL_WPACK_MAXPARTS];   /* the original weights (not owned) */
    float *w;              /* [Np / 64][K][64] */
    float *bias;           /* [Np] */
    void *mem;
};

/* ------------------------------------------------------------ instances */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#define VW 16
#define SFX(n) n##_avx512
#define GM_MR 6
#define GM_NVE 4
typedef float gvf_avx512 __attribute__((vector_size(64)));
typedef int32_t gvi_avx512 __attribute__((vector_size(64)));
#define VF gvf_avx512
#define VI gvi_avx512
#define VFMA(a, b, c) ((VF)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define VSPLAT(f) _mm512_set1_ps(f)
#define GM_LDM(p, n) ((VF)_mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1u), (p)))
#define GM_STM(p, v, n) _mm512_mask_storeu_ps((p), (__mmask16)((1u << (n)) - 1u), (__m512)(v))
#include "gemm_impl.h"
#undef VW
#undef SFX
#undef GM_MR
#undef GM_NVE
#undef VF
#undef VI
#undef VFMA
#undef VSPLAT
#undef GM_LDM
#undef GM_STM
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
/* Lanes i < n set (AVX2 masked loads and stores). */
static inline __m256i gm_mask8(int64_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#define VW 8
#define SFX(n) n##_avx2
#define GM_MR 2
#define GM_NVE 4
typedef float gvf_avx2 __attribute__((vector_size(32)));
typedef int32_t gvi_avx2 __attribute__((vector_size(32)));
#define VF gvf_avx2
#define VI gvi_avx2
#define VFMA(a, b, c) ((VF)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define VSPLAT(f) _mm256_set1_ps(f)
#define GM_LDM(p, n) ((VF)_mm256_maskload_ps((p), gm_mask8(n)))
#define GM_STM(p, v, n) _mm256_maskstore_ps((p), gm_mask8(n), (__m256)(v))
#include "gemm_impl.h"
#undef VW
#undef SFX
#undef GM_MR
#undef GM_NVE
#undef VF
#undef VI
#undef VFMA
#undef VSPLAT
#undef GM_LDM
#undef GM_STM
#pragma GCC pop_options

/* The baseline (the build's -march, x86-64-v2: SSE4.2, no FMA). */
#define VW 4
#define SFX(n) n##_generic
#define GM_MR 1
#define GM_NVE 8
typedef float gvf_generic __attribute__((vector_size(16)));
typedef int32_t gvi_generic __attribute__((vector_size(16)));
#define VF gvf_generic
#define VI gvi_generic
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VSPLAT(f) _mm_set1_ps(f)
#define GM_LDM(p, n) SFX(gm_ld_part)((p), (n))
#define GM_STM(p, v, n) SFX(gm_st_part)((p), (v), (n))
#include "gemm_impl.h"
#undef VW
#undef SFX
#undef GM_MR
#undef GM_NVE
#undef VF
#undef VI
#undef VFMA
#undef VSPLAT
#undef GM_LDM
#undef GM_STM

typedef void (*gm_rows_fn)(const sl_wpack *, int64_t, int64_t, const float *, int64_t, const float *, int64_t,
                           float *, int64_t);
static const gm_rows_fn gm_rows[] = {
    [SL_ISA_GENERIC] = gm_rows_generic,
    [SL_ISA_AVX2] = gm_rows_avx2,
    [SL_ISA_AVX512] = gm_rows_avx512,
};
static const int gm_mr[] = { [SL_ISA_GENERIC] = 1, [SL_ISA_AVX2] = 2, [SL_ISA_AVX512] = 6 };

typedef void (*gs_run_fn)(int64_t, int64_t, int64_t, float, const float *, int64_t, int64_t, const float *, int64_t,
                          int, float *, int64_t);
static const gs_run_fn gs_run[] = {
    [SL_ISA_GENERIC] = gs_run_generic,
    [SL_ISA_AVX2] = gs_run_avx2,
    [SL_ISA_AVX512] = gs_run_avx512,
};

/* ------------------------------------------------------------ packing */
static int64_t pack_rows(const sl_wpack *p)
{
    int64_t n = 0;
    for (int i = 0; i < p->nparts; i++) n += p->parts[i].rows;
    return n;
}

/* Packed column of logical column j (the parts stacked; swiglu: gate j, or up
** j when up). */
static int64_t pack_col(const sl_wpack *p, int64_t j, int up)
{
    if (!p->swiglu) return j;
    return (j / 16) * 32 + (up ? 16 : 0) + j % 16;
}

void sl_wpack_refill(sl_wpack *p, const sl_wpart *parts)
{
    const int64_t K = p->K, PW = SL_GEMM_PW;
    memset(p->w, 0, (size_t)(p->Np * K) * sizeof(float));
    memset(p->bias, 0, (size_t)p->Np * sizeof(float));
    int64_t j0 = 0;
    for (int i = 0; i < p->nparts; i++) {
        p->parts[i] = parts[i];
        const sl_wpart *q = &parts[i];
        for (int64_t r = 0; r < q->rows; r++) {
            const int64_t c = p->swiglu ? pack_col(p, r, i == 1) : pack_col(p, j0 + r, 0);
            float *dst = p->w + (c / PW) * K * PW + c % PW;
            const float *src = q->w + r * K;
            for (int64_t k = 0; k < K; k++) dst[k * PW] = src[k];
            if (q->b) p->bias[c] = q->b[r];
        }
        j0 += q->rows;
    }
}

int sl_wpack_new(int64_t K, int nparts, const sl_wpart *parts, int swiglu, sl_wpack **out, sl_err *err)
{
    *out = NULL;
    if (K <= 0 || nparts < 1 || nparts > SL_WPACK_MAXPARTS || (swiglu && (nparts != 2 || parts[0].rows != parts[1].rows)))
        return sl_err_set(err, SL_EINVAL, "packed weights: bad shape (K %lld, %d parts)", (long long)K, nparts);
    sl_wpack *p = calloc(1, sizeof *p);
    if (!p) return sl_err_set(err, SL_ENOMEM, "out of memory for packed weights");
    p->K = K;
    p->swiglu = swiglu;
    p->nparts = nparts;
    for (int i = 0; i < nparts; i++) p->parts[i] = parts[i];
    p->N = swiglu ? parts[0].rows : pack_rows(p);
    const int64_t nc = swiglu ? 32 * ((p->N + 15) / 16) : p->N;
    p->Np = (nc + SL_GEMM_PW - 1) / SL_GEMM_PW * SL_GEMM_PW;
    const size_t bytes = (size_t)(p->Np * K + p->Np) * sizeof(float);
    p->mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p->mem) { free(p); return sl_err_set(err, SL_ENOMEM, "out of memory for packed weights"); }
    p->w = p->mem;
    p->bias = p->w + p->Np * K;
    sl_wpack_refill(p, parts);
    *out = p;
    return SL_OK;
}

void sl_wpack_free(sl_wpack *p)
{
    if (!p) return;
    free(p->mem);
    free(p);
}

int64_t sl_wpack_n(const sl_wpack *p) { return p->N; }

/* ------------------------------------------------------------ products */
void sl_gemm_wpack(int64_t M, const float *x, int64_t ldx, const sl_wpack *w, const float *r, int64_t ldr, float *y,
                   int64_t ldy)
{
    if (M <= 0) return;
    const sl_isa isa = sl_kernels_isa();
    const gm_rows_fn fn = gm_rows[isa];
    int nt = omp_in_parallel() ? 1 : sl_get_threads();
    if ((double)M * (double)w->Np * (double)w->K < 5e5 * nt) nt = 1;
    if (nt <= 1) {
        fn(w, 0, M, x, ldx, r, ldr, y, ldy);
        return;
    }
    const int64_t mr = gm_mr[isa], blocks = (M + mr - 1) / mr;
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        const int64_t r0 = SL_MIN(M, blocks * t / n * mr), r1 = SL_MIN(M, blocks * (t + 1) / n * mr);
        if (r1 > r0) fn(w, r0, r1, x, ldx, r, ldr, y, ldy);
    }
}

void sl_gemm_wpack_ref(int64_t M, const float *x, int64_t ldx, const sl_wpack *w, const float *r, int64_t ldr, float *y,
                       int64_t ldy)
{
    const int64_t K = w->K;
    for (int64_t i = 0; i < M; i++) {
        const float *xi = x + i * ldx;
        if (w->swiglu) {
            const sl_wpart *g = &w->parts[0], *u = &w->parts[1];
            for (int64_t j = 0; j < w->N; j++) {
                double a = g->b ? g->b[j] : 0.0, b = u->b ? u->b[j] : 0.0;
                for (int64_t k = 0; k < K; k++) {
                    a += (double)g->w[j * K + k] * xi[k];
                    b += (double)u->w[j * K + k] * xi[k];
                }
                y[i * ldy + j] = (float)(a / (1.0 + exp(-a)) * b);
            }
            continue;
        }
        int64_t j = 0;
        for (int p = 0; p < w->nparts; p++) {
            const sl_wpart *q = &w->parts[p];
            for (int64_t o = 0; o < q->rows; o++, j++) {
                double s = q->b ? q->b[o] : 0.0;
                for (int64_t k = 0; k < K; k++) s += (double)q->w[o * K + k] * xi[k];
                if (r) s += r[i * ldr + j];
                y[i * ldy + j] = (float)s;
            }
        }
    }
}

/* ------------------------------------------------------------ strided, one thread */
void sl_gemm_f32(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t am, int64_t ak, const float *B,
                 int64_t ldb, int add, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = add ? C[i * ldc + j] : 0.0f;
        return;
    }
    gs_run[sl_kernels_isa()](M, N, K, alpha, A, am, ak, B, ldb, add, C, ldc);
}

void sl_gemm_f32_ref(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t am, int64_t ak,
                     const float *B, int64_t ldb, int add, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)A[i * am + k * ak] * B[k * ldb + j];
            C[i * ldc + j] = (float)((add ? C[i * ldc + j] : 0.0) + alpha * s);
        }
}
