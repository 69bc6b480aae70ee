/*
** The matrix-state scan on CUDA: sl_ms_recurrent's recurrence (matstate.h)
** for many heads of many sequences at once (sl_ms_batch, kernels/cuda/cuda.h).
**
**   gated:  S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T        (g absent, scalar or per key)
**   delta:  S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
**   output: o_t = scale S_t^T q_t
**
** Column p of a head's state S [dk, dv] evolves on its own in every form:
** the gated update scales rows and adds k_t v_t[p]; the delta rule needs
** k_t . S[:, p] (one column's dot product), then
** S[:, p] = a S[:, p] + k_t beta_t (v_t[p] - a k_t . S[:, p]); the output
** o_t[p] = scale q_t . S[:, p]. So the kernel gives each column its own
** thread: a block serves one (sequence, head) and a tile of TP columns
** (grid.x over sequence x head, grid.y over column tiles), d_v is spread
** over the threads and nothing is reduced across them. Each step the block
** loads q_t, k_t and the decay (exp(g_t), per key or scalar) and beta_t into
** shared memory once; every thread then reads them as broadcasts. A
** thread's column lives in registers when dk <= 128 (template DK: the loops
** over rows unroll to DK with a guard i < dk), in device memory beyond
** (coalesced: neighbouring threads hold neighbouring columns).
**
** Precision: float accumulation over dk terms, precise expf, the same
** operation order as sl_ms_recurrent.
*/
#include <stdlib.h>

#include "kernels/cuda/common.cuh"

#define MS_MAX_SMEM (48 * 1024)
#define MS_THREADS 64        /* columns per block (32 when d_v <= 32) */

/* Call f(i, S[i]) for the rows i < dk of a column: registers or memory. */
template <int DK, typename F>
__device__ __forceinline__ void ms_rows(int dk, float *reg, float *col, int dv, F f)
{
    if constexpr (DK > 0) {
#pragma unroll
        for (int i = 0; i < DK; i++)
            if (i < dk) f(i, reg[i]);
    } else {
        for (int i = 0; i < dk; i++) f(i, col[(int64_t)i * dv]);
    }
}

/* Arguments of one launch, passed to the kernel one by one (as one struct
** parameter, nvcc spilled the dk = 128 column to local memory). Compact
** device layouts: q, k [nb T, nh dk]; v, o [nb T, nh dv]; g [nb T, nh gdim]
** or NULL; beta [nb T, nh] or NULL; S [nb nh, dk, dv]. */
typedef struct ms_args {
    int64_t nh, T;
    int dk, dv, gdim;
    float scale;
    const float *q, *k, *v, *g, *beta;
    float *o, *S;
} ms_args;

template <int DK>
__global__ void __launch_bounds__(MS_THREADS)
ms_kernel(int64_t nh, int64_t T, int dk, int dv, int gdim, float scale, const float *__restrict__ q,
          const float *__restrict__ k, const float *__restrict__ v, const float *__restrict__ g,
          const float *__restrict__ beta, float *__restrict__ o, float *__restrict__ S)
{
    extern __shared__ float sm[];
    float *qs = sm, *ks = sm + dk, *gs = sm + 2 * dk, *sc = sm + 3 * dk;   /* sc: a (scalar decay), beta */
    const int64_t bh = blockIdx.x, b = bh / nh, h = bh % nh;
    const int p = (int)(blockIdx.y * blockDim.x + threadIdx.x);
    const bool valid = p < dv;
    const bool vec = g && gdim > 1, delta = beta != NULL;
    float *col = S + bh * dk * dv + (valid ? p : 0);
    float reg[DK > 0 ? DK : 1];
    if constexpr (DK > 0) {
#pragma unroll
        for (int i = 0; i < DK; i++) reg[i] = (valid && i < dk) ? col[(int64_t)i * dv] : 0.0f;
    }
    const int64_t wk = nh * dk, wv = nh * dv;
    for (int64_t t = 0; t < T; t++) {
        const int64_t r = b * T + t;
        const float *qr = q + r * wk + h * dk, *kr = k + r * wk + h * dk;
        const float *gr = g ? g + r * nh * gdim + h * gdim : NULL;
        for (int i = threadIdx.x; i < dk; i += blockDim.x) {
            qs[i] = qr[i];
            ks[i] = kr[i];
            if (vec) gs[i] = expf(gr[i]);
        }
        if (threadIdx.x == 0) {
            sc[0] = gr ? expf(gr[0]) : 1.0f;
            sc[1] = delta ? beta[r * nh + h] : 0.0f;
        }
        __syncthreads();
        if (valid) {
            const float vp = v[r * wv + h * dv + p];
            float out = 0.0f;
            if (delta) {
                const float a = sc[0], bt = sc[1];
                float kd = 0.0f;
                ms_rows<DK>(dk, reg, col, dv, [&](int i, float &s) { kd += ks[i] * s; });
                const float u = bt * (vp - a * kd);
                ms_rows<DK>(dk, reg, col, dv, [&](int i, float &s) {
                    const float x = a * s + ks[i] * u;
                    s = x;
                    out += qs[i] * x;
                });
            } else if (vec) {
                ms_rows<DK>(dk, reg, col, dv, [&](int i, float &s) {
                    const float x = gs[i] * s + ks[i] * vp;
                    s = x;
                    out += qs[i] * x;
                });
            } else {
                const float a = sc[0];
                ms_rows<DK>(dk, reg, col, dv, [&](int i, float &s) {
                    const float x = a * s + ks[i] * vp;
                    s = x;
                    out += qs[i] * x;
                });
            }
            o[r * wv + h * dv + p] = out * scale;
        }
        __syncthreads();   /* the next step overwrites the shared rows */
    }
    if constexpr (DK > 0) {
        if (valid) {
#pragma unroll
            for (int i = 0; i < DK; i++)
                if (i < dk) col[(int64_t)i * dv] = reg[i];
        }
    }
}

/* Launch with the column in registers of DK floats (dk <= DK), or in memory (DK = 0). */
#define MS_ARGS a.nh, a.T, a.dk, a.dv, a.gdim, a.scale, a.q, a.k, a.v, a.g, a.beta, a.o, a.S
static void ms_launch(int64_t dk, dim3 grid, int threads, size_t smem, const ms_args &a)
{
    if (dk <= 16) ms_kernel<16><<<grid, threads, smem>>>(MS_ARGS);
    else if (dk <= 32) ms_kernel<32><<<grid, threads, smem>>>(MS_ARGS);
    else if (dk <= 64) ms_kernel<64><<<grid, threads, smem>>>(MS_ARGS);
    else if (dk <= 128) ms_kernel<128><<<grid, threads, smem>>>(MS_ARGS);
    else ms_kernel<0><<<grid, threads, smem>>>(MS_ARGS);
}

extern "C" int sl_cuda_matstate_scan(const sl_ms_batch *m, sl_err *err)
{
    const int64_t nb = m->nb, nh = m->nh, T = m->T, dk = m->dk, dv = m->dv, R = nb * T;
    const int64_t gdim = m->g ? (m->gdim > 1 ? dk : 1) : 0;
    if (nb <= 0 || nh <= 0 || T <= 0 || dv <= 0) return SL_OK;
    if (m->g && m->gdim != 1 && m->gdim != dk)
        return sl_err_set(err, SL_EINVAL, "CUDA matrix-state scan: gate dimension %lld (1 or d_k = %lld)",
                          (long long)m->gdim, (long long)dk);
    if (m->beta && m->g && m->gdim != 1)
        return sl_err_set(err, SL_EINVAL, "CUDA matrix-state scan: the delta rule takes a scalar gate only");
    const size_t smem = (size_t)(3 * dk + 2) * sizeof(float);
    const int threads = dv > 32 ? MS_THREADS : 32;
    const int64_t tiles = (dv + threads - 1) / threads;
    if (smem > MS_MAX_SMEM || tiles > 65535 || nb * nh > INT32_MAX)
        return sl_err_set(err, SL_EUNSUP, "CUDA matrix-state scan: d_k %lld, d_v %lld, %lld heads is beyond its limits",
                          (long long)dk, (long long)dv, (long long)(nb * nh));
    int rc = sl_cu_enter(err);
    if (rc) return rc;
    float *base = NULL, *p;
    float *dq, *dk_, *dv_, *dg, *dbeta, *dO, *dS;
    ms_args args;
    const dim3 grid((unsigned)(nb * nh), (unsigned)tiles);
    const size_t total = 2 * sl_cu_pad(R * nh * dk) + 2 * sl_cu_pad(R * nh * dv) + sl_cu_pad(R * nh * gdim) +
                         (m->beta ? sl_cu_pad(R * nh) : 0) + sl_cu_pad(nb * nh * dk * dv) + 64;
    SL_CU(cudaMalloc((void **)&base, total * sizeof(float)));
    p = base;
    dq = sl_cu_take(&p, R * nh * dk);
    dk_ = sl_cu_take(&p, R * nh * dk);
    dv_ = sl_cu_take(&p, R * nh * dv);
    dO = sl_cu_take(&p, R * nh * dv);
    dg = m->g ? sl_cu_take(&p, R * nh * gdim) : NULL;
    dbeta = m->beta ? sl_cu_take(&p, R * nh) : NULL;
    dS = sl_cu_take(&p, nb * nh * dk * dv);
    if ((rc = sl_cu_rows_to_dev(dq, m->q, R, nh * dk, m->ldq, err)) ||
        (rc = sl_cu_rows_to_dev(dk_, m->k, R, nh * dk, m->ldk, err)) ||
        (rc = sl_cu_rows_to_dev(dv_, m->v, R, nh * dv, m->ldv, err)) ||
        (rc = sl_cu_rows_to_dev(dS, m->S, nb, nh * dk * dv, m->ldS, err)))
        goto done;
    if (dg && (rc = sl_cu_rows_to_dev(dg, m->g, R, nh * gdim, m->ldg, err))) goto done;
    if (dbeta && (rc = sl_cu_rows_to_dev(dbeta, m->beta, R, nh, m->ldb, err))) goto done;
    args.nh = nh;
    args.T = T;
    args.dk = (int)dk;
    args.dv = (int)dv;
    args.gdim = (int)gdim;
    args.scale = m->scale;
    args.q = dq;
    args.k = dk_;
    args.v = dv_;
    args.g = dg;
    args.beta = dbeta;
    args.o = dO;
    args.S = dS;
    ms_launch(dk, grid, threads, smem, args);
    SL_CU_LAUNCH();
    if ((rc = sl_cu_rows_to_host(m->o, m->ldo, dO, R, nh * dv, err)) ||
        (rc = sl_cu_rows_to_host(m->S, m->ldS, dS, nb, nh * dk * dv, err)))
        goto done;
    SL_CU(cudaDeviceSynchronize());
done:
    if (base) cudaFree(base);
    return rc;
}
