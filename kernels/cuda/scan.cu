/*
** Mamba's selective scan on CUDA: sl_selective_scan_f32's contract (scan.h).
**
**   a = exp(dt[c] A[c, n])  (2a - 1 when neg)
**   h[c, n] = a h[c, n] + dt[c] B[n] x[c]
**   y[c] = (sum_n C[n] h[c, n] + D[c] x[c]) * (z ? silu(z[c]) : 1)
**
** Parallel over sequences, channels and states: a group of G lanes (G a
** power of two <= 32, inside one warp) runs one (sequence, channel) pair
** through all T steps; lane l holds the states n = l, l + G, ... (NPL of
** them) in registers, so each step is NPL exponentials and multiply-adds per
** lane and one shuffle reduction over the group for y. For N <= 32 a group
** has the next power of two >= N lanes and one state each (Mamba-1's
** d_state 16: two channels per warp); beyond, 32 lanes with up to 16 states
** each (N <= 512). Every lane runs every step (lanes past N or past the last
** channel compute on zeros and store nothing), so the full-warp shuffles are
** always converged. The step's B and C rows are read by every group of the
** block: they come from L1 / L2.
**
** The host wrapper copies the strided inputs into compact device arrays
** (one allocation), runs the kernel over all steps and copies y, the final
** states and, when asked, every step's states back to their leading
** dimensions. Precise expf (no fast math).
*/
#include <stdlib.h>

#include "kernels/cuda/common.cuh"

#define SSCAN_THREADS 128
#define SSCAN_MAX_N 512

/* Arguments of one launch. Compact device layouts: x, dt, z, y [nb T, C];
** Bm, Cm [nb T, N]; A [C, N]; D [C] or NULL; h [nb, C N]; hs [nb T, C N] or NULL. */
typedef struct sscan_args {
    int64_t nb, T, C, N;
    int G, neg;
    const float *A, *D, *x, *dt, *Bm, *Cm, *z;
    float *y, *h, *hs;
} sscan_args;

template <int NPL>
__global__ void __launch_bounds__(SSCAN_THREADS) sscan_kernel(sscan_args p)
{
    const int64_t nb = p.nb, T = p.T, C = p.C, N = p.N;
    const int G = p.G, neg = p.neg;
    const float *__restrict__ A = p.A, *__restrict__ D = p.D, *__restrict__ x = p.x, *__restrict__ dt = p.dt,
                *__restrict__ Bm = p.Bm, *__restrict__ Cm = p.Cm, *__restrict__ z = p.z;
    float *__restrict__ y = p.y, *__restrict__ h = p.h, *__restrict__ hs = p.hs;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t pair = tid / G;                       /* (sequence, channel) */
    const int lane = (int)(threadIdx.x % G);
    const bool valid = pair < nb * C;
    const int64_t b = valid ? pair / C : 0, c = valid ? pair % C : 0;
    float st[NPL], a_c[NPL];
    int64_t nidx[NPL];
    bool on[NPL];
#pragma unroll
    for (int k = 0; k < NPL; k++) {
        nidx[k] = lane + (int64_t)k * G;
        on[k] = valid && nidx[k] < N;
        st[k] = on[k] ? h[b * C * N + c * N + nidx[k]] : 0.0f;
        a_c[k] = on[k] ? A[c * N + nidx[k]] : 0.0f;
    }
    const float dc = (valid && D) ? D[c] : 0.0f;
    for (int64_t t = 0; t < T; t++) {
        const int64_t r = b * T + t;
        const float dl = valid ? dt[r * C + c] : 0.0f, xc = valid ? x[r * C + c] : 0.0f;
        const float *Bt = Bm + r * N, *Ct = Cm + r * N;
        float acc = 0.0f;
#pragma unroll
        for (int k = 0; k < NPL; k++) {
            if (on[k]) {
                float a = expf(dl * a_c[k]);
                if (neg) a = 2.0f * a - 1.0f;
                st[k] = a * st[k] + dl * Bt[nidx[k]] * xc;
                acc += Ct[nidx[k]] * st[k];
                if (hs) hs[r * C * N + c * N + nidx[k]] = st[k];
            }
        }
        for (int off = G / 2; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off, G);
        if (valid && lane == 0) {
            float yc = acc + dc * xc;
            if (z) {
                const float zc = z[r * C + c];
                yc *= zc / (1.0f + expf(-zc));
            }
            y[r * C + c] = yc;
        }
    }
#pragma unroll
    for (int k = 0; k < NPL; k++)
        if (on[k]) h[b * C * N + c * N + nidx[k]] = st[k];
}

template <int NPL>
static void sscan_launch(const sscan_args &a)
{
    const int64_t threads = a.nb * a.C * a.G;
    const unsigned blocks = (unsigned)((threads + SSCAN_THREADS - 1) / SSCAN_THREADS);
    sscan_kernel<NPL><<<blocks, SSCAN_THREADS>>>(a);
}

extern "C" int sl_cuda_selective_scan(const sl_sscan *s, const sl_sscan_io *io, sl_err *err)
{
    const int64_t C = s->C, N = s->N, nb = io->nb, T = io->T, R = nb * T;
    if (nb <= 0 || C <= 0) return SL_OK;
    if (N > SSCAN_MAX_N)
        return sl_err_set(err, SL_EUNSUP, "CUDA selective scan: d_state %lld is above the %d supported", (long long)N,
                          SSCAN_MAX_N);
    /* Lanes per channel and states per lane. */
    int G = 1;
    while (G < N && G < 32) G *= 2;
    if ((nb * C * G + SSCAN_THREADS - 1) / SSCAN_THREADS > INT32_MAX)
        return sl_err_set(err, SL_EINVAL, "CUDA selective scan: %lld sequences x %lld channels is too many",
                          (long long)nb, (long long)C);
    int rc = sl_cu_enter(err);
    if (rc) return rc;
    const int64_t need = N > 0 ? (N + G - 1) / G : 1;
    const int npl = need <= 1 ? 1 : need <= 2 ? 2 : need <= 4 ? 4 : need <= 8 ? 8 : 16;
    float *base = NULL, *p;
    float *dA, *dD, *dx, *ddt, *dB, *dC, *dz, *dy, *dh, *dhs;
    const size_t total = sl_cu_pad(C * N) + sl_cu_pad(C) + 4 * sl_cu_pad(R * C) + 2 * sl_cu_pad(R * N) +
                         sl_cu_pad(nb * C * N) + (io->hs ? sl_cu_pad(R * C * N) : 0) + 64;
    SL_CU(cudaMalloc((void **)&base, total * sizeof(float)));
    p = base;
    dA = sl_cu_take(&p, C * N);
    dD = s->D ? sl_cu_take(&p, C) : NULL;
    dx = sl_cu_take(&p, R * C);
    ddt = sl_cu_take(&p, R * C);
    dz = io->z ? sl_cu_take(&p, R * C) : NULL;
    dy = sl_cu_take(&p, R * C);
    dB = sl_cu_take(&p, R * N);
    dC = sl_cu_take(&p, R * N);
    dh = sl_cu_take(&p, nb * C * N);
    dhs = io->hs ? sl_cu_take(&p, R * C * N) : NULL;
    if (C * N > 0) SL_CU(cudaMemcpy(dA, s->A, (size_t)(C * N) * sizeof(float), cudaMemcpyHostToDevice));
    if (dD) SL_CU(cudaMemcpy(dD, s->D, (size_t)C * sizeof(float), cudaMemcpyHostToDevice));
    if ((rc = sl_cu_rows_to_dev(dx, io->x, R, C, io->ldx, err)) ||
        (rc = sl_cu_rows_to_dev(ddt, io->dt, R, C, io->lddt, err)) ||
        (rc = sl_cu_rows_to_dev(dB, io->Bm, R, N, io->ldbc, err)) ||
        (rc = sl_cu_rows_to_dev(dC, io->Cm, R, N, io->ldbc, err)) ||
        (rc = sl_cu_rows_to_dev(dh, io->h, nb, C * N, io->ldh, err)))
        goto done;
    if (dz && (rc = sl_cu_rows_to_dev(dz, io->z, R, C, io->ldz, err))) goto done;
    if (T > 0) {
        const sscan_args a = { nb, T, C, N, G, s->neg, dA, dD, dx, ddt, dB, dC, dz, dy, dh, dhs };
        switch (npl) {
        case 1: sscan_launch<1>(a); break;
        case 2: sscan_launch<2>(a); break;
        case 4: sscan_launch<4>(a); break;
        case 8: sscan_launch<8>(a); break;
        default: sscan_launch<16>(a); break;
        }
        SL_CU_LAUNCH();
    }
    if ((rc = sl_cu_rows_to_host(io->y, io->ldy, dy, R, C, err)) ||
        (rc = sl_cu_rows_to_host(io->h, io->ldh, dh, nb, C * N, err)))
        goto done;
    if (dhs && (rc = sl_cu_rows_to_host(io->hs, io->ldhs, dhs, R, C * N, err))) goto done;
    SL_CU(cudaDeviceSynchronize());
done:
    if (base) cudaFree(base);
    return rc;
}
