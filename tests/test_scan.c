/*
** The state-space kernels (kernels/scan.c): every optimised scan against its
** plain reference on odd shapes and T = 1; the vectorised FFT convolution
** (kernels/fftconv.c) against GSL's and the direct sum on every ISA; the Krylov kernel and the block-carried final state and free
** response against the double recurrence; the vectorisable exp against libm.
*/
#include "sl_test.h"

#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "scan.h"
#include "util.h"

static float *frand(uint64_t *rng, int64_t n, double lo, double hi)
{
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)sl_test_uniform(rng, lo, hi);
    return p;
}

static double *drand_(uint64_t *rng, int64_t n, double lo, double hi)
{
    double *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = sl_test_uniform(rng, lo, hi);
    return p;
}

static double *to_d(const float *x, int64_t n)
{
    double *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = x[i];
    return p;
}

/* A stable random N x N matrix (spectral radius below 1 by scaling), row-major. */
static double *stable(uint64_t *rng, int64_t N)
{
    double *A = drand_(rng, N * N, -1, 1);
    for (int64_t i = 0; i < N * N; i++) A[i] *= 0.9 / sqrt((double)N) / 1.8;
    return A;
}

static void test_lti_scan(void **state)
{
    (void)state;
    uint64_t rng = 1;
    const struct { int64_t nb, T, H, N; int shared; } cases[] = {
        { 1, 1, 1, 1, 0 }, { 2, 13, 3, 5, 0 }, { 3, 1, 4, 7, 1 }, { 2, 40, 5, 9, 1 }, { 1, 33, 2, 16, 0 },
    };
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        const int64_t nb = cases[c].nb, T = cases[c].T, H = cases[c].H, N = cases[c].N;
        const int sh = cases[c].shared;
        float *At = frand(&rng, (sh ? 1 : H) * N * N, -0.3, 0.3), *b = frand(&rng, (sh ? 1 : H) * N, -1, 1);
        float *cc = frand(&rng, H * N, -1, 1), *d = frand(&rng, H, -1, 1);
        float *u = frand(&rng, nb * T * H, -1, 1);
        float *x1 = frand(&rng, nb * H * N, -1, 1), *x2 = malloc((size_t)(nb * H * N) * sizeof *x2);
        memcpy(x2, x1, (size_t)(nb * H * N) * sizeof *x2);
        float *y1 = malloc((size_t)(nb * T * H) * sizeof *y1), *y2 = malloc((size_t)(nb * T * H) * sizeof *y2);
        float *s1 = malloc((size_t)(nb * T * H * N) * sizeof *s1), *s2 = malloc((size_t)(nb * T * H * N) * sizeof *s2);
        sl_lti_f32 k = { .H = H, .N = N, .At = At, .a_stride = sh ? 0 : N * N, .b = b, .b_stride = sh ? 0 : N, .c = cc, .d = d };
        assert_int_equal(sl_lti_scan_f32(&k, nb, T, u, H, y1, H, x1, H * N, s1, H * N), SL_OK);
        assert_int_equal(sl_lti_scan_ref_f32(&k, nb, T, u, H, y2, H, x2, H * N, s2, H * N), SL_OK);
        double *a = to_d(y1, nb * T * H), *r = to_d(y2, nb * T * H);
        fprintf(stderr, "lti scan nb=%lld T=%lld H=%lld N=%lld: ", (long long)nb, (long long)T, (long long)H, (long long)N);
        assert_all_close(a, r, (size_t)(nb * T * H), 1e-5, 1e-6);
        free(a); free(r);
        a = to_d(s1, nb * T * H * N);
        r = to_d(s2, nb * T * H * N);
        assert_all_close(a, r, (size_t)(nb * T * H * N), 1e-5, 1e-6);
        free(a); free(r);
        for (int64_t i = 0; i < nb * H * N; i++) assert_close(x1[i], x2[i], 1e-5, 1e-6);
        free(At); free(b); free(cc); free(d); free(u); free(x1); free(x2); free(y1); free(y2); free(s1); free(s2);
    }
}

/* Krylov kernel + FFT convolution = direct convolution = the double recurrence. */
static void test_kernel_fft_recurrence(void **state)
{
    (void)state;
    uint64_t rng = 2;
    const int64_t Ts[] = { 1, 7, 1000 };
    const int64_t N = 6;
    double *A = stable(&rng, N), *b = drand_(&rng, N, -1, 1), *c = drand_(&rng, N, -1, 1);
    const double d = 0.7;
    for (size_t q = 0; q < SL_ARRAY_LEN(Ts); q++) {
        const int64_t T = Ts[q];
        double *V = malloc((size_t)(N * T) * sizeof *V), *K = calloc((size_t)T, sizeof *K),
               *K2 = malloc((size_t)T * sizeof *K2);
        sl_err err = { 0 };
        assert_int_equal(sl_lti_krylov(N, A, b, T, V, NULL, &err), SL_OK);
        for (int64_t k = 0; k < T; k++)
            for (int64_t i = 0; i < N; i++) K[k] += c[i] * V[i * T + k];
        /* The two-level kernel equals the plain Krylov sequence's. */
        assert_int_equal(sl_lti_kernel(N, A, b, c, T, K2, &err), SL_OK);
        assert_all_close(K2, K, (size_t)T, 1e-10, 1e-14);
        free(K2);
        double *u = drand_(&rng, 2 * T, -1, 1), *y1 = malloc((size_t)(2 * T) * sizeof *y1),
               *y2 = malloc((size_t)(2 * T) * sizeof *y2), *y3 = malloc((size_t)(2 * T) * sizeof *y3);
        sl_fftconv p;
        assert_int_equal(sl_fftconv_init(&p, 1, 1, K, T, T, &err), SL_OK);
        assert_int_equal(sl_fftconv_apply(&p, 2, T, u, 1, y1, 1, 0, &err), SL_OK);
        sl_conv_direct_ref(1, 1, K, T, 2, T, u, 1, y2, 1);
        for (int64_t bb = 0; bb < 2; bb++) {
            double x[6] = { 0 };
            assert_int_equal(sl_lti_scan_f64(N, A, b, c, 0.0, T, u + bb * T, 1, x, y3 + bb * T, 1), SL_OK);
        }
        fprintf(stderr, "T=%lld fft vs direct: ", (long long)T);
        assert_all_close(y1, y2, (size_t)(2 * T), 1e-10, 1e-12);
        fprintf(stderr, "T=%lld fft vs recurrence: ", (long long)T);
        assert_all_close(y1, y3, (size_t)(2 * T), 1e-10, 1e-12);
        /* accumulate adds */
        for (int64_t i = 0; i < 2 * T; i++) y2[i] = d * u[i];
        assert_int_equal(sl_fftconv_apply(&p, 2, T, u, 1, y2, 1, 1, &err), SL_OK);
        for (int64_t i = 0; i < 2 * T; i++) assert_close(y2[i], y1[i] + d * u[i], 1e-12, 1e-12);
        sl_fftconv_free(&p);
        free(V); free(K); free(u); free(y1); free(y2); free(y3);
    }
    free(A); free(b); free(c);
}

static void test_fft_groups(void **state)
{
    (void)state;
    uint64_t rng = 3;
    /* 6 filters in groups of 3 over 2 input channels, 3 sequences, odd T; plan longer than T. */
    const int64_t F = 6, G = 3, nb = 3, T = 37, Tp = 64;
    double *K = drand_(&rng, F * Tp, -1, 1), *u = drand_(&rng, nb * T * 2, -1, 1);
    double *y1 = malloc((size_t)(nb * T * F) * sizeof *y1), *y2 = malloc((size_t)(nb * T * F) * sizeof *y2);
    sl_fftconv p;
    sl_err err = { 0 };
    assert_int_equal(sl_fftconv_init(&p, F, G, K, Tp, Tp, &err), SL_OK);
    assert_int_equal(sl_fftconv_apply(&p, nb, T, u, 2, y1, F, 0, &err), SL_OK);
    sl_conv_direct_ref(F, G, K, Tp, nb, T, u, 2, y2, F);
    assert_all_close(y1, y2, (size_t)(nb * T * F), 1e-11, 1e-12);
    assert_int_equal(sl_fftconv_apply(&p, nb, Tp + 1, u, 2, y1, F, 0, &err), SL_EINTERNAL);
    sl_fftconv_free(&p);
    free(K); free(u); free(y1); free(y2);
}

/* The vectorised FFT convolution against GSL's (sl_fftconv_ref) on every ISA
** the CPU has: filter counts that are not a multiple of the lane group,
** group > 1, nb > 1, T = 1, T below the planned length, accumulate, odd
** leading dimensions; with and without the fused skip term. Bound: both are FFT convolutions of length n <= 8192,
** each with an error of order eps log2(n) relative to max|y| (measured here:
** at most ~1e-15); 1e-12 of max|y| leaves a margin of a few hundred and still
** catches any wrong index, twiddle or lane (those give O(1) errors). Small
** cases are also held against the direct sum. (A plan with fewer filters than
** an ISA's lanes takes a narrower ISA, so F < 8 runs AVX2 or the baseline.) */
static void test_fftconv_isas(void **state)
{
    (void)state;
    static const sl_isa isas[] = { SL_ISA_GENERIC, SL_ISA_AVX2, SL_ISA_AVX512 };
    const struct { int64_t F, G, nb, T, Tp, ldu_pad, ldy_pad; int acc; } cases[] = {
        { 1, 1, 1, 1, 1, 0, 0, 0 },      { 1, 1, 2, 1, 4, 1, 2, 1 },      { 3, 1, 2, 5, 7, 0, 1, 0 },
        { 2, 1, 1, 2, 2, 0, 0, 0 },      { 2, 1, 1, 3, 3, 0, 0, 1 },      { 5, 1, 1, 9, 9, 2, 0, 0 },
        { 16, 1, 1, 64, 64, 0, 0, 0 },   { 17, 1, 2, 33, 100, 3, 1, 1 },  { 6, 3, 3, 37, 64, 0, 0, 0 },
        { 40, 8, 2, 50, 50, 1, 3, 1 },   { 33, 1, 1, 1000, 2048, 5, 0, 0 }, { 5, 5, 1, 300, 300, 0, 0, 1 },
        { 20, 1, 3, 129, 129, 1, 1, 0 }, { 64, 1, 1, 4096, 4096, 0, 0, 0 },
    };
    uint64_t rng = 11;
    double worst = 0.0;
    for (size_t ik = 0; ik < SL_ARRAY_LEN(isas); ik++) {
        if (sl_kernels_set_isa(isas[ik]) != SL_OK) continue;
        for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
            const int64_t F = cases[c].F, G = cases[c].G, nb = cases[c].nb, T = cases[c].T, Tp = cases[c].Tp;
            const int64_t ldu = F / G + cases[c].ldu_pad, ldy = F + cases[c].ldy_pad, ldk = Tp + 1;
            double *K = drand_(&rng, F * ldk, -1, 1), *u = drand_(&rng, nb * T * ldu, -1, 1);
            double *y1 = drand_(&rng, nb * T * ldy, -1, 1), *y2 = malloc((size_t)(nb * T * ldy) * sizeof *y2);
            memcpy(y2, y1, (size_t)(nb * T * ldy) * sizeof *y2);
            sl_fftconv p;
            sl_err err = { 0 };
            assert_int_equal(sl_fftconv_init(&p, F, G, K, ldk, Tp, &err), SL_OK);
            assert_int_equal(sl_fftconv_apply(&p, nb, T, u, ldu, y1, ldy, cases[c].acc, &err), SL_OK);
            assert_int_equal(sl_fftconv_ref(F, G, K, ldk, nb, T, u, ldu, y2, ldy, cases[c].acc, &err), SL_OK);
            double ymax = 0.0, dmax = 0.0;
            for (int64_t i = 0; i < nb * T * ldy; i++) ymax = fmax(ymax, fabs(y2[i]));
            for (int64_t i = 0; i < nb * T * ldy; i++) dmax = fmax(dmax, fabs(y1[i] - y2[i]));
            fprintf(stderr, "fftconv %s F=%lld G=%lld nb=%lld T=%lld plan %lld: max|diff| / max|y| = %.2e\n",
                    sl_kernels_isa_name(isas[ik]), (long long)F, (long long)G, (long long)nb, (long long)T,
                    (long long)Tp, dmax / ymax);
            worst = fmax(worst, dmax / ymax);
            assert_all_close(y1, y2, (size_t)(nb * T * ldy), 0.0, 1e-12 * ymax);
            if (T <= 300 && !cases[c].acc) {   /* and the direct sum, on the columns it writes */
                double *y3 = malloc((size_t)(nb * T * ldy) * sizeof *y3);
                memcpy(y3, y1, (size_t)(nb * T * ldy) * sizeof *y3);
                sl_conv_direct_ref(F, G, K, ldk, nb, T, u, ldu, y3, ldy);
                assert_all_close(y1, y3, (size_t)(nb * T * ldy), 0.0, 1e-12 * ymax);
                free(y3);
            }
            /* The skip term fused into the store: y (+)= K * u + d[f] u[f / group]. */
            double *d = drand_(&rng, F, -1, 1), *y4 = drand_(&rng, nb * T * ldy, -1, 1),
                   *y5 = malloc((size_t)(nb * T * ldy) * sizeof *y5);
            memcpy(y5, y4, (size_t)(nb * T * ldy) * sizeof *y5);
            assert_int_equal(sl_fftconv_apply_skip(&p, nb, T, u, ldu, y4, ldy, cases[c].acc, d, &err), SL_OK);
            assert_int_equal(sl_fftconv_ref(F, G, K, ldk, nb, T, u, ldu, y5, ldy, cases[c].acc, &err), SL_OK);
            for (int64_t b = 0; b < nb; b++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t f = 0; f < F; f++) y5[(b * T + t) * ldy + f] += d[f] * u[(b * T + t) * ldu + f / G];
            ymax = 0.0;
            for (int64_t i = 0; i < nb * T * ldy; i++) ymax = fmax(ymax, fabs(y5[i]));
            assert_all_close(y4, y5, (size_t)(nb * T * ldy), 0.0, 1e-12 * ymax);
            sl_fftconv_free(&p);
            free(K); free(u); free(y1); free(y2); free(d); free(y4); free(y5);
        }
    }
    sl_kernels_set_isa(SL_ISA_AUTO);
    fprintf(stderr, "fftconv worst over ISAs and shapes: %.2e of max|y|\n", worst);
}

/* One plan applied by several threads at once: one call takes the plan's
** kept work buffers, the others allocate their own; each result equals the
** same call made alone. */
static void test_fftconv_shared_plan(void **state)
{
    (void)state;
    uint64_t rng = 12;
    const int64_t F = 20, T = 300, nb = 1, ncall = 6;
    double *K = drand_(&rng, F * T, -1, 1), *u = drand_(&rng, ncall * T * F, -1, 1);
    double *y1 = malloc((size_t)(ncall * T * F) * sizeof *y1), *y2 = malloc((size_t)(ncall * T * F) * sizeof *y2);
    sl_fftconv p;
    sl_err err = { 0 };
    assert_int_equal(sl_fftconv_init(&p, F, 1, K, T, T, &err), SL_OK);
    for (int64_t c = 0; c < ncall; c++)
        assert_int_equal(sl_fftconv_apply(&p, nb, T, u + c * T * F, F, y1 + c * T * F, F, 0, &err), SL_OK);
    int bad = 0;
#pragma omp parallel for schedule(static, 1) num_threads(3)
    for (int64_t c = 0; c < ncall; c++) {
        sl_err e = { 0 };
        if (sl_fftconv_apply(&p, nb, T, u + c * T * F, F, y2 + c * T * F, F, 0, &e) != SL_OK) {
#pragma omp atomic write
            bad = 1;
        }
    }
    assert_int_equal(bad, 0);
    for (int64_t i = 0; i < ncall * T * F; i++) assert_true(y1[i] == y2[i]);
    sl_fftconv_free(&p);
    free(K); free(u); free(y1); free(y2);
}

/* Final state and free response carried in blocks equal the recurrence. */
static void test_block_carry(void **state)
{
    (void)state;
    uint64_t rng = 4;
    const int64_t N = 5, L = 8;
    double *A = stable(&rng, N), *b = drand_(&rng, N, -1, 1), *c = drand_(&rng, N, -1, 1);
    double *V = malloc((size_t)(N * L) * sizeof *V), *AL = malloc((size_t)(N * N) * sizeof *AL),
           *W = malloc((size_t)(N * L) * sizeof *W), work[20];
    sl_err err = { 0 };
    assert_int_equal(sl_lti_krylov(N, A, b, L, V, AL, &err), SL_OK);
    assert_int_equal(sl_lti_krylov_rows(N, A, c, L, W, &err), SL_OK);
    const int64_t Ts[] = { 1, 7, 8, 29, 64 };
    for (size_t q = 0; q < SL_ARRAY_LEN(Ts); q++) {
        const int64_t T = Ts[q];
        double *u = drand_(&rng, T, -1, 1), *x0 = drand_(&rng, N, -1, 1), xT[5], xr[5], *y = calloc((size_t)T, sizeof *y),
               *yr = malloc((size_t)T * sizeof *yr), *zero = calloc((size_t)T, sizeof *zero);
        sl_lti_final_state(N, A, b, L, V, AL, T, u, 1, x0, xT, work);
        memcpy(xr, x0, sizeof xr);
        assert_int_equal(sl_lti_scan_f64(N, A, b, c, 0.0, T, u, 1, xr, NULL, 1), SL_OK);
        for (int64_t i = 0; i < N; i++) assert_close(xT[i], xr[i], 1e-12, 1e-13);
        sl_lti_free_response(N, A, L, W, AL, T, x0, y, 1, work);
        memcpy(xr, x0, sizeof xr);
        assert_int_equal(sl_lti_scan_f64(N, A, b, c, 0.0, T, zero, 1, xr, yr, 1), SL_OK);
        assert_all_close(y, yr, (size_t)T, 1e-12, 1e-13);
        free(u); free(x0); free(y); free(yr); free(zero);
    }
    free(A); free(b); free(c); free(V); free(AL); free(W);
}

static void test_cdiag(void **state)
{
    (void)state;
    uint64_t rng = 5;
    const struct { int64_t nb, T, H, M; } cases[] = { { 1, 1, 1, 1 }, { 2, 11, 3, 5 }, { 3, 1, 2, 9 }, { 2, 30, 4, 17 } };
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        const int64_t nb = cases[c].nb, T = cases[c].T, H = cases[c].H, M = cases[c].M, n = 2 * H * M;
        float *lam = frand(&rng, n, -0.7, 0.7), *bb = frand(&rng, n, -1, 1), *cc = frand(&rng, n, -1, 1),
              *d = frand(&rng, H, -1, 1), *u = frand(&rng, nb * T * H, -1, 1);
        float *x1 = frand(&rng, nb * n, -1, 1), *x2 = malloc((size_t)(nb * n) * sizeof *x2);
        memcpy(x2, x1, (size_t)(nb * n) * sizeof *x2);
        float *y1 = malloc((size_t)(nb * T * H) * sizeof *y1), *y2 = malloc((size_t)(nb * T * H) * sizeof *y2);
        float *s1 = malloc((size_t)(nb * T * n) * sizeof *s1), *s2 = malloc((size_t)(nb * T * n) * sizeof *s2);
        sl_cdiag_f32 k = { .H = H, .M = M, .lam = lam, .bb = bb, .cc = cc, .d = d };
        assert_int_equal(sl_cdiag_scan_f32(&k, nb, T, u, H, y1, H, x1, n, s1, n), SL_OK);
        assert_int_equal(sl_cdiag_scan_ref_f32(&k, nb, T, u, H, y2, H, x2, n, s2, n), SL_OK);
        double *a = to_d(y1, nb * T * H), *r = to_d(y2, nb * T * H);
        fprintf(stderr, "cdiag scan: ");
        assert_all_close(a, r, (size_t)(nb * T * H), 1e-5, 1e-6);
        free(a); free(r);
        a = to_d(s1, nb * T * n);
        r = to_d(s2, nb * T * n);
        assert_all_close(a, r, (size_t)(nb * T * n), 1e-5, 1e-6);
        free(a); free(r);
        /* The in-place recurrence (LRU) against its reference. */
        const int64_t nn = H * M;
        float *v1 = frand(&rng, nb * T * 2 * nn, -1, 1), *v2 = malloc((size_t)(nb * T * 2 * nn) * sizeof *v2);
        memcpy(v2, v1, (size_t)(nb * T * 2 * nn) * sizeof *v2);
        memcpy(x2, x1, (size_t)(nb * n) * sizeof *x2);
        sl_cdiag_recur_f32(nn, lam, nb, T, v1, 2 * nn, x1, n);
        sl_cdiag_recur_ref_f32(nn, lam, nb, T, v2, 2 * nn, x2, n);
        assert_memory_equal(v1, v2, (size_t)(nb * T * 2 * nn) * sizeof *v1);
        assert_memory_equal(x1, x2, (size_t)(nb * n) * sizeof *x1);
        free(v1); free(v2);
        free(lam); free(bb); free(cc); free(d); free(u); free(x1); free(x2); free(y1); free(y2); free(s1); free(s2);
    }
}

static void test_selective(void **state)
{
    (void)state;
    uint64_t rng = 6;
    const struct { int64_t nb, T, C, N; int neg, gate; } cases[] = {
        { 1, 1, 1, 1, 0, 0 }, { 2, 9, 3, 5, 0, 1 }, { 3, 1, 37, 4, 1, 1 }, { 2, 25, 70, 16, 1, 0 }, { 1, 17, 33, 3, 0, 1 },
    };
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        const int64_t nb = cases[c].nb, T = cases[c].T, C = cases[c].C, N = cases[c].N, W = 1 + 2 * N;
        float *A = frand(&rng, C * N, -4, -0.1), *D = frand(&rng, C, -1, 1), *x = frand(&rng, nb * T * C, -1, 1),
              *dt = frand(&rng, nb * T * C, 0.01, 1.5), *bc = frand(&rng, nb * T * W, -1, 1),
              *z = frand(&rng, nb * T * 2 * C, -2, 2);
        float *h1 = frand(&rng, nb * C * N, -1, 1), *h2 = malloc((size_t)(nb * C * N) * sizeof *h2);
        memcpy(h2, h1, (size_t)(nb * C * N) * sizeof *h2);
        float *y1 = malloc((size_t)(nb * T * C) * sizeof *y1), *y2 = malloc((size_t)(nb * T * C) * sizeof *y2);
        float *s1 = malloc((size_t)(nb * T * C * N) * sizeof *s1), *s2 = malloc((size_t)(nb * T * C * N) * sizeof *s2);
        sl_sscan sc = { .C = C, .N = N, .A = A, .D = D, .neg = cases[c].neg };
        sl_sscan_io io = { .nb = nb, .T = T, .x = x, .ldx = C, .dt = dt, .lddt = C, .Bm = bc + 1, .Cm = bc + 1 + N,
                           .ldbc = W, .z = cases[c].gate ? z + C : NULL, .ldz = 2 * C, .y = y1, .ldy = C, .h = h1,
                           .ldh = C * N, .hs = s1, .ldhs = C * N };
        sl_selective_scan_f32(&sc, &io);
        io.y = y2;
        io.h = h2;
        io.hs = s2;
        sl_selective_scan_ref_f32(&sc, &io);
        double *a = to_d(y1, nb * T * C), *r = to_d(y2, nb * T * C);
        fprintf(stderr, "selective scan C=%lld N=%lld neg=%d: ", (long long)C, (long long)N, cases[c].neg);
        assert_all_close(a, r, (size_t)(nb * T * C), 1e-5, 1e-6);
        free(a); free(r);
        a = to_d(s1, nb * T * C * N);
        r = to_d(s2, nb * T * C * N);
        assert_all_close(a, r, (size_t)(nb * T * C * N), 1e-5, 1e-6);
        free(a); free(r);
        free(A); free(D); free(x); free(dt); free(bc); free(z); free(h1); free(h2); free(y1); free(y2); free(s1); free(s2);
    }
}

static void test_expf_vec(void **state)
{
    (void)state;
    double worst = 0;
    for (int i = 0; i <= 200000; i++) {
        const float x = -87.0f + 175.0f * (float)i / 200000.0f;
        const double e = exp((double)x), r = fabs((double)sl_expf_vec(x) - e) / e;
        worst = fmax(worst, r);
    }
    fprintf(stderr, "sl_expf_vec: worst relative error %.3g on [-87, 88]\n", worst);
    assert_true(worst < 3e-7);
    assert_true(sl_expf_vec(-100.0f) < 1.3e-38f && sl_expf_vec(-100.0f) >= 0.0f);
    assert_close(sl_expf_vec(0.0f), 1.0, 0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lti_scan),
        cmocka_unit_test(test_kernel_fft_recurrence),
        cmocka_unit_test(test_fft_groups),
        cmocka_unit_test(test_fftconv_isas),
        cmocka_unit_test(test_fftconv_shared_plan),
        cmocka_unit_test(test_block_carry),
        cmocka_unit_test(test_cdiag),
        cmocka_unit_test(test_selective),
        cmocka_unit_test(test_expf_vec),
    };
    return cmocka_run_group_tests_name("scan", tests, NULL, NULL);
}
