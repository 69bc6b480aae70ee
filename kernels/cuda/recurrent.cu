/*
** The gated recurrent driver on CUDA: sl_rnn_forward's contract (kernels.h)
** for rnn tanh / relu (with the leaky RNN's alpha), lstm and gru.
**
** The mathematics and its arrangement follow kernels/recurrent.c:
**   - the input bias and every recurrent bias outside GRU's reset product
**     are folded into one bias bx [G H] on the host; GRU's b_hn stays apart,
**     because it sits inside r * (W_hn h + b_hn);
**   - the inputs of a chunk of Tc steps are projected by one cuBLAS GEMM,
**     gx [B Tc, G H] = x W_ih^T (bx is added in the cell kernel);
**   - each step is one cuBLAS GEMM gh [B, G H] = h W_hh^T and one fused cell
**     kernel, one thread per (sequence, unit): the gate pre-activations,
**     their nonlinearities and the state update in one pass, writing h (and
**     c) in place, the step's output row and, when asked, its carry row.
** h and c live on the device as separate compact [B, H] arrays (the GEMM
** reads h with leading dimension H) and are packed into the carry layout
** [h | c] only when copied back. Chunks bound the device memory to about
** 2^26 floats of projected inputs whatever T is; each chunk's inputs go up
** and its outputs come down with one strided copy each.
**
** Precision: float throughout with precise tanhf / expf (the build has no
** fast math), cuBLAS in float (CUBLAS_DEFAULT_MATH, no TF32); sums run in a
** different order from the CPU's BLAS, which the tests allow for (1e-5).
*/
#include <math.h>
#include <stdlib.h>

#include "kernels/cuda/common.cuh"

/* Projected-input floats held on the device at once. */
#define RNN_GX_MAX ((int64_t)1 << 26)

static int64_t rnn_chunk_cap;   /* sl_cuda_rnn_set_chunk; 0 = none */

extern "C" void sl_cuda_rnn_set_chunk(int64_t steps) { rnn_chunk_cap = steps > 0 ? steps : 0; }

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

/* One step s of a chunk of tc steps for every (sequence b, unit j):
** gx [B tc, G H] (row b tc + s), gh [B, G H]; h, c [B, H] updated in place;
** yc [B tc, H] and sc [B tc, nc] (either may be NULL) receive the step. */
__global__ void rnn_cell_kernel(int cell, int64_t B, int64_t H, int64_t tc, int64_t s, const float *__restrict__ gx,
                                const float *__restrict__ gh, const float *__restrict__ bx,
                                const float *__restrict__ bhn, const float *__restrict__ alpha, float *__restrict__ h,
                                float *__restrict__ c, float *__restrict__ yc, float *__restrict__ sc, int64_t nc)
{
    const int64_t n = B * H;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / H, j = i % H, row = b * tc + s;
        float hv = h[i], cv = 0.0f;
        switch (cell) {
        case SL_CELL_RNN_TANH:
        case SL_CELL_RNN_RELU: {
            const float *x = gx + row * H, *r = gh + b * H;
            const float p = x[j] + bx[j] + r[j];
            const float a = cell == SL_CELL_RNN_RELU ? (p > 0.0f ? p : 0.0f) : tanhf(p);
            hv = alpha ? (1.0f - alpha[j]) * hv + alpha[j] * a : a;
            break;
        }
        case SL_CELL_LSTM: {
            const float *x = gx + row * 4 * H, *r = gh + b * 4 * H;
            const float ig = sigmoidf_(x[j] + bx[j] + r[j]);
            const float fg = sigmoidf_(x[H + j] + bx[H + j] + r[H + j]);
            const float gg = tanhf(x[2 * H + j] + bx[2 * H + j] + r[2 * H + j]);
            const float og = sigmoidf_(x[3 * H + j] + bx[3 * H + j] + r[3 * H + j]);
            cv = fg * c[i] + ig * gg;
            c[i] = cv;
            hv = og * tanhf(cv);
            break;
        }
        case SL_CELL_GRU: {
            const float *x = gx + row * 3 * H, *r = gh + b * 3 * H;
            const float rg = sigmoidf_(x[j] + bx[j] + r[j]);
            const float zg = sigmoidf_(x[H + j] + bx[H + j] + r[H + j]);
            const float hn = r[2 * H + j] + (bhn ? bhn[j] : 0.0f);
            const float ng = tanhf(x[2 * H + j] + bx[2 * H + j] + rg * hn);
            hv = (1.0f - zg) * ng + zg * hv;
            break;
        }
        default: break;
        }
        h[i] = hv;
        if (yc) yc[row * H + j] = hv;
        if (sc) {
            sc[row * nc + j] = hv;
            if (cell == SL_CELL_LSTM) sc[row * nc + H + j] = cv;
        }
    }
}

/* bx = b_ih + b_hh outside GRU's reset product (kernels/recurrent.c's folded_bias). */
static void folded_bias(const sl_rnn_weights *w, float *bx)
{
    const int64_t GH = sl_cell_gates(w->cell) * w->H;
    for (int64_t k = 0; k < GH; k++) {
        float b = w->b_ih ? w->b_ih[k] : 0.0f;
        const int inside_reset = w->cell == SL_CELL_GRU && k >= 2 * w->H;
        if (w->b_hh && !inside_reset) b += w->b_hh[k];
        bx[k] = b;
    }
}

extern "C" int sl_cuda_rnn_forward(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, float *y,
                                   float *carry, float *states, sl_err *err)
{
    const int64_t H = w->H, G = sl_cell_gates(w->cell), GH = G * H, nc = sl_cell_carry(w->cell, H), in = w->in;
    const int lstm = w->cell == SL_CELL_LSTM;
    const float *bhn_h = (w->cell == SL_CELL_GRU && w->b_hh) ? w->b_hh + 2 * H : NULL;
    if (B == 0 || T == 0) return SL_OK;
    if (w->cell != SL_CELL_RNN_TANH && w->cell != SL_CELL_RNN_RELU && !lstm && w->cell != SL_CELL_GRU)
        return sl_err_set(err, SL_EINVAL, "CUDA recurrent forward: unknown cell kind %d", (int)w->cell);
    int rc = sl_cu_enter(err);
    if (rc) return rc;
    cublasHandle_t hb;
    if ((rc = sl_cu_blas(&hb, err))) return rc;
    int64_t Tc = RNN_GX_MAX / (B * GH > 0 ? B * GH : 1);
    if (rnn_chunk_cap > 0 && Tc > rnn_chunk_cap) Tc = rnn_chunk_cap;
    Tc = Tc < 1 ? 1 : Tc > T ? T : Tc;
    float *bx_h = (float *)malloc((size_t)GH * sizeof(float));
    float *base = NULL, *p;
    float *dwih, *dwhh, *dbx, *dbhn, *dalpha, *dx, *dgx, *dgh, *dh, *dc, *dy, *ds;
    const size_t total = sl_cu_pad(GH * in) + sl_cu_pad(GH * H) + sl_cu_pad(GH) + sl_cu_pad(H) + sl_cu_pad(H) +
                         sl_cu_pad(B * Tc * in) + sl_cu_pad(B * Tc * GH) + sl_cu_pad(B * GH) + 2 * sl_cu_pad(B * H) +
                         (y ? sl_cu_pad(B * Tc * H) : 0) + (states ? sl_cu_pad(B * Tc * nc) : 0) + 64;
    if (!bx_h) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    folded_bias(w, bx_h);
    SL_CU(cudaMalloc((void **)&base, total * sizeof(float)));
    p = base;
    dwih = sl_cu_take(&p, GH * in);
    dwhh = sl_cu_take(&p, GH * H);
    dbx = sl_cu_take(&p, GH);
    dbhn = bhn_h ? sl_cu_take(&p, H) : NULL;
    dalpha = w->alpha ? sl_cu_take(&p, H) : NULL;
    dx = sl_cu_take(&p, B * Tc * in);
    dgx = sl_cu_take(&p, B * Tc * GH);
    dgh = sl_cu_take(&p, B * GH);
    dh = sl_cu_take(&p, B * H);
    dc = lstm ? sl_cu_take(&p, B * H) : NULL;
    dy = y ? sl_cu_take(&p, B * Tc * H) : NULL;
    ds = states ? sl_cu_take(&p, B * Tc * nc) : NULL;
    SL_CU(cudaMemcpy(dwih, w->w_ih, (size_t)(GH * in) * sizeof(float), cudaMemcpyHostToDevice));
    SL_CU(cudaMemcpy(dwhh, w->w_hh, (size_t)(GH * H) * sizeof(float), cudaMemcpyHostToDevice));
    SL_CU(cudaMemcpy(dbx, bx_h, (size_t)GH * sizeof(float), cudaMemcpyHostToDevice));
    if (dbhn) SL_CU(cudaMemcpy(dbhn, bhn_h, (size_t)H * sizeof(float), cudaMemcpyHostToDevice));
    if (dalpha) SL_CU(cudaMemcpy(dalpha, w->alpha, (size_t)H * sizeof(float), cudaMemcpyHostToDevice));
    /* Start state: the carry's h (and c) columns, or zeros. */
    if (carry) {
        if ((rc = sl_cu_rows_to_dev(dh, carry, B, H, nc, err))) goto done;
        if (lstm && (rc = sl_cu_rows_to_dev(dc, carry + H, B, H, nc, err))) goto done;
    } else {
        SL_CU(cudaMemset(dh, 0, (size_t)(B * H) * sizeof(float)));
        if (lstm) SL_CU(cudaMemset(dc, 0, (size_t)(B * H) * sizeof(float)));
    }
    for (int64_t t0 = 0; t0 < T; t0 += Tc) {
        const int64_t tc = Tc < T - t0 ? Tc : T - t0;
        /* x[b, t0 : t0 + tc, :] for every b: B rows of tc * in floats, pitch T * in. */
        if ((rc = sl_cu_rows_to_dev(dx, x + t0 * in, B, tc * in, T * in, err))) goto done;
        SL_CUBLAS(sl_cu_gemm_rm(hb, 0, 1, B * tc, GH, in, 1.0f, dx, in, dwih, in, 0.0f, dgx, GH));
        for (int64_t s = 0; s < tc; s++) {
            SL_CUBLAS(sl_cu_gemm_rm(hb, 0, 1, B, GH, H, 1.0f, dh, H, dwhh, H, 0.0f, dgh, GH));
            rnn_cell_kernel<<<sl_cu_blocks(B * H, SL_CU_THREADS), SL_CU_THREADS>>>(
                (int)w->cell, B, H, tc, s, dgx, dgh, dbx, dbhn, dalpha, dh, dc, dy, ds, nc);
            SL_CU_LAUNCH();
        }
        if (y && (rc = sl_cu_rows_to_host(y + t0 * H, T * H, dy, B, tc * H, err))) goto done;
        if (states && (rc = sl_cu_rows_to_host(states + t0 * nc, T * nc, ds, B, tc * nc, err))) goto done;
    }
    if (carry) {
        if ((rc = sl_cu_rows_to_host(carry, nc, dh, B, H, err))) goto done;
        if (lstm && (rc = sl_cu_rows_to_host(carry + H, nc, dc, B, H, err))) goto done;
    }
    /* Copies back wait for the work; this catches errors of the last kernels. */
    SL_CU(cudaDeviceSynchronize());
done:
    if (base) cudaFree(base);
    free(bx_h);
    return rc;
}
