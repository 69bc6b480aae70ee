/*
** The kernels against their plain references: the vectorised exp/tanh/sigmoid
** against libm (in double) over a dense sweep, to the bounds documented in
** kernels/vecmath.h; the fused recurrent forward (kernels/rnn_fused.c)
** against sl_rnn_forward_ref on random shapes (odd H, B = 1, T = 1, row and
** tile threading modes, carry in and out, every state, with and without bias,
** leaky RNN), on every instruction set this CPU has and with 1 and 2 threads;
** the packed-weight GEMM (kernels/gemm.c) against its reference and BLAS; the
** vectorised row kernels (kernels/nn_vec.c) and log-sigmoid against theirs;
** the LSTM's fused backward (kernels/lstm_bptt.c, from the gates the forward
** keeps) against the plain backward that recomputes them, on the same kinds of
** shapes, every gradient it returns.
*/
#include "sl_test.h"

#include <float.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "bptt.h"
#include "kernels.h"
#include "nn.h"
#include "util.h"

static const sl_isa all_isas[] = { SL_ISA_GENERIC, SL_ISA_AVX2, SL_ISA_AVX512 };

/* ------------------------------------------------------------ vector math */
typedef void (*varr_fn)(int64_t, const float *, float *);

/* Max error of f over xs in ulp of the exact value (relative / 2^-23), for
** exact values >= tiny; the absolute error elsewhere into *abs_err. */
static double max_ulp(varr_fn f, double (*ref)(double), const float *xs, int64_t n, double tiny, double *abs_err,
                      float *worst_x)
{
    float *y = malloc((size_t)n * sizeof *y);
    assert_non_null(y);
    f(n, xs, y);
    double worst = 0, aerr = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = ref((double)xs[i]), d = fabs((double)y[i] - e);
        if (fabs(e) >= tiny) {
            const double u = d / (fabs(e) * 0x1p-23);
            if (u > worst) { worst = u; *worst_x = xs[i]; }
        } else if (d > aerr) {
            aerr = d;
        }
    }
    free(y);
    *abs_err = aerr;
    return worst;
}

static double ref_sig(double x) { return 1.0 / (1.0 + exp(-x)); }

static void test_vecmath_vs_libm(void **state)
{
    (void)state;
    /* Every 2^-12 over [-20, 20], random points over [-100, 100], 2^-20 < |x| < 1
    ** log-spaced (where tanh's and sigmoid's relative error is decided by few
    ** bits: the uniform grid has 40 points below 0.01), the edges. */
    const int64_t nd = 40 * 4096 + 1, nr = 200000, nl = 200000;
    float *xs = malloc((size_t)(nd + nr + 2 * nl + 16) * sizeof *xs);
    assert_non_null(xs);
    int64_t n = 0;
    for (int64_t i = 0; i < nd; i++) xs[n++] = (float)(-20.0 + (double)i / 4096.0);
    uint64_t rs = 7;
    for (int64_t i = 0; i < nr; i++) xs[n++] = (float)sl_test_uniform(&rs, -100.0, 100.0);
    for (int64_t i = 0; i < nl; i++) {
        const float v = (float)exp2(-20.0 + 20.0 * (double)i / (double)nl);
        xs[n++] = v;
        xs[n++] = -v;
    }
    const float edges[] = { 0.0f, -0.0f, 1e-30f, -1e-30f, 0.625f, -0.625f, 0.62499994f, 88.0f, -87.0f, 44.0f, 1e-8f };
    for (size_t i = 0; i < SL_ARRAY_LEN(edges); i++) xs[n++] = edges[i];
    /* exp only inside its documented range */
    float *xe = malloc((size_t)n * sizeof *xe);
    int64_t ne = 0;
    for (int64_t i = 0; i < n; i++)
        if (xs[i] >= -87.3f && xs[i] <= 88.0f) xe[ne++] = xs[i];
    for (size_t k = 0; k < SL_ARRAY_LEN(all_isas); k++) {
        if (sl_kernels_set_isa(all_isas[k]) != SL_OK) continue;
        double aerr;
        float wx = 0;
        double ue = max_ulp(sl_vexpf, exp, xe, ne, 0.0, &aerr, &wx);
        fprintf(stderr, "%-7s exp    max %.2f ulp (at %g)\n", sl_kernels_isa_name(all_isas[k]), ue, (double)wx);
        assert_true(ue <= 3.0);
        double ut = max_ulp(sl_vtanhf, tanh, xs, n, 0.0, &aerr, &wx);
        fprintf(stderr, "%-7s tanh   max %.2f ulp (at %g)\n", sl_kernels_isa_name(all_isas[k]), ut, (double)wx);
        assert_true(ut <= 3.0);
        double us = max_ulp(sl_vsigmoidf, ref_sig, xs, n, ref_sig(-87.0), &aerr, &wx);
        fprintf(stderr, "%-7s sig    max %.2f ulp (at %g), abs below e^-87 %.3g\n", sl_kernels_isa_name(all_isas[k]),
                us, (double)wx, aerr);
        assert_true(us <= 4.0);
        assert_true(aerr <= 1e-37);
        /* NaN passes through tanh and sigmoid */
        float nanv = NAN, out = 0;
        sl_vtanhf(1, &nanv, &out);
        assert_true(isnan(out));
        sl_vsigmoidf(1, &nanv, &out);
        assert_true(isnan(out));
    }
    sl_kernels_set_isa(SL_ISA_AUTO);
    free(xs);
    free(xe);
}

/* ------------------------------------------------------------ fused forward */
typedef struct rcase {
    sl_cell_kind cell;
    int64_t in, H, B, T;
    int bias, leaky, with_carry, with_states;
    double scale;   /* weights uniform in +-scale/sqrt(H) */
} rcase;

/* Run one case on the current ISA and thread count; returns the worst
** error ratio of y, final carry and states against the reference. */
static double run_case(const rcase *c, int use_packed)
{
    const int64_t G = sl_cell_gates(c->cell), GH = G * c->H, nc = sl_cell_carry(c->cell, c->H);
    uint64_t rs = (uint64_t)(c->H * 1000003 + c->in * 101 + c->B * 7 + c->T) ^ (uint64_t)c->cell << 40;
    const double k = c->scale / sqrt((double)c->H);
    float *w_ih = malloc((size_t)(GH * c->in) * sizeof(float)), *w_hh = malloc((size_t)(GH * c->H) * sizeof(float));
    float *b_ih = malloc((size_t)GH * sizeof(float)), *b_hh = malloc((size_t)GH * sizeof(float));
    float *alpha = malloc((size_t)c->H * sizeof(float)), *tau = malloc((size_t)c->H * sizeof(float));
    for (int64_t i = 0; i < GH * c->in; i++) w_ih[i] = (float)sl_test_uniform(&rs, -k, k);
    for (int64_t i = 0; i < GH * c->H; i++) w_hh[i] = (float)sl_test_uniform(&rs, -k, k);
    for (int64_t i = 0; i < GH; i++) { b_ih[i] = (float)sl_test_uniform(&rs, -k, k); b_hh[i] = (float)sl_test_uniform(&rs, -k, k); }
    for (int64_t i = 0; i < c->H; i++) { tau[i] = (float)sl_test_uniform(&rs, 1.0, 10.0); alpha[i] = 1.0f / tau[i]; }
    sl_rnn_weights w = { .cell = c->cell, .in = c->in, .H = c->H, .w_ih = w_ih, .w_hh = w_hh,
                         .b_ih = c->bias ? b_ih : NULL, .b_hh = c->bias ? b_hh : NULL,
                         .alpha = c->leaky ? alpha : NULL, .tau = c->leaky ? tau : NULL };
    sl_rnn_packed *pk = NULL;
    sl_err err = { 0 };
    if (use_packed) {
        assert_int_equal(sl_rnn_pack(&w, &pk, &err), SL_OK);
        w.packed = pk;
    }
    const int64_t nx = c->B * c->T * c->in, ny = c->B * c->T * c->H, ns = c->B * c->T * nc;
    float *x = malloc((size_t)nx * sizeof(float));
    for (int64_t i = 0; i < nx; i++) x[i] = (float)sl_test_uniform(&rs, -1.0, 1.0);
    float *y = malloc((size_t)ny * sizeof(float)), *yr = malloc((size_t)ny * sizeof(float));
    float *cr = calloc((size_t)(c->B * nc), sizeof(float)), *cf = calloc((size_t)(c->B * nc), sizeof(float));
    for (int64_t i = 0; i < c->B * nc; i++) cr[i] = cf[i] = c->with_carry ? (float)sl_test_uniform(&rs, -0.5, 0.5) : 0.0f;
    float *st = c->with_states ? malloc((size_t)ns * sizeof(float)) : NULL;
    float *str = c->with_states ? malloc((size_t)ns * sizeof(float)) : NULL;
    memset(y, 0xff, (size_t)ny * sizeof(float));   /* NaN: every output must be written */
    assert_int_equal(sl_rnn_forward_ref(&w, c->B, c->T, x, yr, c->with_carry ? cr : NULL, str, &err), SL_OK);
    assert_int_equal(sl_rnn_forward(&w, c->B, c->T, x, y, c->with_carry ? cf : NULL, st, &err), SL_OK);
    double *a = malloc((size_t)SL_MAX(ny, ns) * sizeof(double)), *b = malloc((size_t)SL_MAX(ny, ns) * sizeof(double));
    for (int64_t i = 0; i < ny; i++) { a[i] = y[i]; b[i] = yr[i]; }
    double worst = sl_test_worst(a, b, (size_t)ny, 1e-5, 1e-6, "y");
    if (c->with_carry) {
        for (int64_t i = 0; i < c->B * nc; i++) { a[i] = cf[i]; b[i] = cr[i]; }
        worst = fmax(worst, sl_test_worst(a, b, (size_t)(c->B * nc), 1e-5, 1e-6, "carry"));
    }
    if (st) {
        for (int64_t i = 0; i < ns; i++) { a[i] = st[i]; b[i] = str[i]; }
        worst = fmax(worst, sl_test_worst(a, b, (size_t)ns, 1e-5, 1e-6, "states"));
    }
    free(a); free(b); free(st); free(str);
    free(x); free(y); free(yr); free(cr); free(cf);
    free(w_ih); free(w_hh); free(b_ih); free(b_hh); free(alpha); free(tau);
    sl_rnn_packed_free(pk);
    return worst;
}

static const char *cell_name(sl_cell_kind c)
{
    return c == SL_CELL_LSTM ? "lstm" : c == SL_CELL_GRU ? "gru" : c == SL_CELL_RNN_RELU ? "relu" : "tanh";
}

static void test_forward_vs_reference(void **state)
{
    (void)state;
    const sl_cell_kind cells[] = { SL_CELL_RNN_TANH, SL_CELL_RNN_RELU, SL_CELL_LSTM, SL_CELL_GRU };
    /* in, H, B, T: odd sizes, B = 1, T = 1, H < 16, H not a multiple of 16,
    ** batches that select tile mode (B < rows per block x threads) and row mode. */
    const int64_t shapes[][4] = {
        { 3, 5, 1, 1 },    { 7, 17, 1, 9 },   { 16, 33, 2, 7 },  { 5, 100, 1, 13 }, { 9, 130, 3, 5 },
        { 31, 129, 13, 6 }, { 64, 64, 32, 4 }, { 1, 200, 7, 1 },  { 40, 257, 1, 3 }, { 12, 48, 17, 30 },
        /* at most 8 inputs (the step adds x W_ih itself) with several row blocks and steps */
        { 2, 33, 5, 9 },    { 8, 48, 13, 7 },  { 1, 20, 4, 6 },   { 3, 17, 19, 11 }, { 4, 64, 9, 1 },
        { 1, 130, 7, 5 },
    };
    const int threads[] = { 1, 2 };
    const int saved = sl_get_threads();
    int n = 0;
    double worst_all = 0;
    for (size_t ik = 0; ik < SL_ARRAY_LEN(all_isas); ik++) {
        if (sl_kernels_set_isa(all_isas[ik]) != SL_OK) continue;
        for (size_t it = 0; it < 2 * SL_ARRAY_LEN(threads); it++) {
            /* every thread count in the tile mode and the row mode, even for tiny steps */
            sl_set_threads(threads[it / 2]);
            sl_rnn_set_tuning(0, 1 + (int)(it % 2));
            for (size_t ic = 0; ic < SL_ARRAY_LEN(cells); ic++)
                for (size_t is = 0; is < SL_ARRAY_LEN(shapes); is++) {
                    rcase c = { .cell = cells[ic], .in = shapes[is][0], .H = shapes[is][1], .B = shapes[is][2],
                                .T = shapes[is][3], .bias = (int)(is % 3 != 1), .with_carry = (int)(is % 2),
                                .with_states = (int)(is % 4 < 2),
                                /* Saturating weights (3x PyTorch's init) for the gated cells on short
                                ** sequences. Not for the plain RNNs: there the pre-activations are
                                ** sums of O(1) terms cancelling to small values and the trajectory
                                ** is chaotic, so float rounding alone (the reference's included)
                                ** moves results by ~1e-5 relative. */
                                .scale = shapes[is][3] <= 8 && is % 2 == 0 && cells[ic] >= SL_CELL_LSTM ? 3.0 : 1.0 };
                    c.leaky = cells[ic] <= SL_CELL_RNN_RELU && is % 3 == 2;
                    double wr = run_case(&c, (int)((is + it) % 2));
                    if (wr > 0.5)
                        fprintf(stderr, "%s", wr > 1.0 ? "FAIL" : "close");
                    if (wr > 0.5)
                        fprintf(stderr, " %s %s threads %d mode %d: in %lld H %lld B %lld T %lld: worst %.3g\n",
                                sl_kernels_isa_name(all_isas[ik]), cell_name(c.cell), threads[it / 2], 1 + (int)(it % 2), (long long)c.in,
                                (long long)c.H, (long long)c.B, (long long)c.T, wr);
                    assert_true(wr <= 1.0);
                    worst_all = fmax(worst_all, wr);
                    n++;
                }
        }
    }
    fprintf(stderr, "fused forward vs reference: %d cases, worst error %.3f of (1e-5 rel + 1e-6 abs)\n", n, worst_all);
    sl_kernels_set_isa(SL_ISA_AUTO);
    sl_rnn_set_tuning(-1, 0);
    sl_set_threads(saved);
}

/* Long sequences at the bench's sizes (H = 256), both threading modes. */
static void test_forward_long(void **state)
{
    (void)state;
    const sl_cell_kind cells[] = { SL_CELL_RNN_TANH, SL_CELL_LSTM, SL_CELL_GRU };
    const int saved = sl_get_threads();
    sl_set_threads(2);
    for (size_t ic = 0; ic < SL_ARRAY_LEN(cells); ic++)
        for (int64_t B = 1; B <= 16; B += 15) {
            rcase c = { .cell = cells[ic], .in = 256, .H = 256, .B = B, .T = 300, .bias = 1, .with_carry = 1, .scale = 1.0 };
            double wr = run_case(&c, 1);
            fprintf(stderr, "%s H 256 B %lld T 300: worst %.3f\n", cell_name(c.cell), (long long)B, wr);
            assert_true(wr <= 1.0);
        }
    sl_set_threads(saved);
}

/* Called from inside a parallel region (analyses running forwards side by
** side), sl_rnn_forward runs single-threaded and stays correct. (run_case's
** own asserts would abort rather than report from a worker thread; the
** verdict is asserted after the region.) */
static void test_forward_nested(void **state)
{
    (void)state;
    const int saved = sl_get_threads();
    sl_set_threads(2);
    double worst[2] = { 0, 0 };
#pragma omp parallel num_threads(2)
    {
        const int t = omp_get_thread_num();
        rcase c = { .cell = t ? SL_CELL_GRU : SL_CELL_LSTM, .in = 20, .H = 130, .B = 1 + 4 * t, .T = 25,
                    .bias = 1, .with_carry = 1, .with_states = 1, .scale = 1.0 };
        worst[t] = run_case(&c, 1);
    }
    fprintf(stderr, "nested: worst %.3f %.3f\n", worst[0], worst[1]);
    assert_true(worst[0] <= 1.0 && worst[1] <= 1.0);
    sl_set_threads(saved);
}


/* ------------------------------------------------------------ packed-weight GEMM */
/* Max |a - b| / (atol + rtol |b|) over n values (quiet; sl_test_worst prints). */
static double worst_ratio(const float *a, const float *b, int64_t n, double rtol, double atol)
{
    double w = 0;
    for (int64_t i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]) / (atol + rtol * fabs((double)b[i])));
    return w;
}

/* sl_gemm_wpack against its reference and (plain packs) BLAS, on every ISA, 1
** and 2 threads: odd M, K and part sizes (tail tiles, tail rows), biases,
** strided x / y, a residual (separate and in place), swiglu packs. */
static void test_gemm_wpack(void **state)
{
    (void)state;
    const int64_t Ms[] = { 1, 5, 7, 13, 100, 301 }, Ks[] = { 1, 3, 16, 77, 256 };
    /* part rows; 0 ends a list; the last lists are swiglu (gate, up of equal rows) */
    const int64_t plists[][4] = { { 5 }, { 64, 3 }, { 17, 40, 9 }, { 256, 256, 256, 4 }, { 1, 1 }, { 16, 16 }, { 33, 33 }, { 100, 100 } };
    const int nswiglu = 4;
    const int threads[] = { 1, 2 };
    const int saved = sl_get_threads();
    uint64_t rs = 3;
    double worst_all = 0, worst_blas = 0;
    int n = 0;
    for (size_t ik = 0; ik < SL_ARRAY_LEN(all_isas); ik++) {
        if (sl_kernels_set_isa(all_isas[ik]) != SL_OK) continue;
        for (size_t it = 0; it < SL_ARRAY_LEN(threads); it++) {
            sl_set_threads(threads[it]);
            for (size_t ip = 0; ip < SL_ARRAY_LEN(plists); ip++)
                for (size_t ikk = 0; ikk < SL_ARRAY_LEN(Ks); ikk++)
                    for (size_t im = 0; im < SL_ARRAY_LEN(Ms); im++) {
                        const int swiglu = ip >= SL_ARRAY_LEN(plists) - nswiglu;
                        const int64_t K = Ks[ikk], M = Ms[im];
                        sl_wpart parts[4];
                        int np = 0;
                        int64_t N = 0;
                        float *wbuf[4] = { 0 }, *bbuf[4] = { 0 };
                        for (; np < 4 && plists[ip][np]; np++) {
                            const int64_t r = plists[ip][np];
                            wbuf[np] = malloc((size_t)(r * K) * sizeof(float));
                            for (int64_t i = 0; i < r * K; i++) wbuf[np][i] = (float)sl_test_uniform(&rs, -1, 1);
                            if ((np + im) % 2 == 0) {
                                bbuf[np] = malloc((size_t)r * sizeof(float));
                                for (int64_t i = 0; i < r; i++) bbuf[np][i] = (float)sl_test_uniform(&rs, -1, 1);
                            }
                            parts[np] = (sl_wpart){ .w = wbuf[np], .b = bbuf[np], .rows = r };
                            N += r;
                        }
                        if (swiglu) N = parts[0].rows;
                        sl_wpack *wp = NULL;
                        sl_err err = { 0 };
                        assert_int_equal(sl_wpack_new(K, np, parts, swiglu, &wp, &err), SL_OK);
                        assert_int_equal(sl_wpack_n(wp), N);
                        const int64_t ldx = K + (int64_t)(im % 3), ldy = N + (int64_t)(ikk % 2) * 5;
                        float *x = malloc((size_t)(M * ldx) * sizeof *x), *y = malloc((size_t)(M * ldy) * sizeof *y),
                              *yr = malloc((size_t)(M * ldy) * sizeof *yr), *res = malloc((size_t)(M * ldy) * sizeof *res);
                        for (int64_t i = 0; i < M * ldx; i++) x[i] = (float)sl_test_uniform(&rs, -1, 1);
                        for (int64_t i = 0; i < M * ldy; i++) res[i] = (float)sl_test_uniform(&rs, -1, 1);
                        /* modes: 0 plain, 1 residual, 2 residual in place (y = r on entry) */
                        for (int mode = 0; mode < (swiglu ? 1 : 3); mode++) {
                            memcpy(y, res, (size_t)(M * ldy) * sizeof *y);
                            memcpy(yr, res, (size_t)(M * ldy) * sizeof *yr);
                            const float *r = mode == 0 ? NULL : mode == 1 ? res : y;
                            sl_gemm_wpack(M, x, ldx, wp, r, ldy, y, ldy);
                            sl_gemm_wpack_ref(M, x, ldx, wp, mode ? res : NULL, ldy, yr, ldy);
                            /* untouched padding columns stay as they were (both start from res) */
                            const double wr = worst_ratio(y, yr, M * ldy, 1e-5, 1e-5 * sqrt((double)K));
                            if (wr > 1.0)
                                fprintf(stderr, "FAIL %s threads %d parts %zu%s K %lld M %lld mode %d\n",
                                        sl_kernels_isa_name(all_isas[ik]), threads[it], ip, swiglu ? " swiglu" : "",
                                        (long long)K, (long long)M, mode);
                            assert_true(wr <= 1.0);
                            worst_all = fmax(worst_all, wr);
                            if (!swiglu && mode == 0) {
                                /* BLAS on the stacked weights, part by part */
                                int64_t j0 = 0;
                                for (int p = 0; p < np; p++) {
                                    for (int64_t i = 0; i < M; i++)
                                        for (int64_t o = 0; o < parts[p].rows; o++)
                                            yr[i * ldy + j0 + o] = parts[p].b ? parts[p].b[o] : 0.0f;
                                    sl_sgemm(0, 1, M, parts[p].rows, K, 1.0f, x, ldx, parts[p].w, K, 1.0f, yr + j0, ldy);
                                    j0 += parts[p].rows;
                                }
                                const double wb = worst_ratio(y, yr, M * ldy, 1e-5, 1e-5 * sqrt((double)K));
                                assert_true(wb <= 1.0);
                                worst_blas = fmax(worst_blas, wb);
                            }
                            n++;
                        }
                        free(x); free(y); free(yr); free(res);
                        for (int p = 0; p < np; p++) { free(wbuf[p]); free(bbuf[p]); }
                        sl_wpack_free(wp);
                    }
        }
    }
    fprintf(stderr, "packed GEMM: %d cases, worst error %.3f (reference), %.3f (BLAS) of the tolerance\n", n, worst_all,
            worst_blas);
    sl_kernels_set_isa(SL_ISA_AUTO);
    sl_set_threads(saved);
}

/* sl_gemm_f32 (strided A, row-major B, one thread) against its reference and
** BLAS: the scans' shapes and odd ones, A by rows and by columns, alpha, add. */
static void test_gemm_strided(void **state)
{
    (void)state;
    const int64_t dims[] = { 1, 3, 6, 16, 17, 32, 64, 100 };
    uint64_t rs = 5;
    double worst = 0, worst_blas = 0;
    int n = 0;
    for (size_t ik = 0; ik < SL_ARRAY_LEN(all_isas); ik++) {
        if (sl_kernels_set_isa(all_isas[ik]) != SL_OK) continue;
        for (size_t a = 0; a < SL_ARRAY_LEN(dims); a++)
            for (size_t b = 0; b < SL_ARRAY_LEN(dims); b++)
                for (size_t c = 0; c < SL_ARRAY_LEN(dims); c += 2) {
                    const int64_t M = dims[a], N = dims[b], K = dims[(c + a) % SL_ARRAY_LEN(dims)];
                    const int trans = (int)((a + b + c) % 2), add = (int)((a + c) % 2);
                    const float alpha = (a + b) % 3 == 0 ? -1.0f : 0.5f;
                    const int64_t lda = (trans ? M : K) + 2, ldb = N + 1, ldc = N + 3;
                    float *A = malloc((size_t)((trans ? K : M) * lda) * sizeof *A), *B = malloc((size_t)(K * ldb) * sizeof *B),
                          *C0 = malloc((size_t)(M * ldc) * sizeof *C0), *C1 = malloc((size_t)(M * ldc) * sizeof *C1);
                    for (int64_t i = 0; i < (trans ? K : M) * lda; i++) A[i] = (float)sl_test_uniform(&rs, -1, 1);
                    for (int64_t i = 0; i < K * ldb; i++) B[i] = (float)sl_test_uniform(&rs, -1, 1);
                    for (int64_t i = 0; i < M * ldc; i++) C0[i] = C1[i] = (float)sl_test_uniform(&rs, -1, 1);
                    const int64_t am = trans ? 1 : lda, ak = trans ? lda : 1;
                    sl_gemm_f32(M, N, K, alpha, A, am, ak, B, ldb, add, C0, ldc);
                    sl_gemm_f32_ref(M, N, K, alpha, A, am, ak, B, ldb, add, C1, ldc);
                    const double tol = 1e-6 * sqrt((double)K);
                    worst = fmax(worst, worst_ratio(C0, C1, M * ldc, 1e-5, tol));
                    free(A); free(B); free(C0); free(C1);
                    n++;
                }
    }
    /* BLAS on a few shapes (the plain contract: rows of A, beta 0 / 1) */
    for (int64_t M = 1; M <= 40; M += 13)
        for (int64_t N = 1; N <= 70; N += 23) {
            const int64_t K = 33;
            float *A = malloc((size_t)(M * K) * sizeof *A), *B = malloc((size_t)(K * N) * sizeof *B),
                  *C0 = calloc((size_t)(M * N), sizeof *C0), *C1 = calloc((size_t)(M * N), sizeof *C1);
            for (int64_t i = 0; i < M * K; i++) A[i] = (float)sl_test_uniform(&rs, -1, 1);
            for (int64_t i = 0; i < K * N; i++) B[i] = (float)sl_test_uniform(&rs, -1, 1);
            sl_gemm_f32(M, N, K, 1.0f, A, K, 1, B, N, 0, C0, N);
            sl_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
            worst_blas = fmax(worst_blas, worst_ratio(C0, C1, M * N, 1e-5, 1e-5));
            free(A); free(B); free(C0); free(C1);
        }
    fprintf(stderr, "strided GEMM: %d cases, worst error %.3f (reference), %.3f (BLAS) of the tolerance\n", n, worst,
            worst_blas);
    assert_true(worst <= 1.0 && worst_blas <= 1.0);
    sl_kernels_set_isa(SL_ISA_AUTO);
}

/* ------------------------------------------------------------ vectorised rows (nn_vec.c) */
static double ref_logsig(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

/* log-sigmoid (vecmath.h's vlogsig through sl_act_rows_f32) against libm in
** double, to its documented bound, on every ISA. */
static void test_logsigmoid_vs_libm(void **state)
{
    (void)state;
    const int64_t nd = 40 * 4096 + 1, nr = 100000;
    float *xs = malloc((size_t)(nd + nr) * sizeof *xs), *y = malloc((size_t)(nd + nr) * sizeof *y);
    int64_t n = 0;
    for (int64_t i = 0; i < nd; i++) xs[n++] = (float)(-20.0 + (double)i / 4096.0);
    uint64_t rs = 9;
    for (int64_t i = 0; i < nr; i++) xs[n++] = (float)sl_test_uniform(&rs, -87.0, 40.0);
    for (size_t ik = 0; ik < SL_ARRAY_LEN(all_isas); ik++) {
        if (sl_kernels_set_isa(all_isas[ik]) != SL_OK) continue;
        memcpy(y, xs, (size_t)n * sizeof *y);
        sl_act_rows_f32(SL_VACT_LOGSIG, 1, n, y, n, 1.0f, -INFINITY);
        double worst = 0, wabs = 0;
        for (int64_t i = 0; i < n; i++) {
            const double e = ref_logsig(xs[i]), d = fabs((double)y[i] - e);
            if (xs[i] <= 16.0f) worst = fmax(worst, d / (fabs(e) * 0x1p-23));
            else wabs = fmax(wabs, d);
        }
        fprintf(stderr, "%s logsigmoid: %.2f ulp on [-87, 16], abs %.3g above\n", sl_kernels_isa_name(all_isas[ik]), worst,
                wabs);
        assert_true(worst <= 4.0);
        assert_true(wabs <= 1e-12);
    }
    sl_kernels_set_isa(SL_ISA_AUTO);
    free(xs);
    free(y);
}

/* RMSNorm (plain and gated), L2 norm, activations and the causal conv on
** strided rows against their references, every ISA, 1 and 2 threads. */
static void test_rows_vs_reference(void **state)
{
    (void)state;
    const int64_t shapes[][3] = { { 1, 1, 1 }, { 3, 2, 5 }, { 7, 4, 16 }, { 300, 4, 64 }, { 1100, 1, 256 }, { 9, 3, 33 } };
    const int saved = sl_get_threads();
    uint64_t rs = 21;
    double worst = 0;
    int n = 0;
    for (size_t ik = 0; ik < SL_ARRAY_LEN(all_isas); ik++) {
        if (sl_kernels_set_isa(all_isas[ik]) != SL_OK) continue;
        for (int th = 1; th <= 2; th++) {
            sl_set_threads(th);
            for (size_t is = 0; is < SL_ARRAY_LEN(shapes); is++) {
                const int64_t M = shapes[is][0], nh = shapes[is][1], d = shapes[is][2], w = nh * d, ld = w + 3;
                float *x = malloc((size_t)(M * ld) * sizeof *x), *g = malloc((size_t)(M * ld) * sizeof *g),
                      *wt = malloc((size_t)d * sizeof *wt), *y0 = malloc((size_t)(M * ld) * sizeof *y0),
                      *y1 = malloc((size_t)(M * ld) * sizeof *y1);
                for (int64_t i = 0; i < M * ld; i++) { x[i] = (float)sl_test_uniform(&rs, -3, 3); g[i] = (float)sl_test_uniform(&rs, -4, 4); }
                for (int64_t i = 0; i < d; i++) wt[i] = (float)sl_test_uniform(&rs, 0.5, 1.5);
                for (int variant = 0; variant < 7; variant++) {
                    memcpy(y0, x, (size_t)(M * ld) * sizeof *y0);
                    memcpy(y1, x, (size_t)(M * ld) * sizeof *y1);
                    switch (variant) {
                    case 0: case 1:
                        sl_rmsnorm_rows_f32(M, nh, d, x, ld, variant ? wt : NULL, 1e-5f, variant ? g : NULL, ld, y0, ld);
                        sl_rmsnorm_rows_f32_ref(M, nh, d, x, ld, variant ? wt : NULL, 1e-5f, variant ? g : NULL, ld, y1, ld);
                        break;
                    case 2:
                        sl_l2norm_rows_f32(M, nh, d, y0, ld, 1e-6f);
                        sl_l2norm_rows_f32_ref(M, nh, d, y1, ld, 1e-6f);
                        break;
                    default: {
                        const int kind = variant - 3 < 3 ? variant - 3 : SL_VACT_LOGSIG;
                        const float a = variant == 6 ? 1.0f / 16 : 2.0f, lo = variant == 6 ? -0.1f : -INFINITY;
                        sl_act_rows_f32(kind, M, w, y0, ld, a, lo);
                        sl_act_rows_f32_ref(kind, M, w, y1, ld, a, lo);
                    }
                    }
                    worst = fmax(worst, worst_ratio(y0, y1, M * ld, 2e-6, 1e-6));
                    n++;
                }
                /* conv: B sequences of T = M rows, C = w channels, k = 1..4 and 10 taps (two groups), history,
                ** SiLU on a middle range */
                for (int64_t k = 1; k <= 10; k += k < 4 ? 1 : 6) {
                    const int64_t B = 1 + (int64_t)(is % 3), T = M, C = w, H = k - 1;
                    float *cx = malloc((size_t)(B * T * ld) * sizeof *cx), *cw = malloc((size_t)(k * C) * sizeof *cw),
                          *cb = malloc((size_t)C * sizeof *cb), *h0 = malloc((size_t)(B * H * C + 1) * sizeof *h0),
                          *h1 = malloc((size_t)(B * H * C + 1) * sizeof *h1), *o0 = malloc((size_t)(B * T * ld) * sizeof *o0),
                          *o1 = malloc((size_t)(B * T * ld) * sizeof *o1);
                    for (int64_t i = 0; i < B * T * ld; i++) cx[i] = (float)sl_test_uniform(&rs, -2, 2);
                    for (int64_t i = 0; i < k * C; i++) cw[i] = (float)sl_test_uniform(&rs, -1, 1);
                    for (int64_t i = 0; i < C; i++) cb[i] = (float)sl_test_uniform(&rs, -1, 1);
                    for (int64_t i = 0; i < B * H * C; i++) h0[i] = h1[i] = (float)sl_test_uniform(&rs, -2, 2);
                    const int64_t s0 = C / 3, s1 = C - C / 4;
                    sl_conv1d_rows_f32(B, T, C, k, cx, ld, cw, k % 2 ? cb : NULL, H ? h0 : NULL, o0, ld, s0, s1);
                    sl_conv1d_rows_f32_ref(B, T, C, k, cx, ld, cw, k % 2 ? cb : NULL, H ? h1 : NULL, o1, ld, s0, s1);
                    for (int64_t r = 0; r < B * T; r++)
                        worst = fmax(worst, worst_ratio(o0 + r * ld, o1 + r * ld, C, 2e-6, 1e-6));
                    worst = fmax(worst, worst_ratio(h0, h1, B * H * C, 0, 0 + 1e-30));
                    free(cx); free(cw); free(cb); free(h0); free(h1); free(o0); free(o1);
                    n++;
                }
                free(x); free(g); free(wt); free(y0); free(y1);
            }
        }
    }
    fprintf(stderr, "vectorised rows: %d cases, worst error %.3f of (2e-6 rel + 1e-6 abs)\n", n, worst);
    assert_true(worst <= 1.0);
    sl_kernels_set_isa(SL_ISA_AUTO);
    sl_set_threads(saved);
}

/* ------------------------------------------------------------ LSTM backward */
/* Relative L2 distance of two float arrays (0 when both are zero). */
static double rel_l2(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

typedef struct bcase {
    int64_t in, H, B, T;
    int bias, with_carry, want_dx;
} bcase;

/* The forward with gates on the current ISA and threads, then sl_rnn_backward
** (the fused kernel where it applies) against the plain backward without
** gates, and where the fused kernel applies, sl_lstm_bptt_lowrank with dy
** given as dz wz (dy is made that way: 3 outputs). Returns the worst relative
** L2 error over every output. */
static double run_bwd_case(const bcase *c)
{
    const int64_t H = c->H, G = 4 * H, in = c->in, B = c->B, T = c->T, BT = B * T, nc = 2 * H;
    uint64_t rs = (uint64_t)(H * 7919 + in * 131 + B * 17 + T);
    const double k = 1.0 / sqrt((double)H);
    float *w_ih = malloc((size_t)(G * in) * sizeof(float)), *w_hh = malloc((size_t)(G * H) * sizeof(float));
    float *b_ih = malloc((size_t)G * sizeof(float)), *b_hh = malloc((size_t)G * sizeof(float));
    for (int64_t i = 0; i < G * in; i++) w_ih[i] = (float)sl_test_uniform(&rs, -k, k);
    for (int64_t i = 0; i < G * H; i++) w_hh[i] = (float)sl_test_uniform(&rs, -2 * k, 2 * k);
    for (int64_t i = 0; i < G; i++) { b_ih[i] = (float)sl_test_uniform(&rs, -k, k); b_hh[i] = (float)sl_test_uniform(&rs, -k, k); }
    sl_rnn_weights w = { .cell = SL_CELL_LSTM, .in = in, .H = H, .w_ih = w_ih, .w_hh = w_hh,
                         .b_ih = c->bias ? b_ih : NULL, .b_hh = c->bias ? b_hh : NULL };
    float *x = malloc((size_t)(BT * in) * sizeof(float)), *dy = malloc((size_t)(BT * H) * sizeof(float));
    float *st = malloc((size_t)(BT * nc) * sizeof(float)), *gt = malloc((size_t)(BT * G) * sizeof(float));
    float *c0 = malloc((size_t)(B * nc) * sizeof(float)), *cf = malloc((size_t)(B * nc) * sizeof(float));
    for (int64_t i = 0; i < BT * in; i++) x[i] = (float)sl_test_uniform(&rs, -1.5, 1.5);
    enum { NZ = 3 };
    float *dz = malloc((size_t)(BT * NZ) * sizeof(float)), *wz = malloc((size_t)(NZ * H) * sizeof(float));
    for (int64_t i = 0; i < BT * NZ; i++) dz[i] = (float)sl_test_uniform(&rs, -1, 1);
    for (int64_t i = 0; i < NZ * H; i++) wz[i] = (float)sl_test_uniform(&rs, -1, 1);
    for (int64_t i = 0; i < BT; i++)
        for (int64_t j = 0; j < H; j++) {
            double s = 0;
            for (int o = 0; o < NZ; o++) s += (double)dz[i * NZ + o] * (double)wz[o * H + j];
            dy[i * H + j] = (float)s;
        }
    for (int64_t i = 0; i < B * nc; i++) c0[i] = cf[i] = (float)sl_test_uniform(&rs, -0.5, 0.5);
    sl_err err = { 0 };
    memset(gt, 0xff, (size_t)(BT * G) * sizeof(float));   /* NaN: every gate must be written */
    assert_int_equal(sl_rnn_forward_gates(&w, B, T, x, NULL, c->with_carry ? cf : NULL, st, gt, &err), SL_OK);
    /* Two runs of the dispatching backward (bit-identical), one plain run without gates,
    ** one low-rank run (fused kernel only). */
    const int lowrank = sl_lstm_bptt_available(&w), runs = 3 + lowrank;
    const sl_dy_lowrank lr = { dz, wz, NZ };
    const int64_t sizes[6] = { G * in, G * H, G, G, BT * in, B * nc };
    float *out[4][6];
    for (int r = 0; r < runs; r++)
        for (int q = 0; q < 6; q++) {
            out[r][q] = malloc((size_t)sizes[q] * sizeof(float));
            for (int64_t i = 0; i < sizes[q]; i++) out[r][q][i] = q < 4 ? 0.25f : NAN;   /* grads are added to */
        }
    for (int r = 0; r < runs; r++) {
        sl_rnn_grads g = { .w_ih = out[r][0], .w_hh = out[r][1], .b_ih = out[r][2], .b_hh = out[r][3] };
        size_t need = r < 2 ? sl_rnn_backward_ws(&w, B, T) : r == 2 ? sl_rnn_backward_plain_ws(&w, B, T) : sl_lstm_bptt_ws(&w, B, T);
        void *ws = malloc(need);
        float *dx = c->want_dx ? out[r][4] : NULL, *dc0 = out[r][5];
        const float *car = c->with_carry ? c0 : NULL;
        int rc = r < 2   ? sl_rnn_backward(&w, B, T, x, car, st, gt, dy, dx, dc0, &g, ws, need, &err)
                 : r == 2 ? sl_rnn_backward_plain(&w, B, T, x, car, st, NULL, dy, dx, dc0, &g, ws, need, &err)
                          : sl_lstm_bptt_lowrank(&w, B, T, x, car, st, gt, &lr, dx, dc0, &g, ws, need, &err);
        if (rc) fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(rc, SL_OK);
        free(ws);
    }
    double worst = 0;
    for (int q = 0; q < 6; q++) {
        if (q == 4 && !c->want_dx) continue;
        assert_memory_equal(out[0][q], out[1][q], (size_t)sizes[q] * sizeof(float));
        worst = fmax(worst, rel_l2(out[0][q], out[2][q], sizes[q]));
        if (lowrank) worst = fmax(worst, rel_l2(out[3][q], out[2][q], sizes[q]));
    }
    for (int r = 0; r < runs; r++)
        for (int q = 0; q < 6; q++) free(out[r][q]);
    free(w_ih); free(w_hh); free(b_ih); free(b_hh); free(x); free(dy); free(st); free(gt); free(c0); free(cf);
    free(dz); free(wz);
    return worst;
}

static void test_lstm_backward_fused(void **state)
{
    (void)state;
    const int saved = sl_get_threads();
    const bcase cases[] = {
        { 1, 128, 64, 8, 1, 0, 0 },   /* the bench's shape, shorter */
        { 3, 5, 2, 6, 1, 1, 1 },      { 12, 37, 3, 9, 0, 1, 1 },   { 1, 16, 1, 1, 1, 0, 0 },
        { 20, 64, 7, 5, 1, 1, 1 },    { 2, 100, 13, 4, 1, 0, 1 },  { 9, 130, 5, 3, 1, 1, 1 },
        { 1, 80, 11, 17, 0, 0, 0 },
    };
    double worst_all = 0;
    int n = 0;
    for (size_t ii = 0; ii < SL_ARRAY_LEN(all_isas); ii++) {
        if (sl_kernels_set_isa(all_isas[ii]) != SL_OK) continue;
        for (int th = 1; th <= 2; th++) {
            sl_set_threads(th);
            for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
                double wr = run_bwd_case(&cases[i]);
                if (wr > 1e-5)
                    fprintf(stderr, "%s th %d in %lld H %lld B %lld T %lld: relative L2 error %.3g\n",
                            sl_kernels_isa_name(all_isas[ii]), th, (long long)cases[i].in, (long long)cases[i].H,
                            (long long)cases[i].B, (long long)cases[i].T, wr);
                assert_true(wr <= 1e-5);
                worst_all = fmax(worst_all, wr);
                n++;
            }
        }
    }
    fprintf(stderr, "lstm backward from kept gates (and dy as dz wz) vs plain: %d cases, worst relative L2 error %.2e\n",
            n, worst_all);
    sl_kernels_set_isa(SL_ISA_AUTO);
    sl_set_threads(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vecmath_vs_libm),
        cmocka_unit_test(test_forward_vs_reference),
        cmocka_unit_test(test_forward_long),
        cmocka_unit_test(test_forward_nested),
        cmocka_unit_test(test_gemm_wpack),
        cmocka_unit_test(test_gemm_strided),
        cmocka_unit_test(test_logsigmoid_vs_libm),
        cmocka_unit_test(test_rows_vs_reference),
        cmocka_unit_test(test_lstm_backward_fused),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
