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
** dG_t, the bias sums and (few inputs) dW_ih are written once. The gate
** gradients are kept for all steps (time-major, [T][B][4H], so a block's
** rows are adjacent) for the weight gradient, which is one product over all
** steps at the end: dW_hh = dG^T H_prev (sl_bptt_gemm_team), then dW_ih or dx
** by BLAS when there are more than 8 inputs.
**
** Threads: one OpenMP region. Each thread owns a range of sequences for the
** whole time loop (no synchronisation at all: the steps of a sequence only
** read that sequence's own gradients), then the team meets once and splits
** dW_hh by tiles of its output (each element summed over all steps in order,
** so dW_hh does not depend on the thread count). The bias and dW_ih sums are
** per-thread partial sums added in thread order: the same bits for the same
** thread count.
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
    const float *wp;               /* [nut][4H][UB] packed W_hh */
    float *dG;                     /* [T][B][4H] */
    float *dc;                     /* [B][Hu] */
    float *acc;                    /* [nt][(1 + nfew) * 4 * Hu]: bias sums, then dW_ih sums per input (few) */
    float *dcarry0;                /* [B, 2H] or NULL */
    int64_t nfew;                  /* inputs summed in the cell (in <= 8), else 0 */
} lb_ctx;

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
#include "vecmath.h"

static inline __mmask16 lb_mask(int64_t n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* One block: sequences b0..b0+MR-1, units of tile ut, step t.
** mode 0: dh = dy_t + dG_{t+1} W_hh, then the cell; mode 1: dh = dy_t (the
** last step), then the cell; mode 2: dh_{-1} = dG_0 W_hh into dcarry0 (with
** dc_{-1}), no cell. */
static inline __attribute__((always_inline)) void lb_block(const int MR, const lb_ctx *c, float *accb, int64_t b0,
                                                           int64_t ut, int64_t t, int mode)
{
    const int64_t B = c->B, T = c->T, H = c->H, G4 = c->G4, Hu = c->Hu;
    __m512 acc[8][4];
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) acc[m][v] = _mm512_setzero_ps();
    if (mode != 1) {
        const int64_t tn = mode == 2 ? 0 : t + 1;
        const float *A = c->dG + (tn * B + b0) * G4;   /* rows of the block: G4 apart */
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
        const int64_t b = b0 + m;
        float *dcb = c->dc + b * Hu;
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
        const float *gr = c->gates + r * G4, *cr = c->states + r * 2 * H + H, *dyr = c->dy + r * H;
        const float *cpr = t > 0 ? c->states + (r - 1) * 2 * H + H : (c->carry0 ? c->carry0 + b * 2 * H + H : NULL);
        float *dgr = c->dG + (t * B + b) * G4;
        /* The previous step's rows of this sequence are a page or more away from
        ** this block's other rows, out of the hardware prefetchers' reach:
        ** fetch them while this step's product runs. */
        const float *pg = gr - G4, *pc = cr - 4 * H, *py = dyr - H;
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            const int64_t u = ut * UB + v * 16;
            if (u >= H) break;
            if (t > 0) {
                _mm_prefetch((const char *)(pg + u), _MM_HINT_T1);
                _mm_prefetch((const char *)(pg + H + u), _MM_HINT_T1);
                _mm_prefetch((const char *)(pg + 2 * H + u), _MM_HINT_T1);
                _mm_prefetch((const char *)(pg + 3 * H + u), _MM_HINT_T1);
                _mm_prefetch((const char *)(py + u), _MM_HINT_T1);
                if (t > 1) _mm_prefetch((const char *)(pc + u), _MM_HINT_T1);
            }
            const __mmask16 k = lb_mask(H - u);
            const __m512 i = _mm512_maskz_loadu_ps(k, gr + u), f = _mm512_maskz_loadu_ps(k, gr + H + u),
                         g = _mm512_maskz_loadu_ps(k, gr + 2 * H + u), o = _mm512_maskz_loadu_ps(k, gr + 3 * H + u);
            const __m512 cc = _mm512_maskz_loadu_ps(k, cr + u);
            const __m512 cp = cpr ? _mm512_maskz_loadu_ps(k, cpr + u) : _mm512_setzero_ps();
            const __m512 dh = _mm512_add_ps(acc[m][v], _mm512_maskz_loadu_ps(k, dyr + u));
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
typedef void (*lb_fn)(const lb_ctx *, float *, int64_t, int64_t, int64_t, int);
#define LB_DEF(MR)                                                                                              \
    static void lb_block_##MR(const lb_ctx *c, float *accb, int64_t b0, int64_t ut, int64_t t, int mode)         \
    {                                                                                                           \
        lb_block(MR, c, accb, b0, ut, t, mode);                                                                 \
    }
LB_DEF(1) LB_DEF(2) LB_DEF(3) LB_DEF(4) LB_DEF(5) LB_DEF(6)
#undef LB_DEF
static const lb_fn lb_blocks[LB_MRX + 1] = { NULL, lb_block_1, lb_block_2, lb_block_3, lb_block_4, lb_block_5,
                                             lb_block_6 };

/* The time loop of one thread over sequences [ba, bb). */
static void lb_thread(const lb_ctx *c, float *accb, int64_t ba, int64_t bb)
{
    const int64_t nr = bb - ba, nblk = (nr + LB_MRX - 1) / LB_MRX;
    if (nr <= 0) return;
    for (int64_t t = c->T - 1; t >= -1; t--) {
        if (t < 0 && !c->dcarry0) break;
        const int mode = t < 0 ? 2 : t == c->T - 1 ? 1 : 0;
        for (int64_t ut = 0; ut < c->nut; ut++)
            for (int64_t j = 0, b = ba; j < nblk; j++) {
                const int64_t mr = nr / nblk + (j < nr % nblk);
                lb_blocks[mr](c, accb, b, ut, t, mode);
                b += mr;
            }
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

/* Floats of workspace, for nt threads. */
static size_t lb_ws_floats(const sl_rnn_weights *w, int64_t B, int64_t T, int nt)
{
    const int64_t H = w->H, G4 = 4 * H, nut = (H + UB - 1) / UB, Hu = nut * UB, BT = B * T;
    const int64_t nfew = w->in <= 8 ? w->in : 0;
    return (size_t)(nut * G4 * UB + LB_UP(BT * G4) + LB_UP(BT * H) + B * Hu + (int64_t)nt * (1 + nfew) * 4 * Hu + 64);
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

int sl_lstm_bptt(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, const float *carry0,
                 const float *states, const float *gates, const float *dy, float *dx, float *dcarry0,
                 const sl_rnn_grads *g, void *ws, size_t ws_size, sl_err *err)
{
    const int64_t H = w->H, in = w->in, G4 = 4 * H, BT = B * T;
    if (!sl_lstm_bptt_available(w) || !gates) return sl_err_set(err, SL_EINTERNAL, "fused LSTM backward unavailable");
    if (B == 0) return SL_OK;
    if (T == 0) {
        if (dcarry0) memset(dcarry0, 0, (size_t)(B * 2 * H) * sizeof *dcarry0);
        return SL_OK;
    }
    int nt = lb_threads(B, H);
    if (ws_size < lb_ws_floats(w, B, T, nt) * sizeof(float) + 64)
        return sl_err_set(err, SL_EINTERNAL, "backward workspace too small");
    lb_ctx c = { .B = B, .T = T, .H = H, .in = in, .G4 = G4, .nut = (H + UB - 1) / UB, .x = x, .carry0 = carry0,
                 .states = states, .gates = gates, .dy = dy, .dcarry0 = dcarry0, .nfew = in <= 8 ? in : 0 };
    c.Hu = c.nut * UB;
    float *f = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    float *wp = f; f += c.nut * G4 * UB;
    c.dG = f; f += LB_UP(BT * G4);
    float *Hp = f; f += LB_UP(BT * H);    /* [T][B][H]: h_{t-1}, the rows of dG */
    c.dc = f; f += B * c.Hu;
    c.acc = f;
    c.wp = wp;
    const int64_t nacc = (1 + c.nfew) * 4 * c.Hu;
    /* W_hh [4H, H] packed by 64-unit tiles: wp[ut][q][l] = W_hh[q][ut * 64 + l]. */
    for (int64_t ut = 0; ut < c.nut; ut++)
        for (int64_t q = 0; q < G4; q++) {
            float *d = wp + (ut * G4 + q) * UB;
            const int64_t n = SL_MIN((int64_t)UB, H - ut * UB);
            memcpy(d, w->w_hh + q * H + ut * UB, (size_t)n * sizeof *d);
            memset(d + n, 0, (size_t)(UB - n) * sizeof *d);
        }
    const int team = nt > 1;
#pragma omp parallel num_threads(nt) if (team)
    {
        const int th = omp_get_thread_num(), n = omp_get_num_threads();
        const int64_t ba = B * th / n, bb = B * (th + 1) / n;
        float *accb = c.acc + th * nacc;
        memset(accb, 0, (size_t)nacc * sizeof *accb);
        memset(c.dc + ba * c.Hu, 0, (size_t)((bb - ba) * c.Hu) * sizeof(float));
        for (int64_t t = 0; t < T; t++)
            for (int64_t b = ba; b < bb; b++) {
                float *hp = Hp + (t * B + b) * H;
                const float *src = t > 0 ? states + (b * T + t - 1) * 2 * H : (carry0 ? carry0 + b * 2 * H : NULL);
                if (src) memcpy(hp, src, (size_t)H * sizeof *hp);
                else memset(hp, 0, (size_t)H * sizeof *hp);
            }
        lb_thread(&c, accb, ba, bb);
#pragma omp barrier
        if (g->w_hh) sl_bptt_gemm_team(G4, H, BT, c.dG, 1, G4, Hp, H, 1, g->w_hh, H);
    }
    /* Per-thread sums, in thread order: bias (b_ih and b_hh get the same), then dW_ih. */
    for (int th = 0; th < nt; th++) {
        const float *accb = c.acc + th * nacc;
        for (int64_t q = 0; q < G4; q++) {
            const float s = accb[(q / H) * c.Hu + q % H];
            if (g->b_ih && w->b_ih) g->b_ih[q] += s;
            if (g->b_hh && w->b_hh) g->b_hh[q] += s;
            for (int64_t j = 0; g->w_ih && j < c.nfew; j++) g->w_ih[q * in + j] += accb[(j + 1) * 4 * c.Hu + (q / H) * c.Hu + q % H];
        }
    }
    /* Many inputs: dW_ih = dG^T X and dx = dG W_ih by BLAS, a step (B rows of dG) at a time. */
    for (int64_t t = 0; t < T && (dx || (g->w_ih && !c.nfew)); t++) {
        const float *dGt = c.dG + t * B * G4;
        if (g->w_ih && !c.nfew) sl_sgemm(1, 0, G4, in, B, 1.0f, dGt, G4, x + t * in, T * in, 1.0f, g->w_ih, in);
        if (dx) sl_sgemm(0, 0, B, in, G4, 1.0f, dGt, G4, w->w_ih, in, 0.0f, dx + t * in, T * in);
    }
    return SL_OK;
}
