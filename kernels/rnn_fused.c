/*
** The optimised forward pass of the gated recurrent families (rnn, lstm, gru):
** packed weights, one micro-kernel for both products, the gate cell fused into
** the recurrent product, runtime ISA dispatch.
**
** Packing (once per layer, sl_rnn_pack; sl_torch_rnn_build_layers does it at
** model build). Units are grouped in tiles of UT units (16 for lstm and gru,
** 64 for rnn) so that one tile row holds NV = G * UT / 16 groups of 16 floats
** (4 for lstm and rnn, 3 for gru): group q = sub * G + g holds gate g of units
** tile * UT + sub * 16 + 0..15. W_hh and W_ih are stored tile by tile,
** [tile][k][NV * 16], k over the input dimension (H or in), units past H
** padded with zeros, 64-byte aligned. The input bias with every recurrent bias
** that is not inside GRU's reset product folded in is packed in the same
** column order.
**
** The micro-kernel (rnn_fused_impl.h, tile_block) multiplies MR rows of A by
** one tile: MR x NV*16 floats of accumulators (24 zmm for AVX-512), one
** broadcast of A and NV weight loads per k. It serves both products:
**   - the input projection of a chunk of Tc steps (A = x rows, K = in), stored
**     with the bias into gx [B, Tc, G*Hp] in the packed column order, so the
**     step reads its gate inputs contiguously; with few inputs (<= 8, not
**     GRU) there is no projection: the step starts its accumulators at
**     x_t W_ih + bias;
**   - the recurrent step (A = h_{t-1} rows, K = H), whose accumulators hold all
**     gates of UT units; right after each block, the cell (sigmoid/tanh from
**     vecmath.h, c and h update, leaky mixing) reads them from a small buffer
**     (L1) and writes h, c, y and states once. h is double-buffered, so no
**     thread reads a half-written h.
** For batch 1 that is a GEMV (MR = 1, two accumulator sets over even/odd k);
** for larger batches a register-blocked GEMM (MR up to 6 or 8).
**
** Threads: one OpenMP parallel region around the whole time loop.
**   tile mode (batch 1, or W_hh larger than ~1.5 MB): each thread
**     owns a fixed range of tiles, projects their gate inputs and runs their
**     units, and threads meet once a step through per-thread step flags.
**     Its slice of W_hh stays in its own L2 (H = 256 lstm: 512 KB per
**     thread), and gx columns are only ever read by the thread that wrote
**     them, so projection and steps need no other sync. h is double-buffered:
**     a thread overwrites a buffer only after every other thread has
**     published the step that finished reading it. (Tried and dropped:
**     splitting each step along k, own part of h first, to overlap the
**     hand-over of h with the product. Measured in one process, alternating:
**     lstm H = 256 B = 1 T = 1000, 4.6 ms split vs 3.9 ms plain, and slower
**     at H = 1024 too, where it also defeats the alternating tile order.)
**   row mode (batch >= 2 per thread and W_hh small): each thread owns a range
**     of sequences and all tiles; no barrier.
** Where a thread's W_hh does not fit its L2, tiles are walked in alternating
** directions on alternate steps, so the part touched last (still in L2) is
** reused first (a few percent at H = 1024; walking k downwards on alternate steps as well,
** for L1, was slower: 18.0 vs 14.6 ms for 5000 steps at H = 256; streaming
** all but an L2's worth of W_hh with prefetchnta did not help at H = 1024).
** BLAS is not used here; OpenBLAS stays single-threaded (blas.c's policy), so
** OpenMP's threads are the only ones.
**
** Where the time goes (2-core AVX-512 VM, ~4.2 GHz: FMA peak 534 GFLOP/s for
** two cores, measured by bench/seqlab_bench fmapeak):
**   - the projection runs at 470-505 GFLOP/s (88-95% of peak);
**   - batch 1, W_hh in L2 (H = 256 lstm, 512 KB a core): 2.7-2.9 us a step,
**     ~190 GB/s a core including the cell and the hand-over of h; a plain
**     read of 512 KB from L2 (8 zmm loads a line, no arithmetic) reaches
**     250 GB/s a core (~60 bytes a cycle) on this machine;
**   - batch 1, W_hh in L3 (H = 1024 lstm, 16 MB a step): ~66 us a step,
**     ~240 GB/s for two cores (a plain read loop of 8 MB a core, no
**     prefetch, streams ~90 GB/s a core; walking the tiles in one direction
**     instead of alternating measured ~3% slower);
**   - batch 32: 75-90% of the FMA peak, the rest mostly the cell's
**     transcendentals (5 per lstm unit) and partial register blocks.
**
** Memory: gx holds Tc steps (Tc from a 1 MB budget; none with few inputs), plus
** h twice, c and one step's products (B x G*Hp): peak O(B * Tc * G * H + B * G * H),
** independent of T. Nothing is allocated inside the time loop.
**
** ISA: the template is compiled for AVX-512 (zmm), AVX2+FMA (ymm) and the
** x86-64-v2 baseline (xmm); the best the CPU supports is chosen once
** (__builtin_cpu_supports), or forced with sl_kernels_set_isa for the tests.
*/
#include <immintrin.h>
#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

struct sl_rnn_packed {
    sl_cell_kind cell;
    int64_t in, H, G;
    int64_t UT, NV;        /* units per tile, 16-float groups per tile row */
    int64_t Hp, GHp;       /* H padded to whole tiles, G * Hp */
    int64_t ntiles;
    float *whh;            /* [ntiles][H][NV * 16] */
    float *wih;            /* [ntiles][in][NV * 16] */
    float *bias;           /* [GHp] folded biases, packed column order */
    float *bhn;            /* [Hp] GRU's b_hn (zeros without bias); NULL for other cells */
    float *alpha;          /* [Hp] leaky RNN 1/tau, or NULL */
    void  *mem;            /* the one allocation */
};

/* Step flags of tile mode: flag[j] = steps thread j has completed (its part of
** h written, with release order). A thread starts step t when every other
** flag is >= t. Each flag has its own cache line, so a step costs one line
** transfer per other thread and no read-modify-write; measured on the 2-core
** VM (lstm H = 256, B = 1, in = 1, us a step): libgomp's barrier 4.3, a
** shared-counter spin barrier 2.9-3.2, these flags 2.85-2.9. After ~20 us
** of spinning the waiter yields its core at every poll: on a machine with
** more runnable threads than cores both threads can land on one core, and a
** long spin then costs every step the whole spin (seen: 0.5 ms a step with
** 20000 pauses). */
typedef struct rf_flag {
    _Alignas(64) atomic_long v;
    char pad[64 - sizeof(atomic_long)];
} rf_flag;

static void rf_publish(rf_flag *f, long v) { atomic_store_explicit(&f->v, v, memory_order_release); }

static void rf_wait_all(rf_flag *flags, int n, int self, long v)
{
    for (int j = 0; j < n; j++) {
        if (j == self) continue;
        for (long spin = 0; atomic_load_explicit(&flags[j].v, memory_order_acquire) < v; spin++) {
            if (spin < 1000) __builtin_ia32_pause();   /* ~20 us; pause is ~22 ns here */
            else sched_yield();
        }
    }
}

#define RF_FOLD_IN 8   /* inputs up to which the step does the input product (the backward's "few", too) */

typedef struct rf_ctx {
    rf_flag *flags;        /* [threads] (tile mode) */
    int zigzag;            /* walk tiles in alternating directions */
    const sl_rnn_packed *p;
    int64_t B, T, Tc, nc;
    const float *x;
    float *y, *states;
    float *gates;          /* [B, T, G*H] gate activations (lstm), or NULL */
    int fold;              /* few inputs (not GRU): the step adds x W_ih + bias itself; no gx */
    const float *carry;    /* the start state, or NULL (zeros: step 0 skips its product) */
    float *gx;             /* [B, Tc, GHp], or NULL when fold */
    float *pre;            /* [B, GHp]: the step's products, the cell's input */
    float *h[2];           /* [B, Hp] each */
    float *c;              /* [B, Hp] (lstm) or NULL */
} rf_ctx;

/* ------------------------------------------------------------ instances */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#define VW 16
#define SFX(n) n##_avx512
#define RF_MR4 6
#define RF_MR3 8
typedef float vf_avx512 __attribute__((vector_size(64)));
typedef int32_t vi_avx512 __attribute__((vector_size(64)));
#define VF vf_avx512
#define VI vi_avx512
#define VFMA(a, b, c) ((VF)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define VSPLAT(f) _mm512_set1_ps(f)
#define VM_AVX512
#include "rnn_fused_impl.h"
#undef VW
#undef SFX
#undef RF_MR4
#undef RF_MR3
#undef VF
#undef VI
#undef VFMA
#undef VSPLAT
#undef VM_AVX512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define VW 8
#define SFX(n) n##_avx2
#define RF_MR4 1
#define RF_MR3 2
typedef float vf_avx2 __attribute__((vector_size(32)));
typedef int32_t vi_avx2 __attribute__((vector_size(32)));
#define VF vf_avx2
#define VI vi_avx2
#define VFMA(a, b, c) ((VF)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define VSPLAT(f) _mm256_set1_ps(f)
#include "rnn_fused_impl.h"
#undef VW
#undef SFX
#undef RF_MR4
#undef RF_MR3
#undef VF
#undef VI
#undef VFMA
#undef VSPLAT
#pragma GCC pop_options

/* The baseline (the build's -march, x86-64-v2: SSE4.2, no FMA). */
#define VW 4
#define SFX(n) n##_generic
#define RF_MR4 1
#define RF_MR3 1
typedef float vf_generic __attribute__((vector_size(16)));
typedef int32_t vi_generic __attribute__((vector_size(16)));
#define VF vf_generic
#define VI vi_generic
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VSPLAT(f) _mm_set1_ps(f)
#include "rnn_fused_impl.h"
#undef VW
#undef SFX
#undef RF_MR4
#undef RF_MR3
#undef VF
#undef VI
#undef VFMA
#undef VSPLAT

/* ------------------------------------------------------------ dispatch */
typedef struct rf_isa {
    const char *name;
    void (*run)(const rf_ctx *, int, int);
    void (*varr)(int, int64_t, const float *, float *);
    int (*mr_max)(int64_t);
} rf_isa;

static const rf_isa isas[] = {
    [SL_ISA_GENERIC] = { "sse4.2", run_generic, varr_generic, mr_max_generic },
    [SL_ISA_AVX2] = { "avx2", run_avx2, varr_avx2, mr_max_avx2 },
    [SL_ISA_AVX512] = { "avx512", run_avx512, varr_avx512, mr_max_avx512 },
};

static int isa_forced;   /* SL_ISA_AUTO: detect */

static int isa_supported(sl_isa isa)
{
    __builtin_cpu_init();
    switch (isa) {
    case SL_ISA_GENERIC: return 1;
    case SL_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SL_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("fma");
    default: return 0;
    }
}

sl_isa sl_kernels_isa(void)
{
    static int detected;   /* benign race: every thread computes the same value */
    if (isa_forced) return (sl_isa)isa_forced;
    if (!detected) {
        detected = isa_supported(SL_ISA_AVX512) ? SL_ISA_AVX512 : isa_supported(SL_ISA_AVX2) ? SL_ISA_AVX2 : SL_ISA_GENERIC;
    }
    return (sl_isa)detected;
}

int sl_kernels_set_isa(sl_isa isa)
{
    if (isa == SL_ISA_AUTO) { isa_forced = 0; return SL_OK; }
    if (!isa_supported(isa)) return SL_EUNSUP;
    isa_forced = isa;
    return SL_OK;
}

const char *sl_kernels_isa_name(sl_isa isa)
{
    return isa >= SL_ISA_GENERIC && isa <= SL_ISA_AVX512 ? isas[isa].name : "auto";
}

void sl_vexpf(int64_t n, const float *x, float *y) { isas[sl_kernels_isa()].varr(0, n, x, y); }
void sl_vtanhf(int64_t n, const float *x, float *y) { isas[sl_kernels_isa()].varr(1, n, x, y); }
void sl_vsigmoidf(int64_t n, const float *x, float *y) { isas[sl_kernels_isa()].varr(2, n, x, y); }

/* ------------------------------------------------------------ packing */
static void *alloc64(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }

/* Pack W [G*H, K] (row g*H + j) into [tile][k][NV*16]. */
static void pack_matrix(const sl_rnn_packed *p, const float *W, int64_t K, float *dst)
{
    const int64_t ldw = p->NV * 16, subs = p->UT / 16;
    memset(dst, 0, (size_t)(p->ntiles * K * ldw) * sizeof *dst);
    for (int64_t tile = 0; tile < p->ntiles; tile++)
        for (int64_t sub = 0; sub < subs; sub++)
            for (int64_t g = 0; g < p->G; g++)
                for (int64_t l = 0; l < 16; l++) {
                    const int64_t j = tile * p->UT + sub * 16 + l;
                    if (j >= p->H) continue;
                    const float *row = W + (g * p->H + j) * K;
                    float *d = dst + tile * K * ldw + (sub * p->G + g) * 16 + l;
                    for (int64_t k = 0; k < K; k++) d[k * ldw] = row[k];
                }
}

void sl_rnn_repack(const sl_rnn_weights *w, sl_rnn_packed *p)
{
    const int64_t ldw = p->NV * 16;
    pack_matrix(p, w->w_hh, p->H, p->whh);
    pack_matrix(p, w->w_ih, p->in, p->wih);
    memset(p->bias, 0, (size_t)p->GHp * sizeof(float));
    for (int64_t g = 0; g < p->G; g++)
        for (int64_t j = 0; j < p->H; j++) {
            const int64_t k = g * p->H + j;
            float b = w->b_ih ? w->b_ih[k] : 0.0f;
            const int inside_reset = p->cell == SL_CELL_GRU && g == 2;
            if (w->b_hh && !inside_reset) b += w->b_hh[k];
            const int64_t tile = j / p->UT, sub = (j % p->UT) / 16, l = j % 16;
            p->bias[tile * ldw + (sub * p->G + g) * 16 + l] = b;
        }
    if (p->bhn) {
        float *bhn = p->bhn;
        memset(bhn, 0, (size_t)p->Hp * sizeof(float));
        if (w->b_hh)
            for (int64_t j = 0; j < p->H; j++) bhn[j] = w->b_hh[2 * p->H + j];
    }
    if (p->alpha) {
        float *alpha = p->alpha;
        for (int64_t j = 0; j < p->Hp; j++) alpha[j] = j < p->H ? w->alpha[j] : 1.0f;
    }
}

int sl_rnn_pack(const sl_rnn_weights *w, sl_rnn_packed **out, sl_err *err)
{
    *out = NULL;
    if (w->H <= 0 || w->in <= 0) return sl_err_set(err, SL_EINVAL, "recurrent layer sizes must be positive");
    sl_rnn_packed *p = calloc(1, sizeof *p);
    if (!p) return sl_err_set(err, SL_ENOMEM, "out of memory for packed weights");
    p->cell = w->cell;
    p->in = w->in;
    p->H = w->H;
    p->G = sl_cell_gates(w->cell);
    p->UT = p->G == 1 ? 64 : 16;
    p->NV = p->G * p->UT / 16;
    p->ntiles = (w->H + p->UT - 1) / p->UT;
    p->Hp = p->ntiles * p->UT;
    p->GHp = p->G * p->Hp;
    const int64_t ldw = p->NV * 16;
    const size_t n_hh = (size_t)(p->ntiles * p->H * ldw), n_ih = (size_t)(p->ntiles * p->in * ldw);
    const size_t n_b = (size_t)p->GHp, n_h = (size_t)p->Hp;
    size_t total = n_hh + n_ih + n_b + 2 * n_h + 64;
    p->mem = alloc64(total * sizeof(float));
    if (!p->mem) { free(p); return sl_err_set(err, SL_ENOMEM, "out of memory for packed weights"); }
    float *f = p->mem;
    p->whh = f; f += n_hh;
    p->wih = f; f += n_ih;
    p->bias = f; f += n_b;
    p->bhn = p->cell == SL_CELL_GRU ? f : NULL; f += n_h;
    p->alpha = w->alpha ? f : NULL;
    sl_rnn_repack(w, p);
    *out = p;
    return SL_OK;
}

void sl_rnn_packed_free(sl_rnn_packed *p)
{
    if (!p) return;
    free(p->mem);
    free(p);
}

/* ------------------------------------------------------------ forward */
static double tune_min_fma = 65536.0;   /* below: one thread */
static int tune_mode;                   /* 0 auto, 1 tile, 2 row */

void sl_rnn_set_tuning(double min_step_fma, int mode)
{
    tune_min_fma = min_step_fma >= 0 ? min_step_fma : 65536.0;
    tune_mode = mode;
}

int sl_rnn_forward(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, float *y, float *carry,
                   float *states, sl_err *err)
{
    return sl_rnn_forward_gates(w, B, T, x, y, carry, states, NULL, err);
}

int sl_rnn_forward_gates(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, float *y, float *carry,
                         float *states, float *gates, sl_err *err)
{
    if (gates && w->cell != SL_CELL_LSTM) return sl_err_set(err, SL_EINVAL, "only the LSTM forward keeps its gates");
    if (B <= 0 || T <= 0) return SL_OK;
    sl_rnn_packed *own = NULL;
    const sl_rnn_packed *p = w->packed;
    int rc;
    if (!p) {
        if ((rc = sl_rnn_pack(w, &own, err))) return rc;
        p = own;
    }
    const rf_isa *isa = &isas[sl_kernels_isa()];
    const int64_t H = p->H, Hp = p->Hp, GHp = p->GHp, nc = sl_cell_carry(p->cell, H);
    const int mrx = isa->mr_max(p->NV);

    /* Threads and mode. Below ~64k multiply-adds a step, a barrier costs more than it saves. */
    int nt = omp_in_parallel() ? 1 : sl_get_threads();   /* (also quiets OpenBLAS's pool) */
    const double fma_step = (double)B * (double)GHp * (double)H;
    if (fma_step < tune_min_fma) nt = 1;
    const double whh_bytes = (double)GHp * (double)H * 4.0;
    /* Row mode (no barrier, every thread reads all of W_hh each step) only while W_hh
    ** fits an L2 beside the rest; past that, tile mode halves the L3 traffic (measured,
    ** lstm H = 1024 B = 32: 130 vs 160 ms for 100 steps). */
    int tile_mode = !(whh_bytes <= 1.5e6 && B >= 2 * (int64_t)nt);
    if (tune_mode) tile_mode = tune_mode == 1;
    if (nt > 1) {
        if (tile_mode && nt > p->ntiles) nt = (int)p->ntiles;
        if (!tile_mode && nt > B) nt = (int)B;
    }

    /* Chunk of steps whose gate inputs are held at once: ~1 MB, so each thread's
    ** share stays in its L2 beside its weights; a multiple of the row block. */
    int64_t Tc = (int64_t)(1 << 20) / (4 * B * GHp);
    Tc = SL_MAX(1, SL_MIN(Tc, T));
    if (Tc > mrx && Tc < T) Tc = Tc / mrx * mrx;

    /* Alternate the tile order only where a thread's W_hh does not stay in its L2:
    ** there the weights touched last are reused first (lstm H = 1024 B = 1: 72.6 vs
    ** 75.7 us a step); where it does, one direction lets the prefetches run on
    ** into the next tile (H = 256: 2.65 vs 2.70 us). */
    const int zigzag = (tile_mode ? whh_bytes / nt : whh_bytes) > 1.0e6;
    /* With few inputs (lstm/rnn on the synthetic tasks: 1 to 8) a projection pass
    ** costs more in calls and gx traffic than it saves: the step adds x W_ih + bias
    ** to its accumulators itself (lstm H = 128, in = 1, B = 64, T = 64: the projection
    ** was 6% of the forward). GRU keeps gx: its candidate gate needs x W_in apart. */
    const int fold = p->in <= RF_FOLD_IN && p->cell != SL_CELL_GRU;
    rf_ctx cx = { .zigzag = zigzag, .p = p, .B = B, .T = T, .Tc = Tc, .nc = nc, .x = x, .y = y, .states = states,
                 .gates = gates, .fold = fold, .carry = carry };
    const size_t n_gx = (size_t)(B * Tc * GHp), n_h = (size_t)(B * Hp);
    cx.flags = alloc64((size_t)nt * sizeof(rf_flag));
    cx.gx = fold ? NULL : alloc64(n_gx * sizeof(float));
    float *hc = alloc64((3 * n_h) * sizeof(float));
    cx.pre = alloc64((size_t)(B * GHp) * sizeof(float));
    if ((!cx.gx && !fold) || !hc || !cx.flags || !cx.pre) {
        free(cx.gx); free(hc); free(cx.flags); free(cx.pre); sl_rnn_packed_free(own);
        return sl_err_set(err, SL_ENOMEM, "out of memory for the recurrent workspace (%lld x %lld x %lld floats)",
                          (long long)B, (long long)Tc, (long long)GHp);
    }
    memset(hc, 0, 3 * n_h * sizeof(float));
    for (int i = 0; i < nt; i++) atomic_init(&cx.flags[i].v, 0);
    cx.h[0] = hc;
    cx.h[1] = hc + n_h;
    cx.c = p->cell == SL_CELL_LSTM ? hc + 2 * n_h : NULL;
    if (carry)
        for (int64_t b = 0; b < B; b++) {
            memcpy(cx.h[0] + b * Hp, carry + b * nc, (size_t)H * sizeof(float));
            if (cx.c) memcpy(cx.c + b * Hp, carry + b * nc + H, (size_t)H * sizeof(float));
        }

    isa->run(&cx, nt, tile_mode);

    if (carry)
        for (int64_t b = 0; b < B; b++) {
            memcpy(carry + b * nc, cx.h[T & 1] + b * Hp, (size_t)H * sizeof(float));
            if (cx.c) memcpy(carry + b * nc + H, cx.c + b * Hp, (size_t)H * sizeof(float));
        }
    free(cx.gx);
    free(cx.pre);
    free(hc);
    free(cx.flags);
    sl_rnn_packed_free(own);
    return SL_OK;
}
