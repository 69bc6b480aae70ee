/*
** FFT convolution of the LTI state-space families (lssl, s4d, lmu; declared
** in scan.h): y = K * u per filter, in double, by complex FFTs vectorised
** across filters.
**
** Why: GSL's scalar mixed-radix real FFT one channel at a time (kept below as
** sl_fftconv_ref) took 3.1 ms for H = 64 filters at T = 4096 on two threads,
** and the LSSL layer's warm convolution forward 4.6 ms, slower than PyTorch's
** FFT convolution of the same size. This version takes 0.27 ms (0.51 ms on
** one thread) and the layer's forward 0.5 ms (measurements below).
**
** Layout ("vertical" SIMD). A vector of VW doubles (8 for AVX-512, 4 AVX2,
** 2 for the x86-64-v2 baseline) holds the same time step or frequency bin of
** VW lanes, and each lane carries two real filters as one complex sequence:
** lane l of lane group g is z = u_a + i u_b for filters a = 2 VW g + l and
** b = a + VW (each reading its input channel f / group). So a butterfly is
** plain vector arithmetic with the twiddle broadcast, no shuffles, and for
** group 1 a row of u (channels contiguous) loads straight into the lanes.
**
** Per (sequence, lane group) task, in one work buffer of nfft elements
** (2 VW doubles each; 1 MB for T = 4096 with AVX-512, in L2):
**   1. radix-4 decimation in frequency (natural in, bit-reversed out), the
**      first stage fused with the load: the input is zero from T on and
**      T <= nfft / 2, so half its inputs are zero and never read;
**   2. the later stages breadth-first while a block is larger than lblock
**      elements (32 KB), then block by block in L1;
**   3. the product with the cached spectra, in bit-reversed order: Z[k] and
**      Z[n-k] are mirror positions inside each block [2^m, 2^(m+1)), and
**      W[k] = P[k] Z[k] + M[k] conj Z[n-k] with P = (Ka + Kb) / 2n and
**      M = (Ka - Kb) / 2n is the transform of y_a + i y_b (the two spectra
**      separated and multiplied in one step, the 1/n folded in). Chunks of
**      that size mirror onto chunks, so step 2's block stages, the product
**      and step 4's block stages run on a chunk and its mirror together,
**      while both are in L1;
**   4. the inverse by decimation in time (bit-reversed in, natural out; no
**      permutation pass anywhere), the last stage fused with the store of
**      the first T outputs only (re -> y_a, im -> y_b) and with the layers'
**      skip term d[f] u (sl_fftconv_apply_skip).
** The kernel spectra (sl_fftconv_init) take the same path: K rows of two
** filters as one complex sequence, separated into P and M.
**
** Threads: the (sequence, lane group) tasks over OpenMP threads, handed out
** dynamically. The work buffers stay with the plan between calls (see
** fc_ws_take). Twiddles are computed once per plan (cos / sin of 2 pi m j / L
** each from its own angle, not by recurrence): w^j, w^2j, w^3j per span.
** Filters sharing an input (group > 1, the LMU) each transform their input
** again in their own lane; n_in transforms instead of n_filt would need the
** input spectra kept per channel (not done: the LMU's cost is its recurrence
** elsewhere).
**
** Accuracy: O(eps log n) relative to max|y|, as GSL's; the two differ by
** at most ~1e-15 of max|y| (tests/test_scan.c holds them to 1e-12 on every
** ISA the CPU has, and small cases to the direct sum).
**
** ISA: the template (fftconv_impl.h) is compiled for AVX-512, AVX2+FMA and
** the baseline; at init the plan takes sl_kernels_isa(), or a narrower one
** when there are fewer filters than lanes (padding lanes cost time and
** spectrum memory), and keeps using it.
**
** Measured (2-core AVX-512 VM shared with other work, best of several;
** H = 64 filters, group 1, nb = 1, T = 4096, nfft = 8192):
**   sl_fftconv_apply, 2 threads: GSL 3.11 ms, this 0.27 ms (1 thread: 6.15
**   vs 0.51 ms); sl_fftconv_init (the spectra): GSL 1.18 ms, this 0.40 ms;
**   LSSL H = 64, N = 64 warm convolution forward (make bench --only lssl):
**   4.6 ms before, 0.5 ms now, PyTorch's rfft/irfft convolution 2.5-4.7 ms
**   in the same runs. Tried: radix-8 breadth stages (one pass over the
**   buffer fewer each way) measured the same as radix 4 (0.52 vs 0.50 ms on
**   one thread), so the arithmetic, not L2, is the limit; kept radix 4.
*/
#include "scan.h"

#include <gsl/gsl_fft_halfcomplex.h>
#include <gsl/gsl_fft_real.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

/* Work below this many (filter x fft-length) units stays on one thread. */
#define SL_FC_PAR_MIN 65536.0

static inline int sl_fc_log2(int64_t n)
{
    int s = 0;
    while (((int64_t)1 << s) < n) s++;
    return s;
}

/* ------------------------------------------------------------ instances */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#define VW 8
#define SFX(n) n##_avx512
typedef double fvd_avx512 __attribute__((vector_size(64)));
#define VD fvd_avx512
#define VSPLAT(f) ((VD)_mm512_set1_pd(f))
#define VFMA(a, b, c) ((VD)_mm512_fmadd_pd((__m512d)(a), (__m512d)(b), (__m512d)(c)))
#define VFMS(a, b, c) ((VD)_mm512_fmsub_pd((__m512d)(a), (__m512d)(b), (__m512d)(c)))
#include "fftconv_impl.h"
#undef VW
#undef SFX
#undef VD
#undef VSPLAT
#undef VFMA
#undef VFMS
#undef FC_CMUL
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define VW 4
#define SFX(n) n##_avx2
typedef double fvd_avx2 __attribute__((vector_size(32)));
#define VD fvd_avx2
#define VSPLAT(f) ((VD)_mm256_set1_pd(f))
#define VFMA(a, b, c) ((VD)_mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(c)))
#define VFMS(a, b, c) ((VD)_mm256_fmsub_pd((__m256d)(a), (__m256d)(b), (__m256d)(c)))
#include "fftconv_impl.h"
#undef VW
#undef SFX
#undef VD
#undef VSPLAT
#undef VFMA
#undef VFMS
#undef FC_CMUL
#pragma GCC pop_options

/* The baseline (the build's -march, x86-64-v2: SSE4.2, no FMA). */
#define VW 2
#define SFX(n) n##_generic
typedef double fvd_generic __attribute__((vector_size(16)));
#define VD fvd_generic
#define VSPLAT(f) ((VD)_mm_set1_pd(f))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VFMS(a, b, c) ((a) * (b) - (c))
#include "fftconv_impl.h"
#undef VW
#undef SFX
#undef VD
#undef VSPLAT
#undef VFMA
#undef VFMS
#undef FC_CMUL

typedef void (*fc_spec_fn)(const sl_fftconv *, const double *, int64_t, int64_t, double *, double *);
typedef void (*fc_task_fn)(const sl_fftconv *, int64_t, const double *, int64_t, double *, int64_t, int,
                           const double *, int64_t, double *);
static const fc_spec_fn fc_spec[] = {
    [SL_ISA_GENERIC] = fc_spec_generic,
    [SL_ISA_AVX2] = fc_spec_avx2,
    [SL_ISA_AVX512] = fc_spec_avx512,
};
static const fc_task_fn fc_task[] = {
    [SL_ISA_GENERIC] = fc_task_generic,
    [SL_ISA_AVX2] = fc_task_avx2,
    [SL_ISA_AVX512] = fc_task_avx512,
};
static const int fc_vw[] = { [SL_ISA_GENERIC] = 2, [SL_ISA_AVX2] = 4, [SL_ISA_AVX512] = 8 };

/* ------------------------------------------------------------ plan */
static int64_t pow2_at_least(int64_t n)
{
    int64_t p = 2;
    while (p < n) p *= 2;
    return p;
}

static void *alloc64(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }

/* The work buffers: one per thread, nfft elements of 2 vw doubles each (1 MB
** at T = 4096 with AVX-512), in one allocation the plan keeps between calls.
** Allocated and freed in every call, they came back as fresh pages in the
** first ~8 calls of a layer's forward (glibc returns the top of its heap
** while its trim threshold adapts), ~500 page faults and ~0.5 ms a call at
** T = 4096, H = 64. A call takes the kept buffers when no other call holds
** them and otherwise allocates its own. */
struct sl_fftconv_ws {
    atomic_int busy;
    size_t cap;        /* doubles */
    double *buf;
};

static double *fc_ws_take(const sl_fftconv *p, int nth, int *kept)
{
    const size_t need = (size_t)nth * (size_t)(p->nfft * 2 * p->vw);
    *kept = 0;
    if (p->ws && atomic_exchange(&p->ws->busy, 1) == 0) {
        if (p->ws->cap < need) {
            free(p->ws->buf);
            p->ws->cap = 0;
            if ((p->ws->buf = alloc64(need * sizeof(double)))) p->ws->cap = need;
        }
        if (p->ws->buf) {
            *kept = 1;
            return p->ws->buf;
        }
        atomic_store(&p->ws->busy, 0);
        return NULL;
    }
    return alloc64(need * sizeof(double));
}

static void fc_ws_give(const sl_fftconv *p, double *buf, int kept)
{
    if (kept)
        atomic_store(&p->ws->busy, 0);
    else
        free(buf);
}

int sl_fftconv_init(sl_fftconv *p, int64_t n_filt, int64_t group, const double *K, int64_t ldk, int64_t T,
                    sl_err *err)
{
    memset(p, 0, sizeof *p);
    if (group <= 0 || n_filt <= 0 || n_filt % group || T <= 0)
        return sl_err_set(err, SL_EINVAL, "fftconv: %lld filters in groups of %lld, %lld steps", (long long)n_filt,
                          (long long)group, (long long)T);
    /* The widest ISA whose lane group (2 vw filters) is not much more than
    ** the filters there are: padding lanes cost time and spectrum memory
    ** (one filter in a 16-filter AVX-512 group would hold 16 spectra). */
    sl_isa isa = sl_kernels_isa();
    while (isa > SL_ISA_GENERIC && 2 * fc_vw[isa] > 2 * n_filt) isa--;
    const int vw = fc_vw[isa];
    const int64_t n = pow2_at_least(SL_MAX(2 * T - 1, 4)), ngrp = (n_filt + 2 * vw - 1) / (2 * vw);
    p->n_filt = n_filt;
    p->group = group;
    p->T = T;
    p->nfft = n;
    p->isa = (int)isa;
    p->vw = vw;
    p->lblock = 32768 / (16 * vw);
    /* twiddles of the radix-4 spans n, n/4, ... >= 4: L / 4 entries of 6 doubles each */
    int64_t ntw = 0;
    for (int64_t L = n; L >= 4; L /= 4) {
        p->tw_off[sl_fc_log2(L)] = ntw;
        ntw += 6 * (L / 4);
    }
    p->tw = alloc64((size_t)ntw * sizeof *p->tw);
    p->spec = alloc64((size_t)(ngrp * (n / 2 + 1) * 4 * vw) * sizeof *p->spec);
    p->ws = calloc(1, sizeof *p->ws);
    if (!p->tw || !p->spec || !p->ws) {
        sl_fftconv_free(p);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    atomic_init(&p->ws->busy, 0);
    for (int64_t L = n; L >= 4; L /= 4) {
        double *w = p->tw + p->tw_off[sl_fc_log2(L)];
        for (int64_t j = 0; j < L / 4; j++)
            for (int m = 1; m <= 3; m++) {
                /* exp(-2 pi i m j / L) */
                const double a = -2.0 * M_PI * (double)(m * j) / (double)L;
                w[6 * j + 2 * (m - 1)] = cos(a);
                w[6 * j + 2 * (m - 1) + 1] = sin(a);
            }
    }
    const int par = ngrp > 1 && (double)n_filt * (double)n > SL_FC_PAR_MIN;
    const int nth = par ? (int)SL_MIN(ngrp, (int64_t)omp_get_max_threads()) : 1;
    int kept;
    double *ws = fc_ws_take(p, nth, &kept);
    if (!ws) {
        sl_fftconv_free(p);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
#pragma omp parallel num_threads(nth) if (par)
    {
        double *buf = ws + (size_t)omp_get_thread_num() * (size_t)(n * 2 * vw);
#pragma omp for schedule(dynamic, 1)
        for (int64_t g = 0; g < ngrp; g++) fc_spec[isa](p, K, ldk, g, buf, p->spec + g * (n / 2 + 1) * 4 * vw);
    }
    fc_ws_give(p, ws, kept);
    return SL_OK;
}

void sl_fftconv_free(sl_fftconv *p)
{
    free(p->spec);
    free(p->tw);
    if (p->ws) free(p->ws->buf);
    free(p->ws);
    memset(p, 0, sizeof *p);
}

int sl_fftconv_apply(const sl_fftconv *p, int64_t nb, int64_t T, const double *u, int64_t ldu, double *y,
                     int64_t ldy, int accumulate, sl_err *err)
{
    return sl_fftconv_apply_skip(p, nb, T, u, ldu, y, ldy, accumulate, NULL, err);
}

int sl_fftconv_apply_skip(const sl_fftconv *p, int64_t nb, int64_t T, const double *u, int64_t ldu, double *y,
                          int64_t ldy, int accumulate, const double *d, sl_err *err)
{
    if (T > p->T) return sl_err_set(err, SL_EINTERNAL, "fftconv planned for %lld steps, asked for %lld",
                                    (long long)p->T, (long long)T);
    if (T <= 0 || nb <= 0) return SL_OK;
    const int64_t n = p->nfft, vw = p->vw, ngrp = (p->n_filt + 2 * vw - 1) / (2 * vw), ntask = nb * ngrp;
    const fc_task_fn fn = fc_task[p->isa];
    const int par = ntask > 1 && (double)nb * (double)p->n_filt * (double)n > SL_FC_PAR_MIN;
    const int nth = par ? (int)SL_MIN(ntask, (int64_t)omp_get_max_threads()) : 1;
    int kept;
    double *ws = fc_ws_take(p, nth, &kept);
    if (!ws) return sl_err_set(err, SL_ENOMEM, "out of memory");
#pragma omp parallel num_threads(nth) if (par)
    {
        double *buf = ws + (size_t)omp_get_thread_num() * (size_t)(n * 2 * vw);
#pragma omp for schedule(dynamic, 1)
        for (int64_t q = 0; q < ntask; q++) {
            const int64_t b = q / ngrp, g = q % ngrp;
            fn(p, T, u + b * T * ldu, ldu, y + b * T * ldy, ldy, accumulate, d, g, buf);
        }
    }
    fc_ws_give(p, ws, kept);
    return SL_OK;
}

/* ------------------------------------------------------------ references */
int sl_fftconv_ref(int64_t n_filt, int64_t group, const double *K, int64_t ldk, int64_t nb, int64_t T,
                   const double *u, int64_t ldu, double *y, int64_t ldy, int accumulate, sl_err *err)
{
    if (group <= 0 || n_filt % group) return sl_err_set(err, SL_EINVAL, "fftconv: %lld filters in groups of %lld",
                                                        (long long)n_filt, (long long)group);
    if (T <= 0 || nb <= 0) return SL_OK;
    const int64_t n = pow2_at_least(2 * T - 1), n_in = n_filt / group;
    double *spec = malloc((size_t)(n_filt * n + 2 * n) * sizeof *spec), *ub = spec ? spec + n_filt * n : NULL,
           *tb = ub ? ub + n : NULL;
    gsl_fft_real_wavetable *wr = gsl_fft_real_wavetable_alloc((size_t)n);
    gsl_fft_halfcomplex_wavetable *wh = gsl_fft_halfcomplex_wavetable_alloc((size_t)n);
    gsl_fft_real_workspace *ws = gsl_fft_real_workspace_alloc((size_t)n);
    int rc = (!spec || !wr || !wh || !ws) ? sl_err_set(err, SL_ENOMEM, "out of memory") : SL_OK;
    for (int64_t f = 0; f < n_filt && !rc; f++) {
        double *s = spec + f * n;
        memcpy(s, K + f * ldk, (size_t)T * sizeof *s);
        memset(s + T, 0, (size_t)(n - T) * sizeof *s);
        gsl_fft_real_transform(s, 1, (size_t)n, wr, ws);
    }
    for (int64_t q = 0; q < nb * n_in && !rc; q++) {
        const int64_t b = q / n_in, g = q % n_in;
        for (int64_t t = 0; t < T; t++) ub[t] = u[(b * T + t) * ldu + g];
        memset(ub + T, 0, (size_t)(n - T) * sizeof *ub);
        gsl_fft_real_transform(ub, 1, (size_t)n, wr, ws);
        for (int64_t f = g * group; f < (g + 1) * group; f++) {
            const double *s = spec + f * n;
            /* Product in GSL's mixed-radix halfcomplex order:
            ** [r0, (r1, i1), ..., (r_{n/2-1}, i_{n/2-1}), r_{n/2}]. */
            tb[0] = ub[0] * s[0];
            tb[n - 1] = ub[n - 1] * s[n - 1];
            for (int64_t k = 1; k < n - 1; k += 2) {
                const double ar = ub[k], ai = ub[k + 1], br = s[k], bi = s[k + 1];
                tb[k] = ar * br - ai * bi;
                tb[k + 1] = ar * bi + ai * br;
            }
            gsl_fft_halfcomplex_inverse(tb, 1, (size_t)n, wh, ws);
            double *yb = y + b * T * ldy + f;
            if (accumulate)
                for (int64_t t = 0; t < T; t++) yb[t * ldy] += tb[t];
            else
                for (int64_t t = 0; t < T; t++) yb[t * ldy] = tb[t];
        }
    }
    free(spec);
    if (wr) gsl_fft_real_wavetable_free(wr);
    if (wh) gsl_fft_halfcomplex_wavetable_free(wh);
    if (ws) gsl_fft_real_workspace_free(ws);
    return rc;
}

void sl_conv_direct_ref(int64_t n_filt, int64_t group, const double *K, int64_t ldk, int64_t nb, int64_t T,
                        const double *u, int64_t ldu, double *y, int64_t ldy)
{
    for (int64_t b = 0; b < nb; b++)
        for (int64_t f = 0; f < n_filt; f++)
            for (int64_t t = 0; t < T; t++) {
                double s = 0.0;
                for (int64_t k = 0; k <= t; k++) s += K[f * ldk + k] * u[(b * T + t - k) * ldu + f / group];
                y[(b * T + t) * ldy + f] = s;
            }
}
