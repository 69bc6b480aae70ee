/*
** The LSTM's backward pass fused the way its forward is (rnn_fused.c): the
** float training path on AVX-512 CPUs, when the forward kept its gate
** activations (sl_rnn_forward_gates). See bptt.h for the contract; the plain
** version (rnn_backward_impl.h) is the reference it is tested against.
**
** Per step t, backwards, for sequence b:
**     dh_t  = dy_t + dG_{t+1} W_hh                       (dG_T = 0)
**     dc_t  = dc_t(from t+1) + dh_t o (1 - tanh^2 c_t)
**     dG_t  = (dc_t g i(1-i), dc_t c_{t-1} f(1-f), dc_t i (1-g^2), dh_t tanh(c_t) o(1-o))
**     dc_{t-1} (from t) = dc_t f
** The product dG_{t+1} W_hh runs as a register-blocked GEMM, MR sequences x
** 64 units (W_hh packed [64-unit tile][4H][64], zero past H), and the cell
** derivative runs right on its accumulators: dh never goes to memory, and
** dG_t, the bias sums and (few inputs) dW_ih are written once.
**
** Threads: one OpenMP region. Each thread owns a range of sequences for the
** whole time loop (no synchronisation: the steps of a sequence only read that
** sequence's own gradients). The weight gradient dW_hh = sum_t dG_t^T h_{t-1}
** is formed a chunk of steps at a time (about 256 KB of gate gradients), as soon as the chunk's gate
** gradients exist, into the thread's own partial sum (sl_bptt_gemm over the
** chunk's rows): the gate gradients only ever live in a small per-thread
** buffer that stays in the core's L2, instead of going out to L3 or memory
** for all steps and coming back for one product at the end (the first
** version did that: the backward's memory traffic, not its arithmetic, was
** its cost). The partial sums (dW_hh, the bias, dW_ih for few inputs) are
** added in thread order at the end: the same bits for the same thread count.
** dW_ih and dx for more than 8 inputs go through BLAS, a chunk at a time.
**
** Why: the plain backward recomputed the pre-activations (a third of its
** matrix work), ran the elementwise pass as a separate sweep over memory and
** split each step's product over threads, two barriers a step.
*/
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "bptt.h"
#include "util.h"

#define UB 64                      /* units per tile: 4 zmm */

typedef struct lb_ctx {
    int64_t B, T, H, in, G4, nut; /* G4 = 4H; nut = tiles of UB units */
    int64_t Hu;                    /* nut * UB */
    const float *x, *carry0, *states, *gates, *dy;
    const float *dz, *wz;          /* dy = dz wz (nz outputs) when dy is NULL */
    int64_t nz;
    const float *wp;               /* [nut][4H][UB] packed W_hh */
    float *dcarry0;                /* [B, 2H] or NULL */
    float *dx;                     /* [B, T, in] or NULL */
    const float *w_ih;             /* [4H, in] */
    int64_t nfew;                  /* inputs summed in the cell (in <= 8), else 0 */
} lb_ctx;

/* A thread's buffers (rows: its nr sequences, in order). */
typedef struct lb_thr {
    int64_t ba, nr;                /* first sequence, count */
    int64_t tc;                    /* steps a chunk */
    float *dG;                     /* [tc][nr][4H]: the chunk's gate gradients, step by step */
    float *dGn;                    /* [nr][4H]: dG of the step after the chunk */
    float *hp;                     /* [tc][nr][H]: h_{t-1}, the chunk's rows */
    float *dc;                     /* [nr][Hu] */
    float *acc;                    /* [(1 + nfew) * 4 * Hu]: bias sums, then dW_ih sums per input (few) */
    float *dw;                     /* [4H][H]: this thread's dW_hh */
    float *dwi;                    /* [4H][in]: this thread's dW_ih (more than 8 inputs) */
} lb_thr;

/* Steps a chunk: its gate gradients about 256 KB, so they stay in L2 beside
** the packed W_hh and the partial dW_hh until the chunk's product reads them
** (lstm H = 128, B = 64 on 2 threads: 4 steps; 2, 4, 8 and 16 measured within
** noise of each other, all ~20% faster than one product at the end). */
static int64_t lb_chunk(int64_t H, int64_t nr, int64_t T)
{
    return SL_MAX(1, SL_MIN(T, (int64_t)(1 << 16) / SL_MAX(1, nr * 4 * H)));
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#define VW 16
#define SFX(n) n##_lb512
typedef float vf_lb512 __attribute__((vector_size(64)));
typedef int32_t vi_lb512 __attribute__((vector_size(64)));
#define VF vf_lb512
#define VI vi_lb512
#define VFMA(a, b, c) ((VF)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define VSPLAT(f) _mm512_set1_ps(f)
#define VM_AVX512
#include "vecmath.h"

static inline __mmask16 lb_mask(int64_t n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* One block: sequences b0..b0+MR-1, units of tile ut, step t.
** mode 0: dh = dy_t + dG_{t+1} W_hh, then the cell; mode 1: dh = dy_t (the
** last step), then the cell; mode 2: dh_{-1} = dG_0 W_hh into dcarry0 (with
** dc_{-1}), no cell. */
static inline __attribute__((always_inline)) void lb_block(const int MR, const lb_ctx *c, const lb_thr *w,
                                                           int64_t j0, int64_t ut, int64_t t, int mode,
                                                           const float *A, float *dgo)
{
    const int64_t B = c->B, T = c->T, H = c->H, G4 = c->G4, Hu = c->Hu;
    (void)B;
    float *accb = w->acc;
    __m512 acc[8][4];
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) acc[m][v] = _mm512_setzero_ps();
    if (mode != 1) {
        const float *W = c->wp + ut * G4 * UB;
        for (int64_t q = 0; q < G4; q++) {
            const float *wq = W + q * UB;
            const __m512 w0 = _mm512_load_ps(wq), w1 = _mm512_load_ps(wq + 16), w2 = _mm512_load_ps(wq + 32),
                         w3 = _mm512_load_ps(wq + 48);
#pragma GCC unroll 8
            for (int m = 0; m < MR; m++) {
                const __m512 a = _mm512_set1_ps(A[m * G4 + q]);
                acc[m][0] = _mm512_fmadd_ps(a, w0, acc[m][0]);
                acc[m][1] = _mm512_fmadd_ps(a, w1, acc[m][1]);
                acc[m][2] = _mm512_fmadd_ps(a, w2, acc[m][2]);
                acc[m][3] = _mm512_fmadd_ps(a, w3, acc[m][3]);
            }
        }
    }
    const __m512 one = _mm512_set1_ps(1.0f);
    /* The cell, a row at a time (not unrolled: the code stays small). */
#pragma GCC unroll 1
    for (int m = 0; m < MR; m++) {
        const int64_t b = w->ba + j0 + m;
        float *dcb = w->dc + (j0 + m) * Hu;
        if (mode == 2) {
            float *d0 = c->dcarry0 + b * 2 * H;
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) {
                const int64_t u = ut * UB + v * 16;
                const __mmask16 k = lb_mask(H - u);
                _mm512_mask_storeu_ps(d0 + u, k, acc[m][v]);
                _mm512_mask_storeu_ps(d0 + H + u, k, _mm512_load_ps(dcb + u));
            }
            continue;
        }
        const int64_t r = b * T + t;   /* row of the forward's [B, T, .] arrays */
        const float *gr = c->gates + (t * B + b) * G4, *cr = c->states + r * 2 * H + H;
        const float *dyr = c->dy ? c->dy + r * H : NULL, *dzr = c->dy ? NULL : c->dz + r * c->nz;
        const float *cpr = t > 0 ? c->states + (r - 1) * 2 * H + H : (c->carry0 ? c->carry0 + b * 2 * H + H : NULL);
        float *dgr = dgo + m * G4;
        /* The previous step's rows of this sequence are a page or more away from
        ** this block's other rows, out of the hardware prefetchers' reach:
        ** fetch them while this step's product runs (pointers formed only where
        ** the rows exist). */
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            const int64_t u = ut * UB + v * 16;
            if (u >= H) break;
            if (t > 0) {
                const float *pg = gr - B * G4;   /* gates of step t-1 */
                _mm_prefetch((const char *)(pg + u), _MM_HINT_T1);
                _mm_prefetch((const char *)(pg + H + u), _MM_HINT_T1);
                _mm_prefetch((const char *)(pg + 2 * H + u), _MM_HINT_T1);
                _mm_prefetch((const char *)(pg + 3 * H + u), _MM_HINT_T1);
                if (dyr) _mm_prefetch((const char *)(dyr - H + u), _MM_HINT_T1);
                if (t > 1) {
                    const float *pc = cr - 4 * H;   /* c_{t-2}, and h_{t-2} before it: the next step's copy for dW_hh */
                    _mm_prefetch((const char *)(pc + u), _MM_HINT_T1);
                    _mm_prefetch((const char *)(pc - H + u), _MM_HINT_T1);
                }
            }
            const __mmask16 k = lb_mask(H - u);
            const __m512 i = _mm512_maskz_loadu_ps(k, gr + u), f = _mm512_maskz_loadu_ps(k, gr + H + u),
                         g = _mm512_maskz_loadu_ps(k, gr + 2 * H + u), o = _mm512_maskz_loadu_ps(k, gr + 3 * H + u);
            const __m512 cc = _mm512_maskz_loadu_ps(k, cr + u);
            const __m512 cp = cpr ? _mm512_maskz_loadu_ps(k, cpr + u) : _mm512_setzero_ps();
            __m512 dyv;
            if (dyr) {
                dyv = _mm512_maskz_loadu_ps(k, dyr + u);
            } else {   /* dy = dz wz: the readout's few outputs */
                dyv = _mm512_setzero_ps();
                for (int64_t q = 0; q < c->nz; q++)
                    dyv = _mm512_fmadd_ps(_mm512_set1_ps(dzr[q]), _mm512_maskz_loadu_ps(k, c->wz + q * H + u), dyv);
            }
            const __m512 dh = _mm512_add_ps(acc[m][v], dyv);
            const __m512 tc = (__m512)SFX(vtanh)((VF)cc);
            /* dct = dc + dh o (1 - tc^2) */
            const __m512 dho = _mm512_mul_ps(dh, o);
            const __m512 dct = _mm512_fmadd_ps(dho, _mm512_fnmadd_ps(tc, tc, one), _mm512_load_ps(dcb + u));
            const __m512 di = _mm512_mul_ps(_mm512_mul_ps(dct, g), _mm512_mul_ps(i, _mm512_sub_ps(one, i)));
            const __m512 df = _mm512_mul_ps(_mm512_mul_ps(dct, cp), _mm512_mul_ps(f, _mm512_sub_ps(one, f)));
            const __m512 dg = _mm512_mul_ps(_mm512_mul_ps(dct, i), _mm512_fnmadd_ps(g, g, one));
            const __m512 dO = _mm512_mul_ps(_mm512_mul_ps(dh, tc), _mm512_mul_ps(o, _mm512_sub_ps(one, o)));
            _mm512_store_ps(dcb + u, _mm512_mul_ps(dct, f));
            _mm512_mask_storeu_ps(dgr + u, k, di);
            _mm512_mask_storeu_ps(dgr + H + u, k, df);
            _mm512_mask_storeu_ps(dgr + 2 * H + u, k, dg);
            _mm512_mask_storeu_ps(dgr + 3 * H + u, k, dO);
            /* Bias sums (and dW_ih for few inputs), padded [4][Hu] per input: no masks. */
            float *ab = accb + u;
            _mm512_store_ps(ab, _mm512_add_ps(_mm512_load_ps(ab), di));
            _mm512_store_ps(ab + Hu, _mm512_add_ps(_mm512_load_ps(ab + Hu), df));
            _mm512_store_ps(ab + 2 * Hu, _mm512_add_ps(_mm512_load_ps(ab + 2 * Hu), dg));
            _mm512_store_ps(ab + 3 * Hu, _mm512_add_ps(_mm512_load_ps(ab + 3 * Hu), dO));
            for (int64_t j = 0; j < c->nfew; j++) {
                const __m512 xv = _mm512_set1_ps(c->x[r * c->in + j]);
                float *aw = ab + (j + 1) * 4 * Hu;
                _mm512_store_ps(aw, _mm512_fmadd_ps(di, xv, _mm512_load_ps(aw)));
                _mm512_store_ps(aw + Hu, _mm512_fmadd_ps(df, xv, _mm512_load_ps(aw + Hu)));
                _mm512_store_ps(aw + 2 * Hu, _mm512_fmadd_ps(dg, xv, _mm512_load_ps(aw + 2 * Hu)));
                _mm512_store_ps(aw + 3 * Hu, _mm512_fmadd_ps(dO, xv, _mm512_load_ps(aw + 3 * Hu)));
            }
        }
    }
}

#define LB_MRX 6
typedef void (*lb_fn)(const lb_ctx *, const lb_thr *, int64_t, int64_t, int64_t, int, const float *, float *);
#define LB_DEF(MR)                                                                                              \
    static void lb_block_##MR(const lb_ctx *c, const lb_thr *w, int64_t j0, int64_t ut, int64_t t, int mode,    \
                              const float *A, float *dgo)                                                       \
    {                                                                                                           \
        lb_block(MR, c, w, j0, ut, t, mode, A, dgo);                                                            \
    }
LB_DEF(1) LB_DEF(2) LB_DEF(3) LB_DEF(4) LB_DEF(5) LB_DEF(6)
#undef LB_DEF
static const lb_fn lb_blocks[LB_MRX + 1] = { NULL, lb_block_1, lb_block_2, lb_block_3, lb_block_4, lb_block_5,
                                             lb_block_6 };

/* The time loop of one thread, a chunk of steps at a time. */
static void lb_thread(const lb_ctx *c, const lb_thr *w, int want_dw, int want_dwi)
{
    const int64_t nr = w->nr, nblk = (nr + LB_MRX - 1) / LB_MRX, B = c->B, T = c->T, H = c->H, G4 = c->G4;
    (void)B;
    if (nr <= 0) return;
    int first = 1;
    const int64_t tc = w->tc;
    for (int64_t t1 = T; t1 > 0; t1 -= tc) {
        const int64_t t0 = SL_MAX(0, t1 - tc);
        for (int64_t t = t1 - 1; t >= t0; t--) {
            const int mode = t == T - 1 ? 1 : 0;
            const float *An = t + 1 < t1 ? w->dG + (t + 1 - t0) * nr * G4 : w->dGn;
            float *Dt = w->dG + (t - t0) * nr * G4;
            for (int64_t ut = 0; ut < c->nut; ut++)
                for (int64_t j = 0, r = 0; j < nblk; j++) {
                    const int64_t mr = nr / nblk + (j < nr % nblk);
                    lb_blocks[mr](c, w, r, ut, t, mode, An + r * G4, Dt + r * G4);
                    r += mr;
                }
            /* h_{t-1} of the thread's sequences: the chunk's rows of the product below. */
            float *hp = w->hp + (t - t0) * nr * H;
            for (int64_t i = 0; i < nr; i++) {
                const int64_t b = w->ba + i;
                const float *src = t > 0 ? c->states + (b * T + t - 1) * 2 * H : (c->carry0 ? c->carry0 + b * 2 * H : NULL);
                if (src) memcpy(hp + i * H, src, (size_t)H * sizeof *hp);
                else memset(hp + i * H, 0, (size_t)H * sizeof *hp);
            }
        }
        /* dW_hh (this thread's part) += dG_chunk^T H_prev_chunk, rows in step order. */
        /* Without a start state h_{-1} = 0: step 0's rows (the chunk's first) add nothing. */
        const int64_t skip = t0 == 0 && !c->carry0 ? nr : 0, K = (t1 - t0) * nr - skip;
        if (want_dw) sl_bptt_gemm(G4, H, K, w->dG + skip * G4, 1, G4, w->hp + skip * H, H, !first, w->dw, H);
        /* More than 8 inputs: dW_ih (this thread's part) += dG_t^T X_t and dx_t = dG_t W_ih, by BLAS. */
        for (int64_t t = t0; t < t1 && (want_dwi || c->dx); t++) {
            const float *Dt = w->dG + (t - t0) * nr * G4;
            const int64_t row = w->ba * T + t, in = c->in;   /* x and dx rows (b, t): T * in apart */
            if (want_dwi) sl_sgemm(1, 0, G4, in, nr, 1.0f, Dt, G4, c->x + row * in, T * in, first && t == t0 ? 0.0f : 1.0f, w->dwi, in);
            if (c->dx) sl_sgemm(0, 0, nr, in, G4, 1.0f, Dt, G4, c->w_ih, in, 0.0f, c->dx + row * in, T * in);
        }
        first = 0;
        memcpy(w->dGn, w->dG, (size_t)(nr * G4) * sizeof(float));   /* dG_{t0} for the next chunk */
    }
    if (c->dcarry0)
        for (int64_t ut = 0; ut < c->nut; ut++)
            for (int64_t j = 0, r = 0; j < nblk; j++) {
                const int64_t mr = nr / nblk + (j < nr % nblk);
                lb_blocks[mr](c, w, r, ut, -1, 2, w->dGn + r * G4, NULL);
                r += mr;
            }
}
#pragma GCC pop_options
#undef VW
#undef SFX
#undef VF
#undef VI
#undef VFMA
#undef VSPLAT

static int lb_threads(int64_t B, int64_t H)
{
    int nt = omp_in_parallel() ? 1 : sl_get_threads();
    if ((double)B * 4.0 * (double)H * (double)H < 65536.0) nt = 1;   /* a step too small to share */
    return (int)SL_MIN((int64_t)nt, SL_MAX(B, 1));
}

#define LB_UP(n) (((n) + 15) / 16 * 16)   /* whole cache lines */

/* Floats of one thread's buffers with nr sequences. */
static int64_t lb_thr_floats(int64_t H, int64_t in, int64_t nr, int64_t T)
{
    const int64_t tc = lb_chunk(H, nr, T);
    const int64_t G4 = 4 * H, Hu = (H + UB - 1) / UB * UB, nfew = in <= 8 ? in : 0;
    return LB_UP(tc * nr * G4) + LB_UP(nr * G4) + LB_UP(tc * nr * H) + nr * Hu + (1 + nfew) * 4 * Hu +
           LB_UP(G4 * H) + (nfew ? 0 : LB_UP(G4 * in));
}

/* Floats of workspace, for nt threads. */
static size_t lb_ws_floats(const sl_rnn_weights *w, int64_t B, int64_t T, int nt)
{
    const int64_t H = w->H, G4 = 4 * H, nut = (H + UB - 1) / UB;
    return (size_t)(nut * G4 * UB + (int64_t)nt * lb_thr_floats(H, w->in, (B + nt - 1) / nt, T) + 64);
}

size_t sl_lstm_bptt_ws(const sl_rnn_weights *w, int64_t B, int64_t T)
{
    return lb_ws_floats(w, B, T, lb_threads(B, w->H)) * sizeof(float) + 64;
}

int sl_lstm_bptt_available(const sl_rnn_weights *w)
{
    if (w->cell != SL_CELL_LSTM || sl_kernels_isa() != SL_ISA_AVX512) return 0;
    return 1;
}

static int lb_run(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, const float *carry0,
                  const float *states, const float *gates, const float *dy, const sl_dy_lowrank *lr, float *dx,
                  float *dcarry0, const sl_rnn_grads *g, void *ws, size_t ws_size, sl_err *err)
{
    const int64_t H = w->H, in = w->in, G4 = 4 * H;
    if (!sl_lstm_bptt_available(w) || !gates) return sl_err_set(err, SL_EINTERNAL, "fused LSTM backward unavailable");
    if (B == 0) return SL_OK;
    if (T == 0) {
        if (dcarry0) memset(dcarry0, 0, (size_t)(B * 2 * H) * sizeof *dcarry0);
        return SL_OK;
    }
    int nt = lb_threads(B, H);
    if (ws_size < lb_ws_floats(w, B, T, nt) * sizeof(float) + 64)
        return sl_err_set(err, SL_EINTERNAL, "backward workspace too small");
    if (!dy && (!lr || !lr->dz || !lr->w || lr->nz <= 0))
        return sl_err_set(err, SL_EINVAL, "backward without dL/dy");
    lb_ctx c = { .B = B, .T = T, .H = H, .in = in, .G4 = G4, .nut = (H + UB - 1) / UB, .x = x, .carry0 = carry0,
                 .states = states, .gates = gates, .dy = dy, .dcarry0 = dcarry0, .nfew = in <= 8 ? in : 0 };
    if (!dy) { c.dz = lr->dz; c.wz = lr->w; c.nz = lr->nz; }
    c.Hu = c.nut * UB;
    float *wp = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    float *thr0 = wp + c.nut * G4 * UB;
    const int64_t nrmax = (B + nt - 1) / nt, tf = lb_thr_floats(H, in, nrmax, T), tcx = lb_chunk(H, nrmax, T);
    const int64_t nacc = (1 + c.nfew) * 4 * c.Hu;
    c.wp = wp;
    /* W_hh [4H, H] packed by 64-unit tiles: wp[ut][q][l] = W_hh[q][ut * 64 + l]. */
    for (int64_t ut = 0; ut < c.nut; ut++)
        for (int64_t q = 0; q < G4; q++) {
            float *d = wp + (ut * G4 + q) * UB;
            const int64_t n = SL_MIN((int64_t)UB, H - ut * UB);
            memcpy(d, w->w_hh + q * H + ut * UB, (size_t)n * sizeof *d);
            memset(d + n, 0, (size_t)(UB - n) * sizeof *d);
        }
    lb_thr thr[64];
    if (nt > 64) nt = 64;
    for (int th = 0; th < nt; th++) {
        lb_thr *tw = &thr[th];
        float *f = thr0 + th * tf;
        tw->ba = B * th / nt;
        tw->nr = B * (th + 1) / nt - tw->ba;
        tw->tc = tcx;
        tw->dG = f; f += LB_UP(tcx * nrmax * G4);
        tw->dGn = f; f += LB_UP(nrmax * G4);
        tw->hp = f; f += LB_UP(tcx * nrmax * H);
        tw->dc = f; f += nrmax * c.Hu;
        tw->acc = f; f += nacc;
        tw->dw = f; f += LB_UP(G4 * H);
        tw->dwi = c.nfew ? NULL : f;
    }
    c.dx = dx;
    c.w_ih = w->w_ih;
    const int want_dwi = g->w_ih && !c.nfew;
    const int team = nt > 1;
#pragma omp parallel num_threads(nt) if (team)
    {
        const int th = omp_get_thread_num(), n = omp_get_num_threads();
        const lb_thr *tw = &thr[th];
        memset(tw->acc, 0, (size_t)nacc * sizeof(float));
        memset(tw->dc, 0, (size_t)(tw->nr * c.Hu) * sizeof(float));
        if (tw->nr > 0) lb_thread(&c, tw, g->w_hh != NULL, want_dwi);
        if (tw->nr <= 0 && g->w_hh) memset(tw->dw, 0, (size_t)(G4 * H) * sizeof(float));
        if (tw->nr <= 0 && want_dwi) memset(tw->dwi, 0, (size_t)(G4 * in) * sizeof(float));
#pragma omp barrier
        /* dW_hh += the threads' sums, in thread order; elements split over the team. */
        if (g->w_hh) {
            const int64_t e0 = G4 * H * th / n, e1 = G4 * H * (th + 1) / n;
            for (int64_t e = e0; e < e1; e++) {
                float sum = thr[0].dw[e];
                for (int k = 1; k < n; k++) sum += thr[k].dw[e];
                g->w_hh[e] += sum;
            }
        }
    }
    /* Per-thread sums, in thread order: bias (b_ih and b_hh get the same), then dW_ih. */
    for (int th = 0; th < nt; th++) {
        const float *accb = thr[th].acc;
        for (int64_t q = 0; q < G4; q++) {
            const float s = accb[(q / H) * c.Hu + q % H];
            if (g->b_ih && w->b_ih) g->b_ih[q] += s;
            if (g->b_hh && w->b_hh) g->b_hh[q] += s;
            for (int64_t j = 0; g->w_ih && j < c.nfew; j++) g->w_ih[q * in + j] += accb[(j + 1) * 4 * c.Hu + (q / H) * c.Hu + q % H];
        }
        for (int64_t e = 0; want_dwi && e < G4 * in; e++) g->w_ih[e] += thr[th].dwi[e];
    }
    return SL_OK;
}

int sl_lstm_bptt(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, const float *carry0,
                 const float *states, const float *gates, const float *dy, float *dx, float *dcarry0,
                 const sl_rnn_grads *g, void *ws, size_t ws_size, sl_err *err)
{
    return lb_run(w, B, T, x, carry0, states, gates, dy, NULL, dx, dcarry0, g, ws, ws_size, err);
}

int sl_lstm_bptt_lowrank(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, const float *carry0,
                         const float *states, const float *gates, const sl_dy_lowrank *dy, float *dx, float *dcarry0,
                         const sl_rnn_grads *g, void *ws, size_t ws_size, sl_err *err)
{
    return lb_run(w, B, T, x, carry0, states, gates, NULL, dy, dx, dcarry0, g, ws, ws_size, err);
}
