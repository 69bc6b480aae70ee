/*
** The fused recurrent kernels, as a template: kernels/rnn_fused.c includes
** this file once per instruction set (AVX-512, AVX2 + FMA, SSE4.2) inside a
** `#pragma GCC target` region, with VF, VI, VW, VFMA, SFX and the register
** budget RF_MR4 / RF_MR3 (rows per block for tiles of 4 / 3 groups) defined.
** The design is described at the top of rnn_fused.c; this file has the four
** pieces that depend on the vector width:
**
**   tile_block  the micro-kernel: MR rows of A times one packed weight tile
**               (NV groups of 16 columns, K deep), accumulated in MR x NV*16/VW
**               vector registers, then stored with the bias added (the input
**               projection, mode 0) or as they are (the recurrent step, mode 1,
**               into cx->pre);
**   cell        the gate cell on a block's pre-activations, writing h, c, y,
**               gates and states once;
**   run         the driver: one OpenMP parallel region around the whole time
**               loop; each thread owns a range of tiles (tile mode, threads
**               meet once a step through step flags) or a range of sequences
**               (row mode, no synchronisation);
**   varr        the vector math on arrays, for the tests.
*/

#define RF_E (16 / VW)   /* vectors per 16-float group */
#ifndef RF_PF
#define RF_PF 16         /* GEMV: prefetch W this many k ahead (4 KB). lstm H = 256, 2 threads, 5000 steps:
                            no prefetch 15.8 ms, 4 ahead 14.3, 8..32 ahead 13.4 */
#endif

typedef float SFX(vfu) __attribute__((vector_size(VW * 4), aligned(4)));   /* unaligned access */

static inline VF SFX(ldu)(const float *p) { return *(const SFX(vfu) *)p; }
static inline void SFX(stu)(float *p, VF v) { *(SFX(vfu) *)p = v; }

/* Store the first n (> 0) lanes of v at p. */
static inline void SFX(st_part)(float *p, VF v, int64_t n)
{
    if (n >= VW) {
        SFX(stu)(p, v);
    } else {
        float tmp[VW];
        SFX(stu)(tmp, v);
        for (int64_t i = 0; i < n; i++) p[i] = tmp[i];
    }
}

#include "vecmath.h"

/* One block: rows [b0, b0 + MR) x one tile. mode 0: out[m, :] = A[m, :] W + bias.
** mode 1: the recurrent product of step t for sequences b0.., out[m, :] =
** A[m, :] W (+ x_t W_ih + bias when cx->fold), the pre-activations SFX(cell) reads. */
static inline __attribute__((always_inline)) void SFX(tile_block)(const int MR, const int NV, const int mode,
                                                                  const rf_ctx *cx, int64_t K, const float *A,
                                                                  int64_t lda, const float *W, float *out, int64_t ldo,
                                                                  const float *bias, int64_t b0, int64_t tile,
                                                                  int64_t t)
{
    enum { NVE_MAX = 4 * RF_E, MR_MAX = 8 };
    const int NVE = NV * RF_E;
    const int64_t ldw = NV * 16;
    VF acc[MR_MAX][NVE_MAX], acc2[MR_MAX][NVE_MAX];   /* fixed sizes, so they become registers */
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 16
        for (int v = 0; v < NVE; v++) acc[m][v] = acc2[m][v] = VM_SPLAT(0.0f);
    const int fold = mode == 1 && cx->fold;
    if (fold) {
        /* Few inputs: the step's input product and the folded bias start the
        ** accumulators (no projection pass, no gx). */
        const int64_t in = cx->p->in;
        const float *wi = cx->p->wih + tile * in * ldw, *bi = cx->p->bias + tile * ldw;
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++)
#pragma GCC unroll 16
            for (int v = 0; v < NVE; v++) acc[m][v] = *(const VF *)(bi + v * VW);
        for (int64_t j = 0; j < in; j++) {
            VF wv[NVE_MAX];
#pragma GCC unroll 16
            for (int v = 0; v < NVE; v++) wv[v] = *(const VF *)(wi + j * ldw + v * VW);
#pragma GCC unroll 8
            for (int m = 0; m < MR; m++) {
                const VF a = VM_SPLAT(cx->x[((b0 + m) * cx->T + t) * in + j]);
#pragma GCC unroll 16
                for (int v = 0; v < NVE; v++) acc[m][v] = VFMA(a, wv[v], acc[m][v]);
            }
        }
    }
    int64_t k = 0;
    if (mode == 1 && t == 0 && !cx->carry) K = 0;   /* h_{-1} = 0: the product adds nothing */
    if (MR <= 2) {
        /* Few rows: two accumulator sets over even/odd k keep enough FMAs in flight. */
        for (; k + 1 < K; k += 2) {
            const float *w0 = W + k * ldw, *w1 = w0 + ldw;
#if RF_PF > 0
#pragma GCC unroll 8
            for (int v = 0; v < 2 * NV; v++) __builtin_prefetch(w0 + RF_PF * ldw + v * 16, 0, 3);
#endif
#pragma GCC unroll 8
            for (int m = 0; m < MR; m++) {
                const VF a0 = VM_SPLAT(A[m * lda + k]), a1 = VM_SPLAT(A[m * lda + k + 1]);
#pragma GCC unroll 16
                for (int v = 0; v < NVE; v++) {
                    acc[m][v] = VFMA(a0, *(const VF *)(w0 + v * VW), acc[m][v]);
                    acc2[m][v] = VFMA(a1, *(const VF *)(w1 + v * VW), acc2[m][v]);
                }
            }
        }
    }
    for (; k < K; k++) {
        const float *w0 = W + k * ldw;
        VF wv[NVE_MAX];
#pragma GCC unroll 16
        for (int v = 0; v < NVE; v++) wv[v] = *(const VF *)(w0 + v * VW);
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++) {
            const VF a = VM_SPLAT(A[m * lda + k]);
#pragma GCC unroll 16
            for (int v = 0; v < NVE; v++) acc[m][v] = VFMA(a, wv[v], acc[m][v]);
        }
    }
    if (MR <= 2)
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++)
#pragma GCC unroll 16
            for (int v = 0; v < NVE; v++) acc[m][v] += acc2[m][v];

#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 16
        for (int v = 0; v < NVE; v++)
            SFX(stu)(out + m * ldo + v * VW, mode == 0 ? acc[m][v] + SFX(ldu)(bias + v * VW) : acc[m][v]);
}

#ifndef RF_LR
#define RF_LR (VW == 16 ? 3 : 1)   /* LSTM cell rows interleaved (AVX-512: 32 registers) */
#endif
/* This sequence's rows of y (at py) and states (at ps, with c when pc) for the
** next step: [B, T, .] rows, a page or more from the other sequences', out of
** the hardware prefetchers' reach (with one sequence they are the next bytes:
** not done). Fetched for writing now, their reads for ownership overlap this
** step (training forward lstm H = 128, B = 64: 1.50 -> 1.46 ms). */
static inline void SFX(prefetch_next)(const rf_ctx *cx, const float *py, const float *ps, int pc)
{
    if (py) __builtin_prefetch(py + cx->p->H, 1, 3);
    if (ps) __builtin_prefetch(ps + cx->nc, 1, 3);
    if (ps && pc) __builtin_prefetch(ps + cx->nc + cx->p->H, 1, 3);
}

/* The LSTM cell for R rows from b (one 16-unit group a tile: RF_E vectors), each
** stage for all R rows before the next: a row's cell is a chain of dependent
** transcendentals, and interleaving independent rows' chains in the instruction
** stream keeps the FMA pipes busy (AVX-512 forward lstm H = 128, in = 1, B = 64,
** T = 64: 1.325 -> 1.295 ms on a quiet machine, 1.57 -> 1.46 with other tenants
** loading memory; groups of 2: 1.52, of 4 (spills): 1.60). */
static inline __attribute__((always_inline)) void SFX(lstm_rows)(const int R, const rf_ctx *cx, int64_t b,
                                                                 int64_t tile, int64_t t, int64_t s, float *hn)
{
    enum { RMAX = 4 };
    const sl_rnn_packed *p = cx->p;
    const int64_t H = p->H, Hp = p->Hp, GHp = p->GHp, T = cx->T, col0 = tile * p->NV * 16, unit0 = tile * p->UT;
#pragma GCC unroll 4
    for (int e = 0; e < RF_E; e++) {
        const int64_t u = unit0 + e * VW, n = H - u;
        if (u >= H) break;
        VF pre[4][RMAX], iv[RMAX], fv[RMAX], gv[RMAX], ov[RMAX], cv[RMAX], hv[RMAX];
#pragma GCC unroll 4
        for (int k = 0; k < R; k++) {
            const float *pr = cx->pre + (b + k) * GHp + col0 + e * VW;
            const float *gxr = cx->fold ? NULL : cx->gx + ((b + k) * cx->Tc + s) * GHp + col0 + e * VW;
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++)
                pre[g][k] = cx->fold ? SFX(ldu)(pr + g * 16) : SFX(ldu)(pr + g * 16) + SFX(ldu)(gxr + g * 16);
        }
#pragma GCC unroll 4
        for (int k = 0; k < R; k++) { iv[k] = SFX(vsig)(pre[0][k]); fv[k] = SFX(vsig)(pre[1][k]); }
#pragma GCC unroll 4
        for (int k = 0; k < R; k++) { gv[k] = SFX(vtanh)(pre[2][k]); ov[k] = SFX(vsig)(pre[3][k]); }
#pragma GCC unroll 4
        for (int k = 0; k < R; k++) cv[k] = VFMA(fv[k], SFX(ldu)(cx->c + (b + k) * Hp + u), iv[k] * gv[k]);
#pragma GCC unroll 4
        for (int k = 0; k < R; k++) hv[k] = ov[k] * SFX(vtanh)(cv[k]);
#pragma GCC unroll 4
        for (int k = 0; k < R; k++) {
            const int64_t r = b + k;
            SFX(stu)(cx->c + r * Hp + u, cv[k]);
            SFX(stu)(hn + r * Hp + u, hv[k]);
            if (cx->gates) {
                float *gr = cx->gates + (t * cx->B + r) * 4 * H + u;   /* time-major */
                SFX(st_part)(gr, iv[k], n);
                SFX(st_part)(gr + H, fv[k], n);
                SFX(st_part)(gr + 2 * H, gv[k], n);
                SFX(st_part)(gr + 3 * H, ov[k], n);
            }
            float *yr = cx->y ? cx->y + (r * T + t) * H + u : NULL;
            float *sr = cx->states ? cx->states + (r * T + t) * cx->nc + u : NULL;
            if (yr) SFX(st_part)(yr, hv[k], n);
            if (sr) {
                SFX(st_part)(sr, hv[k], n);
                SFX(st_part)(sr + H, cv[k], n);
            }
            if (cx->B > 1 && t + 1 < T) SFX(prefetch_next)(cx, yr, sr, 1);
        }
    }
}

/* The gate cell of step t (chunk row s) for sequences [b0, b0 + nrow) and the
** units of one tile: pre-activations from cx->pre (the step's products), plus
** gx unless folded, from hp (previous h, [B, Hp]) into hn, with c, y, gates and
** states updated, right after the block's product. Apart from the product
** (through cx->pre, in L1) rather than inlined on its accumulators: the step
** function is the product alone (lstm H = 128, in = 1, B = 64, T = 64: forward
** 1.365 -> 1.30 ms). (Tried: the cell once after all of a tile's blocks, so the
** rows' dependent transcendentals run back to back: the same for the LSTM,
** 3-9% slower for GRU and RNN.) */
static void SFX(cell)(const rf_ctx *cx, int64_t b0, int64_t nrow, int64_t tile, int64_t t, int64_t s,
                      const float *hp, float *hn)
{
    const sl_rnn_packed *p = cx->p;
    const int G = (int)p->G;
    const int64_t H = p->H, Hp = p->Hp, GHp = p->GHp, T = cx->T, ldw = p->NV * 16;
    const int subs = (int)(p->NV / G);   /* 16-unit groups in the tile */
    const int64_t col0 = tile * ldw, unit0 = tile * p->UT;
    const int fold = cx->fold;
    if (p->cell == SL_CELL_LSTM) {
        int64_t b = b0;
        for (; b + RF_LR <= b0 + nrow; b += RF_LR) SFX(lstm_rows)(RF_LR, cx, b, tile, t, s, hn);
        for (; b < b0 + nrow; b++) SFX(lstm_rows)(1, cx, b, tile, t, s, hn);
        return;
    }
    for (int64_t b = b0; b < b0 + nrow; b++) {
        const float *pr = cx->pre + b * GHp + col0;
        const float *gxr = fold ? NULL : cx->gx + (b * cx->Tc + s) * GHp + col0;
        const float *hpr = hp + b * Hp;
        float *hnr = hn + b * Hp;   /* GRU and RNN (the LSTM above) */
        float *yr = cx->y ? cx->y + (b * T + t) * H : NULL;
        float *sr = cx->states ? cx->states + (b * T + t) * cx->nc : NULL;
        for (int sub = 0; sub < subs; sub++)
#pragma GCC unroll 4
            for (int e = 0; e < RF_E; e++) {
                const int64_t u = unit0 + sub * 16 + e * VW;
                if (u >= H) break;
#define RF_ACC(g) SFX(ldu)(pr + (sub * G + (g)) * 16 + e * VW)
#define RF_PRE(g) (fold ? RF_ACC(g) : RF_ACC(g) + SFX(ldu)(gxr + (sub * G + (g)) * 16 + e * VW))
                VF hv;
                switch (p->cell) {
                case SL_CELL_GRU: {
                    const VF r = SFX(vsig)(RF_PRE(0)), z = SFX(vsig)(RF_PRE(1));
                    const VF hh = RF_ACC(2) + SFX(ldu)(p->bhn + u);
                    const VF n = SFX(vtanh)(VFMA(r, hh, SFX(ldu)(gxr + (sub * G + 2) * 16 + e * VW)));
                    hv = VFMA(VM_SPLAT(1.0f) - z, n, z * SFX(ldu)(hpr + u));
                    break;
                }
                default: {
                    const VF pre = RF_PRE(0);
                    const VF a = p->cell == SL_CELL_RNN_RELU ? SFX(vm_max)(pre, VM_SPLAT(0.0f)) : SFX(vtanh)(pre);
                    if (p->alpha) {
                        const VF al = SFX(ldu)(p->alpha + u);
                        hv = VFMA(VM_SPLAT(1.0f) - al, SFX(ldu)(hpr + u), al * a);
                    } else {
                        hv = a;
                    }
                    break;
                }
                }
#undef RF_PRE
#undef RF_ACC
                SFX(stu)(hnr + u, hv);
                if (yr) SFX(st_part)(yr + u, hv, H - u);
                if (sr) SFX(st_part)(sr + u, hv, H - u);
                if (cx->B > 1 && t + 1 < T) SFX(prefetch_next)(cx, yr ? yr + u : NULL, sr ? sr + u : NULL, 0);
            }
    }
}

/* Out-of-line instances: proj_NV_MR and step_NV_MR. */
typedef void (*SFX(proj_fn))(const rf_ctx *, int64_t, const float *, int64_t, const float *, float *, int64_t,
                             const float *);
typedef void (*SFX(step_fn))(const rf_ctx *, const float *, int64_t, const float *, int64_t, int64_t, int64_t);
#define RF_DEF(NV, MR)                                                                                        \
    static void SFX(proj_##NV##_##MR)(const rf_ctx *cx, int64_t K, const float *A, int64_t lda, const float *W, \
                                      float *out, int64_t ldo, const float *bias)                              \
    {                                                                                                         \
        SFX(tile_block)(MR, NV, 0, cx, K, A, lda, W, out, ldo, bias, 0, 0, 0);                                \
    }                                                                                                         \
    static void SFX(step_##NV##_##MR)(const rf_ctx *cx, const float *A, int64_t lda, const float *W, int64_t b0, \
                                      int64_t tile, int64_t t)                                                 \
    {                                                                                                         \
        SFX(tile_block)(MR, NV, 1, cx, cx->p->H, A, lda, W, cx->pre + b0 * cx->p->GHp + tile * NV * 16,        \
                        cx->p->GHp, NULL, b0, tile, t);                                                        \
    }

RF_DEF(4, 1)
RF_DEF(3, 1)
#if RF_MR3 >= 2
RF_DEF(3, 2)
#endif
#if RF_MR4 >= 6
RF_DEF(4, 2) RF_DEF(4, 3) RF_DEF(4, 4) RF_DEF(4, 5) RF_DEF(4, 6)
#endif
#if RF_MR3 >= 8
RF_DEF(3, 3) RF_DEF(3, 4) RF_DEF(3, 5) RF_DEF(3, 6) RF_DEF(3, 7) RF_DEF(3, 8)
#endif
#undef RF_DEF

static const SFX(proj_fn) SFX(proj4)[] = {
    NULL, SFX(proj_4_1),
#if RF_MR4 >= 6
    SFX(proj_4_2), SFX(proj_4_3), SFX(proj_4_4), SFX(proj_4_5), SFX(proj_4_6),
#endif
};
static const SFX(step_fn) SFX(step4)[] = {
    NULL, SFX(step_4_1),
#if RF_MR4 >= 6
    SFX(step_4_2), SFX(step_4_3), SFX(step_4_4), SFX(step_4_5), SFX(step_4_6),
#endif
};
static const SFX(proj_fn) SFX(proj3)[] = {
    NULL, SFX(proj_3_1),
#if RF_MR3 >= 2
    SFX(proj_3_2),
#endif
#if RF_MR3 >= 8
    SFX(proj_3_3), SFX(proj_3_4), SFX(proj_3_5), SFX(proj_3_6), SFX(proj_3_7), SFX(proj_3_8),
#endif
};
static const SFX(step_fn) SFX(step3)[] = {
    NULL, SFX(step_3_1),
#if RF_MR3 >= 2
    SFX(step_3_2),
#endif
#if RF_MR3 >= 8
    SFX(step_3_3), SFX(step_3_4), SFX(step_3_5), SFX(step_3_6), SFX(step_3_7), SFX(step_3_8),
#endif
};

/* Rows per block for tiles of nv groups on this ISA. */
static int SFX(mr_max)(int64_t nv) { return nv == 4 ? RF_MR4 : RF_MR3; }

/* The whole forward pass. nt threads; tile_mode: split tiles (flags each
** step) instead of sequences. The context's buffers are allocated. */
static void SFX(run)(const rf_ctx *cx, int nt, int tile_mode)
{
    const sl_rnn_packed *p = cx->p;
    const int64_t B = cx->B, T = cx->T, Tc = cx->Tc, in = p->in, H = p->H, GHp = p->GHp, NV = p->NV;
    const int MRX = SFX(mr_max)(NV);
    const SFX(proj_fn) *proj = NV == 4 ? SFX(proj4) : SFX(proj3);
    const SFX(step_fn) *step = NV == 4 ? SFX(step4) : SFX(step3);
#pragma omp parallel num_threads(nt)
    {
        const int th = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t ta = 0, tb = p->ntiles, ba = 0, bb = B;
        if (tile_mode) { ta = p->ntiles * th / n; tb = p->ntiles * (th + 1) / n; }
        else { ba = B * th / n; bb = B * (th + 1) / n; }
        const int sync = tile_mode && n > 1;   /* steps synchronised through the flags */
        const int64_t nrow = bb - ba;
        const int64_t nblk = (nrow + MRX - 1) / MRX;
        for (int64_t t0 = 0; t0 < T; t0 += Tc) {
            const int64_t tc = SL_MIN(Tc, T - t0);
            /* Input projection of this chunk for the tiles and rows this thread owns,
            ** in blocks of rows along the steps of one sequence (contiguous x rows) or
            ** across sequences at one step (x rows T * in apart), whichever fills the
            ** register block better. */
            const int64_t sblk = (tc + MRX - 1) / MRX, bblk = (nrow + MRX - 1) / MRX;
            const int along_s = tc * bblk >= nrow * sblk;
            for (int64_t tile = ta; tile < tb && !cx->fold; tile++) {
                const float *W = p->wih + tile * in * NV * 16, *bias = p->bias + tile * NV * 16;
                if (along_s) {
                    for (int64_t b = ba; b < bb; b++) {
                        const float *A = cx->x + (b * T + t0) * in;
                        float *out = cx->gx + b * Tc * GHp + tile * NV * 16;
                        for (int64_t i = 0, r = 0; i < sblk; i++) {
                            const int64_t mr = tc / sblk + (i < tc % sblk);
                            proj[mr](cx, in, A + r * in, in, W, out + r * GHp, GHp, bias);
                            r += mr;
                        }
                    }
                } else {
                    for (int64_t s = 0; s < tc; s++)
                        for (int64_t i = 0, b = ba; i < bblk; i++) {
                            const int64_t mr = nrow / bblk + (i < nrow % bblk);
                            proj[mr](cx, in, cx->x + (b * T + t0 + s) * in, T * in, W,
                                     cx->gx + (b * Tc + s) * GHp + tile * NV * 16, Tc * GHp, bias);
                            b += mr;
                        }
                }
            }
            /* The steps (tiles in alternating directions when cx->zigzag). In tile
            ** mode a thread starts step t once every other thread has published
            ** step t - 1 (its part of h_t written; and so also done reading the
            ** buffer this step overwrites). */
            for (int64_t s = 0; s < tc; s++) {
                const int64_t t = t0 + s;
                const float *hp = cx->h[t & 1];
                float *hn = cx->h[(t & 1) ^ 1];
                if (sync) rf_wait_all(cx->flags, n, th, t);
                for (int64_t i = 0; i < tb - ta; i++) {
                    const int64_t tile = (cx->zigzag && (t & 1)) ? tb - 1 - i : ta + i;
                    const float *W = p->whh + tile * H * NV * 16;
                    for (int64_t j = 0, b = ba; j < nblk; j++) {
                        const int64_t mr = nrow / nblk + (j < nrow % nblk);
                        step[mr](cx, hp + b * p->Hp, p->Hp, W, b, tile, t);
                        SFX(cell)(cx, b, mr, tile, t, s, hp, hn);
                        b += mr;
                    }
                }
                if (sync) rf_publish(&cx->flags[th], t + 1);
            }
        }
    }
}

/* y = f(x) elementwise; f: 0 exp, 1 tanh, 2 sigmoid. */
static void SFX(varr)(int f, int64_t n, const float *x, float *y)
{
    for (int64_t i = 0; i < n; i += VW) {
        float tmp[VW] = { 0 };
        const int64_t m = SL_MIN(VW, n - i);
        for (int64_t j = 0; j < m; j++) tmp[j] = x[i + j];
        VF v = SFX(ldu)(tmp);
        v = f == 0 ? SFX(vexp)(v) : f == 1 ? SFX(vtanh)(v) : SFX(vsig)(v);
        SFX(st_part)(y + i, v, m);
    }
}

#undef RF_E
#undef VM_SPLAT
